// SPDX-License-Identifier: MIT
// Tokenizers (SentencePiece .model, llama2.c tokenizer.bin) and the Llama 2 chat template.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "lazyllm/eval/task.hpp"
#include "lazyllm/text/chat.hpp"
#include "lazyllm/text/tokenizer.hpp"
#include "test_util.hpp"

// LAZYLLM_WITH_SENTENCEPIECE follows __has_include(<sentencepiece_processor.h>) unless the build
// sets it (the CMake target lazyllm::sentencepiece does); the SentencePiece cases need it.

namespace {

using lazyllm::ChatMessage;
using lazyllm::FormatError;
using lazyllm::Tokenizer;
using Ids = std::vector<std::int32_t>;

// Round-trip strings: ASCII, punctuation, newlines/tabs, repeated and edge spaces, Latin-1
// accents, emoji (4-byte UTF-8, byte fallback), CJK.
const std::vector<std::string> kRoundTrip = {
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Wait... what?! (yes) [no] {maybe}; \"quoted\" 'single' a-b_c/d\\e @#$%^&*+=~`|<>",
    "line one\nline two\n\n\ttabbed\r\nCRLF",
    "  two leading spaces, three   inside, trailing  ",
    "héllo wörld, ça va? Ärger über Öl",
    "emoji 😀🎉👍🏽 done",
    "中文字符测试，日本語のテキスト、한국어",
    "x",
    " ",
};

// Plain ASCII sentences for which llama2.c's encoder must agree with SentencePiece exactly.
const std::vector<std::string> kAscii = {
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time, there was a little girl named Lily. She loved to play outside.",
    "I don't know; can't you see? It's 3.14159, not 42!",
    "[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nWhat is 2+2? [/INST]",
    "https://example.com/path?query=value&x=1 -- email: someone@example.org",
};

std::string read_all(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::string streamed(const Tokenizer& tok, const Ids& ids) {
  std::string s;
  std::int32_t prev = -1;
  for (std::int32_t id : ids) {
    s += tok.decode(prev, id);
    prev = id;
  }
  return s;
}

std::string what_of_format_error(const std::filesystem::path& p) {
  try {
    (void)lazyllm::load_tokenizer(p);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "(no FormatError)";
}

// Long and tie-heavy texts: a 1k-word task prompt with notes (first), runs of one character and of
// short repeats (many equal-score pairs, so the leftmost rule decides), the round-trip strings.
std::vector<std::string> encoder_texts() {
  std::vector<std::string> v;
  lazyllm::eval::TaskOptions o{17, 1024, lazyllm::eval::Variant::Mixed};
  o.filler = 0.5;
  v.push_back(lazyllm::eval::TaskGenerator(o).example(0).prompt());
  v.push_back(std::string(700, 'a'));
  v.push_back(std::string(301, ' ') + "x" + std::string(64, '\n'));
  std::string rep;
  for (int i = 0; i < 150; ++i) rep += i % 7 ? "ab" : "aab ";
  v.push_back(rep);
  std::string all;
  for (const auto& s : kRoundTrip) all += s + "\n";
  v.push_back(all + all + "\xff\xfe\x80 trailing bytes");
  return v;
}

}  // namespace

TEST_CASE("tokenizer: llama2.c encoder equals pair-rescanning BPE on long and tie-heavy texts") {
  std::vector<std::filesystem::path> files = {lazyllm::test::test_data() / ".." / ".." / "models" / "lazyqa-notes" /
                                              "tokenizer.bin"};
  if (lazyllm::test::have_shared("tokenizer.bin")) files.push_back(lazyllm::test::shared_models() / "tokenizer.bin");
  const auto texts = encoder_texts();
  for (const auto& f : files) {
    CAPTURE(f);
    const lazyllm::Llama2cTokenizer tok(f);
    for (const auto& s : texts) {
      CAPTURE(s.substr(0, 40));
      const Ids fast = tok.encode(s, false);
      if (&s == &texts.front()) CHECK(fast.size() * 3 < s.size());  // merged to words, mostly
      CHECK(fast == lazyllm::detail::bpe_encode_by_rescanning(tok, s));
      CHECK(tok.decode(fast) == s);
    }
  }
}

TEST_CASE("tokenizer: llama2.c tokenizer.bin encodes, decodes and round-trips") {
  if (!lazyllm::test::have_shared("tokenizer.bin")) return;
  const Tokenizer tok = lazyllm::load_tokenizer(lazyllm::test::shared_models() / "tokenizer.bin");
  CHECK(tok.vocab_size() == 32000);
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  REQUIRE(tok.backend<lazyllm::Llama2cTokenizer>() != nullptr);
  CHECK(tok.encode("Hello world", true) == Ids{1, 15043, 3186});
  CHECK(tok.encode("Hello world", false) == Ids{15043, 3186});
  CHECK(tok.encode("", true) == Ids{1});
  CHECK(tok.encode("", false).empty());
  // Streaming pieces: the dummy-prefix space goes after BOS only; byte pieces are raw bytes.
  CHECK(tok.decode(1, 15043) == "Hello");
  CHECK(tok.decode(15043, 3186) == " world");
  CHECK(tok.decode(3186, 13) == "\n");  // <0x0A>
  CHECK(tok.decode(13, 2) == "");
  CHECK_THROWS_AS(tok.decode(1, 32000), lazyllm::InvalidArgument);
  for (const auto& s : kRoundTrip) {
    CAPTURE(s);
    const Ids ids = tok.encode(s, true);
    CHECK(tok.decode(ids) == s);
    CHECK(streamed(tok, ids) == s);
  }
  // Invalid UTF-8 round-trips through byte fallback (SentencePiece would substitute U+FFFD).
  const std::string bad = "\xff\xfe ok";
  CHECK(tok.decode(tok.encode(bad, true)) == bad);
}

TEST_CASE("tokenizer: truncated or malformed tokenizer.bin is a FormatError") {
  if (!lazyllm::test::have_shared("tokenizer.bin")) return;
  const auto dir = lazyllm::test::scratch("tok");
  const std::string full = read_all(lazyllm::test::shared_models() / "tokenizer.bin");
  REQUIRE(full.size() > 1000);

  // Cut in the middle of a piece: the message names the file and the piece index.
  const auto cut = dir / "truncated.bin";
  lazyllm::test::write_file(cut, full.substr(0, full.size() / 2));
  const std::string msg = what_of_format_error(cut);
  CHECK(msg.find(cut.string()) != std::string::npos);
  CHECK(msg.find("truncated at piece ") != std::string::npos);
  // With an explicit vocab size, a file that ends early is truncated at the first missing piece.
  const auto first = dir / "one_piece.bin";
  {
    // header (4) + piece 0 (4 + 4 + len)
    std::int32_t len0;
    std::memcpy(&len0, full.data() + 8, 4);
    lazyllm::test::write_file(first, full.substr(0, 12 + static_cast<std::size_t>(len0)));
  }
  try {
    (void)lazyllm::Llama2cTokenizer(first, 32000);
    FAIL("expected FormatError");
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()) == first.string() + ": truncated at piece 1");
    CHECK(e.file() == first.string());
  }
  // Extra bytes after the requested vocab size: wrong vocab size.
  CHECK_THROWS_AS(lazyllm::Llama2cTokenizer(lazyllm::test::shared_models() / "tokenizer.bin", 31999), FormatError);
  CHECK(lazyllm::Llama2cTokenizer(lazyllm::test::shared_models() / "tokenizer.bin", 32000).vocab_size() == 32000);

