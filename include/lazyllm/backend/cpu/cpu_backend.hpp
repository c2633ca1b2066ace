// SPDX-License-Identifier: MIT
// The CPU fp32 reference backend: the ground truth every other backend is compared with.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lazyllm/backend/attention_backend.hpp"
#include "lazyllm/backend/cpu/ops.hpp"
#include "lazyllm/cache/kv_store.hpp"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/model/weights.hpp"

namespace lazyllm {

/// The CPU model: the configuration and fp32 weights, immutable once built. Shared (through
/// std::shared_ptr<const CpuModel>) by every CpuBackend, engine and thread that runs it.
class CpuModel {
 public:
  /// fp16/bf16 weights (a checkpoint loaded with keep_source_dtype) are converted to fp32 here.
  explicit CpuModel(ModelWeights w) : w_(to_f32_weights(std::move(w))) {
    w_.config.validate();
    if (int(w_.layers.size()) != w_.config.n_layers)
      throw ConfigError("CpuBackend: weights have " + std::to_string(w_.layers.size()) + " layers, config says " +
                        std::to_string(w_.config.n_layers));
  }
  const RuntimeConfig& config() const { return w_.config; }
  const ModelWeights& weights() const { return w_; }

 private:
  ModelWeights w_;
};

class CpuBackend {
 public:
  using Model = CpuModel;
  /// rows x dim activations in host memory.
  struct Activations {
    int rows = 0;
    int dim = 0;
    std::vector<float> data;
    void resize(int r, int d) {
      rows = r;
      dim = d;
      data.resize(std::size_t(r) * std::size_t(d));
    }
    float* row(int r) { return data.data() + std::size_t(r) * std::size_t(dim); }
    const float* row(int r) const { return data.data() + std::size_t(r) * std::size_t(dim); }
  };

  /// A backend with a model of its own (fp16/bf16 weights are converted to fp32).
  explicit CpuBackend(ModelWeights w) : CpuBackend(std::make_shared<const CpuModel>(std::move(w))) {}
  /// A backend over a shared model (no copy of the weights).
  explicit CpuBackend(std::shared_ptr<const CpuModel> m) : m_(std::move(m)) {
    if (!m_) throw InvalidArgument("CpuBackend: no model");
  }
  // A copy has storage of its own (or the same arena): its descriptors are rebuilt for it.
  CpuBackend(const CpuBackend& o) : m_(o.m_), k_(o.k_), v_(o.v_), aux_(o.aux_), arena_(o.arena_), geom_(o.geom_) {
    rebind();
  }
  CpuBackend& operator=(const CpuBackend& o) {
    if (this != &o) *this = CpuBackend(o);
    return *this;
  }
  CpuBackend(CpuBackend&&) noexcept = default;  // vectors keep their buffers: descriptors stay valid
  CpuBackend& operator=(CpuBackend&&) noexcept = default;

  const RuntimeConfig& config() const { return m_->config(); }
  const ModelWeights& weights() const { return m_->weights(); }
  const std::shared_ptr<const CpuModel>& model() const { return m_; }
  static constexpr std::string_view name() { return "cpu"; }
  std::int64_t aux_bytes_per_token() const { return std::int64_t(config().dim) * std::int64_t(sizeof(float)); }
  std::int64_t kv_token_bytes() const { return 2 * std::int64_t(config().kv_dim()) * std::int64_t(sizeof(float)); }
  void synchronize() {}

