// SPDX-License-Identifier: MIT
// Numeric building blocks of the kernels: the storage types (bf16, fp16, fp32) with their
// conversions (Storage<S>, host rounding), 8-wide packs of them (Vec8, pack8, unpack8), and the
// warp and block reductions. No host runtime (runtime.cuh has it).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

namespace lazyllm::gpu {

using bf16 = __nv_bfloat16;
using fp16 = __half;

namespace detail {

/// fp32 -> bf16 on the host, round to nearest even (NaN stays NaN).
inline std::uint16_t float_to_bf16_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return std::uint16_t((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return std::uint16_t(u >> 16);
}
inline float bf16_bits_to_float(std::uint16_t b) {
  const std::uint32_t u = std::uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
/// The value fp32 `f` has after a round trip through bf16 (what the GPU sees of a weight).
inline float round_bf16(float f) { return bf16_bits_to_float(float_to_bf16_bits(f)); }

/// fp32 -> fp16 on the host, round to nearest even (the CUDA header's conversion).
inline std::uint16_t float_to_fp16_bits(float f) {
  const __half h = __float2half_rn(f);
  std::uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}

// ------------------------------------------------------------------ device helpers

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // `part` may still be read by a previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  float t = lane < nw ? part[lane] : 0.0f;
  return warp_sum(t);
}

}  // namespace detail

/// What the kernels need of a 2-byte storage type S (weights, GEMM inputs and outputs, K/V):
/// conversions (round to nearest even), its pair type, and the host rounding. bf16 is the
/// default; fp16 keeps 3 more mantissa bits at a smaller range. The primary template refuses
/// anything else in plain words.
template <class S>
struct Storage {
  static_assert(sizeof(S) == 0, "lazyllm::gpu: the storage type must be gpu::bf16, gpu::fp16 or float");
};
template <>
struct Storage<bf16> {
  using pair = __nv_bfloat162;
  static constexpr const char* kName = "bf16";
  __device__ static float to_float(bf16 v) { return __bfloat162float(v); }
  __device__ static bf16 from_float(float f) { return __float2bfloat16_rn(f); }
  __device__ static float2 to_float2(pair v) { return __bfloat1622float2(v); }
  __device__ static pair from_float2(float lo, float hi) { return __floats2bfloat162_rn(lo, hi); }
  static std::uint16_t host_bits(float f) { return detail::float_to_bf16_bits(f); }
};
template <>
struct Storage<fp16> {
  using pair = __half2;
  static constexpr const char* kName = "fp16";
  __device__ static float to_float(fp16 v) { return __half2float(v); }
  __device__ static fp16 from_float(float f) { return __float2half_rn(f); }
  __device__ static float2 to_float2(pair v) { return __half22float2(v); }
  __device__ static pair from_float2(float lo, float hi) { return __floats2half2_rn(lo, hi); }
  static std::uint16_t host_bits(float f) { return detail::float_to_fp16_bits(f); }
};

/// fp32 storage: the verification mode (weights and K/V in fp32, fp32 GEMMs without TF32, a
/// simple fp32 attention kernel): slow, but it computes what the CPU reference computes.
template <>
struct Storage<float> {
  using pair = float2;
  static constexpr const char* kName = "fp32";
  __device__ static float to_float(float v) { return v; }
  __device__ static float from_float(float f) { return f; }
  __device__ static float2 to_float2(float2 v) { return v; }
  __device__ static float2 from_float2(float lo, float hi) { return make_float2(lo, hi); }
  static std::uint32_t host_bits(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
  }
};

namespace detail {

/// 8 values of storage type S (16 bytes for the 2-byte types, 32 for fp32).
template <class S>
struct alignas(16) Vec8 {
  typename Storage<S>::pair h[4];
};
using Bf16x8 = Vec8<bf16>;

template <class S>
__device__ __forceinline__ void unpack8(const Vec8<S>& v, float (&f)[8]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 t = Storage<S>::to_float2(v.h[i]);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}
template <class S = bf16>
__device__ __forceinline__ Vec8<S> pack8(const float (&f)[8]) {
  Vec8<S> v;
#pragma unroll
  for (int i = 0; i < 4; ++i) v.h[i] = Storage<S>::from_float2(f[2 * i], f[2 * i + 1]);
  return v;
}

}  // namespace detail
}  // namespace lazyllm::gpu