  // Garbage, empty and header-only files.
  const auto garbage = dir / "garbage.bin";
  lazyllm::test::write_file(garbage, "this is definitely not a tokenizer file, just some text\n");
  CHECK(what_of_format_error(garbage).find(garbage.string()) == 0);
  const auto empty = dir / "empty.bin";
  lazyllm::test::write_file(empty, "");
  CHECK(what_of_format_error(empty).find(empty.string()) == 0);
  const auto header = dir / "header.bin";
  lazyllm::test::write_file(header, full.substr(0, 4));
  CHECK(what_of_format_error(header).find(header.string()) == 0);
  // A piece longer than max_token_length.
  std::string longer = full;
  const std::int32_t big = 1000;
  std::memcpy(longer.data() + 8, &big, 4);
  const auto bad_len = dir / "bad_len.bin";
  lazyllm::test::write_file(bad_len, longer);
  CHECK(what_of_format_error(bad_len).find("piece 0 has length 1000") != std::string::npos);
}

TEST_CASE("tokenizer: missing files and unknown extensions are FormatErrors naming the file") {
  const auto dir = lazyllm::test::scratch("tok_missing");
  for (const char* name : {"nope.model", "nope.bin", "nope.txt"}) {
    const auto p = dir / name;
    CAPTURE(p);
    try {
      (void)lazyllm::load_tokenizer(p);
      FAIL("expected FormatError");
    } catch (const FormatError& e) {
      CHECK(e.file() == p.string());
      CHECK(std::string(e.what()) == p.string() + ": file not found");
    }
  }
  const auto txt = dir / "vocab.txt";
  lazyllm::test::write_file(txt, "hello\n");
  CHECK(what_of_format_error(txt).find(txt.string() + ": unknown tokenizer format '.txt'") == 0);
}

