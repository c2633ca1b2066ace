// SPDX-License-Identifier: MIT
// The driver's runs on the chosen backend: the CPU reference here, CUDA in cuda.cu.
#include "app.hpp"
#include "lazyllm/dist/tp_cpu.hpp"

namespace lazyllm::driver {

RunResult App::run(const policy::AnyPolicy& p, const Options& opts, const Hooks& h) const {
  if (opts.backend == "cuda") return run_policy_cuda(*w, p, opts, h);
  if (opts.tp > 1) {
    // Every rank runs the same session on its shard (the logits, hence the sampled tokens, are
    // the same bits on every rank); rank 0 prints and reports.
    RunResult out;
    run_tp(*w, opts.tp, [&](CpuRank& r) {
      RunResult res = generate(r.backend(), p, opts, r.leader() ? h : Hooks{});
      if (r.leader()) out = std::move(res);
    });
    return out;
  }
  return generate(CpuBackend{*w}, p, opts, h);
}

ConversationEnd App::converse(const Conversation& conv) const {
  if (o.backend == "cuda") return converse_cuda(*w, pol, o, hooks, conv);
  return driver::converse(CpuBackend{*w}, pol, o, hooks, conv);
}

}  // namespace lazyllm::driver
