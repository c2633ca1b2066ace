// SPDX-License-Identifier: MIT
// Causal attention over a pruned, compacted token set, reading K/V through cache slots: the
// dispatcher (Attention) over the kernel families in attention/.
//
// One call is an AttnParams (attention/params.cuh):
//  - Queries: `rows` rows (positions q_pos, ascending), head h at column h*hd of a row of q.
//  - Keys/values: kv, a SlottedKv (kv_store.cuh): kv.count entries of S_l, entry j at cache slot
//    kv.slots[j] with position kv.positions[j] (ascending); every K/V address is kv.k_ptr /
//    kv.v_ptr (the store's block layout). Query row r sees the entries with position <= q_pos[r]
//    (a prefix of S_l). The softmax scale is kv.scale (kv.scale_log2 in the base-2 kernels).
//  - GQA: query head h uses KV head h / (n_heads / n_kv_heads).
//
// Kernels (one file each in attention/; params.cuh has their arguments, ptx.cuh the PTX wrappers,
// online_softmax.cuh what the two tensor-core prefill kernels share):
//   sm90_wgmma_prefill.cuh  Hopper prefill, head_dim 128 (wgmma)
//   sm80_mma_prefill.cuh    tensor-core prefill, head_dim 64/128 (mma.sync, sm_80+)
//   decode.cuh              at most 4 rows, head_dim 64/128: keys split over blocks, one kernel
//   simt_prefill.cuh        CUDA-core kernel for every other shape (split over keys + combine)
//   fp32.cuh                fp32 storage (the verification mode)
//   last_row_scores.cuh     the scores pass: the last row's attention per entry, mean over heads
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>

#include "lazyllm/backend/cuda/attention/decode.cuh"
#include "lazyllm/backend/cuda/attention/fp32.cuh"
#include "lazyllm/backend/cuda/attention/last_row_scores.cuh"
#include "lazyllm/backend/cuda/attention/params.cuh"
#include "lazyllm/backend/cuda/attention/simt_prefill.cuh"
#include "lazyllm/backend/cuda/attention/sm80_mma_prefill.cuh"
#include "lazyllm/backend/cuda/attention/sm90_wgmma_prefill.cuh"
#include "lazyllm/backend/cuda/runtime.cuh"
#include "lazyllm/backend/cuda/tuning.cuh"
#include "lazyllm/detail/error.hpp"

namespace lazyllm::gpu {

/// Attention over a token set; owns the split-over-keys and scores workspaces. Move-only.
class Attention {
 public:
  /// Set once per device (number of multiprocessors, used to size the key split); also asks
  /// whether the device runs the Hopper (wgmma) prefill kernel.
  void init(int sm_count) {
    sm_count_ = std::max(1, sm_count);
    sm90_ = sm90_attention_available();
  }
  /// Whether prefill-sized calls at head_dim 128 may take the Hopper wgmma kernel where the
  /// device has it (default on; off = the mma.sync kernel, for comparisons).
  void set_sm90(bool on) { sm90_wanted_ = on; }
  bool sm90_wanted() const { return sm90_wanted_; }
  bool sm90_available() const { return sm90_; }

  /// Which kernel run() uses: the tensor-core prefill kernel, the decode kernel (at most
  /// kDecodeMaxRows rows), or the general CUDA-core kernel (any shape; splits over keys).
  enum class Kernel { Auto, TensorCore, Decode, CudaCore };
  static constexpr int kDecodeMaxRows = tuning::AttentionDispatch::kDecodeMaxRows;
  /// Row count from which Auto takes the tensor-core kernel (head_dim 64 or 128): below it the
  /// CUDA-core kernel, which can split over keys, keeps decode-sized calls fast.
  static constexpr int kTensorCoreMinRows = tuning::AttentionDispatch::kTensorCoreMinRows;
  /// Waves of resident blocks the decode kernel's key split aims at (see decode_split_cap).
  static constexpr int kDecodeWaves = tuning::AttentionDispatch::kDecodeWaves;

