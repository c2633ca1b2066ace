// SPDX-License-Identifier: MIT
// Hopper (sm_90a) causal prefill attention with warpgroup MMA (wgmma): the same contract as the
// mma.sync kernel in sm80_mma_prefill.cuh (compacted, position-ordered token set; K/V rows fetched
// through the key set's slots; visible-key counts for the mask), one warpgroup per block of 64
// query rows. K and V tiles are gathered with cp.async into 128-byte-swizzled shared memory (the
// layout wgmma's descriptors read), Q and P stay in registers as the A operand, S = Q K^T runs as
// wgmma m64n64k16 and O += P V as m64n128k16 (V read transposed: its two 64-column swizzle atoms
// are the descriptor's leading byte offset apart). The online softmax and the epilogue are the
// mma.sync kernel's (online_softmax.cuh: online_softmax_step, store_normalized_rows): wgmma's
// accumulator fragment per warp is the m16n8 layout repeated along N.
//
// Compiled for every architecture; the body exists only in sm_90a code. Attention::run takes it
// for head_dim 128 when sm90_attention_available() says the running device executes that code.
#pragma once
#include <cstdint>

#include "lazyllm/backend/cuda/attention/online_softmax.cuh"
#include "lazyllm/backend/cuda/attention/params.cuh"
#include "lazyllm/backend/cuda/attention/ptx.cuh"
#include "lazyllm/backend/cuda/numeric.cuh"
#include "lazyllm/backend/cuda/runtime.cuh"
#include "lazyllm/backend/cuda/tuning.cuh"

namespace lazyllm::gpu {

/// Tile shape of the Hopper prefill kernel for head dim HD; `MinBlocks` resident blocks per SM
/// (the register cap follows: 3 blocks of 128 threads leave 168 registers a thread;
/// tuning::Sm90WgmmaPrefill).
template <int HD, int MinBlocks = tuning::Sm90WgmmaPrefill::kMinBlocks>
struct Sm90AttnTraits {
  // head_dim 64 was written too (one swizzle atom per row) and gave wrong outputs on an H200 at
  // multi-tile lengths, cause not found (docs/cuda_backend.md): Attention::run keeps it on mma.sync.
  static_assert(HD == 128, "Sm90AttnTraits: the wgmma attention supports head_dim 128 only");
  static constexpr int kHeadDim = HD;
  static constexpr int kThreads = 128;   // one warpgroup
  static constexpr int kBlockRows = 64;  // wgmma M
  static constexpr int kKeys = 64;       // keys per K/V tile (wgmma N of S = Q K^T)
  static constexpr int kMinBlocks = MinBlocks;
  static constexpr int kTileBytes = kKeys * HD * 2;
  static constexpr int kQStride = HD + 8;  // padded Q rows (ldmatrix, conflict-free)
  // Q is staged in the second K/V stage (read into registers before that stage's first load).
  static_assert(64 * kQStride * 2 <= 2 * kTileBytes, "Sm90AttnTraits: Q must fit in one K/V stage");
  static constexpr int kSmemBytes = 1024 + 4 * kTileBytes;  // alignment slack, 2 stages of (K, V)
};

namespace detail {

/// 1 in sm_90a code (the wgmma kernel has a body), 0 elsewhere (a template: header-only).
template <int = 0>
__global__ void sm90_wgmma_probe_kernel(int* out) {
#ifdef LAZYLLM_SM90_WGMMA
  *out = 1;
#else
  *out = 0;
#endif
}

template <class T, class ST>
__global__ void __launch_bounds__(T::kThreads, T::kMinBlocks)
    sm90_attention_kernel(const __grid_constant__ AttnParams<ST> L) {
#ifdef LAZYLLM_SM90_WGMMA
  constexpr int HD = T::kHeadDim, BR = T::kBlockRows, BK = T::kKeys, NT = T::kThreads, QS = T::kQStride;
  constexpr int CH = HD / 8;  // 16-byte chunks per row
  extern __shared__ __align__(16) unsigned char smem_raw[];
  // Swizzle atoms are 1024 bytes and must start 1024-aligned.
  unsigned char* base = smem_raw + ((1024u - (smem_addr(smem_raw) & 1023u)) & 1023u);
  ST* sq = reinterpret_cast<ST*>(base + 2 * T::kTileBytes);  // stage 1, until the loop's first prefetch
  __shared__ int s_nvis[BR];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int row0 = (gridDim.x - 1 - blockIdx.x) * BR;  // heavier (later) row blocks first
  const int h = blockIdx.y, kh = h / (L.n_heads / L.n_kv_heads);

  // Q, staged in stage 1 (read into registers below), and each row's visible-key count.
  const int hi = load_q_and_visible_keys<HD, BR, NT>(L, row0, h, sq, QS, s_nvis);
  const int nv0 = s_nvis[warp * 16 + g], nv1 = s_nvis[warp * 16 + g + 8];
  // Keys below block_lo are visible to every row of the block: tiles below it skip the mask (a
  // condition uniform over the warpgroup, like everything around the warpgroup-wide MMAs).
  int block_lo = s_nvis[0];
  for (int r = 1; r < BR; ++r) block_lo = min(block_lo, s_nvis[r]);

  // Stage s: K at base + 2s tiles, V at base + 2s+1; a tile is HD/64 regions of BK rows x 128 B,
  // 16-byte chunk c of row j at chunk (c ^ (j & 7)) (the 128-byte swizzle wgmma's descriptors read).
  auto load_tile = [&](int stage, int t0) {
    unsigned char* dk = base + (2 * stage) * T::kTileBytes;
    unsigned char* dv = dk + T::kTileBytes;
    for (int i = tid; i < BK * CH; i += NT) {
      const int j = i / CH, c = i % CH, key = t0 + j;
      const bool ok = key < hi;
      const std::int64_t row = ok ? L.kv.store.offset(L.kv.slot(key)) : 0;
      const int so = (c >> 3) * (BK * 128) + j * 128 + (((c & 7) ^ (j & 7)) << 4);
      cp_async_16(dk + so, L.kv.store.k_at(row, kh) + c * 8, ok);
      cp_async_16(dv + so, L.kv.store.v_at(row, kh) + c * 8, ok);
    }
    cp_async_commit();
  };

  const int n_tiles = start_kv_tiles<BK>(hi, load_tile);
  std::uint32_t qf[HD / 16][4];
  {
    const int r = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) ldmatrix_x4(qf[kk], sq + r * QS + kk * 16 + (lane >> 4) * 8);
  }
  __syncthreads();  // Q is in registers everywhere: stage 1 may be refilled

