// SPDX-License-Identifier: MIT
// Hugging Face tokenizer.json (byte-level BPE) and the Llama 3 / ChatML chat formats, against the
// references in tests/data/hf_tokenizer (written by tools/tokenizer/make_fixtures.mjs with HF's
// `tokenizers` 0.23.2 and @huggingface/jinja). The Llama 3 and Qwen3 cases need
// ../shared/models/tokenizers and skip without it; the tiny hand-made tokenizers and the error
// cases need nothing else.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lazyllm/text/chat.hpp"
#include "lazyllm/text/tokenizer.hpp"
#include "test_util.hpp"

#if LAZYLLM_WITH_HF_TOKENIZER

namespace {

using lazyllm::ChatMessage;
using lazyllm::FormatError;
using lazyllm::HfTokenizer;
using Ids = std::vector<std::int32_t>;
using nlohmann::json;
namespace fs = std::filesystem;

fs::path fixtures() { return lazyllm::test::test_data() / "hf_tokenizer"; }
fs::path tokenizers() { return lazyllm::test::shared_models() / "tokenizers"; }

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  REQUIRE_MESSAGE(f, "cannot open " << p.string());
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<json> read_jsonl(const fs::path& p) {
  std::vector<json> v;
  std::ifstream f(p, std::ios::binary);
  REQUIRE_MESSAGE(f, "cannot open " << p.string());
  for (std::string line; std::getline(f, line);) v.push_back(json::parse(line));
  return v;
}

const std::vector<std::string>& fixture_strings() {
  static const std::vector<std::string> v = [] {
    std::vector<std::string> s;
    for (const auto& j : read_jsonl(fixtures() / "strings.jsonl")) s.push_back(j.get<std::string>());
    return s;
  }();
  return v;
}

const json& meta() {
  static const json m = json::parse(read_all(fixtures() / "meta.json"));
  return m;
}

/// True when ../shared/models/tokenizers/<name> exists; otherwise says why the caller skips.
bool have_tokenizer(const std::string& name) {
  if (fs::exists(tokenizers() / name / "tokenizer.json")) return true;
  MESSAGE("SKIPPED: " << (tokenizers() / name / "tokenizer.json").string() << " not found (../shared absent)");
  return false;
}

/// The shared tokenizers, read once per process (a 128k vocabulary takes a moment).
const HfTokenizer& shared_tokenizer(const std::string& name) {
  static std::map<std::string, HfTokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, HfTokenizer(tokenizers() / name / "tokenizer.json")).first;
  return it->second;
}

std::string show(const std::string& s) { return json(s).dump(); }

const char* const kShared[] = {"llama3", "qwen3"};

}  // namespace

TEST_CASE("hf tokenizer: ids equal Hugging Face tokenizers' for every fixture string (Llama 3, Qwen3)") {
  for (const std::string name : kShared) {
    if (!have_tokenizer(name)) continue;
    const HfTokenizer& tok = shared_tokenizer(name);
    const auto& strings = fixture_strings();
    const auto expected = read_jsonl(fixtures() / (name + ".ids.jsonl"));
    REQUIRE(expected.size() == strings.size());
    REQUIRE(strings.size() >= 2000);
    const json& m = meta()["tokenizers_json"][name];
    const Ids prefix = m["prefix"], suffix = m["suffix"];
    int wrong = 0, wrong_special = 0;
    for (std::size_t i = 0; i < strings.size(); ++i) {
      const Ids want = expected[i];
      const Ids got = tok.encode(strings[i], false);
      if (got != want && ++wrong <= 5)
        MESSAGE(name << " line " << i + 1 << " " << show(strings[i]) << "\n  HF:      " << json(want).dump()
                     << "\n  lazyllm: " << json(got).dump());
      // add_bos: what tokenizers adds with add_special_tokens=True.
      Ids with = prefix;
      with.insert(with.end(), want.begin(), want.end());
      with.insert(with.end(), suffix.begin(), suffix.end());
      if (tok.encode(strings[i], true) != with) ++wrong_special;
    }
    CHECK_MESSAGE(wrong == 0, name << ": " << wrong << " of " << strings.size() << " strings encode differently");
    CHECK_MESSAGE(wrong_special == 0, name << ": " << wrong_special << " strings differ with special tokens added");
  }
}

