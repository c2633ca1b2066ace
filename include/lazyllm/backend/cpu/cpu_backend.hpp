// SPDX-License-Identifier: MIT
// The CPU fp32 reference backend: the ground truth every other backend is compared with.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lazyllm/backend/attention_backend.hpp"
#include "lazyllm/backend/cpu/ops.hpp"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/model/weights.hpp"

namespace lazyllm {

class CpuBackend {
 public:
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

  /// fp16/bf16 weights (a checkpoint loaded with keep_source_dtype) are converted to fp32 here.
  explicit CpuBackend(ModelWeights w) : w_(to_f32_weights(std::move(w))) {
    w_.config.validate();
    if (int(w_.layers.size()) != w_.config.n_layers)
      throw ConfigError("CpuBackend: weights have " + std::to_string(w_.layers.size()) + " layers, config says " +
                        std::to_string(w_.config.n_layers));
  }

  const RuntimeConfig& config() const { return w_.config; }
  const ModelWeights& weights() const { return w_; }
  static constexpr std::string_view name() { return "cpu"; }
  std::int64_t aux_bytes_per_token() const { return std::int64_t(w_.config.dim) * std::int64_t(sizeof(float)); }
  void synchronize() {}

  void allocate(std::int64_t kv_slots, std::int64_t aux_slots) {
    const auto kvd = std::size_t(w_.config.kv_dim());
    k_.assign(std::size_t(kv_slots) * kvd, 0.0f);
    v_.assign(std::size_t(kv_slots) * kvd, 0.0f);
    aux_.assign(std::size_t(aux_slots) * std::size_t(w_.config.dim), 0.0f);
  }

  void embed(std::span<const std::int32_t> ids, Activations& x) const {
    const int d = w_.config.dim;
    x.resize(int(ids.size()), d);
    for (std::size_t i = 0; i < ids.size(); ++i)
      std::copy_n(w_.token_embedding.f32() + std::int64_t(ids[i]) * d, d, x.row(int(i)));
  }

  void gather(const Activations& src, std::span<const std::int32_t> src_rows, std::span<const std::int64_t> aux_slots,
              Activations& dst) const {
    const int d = w_.config.dim;
    dst.resize(int(src_rows.size()), d);
    for (std::size_t i = 0; i < src_rows.size(); ++i) {
      const float* from = src_rows[i] >= 0 ? src.row(src_rows[i]) : aux_.data() + aux_slots[i] * d;
      std::copy_n(from, d, dst.row(int(i)));
    }
  }

  void store_aux(const Activations& x, std::span<const std::int32_t> rows, std::span<const std::int64_t> aux_slots) {
    const int d = w_.config.dim;
    for (std::size_t i = 0; i < rows.size(); ++i) std::copy_n(x.row(rows[i]), d, aux_.data() + aux_slots[i] * d);
  }

  /// One decoder layer: x += Wo attn(rope(Wq n(x)), rope(Wk n(x)), Wv n(x)); x += W2 swiglu(n(x)).
  void layer(const LayerCall& call, Activations& x, std::span<float> scores) {
    const auto& c = w_.config;
    const auto& lw = w_.layers[std::size_t(call.layer)];
    const int rows = x.rows, d = c.dim, hd = c.head_dim(), kvd = c.kv_dim(), hid = c.hidden_dim;
    const int n_kv = int(call.kv_pos.size());

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
      std::copy_n(k.data() + std::size_t(r) * kvd, kvd, k_.data() + call.q_slots[r] * kvd);
      std::copy_n(v.data() + std::size_t(r) * kvd, kvd, v_.data() + call.q_slots[r] * kvd);
    }

    // Causal attention over S_l: row r sees the keys whose position is <= its own.
    std::vector<float> att(std::size_t(rows) * d);
    if (call.want_scores) head_probs_.assign(std::size_t(c.n_heads) * std::size_t(n_kv), 0.0f);
    const float scale = 1.0f / std::sqrt(float(hd));
    const int group = c.group_size();
    detail::parallel_for(std::int64_t(rows) * c.n_heads, std::int64_t(n_kv) * hd * 2, [&](std::int64_t b, std::int64_t e) {
      std::vector<float> p(static_cast<std::size_t>(n_kv));
      for (std::int64_t t = b; t < e; ++t) {
        const int r = int(t / c.n_heads), h = int(t % c.n_heads), kh = h / group;
        const int n_vis = int(std::upper_bound(call.kv_pos.begin(), call.kv_pos.end(), call.q_pos[r]) - call.kv_pos.begin());
        const float* qh = q.data() + std::size_t(r) * d + std::size_t(h) * hd;
        for (int j = 0; j < n_vis; ++j)
          p[std::size_t(j)] = cpu::dot(qh, k_.data() + call.kv_slots[j] * kvd + std::int64_t(kh) * hd, hd) * scale;
        cpu::softmax(p.data(), n_vis);
        float* out = att.data() + std::size_t(r) * d + std::size_t(h) * hd;
        std::fill_n(out, hd, 0.0f);
        for (int j = 0; j < n_vis; ++j) {
          const float* vj = v_.data() + call.kv_slots[j] * kvd + std::int64_t(kh) * hd;
          for (int i = 0; i < hd; ++i) out[i] += p[std::size_t(j)] * vj[i];
        }
        if (call.want_scores && r == rows - 1) {
          // Each head writes its own row; keys after the last query (none) stay zero.
          std::copy_n(p.data(), n_vis, head_probs_.data() + std::size_t(h) * std::size_t(n_kv));
        }
      }
    });
    if (call.want_scores) {
      for (int j = 0; j < n_kv; ++j) {
        double s = 0.0;
        for (int h = 0; h < c.n_heads; ++h) s += head_probs_[std::size_t(h) * std::size_t(n_kv) + std::size_t(j)];
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
    const auto& c = w_.config;
    std::vector<float> xn(std::size_t(c.dim));
    cpu::rmsnorm(xn.data(), x.row(row), w_.final_norm.f32(), c.dim, c.norm_eps);
    logits_.resize(std::size_t(c.vocab_size));
    cpu::matmul(logits_.data(), xn.data(), w_.classifier.f32(), 1, c.dim, c.vocab_size);
    return logits_;
  }

 private:
  ModelWeights w_;
  std::vector<float> k_, v_, aux_, logits_, head_probs_;
};

static_assert(AttentionBackend<CpuBackend>);

}  // namespace lazyllm
