// SPDX-License-Identifier: MIT
// The CPU fp32 reference backend: the ground truth every other backend is compared with.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "lazyllm/backend/attention_backend.hpp"
#include "lazyllm/backend/cpu/ops.hpp"
#include "lazyllm/cache/kv_store.hpp"
#include "lazyllm/config/rope.hpp"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/dist/any_comm.hpp"
#include "lazyllm/dist/shard.hpp"
#include "lazyllm/model/weights.hpp"

namespace lazyllm {

/// The CPU model: the configuration and fp32 weights, immutable once built. Shared (through
/// std::shared_ptr<const CpuModel>) by every CpuBackend, engine and thread that runs it.
///
/// With a Shard of several ranks (tensor parallelism, docs/tensor_parallel.md) it holds one rank's
/// part: its query and KV heads, its FFN units, and the replicated embedding, norms and
/// classifier (dist/shard.hpp). Shard {0, 1}, the default, is the whole model.
class CpuModel {
 public:
  /// fp16/bf16 weights (a checkpoint loaded with keep_source_dtype) are converted to fp32 here
  /// (for a shard, only its own slices). Throws ConfigError when the model does not split over
  /// shard.size ranks, InvalidArgument for a rank outside the group.
  explicit CpuModel(ModelWeights w, Shard shard = {}) : shard_(shard) {
    if (shard.size == 1) {
      w_ = to_f32_weights(std::move(w));
      w_.config.validate();
      if (int(w_.layers.size()) != w_.config.n_layers)
        throw ConfigError("CpuBackend: weights have " + std::to_string(w_.layers.size()) + " layers, config says " +
                          std::to_string(w_.config.n_layers));
      ranges_ = shard_ranges(w_.config, shard);
      layers_ = w_.layers;
      rope_ = rope_frequencies(w_.config);
      return;
    }
    ShardWeights s = to_f32(shard_weights(w, shard));
    w_.config = s.config;
    w_.source = std::move(w.source);
    w_.source_dtype = std::move(w.source_dtype);
    w_.token_embedding = s.token_embedding;
    w_.final_norm = s.final_norm;
    w_.classifier = s.classifier;
    w_.storage = std::move(s.storage);
    ranges_ = s.ranges;
    layers_ = std::move(s.layers);
    rope_ = rope_frequencies(w_.config);
  }
  /// The whole model's configuration (a shard's part of it is ranges()).
  const RuntimeConfig& config() const { return w_.config; }
  /// The weights. For a shard of several ranks, `layers` is empty: layer(l) has its slices.
  const ModelWeights& weights() const { return w_; }
  /// Layer l's weights as this shard holds them (shapes: ShardWeights, dist/shard.hpp).
  const LayerWeights& layer(int l) const { return layers_[std::size_t(l)]; }
  Shard shard() const { return shard_; }
  const ShardRanges& ranges() const { return ranges_; }
  /// The RoPE inverse frequencies and attention factor (config/rope.hpp).
  const RopeFrequencies& rope() const { return rope_; }

 private:
  ModelWeights w_;
  RopeFrequencies rope_;
  Shard shard_;
  ShardRanges ranges_;
  std::vector<LayerWeights> layers_;
};

/// The CPU backend. Over a shard of a model (CpuModel with a Shard of several ranks) it is one rank
/// of a tensor-parallel group: it computes its heads and FFN units and sums the partial outputs
/// with the other ranks through `comm` (after the attention output projection, after the FFN down
/// projection, and the LazyLLM scores' per-head sums), so every rank holds the same residual
/// stream, logits and scores. Without a communicator it is the whole model, as it always was.
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

