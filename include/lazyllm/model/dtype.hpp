// SPDX-License-Identifier: MIT
// Element types of stored weights (fp32, fp16, bf16) and exact conversions to fp32.
#pragma once
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace lazyllm {

enum class TensorDType : std::uint8_t { F32, F16, BF16 };

inline const char* to_string(TensorDType t) {
  return t == TensorDType::F32 ? "F32" : t == TensorDType::F16 ? "F16" : "BF16";
}
inline std::size_t dtype_size(TensorDType t) { return t == TensorDType::F32 ? 4 : 2; }

namespace detail {

/// IEEE half -> float, exact for every value (subnormals, inf, nan).
inline float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
  if (exp == 0) {  // +-0 and subnormals: man * 2^-24, exactly representable in fp32
    const float mag = std::ldexp(float(man), -24);
    return sign ? -mag : mag;
  }
  const std::uint32_t bits = exp == 0x1F ? sign | 0x7F800000u | (man << 13)            // inf / nan (payload kept)
                                         : sign | ((exp + 112u) << 23) | (man << 13);  // rebias 15 -> 127
  return std::bit_cast<float>(bits);
}

/// bfloat16 -> float: the upper half of a float32.
inline float bf16_to_f32(std::uint16_t b) { return std::bit_cast<float>(std::uint32_t(b) << 16); }

}  // namespace detail

}  // namespace lazyllm
