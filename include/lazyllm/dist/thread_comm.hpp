// SPDX-License-Identifier: MIT
// A Communicator over threads of one process (the CPU's tensor parallelism, and the tests'):
// ThreadGroup is the shared state, ThreadComm one rank's handle, run_ranks the harness that runs
// one thread per rank and turns a failing rank into an error instead of a hang.
#pragma once
#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "lazyllm/detail/error.hpp"
#include "lazyllm/detail/parallel.hpp"
#include "lazyllm/dist/communicator.hpp"

namespace lazyllm {

/// The state the ranks of one in-process group share: who has arrived at the current barrier,
/// the buffers each rank published for the current collective, and whether the group was aborted.
/// Make it with std::make_shared and hand each thread its ThreadComm (or use run_ranks).
class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : size_(size) {
    if (size < 1) throw InvalidArgument("ThreadGroup: size " + std::to_string(size) + " must be at least 1");
    const auto n = std::size_t(size);
    here_.assign(n, 0);
    left_.assign(n, 0);
    slots_.assign(n, Slot{});
  }
  ThreadGroup(const ThreadGroup&) = delete;
  ThreadGroup& operator=(const ThreadGroup&) = delete;

  int size() const { return size_; }

  /// Every rank waiting in a collective, and every later collective, throws CommAborted(why).
  /// The first reason is kept. Safe from any thread.
  void abort(std::string_view why) noexcept {
    try {
      std::lock_guard lk(m_);
      abort_locked(std::string(why));
    } catch (...) {  // allocating the reason failed: abort without it
      std::lock_guard lk(m_);
      aborted_ = true;
    }
    cv_.notify_all();
  }
  bool aborted() const {
    std::lock_guard lk(m_);
    return aborted_;
  }
  std::string abort_reason() const {
    std::lock_guard lk(m_);
    return why_;
  }

  /// `rank` will make no more calls (its thread finished). A rank that later waits for it in a
  /// collective aborts the group instead of waiting for ever.
  void leave(int rank) noexcept {
    {
      std::lock_guard lk(m_);
      left_[std::size_t(rank)] = 1;
    }
    cv_.notify_all();
  }

 private:
  friend class ThreadComm;
  enum class Op : std::uint8_t { None, SumF32, SumF64, Broadcast };
  static const char* op_name(Op o) {
    switch (o) {
      case Op::SumF32:
        return "all_reduce_sum of floats";
      case Op::SumF64:
        return "all_reduce_sum of doubles";
      case Op::Broadcast:
        return "broadcast";
      default:
        return "nothing";
    }
  }
  struct Slot {  // what a rank published for the current collective
    void* data = nullptr;
    std::size_t count = 0;
    Op op = Op::None;
    int root = 0;
  };

  void abort_locked(std::string why) {
    if (aborted_) return;
    aborted_ = true;
    why_ = std::move(why);
  }

  /// Waits until every rank has arrived. A barrier completes for everyone or for no one: once the
  /// last rank arrives, the waiters return even if an abort follows. An `abortable` barrier throws
  /// CommAborted when the group is (or gets) aborted or a rank it waits for has left; the second
  /// barrier of a collective is not abortable: every rank that passed the first one reaches it
  /// (nothing between them throws), and until then other ranks may still write into its buffer.
  void arrive_and_wait(int rank, bool abortable) {
    std::unique_lock lk(m_);
    if (abortable && aborted_) throw CommAborted(why_);
    here_[std::size_t(rank)] = 1;
    if (++arrived_ == size_) {
      arrived_ = 0;
      std::fill(here_.begin(), here_.end(), char(0));
      ++generation_;
      cv_.notify_all();
      return;
    }
    const std::uint64_t gen = generation_;
    int gone = -1;
    cv_.wait(lk, [&] {
      if (generation_ != gen) return true;
      if (!abortable) return false;
      if (aborted_) return true;
      for (int q = 0; q < size_; ++q)
        if (left_[std::size_t(q)] && !here_[std::size_t(q)]) return gone = q, true;
      return false;
    });
    if (generation_ != gen) return;
    // Not completed, and it never will be (the group is dead): withdraw from the count.
    here_[std::size_t(rank)] = 0;
    --arrived_;
    if (gone >= 0) {
      abort_locked("rank " + std::to_string(gone) + " finished while rank " + std::to_string(rank) +
                   " waits in a collective (the ranks made different calls)");
      cv_.notify_all();
    }
    throw CommAborted(why_);
  }

  /// Checks that every rank published the same collective (called between the two barriers, when
  /// the slots are stable); the first rank to see a mismatch aborts the group.
  void check_same(int rank) {
    const Slot& a = slots_[0];
    for (int q = 1; q < size_; ++q) {
      const Slot& b = slots_[std::size_t(q)];
      if (b.op == a.op && b.count == a.count && b.root == a.root) continue;
      std::string why = "the ranks made different calls: rank 0 called " + std::string(op_name(a.op)) + " of " +
                        std::to_string(a.count) + " (root " + std::to_string(a.root) + "), rank " + std::to_string(q) +
                        " " + op_name(b.op) + " of " + std::to_string(b.count) + " (root " + std::to_string(b.root) +
                        ")";
      abort(why);
      throw CommAborted(abort_reason());
    }
    (void)rank;
  }

  const int size_;
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::uint64_t generation_ = 0;
  int arrived_ = 0;
  std::vector<char> here_, left_;
  bool aborted_ = false;
  std::string why_;
  std::vector<Slot> slots_;  // written by each rank for itself before barrier A, read by all after it
};

