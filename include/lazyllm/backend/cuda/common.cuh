// SPDX-License-Identifier: MIT
// Shared pieces of the CUDA backend: errors (CudaError with file:line), RAII device and pinned
// buffers, the 2-byte storage types (bf16, fp16) and their conversions, and the warp/block
// reductions the kernels use.
#pragma once
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "lazyllm/detail/error.hpp"

namespace lazyllm::gpu {

using bf16 = __nv_bfloat16;
using fp16 = __half;

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

/// Owning, move-only device allocation of `n` elements of T. `what` names the buffer in errors.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n, const char* what = "buffer") { reset(n, what); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  ~DeviceBuffer() { release(); }

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
  void release() noexcept {
    if (p_) (void)cudaFree(p_);
    p_ = nullptr;
    n_ = 0;
  }
  T* get() const { return p_; }
  std::size_t size() const { return n_; }
  std::size_t bytes() const { return n_ * sizeof(T); }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

/// Owning, move-only page-locked host allocation (staging for async copies).
template <class T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  PinnedBuffer(PinnedBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  ~PinnedBuffer() { release(); }
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
  void release() noexcept {
    if (p_) (void)cudaFreeHost(p_);
    p_ = nullptr;
    n_ = 0;
  }
  T* get() const { return p_; }
  std::size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
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

/// fp32 -> bf16 on the host, round to nearest even (NaN stays NaN).
inline std::uint16_t float_to_bf16_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return std::uint16_t((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return std::uint16_t(u >> 16);
}
inline float bf16_bits_to_float(std::uint16_t b) {
  const std::uint32_t u = std::uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
/// The value fp32 `f` has after a round trip through bf16 (what the GPU sees of a weight).
inline float round_bf16(float f) { return bf16_bits_to_float(float_to_bf16_bits(f)); }

/// fp32 -> fp16 on the host, round to nearest even (the CUDA header's conversion).
inline std::uint16_t float_to_fp16_bits(float f) {
  const __half h = __float2half_rn(f);
  std::uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}

// ------------------------------------------------------------------ device helpers

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // `part` may still be read by a previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  float t = lane < nw ? part[lane] : 0.0f;
  return warp_sum(t);
}

/// 8 bf16 values as one 16-byte word.
/// Number of entries of the ascending array kv_pos[0..n) that are <= p: the visible-key count of
/// a query at position p over a position-ordered token set (binary search).
__device__ __forceinline__ int count_le(const std::int32_t* kv_pos, int n, std::int32_t p) {
  int lo = 0, hi = n;
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (kv_pos[mid] <= p)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

}  // namespace detail

/// What the kernels need of a 2-byte storage type S (weights, GEMM inputs and outputs, K/V):
/// conversions (round to nearest even), its pair type, and the host rounding. bf16 is the
/// default; fp16 keeps 3 more mantissa bits at a smaller range. The primary template refuses
/// anything else in plain words.
template <class S>
struct Storage {
  static_assert(sizeof(S) == 0, "lazyllm::gpu: the storage type must be gpu::bf16, gpu::fp16 or float");
};
template <>
struct Storage<bf16> {
  using pair = __nv_bfloat162;
  static constexpr const char* kName = "bf16";
  __device__ static float to_float(bf16 v) { return __bfloat162float(v); }
  __device__ static bf16 from_float(float f) { return __float2bfloat16_rn(f); }
  __device__ static float2 to_float2(pair v) { return __bfloat1622float2(v); }
  __device__ static pair from_float2(float lo, float hi) { return __floats2bfloat162_rn(lo, hi); }
  static std::uint16_t host_bits(float f) { return detail::float_to_bf16_bits(f); }
};
template <>
struct Storage<fp16> {
  using pair = __half2;
  static constexpr const char* kName = "fp16";
  __device__ static float to_float(fp16 v) { return __half2float(v); }
  __device__ static fp16 from_float(float f) { return __float2half_rn(f); }
  __device__ static float2 to_float2(pair v) { return __half22float2(v); }
  __device__ static pair from_float2(float lo, float hi) { return __floats2half2_rn(lo, hi); }
  static std::uint16_t host_bits(float f) { return detail::float_to_fp16_bits(f); }
};

/// fp32 storage: the verification mode (weights and K/V in fp32, fp32 GEMMs without TF32, a
/// simple fp32 attention kernel): slow, but it computes what the CPU reference computes.
template <>
struct Storage<float> {
  using pair = float2;
  static constexpr const char* kName = "fp32";
  __device__ static float to_float(float v) { return v; }
  __device__ static float from_float(float f) { return f; }
  __device__ static float2 to_float2(float2 v) { return v; }
  __device__ static float2 from_float2(float lo, float hi) { return make_float2(lo, hi); }
  static std::uint32_t host_bits(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
  }
};

namespace detail {

/// 8 values of storage type S (16 bytes for the 2-byte types, 32 for fp32).
template <class S>
struct alignas(16) Vec8 {
  typename Storage<S>::pair h[4];
};
using Bf16x8 = Vec8<bf16>;

template <class S>
__device__ __forceinline__ void unpack8(const Vec8<S>& v, float (&f)[8]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 t = Storage<S>::to_float2(v.h[i]);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}
template <class S = bf16>
__device__ __forceinline__ Vec8<S> pack8(const float (&f)[8]) {
  Vec8<S> v;
#pragma unroll
  for (int i = 0; i < 4; ++i) v.h[i] = Storage<S>::from_float2(f[2 * i], f[2 * i + 1]);
  return v;
}

inline unsigned blocks_for(std::int64_t n, int threads) { return unsigned((n + threads - 1) / threads); }

}  // namespace detail
}  // namespace lazyllm::gpu
