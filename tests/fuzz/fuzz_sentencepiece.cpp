// SPDX-License-Identifier: MIT
// SentencePiece tokenizer.model loading (libsentencepiece parses the protobuf; the wrapper checks
// what it got), then an encode/decode round over a fixed text.
#include <string>

#include "fuzz_util.hpp"
#include "lazyllm/text/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lazyllm;
  const auto path = fuzz::write_file("tokenizer.model", {reinterpret_cast<const char*>(data), size});
  fuzz::expect_only_library_errors([&] {
    const Tokenizer tok = load_tokenizer(path);
    for (bool bos : {false, true}) {
      const auto ids = tok.encode("Hello world, a b\xC3\xA9 \xF0\x9F\x99\x82 12", bos);
      std::int32_t prev = tok.bos_id();
      for (auto id : ids) {
        fuzz::check(id >= 0 && id < tok.vocab_size());
        (void)tok.decode(prev, id);
        prev = id;
      }
      (void)tok.decode(ids);
    }
  });
  return 0;
}
