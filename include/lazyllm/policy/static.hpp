// SPDX-License-Identifier: MIT
#pragma once
#include <ostream>
#include <span>
#include <string_view>

#include "lazyllm/policy/lazy.hpp"

namespace lazyllm::policy {

/// Static pruning baseline: the kept sets are chosen once, at prefill, by the same percentile
/// rule as Lazy (each pruning layer from its own layer's scores), and never change: in decode a
/// token goes on into a layer only if it already has K/V there, so nothing is ever revived.
class Static {
 public:
  Static() = default;
  explicit Static(Schedule s) : lazy_(std::move(s)) {}
  const Schedule& schedule() const { return lazy_.schedule(); }
  bool prunes_into(int layer) const { return lazy_.prunes_into(layer); }
  void select(const SelectArgs& a, std::span<std::uint8_t> keep) const {
    if (a.phase == Phase::Prefill) return lazy_.keep_top(a, keep);
    for (std::size_t i = 0; i < keep.size(); ++i) keep[i] = a.cached_next[i];
  }
  static constexpr std::string_view name() { return "static"; }
  /// PercentileRulePolicy: the prefill is the rule; decode steps keep the cached sets.
  float percentile_rule(int into_layer, Phase phase) const {
    return phase == Phase::Prefill ? schedule().percentile_into(into_layer) : -1.0f;
  }
  friend bool operator==(const Static&, const Static&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Static& p) { return os << "static(" << p.schedule() << ')'; }

 private:
  Lazy lazy_;
};

static_assert(PruningPolicy<Static> && PercentileRulePolicy<Static>);

}  // namespace lazyllm::policy
