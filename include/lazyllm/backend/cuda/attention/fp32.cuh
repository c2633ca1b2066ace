// SPDX-License-Identifier: MIT
// The fp32-storage attention kernel (CudaBackendFp32, the verification mode).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "lazyllm/backend/cuda/attention/params.cuh"
#include "lazyllm/backend/cuda/numeric.cuh"
#include "lazyllm/backend/cuda/runtime.cuh"

namespace lazyllm::gpu {
namespace detail {

/// Attention in fp32 (CudaBackendFp32, the verification mode): one warp per (query row, head),
/// K/V read through the slots, scores recomputed in a second pass instead of staged. Exact fp32
/// arithmetic in the CPU reference's order of operations (scale 1/sqrt(hd), expf); slow by
/// design. Lane d owns output dims d, d+32, ... (hd <= 128).
template <class ST>
__global__ void attention_fp32_kernel(const __grid_constant__ AttnParams<ST> a) {
  static_assert(std::is_same_v<ST, float>, "attention_fp32_kernel is the fp32 storage path");
  const int gw = int((blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x) >> 5), lane = int(threadIdx.x & 31);
  if (gw >= a.rows * a.n_heads) return;
  const int row = gw / a.n_heads, h = gw % a.n_heads, kh = h / (a.n_heads / a.n_kv_heads);
  const int hd = a.head_dim();
  const int nvis = a.kv.visible(a.q_pos[row]);
  const float scale = a.kv.scale;  // 1 / sqrt(hd), rounded as the CPU reference rounds it
  const float* q = a.q + std::int64_t(row) * a.ldq + std::int64_t(h) * hd;
  auto score = [&](int j) {  // the whole warp: q . k_j * scale
    const float* k = a.kv.k_ptr(j, kh);
    float part = 0.f;
    for (int d = lane; d < hd; d += 32) part = fmaf(q[d], k[d], part);
    return warp_sum(part) * scale;
  };
  float mx = -INFINITY;
  for (int j = 0; j < nvis; ++j) mx = fmaxf(mx, score(j));
  float l = 0.f, o[4] = {0.f, 0.f, 0.f, 0.f};
  for (int j = 0; j < nvis; ++j) {
    const float p = expf(score(j) - mx);
    l += p;
    const float* v = a.kv.v_ptr(j, kh);
#pragma unroll
    for (int i = 0; i < 4; ++i)
      if (lane + 32 * i < hd) o[i] = fmaf(p, v[lane + 32 * i], o[i]);
  }
  const float inv = l > 0.f ? 1.0f / l : 0.f;
  float* out = a.out + std::int64_t(row) * a.ldo + std::int64_t(h) * hd;
#pragma unroll
  for (int i = 0; i < 4; ++i)
    if (lane + 32 * i < hd) out[lane + 32 * i] = o[i] * inv;
}

template <class ST>
void launch_attention_fp32(const AttnParams<ST>& a, cudaStream_t stream) {
  const std::int64_t threads = std::int64_t(a.rows) * a.n_heads * 32;
  attention_fp32_kernel<ST><<<unsigned((threads + 127) / 128), 128, 0, stream>>>(a);
  LAZYLLM_CUDA_CHECK_LAUNCH();
}

}  // namespace detail
}  // namespace lazyllm::gpu
