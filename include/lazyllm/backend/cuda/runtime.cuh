// SPDX-License-Identifier: MIT
// Host runtime of the CUDA backend: errors (CudaError with file:line, LAZYLLM_CUDA_CHECK,
// LAZYLLM_CUBLAS_CHECK), device queries, RAII device and pinned buffers, events, streams and CUDA
// graphs. Host code only; the kernels' numeric building blocks are in numeric.cuh.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

#include "lazyllm/detail/error.hpp"

namespace lazyllm::gpu {

/// A CUDA runtime or cuBLASLt call failed. what() names the call site, the call and the status.
class CudaError : public Error {
 public:
  CudaError(const char* file, int line, const char* call, const std::string& status)
      : Error(std::string(file) + ":" + std::to_string(line) + ": " + call + " failed: " + status) {}
};

namespace detail {

inline void check_cuda(cudaError_t e, const char* file, int line, const char* call) {
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free error state so the caller can recover
    throw CudaError(file, line, call, std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")");
  }
}

inline const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    default:
      return "cublasStatus_t (unknown)";
  }
}

inline void check_cublas(cublasStatus_t s, const char* file, int line, const char* call) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw CudaError(file, line, call, std::string(cublas_status_name(s)) + " (" + std::to_string(int(s)) + ")");
}

}  // namespace detail

#define LAZYLLM_CUDA_CHECK(call) ::lazyllm::gpu::detail::check_cuda((call), __FILE__, __LINE__, #call)
#define LAZYLLM_CUBLAS_CHECK(call) ::lazyllm::gpu::detail::check_cublas((call), __FILE__, __LINE__, #call)
/// After a kernel launch: reports launch-configuration errors at the launch site.
#define LAZYLLM_CUDA_CHECK_LAUNCH() LAZYLLM_CUDA_CHECK(cudaGetLastError())

namespace detail {

inline std::string format_bytes(std::uint64_t b) {
  char buf[64];
  if (b >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(b) / double(1ull << 30));
  else
    std::snprintf(buf, sizeof buf, "%.2f MiB", double(b) / double(1ull << 20));
  return std::to_string(b) + " bytes (" + buf + ")";
}

/// Throws a clear Error when no CUDA device is usable (checked at backend construction, never at
/// static-initialisation time).
inline int require_device() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    throw Error(std::string("CudaBackend: no CUDA GPU is available (cudaGetDeviceCount: ") +
                (e == cudaSuccess ? "0 devices" : cudaGetErrorString(e)) + ")");
  }
  int dev = 0;
  LAZYLLM_CUDA_CHECK(cudaGetDevice(&dev));
  return dev;
}

/// Free device memory (bytes) as reported by cudaMemGetInfo.
inline std::uint64_t free_device_bytes() {
  std::size_t free_b = 0, total_b = 0;
  LAZYLLM_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return free_b;
}

}  // namespace detail

namespace detail {
/// Move-only owner of `n` elements of T at `p`, released with `Free` (errors ignored:
/// destructors). DeviceBuffer and PinnedBuffer add how they allocate.
template <class T, cudaError_t (*Free)(void*)>
class OwnedArray {
 public:
  OwnedArray() = default;
  OwnedArray(const OwnedArray&) = delete;
  OwnedArray& operator=(const OwnedArray&) = delete;
  OwnedArray(OwnedArray&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  OwnedArray& operator=(OwnedArray&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  ~OwnedArray() { release(); }
  void release() noexcept {
    if (p_) (void)Free(p_);
    p_ = nullptr;
    n_ = 0;
  }
  T* get() const { return p_; }
  std::size_t size() const { return n_; }

 protected:
  T* p_ = nullptr;
  std::size_t n_ = 0;
};
}  // namespace detail

/// Owning, move-only device allocation of `n` elements of T. `what` names the buffer in errors.
template <class T>
class DeviceBuffer : public detail::OwnedArray<T, cudaFree> {
  using Base = detail::OwnedArray<T, cudaFree>;
  using Base::n_;
  using Base::p_;

 public:
  using Base::release;
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n, const char* what = "buffer") { reset(n, what); }

