// SPDX-License-Identifier: MIT
// A Communicator over NCCL: one rank per GPU, one thread per rank in one process (NcclGroup makes
// the communicators of the process's GPUs at once), or one process per GPU (NcclComm::init_rank
// with a ncclUniqueId shared by the processes). Collectives are queued on the rank's stream, the
// backend's, and work on device memory. Link with lazyllm::nccl.
#pragma once
#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
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
#include "lazyllm/dist/communicator.hpp"

namespace lazyllm {

/// An NCCL call failed. what() names the call site, the call and NCCL's message.
class NcclError : public Error {
 public:
  NcclError(const char* file, int line, const char* call, ncclResult_t r)
      : Error(std::string(file) + ":" + std::to_string(line) + ": " + call + " failed: " + ncclGetErrorString(r) +
              " (" + std::to_string(int(r)) + ")") {}
};

namespace detail {
inline void check_nccl(ncclResult_t r, const char* file, int line, const char* call) {
  if (r != ncclSuccess && r != ncclInProgress) throw NcclError(file, line, call, r);
}
inline void check_cuda_rt(cudaError_t e, const char* file, int line, const char* call) {
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(std::string(file) + ":" + std::to_string(line) + ": " + call + " failed: " + cudaGetErrorName(e) +
                " (" + cudaGetErrorString(e) + ")");
  }
}

/// NVLink SHARP (NVLS, NVLink multicast) stays off: it is what NCCL_NVLS_ENABLE=0 turns off, set
/// here before NCCL reads it when the environment does not say; any other value is refused.
inline void keep_nvls_off() {
  const char* v = std::getenv("NCCL_NVLS_ENABLE");
  if (!v) {
    ::setenv("NCCL_NVLS_ENABLE", "0", 0);
    return;
  }
  if (std::string(v) != "0")
    throw InvalidArgument(std::string("NCCL_NVLS_ENABLE=") + v +
                          ": lazyllm runs NCCL with NVLink multicast (NVLS) off; unset it or set it to 0");
}

/// The abort state the ranks of one in-process group share.
struct NcclAbortState {
  std::atomic<bool> aborted{false};
  std::mutex m;
  std::string why;
  void abort(std::string_view w) noexcept {
    std::lock_guard lk(m);
    if (aborted.load()) return;
    try {
      why = std::string(w);
    } catch (...) {
    }
    aborted.store(true);
  }
  std::string reason() {
    std::lock_guard lk(m);
    return why;
  }
};
}  // namespace detail

#define LAZYLLM_NCCL_CHECK(call) ::lazyllm::detail::check_nccl((call), __FILE__, __LINE__, #call)
#define LAZYLLM_CUDA_RT_CHECK(call) ::lazyllm::detail::check_cuda_rt((call), __FILE__, __LINE__, #call)

class NcclGroup;

/// One rank's NCCL communicator, bound to its GPU and a stream on it. Move-only.
///
/// Collectives are queued on the stream and return at once; `synchronize()` waits for the stream
/// and is where a failure elsewhere in the group shows: it polls, and when the group was aborted
/// (abort() on any rank of an NcclGroup) or NCCL reports an asynchronous error, it aborts this
/// rank's NCCL communicator -- which makes its queued collectives give up -- and throws
/// CommAborted. A backend over NcclComm waits with it instead of cudaStreamSynchronize.
/// all_reduce_sum gives every rank the same bits (NCCL reduces each element once and sends the
/// result to every rank: NVIDIA/nccl#855); the order of the additions is NCCL's and may depend on
/// the message size.
class NcclComm {
 public:
  /// Rank `rank` of `size` processes (or threads) sharing `id` (from ncclGetUniqueId on one of
  /// them): calls ncclCommInitRank on the current device, which waits for the other ranks.
  static NcclComm init_rank(const ncclUniqueId& id, int rank, int size, cudaStream_t stream) {
    detail::keep_nvls_off();
    ncclComm_t c = nullptr;
    LAZYLLM_NCCL_CHECK(ncclCommInitRank(&c, size, id, rank));
    int dev = 0;
    LAZYLLM_CUDA_RT_CHECK(cudaGetDevice(&dev));
    return NcclComm(c, rank, size, dev, stream, std::make_shared<detail::NcclAbortState>(), true);
  }

