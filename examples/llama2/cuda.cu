// SPDX-License-Identifier: MIT
// The driver's CUDA half: the same generation loop over CudaBackend.
#include <cuda_runtime.h>

#include "driver.hpp"
#include "lazyllm/backend/cuda/cuda_backend.cuh"

namespace lazyllm::driver {

bool cuda_device_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

bool cuda_memory_info(std::uint64_t& free_bytes, std::uint64_t& total_bytes) {
  if (!cuda_device_available()) return false;
  std::size_t f = 0, t = 0;
  if (cudaMemGetInfo(&f, &t) != cudaSuccess) {
    (void)cudaGetLastError();  // clear it: the backend reports its own errors
    return false;
  }
  free_bytes = f;
  total_bytes = t;
  return true;
}

namespace {
/// The hooks plus a probe that records the GPU's free and total memory at the end of each run.
Hooks with_gpu_probe(const Hooks& hooks) {
  Hooks h = hooks;
  h.probe = [outer = hooks.probe](RunResult& r) {
    std::uint64_t f = 0, t = 0;
    if (cuda_memory_info(f, t)) {
      r.gpu_free = std::int64_t(f);
      r.gpu_total = std::int64_t(t);
    }
    if (outer) outer(r);
  };
  return h;
}

/// The backend with cuBLASLt's one-time kernel loading done before the clock starts (see
/// CudaBackend::warm_up), so TTFT is the prompt's cost alone.
CudaBackend warm_backend(const ModelWeights& w, int prompt_tokens) {
  CudaBackend b(w);
  b.warm_up(prompt_tokens);
  return b;
}
}  // namespace

RunResult run_policy_cuda(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks) {
  const Hooks h = with_gpu_probe(hooks);
  return std::visit([&](const auto& pol) { return generate(warm_backend(w, int(o.prompt.size())), pol, o, h); }, p);
}

ConversationEnd converse_cuda(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks,
                              const Conversation& conv) {
  const Hooks h = with_gpu_probe(hooks);
  return std::visit([&](const auto& pol) { return converse(warm_backend(w, 32), pol, o, h, conv); }, p);
}

}  // namespace lazyllm::driver
