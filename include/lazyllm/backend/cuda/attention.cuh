// SPDX-License-Identifier: MIT
// Causal attention over a pruned, compacted token set, reading K/V through cache slots.
//
//  - Queries: `rows` rows (positions q_pos, ascending), head h at column h*hd of a row of q.
//  - Keys/values: the n_kv entries of S_l (positions kv_pos, ascending), entry j at cache slot
//    kv_slots[j]. Query row r sees the entries with kv_pos <= q_pos[r] (a prefix of S_l).
//  - GQA: query head h uses KV head h / (n_heads / n_kv_heads).
//
// The main kernel is FlashAttention-style (online softmax, nothing n x n in memory), warp-level
// fp32 math: a block takes 16 query rows of one head, walks the visible keys in tiles of 64 staged
// in shared memory (the storage type, bf16 or fp16), each warp owns 4 rows; lane i scores keys i and i+32 of the tile
// and owns head_dim/32 output dimensions. For few query blocks (decode) the keys are split over gridDim.z and a combine
// kernel merges the partial (m, l, o). The scores pass (want_scores) recomputes the last row's logits per head, a
// per-head softmax, and the mean over heads.
//
// Head dims: compile-time HD in {64, 128}; a runtime hd <= HD (even) is zero-padded to HD (small
// test models have hd 8).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "lazyllm/backend/cuda/attention_mma.cuh"
#include "lazyllm/backend/cuda/numeric.cuh"
#include "lazyllm/backend/cuda/runtime.cuh"
#include "lazyllm/backend/cuda/sm90_attention.cuh"
#include "lazyllm/backend/cuda/tuning.cuh"

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

/// Everything the attention kernels read, as device pointers (ST: the storage type, bf16 or fp16).
template <class ST>
struct AttnArgsT {
  using store_t = ST;
  const ST* q = nullptr;  // [rows, ldq]
  int ldq = 0;
  const ST* k_cache = nullptr;  // [slots, kvd]
  const ST* v_cache = nullptr;
  const std::int64_t* kv_slots = nullptr;  // [n_kv]
  const std::int32_t* kv_pos = nullptr;    // [n_kv], ascending
  const std::int32_t* q_pos = nullptr;     // [rows], ascending
  int rows = 0, n_kv = 0;
  int n_heads = 0, n_kv_heads = 0, hd = 0;
  ST* out = nullptr;  // [rows, ldo]
  int ldo = 0;
};
using AttnArgs = AttnArgsT<bf16>;

