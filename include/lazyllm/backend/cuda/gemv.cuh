// SPDX-License-Identifier: MIT
// The decode linear layers: out = Epilogue(W * Input(x)) for 1..kGemvMaxRows rows, where the
// time is the read of W (bf16 [items * Epilogue::kRows, K], row-major) and nothing else. One
// kernel per linear layer, with the pass that precedes or follows it folded in through two hook
// structs, so a decode layer is four of these plus RoPE and attention:
//
//   input hook  (stages the rows into shared memory as bf16)
//     Bf16Rows       rows of a bf16 buffer (the attention output, the SwiGLU output)
//     RmsNormRows    bf16(rmsnorm(x) * w) of fp32 residual rows: the same arithmetic, in the same
//                    order, as rmsnorm_kernel (kernels.cuh), so the GEMM and GEMV paths see
//                    identical normalised inputs
//   epilogue hook (what happens to the fp32 dot products of one item)
//     StoreBf16 / StoreF32   y[r, item] = acc  (QKV projection; logits)
//     AddF32                 x[r, item] += acc (Wo and W2 with the residual add)
//     SwiGlu                 h[r, item] = silu(g) * u, g and u the dot products with weight rows
//                            item and hid + item, each rounded to bf16 first (swiglu_kernel's
//                            inputs in the GEMM path)
//
// Each warp owns whole items (all of K), streams its weight rows with 16-byte non-caching loads,
// kUnroll chunks per lane in flight, and reduces with shuffles; no split-K, no atomics, so the
// result is deterministic. Every layout constraint (K % 8 == 0, 16-byte aligned rows) is one the
// backend already guarantees.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "lazyllm/backend/cuda/common.cuh"
#include "lazyllm/backend/cuda/kernels.cuh"
#include "lazyllm/detail/error.hpp"

