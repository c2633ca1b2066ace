// SPDX-License-Identifier: MIT
// Tensor-core causal prefill attention over a compacted token set (sm_80+: mma.sync m16n8k16 bf16 or fp16,
// ldmatrix, cp.async). FlashAttention-2 structure: a block owns kBlockRows query rows of one head
// (16 per warp), walks the visible keys in tiles of kKeys double-buffered in shared memory, keeps
// the online-softmax state (m, l) and the output accumulator in registers, and never forms the
// n x n score matrix. K/V rows are fetched through the cache index (kv_slots), so contiguous and
// paged layouts both work. Masking uses visible-key counts: query row r sees the first
// count(kv_pos <= q_pos[r]) entries of the set (the set and the rows are position-ordered).
//
// Used by Attention::run for prefill-sized row counts with head_dim exactly 64 or 128; decode and
// other head dims go to the CUDA-core kernel in attention.cuh (which also splits over keys).
#pragma once
#include <cstdint>
#include <type_traits>

#include "lazyllm/backend/cuda/numeric.cuh"
#include "lazyllm/backend/cuda/runtime.cuh"
#include "lazyllm/backend/cuda/tuning.cuh"

namespace lazyllm::gpu {

/// Tile shape of the tensor-core prefill kernel: `Warps` warps per block, each owning `MTiles`
/// m16 tiles of query rows (rows per block = 16 * MTiles * Warps), `Keys` keys per shared-memory
/// tile. Two m16 tiles per warp reuse every K/V fragment read from shared memory twice (with one,
/// ldmatrix bandwidth, not the tensor cores, bounds the kernel); Q stays in registers only when
/// that leaves room (one tile, or head_dim 64). Defaults: tuning::Sm80MmaPrefill.
template <int HD, int Warps = tuning::Sm80MmaPrefill::kWarps, int MTiles = tuning::Sm80MmaPrefill::kMTiles,
          int Keys = tuning::Sm80MmaPrefill::kKeys>
struct MmaAttnTraits {
  static_assert(HD == 64 || HD == 128, "MmaAttnTraits: the tensor-core attention supports head_dim 64 and 128");
  static_assert(MTiles == 1 || MTiles == 2, "MmaAttnTraits: one or two m16 row tiles per warp");
  static_assert(Keys == 32 || Keys == 64, "MmaAttnTraits: 32 or 64 keys per tile");
  static constexpr int kHeadDim = HD;
  static constexpr int kWarps = Warps;
  static constexpr int kMTiles = MTiles;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockRows = 16 * kMTiles * kWarps;
  static constexpr int kKeys = Keys;
  static constexpr bool kQInRegs = MTiles == 1 || HD == 64;
  static constexpr int kMinBlocks = 256 / kThreads;  // 8 warps per SM: up to 255 registers per thread
  static constexpr int kStride = HD + 8;             // elements per smem row: 16-byte pad, conflict-free ldmatrix
  static constexpr int kTileElems = kKeys * kStride;
  static constexpr int kSmemBytes = (kBlockRows * kStride + 4 * kTileElems) * 2;  // Q + 2 stages of K and V
};

namespace detail {

/// Number of entries of the ascending array kv_pos[0..n) that are <= p: the visible-key count of
/// a query at position p over a position-ordered token set (binary search).
__device__ __forceinline__ int count_le(const std::int32_t* kv_pos, int n, std::int32_t p) {
  int lo = 0, hi = n;
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (kv_pos[mid] <= p)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

__device__ __forceinline__ std::uint32_t smem_addr(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

/// 16-byte async copy global -> shared; zero-fills when !valid.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
  const int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

/// d += a * b for one m16n8k16 tile (ST = bf16 or fp16 inputs, fp32 accumulators).
template <class ST>
__device__ __forceinline__ void mma_16816(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                          std::uint32_t b1) {
  if constexpr (std::is_same_v<ST, fp16>)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <class ST>
__device__ __forceinline__ std::uint32_t pack2(float lo, float hi) {
  const typename Storage<ST>::pair v = Storage<ST>::from_float2(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&v);
}

/// Launch parameters of the tensor-core kernel (the args plus the base-2 softmax scale).
template <class ST>
struct MmaAttnLaunchT {
  const ST* q;
  int ldq;
  const ST* k_cache;
  const ST* v_cache;
  const std::int64_t* kv_slots;
  const std::int32_t* kv_pos;
  const std::int32_t* q_pos;
  int rows, n_kv, n_heads, n_kv_heads;
  ST* out;
  int ldo;
  float scale_log2;
};
using MmaAttnLaunch = MmaAttnLaunchT<bf16>;

/// The prologue both prefill kernels share (this one and sm90_attention.cuh's): queues the
/// block's BR query rows of head `h` as one cp.async group into `sq` (row stride `qs` elements;
/// rows past the end read row 0 and are zero-filled), writes each row's visible-key count to
/// s_nvis (0 past the end), and returns the largest (the keys any row of the block sees) after a
/// barrier. Every thread of the block calls it.
template <int HD, int BR, int NT, class ST>
__device__ __forceinline__ int load_q_and_visible_keys(const MmaAttnLaunchT<ST>& L, int row0, int h, ST* sq, int qs,
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
    s_nvis[r] = row < L.rows ? count_le(L.kv_pos, L.n_kv, L.q_pos[row]) : 0;
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
__device__ __forceinline__ void store_normalized_rows(const MmaAttnLaunchT<ST>& L, const float (&o)[NO][4],
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

template <class T, class ST>
__global__ void __launch_bounds__(T::kThreads, T::kMinBlocks) mma_attention_kernel(MmaAttnLaunchT<ST> L) {
  constexpr int HD = T::kHeadDim, BR = T::kBlockRows, BK = T::kKeys, S = T::kStride, NT = T::kThreads;
  constexpr int MT = T::kMTiles, WR = 16 * MT;  // m16 tiles and rows per warp
  constexpr int CH = HD / 8;                    // 16-byte chunks per row
  extern __shared__ __align__(16) unsigned char smem_raw[];
  ST* sq = reinterpret_cast<ST*>(smem_raw);
  ST* sk = sq + BR * S;             // [2][BK][S]
  ST* sv = sk + 2 * T::kTileElems;  // [2][BK][S]
  __shared__ int s_nvis[BR];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  // Heavier (later) row blocks first: causal work grows with the row index.
  const int row0 = (gridDim.x - 1 - blockIdx.x) * BR;
  const int h = blockIdx.y, kh = h / (L.n_heads / L.n_kv_heads);
  const std::int64_t kvd = std::int64_t(L.n_kv_heads) * HD;

  // Q tile (zero rows past the end) and each row's visible-key count.
  const int hi = load_q_and_visible_keys<HD, BR, NT>(L, row0, h, sq, S, s_nvis);
  const int wr0 = warp * WR;
  int nv[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    nv[mt][0] = s_nvis[wr0 + mt * 16 + g];
    nv[mt][1] = s_nvis[wr0 + mt * 16 + g + 8];
  }
  // Warp-uniform bounds (mma.sync needs the whole warp): keys below warp_lo are visible to every
  // row of the warp, none at or past warp_max to any.
  int warp_lo = s_nvis[wr0], warp_max = 0;
  for (int r = 0; r < WR; ++r) {
    warp_max = max(warp_max, s_nvis[wr0 + r]);
    warp_lo = min(warp_lo, s_nvis[wr0 + r]);
  }

  auto load_tile = [&](int stage, int t0) {
    ST* dk = sk + stage * T::kTileElems;
    ST* dv = sv + stage * T::kTileElems;
    for (int i = tid; i < BK * CH; i += NT) {
      const int j = i / CH, c = i % CH, key = t0 + j;
      const bool ok = key < hi;
      const std::int64_t off = (ok ? L.kv_slots[key] : 0) * kvd + std::int64_t(kh) * HD + c * 8;
      cp_async_16(dk + j * S + c * 8, L.k_cache + off, ok);
      cp_async_16(dv + j * S + c * 8, L.v_cache + off, ok);
    }
    cp_async_commit();
  };

  const int n_tiles = (hi + BK - 1) / BK;
  if (n_tiles > 0) load_tile(0, 0);
  if (n_tiles > 0)
    cp_async_wait<1>();  // the Q group (older than the first tile's) has landed
  else
    cp_async_wait<0>();
  __syncthreads();

  // Q fragments (A operand): row offset of this lane's ldmatrix address within an m16 tile.
  const int q_lr = (lane & 7) + ((lane >> 3) & 1) * 8, q_lc = (lane >> 4) * 8;
  auto load_q = [&](std::uint32_t(&f)[4], int mt, int kk) {
    ldmatrix_x4(f, sq + (wr0 + mt * 16 + q_lr) * S + kk * 16 + q_lc);
  };
  std::uint32_t qreg[T::kQInRegs ? MT : 1][T::kQInRegs ? HD / 16 : 1][4];
  if constexpr (T::kQInRegs) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) load_q(qreg[mt][kk], mt, kk);
  }

  float o[MT][HD / 8][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < HD / 8; ++i) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
  float m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.f;

  for (int it = 0; it < n_tiles; ++it) {
    const int t0 = it * BK, stage = it & 1;
    if (it + 1 < n_tiles) {
      load_tile(stage ^ 1, t0 + BK);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (t0 < warp_max) {
      const ST* ck = sk + stage * T::kTileElems;
      const ST* cv = sv + stage * T::kTileElems;
      // S = Q K^T for the warp's rows x BK keys; each K fragment feeds MT tiles of rows.
      float s[MT][BK / 8][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nb = 0; nb < BK / 8; ++nb) s[mt][nb][0] = s[mt][nb][1] = s[mt][nb][2] = s[mt][nb][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < HD / 16; kk += 2) {
        std::uint32_t qa[MT][2][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int u = 0; u < 2; ++u) {
            if constexpr (T::kQInRegs) {
#pragma unroll
              for (int e = 0; e < 4; ++e) qa[mt][u][e] = qreg[mt][kk + u][e];
            } else {
              load_q(qa[mt][u], mt, kk + u);
            }
          }
#pragma unroll
        for (int nb = 0; nb < BK / 8; ++nb) {
          std::uint32_t b[4];
          ldmatrix_x4(b, ck + (nb * 8 + (lane & 7)) * S + kk * 16 + (lane >> 3) * 8);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_16816<ST>(s[mt][nb], qa[mt][0], b[0], b[1]);
            mma_16816<ST>(s[mt][nb], qa[mt][1], b[2], b[3]);
          }
        }
      }
      // Mask (only where the tile crosses a row's visible count) and scale into base 2.
      const bool full = t0 + BK <= warp_lo;
      std::uint32_t pf[MT][BK / 16][4];  // P as A fragments, one per k16 chunk of keys
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int nb = 0; nb < BK / 8; ++nb) {
          const int key = t0 + nb * 8 + 2 * t;
          s[mt][nb][0] = (full || key < nv[mt][0]) ? s[mt][nb][0] * L.scale_log2 : -INFINITY;
          s[mt][nb][1] = (full || key + 1 < nv[mt][0]) ? s[mt][nb][1] * L.scale_log2 : -INFINITY;
          s[mt][nb][2] = (full || key < nv[mt][1]) ? s[mt][nb][2] * L.scale_log2 : -INFINITY;
          s[mt][nb][3] = (full || key + 1 < nv[mt][1]) ? s[mt][nb][3] * L.scale_log2 : -INFINITY;
        }
        online_softmax_step<ST, Exp2Library>(s[mt], 1.f, m[mt], l[mt], pf[mt], o[mt]);  // s is scaled already
      }
      // O += P V; each V fragment feeds MT tiles of rows. Skip k16 chunks no row of the warp sees.
#pragma unroll
      for (int kc = 0; kc < BK / 16; ++kc) {
        if (t0 + kc * 16 >= warp_max) break;
#pragma unroll
        for (int dn = 0; dn < HD / 8; dn += 2) {
          std::uint32_t b[4];
          ldmatrix_x4_trans(b, cv + (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * S + dn * 8 + (lane >> 4) * 8);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_16816<ST>(o[mt][dn], pf[mt][kc], b[0], b[1]);
            mma_16816<ST>(o[mt][dn + 1], pf[mt][kc], b[2], b[3]);
          }
        }
      }
    }
    __syncthreads();  // this stage is consumed before the next iteration refills it
  }

  // Normalise and write (ST).
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) store_normalized_rows<HD>(L, o[mt], l[mt], row0 + wr0 + mt * 16 + g, h);
}

template <class T, class ST>
void launch_mma_attention(const MmaAttnLaunchT<ST>& L, cudaStream_t stream) {
  // Over 48 KiB of dynamic shared memory needs the opt-in (cheap; set on every launch so that it
  // holds on whichever device is current).
  LAZYLLM_CUDA_CHECK(
      cudaFuncSetAttribute(mma_attention_kernel<T, ST>, cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmemBytes));
  const dim3 grid(unsigned((L.rows + T::kBlockRows - 1) / T::kBlockRows), unsigned(L.n_heads));
  mma_attention_kernel<T, ST><<<grid, T::kThreads, T::kSmemBytes, stream>>>(L);
  LAZYLLM_CUDA_CHECK_LAUNCH();
}

}  // namespace detail
}  // namespace lazyllm::gpu
