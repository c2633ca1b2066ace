// SPDX-License-Identifier: MIT
#pragma once
#include <algorithm>
#include <cmath>
#include <ostream>
#include <span>
#include <string>
#include <string_view>

#include "lazyllm/detail/error.hpp"
#include "lazyllm/policy/pruning_policy.hpp"
#include "lazyllm/policy/schedule.hpp"

namespace lazyllm::policy {

/// LazyLLM: progressive top-k percentile pruning, re-decided at every step, with revival.
/// Going into each scheduled layer, tokens whose score is below the schedule's percentile of the
/// current set's scores are dropped; ties at the threshold are kept.
///
/// `keep_recent` (default 0, the paper's method) also keeps the last `keep_recent` tokens of the
/// set whatever their scores: the end of a prompt (the question) can matter to later layers
/// while the last token's attention ranks it low (docs/accuracy.md measures it on models/lazyqa).
class Lazy {
 public:
  Lazy() = default;  // the empty schedule: behaves exactly as Dense
  explicit Lazy(Schedule s, int keep_recent = 0) : schedule_(std::move(s)), keep_recent_(keep_recent) {
    if (keep_recent < 0)
      throw InvalidArgument("lazy policy: keep_recent " + std::to_string(keep_recent) + " must be >= 0");
  }

  const Schedule& schedule() const { return schedule_; }
  int keep_recent() const { return keep_recent_; }
  bool prunes_into(int layer) const { return schedule_.percentile_into(layer) >= 0.0f; }
  void select(const SelectArgs& a, std::span<std::uint8_t> keep) const {
    keep_top(a, keep);
    const std::size_t n = keep.size(), r = std::min(n, std::size_t(keep_recent_));
    for (std::size_t i = n - r; i < n; ++i) keep[i] = 1;
  }
  static constexpr std::string_view name() { return "lazy"; }
  /// PercentileRulePolicy: select() is the bare rule unless keep_recent adds tokens.
  float percentile_rule(int into_layer, Phase) const {
    return keep_recent_ > 0 ? -1.0f : schedule_.percentile_into(into_layer);
  }

  /// The percentile rule on its own (shared with Static's prefill).
  void keep_top(const SelectArgs& a, std::span<std::uint8_t> keep) const {
    const float p = schedule_.percentile_into(a.into_layer);
    const float thr = detail::percentile_threshold(a.scores, std::max(p, 0.0f));
    for (std::size_t i = 0; i < keep.size(); ++i) keep[i] = a.scores[i] >= thr ? 1 : 0;
  }

  friend bool operator==(const Lazy&, const Lazy&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Lazy& p) {
    os << "lazy(" << p.schedule_;
    if (p.keep_recent_ > 0) os << ", recent=" << p.keep_recent_;
    return os << ')';
  }

 private:
  Schedule schedule_;
  int keep_recent_ = 0;
};

static_assert(PruningPolicy<Lazy> && PercentileRulePolicy<Lazy>);

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
    if (p >= 0.0f) frac *= (1.0 - p);
    total += frac;
  }
  return total / n_layers;
}

}  // namespace lazyllm::policy
