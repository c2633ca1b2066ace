// SPDX-License-Identifier: MIT
// The driver's CUDA half: the same generation loop over SelectingCudaBackend (bf16; the GPU
// selection unless --no-device-select; --precision fp16 and fp32 dispatch to cuda_fp16.cu /
// cuda_fp32.cu over their CudaBackends).
#include "cuda_run.cuh"
#include "lazyllm/backend/cuda/selecting_backend.cuh"  // CUB: only this translation unit

namespace lazyllm::driver {

// bf16 runs on SelectingCudaBackend: the percentile rule runs on the GPU (the default); with
// --no-device-select it is CudaBackend, the policy selecting on the host.
RunResult run_policy_cuda(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks) {
  check_device_select(o);
  if (o.precision == "fp16") return run_policy_cuda_fp16(w, p, o, hooks);
  if (o.precision == "fp32") return run_policy_cuda_fp32(w, p, o, hooks);
  return run_policy_on<SelectingCudaBackend>(w, p, o, hooks);
}

ConversationEnd converse_cuda(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks,
                              const Conversation& conv) {
  check_device_select(o);
  if (o.precision == "fp16") return converse_cuda_fp16(w, p, o, hooks, conv);
  if (o.precision == "fp32") return converse_cuda_fp32(w, p, o, hooks, conv);
  return converse_on<SelectingCudaBackend>(w, p, o, hooks, conv);
}

}  // namespace lazyllm::driver
