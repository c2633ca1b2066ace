// SPDX-License-Identifier: MIT
// What the HTTP layer and the scheduler share: a Job (one request's input, and its output as the
// scheduler produces it) and the Service interface the scheduler implements. Nothing here knows
// the backend, so the HTTP layer is compiled once for every backend.
#pragma once
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lazyllm/config/model_config.hpp"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/model/sampler.hpp"
#include "lazyllm/policy/any.hpp"

namespace lazyllm::server {

using Clock = std::chrono::steady_clock;

/// What a request asks the engine for (already validated and tokenized).
struct JobSpec {
  std::vector<std::int32_t> prompt;
  int max_tokens = 16;  // >= 1; prompt + max_tokens fits the context
  SamplerParams sampling{};
  policy::AnyPolicy policy{};
  bool ignore_eos = false;
};

enum class Finish { None, Stop, Length, Cancelled, Error };

inline const char* to_string(Finish f) {
  switch (f) {
    case Finish::None:
      return "none";
    case Finish::Stop:
      return "stop";
    case Finish::Length:
      return "length";
    case Finish::Cancelled:
      return "cancelled";
    case Finish::Error:
      return "error";
  }
  return "?";
}

/// How the job's sequence used the model, for `usage.lazyllm`.
struct JobStats {
  double queue_ms = 0;  // arrival to first admission
  double ttft_ms = -1;  // arrival to the first generated token (-1: none)
  double e2e_ms = 0;    // arrival to finish
  std::int64_t prefill_token_layers = 0, prefill_dense_token_layers = 0;
  std::int64_t token_layers = 0, dense_token_layers = 0;
  std::int64_t revivals = 0;
  int preemptions = 0;  // times it was taken out of the engine to make room, and replayed
  std::string policy;   // as the engine printed it, e.g. "lazy(3:0.3,5:0.5)"
};

/// One request between a handler thread and the scheduler thread. The scheduler appends tokens
/// and finally finishes it; the handler reads what is new and may ask to cancel. Handlers wait on
/// an eventfd (poll()-able next to the client's socket, so a disconnect wakes them too).
class Job {
 public:
  explicit Job(JobSpec s) : spec(std::move(s)), arrival(Clock::now()) {
    efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd_ < 0) throw Error("eventfd failed (errno " + std::to_string(errno) + ")");
  }
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;
  ~Job() { ::close(efd_); }

  const JobSpec spec;
  const Clock::time_point arrival;

