// SPDX-License-Identifier: MIT
// The server's core: one thread that owns an Engine<Backend> and serves jobs through it
// (continuous batching). Handler threads submit jobs and read their tokens through the Job;
// nothing else touches the engine.
//
// Scheduling, step by step:
//  - Cancelled jobs leave first (a cancel seen before a step is never in that step).
//  - Decode tokens of running jobs go first; then the next prompt chunk of jobs still
//    prefilling; then new jobs from the queue (FIFO), while the step's token budget, the
//    parallel-sequence limit and the pool's free blocks allow.
//  - A prompt is fed whole (prefill_chunk 0) or in chunks of a fixed size. Either way the chunks
//    of a job are the same whatever else runs, so each job gets exactly what it gets alone.
//  - The engine's OutOfBlocks (the step is undone) preempts the newest job: its sequence is
//    removed and it goes back to the front of the queue with the tokens it already sent; when
//    readmitted its prompt is prefilled again and those tokens are fed back (not sent again),
//    which gives back the very same sequence. Admission then waits until a job has left. A
//    job whose worst case does not fit the whole pool is refused at submit().
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "lazyllm/engine/engine.hpp"
#include "service.hpp"

namespace lazyllm::server {

struct SchedulerOptions {
  int parallel = 4;              // most jobs in the engine at once
  int max_queue = 64;            // most jobs waiting; more are refused (HTTP 503)
  int n_ctx = 0;                 // tokens per sequence, prompt + generated (0 = the model's max_seq_len)
  int prefill_chunk = 0;         // prompt tokens per step and job (0 = the whole prompt in one step)
  int step_tokens = 8192;        // most tokens one step feeds (0 = no limit); a longer chunk runs alone
  std::int64_t pool_blocks = 0;  // 0: from pool_bytes, else (parallel + 1) x a dense sequence of n_ctx
  std::int64_t pool_bytes = 0;
  int block_tokens = 16;
  // Generation stops at any of these (unless ignore_eos): the model's BOS/EOS and end-of-turn ids.
  std::vector<std::int32_t> stop_ids{1, 2};
  double rate_window_s = 10;  // tokens/s in /metrics are over this window
};

/// Pool blocks a sequence of `n` tokens can hold at most: K/V of every token at every layer, and
/// an Aux Cache entry of every token at each of `aux_layers` pruning layers.
inline std::int64_t blocks_bound(std::int64_t n, int n_layers, int aux_layers, const PoolGeometry& g) {
  const std::int64_t kv = std::int64_t(n_layers) * ((n + g.block_tokens - 1) / g.block_tokens);
  const std::int64_t per = std::max(1, g.aux_per_block());
  return kv + std::int64_t(aux_layers) * ((n + per - 1) / per);
}

template <class Backend>
class Scheduler final : public Service {
 public:
  using Model = typename Backend::Model;

  /// Makes the engine (its pool as `o` says) and starts the scheduler thread. Throws what the
  /// engine throws for a bad pool, and InvalidArgument for bad options.
  template <class... BackendArgs>
  Scheduler(std::shared_ptr<const Model> model, SchedulerOptions o, BackendArgs&&... backend_args)
      : o_(checked(std::move(o), model->config())),
        model_config_(model->config()),
        engine_(std::move(model), engine_options(o_), std::forward<BackendArgs>(backend_args)...) {
    capacity_ = engine_.pool().capacity();
    thread_ = std::thread([this] { loop(); });
  }
  ~Scheduler() override { shutdown(); }

