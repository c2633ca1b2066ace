// SPDX-License-Identifier: MIT
// Megatron-style tensor-parallel sharding of a Llama-architecture model: which query heads, KV
// heads and FFN units each rank holds, and one rank's slice of the weights.
#pragma once
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "lazyllm/config/model_config.hpp"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/model/dtype.hpp"
#include "lazyllm/model/weights.hpp"

namespace lazyllm {

/// Which part of a tensor-parallel group a model or backend is: rank `rank` of `size`. {0, 1} is
/// the whole model.
struct Shard {
  int rank = 0;
  int size = 1;
  friend bool operator==(const Shard&, const Shard&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Shard& s) {
    return os << "rank " << s.rank << " of " << s.size;
  }
};

/// The heads and FFN units one rank holds: query heads [q_first, q_first + n_q), KV heads
/// [kv_first, kv_first + n_kv), hidden units [ffn_first, ffn_first + n_ffn).
struct ShardRanges {
  int q_first = 0, n_q = 0;
  int kv_first = 0, n_kv = 0;
  int ffn_first = 0, n_ffn = 0;
  friend bool operator==(const ShardRanges&, const ShardRanges&) = default;
};

/// Splits `c` over `s.size` ranks. Query heads split evenly (tp must divide n_heads); KV heads
/// split evenly when tp divides n_kv_heads, and are replicated when n_kv_heads divides tp (each
/// rank holds the one KV head its query heads use: GQA models with fewer KV heads than ranks,
/// e.g. Llama 2 70B's 8 at tp = 16); FFN units split into near-equal contiguous ranges.
/// Throws InvalidArgument for a rank outside the group, ConfigError for a model that does not
/// split, each in one line.
inline ShardRanges shard_ranges(const RuntimeConfig& c, Shard s) {
  c.validate();
  if (s.size < 1) throw InvalidArgument("tensor parallel: tp = " + std::to_string(s.size) + " must be at least 1");
  if (s.rank < 0 || s.rank >= s.size)
    throw InvalidArgument("tensor parallel: rank " + std::to_string(s.rank) + " is outside 0.." +
                          std::to_string(s.size - 1));
  const std::string tp = "tensor parallel over " + std::to_string(s.size) + " ranks: ";
  if (c.n_heads % s.size != 0)
    throw ConfigError(tp + "the model's " + std::to_string(c.n_heads) +
                      " query heads do not split evenly (tp must divide n_heads)");
  if (c.n_kv_heads % s.size != 0 && s.size % c.n_kv_heads != 0)
    throw ConfigError(tp + "the model's " + std::to_string(c.n_kv_heads) +
                      " KV heads neither split evenly nor replicate evenly (tp must divide n_kv_heads or be a "
                      "multiple of it)");
  if (c.hidden_dim < s.size)
    throw ConfigError(tp + "the model's FFN has only " + std::to_string(c.hidden_dim) + " units");
  ShardRanges r;
  r.n_q = c.n_heads / s.size;
  r.q_first = s.rank * r.n_q;
  if (c.n_kv_heads % s.size == 0) {
    r.n_kv = c.n_kv_heads / s.size;
    r.kv_first = s.rank * r.n_kv;
  } else {  // replicated: this rank's query heads all lie in one KV group
    r.n_kv = 1;
    r.kv_first = r.q_first / c.group_size();
  }
  const std::int64_t h = c.hidden_dim;
  r.ffn_first = int(h * s.rank / s.size);
  r.n_ffn = int(h * (s.rank + 1) / s.size) - r.ffn_first;
  return r;
}

/// One rank's part of a model, in the checkpoint's dtype: the replicated tensors (embedding,
/// norms, classifier) as they are, and per layer the rows and columns of its heads and FFN
/// units. Row slices are views into `w`'s storage (kept alive here); column slices (wo, w2) are
/// copies. Shapes (row-major [out, in], hd = head_dim): wq [n_q hd, dim], wk and wv
/// [n_kv hd, dim], wo [dim, n_q hd], w1 and w3 [n_ffn, dim], w2 [dim, n_ffn]; the q/k/v biases
/// (when the model has them) [n_q hd], [n_kv hd], [n_kv hd]; q_norm and k_norm whole.
struct ShardWeights {
  RuntimeConfig config;  // the whole model's
  Shard shard;
  ShardRanges ranges;
  WeightView token_embedding, final_norm, classifier;
  std::vector<LayerWeights> layers;
  std::vector<std::shared_ptr<const void>> storage;

