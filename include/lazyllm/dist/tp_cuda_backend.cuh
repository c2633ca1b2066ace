// SPDX-License-Identifier: MIT
// TpCudaBackend: one rank of a tensor-parallel group on a GPU, over NcclComm. A first, plain form
// of the split docs/tensor_parallel.md plans for BasicCudaBackend: bf16 weights of the rank's
// heads and FFN units, cuBLASLt for every GEMM (no GEMV path, no decode graphs, no device
// selection), the CUDA backend's kernels for norms, RoPE, attention and the scores, and three
// collectives per layer (the scores at pruning layers, after the output projection, after the
// down projection). Satisfies AttentionBackend: one Pipeline per rank, on the rank's thread
// (run_nccl_ranks). For the multi-GPU measurements and tests (tools/gpu/tp_check.sh).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lazyllm/backend/attention_backend.hpp"
#include "lazyllm/backend/cuda/attention.cuh"
#include "lazyllm/backend/cuda/gemm.cuh"
#include "lazyllm/backend/cuda/kernels.cuh"
#include "lazyllm/backend/cuda/numeric.cuh"
#include "lazyllm/backend/cuda/runtime.cuh"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/detail/parallel.hpp"
#include "lazyllm/dist/nccl_comm.cuh"
#include "lazyllm/dist/shard.hpp"
#include "lazyllm/model/weights.hpp"

namespace lazyllm {

class TpCudaBackend {
 public:
  using ST = gpu::bf16;
  /// rows x dim fp32 activations (the residual stream, replicated on every rank) on the GPU.
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
  };

