// SPDX-License-Identifier: MIT
// The benchmark loop shared by the CPU (bench.cpp) and CUDA (bench_cuda.cu) translation units.
#pragma once
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_meta.hpp"

#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/generate.hpp"
#include "lazyllm/model/sampler.hpp"
#include "lazyllm/model/weights.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/any.hpp"

namespace lazyllm::bench {

using Clock = std::chrono::steady_clock;
using policy::AnyPolicy;

/// The named policy (RandomDrop seeded with 1); an unknown name throws, listing the choices.
inline AnyPolicy make_policy(const std::string& name, const Schedule& s) { return policy::make_policy(name, s, 1); }

struct Plan {
  std::vector<int> prompts;
  int n_gen = 16;
  int reps = 3;
  bool progress = false;
  bool floor = false;          // --floor: time the model's GEMMs alone for the same token counts
  bool breakdown = false;      // --breakdown: per-op-class, per-layer times of the prefill
  bool graphs = true;          // (cuda) dense decode steps as CUDA graphs; --no-graphs: launch by launch
  bool wgmma = true;           // (cuda) Hopper prefill attention with wgmma; --no-wgmma: the mma.sync kernel
  bool device_select = false;  // (cuda) --device-select: the percentile rule on the GPU (SelectingCudaBackend)
  int graph_chunk = 0;         // (cuda) --graph-chunk N: layers per decode graph (0: the backend's default)
  int tp = 1;                  // (cpu) --tp N: tensor parallel over N ranks, one thread each
};

/// The op classes of --breakdown, in the order of lazyllm::gpu::OpClass (profiler.cuh; checked
/// there by a static_assert in bench_cuda.cu).
inline constexpr std::array<std::string_view, 7> kBreakdownClasses{"gemm",   "attention", "scores", "select",
                                                                   "gather", "norm",      "other"};

struct Breakdown {
  /// ms per pass (a prefill, or one decode step), [bucket][class]: bucket 0 = outside the layers (embedding, final
  /// norm, classifier), bucket 1 + l = layer l. Empty when not measured.
  std::vector<std::array<double, kBreakdownClasses.size()>> ms;
  int passes = 0;
  double ttft_ms = 0;  // mean time of the profiled passes (the sum of ms)
  double total(std::size_t cls) const {
    double s = 0;
    for (const auto& r : ms) s += r[cls];
    return s;
  }
};

/// One policy at one prompt length: `reps` prefills (each followed by n_gen decode steps).
struct Measurement {
  std::string policy, schedule;
  int n_prompt = 0, n_gen = 0;
  std::vector<double> ttft_ms;    // per repetition: prompt in -> first logits out
  std::vector<double> decode_ms;  // per repetition: ms per generated token
  // Token-layers (from the last repetition's RunStats).
  std::int64_t prefill_tl = 0, prefill_dense_tl = 0, total_tl = 0, total_dense_tl = 0;
  std::vector<int> computed;     // |C_l| per layer of the prefill
  std::vector<double> floor_ms;  // GEMM floor per repetition (empty: not measured)
  Breakdown breakdown;           // --breakdown: per prefill
  Breakdown decode_breakdown;    // --breakdown with -n > 0: per decode step after the prompt
  double sm_clock_mhz = 0;       // SM clock read right after the repetitions (0 = unknown)

  double prefill_fraction() const { return prefill_dense_tl ? double(prefill_tl) / double(prefill_dense_tl) : 1.0; }
  double decode_fraction() const {
    const auto d = total_dense_tl - prefill_dense_tl;
    return d ? double(total_tl - prefill_tl) / double(d) : 1.0;
  }
  double total_fraction() const { return total_dense_tl ? double(total_tl) / double(total_dense_tl) : 1.0; }
};

/// Greedy sampling, and n_gen decode steps after the prompt whatever the ids (no stop ids; the
/// last token is decoded too): the timed loop of every policy and backend.
inline std::int32_t greedy(std::span<const float> logits) { return argmax(logits); }
inline GenerateOptions greedy_steps(int n_gen) { return {.max_tokens = n_gen, .stop_ids = {}, .feed_last = true}; }

/// The same pseudo-random prompt for every policy and backend (and the Python peers' seed-free
/// equivalent does not matter: timing does not depend on token ids).
inline std::vector<std::int32_t> make_prompt(int n, int vocab) {
  std::vector<std::int32_t> prompt(static_cast<std::size_t>(n));
  std::uint32_t s = 12345;
  for (auto& t : prompt) t = 3 + std::int32_t((s = s * 1664525u + 1013904223u) >> 8) % (vocab - 3);
  return prompt;
}

/// Host wall-clock timing (CPU backend); the CUDA runner has its own with CUDA events.
struct HostTimer {
  Clock::time_point t0{};
  template <class Pipe>
  void start(Pipe&) {
    t0 = Clock::now();
  }
  template <class Pipe>
  double stop(Pipe&) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  }
  template <class Pipe>
  void after_prompt(Pipe&, const std::vector<std::int32_t>&, const Plan&, Measurement&) {}
};

