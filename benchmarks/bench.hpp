// SPDX-License-Identifier: MIT
// The benchmark loop shared by the CPU (bench.cpp) and CUDA (bench_cuda.cu) translation units.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <variant>
#include <vector>

#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/model/sampler.hpp"
#include "lazyllm/model/weights.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/dense.hpp"
#include "lazyllm/policy/lazy.hpp"
#include "lazyllm/policy/random_drop.hpp"
#include "lazyllm/policy/static.hpp"

namespace lazyllm::bench {

using Clock = std::chrono::steady_clock;
using AnyPolicy = std::variant<policy::Dense, policy::Lazy, policy::Static, policy::RandomDrop>;

inline AnyPolicy make_policy(const std::string& name, const Schedule& s) {
  if (name == "dense") return policy::Dense{};
  if (name == "lazy") return policy::Lazy(s);
  if (name == "static") return policy::Static(s);
  if (name == "random") return policy::RandomDrop(s, 1);
  throw InvalidArgument("--policy: unknown '" + name + "' (dense, lazy, static, random)");
}

struct Plan {
  std::vector<int> prompts;
  int n_gen = 16;
  int reps = 3;
  bool progress = false;
};

struct Row {
  std::string policy, schedule, test;
  std::vector<double> ms;  // per repetition: TTFT (pp) or ms per generated token (tg)
  double fraction = 1.0;   // token-layers computed / dense
};

/// One pipeline (weights uploaded once) per policy; every prompt length is run after a warm-up,
/// `reps` times, resetting the sequence in between. TTFT = prompt in -> first logits on the host.
template <class Backend, class Policy>
std::vector<Row> run_policy(Backend backend, const Policy& pol, const Plan& plan) {
  int max_p = 0;
  for (int p : plan.prompts) max_p = std::max(max_p, p);
  Pipeline<RuntimeConfig, Policy, ContiguousLayout, Backend> pipe(std::move(backend), pol, {}, max_p + plan.n_gen + 1);
  std::vector<Row> rows;
  std::string sched = "none";
  if constexpr (requires { pol.schedule(); }) sched = pol.schedule().to_string();
  for (int n_prompt : plan.prompts) {
    std::vector<std::int32_t> prompt(static_cast<std::size_t>(n_prompt));
    std::uint32_t s = 12345;
    for (auto& t : prompt) t = 3 + std::int32_t((s = s * 1664525u + 1013904223u) >> 8) % (pipe.config().vocab_size - 3);
    Row pp{std::string(pol.name()), sched, "pp" + std::to_string(n_prompt), {}, 1.0};
    Row tg{std::string(pol.name()), sched, "tg" + std::to_string(plan.n_gen) + "@pp" + std::to_string(n_prompt), {}, 1.0};
    for (int r = -1; r < plan.reps; ++r) {  // r = -1 warms up
      pipe.reset();
      auto t0 = Clock::now();
      auto logits = pipe.prefill(prompt);
      const double ttft = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      t0 = Clock::now();
      for (int i = 0; i < plan.n_gen; ++i) logits = pipe.decode(argmax(logits));
      const double dec = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (plan.progress)
        std::fprintf(stderr, "  %s %s pp%d rep %d: TTFT %.2f ms, %.3f ms/token\n", pp.policy.c_str(), sched.c_str(),
                     n_prompt, r, ttft, plan.n_gen ? dec / plan.n_gen : 0.0);
      if (r < 0) continue;
      pp.ms.push_back(ttft);
      if (plan.n_gen) tg.ms.push_back(dec / plan.n_gen);
      const auto& st = pipe.stats();
      pp.fraction = st.prefill_fraction();
      tg.fraction = st.total_dense_token_layers() ? double(st.total_token_layers() - st.prefill_token_layers()) /
                                                        double(st.total_dense_token_layers() - st.prefill_dense_token_layers())
                                                  : 1.0;
    }
    rows.push_back(pp);
    if (plan.n_gen) rows.push_back(tg);
  }
  return rows;
}

std::vector<Row> run_cpu(const ModelWeights& w, const AnyPolicy& p, const Plan& plan);
/// bench_cuda.cu, or a stub that throws when the build has no CUDA.
std::vector<Row> run_cuda(const ModelWeights& w, const AnyPolicy& p, const Plan& plan);
std::string device_name();

}  // namespace lazyllm::bench
