// SPDX-License-Identifier: MIT
// The GPU probe of gpu_probe.hpp: plain C++ against the CUDA runtime API (no nvcc needed), or
// "no GPU" in a build without the CUDA backend.
#include "gpu_probe.hpp"

#ifdef LAZYLLM_CLI_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace lazyllm::cli {

#ifdef LAZYLLM_CLI_WITH_CUDA

bool gpu_available() {
  int n = 0;
  const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  (void)cudaGetLastError();  // clear it: the backend reports its own errors
  return ok;
}

bool gpu_memory_info(std::uint64_t& free_bytes, std::uint64_t& total_bytes) {
  if (!gpu_available()) return false;
  std::size_t f = 0, t = 0;
  if (cudaMemGetInfo(&f, &t) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  free_bytes = f;
  total_bytes = t;
  return true;
}

std::string gpu_name() {
  int dev = 0;
  cudaDeviceProp prop{};
  if (!gpu_available() || cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return "";
  }
  return prop.name;
}

const char* gpu_unavailable_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  (void)cudaGetLastError();
  if (e == cudaSuccess && n > 0) return "";
  // No device at all (no driver, or no GPU) reads as one plain sentence whatever the runtime says.
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || (e == cudaSuccess && n == 0))
    return "no CUDA GPU is available on this machine";
  return cudaGetErrorString(e);
}

#else

bool gpu_available() { return false; }
bool gpu_memory_info(std::uint64_t&, std::uint64_t&) { return false; }
std::string gpu_name() { return ""; }
const char* gpu_unavailable_reason() {
  return "this build has no CUDA backend (configure with LAZYLLM_CUDA=ON and nvcc)";
}

#endif

}  // namespace lazyllm::cli
