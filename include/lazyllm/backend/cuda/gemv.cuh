// SPDX-License-Identifier: MIT
// The decode linear layers: out = Epilogue(W * Input(x)) for 1..kGemvMaxRows rows, where the
// time is the read of W (S = bf16 or fp16, [items * Epilogue::kRows, K], row-major) and nothing
// else. One kernel per linear layer, with the pass that precedes or follows it folded in through
// two hook structs, so a decode layer is four of these plus RoPE and attention:
//
//   input hook  (stages the rows into shared memory as S; its store_t is the weights' type too)
//     Rows<S>          rows of an S buffer (the attention output, the SwiGLU output); Bf16Rows
//     RmsNormRowsT<S>  S(rmsnorm(x) * w) of fp32 residual rows (RmsNormRows: bf16): the same
//                      arithmetic, in the same order, as rmsnorm_kernel (kernels.cuh), so the
//                      GEMM and GEMV paths see identical normalised inputs
//   epilogue hook (what happens to the fp32 dot products of one item)
//     Store<S> / StoreF32    y[r, item] = acc  (QKV projection; logits); StoreBf16 = Store<bf16>
//     AddF32                 x[r, item] += acc (Wo and W2 with the residual add)
//     SwiGluT<S>             h[r, item] = silu(g) * u, g and u the dot products with weight rows
//                            item and hid + item, each rounded to S first (swiglu_kernel's
//                            inputs in the GEMM path); SwiGlu = SwiGluT<bf16>
//
// fp32 storage has no GEMV path (the loads below are 16-byte words of eight 2-byte values).
//
// Each warp owns whole items (all of K), streams its weight rows with 16-byte non-caching loads,
// kUnroll chunks per lane in flight, and reduces with shuffles; no split-K, no atomics, so the
// result is deterministic. Every layout constraint (K % 8 == 0, 16-byte aligned rows) is one the
// backend already guarantees.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "lazyllm/backend/cuda/kernels.cuh"
#include "lazyllm/backend/cuda/numeric.cuh"
#include "lazyllm/backend/cuda/runtime.cuh"
#include "lazyllm/backend/cuda/tuning.cuh"
#include "lazyllm/detail/error.hpp"