#if LAZYLLM_WITH_SENTENCEPIECE
TEST_CASE("tokenizer: SentencePiece tokenizer.model encodes, decodes and round-trips") {
  if (!lazyllm::test::have_shared("tokenizer.model")) return;
  const Tokenizer tok = lazyllm::load_tokenizer(lazyllm::test::shared_models() / "tokenizer.model");
  REQUIRE(tok.backend<lazyllm::SentencePieceTokenizer>() != nullptr);
  CHECK(tok.vocab_size() == 32000);
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK(tok.encode("Hello world", true) == Ids{1, 15043, 3186});
  CHECK(tok.encode("Hello world", false) == Ids{15043, 3186});
  CHECK(tok.encode("", true) == Ids{1});
  CHECK(tok.decode(1, 15043) == "Hello");
  CHECK(tok.decode(15043, 3186) == " world");
  CHECK(tok.decode(3186, 13) == "\n");
  CHECK(tok.decode(13, 1) == "");
  CHECK(tok.decode(13, 2) == "");
  CHECK_THROWS_AS(tok.decode(1, -1), lazyllm::InvalidArgument);
  for (const auto& s : kRoundTrip) {
    CAPTURE(s);
    const Ids ids = tok.encode(s, true);
    CHECK(tok.decode(ids) == s);
    CHECK(streamed(tok, ids) == s);
  }
}

TEST_CASE("tokenizer: llama2.c tokenizer.bin gives SentencePiece's ids") {
  if (!lazyllm::test::have_shared("tokenizer.model") || !lazyllm::test::have_shared("tokenizer.bin")) return;
  const Tokenizer sp = lazyllm::load_tokenizer(lazyllm::test::shared_models() / "tokenizer.model");
  const Tokenizer lc = lazyllm::load_tokenizer(lazyllm::test::shared_models() / "tokenizer.bin");
  for (const auto& s : kAscii) {
    CAPTURE(s);
    CHECK(lc.encode(s, true) == sp.encode(s, true));
  }
  // Also for valid UTF-8 beyond ASCII (byte fallback, merges across multi-byte characters).
  for (const auto& s : kRoundTrip) {
    CAPTURE(s);
    CHECK(lc.encode(s, false) == sp.encode(s, false));
  }
  // Same piece text for every id (streaming after a non-BOS token, and after BOS).
  std::vector<std::int32_t> differ;
  for (std::int32_t id = 0; id < sp.vocab_size(); ++id)
    if (lc.decode(29871, id) != sp.decode(29871, id) || lc.decode(1, id) != sp.decode(1, id)) differ.push_back(id);
  CHECK(differ.empty());
}

