// SPDX-License-Identifier: MIT
// The driver's runs on the chosen backend: the CPU reference here, CUDA in cuda.cu.
#include "app.hpp"

namespace lazyllm::driver {

RunResult App::run(const policy::AnyPolicy& p, const Options& opts, const Hooks& h) const {
  if (opts.backend == "cuda") return run_policy_cuda(*w, p, opts, h);
  return generate(CpuBackend{*w}, p, opts, h);
}

ConversationEnd App::converse(const Conversation& conv) const {
  if (o.backend == "cuda") return converse_cuda(*w, pol, o, hooks, conv);
  return driver::converse(CpuBackend{*w}, pol, o, hooks, conv);
}

}  // namespace lazyllm::driver
