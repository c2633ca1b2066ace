// SPDX-License-Identifier: MIT
// The driver's generation loop over one CUDA backend type. Each precision is instantiated in its
// own translation unit (cuda.cu: bf16 and the dispatch; cuda_fp16.cu; cuda_fp32.cu), so the
// three backends compile in parallel rather than as one long file.
#pragma once
#include "../common/gpu_probe.hpp"
#include "driver.hpp"
#include "lazyllm/backend/cuda/cuda_backend.cuh"

namespace lazyllm::driver {

/// The hooks plus a probe that records the GPU's free and total memory at the end of each run.
inline Hooks with_gpu_probe(const Hooks& hooks) {
  Hooks h = hooks;
  h.probe = [outer = hooks.probe](RunResult& r) {
    std::uint64_t f = 0, t = 0;
    if (cli::gpu_memory_info(f, t)) {
      r.gpu_free = std::int64_t(f);
      r.gpu_total = std::int64_t(t);
    }
    if (outer) outer(r);
  };
  return h;
}

/// The backend with cuBLASLt's one-time kernel loading done before the clock starts (see
/// BasicCudaBackend::warm_up), so TTFT is the prompt's cost alone.
/// bf16 runs on a SelectingCudaBackend (cuda.cu), its rule on unless --no-device-select.
template <class Backend>
Backend warm_backend(const ModelWeights& w, int prompt_tokens, const Options& o) {
  Backend b(w);
  if constexpr (SelectingBackend<Backend>) b.set_device_select(o.device_select.value_or(true));
  b.warm_up(prompt_tokens);
  return b;
}

template <class Backend>
RunResult run_policy_on(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks) {
  const Hooks h = with_gpu_probe(hooks);
  return generate(warm_backend<Backend>(w, int(o.prompt.size()), o), p, o, h);
}

template <class Backend>
ConversationEnd converse_on(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks,
                            const Conversation& conv) {
  const Hooks h = with_gpu_probe(hooks);
  return converse(warm_backend<Backend>(w, 32, o), p, o, h, conv);
}

/// The GPU selection is implemented for bf16 storage (SelectingCudaBackend): an explicit
/// --device-select with fp16/fp32 is refused; unset, fp16/fp32 runs select on the host. o.precision
/// is resolved (bf16, fp16 or fp32) by the time a run starts.
inline void check_device_select(const Options& o) {
  if (o.device_select.value_or(false) && o.precision != "bf16")
    throw InvalidArgument("--device-select: the GPU selection is built for bf16 storage only (this run computes in " +
                          o.precision + "; pass --precision bf16)");
}

// Defined in cuda_fp16.cu and cuda_fp32.cu.
RunResult run_policy_cuda_fp16(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks);
ConversationEnd converse_cuda_fp16(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks,
                                   const Conversation& conv);
RunResult run_policy_cuda_fp32(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks);
ConversationEnd converse_cuda_fp32(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks,
                                   const Conversation& conv);

}  // namespace lazyllm::driver
