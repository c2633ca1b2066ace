// SPDX-License-Identifier: MIT
#pragma once
#include <cstdint>
#include <ostream>
#include <span>
#include <string_view>

#include "lazyllm/policy/lazy.hpp"

namespace lazyllm::policy {

/// Static pruning baseline (the paper's): each prompt is pruned once, by the same percentile rule
/// as Lazy (each pruning layer from its own layer's scores), in the step that computes it, and the
/// choice never changes: a token goes on into a layer in a later step only if it already has K/V
/// there, so nothing is ever revived. A later prompt (the next turn of a chat) is pruned the same
/// way, the rule applied over its own tokens; the earlier tokens keep their sets.
class Static {
 public:
  Static() = default;
  explicit Static(Schedule s) : lazy_(std::move(s)) {}
  const Schedule& schedule() const { return lazy_.schedule(); }
  bool prunes_into(int layer) const { return lazy_.prunes_into(layer); }

  void select(const SelectArgs& a, std::span<std::uint8_t> keep) const {
    // This step's tokens are those after the last one that has K/V in the next layer: every
    // earlier step's newest token has K/V in every layer (the pipeline always computes the newest
    // token) and Static keeps it wherever it has K/V, so it bounds the earlier tokens.
    const std::size_t n = keep.size();
    std::size_t first_new = n;
    while (first_new > 0 && a.cached_next[first_new - 1] == 0) --first_new;
    for (std::size_t i = 0; i < first_new; ++i) keep[i] = a.cached_next[i];
    if (first_new == n) return;
    const auto scores = a.scores.subspan(first_new);
    const float thr = detail::percentile_threshold(scores, std::max(schedule().percentile_into(a.into_layer), 0.0f));
    for (std::size_t i = first_new; i < n; ++i) keep[i] = a.scores[i] >= thr ? 1 : 0;
  }
  static constexpr std::string_view name() { return "static"; }

  /// PercentileRulePolicy. The bare rule over the whole set is Static's selection only in the
  /// first step (no earlier tokens), which this form cannot tell, so it never delegates.
  float percentile_rule(int, Phase) const { return -1.0f; }
  /// The same with the step number (SelectArgs::step): the rule in step 0, nowhere else.
  float percentile_rule(int into_layer, Phase, std::int64_t step) const {
    return step == 0 ? schedule().percentile_into(into_layer) : -1.0f;
  }

  friend bool operator==(const Static&, const Static&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Static& p) { return os << "static(" << p.schedule() << ')'; }

 private:
  Lazy lazy_;
};

static_assert(PruningPolicy<Static> && PercentileRulePolicy<Static>);

}  // namespace lazyllm::policy
