// SPDX-License-Identifier: MIT
// Next-token sampling on the host: greedy, temperature, top-k, top-p, repetition penalty.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "lazyllm/detail/error.hpp"

namespace lazyllm {

struct SamplerParams {
  float temperature = 0.0f;     // 0 = greedy (argmax; the lowest id wins ties)
  int top_k = 0;                // 0 = no limit
  float top_p = 1.0f;           // nucleus mass in (0, 1]
  float repeat_penalty = 1.0f;  // > 1 discourages tokens already in `recent`
  std::uint64_t seed = 0;
  void validate() const {
    if (!(temperature >= 0.0f)) throw InvalidArgument("temperature must be >= 0");
    if (top_k < 0) throw InvalidArgument("top-k must be >= 0");
    if (!(top_p > 0.0f && top_p <= 1.0f)) throw InvalidArgument("top-p must be in (0, 1]");
    if (!(repeat_penalty > 0.0f)) throw InvalidArgument("repeat penalty must be > 0");
  }
};

/// Index of the largest value (the first one on ties).
inline std::int32_t argmax(std::span<const float> v) {
  return std::int32_t(std::max_element(v.begin(), v.end()) - v.begin());
}

class Sampler {
 public:
  explicit Sampler(SamplerParams p = {}) : p_(p), state_(p.seed) { p_.validate(); }

  std::int32_t sample(std::span<const float> logits, std::span<const std::int32_t> recent = {}) {
    work_.assign(logits.begin(), logits.end());
    if (p_.repeat_penalty != 1.0f)
      for (auto id : recent) {
        if (id < 0 || std::size_t(id) >= work_.size()) continue;
        float& l = work_[std::size_t(id)];
        l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
      }
    if (p_.temperature == 0.0f) return argmax(work_);
    // Candidates sorted by logit, truncated by top-k, then softmax, then top-p.
    idx_.resize(work_.size());
    std::iota(idx_.begin(), idx_.end(), 0);
    std::size_t k = p_.top_k > 0 ? std::min<std::size_t>(std::size_t(p_.top_k), idx_.size()) : idx_.size();
    std::partial_sort(idx_.begin(), idx_.begin() + std::ptrdiff_t(k), idx_.end(),
                      [&](int a, int b) { return work_[std::size_t(a)] > work_[std::size_t(b)] || (work_[std::size_t(a)] == work_[std::size_t(b)] && a < b); });
    idx_.resize(k);
    prob_.resize(k);
    const float m = work_[std::size_t(idx_[0])];
    double sum = 0.0;
    for (std::size_t i = 0; i < k; ++i) sum += prob_[i] = std::exp((work_[std::size_t(idx_[i])] - m) / p_.temperature);
    double mass = 0.0;
    std::size_t n = 0;
    for (; n < k; ++n) {
      prob_[n] = float(prob_[n] / sum);
      mass += prob_[n];
      if (mass >= p_.top_p) {
        ++n;
        break;
      }
    }
    n = std::min(n, k);
    double total = 0.0;
    for (std::size_t i = 0; i < n; ++i) total += prob_[i];
    const double r = uniform() * total;
    double acc = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      acc += prob_[i];
      if (r < acc) return idx_[i];
    }
    return idx_[n - 1];
  }

 private:
  double uniform() {  // splitmix64 -> [0, 1), identical on every platform
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return double(z >> 11) * 0x1.0p-53;
  }
  SamplerParams p_;
  std::uint64_t state_;
  std::vector<float> work_, prob_;
  std::vector<int> idx_;
};

}  // namespace lazyllm
