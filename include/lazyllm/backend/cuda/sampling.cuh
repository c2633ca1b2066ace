// SPDX-License-Identifier: MIT
// Next-token sampling on the device: the host Sampler's semantics (model/sampler.hpp: repetition
// penalty, greedy, temperature, top-k, min-p, top-p, seeded) on fp32 logits that are already in device
// memory. Only the chosen id (4 bytes) comes back to the host instead of vocab_size floats.
//
// Same ids as the host. The random draw is made on the host by the same splitmix64 generator
// as Sampler (one double in [0, 1) per non-greedy call, none for greedy), seeded from the same
// SamplerParams::seed, and passed to the kernel as an argument: the draw sequence is the host's
// by construction and no generator state lives on the device. The device then repeats the host's
// arithmetic in the host's precision:
//   penalty   l / p or l * p per occurrence of an id in `recent` (fp32, as the host)
//   greedy    argmax, lowest index on ties (block reduction)
//   order     stable radix sort of (logit, id) descending (CUB): value desc, id asc on ties,
//             the host partial_sort's comparator; -0 and +0 are equal for both
//   top-k     the first k of that order
//   softmax   e_i = exp((l_i - l_max) / T) rounded to fp32
//   min-p     the candidates with e_i >= min_p (a prefix of the order); sum in fp64 over them,
//             p_i = fp32(e_i / sum)
//   top-p     n = 1 + first i whose fp64 prefix sum of p reaches top_p (else k)
//   draw      r = u * prefix(n - 1); the first i < n with r < prefix(i) (else n - 1)
// The remaining differences are rounding-level: the device sums in a tree order (fp64, about
// 1e-16 relative) and its fp32 exp is fp64 exp rounded to fp32 where glibc's expf is within
// 0.502 ulp; a different id needs the draw to fall within ~1e-7 of a cumulative boundary.
// NaN logits are unspecified (as on the host).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <span>
#include <string>
#include <vector>

#include "lazyllm/backend/cuda/runtime.cuh"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/model/sampler.hpp"

namespace lazyllm::gpu {

namespace detail {

/// splitmix64 -> [0, 1): the generator and the draw of Sampler::uniform (model/sampler.hpp).
/// tests/gpu/test_sampling.cu checks the two stay identical.
struct SplitMix64 {
  std::uint64_t state = 0;
  double uniform() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return double(z >> 11) * 0x1.0p-53;
  }
};

constexpr int kSampleThreads = 1024;  // one block does the argmax and the softmax/top-p/draw
constexpr int kSampleItems = 8;       // prefix-sum items per thread per tile

struct ArgMaxPair {
  float v;
  int i;
};
struct ArgMaxOp {
  __device__ ArgMaxPair operator()(const ArgMaxPair& a, const ArgMaxPair& b) const {
    return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
  }
};
struct MinIntOp {
  __device__ int operator()(int a, int b) const { return b < a ? b : a; }
};

/// out = the index of the largest x[0, n), the lowest one on ties (std::max_element's choice).
template <int Threads>
__global__ void __launch_bounds__(Threads) argmax_kernel(const float* __restrict__ x, int n, std::int32_t* out) {
  using Reduce = cub::BlockReduce<ArgMaxPair, Threads>;
  __shared__ typename Reduce::TempStorage tmp;
  ArgMaxPair best{-INFINITY, INT_MAX};
  for (int i = int(threadIdx.x); i < n; i += Threads) {  // ascending: a thread keeps its first maximum
    const float v = x[i];
    if (best.i == INT_MAX || v > best.v) best = {v, i};
  }
  const ArgMaxPair r = Reduce(tmp).Reduce(best, ArgMaxOp{});
  if (threadIdx.x == 0) *out = r.i;
}

template <class T>  // a template, as every kernel of the header-only backend (one definition per program)
__global__ void copy_kernel(const T* __restrict__ in, int n, T* __restrict__ out) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = in[i];
}

/// pen[j] = (id, occurrences): the host applies the penalty once per occurrence, in fp32.
template <class T>
__global__ void penalty_kernel(T* x, const int2* __restrict__ pen, int n_pen, float penalty) {
  const int j = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (j >= n_pen) return;
  const int2 p = pen[j];
  T l = x[p.x];
  for (int c = 0; c < p.y; ++c) l = l > 0.0f ? __fdiv_rn(l, penalty) : __fmul_rn(l, penalty);
  x[p.x] = l;
}

template <class T>
__global__ void iota_kernel(T* v, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) v[i] = T(i);
}

