// SPDX-License-Identifier: MIT
// Pruning schedules, in one place: the (layer, percentile) list and its parser, the named presets,
// schedule_from_string (what users write), the nominal compute of a schedule, and the percentile
// rule's threshold on the host. The rule's rank is policy/percentile.hpp, shared with the device.
#pragma once
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "lazyllm/detail/error.hpp"
#include "lazyllm/policy/percentile.hpp"

namespace lazyllm {

/// Going into `layer`, drop the tokens of the current set whose score is below the
/// `percentile`-quantile of the set's scores.
struct ScheduleEntry {
  int layer = 0;
  float percentile = 0.0f;
  friend bool operator==(const ScheduleEntry&, const ScheduleEntry&) = default;
};

namespace detail {

/// `p` as a decimal with up to 6 places and no trailing zeros ("0.7", "0.35", "0").
inline std::string percentile_text(float p) {
  const std::int64_t q = percentile_millionths(p);
  if (q >= kPercentileScale) return "1";
  std::string frac = std::to_string(kPercentileScale + q).substr(1);  // 6 digits
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  return frac.empty() ? "0" : "0." + frac;
}

/// Parses a percentile as users write it: a plain decimal ("0.3", ".25", "0") with at most 6
/// places; no sign, exponent, hex, inf or nan. Throws InvalidArgument prefixed with `what`.
inline float parse_percentile(std::string_view s, const std::string& what) {
  const std::size_t dot = s.find('.');
  const std::string_view ip = s.substr(0, dot), fp = dot == std::string_view::npos ? "" : s.substr(dot + 1);
  auto digits = [](std::string_view t) {
    return std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (s.empty() || (ip.empty() && fp.empty()) || !digits(ip) || !digits(fp)) {
    if (!s.empty() && s.front() == '-')
      throw InvalidArgument(what + "percentile '" + std::string(s) + "' is not in [0, 1)");
    throw InvalidArgument(what + "percentile '" + std::string(s) + "' is not a number (write a decimal such as 0.5)");
  }
  if (ip.find_first_not_of('0') != std::string_view::npos)
    throw InvalidArgument(what + "percentile '" + std::string(s) + "' is not in [0, 1)");
  std::string_view f = fp;
  while (!f.empty() && f.back() == '0') f.remove_suffix(1);  // 0.500000000 is 0.5
  if (f.size() > 6) throw InvalidArgument(what + "percentile '" + std::string(s) + "' has more than 6 decimal places");
  std::int64_t q = 0;
  for (std::size_t i = 0; i < 6; ++i) q = q * 10 + (i < f.size() ? f[i] - '0' : 0);
  return float(double(q) / double(kPercentileScale));  // percentile_millionths() gives q back
}

}  // namespace detail

/// An ordered list of pruning layers. Layers are strictly increasing and >= 1; percentiles are in
/// [0, 1), decimals of at most 6 places (a float given in code counts as its nearest millionth).
/// Whether layers are < n_layers is checked against a model with `validate_for`.
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
        throw InvalidArgument("schedule entry '" + std::string(item) + "': layer '" + std::string(ls) +
                              "' is not an integer");
      e.percentile = detail::parse_percentile(ps, "schedule entry '" + std::string(item) + "': ");
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

  /// "8:0.3,16:0.5" (parse() reads it back to an equal schedule), or "none".
  std::string to_string() const {
    std::ostringstream os;
    os << *this;
    return os.str();
  }

  friend bool operator==(const Schedule&, const Schedule&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Schedule& s) {
    if (s.entries_.empty()) return os << "none";
    for (std::size_t i = 0; i < s.entries_.size(); ++i)
      os << (i ? "," : "") << s.entries_[i].layer << ':' << detail::percentile_text(s.entries_[i].percentile);
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
        throw InvalidArgument("schedule layers must be strictly increasing (" + std::to_string(prev) + " then " +
                              std::to_string(e.layer) + ")");
      // In millionths: a float just below 1 rounds to 1, which would keep only the last token.
      if (!(e.percentile >= 0.0f) || percentile_millionths(e.percentile) >= kPercentileScale)
        throw InvalidArgument("schedule percentile " + std::to_string(e.percentile) + " at layer " +
                              std::to_string(e.layer) + " is not in [0, 1)");
      prev = e.layer;
    }
  }
  std::vector<ScheduleEntry> entries_;
};

