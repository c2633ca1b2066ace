// SPDX-License-Identifier: MIT
// The synthetic task generator (lazyllm/eval/task.hpp), the LongBench metrics and the dataset table.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "lazyllm/eval/datasets.hpp"
#include "lazyllm/eval/metrics.hpp"
#include "lazyllm/eval/record.hpp"
#include "lazyllm/eval/task.hpp"
#include "lazyllm/text/tokenizer.hpp"
#include "test_util.hpp"

namespace {

using namespace lazyllm::eval;

// ------------------------------------------------------------------ independent task parsing

struct ParsedDoc {
  int number = 0;
  std::string name;
  std::vector<std::string> sentences;  // "Mara Keller lives in Oslo" (no final '.')
};

/// Splits a context into its documents by the "Document N: NAME\n...\n\n" format, written from
/// the format's description (not from the generator's code).
std::vector<ParsedDoc> parse_context(const std::string& ctx) {
  std::vector<ParsedDoc> docs;
  std::size_t pos = 0;
  while (pos < ctx.size()) {
    const std::size_t end = ctx.find("\n\n", pos);
    REQUIRE(end != std::string::npos);
    const std::string block = ctx.substr(pos, end - pos);
    pos = end + 2;
    const std::size_t nl = block.find('\n');
    REQUIRE(nl != std::string::npos);
    const std::string title = block.substr(0, nl);
    REQUIRE(title.rfind("Document ", 0) == 0);
    const std::size_t colon = title.find(": ");
    REQUIRE(colon != std::string::npos);
    ParsedDoc d;
    d.number = std::stoi(title.substr(9, colon - 9));
    d.name = title.substr(colon + 2);
    std::string body = block.substr(nl + 1);
    std::size_t s = 0;
    while (s < body.size()) {
      std::size_t dot = body.find(". ", s);
      if (dot == std::string::npos) dot = body.size() - 1;  // the last sentence ends in '.'
      d.sentences.push_back(body.substr(s, dot - s));
      s = dot + 2;
    }
    docs.push_back(std::move(d));
  }
  return docs;
}

/// The answer to `question` read off the documents by string matching alone.
std::string answer_from_docs(const std::vector<ParsedDoc>& docs, const std::string& question) {
  auto doc_of = [&](const std::string& name) -> const ParsedDoc* {
    for (const auto& d : docs)
      if (d.name == name) return &d;
    return nullptr;
  };
  auto fact = [&](const ParsedDoc& d, const std::string& prefix) -> std::string {
    for (const auto& s : d.sentences)
      if (s.rfind(prefix, 0) == 0) return s.substr(prefix.size());
    return "<missing>";
  };
  auto strip_article = [](std::string v) {
    for (const char* a : {"a ", "an "})
      if (v.rfind(a, 0) == 0) return v.substr(std::string(a).size());
    return v;
  };
  // What is asked about whom: (subject phrase, attribute key).
  struct Pattern {
    std::string before, after, key;
  };
  const std::vector<Pattern> patterns = {
      {"Where does ", " live?", "city"},          {"What is the job of ", "?", "job"},
      {"What is the favourite colour of ", "?", "colour"}, {"In which year was ", " born?", "year"},
      {"What is the pet of ", "?", "pet"},        {"Who is ", "'s friend?", "friend"},
      {"What is ", "'s favourite colour?", "colour"}, {"What is ", "'s job?", "job"},
      {"What is ", "'s pet?", "pet"}};
  for (const auto& p : patterns) {
    if (question.rfind(p.before, 0) != 0 || question.size() < p.before.size() + p.after.size() ||
        question.compare(question.size() - p.after.size(), p.after.size(), p.after) != 0)
      continue;
    std::string who = question.substr(p.before.size(), question.size() - p.before.size() - p.after.size());
    const ParsedDoc* d = nullptr;
    if (who.rfind("the friend of ", 0) == 0) {
      const ParsedDoc* s = doc_of(who.substr(14));
      REQUIRE_MESSAGE(s != nullptr, "no document about " << who.substr(14));
      d = doc_of(fact(*s, s->name + "'s friend is "));
      REQUIRE_MESSAGE(d != nullptr, "no document about the friend of " << who.substr(14));
    } else {
      d = doc_of(who);
    }
    if (d == nullptr) continue;  // e.g. "What is the job of X?" matched "What is X's ..." wrongly
    const std::string& n = d->name;
    if (p.key == "city") return fact(*d, n + " lives in ");
    if (p.key == "job") return strip_article(fact(*d, n + " works as "));
    if (p.key == "colour") return fact(*d, n + "'s favourite colour is ");
    if (p.key == "year") return fact(*d, n + " was born in ");
    if (p.key == "pet") return strip_article(fact(*d, n + "'s pet is "));
    return fact(*d, n + "'s friend is ");
  }
  FAIL("question not understood: " << question);
  return {};
}

std::int64_t count_words(const std::string& s) {
  std::istringstream is(s);
  std::int64_t n = 0;
  for (std::string w; is >> w;) ++n;
  return n;
}

}  // namespace

