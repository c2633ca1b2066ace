// SPDX-License-Identifier: MIT
// The LazyLLM percentile rule on the device, with no host synchronisation: the threshold is the
// score at rank floor(p * n) of the set's scores sorted ascending (percentile_rank, shared with
// the host rule in policy/percentile.hpp), every score >= it is kept (ties at the
// threshold too), optionally the last token always, and the kept indices come out compacted in
// their original order, with their count, both in device memory. CUB does the work: a radix sort
// of a copy of the scores for the threshold, DeviceSelect::Flagged over the index sequence for
// the order-preserving compaction. Once its scratch is sized, a call only queues kernels on the
// stream (it can be captured in a CUDA graph; the GPU test does).
//
// SelectingCudaBackend::layer_select (selecting_backend.cuh) uses flags() and copies
// the n flags back; run() (flags, then the compacted indices and count, all on the device) is the
// building block for selection with no host round trip (docs/cuda_backend.md, "Known limits").
#pragma once
#include <cuda_runtime.h>

#include <thrust/iterator/counting_iterator.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_select.cuh>
#include <string>

#include "lazyllm/backend/cuda/runtime.cuh"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/policy/percentile.hpp"  // percentile_rank, the host's rank exactly

namespace lazyllm::gpu {

namespace detail {

/// flags[i] = scores[i] >= sorted[rank] (or i is the last index and keep_last). A template so that
/// the header can be included in several translation units of one program.
template <int = 0>
__global__ void percentile_flags_kernel(const float* __restrict__ scores, const float* __restrict__ sorted, int n,
                                        int rank, int keep_last, std::uint8_t* __restrict__ flags) {
  const float thr = sorted[rank];
  for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += int(gridDim.x * blockDim.x))
    flags[i] = (scores[i] >= thr || (keep_last != 0 && i == n - 1)) ? 1 : 0;
}

}  // namespace detail

/// Device percentile selection. Owns its scratch (grown on demand, never shrunk); one object per
/// stream.
class PercentileSelect {
 public:
  /// Sizes the scratch for sets of up to `n` scores, so that later calls allocate nothing.
  void reserve(int n) {
    if (n <= 0) return;
    std::size_t sort_bytes = 0, select_bytes = 0;
    LAZYLLM_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, sort_bytes, static_cast<const float*>(nullptr),
                                                      static_cast<float*>(nullptr), n, 0, 32));
    LAZYLLM_CUDA_CHECK(cub::DeviceSelect::Flagged(nullptr, select_bytes, thrust::counting_iterator<std::int32_t>(0),
                                                  static_cast<const std::uint8_t*>(nullptr),
                                                  static_cast<std::int32_t*>(nullptr), static_cast<int*>(nullptr), n));
    sorted_.reserve(std::size_t(n), "selection sort");
    flags_.reserve(std::size_t(n), "selection flags");
    temp_.reserve(std::max<std::size_t>({sort_bytes, select_bytes, 1}), "selection scratch");
  }

  /// Keeps every i in [0, n) with scores[i] >= the p-quantile threshold (and n - 1 when
  /// `keep_last`): writes the kept indices, ascending, to kept[0, *count) and the count to
  /// *count. `scores` (n floats), `kept` (room for n) and `count` are device memory; everything
  /// is queued on `stream`. p in [0, 1).
  void run(const float* scores, int n, float p, bool keep_last, std::int32_t* kept, int* count, cudaStream_t stream) {
    if (kept == nullptr || count == nullptr)
      throw InvalidArgument("gpu::PercentileSelect::run: need device outputs for the kept indices and their count");
    const std::uint8_t* f = flags(scores, n, p, keep_last, stream);
    std::size_t bytes = temp_.size();
    LAZYLLM_CUDA_CHECK(cub::DeviceSelect::Flagged(temp_.get(), bytes, thrust::counting_iterator<std::int32_t>(0), f,
                                                  kept, count, n, stream));
  }

  /// The rule's flags alone: 1 where run() keeps i, else 0, as n bytes of device memory owned by
  /// this object (valid until its next call), queued on `stream`. The same checks as run().
  const std::uint8_t* flags(const float* scores, int n, float p, bool keep_last, cudaStream_t stream) {
    if (n <= 0 || scores == nullptr)
      throw InvalidArgument("gpu::PercentileSelect: need n > 0 scores in device memory (n " + std::to_string(n) + ")");
    if (!(p >= 0.0f && p < 1.0f))
      throw InvalidArgument("gpu::PercentileSelect: percentile " + std::to_string(p) + " is not in [0, 1)");
    reserve(n);
    // The threshold: a sorted copy of the scores, read at rank floor(p * n).
    std::size_t bytes = temp_.size();
    LAZYLLM_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(temp_.get(), bytes, scores, sorted_.get(), n, 0, 32, stream));
    constexpr int kThreads = 256;
    const int blocks = int(std::min<std::int64_t>(detail::blocks_for(n, kThreads), 1024));
    detail::percentile_flags_kernel<><<<blocks, kThreads, 0, stream>>>(
        scores, sorted_.get(), n, int(lazyllm::percentile_rank(n, p)), keep_last ? 1 : 0, flags_.get());
    LAZYLLM_CUDA_CHECK_LAUNCH();
    return flags_.get();
  }

 private:
  DeviceBuffer<float> sorted_;
  DeviceBuffer<std::uint8_t> flags_;
  DeviceBuffer<std::uint8_t> temp_;
};

}  // namespace lazyllm::gpu
