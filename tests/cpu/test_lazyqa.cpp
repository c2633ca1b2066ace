// SPDX-License-Identifier: MIT
// The shipped lazyqa model (models/lazyqa): its tokenizer makes every word of the task one token,
// and the model loads and answers a generated question with dense on the CPU.
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "lazyllm/lazyllm.hpp"
#include "lazyllm/eval/task.hpp"
#include "lazyllm/text/llama2c_tokenizer.hpp"
#include "test_util.hpp"

namespace {

using namespace lazyllm;

std::filesystem::path lazyqa_dir() { return test::test_data() / ".." / ".." / "models" / "lazyqa"; }

bool alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

/// Words as tools/train/make_tokenizer.py defines them (its WORD_RE), written out independently:
/// a run of letters or of digits with an optional leading space, "'s", a newline, or one other
/// character. The vocabulary was built so that each word of the task is one token.
std::size_t count_words(std::string_view s) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < s.size(); ++n) {
    std::size_t j = i + (s[i] == ' ' && i + 1 < s.size() && (alpha(s[i + 1]) || digit(s[i + 1])) ? 1 : 0);
    if (alpha(s[j])) {
      while (j < s.size() && alpha(s[j])) ++j;
    } else if (digit(s[j])) {
      while (j < s.size() && digit(s[j])) ++j;
    } else if (s.substr(j, 2) == "'s") {
      j += 2;
    } else {
      ++j;
    }
    i = j;
  }
  return n;
}

}  // namespace

TEST_CASE("lazyqa tokenizer: every word of a generated prompt is one token") {
  const Llama2cTokenizer tok(lazyqa_dir() / "tokenizer.bin");
  CHECK(tok.vocab_size() <= 2048);
  CHECK(tok.piece(3) == "<0x00>");
  CHECK(tok.piece(258) == "<0xFF>");
  for (const auto variant : {eval::Variant::Single, eval::Variant::Twohop}) {
    const eval::TaskGenerator gen({.seed = 77, .length = 600, .variant = variant});
    for (std::uint64_t i = 0; i < 3; ++i) {
      const auto ex = gen.example(i);
      const std::string text = ex.prompt() + " " + ex.answers.at(0);
      const auto ids = tok.encode(text, true);
      // BOS + one token per word of the text with its dummy-prefix space.
      CHECK(ids.size() == 1 + count_words(" " + text));
      for (auto id : ids) CHECK(id != 0);  // never <unk>
      CHECK(tok.decode(ids) == text);
    }
  }
  SUBCASE("each name and value with its leading space is one token") {
    for (const auto& w : eval::vocabulary_words()) {
      INFO(w);
      const auto ids = tok.encode(w, false);  // the dummy prefix gives " " + w
      REQUIRE(ids.size() == 1);
      CHECK(tok.piece(ids[0]) == " " + w);
    }
  }
  SUBCASE("text outside the vocabulary falls back to bytes, losslessly") {
    const std::string odd = "Zyxw 9z \xC3\xA9t\xC3\xA9 \xF0\x9F\x99\x82";
    CHECK(tok.decode(tok.encode(odd, true)) == odd);
  }
}