namespace detail {

template <class ST>
struct AttnLaunchT {
  AttnArgsT<ST> a;
  float scale_log2 = 0;  // softmax scale * log2(e): the kernels work in base 2
  int n_splits = 1, keys_per_split = 0;
  float* part_o = nullptr;         // [split][row][head][HD] (unnormalised)
  float* part_ml = nullptr;        // [split][row][head][2]  (m in log2 units, l)
  unsigned* split_done = nullptr;  // [head] decode: splits finished; 0 between launches
  // Decode only: when set, the kernel reads the key count from here (a.n_kv is then the capacity
  // of kv_pos / kv_slots) and derives keys_per_split itself from split_cap (graph replays).
  const int* n_kv_dev = nullptr;
  int split_cap = 1;
};
using AttnLaunch = AttnLaunchT<bf16>;

template <class T, class ST>
__global__ void __launch_bounds__(T::kWarps * 32) attention_kernel(AttnLaunchT<ST> L) {
  constexpr int HD = T::kHeadDim, R = T::kRowsPerWarp, BR = T::kBlockRows, BK = T::kKeys, KS = T::kKStride;
  constexpr int NT = T::kWarps * 32;
  const AttnArgsT<ST>& a = L.a;
  __shared__ __align__(16) float sq[BR][HD];
  __shared__ __align__(16) ST sk[BK][KS];
  __shared__ __align__(16) ST sv[BK][HD];
  __shared__ int s_nvis[BR];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int h = blockIdx.y, kh = h / (a.n_heads / a.n_kv_heads), split = blockIdx.z;
  const int row0 = blockIdx.x * BR;
  const int kvd = a.n_kv_heads * a.hd;
  const bool exact = a.hd == HD;

  // Stage this block's queries (fp32, zero beyond hd) and each row's visible-key count.
  for (int i = tid; i < BR * HD / 2; i += NT) {
    const int r = i / (HD / 2), d = 2 * (i % (HD / 2)), row = row0 + r;
    float2 v = make_float2(0.f, 0.f);
    if (row < a.rows && d < a.hd)
      v = Storage<ST>::to_float2(
          *reinterpret_cast<const typename Storage<ST>::pair*>(a.q + std::int64_t(row) * a.ldq + h * a.hd + d));
    *reinterpret_cast<float2*>(&sq[r][d]) = v;
  }
  if (tid < BR) {
    const int row = row0 + tid;
    s_nvis[tid] = row < a.rows ? count_le(a.kv_pos, a.n_kv, a.q_pos[row]) : 0;
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
          const std::int64_t off = a.kv_slots[key] * kvd + std::int64_t(kh) * HD + c * 8;
          kv = *reinterpret_cast<const Vec8<ST>*>(a.k_cache + off);
          vv = *reinterpret_cast<const Vec8<ST>*>(a.v_cache + off);
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
        if (key < hi && d < a.hd) {
          const std::int64_t off = a.kv_slots[key] * kvd + std::int64_t(kh) * a.hd + d;
          kv = *reinterpret_cast<const typename Storage<ST>::pair*>(a.k_cache + off);
          vv = *reinterpret_cast<const typename Storage<ST>::pair*>(a.v_cache + off);
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
        s[rr][c] = (key < nv[rr] && key < hi) ? s[rr][c] * L.scale_log2 : -INFINITY;
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
        if (d < a.hd)
          *reinterpret_cast<typename Storage<ST>::pair*>(a.out + std::int64_t(row) * a.ldo + h * a.hd + d) =
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
__global__ void attention_combine_kernel(AttnLaunchT<ST> L) {
  constexpr int HD = T::kHeadDim;
  const AttnArgsT<ST>& a = L.a;
  const std::int64_t n = std::int64_t(a.rows) * a.n_heads * a.hd;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const int d = int(i % a.hd);
    const std::int64_t rh = i / a.hd;  // row * n_heads + head
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
    a.out[std::int64_t(row) * a.ldo + h * a.hd + d] = Storage<ST>::from_float(den > 0.f ? num / den : 0.f);
  }
}

// ------------------------------------------------------------------ decode (few rows)

/// Passes of `pass` keys over `n_kv` keys (at least one).
__host__ __device__ inline int decode_passes(int n_kv, int pass) { return n_kv > pass ? (n_kv + pass - 1) / pass : 1; }

/// Keys per split of the decode kernel for `n_kv` keys and at most `split_cap` splits: whole
/// passes of `pass` keys, spread evenly. The host (Attention::run) and the kernel (when it reads
/// the key count on the device) use this one rule, so both split alike.
__host__ __device__ inline int decode_keys_per_split(int n_kv, int split_cap, int pass) {
  const int passes = decode_passes(n_kv, pass);
  const int cap = split_cap > 1 ? split_cap : 1;
  const int splits = cap < passes ? cap : passes;
  return (passes + splits - 1) / splits * pass;
}

/// Decode-shaped attention: at most R query rows (R = 1 for a plain decode step) against many
/// keys. Bandwidth-bound, so the keys are spread thin: grid (query head, split), each of the 4
/// warps walks its keys 32 at a time: the K and V rows of its 32 keys go to shared memory by
/// coalesced 16-byte cp.async (all in flight at once, through the slot index), then lane = key
/// for q.k and lane = output dims for p.v. The warps' states merge in shared memory; with several
/// splits each block stores its partial (m, l, o), and the last block of a head to finish
/// (counted in split_done) merges them as attention_combine_kernel does, in the same order, so
/// a decode step is one kernel.
template <int HD, int R>
struct DecodeTraits {
  static_assert(HD == 64 || HD == 128, "DecodeTraits: head dim 64 or 128");
  static constexpr int kHeadDim = HD;
  static constexpr int kRows = R;
  static constexpr int kWarps = 4;
  static constexpr int kKeysPerPass = kWarps * 32;
  static constexpr int kDimsPerLane = HD / 32;
  static constexpr int kVStride = HD + 8;  // ST per staged K/V row (16-byte pad: conflict-free lane-per-row reads)
  static constexpr int kSmemBytes = 2 * kWarps * 32 * kVStride * 2;  // K and V rows of each warp's 32 keys
  static_assert(kWarps * kRows * HD * 4 <= kSmemBytes, "DecodeTraits: the merge reuses the K/V region");
};

template <class T, class ST>
__global__ void __launch_bounds__(T::kWarps * 32) decode_attention_kernel(AttnLaunchT<ST> L) {
  constexpr int HD = T::kHeadDim, R = T::kRows, W = T::kWarps, DL = T::kDimsPerLane, S = T::kVStride;
  constexpr int CH = HD / 8;  // 16-byte chunks per K/V row
  const AttnArgsT<ST>& a = L.a;
  __shared__ __align__(16) float sq[R][HD];
  __shared__ int s_nvis[R];
  __shared__ float s_ml[W][R][2];
  extern __shared__ __align__(16) unsigned char decode_smem[];  // [K, V][W][32][S] ST

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  ST* sk = reinterpret_cast<ST*>(decode_smem) + warp * 32 * S;
  ST* sv = reinterpret_cast<ST*>(decode_smem) + (W + warp) * 32 * S;
  const int h = blockIdx.x, split = blockIdx.y, kh = h / (a.n_heads / a.n_kv_heads);
  const std::int64_t kvd = std::int64_t(a.n_kv_heads) * HD;
  for (int i = tid; i < R * HD; i += W * 32) {
    const int r = i / HD, d = i % HD;
    sq[r][d] = r < a.rows ? Storage<ST>::to_float(a.q[std::int64_t(r) * a.ldq + h * HD + d]) : 0.f;
  }
  const int n_kv = L.n_kv_dev ? *L.n_kv_dev : a.n_kv;
  if (tid < R) s_nvis[tid] = tid < a.rows ? count_le(a.kv_pos, n_kv, a.q_pos[tid]) : 0;
  __syncthreads();
  int nv[R], hi = 0;
#pragma unroll
  for (int r = 0; r < R; ++r) hi = max(hi, nv[r] = s_nvis[r]);
  // A graph replay splits as Attention::run would for this step's count; blocks past the last
  // split find no keys and store an empty partial (m = -inf), which the merge skips.
  const int kps = L.n_kv_dev ? decode_keys_per_split(n_kv, L.split_cap, T::kKeysPerPass) : L.keys_per_split;
  const int lo = split * kps;
  const int end = min(hi, lo + kps);

  float m[R], l[R], o[R][DL];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.f;
#pragma unroll
    for (int e = 0; e < DL; ++e) o[r][e] = 0.f;
  }
  for (int base = lo + warp * 32; base < end; base += T::kKeysPerPass) {
    const int key = base + lane;
    const bool valid = key < end;
    const std::int64_t slot = valid ? a.kv_slots[key] : 0;
    __syncwarp();  // the previous pass has finished reading this warp's rows

    // Coalesced async copies of the 32 keys' K and V rows (each instruction covers whole rows).
#pragma unroll
    for (int i = 0; i < CH; ++i) {
      const int ci = i * 32 + lane, kl = ci / CH, c = ci % CH;
      const std::int64_t sl = __shfl_sync(0xffffffffu, slot, kl);
      const std::int64_t off = sl * kvd + std::int64_t(kh) * HD + c * 8;
      const bool ok = base + kl < end;
      cp_async_16(sk + kl * S + c * 8, a.k_cache + off, ok);
      cp_async_16(sv + kl * S + c * 8, a.v_cache + off, ok);
    }
    cp_async_commit();
    cp_async_wait<0>();
    __syncwarp();
    // Lane = key: q.k from shared memory.
    float s[R];
#pragma unroll
    for (int r = 0; r < R; ++r) s[r] = 0.f;
#pragma unroll
    for (int c = 0; c < CH; ++c) {
      float kf[8];
      unpack8(*reinterpret_cast<const Vec8<ST>*>(sk + lane * S + c * 8), kf);
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int e = 0; e < 8; ++e) s[r] = fmaf(sq[r][c * 8 + e], kf[e], s[r]);
    }
    const int n_here = min(32, end - base);
    float p[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float sv_ = (valid && key < nv[r]) ? s[r] * L.scale_log2 : -INFINITY;
      const float m_new = fmaxf(m[r], warp_max(sv_));
      const float m_use = m_new == -INFINITY ? 0.f : m_new;
      const float alpha = exp2f(m[r] - m_use);
      p[r] = exp2f(sv_ - m_use);
      l[r] = l[r] * alpha + warp_sum(p[r]);
      m[r] = m_new;
#pragma unroll
      for (int e = 0; e < DL; ++e) o[r][e] *= alpha;
    }
    // Lane = output dims: o += p_j v_j over the pass's keys.
#pragma unroll 4
    for (int j = 0; j < n_here; ++j) {
      const ST* v = sv + j * S + lane * DL;
      float vf[DL];
      if constexpr (DL == 4) {
        const uint2 raw = *reinterpret_cast<const uint2*>(v);
        const float2 x = Storage<ST>::to_float2(*reinterpret_cast<const typename Storage<ST>::pair*>(&raw.x));
        const float2 y = Storage<ST>::to_float2(*reinterpret_cast<const typename Storage<ST>::pair*>(&raw.y));
        vf[0] = x.x, vf[1] = x.y, vf[2] = y.x, vf[3] = y.y;
      } else {
        const float2 x = Storage<ST>::to_float2(*reinterpret_cast<const typename Storage<ST>::pair*>(v));
        vf[0] = x.x, vf[1] = x.y;
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float pj = __shfl_sync(0xffffffffu, p[r], j);
#pragma unroll
        for (int e = 0; e < DL; ++e) o[r][e] = fmaf(pj, vf[e], o[r][e]);
      }
    }
  }
  __syncthreads();  // every warp is done with its rows: the region is reused for the merge
  float(*s_o)[R][HD] = reinterpret_cast<float(*)[R][HD]>(decode_smem);  // [W][R][HD]
  // Merge the warps.
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (lane == 0) s_ml[warp][r][0] = m[r], s_ml[warp][r][1] = l[r];
#pragma unroll
    for (int e = 0; e < DL; ++e) s_o[warp][r][lane * DL + e] = o[r][e];
  }
  __syncthreads();
  for (int i = tid; i < R * HD; i += W * 32) {
    const int r = i / HD, d = i % HD;
    if (r >= a.rows) continue;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < W; ++w) mx = fmaxf(mx, s_ml[w][r][0]);
    float lsum = 0.f, osum = 0.f;
#pragma unroll
    for (int w = 0; w < W; ++w) {
      if (s_ml[w][r][0] == -INFINITY) continue;
      const float f = exp2f(s_ml[w][r][0] - mx);
      lsum += s_ml[w][r][1] * f;
      osum += s_o[w][r][d] * f;
    }
    if (L.n_splits == 1) {
      a.out[std::int64_t(r) * a.ldo + h * HD + d] = Storage<ST>::from_float(lsum > 0.f ? osum / lsum : 0.f);
    } else {
      const std::int64_t cell = (std::int64_t(split) * a.rows + r) * a.n_heads + h;
      L.part_o[cell * HD + d] = osum;
      if (d == 0) *reinterpret_cast<float2*>(L.part_ml + cell * 2) = make_float2(mx, lsum);
    }
  }
  if (L.n_splits == 1) return;
  // The last block of head h to get here merges every split's partial (the writes above are
  // made visible device-wide before the count; the merge reads through L2).
  __shared__ bool s_last;
  __threadfence();
  __syncthreads();
  if (tid == 0) s_last = atomicAdd(L.split_done + h, 1u) == unsigned(L.n_splits - 1);
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  for (int i = tid; i < a.rows * HD; i += W * 32) {
    const int r = i / HD, d = i % HD;
    const std::int64_t rh = std::int64_t(r) * a.n_heads + h;
    float mx = -INFINITY;
    for (int sp = 0; sp < L.n_splits; ++sp)
      mx = fmaxf(mx, __ldcg(L.part_ml + ((std::int64_t(sp) * a.rows) * a.n_heads + rh) * 2));
    float num = 0.f, den = 0.f;
    for (int sp = 0; sp < L.n_splits; ++sp) {
      const std::int64_t cell = std::int64_t(sp) * a.rows * a.n_heads + rh;
      const float ms = __ldcg(L.part_ml + cell * 2), ls = __ldcg(L.part_ml + cell * 2 + 1);
      if (ms == -INFINITY) continue;
      const float wgt = exp2f(ms - mx);
      den += ls * wgt;
      num += __ldcg(L.part_o + cell * HD + d) * wgt;
    }
    a.out[std::int64_t(r) * a.ldo + h * HD + d] = Storage<ST>::from_float(den > 0.f ? num / den : 0.f);
  }
  if (tid == 0) L.split_done[h] = 0;  // ready for the next launch (stream order)
}