  NcclComm(NcclComm&& o) noexcept { *this = std::move(o); }
  NcclComm& operator=(NcclComm&& o) noexcept {
    if (this != &o) {
      release();
      comm_ = std::exchange(o.comm_, nullptr);
      rank_ = o.rank_, size_ = o.size_, device_ = o.device_, stream_ = o.stream_;
      state_ = std::move(o.state_);
      owned_ = std::exchange(o.owned_, false);
      staging_ = std::exchange(o.staging_, nullptr);
      staging_bytes_ = std::exchange(o.staging_bytes_, 0);
      timeout_s_ = o.timeout_s_;
    }
    return *this;
  }
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;
  ~NcclComm() { release(); }

  int rank() const { return rank_; }
  int size() const { return size_; }
  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  ncclComm_t get() const { return comm_; }

  /// In place on device memory, queued on the stream.
  void all_reduce_sum(std::span<float> x) { reduce(x.data(), x.size(), ncclFloat32); }
  void all_reduce_sum(std::span<double> x) { reduce(x.data(), x.size(), ncclFloat64); }
  /// In place on device memory, queued on the stream.
  void broadcast(std::span<std::byte> x, int root) {
    check_root(root);
    ready();
    if (size_ > 1 && !x.empty())
      LAZYLLM_NCCL_CHECK(ncclBroadcast(x.data(), x.data(), x.size(), ncclUint8, root, comm_, stream_));
  }
  /// Host bytes (a sampled token id): staged through device memory; returns when they are here.
  void broadcast_host(std::span<std::byte> x, int root) {
    check_root(root);
    if (size_ == 1 || x.empty()) return;
    ready();
    if (staging_bytes_ < x.size()) {
      if (staging_) cudaFree(staging_);
      staging_ = nullptr;
      staging_bytes_ = 0;
      LAZYLLM_CUDA_RT_CHECK(cudaMalloc(&staging_, x.size()));
      staging_bytes_ = x.size();
    }
    LAZYLLM_CUDA_RT_CHECK(cudaMemcpyAsync(staging_, x.data(), x.size(), cudaMemcpyHostToDevice, stream_));
    LAZYLLM_NCCL_CHECK(ncclBroadcast(staging_, staging_, x.size(), ncclUint8, root, comm_, stream_));
    LAZYLLM_CUDA_RT_CHECK(cudaMemcpyAsync(x.data(), staging_, x.size(), cudaMemcpyDeviceToHost, stream_));
    synchronize();
  }

  /// Marks the group aborted: every rank's next collective or synchronize() throws CommAborted.
  /// Safe from any thread (the NCCL communicators themselves are aborted by their own ranks, in
  /// synchronize(), since NCCL calls on one communicator must not run concurrently).
  void abort(std::string_view why) noexcept {
    if (state_) state_->abort(why);
  }

  /// Waits for the stream (polling; see the class comment). Throws CommAborted when the group is
  /// aborted, NCCL fails asynchronously or the wait exceeds the timeout, Error for a CUDA failure.
  void synchronize() {
    ready();
    const auto t0 = std::chrono::steady_clock::now();
    for (int spins = 0;; ++spins) {
      const cudaError_t e = cudaStreamQuery(stream_);
      if (e == cudaSuccess) break;
      if (e != cudaErrorNotReady) LAZYLLM_CUDA_RT_CHECK(e);
      if (state_->aborted.load()) give_up(state_->reason());
      ncclResult_t async = ncclSuccess;
      LAZYLLM_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
      if (async != ncclSuccess && async != ncclInProgress)
        give_up("rank " + std::to_string(rank_) + ": NCCL failed: " + ncclGetErrorString(async));
      if (timeout_s_ > 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s_)
        give_up("rank " + std::to_string(rank_) + " waited more than " + std::to_string(int(timeout_s_)) +
                " s for the group (a rank stopped making the same calls)");
      if (spins > 64) std::this_thread::yield();
    }
    if (state_->aborted.load()) give_up(state_->reason());
  }
  /// synchronize() gives up after `seconds` (0, the default: never). A rank that stops calling
  /// (it returned early, or made other calls) cannot be told from a slow one otherwise.
  void set_timeout(double seconds) { timeout_s_ = seconds; }

