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

RunResult run_policy_cuda(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks) {
  return std::visit([&](const auto& pol) { return generate(CudaBackend(w), pol, o, hooks); }, p);
}

}  // namespace lazyllm::driver