TEST_CASE("hf tokenizer: special-token text parsed by default, plain text with parse_special off") {
  for (const std::string name : kShared) {
    if (!have_tokenizer(name)) continue;
    const HfTokenizer& tok = shared_tokenizer(name);
    const json& plain = meta()["tokenizers_json"][name]["plain"];
    REQUIRE(plain.size() >= 100);
    int wrong = 0;
    for (const auto& [index, ids] : plain.items()) {
      const std::string& s = fixture_strings().at(std::stoul(index));
      const Ids got = tok.encode(s, false, false);
      if (got != ids.get<Ids>() && ++wrong <= 5)
        MESSAGE(name << " " << show(s) << "\n  HF:      " << ids.dump() << "\n  lazyllm: " << json(got).dump());
      for (std::int32_t id : got) CHECK_MESSAGE(!tok.is_special(id), name << " " << show(s));
    }
    CHECK(wrong == 0);
  }
  if (have_tokenizer("llama3")) {
    const HfTokenizer& tok = shared_tokenizer("llama3");
    CHECK(tok.encode("<|eot_id|>", false) == Ids{128009});
    CHECK(tok.encode("a<|eot_id|>b", false) == Ids{64, 128009, 65});
    CHECK(tok.encode("<|eot_id|>", false, false) == Ids{27, 91, 68, 354, 851, 91, 29});
  }
  if (have_tokenizer("qwen3")) {
    const HfTokenizer& tok = shared_tokenizer("qwen3");
    CHECK(tok.encode("<|im_start|>user", false) == Ids{151644, 872});
    CHECK(tok.is_special(151644));
    // <think> is an added token that is not special: matched even with parse_special off.
    CHECK_FALSE(tok.is_special(151667));
    CHECK(tok.encode("<think>", false, false) == Ids{151667});
  }
}

TEST_CASE("hf tokenizer: decode(encode(s)) gives s back (Qwen3: its NFC form), as HF's decode") {
  for (const std::string name : kShared) {
    if (!have_tokenizer(name)) continue;
    const HfTokenizer& tok = shared_tokenizer(name);
    const json& m = meta()["tokenizers_json"][name];
    const json& differs = m["decode"];
    if (std::string(name) == "qwen3") CHECK(differs.size() >= 50);  // NFC changes them
    int wrong = 0;
    for (std::size_t i = 0; i < fixture_strings().size(); ++i) {
      const std::string& s = fixture_strings()[i];
      const std::string key = std::to_string(i);
      const std::string want = differs.contains(key) ? differs[key].get<std::string>() : s;
      const std::string back = tok.decode(tok.encode(s, false), false);
      if (back != want && ++wrong <= 5) MESSAGE(name << " " << show(s) << " -> " << show(back));
      // Streaming: the pieces of the non-special tokens add up to the text without special tokens.
      const Ids ids = tok.encode(s, true);
      std::string streamed;
      std::int32_t prev = -1;
      for (std::int32_t id : ids) streamed += tok.decode(std::exchange(prev, id), id);
      CHECK(streamed == tok.decode(ids, true));
    }
    CHECK(wrong == 0);
    // Id runs that split UTF-8 characters and hold special tokens: HF's decode, with and without
    // skip_special_tokens (U+FFFD for what is not UTF-8, as Rust's from_utf8_lossy).
    for (const json& c : m["decode_ids"]) {
      const Ids ids = c["ids"];
      CHECK_MESSAGE(tok.decode(ids, false) == c["text"].get<std::string>(), json(ids).dump());
      CHECK_MESSAGE(tok.decode(ids, true) == c["text_skip_special"].get<std::string>(), json(ids).dump());
    }
  }
}

