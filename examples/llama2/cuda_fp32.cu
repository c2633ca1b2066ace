// SPDX-License-Identifier: MIT
// The driver on CudaBackendFp32 (--backend cuda --precision fp32: the CPU reference's numbers).
#include "cuda_run.cuh"

namespace lazyllm::driver {

RunResult run_policy_cuda_fp32(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks) {
  return run_policy_on<CudaBackendFp32>(w, p, o, hooks);
}

ConversationEnd converse_cuda_fp32(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks,
                                   const Conversation& conv) {
  return converse_on<CudaBackendFp32>(w, p, o, hooks, conv);
}

}  // namespace lazyllm::driver
