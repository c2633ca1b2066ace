// SPDX-License-Identifier: MIT
// LongBench's scoring functions: answer normalisation, QA F1, exact match, Rouge-L, classification
// accuracy, passage count and passage retrieval. Every score is in [0, 1]; LongBench reports the
// mean x 100 and scores a prediction against several answers by taking the best (best_over).
#pragma once
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace lazyllm::eval {

namespace detail {

inline bool ascii_punct(unsigned char c) { return c < 128 && std::ispunct(c); }
inline bool ascii_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

inline std::vector<std::string> split_ws(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (unsigned char c : s) {
    if (ascii_space(c)) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(char(c));
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

/// Non-negative integers written in `s` (runs of ASCII digits), in order.
inline std::vector<std::string> digit_runs(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (unsigned char c : s) {
    if (c >= '0' && c <= '9') {
      cur.push_back(char(c));
    } else if (!cur.empty()) {
      out.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

}  // namespace detail

/// LongBench's (SQuAD's) answer normalisation: lower case (ASCII), remove ASCII punctuation,
/// remove the articles "a", "an", "the" as whole words, collapse whitespace to single spaces.
inline std::string normalize_answer(std::string_view s) {
  std::string t;
  t.reserve(s.size());
  for (unsigned char c : s)
    if (!detail::ascii_punct(c)) t.push_back(char(c < 128 ? std::tolower(c) : c));
  std::string out;
  for (const auto& w : detail::split_ws(t)) {
    if (w == "a" || w == "an" || w == "the") continue;
    if (!out.empty()) out.push_back(' ');
    out += w;
  }
  return out;
}

/// Token-level F1 of the normalised prediction against the normalised ground truth (bag of
/// words; 0 when they share no token, or when either side is empty).
inline double qa_f1(std::string_view prediction, std::string_view truth) {
  const auto p = detail::split_ws(normalize_answer(prediction));
  const auto g = detail::split_ws(normalize_answer(truth));
  std::map<std::string, int> counts;
  for (const auto& w : g) ++counts[w];
  int same = 0;
  for (const auto& w : p)
    if (auto it = counts.find(w); it != counts.end() && it->second > 0) {
      --it->second;
      ++same;
    }
  if (same == 0) return 0.0;
  const double precision = double(same) / double(p.size()), recall = double(same) / double(g.size());
  return 2.0 * precision * recall / (precision + recall);
}

/// 1 when the normalised prediction equals the normalised ground truth, else 0.
inline double exact_match(std::string_view prediction, std::string_view truth) {
  return normalize_answer(prediction) == normalize_answer(truth) ? 1.0 : 0.0;
}

/// 1 when the normalised prediction's words begin with all of the normalised ground truth's
/// words (an answer that is right but not where the generation stopped: "Oslo. Bergen" for
/// "Oslo"), else 0; 0 for an empty truth. Not a LongBench metric: lazyllm-eval reports it beside
/// exact match to tell a wrong answer from a right one that does not stop.
inline double starts_with_answer(std::string_view prediction, std::string_view truth) {
  const auto p = detail::split_ws(normalize_answer(prediction));
  const auto g = detail::split_ws(normalize_answer(truth));
  if (g.empty() || p.size() < g.size()) return 0.0;
  return std::equal(g.begin(), g.end(), p.begin()) ? 1.0 : 0.0;
}

/// Tokens for Rouge: lower-cased runs of ASCII letters and digits (other bytes separate tokens;
/// non-ASCII bytes are kept inside tokens).
inline std::vector<std::string> rouge_tokens(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c >= 128) {
      cur.push_back(char(c < 128 ? std::tolower(c) : c));
    } else if (!cur.empty()) {
      out.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

/// Length of the longest common subsequence of two sequences (tokens for Rouge-L, characters
/// for code similarity); braced lists are token lists.
template <class A = std::vector<std::string>, class B = A>
inline std::size_t lcs_length(const A& a, const B& b) {
  std::vector<std::size_t> row(b.size() + 1, 0);
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = 0;  // row[j-1] of the previous i
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = a[i - 1] == b[j - 1] ? diag + 1 : std::max(row[j], row[j - 1]);
      diag = up;
    }
  }
  return row[b.size()];
}

/// LongBench's code similarity (lcc, repobench-p): the first line of the prediction (leading
/// newlines dropped) that holds no '`', '#' or "//", compared with the answer by fuzzywuzzy's
/// ratio with python-Levenshtein: round(100 * 2M / (|line| + |answer|)) / 100, M the longest
/// common subsequence of characters (the indel-distance ratio), rounded half to even as Python's
/// round(); 0 when either is empty. Case and whitespace count, as there.
inline double code_sim_score(std::string_view prediction, std::string_view truth) {
  const std::size_t start = prediction.find_first_not_of('\n');
  std::string_view rest = start == std::string_view::npos ? std::string_view{} : prediction.substr(start);
  std::string_view line;  // "" when no line qualifies (an empty line does, as in Python)
  for (;;) {
    const std::size_t nl = rest.find('\n');
    const std::string_view cand = rest.substr(0, nl);
    if (cand.find('`') == std::string_view::npos && cand.find('#') == std::string_view::npos &&
        cand.find("//") == std::string_view::npos) {
      line = cand;
      break;
    }
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  if (line.empty() || truth.empty()) return 0.0;
  const double ratio = 2.0 * double(lcs_length(line, truth)) / double(line.size() + truth.size());
  return std::nearbyint(100.0 * ratio) / 100.0;
}

/// Rouge-L F1 over rouge_tokens: P = LCS / |prediction|, R = LCS / |truth|, F = 2PR / (P + R).
/// (LongBench calls the `rouge` package, whose Rouge-L is the summary-level union LCS over
/// sentences; for single-sentence texts the two agree.)
inline double rouge_l(std::string_view prediction, std::string_view truth) {
  const auto p = rouge_tokens(prediction), g = rouge_tokens(truth);
  if (p.empty() || g.empty()) return 0.0;
  const double lcs = double(lcs_length(p, g));
  if (lcs == 0) return 0.0;
  const double precision = lcs / double(p.size()), recall = lcs / double(g.size());
  return 2.0 * precision * recall / (precision + recall);
}

/// LongBench's classification score: the classes whose name occurs in the prediction, less those
/// that are only part of the true class's name; 1 / (their number) when the true class is one of
/// them, else 0.
inline double classification_score(std::string_view prediction, std::string_view truth,
                                   const std::vector<std::string>& all_classes) {
  std::vector<std::string_view> matched;
  for (const auto& c : all_classes)
    if (!c.empty() && prediction.find(c) != std::string_view::npos) matched.push_back(c);
  std::erase_if(matched, [&](std::string_view c) { return c != truth && truth.find(c) != std::string_view::npos; });
  const bool hit = std::find(matched.begin(), matched.end(), truth) != matched.end();
  return hit ? 1.0 / double(matched.size()) : 0.0;
}

/// LongBench's passage_count score: of the numbers in the prediction, the fraction equal to the truth.
inline double count_score(std::string_view prediction, std::string_view truth) {
  const auto nums = detail::digit_runs(prediction);
  if (nums.empty()) return 0.0;
  const auto right = std::count(nums.begin(), nums.end(), std::string(truth));
  return double(right) / double(nums.size());
}

/// LongBench's passage_retrieval score: the truth is "Paragraph N"; of the numbers in the
/// prediction, the fraction equal to N.
inline double retrieval_score(std::string_view prediction, std::string_view truth) {
  const auto tn = detail::digit_runs(truth);
  const auto nums = detail::digit_runs(prediction);
  if (tn.empty() || nums.empty()) return 0.0;
  const auto right = std::count(nums.begin(), nums.end(), tn.front());
  return double(right) / double(nums.size());
}

/// The best score of `prediction` over the ground truths (0 when there are none).
inline double best_over(const std::function<double(std::string_view, std::string_view)>& metric,
                        std::string_view prediction, const std::vector<std::string>& answers) {
  double best = 0.0;
  for (const auto& a : answers) best = std::max(best, metric(prediction, a));
  return best;
}

}  // namespace lazyllm::eval
