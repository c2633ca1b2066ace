// SPDX-License-Identifier: MIT
#include <cuda_runtime.h>

#include "bench.hpp"
#include "lazyllm/backend/cuda/cuda_backend.cuh"

namespace lazyllm::bench {

std::vector<Row> run_cuda(const ModelWeights& w, const AnyPolicy& p, const Plan& plan) {
  return std::visit([&](const auto& pol) { return run_policy(CudaBackend(w), pol, plan); }, p);
}

std::string device_name() {
  cudaDeviceProp prop{};
  int dev = 0, driver = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) return "unknown GPU";
  cudaDriverGetVersion(&driver);
  return std::string(prop.name) + " (driver CUDA " + std::to_string(driver / 1000) + "." +
         std::to_string(driver % 1000 / 10) + ", " + std::to_string(prop.multiProcessorCount) + " SMs)";
}

}  // namespace lazyllm::bench