// ------------------------------------------------------------------ fp32 storage

/// Attention in fp32 (CudaBackendFp32, the verification mode): one warp per (query row, head),
/// K/V read through the slots, scores recomputed in a second pass instead of staged. Exact fp32
/// arithmetic in the CPU reference's order of operations (scale 1/sqrt(hd), expf); slow by
/// design. Lane d owns output dims d, d+32, ... (hd <= 128).
template <class ST>
__global__ void attention_fp32_kernel(AttnArgsT<ST> a) {
  static_assert(std::is_same_v<ST, float>, "attention_fp32_kernel is the fp32 storage path");
  const int gw = int((blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x) >> 5), lane = int(threadIdx.x & 31);
  if (gw >= a.rows * a.n_heads) return;
  const int row = gw / a.n_heads, h = gw % a.n_heads, kh = h / (a.n_heads / a.n_kv_heads);
  const std::int64_t kvd = std::int64_t(a.n_kv_heads) * a.hd;
  const int nvis = count_le(a.kv_pos, a.n_kv, a.q_pos[row]);
  const float scale = 1.0f / sqrtf(float(a.hd));
  const float* q = a.q + std::int64_t(row) * a.ldq + std::int64_t(h) * a.hd;
  auto score = [&](int j) {  // the whole warp: q . k_j * scale
    const float* k = a.k_cache + a.kv_slots[j] * kvd + std::int64_t(kh) * a.hd;
    float part = 0.f;
    for (int d = lane; d < a.hd; d += 32) part = fmaf(q[d], k[d], part);
    return warp_sum(part) * scale;
  };
  float mx = -INFINITY;
  for (int j = 0; j < nvis; ++j) mx = fmaxf(mx, score(j));
  float l = 0.f, o[4] = {0.f, 0.f, 0.f, 0.f};
  for (int j = 0; j < nvis; ++j) {
    const float p = expf(score(j) - mx);
    l += p;
    const float* v = a.v_cache + a.kv_slots[j] * kvd + std::int64_t(kh) * a.hd;
#pragma unroll
    for (int i = 0; i < 4; ++i)
      if (lane + 32 * i < a.hd) o[i] = fmaf(p, v[lane + 32 * i], o[i]);
  }
  const float inv = l > 0.f ? 1.0f / l : 0.f;
  float* out = a.out + std::int64_t(row) * a.ldo + std::int64_t(h) * a.hd;
#pragma unroll
  for (int i = 0; i < 4; ++i)
    if (lane + 32 * i < a.hd) out[lane + 32 * i] = o[i] * inv;
}