  /// Uploads rank comm.rank()'s shard of `w` (bf16) to the current device, which must be the
  /// communicator's; work is queued on comm.stream(). `comm` must outlive the backend. Layers
  /// whose weights are the same views (synthetic benchmark models) are uploaded once.
  TpCudaBackend(const ModelWeights& w, NcclComm& comm) : comm_(&comm), config_(w.config) {
    const auto& c = config_;
    c.validate();
    shard_ = Shard{comm.rank(), comm.size()};
    ranges_ = shard_ranges(c, shard_);
    if (c.attention_bias || c.qk_norm)
      throw ConfigError(std::string("TpCudaBackend: ") + (c.attention_bias ? "q/k/v biases" : "q/k norms") +
                        " are not supported here (use CudaBackend, or the CPU backend's tensor parallelism)");
    const int hd = c.head_dim();
    q_r_ = ranges_.n_q * hd;
    kv_r_ = ranges_.n_kv * hd;
    hid_ = (ranges_.n_ffn + 7) / 8 * 8;
    if (c.dim % 8 != 0 || q_r_ % 8 != 0 || kv_r_ % 8 != 0)
      throw ConfigError("TpCudaBackend: dim (" + std::to_string(c.dim) + ") and each rank's query and KV widths (" +
                        std::to_string(q_r_) + ", " + std::to_string(kv_r_) + ") must be multiples of 8");
    if (hd > 128)
      throw ConfigError("TpCudaBackend: head_dim " + std::to_string(hd) + " is not supported (at most 128)");
    const int dev = gpu::detail::require_device();
    if (dev != comm.device())
      throw InvalidArgument("TpCudaBackend: the current device is " + std::to_string(dev) + ", the communicator's is " +
                            std::to_string(comm.device()));
    stream_ = comm.stream();
    cudaDeviceProp prop{};
    LAZYLLM_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    attn_.init(prop.multiProcessorCount);
    gemm_.init();

    const ShardWeights s = shard_weights(w, shard_);
    // Distinct layers (by their views) and the host-side size of everything.
    std::vector<int> distinct;  // index into s.layers of each distinct layer
    layer_of_.resize(s.layers.size());
    for (std::size_t l = 0; l < s.layers.size(); ++l) {
      const LayerWeights& a = w.layers[l];
      int found = -1;
      for (std::size_t k = 0; k < distinct.size() && found < 0; ++k) {
        const LayerWeights& b = w.layers[std::size_t(distinct[k])];
        if (a.wq == b.wq && a.wk == b.wk && a.wv == b.wv && a.wo == b.wo && a.w1 == b.w1 && a.w2 == b.w2 &&
            a.w3 == b.w3 && a.attn_norm == b.attn_norm && a.ffn_norm == b.ffn_norm)
          found = int(k);
      }
      if (found < 0) {
        found = int(distinct.size());
        distinct.push_back(int(l));
      }
      layer_of_[l] = found;
    }
    const std::int64_t d = c.dim, v = c.vocab_size, qkv_out = q_r_ + 2 * kv_r_;
    const std::int64_t per_layer = qkv_out * d + d * q_r_ + 2 * hid_ * d + d * hid_;
    const bool tied = w.classifier == w.token_embedding;
    const std::uint64_t need = std::uint64_t(per_layer * std::int64_t(distinct.size()) + v * d * (tied ? 1 : 2)) * 2 +
                               std::uint64_t(2 * c.n_layers + 1) * std::uint64_t(d) * 4 + gpu::Gemm::kWorkspaceBytes;
    const std::uint64_t free_b = gpu::detail::free_device_bytes();
    if (need > free_b)
      throw Error("TpCudaBackend: rank " + std::to_string(shard_.rank) + "'s shard needs " +
                  gpu::detail::format_bytes(need) + " of GPU memory, " + gpu::detail::format_bytes(free_b) +
                  " are free on device " + std::to_string(dev));

    std::vector<std::uint16_t> host;
    // `rows` rows of `in` values (a view of row-major [rows, in]) into dst with row stride dst_ld.
    auto put = [&](ST* dst, const WeightView& src, std::int64_t rows, std::int64_t in, std::int64_t dst_ld) {
      host.assign(std::size_t(rows * dst_ld), 0);
      detail::parallel_for(rows, in, [&](std::int64_t b, std::int64_t e) {
        std::vector<float> row(static_cast<std::size_t>(in));
        for (std::int64_t r = b; r < e; ++r) {
          src.to_f32(r * in, in, row.data());
          for (std::int64_t i = 0; i < in; ++i)
            host[std::size_t(r * dst_ld + i)] = gpu::Storage<ST>::host_bits(row[std::size_t(i)]);
        }
      });
      LAZYLLM_CUDA_CHECK(cudaMemcpy(dst, host.data(), host.size() * 2, cudaMemcpyHostToDevice));
    };
    embedding_.reset(std::size_t(v * d), "embedding");
    put(embedding_.get(), s.token_embedding, v, d, d);
    if (!tied) {
      classifier_store_.reset(std::size_t(v * d), "classifier");
      put(classifier_store_.get(), s.classifier, v, d, d);
    }
    classifier_ = tied ? embedding_.get() : classifier_store_.get();
    for (const int l : distinct) {
      const LayerWeights& lw = s.layers[std::size_t(l)];
      gpu::DeviceBuffer<ST> buf(std::size_t(per_layer), "layer weights");
      LAZYLLM_CUDA_CHECK(cudaMemset(buf.get(), 0, buf.bytes()));
      ST* p = buf.get();
      Layer L;
      L.qkv = p;
      put(p, lw.wq, q_r_, d, d);
      put(p + q_r_ * d, lw.wk, kv_r_, d, d);
      put(p + (q_r_ + kv_r_) * d, lw.wv, kv_r_, d, d);
      p += qkv_out * d;
      L.wo = p;
      put(p, lw.wo, d, q_r_, q_r_);
      p += d * q_r_;
      L.gate_up = p;
      put(p, lw.w1, ranges_.n_ffn, d, d);  // gate rows [0, n_ffn); rows up to hid_ stay zero
      put(p + hid_ * d, lw.w3, ranges_.n_ffn, d, d);
      p += 2 * hid_ * d;
      L.w2 = p;
      put(p, lw.w2, d, ranges_.n_ffn, hid_);  // [d, hid_], zero columns past n_ffn
      layers_.push_back(L);
      layer_bufs_.push_back(std::move(buf));
    }
    std::vector<float> nh(std::size_t(2 * c.n_layers + 1) * std::size_t(d));
    for (int l = 0; l < c.n_layers; ++l) {
      s.layers[std::size_t(l)].attn_norm.to_f32(0, d, nh.data() + std::size_t(2 * l) * d);
      s.layers[std::size_t(l)].ffn_norm.to_f32(0, d, nh.data() + std::size_t(2 * l + 1) * d);
    }
    s.final_norm.to_f32(0, d, nh.data() + std::size_t(2 * c.n_layers) * d);
    norms_.reset(nh.size(), "norm weights");
    LAZYLLM_CUDA_CHECK(cudaMemcpy(norms_.get(), nh.data(), nh.size() * 4, cudaMemcpyHostToDevice));
    const auto table = gpu::detail::rope_table(c.max_seq_len, rope_frequencies(c));
    rope_.reset(table.size(), "RoPE table");
    LAZYLLM_CUDA_CHECK(cudaMemcpy(rope_.get(), table.data(), table.size() * sizeof(float2), cudaMemcpyHostToDevice));
  }