/// One rank's handle on a ThreadGroup (cheap to copy; copies are the same rank). Collectives run
/// on the calling thread.
///
/// all_reduce_sum adds in rank order, element by element -- ((x_0 + x_1) + x_2) + ... -- in the
/// element type: rank r computes elements [r n / size, (r+1) n / size) for every rank and writes
/// them into every rank's buffer. So the result is the same bits on every rank, for any n and
/// however the calls are batched, and for one rank it is the input unchanged.
class ThreadComm {
 public:
  ThreadComm(std::shared_ptr<ThreadGroup> group, int rank) : g_(std::move(group)), rank_(rank) {
    if (!g_) throw InvalidArgument("ThreadComm: no group");
    if (rank < 0 || rank >= g_->size())
      throw InvalidArgument("ThreadComm: rank " + std::to_string(rank) + " is outside 0.." +
                            std::to_string(g_->size() - 1));
  }

  int rank() const { return rank_; }
  int size() const { return g_->size(); }
  ThreadGroup& group() const { return *g_; }

  void all_reduce_sum(std::span<float> x) { reduce(x, ThreadGroup::Op::SumF32); }
  void all_reduce_sum(std::span<double> x) { reduce(x, ThreadGroup::Op::SumF64); }

  void broadcast(std::span<std::byte> x, int root) {
    if (root < 0 || root >= size())
      throw InvalidArgument("broadcast: root " + std::to_string(root) + " is outside 0.." + std::to_string(size() - 1));
    if (size() == 1) return;
    publish(x.data(), x.size(), ThreadGroup::Op::Broadcast, root);
    g_->arrive_and_wait(rank_, true);
    g_->check_same(rank_);
    if (rank_ != root && !x.empty()) std::memcpy(x.data(), g_->slots_[std::size_t(root)].data, x.size());
    g_->arrive_and_wait(rank_, false);  // root's buffer stays valid until everyone has copied it
  }

  void abort(std::string_view why) noexcept { g_->abort(why); }

 private:
  void publish(void* data, std::size_t count, ThreadGroup::Op op, int root) {
    // Only this rank writes its slot, and only while no other rank reads the slots (between the
    // second barrier of the previous collective and the first of this one).
    std::lock_guard lk(g_->m_);
    g_->slots_[std::size_t(rank_)] = {data, count, op, root};
  }

  template <class T>
  void reduce(std::span<T> x, ThreadGroup::Op op) {
    const int n_ranks = size();
    if (n_ranks == 1) return;
    publish(x.data(), x.size(), op, 0);
    g_->arrive_and_wait(rank_, true);
    g_->check_same(rank_);
    // Nothing from here to the second barrier throws: other ranks write into this rank's buffer.
    const std::size_t n = x.size();
    const std::size_t b = n * std::size_t(rank_) / std::size_t(n_ranks);
    const std::size_t e = n * std::size_t(rank_ + 1) / std::size_t(n_ranks);
    const auto* slots = g_->slots_.data();
    for (std::size_t i = b; i < e; ++i) {
      T s = static_cast<const T*>(slots[0].data)[i];
      for (int q = 1; q < n_ranks; ++q) s += static_cast<const T*>(slots[q].data)[i];
      for (int q = 0; q < n_ranks; ++q) static_cast<T*>(slots[q].data)[i] = s;
    }
    g_->arrive_and_wait(rank_, false);  // every chunk written before anyone reads its result
  }

  std::shared_ptr<ThreadGroup> g_;
  int rank_ = 0;
};

static_assert(Communicator<ThreadComm>);

/// Runs fn(ThreadComm) on `n` threads, one per rank of a new ThreadGroup, and returns when all
/// have finished. Each rank gets cpu_threads() / n of the cores for the CPU backend's own
/// threads. When a rank throws, the group is aborted, so ranks waiting in a collective throw
/// CommAborted instead of waiting for ever; once every thread has finished, the first error
/// that is not CommAborted (the cause) is rethrown, else the first CommAborted. A rank that
/// returns while others still wait for it in a collective aborts the group too.
template <class Fn>
void run_ranks(int n, Fn&& fn) {
  auto group = std::make_shared<ThreadGroup>(n);
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(n));
  std::vector<int> order;  // ranks in the order they failed
  std::mutex order_m;
  const int budget = std::max(1, detail::cpu_threads() / n);
  auto body = [&](int r) {
    try {
      detail::ScopedThreadBudget cores(budget);
      fn(ThreadComm(group, r));
    } catch (const std::exception& e) {
      errors[std::size_t(r)] = std::current_exception();
      group->abort("rank " + std::to_string(r) + " failed: " + e.what());
      std::lock_guard lk(order_m);
      order.push_back(r);
    } catch (...) {
      errors[std::size_t(r)] = std::current_exception();
      group->abort("rank " + std::to_string(r) + " failed");
      std::lock_guard lk(order_m);
      order.push_back(r);
    }
    group->leave(r);
  };
  std::vector<std::thread> threads;
  threads.reserve(std::size_t(n - 1));
  try {
    for (int r = 1; r < n; ++r) threads.emplace_back(body, r);
  } catch (...) {  // a thread could not start: the started ones must not wait for it
    group->abort("run_ranks: could not start a thread for every rank");
    for (auto& t : threads) t.join();
    throw;
  }
  body(0);
  for (auto& t : threads) t.join();
  std::exception_ptr first_abort;
  for (const int r : order) {
    try {
      std::rethrow_exception(errors[std::size_t(r)]);
    } catch (const CommAborted&) {
      if (!first_abort) first_abort = errors[std::size_t(r)];
    } catch (...) {
      throw;
    }
  }
  if (first_abort) std::rethrow_exception(first_abort);
}

}  // namespace lazyllm
