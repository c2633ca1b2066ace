// SPDX-License-Identifier: MIT
// The CPU fp32 reference operators. Written for clarity: each is the textbook formula, so every
// other backend can be checked against them.
#pragma once
#include <cassert>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "lazyllm/config/model_config.hpp"
#include "lazyllm/detail/parallel.hpp"

namespace lazyllm::cpu {

/// Dot product of two fp32 vectors with 8 partial sums (vectorisable without -ffast-math).
inline float dot(const float* a, const float* b, int n) {
  float acc[8] = {};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

/// y[r, o] = sum_i x[r, i] * w[o, i]  for r < rows, o < out.  (w row-major [out, in])
inline void matmul(float* y, const float* x, const float* w, int rows, int in, int out) {
  detail::parallel_for(out, std::int64_t{rows} * in, [&](std::int64_t ob, std::int64_t oe) {
    for (int r = 0; r < rows; ++r) {
      const float* xr = x + std::int64_t{r} * in;
      float* yr = y + std::int64_t{r} * out;
      for (std::int64_t o = ob; o < oe; ++o) yr[o] = dot(xr, w + o * in, in);
    }
  });
}

/// out = x / sqrt(mean(x^2) + eps) * w   (one row of n values)
inline void rmsnorm(float* out, const float* x, const float* w, int n, float eps) {
  double ss = 0.0;
  for (int i = 0; i < n; ++i) ss += double(x[i]) * double(x[i]);
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / n + double(eps)));
  for (int i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

/// Rotates one head vector `v` (head_dim values) to position `pos` with the per-pair inverse
/// frequencies `inv_freq` (head_dim/2 values, config/rope.hpp) and cos and sin multiplied by
/// `attention_factor` (YaRN; 1 otherwise). Interleaved pairs (2i, 2i+1); RotateHalf pairs
/// (i, i + head_dim/2).
inline void rope(float* v, int head_dim, std::int32_t pos, const double* inv_freq, double attention_factor,
                 RopeStyle style) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const double angle = double(pos) * inv_freq[i];
    const float c = static_cast<float>(std::cos(angle) * attention_factor),
                s = static_cast<float>(std::sin(angle) * attention_factor);
    const int a = style == RopeStyle::Interleaved ? 2 * i : i;
    const int b = style == RopeStyle::Interleaved ? 2 * i + 1 : i + half;
    const float x0 = v[a], x1 = v[b];
    v[a] = x0 * c - x1 * s;
    v[b] = x0 * s + x1 * c;
  }
}

/// Default RoPE: frequency of pair i is theta^(-2i/head_dim) (the table rope_frequencies() makes
/// for RopeType::Default).
inline void rope(float* v, int head_dim, std::int32_t pos, float theta, RopeStyle style) {
  const int half = head_dim / 2;
  double inv_freq[512];  // head_dim <= 1024 here; wider heads take the table overload
  if (half > 512) {
    std::vector<double> t(static_cast<std::size_t>(half));
    for (int i = 0; i < half; ++i) t[std::size_t(i)] = std::pow(double(theta), -2.0 * i / head_dim);
    return rope(v, head_dim, pos, t.data(), 1.0, style);
  }
  for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(double(theta), -2.0 * i / head_dim);
  rope(v, head_dim, pos, inv_freq, 1.0, style);
}

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

/// In place: gate[i] = silu(gate[i]) * up[i].
inline void swiglu(float* gate, const float* up, int n) {
  for (int i = 0; i < n; ++i) gate[i] = silu(gate[i]) * up[i];
}

/// In-place numerically stable softmax of n values.
inline void softmax(float* x, int n) {
  if (n <= 0) return;
  float m = x[0];
  for (int i = 1; i < n; ++i) m = std::max(m, x[i]);
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace lazyllm::cpu