/// Softmax of the first k sorted logits at temperature T, min-p cut, top-p cut, draw with u in
/// [0, 1). keys/ids: sorted descending (value, then id). e: k floats, cum: k doubles of scratch.
template <int Threads, int Items>
__global__ void __launch_bounds__(Threads)
    nucleus_kernel(const float* __restrict__ keys, const std::int32_t* __restrict__ ids, int k, float temperature,
                   float min_p, float top_p, double u, float* e, double* cum, std::int32_t* out) {
  using ReduceD = cub::BlockReduce<double, Threads>;
  using ReduceI = cub::BlockReduce<int, Threads>;
  using Scan = cub::BlockScan<double, Threads>;
  __shared__ union {
    typename ReduceD::TempStorage rd;
    typename ReduceI::TempStorage ri;
    typename Scan::TempStorage scan;
  } tmp;
  __shared__ double s_sum;
  __shared__ int s_n;
  const int t = int(threadIdx.x);

  // e_i = fp32(exp((l_i - m) / T)): the host's std::exp(float) on the same fp32 argument.
  const float m = keys[0];
  for (int i = t; i < k; i += Threads) {
    const float z = __fdiv_rn(__fsub_rn(keys[i], m), temperature);
    e[i] = __double2float_rn(exp(double(z)));
  }
  // min-p: e_i is p_i / p_max and falls along the order, so the kept candidates (e_i >= min_p)
  // are a prefix: k becomes the first position below min_p (each thread reads its own e_i).
  if (min_p > 0.0f) {
    int below = INT_MAX;
    for (int i = t; i < k; i += Threads)
      if (e[i] < min_p) {
        below = i;
        break;
      }
    const int b = ReduceI(tmp.ri).Reduce(below, MinIntOp{});
    if (t == 0) s_n = b == INT_MAX ? k : b;
    __syncthreads();
    k = s_n;
    __syncthreads();  // s_n is written again below
  }
  double part = 0.0;
  for (int i = t; i < k; i += Threads) part += double(e[i]);
  const double s = ReduceD(tmp.rd).Sum(part);
  if (t == 0) s_sum = s;
  __syncthreads();
  const double sum = s_sum;

  // p_i = fp32(e_i / sum); cum = inclusive prefix sums of p in fp64, tile by tile.
  double running = 0.0;
  for (int base = 0; base < k; base += Threads * Items) {
    double v[Items];
#pragma unroll
    for (int j = 0; j < Items; ++j) {
      const int i = base + t * Items + j;
      v[j] = i < k ? double(__double2float_rn(__ddiv_rn(double(e[i]), sum))) : 0.0;
    }
    double agg = 0.0;
    Scan(tmp.scan).InclusiveSum(v, v, agg);
#pragma unroll
    for (int j = 0; j < Items; ++j) {
      const int i = base + t * Items + j;
      if (i < k) cum[i] = __dadd_rn(running, v[j]);
    }
    running = __dadd_rn(running, agg);
    __syncthreads();  // tmp is reused; cum is read by other threads below
  }

  // n = 1 + the first i with cum[i] >= top_p, else k.
  int first = INT_MAX;
  for (int i = t; i < k; i += Threads)
    if (cum[i] >= double(top_p)) {
      first = i;
      break;
    }
  int f = ReduceI(tmp.ri).Reduce(first, MinIntOp{});
  if (t == 0) s_n = f == INT_MAX ? k : f + 1;
  __syncthreads();
  const int n = s_n;

  // r = u * total; the first i < n with r < cum[i], else n - 1.
  const double r = __dmul_rn(u, cum[n - 1]);
  first = INT_MAX;
  for (int i = t; i < n; i += Threads)
    if (r < cum[i]) {
      first = i;
      break;
    }
  f = ReduceI(tmp.ri).Reduce(first, MinIntOp{});
  if (t == 0) *out = ids[f == INT_MAX ? n - 1 : f];
}

}  // namespace detail

/// Samples token ids from fp32 logits in device memory with the semantics, parameters and draw
/// sequence of the host Sampler: on the same logits and `recent` ids, a DeviceSampler and a
/// Sampler built from the same SamplerParams pick the same ids, call after call (see the top of
/// this file for the precision argument). Buffers grow to the largest vocabulary seen and are
/// reused; nothing is allocated per call once warm. Not thread-safe (it owns its scratch).
class DeviceSampler {
 public:
  explicit DeviceSampler(SamplerParams p = {}) : p_(p), rng_{p.seed} { p_.validate(); }

  const SamplerParams& params() const { return p_; }