  // ---- scheduler side ----
  void push(std::int32_t token) {
    {
      std::lock_guard<std::mutex> l(mu_);
      tokens_.push_back(token);
    }
    wake();
  }
  void finish(Finish f, const JobStats& st, std::string error = {}, int status = 0) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (finish_ != Finish::None) return;
      finish_ = f;
      stats_ = st;
      error_ = std::move(error);
      error_status_ = status;
    }
    wake();
  }
  bool cancel_requested() const { return cancel_.load(std::memory_order_acquire); }
  /// The scheduler's own bookkeeping (only the scheduler thread touches it).
  struct Sched {
    std::vector<std::int32_t> generated;  // every token pushed (replayed after a preemption)
    std::uint64_t order = 0;              // admission order (the newest is preempted first)
    bool admitted_once = false;
    int preemptions = 0;
    JobStats stats;  // filled in as it goes (queue time, TTFT)
  } sched;

  // ---- handler side ----
  /// Asks the scheduler to drop the job (the client left, or a stop string matched); the
  /// Service's cancel() also wakes the scheduler.
  void request_cancel(std::int64_t at_step = 0) {
    cancel_step_.store(at_step, std::memory_order_relaxed);
    cancel_.store(true, std::memory_order_release);
  }
  /// The scheduler's count of completed steps when the cancel was asked for.
  std::int64_t cancel_step() const { return cancel_step_.load(std::memory_order_relaxed); }

  /// Tokens from `from` on (appended to `out`); returns true once the job has finished (then
  /// every token is in `out`).
  bool read(std::size_t from, std::vector<std::int32_t>& out) const {
    std::lock_guard<std::mutex> l(mu_);
    if (from < tokens_.size()) out.insert(out.end(), tokens_.begin() + std::ptrdiff_t(from), tokens_.end());
    return finish_ != Finish::None;
  }
  Finish finish_reason() const {
    std::lock_guard<std::mutex> l(mu_);
    return finish_;
  }
  JobStats stats() const {
    std::lock_guard<std::mutex> l(mu_);
    return stats_;
  }
  std::string error() const {
    std::lock_guard<std::mutex> l(mu_);
    return error_;
  }
  int error_status() const {
    std::lock_guard<std::mutex> l(mu_);
    return error_status_;
  }

  enum class Wake { Update, Disconnected, Timeout };
  /// Waits up to `timeout_ms` for news from the scheduler, or for the peer of `socket_fd` (when
  /// >= 0) to hang up. "Update" may be spurious: read() tells what is new.
  Wake wait(int socket_fd, int timeout_ms) const {
    pollfd fds[2] = {{efd_, POLLIN, 0}, {socket_fd, POLLRDHUP, 0}};
    const int n = ::poll(fds, socket_fd >= 0 ? 2 : 1, timeout_ms);
    if (n <= 0) return Wake::Timeout;  // EINTR counts as a timeout: the caller loops
    if (socket_fd >= 0 && (fds[1].revents & (POLLRDHUP | POLLHUP | POLLERR))) return Wake::Disconnected;
    eventfd_t v;
    ::eventfd_read(efd_, &v);  // reset before the caller reads the state: no lost wake-up
    return Wake::Update;
  }

 private:
  void wake() { ::eventfd_write(efd_, 1); }

  mutable std::mutex mu_;
  std::vector<std::int32_t> tokens_;
  Finish finish_ = Finish::None;
  JobStats stats_;
  std::string error_;
  int error_status_ = 0;
  std::atomic<bool> cancel_{false};
  std::atomic<std::int64_t> cancel_step_{0};
  int efd_ = -1;
};

/// What submit() did with a job.
struct Admission {
  enum Status { Queued, QueueFull, TooLarge, ShuttingDown } status = Queued;
  std::string message;  // for the refusals
};

/// Counters and gauges for /metrics (a consistent snapshot).
struct Metrics {
  int running = 0, waiting = 0;
  std::int64_t requests_finished = 0, requests_cancelled = 0, requests_failed = 0, requests_rejected = 0;
  std::int64_t prompt_tokens = 0;                              // prompt tokens prefilled (replays included)
  std::int64_t generated_tokens = 0;                           // tokens sent to clients
  double prompt_tokens_per_s = 0, generated_tokens_per_s = 0;  // over the last window
  double rate_window_s = 0;
  std::int64_t token_layers = 0, dense_token_layers = 0;  // computed vs what dense computes
  std::int64_t steps = 0, preemptions = 0;
  std::int64_t cancel_delay_steps_max = 0;  // steps a cancelled job took part in after it was seen
  std::int64_t pool_blocks_total = 0, pool_blocks_used = 0, pool_blocks_peak = 0;
  std::int64_t pool_bytes = 0;
};

/// The scheduler as the HTTP layer sees it.
class Service {
 public:
  virtual ~Service() = default;
  /// Queues the job (or refuses it: queue full, can never fit the pool, shutting down).
  virtual Admission submit(std::shared_ptr<Job> job) = 0;
  /// Asks for the job to be dropped at the next step boundary (and wakes the scheduler).
  virtual void cancel(const std::shared_ptr<Job>& job) = 0;
  virtual Metrics metrics() const = 0;
  virtual const RuntimeConfig& config() const = 0;
  /// The most tokens a request may hold (prompt + generated).
  virtual int n_ctx() const = 0;
  virtual std::string backend_name() const = 0;
  /// Finishes every job (Error "shutting down") and stops the scheduler thread.
  virtual void shutdown() = 0;
};

}  // namespace lazyllm::server
