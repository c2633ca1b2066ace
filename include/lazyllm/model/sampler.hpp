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
  float min_p = 0.0f;           // in [0, 1]: drop tokens less likely than min_p x the most likely one
  float repeat_penalty = 1.0f;  // > 1 discourages tokens already in `recent`
  std::uint64_t seed = 0;
  void validate() const {
    if (!(temperature >= 0.0f)) throw InvalidArgument("temperature must be >= 0");
    if (top_k < 0) throw InvalidArgument("top-k must be >= 0");
    if (!(top_p > 0.0f && top_p <= 1.0f)) throw InvalidArgument("top-p must be in (0, 1]");
    if (!(min_p >= 0.0f && min_p <= 1.0f)) throw InvalidArgument("min-p must be in [0, 1]");
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

  /// The next token: candidates sorted by logit (descending; the lower id first on ties), cut to
  /// top-k, softmax at the temperature over them, cut to those at least min-p times as likely as
  /// the first (renormalised), cut to the shortest prefix whose mass reaches top-p, then one draw
  /// from that prefix. Only as much of the order as the top-p cut and the
  /// draw look at is sorted (a peaked distribution needs a few dozen of 32000 ids: 0.2 ms per token
  /// where sorting the whole vocabulary took 4 ms); the draws are the full sort's.
  std::int32_t sample(std::span<const float> logits, std::span<const std::int32_t> recent = {}) {
    work_.assign(logits.begin(), logits.end());
    if (p_.repeat_penalty != 1.0f)
      for (auto id : recent) {
        if (id < 0 || std::size_t(id) >= work_.size()) continue;
        float& l = work_[std::size_t(id)];
        l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
      }
    if (p_.temperature == 0.0f) return argmax(work_);
    idx_.resize(work_.size());
    std::iota(idx_.begin(), idx_.end(), 0);
    const auto before = [&](int a, int b) {
      return work_[std::size_t(a)] > work_[std::size_t(b)] || (work_[std::size_t(a)] == work_[std::size_t(b)] && a < b);
    };
    // The top-k candidates, in no order yet (all of them when top_k is 0).
    const std::size_t k = p_.top_k > 0 ? std::min<std::size_t>(std::size_t(p_.top_k), idx_.size()) : idx_.size();
    if (k < idx_.size()) std::nth_element(idx_.begin(), idx_.begin() + std::ptrdiff_t(k - 1), idx_.end(), before);
    idx_.resize(k);
    // Sorted prefix [0, sorted): grown in steps as the scans below reach it.
    std::size_t sorted = 0;
    const auto sorted_to = [&](std::size_t i) {  // positions 0..i are in final order
      if (i < sorted) return;
      const std::size_t to = std::min(idx_.size(), std::max(i + 1, std::max<std::size_t>(64, 4 * sorted)));
      std::partial_sort(idx_.begin() + std::ptrdiff_t(sorted), idx_.begin() + std::ptrdiff_t(to), idx_.end(), before);
      sorted = to;
    };
    float m = work_[std::size_t(idx_[0])];
    for (const int i : idx_) m = std::max(m, work_[std::size_t(i)]);
    // e_i = exp((l_i - m) / T) for every candidate (indexed by id), and their sum.
    prob_.resize(work_.size());
    double sum = 0.0;
    for (const int i : idx_) sum += prob_[std::size_t(i)] = std::exp((work_[std::size_t(i)] - m) / p_.temperature);
    if (p_.min_p > 0.0f) {
      // min-p: e_i is p_i / p_max, so the candidates kept are those with e_i >= min_p.
      std::size_t w = 0;
      sum = 0.0;
      for (const int i : idx_)
        if (prob_[std::size_t(i)] >= double(p_.min_p)) idx_[w++] = i, sum += prob_[std::size_t(i)];
      idx_.resize(w);
    }
    const std::size_t k_kept = idx_.size();
    const auto p_at = [&](std::size_t pos) {  // p of the candidate at sorted position pos
      sorted_to(pos);
      return float(prob_[std::size_t(idx_[pos])] / sum);
    };
    // top-p: n = 1 + the first position whose prefix mass reaches top_p (else all of them).
    std::size_t n = k_kept;
    double total = 0.0;
    if (p_.top_p < 1.0f) {
      for (std::size_t i = 0; i < k_kept; ++i) {
        total += p_at(i);
        if (total >= p_.top_p) {
          n = i + 1;
          break;
        }
      }
    } else {  // every candidate stays: their mass, in any order
      for (const int i : idx_) total += float(prob_[std::size_t(i)] / sum);
    }
    const double r = uniform() * total;
    double acc = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      acc += p_at(i);
      if (r < acc) return idx_[i];
    }
    sorted_to(n - 1);
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