  /// out = causal softmax(q k^T / sqrt(hd)) v. `force_splits` > 0 fixes the number of key
  /// splits of the CUDA-core kernel (tests; implies Kernel::CudaCore); 0 chooses.
  template <class ST>
  void run(const AttnParams<ST>& a, cudaStream_t stream, int force_splits = 0, Kernel kernel = Kernel::Auto) {
    if (a.rows <= 0) return;
    const int hd = a.head_dim();
    if (hd <= 0 || hd > 128 || hd % 2 != 0)
      throw InvalidArgument("CudaBackend attention: head_dim " + std::to_string(hd) +
                            " is not supported (even values up to 128)");
    if constexpr (std::is_same_v<ST, float>) {
      if (kernel != Kernel::Auto || force_splits > 0)
        throw InvalidArgument("CudaBackend attention: fp32 storage has one kernel (no forced kernel or split)");
      last_splits_ = 1;
      last_tensor_core_ = last_decode_ = false;
      detail::launch_attention_fp32(a, stream);
    } else {
      run_16(a, stream, force_splits, kernel);
    }
  }

 private:
  template <class ST>
  void run_16(const AttnParams<ST>& a, cudaStream_t stream, int force_splits, Kernel kernel) {
    const int hd = a.head_dim();
    const bool tc_ok = (hd == 64 || hd == 128) && force_splits <= 0;
    if (kernel == Kernel::TensorCore && !tc_ok)
      throw InvalidArgument(
          "CudaBackend attention: the tensor-core kernel needs head_dim 64 or 128 and no forced split");
    if (tc_ok && (kernel == Kernel::TensorCore || (kernel == Kernel::Auto && a.rows >= kTensorCoreMinRows))) {
      last_splits_ = 1;
      last_tensor_core_ = true;
      last_decode_ = false;
      last_sm90_ = sm90_ && sm90_wanted_ && hd == 128;
      if (last_sm90_) {
        detail::launch_sm90_attention<Sm90AttnTraits<128>, ST>(a, stream);
      } else if (hd == 64) {
        detail::launch_mma_attention<MmaAttnTraits<64>, ST>(a, stream);
      } else {
        detail::launch_mma_attention<MmaAttnTraits<128>, ST>(a, stream);
      }
      return;
    }
    last_tensor_core_ = false;
    const bool dec_ok = (hd == 64 || hd == 128) && force_splits <= 0 && a.rows <= kDecodeMaxRows;
    if (kernel == Kernel::Decode && !dec_ok)
      throw InvalidArgument("CudaBackend attention: the decode kernel needs head_dim 64 or 128, at most " +
                            std::to_string(kDecodeMaxRows) + " rows and no forced split");
    last_decode_ = false;
    if (dec_ok && (kernel == Kernel::Decode || kernel == Kernel::Auto)) {
      detail::AttnSplit L;
      L.split_cap = decode_split_cap<ST>(a);
      L.keys_per_split = detail::decode_keys_per_split(a.kv.count, L.split_cap, kDecodePass);
      L.n_splits = std::max(1, (a.kv.count + L.keys_per_split - 1) / L.keys_per_split);
      if (L.n_splits > 1) decode_workspace(a, L, stream, /*may_allocate=*/true);
      launch_decode(a, L, stream);
      return;
    }
    detail::AttnSplit L;
    constexpr int BK = AttnTraits<64>::kKeys, BR = AttnTraits<64>::kBlockRows;  // the same for HD 128
    using Split = tuning::SimtSplit;
    const int q_blocks = (a.rows + BR - 1) / BR * a.n_heads;
    const int tiles = (a.kv.count + BK - 1) / BK;
    int splits = 1;
    if (force_splits > 0)
      splits = force_splits;
    else if (q_blocks < sm_count_ && tiles > Split::kMinTiles)
      splits = std::min(tiles / Split::kMinTilesPerSplit, (Split::kBlocksPerSm * sm_count_ + q_blocks - 1) / q_blocks);
    splits = std::max(1, std::min(splits, tiles));
    L.keys_per_split = (tiles + splits - 1) / splits * BK;
    L.n_splits = (a.kv.count + L.keys_per_split - 1) / L.keys_per_split;
    if (L.n_splits < 1) L.n_splits = 1;
    const int HD = hd <= 64 ? 64 : 128;
    if (L.n_splits > 1) {
      const std::size_t cells = std::size_t(L.n_splits) * std::size_t(a.rows) * std::size_t(a.n_heads);
      part_o_.reserve(cells * std::size_t(HD), "attention split workspace");
      part_ml_.reserve(cells * 2, "attention split workspace");
      L.part_o = part_o_.get();
      L.part_ml = part_ml_.get();
    }
    last_splits_ = L.n_splits;
    if (HD == 64)
      detail::launch_attention<64, ST>(a, L, stream);
    else
      detail::launch_attention<128, ST>(a, L, stream);
  }