  /// Storage of its own: K and V (kv_slots x kv_dim each) and the Aux Cache (aux_slots x dim).
  void allocate(std::int64_t kv_slots, std::int64_t aux_slots) {
    const auto kvd = std::size_t(config().kv_dim());
    k_.assign(std::size_t(kv_slots) * kvd, 0.0f);
    v_.assign(std::size_t(kv_slots) * kvd, 0.0f);
    aux_.assign(std::size_t(aux_slots) * std::size_t(config().dim), 0.0f);
    arena_ = nullptr;
    rebind();
  }
  /// Host memory for a BlockPool's arena.
  static ArenaAllocator arena_allocator() { return host_arena_allocator(); }
  /// Keeps K/V and Aux Cache entries in a BlockPool's arena (slots are the pool's): block b
  /// holds the K of its B slots then their V, or aux_per_block() Aux entries.
  void bind_arena(const BlockPool& pool) {
    const PoolGeometry& g = pool.geometry();
    if (g.kv_token_bytes != kv_token_bytes() || g.aux_token_bytes != aux_bytes_per_token() ||
        g.aux_per_block() != int(g.block_bytes() / g.aux_token_bytes))
      throw InvalidArgument("CpuBackend::bind_arena: the pool was made for another model or storage type");
    void* arena = pool.arena();
    k_ = {};
    v_ = {};
    aux_ = {};
    arena_ = arena;
    geom_ = g;
    rebind();
  }

  void embed(std::span<const std::int32_t> ids, Activations& x) const {
    const int d = config().dim;
    const float* emb = weights().token_embedding.f32();
    x.resize(int(ids.size()), d);
    for (std::size_t i = 0; i < ids.size(); ++i) std::copy_n(emb + std::int64_t(ids[i]) * d, d, x.row(int(i)));
  }

  void gather(const Activations& src, std::span<const std::int32_t> src_rows, std::span<const std::int64_t> aux_slots,
              Activations& dst) const {
    const int d = config().dim;
    dst.resize(int(src_rows.size()), d);
    for (std::size_t i = 0; i < src_rows.size(); ++i) {
      const float* from = src_rows[i] >= 0 ? src.row(src_rows[i]) : aux_store_.at(aux_slots[i]);
      std::copy_n(from, d, dst.row(int(i)));
    }
  }

  void store_aux(const Activations& x, std::span<const std::int32_t> rows, std::span<const std::int64_t> aux_slots) {
    const int d = config().dim;
    for (std::size_t i = 0; i < rows.size(); ++i) std::copy_n(x.row(rows[i]), d, aux_store_.at(aux_slots[i]));
  }

  /// One decoder layer: x += Wo attn(rope(Wq n(x)), rope(Wk n(x)), Wv n(x)); x += W2 swiglu(n(x)).
  void layer(const LayerCall& call, Activations& x, std::span<float> scores) {
    const SeqSpan one{0, x.rows, 0, std::int64_t(call.kv_pos.size()), call.want_scores};
    layer_batch({call.layer, call.q_pos, call.q_slots, call.kv_pos, call.kv_slots, {&one, 1}}, x, scores);
  }