// ------------------------------------------------------------------ scores of the last row

/// Launch shape of the scores pass (kernels are templates so the header has no ODR issue).
struct ScoresTraits {
  static constexpr int kThreads = 256;
};

/// logits[h][j] = (q_last,h . k_j) * scale for j < n_vis (natural units, like the CPU: the scores
/// pass uses expf, whose denormal results match std::exp, so near-zero scores tie the same way).
/// One warp per key.
template <class T, class ST>
__global__ void last_row_logits_kernel(AttnArgsT<ST> a, float scale, int n_vis, float* __restrict__ logits) {
  extern __shared__ float sq_all[];  // [n_heads * hd]
  const int d_all = a.n_heads * a.hd, kvd = a.n_kv_heads * a.hd, group = a.n_heads / a.n_kv_heads;
  const ST* q = a.q + std::int64_t(a.rows - 1) * a.ldq;
  for (int i = threadIdx.x; i < d_all; i += blockDim.x) sq_all[i] = Storage<ST>::to_float(q[i]);
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int j = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (j >= n_vis) return;
  const ST* k = a.k_cache + a.kv_slots[j] * kvd;
  for (int h = 0; h < a.n_heads; ++h) {
    const int kh = h / group;
    float acc = 0.f;
    for (int d = 2 * lane; d < a.hd; d += 64) {
      const float2 kv = Storage<ST>::to_float2(*reinterpret_cast<const typename Storage<ST>::pair*>(k + kh * a.hd + d));
      acc = fmaf(sq_all[h * a.hd + d], kv.x, fmaf(sq_all[h * a.hd + d + 1], kv.y, acc));
    }
    acc = warp_sum(acc);
    if (lane == 0) logits[std::int64_t(h) * n_vis + j] = acc * scale;
  }
}

