// SPDX-License-Identifier: MIT
// The rank of the LazyLLM percentile rule, exact for the decimal the user wrote: one definition
// for the host (policy/schedule.hpp) and the device (backend/cuda/select.cuh). No standard
// library beyond <cstdint>, so nvcc compiles it for both sides.
#pragma once
#include <cstdint>

#include "lazyllm/detail/host_device.hpp"

namespace lazyllm {

/// Percentiles are decimals with at most 6 places (Schedule::parse refuses more), held as a
/// float. A float is within 3e-8 of any such decimal in [0, 1), so rounding p * 10^6 recovers the
/// decimal's millionths exactly, and the rank below is computed in integers from them: 0.7 of 10
/// is rank 7, although float(0.7) * 10 is 6.99999988.
inline constexpr std::int64_t kPercentileScale = 1000000;

/// `p` in whole millionths (0 for p <= 0 or NaN, kPercentileScale for p >= 1).
LAZYLLM_HOST_DEVICE constexpr std::int64_t percentile_millionths(float p) {
  if (!(p > 0.0f)) return 0;
  if (p >= 1.0f) return kPercentileScale;
  return std::int64_t(double(p) * double(kPercentileScale) + 0.5);
}

/// The threshold's rank among n scores sorted ascending: min(floor(p * n), n - 1), with p the
/// decimal percentile_millionths() recovers (0 when n <= 0). Keeping the scores at or above the
/// value at this rank keeps at least n - floor(p * n) of them.
LAZYLLM_HOST_DEVICE constexpr std::int64_t percentile_rank(std::int64_t n, float p) {
  if (n <= 0) return 0;
  const std::int64_t k = n / kPercentileScale * percentile_millionths(p) +
                         n % kPercentileScale * percentile_millionths(p) / kPercentileScale;  // no overflow
  return k < n - 1 ? k : n - 1;
}

}  // namespace lazyllm