  TpCudaBackend(TpCudaBackend&&) noexcept = default;
  TpCudaBackend& operator=(TpCudaBackend&&) noexcept = default;
  ~TpCudaBackend() {
    if (!comm_ || !embedding_) return;
    // No queued work may outlive the buffers. Wait through the communicator: after a failure in
    // the group it aborts this rank's NCCL communicator, so the queued collectives give up.
    try {
      comm_->synchronize();
    } catch (...) {
    }
    (void)cudaStreamSynchronize(stream_);
  }

  const RuntimeConfig& config() const { return config_; }
  static constexpr std::string_view name() { return "cuda-tp"; }
  Shard shard() const { return shard_; }
  const ShardRanges& ranges() const { return ranges_; }
  NcclComm& comm() { return *comm_; }
  std::int64_t aux_bytes_per_token() const { return std::int64_t(config_.dim) * 4; }
  std::int64_t kv_token_bytes() const { return 2 * std::int64_t(kv_r_) * std::int64_t(sizeof(ST)); }
  /// Waits for this rank's queued work; throws CommAborted when the group failed meanwhile.
  void synchronize() { comm_->synchronize(); }

  void allocate(std::int64_t kv_slots, std::int64_t aux_slots) {
    synchronize();
    k_.reset(std::size_t(kv_slots) * std::size_t(kv_r_), "K cache");
    v_.reset(std::size_t(kv_slots) * std::size_t(kv_r_), "V cache");
    aux_.reset(std::size_t(aux_slots) * std::size_t(config_.dim), "Aux Cache");
    if (k_) LAZYLLM_CUDA_CHECK(cudaMemsetAsync(k_.get(), 0, k_.bytes(), stream_));
    if (v_) LAZYLLM_CUDA_CHECK(cudaMemsetAsync(v_.get(), 0, v_.bytes(), stream_));
    if (aux_) LAZYLLM_CUDA_CHECK(cudaMemsetAsync(aux_.get(), 0, aux_.bytes(), stream_));
  }

  void embed(std::span<const std::int32_t> ids, Activations& x) {
    const int n = int(ids.size()), d = config_.dim;
    resize(x, n);
    if (n == 0) return;
    for (auto id : ids)
      if (id < 0 || id >= config_.vocab_size)
        throw InvalidArgument("TpCudaBackend::embed: token id " + std::to_string(id) + " is outside the vocabulary");
    const auto* dev = upload(ids_, ids);
    gpu::detail::launch_embed(embedding_.get(), dev, n, d, x.data(), stream_);
  }

  void gather(const Activations& src, std::span<const std::int32_t> src_rows, std::span<const std::int64_t> aux_slots,
              Activations& dst) {
    const int n = int(src_rows.size()), d = config_.dim;
    resize(dst, n);
    if (n == 0) return;
    const auto* r = upload(rows_, src_rows);
    const auto* a = upload(slots_, aux_slots);
    gpu::detail::launch_gather_rows(src.data(), r, a, gpu::AuxStore::plain(aux_.get(), d), n, dst.data(), stream_);
  }

  void store_aux(const Activations& x, std::span<const std::int32_t> rows, std::span<const std::int64_t> aux_slots) {
    const int n = int(rows.size());
    if (n == 0) return;
    const auto* r = upload(rows_, rows);
    const auto* a = upload(slots_, aux_slots);
    gpu::detail::launch_store_aux(x.data(), r, a, n, gpu::AuxStore::plain(aux_.get(), config_.dim), stream_);
  }

  /// One decoder layer over this rank's heads and FFN units; the partial outputs are summed over
  /// the ranks (NcclComm) before each residual add, and the scores' per-rank head means before
  /// they come back. A failure aborts the group.
  void layer(const LayerCall& call, Activations& x, std::span<float> scores) {
    try {
      layer_impl(call, x, scores);
    } catch (const std::exception& e) {
      comm_->abort("rank " + std::to_string(shard_.rank) + " failed in layer " + std::to_string(call.layer) + ": " +
                   e.what());
      throw;
    }
  }

