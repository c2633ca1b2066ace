// SPDX-License-Identifier: MIT
// The weights of a Llama-architecture model as the loaders produce them: a configuration and a
// typed view of every tensor (fp32, or fp16/bf16 straight from the checkpoint).
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lazyllm/config/model_config.hpp"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/model/dtype.hpp"

namespace lazyllm {

/// One weight tensor, not owned: fp32 data (a view into a mapped fp32 file, or a converted copy)
/// or, for a checkpoint loaded with `LoadOptions::keep_source_dtype`, fp16/bf16 data straight
/// from the mapped file. A view carries its extent (element count) when it is built from a span or
/// with a count, as the loaders do; check_weights() compares it with the shape the config implies
/// where weights are bound, and to_f32() never reads past it. A bare `const float*` still converts
/// (implicitly: hand-made weights read as before) but carries no extent (size() == -1), so nothing
/// can check it: prefer a span. Read back as fp32 only through `f32()`, which refuses other dtypes.
class WeightView {
 public:
  static constexpr std::int64_t kUnknownSize = -1;

  WeightView() = default;
  WeightView(const float* p) noexcept : data_(p) {}  // implicit on purpose: fp32 pointers are views
  WeightView(std::span<const float> s) noexcept : data_(s.data()), size_(std::int64_t(s.size())) {}  // implicit too
  WeightView(const void* p, TensorDType t, std::int64_t size = kUnknownSize) noexcept
      : data_(p), dtype_(t), size_(size) {}

  const void* data() const noexcept { return data_; }
  TensorDType dtype() const noexcept { return dtype_; }
  bool empty() const noexcept { return data_ == nullptr; }
  /// Number of elements, or kUnknownSize for a view built from a bare pointer.
  std::int64_t size() const noexcept { return size_; }
  bool has_size() const noexcept { return size_ >= 0; }

  /// The fp32 data. Throws Error when the weight is held as fp16/bf16 (see to_f32_weights()).
  const float* f32() const {
    if (dtype_ != TensorDType::F32)
      throw Error(std::string("a weight is held as ") + to_string(dtype_) +
                  " where fp32 is needed (load without keep_source_dtype, or convert with to_f32_weights())");
    return static_cast<const float*>(data_);
  }

  /// Elements [first, first + n) converted to fp32 (exact for every dtype). 2-byte elements are
  /// read with memcpy, so the data need not be aligned (safetensors data often is not). Throws
  /// Error for a range outside a known extent.
  void to_f32(std::int64_t first, std::int64_t n, float* out) const {
    if (first < 0 || n < 0 || (has_size() && first > size_ - n))
      throw Error("weight read of elements [" + std::to_string(first) + ", " + std::to_string(first + n) +
                  ") is outside the tensor's " + std::to_string(size_) + " elements");
    const auto* b = static_cast<const unsigned char*>(data_);
    if (dtype_ == TensorDType::F32) {
      std::memcpy(out, b + first * 4, std::size_t(n) * 4);
      return;
    }
    for (std::int64_t i = 0; i < n; ++i) {
      std::uint16_t u;
      std::memcpy(&u, b + (first + i) * 2, 2);
      out[i] = dtype_ == TensorDType::F16 ? detail::f16_to_f32(u) : detail::bf16_to_f32(u);
    }
  }
  float at(std::int64_t i) const {
    float v;
    to_f32(i, 1, &v);
    return v;
  }

  friend bool operator==(const WeightView&, const WeightView&) = default;

 private:
  const void* data_ = nullptr;
  TensorDType dtype_ = TensorDType::F32;
  std::int64_t size_ = kUnknownSize;
};

/// One decoder layer. Every matrix is row-major [out_features, in_features] (y = W x), the
/// layout of both llama2.c and Hugging Face checkpoints.
struct LayerWeights {
  WeightView attn_norm;  // [dim]
  WeightView wq;         // [n_heads * head_dim, dim]
  WeightView wk;         // [n_kv_heads * head_dim, dim]
  WeightView wv;         // [n_kv_heads * head_dim, dim]
  WeightView wo;         // [dim, n_heads * head_dim]
  WeightView ffn_norm;   // [dim]
  WeightView w1;         // gate [hidden_dim, dim]
  WeightView w2;         // down [dim, hidden_dim]
  WeightView w3;         // up   [hidden_dim, dim]
  // Present only when the config asks for them (empty views otherwise):
  WeightView bq{}, bk{}, bv{};    // attention_bias: [n_heads * head_dim], [n_kv_heads * head_dim] x 2
  WeightView q_norm{}, k_norm{};  // qk_norm: [head_dim] each (shared by every head)
};

/// A loaded model: its configuration and a view of every weight. The views point either into a
/// memory-mapped file (fp32 checkpoints, and fp16/bf16 ones loaded with keep_source_dtype: zero
/// copy) or into buffers converted at load time; `storage` keeps whichever it is alive, so copies
/// of ModelWeights share it.
struct ModelWeights {
  RuntimeConfig config;
  std::string source;                // file or directory it was read from
  std::string source_dtype = "f32";  // dtype of the tensors in the file ("f32", "f16", "bf16")
  WeightView token_embedding;        // [vocab, dim]
  std::vector<LayerWeights> layers;
  WeightView final_norm;  // [dim]
  WeightView classifier;  // [vocab, dim]; == token_embedding when tied
  std::vector<std::shared_ptr<const void>> storage;