/// Per head: ml[h] = (max_j logits[h][j], 1 / sum_j exp(logits - max)). One block per head.
template <class T>
__global__ void last_row_softmax_stats_kernel(const float* __restrict__ logits, int n_vis, float2* __restrict__ ml) {
  const float* s = logits + std::int64_t(blockIdx.x) * n_vis;
  __shared__ float red[32];
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < n_vis; j += blockDim.x) mx = fmaxf(mx, s[j]);
  mx = warp_max(mx);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = mx;
  __syncthreads();
  mx = -INFINITY;
  for (int w = 0; w < int(blockDim.x >> 5); ++w) mx = fmaxf(mx, red[w]);
  float sum = 0.f;
  for (int j = threadIdx.x; j < n_vis; j += blockDim.x) sum += expf(s[j] - mx);
  sum = block_sum(sum);
  if (threadIdx.x == 0) ml[blockIdx.x] = make_float2(mx, 1.0f / sum);
}

/// scores[j] = mean_h softmax_h(j) for j < n_vis; 0 for the entries after the last query.
template <class T>
__global__ void last_row_mean_kernel(const float* __restrict__ logits, const float2* __restrict__ ml, int n_heads,
                                     int n_vis, int n_kv, float* __restrict__ scores) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n_kv) return;
  float acc = 0.f;
  if (j < n_vis)
    for (int h = 0; h < n_heads; ++h) {
      const float2 st = ml[h];
      acc += expf(logits[std::int64_t(h) * n_vis + j] - st.x) * st.y;
    }
  scores[j] = acc / float(n_heads);
}

template <int HD, class ST>
void launch_attention(const AttnLaunchT<ST>& L, cudaStream_t stream) {
  using T = AttnTraits<HD>;
  const dim3 grid((L.a.rows + T::kBlockRows - 1) / T::kBlockRows, L.a.n_heads, L.n_splits);
  attention_kernel<T, ST><<<grid, T::kWarps * 32, 0, stream>>>(L);
  LAZYLLM_CUDA_CHECK_LAUNCH();
  if (L.n_splits > 1) {
    const std::int64_t n = std::int64_t(L.a.rows) * L.a.n_heads * L.a.hd;
    attention_combine_kernel<T, ST><<<unsigned(std::min<std::int64_t>((n + 255) / 256, 65535)), 256, 0, stream>>>(L);
    LAZYLLM_CUDA_CHECK_LAUNCH();
  }
}

/// Resident blocks of the decode kernel per multiprocessor (shared memory bounds it: 3 on sm_90
/// at head_dim 128), asked once per instantiation; it sizes the key split to whole waves.
template <int HD, int R, class ST>
int decode_attention_blocks_per_sm() {
  using T = DecodeTraits<HD, R>;
  static const int n = [] {
    LAZYLLM_CUDA_CHECK(cudaFuncSetAttribute(decode_attention_kernel<T, ST>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            T::kSmemBytes));
    int blocks = 0;
    LAZYLLM_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, decode_attention_kernel<T, ST>,
                                                                     T::kWarps * 32, T::kSmemBytes));
    return std::max(1, blocks);
  }();
  return n;
}

template <int HD, int R, class ST>
void launch_decode_attention(const AttnLaunchT<ST>& L, cudaStream_t stream) {
  using T = DecodeTraits<HD, R>;
  LAZYLLM_CUDA_CHECK(
      cudaFuncSetAttribute(decode_attention_kernel<T, ST>, cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmemBytes));
  decode_attention_kernel<T, ST>
      <<<dim3(unsigned(L.a.n_heads), unsigned(L.n_splits)), T::kWarps * 32, T::kSmemBytes, stream>>>(L);
  LAZYLLM_CUDA_CHECK_LAUNCH();
}

/// The tensor-core kernels' launch parameters for `a` (both prefill kernels take the same).
template <class ST>
MmaAttnLaunchT<ST> mma_launch_args(const AttnArgsT<ST>& a) {
  return {a.q,          a.ldq,
          a.k_cache,    a.v_cache,
          a.kv_slots,   a.kv_pos,
          a.q_pos,      a.rows,
          a.n_kv,       a.n_heads,
          a.n_kv_heads, a.out,
          a.ldo,        float(1.4426950408889634 / std::sqrt(double(a.hd)))};
}

}  // namespace detail