  /// Frees, then allocates `n` elements; a failed cudaMalloc throws an Error naming the bytes.
  void reset(std::size_t n, const char* what = "buffer") {
    release();
    if (n == 0) return;
    void* p = nullptr;
    const std::size_t bytes = n * sizeof(T);
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      std::size_t free_b = 0, total_b = 0;
      (void)cudaMemGetInfo(&free_b, &total_b);
      throw Error(std::string("CudaBackend: cannot allocate ") + what + ": " + detail::format_bytes(bytes) +
                  " requested, " + detail::format_bytes(free_b) + " free on the GPU (" + cudaGetErrorString(e) + ")");
    }
    p_ = static_cast<T*>(p);
    n_ = n;
  }
  /// Grows to at least `n` elements (contents are not kept). Synchronises the device first so
  /// that no queued kernel still uses the old allocation.
  void reserve(std::size_t n, const char* what = "buffer") {
    if (n <= n_) return;
    if (p_) LAZYLLM_CUDA_CHECK(cudaDeviceSynchronize());
    reset(std::max(n, n_ + n_ / 2), what);
  }
  std::size_t bytes() const { return n_ * sizeof(T); }
  explicit operator bool() const { return p_ != nullptr; }
};

/// Owning, move-only page-locked host allocation (staging for async copies).
template <class T>
class PinnedBuffer : public detail::OwnedArray<T, cudaFreeHost> {
  using Base = detail::OwnedArray<T, cudaFreeHost>;
  using Base::n_;
  using Base::p_;

 public:
  using Base::release;
  /// Grows to at least n elements (contents are not kept). The caller makes sure no copy from
  /// the old allocation is still queued.
  void reserve(std::size_t n) {
    if (n <= n_) return;
    release();
    const std::size_t cap = std::max<std::size_t>(n, 4096 / sizeof(T));
    void* p = nullptr;
    LAZYLLM_CUDA_CHECK(cudaMallocHost(&p, cap * sizeof(T)));
    p_ = static_cast<T*>(p);
    n_ = cap;
  }
};

namespace detail {
/// Move-only owner of a CUDA handle `H`, released with `Destroy` (errors ignored: destructors).
template <class H, cudaError_t (*Destroy)(H)>
class UniqueHandle {
 public:
  UniqueHandle() = default;
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;
  UniqueHandle(UniqueHandle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  UniqueHandle& operator=(UniqueHandle&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  ~UniqueHandle() { reset(); }
  void reset() noexcept {
    if (h_) (void)Destroy(h_);
    h_ = nullptr;
  }
  H get() const { return h_; }
  explicit operator bool() const { return h_ != nullptr; }

 protected:
  H h_ = nullptr;
};
}  // namespace detail

/// Move-only owner of a cudaEvent_t (timing disabled: used for host/stream ordering only).
class Event : public detail::UniqueHandle<cudaEvent_t, cudaEventDestroy> {
 public:
  void create() {
    if (!h_) LAZYLLM_CUDA_CHECK(cudaEventCreateWithFlags(&h_, cudaEventDisableTiming));
  }
};

/// Move-only owner of a CUDA stream (created non-blocking by create()).
class Stream : public detail::UniqueHandle<cudaStream_t, cudaStreamDestroy> {
 public:
  void create() {
    if (!h_) LAZYLLM_CUDA_CHECK(cudaStreamCreateWithFlags(&h_, cudaStreamNonBlocking));
  }
};

/// An instantiated CUDA graph (move-only; empty until capture() succeeds).
class GraphExec : public detail::UniqueHandle<cudaGraphExec_t, cudaGraphExecDestroy> {
 public:
  /// Captures what `record()` queues on `stream` (not the legacy default stream, which cannot be
  /// captured; nothing runs while capturing) and instantiates it, replacing the previous graph. If `record` throws, the
  /// capture is ended and discarded and the exception passes on; the stream is usable again.
  template <class F>
  void capture(cudaStream_t stream, F&& record) {
    reset();
    LAZYLLM_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
    cudaGraph_t g = nullptr;
    try {
      record();
    } catch (...) {
      (void)cudaStreamEndCapture(stream, &g);
      if (g) (void)cudaGraphDestroy(g);
      (void)cudaGetLastError();
      throw;
    }
    LAZYLLM_CUDA_CHECK(cudaStreamEndCapture(stream, &g));
    const cudaError_t e = cudaGraphInstantiate(&h_, g, 0);
    (void)cudaGraphDestroy(g);
    if (e != cudaSuccess) {
      h_ = nullptr;
      LAZYLLM_CUDA_CHECK(e);
    }
  }
  void launch(cudaStream_t stream) const { LAZYLLM_CUDA_CHECK(cudaGraphLaunch(h_, stream)); }
};

namespace detail {

/// Blocks of `threads` threads that cover n items.
inline unsigned blocks_for(std::int64_t n, int threads) { return unsigned((n + threads - 1) / threads); }

}  // namespace detail
}  // namespace lazyllm::gpu
