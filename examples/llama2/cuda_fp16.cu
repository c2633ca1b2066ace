// SPDX-License-Identifier: MIT
// The driver on CudaBackendFp16 (--backend cuda --precision fp16).
#include "cuda_run.cuh"

namespace lazyllm::driver {

RunResult run_policy_cuda_fp16(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks) {
  return run_policy_on<CudaBackendFp16>(w, p, o, hooks);
}

ConversationEnd converse_cuda_fp16(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks,
                                   const Conversation& conv) {
  return converse_on<CudaBackendFp16>(w, p, o, hooks, conv);
}

}  // namespace lazyllm::driver
