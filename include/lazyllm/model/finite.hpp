// SPDX-License-Identifier: MIT
// Finiteness checks: a model whose weights hold NaN or Inf runs "fine" and prints garbage (every
// argmax of all-NaN logits is id 0), so the driver checks the weights once at load and the logits
// of each step. Both read the bits (exponent all ones) and never trap or depend on -ffast-math.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "lazyllm/detail/error.hpp"
#include "lazyllm/detail/parallel.hpp"
#include "lazyllm/model/weights.hpp"

namespace lazyllm {

/// Where check_finite() found a value that is not finite.
struct NonFinite {
  std::string tensor;      // as for_each_named_weight() spells it: "layers[2].wq"
  std::int64_t index = 0;  // element index in the tensor
  float value = 0.0f;      // the value (nan, inf or -inf)
};

namespace detail {

/// Index of the first element of `t` in [0, n) that is NaN or +-Inf, or -1. Reads the bits: fp32
/// exponent 0xFF, fp16 0x1F, bf16 0xFF. Threads over chunks for large tensors.
inline std::int64_t first_non_finite(const WeightView& t, std::int64_t n) {
  const auto* bytes = static_cast<const unsigned char*>(t.data());
  const bool wide = t.dtype() == TensorDType::F32;
  const std::uint32_t mask = wide ? 0x7F800000u : t.dtype() == TensorDType::F16 ? 0x7C00u : 0x7F80u;
  auto bad_at = [&](std::int64_t i) {
    std::uint32_t u = 0;
    if (wide) {
      std::memcpy(&u, bytes + i * 4, 4);
    } else {
      std::uint16_t h;
      std::memcpy(&h, bytes + i * 2, 2);
      u = h;
    }
    return (u & mask) == mask;
  };
  std::atomic<std::int64_t> first{n};
  parallel_for(n, 1, [&](std::int64_t b, std::int64_t e) {
    constexpr std::int64_t kBlock = 4096;  // a branch-free scan per block, then a look for where
    for (std::int64_t blk = b; blk < e; blk += kBlock) {
      const std::int64_t end = std::min(e, blk + kBlock);
      bool bad = false;
      for (std::int64_t i = blk; i < end; ++i) bad |= bad_at(i);
      if (!bad) continue;
      std::int64_t i = blk;
      while (!bad_at(i)) ++i;
      for (std::int64_t cur = first.load(); i < cur && !first.compare_exchange_weak(cur, i);) {
      }
      return;
    }
  });
  const std::int64_t f = first.load();
  return f < n ? f : -1;
}

/// "nan", "inf" or "-inf" for a value that is not finite (from its bits).
inline std::string finite_word(float v) {
  std::uint32_t u;
  std::memcpy(&u, &v, 4);
  return (u & 0x007FFFFFu) != 0 ? "nan" : (u >> 31) != 0 ? "-inf" : "inf";
}

inline bool is_finite_bits(float v) {
  std::uint32_t u;
  std::memcpy(&u, &v, 4);
  return (u & 0x7F800000u) != 0x7F800000u;
}

}  // namespace detail

/// The first weight of `w` (in for_each_named_weight order) that is NaN or +-Inf, or nullopt.
/// Reads every weight once, on LAZYLLM_THREADS threads: about the time of a memory copy of the
/// model. Needs the weights to match the config (check_weights).
inline std::optional<NonFinite> find_non_finite(const ModelWeights& w) {
  std::optional<NonFinite> found;
  for_each_named_weight(w, [&](const std::string& name, const WeightView& t, std::int64_t n) {
    if (found || t.empty()) return;
    const std::int64_t i = detail::first_non_finite(t, n);
    if (i >= 0) found = NonFinite{name, i, t.at(i)};
  });
  return found;
}

/// Throws FormatError naming the model's source and the first tensor holding a NaN or an Inf:
///   "m.bin: weight token_embedding[0] is nan: the checkpoint is corrupt (no output could be trusted)"
inline void check_finite(const ModelWeights& w) {
  check_weights(w);
  if (const auto bad = find_non_finite(w))
    throw FormatError(w.source.empty() ? std::string("weights") : w.source,
                      "weight " + bad->tensor + "[" + std::to_string(bad->index) + "] is " +
                          detail::finite_word(bad->value) + ": the checkpoint is corrupt (no output could be trusted)");
}

/// Throws Error when `logits` hold a NaN or an Inf, naming the first and the likely cause:
///   "the logits are not finite (nan at token id 0 of 512): the weights hold NaN/Inf or the
///    activations overflowed (check the weights with check_finite(), or use fp32)"
inline void check_finite_logits(std::span<const float> logits) {
  for (std::size_t i = 0; i < logits.size(); ++i)
    if (!detail::is_finite_bits(logits[i]))
      throw Error("the logits are not finite (" + detail::finite_word(logits[i]) + " at token id " + std::to_string(i) +
                  " of " + std::to_string(logits.size()) +
                  "): the weights hold NaN/Inf or the activations overflowed (check the weights with check_finite(), "
                  "or use fp32)");
}

}  // namespace lazyllm
