// SPDX-License-Identifier: MIT
// What each backend needs in memory for a model and a context, known before anything is loaded
// (host-only arithmetic: the CUDA backend's constructor checks its weights against the same
// formula, and the driver checks the whole run before loading).
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

#include "lazyllm/config/model_config.hpp"
#include "lazyllm/detail/format.hpp"

namespace lazyllm {

/// What a run needs in one memory (host RAM or GPU memory), in bytes.
struct MemoryNeed {
  std::string where;  // "RAM" or "GPU memory"
  std::uint64_t weights = 0, kv_cache = 0, aux_cache = 0, activations = 0;
  std::string weights_note;  // e.g. "fp32"
  std::uint64_t total() const { return weights + kv_cache + aux_cache + activations; }
  /// "weights 1015.8 KiB (fp32) + KV cache 640.0 KiB + ... = 2.1 MiB"
  std::string breakdown() const {
    using detail::format_bytes;
    std::string s = "weights " + format_bytes(weights);
    if (!weights_note.empty()) s += " (" + weights_note + ")";
    if (kv_cache) s += " + KV cache " + format_bytes(kv_cache);
    if (aux_cache) s += " + Aux Cache " + format_bytes(aux_cache);
    if (activations) s += " + activations/workspace ~" + format_bytes(activations);
    return s + " = " + format_bytes(total());
  }
};

namespace detail {

/// Per-row scratch of one layer (x, its copy, the normed input, q, k, v, attention output, the
/// output projection, gate and up) for `rows` rows, plus the logits and per-head scores.
inline std::uint64_t activation_bytes(const RuntimeConfig& c, std::uint64_t rows) {
  const std::uint64_t d = std::uint64_t(c.dim), kvd = std::uint64_t(c.kv_dim()), hid = std::uint64_t(c.hidden_dim),
                      qd = std::uint64_t(c.q_dim());
  return rows * (4 * d + 2 * qd + 2 * kvd + 2 * hid) * 4 + std::uint64_t(c.vocab_size) * 4 +
         std::uint64_t(c.n_heads) * rows * 4;
}

}  // namespace detail

/// The CPU backend: fp32 weights (mapped or converted at load), fp32 K and V for every layer and
/// position of the context, the fp32 Aux Cache of `aux_layers` layers, and the activations of a
/// prefill as long as the context.
inline MemoryNeed cpu_memory_need(const RuntimeConfig& c, int n_ctx, int aux_layers) {
  MemoryNeed m;
  m.where = "RAM";
  m.weights = std::uint64_t(c.n_params()) * 4;
  m.weights_note = "fp32";
  const std::uint64_t ctx = std::uint64_t(n_ctx);
  m.kv_cache = 2 * std::uint64_t(c.n_layers) * ctx * std::uint64_t(c.kv_dim()) * 4;
  m.aux_cache = std::uint64_t(aux_layers) * ctx * std::uint64_t(c.dim) * 4;
  m.activations = detail::activation_bytes(c, ctx);
  return m;
}

/// Values the CUDA backend stores for the weight matrices (embedding, classifier when untied, and
/// each layer's projections, the FFN padded to a multiple of 8 with zeros).
inline std::uint64_t gpu_stored_weight_values(const RuntimeConfig& c) {
  const std::uint64_t d = std::uint64_t(c.dim), kvd = std::uint64_t(c.kv_dim()), v = std::uint64_t(c.vocab_size),
                      hid = (std::uint64_t(c.hidden_dim) + 7) / 8 * 8, qd = std::uint64_t(c.q_dim());
  const std::uint64_t per_layer = (qd + 2 * kvd) * d + d * qd + 2 * hid * d + d * hid;
  return v * d * (c.tied_embeddings ? 1 : 2) + std::uint64_t(c.n_layers) * per_layer;
}

/// fp32 values the CUDA backend keeps per model for the q/k/v biases (attention_bias) and the q/k
/// norms (qk_norm), all layers together.
inline std::int64_t gpu_attention_extra_values(const RuntimeConfig& c) {
  const std::int64_t per_layer = (c.attention_bias ? std::int64_t(c.q_dim()) + 2 * std::int64_t(c.kv_dim()) : 0) +
                                 (c.qk_norm ? 2 * std::int64_t(c.head_dim()) : 0);
  return per_layer * c.n_layers;
}

/// The CUDA backend's model on the GPU: the weight matrices in its storage type (`store_bytes` per
/// value), the fp32 norms (and biases, q/k norms) and the RoPE table (cos and sin, fp32, per
/// position and pair).
inline std::uint64_t gpu_weight_bytes(const RuntimeConfig& c, int store_bytes) {
  const std::uint64_t d = std::uint64_t(c.dim), layers = std::uint64_t(c.n_layers);
  return gpu_stored_weight_values(c) * std::uint64_t(store_bytes) + (layers * 2 + 1) * d * 4 +
         std::uint64_t(gpu_attention_extra_values(c)) * 4 +
         std::uint64_t(c.max_seq_len) * std::uint64_t(c.head_dim() / 2) * 8;
}

/// The CUDA backend: its weights (gpu_weight_bytes), K and V in the storage type, the fp32 Aux
/// Cache, and activations plus GEMM workspace and scratch (an estimate: 64 MiB).
inline MemoryNeed gpu_memory_need(const RuntimeConfig& c, int n_ctx, int aux_layers, int store_bytes = 2,
                                  const std::string& store_name = "bf16") {
  MemoryNeed m;
  m.where = "GPU memory";
  const std::uint64_t ctx = std::uint64_t(n_ctx), sb = std::uint64_t(store_bytes);
  m.weights = gpu_weight_bytes(c, store_bytes);
  m.weights_note = store_name;
  m.kv_cache = 2 * std::uint64_t(c.n_layers) * ctx * std::uint64_t(c.kv_dim()) * sb;
  m.aux_cache = std::uint64_t(aux_layers) * ctx * std::uint64_t(c.dim) * 4;
  m.activations = detail::activation_bytes(c, ctx) + (std::uint64_t(64) << 20);
  return m;
}

/// Host RAM while the CUDA backend uploads: one tensor at a time through a staging buffer in the
/// storage type (the checkpoint stays memory-mapped: page cache, not a copy).
inline MemoryNeed gpu_upload_host_need(const RuntimeConfig& c, int store_bytes = 2,
                                       const std::string& store_name = "bf16") {
  MemoryNeed m;
  m.where = "RAM";
  const std::uint64_t widest =
      std::max({std::uint64_t(c.vocab_size), std::uint64_t(c.hidden_dim) + 8, std::uint64_t(c.q_dim())});
  m.weights = widest * std::uint64_t(c.dim) * std::uint64_t(store_bytes);
  m.weights_note = store_name + " staging of the largest tensor for the GPU upload; the file stays mapped";
  return m;
}

}  // namespace lazyllm