  /// Calls f(view, element_count) for every tensor of the shard (a tied classifier once).
  template <class F>
  void for_each(F&& f) {
    const std::int64_t d = config.dim, hd = config.head_dim(), v = config.vocab_size;
    const std::int64_t q = std::int64_t(ranges.n_q) * hd, kv = std::int64_t(ranges.n_kv) * hd, h = ranges.n_ffn;
    const bool tied = classifier == token_embedding;
    f(token_embedding, v * d);
    if (!tied) f(classifier, v * d);
    f(final_norm, d);
    for (auto& l : layers) {
      f(l.attn_norm, d);
      f(l.ffn_norm, d);
      f(l.wq, q * d);
      f(l.wk, kv * d);
      f(l.wv, kv * d);
      f(l.wo, d * q);
      f(l.w1, h * d);
      f(l.w2, d * h);
      f(l.w3, h * d);
      if (config.attention_bias) {
        f(l.bq, q);
        f(l.bk, kv);
        f(l.bv, kv);
      }
      if (config.qk_norm) {
        f(l.q_norm, config.head_dim());
        f(l.k_norm, config.head_dim());
      }
    }
  }
};

namespace detail {
/// Rows [first, first + n) of a row-major matrix of `cols` columns: a view.
inline WeightView row_slice(const WeightView& m, std::int64_t first, std::int64_t cols) {
  const auto* b = static_cast<const unsigned char*>(m.data());
  return WeightView(b + first * cols * std::int64_t(dtype_size(m.dtype())), m.dtype());
}

/// Columns [first, first + n) of a row-major [rows, cols] matrix: a copy (owned by `storage`),
/// or the matrix itself when that is all of it.
inline WeightView col_slice(const WeightView& m, std::int64_t rows, std::int64_t cols, std::int64_t first,
                            std::int64_t n, std::vector<std::shared_ptr<const void>>& storage) {
  if (first == 0 && n == cols) return m;
  const std::int64_t eb = std::int64_t(dtype_size(m.dtype()));
  auto buf = std::make_shared<std::vector<unsigned char>>(std::size_t(rows * n * eb));
  const auto* src = static_cast<const unsigned char*>(m.data());
  for (std::int64_t r = 0; r < rows; ++r)
    std::memcpy(buf->data() + r * n * eb, src + (r * cols + first) * eb, std::size_t(n * eb));
  storage.push_back(buf);
  return WeightView(buf->data(), m.dtype());
}
}  // namespace detail

/// Rank `s.rank`'s part of `w` (see ShardWeights); throws as shard_ranges does.
inline ShardWeights shard_weights(const ModelWeights& w, Shard s) {
  const RuntimeConfig& c = w.config;
  c.validate();
  if (int(w.layers.size()) != c.n_layers)
    throw ConfigError("shard_weights: weights have " + std::to_string(w.layers.size()) + " layers, config says " +
                      std::to_string(c.n_layers));
  ShardWeights out;
  out.config = c;
  out.shard = s;
  out.ranges = shard_ranges(c, s);
  out.storage = w.storage;
  out.token_embedding = w.token_embedding;
  out.final_norm = w.final_norm;
  out.classifier = w.classifier;
  const ShardRanges& r = out.ranges;
  const std::int64_t d = c.dim, hd = c.head_dim(), h = c.hidden_dim;
  // A tensor that several layers share (synthetic models) is copied once.
  std::map<std::tuple<const void*, std::int64_t, std::int64_t, std::int64_t, std::int64_t>, WeightView> copies;
  auto cols = [&](const WeightView& m, std::int64_t rows, std::int64_t n_cols, std::int64_t first, std::int64_t n) {
    const auto key = std::make_tuple(m.data(), rows, n_cols, first, n);
    if (auto it = copies.find(key); it != copies.end()) return it->second;
    return copies[key] = detail::col_slice(m, rows, n_cols, first, n, out.storage);
  };
  for (const LayerWeights& l : w.layers) {
    LayerWeights o;
    o.attn_norm = l.attn_norm;
    o.ffn_norm = l.ffn_norm;
    o.wq = detail::row_slice(l.wq, std::int64_t(r.q_first) * hd, d);
    o.wk = detail::row_slice(l.wk, std::int64_t(r.kv_first) * hd, d);
    o.wv = detail::row_slice(l.wv, std::int64_t(r.kv_first) * hd, d);
    o.wo = cols(l.wo, d, std::int64_t(c.n_heads) * hd, std::int64_t(r.q_first) * hd, std::int64_t(r.n_q) * hd);
    o.w1 = detail::row_slice(l.w1, r.ffn_first, d);
    o.w3 = detail::row_slice(l.w3, r.ffn_first, d);
    o.w2 = cols(l.w2, d, h, r.ffn_first, r.n_ffn);
    if (c.attention_bias) {  // a bias splits with its projection's rows
      o.bq = detail::row_slice(l.bq, std::int64_t(r.q_first) * hd, 1);
      o.bk = detail::row_slice(l.bk, std::int64_t(r.kv_first) * hd, 1);
      o.bv = detail::row_slice(l.bv, std::int64_t(r.kv_first) * hd, 1);
    }
    o.q_norm = l.q_norm;  // per-head weights: every rank needs all of them
    o.k_norm = l.k_norm;
    out.layers.push_back(o);
  }
  return out;
}

/// `s` with every fp16/bf16 tensor replaced by an fp32 copy (a tied classifier stays tied).
inline ShardWeights to_f32(ShardWeights s) {
  const bool tied = s.classifier == s.token_embedding;
  s.for_each([&](WeightView& t, std::int64_t n) {
    if (t.dtype() == TensorDType::F32 || t.empty()) return;
    auto buf = std::make_shared<std::vector<float>>(std::size_t(n));
    t.to_f32(0, n, buf->data());
    t = WeightView(buf->data());
    s.storage.push_back(std::move(buf));
  });
  if (tied) s.classifier = s.token_embedding;
  return s;
}

}  // namespace lazyllm
