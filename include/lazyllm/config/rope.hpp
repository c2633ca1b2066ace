// SPDX-License-Identifier: MIT
// The rotary embedding's frequencies from a config: one host function for every RoPE type, the
// only place they are derived. The CPU reference rotates with this table directly; the CUDA
// backends precompute (cos, sin) per position from it. The formulas are those of Hugging Face
// transformers' rope initialisation (default, linear, llama3, yarn), computed in double.
#pragma once
#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "lazyllm/config/model_config.hpp"

namespace lazyllm {

/// What RoPE needs beyond the position: the inverse frequency of each of the head_dim/2 pairs and
/// the factor cos and sin are multiplied by (1 except for YaRN).
struct RopeFrequencies {
  std::vector<double> inv_freq;  // [head_dim / 2]
  double attention_factor = 1.0;
};

namespace detail {
/// YaRN's attention-scale helper: 1 for scale <= 1, else 0.1 m ln(scale) + 1.
inline double yarn_get_mscale(double scale, double m) { return scale <= 1.0 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; }
}  // namespace detail

/// The inverse-frequency table and attention factor of `c` (validated first: ConfigError).
inline RopeFrequencies rope_frequencies(const RuntimeConfig& c) {
  c.validate();
  const int hd = c.head_dim(), half = hd / 2;
  const RopeScaling& rs = c.rope_scaling;
  const double base = double(c.rope_theta), factor = double(rs.factor);
  RopeFrequencies r;
  r.inv_freq.resize(std::size_t(half));
  // theta^(-2i/hd): the same expression as before rope types existed, so default RoPE is unchanged.
  for (int i = 0; i < half; ++i) r.inv_freq[std::size_t(i)] = std::pow(base, -2.0 * i / hd);
  switch (rs.type) {
    case RopeType::Default:
      break;
    case RopeType::Linear:
      for (auto& f : r.inv_freq) f /= factor;
      break;
    case RopeType::Llama3: {
      // Wavelengths longer than original_ctx / low_freq_factor are slowed down by `factor`,
      // shorter than original_ctx / high_freq_factor kept; in between, a linear blend in 1/wavelen.
      const double old_ctx = double(rs.original_max_position_embeddings);
      const double lo = double(rs.low_freq_factor), hi = double(rs.high_freq_factor);
      const double low_wavelen = old_ctx / lo, high_wavelen = old_ctx / hi;
      for (auto& f : r.inv_freq) {
        const double wavelen = 2.0 * std::numbers::pi / f;
        if (wavelen > low_wavelen) {
          f /= factor;
        } else if (!(wavelen < high_wavelen)) {
          const double smooth = (old_ctx / wavelen - lo) / (hi - lo);
          f = (1.0 - smooth) * f / factor + smooth * f;
        }
      }
      break;
    }
    case RopeType::Yarn: {
      const double orig =
          rs.original_max_position_embeddings > 0 ? double(rs.original_max_position_embeddings) : double(c.max_seq_len);
      // The pair index at which a frequency completes `rotations` turns over the original context.
      auto correction_dim = [&](double rotations) {
        return (hd * std::log(orig / (rotations * 2.0 * std::numbers::pi))) / (2.0 * std::log(base));
      };
      double low = correction_dim(double(rs.beta_fast)), high = correction_dim(double(rs.beta_slow));
      if (rs.truncate) low = std::floor(low), high = std::ceil(high);
      low = std::max(low, 0.0);
      high = std::min(high, double(hd - 1));
      if (low == high) high += 0.001;  // no division by zero in the ramp
      for (int i = 0; i < half; ++i) {
        const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
        const double extrapolation = 1.0 - ramp;  // weight of the original frequency
        double& f = r.inv_freq[std::size_t(i)];
        f = (f / factor) * (1.0 - extrapolation) + f * extrapolation;
      }
      if (rs.attention_factor > 0.0f)
        r.attention_factor = double(rs.attention_factor);
      else if (rs.mscale != 0.0f && rs.mscale_all_dim != 0.0f)
        r.attention_factor = detail::yarn_get_mscale(factor, double(rs.mscale)) /
                             detail::yarn_get_mscale(factor, double(rs.mscale_all_dim));
      else
        r.attention_factor = detail::yarn_get_mscale(factor, 1.0);
      break;
    }
  }
  return r;
}

}  // namespace lazyllm
