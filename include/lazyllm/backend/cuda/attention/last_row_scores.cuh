// SPDX-License-Identifier: MIT
// The scores pass (a layer call with want_scores): the last query row's attention to every entry
// of the set, per head in natural units as the CPU reference computes it (expf), then averaged
// over the heads. Three kernels: logits (warp per key), per-head max and sum, mean over heads.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "lazyllm/backend/cuda/attention/params.cuh"
#include "lazyllm/backend/cuda/numeric.cuh"
#include "lazyllm/backend/cuda/runtime.cuh"

namespace lazyllm::gpu {
namespace detail {

/// Launch shape of the scores pass (kernels are templates so the header has no ODR issue).
struct ScoresTraits {
  static constexpr int kThreads = 256;
};

/// logits[h][j] = (q_last,h . k_j) * kv.scale for j < n_vis (natural units, like the CPU: the scores
/// pass uses expf, whose denormal results match std::exp, so near-zero scores tie the same way).
/// One warp per key.
template <class T, class ST>
__global__ void last_row_logits_kernel(const __grid_constant__ AttnParams<ST> a, int n_vis,
                                       float* __restrict__ logits) {
  extern __shared__ float sq_all[];  // [n_heads * hd]
  const int hd = a.head_dim(), d_all = a.n_heads * hd, group = a.n_heads / a.n_kv_heads;
  const ST* q = a.q + std::int64_t(a.rows - 1) * a.ldq;
  for (int i = threadIdx.x; i < d_all; i += blockDim.x) sq_all[i] = Storage<ST>::to_float(q[i]);
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int j = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (j >= n_vis) return;
  const std::int64_t slot = a.kv.slot(j);
  for (int h = 0; h < a.n_heads; ++h) {
    const ST* k = a.kv.store.k_ptr(slot, h / group);
    float acc = 0.f;
    for (int d = 2 * lane; d < hd; d += 64) {
      const float2 kv = Storage<ST>::to_float2(*reinterpret_cast<const typename Storage<ST>::pair*>(k + d));
      acc = fmaf(sq_all[h * hd + d], kv.x, fmaf(sq_all[h * hd + d + 1], kv.y, acc));
    }
    acc = warp_sum(acc);
    if (lane == 0) logits[std::int64_t(h) * n_vis + j] = acc * a.kv.scale;
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

/// scores[j] (j < a.kv.count) as Attention::last_row_scores describes it; `logits` has room for
/// n_heads * max(n_vis, 1) values and `ml` for n_heads.
template <class ST>
void launch_last_row_scores(const AttnParams<ST>& a, int n_vis, float* logits, float2* ml, float* scores,
                            cudaStream_t stream) {
  if (n_vis > 0) {
    constexpr int th = ScoresTraits::kThreads;
    const std::size_t smem = std::size_t(a.n_heads) * std::size_t(a.head_dim()) * sizeof(float);
    if (smem > 48 * 1024) {
      LAZYLLM_CUDA_CHECK(cudaFuncSetAttribute(last_row_logits_kernel<ScoresTraits, ST>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    }
    last_row_logits_kernel<ScoresTraits, ST>
        <<<unsigned((n_vis + th / 32 - 1) / (th / 32)), th, smem, stream>>>(a, n_vis, logits);
    LAZYLLM_CUDA_CHECK_LAUNCH();
    last_row_softmax_stats_kernel<ScoresTraits><<<a.n_heads, 256, 0, stream>>>(logits, n_vis, ml);
    LAZYLLM_CUDA_CHECK_LAUNCH();
  }
  last_row_mean_kernel<ScoresTraits>
      <<<unsigned((a.kv.count + 255) / 256), 256, 0, stream>>>(logits, ml, a.n_heads, n_vis, a.kv.count, scores);
  LAZYLLM_CUDA_CHECK_LAUNCH();
}

}  // namespace detail
}  // namespace lazyllm::gpu