  Admission submit(std::shared_ptr<Job> job) override {
    const std::int64_t n =
        std::min<std::int64_t>(std::int64_t(job->spec.prompt.size()) + job->spec.max_tokens, o_.n_ctx);
    const std::int64_t need = bound(n, job->spec.policy);
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return {Admission::ShuttingDown, "the server is shutting down"};
    if (need > capacity_) {
      ++m_.requests_rejected;
      return {Admission::TooLarge, "this request (" + std::to_string(job->spec.prompt.size()) +
                                       " prompt tokens + max_tokens " + std::to_string(job->spec.max_tokens) +
                                       ") may need " + std::to_string(need) +
                                       " KV blocks, more than the server's pool of " + std::to_string(capacity_) +
                                       " (lower max_tokens, or start the server with a larger pool)"};
    }
    if (int(queue_.size()) >= o_.max_queue) {
      ++m_.requests_rejected;
      return {Admission::QueueFull, "the server is busy: " + std::to_string(queue_.size()) + " requests are waiting"};
    }
    queue_.push_back(std::move(job));
    m_.waiting = int(queue_.size());
    cv_.notify_one();
    return {};
  }

  void cancel(const std::shared_ptr<Job>& job) override {
    job->request_cancel(steps_.load());
    std::lock_guard<std::mutex> l(mu_);
    cv_.notify_one();
  }

  Metrics metrics() const override {
    Metrics m;
    {
      std::lock_guard<std::mutex> l(mu_);
      m = m_;
      const auto now = Clock::now();
      double span = o_.rate_window_s;
      if (!window_.empty()) span = std::min(span, std::chrono::duration<double>(now - started_).count());
      std::int64_t p = 0, g = 0;
      for (const auto& w : window_)
        if (std::chrono::duration<double>(now - w.t).count() <= o_.rate_window_s) p += w.prompt, g += w.generated;
      m.rate_window_s = o_.rate_window_s;
      m.prompt_tokens_per_s = span > 0 ? double(p) / span : 0.0;
      m.generated_tokens_per_s = span > 0 ? double(g) / span : 0.0;
    }
    const BlockPool& pool = *engine_.shared_pool();
    m.pool_blocks_total = pool.capacity();
    m.pool_blocks_used = pool.used();
    m.pool_blocks_peak = pool.peak();
    m.pool_bytes = std::int64_t(pool.bytes());
    return m;
  }

  const RuntimeConfig& config() const override { return model_config_; }
  int n_ctx() const override { return o_.n_ctx; }
  std::string backend_name() const override { return std::string(Backend::name()); }
  const SchedulerOptions& options() const { return o_; }

  /// Pool blocks a job's worst case may need (what submit() compares with the pool).
  std::int64_t blocks_needed(const JobSpec& s) const {
    return bound(std::min<std::int64_t>(std::int64_t(s.prompt.size()) + s.max_tokens, o_.n_ctx), s.policy);
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_ && !thread_.joinable()) return;
      stop_ = true;
      cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Slot {
    std::shared_ptr<Job> job;
    SeqId id = -1;
    std::size_t fed = 0;       // prompt tokens given to the engine
    std::size_t replayed = 0;  // of job->sched.generated, fed back after a preemption
  };
  struct WindowEntry {
    Clock::time_point t;
    std::int64_t prompt, generated;
  };

  static SchedulerOptions checked(SchedulerOptions o, const RuntimeConfig& c) {
    if (o.parallel < 1) throw InvalidArgument("parallel sequences must be >= 1");
    if (o.max_queue < 0) throw InvalidArgument("the queue size must be >= 0");
    if (o.n_ctx < 0 || o.n_ctx > c.max_seq_len)
      throw InvalidArgument("context " + std::to_string(o.n_ctx) + " is outside 1.." + std::to_string(c.max_seq_len) +
                            " (the model's max_seq_len)");
    if (o.n_ctx == 0) o.n_ctx = c.max_seq_len;
    if (o.prefill_chunk < 0) throw InvalidArgument("prefill chunk must be >= 0");
    if (o.step_tokens < 0) throw InvalidArgument("step token budget must be >= 0");
    if (o.pool_blocks < 0 || o.pool_bytes < 0) throw InvalidArgument("pool size must be >= 0");
    // Default: room for `parallel` dense sequences of n_ctx tokens, and one more for Aux Cache
    // entries (a pruned sequence's worst case is its dense blocks plus its Aux entries).
    if (o.pool_blocks == 0 && o.pool_bytes == 0)
      o.pool_blocks = std::int64_t(o.parallel + 1) * c.n_layers * ((o.n_ctx + o.block_tokens - 1) / o.block_tokens);
    return o;
  }
  static EngineOptions engine_options(const SchedulerOptions& o) {
    return EngineOptions{.pool_blocks = o.pool_blocks, .pool_bytes = o.pool_bytes, .block_tokens = o.block_tokens};
  }

