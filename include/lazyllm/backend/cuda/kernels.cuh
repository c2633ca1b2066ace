// SPDX-License-Identifier: MIT
// The memory-bound kernels of a decoder layer: embedding gather, RMSNorm, RoPE fused with the
// K/V scatter into cache slots, SwiGLU, and the row gathers of the Aux Cache (the residual adds
// are fp32 accumulation in the GEMMs, gemm.cuh / gemv.cuh). Each kernel is templated on a small
// traits struct and has a host launcher (detail::launch_*) that checks the launch. K/V rows are
// written through a KvStore and Aux rows read and written through an AuxStore (kv_store.cuh).
//
// Conventions: the residual stream (Activations) is fp32 rows x dim; inputs and outputs of the
// GEMMs are a 2-byte storage type S (bf16 or fp16, numeric.cuh's Storage); row widths are
// multiples of 8 so that every thread moves 16 bytes.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>
#include "lazyllm/cache/kv_store.hpp"

#include "lazyllm/backend/cuda/kv_store.cuh"
#include "lazyllm/backend/cuda/numeric.cuh"
#include "lazyllm/backend/cuda/runtime.cuh"
#include "lazyllm/backend/cuda/tuning.cuh"
#include "lazyllm/config/model_config.hpp"
#include "lazyllm/config/rope.hpp"

