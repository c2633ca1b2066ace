// SPDX-License-Identifier: MIT
// What the driver's translation units share: the policy variant and the sessions over the
// generation loop (instantiated for the CPU backend in session_cpu.cpp and for the CUDA backend in
// cuda.cu).
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/generate.hpp"
#include "lazyllm/model/sampler.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/any.hpp"
#include "memory.hpp"
#include "options.hpp"

namespace lazyllm::driver {

using Clock = std::chrono::steady_clock;

using cli::UsageError;

using policy::AnyPolicy;
using policy::make_policy;

struct RunResult {
  std::vector<std::int32_t> ids;  // generated (a stopping BOS/EOS is not included)
  RunStats stats;                 // this run's (this turn's) steps only
  double prefill_ms = 0, decode_ms = 0;
  double ttft_ms = 0;                          // prefill start to the first generated token sampled (0 when none)
  double sample_ms = 0;                        // time in the sampler
  StopReason stop = StopReason::MaxTokens;     // why generation ended
  int n_prompt = 0;                            // tokens prefilled (in interactive mode: the turn's, plus the previous
                                               // answer's last token when it was sampled but not yet in the cache)
  int cache_before = 0;                        // tokens already in the KV cache when the run started (0 for one-shot)
  int cache_after = 0;                         // tokens in the KV cache at the end
  bool stopped_eos = false;                    // generation ended at BOS/EOS
  bool context_full = false;                   // generation ended because the context was full
  HostMemoryUse host;                          // this process's RSS at the end of the run
  std::int64_t gpu_free = -1, gpu_total = -1;  // cudaMemGetInfo at the end (CUDA backend)
};

/// What a run reports while it goes (kept out of Options so warm-up copies stay silent).
struct Hooks {
  std::function<void(std::int32_t)> on_token;  // each generated id, as soon as it is sampled
  bool progress = false;                       // progress on stderr for long prefills (>= kPrefillProgressTokens)
  bool progress_always = false;                // --progress: for every prefill
  bool tty = false;                            // stderr is a terminal: one \r-updated progress line
  std::function<void(RunResult&)> probe;       // called at the end of each run, pipeline still alive
};

/// Prompts at least this long get per-layer prefill progress on stderr.
inline constexpr std::size_t kPrefillProgressTokens = 1024;

inline double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

inline std::string does_not_fit(std::size_t n_new, int n_past, int n_ctx) {
  if (n_past == 0)
    return "prompt of " + std::to_string(n_new) + " tokens does not fit the context of " + std::to_string(n_ctx) +
           " tokens";
  return std::to_string(n_new) + " new tokens do not fit the context: " + std::to_string(n_past) + " of its " +
         std::to_string(n_ctx) + " tokens are used; start again with a larger -c";
}

/// One sequence that grows over one or more runs (interactive turns): the pipeline, its KV and
/// Aux Cache, and the sampler's history stay between turns.
template <class Backend, class Policy>
class Session {
 public:
  Session(Backend backend, Policy pol, const Options& o, const Hooks& hooks)
      : pipe_(std::move(backend), std::move(pol), {}, o.n_ctx), hooks_(hooks), sampler_(o.sampler), min_p_(o.min_p) {
    gen_.stop_ids = o.stop_ids;
    if (o.ignore_eos) gen_.stop_ids.clear();
  }

  int n_past() const { return pipe_.n_past(); }
  int n_ctx() const { return pipe_.n_ctx(); }
  /// Tokens the next turn() prefills before its own: the previous answer's last token when it
  /// was sampled but not decoded (the run stopped at -n).
  std::size_t pending() const { return pending_.size(); }
  bool fits(std::size_t n_new) const { return std::int64_t(n_past() + pending() + n_new) <= n_ctx(); }
  const RunStats& stats() const { return pipe_.stats(); }

