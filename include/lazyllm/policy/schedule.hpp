// SPDX-License-Identifier: MIT
// A pruning schedule: (layer, percentile) pairs, parsed from "8:0.3,16:0.5,24:0.7".
#pragma once
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <cstdlib>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "lazyllm/detail/error.hpp"

namespace lazyllm {

/// Going into `layer`, drop the tokens of the current set whose score is below the
/// `percentile`-quantile of the set's scores.
struct ScheduleEntry {
  int layer = 0;
  float percentile = 0.0f;
  friend bool operator==(const ScheduleEntry&, const ScheduleEntry&) = default;
};

/// An ordered list of pruning layers. Layers are strictly increasing and >= 1; percentiles are in
/// [0, 1). Whether layers are < n_layers is checked against a model with `validate_for`.
class Schedule {
 public:
  Schedule() = default;
  explicit Schedule(std::vector<ScheduleEntry> entries) : entries_(std::move(entries)) { validate(); }

  /// Parses "L:P,L:P,..." ("" or "none" = empty). Throws InvalidArgument with the reason.
  static Schedule parse(std::string_view text) {
    std::vector<ScheduleEntry> out;
    if (text.empty() || text == "none" || text == "dense") return Schedule{};
    std::size_t start = 0;
    while (start <= text.size()) {
      const std::size_t comma = std::min(text.find(',', start), text.size());
      const std::string_view item = text.substr(start, comma - start);
      const std::size_t colon = item.find(':');
      if (colon == std::string_view::npos)
        throw InvalidArgument("schedule entry '" + std::string(item) + "' is not of the form LAYER:PERCENTILE");
      ScheduleEntry e;
      const auto ls = item.substr(0, colon), ps = item.substr(colon + 1);
      auto [lp, lec] = std::from_chars(ls.data(), ls.data() + ls.size(), e.layer);
      if (lec != std::errc{} || lp != ls.data() + ls.size())
        throw InvalidArgument("schedule entry '" + std::string(item) + "': layer '" + std::string(ls) + "' is not an integer");
      // std::from_chars for float is in libstdc++ 11+, but keep it locale-proof with strtof on a copy.
      const std::string pstr(ps);
      char* end = nullptr;
      e.percentile = std::strtof(pstr.c_str(), &end);
      if (pstr.empty() || end != pstr.c_str() + pstr.size())
        throw InvalidArgument("schedule entry '" + std::string(item) + "': percentile '" + pstr + "' is not a number");
      out.push_back(e);
      start = comma + 1;
      if (comma == text.size()) break;
    }
    return Schedule(std::move(out));
  }

  const std::vector<ScheduleEntry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }

  /// The percentile used going into `layer`, or a negative value when `layer` is not listed.
  float percentile_into(int layer) const {
    for (const auto& e : entries_)
      if (e.layer == layer) return e.percentile;
    return -1.0f;
  }

  /// Throws InvalidArgument when a layer is not below n_layers.
  void validate_for(int n_layers) const {
    for (const auto& e : entries_)
      if (e.layer >= n_layers)
        throw InvalidArgument("schedule layer " + std::to_string(e.layer) + " is not below the model's " +
                              std::to_string(n_layers) + " layers");
  }

  std::string to_string() const {
    std::ostringstream os;
    os << *this;
    return os.str();
  }

  friend bool operator==(const Schedule&, const Schedule&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Schedule& s) {
    if (s.entries_.empty()) return os << "none";
    for (std::size_t i = 0; i < s.entries_.size(); ++i)
      os << (i ? "," : "") << s.entries_[i].layer << ':' << s.entries_[i].percentile;
    return os;
  }

 private:
  void validate() const {
    int prev = 0;
    for (const auto& e : entries_) {
      if (e.layer < 1)
        throw InvalidArgument("schedule layer " + std::to_string(e.layer) +
                              " must be >= 1 (layer 0 always sees every token)");
      if (e.layer <= prev)
        throw InvalidArgument("schedule layers must be strictly increasing (" + std::to_string(prev) +
                              " then " + std::to_string(e.layer) + ")");
      if (!(e.percentile >= 0.0f && e.percentile < 1.0f))
        throw InvalidArgument("schedule percentile " + std::to_string(e.percentile) + " at layer " +
                              std::to_string(e.layer) + " is not in [0, 1)");
      prev = e.layer;
    }
  }
  std::vector<ScheduleEntry> entries_;
};

namespace detail {

/// The threshold of the LazyLLM percentile rule: the value at rank floor(p * n) of the scores
/// sorted ascending. Keeping every score >= threshold keeps at least ceil((1 - p) * n) tokens
/// (more when scores tie at the threshold), and keeps all of them when p == 0.
inline float percentile_threshold(std::span<const float> scores, float p) {
  std::vector<float> s(scores.begin(), scores.end());
  const auto n = s.size();
  if (n == 0) return 0.0f;
  std::size_t k = static_cast<std::size_t>(std::floor(static_cast<double>(p) * static_cast<double>(n)));
  k = std::min(k, n - 1);
  std::nth_element(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(k), s.end());
  return s[k];
}

/// Nominal number of tokens kept out of n at percentile p (no ties): n - floor(p * n).
inline std::size_t percentile_keep_count(std::size_t n, float p) {
  if (n == 0) return 0;
  const auto k = std::min<std::size_t>(
      static_cast<std::size_t>(std::floor(static_cast<double>(p) * static_cast<double>(n))), n - 1);
  return n - k;
}

}  // namespace detail
}  // namespace lazyllm