namespace lazyllm::gpu {

/// Element types of an instantiation: S storage, fp32 residual stream.
template <class S>
struct StoreTraits {
  using store_t = S;                        // weights, GEMM inputs/outputs, K/V cache
  using residual_t = float;                 // the residual stream (Activations) and the Aux Cache
  static constexpr int kVec = 8;            // elements per thread per access (16 bytes)
  static constexpr int kRopeThreads = 128;  // threads per row in RoPE + K/V store
  // Threads per row in RMSNorm.
  static constexpr int kNormThreads = tuning::Elementwise::kNormThreads;
};
using Bf16Traits = StoreTraits<bf16>;

namespace detail {

// ------------------------------------------------------------------ embedding

/// x[r, :] = table[ids[r], :] (S table, fp32 residual rows).
template <class T>
__global__ void embed_kernel(const typename T::store_t* __restrict__ table, const std::int32_t* __restrict__ ids,
                             int rows, int dim, float* __restrict__ x) {
  const int chunks = dim / T::kVec;
  const std::int64_t n = std::int64_t(rows) * chunks;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const int r = int(i / chunks), c = int(i % chunks);
    const Vec8<typename T::store_t> v =
        reinterpret_cast<const Vec8<typename T::store_t>*>(table + std::int64_t(ids[r]) * dim)[c];
    float f[8];
    unpack8(v, f);
    float4* out = reinterpret_cast<float4*>(x + std::int64_t(r) * dim + c * 8);
    out[0] = make_float4(f[0], f[1], f[2], f[3]);
    out[1] = make_float4(f[4], f[5], f[6], f[7]);
  }
}

// ------------------------------------------------------------------ RMSNorm

__device__ __forceinline__ void load8(const float* p, float (&f)[8]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}

/// out = S(x / sqrt(mean(x^2) + eps) * w) for one row, by the whole block (every thread must
/// call it). rmsnorm_kernel and gemv::RmsNormRows (gemv.cuh) both use it, so the GEMM and GEMV
/// paths normalise identically (with the same block size). `Cached`: how many of a thread's
/// 8-element chunks stay in registers between the sum of squares and the scaling (the rest are
/// read twice); the order of every sum and product is the same for any value, so the output is
/// bit-identical. The GEMV keeps 0 (its own registers hold weights in flight).
template <class S, int Cached = 0>
__device__ __forceinline__ void rmsnorm_row(const float* __restrict__ xr, const float* __restrict__ w, int dim,
                                            float eps, S* __restrict__ out) {
  constexpr int kKeep = Cached > 0 ? Cached : 1;
  float keep[kKeep][8];
  const int chunks = dim / 8, stride = int(blockDim.x);
  float ss = 0.0f;
#pragma unroll
  for (int k = 0; k < Cached; ++k) {
    const int c = int(threadIdx.x) + k * stride;
    if (c < chunks) {
      load8(xr + c * 8, keep[k]);
#pragma unroll
      for (int i = 0; i < 8; ++i) ss += keep[k][i] * keep[k][i];
    }
  }
  for (int c = int(threadIdx.x) + Cached * stride; c < chunks; c += stride) {
    float f[8];
    load8(xr + c * 8, f);
#pragma unroll
    for (int i = 0; i < 8; ++i) ss += f[i] * f[i];
  }
  const float scale = rsqrtf(block_sum(ss) / float(dim) + eps);
#pragma unroll
  for (int k = 0; k < Cached; ++k) {
    const int c = int(threadIdx.x) + k * stride;
    if (c < chunks) {
      float g[8];
      load8(w + c * 8, g);
#pragma unroll
      for (int i = 0; i < 8; ++i) keep[k][i] = keep[k][i] * scale * g[i];
      reinterpret_cast<Vec8<S>*>(out)[c] = pack8<S>(keep[k]);
    }
  }
  for (int c = int(threadIdx.x) + Cached * stride; c < chunks; c += stride) {
    float f[8], g[8];
    load8(xr + c * 8, f);
    load8(w + c * 8, g);
#pragma unroll
    for (int i = 0; i < 8; ++i) f[i] = f[i] * scale * g[i];
    reinterpret_cast<Vec8<S>*>(out)[c] = pack8<S>(f);
  }
}

/// One block per row; `Cached` as in rmsnorm_row (4: rows up to 8192 wide with 256 threads are
/// read once).
template <class T, int Cached = tuning::Elementwise::kNormCachedChunks>
__global__ void __launch_bounds__(T::kNormThreads)
    rmsnorm_kernel(const float* __restrict__ x, const float* __restrict__ w, int dim, float eps,
                   typename T::store_t* __restrict__ out) {
  rmsnorm_row<typename T::store_t, Cached>(x + std::int64_t(blockIdx.x) * dim, w, dim, eps,
                                           out + std::int64_t(blockIdx.x) * dim);
}

// ------------------------------------------------------------------ RoPE + K/V scatter

template <class S>
struct RopeArgsT {
  S* qkv = nullptr;  // [rows, ld]: q (n_heads*hd) | k (n_kv_heads*hd) | v (n_kv_heads*hd), hd = kv.head_dim
  int ld = 0, rows = 0, n_heads = 0, n_kv_heads = 0;
  const std::int32_t* pos = nullptr;    // [rows] original positions
  const std::int64_t* slots = nullptr;  // [rows] K/V slots
  const float2* table = nullptr;        // [max_pos, hd/2] (cos, sin)
  int max_pos = 0;
  RopeStyle style = RopeStyle::Interleaved;
  KvStore<S> kv;  // where the K and V rows of the slots go
};
using RopeArgs = RopeArgsT<bf16>;

/// One block per row: rotates the q heads in place, rotates the k heads into the K cache slot,
/// copies v into the V cache slot. Rotation in fp32 with the host-computed (cos, sin) table,
/// the same values the CPU reference computes.
///
/// The rotate-half form (HF Llama) moves 8 elements of each half per access when head_dim % 16
/// == 0: 96 us instead of 107 us for 4096 rows of Llama-2-7B on an H200 (2026-11-28, the
/// bandwidth test case). The interleaved form (llama2.c) and other head dims take one element per
/// access: an 8-wide interleaved version (4 pairs per access) measured 99 us against 90 us for
/// this path and was dropped. Both paths compute each output with the same expression, so they
/// agree bit for bit. `Vector` = false takes the one-element path everywhere (the tests compare
/// and time both).
template <class T, bool Vector = tuning::Elementwise::kRopeVector>
__global__ void __launch_bounds__(T::kRopeThreads)
    rope_store_kernel(const __grid_constant__ RopeArgsT<typename T::store_t> a) {
  using S = typename T::store_t;
  const int r = blockIdx.x;
  const int hd = a.kv.head_dim, half = hd / 2, kvd = a.kv.kv_dim, d = a.n_heads * hd;
  int p = a.pos[r];
  p = p < 0 ? 0 : (p >= a.max_pos ? a.max_pos - 1 : p);  // the pipeline keeps p < max_seq_len
  const float2* cs = a.table + std::int64_t(p) * half;
  S* row = a.qkv + std::int64_t(r) * a.ld;
  const std::int64_t slot = a.slots[r];
  const int heads = a.n_heads + a.n_kv_heads;
  // Where head `head`'s rotated values go: in place for q heads, the K cache slot for k heads.
  auto dst_of = [&](int head) { return head < a.n_heads ? row + head * hd : a.kv.k_ptr(slot, head - a.n_heads); };
  const bool interleaved = a.style == RopeStyle::Interleaved;
  if (Vector && !interleaved && half % 8 == 0) {
    const int per_head = half / 8;
    for (int u = threadIdx.x; u < heads * per_head; u += blockDim.x) {
      const int head = u / per_head, i0 = (u % per_head) * 8;
      const S* src = row + head * hd;
      float x0[8], x1[8], y0[8], y1[8];
      unpack8(*reinterpret_cast<const Vec8<S>*>(src + i0), x0);
      unpack8(*reinterpret_cast<const Vec8<S>*>(src + half + i0), x1);
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const float2 c = cs[i0 + k];
        y0[k] = x0[k] * c.x - x1[k] * c.y;
        y1[k] = x0[k] * c.y + x1[k] * c.x;
      }
      S* dst = dst_of(head);
      *reinterpret_cast<Vec8<S>*>(dst + i0) = pack8<S>(y0);
      *reinterpret_cast<Vec8<S>*>(dst + half + i0) = pack8<S>(y1);
    }
  } else {
    for (int j = threadIdx.x; j < heads * half; j += blockDim.x) {
      const int head = j / half, i = j % half;
      const int ia = interleaved ? 2 * i : i;
      const int ib = interleaved ? 2 * i + 1 : i + half;
      const S* src = row + head * hd;
      const float x0 = Storage<S>::to_float(src[ia]), x1 = Storage<S>::to_float(src[ib]);
      const float2 c = cs[i];
      S* dst = dst_of(head);
      dst[ia] = Storage<S>::from_float(x0 * c.x - x1 * c.y);
      dst[ib] = Storage<S>::from_float(x0 * c.y + x1 * c.x);
    }
  }
  const Vec8<S>* vsrc = reinterpret_cast<const Vec8<S>*>(row + d + kvd);
  Vec8<S>* vdst = reinterpret_cast<Vec8<S>*>(a.kv.v_ptr(slot, 0));
  for (int c = threadIdx.x; c < kvd / 8; c += blockDim.x) vdst[c] = vsrc[c];
}

