// SPDX-License-Identifier: MIT
// Where K/V and Aux Cache entries live (cache/kv_store.hpp), and the key set of one attention call. Every
// kernel that reads or writes K/V (RoPE + K/V store, the attention kernels, the scores pass) or the
// Aux Cache (row gather, store_aux) goes through them, so a storage layout is a change here only.
//
//   KvStore<ST>  K and V rows of kv_dim elements (kv_dim = n_kv_heads * head_dim), grouped in
//                blocks of 2^block_shift slots, block_stride elements from one block to the next:
//                  offset(slot)    = (slot >> block_shift) * block_stride
//                                    + (slot & (2^block_shift - 1)) * kv_dim
//                  k_ptr(slot, kh) = k + offset(slot) + kh * head_dim     (v_ptr likewise from v)
//                plain(): slot-indexed arrays k[slot][kv_dim], v[slot][kv_dim] (block_shift 0,
//                block_stride kv_dim), what CudaBackend allocates. arena(): one pool of blocks of
//                B = 2^block_shift slots, each block's B K rows then its B V rows (v = k + B * kv_dim,
//                block_stride 2 * B * kv_dim).
//   AuxStore     fp32 rows of dim elements, per_block rows per block, block_stride apart:
//                  ptr(s) = base + (s / per_block) * block_stride + (s % per_block) * dim
//                plain(): aux[s][dim] (per_block 1, block_stride dim).
//   SlottedKv<ST> the key set of one attention call (FlashInfer's paged_kv_t plays this part
//                there): the store, the entries' slots and positions (ascending), their count,
//                and the softmax scale; k_ptr(j, kh) / v_ptr(j, kh) address the j-th entry.
//
// Plain structs (trivially copyable), passed to kernels by value; the addressing is __host__
// __device__, so tests compute the kernels' addresses on the host.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "lazyllm/cache/kv_store.hpp"

namespace lazyllm::gpu {

/// The descriptors of cache/kv_store.hpp (one definition for every backend).
using ::lazyllm::AuxStore;
using ::lazyllm::KvStore;

namespace detail {

/// Number of entries of the ascending array pos[0..n) that are <= p: the visible-key count of a
/// query at position p over a position-ordered token set (binary search).
__device__ __forceinline__ int count_le(const std::int32_t* pos, int n, std::int32_t p) {
  int lo = 0, hi = n;
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (pos[mid] <= p)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

}  // namespace detail

/// The key set S_l of one attention call: `count` entries, entry j at slot slots[j] of `store`
/// with position positions[j] (ascending). A query at position p sees the entries with
/// position <= p, a prefix of the set (visible(p) long). Built on the host by make(), which
/// computes the scales once.
template <class ST>
struct SlottedKv {
  KvStore<ST> store;
  const std::int64_t* slots = nullptr;      // [count]
  const std::int32_t* positions = nullptr;  // [count], ascending
  int count = 0;
  float scale = 0;       // softmax scale 1 / sqrt(head_dim) in fp32, as the CPU reference computes it
  float scale_log2 = 0;  // the same times log2(e), rounded once from double: the base-2 kernels' factor

  static SlottedKv make(const KvStore<ST>& store, const std::int64_t* slots, const std::int32_t* positions, int count) {
    return {store,
            slots,
            positions,
            count,
            1.0f / std::sqrt(float(store.head_dim)),
            float(1.4426950408889634 / std::sqrt(double(store.head_dim)))};
  }

  __device__ std::int64_t slot(int j) const { return slots[j]; }
  /// KV head kh of the j-th entry.
  __device__ const ST* k_ptr(int j, int kh) const { return store.k_ptr(slots[j], kh); }
  __device__ const ST* v_ptr(int j, int kh) const { return store.v_ptr(slots[j], kh); }
  /// Entries visible to a query at position p.
  __device__ int visible(std::int32_t p) const { return detail::count_le(positions, count, p); }
};

static_assert(std::is_trivially_copyable_v<SlottedKv<float>>);

}  // namespace lazyllm::gpu
