// SPDX-License-Identifier: MIT
// generate(): the generation loop over any pipeline -- prefill the prompt, sample, decode until a
// stop condition (a token budget, a stop id, the context full, or a callback saying stop) --
// with a per-token callback and the timings every tool reports (prefill, TTFT, decode).
#pragma once
#include <chrono>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "lazyllm/detail/error.hpp"
#include "lazyllm/model/finite.hpp"
#include "lazyllm/model/sampler.hpp"

namespace lazyllm {

/// What generate() needs of a pipeline: Pipeline<...> has it, whatever its template arguments.
template <class P>
concept GeneratingPipeline = requires(P& p, std::span<const std::int32_t> t, std::int32_t id) {
  { p.prefill(t) } -> std::convertible_to<std::span<const float>>;
  { p.decode(id) } -> std::convertible_to<std::span<const float>>;
  { p.n_past() } -> std::convertible_to<int>;
  { p.n_ctx() } -> std::convertible_to<int>;
};

/// Why generate() stopped.
enum class StopReason {
  MaxTokens,    // GenerateOptions::max_tokens tokens were generated (or it is 0)
  StopToken,    // a stop id was sampled (it is not part of the output)
  Callback,     // on_token returned false after this token
  ContextFull,  // the context is full: no room to decode the last token
};

inline const char* to_string(StopReason r) {
  switch (r) {
    case StopReason::MaxTokens:
      return "max tokens";
    case StopReason::StopToken:
      return "stop token";
    case StopReason::Callback:
      return "stopped by the caller";
    case StopReason::ContextFull:
      return "context full";
  }
  return "?";
}

struct GenerateOptions {
  int max_tokens = 64;                       // < 0: no limit (until a stop id or the context is full)
  std::vector<std::int32_t> stop_ids{1, 2};  // Llama's BOS and EOS; empty: never stop on an id
  bool check_finite = true;                  // refuse logits holding NaN or Inf (an Error naming the step)
  bool feed_last = false;                    // at max_tokens, decode the last token too (the cache then
                                             // holds every generated token; else it stays pending)
};

struct GenerateResult {
  std::vector<std::int32_t> ids;  // generated, without a stop id
  StopReason stop = StopReason::MaxTokens;
  bool pending = false;   // ids.back() was sampled but is not in the cache (max_tokens without feed_last)
  double prefill_ms = 0;  // prefill call, host clock
  double ttft_ms = 0;     // prefill start to the first token sampled (0 when none was)
  double decode_ms = 0;   // after the prefill (and after_prefill) to the end
  double sample_ms = 0;   // in `sample` (part of decode_ms, and of ttft_ms for the first token)
};

/// Optional hooks around the loop's steps (for timers and profilers that must bracket exactly the
/// prefill or each decode step; progress output).
struct GenerateHooks {
  std::function<void(std::span<const float> logits)> after_prefill;  // the prefill's logits, before the first sample
  std::function<void()> before_decode;                               // right before each decode call
  std::function<void()> after_decode;                                // right after each decode call
};

namespace detail {

/// Throws Error when the logits hold a NaN or an Inf, naming the first one, the step and the likely
/// causes (check_finite_logits' test, with the step).
inline void check_logits_finite(std::span<const float> logits, int step) {
  for (std::size_t i = 0; i < logits.size(); ++i) {
    if (is_finite_bits(logits[i])) continue;
    throw Error("the logits are not finite (" + finite_word(logits[i]) + " at token id " + std::to_string(i) + " of " +
                std::to_string(logits.size()) + ", " +
                (step == 0 ? std::string("after the prefill") : "at decode step " + std::to_string(step)) +
                "): the weights hold NaN/Inf or the activations overflowed (check the weights, e.g. "
                "lazyllm-llama2 --check-weights, or compute in fp32)");
  }
}

template <class F>
bool call_on_token(F& f, std::int32_t id) {
  if constexpr (std::is_same_v<std::invoke_result_t<F&, std::int32_t>, void>) {
    f(id);
    return true;
  } else {
    return bool(f(id));
  }
}

}  // namespace detail

/// Prefills `prompt` (appended to what the pipeline already holds) and generates:
///   logits = prefill(prompt); after_prefill()
///   repeat: id = sample(logits)                 (a stop id ends it, not emitted)
///           emit id; on_token(id) == false ends it
///           context full, or max_tokens reached, ends it (feed_last decodes id first)
///           logits = decode(id)
/// With check_finite (the default) logits holding a NaN or an Inf throw an Error naming the step
/// instead of sampling garbage (every argmax of all-NaN logits is id 0).
/// `sample` is any callable std::int32_t(std::span<const float> logits): a Sampler with its
/// history, argmax, or a device sampler reading the backend's logits. `on_token` returns void or
/// bool (false: stop after this token). A stop at max_tokens without feed_last leaves the last
/// token `pending`: sampled but not decoded, for the caller to prefill with the next turn.
template <GeneratingPipeline Pipe, class Sample, class OnToken>
GenerateResult generate(Pipe& pipe, std::span<const std::int32_t> prompt, Sample&& sample, OnToken&& on_token,
                        const GenerateOptions& opt = {}, const GenerateHooks& hooks = {}) {
  using Clock = std::chrono::steady_clock;
  const auto since = [](Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
  };
  GenerateResult r;
  const auto t_start = Clock::now();
  std::span<const float> logits = pipe.prefill(prompt);
  r.prefill_ms = since(t_start);
  if (hooks.after_prefill) hooks.after_prefill(logits);
  const auto t0 = Clock::now();
  for (int i = 0;; ++i) {
    if (opt.max_tokens >= 0 && i >= opt.max_tokens) {
      r.stop = StopReason::MaxTokens;
      break;
    }
    if (opt.check_finite) detail::check_logits_finite(logits, i);
    const auto t_sample = Clock::now();
    const std::int32_t id = sample(logits);
    r.sample_ms += since(t_sample);
    if (i == 0) r.ttft_ms = since(t_start);
    bool stop_id = false;
    for (const auto s : opt.stop_ids) stop_id = stop_id || s == id;
    if (stop_id) {
      r.stop = StopReason::StopToken;
      break;
    }
    r.ids.push_back(id);
    if (!detail::call_on_token(on_token, id)) {
      r.stop = StopReason::Callback;
      break;
    }
    const bool last = opt.max_tokens >= 0 && i + 1 == opt.max_tokens;
    if (pipe.n_past() >= pipe.n_ctx()) {
      r.stop = last ? StopReason::MaxTokens : StopReason::ContextFull;
      break;
    }
    if (last && !opt.feed_last) {
      r.stop = StopReason::MaxTokens;
      r.pending = true;
      break;
    }
    if (hooks.before_decode) hooks.before_decode();
    logits = pipe.decode(id);
    if (hooks.after_decode) hooks.after_decode();
    if (last) {
      r.stop = StopReason::MaxTokens;
      break;
    }
  }
  r.decode_ms = since(t0);
  return r;
}

/// generate() with a host Sampler that sees `history` (for its repetition penalty): the caller's
/// earlier tokens; the prompt and each generated token are appended to it.
template <GeneratingPipeline Pipe, class OnToken>
GenerateResult generate(Pipe& pipe, std::span<const std::int32_t> prompt, Sampler& sampler,
                        std::vector<std::int32_t>& history, OnToken&& on_token, const GenerateOptions& opt = {},
                        const GenerateHooks& hooks = {}) {
  history.insert(history.end(), prompt.begin(), prompt.end());
  return generate(
      pipe, prompt, [&](std::span<const float> logits) { return sampler.sample(logits, history); },
      [&](std::int32_t id) {
        history.push_back(id);
        return detail::call_on_token(on_token, id);
      },
      opt, hooks);
}

}  // namespace lazyllm
