// SPDX-License-Identifier: MIT
// The CUDA side of lazyllm-bench-engine: the serving cases on one GPU, one model uploaded once and
// shared by every case's engine (bf16, the percentile rule on the device).
#include <cuda_runtime.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "engine_bench.hpp"
#include "lazyllm/backend/cuda/cuda_backend.cuh"
#include "lazyllm/backend/cuda/selecting_backend.cuh"

namespace lazyllm::bench {

std::vector<ServeResult> serve_cuda(const ModelWeights& w, const std::vector<ServeCase>& cases, const EngineRun& run,
                                    nlohmann::json& device) {
  cudaDeviceProp prop{};
  int dev = 0;
  LAZYLLM_CUDA_CHECK(cudaGetDevice(&dev));
  LAZYLLM_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  device = {{"gpu", prop.name},
            {"sms", prop.multiProcessorCount},
            {"memory_gib", double(prop.totalGlobalMem) / double(1ull << 30)}};
  std::fprintf(stderr, "lazyllm-bench-engine: uploading the weights to %s\n", prop.name);
  const auto model = std::make_shared<const CudaModel<gpu::bf16>>(w);
  std::vector<ServeResult> out;
  for (const auto& c : cases) {
    EngineOptions o;
    o.block_tokens = run.block_tokens;
    o.max_step_tokens = run.max_step_tokens;
    if (run.pool_bytes > 0) {
      o.pool_bytes = run.pool_bytes;
    } else {  // the free memory less 4 GiB for activations and scratch
      const std::uint64_t free_b = gpu::detail::free_device_bytes();
      const std::uint64_t reserve = std::uint64_t(4) << 30;
      if (free_b <= reserve + (std::uint64_t(1) << 30))
        throw Error("lazyllm-bench-engine: only " + gpu::detail::format_bytes(free_b) +
                    " free on the GPU after the weights");
      o.pool_bytes = std::int64_t(free_b - reserve);
    }
    Engine<SelectingCudaBackend> eng(model, o);
    if (run.batched_attention >= 0) eng.backend().set_batched_decode_attention(run.batched_attention == 1);
    eng.backend().warm_up(c.prompt);
    std::fprintf(stderr, "  B=%d %s: pool %.1f GiB\n", c.requests, c.policy_name.c_str(),
                 double(eng.pool().bytes()) / double(1ull << 30));
    out.push_back(serve(eng, c));
  }
  return out;
}

}  // namespace lazyllm::bench
