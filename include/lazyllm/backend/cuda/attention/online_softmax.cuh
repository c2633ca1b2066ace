// SPDX-License-Identifier: MIT
// The pieces both tensor-core prefill kernels share (sm80_mma_prefill.cuh, sm90_wgmma_prefill.cuh),
// on the m16n8 accumulator fragment layout that mma.sync produces and wgmma repeats along N: the
// prologue (Q tile and visible-key counts), the double-buffered K/V tile steps, one key tile of
// the base-2 online softmax with its exp2 hooks, the normalising epilogue, and the launch.
#pragma once
#include <cmath>
#include <cstdint>

#include "lazyllm/backend/cuda/attention/params.cuh"
#include "lazyllm/backend/cuda/attention/ptx.cuh"
#include "lazyllm/backend/cuda/numeric.cuh"
#include "lazyllm/backend/cuda/runtime.cuh"

namespace lazyllm::gpu {
namespace detail {

template <class ST>
__device__ __forceinline__ std::uint32_t pack2(float lo, float hi) {
  const typename Storage<ST>::pair v = Storage<ST>::from_float2(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&v);
}

/// The prologue both prefill kernels share (sm80 mma.sync and sm90 wgmma): queues the
/// block's BR query rows of head `h` as one cp.async group into `sq` (row stride `qs` elements;
/// rows past the end read row 0 and are zero-filled), writes each row's visible-key count to
/// s_nvis (0 past the end), and returns the largest (the keys any row of the block sees) after a
/// barrier. Every thread of the block calls it.
template <int HD, int BR, int NT, class ST>
__device__ __forceinline__ int load_q_and_visible_keys(const AttnParams<ST>& L, int row0, int h, ST* sq, int qs,
                                                       int* s_nvis) {
  constexpr int CH = HD / 8;  // 16-byte chunks per row
  const int tid = threadIdx.x;
  for (int i = tid; i < BR * CH; i += NT) {
    const int r = i / CH, c = i % CH, row = row0 + r;
    const bool ok = row < L.rows;
    cp_async_16(sq + r * qs + c * 8, L.q + std::int64_t(ok ? row : 0) * L.ldq + h * HD + c * 8, ok);
  }
  cp_async_commit();
  auto count = [&](int r) {
    const int row = row0 + r;
    s_nvis[r] = row < L.rows ? L.kv.visible(L.q_pos[row]) : 0;
  };
  if constexpr (NT >= BR) {  // one row per thread at most (a loop here costs instructions)
    if (tid < BR) count(tid);
  } else {
    for (int r = tid; r < BR; r += NT) count(r);
  }
  __syncthreads();
  int hi = 0;
  for (int r = BR - 1; r >= 0; --r)
    if (s_nvis[r] > 0) {
      hi = s_nvis[r];  // ascending: the last valid row sees the most
      break;
    }
  return hi;
}

/// Queues the first K/V tile of `hi` keys (load_tile(stage, first key): one cp.async group) if
/// there is one, and waits for the Q group queued before it (load_q_and_visible_keys): after the
/// barrier Q is in shared memory and the first tile is on its way. Returns the number of tiles.
template <int BK, class LoadTile>
__device__ __forceinline__ int start_kv_tiles(int hi, LoadTile& load_tile) {
  const int n_tiles = (hi + BK - 1) / BK;
  if (n_tiles > 0) load_tile(0, 0);
  if (n_tiles > 0)
    cp_async_wait<1>();  // the Q group (older than the first tile's) has landed
  else
    cp_async_wait<0>();
  __syncthreads();
  return n_tiles;
}

/// At key tile `it` of `n_tiles` (double-buffered): queues tile it + 1 into the other stage and
/// waits until this thread's copies of tile `it` have landed (the caller's barrier then makes
/// them the block's).
template <int BK, class LoadTile>
__device__ __forceinline__ void next_kv_tile(int it, int n_tiles, LoadTile& load_tile) {
  if (it + 1 < n_tiles) {
    load_tile((it & 1) ^ 1, (it + 1) * BK);
    cp_async_wait<1>();
  } else {
    cp_async_wait<0>();
  }
}

/// exp2 hooks of online_softmax_step: the CUDA math library's exp2f (the mma.sync kernel) or the
/// bare hardware approximation, ex2.approx.ftz (the sm90 kernel; relative error ~2^-22, -inf
/// gives 0).
struct Exp2Library {
  __device__ __forceinline__ float operator()(float x) const { return exp2f(x); }
};
struct Exp2Approx {
  __device__ __forceinline__ float operator()(float x) const {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
  }
};

/// One key tile of the online softmax both prefill kernels share, for the two rows a lane holds
/// in an m16n8 accumulator fragment (rows g and g + 8: values 0-1 and 2-3 of each block of 8
/// keys; a row spans the lane quad). `s`: the tile's scores, -inf where masked; `scale`: the
/// base-2 factor still to apply (1 when `s` is already scaled). Updates the running maxima `m`
/// (scaled) and the per-thread partial sums `l`, writes P = 2^(s * scale - max) as the A
/// fragments of P V into `pf`, and rescales the NO blocks of 8 output columns in `o`.
template <class ST, class Exp2, int NB, int NO>
__device__ __forceinline__ void online_softmax_step(const float (&s)[NB][4], float scale, float (&m)[2], float (&l)[2],
                                                    std::uint32_t (&pf)[NB / 2][4], float (&o)[NO][4]) {
  const Exp2 ex2;
  float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
  for (int nb = 0; nb < NB; ++nb) {
    mx0 = fmaxf(mx0, fmaxf(s[nb][0], s[nb][1]));
    mx1 = fmaxf(mx1, fmaxf(s[nb][2], s[nb][3]));
  }
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
  mx0 = fmaxf(m[0], mx0 * scale);  // running maxima, scaled (scale > 0)
  mx1 = fmaxf(m[1], mx1 * scale);
  // A row that has seen no key yet keeps max -inf: subtract 0 instead (its p and a are 0 and 1).
  const float u0 = mx0 == -INFINITY ? 0.f : mx0, u1 = mx1 == -INFINITY ? 0.f : mx1;
  const float a0 = ex2(m[0] - u0), a1 = ex2(m[1] - u1);
  m[0] = mx0;
  m[1] = mx1;
  float rs0 = 0.f, rs1 = 0.f;
#pragma unroll
  for (int nb = 0; nb < NB; ++nb) {
    const float p0 = ex2(fmaf(s[nb][0], scale, -u0)), p1 = ex2(fmaf(s[nb][1], scale, -u0));
    const float p2 = ex2(fmaf(s[nb][2], scale, -u1)), p3 = ex2(fmaf(s[nb][3], scale, -u1));
    rs0 += p0 + p1;
    rs1 += p2 + p3;
    pf[nb / 2][(nb & 1) * 2 + 0] = pack2<ST>(p0, p1);
    pf[nb / 2][(nb & 1) * 2 + 1] = pack2<ST>(p2, p3);
  }
  l[0] = l[0] * a0 + rs0;  // per-thread partial sums: store_normalized_rows reduces them over the quad
  l[1] = l[1] * a1 + rs1;
#pragma unroll
  for (int i = 0; i < NO; ++i) {
    o[i][0] *= a0;
    o[i][1] *= a0;
    o[i][2] *= a1;
    o[i][3] *= a1;
  }
}

/// The epilogue both prefill kernels share: sums each row's partial softmax denominators over
/// the lane quad and writes O / l as ST for rows r0 and r0 + 8 of this lane's fragment (NO blocks
/// of 8 columns of head `h`). Rows at or past L.rows are skipped; a row that saw no key gets 0.
template <int HD, class ST, int NO>
__device__ __forceinline__ void store_normalized_rows(const AttnParams<ST>& L, const float (&o)[NO][4],
                                                      const float (&l)[2], int r0, int h) {
  float l0 = l[0], l1 = l[1];
  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const float i0 = l0 > 0.f ? 1.f / l0 : 0.f, i1 = l1 > 0.f ? 1.f / l1 : 0.f;
  const int r1 = r0 + 8, t = threadIdx.x & 3;
#pragma unroll
  for (int dn = 0; dn < NO; ++dn) {
    const int d = h * HD + dn * 8 + 2 * t;
    if (r0 < L.rows)
      *reinterpret_cast<typename Storage<ST>::pair*>(L.out + std::int64_t(r0) * L.ldo + d) =
          Storage<ST>::from_float2(o[dn][0] * i0, o[dn][1] * i0);
    if (r1 < L.rows)
      *reinterpret_cast<typename Storage<ST>::pair*>(L.out + std::int64_t(r1) * L.ldo + d) =
          Storage<ST>::from_float2(o[dn][2] * i1, o[dn][3] * i1);
  }
}

/// Launches a prefill kernel (T: its traits) over (row blocks, heads) with T::kSmemBytes of
/// dynamic shared memory.
template <class T, class ST>
void launch_prefill(void (*kernel)(const AttnParams<ST>), const AttnParams<ST>& L, cudaStream_t stream) {
  // Over 48 KiB of dynamic shared memory needs the opt-in (cheap; set on every launch so that it
  // holds on whichever device is current).
  LAZYLLM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmemBytes));
  const dim3 grid(unsigned((L.rows + T::kBlockRows - 1) / T::kBlockRows), unsigned(L.n_heads));
  kernel<<<grid, T::kThreads, T::kSmemBytes, stream>>>(L);
  LAZYLLM_CUDA_CHECK_LAUNCH();
}

}  // namespace detail
}  // namespace lazyllm::gpu
