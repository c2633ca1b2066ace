// SPDX-License-Identifier: MIT
// The PruningPolicy customisation point: which tokens of S_l go on into layer l+1.
#pragma once
#include <concepts>
#include <cstdint>
#include <ostream>
#include <span>
#include <string_view>

namespace lazyllm {

/// Prefill (the prompt) or a decode step (one generated token).
enum class Phase : std::uint8_t { Prefill, Decode };

/// Everything a policy may look at when it selects S_{l+1} from S_l.
/// `positions`, `scores` and `cached_next` are parallel arrays over S_l in position order; the
/// last entry is always the newest token (the one whose attention gives the scores).
struct SelectArgs {
  int into_layer = 0;                       // the layer l+1 whose set is being chosen
  int n_layers = 0;                         // layers in the model
  Phase phase = Phase::Prefill;
  std::int64_t step = 0;                    // 0 = prefill, then 1, 2, ... for each decode step
  std::span<const std::int32_t> positions;  // S_l
  std::span<const float> scores;            // layer-l attention of the last token, mean over heads
  std::span<const std::uint8_t> cached_next;  // 1 where the token already has layer-(l+1) K/V
};

/// A pruning policy is a small regular value type (copyable, comparable, printable) that
///  - says at which layer boundaries it may drop tokens (`prunes_into(l)`: S_l may be smaller
///    than S_{l-1}); the Aux Cache is allocated at exactly those boundaries, and scores are
///    computed only for the layers just before them;
///  - fills `keep` (one byte per token of S_l, 1 = keep) at such a boundary.
/// The pipeline always keeps the last token, whatever the policy says, and keeps sets nested.
template <class P>
concept PruningPolicy = std::regular<P> && requires(const P& p, int layer, const SelectArgs& args,
                                                    std::span<std::uint8_t> keep, std::ostream& os) {
  { p.prunes_into(layer) } -> std::convertible_to<bool>;
  p.select(args, keep);
  { p.name() } -> std::convertible_to<std::string_view>;
  { os << p } -> std::convertible_to<std::ostream&>;
};

/// Optional: a policy whose selection at some boundaries is exactly LazyLLM's percentile rule on
/// the scores (keep every token whose score is >= the score at rank floor(p * n) of the n scores
/// sorted ascending, ties kept: detail::percentile_threshold). `percentile_rule(into_layer,
/// phase)` returns that p there, and a negative value where select() must run. A backend that
/// applies the rule itself (SelectingBackend, attention_backend.hpp: SelectingCudaBackend does it on
/// the device) then selects in its place, and only the keep flags come back.
/// A policy may also have `percentile_rule(into_layer, phase, step)` (`step` as in SelectArgs),
/// for a rule that depends on the step (Static: the bare rule in step 0 only); a pipeline that
/// knows the step calls that form where it exists.
template <class P>
concept PercentileRulePolicy = requires(const P& p, int layer, Phase phase) {
  { p.percentile_rule(layer, phase) } -> std::convertible_to<float>;
};

namespace detail {
template <class P>
constexpr bool check_policy() {
  static_assert(PruningPolicy<P>,
                "lazyllm: the PruningPolicy argument must be a regular value type with "
                "`bool prunes_into(int layer) const`, `void select(const SelectArgs&, "
                "std::span<std::uint8_t> keep) const`, `std::string_view name() const` and "
                "`operator<<(std::ostream&, const P&)` (see include/lazyllm/policy/pruning_policy.hpp)");
  return true;
}
}  // namespace detail

}  // namespace lazyllm