TEST_CASE("task: the same seed gives identical records, different seeds differ") {
  for (Variant v : {Variant::Single, Variant::Twohop, Variant::Mixed}) {
    const TaskGenerator a({7, 400, v}), b({7, 400, v}), c({8, 400, v});
    int differ = 0;
    for (std::uint64_t i = 0; i < 20; ++i) {
      const auto ja = to_json(a.example(i), true).dump();
      CHECK(ja == to_json(b.example(i), true).dump());
      differ += ja != to_json(c.example(i), true).dump();
    }
    CHECK(differ == 20);
  }
  // Examples are independent of how many are generated: index i is the same in any run.
  const TaskGenerator g({3, 300, Variant::Mixed});
  CHECK(to_json(g.example(5)).dump() == to_json(TaskGenerator({3, 300, Variant::Mixed}).example(5)).dump());
  // Different indices differ.
  CHECK(g.example(0).context != g.example(1).context);
}

TEST_CASE("task: records have LongBench's fields, and the answer is in the documents") {
  for (Variant v : {Variant::Single, Variant::Twohop, Variant::Mixed}) {
    const TaskGenerator gen({11, 600, v});
    int twohops = 0;
    for (std::uint64_t i = 0; i < 60; ++i) {
      const TaskExample ex = gen.example(i);
      const auto j = to_json(ex, true);
      for (const char* k : {"input", "context", "answers", "length", "dataset", "_id", "prompt"})
        CHECK_MESSAGE(j.contains(k), "missing field " << k);
      CHECK(j["answers"].is_array());
      CHECK(j["length"].is_number_integer());
      CHECK(j["prompt"].get<std::string>() == ex.context + "Question: " + ex.input + "\nAnswer:");
      REQUIRE(ex.answers.size() == 1);
      CHECK(!ex.answers[0].empty());

      const auto docs = parse_context(ex.context);
      REQUIRE(int(docs.size()) == ex.n_docs);
      std::set<std::string> names;
      for (std::size_t k = 0; k < docs.size(); ++k) {
        CHECK(docs[k].number == int(k) + 1);
        CHECK(docs[k].sentences.size() == 6);
        names.insert(docs[k].name);
      }
      CHECK(names.size() == docs.size());  // entity names unique within an example
      // The answer, read off the documents independently, is the recorded one.
      CHECK_MESSAGE(answer_from_docs(docs, ex.input) == ex.answers[0], ex.input);
      // It occurs in the answer document; the questioned entity has a document.
      const ParsedDoc& ad = docs[std::size_t(ex.answer_doc)];
      std::string ad_text;
      for (const auto& s : ad.sentences) ad_text += s + ". ";
      CHECK(ad_text.find(ex.answers[0]) != std::string::npos);
      CHECK(ex.input.find(docs[std::size_t(ex.subject_doc)].name) != std::string::npos);
      if (ex.dataset == kDatasetTwohop) {
        ++twohops;
        CHECK(ex.input.find("the friend of") != std::string::npos);
        CHECK(ex.subject_doc != ex.answer_doc);  // needs two documents
        const std::string subj = docs[std::size_t(ex.subject_doc)].name;
        bool names_friend = false;
        for (const auto& s : docs[std::size_t(ex.subject_doc)].sentences)
          names_friend |= s == subj + "'s friend is " + ad.name;
        CHECK(names_friend);
      } else {
        CHECK(ex.dataset == kDatasetSingle);
        CHECK(ex.subject_doc == ex.answer_doc);
      }
    }
    if (v == Variant::Single) CHECK(twohops == 0);
    if (v == Variant::Twohop) CHECK(twohops == 60);
    if (v == Variant::Mixed) CHECK((twohops > 15 && twohops < 45));  // ~30 of 60
  }
}

