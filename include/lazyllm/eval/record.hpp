// SPDX-License-Identifier: MIT
// One line of a LongBench-style JSONL file, as lazyllm-eval reads it: the text fields, the
// answers, and (lazyllm-make-task records) where the answer document sits. Every field is checked
// for its type and every number for its range before it is narrowed, so a malformed line fails
// with "FILE:LINE: what is wrong" instead of being read as something else.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lazyllm/detail/error.hpp"

namespace lazyllm::eval {

struct Record {
  std::string id, dataset, input, context;
  std::vector<std::string> answers, all_classes;
  int answer_doc = -1, n_docs = 0;  // lazyllm-make-task records: where the answer is (-1: unknown)
};

namespace detail {

inline std::vector<std::string> string_list(const nlohmann::json& j, const std::string& where, const char* field) {
  std::vector<std::string> out;
  if (j.is_null()) return out;
  if (j.is_string()) return {j.get<std::string>()};
  if (!j.is_array()) throw FormatError(where, std::string("\"") + field + "\" is not a list of strings");
  for (const auto& v : j) {
    if (!v.is_string()) throw FormatError(where, std::string("\"") + field + "\" is not a list of strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

/// j[key] as an int in [lo, hi]: FormatError for a non-integer (1.5, "3", true) or a value out of
/// range (2^40 is not read as 0).
inline int int_field(const nlohmann::json& j, const char* key, std::int64_t lo, std::int64_t hi,
                     const std::string& where) {
  const auto& v = j[key];
  const std::string what = std::string("\"") + key + "\" " + v.dump();
  if (!v.is_number_integer()) throw FormatError(where, what + " is not an integer");
  bool in_range = false;
  if (v.is_number_unsigned()) {  // JSON reads non-negative integers as unsigned (up to 2^64 - 1)
    const auto u = v.get<std::uint64_t>();
    in_range = u <= std::uint64_t(hi) && std::int64_t(u) >= lo;
  } else {
    const auto x = v.get<std::int64_t>();
    in_range = x >= lo && x <= hi;
  }
  if (!in_range)
    throw FormatError(where, what + " is out of range (" + std::to_string(lo) + ".." + std::to_string(hi) + ")");
  return int(v.get<std::int64_t>());
}

}  // namespace detail

/// Parses one JSONL line (line number `line_no` of `file`, for messages and the default id).
/// `dataset` non-empty: every record belongs to it and the line's "dataset" is not read;
/// otherwise the line must name its dataset. Throws FormatError("FILE:LINE", problem).
inline Record parse_record(std::string_view line, const std::string& file, long long line_no,
                           std::string_view dataset = {}) {
  const std::string where = file + ":" + std::to_string(line_no);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(where, std::string("not a JSON object (") + e.what() + ")");
  }
  if (!j.is_object()) throw FormatError(where, "not a JSON object");
  auto present = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  auto str = [&](const char* k, bool required) -> std::string {
    if (!present(k)) {
      if (required) throw FormatError(where, std::string("missing \"") + k + "\"");
      return {};
    }
    if (!j[k].is_string()) throw FormatError(where, std::string("\"") + k + "\" is not a string");
    return j[k].get<std::string>();
  };
  Record r;
  r.context = str("context", true);
  r.input = str("input", false);
  r.id = present("_id") && j["_id"].is_string() ? j["_id"].get<std::string>() : "line-" + std::to_string(line_no);
  r.dataset = dataset.empty() ? str("dataset", true) : std::string(dataset);
  if (!j.contains("answers")) throw FormatError(where, "missing \"answers\"");
  r.answers = detail::string_list(j["answers"], where, "answers");
  if (r.answers.empty()) throw FormatError(where, "\"answers\" is empty");
  if (j.contains("all_classes")) r.all_classes = detail::string_list(j["all_classes"], where, "all_classes");
  const bool has_doc = present("answer_doc"), has_n = present("n_docs");
  if (has_doc != has_n)
    throw FormatError(where, std::string("has \"") + (has_doc ? "answer_doc" : "n_docs") + "\" without \"" +
                                 (has_doc ? "n_docs" : "answer_doc") + "\"");
  if (has_doc) {
    constexpr std::int64_t kMax = std::numeric_limits<int>::max();
    r.n_docs = detail::int_field(j, "n_docs", 1, kMax, where);
    r.answer_doc = detail::int_field(j, "answer_doc", 0, kMax, where);
    if (r.answer_doc >= r.n_docs)
      throw FormatError(where, "\"answer_doc\" " + std::to_string(r.answer_doc) + " is not a document of " +
                                   std::to_string(r.n_docs));
  }
  return r;
}

}  // namespace lazyllm::eval
