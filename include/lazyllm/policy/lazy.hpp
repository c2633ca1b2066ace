// SPDX-License-Identifier: MIT
#pragma once
#include <algorithm>
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

}  // namespace lazyllm::policy