namespace lazyllm::cuda {

/// The most rows the GEMV path takes; the backend uses cuBLASLt above it.
inline constexpr int kGemvMaxRows = 4;

namespace gemv {

// ------------------------------------------------------------------ input hooks

/// Rows of a bf16 buffer with leading dimension `ld` (elements).
struct Bf16Rows {
  const bf16* a = nullptr;
  int ld = 0;
  __device__ void stage(bf16* xs, int rows, int k) const {
    const int chunks = k / 8;
    for (int i = int(threadIdx.x); i < rows * chunks; i += int(blockDim.x)) {
      const int r = i / chunks, c = i % chunks;
      reinterpret_cast<detail::Bf16x8*>(xs + std::size_t(r) * k)[c] =
          reinterpret_cast<const detail::Bf16x8*>(a + std::int64_t(r) * ld)[c];
    }
  }
};

/// bf16(x / sqrt(mean(x^2) + eps) * w) of fp32 rows x (leading dimension `ld`): rmsnorm_kernel's
/// arithmetic (detail::rmsnorm_row) with its block size (kGemvThreads == Bf16Traits::kNormThreads).
struct RmsNormRows {
  const float* x = nullptr;
  int ld = 0;
  const float* w = nullptr;
  float eps = 0;
  __device__ void stage(bf16* xs, int rows, int k) const {
    for (int r = 0; r < rows; ++r) detail::rmsnorm_row(x + std::int64_t(r) * ld, w, k, eps, xs + std::size_t(r) * k);
  }
};

// ------------------------------------------------------------------ epilogue hooks

struct StoreBf16 {
  static constexpr int kRows = 1;
  bf16* y = nullptr;
  int ld = 0;
  __device__ std::int64_t weight_row(int item, int) const { return item; }
  __device__ void apply(int r, int item, const float* acc) const {
    y[std::int64_t(r) * ld + item] = __float2bfloat16(acc[0]);
  }
};

struct StoreF32 {
  static constexpr int kRows = 1;
  float* y = nullptr;
  int ld = 0;
  __device__ std::int64_t weight_row(int item, int) const { return item; }
  __device__ void apply(int r, int item, const float* acc) const { y[std::int64_t(r) * ld + item] = acc[0]; }
};

/// The residual add: the fp32 dot product goes straight into the fp32 residual stream.
struct AddF32 {
  static constexpr int kRows = 1;
  float* x = nullptr;
  int ld = 0;
  __device__ std::int64_t weight_row(int item, int) const { return item; }
  __device__ void apply(int r, int item, const float* acc) const { x[std::int64_t(r) * ld + item] += acc[0]; }
};

/// Fused gate/up weights [2 hid, K] (gate rows first): h = silu(gate) * up.
struct SwiGlu {
  static constexpr int kRows = 2;
  bf16* h = nullptr;
  int ld = 0;
  int hid = 0;
  __device__ std::int64_t weight_row(int item, int j) const { return std::int64_t(item) + std::int64_t(j) * hid; }
  __device__ void apply(int r, int item, const float* acc) const {
    const float g = __bfloat162float(__float2bfloat16(acc[0])), u = __bfloat162float(__float2bfloat16(acc[1]));
    h[std::int64_t(r) * ld + item] = __float2bfloat16(g / (1.0f + __expf(-g)) * u);
  }
};

}  // namespace gemv

namespace detail {

inline constexpr int kGemvThreads = 256;
static_assert(kGemvThreads == Bf16Traits::kNormThreads, "gemv::RmsNormRows must sum like rmsnorm_kernel");
inline constexpr int kGemvWarps = kGemvThreads / 32;
inline constexpr int kGemvUnroll = 4;  // 16-byte weight loads in flight per lane and weight row

__device__ __forceinline__ uint4 load_stream(const uint4* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

__device__ __forceinline__ float dot8(const uint4& w, const float (&x)[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&w);
  float s = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    s = fmaf(f.x, x[2 * i], s);
    s = fmaf(f.y, x[2 * i + 1], s);
  }
  return s;
}

/// One block stages the `rows` input rows (rows * K bf16 of dynamic shared memory), then each
/// warp computes whole items: for each of its Epi::kRows weight rows, the dot products with
/// every input row.
template <class In, class Epi>
__global__ void __launch_bounds__(kGemvThreads)
    gemv_kernel(In in, const bf16* __restrict__ w, int k, int items, int rows, Epi epi) {
  extern __shared__ uint4 gemv_smem[];
  bf16* xs = reinterpret_cast<bf16*>(gemv_smem);
  in.stage(xs, rows, k);
  __syncthreads();
  constexpr int J = Epi::kRows, U = kGemvUnroll, R = kGemvMaxRows;
  const int lane = int(threadIdx.x) & 31, chunks = k / 8;
  for (int item = int(blockIdx.x) * kGemvWarps + (int(threadIdx.x) >> 5); item < items;
       item += int(gridDim.x) * kGemvWarps) {
    const uint4* wr[J];
#pragma unroll
    for (int j = 0; j < J; ++j) wr[j] = reinterpret_cast<const uint4*>(w + epi.weight_row(item, j) * k);
    float acc[J][R] = {};
    auto chunk = [&](const uint4(&wv)[J], int c) {
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (r >= rows) break;
        float xf[8];
        unpack8(reinterpret_cast<const Bf16x8*>(xs + std::size_t(r) * k)[c], xf);
#pragma unroll
        for (int j = 0; j < J; ++j) acc[j][r] += dot8(wv[j], xf);
      }
    };
    int c = lane;
    for (; c + 32 * (U - 1) < chunks; c += 32 * U) {
      uint4 wv[U][J];
#pragma unroll
      for (int u = 0; u < U; ++u)
#pragma unroll
        for (int j = 0; j < J; ++j) wv[u][j] = load_stream(wr[j] + c + 32 * u);
#pragma unroll
      for (int u = 0; u < U; ++u) chunk(wv[u], c + 32 * u);
    }
    for (; c < chunks; c += 32) {
      uint4 wv[J];
#pragma unroll
      for (int j = 0; j < J; ++j) wv[j] = load_stream(wr[j] + c);
      chunk(wv, c);
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (r >= rows) break;
      float a[J];
#pragma unroll
      for (int j = 0; j < J; ++j) a[j] = warp_sum(acc[j][r]);
      if (lane == r) epi.apply(r, item, a);  // lanes 0..rows-1 write one row each
    }
  }
}

inline int gemv_max_blocks() {
  static const int n = [] {
    int dev = 0, sms = 0;
    LAZYLLM_CUDA_CHECK(cudaGetDevice(&dev));
    LAZYLLM_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    return sms * 4;
  }();
  return n;
}

}  // namespace detail

namespace gemv {

/// out = epi(W * in(x)) for `rows` (1..kGemvMaxRows) input rows of length k (a multiple of 8);
/// W has items * Epi::kRows rows of k bf16 (16-byte aligned). Queued on `stream`.
template <class In, class Epi>
void run(const In& in, const bf16* w, int k, int items, int rows, const Epi& epi, cudaStream_t stream) {
  if (rows <= 0 || items <= 0) return;
  if (rows > kGemvMaxRows || k <= 0 || k % 8 != 0)
    throw InvalidArgument("cuda::gemv::run: rows " + std::to_string(rows) + " (at most " +
                          std::to_string(kGemvMaxRows) + "), k " + std::to_string(k) + " (a positive multiple of 8)");
  const std::size_t smem = std::size_t(rows) * std::size_t(k) * sizeof(bf16);
  if (smem > 48 * 1024) {
    static int opted = 0;  // per instantiation: the largest dynamic shared memory allowed so far
    if (int(smem) > opted) {
      LAZYLLM_CUDA_CHECK(
          cudaFuncSetAttribute(detail::gemv_kernel<In, Epi>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
      opted = int(smem);
    }
  }
  const int blocks = std::min(int(detail::blocks_for(items, detail::kGemvWarps)), detail::gemv_max_blocks());
  detail::gemv_kernel<In, Epi><<<blocks, detail::kGemvThreads, smem, stream>>>(in, w, k, items, rows, epi);
  LAZYLLM_CUDA_CHECK_LAUNCH();
}

}  // namespace gemv
}  // namespace lazyllm::cuda