  bool aborted() const { return state_ && state_->aborted.load(); }

 private:
  friend class NcclGroup;
  NcclComm(ncclComm_t c, int rank, int size, int device, cudaStream_t stream,
           std::shared_ptr<detail::NcclAbortState> st, bool owned)
      : comm_(c), rank_(rank), size_(size), device_(device), stream_(stream), state_(std::move(st)), owned_(owned) {}

  void check_root(int root) const {
    if (root < 0 || root >= size_)
      throw InvalidArgument("broadcast: root " + std::to_string(root) + " is outside 0.." + std::to_string(size_ - 1));
  }
  void ready() {
    if (!comm_) throw CommAborted(state_ ? state_->reason() : std::string("NCCL communicator aborted"));
    if (state_->aborted.load()) give_up(state_->reason());
  }
  void reduce(void* data, std::size_t n, ncclDataType_t t) {
    ready();
    if (size_ > 1 && n > 0) LAZYLLM_NCCL_CHECK(ncclAllReduce(data, data, n, t, ncclSum, comm_, stream_));
  }
  [[noreturn]] void give_up(std::string why) {
    state_->abort(why);
    if (comm_) {
      ncclCommAbort(comm_);  // queued collectives stop waiting for the other ranks
      comm_ = nullptr;
    }
    throw CommAborted(why);
  }
  void release() noexcept {
    if (staging_) cudaFree(staging_);
    staging_ = nullptr;
    staging_bytes_ = 0;
    if (comm_ && owned_) {
      // Destroy waits for queued work, which can hang when a peer is gone: abort instead then.
      if (state_ && state_->aborted.load())
        ncclCommAbort(comm_);
      else
        ncclCommDestroy(comm_);
    }
    comm_ = nullptr;
  }

  ncclComm_t comm_ = nullptr;
  int rank_ = 0, size_ = 1, device_ = 0;
  cudaStream_t stream_ = nullptr;
  std::shared_ptr<detail::NcclAbortState> state_;
  bool owned_ = false;
  void* staging_ = nullptr;
  std::size_t staging_bytes_ = 0;
  double timeout_s_ = 0;
};

static_assert(Communicator<NcclComm>);

/// The NCCL communicators of `devices` (one rank each, rank i on devices[i]) in this process,
/// made at once with ncclCommInitAll. Hand rank i's thread `take(i, stream)` after it has called
/// cudaSetDevice(devices[i]). abort() on any rank's NcclComm aborts the whole group.
class NcclGroup {
 public:
  explicit NcclGroup(std::vector<int> devices) : devices_(std::move(devices)) {
    if (devices_.empty()) throw InvalidArgument("NcclGroup: no devices");
    detail::keep_nvls_off();
    int count = 0;
    LAZYLLM_CUDA_RT_CHECK(cudaGetDeviceCount(&count));
    for (int d : devices_)
      if (d < 0 || d >= count)
        throw InvalidArgument("NcclGroup: device " + std::to_string(d) + " is outside 0.." + std::to_string(count - 1));
    comms_.assign(devices_.size(), nullptr);
    LAZYLLM_NCCL_CHECK(ncclCommInitAll(comms_.data(), int(devices_.size()), devices_.data()));
    taken_.assign(devices_.size(), false);
  }
  /// The first `n` visible devices.
  static std::vector<int> first_devices(int n) {
    std::vector<int> d(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) d[std::size_t(i)] = i;
    return d;
  }
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;
  ~NcclGroup() {
    for (std::size_t i = 0; i < comms_.size(); ++i)
      if (!taken_[i] && comms_[i]) ncclCommDestroy(comms_[i]);
  }