  static constexpr int kDecodePass = detail::DecodeTraits<64, 1>::kKeysPerPass;

  /// (head, split) blocks for kDecodeWaves full waves of the GPU, each split whole passes of 128
  /// keys: the kernel is bandwidth-bound and its blocks are short, so a partly filled last wave
  /// (the earlier rule, 4 blocks per multiprocessor where 3 fit) costs a whole pass.
  template <class ST>
  int decode_split_cap(const AttnParams<ST>& a) const {
    const int per_sm = a.head_dim() == 64 ? (a.rows == 1 ? detail::decode_attention_blocks_per_sm<64, 1, ST>()
                                                         : detail::decode_attention_blocks_per_sm<64, 4, ST>())
                                          : (a.rows == 1 ? detail::decode_attention_blocks_per_sm<128, 1, ST>()
                                                         : detail::decode_attention_blocks_per_sm<128, 4, ST>());
    return std::max(1, kDecodeWaves * per_sm * sm_count_ / a.n_heads);
  }

  /// Points L at the split workspace for L.n_splits splits (allocating it only if `may_allocate`:
  /// not inside a graph capture) and zeroes the per-head counters the first time.
  /// `n_seqs` sequences of a batched launch each get a region of L.n_splits x a.rows x n_heads
  /// cells and n_heads counters.
  template <class ST>
  void decode_workspace(const AttnParams<ST>& a, detail::AttnSplit& L, cudaStream_t stream, bool may_allocate,
                        int n_seqs = 1) {
    const std::size_t cells =
        std::size_t(n_seqs) * std::size_t(L.n_splits) * std::size_t(a.rows) * std::size_t(a.n_heads);
    const std::size_t hd = std::size_t(a.head_dim()), counters = std::size_t(n_seqs) * std::size_t(a.n_heads);
    if (!may_allocate && (part_o_.size() < cells * hd || part_ml_.size() < cells * 2 || split_done_.size() < counters))
      throw Error("internal: Attention::run_decode_dynamic without prepare_decode_dynamic for this shape");
    part_o_.reserve(cells * hd, "attention split workspace");
    part_ml_.reserve(cells * 2, "attention split workspace");
    L.part_o = part_o_.get();
    L.part_ml = part_ml_.get();
    if (split_done_.size() < counters) {  // zeroed when (re)allocated; each launch leaves them zero
      split_done_.reserve(counters, "attention split counters");
      LAZYLLM_CUDA_CHECK(cudaMemsetAsync(split_done_.get(), 0, split_done_.bytes(), stream));
    }
    L.split_done = split_done_.get();
  }