  float o[HD / 64][8][4];
#pragma unroll
  for (int a = 0; a < HD / 64; ++a)
#pragma unroll
    for (int i = 0; i < 8; ++i) o[a][i][0] = o[a][i][1] = o[a][i][2] = o[a][i][3] = 0.f;
  auto& o_flat = reinterpret_cast<float(&)[HD / 8][4]>(o);  // the same, as the m16n8 fragments along N
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const std::uint32_t base_addr = smem_addr(base);
  const float sc = L.kv.scale_log2;

  for (int it = 0; it < n_tiles; ++it) {
    const int t0 = it * BK, stage = it & 1;
    next_kv_tile<BK>(it, n_tiles, load_tile);
    fence_proxy_async();  // this thread's cp.async writes, visible to wgmma (the async proxy)
    __syncthreads();
    const std::uint32_t k_addr = base_addr + (2 * stage) * T::kTileBytes, v_addr = k_addr + T::kTileBytes;
    // S = Q K^T (64 rows x 64 keys): k16 steps walk 32 bytes along a swizzle atom, then the next atom.
    float s[8][4];
#pragma unroll
    for (int i = 0; i < 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
    reg_fence(s);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk)
      wgmma_64xNx16<ST, 0, 64>(s, qf[kk], sm90_desc(k_addr + (kk >> 2) * (BK * 128) + (kk & 3) * 32));
    wgmma_commit();
    wgmma_wait_all();
    reg_fence(s);

    // Mask (raw scores; -inf where a row cannot see the key), online softmax in base 2 with the
    // scale folded into one FMA per element.
    if (t0 + BK > block_lo) {
#pragma unroll
      for (int nb = 0; nb < 8; ++nb) {
        const int key = t0 + nb * 8 + 2 * t;
        if (key >= nv0) s[nb][0] = -INFINITY;
        if (key + 1 >= nv0) s[nb][1] = -INFINITY;
        if (key >= nv1) s[nb][2] = -INFINITY;
        if (key + 1 >= nv1) s[nb][3] = -INFINITY;
      }
    }
    std::uint32_t pf[BK / 16][4];
    online_softmax_step<ST, Exp2Approx>(s, sc, m, l, pf, o_flat);
    // O += P V: k16 steps are 16 key rows (2048 bytes) down the V tile.
#pragma unroll
    for (int a = 0; a < HD / 64; ++a) reg_fence(o[a]);
    wgmma_fence();
#pragma unroll
    for (int kc = 0; kc < BK / 16; ++kc)  // one m64n128: the two 64-column atoms BK * 128 bytes apart
      wgmma_64xNx16<ST, 1, 128>(o_flat, pf[kc], sm90_desc(v_addr + kc * 16 * 128, BK * 128, 1024));
    wgmma_commit();
    wgmma_wait_all();
    // The MMAs read P from registers asynchronously: keep those registers (and O) untouched until
    // the wait above (without this the compiler may reuse P's registers before it).
#pragma unroll
    for (int kc = 0; kc < BK / 16; ++kc)
      asm volatile("" : "+r"(pf[kc][0]), "+r"(pf[kc][1]), "+r"(pf[kc][2]), "+r"(pf[kc][3])::"memory");
#pragma unroll
    for (int a = 0; a < HD / 64; ++a) reg_fence(o[a]);
    __syncthreads();  // the stage is consumed before the next iteration refills it
  }

  store_normalized_rows<HD>(L, o_flat, l, row0 + warp * 16 + g, h);
#else
  __trap();  // not sm_90a code: Attention::run never launches it (sm90_attention_available)
#endif
}

template <class T, class ST>
void launch_sm90_attention(const AttnParams<ST>& L, cudaStream_t stream) {
  launch_prefill<T>(sm90_attention_kernel<T, ST>, L, stream);
}

}  // namespace detail

/// Whether the current device runs the sm_90a wgmma attention (a Hopper GPU and sm_90a code in
/// this binary); asked once per device by a one-thread probe.
inline bool sm90_attention_available() {
  int dev = 0;
  LAZYLLM_CUDA_CHECK(cudaGetDevice(&dev));
  static thread_local int cached_dev = -1, cached = 0;
  if (cached_dev == dev) return cached != 0;
  int major = 0;
  LAZYLLM_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  int result = 0;
  if (major == 9) {
    int* d = nullptr;
    LAZYLLM_CUDA_CHECK(cudaMalloc(&d, sizeof(int)));
    detail::sm90_wgmma_probe_kernel<><<<1, 1>>>(d);
    const cudaError_t e = cudaMemcpy(&result, d, sizeof(int), cudaMemcpyDeviceToHost);
    cudaFree(d);
    LAZYLLM_CUDA_CHECK(e);
  }
  cached_dev = dev;
  cached = result;
  return result != 0;
}

}  // namespace lazyllm::gpu
