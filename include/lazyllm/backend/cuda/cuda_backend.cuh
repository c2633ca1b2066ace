// SPDX-License-Identifier: MIT
// The CUDA backend: 2-byte weights and GEMM activations (bf16 by default, fp16 on request), fp32
// accumulation and fp32 residual stream, everything on one user-given stream. Satisfies
// AttentionBackend, so Pipeline<Config, Policy, Layout, CudaBackend> works unchanged.
// BasicCudaBackend<ST> is the template (ST = gpu::bf16 or gpu::fp16); CudaBackend is the bf16
// instantiation and CudaBackendFp16 the fp16 one.
//
// Layering: CudaBackend (this file: weights, storage, index uploads, the order of a layer)
//   -> Gemm (gemm.cuh, cuBLASLt) / Attention (attention.cuh) / detail::launch_* (kernels.cuh)
//   -> kernels templated on traits structs -> storage types and warp/block helpers (numeric.cuh);
//   host runtime (errors, buffers, events, graphs) in runtime.cuh, tuning numbers in tuning.cuh.
#pragma once
#include <algorithm>
#include <array>
#include <bit>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "lazyllm/backend/attention_backend.hpp"
#include "lazyllm/backend/cuda/attention.cuh"
#include "lazyllm/backend/cuda/gemm.cuh"
#include "lazyllm/backend/cuda/gemv.cuh"
#include "lazyllm/backend/cuda/kernels.cuh"
#include "lazyllm/backend/cuda/numeric.cuh"
#include "lazyllm/backend/cuda/profiler.cuh"
#include "lazyllm/backend/cuda/runtime.cuh"
#include "lazyllm/backend/cuda/tuning.cuh"
#include "lazyllm/backend/memory_need.hpp"
#include "lazyllm/cache/kv_store.hpp"
#include "lazyllm/config/rope.hpp"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/detail/parallel.hpp"
#include "lazyllm/engine/pool.hpp"
#include "lazyllm/model/weights.hpp"

namespace lazyllm {

/// The model on the GPU: the weights as ST (fused QKV [(qd + 2 kvd), d] and gate/up [2 hid, d]),
/// the norms (and the q/k/v biases and q/k norms of the models that have them) in fp32 and the
/// RoPE table (cos, sin per position, from config/rope.hpp: every RoPE type), uploaded once and immutable afterwards.
/// Shared (through std::shared_ptr<const CudaModel<ST>>) by every backend, engine and thread that runs it: one copy in
/// GPU memory however many requests run.
template <class ST>
class CudaModel {
  static constexpr bool kFp32 = std::is_same_v<ST, float>;
  using Bits = std::conditional_t<kFp32, std::uint32_t, std::uint16_t>;  // host image of one ST

 public:
  struct Layer {
    const ST *qkv = nullptr, *wo = nullptr, *gate_up = nullptr, *w2 = nullptr;
    const float *attn_norm = nullptr, *ffn_norm = nullptr;
    const float* qkv_bias = nullptr;                   // [qd + 2 kvd] when attention_bias
    const float *q_norm = nullptr, *k_norm = nullptr;  // [head_dim] each when qk_norm
  };

  /// Uploads `w` to the current device (synchronously). Throws ConfigError for a shape the
  /// backend does not support, and Error when no GPU is present or the weights do not fit in
  /// free device memory.
  explicit CudaModel(const ModelWeights& w) : config_(w.config) {
    check_weights(w);  // sizes against the shape: the upload copies 2-byte tensors with memcpy
    config_.validate();
    const auto& c = config_;
    if (int(w.layers.size()) != c.n_layers)
      throw ConfigError("CudaBackend: weights have " + std::to_string(w.layers.size()) + " layers, config says " +
                        std::to_string(c.n_layers));
    if (c.dim % 8 != 0 || c.kv_dim() % 8 != 0 || c.q_dim() % 8 != 0)
      throw ConfigError("CudaBackend: dim (" + std::to_string(c.dim) + "), n_heads * head_dim (" +
                        std::to_string(c.q_dim()) + ") and kv_dim (" + std::to_string(c.kv_dim()) +
                        ") must be multiples of 8");
    if (c.head_dim() > 128)
      throw ConfigError("CudaBackend: head_dim " + std::to_string(c.head_dim()) + " is not supported (at most 128)");
    const int dev = gpu::detail::require_device();
    cudaDeviceProp prop{};
    LAZYLLM_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));

    hid_ = (c.hidden_dim + 7) / 8 * 8;  // padded with zero weights: 16-byte aligned rows everywhere
    const std::int64_t d = c.dim, kvd = c.kv_dim(), qd = c.q_dim(), v = c.vocab_size, hid = hid_;
    const std::int64_t n_store = std::int64_t(gpu_stored_weight_values(c));  // backend/memory_need.hpp
    const std::uint64_t need = gpu_weight_bytes(c, int(sizeof(ST)));
    const std::uint64_t free_b = gpu::detail::free_device_bytes();
    if (need > free_b)
      throw Error("CudaModel: the model needs " + gpu::detail::format_bytes(need) + " of GPU memory for its " +
                  gpu::Storage<ST>::kName + " weights, " + gpu::detail::format_bytes(free_b) + " are free on device " +
                  std::to_string(dev) + " (" + prop.name + ")");

    weights_.reset(std::size_t(n_store), "weights");
    norms_.reset(std::size_t(c.n_layers * 2 + 1) * std::size_t(d), "norm weights");

    // Upload: each tensor is converted to ST on the host (one tensor at a time, so the host never
    // holds a second copy of the model) and copied to its place; padding stays zero. Tensors
    // already in ST (a checkpoint loaded with keep_source_dtype) are copied as they are; others
    // are rounded to nearest even (an ST -> fp32 -> ST round trip is the identity).
    LAZYLLM_CUDA_CHECK(cudaMemset(weights_.get(), 0, weights_.bytes()));
    std::vector<Bits> host;
    std::int64_t at = 0;
    auto put = [&](const WeightView& src, std::int64_t out_rows, std::int64_t in, std::int64_t dst_ld) {
      // `out_rows` rows of `in` values into a region with row stride dst_ld, at offset `at`
      host.assign(std::size_t(out_rows * dst_ld), 0);
      detail::parallel_for(out_rows, in, [&](std::int64_t b, std::int64_t e) {
        std::vector<float> row(static_cast<std::size_t>(in));
        for (std::int64_t r = b; r < e; ++r) {
          Bits* dst = host.data() + std::size_t(r * dst_ld);
          if (src.dtype() == kSourceType) {
            std::memcpy(dst, static_cast<const unsigned char*>(src.data()) + r * in * std::int64_t(sizeof(ST)),
                        std::size_t(in) * sizeof(ST));
            continue;
          }
          src.to_f32(r * in, in, row.data());
          for (std::int64_t i = 0; i < in; ++i) dst[i] = gpu::Storage<ST>::host_bits(row[std::size_t(i)]);
        }
      });
      LAZYLLM_CUDA_CHECK(
          cudaMemcpy(weights_.get() + at, host.data(), host.size() * sizeof(ST), cudaMemcpyHostToDevice));
    };
    const std::int64_t emb_at = at;
    put(w.token_embedding, v, d, d);
    at += v * d;
    std::int64_t cls_at = emb_at;
    if (!c.tied_embeddings) {
      cls_at = at;
      put(w.classifier, v, d, d);
      at += v * d;
    }
    std::vector<LayerOffsets> offs;
    for (const auto& lw : w.layers) {
      LayerOffsets o;
      o.qkv = at;
      put(lw.wq, qd, d, d);
      at += qd * d;
      put(lw.wk, kvd, d, d);
      at += kvd * d;
      put(lw.wv, kvd, d, d);
      at += kvd * d;
      o.wo = at;
      put(lw.wo, d, qd, qd);
      at += d * qd;
      o.gate_up = at;
      put(lw.w1, c.hidden_dim, d, d);  // gate rows [0, hidden); rows up to hid_ stay zero
      at += hid * d;
      put(lw.w3, c.hidden_dim, d, d);  // up rows [hid_, hid_ + hidden)
      at += hid * d;
      o.w2 = at;
      put(lw.w2, d, c.hidden_dim, hid);  // [d, hid_], zero columns past hidden
      at += d * hid;
      offs.push_back(o);
    }
    host = {};
    const ST* base = weights_.get();
    embedding_ = base + emb_at;
    classifier_ = base + cls_at;
    for (int l = 0; l < c.n_layers; ++l) {
      Layer L;
      L.qkv = base + offs[l].qkv;
      L.wo = base + offs[l].wo;
      L.gate_up = base + offs[l].gate_up;
      L.w2 = base + offs[l].w2;
      L.attn_norm = norms_.get() + std::size_t(2 * l) * d;
      L.ffn_norm = norms_.get() + std::size_t(2 * l + 1) * d;
      layers_.push_back(L);
    }
    final_norm_ = norms_.get() + std::size_t(2 * c.n_layers) * d;
    std::vector<float> nh(std::size_t(c.n_layers * 2 + 1) * std::size_t(d));
    for (int l = 0; l < c.n_layers; ++l) {
      w.layers[l].attn_norm.to_f32(0, d, nh.data() + std::size_t(2 * l) * d);
      w.layers[l].ffn_norm.to_f32(0, d, nh.data() + std::size_t(2 * l + 1) * d);
    }
    w.final_norm.to_f32(0, d, nh.data() + std::size_t(2 * c.n_layers) * d);
    LAZYLLM_CUDA_CHECK(cudaMemcpy(norms_.get(), nh.data(), nh.size() * 4, cudaMemcpyHostToDevice));