  std::int64_t bound(std::int64_t n, const policy::AnyPolicy& p) const {
    const int L = model_config_.n_layers;
    int aux = 0;
    for (int l = 1; l < L; ++l) aux += p.prunes_into(l) ? 1 : 0;
    return blocks_bound(n, L, aux, engine_.shared_pool()->geometry());
  }

  std::size_t chunk_of(std::size_t remaining) const {
    return o_.prefill_chunk > 0 ? std::min(remaining, std::size_t(o_.prefill_chunk)) : remaining;
  }

  JobStats stats_of(const Slot& s) const {
    JobStats st = s.job->sched.stats;
    const RunStats& r = engine_.stats(s.id);
    st.token_layers = r.total_token_layers();
    st.dense_token_layers = r.total_dense_token_layers();
    st.revivals = r.total_revivals();
    for (const auto& step : r.steps)
      if (step.phase == Phase::Prefill) {
        st.prefill_token_layers += step.token_layers();
        st.prefill_dense_token_layers += step.dense_token_layers();
      }
    st.policy = r.policy;
    st.preemptions = s.job->sched.preemptions;
    st.e2e_ms = std::chrono::duration<double, std::milli>(Clock::now() - s.job->arrival).count();
    return st;
  }

  void count_finish(Finish f) {
    if (f == Finish::Cancelled)
      ++m_.requests_cancelled;
    else if (f == Finish::Error)
      ++m_.requests_failed;
    else
      ++m_.requests_finished;
  }

  /// Ends running job i: its sequence leaves the engine (blocks back to the pool), the metrics
  /// count it, then its handler is told (so /metrics agrees with what a client has seen).
  void finish(std::size_t i, Finish f, std::string error = {}, int status = 0) {
    const JobStats st = stats_of(running_[i]);
    engine_.remove(running_[i].id);
    const std::shared_ptr<Job> job = std::move(running_[i].job);
    running_.erase(running_.begin() + std::ptrdiff_t(i));
    admission_paused_ = false;  // a job left: room may have come back
    {
      std::lock_guard<std::mutex> l(mu_);
      count_finish(f);
      m_.running = int(running_.size());
    }
    job->finish(f, st, std::move(error), status);
  }

  /// Drops running jobs whose cancel was asked for (before the next step: within one step of it).
  void drop_cancelled() {
    for (std::size_t i = running_.size(); i-- > 0;) {
      if (!running_[i].job->cancel_requested()) continue;
      {
        std::lock_guard<std::mutex> l(mu_);
        m_.cancel_delay_steps_max = std::max(m_.cancel_delay_steps_max, steps_.load() - running_[i].job->cancel_step());
      }
      finish(i, Finish::Cancelled);
    }
  }