// ------------------------------------------------------------------ q/k/v biases, q/k norms

/// In place on the fused QKV rows (before RoPE), one block per row, one warp per head: adds the
/// fp32 bias (q|k|v, when `bias`) and RMS-normalises each q and k head with its weights (when
/// `q_norm`: Qwen3's per-head norm, eps as the model's), in fp32 with one rounding to S. Only the
/// models that have biases or q/k norms run it.
template <class S>
__global__ void qkv_prepare_kernel(S* __restrict__ qkv, int ld, int n_heads, int n_kv_heads, int hd,
                                   const float* __restrict__ bias, const float* __restrict__ q_norm,
                                   const float* __restrict__ k_norm, float eps) {
  S* row = qkv + std::int64_t(blockIdx.x) * ld;
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, warps = int(blockDim.x) / 32;
  const int heads = n_heads + 2 * n_kv_heads;  // q heads, k heads, v heads
  for (int h = warp; h < heads; h += warps) {
    S* x = row + std::int64_t(h) * hd;
    const float* b = bias ? bias + std::int64_t(h) * hd : nullptr;
    const float* g = !q_norm || h >= n_heads + n_kv_heads ? nullptr : (h < n_heads ? q_norm : k_norm);
    float ss = 0.0f;
    for (int i = lane; i < hd; i += 32) {
      float v = Storage<S>::to_float(x[i]);
      if (b) v += b[i];
      ss += v * v;
    }
    if (!g) {
      if (b)
        for (int i = lane; i < hd; i += 32) x[i] = Storage<S>::from_float(Storage<S>::to_float(x[i]) + b[i]);
      continue;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float scale = rsqrtf(ss / float(hd) + eps);
    for (int i = lane; i < hd; i += 32) {
      float v = Storage<S>::to_float(x[i]);
      if (b) v += b[i];
      x[i] = Storage<S>::from_float(v * scale * g[i]);
    }
  }
}

// ------------------------------------------------------------------ SwiGLU

/// h[r, i] = silu(gu[r, i]) * gu[r, hid + i]  (gate | up from the fused gate/up GEMM).
template <class T>
__global__ void swiglu_kernel(const typename T::store_t* __restrict__ gu, int rows, int hid,
                              typename T::store_t* __restrict__ h) {
  using S = typename T::store_t;
  const int chunks = hid / 8;
  const std::int64_t n = std::int64_t(rows) * chunks;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / chunks;
    const int c = int(i % chunks);
    const S* g = gu + r * 2 * hid;
    float fg[8], fu[8];
    unpack8(reinterpret_cast<const Vec8<S>*>(g)[c], fg);
    unpack8(reinterpret_cast<const Vec8<S>*>(g + hid)[c], fu);
#pragma unroll
    for (int k = 0; k < 8; ++k) fg[k] = fg[k] / (1.0f + __expf(-fg[k])) * fu[k];
    reinterpret_cast<Vec8<S>*>(h + r * hid)[c] = pack8<S>(fg);
  }
}