  int size() const { return int(devices_.size()); }
  int device(int rank) const { return devices_.at(std::size_t(rank)); }
  /// Rank `rank`'s communicator, queued on `stream` (a stream of that rank's device). Once per rank;
  /// the NcclComm then owns it.
  NcclComm take(int rank, cudaStream_t stream) {
    std::lock_guard lk(m_);
    if (rank < 0 || rank >= size() || taken_[std::size_t(rank)])
      throw InvalidArgument("NcclGroup::take: rank " + std::to_string(rank) + " is outside the group or already taken");
    taken_[std::size_t(rank)] = true;
    return NcclComm(comms_[std::size_t(rank)], rank, size(), devices_[std::size_t(rank)], stream, state_, true);
  }
  bool aborted() const { return state_->aborted.load(); }
  std::string abort_reason() const { return state_->reason(); }

 private:
  std::vector<int> devices_;
  std::vector<ncclComm_t> comms_;
  std::vector<bool> taken_;
  std::mutex m_;
  std::shared_ptr<detail::NcclAbortState> state_ = std::make_shared<detail::NcclAbortState>();
};

/// Runs fn(NcclComm&) on one thread per device of `devices` (rank i on devices[i], its own
/// stream, the current device set), and returns when all have finished. When a rank throws, the
/// group is aborted: the other ranks' next collective or synchronize() throws CommAborted (their
/// queued collectives give up); once every thread has finished, the first error that is not
/// CommAborted is rethrown, else the first CommAborted. `timeout_s` > 0 bounds every
/// synchronize() (a rank that returns early is otherwise waited for without end).
template <class Fn>
void run_nccl_ranks(const std::vector<int>& devices, Fn&& fn, double timeout_s = 0) {
  NcclGroup group(devices);
  const int n = group.size();
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(n));
  std::vector<int> order;
  std::mutex order_m;
  std::vector<NcclComm> comms;
  std::vector<cudaStream_t> streams(static_cast<std::size_t>(n), nullptr);
  for (int r = 0; r < n; ++r) {  // streams and handles first, so a rank's failure can abort all
    LAZYLLM_CUDA_RT_CHECK(cudaSetDevice(group.device(r)));
    LAZYLLM_CUDA_RT_CHECK(cudaStreamCreateWithFlags(&streams[std::size_t(r)], cudaStreamNonBlocking));
    comms.push_back(group.take(r, streams[std::size_t(r)]));
    comms.back().set_timeout(timeout_s);
  }
  auto body = [&](int r) {
    NcclComm& c = comms[std::size_t(r)];
    try {
      LAZYLLM_CUDA_RT_CHECK(cudaSetDevice(group.device(r)));
      fn(c);
      c.synchronize();
    } catch (const std::exception& e) {
      errors[std::size_t(r)] = std::current_exception();
      c.abort("rank " + std::to_string(r) + " failed: " + e.what());
      std::lock_guard lk(order_m);
      order.push_back(r);
    } catch (...) {
      errors[std::size_t(r)] = std::current_exception();
      c.abort("rank " + std::to_string(r) + " failed");
      std::lock_guard lk(order_m);
      order.push_back(r);
    }
  };
  std::vector<std::thread> threads;
  for (int r = 1; r < n; ++r) threads.emplace_back(body, r);
  body(0);
  for (auto& t : threads) t.join();
  // Every rank has finished: destroy the communicators from here (NCCL's destroy may wait for the
  // others), or abort them after a failure.
  comms.clear();
  for (int r = 0; r < n; ++r) {
    cudaSetDevice(group.device(r));
    cudaStreamDestroy(streams[std::size_t(r)]);
  }
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