TEST_CASE("hf tokenizer: BOS, EOS and the Tokenizer facade") {
  if (have_tokenizer("llama3")) {
    const HfTokenizer& tok = shared_tokenizer("llama3");
    CHECK(tok.encode("Hello world", true) == Ids{128000, 9906, 1917});
    CHECK(tok.encode("Hello world", false) == Ids{9906, 1917});
    CHECK(tok.encode("", true) == Ids{128000});
    CHECK(tok.bos_id() == 128000);
    CHECK(tok.eos_id() == 128009);  // tokenizer_config.json's eos_token <|eot_id|>
    CHECK(tok.vocab_size() == 128256);
    CHECK(tok.token(1917) == "\xC4\xA0world");  // "Ġworld"
    CHECK(tok.piece(1917) == " world");
    CHECK(tok.find("<|eot_id|>") == 128009);
    CHECK(tok.find(" world") == 1917);
    CHECK(tok.find("no such token at all") == -1);

    const lazyllm::Tokenizer t = lazyllm::load_tokenizer(tokenizers() / "llama3" / "tokenizer.json");
    REQUIRE(t.backend<HfTokenizer>() != nullptr);
    CHECK(t.encode("Hello world", true) == Ids{128000, 9906, 1917});
    lazyllm::EncodeOptions plain;
    plain.parse_special = false;
    CHECK(t.encode("<|eot_id|>", plain) == Ids{128000, 27, 91, 68, 354, 851, 91, 29});
    CHECK(t.piece(128000) == "<|begin_of_text|>");
    CHECK(t.piece(9906) == "Hello");
    CHECK(t.find("<|end_of_text|>") == 128001);
    CHECK(t.decode(Ids{128000, 9906, 1917, 128009}) == "Hello world");  // special tokens dropped
    CHECK(t.bos_id() == 128000);
    // Ids past the tokenizer (a model's embedding may be larger) decode to "", as in tokenizers;
    // negative ids are refused.
    CHECK(t.decode(-1, 128256).empty());
    CHECK(t.decode(Ids{9906, 130000, 1917}) == "Hello world");
    CHECK_THROWS_AS(t.decode(-1, -1), lazyllm::InvalidArgument);
  }
  if (have_tokenizer("qwen3")) {
    const HfTokenizer& tok = shared_tokenizer("qwen3");
    CHECK(tok.encode("Hello world", true) == Ids{9707, 1879});  // no BOS
    CHECK(tok.bos_id() == -1);
    CHECK(tok.eos_id() == 151645);  // <|im_end|>
    CHECK(tok.vocab_size() == 151669);
  }
}

TEST_CASE("hf tokenizer: find_tokenizer picks the file of a model directory") {
  const auto dir = lazyllm::test::scratch("hf_find_tokenizer");
  CHECK_THROWS_AS(lazyllm::find_tokenizer(dir), FormatError);
  lazyllm::test::write_file(dir / "tokenizer.bin", "x");
  CHECK(lazyllm::find_tokenizer(dir) == dir / "tokenizer.bin");
  lazyllm::test::write_file(dir / "tokenizer.json", "{}");
  CHECK(lazyllm::find_tokenizer(dir) == dir / "tokenizer.json");
  lazyllm::test::write_file(dir / "tokenizer.model", "x");
  CHECK(lazyllm::find_tokenizer(dir) == dir / "tokenizer.model");
  CHECK(lazyllm::find_tokenizer(dir / "tokenizer.json") == dir / "tokenizer.json");
}

