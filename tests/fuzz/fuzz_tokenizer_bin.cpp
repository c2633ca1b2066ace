// SPDX-License-Identifier: MIT
// llama2.c tokenizer.bin: the reader, then the BPE encoder and the decoders over the pieces it
// read. Input: 2 bytes of text length (little-endian), the text, then the file.
#include <algorithm>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "lazyllm/text/llama2c_tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lazyllm;
  if (size < 2) return 0;
  const std::size_t text_len = std::min<std::size_t>(size - 2, std::size_t(data[0]) | std::size_t(data[1]) << 8);
  const std::string_view text(reinterpret_cast<const char*>(data) + 2, text_len);
  const std::string_view file(reinterpret_cast<const char*>(data) + 2 + text_len, size - 2 - text_len);
  const auto path = fuzz::write_file("tokenizer.bin", file);
  fuzz::expect_only_library_errors([&] {
    const Llama2cTokenizer tok(path);
    for (bool bos : {false, true}) {
      const auto ids = tok.encode(text, bos);
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
