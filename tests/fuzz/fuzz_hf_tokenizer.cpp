// SPDX-License-Identifier: MIT
// libFuzzer target: lazyllm::HfTokenizer's tokenizer.json reader and its encoder/decoder.
//
// Input: a tokenizer.json text, optionally followed by a NUL byte and a text to encode (without
// one, a few fixed texts are encoded). Whatever the bytes, the reader either builds a tokenizer
// or throws a lazyllm::Error (any other exception, a crash or a sanitizer report is a bug); a
// built tokenizer encodes the text (special tokens parsed and plain, with and without BOS) to ids
// inside its vocabulary, and decodes them, streamed and whole, without throwing.
//
// Build and run by hand (seed corpus: tests/fuzz/corpus/hf_tokenizer):
//   clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -Iinclude \
//     tests/fuzz/fuzz_hf_tokenizer.cpp -lpcre2-8 -lutf8proc -o fuzz_hf_tokenizer
//   ./fuzz_hf_tokenizer -max_total_time=60 -max_len=16384 /tmp/corpus tests/fuzz/corpus/hf_tokenizer
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lazyllm/text/hf_tokenizer.hpp"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void exercise(const lazyllm::HfTokenizer& tok, std::string_view text) {
  for (const bool add_bos : {false, true})
    for (const bool parse_special : {true, false}) {
      const std::vector<std::int32_t> ids = tok.encode(text, add_bos, parse_special);
      for (const std::int32_t id : ids) check(id >= 0 && id < tok.vocab_size());
      std::string streamed;
      std::int32_t prev = -1;
      for (const std::int32_t id : ids) {
        streamed += tok.decode(prev, id);
        prev = id;
      }
      const std::string whole = tok.decode(ids, true);
      check(lazyllm::detail::hf::is_valid_utf8(whole));
      check(lazyllm::detail::hf::utf8_lossy(streamed) == whole);
      (void)tok.decode(ids, false);
      for (const std::int32_t id : ids) (void)tok.token(id);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = input.find('\0');
  const std::string_view json = input.substr(0, nul);
  std::optional<lazyllm::HfTokenizer> tok;
  try {
    tok.emplace(lazyllm::HfTokenizer::from_json(json, "fuzz.json"));
  } catch (const lazyllm::Error&) {
    return 0;  // refused: the expected outcome for most inputs
  }
  try {
    if (nul != std::string_view::npos) {
      exercise(*tok, input.substr(nul + 1));
    } else {
      for (const char* text :
           {"", " ", "Hello world", "<|endoftext|> x\n\n\t 123 caf\xC3\xA9 e\xCC\x81 \xF0\x9F\x91\x8D",
            "\xFF\xFE invalid \xE2\x82"})
        exercise(*tok, text);
    }
  } catch (const lazyllm::Error&) {
    // Encoding may refuse in one line (e.g. a pathological expression exceeding PCRE2's match
    // limit); a crash or another exception type would not be fine.
  }
  return 0;
}