TEST_CASE("hf tokenizer: tiny hand-made tokenizer.json files equal Hugging Face's ids") {
  // Added-token flags (special, lstrip, rstrip, single_word, normalized), GPT-2's regex with a
  // prefix space, Split on a string, legacy "a b" merges, ignore_merges, TemplateProcessing with
  // a suffix, unk_token fused and not, bytes without a token.
  const json tiny = json::parse(read_all(fixtures() / "tiny.json"));
  std::vector<std::string> strings;
  for (const auto& j : read_jsonl(fixtures() / "tiny" / "strings.jsonl")) strings.push_back(j.get<std::string>());
  REQUIRE(strings.size() >= 100);
  REQUIRE(tiny["tokenizers"].size() == 5);
  for (const auto& [name, r] : tiny["tokenizers"].items()) {
    const HfTokenizer tok(fixtures() / "tiny" / (name + ".json"));
    const auto expected = read_jsonl(fixtures() / "tiny" / (name + ".ids.jsonl"));
    REQUIRE(expected.size() == strings.size());
    const Ids prefix = r["prefix"], suffix = r["suffix"];
    int wrong = 0;
    for (std::size_t i = 0; i < strings.size(); ++i) {
      const Ids want = expected[i];
      const Ids got = tok.encode(strings[i], false);
      if (got != want && ++wrong <= 5)
        MESSAGE(name << " " << show(strings[i]) << "\n  HF:      " << json(want).dump()
                     << "\n  lazyllm: " << json(got).dump());
      Ids with = prefix;
      with.insert(with.end(), want.begin(), want.end());
      with.insert(with.end(), suffix.begin(), suffix.end());
      CHECK(tok.encode(strings[i], true) == with);
      const std::string key = std::to_string(i);
      const std::string back = r["decoded"].contains(key) ? r["decoded"][key].get<std::string>() : strings[i];
      CHECK_MESSAGE(tok.decode(got, false) == back, name << " " << show(strings[i]));
    }
    CHECK_MESSAGE(wrong == 0, name << ": " << wrong << " of " << strings.size() << " strings encode differently");
  }
}

