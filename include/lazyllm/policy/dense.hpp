// SPDX-License-Identifier: MIT
#pragma once
#include <ostream>
#include <span>
#include <string_view>

#include "lazyllm/policy/pruning_policy.hpp"

namespace lazyllm::policy {

/// No pruning: every layer computes every token (the plain model).
struct Dense {
  static constexpr bool prunes_into(int) { return false; }
  void select(const SelectArgs&, std::span<std::uint8_t> keep) const {
    for (auto& k : keep) k = 1;
  }
  static constexpr std::string_view name() { return "dense"; }
  friend bool operator==(const Dense&, const Dense&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Dense&) { return os << "dense"; }
};

static_assert(PruningPolicy<Dense>);

}  // namespace lazyllm::policy
