// SPDX-License-Identifier: MIT
// The offline engine for lazyllm-bench-serving: the same request trace (arrival times, prompts,
// output lengths, schedules) driven straight through an Engine on this thread, with the
// scheduler's policy (FIFO admission up to `parallel` while blocks allow, decode tokens first,
// whole prompts within the step budget, the newest request preempted and replayed on
// OutOfBlocks) and no HTTP, JSON, tokenizer or handler threads. What the server adds on top is
// its own overhead.
#pragma once
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "lazyllm/engine/engine.hpp"
#include "scheduler.hpp"

namespace lazyllm::server {

struct TraceRequest {
  double arrival_s = 0;  // since the start of the run
  std::vector<std::int32_t> prompt;
  int output_len = 1;
  policy::AnyPolicy policy{};
};

/// When a request's events happened, in seconds since the start of the run.
struct RequestTiming {
  double sent = 0, first = -1, last = -1;
  std::vector<double> token_times;  // one per generated token
  int tokens = 0;
  int prompt_tokens = 0;
  int preemptions = 0;
  double prefill_fraction = -1;  // of dense token-layers computed in prefill (-1: not known)
  bool ok = false;
  std::string error;
};

struct OfflineOptions {
  int parallel = 4;
  int step_tokens = 8192;
  int n_ctx = 0;
  std::int64_t pool_blocks = 0, pool_bytes = 0;
  int block_tokens = 16;
};

template <class Backend>
std::vector<RequestTiming> run_offline(std::shared_ptr<const typename Backend::Model> model,
                                       const std::vector<TraceRequest>& trace, const OfflineOptions& o) {
  using Clock = std::chrono::steady_clock;
  const RuntimeConfig& cfg = model->config();
  const int n_ctx = o.n_ctx > 0 ? o.n_ctx : cfg.max_seq_len;
  EngineOptions eo{.pool_blocks = o.pool_blocks, .pool_bytes = o.pool_bytes, .block_tokens = o.block_tokens};
  if (eo.pool_blocks == 0 && eo.pool_bytes == 0)  // the server's default
    eo.pool_blocks = std::int64_t(o.parallel + 1) * cfg.n_layers * ((n_ctx + o.block_tokens - 1) / o.block_tokens);
  Engine<Backend> eng(std::move(model), eo);
  const PoolGeometry g = eng.pool().geometry();
  const int L = cfg.n_layers;
  auto bound = [&](std::int64_t n, const policy::AnyPolicy& p) {
    int aux = 0;
    for (int l = 1; l < L; ++l) aux += p.prunes_into(l) ? 1 : 0;
    return blocks_bound(n, L, aux, g);
  };

  std::vector<RequestTiming> out(trace.size());
  struct Run {
    std::size_t i;
    SeqId id;
    std::uint64_t order;
    std::size_t replayed = 0;
  };
  std::vector<std::vector<std::int32_t>> generated(trace.size());
  std::deque<std::size_t> waiting;
  std::vector<Run> running;
  std::size_t next = 0, done = 0;
  std::uint64_t order = 0;
  bool paused = false;
  const std::int64_t budget = o.step_tokens > 0 ? o.step_tokens : std::int64_t(1) << 40;
  const auto t0 = Clock::now();
  auto now = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };

  while (done < trace.size()) {
    const double t = now();
    while (next < trace.size() && trace[next].arrival_s <= t) {
      out[next].sent = trace[next].arrival_s;
      out[next].prompt_tokens = int(trace[next].prompt.size());
      waiting.push_back(next++);
    }
    // Admission, as the server's scheduler does it.
    std::int64_t tokens = std::int64_t(running.size()), prefill = 0, reserved = 0;
    while (!waiting.empty() && int(running.size()) < o.parallel && !paused) {
      const std::size_t i = waiting.front();
      const auto& r = trace[i];
      const auto c = std::int64_t(r.prompt.size());
      if (prefill > 0 && tokens + c > budget) break;
      const std::int64_t need = bound(c + std::int64_t(generated[i].size()), r.policy);
      if (!running.empty() && eng.pool().free() - reserved - std::int64_t(running.size()) * L < need) break;
      SequenceOptions so;
      so.n_ctx = n_ctx;
      running.push_back({i, eng.add(r.prompt, r.policy, so), order++});
      waiting.pop_front();
      tokens += c, prefill += c, reserved += bound(c, r.policy);
    }
    if (running.empty()) {
      if (next < trace.size())
        std::this_thread::sleep_for(std::chrono::duration<double>(std::max(0.0, trace[next].arrival_s - now())));
      continue;
    }
    StepResult res;
    try {
      res = eng.step();
    } catch (const OutOfBlocks&) {
      std::size_t newest = 0;
      for (std::size_t k = 1; k < running.size(); ++k)
        if (running[k].order > running[newest].order) newest = k;
      if (running.size() == 1) {
        out[running[0].i].error = "the request does not fit the pool";
        eng.remove(running[0].id);
        running.clear();
        ++done;
        continue;
      }
      eng.remove(running[newest].id);
      ++out[running[newest].i].preemptions;
      waiting.push_front(running[newest].i);
      running.erase(running.begin() + std::ptrdiff_t(newest));
      paused = true;
      continue;
    }
    const double ts = now();
    for (const SeqId id : res.ready) {
      std::size_t k = 0;
      while (running[k].id != id) ++k;
      Run& run = running[k];
      auto& gen = generated[run.i];
      const std::int32_t tok = eng.sample(id);
      if (run.replayed < gen.size()) {
        eng.decode(id, gen[run.replayed++]);
        continue;
      }
      RequestTiming& rt = out[run.i];
      if (rt.first < 0) rt.first = ts;
      rt.last = ts;
      rt.token_times.push_back(ts);
      gen.push_back(tok);
      run.replayed = gen.size();
      rt.tokens = int(gen.size());
      if (rt.tokens >= trace[run.i].output_len || eng.n_past(id) >= eng.n_ctx(id)) {
        rt.ok = true;
        std::int64_t tl = 0, dense = 0;
        for (const auto& st : eng.stats(id).steps)
          if (st.phase == Phase::Prefill) tl += st.token_layers(), dense += st.dense_token_layers();
        rt.prefill_fraction = dense ? double(tl) / double(dense) : 1.0;
        eng.remove(id);
        running.erase(running.begin() + std::ptrdiff_t(k));
        paused = false;
        ++done;
        continue;
      }
      eng.decode(id, tok);
    }
  }
  return out;
}

}  // namespace lazyllm::server
