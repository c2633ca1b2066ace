// SPDX-License-Identifier: MIT
// What the attention kernels take (attention.cuh states the contract): AttnArgsT, the call's
// queries, keys and output; AttnLaunchT, the CUDA-core and decode kernels' launch (the args, the
// base-2 softmax scale, the split over keys); MmaAttnLaunchT, the tensor-core prefill kernels'
// launch; count_le, the visible-key count of a query.
#pragma once
#include <cmath>
#include <cstdint>

#include "lazyllm/backend/cuda/numeric.cuh"

namespace lazyllm::gpu {

/// Everything the attention kernels read, as device pointers (ST: the storage type, bf16 or fp16).
template <class ST>
struct AttnArgsT {
  using store_t = ST;
  const ST* q = nullptr;  // [rows, ldq]
  int ldq = 0;
  const ST* k_cache = nullptr;  // [slots, kvd]
  const ST* v_cache = nullptr;
  const std::int64_t* kv_slots = nullptr;  // [n_kv]
  const std::int32_t* kv_pos = nullptr;    // [n_kv], ascending
  const std::int32_t* q_pos = nullptr;     // [rows], ascending
  int rows = 0, n_kv = 0;
  int n_heads = 0, n_kv_heads = 0, hd = 0;
  ST* out = nullptr;  // [rows, ldo]
  int ldo = 0;
};
using AttnArgs = AttnArgsT<bf16>;

namespace detail {

template <class ST>
struct AttnLaunchT {
  AttnArgsT<ST> a;
  float scale_log2 = 0;  // softmax scale * log2(e): the kernels work in base 2
  int n_splits = 1, keys_per_split = 0;
  float* part_o = nullptr;         // [split][row][head][HD] (unnormalised)
  float* part_ml = nullptr;        // [split][row][head][2]  (m in log2 units, l)
  unsigned* split_done = nullptr;  // [head] decode: splits finished; 0 between launches
  // Decode only: when set, the kernel reads the key count from here (a.n_kv is then the capacity
  // of kv_pos / kv_slots) and derives keys_per_split itself from split_cap (graph replays).
  const int* n_kv_dev = nullptr;
  int split_cap = 1;
};
using AttnLaunch = AttnLaunchT<bf16>;

/// Launch parameters of the tensor-core kernel (the args plus the base-2 softmax scale).
template <class ST>
struct MmaAttnLaunchT {
  const ST* q;
  int ldq;
  const ST* k_cache;
  const ST* v_cache;
  const std::int64_t* kv_slots;
  const std::int32_t* kv_pos;
  const std::int32_t* q_pos;
  int rows, n_kv, n_heads, n_kv_heads;
  ST* out;
  int ldo;
  float scale_log2;
};
using MmaAttnLaunch = MmaAttnLaunchT<bf16>;

/// The tensor-core kernels' launch parameters for `a` (both prefill kernels take the same).
template <class ST>
MmaAttnLaunchT<ST> mma_launch_args(const AttnArgsT<ST>& a) {
  return {a.q,          a.ldq,
          a.k_cache,    a.v_cache,
          a.kv_slots,   a.kv_pos,
          a.q_pos,      a.rows,
          a.n_kv,       a.n_heads,
          a.n_kv_heads, a.out,
          a.ldo,        float(1.4426950408889634 / std::sqrt(double(a.hd)))};
}

/// Number of entries of the ascending array kv_pos[0..n) that are <= p: the visible-key count of
/// a query at position p over a position-ordered token set (binary search).
__device__ __forceinline__ int count_le(const std::int32_t* kv_pos, int n, std::int32_t p) {
  int lo = 0, hi = n;
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (kv_pos[mid] <= p)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

}  // namespace detail
}  // namespace lazyllm::gpu