/// Attention over a token set; owns the split-over-keys and scores workspaces. Move-only.
class Attention {
 public:
  /// Set once per device (number of multiprocessors, used to size the key split); also asks
  /// whether the device runs the Hopper (wgmma) prefill kernel.
  void init(int sm_count) {
    sm_count_ = std::max(1, sm_count);
    sm90_ = sm90_attention_available();
  }
  /// Whether prefill-sized calls at head_dim 128 may take the Hopper wgmma kernel where the
  /// device has it (default on; off = the mma.sync kernel, for comparisons).
  void set_sm90(bool on) { sm90_wanted_ = on; }
  bool sm90_wanted() const { return sm90_wanted_; }
  bool sm90_available() const { return sm90_; }

  /// Which kernel run() uses: the tensor-core prefill kernel, the decode kernel (at most
  /// kDecodeMaxRows rows), or the general CUDA-core kernel (any shape; splits over keys).
  enum class Kernel { Auto, TensorCore, Decode, CudaCore };
  static constexpr int kDecodeMaxRows = tuning::AttentionDispatch::kDecodeMaxRows;
  /// Row count from which Auto takes the tensor-core kernel (head_dim 64 or 128): below it the
  /// CUDA-core kernel, which can split over keys, keeps decode-sized calls fast.
  static constexpr int kTensorCoreMinRows = tuning::AttentionDispatch::kTensorCoreMinRows;
  /// Waves of resident blocks the decode kernel's key split aims at (see decode_split_cap).
  static constexpr int kDecodeWaves = tuning::AttentionDispatch::kDecodeWaves;

  /// out = causal softmax(q k^T / sqrt(hd)) v. `force_splits` > 0 fixes the number of key
  /// splits of the CUDA-core kernel (tests; implies Kernel::CudaCore); 0 chooses.
  template <class ST>
  void run(const AttnArgsT<ST>& a, cudaStream_t stream, int force_splits = 0, Kernel kernel = Kernel::Auto) {
    if (a.rows <= 0) return;
    if (a.hd <= 0 || a.hd > 128 || a.hd % 2 != 0)
      throw InvalidArgument("CudaBackend attention: head_dim " + std::to_string(a.hd) +
                            " is not supported (even values up to 128)");
    if constexpr (std::is_same_v<ST, float>) {
      if (kernel != Kernel::Auto || force_splits > 0)
        throw InvalidArgument("CudaBackend attention: fp32 storage has one kernel (no forced kernel or split)");
      last_splits_ = 1;
      last_tensor_core_ = last_decode_ = false;
      const std::int64_t threads = std::int64_t(a.rows) * a.n_heads * 32;
      detail::attention_fp32_kernel<ST><<<unsigned((threads + 127) / 128), 128, 0, stream>>>(a);
      LAZYLLM_CUDA_CHECK_LAUNCH();
    } else {
      run_16(a, stream, force_splits, kernel);
    }
  }

 private:
  template <class ST>
  void run_16(const AttnArgsT<ST>& a, cudaStream_t stream, int force_splits, Kernel kernel) {
    const bool tc_ok = (a.hd == 64 || a.hd == 128) && force_splits <= 0;
    if (kernel == Kernel::TensorCore && !tc_ok)
      throw InvalidArgument(
          "CudaBackend attention: the tensor-core kernel needs head_dim 64 or 128 and no forced split");
    if (tc_ok && (kernel == Kernel::TensorCore || (kernel == Kernel::Auto && a.rows >= kTensorCoreMinRows))) {
      const detail::MmaAttnLaunchT<ST> M = detail::mma_launch_args(a);
      last_splits_ = 1;
      last_tensor_core_ = true;
      last_decode_ = false;
      last_sm90_ = sm90_ && sm90_wanted_ && a.hd == 128;
      if (last_sm90_) {
        detail::launch_sm90_attention<Sm90AttnTraits<128>, ST>(M, stream);
      } else if (a.hd == 64) {
        detail::launch_mma_attention<MmaAttnTraits<64>, ST>(M, stream);
      } else {
        detail::launch_mma_attention<MmaAttnTraits<128>, ST>(M, stream);
      }
      return;
    }
    last_tensor_core_ = false;
    const bool dec_ok = (a.hd == 64 || a.hd == 128) && force_splits <= 0 && a.rows <= kDecodeMaxRows;
    if (kernel == Kernel::Decode && !dec_ok)
      throw InvalidArgument("CudaBackend attention: the decode kernel needs head_dim 64 or 128, at most " +
                            std::to_string(kDecodeMaxRows) + " rows and no forced split");
    last_decode_ = false;
    if (dec_ok && (kernel == Kernel::Decode || kernel == Kernel::Auto)) {
      detail::AttnLaunchT<ST> L;
      L.a = a;
      L.scale_log2 = float(1.4426950408889634 / std::sqrt(double(a.hd)));
      L.split_cap = decode_split_cap<ST>(a);
      L.keys_per_split = detail::decode_keys_per_split(a.n_kv, L.split_cap, kDecodePass);
      L.n_splits = std::max(1, (a.n_kv + L.keys_per_split - 1) / L.keys_per_split);
      if (L.n_splits > 1) decode_workspace(a, L, stream, /*may_allocate=*/true);
      launch_decode(L, stream);
      return;
    }
    detail::AttnLaunchT<ST> L;
    L.a = a;
    L.scale_log2 = float(1.4426950408889634 / std::sqrt(double(a.hd)));
    constexpr int BK = AttnTraits<64>::kKeys, BR = AttnTraits<64>::kBlockRows;  // the same for HD 128
    using Split = tuning::SimtSplit;
    const int q_blocks = (a.rows + BR - 1) / BR * a.n_heads;
    const int tiles = (a.n_kv + BK - 1) / BK;
    int splits = 1;
    if (force_splits > 0)
      splits = force_splits;
    else if (q_blocks < sm_count_ && tiles > Split::kMinTiles)
      splits = std::min(tiles / Split::kMinTilesPerSplit, (Split::kBlocksPerSm * sm_count_ + q_blocks - 1) / q_blocks);
    splits = std::max(1, std::min(splits, tiles));
    L.keys_per_split = (tiles + splits - 1) / splits * BK;
    L.n_splits = (a.n_kv + L.keys_per_split - 1) / L.keys_per_split;
    if (L.n_splits < 1) L.n_splits = 1;
    const int HD = a.hd <= 64 ? 64 : 128;
    if (L.n_splits > 1) {
      const std::size_t cells = std::size_t(L.n_splits) * std::size_t(a.rows) * std::size_t(a.n_heads);
      part_o_.reserve(cells * std::size_t(HD), "attention split workspace");
      part_ml_.reserve(cells * 2, "attention split workspace");
      L.part_o = part_o_.get();
      L.part_ml = part_ml_.get();
    }
    last_splits_ = L.n_splits;
    if (HD == 64)
      detail::launch_attention<64, ST>(L, stream);
    else
      detail::launch_attention<128, ST>(L, stream);
  }