    // Per layer, fp32: the q|k|v biases (laid out as the fused QKV rows), then q_norm and k_norm.
    const std::int64_t per_extra = gpu_attention_extra_values(c) / std::max(1, c.n_layers);
    if (per_extra > 0) {
      std::vector<float> eh(std::size_t(per_extra * c.n_layers));
      extras_.reset(eh.size(), "attention biases and q/k norms");
      for (int l = 0; l < c.n_layers; ++l) {
        float* e = eh.data() + std::size_t(l) * std::size_t(per_extra);
        const LayerWeights& lw = w.layers[std::size_t(l)];
        const float* dev = extras_.get() + std::size_t(l) * std::size_t(per_extra);
        if (c.attention_bias) {
          lw.bq.to_f32(0, qd, e);
          lw.bk.to_f32(0, kvd, e + qd);
          lw.bv.to_f32(0, kvd, e + qd + kvd);
          layers_[std::size_t(l)].qkv_bias = dev;
          e += qd + 2 * kvd;
          dev += qd + 2 * kvd;
        }
        if (c.qk_norm) {
          lw.q_norm.to_f32(0, c.head_dim(), e);
          lw.k_norm.to_f32(0, c.head_dim(), e + c.head_dim());
          layers_[std::size_t(l)].q_norm = dev;
          layers_[std::size_t(l)].k_norm = dev + c.head_dim();
        }
      }
      LAZYLLM_CUDA_CHECK(cudaMemcpy(extras_.get(), eh.data(), eh.size() * 4, cudaMemcpyHostToDevice));
    }

    const auto table = gpu::detail::rope_table(c.max_seq_len, rope_frequencies(c));
    rope_.reset(table.size(), "RoPE table");
    LAZYLLM_CUDA_CHECK(cudaMemcpy(rope_.get(), table.data(), table.size() * sizeof(float2), cudaMemcpyHostToDevice));
  }
  CudaModel(const CudaModel&) = delete;
  CudaModel& operator=(const CudaModel&) = delete;

  const RuntimeConfig& config() const { return config_; }
  /// hidden_dim rounded up to a multiple of 8 (zero weights pad it).
  int padded_hidden() const { return hid_; }
  const ST* embedding() const { return embedding_; }
  const ST* classifier() const { return classifier_; }
  const float* final_norm() const { return final_norm_; }
  const std::vector<Layer>& layers() const { return layers_; }
  const float2* rope_table() const { return rope_.get(); }
  /// Device memory the model holds.
  std::uint64_t bytes() const { return weights_.bytes() + norms_.bytes() + extras_.bytes() + rope_.bytes(); }

 private:
  struct LayerOffsets {
    std::int64_t qkv = 0, wo = 0, gate_up = 0, w2 = 0;
  };
  static constexpr TensorDType kSourceType = std::is_same_v<ST, gpu::fp16> ? TensorDType::F16
                                             : kFp32                       ? TensorDType::F32
                                                                           : TensorDType::BF16;
  RuntimeConfig config_;
  int hid_ = 0;
  gpu::DeviceBuffer<ST> weights_;
  gpu::DeviceBuffer<float> norms_;
  gpu::DeviceBuffer<float> extras_;  // biases and q/k norms (models that have them)
  gpu::DeviceBuffer<float2> rope_;
  const ST* embedding_ = nullptr;
  const ST* classifier_ = nullptr;
  const float* final_norm_ = nullptr;
  std::vector<Layer> layers_;
};

template <class ST>
class BasicCudaBackend {
  static_assert(std::is_same_v<ST, gpu::bf16> || std::is_same_v<ST, gpu::fp16> || std::is_same_v<ST, float>,
                "lazyllm: BasicCudaBackend's storage type must be gpu::bf16, gpu::fp16 or float");
  static constexpr bool kFp32 = std::is_same_v<ST, float>;
  using Bits = std::conditional_t<kFp32, std::uint32_t, std::uint16_t>;  // host image of one ST

 public:
  using store_t = ST;
  using Model = CudaModel<ST>;
  /// rows x dim fp32 activations (the residual stream) in device memory. Default-constructible
  /// and movable so the pipeline can keep and swap them; capacity only grows.
  struct Activations {
    int rows = 0;
    int dim = 0;
    gpu::DeviceBuffer<float> buf;
    void resize(int r, int d) {
      rows = r;
      dim = d;
      buf.reserve(std::size_t(std::max(r, 1)) * std::size_t(d), "activations");
    }
    float* data() { return buf.get(); }
    const float* data() const { return buf.get(); }
    float* row(int r) { return buf.get() + std::size_t(r) * std::size_t(dim); }
    const float* row(int r) const { return buf.get() + std::size_t(r) * std::size_t(dim); }
    /// Copies to the host (synchronous; for tests and debugging).
    std::vector<float> to_host() const {
      std::vector<float> h(std::size_t(rows) * std::size_t(dim));
      if (!h.empty())
        LAZYLLM_CUDA_CHECK(cudaMemcpy(h.data(), buf.get(), h.size() * sizeof(float), cudaMemcpyDeviceToHost));
      return h;
    }
    /// Copies host rows in (synchronous; for tests).
    void from_host(std::span<const float> h, int r, int d) {
      resize(r, d);
      if (!h.empty())
        LAZYLLM_CUDA_CHECK(cudaMemcpy(buf.get(), h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice));
    }
  };

  /// A backend with a model of its own: uploads the weights as ST (CudaModel).
  explicit BasicCudaBackend(const ModelWeights& w, cudaStream_t stream = nullptr)
      : BasicCudaBackend(std::make_shared<const Model>(w), stream) {}

  /// A backend over a shared model (no copy of the weights): its own stream, cuBLASLt handle,
  /// activations, scratch and K/V storage. Any number of backends (engines, threads) may share
  /// one model.
  explicit BasicCudaBackend(std::shared_ptr<const Model> m, cudaStream_t stream = nullptr)
      : m_(std::move(m)), stream_(stream) {
    if (!m_) throw InvalidArgument("CudaBackend: no model");
    config_ = m_->config();
    const auto& c = config_;
    const int dev = gpu::detail::require_device();
    cudaDeviceProp prop{};
    LAZYLLM_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    attn_.init(prop.multiProcessorCount);
    hid_ = m_->padded_hidden();
    // The GEMV path stages its input rows (up to hid_ wide) in shared memory: as many rows as
    // fit, at most kGemvMaxRows (70B's 28672-wide FFN input: 4 rows in an H100's 227 KiB, 2 in
    // an A100's 163 KiB; more rows go to cuBLASLt).
    // fp32 storage has no GEMV path (its loads are 16-byte words of 2-byte values): cuBLASLt only.
    gemv_rows_ = kFp32 ? 0
                       : int(std::min<std::size_t>(
                             std::size_t(gpu::kGemvMaxRows),
                             prop.sharedMemPerBlockOptin / (std::size_t(std::max({c.dim, c.q_dim(), hid_})) * 2)));
    gemm_.init();
    embedding_ = m_->embedding();
    classifier_ = m_->classifier();
    final_norm_ = m_->final_norm();
    layers_ = m_->layers();
    rope_table_ = m_->rope_table();
    for (auto& s : staging_) s.done.create();
  }

