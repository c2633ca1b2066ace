// SPDX-License-Identifier: MIT
// The decode attention kernel (head_dim 64 or 128, at most 4 query rows, 2-byte storage): one
// kernel per step, splitting the keys over blocks and merging the splits in the last block of
// each head; it can read its key count on the device (CUDA graph replays).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "lazyllm/backend/cuda/attention/params.cuh"
#include "lazyllm/backend/cuda/attention/ptx.cuh"
#include "lazyllm/backend/cuda/numeric.cuh"
#include "lazyllm/backend/cuda/runtime.cuh"

namespace lazyllm::gpu {
namespace detail {

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

/// The body of one (head, split) block for one sequence's arguments.
template <class T, class ST>
__device__ __forceinline__ void decode_attention_block(const AttnParams<ST>& a, const AttnSplit& L) {
  constexpr int HD = T::kHeadDim, R = T::kRows, W = T::kWarps, DL = T::kDimsPerLane, S = T::kVStride;
  constexpr int CH = HD / 8;  // 16-byte chunks per K/V row
  __shared__ __align__(16) float sq[R][HD];
  __shared__ int s_nvis[R];
  __shared__ float s_ml[W][R][2];
  extern __shared__ __align__(16) unsigned char decode_smem[];  // [K, V][W][32][S] ST

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  ST* sk = reinterpret_cast<ST*>(decode_smem) + warp * 32 * S;
  ST* sv = reinterpret_cast<ST*>(decode_smem) + (W + warp) * 32 * S;
  const int h = blockIdx.x, split = blockIdx.y, kh = h / (a.n_heads / a.n_kv_heads);
  for (int i = tid; i < R * HD; i += W * 32) {
    const int r = i / HD, d = i % HD;
    sq[r][d] = r < a.rows ? Storage<ST>::to_float(a.q[std::int64_t(r) * a.ldq + h * HD + d]) : 0.f;
  }
  const int n_kv = L.n_kv_dev ? *L.n_kv_dev : a.kv.count;
  if (tid < R) s_nvis[tid] = tid < a.rows ? count_le(a.kv.positions, n_kv, a.q_pos[tid]) : 0;
  __syncthreads();
  int nv[R], hi = 0;
#pragma unroll
  for (int r = 0; r < R; ++r) hi = max(hi, nv[r] = s_nvis[r]);
  // A graph replay (and each sequence of a batch) splits as Attention::run would for this count;
  // blocks past the last split find no keys and store an empty partial (m = -inf), which the
  // merge skips.
  const int kps = (L.n_kv_dev || L.seqs) ? decode_keys_per_split(n_kv, L.split_cap, T::kKeysPerPass) : L.keys_per_split;
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
    const std::int64_t row = valid ? a.kv.store.offset(a.kv.slot(key)) : 0;  // this lane's key's K/V row
    __syncwarp();  // the previous pass has finished reading this warp's rows

    // Coalesced async copies of the 32 keys' K and V rows (each instruction covers whole rows).
#pragma unroll
    for (int i = 0; i < CH; ++i) {
      const int ci = i * 32 + lane, kl = ci / CH, c = ci % CH;
      const std::int64_t rk = __shfl_sync(0xffffffffu, row, kl);
      const bool ok = base + kl < end;
      cp_async_16(sk + kl * S + c * 8, a.kv.store.k_at(rk, kh) + c * 8, ok);
      cp_async_16(sv + kl * S + c * 8, a.kv.store.v_at(rk, kh) + c * 8, ok);
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
      const float sv_ = (valid && key < nv[r]) ? s[r] * a.kv.scale_log2 : -INFINITY;
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

/// One sequence: grid (head, split).
template <class T, class ST>
__global__ void __launch_bounds__(T::kWarps * 32)
    decode_attention_kernel(const __grid_constant__ AttnParams<ST> a, const __grid_constant__ AttnSplit L) {
  decode_attention_block<T, ST>(a, L);
}

/// Several sequences (L.seqs): grid (head, split, sequence). Each block narrows the shared
/// arguments to its sequence, then runs the one-sequence body (a kernel of its own, so the
/// one-sequence kernel keeps reading its arguments in place, with its register count).
/// The arguments are plain by-value parameters here, not __grid_constant__: nvcc 13.0 compiled a
/// modified copy of a __grid_constant__ AttnParams (the first form of this launch, one kernel for
/// both cases) into reads of the original for `q`, so every sequence after the first read the
/// first one's query rows (the PTX showed q's offset missing; the H100 test failed for z > 0).
template <class T, class ST>
__global__ void __launch_bounds__(T::kWarps * 32)
    decode_attention_varlen_kernel(const AttnParams<ST> a0, const AttnSplit L0) {
  const VarlenSeq s = L0.seqs[blockIdx.z];
  AttnParams<ST> a = a0;
  a.q += std::int64_t(s.row_begin) * a.ldq;
  a.q_pos += s.row_begin;
  a.rows = s.rows;
  a.out += std::int64_t(s.row_begin) * a.ldo;
  a.kv.positions += s.kv_begin;
  a.kv.slots += s.kv_begin;
  a.kv.count = s.n_kv;
  AttnSplit L = L0;
  L.part_o += std::int64_t(blockIdx.z) * L.seq_cells * T::kHeadDim;
  L.part_ml += std::int64_t(blockIdx.z) * L.seq_cells * 2;
  L.split_done += std::int64_t(blockIdx.z) * a.n_heads;
  decode_attention_block<T, ST>(a, L);
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

/// One launch: grid (head, split) for one sequence, (head, split, sequence) for `n_seqs` of them
/// (L.seqs set).
template <int HD, int R, class ST>
void launch_decode_attention(const AttnParams<ST>& a, const AttnSplit& L, cudaStream_t stream, int n_seqs = 1) {
  using T = DecodeTraits<HD, R>;
  if (L.seqs == nullptr) {
    LAZYLLM_CUDA_CHECK(cudaFuncSetAttribute(decode_attention_kernel<T, ST>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            T::kSmemBytes));
    decode_attention_kernel<T, ST>
        <<<dim3(unsigned(a.n_heads), unsigned(L.n_splits)), T::kWarps * 32, T::kSmemBytes, stream>>>(a, L);
  } else {
    LAZYLLM_CUDA_CHECK(cudaFuncSetAttribute(decode_attention_varlen_kernel<T, ST>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmemBytes));
    decode_attention_varlen_kernel<T, ST>
        <<<dim3(unsigned(a.n_heads), unsigned(L.n_splits), unsigned(n_seqs)), T::kWarps * 32, T::kSmemBytes, stream>>>(
            a, L);
  }
  LAZYLLM_CUDA_CHECK_LAUNCH();
}

}  // namespace detail
}  // namespace lazyllm::gpu
