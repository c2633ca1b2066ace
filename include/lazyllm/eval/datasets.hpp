// SPDX-License-Identifier: MIT
// The datasets lazyllm-eval scores: for each, the metric (as LongBench assigns it), the prompt
// template ({context} and {input} filled in; our own wording), the generation length LongBench
// uses, and whether generation stops at the end of the first line. Plus the project's own
// lazyllm_mdqa task, whose template is the one in task.hpp.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "lazyllm/detail/error.hpp"
#include "lazyllm/eval/metrics.hpp"
#include "lazyllm/eval/task.hpp"

namespace lazyllm::eval {

enum class Metric { QaF1, RougeL, Classification, Count, Retrieval, CodeSim };

inline std::string_view to_string(Metric m) {
  switch (m) {
    case Metric::QaF1: return "qa_f1";
    case Metric::RougeL: return "rouge_l";
    case Metric::Classification: return "classification";
    case Metric::Count: return "count";
    case Metric::Retrieval: return "retrieval";
    case Metric::CodeSim:
      return "code_sim";
  }
  return "?";
}

struct DatasetSpec {
  std::string_view name;
  Metric metric;
  std::string_view prompt_template;  // "{context}" and "{input}" are replaced
  int max_new_tokens;                // LongBench's generation length for the dataset
  bool stop_at_newline;              // stop at the first newline after some text (short answers)
  bool has_exact_match;              // exact match is reported too (QA datasets)
};

namespace detail {
inline constexpr std::string_view kMultiDocQa =
    "Answer the question using the passages below. Reply with the answer only, no explanation.\n\n{context}\n\n"
    "Question: {input}\nAnswer:";
inline constexpr DatasetSpec kDatasets[] = {
    {"narrativeqa", Metric::QaF1,
     "Read the story below, then answer the question about it with a short phrase.\n\nStory:\n{context}\n\n"
     "Question: {input}\nShort answer:",
     128, true, true},
    {"qasper", Metric::QaF1,
     "Read the scientific article below, then answer the question as briefly as possible: a word, a phrase, "
     "\"yes\" or \"no\", or \"unanswerable\" when the article does not say.\n\nArticle:\n{context}\n\n"
     "Question: {input}\nAnswer:",
     128, true, true},
    {"multifieldqa_en", Metric::QaF1,
     "Read the text below, then answer the question about it briefly.\n\n{context}\n\nQuestion: {input}\nAnswer:", 64,
     true, true},
    {"hotpotqa", Metric::QaF1, kMultiDocQa, 32, true, true},
    {"2wikimqa", Metric::QaF1, kMultiDocQa, 32, true, true},
    {"musique", Metric::QaF1, kMultiDocQa, 32, true, true},
    {"gov_report", Metric::RougeL,
     "Below is a report by a government agency. Write a summary of it of about one page.\n\nReport:\n{context}\n\n"
     "Summary:",
     512, false, false},
    {"qmsum", Metric::RougeL,
     "Below is the transcript of a meeting, then a query about it. Answer the query in a few sentences.\n\n"
     "Transcript:\n{context}\n\nQuery: {input}\nAnswer:",
     512, false, false},
    {"multi_news", Metric::RougeL,
     "Below are several news articles on one story. Write one summary that covers them all.\n\nArticles:\n"
     "{context}\n\nSummary:",
     512, false, false},
    {"trec", Metric::Classification,
     "Give the type of the last question, in the style of the labelled examples before it.\n\n{context}\n{input}", 64,
     true, false},
    {"triviaqa", Metric::QaF1,
     "Answer the last question from its passage, with the answer only, in the style of the examples before it."
     "\n\n{context}\n\n{input}",
     32, true, true},
    {"samsum", Metric::RougeL,
     "Summarise the last dialogue in one or two sentences, in the style of the examples before it.\n\n{context}\n\n"
     "{input}",
     128, true, false},
    {"passage_count", Metric::Count,
     "Below are several paragraphs; some of them may repeat. How many different paragraphs are there?\n\n"
     "{context}\n\nReply with the number of different paragraphs only. The number is: ",
     32, true, false},
    {"passage_retrieval_en", Metric::Retrieval,
     "Below are numbered paragraphs, then a summary of one of them. Which paragraph was summarised?\n\n{context}\n\n"
     "Summary: {input}\n\nReply in the form \"Paragraph N\". The paragraph is: ",
     32, true, false},
    {"lcc", Metric::CodeSim, "Complete the code below with its next line.\n{context}Next line of code:\n", 64, false,
     false},
    {"repobench-p", Metric::CodeSim,
     "Complete the code below with its next line.\n{context}{input}Next line of code:\n", 64, false, false},
    {kDatasetSingle, Metric::QaF1, kMdqaTemplate, 32, true, true},
    {kDatasetTwohop, Metric::QaF1, kMdqaTemplate, 32, true, true},
};
}  // namespace detail

/// Every dataset name in the table.
inline std::vector<std::string_view> dataset_names() {
  std::vector<std::string_view> out;
  for (const auto& d : detail::kDatasets) out.push_back(d.name);
  return out;
}

/// The spec of `name` ("_e" LongBench-E suffixes are accepted). Throws InvalidArgument for unknown
/// datasets.
inline const DatasetSpec& dataset_spec(std::string_view name) {
  std::string_view base = name;
  if (base.size() > 2 && base.substr(base.size() - 2) == "_e") base.remove_suffix(2);
  for (const auto& d : detail::kDatasets)
    if (d.name == base) return d;
  std::string known;
  for (const auto& d : detail::kDatasets) {
    if (!known.empty()) known += ", ";
    known += d.name;
  }
  throw InvalidArgument("dataset '" + std::string(name) + "' is not known (supported: " + known + ")");
}

/// The prompt of one example for `spec`.
inline std::string build_prompt(const DatasetSpec& spec, std::string_view context, std::string_view input) {
  return fill_template(spec.prompt_template, context, input);
}

/// The score in [0, 1] of `prediction` against `answers` with the dataset's metric (best over
/// answers). `all_classes` is used by classification only.
inline double score(const DatasetSpec& spec, std::string_view prediction, const std::vector<std::string>& answers,
                    const std::vector<std::string>& all_classes = {}) {
  switch (spec.metric) {
    case Metric::QaF1: return best_over(qa_f1, prediction, answers);
    case Metric::RougeL: return best_over(rouge_l, prediction, answers);
    case Metric::Classification:
      return best_over([&](std::string_view p, std::string_view t) { return classification_score(p, t, all_classes); },
                       prediction, answers);
    case Metric::Count: return best_over(count_score, prediction, answers);
    case Metric::Retrieval: return best_over(retrieval_score, prediction, answers);
    case Metric::CodeSim:
      return best_over(code_sim_score, prediction, answers);
  }
  throw InvalidArgument("dataset '" + std::string(spec.name) + "': unknown metric");
}

}  // namespace lazyllm::eval
