// SPDX-License-Identifier: MIT
#pragma once
#include <cstdint>
#include <numeric>
#include <ostream>
#include <span>
#include <string_view>
#include <vector>

#include "lazyllm/policy/lazy.hpp"

namespace lazyllm::policy {

/// Random token drop baseline: at every scheduled layer, keep the number of tokens the
/// percentile nominally keeps (n - floor(p n)), chosen uniformly at random (the last token is
/// always one of them). Deterministic for a given seed, step and layer, on every platform.
class RandomDrop {
 public:
  RandomDrop() = default;
  explicit RandomDrop(Schedule s, std::uint64_t seed = 0) : schedule_(std::move(s)), seed_(seed) {}
  const Schedule& schedule() const { return schedule_; }
  std::uint64_t seed() const { return seed_; }
  bool prunes_into(int layer) const { return schedule_.percentile_into(layer) >= 0.0f; }
  static constexpr std::string_view name() { return "random"; }

  void select(const SelectArgs& a, std::span<std::uint8_t> keep) const {
    const std::size_t n = keep.size();
    if (n == 0) return;
    const std::size_t want = detail::percentile_keep_count(n, schedule_.percentile_into(a.into_layer));
    // Partial Fisher-Yates over the tokens before the last one; the last is always kept.
    std::vector<std::uint32_t> idx(n - 1);
    std::iota(idx.begin(), idx.end(), 0u);
    std::uint64_t state = seed_ ^ (0x9E3779B97F4A7C15ull * (std::uint64_t(a.step) + 1)) ^
                          (0xC2B2AE3D27D4EB4Full * (std::uint64_t(a.into_layer) + 1));
    for (auto& k : keep) k = 0;
    keep[n - 1] = 1;
    for (std::size_t i = 0; i + 1 < want && i < idx.size(); ++i) {
      const std::size_t j = i + std::size_t(splitmix64(state) % (idx.size() - i));
      std::swap(idx[i], idx[j]);
      keep[idx[i]] = 1;
    }
  }

  friend bool operator==(const RandomDrop&, const RandomDrop&) = default;
  friend std::ostream& operator<<(std::ostream& os, const RandomDrop& p) {
    return os << "random(" << p.schedule_ << ", seed=" << p.seed_ << ')';
  }

 private:
  static std::uint64_t splitmix64(std::uint64_t& s) {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  Schedule schedule_;
  std::uint64_t seed_ = 0;
};

static_assert(PruningPolicy<RandomDrop>);

}  // namespace lazyllm::policy
