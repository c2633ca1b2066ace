// SPDX-License-Identifier: MIT
// Tensor-core causal prefill attention over a compacted token set (sm_80+: mma.sync m16n8k16 bf16 or fp16,
// ldmatrix, cp.async). FlashAttention-2 structure: a block owns kBlockRows query rows of one head
// (16 per warp), walks the visible keys in tiles of kKeys double-buffered in shared memory, keeps
// the online-softmax state (m, l) and the output accumulator in registers, and never forms the
// n x n score matrix. K/V rows are fetched through the key set's slots and the store's block
// layout (SlottedKv, kv_store.cuh), so any cache layout works. Masking uses visible-key counts:
// query row r sees the first count(position <= q_pos[r]) entries of the set (the set and the rows
// are position-ordered).
//
// Used by Attention::run for prefill-sized row counts with head_dim exactly 64 or 128; decode and
// other head dims go to the CUDA-core kernel (simt_prefill.cuh, which also splits over keys).
#pragma once
#include <cstdint>

#include "lazyllm/backend/cuda/attention/online_softmax.cuh"
#include "lazyllm/backend/cuda/attention/params.cuh"
#include "lazyllm/backend/cuda/attention/ptx.cuh"
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

template <class T, class ST>
__global__ void __launch_bounds__(T::kThreads, T::kMinBlocks)
    mma_attention_kernel(const __grid_constant__ AttnParams<ST> L) {
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
      const std::int64_t row = ok ? L.kv.store.offset(L.kv.slot(key)) : 0;
      cp_async_16(dk + j * S + c * 8, L.kv.store.k_at(row, kh) + c * 8, ok);
      cp_async_16(dv + j * S + c * 8, L.kv.store.v_at(row, kh) + c * 8, ok);
    }
    cp_async_commit();
  };

  const int n_tiles = start_kv_tiles<BK>(hi, load_tile);

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
    next_kv_tile<BK>(it, n_tiles, load_tile);
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
          s[mt][nb][0] = (full || key < nv[mt][0]) ? s[mt][nb][0] * L.kv.scale_log2 : -INFINITY;
          s[mt][nb][1] = (full || key + 1 < nv[mt][0]) ? s[mt][nb][1] * L.kv.scale_log2 : -INFINITY;
          s[mt][nb][2] = (full || key < nv[mt][1]) ? s[mt][nb][2] * L.kv.scale_log2 : -INFINITY;
          s[mt][nb][3] = (full || key + 1 < nv[mt][1]) ? s[mt][nb][3] * L.kv.scale_log2 : -INFINITY;
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
void launch_mma_attention(const AttnParams<ST>& L, cudaStream_t stream) {
  launch_prefill<T>(mma_attention_kernel<T, ST>, L, stream);
}

}  // namespace detail
}  // namespace lazyllm::gpu