  /// One decoder layer over several sequences: every row is computed exactly as in a call of its
  /// sequence alone (the same operations in the same order), so batching changes no bit.
  void layer_batch(const BatchLayerCall& call, Activations& x, std::span<float> scores) {
    const auto& c = config();
    const auto& lw = weights().layers[std::size_t(call.layer)];
    const int rows = x.rows, d = c.dim, hd = c.head_dim(), kvd = c.kv_dim(), hid = c.hidden_dim;
    if (int(call.q_pos.size()) != rows || int(call.q_slots.size()) != rows ||
        call.kv_slots.size() != call.kv_pos.size())
      throw InvalidArgument("CpuBackend::layer: index arrays do not match the activations (" + std::to_string(rows) +
                            " rows)");
    row_seq_.resize(std::size_t(rows));
    for (std::size_t s = 0; s < call.seqs.size(); ++s)
      for (int r = 0; r < call.seqs[s].rows; ++r) row_seq_[std::size_t(call.seqs[s].row_begin + r)] = int(s);

    // Attention block: norm, projections, RoPE at original positions, K/V into their slots.
    std::vector<float> xn(std::size_t(rows) * d), q(std::size_t(rows) * d), k(std::size_t(rows) * kvd),
        v(std::size_t(rows) * kvd);
    for (int r = 0; r < rows; ++r)
      cpu::rmsnorm(xn.data() + std::size_t(r) * d, x.row(r), lw.attn_norm.f32(), d, c.norm_eps);
    cpu::matmul(q.data(), xn.data(), lw.wq.f32(), rows, d, d);
    cpu::matmul(k.data(), xn.data(), lw.wk.f32(), rows, d, kvd);
    cpu::matmul(v.data(), xn.data(), lw.wv.f32(), rows, d, kvd);
    for (int r = 0; r < rows; ++r) {
      for (int h = 0; h < c.n_heads; ++h)
        cpu::rope(q.data() + std::size_t(r) * d + std::size_t(h) * hd, hd, call.q_pos[r], c.rope_theta, c.rope_style);
      for (int h = 0; h < c.n_kv_heads; ++h)
        cpu::rope(k.data() + std::size_t(r) * kvd + std::size_t(h) * hd, hd, call.q_pos[r], c.rope_theta, c.rope_style);
      std::copy_n(k.data() + std::size_t(r) * kvd, kvd, kv_.k_at(call.q_slots[r]));
      std::copy_n(v.data() + std::size_t(r) * kvd, kvd, kv_.v_at(call.q_slots[r]));
    }

    // Causal attention over each sequence's S_l: row r sees its sequence's keys whose position is
    // <= its own.
    std::vector<float> att(std::size_t(rows) * d);
    const std::size_t n_kv_all = call.kv_pos.size();
    bool any_scores = false;
    for (const auto& sp : call.seqs) any_scores = any_scores || sp.want_scores;
    if (any_scores) head_probs_.assign(std::size_t(c.n_heads) * n_kv_all, 0.0f);
    const float scale = 1.0f / std::sqrt(float(hd));
    const int group = c.group_size();
    std::int64_t max_kv = 1;
    for (const auto& sp : call.seqs) max_kv = std::max(max_kv, sp.n_kv);
    detail::parallel_for(std::int64_t(rows) * c.n_heads, max_kv * hd * 2, [&](std::int64_t b, std::int64_t e) {
      std::vector<float> p(static_cast<std::size_t>(max_kv));
      for (std::int64_t t = b; t < e; ++t) {
        const int r = int(t / c.n_heads), h = int(t % c.n_heads), kh = h / group;
        const SeqSpan& sp = call.seqs[std::size_t(row_seq_[std::size_t(r)])];
        const auto kv_pos = call.kv_pos.subspan(std::size_t(sp.kv_begin), std::size_t(sp.n_kv));
        const auto kv_slots = call.kv_slots.subspan(std::size_t(sp.kv_begin), std::size_t(sp.n_kv));
        const int n_vis = int(std::upper_bound(kv_pos.begin(), kv_pos.end(), call.q_pos[r]) - kv_pos.begin());
        const float* qh = q.data() + std::size_t(r) * d + std::size_t(h) * hd;
        for (int j = 0; j < n_vis; ++j)
          p[std::size_t(j)] = cpu::dot(qh, kv_.k_at(kv_slots[j]) + std::int64_t(kh) * hd, hd) * scale;
        cpu::softmax(p.data(), n_vis);
        float* out = att.data() + std::size_t(r) * d + std::size_t(h) * hd;
        std::fill_n(out, hd, 0.0f);
        for (int j = 0; j < n_vis; ++j) {
          const float* vj = kv_.v_at(kv_slots[j]) + std::int64_t(kh) * hd;
          for (int i = 0; i < hd; ++i) out[i] += p[std::size_t(j)] * vj[i];
        }
        if (sp.want_scores && r == sp.row_begin + sp.rows - 1) {
          // Each head writes its own row; keys after the last query (none) stay zero.
          std::copy_n(p.data(), n_vis, head_probs_.data() + std::size_t(h) * n_kv_all + std::size_t(sp.kv_begin));
        }
      }
    });
    for (const auto& sp : call.seqs) {
      if (!sp.want_scores) continue;
      for (std::int64_t j = sp.kv_begin; j < sp.kv_begin + sp.n_kv; ++j) {
        double s = 0.0;
        for (int h = 0; h < c.n_heads; ++h) s += head_probs_[std::size_t(h) * n_kv_all + std::size_t(j)];
        scores[std::size_t(j)] = static_cast<float>(s / c.n_heads);
      }
    }
    std::vector<float> o(std::size_t(rows) * d);
    cpu::matmul(o.data(), att.data(), lw.wo.f32(), rows, d, d);
    for (std::size_t i = 0; i < o.size(); ++i) x.data[i] += o[i];

    // FFN block: x += W2 (silu(W1 n(x)) * W3 n(x)).
    for (int r = 0; r < rows; ++r)
      cpu::rmsnorm(xn.data() + std::size_t(r) * d, x.row(r), lw.ffn_norm.f32(), d, c.norm_eps);
    std::vector<float> g(std::size_t(rows) * hid), u(std::size_t(rows) * hid);
    cpu::matmul(g.data(), xn.data(), lw.w1.f32(), rows, d, hid);
    cpu::matmul(u.data(), xn.data(), lw.w3.f32(), rows, d, hid);
    for (int r = 0; r < rows; ++r) cpu::swiglu(g.data() + std::size_t(r) * hid, u.data() + std::size_t(r) * hid, hid);
    cpu::matmul(o.data(), g.data(), lw.w2.f32(), rows, hid, d);
    for (std::size_t i = 0; i < o.size(); ++i) x.data[i] += o[i];
  }