// ------------------------------------------------------------------ row gathers (Aux Cache)

/// dst[i] = src_rows[i] >= 0 ? src[src_rows[i]] : aux[aux_slots[i]]   (fp32 rows of aux.dim).
template <class T>
__global__ void gather_rows_kernel(const float* __restrict__ src, const std::int32_t* __restrict__ src_rows,
                                   const std::int64_t* __restrict__ aux_slots, const __grid_constant__ AuxStore aux,
                                   int n, float* __restrict__ dst) {
  const int dim = aux.dim, chunks = dim / 4;
  const std::int64_t total = std::int64_t(n) * chunks;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < total;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const int r = int(i / chunks), c = int(i % chunks);
    const std::int32_t s = src_rows[r];
    const float* from = s >= 0 ? src + std::int64_t(s) * dim : aux.ptr(aux_slots[r]);
    reinterpret_cast<float4*>(dst + std::int64_t(r) * dim)[c] = reinterpret_cast<const float4*>(from)[c];
  }
}

/// aux[aux_slots[i]] = x[rows[i]]   (fp32 rows of aux.dim).
template <class T>
__global__ void store_aux_kernel(const float* __restrict__ x, const std::int32_t* __restrict__ rows,
                                 const std::int64_t* __restrict__ aux_slots, int n,
                                 const __grid_constant__ AuxStore aux) {
  const int dim = aux.dim, chunks = dim / 4;
  const std::int64_t total = std::int64_t(n) * chunks;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < total;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const int r = int(i / chunks), c = int(i % chunks);
    reinterpret_cast<float4*>(aux.ptr(aux_slots[r]))[c] =
        reinterpret_cast<const float4*>(x + std::int64_t(rows[r]) * dim)[c];
  }
}

// ------------------------------------------------------------------ host launchers

inline unsigned grid_for(std::int64_t n, int threads) {
  const std::int64_t b = (n + threads - 1) / threads;
  return unsigned(b < 65535 * 8 ? (b > 0 ? b : 1) : 65535 * 8);
}

template <class S>
void launch_embed(const S* table, const std::int32_t* ids, int rows, int dim, float* x, cudaStream_t s) {
  if (rows <= 0) return;
  embed_kernel<StoreTraits<S>><<<grid_for(std::int64_t(rows) * dim / 8, 256), 256, 0, s>>>(table, ids, rows, dim, x);
  LAZYLLM_CUDA_CHECK_LAUNCH();
}

/// out = S(rmsnorm(x) * w), one block per row (`Cached` 0: every row read twice; tests time both).
template <class S, int Cached = tuning::Elementwise::kNormCachedChunks>
void launch_rmsnorm(const float* x, const float* w, int rows, int dim, float eps, S* out, cudaStream_t s) {
  if (rows <= 0) return;
  rmsnorm_kernel<StoreTraits<S>, Cached><<<rows, StoreTraits<S>::kNormThreads, 0, s>>>(x, w, dim, eps, out);
  LAZYLLM_CUDA_CHECK_LAUNCH();
}