  /// Appends `tokens` (after any pending token) to the sequence and generates up to n_predict.
  RunResult turn(const std::vector<std::int32_t>& tokens, int n_predict) {
    const RuntimeConfig& cfg = pipe_.config();
    std::vector<std::int32_t> in = pending_;
    in.insert(in.end(), tokens.begin(), tokens.end());
    if (in.empty()) throw UsageError("nothing to process (an empty prompt)");
    if (!fits(tokens.size())) throw UsageError(does_not_fit(in.size(), n_past(), n_ctx()));
    for (auto id : in)
      if (id < 0 || id >= cfg.vocab_size)
        throw UsageError("--prompt-ids: token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                         std::to_string(cfg.vocab_size - 1) + ")");
    pending_.clear();
    RunResult r;
    r.n_prompt = int(in.size());
    r.cache_before = n_past();
    const std::size_t first_step = pipe_.stats().steps.size();

    const bool progress = hooks_.progress && (hooks_.progress_always || in.size() >= kPrefillProgressTokens);
    const auto t_start = Clock::now();
    GenerateHooks gh;
    if (progress) {
      std::fprintf(stderr, "prefill: %zu tokens ...\n", in.size());
      std::fflush(stderr);
      pipe_.on_layer([&](const LayerProgress& e) {
        if (e.phase != Phase::Prefill) return;
        pipe_.backend().synchronize();  // time the layer, not its launch
        // |C_l|: the tokens this layer computed (fewer than the prompt's past a pruning layer), and
        // the time left at the mean time per layer so far.
        const double ms = ms_since(t_start), eta = ms / (e.layer + 1) * (e.n_layers - e.layer - 1);
        if (hooks_.tty)
          std::fprintf(stderr, "\rprefill: layer %d/%d, %d of %zu tokens computed, %.1f ms, ETA %.0f ms   ",
                       e.layer + 1, e.n_layers, e.computed, in.size(), ms, eta);
        else
          std::fprintf(stderr, "prefill: layer %d/%d, %d of %zu tokens computed, %.2f ms, ETA %.0f ms\n", e.layer + 1,
                       e.n_layers, e.computed, in.size(), ms, eta);
        std::fflush(stderr);
      });
      gh.after_prefill = [&](std::span<const float>) {
        const double ms = ms_since(t_start);
        pipe_.on_layer({});
        if (hooks_.tty) std::fputc('\n', stderr);
        std::fprintf(stderr, "prefill: %zu tokens in %.2f ms (%.1f tok/s)\n", in.size(), ms,
                     ms > 0 ? 1000.0 * double(in.size()) / ms : 0.0);
      };
    }
    GenerateResult g;
    history_.insert(history_.end(), in.begin(), in.end());
    // --min-p: tokens less likely than min_p times the most likely one are cut before sampling
    // (on the logits: l < max + ln(min_p)); the sampler then applies its own filters.
    auto sample = [&](std::span<const float> logits) {
      if (min_p_ <= 0.0f) return sampler_.sample(logits, history_);
      cut_.assign(logits.begin(), logits.end());
      const float floor = *std::max_element(cut_.begin(), cut_.end()) + std::log(min_p_);
      for (auto& l : cut_)
        if (l < floor) l = -std::numeric_limits<float>::infinity();
      return sampler_.sample(cut_, history_);
    };
    auto on_token = [&](std::int32_t id) {
      history_.push_back(id);
      if (hooks_.on_token) hooks_.on_token(id);
    };
    GenerateOptions opt = gen_;
    opt.max_tokens = n_predict;
    try {
      g = lazyllm::generate(pipe_, in, sample, on_token, opt, gh);
    } catch (...) {
      pipe_.on_layer({});
      throw;
    }
    r.ids = std::move(g.ids);
    r.prefill_ms = g.prefill_ms;
    r.ttft_ms = g.ttft_ms;
    r.decode_ms = g.decode_ms;
    r.sample_ms = g.sample_ms;
    r.stop = g.stop;
    r.stopped_eos = g.stop == StopReason::StopToken;
    r.context_full = g.stop == StopReason::ContextFull;
    if (g.pending) pending_.assign(1, r.ids.back());  // sampled, not yet in the cache: the next turn prefills it
    r.cache_after = n_past();
    r.stats = pipe_.stats();
    r.stats.steps.erase(r.stats.steps.begin(), r.stats.steps.begin() + std::ptrdiff_t(first_step));
    r.host = host_memory_use();
    if (hooks_.probe) hooks_.probe(r);
    return r;
  }

 private:
  Pipeline<RuntimeConfig, Policy, ContiguousLayout, Backend> pipe_;
  Hooks hooks_;
  Sampler sampler_;
  float min_p_ = 0.0f;
  GenerateOptions gen_;
  std::vector<std::int32_t> history_, pending_;
  std::vector<float> cut_;
};

/// One prompt, one answer.
template <class Backend, class Policy>
RunResult generate(Backend backend, Policy pol, const Options& o, const Hooks& hooks = {}) {
  Session<Backend, Policy> s(std::move(backend), std::move(pol), o, hooks);
  return s.turn(o.prompt, o.n_predict);
}

/// Interactive mode: where the turns come from and where they go.
struct Conversation {
  /// The tokens of turn `turn` (0-based), or nullopt at the end of the input.
  std::function<std::optional<std::vector<std::int32_t>>(int turn)> next;
  /// Called after each turn with its result.
  std::function<void(int turn, const RunResult&)> done;
};

struct ConversationEnd {
  RunStats stats;     // the whole session's steps
  std::string error;  // non-empty when a turn did not fit the context (the session stops there)
};

/// Turns until the input ends or one does not fit; the KV cache is kept across turns, so each
/// turn prefills only its own tokens.
template <class Backend, class Policy>
ConversationEnd converse(Backend backend, Policy pol, const Options& o, const Hooks& hooks, const Conversation& conv) {
  Session<Backend, Policy> s(std::move(backend), std::move(pol), o, hooks);
  ConversationEnd end;
  for (int t = 0;; ++t) {
    const auto tokens = conv.next(t);
    if (!tokens) break;
    if (!s.fits(tokens->size())) {
      end.error =
          "turn " + std::to_string(t + 1) + ": " + does_not_fit(tokens->size() + s.pending(), s.n_past(), s.n_ctx());
      break;
    }
    conv.done(t, s.turn(*tokens, o.n_predict));
  }
  end.stats = s.stats();
  return end;
}

/// Runs one policy on the CUDA backend (cuda.cu; throws a clear Error when the build has no CUDA).
RunResult run_policy_cuda(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks = {});
/// Interactive mode on the CUDA backend (cuda.cu).
ConversationEnd converse_cuda(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks,
                              const Conversation& conv);

}  // namespace lazyllm::driver