namespace detail {

/// The threshold of the LazyLLM percentile rule: the value at rank percentile_rank(n, p) =
/// floor(p * n) of the scores sorted ascending. Keeping every score >= threshold keeps at least
/// n - floor(p * n) tokens (more when scores tie at the threshold), and all of them when p == 0.
inline float percentile_threshold(std::span<const float> scores, float p) {
  std::vector<float> s(scores.begin(), scores.end());
  const auto n = s.size();
  if (n == 0) return 0.0f;
  const auto k = std::size_t(percentile_rank(std::int64_t(n), p));
  std::nth_element(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(k), s.end());
  return s[k];
}

/// Nominal number of tokens kept out of n at percentile p (no ties): n - floor(p * n).
inline std::size_t percentile_keep_count(std::size_t n, float p) {
  if (n == 0) return 0;
  return n - std::size_t(percentile_rank(std::int64_t(n), p));
}

}  // namespace detail

/// Named schedules, defined as fractions of the model's depth so they fit any Llama size.
/// Percentiles are relative to the set entering each pruning layer, so the kept fraction
/// multiplies: "aggressive" keeps 50 % / 25 % / 12.5 % of the prompt from L/8, L/4 and L/2
/// (31 % of dense token-layers on Llama 2 7B: the schedule of the performance issue).
///   gentle     : L/2:0.3, 3L/4:0.5             (~80 % of dense token-layers)
///   default    : L/4:0.3, L/2:0.5, 3L/4:0.5    (~61 %)
///   aggressive : L/8:0.5, L/4:0.5, L/2:0.5     (~31 %)
/// The fractions are nominal (ties and the always-kept last token keep slightly more). They were
/// chosen to span the compute range; their accuracy is measured in docs/accuracy.md.
inline Schedule preset_schedule(std::string_view name, int n_layers) {
  struct Point {
    int num, den;
    float p;
  };
  std::vector<Point> pts;
  if (name == "gentle")
    pts = {{1, 2, 0.3f}, {3, 4, 0.5f}};
  else if (name == "default")
    pts = {{1, 4, 0.3f}, {1, 2, 0.5f}, {3, 4, 0.5f}};
  else if (name == "aggressive")
    pts = {{1, 8, 0.5f}, {1, 4, 0.5f}, {1, 2, 0.5f}};
  else if (name == "none" || name == "dense")
    return Schedule{};
  else
    throw InvalidArgument("unknown schedule preset '" + std::string(name) +
                          "' (known: none, gentle, default, aggressive)");
  std::vector<ScheduleEntry> out;
  for (const auto& pt : pts) {
    const int l = std::max(1, int(std::lround(double(n_layers) * pt.num / pt.den)));
    if (l >= n_layers || (!out.empty() && l <= out.back().layer)) continue;  // too shallow a model
    out.push_back({l, pt.p});
  }
  return Schedule(std::move(out));
}

/// A schedule as users write it: a preset name (none, gentle, default, aggressive) or
/// "LAYER:PERCENTILE,...", checked against a model of `n_layers`. Throws InvalidArgument.
inline Schedule schedule_from_string(std::string_view text, int n_layers) {
  if (text.find(':') == std::string_view::npos) return preset_schedule(text, n_layers);
  Schedule s = Schedule::parse(text);
  s.validate_for(n_layers);
  return s;
}

/// Fraction of dense token-layers a schedule computes in prefill, ignoring ties (nominal).
inline double nominal_token_layer_fraction(const Schedule& s, int n_layers) {
  double frac = 1.0, total = 0.0;
  for (int l = 0; l < n_layers; ++l) {
    const float p = s.percentile_into(l);
    if (p >= 0.0f) frac *= 1.0 - double(percentile_millionths(p)) / double(kPercentileScale);
    total += frac;
  }
  return total / n_layers;
}

namespace policy {
// Their historical home (policy/lazy.hpp); both spellings name the same functions.
using lazyllm::nominal_token_layer_fraction;
using lazyllm::preset_schedule;
using lazyllm::schedule_from_string;
}  // namespace policy

}  // namespace lazyllm