  /// A backend with a model of its own (fp16/bf16 weights are converted to fp32): with a
  /// communicator of several ranks, this rank's shard of `w`.
  explicit CpuBackend(ModelWeights w, AnyComm comm = {})
      : CpuBackend(std::make_shared<const CpuModel>(std::move(w), Shard{comm.rank(), comm.size()}), comm) {}
  /// A backend over a shared model (no copy of the weights); a shard of several ranks needs the
  /// communicator of its rank in that group.
  explicit CpuBackend(std::shared_ptr<const CpuModel> m, AnyComm comm = {}) : m_(std::move(m)), comm_(std::move(comm)) {
    if (!m_) throw InvalidArgument("CpuBackend: no model");
    const Shard s = m_->shard(), c{comm_.rank(), comm_.size()};
    if (s != c) {
      std::ostringstream os;
      os << "CpuBackend: the model is the shard of " << s << " but the communicator is " << c;
      throw InvalidArgument(os.str());
    }
  }
  // A copy has storage of its own (or the same arena): its descriptors are rebuilt for it. It
  // shares the communicator (the same rank): use one of the two at a time.
  CpuBackend(const CpuBackend& o)
      : m_(o.m_), comm_(o.comm_), k_(o.k_), v_(o.v_), aux_(o.aux_), arena_(o.arena_), geom_(o.geom_) {
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
  /// This rank's communicator (one rank alone when the model is not sharded).
  AnyComm& comm() { return comm_; }
  static constexpr std::string_view name() { return "cpu"; }
  std::int64_t aux_bytes_per_token() const { return std::int64_t(config().dim) * std::int64_t(sizeof(float)); }
  /// K + V of one token at one layer: this rank's KV heads only.
  std::int64_t kv_token_bytes() const { return 2 * std::int64_t(local_kv_dim()) * std::int64_t(sizeof(float)); }
  void synchronize() {}

  /// Storage of its own: K and V (kv_slots x kv_dim each) and the Aux Cache (aux_slots x dim).
  void allocate(std::int64_t kv_slots, std::int64_t aux_slots) {
    const auto kvd = std::size_t(local_kv_dim());
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
      const float* from = src_rows[i] >= 0 ? src.row(src_rows[i]) : aux_store_.ptr(aux_slots[i]);
      std::copy_n(from, d, dst.row(int(i)));
    }
  }

  void store_aux(const Activations& x, std::span<const std::int32_t> rows, std::span<const std::int64_t> aux_slots) {
    const int d = config().dim;
    for (std::size_t i = 0; i < rows.size(); ++i) std::copy_n(x.row(rows[i]), d, aux_store_.ptr(aux_slots[i]));
  }

  /// One decoder layer: x += Wo attn(rope(Wq n(x)), rope(Wk n(x)), Wv n(x)); x += W2 swiglu(n(x)).
  void layer(const LayerCall& call, Activations& x, std::span<float> scores) {
    const SeqSpan one{0, x.rows, 0, std::int64_t(call.kv_pos.size()), call.want_scores};
    layer_batch({call.layer, call.q_pos, call.q_slots, call.kv_pos, call.kv_slots, {&one, 1}}, x, scores);
  }