  template <class ST>
  void launch_decode(const AttnParams<ST>& a, const detail::AttnSplit& L, cudaStream_t stream, int n_seqs = 1) {
    last_tensor_core_ = false;
    last_splits_ = L.n_splits;
    last_decode_ = true;
    if (a.head_dim() == 64)
      a.rows == 1 ? detail::launch_decode_attention<64, 1, ST>(a, L, stream, n_seqs)
                  : detail::launch_decode_attention<64, 4, ST>(a, L, stream, n_seqs);
    else
      a.rows == 1 ? detail::launch_decode_attention<128, 1, ST>(a, L, stream, n_seqs)
                  : detail::launch_decode_attention<128, 4, ST>(a, L, stream, n_seqs);
  }

  /// The most splits run() uses for any key count up to a.kv.count (the count never exceeds the
  /// passes of 128 keys, which grow with it).
  template <class ST>
  int decode_dynamic_splits(const AttnParams<ST>& a) const {
    return std::min(decode_split_cap<ST>(a), detail::decode_passes(a.kv.count, kDecodePass));
  }

  template <class ST>
  static void check_decode_dynamic(const AttnParams<ST>& a) {
    static_assert(!std::is_same_v<ST, float>, "Attention::run_decode_dynamic: 2-byte storage only");
    if ((a.head_dim() != 64 && a.head_dim() != 128) || a.rows < 1 || a.rows > kDecodeMaxRows)
      throw InvalidArgument("CudaBackend attention: the device-count decode needs head_dim 64 or 128 and 1.." +
                            std::to_string(kDecodeMaxRows) + " rows");
  }

 public:
  /// Reserves what run_decode_dynamic(a, ...) uses (call it before a CUDA graph capture: the
  /// launch itself never allocates) and returns the workspace addresses, which a captured graph
  /// bakes in: when they change, capture again.
  template <class ST>
  std::array<const void*, 3> prepare_decode_dynamic(const AttnParams<ST>& a, cudaStream_t stream) {
    check_decode_dynamic(a);
    detail::AttnSplit L;
    L.n_splits = decode_dynamic_splits(a);
    if (L.n_splits > 1) decode_workspace(a, L, stream, /*may_allocate=*/true);
    return {L.part_o, L.part_ml, L.split_done};
  }

  /// The decode kernel with its key count read on the device: *n_kv_dev (at most a.kv.count, the
  /// capacity of a.kv.positions / a.kv.slots) when the kernel runs, so one launch captured in a
  /// CUDA graph serves every decode step. The grid has the most splits run() would use for up to
  /// a.kv.count keys; each block derives the split run() chooses for that count, and blocks past it store an
  /// empty partial: the same keys per block and the same merge order as run(), so the same
  /// results bit for bit.
  /// Head dim 64 or 128, at most kDecodeMaxRows rows, 2-byte storage; prepare_decode_dynamic first.
  template <class ST>
  void run_decode_dynamic(const AttnParams<ST>& a, const int* n_kv_dev, cudaStream_t stream) {
    check_decode_dynamic(a);
    detail::AttnSplit L;
    L.n_kv_dev = n_kv_dev;
    L.split_cap = decode_split_cap<ST>(a);
    L.n_splits = decode_dynamic_splits(a);
    L.keys_per_split = kDecodePass;  // unused: the kernel derives it
    if (L.n_splits > 1) decode_workspace(a, L, stream, /*may_allocate=*/false);
    launch_decode(a, L, stream);
  }

  /// Whether run() takes the decode kernel for `rows` query rows at head_dim `hd` (2-byte storage,
  /// Kernel::Auto): run_decode_batch takes exactly these calls.
  static constexpr bool decode_shape(int hd, int rows) {
    return (hd == 64 || hd == 128) && rows >= 1 && rows <= kDecodeMaxRows && rows < kTensorCoreMinRows;
  }