  /// Puts input into the engine for the next step: prompt chunks of running jobs, then new jobs.
  /// Returns the number of tokens the step will feed.
  int feed() {
    const std::int64_t budget = o_.step_tokens > 0 ? o_.step_tokens : std::int64_t(1) << 40;
    std::int64_t tokens = 0, prefill = 0;
    for (const auto& s : running_)
      if (s.fed == s.job->spec.prompt.size()) tokens += engine_.pending(s.id);  // decode tokens first
    auto fits = [&](std::size_t c) { return prefill == 0 || tokens + std::int64_t(c) <= budget; };
    std::int64_t reserved = 0;  // blocks the prompt chunks fed below may take in this step
    for (auto& s : running_) {
      const auto& prompt = s.job->spec.prompt;
      if (s.fed == prompt.size() || engine_.pending(s.id) > 0) continue;
      const std::size_t c = chunk_of(prompt.size() - s.fed);
      if (!fits(c)) return int(tokens);  // FIFO: later jobs wait too
      engine_.append(s.id, std::span(prompt).subspan(s.fed, c));
      s.fed += c;
      tokens += std::int64_t(c), prefill += std::int64_t(c);
      reserved += bound(std::int64_t(c), s.job->spec.policy);
    }
    const int L = model_config_.n_layers;
    std::vector<std::pair<std::shared_ptr<Job>, std::string>> refused;
    {
      std::lock_guard<std::mutex> l(mu_);
      while (!queue_.empty() && int(running_.size()) < o_.parallel && !admission_paused_) {
        const std::shared_ptr<Job>& job = queue_.front();
        if (job->cancel_requested()) {  // the client left while it waited
          cancelled_waiting_.push_back(job);
          queue_.pop_front();
          continue;
        }
        const auto& prompt = job->spec.prompt;
        const std::size_t c = chunk_of(prompt.size());
        if (!fits(c)) break;
        if (!running_.empty()) {
          // Room for this prompt (its replayed tokens too), leaving the running jobs a block per
          // layer to grow into; the OutOfBlocks path covers the rest.
          const std::int64_t need = bound(std::int64_t(prompt.size() + job->sched.generated.size()), job->spec.policy);
          if (engine_.pool().free() - reserved - std::int64_t(running_.size()) * L < need) break;
        }
        reserved += bound(std::int64_t(c), job->spec.policy);
        Slot s;
        s.job = job;
        try {
          SequenceOptions so;
          so.n_ctx = o_.n_ctx;
          so.sampling = job->spec.sampling;
          s.id = engine_.add(std::span(prompt).first(c), job->spec.policy, so);
        } catch (const Error& e) {  // validated before submit(): not expected
          refused.emplace_back(job, e.what());
          queue_.pop_front();
          continue;
        }
        s.fed = c;
        if (!job->sched.admitted_once) {
          job->sched.admitted_once = true;
          job->sched.stats.queue_ms = std::chrono::duration<double, std::milli>(Clock::now() - job->arrival).count();
        }
        job->sched.order = next_order_++;
        running_.push_back(std::move(s));
        queue_.pop_front();
        tokens += std::int64_t(c), prefill += std::int64_t(c);
      }
      m_.waiting = int(queue_.size());
      m_.running = int(running_.size());
    }
    for (auto& [job, why] : refused) {
      {
        std::lock_guard<std::mutex> l(mu_);
        count_finish(Finish::Error);
      }
      job->finish(Finish::Error, job->sched.stats, why, 400);
    }
    return int(tokens);
  }

  /// The step could not get blocks: the newest job makes room (back to the queue's front), or,
  /// alone, fails (submit() keeps that from happening to jobs that fit the pool).
  void out_of_blocks(const std::string& what) {
    std::size_t newest = 0;
    for (std::size_t i = 1; i < running_.size(); ++i)
      if (running_[i].job->sched.order > running_[newest].job->sched.order) newest = i;
    if (running_.size() == 1) {
      finish(0, Finish::Error, "internal: the KV pool cannot hold this request: " + what, 500);
      return;
    }
    Slot& s = running_[newest];
    engine_.remove(s.id);
    ++s.job->sched.preemptions;
    std::shared_ptr<Job> job = std::move(s.job);
    running_.erase(running_.begin() + std::ptrdiff_t(newest));
    admission_paused_ = true;
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_front(std::move(job));
    ++m_.preemptions;
    m_.waiting = int(queue_.size());
    m_.running = int(running_.size());
  }

  void fail_newest(const std::string& what) {
    std::size_t newest = 0;
    for (std::size_t i = 1; i < running_.size(); ++i)
      if (running_[i].job->sched.order > running_[newest].job->sched.order) newest = i;
    finish(newest, Finish::Error, "internal: " + what, 500);
  }

  std::size_t slot_index(SeqId id) const {
    for (std::size_t i = 0; i < running_.size(); ++i)
      if (running_[i].id == id) return i;
    throw Error("internal: scheduler: no job for sequence " + std::to_string(id));
  }