  /// Final RMSNorm and classifier of one row, as host fp32 logits (valid until the next call).
  std::span<const float> logits(const Activations& x, int row) {
    const auto& c = config_;
    if (row < 0 || row >= x.rows)
      throw InvalidArgument("TpCudaBackend::logits: row " + std::to_string(row) + " out of range");
    reserve_scratch(1);
    grow(logits_dev_, std::size_t(c.vocab_size), "logits");
    gpu::detail::launch_rmsnorm(x.row(row), norms_.get() + std::size_t(2 * c.n_layers) * std::size_t(c.dim), 1, c.dim,
                                c.norm_eps, xn_.get(), stream_);
    gemm_.run(xn_.get(), classifier_, logits_dev_.get(), 1, c.dim, c.vocab_size, stream_);
    logits_host_.reserve(std::size_t(c.vocab_size));
    LAZYLLM_CUDA_CHECK(cudaMemcpyAsync(logits_host_.get(), logits_dev_.get(), std::size_t(c.vocab_size) * 4,
                                       cudaMemcpyDeviceToHost, stream_));
    synchronize();
    return {logits_host_.get(), std::size_t(c.vocab_size)};
  }

 private:
  struct Layer {
    const ST *qkv = nullptr, *wo = nullptr, *gate_up = nullptr, *w2 = nullptr;
  };

  // A buffer that must grow is reallocated, which waits for the whole device: first wait for this
  // rank's stream through the communicator, so that a failed rank cannot leave it waiting on a
  // collective for ever.
  template <class T>
  void grow(gpu::DeviceBuffer<T>& b, std::size_t n, const char* what) {
    if (b.size() >= n) return;
    comm_->synchronize();
    b.reserve(n, what);
  }
  void resize(Activations& x, int rows) {
    grow(x.buf, std::size_t(std::max(rows, 1)) * std::size_t(config_.dim), "activations");
    x.resize(rows, config_.dim);
  }

  template <class T>
  const T* upload(gpu::DeviceBuffer<T>& dst, std::span<const T> src) {
    grow(dst, std::max<std::size_t>(src.size(), 1), "indices");
    // From pageable memory: returns once the source is staged, so the caller's span may change.
    if (!src.empty())
      LAZYLLM_CUDA_CHECK(cudaMemcpyAsync(dst.get(), src.data(), src.size_bytes(), cudaMemcpyHostToDevice, stream_));
    return dst.get();
  }

  void reserve_scratch(int rows) {
    const auto r = std::size_t(std::max(rows, 1));
    grow(xn_, r * std::size_t(config_.dim), "scratch");
    grow(qkv_, r * std::size_t(q_r_ + 2 * kv_r_), "scratch");
    grow(att_, r * std::size_t(q_r_), "scratch");
    grow(gu_, r * std::size_t(2 * hid_), "scratch");
    grow(h_, r * std::size_t(hid_), "scratch");
  }

