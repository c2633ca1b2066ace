// SPDX-License-Identifier: MIT
// lazyllm-eval's CUDA half: the same example loop over SelectingCudaBackend (weights uploaded once
// per policy), the percentile rule on the GPU; with --no-device-select it is CudaBackend, the policy
// selecting on the host.
#include "eval_run.hpp"
#include "lazyllm/backend/cuda/selecting_backend.cuh"

namespace lazyllm::evalrun {

std::vector<ExampleResult> run_examples_cuda(const ModelWeights& w, const AnyPolicy& p, int n_ctx,
                                             const std::vector<Prepared>& examples, const TokenClasses& cls,
                                             const Progress& progress, bool device_select) {
  SelectingCudaBackend b(w);
  b.set_device_select(device_select);
  return run_examples(std::move(b), p, n_ctx, examples, cls, progress);
}

}  // namespace lazyllm::evalrun
