// SPDX-License-Identifier: MIT
// What the driver's translation units share: options, the policy variant and the generation loop
// (instantiated for the CPU backend in main.cpp and for the CUDA backend in cuda.cu).
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
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
  // Text in, text out (main.cpp only; the generation loop sees token ids).
  std::string tokenizer;    // -z: .model (SentencePiece) or llama2.c tokenizer.bin
  std::string prompt_text;  // -p TEXT, or the contents of -f FILE once read
  std::string prompt_file;  // -f FILE ("-" = stdin)
  bool text_given = false;  // -p or -f
  int prompt_sources = 0;   // how many of -p, -f, --prompt-ids were given
  bool chat = false;        // --chat: Llama 2 chat template around the text prompt
  std::string system;       // --system TEXT
  bool system_given = false;
  std::string json_file;    // --json FILE
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
  double ttft_ms = 0;  // prefill start to the first generated token sampled (0 when none)
};

/// What a run reports while it goes (kept out of Options so warm-up copies stay silent).
struct Hooks {
  std::function<void(std::int32_t)> on_token;  // each generated id, as soon as it is sampled
  bool progress = false;                       // "prefill: N tokens ..." on stderr for long prompts
};

/// Prompts longer than this get a progress line on stderr around the prefill.
inline constexpr std::size_t kPrefillProgressTokens = 512;

template <class Backend, class Policy>
RunResult generate(Backend backend, Policy pol, const Options& o, const Hooks& hooks = {}) {
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
  const bool progress = hooks.progress && o.prompt.size() > kPrefillProgressTokens;
  if (progress) {
    std::fprintf(stderr, "prefill: %zu tokens ...\n", o.prompt.size());
    std::fflush(stderr);
  }
  const auto t_start = Clock::now();
  auto logits = pipe.prefill(o.prompt);
  r.prefill_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_start).count();
  if (progress)
    std::fprintf(stderr, "prefill: %zu tokens in %.2f ms (%.1f tok/s)\n", o.prompt.size(), r.prefill_ms,
                 r.prefill_ms > 0 ? 1000.0 * double(o.prompt.size()) / r.prefill_ms : 0.0);
  std::vector<std::int32_t> history = o.prompt;
  const auto t0 = Clock::now();
  for (int i = 0; i < o.n_predict; ++i) {
    const std::int32_t next = sampler.sample(logits, history);
    if (i == 0) r.ttft_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_start).count();
    if (next == 1 || next == 2) break;
    r.ids.push_back(next);
    if (hooks.on_token) hooks.on_token(next);
    history.push_back(next);
    if (i + 1 == o.n_predict || pipe.n_past() >= pipe.n_ctx()) break;
    logits = pipe.decode(next);
  }
  r.decode_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  r.stats = pipe.stats();
  return r;
}

/// Runs one policy on the CUDA backend (cuda.cu; throws a clear Error when the build has no CUDA).
RunResult run_policy_cuda(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks = {});
/// True when this build has the CUDA backend and a GPU is visible.
bool cuda_device_available();

}  // namespace lazyllm::driver