TEST_CASE("task: practice questions (training) are answered right and never give the answer away") {
  for (Variant v : {Variant::Single, Variant::Twohop}) {
    TaskOptions o{21, 700, v};
    const TaskGenerator plain(o);
    o.questions = 8;
    const TaskGenerator practice(o);
    for (std::uint64_t i = 0; i < 40; ++i) {
      const TaskExample a = plain.example(i), b = practice.example(i);
      // The option adds turns and changes nothing else.
      CHECK(a.practice.empty());
      CHECK(a.training_prompt() == a.prompt());
      CHECK(to_json(a, true).dump() == to_json(plain.example(i), true).dump());
      CHECK(!to_json(a, true).contains("training_segments"));
      CHECK(b.context == a.context);
      CHECK(b.input == a.input);
      CHECK(b.answers == a.answers);
      CHECK(b.prompt() == a.prompt());
      REQUIRE(b.practice.size() == 7);
      std::set<std::string> asked;
      for (const auto& t : b.practice) CHECK_MESSAGE(asked.insert(t.input).second, "asked twice: " << t.input);
      const auto docs = parse_context(b.context);
      const std::string answer_name = docs[std::size_t(b.answer_doc)].name;
      const std::string subject_name = docs[std::size_t(b.subject_doc)].name;
      std::string turns;
      for (const auto& t : b.practice) {
        CHECK_MESSAGE(answer_from_docs(docs, t.input) == t.answer, t.input);
        CHECK(t.input != b.input);
        // Values of different attributes never coincide, so this is "the questioned fact".
        CHECK_FALSE((t.input.find(answer_name) != std::string::npos && t.answer == b.answers[0]));
        if (b.dataset == kDatasetTwohop) CHECK(t.input != "Who is " + subject_name + "'s friend?");  // half the chain
        turns += "Question: " + t.input + "\nAnswer: " + t.answer + "\n\n";
      }
      CHECK(b.training_prompt() == b.context + turns + "Question: " + b.input + "\nAnswer:");
      // The segments spell the training text; the supervised ones are the answers.
      const auto j = to_json(b, true);
      REQUIRE(j.contains("training_segments"));
      std::string text;
      int answers = 0;
      for (const auto& seg : j["training_segments"]) {
        text += seg["text"].get<std::string>();
        const std::string kind = seg["kind"];
        answers += kind == "practice_answer" || kind == "answer";
      }
      CHECK(text == b.training_prompt() + " " + b.answers[0]);
      CHECK(answers == 8);
      CHECK(j["training_segments"].back()["kind"] == "answer");
      CHECK(j["prompt"] == b.prompt());
    }
  }
  // A one-document context has 5 facts besides the asked one: that many turns, no repeats.
  const TaskExample one = TaskGenerator({5, 60, Variant::Single, 20}).example(0);
  CHECK(one.n_docs == 1);
  CHECK(one.practice.size() == 5);
  CHECK_THROWS_AS(TaskGenerator({1, 100, Variant::Single, 0}), lazyllm::InvalidArgument);
  CHECK_THROWS_AS(TaskGenerator({1, 100, Variant::Single, kMaxQuestions + 1}), lazyllm::InvalidArgument);
}

