// SPDX-License-Identifier: MIT
// The driver without the CUDA backend (built when CMake found no CUDA compiler).
#include "driver.hpp"

namespace lazyllm::driver {

bool cuda_device_available() { return false; }

RunResult run_policy_cuda(const ModelWeights&, const AnyPolicy&, const Options&, const Hooks&) {
  throw Error("--backend cuda: this build has no CUDA backend (configure with LAZYLLM_CUDA=ON and nvcc)");
}

}  // namespace lazyllm::driver