  /// After a step: sample the jobs whose logits are ready, send tokens, finish what is done.
  void take_tokens(const StepResult& res) {
    std::int64_t prompt = 0, generated = 0, tl = 0, dense = 0;
    for (const SeqId id : res.stepped) {
      const StepStats& st = engine_.stats(id).steps.back();
      if (st.phase == Phase::Prefill) prompt += st.new_tokens;
      tl += st.token_layers();
      dense += st.dense_token_layers();
    }
    const auto now = Clock::now();
    for (const SeqId id : res.ready) {
      const std::size_t i = slot_index(id);
      Slot& s = running_[i];
      Job& job = *s.job;
      if (s.fed < job.spec.prompt.size()) continue;  // a chunk of the prompt: more to come
      std::int32_t token = engine_.sample(id);       // (also keeps a seeded sampler in step on replays)
      auto& g = job.sched.generated;
      if (s.replayed < g.size()) {  // after a preemption: the token it sent before
        engine_.decode(id, g[s.replayed++]);
        continue;
      }
      if (job.sched.stats.ttft_ms < 0)
        job.sched.stats.ttft_ms = std::chrono::duration<double, std::milli>(now - job.arrival).count();
      if (!job.spec.ignore_eos && std::ranges::find(o_.stop_ids, token) != o_.stop_ids.end()) {
        finish(i, Finish::Stop);
        continue;
      }
      job.push(token);
      g.push_back(token);
      ++generated;
      s.replayed = g.size();
      if (int(g.size()) >= job.spec.max_tokens || engine_.n_past(id) >= engine_.n_ctx(id)) {
        finish(i, Finish::Length);
        continue;
      }
      engine_.decode(id, token);
    }
    std::lock_guard<std::mutex> l(mu_);
    m_.prompt_tokens += prompt;
    m_.generated_tokens += generated;
    m_.token_layers += tl;
    m_.dense_token_layers += dense;
    m_.steps = steps_.load();
    m_.running = int(running_.size());
    window_.push_back({now, prompt, generated});
    while (!window_.empty() && std::chrono::duration<double>(now - window_.front().t).count() > o_.rate_window_s)
      window_.pop_front();
  }

  void loop() {
    for (;;) {
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || !queue_.empty() || !running_.empty(); });
        if (stop_) break;
      }
      drop_cancelled();
      const int tokens = feed();
      for (auto& job : cancelled_waiting_) {
        {
          std::lock_guard<std::mutex> l(mu_);
          count_finish(Finish::Cancelled);
        }
        job->finish(Finish::Cancelled, job->sched.stats);
      }
      cancelled_waiting_.clear();
      if (tokens == 0) continue;  // nothing to run (every job left)
      StepResult res;
      try {
        res = engine_.step();
      } catch (const OutOfBlocks& e) {  // nothing changed: make room and step again
        out_of_blocks(e.what());
        continue;
      } catch (const std::exception& e) {  // nothing changed; fail the newest so the rest go on
        fail_newest(e.what());
        continue;
      }
      ++steps_;
      take_tokens(res);
    }
    // Shutting down: every job still here ends with an error.
    for (std::size_t i = running_.size(); i-- > 0;) finish(i, Finish::Error, "the server is shutting down", 503);
    std::lock_guard<std::mutex> l(mu_);
    for (auto& job : queue_) job->finish(Finish::Error, job->sched.stats, "the server is shutting down", 503);
    queue_.clear();
  }

  SchedulerOptions o_;
  RuntimeConfig model_config_;
  Engine<Backend> engine_;
  std::int64_t capacity_ = 0;

  mutable std::mutex mu_;  // guards queue_, stop_, m_, window_
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stop_ = false;
  Metrics m_;
  std::deque<WindowEntry> window_;
  const Clock::time_point started_ = Clock::now();
  std::atomic<std::int64_t> steps_{0};

  // Scheduler thread only.
  std::vector<Slot> running_;
  std::vector<std::shared_ptr<Job>> cancelled_waiting_;
  bool admission_paused_ = false;
  std::uint64_t next_order_ = 0;
  std::thread thread_;
};

}  // namespace lazyllm::server