  /// Runs layer 0's cuBLASLt GEMMs once at `rows` rows on scratch (weights, caches and the
  /// residual stream are untouched) and waits. The first cuBLASLt call of a process loads its
  /// kernels (measured ~130-170 ms on an H200 for a 9-token prompt); a caller that reports time
  /// to first token calls this while loading, with the prompt length it expects. Results of
  /// later calls are the same with or without it.
  void warm_up(int rows) {
    const auto& c = config_;
    rows = std::clamp(rows, 1, std::max(1, c.max_seq_len));
    if (rows <= gemv_rows_ || layers_.empty()) return;  // the GEMV path needs no warm-up
    reserve_scratch(rows);
    const int d = c.dim;
    const std::size_t r = std::size_t(rows);
    LAZYLLM_CUDA_CHECK(cudaMemsetAsync(xn_.get(), 0, r * std::size_t(d) * sizeof(ST), stream_));
    LAZYLLM_CUDA_CHECK(cudaMemsetAsync(h_.get(), 0, r * std::size_t(hid_) * sizeof(ST), stream_));
    LAZYLLM_CUDA_CHECK(cudaMemsetAsync(att_.get(), 0, r * std::size_t(c.q_dim()) * sizeof(ST), stream_));
    gpu::DeviceBuffer<float> acc;
    acc.reset(r * std::size_t(d), "warm-up output");
    LAZYLLM_CUDA_CHECK(cudaMemsetAsync(acc.get(), 0, acc.bytes(), stream_));
    const Layer& L = layers_[0];
    gemm_qkv(L, rows);
    gemm_o_add(L, att_.get(), acc.get(), rows);
    gemm_gate_up(L, rows);
    gemm_down_add(L, acc.get(), rows);
    LAZYLLM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  BasicCudaBackend(BasicCudaBackend&&) noexcept = default;
  BasicCudaBackend& operator=(BasicCudaBackend&&) noexcept = default;
  ~BasicCudaBackend() {
    if (m_) (void)cudaStreamSynchronize(stream_);  // no queued work may outlive the buffers
  }

  const RuntimeConfig& config() const { return config_; }
  static constexpr std::string_view name() {
    return std::is_same_v<ST, gpu::fp16> ? "cuda-fp16" : kFp32 ? "cuda-fp32" : "cuda";
  }
  /// The Aux Cache keeps the fp32 residual stream, so a revived token resumes exactly.
  std::int64_t aux_bytes_per_token() const { return std::int64_t(config_.dim) * std::int64_t(sizeof(float)); }
  void synchronize() { LAZYLLM_CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  cudaStream_t stream() const { return stream_; }
  gpu::Gemm& gemm() { return gemm_; }
  gpu::Attention& attention() { return attn_; }
  /// Attaches a per-op-class timer (nullptr detaches; see profiler.cuh). Not owned.
  void set_profiler(gpu::Profiler* p) { prof_ = {p, stream_, -1}; }

  /// K and V storage (ST, kv_slots x kv_dim each) and the Aux Cache (fp32, aux_slots x dim): plain
  /// slot-indexed arrays, which the kernels address through kv_store() / aux_store().
  void allocate(std::int64_t kv_slots, std::int64_t aux_slots) {
    synchronize();
    k_.release();
    v_.release();
    aux_.release();
    const std::uint64_t kvd = std::uint64_t(config_.kv_dim()), d = std::uint64_t(config_.dim);
    const std::uint64_t need = 2 * std::uint64_t(kv_slots) * kvd * sizeof(ST) + std::uint64_t(aux_slots) * d * 4;
    const std::uint64_t free_b = gpu::detail::free_device_bytes();
    if (need > free_b)
      throw Error("CudaBackend: the KV cache (" + std::to_string(kv_slots) + " slots) and Aux Cache (" +
                  std::to_string(aux_slots) + " slots) need " + gpu::detail::format_bytes(need) + ", only " +
                  gpu::detail::format_bytes(free_b) + " are free on the GPU");
    try {
      k_.reset(std::size_t(kv_slots) * kvd, "K cache");
      v_.reset(std::size_t(kv_slots) * kvd, "V cache");
      aux_.reset(std::size_t(aux_slots) * d, "Aux Cache");
    } catch (...) {
      k_.release();
      v_.release();
      aux_.release();
      throw;
    }
    if (k_) LAZYLLM_CUDA_CHECK(cudaMemsetAsync(k_.get(), 0, k_.bytes(), stream_));
    if (v_) LAZYLLM_CUDA_CHECK(cudaMemsetAsync(v_.get(), 0, v_.bytes(), stream_));
    if (aux_) LAZYLLM_CUDA_CHECK(cudaMemsetAsync(aux_.get(), 0, aux_.bytes(), stream_));
    kv_slots_ = kv_slots;
    aux_slots_ = aux_slots;
    kv_st_ = gpu::KvStore<ST>::plain(k_.get(), v_.get(), config_.kv_dim(), config_.head_dim());
    aux_st_ = gpu::AuxStore::plain(aux_.get(), config_.dim);
  }

  // ---- the engine's block pool (BatchedBackend, attention_backend.hpp) ----

  const std::shared_ptr<const Model>& model() const { return m_; }
  /// K + V of one token at one layer.
  std::int64_t kv_token_bytes() const { return 2 * std::int64_t(config_.kv_dim()) * std::int64_t(sizeof(ST)); }
  /// cudaMalloc for a BlockPool's arena (on the current device).
  static ArenaAllocator arena_allocator() {
    return {[](std::size_t n) {
              void* p = nullptr;
              const cudaError_t e = cudaMalloc(&p, std::max<std::size_t>(n, 1));
              if (e != cudaSuccess) {
                (void)cudaGetLastError();
                throw Error("CudaBackend: cannot allocate a block pool of " + gpu::detail::format_bytes(n) + " (" +
                            cudaGetErrorString(e) + "), " +
                            gpu::detail::format_bytes(gpu::detail::free_device_bytes()) + " are free on the GPU");
              }
              return p;
            },
            [](void* p, std::size_t) { (void)cudaFree(p); }};
  }
  /// Keeps K/V and Aux Cache entries in a BlockPool's arena instead of storage of its own: the
  /// block layout of cache/kv_store.hpp (a block's K rows, then its V rows; or Aux rows), the same
  /// as the CPU backend's.
  void bind_arena(const BlockPool& pool) {
    const PoolGeometry& g = pool.geometry();
    if (g.kv_token_bytes != kv_token_bytes() || g.aux_token_bytes != aux_bytes_per_token())
      throw InvalidArgument("CudaBackend::bind_arena: the pool was made for another model or storage type");
    synchronize();
    k_.release();
    v_.release();
    aux_.release();
    const std::int64_t block_bytes = g.block_bytes();
    kv_st_ = gpu::KvStore<ST>::blocks(static_cast<ST*>(pool.arena()), config_.kv_dim(), config_.head_dim(),
                                      g.block_shift(), block_bytes / std::int64_t(sizeof(ST)));
    aux_st_ = gpu::AuxStore::blocks(static_cast<float*>(pool.arena()), config_.dim, g.aux_per_block(),
                                    block_bytes / std::int64_t(sizeof(float)));
    kv_slots_ = pool.capacity() * g.block_tokens;
    aux_slots_ = pool.capacity() * g.aux_per_block();
  }

  void embed(std::span<const std::int32_t> ids, Activations& x) {
    const int n = int(ids.size()), d = config_.dim;
    x.resize(n, d);
    if (n == 0) return;
    for (auto id : ids)
      if (id < 0 || id >= config_.vocab_size)
        throw InvalidArgument("CudaBackend::embed: token id " + std::to_string(id) + " is outside the vocabulary");
    if (graph_.recording) {
      if (n != 1)
        throw Error("internal: CudaBackend::embed of " + std::to_string(n) + " tokens in a recorded decode step");
      std::memcpy(graph_.host.get() + kGraphTokenWord, &ids[0], sizeof(std::int32_t));
      graph_.embed_x = x.data();
      return;
    }
    prof_.mark(gpu::OpClass::Gather, -1);
    auto* dev = upload(ids);
    gpu::detail::launch_embed(embedding_, reinterpret_cast<const std::int32_t*>(dev), n, d, x.data(), stream_);
  }

  void gather(const Activations& src, std::span<const std::int32_t> src_rows, std::span<const std::int64_t> aux_slots,
              Activations& dst) {
    const int n = int(src_rows.size()), d = config_.dim;
    dst.resize(n, d);
    if (n == 0) return;
    not_recording("gather");
    prof_.mark(gpu::OpClass::Gather);
    auto dev = upload(src_rows, aux_slots);
    gpu::detail::launch_gather_rows(src.data(), reinterpret_cast<const std::int32_t*>(dev.first), dev.second,
                                    aux_store(), n, dst.data(), stream_);
  }

  void store_aux(const Activations& x, std::span<const std::int32_t> rows, std::span<const std::int64_t> aux_slots) {
    const int n = int(rows.size());
    if (n == 0) return;
    not_recording("store_aux");
    prof_.mark(gpu::OpClass::Gather);
    auto dev = upload(rows, aux_slots);
    gpu::detail::launch_store_aux(x.data(), reinterpret_cast<const std::int32_t*>(dev.first), dev.second, n,
                                  aux_store(), stream_);
  }

  /// One decoder layer in place on x (see CpuBackend::layer for the formula).
  void layer(const LayerCall& call, Activations& x, std::span<float> scores) {
    run_layer(call, x, scores, [](const float* scores_dev, int, cudaStream_t) { return scores_dev; });
  }

  /// One decoder layer over several sequences (BatchedBackend): norm, QKV, RoPE + K/V store, the
  /// output projection and the FFN run once over all rows; attention and the last-row scores run
  /// per sequence over its own set.
  void layer_batch(const BatchLayerCall& call, Activations& x, std::span<float> scores) {
    run_layer_batch(call, x, scores, {}, [](std::size_t, const float*, int, cudaStream_t) {
      return static_cast<const std::uint8_t*>(nullptr);
    });
  }

  /// The logits of several rows of x (final norm + classifier, the GEMV path in groups of rows),
  /// copied to `out` (rows.size() x vocab_size host floats).
  void logits_rows(const Activations& x, std::span<const int> rows, std::span<float> out) {
    const auto V = std::size_t(config_.vocab_size);
    if (out.size() < rows.size() * V) throw InvalidArgument("CudaBackend::logits_rows: output too small");
    const float* dev = logits_rows_device(x, rows);
    if (rows.empty()) return;
    logits_host_.reserve(rows.size() * V);
    LAZYLLM_CUDA_CHECK(
        cudaMemcpyAsync(logits_host_.get(), dev, rows.size() * V * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    synchronize();
    std::memcpy(out.data(), logits_host_.get(), rows.size() * V * sizeof(float));
  }

  /// The logits of several rows into device memory (rows.size() x vocab_size fp32, queued on
  /// stream(), valid until the next logits call). Each row is computed as logits_device() computes
  /// it alone.
  const float* logits_rows_device(const Activations& x, std::span<const int> rows) {
    const auto& c = config_;
    const int n = int(rows.size());
    for (const int r : rows)
      if (r < 0 || r >= x.rows)
        throw InvalidArgument("CudaBackend::logits_rows: row " + std::to_string(r) + " out of range");
    not_recording("logits_rows");
    rows_logits_.reserve(std::max<std::size_t>(1, std::size_t(n) * std::size_t(c.vocab_size)), "logits");
    for (int i = 0; i < n; ++i) {
      // One row at a time through the single-row path: the same numbers as logits() alone.
      const float* one = logits_device(x, rows[std::size_t(i)], "CudaBackend::logits_rows");
      LAZYLLM_CUDA_CHECK(cudaMemcpyAsync(rows_logits_.get() + std::size_t(i) * std::size_t(c.vocab_size), one,
                                         std::size_t(c.vocab_size) * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
    }
    return rows_logits_.get();
  }

 protected:
  /// layer(), with what comes back in place of the scores chosen by `on_scores(scores_dev, n_kv,
  /// stream)`: it may queue more work on the stream and returns the device array of n_kv values of
  /// `out`'s type to read back (the scores themselves, or, in SelectingCudaBackend
  /// (selecting_backend.cuh), the percentile rule's keep flags). The read-back goes through pinned
  /// memory and is waited for after the layer's FFN is queued.
  template <class T, class OnScores>
  void run_layer(const LayerCall& call, Activations& x, std::span<T> out, OnScores&& on_scores) {
    const Layer& L = layers_.at(std::size_t(call.layer));
    const int rows = x.rows, n_kv = int(call.kv_pos.size());
    if (rows == 0) return;
    if (int(call.q_pos.size()) != rows || int(call.q_slots.size()) != rows || int(call.kv_slots.size()) != n_kv)
      throw InvalidArgument("CudaBackend::layer: index arrays do not match the activations (" + std::to_string(rows) +
                            " rows)");
    for (const std::int32_t p : call.q_pos) detail::check_sliding_window(config_, p);
    prof_.mark(gpu::OpClass::Other, call.layer);
    reserve_scratch(rows);
    if (graph_.recording) {
      record_layer(call, x);
      return;
    }
    const LayerIndices idx = upload_layer(call);
    const gpu::AttnParams<ST> aa = attention_block(L, call.layer, rows, n_kv, idx, x.data(), nullptr);
    const std::size_t bytes = std::size_t(n_kv) * sizeof(T);
    if (call.want_scores) {
      if (out.size() < std::size_t(n_kv))
        throw InvalidArgument("CudaBackend::layer: the scores (or keep flags) span has " + std::to_string(out.size()) +
                              " entries, " + std::to_string(n_kv) + " needed");
      const int n_vis =
          int(std::upper_bound(call.kv_pos.begin(), call.kv_pos.end(), call.q_pos[std::size_t(rows - 1)]) -
              call.kv_pos.begin());
      prof_.mark(gpu::OpClass::Scores, call.layer);
      scores_dev_.reserve(std::size_t(n_kv), "scores");
      attn_.last_row_scores(aa, n_vis, scores_dev_.get(), stream_);
      const T* src = on_scores(static_cast<const float*>(scores_dev_.get()), n_kv, stream_);
      readback_.reserve((bytes + sizeof(float) - 1) / sizeof(float));
      LAZYLLM_CUDA_CHECK(cudaMemcpyAsync(readback_.get(), src, bytes, cudaMemcpyDeviceToHost, stream_));
      scores_ready_.create();
      LAZYLLM_CUDA_CHECK(cudaEventRecord(scores_ready_.get(), stream_));
    }
    output_and_ffn_block(L, call.layer, rows, x.data());
    if (call.want_scores) {
      // The pipeline selects right after this call: wait for the read-back (not for the whole
      // stream), so the host's selection runs while the GPU does this layer's FFN.
      LAZYLLM_CUDA_CHECK(cudaEventSynchronize(scores_ready_.get()));
      std::memcpy(out.data(), readback_.get(), bytes);
    }
    prof_.mark(call.want_scores ? gpu::OpClass::Select : gpu::OpClass::Other, call.layer);
  }

  /// layer_batch, with `select(i, scores_dev, n, stream)` called for each sequence i that wants
  /// scores once its scores (n floats, device) are queued: it may queue a selection and return
  /// the device address of n keep flags, or nullptr. Scores of every sequence that wants them come
  /// back into `scores`; flags into `keep` (both indexed like call.kv_pos). One read-back for the
  /// whole batch, waited for after the FFN is queued.
  template <class Select>
  void run_layer_batch(const BatchLayerCall& call, Activations& x, std::span<float> scores,
                       std::span<std::uint8_t> keep, Select&& select) {
    const Layer& L = layers_.at(std::size_t(call.layer));
    const int rows = x.rows;
    const std::size_t n_kv_all = call.kv_pos.size();
    if (int(call.q_pos.size()) != rows || int(call.q_slots.size()) != rows || call.kv_slots.size() != n_kv_all)
      throw InvalidArgument("CudaBackend::layer_batch: index arrays do not match the activations (" +
                            std::to_string(rows) + " rows)");
    for (const std::int32_t p : call.q_pos) detail::check_sliding_window(config_, p);
    {
      std::int64_t r = 0, k = 0;
      for (const auto& sp : call.seqs) {
        if (sp.row_begin != r || sp.kv_begin != k || sp.rows < 1 || sp.n_kv < sp.rows)
          throw InvalidArgument("CudaBackend::layer_batch: the sequences' spans do not tile the rows and keys");
        r += sp.rows, k += sp.n_kv;
      }
      if (r != rows || k != std::int64_t(n_kv_all))
        throw InvalidArgument("CudaBackend::layer_batch: the sequences' spans do not cover the rows and keys");
    }
    if (rows == 0) return;
    not_recording("layer_batch");
    prof_.mark(gpu::OpClass::Other, call.layer);
    reserve_scratch(rows);
    // Decode-shaped sequences (1 row; 2..4 rows) share one attention launch per shape when there
    // are two or more of them; the others run one launch each.
    std::array<std::vector<gpu::VarlenSeq>, 2>& groups = decode_groups_;
    for (auto& g : groups) g.clear();
    if (!kFp32 && batched_decode_attention_) {
      for (const SeqSpan& sp : call.seqs)
        if (gpu::Attention::decode_shape(config_.head_dim(), sp.rows))
          groups[sp.rows == 1 ? 0 : 1].push_back(gpu::VarlenSeq{sp.row_begin, sp.rows, int(sp.kv_begin), int(sp.n_kv)});
      for (auto& g : groups)
        if (g.size() < 2) g.clear();
    }
    const auto p =
        upload_all(call.q_pos, call.kv_pos, call.q_slots, call.kv_slots, std::span(groups[0]), std::span(groups[1]));
    const LayerIndices idx{static_cast<const std::int32_t*>(p[0]), static_cast<const std::int32_t*>(p[1]),
                           static_cast<const std::int64_t*>(p[2]), static_cast<const std::int64_t*>(p[3])};
    const int ldq = config_.q_dim() + 2 * config_.kv_dim(), d = config_.dim, qd = config_.q_dim();
    if (per_sequence_gemms_) {
      for (const SeqSpan& sp : call.seqs)
        qkv_rope(L, call.layer, sp.rows,
                 LayerIndices{idx.q_pos + sp.row_begin, idx.kv_pos, idx.q_slots + sp.row_begin, idx.kv_slots},
                 x.data() + std::size_t(sp.row_begin) * d, sp.row_begin);
    } else {
      qkv_rope(L, call.layer, rows, idx, x.data());
    }
    bool any_scores = false, any_keep = false;
    scores_dev_.reserve(std::max<std::size_t>(1, n_kv_all), "scores");
    if constexpr (!kFp32) {
      for (std::size_t g = 0; g < groups.size(); ++g) {
        if (groups[g].empty()) continue;
        prof_.mark(gpu::OpClass::Attention, call.layer);
        attn_.run_decode_batch(attn_args(rows, int(n_kv_all), idx), static_cast<const gpu::VarlenSeq*>(p[4 + g]),
                               std::span<const gpu::VarlenSeq>(groups[g]), stream_);
      }
    }
    const auto batched = [&](const SeqSpan& sp) {
      const auto& g = groups[sp.rows == 1 ? 0 : 1];
      return !g.empty() && gpu::Attention::decode_shape(config_.head_dim(), sp.rows);
    };
    for (std::size_t i = 0; i < call.seqs.size(); ++i) {
      const SeqSpan& sp = call.seqs[i];
      const LayerIndices si{idx.q_pos + sp.row_begin, idx.kv_pos + sp.kv_begin, idx.q_slots + sp.row_begin,
                            idx.kv_slots + sp.kv_begin};
      gpu::AttnParams<ST> aa = attn_args(sp.rows, int(sp.n_kv), si);
      aa.q = qkv_.get() + std::size_t(sp.row_begin) * std::size_t(ldq);
      aa.out = att_.get() + std::size_t(sp.row_begin) * std::size_t(qd);
      if (!batched(sp)) {
        prof_.mark(gpu::OpClass::Attention, call.layer);
        attn_.run(aa, stream_);
      }
      if (!sp.want_scores) continue;
      const auto kv_pos = call.kv_pos.subspan(std::size_t(sp.kv_begin), std::size_t(sp.n_kv));
      const int last_pos = call.q_pos[std::size_t(sp.row_begin + sp.rows - 1)];
      const int n_vis = int(std::upper_bound(kv_pos.begin(), kv_pos.end(), last_pos) - kv_pos.begin());
      prof_.mark(gpu::OpClass::Scores, call.layer);
      float* sc = scores_dev_.get() + sp.kv_begin;
      attn_.last_row_scores(aa, n_vis, sc, stream_);
      any_scores = true;
      if (const std::uint8_t* f = select(i, sc, int(sp.n_kv), stream_)) {
        keep_dev_.reserve(std::max<std::size_t>(1, n_kv_all), "keep flags");
        LAZYLLM_CUDA_CHECK(
            cudaMemcpyAsync(keep_dev_.get() + sp.kv_begin, f, std::size_t(sp.n_kv), cudaMemcpyDeviceToDevice, stream_));
        any_keep = true;
      }
    }
    if (any_scores) {
      if (scores.size() < n_kv_all || (any_keep && keep.size() < n_kv_all))
        throw InvalidArgument("CudaBackend::layer_batch: the scores (or keep flags) span is too small");
      readback_.reserve(std::max<std::size_t>(1, n_kv_all));
      LAZYLLM_CUDA_CHECK(cudaMemcpyAsync(readback_.get(), scores_dev_.get(), n_kv_all * sizeof(float),
                                         cudaMemcpyDeviceToHost, stream_));
      if (any_keep) {
        keep_host_.reserve(std::max<std::size_t>(1, n_kv_all));
        LAZYLLM_CUDA_CHECK(
            cudaMemcpyAsync(keep_host_.get(), keep_dev_.get(), n_kv_all, cudaMemcpyDeviceToHost, stream_));
      }
      scores_ready_.create();
      LAZYLLM_CUDA_CHECK(cudaEventRecord(scores_ready_.get(), stream_));
    }
    if (per_sequence_gemms_) {
      for (const SeqSpan& sp : call.seqs)
        output_and_ffn_block(L, call.layer, sp.rows, x.data() + std::size_t(sp.row_begin) * d, sp.row_begin);
    } else {
      output_and_ffn_block(L, call.layer, rows, x.data());
    }
    if (any_scores) {
      LAZYLLM_CUDA_CHECK(cudaEventSynchronize(scores_ready_.get()));
      std::memcpy(scores.data(), readback_.get(), n_kv_all * sizeof(float));
      if (any_keep) std::memcpy(keep.data(), keep_host_.get(), n_kv_all);
    }
    prof_.mark(any_scores ? gpu::OpClass::Select : gpu::OpClass::Other, call.layer);
  }

 public:
  /// How layer_batch runs the linear layers: once over the rows of every sequence (false, the
  /// default: one weight read per step) or once per sequence (true: each sequence's rows go through
  /// the GEMMs (or GEMV) a step of its own would use, so every sequence computes bit for bit what
  /// it computes alone, at the price of reading the weights once per sequence). cuBLASLt picks its
  /// kernel by row count, so the default mode's numbers differ from a sequence's alone within bf16
  /// rounding, which can flip LazyLLM's selection where two scores at the threshold are that close.
  void set_per_sequence_gemms(bool on) { per_sequence_gemms_ = on; }
  /// Whether layer_batch runs the attention of its decode-shaped sequences (1 row; 2..4 rows) in
  /// one launch per shape (true: gpu::Attention::run_decode_batch, meant to give each sequence
  /// the bits it gets alone) or one launch per sequence (false, the default until the batched
  /// launch passes its GPU test, tests/gpu/test_attention.cu).
  void set_batched_decode_attention(bool on) { batched_decode_attention_ = on; }
  bool batched_decode_attention() const { return batched_decode_attention_; }
  bool per_sequence_gemms() const { return per_sequence_gemms_; }

  /// Prefill attention on Hopper: the wgmma kernel (attention/sm90_wgmma_prefill.cuh; the default where the
  /// device runs sm_90a code) or, off, the mma.sync kernel every sm_80+ GPU runs (A/B runs).
  void set_wgmma_attention(bool on) { attn_.set_sm90(on); }
  /// Whether prefill attention takes the wgmma kernel (on, and the device has it).
  bool wgmma_attention() const { return attn_.sm90_wanted() && attn_.sm90_available(); }

  // ---- decode steps as CUDA graphs (GraphStepBackend, attention_backend.hpp) ----

  /// Graph replay of plain decode steps: on (the default) or off (every launch on the stream, as
  /// before; for A/B measurements). Off also drops the cached graph.
  void set_decode_graphs(bool on) {
    graph_.on = on;
    if (!on) graph_.chunks.clear();
  }
  bool decode_graphs() const { return graph_.on; }
  /// Layers per decode graph (default 4; 1 = a graph per layer; n_layers or more = one graph per
  /// step). Drops the cached graphs.
  void set_graph_chunk_layers(int n) {
    if (n < 1) throw InvalidArgument("CudaBackend::set_graph_chunk_layers: " + std::to_string(n) + " (at least 1)");
    graph_.chunk_layers = std::size_t(n);
    graph_.chunks.clear();
  }
  int graph_chunk_layers() const { return int(graph_.chunk_layers); }
  /// Decode steps run as graphs, graphs captured and graphs launched so far (tests, benchmarks).
  std::int64_t graph_steps() const { return graph_.steps; }
  std::int64_t graph_captures() const { return graph_.captures; }
  std::int64_t graph_launches() const { return graph_.launches; }

  /// The pipeline calls this before a step whose every layer computes one row and wants no scores
  /// (a decode step that prunes nothing) with an upper bound on each layer's key count. Returns
  /// true when this backend takes the step as CUDA graphs: embed and layer calls then only stage
  /// their index arrays (pinned memory), and every graph_chunk_layers() layers the staged part is
  /// uploaded and launched as one graph (so the GPU starts while the host still walks the later
  /// layers). False when graphs are off, a profiler is attached (it times single launches), or
  /// the model takes another attention kernel (fp32 storage, head_dim other than 64 / 128).
  bool begin_graph_step(int n_kv_max) {
    graph_.recording = false;
    const int hd = config_.head_dim();
    if (!graph_.on || kFp32 || prof_.prof || (hd != 64 && hd != 128) || gemv_rows_ < 1 || layers_.empty() ||
        n_kv_max < 1)
      return false;
    // Each layer's section holds n_kv, the row's position and slot, then kv_pos and kv_slots for
    // up to `cap` keys; the capacity doubles (sections move, so the next step captures anew).
    const int cap = std::max(gpu::tuning::DecodeGraphs::kMinKeyCapacity, int(std::bit_ceil(unsigned(n_kv_max))));
    graph_.copied.create();
    LAZYLLM_CUDA_CHECK(cudaEventSynchronize(graph_.copied.get()));  // the last upload has read the staging
    if (cap > graph_.cap) {
      const std::size_t stride = kGraphHeaderWords + std::size_t(cap) / 2 + std::size_t(cap);
      const std::size_t words = stride * layers_.size();
      graph_.host.reserve(words);
      graph_.dev.reserve(words, "decode graph indices");
      graph_.cap = cap;
      graph_.stride = stride;
    }
    if constexpr (!kFp32) {
      // What every graph of this step points at besides its layers' activations (the scratch and
      // the split workspace are sized here, so nothing moves while the step is staged).
      reserve_scratch(1);
      const auto ws = attn_.prepare_decode_dynamic(attn_args(1, graph_.cap, LayerIndices{}), stream_);
      graph_.step_key.assign({graph_.dev.get(), xn_.get(), qkv_.get(), att_.get(), gu_.get(), h_.get(), kv_st_.k,
                              kv_st_.v, ws[0], ws[1], ws[2],
                              reinterpret_cast<const void*>(std::uintptr_t(graph_.cap))});
    }
    graph_.chunks.resize((layers_.size() + graph_.chunk_layers - 1) / graph_.chunk_layers);
    graph_.rec.clear();
    graph_.flushed = 0;
    graph_.embed_x = nullptr;
    graph_.recording = true;
    return true;
  }

  /// Ends a graph step: every layer must have been staged (and so launched).
  void end_graph_step() {
    if (!graph_.recording) return;
    graph_.recording = false;
    if (graph_.flushed != layers_.size())
      throw Error("internal: a graph decode step must run every layer once (" + std::to_string(graph_.flushed) +
                  " of " + std::to_string(layers_.size()) + " layers)");
    ++graph_.steps;
  }

  /// Drops a recording that will not be ended (the pipeline calls it when a step throws).
  void cancel_graph_step() noexcept { graph_.recording = false; }

  /// Final RMSNorm and classifier of one row, as host fp32 logits (valid until the next call).
  std::span<const float> logits(const Activations& x, int row) {
    const auto& c = config_;
    (void)logits_device(x, row, "CudaBackend::logits");
    logits_host_.reserve(std::size_t(c.vocab_size));
    LAZYLLM_CUDA_CHECK(cudaMemcpyAsync(logits_host_.get(), logits_dev_.get(), std::size_t(c.vocab_size) * sizeof(float),
                                       cudaMemcpyDeviceToHost, stream_));
    synchronize();
    return {logits_host_.get(), std::size_t(c.vocab_size)};
  }

  /// Final RMSNorm, classifier and device sampling of one row: with a gpu::DeviceSampler
  /// (cuda/sampling.cuh), the same id as `Sampler(sampler.params()).sample(logits(x, row),
  /// recent)`, with only the id copied back. `sampler` keeps the draw sequence (and its scratch)
  /// between calls. A template over the sampler, so that this header stays free of CUB: its
  /// device sort adds about a third to the compile time of each translation unit that includes
  /// it (docs/cuda_backend.md, "Sampling on the device").
  template <class DeviceSamplerT>
  requires requires(DeviceSamplerT& s, const float* l, cudaStream_t st, std::span<const std::int32_t> r) {
    { s.sample(l, 1, st, r) } -> std::convertible_to<std::int32_t>;
  }
  std::int32_t sample(const Activations& x, int row, DeviceSamplerT& sampler,
                      std::span<const std::int32_t> recent = {}) {
    const float* l = logits_device(x, row, "CudaBackend::sample");
    return sampler.sample(l, config_.vocab_size, stream_, recent);
  }

  /// Final RMSNorm and classifier of one row into a device buffer of vocab_size fp32 logits,
  /// queued on stream() (not synchronised; valid until the next logits/sample call).
  const float* logits_device(const Activations& x, int row, const char* who = "CudaBackend::logits_device") {
    const auto& c = config_;
    if (row < 0 || row >= x.rows)
      throw InvalidArgument(std::string(who) + ": row " + std::to_string(row) + " out of range");
    not_recording("logits");
    reserve_scratch(1);
    logits_dev_.reserve(std::size_t(c.vocab_size), "logits");
    if constexpr (kFp32) {  // no GEMV path in fp32: final norm, then cuBLASLt
      prof_.mark(gpu::OpClass::Norm, -1);
      gpu::detail::launch_rmsnorm(x.row(row), final_norm_, 1, c.dim, c.norm_eps, xn_.get(), stream_);
      prof_.mark(gpu::OpClass::Gemm, -1);
      gemm_.run(xn_.get(), classifier_, logits_dev_.get(), 1, c.dim, c.vocab_size, stream_);
    } else {
      // Final norm (it only reads x) folded into the classifier GEMV.
      prof_.mark(gpu::OpClass::Gemm, -1);
      gpu::gemv::run(gpu::gemv::RmsNormRowsT<ST>{x.row(row), c.dim, final_norm_, c.norm_eps}, classifier_, c.dim,
                     c.vocab_size, 1, gpu::gemv::StoreF32{logits_dev_.get(), c.vocab_size}, stream_);
    }
    prof_.mark(gpu::OpClass::Other, -1);
    return logits_dev_.get();
  }

  // ---- where K/V and the Aux Cache live (tests, benchmarks) ----
  /// The K/V storage as every kernel addresses it (cache/kv_store.hpp): allocate()'s plain
  /// slot-indexed arrays, or the bound BlockPool's arena. Valid until the next allocate() / bind_arena().
  gpu::KvStore<ST> kv_store() const { return kv_st_; }
  /// The Aux Cache likewise: fp32 rows of dim.
  gpu::AuxStore aux_store() const { return aux_st_; }
  int padded_hidden() const { return hid_; }

 private:
  using Layer = typename Model::Layer;

  // ---- the launches of one layer (layer() and the decode graph share them) ----

  struct LayerIndices {  // device addresses of a layer's index arrays
    const std::int32_t *q_pos = nullptr, *kv_pos = nullptr;
    const std::int64_t *q_slots = nullptr, *kv_slots = nullptr;
  };

  gpu::AttnParams<ST> attn_args(int rows, int n_kv, const LayerIndices& idx) const {
    const auto& c = config_;
    gpu::AttnParams<ST> aa;
    aa.q = qkv_.get();
    aa.ldq = c.q_dim() + 2 * c.kv_dim();
    aa.q_pos = idx.q_pos;
    aa.rows = rows;
    aa.n_heads = c.n_heads;
    aa.n_kv_heads = c.n_kv_heads;
    aa.kv = gpu::SlottedKv<ST>::make(kv_store(), idx.kv_slots, idx.kv_pos, n_kv);
    aa.out = att_.get();
    aa.ldo = c.q_dim();
    return aa;
  }

  /// Norm, QKV, RoPE + K/V store, attention into att_. `n_kv_dev`: the decode attention reads its
  /// key count there (n_kv is then the capacity of the index arrays; graph replays).
  gpu::AttnParams<ST> attention_block(const Layer& L, int l, int rows, int n_kv, const LayerIndices& idx, float* x,
                                      const int* n_kv_dev) {
    qkv_rope(L, l, rows, idx, x);
    const gpu::AttnParams<ST> aa = attn_args(rows, n_kv, idx);
    prof_.mark(gpu::OpClass::Attention, l);
    if constexpr (!kFp32) {
      if (n_kv_dev) {
        attn_.run_decode_dynamic(aa, n_kv_dev, stream_);
        return aa;
      }
    }
    attn_.run(aa, stream_);
    return aa;
  }

  /// Norm, QKV projection, RoPE and the K/V store of `rows` rows (their positions and slots in idx),
  /// rows [r0, r0 + rows) of the scratch (x is that first row).
  void qkv_rope(const Layer& L, int l, int rows, const LayerIndices& idx, float* x, int r0 = 0) {
    const auto& c = config_;
    const int d = c.dim, kvd = c.kv_dim(), qd = c.q_dim();
    ST* const qkv = qkv_.get() + std::size_t(r0) * std::size_t(qd + 2 * kvd);
    // Few rows (decode): the GEMV path, with the norms, SwiGLU and residual adds folded into the
    // linear layers (gemv.cuh). Otherwise cuBLASLt, with the residual adds as fp32 accumulation.
    if (rows <= gemv_rows_) {  // never in fp32 (gemv_rows_ == 0), and not compiled there
      if constexpr (!kFp32) {
        prof_.mark(gpu::OpClass::Gemm, l);
        gpu::gemv::run(gpu::gemv::RmsNormRowsT<ST>{x, d, L.attn_norm, c.norm_eps}, L.qkv, d, qd + 2 * kvd, rows,
                       gpu::gemv::Store<ST>{qkv, qd + 2 * kvd}, stream_);
      }
    } else {
      prof_.mark(gpu::OpClass::Norm, l);
      gpu::detail::launch_rmsnorm(x, L.attn_norm, rows, d, c.norm_eps, xn_.get() + std::size_t(r0) * d, stream_);
      prof_.mark(gpu::OpClass::Gemm, l);
      gemm_qkv(L, rows, r0);
    }
    if (L.qkv_bias || L.q_norm) {  // Qwen2 biases / Qwen3 q/k norms, in place before RoPE
      prof_.mark(gpu::OpClass::Norm, l);
      gpu::detail::launch_qkv_prepare(qkv, qd + 2 * kvd, rows, c.n_heads, c.n_kv_heads, c.head_dim(), L.qkv_bias,
                                      L.q_norm, L.k_norm, c.norm_eps, stream_);
    }
    gpu::detail::RopeArgsT<ST> ra;
    ra.qkv = qkv;
    ra.ld = qd + 2 * kvd;
    ra.rows = rows;
    ra.n_heads = c.n_heads;
    ra.n_kv_heads = c.n_kv_heads;
    ra.pos = idx.q_pos;
    ra.slots = idx.q_slots;
    ra.table = rope_table_;
    ra.max_pos = c.max_seq_len;
    ra.style = c.rope_style;
    ra.kv = kv_store();
    prof_.mark(gpu::OpClass::Norm, l);
    gpu::detail::launch_rope_store(ra, stream_);
  }

  /// x += Wo att; then the FFN block: x += W2 swiglu(W13 norm(x)). Rows [r0, r0 + rows) of the
  /// scratch (x is that first row).
  void output_and_ffn_block(const Layer& L, int l, int rows, float* x, int r0 = 0) {
    const auto& c = config_;
    const int d = c.dim;
    const int qd = c.q_dim();
    const ST* att = att_.get() + std::size_t(r0) * qd;
    ST* const h = h_.get() + std::size_t(r0) * hid_;
    prof_.mark(gpu::OpClass::Gemm, l);
    if (rows <= gemv_rows_) {
      if constexpr (!kFp32) {
        gpu::gemv::run(gpu::gemv::Rows<ST>{att, qd}, L.wo, qd, d, rows, gpu::gemv::AddF32{x, d}, stream_);
        gpu::gemv::run(gpu::gemv::RmsNormRowsT<ST>{x, d, L.ffn_norm, c.norm_eps}, L.gate_up, d, hid_, rows,
                       gpu::gemv::SwiGluT<ST>{h, hid_, hid_}, stream_);
        gpu::gemv::run(gpu::gemv::Rows<ST>{h, hid_}, L.w2, hid_, d, rows, gpu::gemv::AddF32{x, d}, stream_);
      }
    } else {
      gemm_o_add(L, att, x, rows);
      prof_.mark(gpu::OpClass::Norm, l);
      gpu::detail::launch_rmsnorm(x, L.ffn_norm, rows, d, c.norm_eps, xn_.get() + std::size_t(r0) * d, stream_);
      prof_.mark(gpu::OpClass::Gemm, l);
      gemm_gate_up(L, rows, r0);
      prof_.mark(gpu::OpClass::Norm, l);
      gpu::detail::launch_swiglu(gu_.get() + std::size_t(r0) * 2 * hid_, rows, hid_, h, stream_);
      prof_.mark(gpu::OpClass::Gemm, l);
      gemm_down_add(L, x, rows, r0);
    }
  }

  // ---- the decode graph's recording ----

  // Staging layout (8-byte words), one section of graph_.stride words per layer: word 0 = n_kv
  // (int32), word 1 = the row's position (int32), word 2 = its K/V slot, word 3 = the step's
  // token id (layer 0's section only), then kv_pos (cap int32), then kv_slots (cap int64).
  static constexpr std::size_t kGraphHeaderWords = 4;
  static constexpr std::size_t kGraphTokenWord = 3;

  void not_recording(const char* what) const {
    if (graph_.recording) throw Error(std::string("internal: CudaBackend::") + what + " inside a recorded decode step");
  }

  void record_layer(const LayerCall& call, Activations& x) {
    const int n_kv = int(call.kv_pos.size());
    if (x.rows != 1 || call.want_scores || n_kv > graph_.cap || call.layer < 0 ||
        std::size_t(call.layer) != graph_.rec.size())
      throw Error("internal: CudaBackend::layer " + std::to_string(call.layer) + " (" + std::to_string(x.rows) +
                  " rows, " + std::to_string(n_kv) + " keys" + (call.want_scores ? ", scores" : "") +
                  ") does not fit the recorded decode step");
    std::int64_t* sec = graph_.host.get() + std::size_t(call.layer) * graph_.stride;
    const std::int32_t n32 = n_kv;
    std::memcpy(sec, &n32, 4);
    std::memcpy(sec + 1, &call.q_pos[0], 4);
    sec[2] = call.q_slots[0];
    std::memcpy(sec + kGraphHeaderWords, call.kv_pos.data(), call.kv_pos.size_bytes());
    std::memcpy(sec + kGraphHeaderWords + std::size_t(graph_.cap) / 2, call.kv_slots.data(),
                call.kv_slots.size_bytes());
    graph_.rec.push_back({x.data(), n_kv});
    if (graph_.rec.size() % graph_.chunk_layers == 0 || graph_.rec.size() == layers_.size()) launch_staged();
  }

  /// Uploads the staged layers [flushed, rec.size()) (two copies) and launches their graph,
  /// capturing it first when it is new or anything it points at has moved (capacity growth, a
  /// longer prefill's scratch). A replay computes what the same launches on the stream compute,
  /// bit for bit.
  void launch_staged() {
    if constexpr (!kFp32) {
      const std::size_t l0 = graph_.flushed, l1 = graph_.rec.size();
      if (l0 == 0 && !graph_.embed_x) throw Error("internal: a graph decode step must embed its token first");
      int max_n = 0;
      for (std::size_t l = l0; l < l1; ++l) max_n = std::max(max_n, graph_.rec[l].n_kv);
      const std::size_t pitch = graph_.stride * 8, at = l0 * graph_.stride;
      const std::size_t head = kGraphHeaderWords + std::size_t(max_n + 1) / 2;
      LAZYLLM_CUDA_CHECK(cudaMemcpy2DAsync(graph_.dev.get() + at, pitch, graph_.host.get() + at, pitch, head * 8,
                                           l1 - l0, cudaMemcpyHostToDevice, stream_));
      const std::size_t kvs = at + kGraphHeaderWords + std::size_t(graph_.cap) / 2;
      LAZYLLM_CUDA_CHECK(cudaMemcpy2DAsync(graph_.dev.get() + kvs, pitch, graph_.host.get() + kvs, pitch,
                                           std::size_t(max_n) * 8, l1 - l0, cudaMemcpyHostToDevice, stream_));
      LAZYLLM_CUDA_CHECK(cudaEventRecord(graph_.copied.get(), stream_));

      std::vector<const void*>& key = graph_.key;
      key.assign(graph_.step_key.begin(), graph_.step_key.end());
      key.push_back(l0 == 0 ? graph_.embed_x : nullptr);
      for (std::size_t l = l0; l < l1; ++l) key.push_back(graph_.rec[l].x);
      GraphChunk& chunk = graph_.chunks.at(l0 / graph_.chunk_layers);
      if (!chunk.exec || key != chunk.key) {
        // Captured on a stream of its own (the user's may be the legacy default stream, which
        // cannot be captured); the graph is launched on the user's stream.
        graph_.capture_stream.create();
        struct Restore {
          cudaStream_t& s;
          cudaStream_t saved;
          ~Restore() { s = saved; }
        } restore{stream_, stream_};
        stream_ = graph_.capture_stream.get();
        chunk.exec.capture(stream_, [&] { launch_recorded(l0, l1); });
        chunk.key = key;
        ++graph_.captures;
      }
      chunk.exec.launch(stream_);
      ++graph_.launches;
      graph_.flushed = l1;
    }
  }

  /// The launches of staged layers [l0, l1) (and the embedding with layer 0), reading every index
  /// from graph_.dev (inside a capture).
  void launch_recorded(std::size_t l0, std::size_t l1) {
    const std::int64_t* dev = graph_.dev.get();
    if (l0 == 0)
      gpu::detail::launch_embed(embedding_, reinterpret_cast<const std::int32_t*>(dev + kGraphTokenWord), 1,
                                config_.dim, graph_.embed_x, stream_);
    for (std::size_t l = l0; l < l1; ++l) {
      const std::int64_t* sec = dev + l * graph_.stride;
      LayerIndices idx;
      idx.q_pos = reinterpret_cast<const std::int32_t*>(sec + 1);
      idx.q_slots = sec + 2;
      idx.kv_pos = reinterpret_cast<const std::int32_t*>(sec + kGraphHeaderWords);
      idx.kv_slots = sec + kGraphHeaderWords + std::size_t(graph_.cap) / 2;
      const Layer& L = layers_[l];
      (void)attention_block(L, int(l), 1, graph_.cap, idx, graph_.rec[l].x, reinterpret_cast<const int*>(sec));
      output_and_ffn_block(L, int(l), 1, graph_.rec[l].x);
    }
  }

  struct GraphRecord {
    float* x = nullptr;  // the layer's activations
    int n_kv = 0;
  };
  struct GraphChunk {
    gpu::GraphExec exec;
    std::vector<const void*> key;  // what the captured graph points at
  };
  struct DecodeGraph {
    bool on = true;
    bool recording = false;
    int cap = 0;              // keys per layer section
    std::size_t stride = 0;   // words per layer section
    std::size_t flushed = 0;  // layers of this step already launched
    float* embed_x = nullptr;
    std::vector<GraphRecord> rec;
    std::vector<GraphChunk> chunks;          // one graph per chunk_layers layers
    std::vector<const void*> step_key, key;  // this step's shared pointers; a chunk's (scratch)
    // Layers per graph: the first graph starts on the GPU while the host stages the rest.
    std::size_t chunk_layers = gpu::tuning::DecodeGraphs::kChunkLayers;
    gpu::PinnedBuffer<std::int64_t> host;
    gpu::DeviceBuffer<std::int64_t> dev;
    gpu::Event copied;  // the last upload from `host` has run
    gpu::Stream capture_stream;
    std::int64_t steps = 0, captures = 0, launches = 0;
  };

  // The four cuBLASLt GEMMs of a layer's prefill path, shared by layer() and warm_up() (so the
  // warm-up loads exactly the plans layer() uses): qkv_ = xn_ Wqkv^T; x += att Wo^T;
  // gu_ = xn_ Wgate_up^T; x += h_ W2^T (the residual adds accumulate in fp32).
  void gemm_qkv(const Layer& L, int rows, int r0 = 0) {
    const std::size_t ld = std::size_t(config_.q_dim() + 2 * config_.kv_dim());
    gemm_.run(xn_.get() + std::size_t(r0) * config_.dim, L.qkv, qkv_.get() + std::size_t(r0) * ld, rows, config_.dim,
              int(ld), stream_);
  }
  void gemm_o_add(const Layer& L, const ST* att, float* x, int rows) {
    gemm_.run(att, L.wo, x, rows, config_.q_dim(), config_.dim, stream_, 0, /*accumulate=*/true);
  }
  void gemm_gate_up(const Layer& L, int rows, int r0 = 0) {
    gemm_.run(xn_.get() + std::size_t(r0) * config_.dim, L.gate_up, gu_.get() + std::size_t(r0) * 2 * hid_, rows,
              config_.dim, 2 * hid_, stream_);
  }
  void gemm_down_add(const Layer& L, float* x, int rows, int r0 = 0) {
    gemm_.run(h_.get() + std::size_t(r0) * hid_, L.w2, x, rows, hid_, config_.dim, stream_, 0, /*accumulate=*/true);
  }

  /// Pinned host staging for index uploads, paired with a device buffer. Two of them alternate;
  /// a slot's event marks when its last copy has run, so the host never overwrites bytes that a
  /// queued cudaMemcpyAsync has not read yet.
  struct Staging {
    gpu::PinnedBuffer<std::int64_t> host;
    gpu::DeviceBuffer<std::int64_t> dev;
    gpu::Event done;
  };

  static std::size_t words_for(std::size_t bytes) { return (bytes + 15) / 16 * 2; }  // 16-byte aligned sections

  /// Copies the spans, each 16-byte aligned, into the next staging slot and uploads them with one
  /// cudaMemcpyAsync. Returns the device address of each span.
  template <class... Spans>
  std::array<const void*, sizeof...(Spans)> upload_all(const Spans&... spans) {
    std::size_t words = 0;
    ((words += words_for(spans.size_bytes())), ...);
    Staging& s = staging_[next_staging_];
    next_staging_ = (next_staging_ + 1) % staging_.size();
    LAZYLLM_CUDA_CHECK(cudaEventSynchronize(s.done.get()));  // its previous copy has been read
    if (words > s.host.size()) {
      s.host.reserve(words);
      s.dev.reserve(s.host.size(), "index staging");
    }
    std::array<const void*, sizeof...(Spans)> out{};
    std::size_t at = 0, k = 0;
    auto one = [&](const auto& sp) {
      if (sp.size_bytes()) std::memcpy(s.host.get() + at, sp.data(), sp.size_bytes());
      out[k++] = s.dev.get() + at;
      at += words_for(sp.size_bytes());
    };
    (one(spans), ...);
    if (at) LAZYLLM_CUDA_CHECK(cudaMemcpyAsync(s.dev.get(), s.host.get(), at * 8, cudaMemcpyHostToDevice, stream_));
    LAZYLLM_CUDA_CHECK(cudaEventRecord(s.done.get(), stream_));
    return out;
  }
  const void* upload(std::span<const std::int32_t> a) { return upload_all(a)[0]; }
  std::pair<const void*, const std::int64_t*> upload(std::span<const std::int32_t> a, std::span<const std::int64_t> b) {
    const auto p = upload_all(a, b);
    return {p[0], static_cast<const std::int64_t*>(p[1])};
  }
  LayerIndices upload_layer(const LayerCall& call) {
    const auto p = upload_all(call.q_pos, call.kv_pos, call.q_slots, call.kv_slots);
    return {static_cast<const std::int32_t*>(p[0]), static_cast<const std::int32_t*>(p[1]),
            static_cast<const std::int64_t*>(p[2]), static_cast<const std::int64_t*>(p[3])};
  }

  void reserve_scratch(int rows) {
    const auto& c = config_;
    const std::size_t r = std::size_t(rows), d = std::size_t(c.dim), kvd = std::size_t(c.kv_dim()),
                      qd = std::size_t(c.q_dim());
    xn_.reserve(r * d, "layer scratch");
    qkv_.reserve(r * (qd + 2 * kvd), "layer scratch");
    att_.reserve(r * qd, "layer scratch");
    gu_.reserve(r * 2 * std::size_t(hid_), "layer scratch");
    h_.reserve(r * std::size_t(hid_), "layer scratch");
  }

  RuntimeConfig config_;
  cudaStream_t stream_ = nullptr;
  int hid_ = 0;
  int gemv_rows_ = 0;  // rows up to this take the GEMV path (see the constructor)
  gpu::Gemm gemm_;
  gpu::Attention attn_;
  std::shared_ptr<const Model> m_;
  const ST* embedding_ = nullptr;
  const ST* classifier_ = nullptr;
  const float* final_norm_ = nullptr;
  const float2* rope_table_ = nullptr;
  std::vector<Layer> layers_;
  gpu::DeviceBuffer<ST> k_, v_;
  gpu::DeviceBuffer<float> aux_;
  std::int64_t kv_slots_ = 0, aux_slots_ = 0;
  bool per_sequence_gemms_ = false;
  bool batched_decode_attention_ = false;
  gpu::KvStore<ST> kv_st_{};  // K/V storage: k_ / v_, or a BlockPool's arena (bind_arena)
  gpu::AuxStore aux_st_{};
  gpu::DeviceBuffer<ST> xn_, qkv_, att_, gu_, h_;
  gpu::DeviceBuffer<float> scores_dev_, logits_dev_, rows_logits_;
  gpu::DeviceBuffer<std::uint8_t> keep_dev_;
  std::array<std::vector<gpu::VarlenSeq>, 2> decode_groups_;  // run_layer_batch: one-row and 2..4-row decode launches
  gpu::PinnedBuffer<std::uint8_t> keep_host_;
  gpu::PinnedBuffer<float> readback_, logits_host_;  // readback_: a layer's scores (or keep flags)
  gpu::Event scores_ready_;                          // the read-back has landed in readback_
  std::array<Staging, 2> staging_;
  std::size_t next_staging_ = 0;
  DecodeGraph graph_;
  gpu::ProfileHook prof_;  // op-boundary marks (a null test unless a Profiler is attached)
};

/// The default CUDA backend: bf16 storage (the dtype Llama 2 was trained in).
using CudaBackend = BasicCudaBackend<gpu::bf16>;
/// fp16 storage: 3 more mantissa bits than bf16, range up to 65504 (fp16 checkpoints upload as is).
using CudaBackendFp16 = BasicCudaBackend<gpu::fp16>;
/// fp32 storage and fp32 GEMMs (no TF32): the verification mode. It computes what the CPU
/// reference computes (same greedy ids); 2x the memory of bf16 and a simple attention kernel.
using CudaBackendFp32 = BasicCudaBackend<float>;

static_assert(AttentionBackend<CudaBackend> && BatchedBackend<CudaBackend>);
static_assert(AttentionBackend<CudaBackendFp16>);
static_assert(AttentionBackend<CudaBackendFp32>);

}  // namespace lazyllm
