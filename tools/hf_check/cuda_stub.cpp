// SPDX-License-Identifier: MIT
// lazyllm-hf-check without the CUDA backend (the build found no CUDA compiler): --backend cpu only.
#include "hf_check.hpp"
#include "lazyllm/detail/error.hpp"

namespace lazyllm::hf_check {

CudaOutput run_cuda(const ModelWeights&, const CudaRequest&) {
  throw Error("--backend cuda: this build has no CUDA backend (configure with LAZYLLM_CUDA=ON and nvcc)");
}

}  // namespace lazyllm::hf_check
