// SPDX-License-Identifier: MIT
// The CUDA-core attention kernel (any head_dim up to 128, any row count; Attention::run takes it
// for what the tensor-core and decode kernels do not cover): FlashAttention-style (online softmax,
// nothing n x n in memory), warp-level fp32 math. A block takes 16 query rows of one head, walks
// the visible keys in tiles of 64 staged in shared memory (the storage type, bf16 or fp16), each
// warp owns 4 rows; lane i scores keys i and i+32 of the tile and owns head_dim/32 output
// dimensions. For few query blocks the keys are split over gridDim.z and a combine kernel merges
// the partial (m, l, o).
//
// Head dims: compile-time HD in {64, 128}; a runtime hd <= HD (even) is zero-padded to HD (small
// test models have hd 8).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "lazyllm/backend/cuda/attention/params.cuh"
#include "lazyllm/backend/cuda/numeric.cuh"
#include "lazyllm/backend/cuda/runtime.cuh"

namespace lazyllm::gpu {

template <int HD>
struct AttnTraits {
  static constexpr int kHeadDim = HD;  // padded head dim
  static constexpr int kWarps = 4;
  static constexpr int kRowsPerWarp = 4;
  static constexpr int kBlockRows = kWarps * kRowsPerWarp;  // query rows per block
  static constexpr int kKeys = 64;                          // keys per shared-memory tile
  static constexpr int kKStride = HD + 2;  // bf16 per staged K row: the pad makes lane-per-key reads conflict-free
  static constexpr int kPairs = HD / 64;   // bf16 pairs of output dims per lane
  static_assert(HD % 64 == 0, "AttnTraits: head dim must be a multiple of 64");
};

namespace detail {

template <class T, class ST>
__global__ void __launch_bounds__(T::kWarps * 32)
    attention_kernel(const __grid_constant__ AttnParams<ST> a, const __grid_constant__ AttnSplit L) {
  constexpr int HD = T::kHeadDim, R = T::kRowsPerWarp, BR = T::kBlockRows, BK = T::kKeys, KS = T::kKStride;
  constexpr int NT = T::kWarps * 32;
  __shared__ __align__(16) float sq[BR][HD];
  __shared__ __align__(16) ST sk[BK][KS];
  __shared__ __align__(16) ST sv[BK][HD];
  __shared__ int s_nvis[BR];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int h = blockIdx.y, kh = h / (a.n_heads / a.n_kv_heads), split = blockIdx.z;
  const int row0 = blockIdx.x * BR;
  const int hd = a.head_dim();
  const bool exact = hd == HD;

  // Stage this block's queries (fp32, zero beyond hd) and each row's visible-key count.
  for (int i = tid; i < BR * HD / 2; i += NT) {
    const int r = i / (HD / 2), d = 2 * (i % (HD / 2)), row = row0 + r;
    float2 v = make_float2(0.f, 0.f);
    if (row < a.rows && d < hd)
      v = Storage<ST>::to_float2(
          *reinterpret_cast<const typename Storage<ST>::pair*>(a.q + std::int64_t(row) * a.ldq + h * hd + d));
    *reinterpret_cast<float2*>(&sq[r][d]) = v;
  }
  if (tid < BR) {
    const int row = row0 + tid;
    s_nvis[tid] = row < a.rows ? a.kv.visible(a.q_pos[row]) : 0;
  }
  __syncthreads();

  // Key range of this block and split: rows are ascending, so the last row sees the most.
  int hi = 0;
  for (int r = 0; r < BR; ++r) hi = max(hi, s_nvis[r]);
  const int lo = split * L.keys_per_split;
  hi = min(hi, lo + L.keys_per_split);

  int nv[R];
  int warp_nv = 0;
#pragma unroll
  for (int rr = 0; rr < R; ++rr) {
    nv[rr] = s_nvis[warp * R + rr];
    warp_nv = max(warp_nv, nv[rr]);
  }
  float m[R], l[R], o[R][T::kPairs][2];
#pragma unroll
  for (int rr = 0; rr < R; ++rr) {
    m[rr] = -INFINITY;
    l[rr] = 0.f;
#pragma unroll
    for (int pp = 0; pp < T::kPairs; ++pp) o[rr][pp][0] = o[rr][pp][1] = 0.f;
  }

  for (int t0 = lo; t0 < hi; t0 += BK) {
    __syncthreads();  // the previous tile is consumed
    // Stage K and V of keys t0..t0+BK-1 (zeros past hi or past hd).
    if (exact) {
      constexpr int CH = HD / 8;  // 16-byte chunks per row
      for (int i = tid; i < BK * CH; i += NT) {
        const int j = i / CH, c = i % CH, key = t0 + j;
        Vec8<ST> kv{}, vv{};
        if (key < hi) {
          const std::int64_t row = a.kv.store.offset(a.kv.slot(key));
          kv = *reinterpret_cast<const Vec8<ST>*>(a.kv.store.k_at(row, kh) + c * 8);
          vv = *reinterpret_cast<const Vec8<ST>*>(a.kv.store.v_at(row, kh) + c * 8);
        }
        auto* kd = reinterpret_cast<typename Storage<ST>::pair*>(&sk[j][c * 8]);
#pragma unroll
        for (int e = 0; e < 4; ++e) kd[e] = kv.h[e];
        *reinterpret_cast<Vec8<ST>*>(&sv[j][c * 8]) = vv;
      }
    } else {
      constexpr int CH = HD / 2;  // ST pairs per row
      for (int i = tid; i < BK * CH; i += NT) {
        const int j = i / CH, d = 2 * (i % CH), key = t0 + j;
        typename Storage<ST>::pair kv = Storage<ST>::from_float2(0.f, 0.f), vv = kv;
        if (key < hi && d < hd) {
          const std::int64_t row = a.kv.store.offset(a.kv.slot(key));
          kv = *reinterpret_cast<const typename Storage<ST>::pair*>(a.kv.store.k_at(row, kh) + d);
          vv = *reinterpret_cast<const typename Storage<ST>::pair*>(a.kv.store.v_at(row, kh) + d);
        }
        *reinterpret_cast<typename Storage<ST>::pair*>(&sk[j][d]) = kv;
        *reinterpret_cast<typename Storage<ST>::pair*>(&sv[j][d]) = vv;
      }
    }
    __syncthreads();
    if (t0 >= warp_nv) continue;  // every row of this warp is past its visible keys

    // Scores of keys (lane) and (lane + 32) for the warp's R rows, in log2 units.
    float s[R][2];
#pragma unroll
    for (int rr = 0; rr < R; ++rr) s[rr][0] = s[rr][1] = 0.f;
#pragma unroll 8
    for (int d = 0; d < HD; d += 2) {
      const float2 k0 = Storage<ST>::to_float2(*reinterpret_cast<const typename Storage<ST>::pair*>(&sk[lane][d]));
      const float2 k1 = Storage<ST>::to_float2(*reinterpret_cast<const typename Storage<ST>::pair*>(&sk[lane + 32][d]));
#pragma unroll
      for (int rr = 0; rr < R; ++rr) {
        const float2 qv = *reinterpret_cast<const float2*>(&sq[warp * R + rr][d]);
        s[rr][0] = fmaf(qv.x, k0.x, fmaf(qv.y, k0.y, s[rr][0]));
        s[rr][1] = fmaf(qv.x, k1.x, fmaf(qv.y, k1.y, s[rr][1]));
      }
    }
    // Online softmax update.
#pragma unroll
    for (int rr = 0; rr < R; ++rr) {
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int key = t0 + lane + 32 * c;
        s[rr][c] = (key < nv[rr] && key < hi) ? s[rr][c] * a.kv.scale_log2 : -INFINITY;
      }
      const float m_new = fmaxf(m[rr], warp_max(fmaxf(s[rr][0], s[rr][1])));
      const float m_use = m_new == -INFINITY ? 0.f : m_new;  // a row with nothing visible yet
      const float alpha = exp2f(m[rr] - m_use);
      s[rr][0] = exp2f(s[rr][0] - m_use);
      s[rr][1] = exp2f(s[rr][1] - m_use);
      l[rr] = l[rr] * alpha + warp_sum(s[rr][0] + s[rr][1]);
      m[rr] = m_new;
#pragma unroll
      for (int pp = 0; pp < T::kPairs; ++pp) o[rr][pp][0] *= alpha, o[rr][pp][1] *= alpha;
    }
    // o += P V over the tile's keys that any row of the warp can see.
    const int jn = min(BK, min(hi, warp_nv) - t0);
    for (int j = 0; j < jn; ++j) {
      float2 vv[T::kPairs];
#pragma unroll
      for (int pp = 0; pp < T::kPairs; ++pp)
        vv[pp] =
            Storage<ST>::to_float2(*reinterpret_cast<const typename Storage<ST>::pair*>(&sv[j][64 * pp + 2 * lane]));
#pragma unroll
      for (int rr = 0; rr < R; ++rr) {
        const float pj = __shfl_sync(0xffffffffu, j < 32 ? s[rr][0] : s[rr][1], j & 31);
#pragma unroll
        for (int pp = 0; pp < T::kPairs; ++pp) {
          o[rr][pp][0] = fmaf(pj, vv[pp].x, o[rr][pp][0]);
          o[rr][pp][1] = fmaf(pj, vv[pp].y, o[rr][pp][1]);
        }
      }
    }
  }