  void layer_impl(const LayerCall& call, Activations& x, std::span<float> scores) {
    const auto& c = config_;
    const int rows = x.rows, n_kv = int(call.kv_pos.size()), d = c.dim, hd = c.head_dim(), ld = q_r_ + 2 * kv_r_;
    if (rows == 0) return;
    if (int(call.q_pos.size()) != rows || int(call.q_slots.size()) != rows || int(call.kv_slots.size()) != n_kv)
      throw InvalidArgument("TpCudaBackend::layer: index arrays do not match the activations (" + std::to_string(rows) +
                            " rows)");
    for (const std::int32_t p : call.q_pos) detail::check_sliding_window(config_, p);
    if (call.want_scores && scores.size() < std::size_t(n_kv))
      throw InvalidArgument("TpCudaBackend::layer: the scores span has " + std::to_string(scores.size()) +
                            " entries, " + std::to_string(n_kv) + " needed");
    const Layer& L = layers_[std::size_t(layer_of_.at(std::size_t(call.layer)))];
    const float* attn_norm = norms_.get() + std::size_t(2 * call.layer) * std::size_t(d);
    const float* ffn_norm = attn_norm + d;
    reserve_scratch(rows);  // before this layer's collectives are queued (reserve may wait for the device)
    if (call.want_scores) {
      grow(scores_dev_, std::size_t(std::max(n_kv, 1)), "scores");
      readback_.reserve(std::size_t(std::max(n_kv, 1)));  // its last copy was waited for
    }
    const std::int32_t* q_pos = upload(q_pos_, call.q_pos);
    const std::int64_t* q_slots = upload(q_slots_, call.q_slots);
    const std::int32_t* kv_pos = upload(kv_pos_, call.kv_pos);
    const std::int64_t* kv_slots = upload(kv_slots_, call.kv_slots);

    gpu::detail::launch_rmsnorm(x.data(), attn_norm, rows, d, c.norm_eps, xn_.get(), stream_);
    gemm_.run(xn_.get(), L.qkv, qkv_.get(), rows, d, ld, stream_);
    gpu::detail::RopeArgsT<ST> ra;
    ra.qkv = qkv_.get();
    ra.ld = ld;
    ra.rows = rows;
    ra.n_heads = ranges_.n_q;
    ra.n_kv_heads = ranges_.n_kv;
    ra.pos = q_pos;
    ra.slots = q_slots;
    ra.table = rope_.get();
    ra.max_pos = c.max_seq_len;
    ra.style = c.rope_style;
    ra.kv = gpu::KvStore<ST>::plain(k_.get(), v_.get(), ranges_.n_kv * hd, hd);
    gpu::detail::launch_rope_store(ra, stream_);

    gpu::AttnParams<ST> aa;
    aa.q = qkv_.get();
    aa.ldq = ld;
    aa.q_pos = q_pos;
    aa.rows = rows;
    aa.n_heads = ranges_.n_q;
    aa.n_kv_heads = ranges_.n_kv;
    aa.kv = gpu::SlottedKv<ST>::make(ra.kv, kv_slots, kv_pos, n_kv);
    aa.out = att_.get();
    aa.ldo = q_r_;
    attn_.run(aa, stream_);
    if (call.want_scores) {
      // This rank's heads' mean; summed over the ranks it is tp times the mean over all heads.
      const int n_vis =
          int(std::upper_bound(call.kv_pos.begin(), call.kv_pos.end(), call.q_pos[std::size_t(rows - 1)]) -
              call.kv_pos.begin());
      attn_.last_row_scores(aa, n_vis, scores_dev_.get(), stream_);
      comm_->all_reduce_sum(std::span<float>(scores_dev_.get(), std::size_t(n_kv)));
      LAZYLLM_CUDA_CHECK(
          cudaMemcpyAsync(readback_.get(), scores_dev_.get(), std::size_t(n_kv) * 4, cudaMemcpyDeviceToHost, stream_));
    }
    // x += sum over ranks of att_r Wo_r: rank 0 accumulates onto x, the others write their part
    // into x, and the in-place all-reduce leaves x + sum_r o_r on every rank.
    const bool base = shard_.rank == 0;
    gemm_.run(att_.get(), L.wo, x.data(), rows, q_r_, d, stream_, 0, base);
    comm_->all_reduce_sum(std::span<float>(x.data(), std::size_t(rows) * std::size_t(d)));
    gpu::detail::launch_rmsnorm(x.data(), ffn_norm, rows, d, c.norm_eps, xn_.get(), stream_);
    gemm_.run(xn_.get(), L.gate_up, gu_.get(), rows, d, 2 * hid_, stream_);
    gpu::detail::launch_swiglu(gu_.get(), rows, hid_, h_.get(), stream_);
    gemm_.run(h_.get(), L.w2, x.data(), rows, hid_, d, stream_, 0, base);
    comm_->all_reduce_sum(std::span<float>(x.data(), std::size_t(rows) * std::size_t(d)));
    if (call.want_scores) {
      synchronize();
      const float tp = float(shard_.size);
      for (int j = 0; j < n_kv; ++j) scores[std::size_t(j)] = readback_.get()[j] / tp;
    }
  }

  NcclComm* comm_ = nullptr;
  RuntimeConfig config_;
  Shard shard_;
  ShardRanges ranges_;
  int q_r_ = 0, kv_r_ = 0, hid_ = 0;
  cudaStream_t stream_ = nullptr;
  gpu::Gemm gemm_;
  gpu::Attention attn_;
  gpu::DeviceBuffer<ST> embedding_, classifier_store_;
  const ST* classifier_ = nullptr;
  std::vector<gpu::DeviceBuffer<ST>> layer_bufs_;
  std::vector<Layer> layers_;
  std::vector<int> layer_of_;
  gpu::DeviceBuffer<float> norms_;
  gpu::DeviceBuffer<float2> rope_;
  gpu::DeviceBuffer<ST> k_, v_, xn_, qkv_, att_, gu_, h_;
  gpu::DeviceBuffer<float> aux_, scores_dev_, logits_dev_;
  gpu::DeviceBuffer<std::int32_t> ids_, rows_, q_pos_, kv_pos_;
  gpu::DeviceBuffer<std::int64_t> slots_, q_slots_, kv_slots_;
  gpu::PinnedBuffer<float> readback_, logits_host_;
};

static_assert(AttentionBackend<TpCudaBackend>);

}  // namespace lazyllm