  /// Final RMSNorm and classifier of one row.
  std::span<const float> logits(const Activations& x, int row) {
    logits_.resize(std::size_t(config().vocab_size));
    logits_row(x, row, logits_.data());
    return logits_;
  }
  /// The logits of several rows: out holds rows.size() x vocab_size floats.
  void logits_rows(const Activations& x, std::span<const int> rows, std::span<float> out) {
    const auto V = std::size_t(config().vocab_size);
    if (out.size() < rows.size() * V) throw InvalidArgument("CpuBackend::logits_rows: output too small");
    for (std::size_t i = 0; i < rows.size(); ++i) logits_row(x, rows[i], out.data() + i * V);
  }

 private:
  void logits_row(const Activations& x, int row, float* out) const {
    const auto& c = config();
    std::vector<float> xn(std::size_t(c.dim));
    cpu::rmsnorm(xn.data(), x.row(row), weights().final_norm.f32(), c.dim, c.norm_eps);
    cpu::matmul(out, xn.data(), weights().classifier.f32(), 1, c.dim, c.vocab_size);
  }

  void rebind() {
    if (arena_) {
      auto* f = static_cast<float*>(arena_);
      const std::int64_t block_floats = geom_.block_bytes() / std::int64_t(sizeof(float));
      kv_ = KvStore<float>::blocks(f, config().kv_dim(), geom_.block_shift(), block_floats);
      aux_store_ = AuxStore::blocks(f, config().dim, geom_.aux_per_block(), block_floats);
    } else {
      kv_ = KvStore<float>::plain(k_.data(), v_.data(), config().kv_dim());
      aux_store_ = AuxStore::plain(aux_.data(), config().dim);
    }
  }

  std::shared_ptr<const CpuModel> m_;
  std::vector<float> k_, v_, aux_, logits_, head_probs_;
  void* arena_ = nullptr;  // a BlockPool's arena (bind_arena), or null: k_, v_, aux_
  PoolGeometry geom_{};
  KvStore<float> kv_;
  AuxStore aux_store_;
  std::vector<int> row_seq_;
};

static_assert(AttentionBackend<CpuBackend> && BatchedBackend<CpuBackend>);

}  // namespace lazyllm
