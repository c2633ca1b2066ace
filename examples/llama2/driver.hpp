// SPDX-License-Identifier: MIT
// What the driver's translation units share: options, the policy variant and the generation loop
// (instantiated for the CPU backend in main.cpp and for the CUDA backend in cuda.cu).
#pragma once
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/model/sampler.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/dense.hpp"
#include "lazyllm/policy/lazy.hpp"
#include "lazyllm/policy/random_drop.hpp"
#include "lazyllm/policy/static.hpp"

namespace lazyllm::driver {

using Clock = std::chrono::steady_clock;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string model;
  std::vector<std::int32_t> prompt{1};
  bool prompt_given = false;
  int n_predict = 64;
  int n_ctx = 0;
  SamplerParams sampler;
  std::string backend = "auto";
  std::string policy = "dense";
  std::string schedule = "default";
  bool schedule_given = false;
  std::string stats_file;
  bool print_ids = false;
  bool compare = false;
  bool demo = false;  // no -m: the built-in default
};

using AnyPolicy = std::variant<policy::Dense, policy::Lazy, policy::Static, policy::RandomDrop>;

inline AnyPolicy make_policy(const std::string& name, const Schedule& s, std::uint64_t seed) {
  if (name == "lazy") return policy::Lazy(s);
  if (name == "static") return policy::Static(s);
  if (name == "random") return policy::RandomDrop(s, seed);
  return policy::Dense{};
}

struct RunResult {
  std::vector<std::int32_t> ids;
  RunStats stats;
  double prefill_ms = 0, decode_ms = 0;
};

template <class Backend, class Policy>
RunResult generate(Backend backend, Policy pol, const Options& o) {
  Pipeline<RuntimeConfig, Policy, ContiguousLayout, Backend> pipe(std::move(backend), std::move(pol), {}, o.n_ctx);
  const RuntimeConfig& cfg = pipe.config();
  if (std::int64_t(o.prompt.size()) + 0 > pipe.n_ctx())
    throw UsageError("prompt of " + std::to_string(o.prompt.size()) + " tokens does not fit the context of " +
                     std::to_string(pipe.n_ctx()) + " tokens");
  for (auto id : o.prompt)
    if (id >= cfg.vocab_size)
      throw UsageError("--prompt-ids: token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                       std::to_string(cfg.vocab_size - 1) + ")");
  Sampler sampler(o.sampler);
  RunResult r;
  auto t0 = Clock::now();
  auto logits = pipe.prefill(o.prompt);
  r.prefill_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  std::vector<std::int32_t> history = o.prompt;
  t0 = Clock::now();
  for (int i = 0; i < o.n_predict; ++i) {
    const std::int32_t next = sampler.sample(logits, history);
    if (next == 1 || next == 2) break;
    r.ids.push_back(next);
    history.push_back(next);
    if (i + 1 == o.n_predict || pipe.n_past() >= pipe.n_ctx()) break;
    logits = pipe.decode(next);
  }
  r.decode_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  r.stats = pipe.stats();
  return r;
}

/// Runs one policy on the CUDA backend (cuda.cu; throws a clear Error when the build has no CUDA).
RunResult run_policy_cuda(const ModelWeights& w, const AnyPolicy& p, const Options& o);
/// True when this build has the CUDA backend and a GPU is visible.
bool cuda_device_available();

}  // namespace lazyllm::driver