  /// One decoder layer over several sequences: every row is computed exactly as in a call of its
  /// sequence alone (the same operations in the same order), so batching changes no bit. On a
  /// shard, a failure aborts the group (the other ranks would wait for this one for ever).
  void layer_batch(const BatchLayerCall& call, Activations& x, std::span<float> scores) {
    if (comm_.size() == 1) return layer_impl(call, x, scores);
    try {
      layer_impl(call, x, scores);
    } catch (const std::exception& e) {
      comm_.abort("rank " + std::to_string(comm_.rank()) + " failed in layer " + std::to_string(call.layer) + ": " +
                  e.what());
      throw;
    }
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
  int local_kv_dim() const { return m_->ranges().n_kv * config().head_dim(); }

  // The layer over this rank's heads and FFN units (all of them without tensor parallelism; the
  // sums with the other ranks are then no-ops and this is the reference computation unchanged).
  void layer_impl(const BatchLayerCall& call, Activations& x, std::span<float> scores) {
    const auto& c = config();
    const auto& lw = m_->layer(call.layer);
    const ShardRanges& sr = m_->ranges();
    // Local sizes: nh query heads (qd wide), nkv KV heads (kvd wide), hid FFN units.
    const int rows = x.rows, d = c.dim, hd = c.head_dim(), nh = sr.n_q, nkv = sr.n_kv, qd = nh * hd, kvd = nkv * hd,
              hid = sr.n_ffn;
    if (int(call.q_pos.size()) != rows || int(call.q_slots.size()) != rows ||
        call.kv_slots.size() != call.kv_pos.size())
      throw InvalidArgument("CpuBackend::layer: index arrays do not match the activations (" + std::to_string(rows) +
                            " rows)");
    for (const std::int32_t p : call.q_pos) detail::check_sliding_window(c, p);
    row_seq_.resize(std::size_t(rows));
    for (std::size_t s = 0; s < call.seqs.size(); ++s)
      for (int r = 0; r < call.seqs[s].rows; ++r) row_seq_[std::size_t(call.seqs[s].row_begin + r)] = int(s);

    // Attention block: norm, projections, RoPE at original positions, K/V into their slots.
    std::vector<float> xn(std::size_t(rows) * d), q(std::size_t(rows) * qd), k(std::size_t(rows) * kvd),
        v(std::size_t(rows) * kvd);
    for (int r = 0; r < rows; ++r)
      cpu::rmsnorm(xn.data() + std::size_t(r) * d, x.row(r), lw.attn_norm.f32(), d, c.norm_eps);
    cpu::matmul(q.data(), xn.data(), lw.wq.f32(), rows, d, qd);
    cpu::matmul(k.data(), xn.data(), lw.wk.f32(), rows, d, kvd);
    cpu::matmul(v.data(), xn.data(), lw.wv.f32(), rows, d, kvd);
    const RopeFrequencies& rf = m_->rope();
    for (int r = 0; r < rows; ++r) {
      float* qr = q.data() + std::size_t(r) * qd;
      float* kr = k.data() + std::size_t(r) * kvd;
      if (c.attention_bias) {  // Qwen2: q, k and v projections with biases
        float* vr = v.data() + std::size_t(r) * kvd;
        const float *bq = lw.bq.f32(), *bk = lw.bk.f32(), *bv = lw.bv.f32();
        for (int i = 0; i < qd; ++i) qr[i] += bq[i];
        for (int i = 0; i < kvd; ++i) kr[i] += bk[i], vr[i] += bv[i];
      }
      if (c.qk_norm) {  // Qwen3: RMSNorm over each head of q and k, before RoPE
        for (int h = 0; h < nh; ++h)
          cpu::rmsnorm(qr + std::size_t(h) * hd, qr + std::size_t(h) * hd, lw.q_norm.f32(), hd, c.norm_eps);
        for (int h = 0; h < nkv; ++h)
          cpu::rmsnorm(kr + std::size_t(h) * hd, kr + std::size_t(h) * hd, lw.k_norm.f32(), hd, c.norm_eps);
      }
      for (int h = 0; h < nh; ++h)
        cpu::rope(qr + std::size_t(h) * hd, hd, call.q_pos[r], rf.inv_freq.data(), rf.attention_factor, c.rope_style);
      for (int h = 0; h < nkv; ++h)
        cpu::rope(kr + std::size_t(h) * hd, hd, call.q_pos[r], rf.inv_freq.data(), rf.attention_factor, c.rope_style);
      std::copy_n(k.data() + std::size_t(r) * kvd, kvd, kv_.k_ptr(call.q_slots[r], 0));
      std::copy_n(v.data() + std::size_t(r) * kvd, kvd, kv_.v_ptr(call.q_slots[r], 0));
    }

    // Causal attention over each sequence's S_l: row r sees its sequence's keys whose position is
    // <= its own.
    std::vector<float> att(std::size_t(rows) * qd);
    const std::size_t n_kv_all = call.kv_pos.size();
    bool any_scores = false;
    for (const auto& sp : call.seqs) any_scores = any_scores || sp.want_scores;
    if (any_scores) head_probs_.assign(std::size_t(nh) * n_kv_all, 0.0f);
    const float scale = 1.0f / std::sqrt(float(hd));
    const int group = nh / nkv;  // the model's group size, or this rank's heads when KV heads are replicated
    std::int64_t max_kv = 1;
    for (const auto& sp : call.seqs) max_kv = std::max(max_kv, sp.n_kv);
    detail::parallel_for(std::int64_t(rows) * nh, max_kv * hd * 2, [&](std::int64_t b, std::int64_t e) {
      std::vector<float> p(static_cast<std::size_t>(max_kv));
      for (std::int64_t t = b; t < e; ++t) {
        const int r = int(t / nh), h = int(t % nh), kh = h / group;
        const SeqSpan& sp = call.seqs[std::size_t(row_seq_[std::size_t(r)])];
        const auto kv_pos = call.kv_pos.subspan(std::size_t(sp.kv_begin), std::size_t(sp.n_kv));
        const auto kv_slots = call.kv_slots.subspan(std::size_t(sp.kv_begin), std::size_t(sp.n_kv));
        const int n_vis = int(std::upper_bound(kv_pos.begin(), kv_pos.end(), call.q_pos[r]) - kv_pos.begin());
        const float* qh = q.data() + std::size_t(r) * qd + std::size_t(h) * hd;
        for (int j = 0; j < n_vis; ++j) p[std::size_t(j)] = cpu::dot(qh, kv_.k_ptr(kv_slots[j], kh), hd) * scale;
        cpu::softmax(p.data(), n_vis);
        float* out = att.data() + std::size_t(r) * qd + std::size_t(h) * hd;
        std::fill_n(out, hd, 0.0f);
        for (int j = 0; j < n_vis; ++j) {
          const float* vj = kv_.v_ptr(kv_slots[j], kh);
          for (int i = 0; i < hd; ++i) out[i] += p[std::size_t(j)] * vj[i];
        }
        if (sp.want_scores && r == sp.row_begin + sp.rows - 1) {
          // Each head writes its own row; keys after the last query (none) stay zero.
          std::copy_n(p.data(), n_vis, head_probs_.data() + std::size_t(h) * n_kv_all + std::size_t(sp.kv_begin));
        }
      }
    });
    if (any_scores) {
      // The score of a key is its attention from the last row, averaged over ALL query heads of
      // the model: this rank's heads are summed (in double, in head order), the partial sums of
      // the ranks are added in rank order (the same bits on every rank, so every rank keeps the
      // same tokens), then divided by the model's head count.
      score_sums_.assign(n_kv_all, 0.0);
      for (const auto& sp : call.seqs) {
        if (!sp.want_scores) continue;
        for (std::int64_t j = sp.kv_begin; j < sp.kv_begin + sp.n_kv; ++j) {
          double s = 0.0;
          for (int h = 0; h < nh; ++h) s += head_probs_[std::size_t(h) * n_kv_all + std::size_t(j)];
          score_sums_[std::size_t(j)] = s;
        }
      }
      comm_.all_reduce_sum(std::span<double>(score_sums_));
      for (const auto& sp : call.seqs) {
        if (!sp.want_scores) continue;
        for (std::int64_t j = sp.kv_begin; j < sp.kv_begin + sp.n_kv; ++j)
          scores[std::size_t(j)] = static_cast<float>(score_sums_[std::size_t(j)] / c.n_heads);
      }
    }
    // The output projection of this rank's heads, summed over the ranks before the residual add.
    std::vector<float> o(std::size_t(rows) * d);
    cpu::matmul(o.data(), att.data(), lw.wo.f32(), rows, qd, d);
    comm_.all_reduce_sum(std::span<float>(o));
    for (std::size_t i = 0; i < o.size(); ++i) x.data[i] += o[i];

    // FFN block: x += W2 (silu(W1 n(x)) * W3 n(x)), this rank's units, summed over the ranks.
    for (int r = 0; r < rows; ++r)
      cpu::rmsnorm(xn.data() + std::size_t(r) * d, x.row(r), lw.ffn_norm.f32(), d, c.norm_eps);
    std::vector<float> g(std::size_t(rows) * hid), u(std::size_t(rows) * hid);
    cpu::matmul(g.data(), xn.data(), lw.w1.f32(), rows, d, hid);
    cpu::matmul(u.data(), xn.data(), lw.w3.f32(), rows, d, hid);
    for (int r = 0; r < rows; ++r) cpu::swiglu(g.data() + std::size_t(r) * hid, u.data() + std::size_t(r) * hid, hid);
    cpu::matmul(o.data(), g.data(), lw.w2.f32(), rows, hid, d);
    comm_.all_reduce_sum(std::span<float>(o));
    for (std::size_t i = 0; i < o.size(); ++i) x.data[i] += o[i];
  }

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
      kv_ = KvStore<float>::blocks(f, local_kv_dim(), config().head_dim(), geom_.block_shift(), block_floats);
      aux_store_ = AuxStore::blocks(f, config().dim, geom_.aux_per_block(), block_floats);
    } else {
      kv_ = KvStore<float>::plain(k_.data(), v_.data(), local_kv_dim(), config().head_dim());
      aux_store_ = AuxStore::plain(aux_.data(), config().dim);
    }
  }

  std::shared_ptr<const CpuModel> m_;
  AnyComm comm_;
  std::vector<float> k_, v_, aux_, logits_, head_probs_;
  std::vector<double> score_sums_;
  void* arena_ = nullptr;  // a BlockPool's arena (bind_arena), or null: k_, v_, aux_
  PoolGeometry geom_{};
  KvStore<float> kv_;
  AuxStore aux_store_;
  std::vector<int> row_seq_;
};

static_assert(AttentionBackend<CpuBackend> && BatchedBackend<CpuBackend>);

}  // namespace lazyllm