  // Write the rows: normalised ST output, or the split's partial state.
#pragma unroll
  for (int rr = 0; rr < R; ++rr) {
    const int row = row0 + warp * R + rr;
    if (row >= a.rows) continue;
    if (L.n_splits == 1) {
      const float inv = l[rr] > 0.f ? 1.0f / l[rr] : 0.f;
#pragma unroll
      for (int pp = 0; pp < T::kPairs; ++pp) {
        const int d = 64 * pp + 2 * lane;
        if (d < hd)
          *reinterpret_cast<typename Storage<ST>::pair*>(a.out + std::int64_t(row) * a.ldo + h * hd + d) =
              Storage<ST>::from_float2(o[rr][pp][0] * inv, o[rr][pp][1] * inv);
      }
    } else {
      const std::int64_t cell = (std::int64_t(split) * a.rows + row) * a.n_heads + h;
#pragma unroll
      for (int pp = 0; pp < T::kPairs; ++pp) {
        const int d = 64 * pp + 2 * lane;
        *reinterpret_cast<float2*>(L.part_o + cell * HD + d) = make_float2(o[rr][pp][0], o[rr][pp][1]);
      }
      if (lane == 0) *reinterpret_cast<float2*>(L.part_ml + cell * 2) = make_float2(m[rr], l[rr]);
    }
  }
}

/// Merges the splits' partial states: one thread per (row, head, output dim).
template <class T, class ST>
__global__ void attention_combine_kernel(const __grid_constant__ AttnParams<ST> a,
                                         const __grid_constant__ AttnSplit L) {
  constexpr int HD = T::kHeadDim;
  const int hd = a.head_dim();
  const std::int64_t n = std::int64_t(a.rows) * a.n_heads * hd;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const int d = int(i % hd);
    const std::int64_t rh = i / hd;  // row * n_heads + head
    const int h = int(rh % a.n_heads), row = int(rh / a.n_heads);
    float mx = -INFINITY;
    for (int s = 0; s < L.n_splits; ++s) mx = fmaxf(mx, L.part_ml[((std::int64_t(s) * a.rows) * a.n_heads + rh) * 2]);
    float num = 0.f, den = 0.f;
    for (int s = 0; s < L.n_splits; ++s) {
      const std::int64_t cell = std::int64_t(s) * a.rows * a.n_heads + rh;
      const float ms = L.part_ml[cell * 2], ls = L.part_ml[cell * 2 + 1];
      if (ms == -INFINITY) continue;
      const float w = exp2f(ms - mx);
      den += ls * w;
      num += L.part_o[cell * HD + d] * w;
    }
    a.out[std::int64_t(row) * a.ldo + h * hd + d] = Storage<ST>::from_float(den > 0.f ? num / den : 0.f);
  }
}

template <int HD, class ST>
void launch_attention(const AttnParams<ST>& a, const AttnSplit& L, cudaStream_t stream) {
  using T = AttnTraits<HD>;
  const dim3 grid((a.rows + T::kBlockRows - 1) / T::kBlockRows, a.n_heads, L.n_splits);
  attention_kernel<T, ST><<<grid, T::kWarps * 32, 0, stream>>>(a, L);
  LAZYLLM_CUDA_CHECK_LAUNCH();
  if (L.n_splits > 1) {
    const std::int64_t n = std::int64_t(a.rows) * a.n_heads * a.head_dim();
    attention_combine_kernel<T, ST><<<unsigned(std::min<std::int64_t>((n + 255) / 256, 65535)), 256, 0, stream>>>(a, L);
    LAZYLLM_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace detail
}  // namespace lazyllm::gpu