TEST_CASE("tokenizer: garbage .model file is a FormatError naming it") {
  const auto dir = lazyllm::test::scratch("tok_sp");
  const auto garbage = dir / "garbage.model";
  lazyllm::test::write_file(garbage, "not a protobuf \x01\x02\x03 at all");
  CHECK(what_of_format_error(garbage).find(garbage.string() + ": ") == 0);
  const auto empty = dir / "empty.model";
  lazyllm::test::write_file(empty, "");
  CHECK(what_of_format_error(empty).find(empty.string() + ": ") == 0);
}

TEST_CASE("tokenizer: a SentencePiece model without a BOS piece refuses to add BOS (fuzz regression)") {
  // tests/fuzz/corpus/sentencepiece/regress-no-bos-piece: "<s>" has an unknown piece type, so
  // SentencePiece's bos_id() is -1, which encode(text, true) once put first in the ids.
  const auto dir = lazyllm::test::scratch("tok_sp_nobos");
  std::ifstream in(lazyllm::test::test_data() / ".." / "fuzz" / "corpus" / "sentencepiece" / "regress-no-bos-piece",
                   std::ios::binary);
  lazyllm::test::write_file(dir / "nobos.model",
                            std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
  const Tokenizer tok = lazyllm::load_tokenizer(dir / "nobos.model");
  CHECK(tok.bos_id() == -1);
  CHECK_THROWS_WITH_AS(tok.encode("Hello", true), "this SentencePiece model has no BOS piece; encode without BOS",
                       lazyllm::InvalidArgument);
  for (auto id : tok.encode("Hello", false)) CHECK((id >= 0 && id < tok.vocab_size()));
}

TEST_CASE("tokenizer: a SentencePiece model libsentencepiece throws on is a FormatError (fuzz regression)") {
  // tests/fuzz/corpus/sentencepiece/regress-empty-piece-throws: a unigram model with an empty
  // piece, on which SentencePieceProcessor::Load throws Darts' own exception type.
  const auto dir = lazyllm::test::scratch("tok_sp_throws");
  std::ifstream in(
      lazyllm::test::test_data() / ".." / "fuzz" / "corpus" / "sentencepiece" / "regress-empty-piece-throws",
      std::ios::binary);
  lazyllm::test::write_file(dir / "bad.model",
                            std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
  CHECK(what_of_format_error(dir / "bad.model").find((dir / "bad.model").string() + ": not a SentencePiece model (") ==
        0);
}
#endif  // LAZYLLM_WITH_SENTENCEPIECE

TEST_CASE("chat: Llama 2 template, system + user") {
  const std::vector<ChatMessage> m = {{"system", "You are a helpful assistant."}, {"user", "What is 2+2?\n"}};
  CHECK(lazyllm::llama2_chat_prompt(m) ==
        "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nWhat is 2+2? [/INST]");
  // As in Meta's chat_completion (and HF's template), the first user message is stripped only
  // after the system block is folded in: whitespace inside the merged text stays.
  const std::vector<ChatMessage> ws = {{"system", " S "}, {"user", "  U  "}};
  CHECK(lazyllm::llama2_chat_prompt(ws) == "<s>[INST] <<SYS>>\n S \n<</SYS>>\n\n  U [/INST]");
}

TEST_CASE("chat: Llama 2 template, user only") {
  const std::vector<ChatMessage> m = {{"user", "Tell me a joke."}};
  CHECK(lazyllm::llama2_chat_prompt(m) == "<s>[INST] Tell me a joke. [/INST]");
}

TEST_CASE("chat: Llama 2 template, multi-turn") {
  const std::vector<ChatMessage> m = {
      {"user", "Hi!"}, {"assistant", " Hello! How can I help? \n"}, {"user", "Name a color."}};
  CHECK(lazyllm::llama2_chat_prompt(m) ==
        "<s>[INST] Hi! [/INST] Hello! How can I help? </s><s>[INST] Name a color. [/INST]");
  const std::vector<ChatMessage> sys = {
      {"system", "Be brief."}, {"user", "Hi!"}, {"assistant", "Hello."}, {"user", "Bye."}};
  CHECK(lazyllm::llama2_chat_prompt(sys) ==
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi! [/INST] Hello. </s><s>[INST] Bye. [/INST]");
  // A finished conversation (ends with the assistant) renders every pair closed.
  const std::vector<ChatMessage> done = {{"user", "Hi!"}, {"assistant", "Hello."}};
  CHECK(lazyllm::llama2_chat_prompt(done) == "<s>[INST] Hi! [/INST] Hello. </s>");
}

TEST_CASE("chat: bad role order is an InvalidArgument") {
  using V = std::vector<ChatMessage>;
  CHECK_THROWS_AS(lazyllm::llama2_chat_prompt(V{}), lazyllm::InvalidArgument);
  CHECK_THROWS_AS(lazyllm::llama2_chat_prompt(V{{"system", "s"}}), lazyllm::InvalidArgument);
  CHECK_THROWS_AS(lazyllm::llama2_chat_prompt(V{{"assistant", "a"}}), lazyllm::InvalidArgument);
  CHECK_THROWS_AS(lazyllm::llama2_chat_prompt(V{{"user", "u"}, {"user", "u"}}), lazyllm::InvalidArgument);
  CHECK_THROWS_AS(lazyllm::llama2_chat_prompt(V{{"user", "u"}, {"system", "s"}}), lazyllm::InvalidArgument);
  CHECK_THROWS_AS(lazyllm::llama2_chat_prompt(V{{"user", "u"}, {"bot", "a"}}), lazyllm::InvalidArgument);
}

TEST_CASE("chat: Llama 2 token form") {
  std::vector<std::filesystem::path> files;
  if (lazyllm::test::have_shared("tokenizer.bin")) files.push_back(lazyllm::test::shared_models() / "tokenizer.bin");
#if LAZYLLM_WITH_SENTENCEPIECE
  if (lazyllm::test::have_shared("tokenizer.model")) files.push_back(lazyllm::test::shared_models() / "tokenizer.model");
#endif
  const std::vector<ChatMessage> m = {
      {"system", "Be brief."}, {"user", "Hi!"}, {"assistant", "Hello."}, {"user", "Name a color."}};
  for (const auto& f : files) {
    CAPTURE(f);
    const Tokenizer tok = lazyllm::load_tokenizer(f);
    const Ids ids = lazyllm::llama2_chat_tokens(tok, m);
    // Each turn is encoded on its own with BOS; EOS closes the completed (user, assistant) pair.
    Ids want = tok.encode("[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi! [/INST] Hello. ", true);
    want.push_back(2);
    const Ids second = tok.encode("[INST] Name a color. [/INST]", true);
    want.insert(want.end(), second.begin(), second.end());
    CHECK(ids == want);
    REQUIRE(ids.size() > 10);
    CHECK(ids.front() == 1);
    CHECK(ids[1] == 518);  // "▁[" (the dummy prefix merged into "[")
    CHECK(std::count(ids.begin(), ids.end(), 1) == 2);
    CHECK(std::count(ids.begin(), ids.end(), 2) == 1);
    const auto eos = std::find(ids.begin(), ids.end(), 2);
    CHECK(tok.decode(Ids(ids.begin(), eos)).ends_with("Hello. "));  // EOS right after the answer (and its space)
    CHECK(*(eos + 1) == 1);
    CHECK(ids.back() != 2);  // the open user turn has no EOS
  }
}
