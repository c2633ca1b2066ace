// SPDX-License-Identifier: MIT
// AnyPolicy: one PruningPolicy type that holds any of the shipped policies, chosen at run time
// (a command-line flag, a config file). A tool that lets its user pick the policy instantiates
// its Pipeline once, with AnyPolicy, instead of once per policy: the policy runs on the host at
// pruning boundaries only, so the dispatch costs nothing measurable, while every Pipeline
// instantiation over a CUDA backend costs build time and binary size.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "lazyllm/detail/error.hpp"
#include "lazyllm/policy/dense.hpp"
#include "lazyllm/policy/lazy.hpp"
#include "lazyllm/policy/random_drop.hpp"
#include "lazyllm/policy/static.hpp"
#include "lazyllm/policy/window.hpp"

namespace lazyllm::policy {

/// The names make_policy() accepts (cpu:test_policy checks that it accepts each of them).
inline constexpr std::array<std::string_view, 5> kPolicies{"dense", "lazy", "static", "random", "window"};

/// kPolicies as "dense, lazy, ...", for help texts and error messages.
inline std::string policy_names() {
  std::string s;
  for (auto n : kPolicies) s += (s.empty() ? "" : ", ") + std::string(n);
  return s;
}

class AnyPolicy {
 public:
  using Variant = std::variant<Dense, Lazy, Static, RandomDrop, Window>;

  AnyPolicy() = default;  // Dense
  /// Implicit, so every shipped policy converts where an AnyPolicy is expected.
  template <class P, class = std::enable_if_t<!std::is_same_v<std::remove_cvref_t<P>, AnyPolicy> &&
                                              std::is_constructible_v<Variant, P>>>
  AnyPolicy(P&& p) : v_(std::forward<P>(p)) {}  // NOLINT(google-explicit-constructor)

  bool prunes_into(int layer) const {
    return std::visit([&](const auto& p) { return bool(p.prunes_into(layer)); }, v_);
  }
  void select(const SelectArgs& a, std::span<std::uint8_t> keep) const {
    std::visit([&](const auto& p) { p.select(a, keep); }, v_);
  }
  std::string_view name() const {
    return std::visit([](const auto& p) { return std::string_view(p.name()); }, v_);
  }
  /// PercentileRulePolicy for the held policy (negative for those that are not).
  float percentile_rule(int into_layer, Phase phase) const {
    return std::visit(
        [&](const auto& p) {
          if constexpr (PercentileRulePolicy<std::remove_cvref_t<decltype(p)>>)
            return float(p.percentile_rule(into_layer, phase));
          else
            return -1.0f;
        },
        v_);
  }
  /// The same with the step number (pruning_policy.hpp): the held policy's three-argument form
  /// where it has one.
  float percentile_rule(int into_layer, Phase phase, std::int64_t step) const {
    return std::visit(
        [&](const auto& p) {
          using P = std::remove_cvref_t<decltype(p)>;
          if constexpr (requires { p.percentile_rule(into_layer, phase, step); })
            return float(p.percentile_rule(into_layer, phase, step));
          else if constexpr (PercentileRulePolicy<P>)
            return float(p.percentile_rule(into_layer, phase));
          else
            return -1.0f;
        },
        v_);
  }
  /// The held policy's schedule (empty for Dense).
  const Schedule& schedule() const {
    static const Schedule none{};
    return std::visit(
        [](const auto& p) -> const Schedule& {
          if constexpr (requires { p.schedule(); })
            return p.schedule();
          else
            return none;
        },
        v_);
  }
  const Variant& variant() const { return v_; }

  friend bool operator==(const AnyPolicy&, const AnyPolicy&) = default;
  friend std::ostream& operator<<(std::ostream& os, const AnyPolicy& p) {
    std::visit([&](const auto& q) { os << q; }, p.v_);
    return os;
  }

 private:
  Variant v_;
};

static_assert(PruningPolicy<AnyPolicy> && PercentileRulePolicy<AnyPolicy>);

/// The policy called `name` (one of kPolicies) with schedule `s`; `seed` drives RandomDrop,
/// `keep_recent` Lazy (Lazy's keep_recent; 0 = the paper's method). Throws InvalidArgument naming
/// the choices for any other name.
inline AnyPolicy make_policy(std::string_view name, const Schedule& s, std::uint64_t seed = 0, int keep_recent = 0) {
  if (name == "dense") return Dense{};
  if (name == "lazy") return Lazy(s, keep_recent);
  if (name == "static") return Static(s);
  if (name == "random") return RandomDrop(s, seed);
  if (name == "window") return Window(s);
  throw InvalidArgument("unknown policy '" + std::string(name) + "' (" + policy_names() + ")");
}

/// Whether make_policy() knows `name`.
inline bool is_policy_name(std::string_view name) {
  return std::find(kPolicies.begin(), kPolicies.end(), name) != kPolicies.end();
}

}  // namespace lazyllm::policy