/// One pipeline per policy over `backend` (weights uploaded once for all policies: the backend is
/// moved into the pipeline and back out). Every prompt length runs one warm-up, then `reps`
/// repetitions, resetting the sequence in between. `ext` times (start/stop around the prefill and
/// around the decode loop) and adds the extras after the repetitions (after_prompt).
template <class Backend, class Policy, class Ext>
std::vector<Measurement> run_policy(Backend& backend, const Policy& pol, const Plan& plan, Ext& ext) {
  int max_p = 0;
  for (int p : plan.prompts) max_p = std::max(max_p, p);
  Pipeline<RuntimeConfig, Policy, ContiguousLayout, Backend> pipe(std::move(backend), pol, {}, max_p + plan.n_gen + 1);
  std::vector<Measurement> out;
  std::string sched = "none";
  if constexpr (requires { pol.schedule(); }) sched = pol.schedule().to_string();
  if (sched.empty()) sched = "none";
  try {
    for (int n_prompt : plan.prompts) {
      const auto prompt = make_prompt(n_prompt, pipe.config().vocab_size);
      Measurement m;
      m.policy = std::string(pol.name());
      m.schedule = sched;
      m.n_prompt = n_prompt;
      m.n_gen = plan.n_gen;
      for (int r = -1; r < plan.reps; ++r) {  // r = -1 warms up
        pipe.reset();
        double ttft = 0;
        GenerateHooks hooks;
        hooks.after_prefill = [&](std::span<const float>) {
          ttft = ext.stop(pipe);
          ext.start(pipe);
        };
        ext.start(pipe);
        generate(
            pipe, prompt, greedy, [](std::int32_t) {}, greedy_steps(plan.n_gen), hooks);
        const double dec = plan.n_gen ? ext.stop(pipe) / plan.n_gen : 0.0;
        if (plan.progress)
          std::fprintf(stderr, "  %s %s pp%d %s: TTFT %.2f ms, %.3f ms/token\n", m.policy.c_str(), sched.c_str(),
                       n_prompt, r < 0 ? "warm-up" : ("rep " + std::to_string(r + 1)).c_str(), ttft, dec);
        if (r < 0) continue;
        m.ttft_ms.push_back(ttft);
        if (plan.n_gen) m.decode_ms.push_back(dec);
      }
      const auto& st = pipe.stats();
      m.prefill_tl = st.prefill_token_layers();
      m.prefill_dense_tl = st.prefill_dense_token_layers();
      m.total_tl = st.total_token_layers();
      m.total_dense_tl = st.total_dense_token_layers();
      if (!st.steps.empty()) m.computed = st.steps.front().computed;
      ext.after_prompt(pipe, prompt, plan, m);
      out.push_back(std::move(m));
    }
  } catch (...) {
    backend = std::move(pipe.backend());
    throw;
  }
  backend = std::move(pipe.backend());
  return out;
}

template <class Backend, class Ext>
std::vector<Measurement> run_policies(Backend& backend, const std::vector<AnyPolicy>& pols, const Plan& plan,
                                      Ext& ext) {
  std::vector<Measurement> all;
  for (const auto& p : pols) {
    auto m = run_policy(backend, p, plan, ext);
    all.insert(all.end(), std::make_move_iterator(m.begin()), std::make_move_iterator(m.end()));
  }
  return all;
}

std::vector<Measurement> run_cpu(const ModelWeights& w, const std::vector<AnyPolicy>& pols, const Plan& plan);
/// bench_cuda.cu, or a stub that throws when the build has no CUDA.
std::vector<Measurement> run_cuda(const ModelWeights& w, const std::vector<AnyPolicy>& pols, const Plan& plan);
/// GPU name, SM count, clocks, driver / runtime / cuBLASLt versions (bench_cuda.cu; the stub
/// returns {"gpu": "none"}).
nlohmann::json cuda_device_info();

}  // namespace lazyllm::bench