TEST_CASE("task: the answer document's position spreads over the documents") {
  const TaskGenerator gen({2, 800, Variant::Single});
  double rel_sum = 0;
  int first = 0, last = 0, n = 200;
  for (int i = 0; i < n; ++i) {
    const auto ex = gen.example(std::uint64_t(i));
    REQUIRE(ex.n_docs >= 10);
    rel_sum += (ex.answer_doc + 0.5) / ex.n_docs;
    first += ex.answer_doc == 0;
    last += ex.answer_doc == ex.n_docs - 1;
  }
  // Uniform: mean relative position 0.5 (sd of the mean ~0.02 for 200 draws), ends both reached.
  CHECK(rel_sum / n == doctest::Approx(0.5).epsilon(0.2));
  CHECK(first > 0);
  CHECK(last > 0);
}

TEST_CASE("task: the answer position range (training) places the evidence documents") {
  // The default range is the evaluation format, unchanged.
  TaskOptions whole{4, 800, Variant::Mixed};
  whole.position_lo = 0.0;
  whole.position_hi = 1.0;
  const TaskGenerator def({4, 800, Variant::Mixed}), explicit_whole(whole);
  for (std::uint64_t i = 0; i < 10; ++i)
    CHECK(to_json(def.example(i), true).dump() == to_json(explicit_whole.example(i), true).dump());
  for (Variant v : {Variant::Single, Variant::Twohop}) {
    CAPTURE(int(v));
    TaskOptions far{5, 800, v}, near{5, 800, v};
    far.position_hi = 0.2;
    near.position_lo = 0.8;
    const TaskGenerator gf(far), gn(near);
    for (std::uint64_t i = 0; i < 100; ++i) {
      const auto f = gf.example(i), n = gn.example(i);
      REQUIRE(f.n_docs >= 10);
      CHECK(f.subject_doc < 0.2 * f.n_docs);
      CHECK(n.subject_doc >= int(0.8 * n.n_docs));
      if (v == Variant::Twohop) {  // the friend's document too (it skips the subject's slot)
        CHECK(f.answer_doc < 0.2 * (f.n_docs - 1) + 1);
        CHECK(n.answer_doc >= int(0.8 * (n.n_docs - 1)));
      }
      CHECK(f.context.find(f.answers[0]) != std::string::npos);
    }
  }
  for (auto [lo, hi] : {std::pair{0.5, 0.5}, std::pair{-0.1, 0.5}, std::pair{0.2, 1.5}, std::pair{0.6, 0.4}}) {
    TaskOptions bad{1, 400, Variant::Single};
    bad.position_lo = lo;
    bad.position_hi = hi;
    CHECK_THROWS_AS(TaskGenerator{bad}, lazyllm::InvalidArgument);
  }
}

/// Splits a context into its documents' text and its filler notes ("Note: ..." paragraphs).
std::pair<std::string, std::vector<std::string>> split_notes(const std::string& ctx) {
  std::string docs;
  std::vector<std::string> notes;
  for (std::size_t pos = 0; pos < ctx.size();) {
    const std::size_t end = ctx.find("\n\n", pos);
    REQUIRE(end != std::string::npos);
    const std::string block = ctx.substr(pos, end + 2 - pos);
    (block.rfind("Note: ", 0) == 0 ? notes.push_back(block), void() : void(docs += block));
    pos = end + 2;
  }
  return {docs, notes};
}

