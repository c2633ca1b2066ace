// SPDX-License-Identifier: MIT
// What the attention kernels take (attention.cuh states the contract): AttnParams, one call's
// query rows, key set (a SlottedKv, kv_store.cuh: every K/V address and the softmax scale come
// from it) and output; AttnSplit, the split over keys of the CUDA-core and decode kernels.
//
// A kernel reads its rows only through q / q_pos / rows / out and its keys only through kv, so a
// launch over several sequences can narrow both per sequence at the top of the kernel (per-
// sequence offsets into q_pos, slots and positions) without touching the kernel bodies.
#pragma once
#include <cstdint>
#include <type_traits>

#include "lazyllm/backend/cuda/kv_store.cuh"

namespace lazyllm::gpu {

/// One attention call (ST: the storage type): out = causal softmax(q k^T * kv.scale) v, query row
/// r seeing the entries of kv with position <= q_pos[r]; query head h reads KV head
/// h / (n_heads / n_kv_heads).
template <class ST>
struct AttnParams {
  using store_t = ST;
  const ST* q = nullptr;  // [rows, ldq]: head h at column h * head_dim()
  int ldq = 0;
  const std::int32_t* q_pos = nullptr;  // [rows], ascending
  int rows = 0;
  int n_heads = 0, n_kv_heads = 0;
  SlottedKv<ST> kv;   // the key set S_l (kv.count entries)
  ST* out = nullptr;  // [rows, ldo], head h at column h * head_dim()
  int ldo = 0;

  __host__ __device__ int head_dim() const { return kv.store.head_dim; }
};

/// One sequence of a launch over several (Attention::run_decode_batch): its query rows
/// [row_begin, row_begin + rows) of q / q_pos / out and its keys [kv_begin, kv_begin + n_kv) of
/// kv.positions / kv.slots. Each block of such a launch narrows the shared AttnParams to its
/// sequence (blockIdx.z) at the top of the kernel and then runs the one-sequence body unchanged.
struct VarlenSeq {
  int row_begin = 0, rows = 0;
  int kv_begin = 0, n_kv = 0;
};

namespace detail {

/// The split over keys of the CUDA-core and decode kernels: split s takes keys
/// [s * keys_per_split, (s + 1) * keys_per_split); n_splits 1 is no split.
struct AttnSplit {
  int n_splits = 1, keys_per_split = 0;
  float* part_o = nullptr;         // [split][row][head][HD] (unnormalised)
  float* part_ml = nullptr;        // [split][row][head][2]  (m in log2 units, l)
  unsigned* split_done = nullptr;  // [head] decode: splits finished; 0 between launches
  // Decode only: when set, the kernel reads the key count from here (kv.count is then the
  // capacity of kv.positions / kv.slots) and derives keys_per_split itself from split_cap (graph
  // replays).
  const int* n_kv_dev = nullptr;
  int split_cap = 1;
  // Decode only: a launch over several sequences (grid z = sequence). Sequence z reads
  // seqs[z], derives its own keys_per_split from split_cap like n_kv_dev does, and keeps its
  // partials in its own seq_cells cells of part_o / part_ml and its n_heads counters.
  const VarlenSeq* seqs = nullptr;
  int seq_cells = 0;
};

}  // namespace detail

// Kernel arguments: plain values, copied to the device by the launch.
static_assert(std::is_trivially_copyable_v<AttnParams<float>> && std::is_trivially_copyable_v<detail::AttnSplit> &&
              std::is_trivially_copyable_v<VarlenSeq>);

}  // namespace lazyllm::gpu
