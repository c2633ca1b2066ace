// SPDX-License-Identifier: MIT
// A minimal parallel-for for the CPU reference: static contiguous chunks on std::threads.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <thread>
#include <vector>

namespace lazyllm::detail {

/// Threads the CPU reference uses: $LAZYLLM_THREADS, else the hardware concurrency.
inline int cpu_threads() {
  static const int n = [] {
    if (const char* e = std::getenv("LAZYLLM_THREADS")) {
      const int v = std::atoi(e);
      if (v > 0) return v;
    }
    return int(std::max(1u, std::thread::hardware_concurrency()));
  }();
  return n;
}

/// This thread's share of the cores, 0 = all of cpu_threads(). Tensor-parallel ranks that run as
/// threads of one process (run_ranks, dist/thread_comm.hpp) split the cores between them.
inline int& thread_budget() {
  thread_local int n = 0;
  return n;
}

/// Sets this thread's share of the cores for its lifetime (at least 1).
class ScopedThreadBudget {
 public:
  explicit ScopedThreadBudget(int n) : saved_(thread_budget()) { thread_budget() = std::max(1, n); }
  ~ScopedThreadBudget() { thread_budget() = saved_; }
  ScopedThreadBudget(const ScopedThreadBudget&) = delete;
  ScopedThreadBudget& operator=(const ScopedThreadBudget&) = delete;

 private:
  int saved_;
};

/// Calls fn(begin, end) over disjoint chunks of [0, n). `cost` is an estimate of the work per
/// index (in multiply-adds); small loops run on the calling thread to avoid thread start-up.
template <class Fn>
void parallel_for(std::int64_t n, std::int64_t cost, Fn&& fn) {
  constexpr std::int64_t kMinWorkPerThread = 1 << 16;
  const std::int64_t by_work = std::max<std::int64_t>(1, n * std::max<std::int64_t>(cost, 1) / kMinWorkPerThread);
  const int avail = thread_budget() > 0 ? thread_budget() : cpu_threads();
  const int threads = static_cast<int>(std::min<std::int64_t>({avail, n, by_work}));
  if (threads <= 1) {
    if (n > 0) fn(std::int64_t{0}, n);
    return;
  }
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(threads));
  pool.reserve(static_cast<std::size_t>(threads - 1));
  auto chunk = [&](int t) {
    const std::int64_t b = n * t / threads, e = n * (t + 1) / threads;
    try {
      fn(b, e);
    } catch (...) {
      errors[static_cast<std::size_t>(t)] = std::current_exception();
    }
  };
  for (int t = 1; t < threads; ++t) pool.emplace_back(chunk, t);
  chunk(0);
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace lazyllm::detail