  /// The decode kernel over several sequences in one launch (grid z = sequence). `a` holds what
  /// they share: q and out (whole-batch rows), ldq, ldo, heads, and a kv whose positions / slots
  /// (and q_pos) are the whole batch's arrays, into which each VarlenSeq indexes; `seqs_dev` is the
  /// device copy of `seqs`. Every sequence has one row, or every one 2..kDecodeMaxRows rows (one
  /// kernel instance per launch: the one run() takes for each of them alone), and decode_shape().
  /// Each sequence gets what run() gives it alone, bit for bit: the same keys per split (derived
  /// in the kernel from its own count) and the same merge order (splits past its last one are
  /// empty and skipped).
  template <class ST>
  void run_decode_batch(const AttnParams<ST>& a, const VarlenSeq* seqs_dev, std::span<const VarlenSeq> seqs,
                        cudaStream_t stream) {
    static_assert(!std::is_same_v<ST, float>, "Attention::run_decode_batch: 2-byte storage only");
    if (seqs.empty()) return;
    const bool one_row = seqs[0].rows == 1;
    AttnParams<ST> shape = a;
    shape.rows = one_row ? 1 : kDecodeMaxRows;  // picks the kernel instance (and so the split cap)
    detail::AttnSplit L;
    L.split_cap = decode_split_cap<ST>(shape);
    L.keys_per_split = kDecodePass;  // unused: each sequence derives its own
    for (const VarlenSeq& s : seqs) {
      if (!decode_shape(a.head_dim(), s.rows) || (s.rows == 1) != one_row || s.n_kv < 1)
        throw InvalidArgument("CudaBackend attention: run_decode_batch takes sequences of one row, or of 2.." +
                              std::to_string(kDecodeMaxRows) + " rows, each with keys (got " + std::to_string(s.rows) +
                              " rows, " + std::to_string(s.n_kv) + " keys)");
      const int kps = detail::decode_keys_per_split(s.n_kv, L.split_cap, kDecodePass);
      L.n_splits = std::max(L.n_splits, (s.n_kv + kps - 1) / kps);
    }
    L.seqs = seqs_dev;
    L.seq_cells = L.n_splits * shape.rows * a.n_heads;
    const int n = int(seqs.size());
    if (L.n_splits > 1) decode_workspace(shape, L, stream, /*may_allocate=*/true, n);
    launch_decode(shape, L, stream, n);
  }

  /// scores_dev[j] (j < a.kv.count) = softmax attention of the last query row to entry j, averaged
  /// over the query heads; entries after the last row's position get 0. `n_vis` = number of
  /// kv positions <= q_pos[rows-1] (the caller knows it on the host).
  template <class ST>
  void last_row_scores(const AttnParams<ST>& a, int n_vis, float* scores_dev, cudaStream_t stream) {
    if (a.kv.count <= 0) return;
    logits_.reserve(std::size_t(std::max(n_vis, 1)) * std::size_t(a.n_heads), "attention scores workspace");
    ml_.reserve(std::size_t(a.n_heads), "attention scores workspace");
    detail::launch_last_row_scores(a, n_vis, logits_.get(), ml_.get(), scores_dev, stream);
  }

  int last_splits() const { return last_splits_; }
  /// Whether the last run() used the tensor-core kernel.
  bool last_tensor_core() const { return last_tensor_core_; }
  /// Whether the last run() used the decode kernel.
  bool last_decode() const { return last_decode_; }
  /// Whether the last tensor-core run() used the Hopper wgmma kernel.
  bool last_sm90() const { return last_sm90_; }

 private:
  int sm_count_ = 132;
  int last_splits_ = 1;
  bool last_tensor_core_ = false;
  bool last_decode_ = false;
  bool last_sm90_ = false;
  bool sm90_ = false, sm90_wanted_ = true;
  DeviceBuffer<float> part_o_, part_ml_, logits_;
  DeviceBuffer<unsigned> split_done_;
  DeviceBuffer<float2> ml_;
};

}  // namespace lazyllm::gpu
