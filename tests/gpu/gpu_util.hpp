// Helpers shared by the GPU tests: device detection (never at static-init time), host<->device
// copies, bf16 rounding of host data, the normalised error, a llama2.c loader for stories260K.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <cuda_fp16.h>
#include "lazyllm/backend/cuda/numeric.cuh"
#include "lazyllm/backend/cuda/runtime.cuh"
#include "lazyllm/io/llama2c.hpp"
#include "lazyllm/model/weights.hpp"
#include "synthetic_inputs.hpp"
#include "test_util.hpp"

namespace lazyllm::test {

/// True when a CUDA device is visible; otherwise prints why the caller skips.
inline bool have_gpu() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    MESSAGE("SKIPPED: no CUDA device");
    return false;
  }
  return true;
}

/// True when LAZYLLM_GPU_TESTS_QUICK is set (not "0"): the cases that take minutes under a
/// sanitizer (racecheck instruments every shared-memory access) run fewer sizes, seeds and draws.
/// The same kernels and code paths run (multi-tile, multi-block, both vocabularies); what shrinks
/// is the repetition, and in the distribution test the statistical checks that need many draws
/// (the support checks stay). ctest's gpu-racecheck sets it; plain `ctest -L gpu` does not.
inline bool quick_mode() {
  const char* v = std::getenv("LAZYLLM_GPU_TESTS_QUICK");
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

inline std::vector<float> randn(std::size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

/// The values as the GPU sees them after a round trip through bf16.
inline std::vector<float> round_bf16(std::vector<float> v) {
  for (auto& x : v) x = gpu::detail::round_bf16(x);
  return v;
}

inline std::vector<std::uint16_t> to_bf16_bits(std::span<const float> v) {
  std::vector<std::uint16_t> b(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) b[i] = gpu::detail::float_to_bf16_bits(v[i]);
  return b;
}

template <class T>
gpu::DeviceBuffer<T> to_device(std::span<const T> h) {
  gpu::DeviceBuffer<T> d(std::max<std::size_t>(h.size(), 1));
  if (!h.empty()) LAZYLLM_CUDA_CHECK(cudaMemcpy(d.get(), h.data(), h.size_bytes(), cudaMemcpyHostToDevice));
  return d;
}
template <class T>
gpu::DeviceBuffer<T> to_device(const std::vector<T>& h) {
  return to_device(std::span<const T>(h));
}

/// fp32 host values uploaded as bf16.
inline gpu::DeviceBuffer<gpu::bf16> to_device_bf16(std::span<const float> h) {
  const auto bits = to_bf16_bits(h);
  gpu::DeviceBuffer<gpu::bf16> d(std::max<std::size_t>(h.size(), 1));
  LAZYLLM_CUDA_CHECK(cudaMemcpy(d.get(), bits.data(), bits.size() * 2, cudaMemcpyHostToDevice));
  return d;
}

/// 0, 1, ..., n-1 in device memory (positions or slots of a dense set).
template <class T>
gpu::DeviceBuffer<T> iota_device(int n) {
  std::vector<T> h(std::size_t(std::max(n, 0)));
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = T(i);
  return to_device(h);
}

/// Milliseconds per call of `fn` over `reps` back-to-back calls on the legacy default stream,
/// measured with CUDA events (no warm-up: the caller makes one first).
template <class F>
float gpu_ms(int reps, F&& fn) {
  cudaEvent_t e0, e1;
  LAZYLLM_CUDA_CHECK(cudaEventCreate(&e0));
  LAZYLLM_CUDA_CHECK(cudaEventCreate(&e1));
  LAZYLLM_CUDA_CHECK(cudaEventRecord(e0));
  for (int i = 0; i < reps; ++i) fn();
  LAZYLLM_CUDA_CHECK(cudaEventRecord(e1));
  LAZYLLM_CUDA_CHECK(cudaEventSynchronize(e1));
  float ms = 0;
  LAZYLLM_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
  LAZYLLM_CUDA_CHECK(cudaEventDestroy(e0));
  LAZYLLM_CUDA_CHECK(cudaEventDestroy(e1));
  return ms / float(reps);
}

template <class T>
std::vector<T> to_host(const T* d, std::size_t n) {
  std::vector<T> h(n);
  if (n) LAZYLLM_CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}
inline std::vector<float> bf16_to_host(const gpu::bf16* d, std::size_t n) {
  const auto bits = to_host(reinterpret_cast<const std::uint16_t*>(d), n);
  std::vector<float> f(n);
  for (std::size_t i = 0; i < n; ++i) f[i] = gpu::detail::bf16_bits_to_float(bits[i]);
  return f;
}

/// Up to `k` row indices of [0, n) spread evenly, always with the first and the last.
inline std::vector<int> sample_rows(int n, int k) {
  std::vector<int> r;
  if (n <= k) {
    for (int i = 0; i < n; ++i) r.push_back(i);
    return r;
  }
  for (int i = 0; i < k; ++i) r.push_back(int(std::int64_t(i) * (n - 1) / (k - 1)));
  r.erase(std::unique(r.begin(), r.end()), r.end());
  return r;
}

/// A Llama-2-7B layer shape (dim 4096, FFN 11008, 32 heads of 128) with few layers and a small vocabulary.
inline RuntimeConfig llama7b_like(int n_layers, int n_kv_heads = 32, int vocab = 1024, int ctx = 4096) {
  RuntimeConfig c;
  c.dim = 4096;
  c.hidden_dim = 11008;
  c.n_layers = n_layers;
  c.n_heads = 32;
  c.n_kv_heads = n_kv_heads;
  c.vocab_size = vocab;
  c.max_seq_len = ctx;
  c.rope_style = RopeStyle::RotateHalf;
  return c;
}

// The weights of `w` (fp32) rounded to `t`, twice: as views of `t` bits (what a checkpoint loaded
// with keep_source_dtype gives) and as the fp32 values of those bits (what the default load gives).
inline std::pair<ModelWeights, ModelWeights> rounded_to(const ModelWeights& w, TensorDType t) {
  ModelWeights bits = w, vals = w;
  auto round = [&](WeightView& b, std::int64_t n) {
    auto raw = std::make_shared<std::vector<std::uint16_t>>(std::size_t(n));
    auto f = std::make_shared<std::vector<float>>(std::size_t(n));
    const float* src = b.f32();
    for (std::int64_t i = 0; i < n; ++i) {
      if (t == TensorDType::BF16) {
        const __nv_bfloat16 h = __float2bfloat16_rn(src[i]);
        std::memcpy(&(*raw)[std::size_t(i)], &h, 2);
        (*f)[std::size_t(i)] = __bfloat162float(h);
      } else {
        const __half h = __float2half_rn(src[i]);
        std::memcpy(&(*raw)[std::size_t(i)], &h, 2);
        (*f)[std::size_t(i)] = __half2float(h);
      }
    }
    b = WeightView(raw->data(), t);
    bits.storage.push_back(raw);
    vals.storage.push_back(f);
    return f->data();
  };
  std::vector<const float*> rounded;
  for_each_weight(bits, [&](WeightView& v, std::int64_t n) { rounded.push_back(round(v, n)); });
  std::size_t i = 0;
  for_each_weight(vals, [&](WeightView& v, std::int64_t) { v = WeightView(rounded[i++]); });
  if (w.config.tied_embeddings) {
    bits.classifier = bits.token_embedding;
    vals.classifier = vals.token_embedding;
  }
  return {bits, vals};
}

}  // namespace lazyllm::test
