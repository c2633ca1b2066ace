// SPDX-License-Identifier: MIT
// The serving scenario of lazyllm-bench-engine: B requests arrive at once, each a P-token prompt
// and G greedy output tokens, served by one Engine (continuous batching over one model and one
// block pool). Shared by the CPU and CUDA translation units.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lazyllm/engine/engine.hpp"
#include "lazyllm/model/weights.hpp"
#include "lazyllm/policy/any.hpp"

namespace lazyllm::bench {

struct ServeCase {
  int requests = 1;   // B, all arriving at t = 0
  int prompt = 4096;  // P tokens each (random ids)
  int gen = 128;      // G output tokens each (greedy, no stop)
  policy::AnyPolicy policy;
  std::string policy_name, schedule;
  int max_step_tokens = 0;  // the engine's token budget per step (0: no limit)
  std::uint64_t seed = 1;
  bool progress = false;
};

struct ServeResult {
  std::vector<double> ttft_ms;  // per request: arrival (t = 0) -> its first output token's logits
  double total_ms = 0;          // t = 0 -> the last request's last token
  double prefill_ms = 0;        // t = 0 -> every request has its first token
  std::int64_t prompt_tokens = 0, output_tokens = 0;
  std::int64_t peak_blocks = 0, block_bytes = 0, pool_blocks = 0;
  int deferrals = 0;    // steps refused with OutOfBlocks, a new request held back
  int preemptions = 0;  // ... a running request stopped, to start again later
  int max_running = 0;  // most requests holding blocks at once
  int steps = 0;
  double prefill_fraction = 1.0;  // token-layers of the prompts vs dense (mean over requests)
  double prefill_blocks = 0;      // blocks a request holds right after its prompt (mean)
  std::int64_t revivals = 0;      // token-layers computed from the Aux Cache, all requests