TEST_CASE("task: filler notes take the place of distractors, state no fact, and leave the question as it was") {
  // Every word a question or answer can use, lower-cased: no note may contain one.
  std::set<std::string> fact_words;
  for (std::string w : vocabulary_words()) {
    std::transform(w.begin(), w.end(), w.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    fact_words.insert(w);
  }
  for (Variant v : {Variant::Single, Variant::Twohop}) {
    CAPTURE(int(v));
    TaskOptions o{31, 900, v};
    const TaskGenerator plain(o);
    o.filler = 0.6;
    const TaskGenerator filled(o), again(o);
    int note_first = 0, note_last = 0;
    for (std::uint64_t i = 0; i < 40; ++i) {
      const TaskExample a = plain.example(i), b = filled.example(i);
      CHECK(to_json(b, true).dump() == to_json(again.example(i), true).dump());  // deterministic
      CHECK(b.input == a.input);
      CHECK(b.answers == a.answers);
      CHECK(b.length == count_words(b.prompt()));
      CHECK(b.length <= 900);
      const auto [doc_text, notes] = split_notes(b.context);
      REQUIRE(!notes.empty());
      const auto docs = parse_context(doc_text);
      CHECK(int(docs.size()) == b.n_docs);
      CHECK(b.n_docs < a.n_docs);  // distractors gave way
      CHECK_MESSAGE(answer_from_docs(docs, b.input) == b.answers[0], b.input);
      std::int64_t note_words = 0;
      for (const auto& n : notes) {
        note_words += count_words(n);
        std::istringstream is(n.substr(6));
        for (std::string w; is >> w;) {
          w.erase(std::remove_if(w.begin(), w.end(), [](unsigned char c) { return !std::isalnum(c); }), w.end());
          std::transform(w.begin(), w.end(), w.begin(), [](unsigned char c) { return char(std::tolower(c)); });
          CHECK_MESSAGE(fact_words.count(w) == 0, "a note uses the fact word '" << w << "'");
        }
      }
      // About 60 % of the target length is notes: whole notes up to the budget (a note is < 80 words).
      CHECK(note_words <= 540);
      CHECK(note_words > 540 - 80);
      note_first += b.context.rfind("Note: ", 0) == 0;
      note_last += b.context.rfind("Note: ") > b.context.rfind("Document ");
    }
    CHECK(note_first > 0);  // notes go anywhere, before the first document and after the last
    CHECK(note_last > 0);
  }
  // filler 0 is the generator without filler, byte for byte.
  TaskOptions zero{4, 800, Variant::Mixed};
  zero.filler = 0.0;
  const TaskGenerator def({4, 800, Variant::Mixed}), explicit_zero(zero);
  for (std::uint64_t i = 0; i < 10; ++i)
    CHECK(to_json(def.example(i), true).dump() == to_json(explicit_zero.example(i), true).dump());
  for (double bad : {-0.1, 0.96, 1.0}) {
    TaskOptions b{1, 400, Variant::Single};
    b.filler = bad;
    CHECK_THROWS_AS(TaskGenerator{b}, lazyllm::InvalidArgument);
  }
}

TEST_CASE("task: length in words without a tokenizer") {
  for (std::int64_t target : {200, 1000, 4000}) {
    const TaskGenerator gen({4, target, Variant::Mixed});
    for (std::uint64_t i = 0; i < 10; ++i) {
      const auto ex = gen.example(i);
      CHECK(ex.length == count_words(ex.prompt()));  // independent count
      // Documents are ~36 words: the prompt is within one document of the target.
      CHECK(ex.length <= target);
      CHECK(ex.length > target - 45);
    }
  }
}

TEST_CASE("task: length in tokens with a tokenizer") {
  std::vector<std::filesystem::path> toks = {lazyllm::test::test_data() / "prompts" / "tok512.bin"};
  if (lazyllm::test::have_shared("tokenizer.bin")) toks.push_back(lazyllm::test::shared_models() / "tokenizer.bin");
#if LAZYLLM_WITH_SENTENCEPIECE
  if (lazyllm::test::have_shared("tokenizer.model")) toks.push_back(lazyllm::test::shared_models() / "tokenizer.model");
#endif
  for (const auto& path : toks) {
    CAPTURE(path.string());
    const lazyllm::Tokenizer tok = lazyllm::load_tokenizer(path);
    for (std::int64_t target : {512, 2048}) {
      const TaskGenerator gen({9, target, Variant::Mixed}, token_counter(tok));
      for (std::uint64_t i = 0; i < 4; ++i) {
        const auto ex = gen.example(i);
        // The recorded length is the prompt's token count with BOS, counted here directly.
        CHECK(ex.length == std::int64_t(tok.encode(ex.prompt(), true).size()));
        // Slack: at most two documents' tokens short of the target, never over it.
        const auto docs = parse_context(ex.context);
        const std::int64_t doc_tokens = std::int64_t(tok.encode(ex.context.substr(0, ex.context.find("\n\n") + 2), false).size());
        CHECK(ex.length <= target);
        CHECK(ex.length > target - 2 * doc_tokens - 4);
        CHECK(int(docs.size()) == ex.n_docs);
      }
    }
  }
}

TEST_CASE("task: the vocabulary lists are as large as the spec asks") {
  CHECK(kNameCount >= 3600);
  const auto words = vocabulary_words();
  CHECK(words.size() >= 60 + 60 + 40 + 30 + 20 + 60 + 25);
  // No word is both a name and a value (a question would be ambiguous to a reader).
  std::set<std::string> seen;
  for (const auto& w : words) CHECK_MESSAGE(seen.insert(w).second, "duplicate word " << w);
}

// ------------------------------------------------------------------ metrics (hand-computed)

TEST_CASE("metrics: normalisation as LongBench does it") {
  CHECK(normalize_answer("The  Cat, sat!") == "cat sat");
  CHECK(normalize_answer("  An apple a day\n") == "apple day");
  CHECK(normalize_answer("Theatre") == "theatre");  // articles only as whole words
  CHECK(normalize_answer("U.S.A.") == "usa");
  CHECK(normalize_answer("") == "");
}

TEST_CASE("metrics: QA F1 and exact match") {
  // "cat sat" vs "cat sat down": 2 shared, P = 1, R = 2/3, F1 = 0.8.
  CHECK(qa_f1("the cat sat", "a cat sat down") == doctest::Approx(0.8));
  CHECK(qa_f1("Oslo", "oslo.") == doctest::Approx(1.0));
  CHECK(qa_f1("Paris", "Oslo") == 0.0);
  CHECK(qa_f1("", "Oslo") == 0.0);
  // Bag of words with counts: "a a b" vs "a b b" -> shared {a, b} = 2, P = R = 2/3.
  CHECK(qa_f1("x x y", "x y y") == doctest::Approx(2.0 / 3.0));
  CHECK(exact_match("The Oslo!", "oslo") == 1.0);
  CHECK(exact_match("Oslo city", "Oslo") == 0.0);
  CHECK(starts_with_answer("Oslo. Bergen", "oslo") == 1.0);                // right, but did not stop
  CHECK(starts_with_answer("the Ivo Adler, friend", "Ivo Adler") == 1.0);  // articles dropped
  CHECK(starts_with_answer("Ivo", "Ivo Adler") == 0.0);                    // shorter than the answer
  CHECK(starts_with_answer("Bergen, Oslo", "Oslo") == 0.0);                // the answer is not first
  CHECK(starts_with_answer("Oslo", "") == 0.0);                            // no truth words
  CHECK(starts_with_answer("", "Oslo") == 0.0);
  // Best over answers.
  CHECK(best_over(qa_f1, "green", {"red", "green"}) == 1.0);
  CHECK(best_over(qa_f1, "cat sat", {"dog", "cat sat down"}) == doctest::Approx(0.8));
}

TEST_CASE("metrics: Rouge-L") {
  // LCS of "the cat sat on the mat" / "the cat lay on the mat" = 5 (the cat on the mat): P = R = 5/6.
  CHECK(rouge_l("the cat sat on the mat", "the cat lay on the mat") == doctest::Approx(5.0 / 6.0));
  // LCS("a b c d", "b d e") = 2: P = 2/4, R = 2/3, F = 2 * 0.5 * 0.667 / 1.1667 = 0.5714.
  CHECK(rouge_l("a b c d", "b d e") == doctest::Approx(4.0 / 7.0));
  CHECK(rouge_l("Hello, World!", "hello world") == doctest::Approx(1.0));
  CHECK(rouge_l("x", "y") == 0.0);
  CHECK(lcs_length({"a", "b", "c", "b", "d", "a", "b"}, {"b", "d", "c", "a", "b", "a"}) == 4);
  CHECK(lcs_length(std::string_view("ABCBDAB"), std::string_view("BDCABA")) == 4);  // characters
}

TEST_CASE("metrics: code similarity as LongBench (fuzzywuzzy ratio with python-Levenshtein)") {
  // round(100 * 2 * LCS / (|a| + |b|)) / 100, by hand:
  CHECK(code_sim_score("return x + 1", "return x + 1") == 1.0);
  CHECK(code_sim_score("abc", "abd") == doctest::Approx(0.67));            // LCS 2: 4/6 = 66.7 -> 67
  CHECK(code_sim_score("kitten", "sitting") == doctest::Approx(0.62));     // LCS 4 (ittn): 8/13 = 61.5 -> 62
  CHECK(code_sim_score("abbbbbbb", "accccccc") == doctest::Approx(0.12));  // 2/16 = 12.5 -> 12 (half to even)
  CHECK(code_sim_score("x", "y") == 0.0);
  // The line: leading newlines dropped, lines with `, # or // skipped, indentation kept.
  CHECK(code_sim_score("\n\n    foo(1)\nbar()", "    foo(1)") == 1.0);
  CHECK(code_sim_score("# set up\n// again\n```\nfoo(1)", "foo(1)") == 1.0);
  CHECK(code_sim_score("    foo(1)", "foo(1)") == doctest::Approx(0.75));  // indentation counts: 12/16
  // No qualifying line, an empty first qualifying line, or an empty answer: 0.
  CHECK(code_sim_score("# only a comment", "foo") == 0.0);
  CHECK(code_sim_score("# c\n\nfoo", "foo") == 0.0);
  CHECK(code_sim_score("", "foo") == 0.0);
  CHECK(code_sim_score("foo", "") == 0.0);
}

TEST_CASE("metrics: classification, passage count, retrieval") {
  const std::vector<std::string> classes = {"city", "capital city", "country"};
  CHECK(classification_score("country", "country", classes) == 1.0);
  CHECK(classification_score("country or city", "country", classes) == doctest::Approx(0.5));
  // "city" is part of the true class "capital city": not counted against it.
  CHECK(classification_score("capital city", "capital city", classes) == 1.0);
  // The other way round it is: matched {city, capital city}, true "city" -> 1/2.
  CHECK(classification_score("capital city", "city", classes) == doctest::Approx(0.5));
  CHECK(classification_score("river", "city", classes) == 0.0);
  CHECK(count_score("There are 5 paragraphs, not 6", "5") == doctest::Approx(0.5));
  CHECK(count_score("five", "5") == 0.0);
  CHECK(retrieval_score("Paragraph 12", "Paragraph 12") == 1.0);
  CHECK(retrieval_score("Paragraph 3 or 12", "Paragraph 12") == doctest::Approx(0.5));
  CHECK(retrieval_score("Paragraph 1", "Paragraph 12") == 0.0);
}

TEST_CASE("datasets: metric table, refusals, templates") {
  CHECK(dataset_spec("hotpotqa").metric == Metric::QaF1);
  CHECK(dataset_spec("hotpotqa_e").metric == Metric::QaF1);  // LongBench-E
  CHECK(dataset_spec("gov_report").metric == Metric::RougeL);
  CHECK(dataset_spec("trec").metric == Metric::Classification);
  CHECK(dataset_spec("passage_count").metric == Metric::Count);
  CHECK(dataset_spec("passage_retrieval_en").metric == Metric::Retrieval);
  CHECK(dataset_spec("lazyllm_mdqa").metric == Metric::QaF1);
  CHECK(dataset_spec("lazyllm_mdqa_twohop").has_exact_match);
  CHECK(dataset_spec("lcc").metric == Metric::CodeSim);
  CHECK(dataset_spec("repobench-p_e").metric == Metric::CodeSim);
  CHECK(!dataset_spec("lcc").stop_at_newline);  // the metric picks the line itself
  CHECK(score(dataset_spec("lcc"), "\n    x = 1\n    y = 2", {"    x = 1"}) == 1.0);
  CHECK_THROWS_WITH_AS(dataset_spec("nosuch"), doctest::Contains("not known"), lazyllm::InvalidArgument);
  CHECK_THROWS_WITH_AS(dataset_spec("nosuch"), doctest::Contains("lcc, repobench-p"), lazyllm::InvalidArgument);
  for (auto name : dataset_names()) {
    const auto& s = dataset_spec(name);
    CHECK(std::string_view(s.prompt_template).find("{context}") != std::string_view::npos);
    CHECK(s.max_new_tokens > 0);
  }
  // Our task's template is task.hpp's.
  CHECK(build_prompt(dataset_spec("lazyllm_mdqa"), "C\n\n", "Q?") == mdqa_prompt("C\n\n", "Q?"));
  CHECK(mdqa_prompt("C\n\n", "Q?") == "C\n\nQuestion: Q?\nAnswer:");
  CHECK(fill_template("[{input}|{context}|{input}]", "{input}", "x") == "[x|{input}|x]");
  CHECK(score(dataset_spec("hotpotqa"), "the cat sat", {"dog", "a cat sat down"}) == doctest::Approx(0.8));
  CHECK(score(dataset_spec("trec"), "country", {"country"}, {"city", "country"}) == 1.0);
}

TEST_CASE("records: JSONL lines are read with every type and numeric range checked") {
  using lazyllm::FormatError;
  using lazyllm::eval::parse_record;
  const std::string base = R"("context": "c", "input": "q", "answers": ["a"], "dataset": "lazyllm_mdqa")";
  auto line = [&](const std::string& extra) { return "{" + base + extra + "}"; };
  const auto r = parse_record(line(R"(, "_id": "x7", "n_docs": 3, "answer_doc": 2)"), "f.jsonl", 4);
  CHECK(r.id == "x7");
  CHECK(r.answers == std::vector<std::string>{"a"});
  CHECK(r.answer_doc == 2);
  CHECK(r.n_docs == 3);
  const auto plain = parse_record(line(""), "f.jsonl", 9);
  CHECK(plain.id == "line-9");
  CHECK(plain.answer_doc == -1);
  CHECK(parse_record(R"({"context": "c", "answers": "a"})", "f.jsonl", 1, "qasper").dataset == "qasper");
  // Numbers are range-checked before they are narrowed: 2^40 was read as 0.
  auto bad = [&](const std::string& text, const std::string& msg) {
    CAPTURE(text);
    CHECK_THROWS_WITH_AS(parse_record(text, "f.jsonl", 4), ("f.jsonl:4: " + msg).c_str(), FormatError);
  };
  bad(line(R"(, "n_docs": 3, "answer_doc": 1099511627776)"),
      "\"answer_doc\" 1099511627776 is out of range (0..2147483647)");
  bad(line(R"(, "n_docs": 4294967297, "answer_doc": 0)"), "\"n_docs\" 4294967297 is out of range (1..2147483647)");
  bad(line(R"(, "n_docs": 3, "answer_doc": -1)"), "\"answer_doc\" -1 is out of range (0..2147483647)");
  bad(line(R"(, "n_docs": 0, "answer_doc": 0)"), "\"n_docs\" 0 is out of range (1..2147483647)");
  bad(line(R"(, "n_docs": 3, "answer_doc": 1.0)"), "\"answer_doc\" 1.0 is not an integer");
  bad(line(R"(, "n_docs": 3, "answer_doc": "1")"), "\"answer_doc\" \"1\" is not an integer");
  bad(line(R"(, "n_docs": 3, "answer_doc": 3)"), "\"answer_doc\" 3 is not a document of 3");
  bad(line(R"(, "answer_doc": 1)"), "has \"answer_doc\" without \"n_docs\"");
  bad(line(R"(, "n_docs": 18446744073709551615, "answer_doc": 0)"),
      "\"n_docs\" 18446744073709551615 is out of range (1..2147483647)");
  bad(R"({"input": "q", "answers": ["a"], "dataset": "d"})", "missing \"context\"");
  bad(R"({"context": 5, "answers": ["a"], "dataset": "d"})", "\"context\" is not a string");
  bad(R"({"context": "c", "answers": [1], "dataset": "d"})", "\"answers\" is not a list of strings");
  bad(R"({"context": "c", "answers": [], "dataset": "d"})", "\"answers\" is empty");
  bad(R"([1, 2])", "not a JSON object");
  CHECK_THROWS_WITH_AS(parse_record("{\"context\": ", "f.jsonl", 4),
                       doctest::Contains("f.jsonl:4: not a JSON object ("), FormatError);
}
