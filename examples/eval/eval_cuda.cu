// SPDX-License-Identifier: MIT
// lazyllm-eval's CUDA half: the same example loop over CudaBackend (weights uploaded once per policy).
#include <cuda_runtime.h>

#include "eval_run.hpp"
#include "lazyllm/backend/cuda/cuda_backend.cuh"

namespace lazyllm::evalrun {

bool cuda_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

std::vector<ExampleResult> run_examples_cuda(const ModelWeights& w, const AnyPolicy& p, int n_ctx,
                                             const std::vector<Prepared>& examples, const TokenClasses& cls,
                                             const Progress& progress) {
  return run_examples(CudaBackend(w), p, n_ctx, examples, cls, progress);
}

}  // namespace lazyllm::evalrun