  static constexpr int kDecodePass = detail::DecodeTraits<64, 1>::kKeysPerPass;

  /// (head, split) blocks for kDecodeWaves full waves of the GPU, each split whole passes of 128
  /// keys: the kernel is bandwidth-bound and its blocks are short, so a partly filled last wave
  /// (the earlier rule, 4 blocks per multiprocessor where 3 fit) costs a whole pass.
  template <class ST>
  int decode_split_cap(const AttnArgsT<ST>& a) const {
    const int per_sm = a.hd == 64 ? (a.rows == 1 ? detail::decode_attention_blocks_per_sm<64, 1, ST>()
                                                 : detail::decode_attention_blocks_per_sm<64, 4, ST>())
                                  : (a.rows == 1 ? detail::decode_attention_blocks_per_sm<128, 1, ST>()
                                                 : detail::decode_attention_blocks_per_sm<128, 4, ST>());
    return std::max(1, kDecodeWaves * per_sm * sm_count_ / a.n_heads);
  }

  /// Points L at the split workspace for L.n_splits splits (allocating it only if `may_allocate`:
  /// not inside a graph capture) and zeroes the per-head counters the first time.
  template <class ST>
  void decode_workspace(const AttnArgsT<ST>& a, detail::AttnLaunchT<ST>& L, cudaStream_t stream, bool may_allocate) {
    const std::size_t cells = std::size_t(L.n_splits) * std::size_t(a.rows) * std::size_t(a.n_heads);
    if (!may_allocate && (part_o_.size() < cells * std::size_t(a.hd) || part_ml_.size() < cells * 2 ||
                          split_done_.size() < std::size_t(a.n_heads)))
      throw Error("internal: Attention::run_decode_dynamic without prepare_decode_dynamic for this shape");
    part_o_.reserve(cells * std::size_t(a.hd), "attention split workspace");
    part_ml_.reserve(cells * 2, "attention split workspace");
    L.part_o = part_o_.get();
    L.part_ml = part_ml_.get();
    if (split_done_.size() < std::size_t(a.n_heads)) {  // zero once; each launch leaves them zero
      split_done_.reserve(std::size_t(a.n_heads), "attention split counters");
      LAZYLLM_CUDA_CHECK(cudaMemsetAsync(split_done_.get(), 0, split_done_.bytes(), stream));
    }
    L.split_done = split_done_.get();
  }

  template <class ST>
  void launch_decode(const detail::AttnLaunchT<ST>& L, cudaStream_t stream) {
    last_tensor_core_ = false;
    last_splits_ = L.n_splits;
    last_decode_ = true;
    if (L.a.hd == 64)
      L.a.rows == 1 ? detail::launch_decode_attention<64, 1, ST>(L, stream)
                    : detail::launch_decode_attention<64, 4, ST>(L, stream);
    else
      L.a.rows == 1 ? detail::launch_decode_attention<128, 1, ST>(L, stream)
                    : detail::launch_decode_attention<128, 4, ST>(L, stream);
  }

  /// The most splits run() uses for any key count up to a.n_kv (the count never exceeds the
  /// passes of 128 keys, which grow with it).
  template <class ST>
  int decode_dynamic_splits(const AttnArgsT<ST>& a) const {
    return std::min(decode_split_cap<ST>(a), detail::decode_passes(a.n_kv, kDecodePass));
  }

