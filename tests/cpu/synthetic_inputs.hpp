// SPDX-License-Identifier: MIT
// Inputs and error measures the CPU, GPU and multi-GPU tests share: deterministic prompts for
// random-weight models and the normalised error every test bounds. No dependencies beyond the
// standard library, so nvcc and the tests without data paths include it too.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <vector>

namespace lazyllm::test {

/// n token ids, BOS (1) first, the rest pseudo-random in [3, vocab) from `seed` (an LCG, so every
/// test and platform sees the same prompt).
inline std::vector<std::int32_t> prompt_of(int n, unsigned seed, int vocab) {
  std::vector<std::int32_t> p{1};
  std::uint32_t s = seed;
  while (int(p.size()) < n) {
    s = s * 1664525u + 1013904223u;
    p.push_back(3 + std::int32_t((s >> 8) % std::uint32_t(vocab - 3)));
  }
  return p;
}

/// max|a - b| / max|b| over the elements.
inline double norm_err(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size()) throw std::invalid_argument("norm_err: sizes differ");
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(double(a[i]) - double(b[i])));
    den = std::max(den, std::abs(double(b[i])));
  }
  return num / std::max(den, 1e-30);
}

}  // namespace lazyllm::test