namespace lazyllm::gpu {

/// The most rows the GEMV path takes; the backend uses cuBLASLt above it.
inline constexpr int kGemvMaxRows = tuning::Gemv::kMaxRows;

namespace gemv {

// ------------------------------------------------------------------ input hooks

/// Rows of an S buffer with leading dimension `ld` (elements).
template <class S>
struct Rows {
  using store_t = S;
  const S* a = nullptr;
  int ld = 0;
  __device__ void stage(S* xs, int rows, int k) const {
    const int chunks = k / 8;
    for (int i = int(threadIdx.x); i < rows * chunks; i += int(blockDim.x)) {
      const int r = i / chunks, c = i % chunks;
      reinterpret_cast<detail::Vec8<S>*>(xs + std::size_t(r) * k)[c] =
          reinterpret_cast<const detail::Vec8<S>*>(a + std::int64_t(r) * ld)[c];
    }
  }
};
using Bf16Rows = Rows<bf16>;

/// S(x / sqrt(mean(x^2) + eps) * w) of fp32 rows x (leading dimension `ld`): rmsnorm_kernel's
/// arithmetic (detail::rmsnorm_row) with its block size (kGemvThreads == Bf16Traits::kNormThreads).
template <class S>
struct RmsNormRowsT {
  using store_t = S;
  const float* x = nullptr;
  int ld = 0;
  const float* w = nullptr;
  float eps = 0;
  __device__ void stage(S* xs, int rows, int k) const {
    for (int r = 0; r < rows; ++r) detail::rmsnorm_row(x + std::int64_t(r) * ld, w, k, eps, xs + std::size_t(r) * k);
  }
};
using RmsNormRows = RmsNormRowsT<bf16>;

// ------------------------------------------------------------------ epilogue hooks

template <class S>
struct Store {
  static constexpr int kRows = 1;
  S* y = nullptr;
  int ld = 0;
  __device__ std::int64_t weight_row(int item, int) const { return item; }
  __device__ void apply(int r, int item, const float* acc) const {
    y[std::int64_t(r) * ld + item] = Storage<S>::from_float(acc[0]);
  }
};
using StoreBf16 = Store<bf16>;

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
template <class S>
struct SwiGluT {
  static constexpr int kRows = 2;
  S* h = nullptr;
  int ld = 0;
  int hid = 0;
  __device__ std::int64_t weight_row(int item, int j) const { return std::int64_t(item) + std::int64_t(j) * hid; }
  __device__ void apply(int r, int item, const float* acc) const {
    const float g = Storage<S>::to_float(Storage<S>::from_float(acc[0]));
    const float u = Storage<S>::to_float(Storage<S>::from_float(acc[1]));
    h[std::int64_t(r) * ld + item] = Storage<S>::from_float(g / (1.0f + __expf(-g)) * u);
  }
};
using SwiGlu = SwiGluT<bf16>;

}  // namespace gemv

namespace detail {

inline constexpr int kGemvThreads = 256;
static_assert(kGemvThreads == Bf16Traits::kNormThreads, "gemv::RmsNormRows must sum like rmsnorm_kernel");
inline constexpr int kGemvWarps = kGemvThreads / 32;
inline constexpr int kGemvUnroll = tuning::Gemv::kUnroll;  // 16-byte weight loads in flight per lane and weight row

__device__ __forceinline__ uint4 load_stream(const uint4* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

template <class S>
__device__ __forceinline__ float dot8(const uint4& w, const float (&x)[8]) {
  const auto* h = reinterpret_cast<const typename Storage<S>::pair*>(&w);
  float s = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = Storage<S>::to_float2(h[i]);
    s = fmaf(f.x, x[2 * i], s);
    s = fmaf(f.y, x[2 * i + 1], s);
  }
  return s;
}

/// One block stages the `rows` input rows (rows * K of S in dynamic shared memory), then each
/// warp computes whole items: for each of its Epi::kRows weight rows, the dot products with
/// every input row.
template <class In, class Epi>
__global__ void __launch_bounds__(kGemvThreads)
    gemv_kernel(In in, const typename In::store_t* __restrict__ w, int k, int items, int rows, Epi epi) {
  using S = typename In::store_t;
  static_assert(sizeof(S) == 2, "gpu::gemv: 2-byte storage only (bf16, fp16); fp32 uses cuBLASLt");
  extern __shared__ uint4 gemv_smem[];
  S* xs = reinterpret_cast<S*>(gemv_smem);
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
        unpack8(reinterpret_cast<const Vec8<S>*>(xs + std::size_t(r) * k)[c], xf);
#pragma unroll
        for (int j = 0; j < J; ++j) acc[j][r] += dot8<S>(wv[j], xf);
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
    return sms * tuning::Gemv::kBlocksPerSm;
  }();
  return n;
}

}  // namespace detail

namespace gemv {

/// out = epi(W * in(x)) for `rows` (1..kGemvMaxRows) input rows of length k (a multiple of 8);
/// W has items * Epi::kRows rows of k In::store_t (16-byte aligned). Queued on `stream`.
template <class In, class Epi>
void run(const In& in, const typename In::store_t* w, int k, int items, int rows, const Epi& epi, cudaStream_t stream) {
  if (rows <= 0 || items <= 0) return;
  if (rows > kGemvMaxRows || k <= 0 || k % 8 != 0)
    throw InvalidArgument("gpu::gemv::run: rows " + std::to_string(rows) + " (at most " + std::to_string(kGemvMaxRows) +
                          "), k " + std::to_string(k) + " (a positive multiple of 8)");
  const std::size_t smem = std::size_t(rows) * std::size_t(k) * sizeof(typename In::store_t);
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
}  // namespace lazyllm::gpu