  double output_tok_s() const { return total_ms > 0 ? double(output_tokens) / (total_ms / 1e3) : 0; }
  double prompt_tok_s() const { return prefill_ms > 0 ? double(prompt_tokens) / (prefill_ms / 1e3) : 0; }
  std::int64_t peak_bytes() const { return peak_blocks * block_bytes; }
  double ttft_mean() const {
    double s = 0;
    for (double v : ttft_ms) s += v;
    return ttft_ms.empty() ? 0 : s / double(ttft_ms.size());
  }
  double ttft_p(double q) const {
    if (ttft_ms.empty()) return 0;
    std::vector<double> v = ttft_ms;
    std::sort(v.begin(), v.end());
    const auto i = std::size_t(std::min<double>(double(v.size() - 1), std::ceil(q * double(v.size())) - 1));
    return v[i];
  }
};

/// The engine options of a run.
struct EngineRun {
  std::int64_t pool_bytes = 0;  // 0: the backend's default (see --help)
  int block_tokens = 16;
  int max_step_tokens = 0;
  bool progress = false;
  int batched_attention = -1;  // CUDA: decode attention in one launch per step (1), per sequence (0), the default (-1)
};

/// The cases on the CUDA backend (engine_bench_cuda.cu; engine_bench_cuda_stub.cpp without CUDA);
/// `device` receives the GPU's description.
std::vector<ServeResult> serve_cuda(const ModelWeights& w, const std::vector<ServeCase>& cases, const EngineRun& run,
                                    nlohmann::json& device);

/// Serves `c` on `eng` (empty on entry, empty again on return). Requests are admitted in order
/// while the pool has room: when a step is refused with OutOfBlocks, the newest request that has
/// not started is taken out again and waits until a running request finishes (a deferral, never
/// a failure). Throws when one request alone does not fit the pool.
template <class Engine>
ServeResult serve(Engine& eng, const ServeCase& c) {
  using Clock = std::chrono::steady_clock;
  const int vocab = eng.config().vocab_size;
  std::vector<std::vector<std::int32_t>> prompts(std::size_t(c.requests));
  std::uint64_t st = c.seed * 0x9E3779B97F4A7C15ull + 7;
  for (auto& p : prompts) {
    p.resize(std::size_t(c.prompt));
    for (auto& t : p) {
      st ^= st << 13, st ^= st >> 7, st ^= st << 17;
      t = 3 + std::int32_t(st % std::uint64_t(vocab - 3));
    }
  }
  ServeResult r;
  r.block_bytes = eng.pool().geometry().block_bytes();
  r.pool_blocks = eng.pool().capacity();
  eng.pool().reset_peak();
  std::deque<int> waiting;
  for (int i = 0; i < c.requests; ++i) waiting.push_back(i);
  struct Running {
    int request;
    int produced = 0;
    bool started = false;
  };
  std::map<SeqId, Running> running;
  bool hold = false;  // a deferral: admit nothing more until a request finishes
  double fraction_sum = 0, prefill_blocks_sum = 0;
  r.ttft_ms.assign(std::size_t(c.requests), 0.0);
  const auto t0 = Clock::now();
  const auto ms_since = [&] { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); };
  int first_tokens = 0;
  std::vector<char> first_done(std::size_t(c.requests), 0);
  while (!waiting.empty() || !running.empty()) {
    while (!hold && !waiting.empty()) {
      running[eng.add(prompts[std::size_t(waiting.front())], c.policy)] = {waiting.front()};
      waiting.pop_front();
    }
    r.max_running = std::max(r.max_running, int(running.size()));
    StepResult res;
    try {
      res = eng.step();
    } catch (const OutOfBlocks&) {
      // Nothing changed: hold back the newest request that has not started, else preempt the
      // newest running one (it starts again later, from its prompt).
      if (running.size() == 1)
        throw Error("lazyllm-bench-engine: the pool (" + std::to_string(r.pool_blocks) +
                    " blocks) cannot hold even one request; give it more memory");
      auto it = std::find_if(running.rbegin(), running.rend(), [](const auto& e) { return !e.second.started; });
      if (it == running.rend()) {
        it = running.rbegin();
        ++r.preemptions;
        r.output_tokens -= it->second.produced;
      } else {
        ++r.deferrals;
      }
      waiting.push_front(it->second.request);
      eng.remove(it->first);
      running.erase(std::next(it).base());
      hold = true;
      continue;
    }
    ++r.steps;
    for (const SeqId id : res.ready) {
      Running& q = running.at(id);
      if (!q.started) {
        q.started = true;
        if (!first_done[std::size_t(q.request)]) {  // (a preempted request's restart is not counted)
          first_done[std::size_t(q.request)] = 1;
          r.ttft_ms[std::size_t(q.request)] = ms_since();
          r.prompt_tokens += c.prompt;
          fraction_sum += eng.stats(id).prefill_fraction();
          prefill_blocks_sum += double(eng.blocks(id));
          if (++first_tokens == c.requests) r.prefill_ms = ms_since();
        }
      }
      const std::int32_t t = eng.sample(id);
      ++r.output_tokens;
      if (++q.produced >= c.gen) {
        r.revivals += eng.stats(id).total_revivals();
        eng.remove(id);
        running.erase(id);
        hold = false;
      } else {
        eng.decode(id, t);
      }
    }
    if (c.progress)
      std::fprintf(stderr, "\r  step %d: %zu running, %zu waiting, %lld tokens out   ", r.steps, running.size(),
                   waiting.size(), (long long)r.output_tokens);
  }
  if (c.progress) std::fprintf(stderr, "\n");
  r.total_ms = ms_since();
  r.peak_blocks = eng.pool().peak();
  r.prefill_fraction = c.requests ? fraction_sum / c.requests : 1.0;
  r.prefill_blocks = c.requests ? prefill_blocks_sum / c.requests : 0.0;
  return r;
}

}  // namespace lazyllm::bench