  /// The id drawn from logits[0, vocab) (device memory, fp32), with the repetition penalty
  /// applied to `recent` (host ids; ids outside the vocabulary are ignored, as on the host). The
  /// work runs on `stream`, after whatever is queued there; the call returns once the id is on
  /// the host. The logits are not modified.
  std::int32_t sample(const float* logits, int vocab, cudaStream_t stream, std::span<const std::int32_t> recent = {}) {
    if (logits == nullptr || vocab <= 0)
      throw InvalidArgument("DeviceSampler::sample: need device logits and vocab > 0 (vocab " + std::to_string(vocab) +
                            ")");
    out_dev_.reserve(1, "sampler result");
    out_host_.reserve(1);
    const float* x = logits;
    if (p_.repeat_penalty != 1.0f && !recent.empty()) {
      const int n_pen = collect_penalties(recent, vocab);
      if (n_pen > 0) {
        work_.reserve(std::size_t(vocab), "sampler logits");
        pen_dev_.reserve(std::size_t(n_pen), "sampler penalties");
        LAZYLLM_CUDA_CHECK(cudaMemcpyAsync(pen_dev_.get(), pen_host_.get(), std::size_t(n_pen) * sizeof(int2),
                                           cudaMemcpyHostToDevice, stream));
        detail::copy_kernel<float><<<detail::blocks_for(vocab, 256), 256, 0, stream>>>(logits, vocab, work_.get());
        LAZYLLM_CUDA_CHECK_LAUNCH();
        detail::penalty_kernel<float>
            <<<detail::blocks_for(n_pen, 128), 128, 0, stream>>>(work_.get(), pen_dev_.get(), n_pen, p_.repeat_penalty);
        LAZYLLM_CUDA_CHECK_LAUNCH();
        x = work_.get();
      }
    }
    if (p_.temperature == 0.0f) {
      detail::argmax_kernel<detail::kSampleThreads><<<1, detail::kSampleThreads, 0, stream>>>(x, vocab, out_dev_.get());
      LAZYLLM_CUDA_CHECK_LAUNCH();
    } else {
      const double u = rng_.uniform();  // the host Sampler's one draw per non-greedy call
      const int k = p_.top_k > 0 ? std::min(p_.top_k, vocab) : vocab;
      reserve_sort(vocab, stream);
      std::size_t bytes = sort_tmp_.bytes();
      LAZYLLM_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(sort_tmp_.get(), bytes, x, keys_.get(), iota_.get(),
                                                                   ids_.get(), vocab, 0, 32, stream));
      detail::nucleus_kernel<detail::kSampleThreads, detail::kSampleItems><<<1, detail::kSampleThreads, 0, stream>>>(
          keys_.get(), ids_.get(), k, p_.temperature, p_.min_p, p_.top_p, u, e_.get(), cum_.get(), out_dev_.get());
      LAZYLLM_CUDA_CHECK_LAUNCH();
    }
    LAZYLLM_CUDA_CHECK(
        cudaMemcpyAsync(out_host_.get(), out_dev_.get(), sizeof(std::int32_t), cudaMemcpyDeviceToHost, stream));
    LAZYLLM_CUDA_CHECK(cudaStreamSynchronize(stream));
    return out_host_.get()[0];
  }

 private:
  /// (id, occurrences) of the in-vocabulary ids of `recent` into pen_host_; returns the count.
  int collect_penalties(std::span<const std::int32_t> recent, int vocab) {
    ids_tmp_.clear();
    for (auto id : recent)
      if (id >= 0 && id < vocab) ids_tmp_.push_back(id);
    std::sort(ids_tmp_.begin(), ids_tmp_.end());
    pen_host_.reserve(std::max<std::size_t>(ids_tmp_.size(), 1));  // the previous call's copy has completed
    int n = 0;
    for (std::size_t i = 0; i < ids_tmp_.size();) {
      std::size_t j = i;
      while (j < ids_tmp_.size() && ids_tmp_[j] == ids_tmp_[i]) ++j;
      pen_host_.get()[n++] = int2{ids_tmp_[i], int(j - i)};
      i = j;
    }
    return n;
  }

  void reserve_sort(int vocab, cudaStream_t stream) {
    const std::size_t n = std::size_t(vocab);
    keys_.reserve(n, "sampler sort keys");
    ids_.reserve(n, "sampler sort ids");
    e_.reserve(n, "sampler probabilities");
    cum_.reserve(n, "sampler prefix sums");
    if (iota_.size() < n) {
      iota_.reserve(n, "sampler ids");
      detail::iota_kernel<std::int32_t>
          <<<detail::blocks_for(std::int64_t(iota_.size()), 256), 256, 0, stream>>>(iota_.get(), int(iota_.size()));
      LAZYLLM_CUDA_CHECK_LAUNCH();
    }
    std::size_t bytes = 0;
    LAZYLLM_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(nullptr, bytes, static_cast<const float*>(nullptr),
                                                                 keys_.get(), static_cast<const std::int32_t*>(nullptr),
                                                                 ids_.get(), vocab, 0, 32, stream));
    sort_tmp_.reserve(std::max<std::size_t>(bytes, 1), "sampler sort scratch");
  }

  SamplerParams p_;
  detail::SplitMix64 rng_;
  DeviceBuffer<float> work_, keys_, e_;
  DeviceBuffer<double> cum_;
  DeviceBuffer<std::int32_t> iota_, ids_, out_dev_;
  DeviceBuffer<int2> pen_dev_;
  DeviceBuffer<unsigned char> sort_tmp_;
  PinnedBuffer<std::int32_t> out_host_;
  PinnedBuffer<int2> pen_host_;
  std::vector<std::int32_t> ids_tmp_;
};

}  // namespace lazyllm::gpu