  /// True when every tensor is fp32 (what the CPU reference computes with).
  bool all_f32() const;
};

static_assert(sizeof(LayerWeights) == 14 * sizeof(WeightView),
              "lazyllm: a LayerWeights field was added: for_each_weight() below must visit it");

/// Calls f(name, view, element_count) for every tensor of `w` (W may be const), in
/// file-independent order: embedding, classifier unless it is tied to the embedding, final norm,
/// then per layer attn_norm, ffn_norm, wq, wk, wv, wo, w1, w2, w3, then bq, bk, bv when the config
/// has attention biases and q_norm, k_norm when it has qk_norm. `name` spells the member
/// ("token_embedding", "layers[3].wq") for messages; it is built only when f takes it.
template <class W, class F>
void for_each_named_weight(W& w, F&& f) {
  const auto& c = w.config;
  const std::int64_t d = c.dim, qd = c.q_dim(), kvd = c.kv_dim(), h = c.hidden_dim, v = c.vocab_size, hd = c.head_dim();
  const bool tied = w.classifier == w.token_embedding;
  f("token_embedding", w.token_embedding, v * d);
  if (!tied) f("classifier", w.classifier, v * d);
  f("final_norm", w.final_norm, d);
  int i = 0;
  for (auto& l : w.layers) {
    const std::string pre = "layers[" + std::to_string(i++) + "].";
    f(pre + "attn_norm", l.attn_norm, d);
    f(pre + "ffn_norm", l.ffn_norm, d);
    f(pre + "wq", l.wq, qd * d);
    f(pre + "wk", l.wk, kvd * d);
    f(pre + "wv", l.wv, kvd * d);
    f(pre + "wo", l.wo, d * qd);
    f(pre + "w1", l.w1, h * d);
    f(pre + "w2", l.w2, d * h);
    f(pre + "w3", l.w3, h * d);
    if (c.attention_bias) {
      f(pre + "bq", l.bq, qd);
      f(pre + "bk", l.bk, kvd);
      f(pre + "bv", l.bv, kvd);
    }
    if (c.qk_norm) {
      f(pre + "q_norm", l.q_norm, hd);
      f(pre + "k_norm", l.k_norm, hd);
    }
  }
}

/// for_each_named_weight without the names: f(view, element_count).
template <class W, class F>
void for_each_weight(W& w, F&& f) {
  const auto& c = w.config;
  const std::int64_t d = c.dim, qd = c.q_dim(), kvd = c.kv_dim(), h = c.hidden_dim, v = c.vocab_size, hd = c.head_dim();
  const bool tied = w.classifier == w.token_embedding;
  f(w.token_embedding, v * d);
  if (!tied) f(w.classifier, v * d);
  f(w.final_norm, d);
  for (auto& l : w.layers) {
    f(l.attn_norm, d);
    f(l.ffn_norm, d);
    f(l.wq, qd * d);
    f(l.wk, kvd * d);
    f(l.wv, kvd * d);
    f(l.wo, d * qd);
    f(l.w1, h * d);
    f(l.w2, d * h);
    f(l.w3, h * d);
    if (c.attention_bias) {
      f(l.bq, qd);
      f(l.bk, kvd);
      f(l.bv, kvd);
    }
    if (c.qk_norm) {
      f(l.q_norm, hd);
      f(l.k_norm, hd);
    }
  }
}

/// Checks `w` before a backend binds it: a valid config, one LayerWeights per layer, every tensor
/// present, and every tensor that carries an extent holding exactly the elements its shape needs
/// (a shorter buffer would be read out of bounds). Throws ConfigError naming the tensor:
///   "weights: layers[1].wq holds 100 elements, the config needs 1024"
/// Views from bare pointers carry no extent and are trusted. Cheap: no tensor data is read.
inline void check_weights(const ModelWeights& w) {
  w.config.validate();
  const auto& c = w.config;
  if (w.layers.size() != std::size_t(c.n_layers))
    throw ConfigError("weights: " + std::to_string(w.layers.size()) + " layers of weights for a config of " +
                      std::to_string(c.n_layers) + " layers");
  for_each_named_weight(w, [&](const std::string& name, const WeightView& t, std::int64_t n) {
    if (t.empty()) throw ConfigError("weights: " + name + " is missing (a null view)");
    if (t.has_size() && t.size() != n)
      throw ConfigError("weights: " + name + " holds " + std::to_string(t.size()) + " elements, the config needs " +
                        std::to_string(n));
  });
}

inline bool ModelWeights::all_f32() const {
  bool ok = true;
  for_each_weight(*this, [&](const WeightView& t, std::int64_t) { ok = ok && t.dtype() == TensorDType::F32; });
  return ok;
}

/// `w` with every fp16/bf16 tensor replaced by an fp32 copy (owned by the result's storage; a
/// tied classifier stays tied). Tensors already fp32 are kept as they are, so this is free for
/// fp32 checkpoints.
/// Checks `w` first (check_weights: the CPU backend binds its weights through here).
inline ModelWeights to_f32_weights(ModelWeights w) {
  check_weights(w);
  if (w.all_f32()) return w;
  const bool tied = w.classifier == w.token_embedding;
  for_each_weight(w, [&](WeightView& t, std::int64_t n) {
    if (t.dtype() == TensorDType::F32 || t.empty()) return;
    auto buf = std::make_shared<std::vector<float>>(std::size_t(n));
    t.to_f32(0, n, buf->data());
    t = WeightView(std::span<const float>(*buf));
    w.storage.push_back(std::move(buf));
  });
  if (tied) w.classifier = w.token_embedding;
  return w;
}

}  // namespace lazyllm