template <class S, bool Vector = tuning::Elementwise::kRopeVector>
void launch_rope_store(const RopeArgsT<S>& a, cudaStream_t s) {
  if (a.rows <= 0) return;
  rope_store_kernel<StoreTraits<S>, Vector><<<a.rows, StoreTraits<S>::kRopeThreads, 0, s>>>(a);
  LAZYLLM_CUDA_CHECK_LAUNCH();
}

/// Biases and/or q/k norms of `rows` fused QKV rows in place (bias or q_norm may be null, not both).
template <class S>
void launch_qkv_prepare(S* qkv, int ld, int rows, int n_heads, int n_kv_heads, int hd, const float* bias,
                        const float* q_norm, const float* k_norm, float eps, cudaStream_t s) {
  if (rows <= 0 || (!bias && !q_norm)) return;
  qkv_prepare_kernel<S><<<rows, 128, 0, s>>>(qkv, ld, n_heads, n_kv_heads, hd, bias, q_norm, k_norm, eps);
  LAZYLLM_CUDA_CHECK_LAUNCH();
}

template <class S>
void launch_swiglu(const S* gu, int rows, int hid, S* h, cudaStream_t s) {
  if (rows <= 0) return;
  swiglu_kernel<StoreTraits<S>><<<grid_for(std::int64_t(rows) * hid / 8, 256), 256, 0, s>>>(gu, rows, hid, h);
  LAZYLLM_CUDA_CHECK_LAUNCH();
}

/// Rows of aux.dim fp32 values: dst[i] = src_rows[i] >= 0 ? src[src_rows[i]] : aux[aux_slots[i]].
inline void launch_gather_rows(const float* src, const std::int32_t* src_rows, const std::int64_t* aux_slots,
                               const AuxStore& aux, int n, float* dst, cudaStream_t s) {
  if (n <= 0) return;
  gather_rows_kernel<Bf16Traits>
      <<<grid_for(std::int64_t(n) * aux.dim / 4, 256), 256, 0, s>>>(src, src_rows, aux_slots, aux, n, dst);
  LAZYLLM_CUDA_CHECK_LAUNCH();
}

/// Rows of aux.dim fp32 values: aux[aux_slots[i]] = x[rows[i]].
inline void launch_store_aux(const float* x, const std::int32_t* rows, const std::int64_t* aux_slots, int n,
                             const AuxStore& aux, cudaStream_t s) {
  if (n <= 0) return;
  store_aux_kernel<Bf16Traits><<<grid_for(std::int64_t(n) * aux.dim / 4, 256), 256, 0, s>>>(x, rows, aux_slots, n, aux);
  LAZYLLM_CUDA_CHECK_LAUNCH();
}

/// The RoPE (cos, sin) table for positions [0, max_pos) from the inverse frequencies and attention
/// factor of config/rope.hpp (any RoPE type), computed exactly as cpu::rope does.
inline std::vector<float2> rope_table(int max_pos, const RopeFrequencies& f) {
  const int half = int(f.inv_freq.size());
  std::vector<float2> t(std::size_t(max_pos) * std::size_t(half));
  for (int i = 0; i < half; ++i) {
    const double freq = f.inv_freq[std::size_t(i)];
    for (int p = 0; p < max_pos; ++p) {
      const double angle = double(p) * freq;
      t[std::size_t(p) * half + i] =
          make_float2(float(std::cos(angle) * f.attention_factor), float(std::sin(angle) * f.attention_factor));
    }
  }
  return t;
}

/// Default RoPE's table (frequency theta^(-2i/head_dim)).
inline std::vector<float2> rope_table(int max_pos, int head_dim, float theta) {
  RopeFrequencies f;
  for (int i = 0; i < head_dim / 2; ++i) f.inv_freq.push_back(std::pow(double(theta), -2.0 * i / head_dim));
  return rope_table(max_pos, f);
}

}  // namespace detail
}  // namespace lazyllm::gpu