  template <class ST>
  static void check_decode_dynamic(const AttnArgsT<ST>& a) {
    static_assert(!std::is_same_v<ST, float>, "Attention::run_decode_dynamic: 2-byte storage only");
    if ((a.hd != 64 && a.hd != 128) || a.rows < 1 || a.rows > kDecodeMaxRows)
      throw InvalidArgument("CudaBackend attention: the device-count decode needs head_dim 64 or 128 and 1.." +
                            std::to_string(kDecodeMaxRows) + " rows");
  }

 public:
  /// Reserves what run_decode_dynamic(a, ...) uses (call it before a CUDA graph capture: the
  /// launch itself never allocates) and returns the workspace addresses, which a captured graph
  /// bakes in: when they change, capture again.
  template <class ST>
  std::array<const void*, 3> prepare_decode_dynamic(const AttnArgsT<ST>& a, cudaStream_t stream) {
    check_decode_dynamic(a);
    detail::AttnLaunchT<ST> L;
    L.a = a;
    L.n_splits = decode_dynamic_splits(a);
    if (L.n_splits > 1) decode_workspace(a, L, stream, /*may_allocate=*/true);
    return {L.part_o, L.part_ml, L.split_done};
  }

  /// The decode kernel with its key count read on the device: *n_kv_dev (at most a.n_kv, the
  /// capacity of a.kv_pos / a.kv_slots) when the kernel runs, so one launch captured in a CUDA
  /// graph serves every decode step. The grid has the most splits run() would use for up to a.n_kv
  /// keys; each block derives the split run() chooses for that count, and blocks past it store an
  /// empty partial: the same keys per block and the same merge order as run(), so the same
  /// results bit for bit.
  /// Head dim 64 or 128, at most kDecodeMaxRows rows, 2-byte storage; prepare_decode_dynamic first.
  template <class ST>
  void run_decode_dynamic(const AttnArgsT<ST>& a, const int* n_kv_dev, cudaStream_t stream) {
    check_decode_dynamic(a);
    detail::AttnLaunchT<ST> L;
    L.a = a;
    L.scale_log2 = float(1.4426950408889634 / std::sqrt(double(a.hd)));
    L.n_kv_dev = n_kv_dev;
    L.split_cap = decode_split_cap<ST>(a);
    L.n_splits = decode_dynamic_splits(a);
    L.keys_per_split = kDecodePass;  // unused: the kernel derives it
    if (L.n_splits > 1) decode_workspace(a, L, stream, /*may_allocate=*/false);
    launch_decode(L, stream);
  }

  /// scores_dev[j] (j < n_kv) = softmax attention of the last query row to entry j, averaged
  /// over the query heads; entries after the last row's position get 0. `n_vis` = number of
  /// kv_pos <= q_pos[rows-1] (the caller knows it on the host).
  template <class ST>
  void last_row_scores(const AttnArgsT<ST>& a, int n_vis, float* scores_dev, cudaStream_t stream) {
    if (a.n_kv <= 0) return;
    const float scale = 1.0f / std::sqrt(float(a.hd));  // as CpuBackend computes it
    logits_.reserve(std::size_t(std::max(n_vis, 1)) * std::size_t(a.n_heads), "attention scores workspace");
    ml_.reserve(std::size_t(a.n_heads), "attention scores workspace");
    if (n_vis > 0) {
      constexpr int th = detail::ScoresTraits::kThreads;
      const std::size_t smem = std::size_t(a.n_heads) * std::size_t(a.hd) * sizeof(float);
      if (smem > 48 * 1024) {
        LAZYLLM_CUDA_CHECK(cudaFuncSetAttribute(detail::last_row_logits_kernel<detail::ScoresTraits, ST>,
                                                cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
      }
      detail::last_row_logits_kernel<detail::ScoresTraits, ST>
          <<<unsigned((n_vis + th / 32 - 1) / (th / 32)), th, smem, stream>>>(a, scale, n_vis, logits_.get());
      LAZYLLM_CUDA_CHECK_LAUNCH();
      detail::last_row_softmax_stats_kernel<detail::ScoresTraits>
          <<<a.n_heads, 256, 0, stream>>>(logits_.get(), n_vis, ml_.get());
      LAZYLLM_CUDA_CHECK_LAUNCH();
    }
    detail::last_row_mean_kernel<detail::ScoresTraits><<<unsigned((a.n_kv + 255) / 256), 256, 0, stream>>>(
        logits_.get(), ml_.get(), a.n_heads, n_vis, a.n_kv, scores_dev);
    LAZYLLM_CUDA_CHECK_LAUNCH();
  }

  int last_splits() const { return last_splits_; }
  /// Whether the last run() used the tensor-core kernel.
  bool last_tensor_core() const { return last_tensor_core_; }
  /// Whether the last run() used the decode kernel.
  bool last_decode() const { return last_decode_; }
  /// Whether the last tensor-core run() used the Hopper wgmma kernel.
  bool last_sm90() const { return last_sm90_; }

 private:
  int sm_count_ = 132;
  int last_splits_ = 1;
  bool last_tensor_core_ = false;
  bool last_decode_ = false;
  bool last_sm90_ = false;
  bool sm90_ = false, sm90_wanted_ = true;
  DeviceBuffer<float> part_o_, part_ml_, logits_;
  DeviceBuffer<unsigned> split_done_;
  DeviceBuffer<float2> ml_;
};

}  // namespace lazyllm::gpu
