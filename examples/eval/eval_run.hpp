// SPDX-License-Identifier: MIT
// What lazyllm-eval's translation units share: the policy variant and the loop that runs one
// policy over every example on one pipeline (instantiated for the CPU backend in eval.cpp and for
// the CUDA backend in eval_cuda.cu).
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/generate.hpp"
#include "lazyllm/model/sampler.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/any.hpp"

namespace lazyllm::evalrun {

using Clock = std::chrono::steady_clock;
using policy::AnyPolicy;

/// One example, ready to run: the prompt's token ids (BOS first) and how to generate.
struct Prepared {
  std::vector<std::int32_t> ids;
  int max_new = 32;
  bool stop_at_newline = true;
};

/// Per token id: whether its text holds a newline, and whether it holds anything but whitespace.
struct TokenClasses {
  std::vector<std::uint8_t> newline, text;
};

struct ExampleResult {
  std::vector<std::int32_t> ids;  // generated, without the stopping BOS/EOS
  double ttft_ms = 0, prefill_ms = 0, decode_ms = 0;
  std::int64_t token_layers = 0, dense_token_layers = 0;  // prefill
};

/// Called after each example with the number done and its result.
using Progress = std::function<void(std::size_t done, const ExampleResult& result)>;

/// Runs every example with one policy on one pipeline (reset between examples): greedy decoding
/// until BOS/EOS, max_new tokens, or (stop_at_newline) a newline once some text was generated.
/// The first example's first 64 tokens are prefilled once untimed, as a warm-up.
template <class Backend, class Policy>
std::vector<ExampleResult> run_examples(Backend backend, Policy pol, int n_ctx, const std::vector<Prepared>& examples,
                                        const TokenClasses& cls, const Progress& progress) {
  Pipeline<RuntimeConfig, Policy, ContiguousLayout, Backend> pipe(std::move(backend), std::move(pol), {}, n_ctx);
  if (!examples.empty() && !examples.front().ids.empty()) {
    const auto& w = examples.front().ids;
    pipe.prefill(std::span<const std::int32_t>(w.data(), std::min<std::size_t>(w.size(), 64)));
  }
  std::vector<ExampleResult> out;
  out.reserve(examples.size());
  for (const auto& ex : examples) {
    pipe.reset();
    Sampler sampler(SamplerParams{});  // greedy
    std::vector<std::int32_t> history;
    bool seen_text = false;
    // Short-answer datasets end at the first newline once some text was generated.
    const auto on_token = [&](std::int32_t id) {
      const auto k = std::size_t(id);
      if (ex.stop_at_newline && k < cls.newline.size() && cls.newline[k] && seen_text) return false;
      if (k < cls.text.size() && cls.text[k]) seen_text = true;
      return true;
    };
    GenerateResult g = generate(pipe, ex.ids, sampler, history, on_token, {.max_tokens = ex.max_new});
    ExampleResult r;
    r.ids = std::move(g.ids);
    r.prefill_ms = g.prefill_ms;
    r.ttft_ms = g.ttft_ms;
    r.decode_ms = g.decode_ms;
    r.token_layers = pipe.stats().prefill_token_layers();
    r.dense_token_layers = pipe.stats().prefill_dense_token_layers();
    out.push_back(std::move(r));
    if (progress) progress(out.size(), out.back());
  }
  return out;
}

/// The CUDA backend's run_examples (eval_cuda.cu; throws a clear Error when the build has no CUDA).
/// `device_select`: SelectingCudaBackend's rule on the GPU (the default; off with --no-device-select).
std::vector<ExampleResult> run_examples_cuda(const ModelWeights& w, const AnyPolicy& p, int n_ctx,
                                             const std::vector<Prepared>& examples, const TokenClasses& cls,
                                             const Progress& progress, bool device_select);

}  // namespace lazyllm::evalrun