TEST_CASE("hf tokenizer: invalid UTF-8 in text is encoded as U+FFFD") {
  const HfTokenizer tok(fixtures() / "tiny" / "gpt2_flags.json");
  CHECK(tok.encode("a\xFF"
                   "b",
                   false) == tok.encode("a\xEF\xBF\xBD"
                                        "b",
                                        false));
  // One U+FFFD per maximal invalid subpart: E2 82 is one (a cut 3-byte sequence), C0 is one.
  CHECK(tok.encode("x\xE2\x82y\xC0z", false) == tok.encode("x\xEF\xBF\xBDy\xEF\xBF\xBDz", false));
  CHECK(lazyllm::detail::hf::utf8_lossy("\xF0\x9F\x98") == "\xEF\xBF\xBD");
  CHECK(lazyllm::detail::hf::utf8_lossy("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  CHECK(lazyllm::detail::hf::utf8_lossy("ok \xC3\xA9") == "ok \xC3\xA9");
}

TEST_CASE("hf tokenizer: NFC's shortcut (text below U+0300 is left as it is) holds for every pair") {
  // append_nfc copies text without a byte >= 0xCC untouched: no pair of code points below U+0300
  // changes under NFC (checked here against utf8proc for all 768 x 768 pairs).
  int changed = 0;
  std::string pair, out;
  for (char32_t a = 1; a < 0x300; ++a)
    for (char32_t b = 1; b < 0x300; ++b) {
      pair.clear();
      lazyllm::detail::hf::append_utf8(pair, a);
      lazyllm::detail::hf::append_utf8(pair, b);
      utf8proc_uint8_t* dst = nullptr;
      const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(pair.data()),
                                  static_cast<utf8proc_ssize_t>(pair.size()), &dst,
                                  static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
      REQUIRE(n > 0);
      if (std::string(reinterpret_cast<char*>(dst), static_cast<std::size_t>(n)) != pair) ++changed;
      std::free(dst);
    }
  CHECK(changed == 0);
  out.clear();
  lazyllm::detail::hf::append_nfc("cafe\xCC\x81", out);
  CHECK(out == "caf\xC3\xA9");
}

TEST_CASE("hf tokenizer: long runs encode (regex stack, O(n log n) merge)") {
  const HfTokenizer tok(fixtures() / "tiny" / "split_template.json");
  for (const std::string unit : {" ", "a", "ab", "1", "\n", "\xE6\x97\xA5"}) {
    std::string s;
    for (int i = 0; i < 200000; ++i) s += unit;
    const Ids ids = tok.encode(s, false);
    CHECK(!ids.empty());
    CHECK(tok.decode(ids, false) == s);
  }
  if (have_tokenizer("llama3")) {
    const HfTokenizer& l3 = shared_tokenizer("llama3");
    for (const std::string unit : {" ", "a", "\n", "\t ", "!"}) {
      std::string s;
      for (int i = 0; i < 300000; ++i) s += unit;
      CHECK(l3.decode(l3.encode(s, false), false) == s);
    }
  }
}

TEST_CASE("hf tokenizer: broken or unsupported tokenizer.json files are refused in one line") {
  const auto dir = lazyllm::test::scratch("hf_bad_tokenizers");
  const json good = json::parse(read_all(fixtures() / "tiny" / "gpt2_flags.json"));
  auto variant = [&](auto&& edit) {
    json j = good;
    edit(j);
    return j.dump();
  };
  struct Case {
    const char* name;
    std::string text;
    const char* expect;  // in what()
  };
  const std::vector<Case> cases = {
      {"not_json", "{\"version\": \"1.0\", \"model\": ", "not valid JSON"},
      {"empty", "", "not valid JSON"},
      {"array", "[1, 2]", "not a tokenizer.json"},
      {"version", variant([](json& j) { j["version"] = "2.0"; }), "version"},
      {"wordpiece", variant([](json& j) { j["model"]["type"] = "WordPiece"; }),
       "model type 'WordPiece' is not supported"},
      {"unigram", variant([](json& j) {
         j["model"] = {{"type", "Unigram"}, {"vocab", json::array()}};
       }),
       "model type 'Unigram'"},
      {"no_model", variant([](json& j) { j.erase("model"); }), "has no \"model\""},
      {"byte_fallback", variant([](json& j) { j["model"]["byte_fallback"] = true; }), "byte_fallback"},
      {"dropout", variant([](json& j) { j["model"]["dropout"] = 0.1; }), "dropout"},
      {"prefix", variant([](json& j) { j["model"]["continuing_subword_prefix"] = "##"; }), "continuing_subword_prefix"},
      {"no_vocab", variant([](json& j) { j["model"].erase("vocab"); }), "no \"vocab\""},
      {"vocab_id", variant([](json& j) { j["model"]["vocab"]["a"] = -3; }), "is not an id"},
      {"vocab_string", variant([](json& j) { j["model"]["vocab"]["a"] = "x"; }), "is not an integer id"},
      {"vocab_sparse", variant([](json& j) { j["model"]["vocab"]["zzz"] = 1 << 20; }), "more than 65536 ids unused"},
      {"vocab_huge", variant([](json& j) { j["model"]["vocab"]["zzz"] = 1LL << 40; }), "is not an id in [0, "},
      {"no_merges", variant([](json& j) { j["model"].erase("merges"); }), "no \"merges\""},
      {"merge_unknown", variant([](json& j) {
         j["model"]["merges"].push_back({"zz", "q"});
       }),
       "not in model.vocab"},
      {"merge_three", variant([](json& j) { j["model"]["merges"] = json::array({"a b c"}); }), "is not two tokens"},
      {"merge_number", variant([](json& j) { j["model"]["merges"] = json::array({7}); }), "model.merges[0]"},
      {"nfkc", variant([](json& j) {
         j["normalizer"] = {{"type", "NFKC"}};
       }),
       "normalizer type 'NFKC'"},
      {"lowercase", variant([](json& j) {
         j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "Lowercase"}}}}};
       }),
       "normalizer type 'Lowercase'"},
      {"metaspace", variant([](json& j) {
         j["pre_tokenizer"] = {{"type", "Metaspace"}};
       }),
       "pre_tokenizer type 'Metaspace'"},
      {"no_byte_level", variant([](json& j) { j["pre_tokenizer"] = nullptr; }), "no ByteLevel step"},
      {"split_removed", variant([](json& j) {
         j["pre_tokenizer"] = {{"type", "Sequence"},
                               {"pretokenizers",
                                {{{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"behavior", "Removed"}},
                                 {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
       }),
       "behavior \"Removed\" is not supported"},
      {"regex_w", variant([](json& j) {
         j["pre_tokenizer"] = {{"type", "Sequence"},
                               {"pretokenizers",
                                {{{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Isolated"}},
                                 {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
       }),
       "the escape \\w is not supported"},
      {"regex_bad", variant([](json& j) {
         j["pre_tokenizer"] = {{"type", "Sequence"},
                               {"pretokenizers",
                                {{{"type", "Split"}, {"pattern", {{"Regex", "(a|b"}}}, {"behavior", "Isolated"}},
                                 {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
       }),
       "does not compile"},
      {"wordpiece_decoder", variant([](json& j) {
         j["decoder"] = {{"type", "WordPiece"}};
       }),
       "decoder type 'WordPiece'"},
      {"no_decoder", variant([](json& j) { j["decoder"] = nullptr; }), "decoder type 'null'"},
      {"roberta", variant([](json& j) {
         j["post_processor"] = {{"type", "RobertaProcessing"}};
       }),
       "post_processor type 'RobertaProcessing'"},
      {"template_unknown", variant([](json& j) {
         j["post_processor"] = {{"type", "TemplateProcessing"},
                                {"single", {{{"SpecialToken", {{"id", "<x>"}, {"type_id", 0}}}}}},
                                {"special_tokens", json::object()}};
       }),
       "is not in special_tokens"},
      {"added_flag", variant([](json& j) { j["added_tokens"][0]["lstrip"] = "yes"; }),
       "added_tokens[0].lstrip is not a boolean"},
      {"added_content", variant([](json& j) { j["added_tokens"][0].erase("content"); }), "has no \"content\""},
  };
  for (const Case& c : cases) {
    const fs::path p = dir / (std::string(c.name) + ".json");
    lazyllm::test::write_file(p, c.text);
    std::string what = "(nothing thrown)";
    try {
      (void)HfTokenizer(p);
    } catch (const FormatError& e) {
      what = e.what();
    }
    CHECK_MESSAGE(what.find(p.string()) == 0, c.name << ": " << what);
    CHECK_MESSAGE(what.find(c.expect) != std::string::npos, c.name << ": " << what);
    CHECK_MESSAGE(what.find('\n') == std::string::npos, c.name << ": " << what);
    // load_tokenizer() says the same.
    CHECK_THROWS_AS(lazyllm::load_tokenizer(p), FormatError);
  }
  // A broken tokenizer_config.json beside a good tokenizer.json is named too.
  const auto cfg = lazyllm::test::scratch("hf_bad_config");
  lazyllm::test::write_file(cfg / "tokenizer.json", good.dump());
  lazyllm::test::write_file(cfg / "tokenizer_config.json", "{\"eos_token\": \"<|no such token|>\"}");
  CHECK_THROWS_WITH_AS(HfTokenizer(cfg / "tokenizer.json"), doctest::Contains("tokenizer_config.json"), FormatError);
  CHECK_THROWS_AS(HfTokenizer(cfg / "missing.json"), FormatError);
}

// ------------------------------------------------------------------------------------- chats

namespace {

std::vector<ChatMessage> messages_of(const json& j) {
  std::vector<ChatMessage> m;
  for (const auto& e : j) m.push_back({e["role"], e["content"]});
  return m;
}

}  // namespace

TEST_CASE("chat: Llama 3 and Qwen3 renderings equal their chat_template's (add_generation_prompt both ways)") {
  const json cases = json::parse(read_all(fixtures() / "chat.json"));
  REQUIRE(cases.size() >= 40);
  std::map<std::string, bool> have;
  for (const std::string name : kShared) have[name] = have_tokenizer(name);
  int rendered = 0;
  for (const json& c : cases) {
    const std::string name = c["template"];
    const auto messages = messages_of(c["messages"]);
    const bool gen = c["add_generation_prompt"];
    const std::string want = c["text"];
    std::string got;
    if (name == "llama3") {
      got = lazyllm::render_llama3_chat(messages, gen);
    } else {
      lazyllm::ChatmlStyle style;
      style.reasoning = true;
      if (c.contains("enable_thinking")) style.enable_thinking = c["enable_thinking"].get<bool>();
      got = lazyllm::render_chatml(messages, gen, style);
    }
    CHECK_MESSAGE(got == want, name << " " << c["messages"].dump() << " gen=" << gen << "\n  HF:      " << show(want)
                                    << "\n  lazyllm: " << show(got));
    ++rendered;
    // From the model directory: the detected template, and the ids as HF tokenizes the text.
    if (!have.at(name)) continue;
    const auto t = lazyllm::read_chat_template(tokenizers() / name);
    REQUIRE(t.has_value());
    lazyllm::ChatTemplate tt = *t;
    if (c.contains("enable_thinking")) tt.chatml.enable_thinking = c["enable_thinking"].get<bool>();
    CHECK(lazyllm::render_chat(tt, messages, gen) == want);
    static std::map<std::string, lazyllm::Tokenizer> toks;
    if (!toks.count(name)) toks.emplace(name, lazyllm::load_tokenizer(tokenizers() / name / "tokenizer.json"));
    CHECK(lazyllm::chat_tokens(toks.at(name), tt, messages, gen) == c["ids"].get<Ids>());
  }
  CHECK(rendered == static_cast<int>(cases.size()));
}

TEST_CASE("chat: render_chat_turn continues a conversation after the model's answer") {
  // HF's rendering of [..., assistant A, user U] == ours of [...] + A + stop token + the turn.
  const json cases = json::parse(read_all(fixtures() / "chat.json"));
  int checked = 0;
  for (const json& c : cases) {
    const auto messages = messages_of(c["messages"]);
    const std::size_t n = messages.size();
    if (n < 3 || messages[n - 2].role != "assistant" || messages[n - 1].role == "assistant") continue;
    bool thinks = false;
    for (const auto& m : messages) thinks |= m.content.find("think>") != std::string::npos;
    // Qwen3 drops earlier answers' reasoning (also enable_thinking=false's empty block): not a
    // continuation of what the model saw.
    if (thinks || c.contains("enable_thinking")) continue;
    lazyllm::ChatTemplate t;
    std::string stop, answer = messages[n - 2].content;
    if (c["template"] == "llama3") {
      t.format = lazyllm::ChatFormat::llama3;
      stop = "<|eot_id|>";
      answer = std::string(lazyllm::detail::python_strip(answer));
    } else {
      t.format = lazyllm::ChatFormat::chatml;
      t.chatml.reasoning = true;
      stop = "<|im_end|>";
    }
    const std::vector<ChatMessage> before(messages.begin(), messages.end() - 2);
    const bool gen = c["add_generation_prompt"];
    CHECK_MESSAGE(
        lazyllm::render_chat(t, before, true) + answer + stop + lazyllm::render_chat_turn(t, messages[n - 1], gen) ==
            c["text"].get<std::string>(),
        c["messages"].dump());
    ++checked;
  }
  CHECK(checked >= 8);
  lazyllm::ChatTemplate l2;
  CHECK_THROWS_AS(lazyllm::render_chat_turn(l2, {"user", "x"}), lazyllm::InvalidArgument);
}

TEST_CASE("chat: read_chat_template tells the format from tokenizer_config.json") {
  if (have_tokenizer("llama3")) {
    const auto t = lazyllm::read_chat_template(tokenizers() / "llama3");
    REQUIRE(t.has_value());
    CHECK(t->format == lazyllm::ChatFormat::llama3);
    CHECK(t->bos_token == "<|begin_of_text|>");
    CHECK(t->stop_tokens == std::vector<std::string>{"<|eot_id|>"});
  }
  if (have_tokenizer("qwen3")) {
    const auto t = lazyllm::read_chat_template(tokenizers() / "qwen3" / "tokenizer_config.json");
    REQUIRE(t.has_value());
    CHECK(t->format == lazyllm::ChatFormat::chatml);
    CHECK(t->chatml.reasoning);
    CHECK(t->chatml.default_system.empty());
    CHECK(t->stop_tokens == std::vector<std::string>{"<|im_end|>"});
  }
  using lazyllm::classify_chat_template;
  // Qwen2.5's shape: a literal system turn for conversations without one.
  const auto q25 = classify_chat_template(
      "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + "
      "'<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a "
      "helpful assistant.<|im_end|>\\n' }}{%- endif %}{%- for message in messages %}{{'<|im_start|>' + message.role "
      "+ '\\n' + message.content + '<|im_end|>\\n'}}{%- endfor %}",
      "t");
  CHECK(q25.format == lazyllm::ChatFormat::chatml);
  CHECK_FALSE(q25.chatml.reasoning);
  CHECK(q25.chatml.default_system == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  const std::vector<ChatMessage> conv = {{"user", "Hi"}};
  CHECK(lazyllm::render_chat(q25, conv) ==
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
        "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  CHECK(classify_chat_template("{{ bos_token }}[INST] <<SYS>>\\n{{ system }}", "t").format ==
        lazyllm::ChatFormat::llama2);
  CHECK_THROWS_WITH_AS(classify_chat_template("{{ '[INST] ' + message['content'] + ' [/INST]' }}", "t"),
                       doctest::Contains("Mistral"), FormatError);
  CHECK_THROWS_WITH_AS(
      classify_chat_template("<|start_header_id|><|end_header_id|><|eot_id|>Cutting Knowledge Date", "t"),
      doctest::Contains("Llama 3.1"), FormatError);
  CHECK_THROWS_WITH_AS(classify_chat_template("{{ messages }}", "cfg.json"),
                       doctest::Contains("cfg.json: chat template not recognised"), FormatError);
  // Directories: none declared -> nullopt; a chat_template.jinja file; a list of named templates.
  const auto dir = lazyllm::test::scratch("chat_template_dirs");
  CHECK_FALSE(lazyllm::read_chat_template(dir).has_value());
  lazyllm::test::write_file(dir / "tokenizer_config.json", "{\"eos_token\": \"<|im_end|>\"}");
  CHECK_FALSE(lazyllm::read_chat_template(dir).has_value());
  lazyllm::test::write_file(dir / "chat_template.jinja", "{{ '<|im_start|>' + m + '<|im_end|>' }}");
  CHECK(lazyllm::read_chat_template(dir)->format == lazyllm::ChatFormat::chatml);
  lazyllm::test::write_file(dir / "tokenizer_config.json",
                            R"({"chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", )"
                            R"("template": "<|start_header_id|><|end_header_id|><|eot_id|>"}], "bos_token": "<B>"})");
  const auto named = lazyllm::read_chat_template(dir);
  CHECK(named->format == lazyllm::ChatFormat::llama3);
  CHECK(named->bos_token == "<B>");
  lazyllm::test::write_file(dir / "tokenizer_config.json", "{\"chat_template\": 7}");
  CHECK_THROWS_AS(lazyllm::read_chat_template(dir), FormatError);
  lazyllm::test::write_file(dir / "tokenizer_config.json", "{broken");
  CHECK_THROWS_AS(lazyllm::read_chat_template(dir), FormatError);
}

TEST_CASE("chat: Llama 3 trims as Python's str.strip; ChatML refuses unknown roles") {
  const std::vector<ChatMessage> m = {{"user", "\x1c\xC2\x85 x \xE3\x80\x80"}};  // U+001C, U+0085, U+3000
  CHECK(lazyllm::render_llama3_chat(m, false) ==
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>");
  const std::vector<ChatMessage> tool = {{"user", "a"}, {"tool", "b"}};
  CHECK_THROWS_AS(lazyllm::render_chatml(tool, true), lazyllm::InvalidArgument);
  CHECK_THROWS_AS(lazyllm::render_chatml({}, true), lazyllm::InvalidArgument);
  CHECK(lazyllm::render_llama3_chat({}, true) == "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

#else

TEST_CASE("hf tokenizer: skipped") {
  MESSAGE("SKIPPED: lazyllm was built without tokenizer.json support (pkg-config, libpcre2-dev, libutf8proc-dev)");
}

#endif
