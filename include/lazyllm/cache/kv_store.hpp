// SPDX-License-Identifier: MIT
// Where the data behind a slot lives: plain descriptors that turn a slot into an address, shared
// by every backend (host code, and device code when compiled by nvcc).
//
// A layout hands out slots; a backend keeps K/V and Aux Cache entries in storage that these
// descriptors address. Two storages exist:
//   - plain arrays (a Pipeline's own storage): K and V are `slots x kv_dim` arrays, the Aux Cache
//     an `aux_slots x dim` fp32 array;
//   - a block arena (the engine's BlockPool, engine/pool.hpp): block b holds either the K and V
//     of B = 2^block_shift consecutive slots (K of all B, then V of all B) or `per_block` Aux
//     entries, so K/V and Aux entries of every sequence share one pool of blocks.
//
//   KvStore<T>  offset(slot)    = (slot >> block_shift) * block_stride
//                                 + (slot & (2^block_shift - 1)) * kv_dim
//               k_ptr(slot, kh) = k + offset(slot) + kh * head_dim      (v_ptr likewise from v)
//   AuxStore    ptr(s)          = base + (s / per_block) * block_stride + (s % per_block) * dim
//
// Plain trivially copyable structs: kernels take them by value, tests check addresses on the host.
#pragma once
#include <cstdint>
#include <type_traits>

#include "lazyllm/detail/host_device.hpp"

namespace lazyllm {

/// Where the K and V rows of the cache slots live. T: the storage type.
template <class T>
struct KvStore {
  T* k = nullptr;
  T* v = nullptr;
  int kv_dim = 0;                 // elements of one slot's K (or V) row: n_kv_heads * head_dim
  int head_dim = 0;               // elements of one KV head
  int block_shift = 0;            // slots per block = 1 << block_shift
  std::int64_t block_stride = 0;  // elements from one block to the next

  /// Separate slot-indexed `slots x kv_dim` arrays.
  static KvStore plain(T* k, T* v, int kv_dim, int head_dim) { return {k, v, kv_dim, head_dim, 0, kv_dim}; }
  /// Blocks of 2^block_shift slots, `block_elems` elements apart (at least 2 * kv_dim << block_shift):
  /// a block's K rows first, then its V rows.
  static KvStore blocks(T* arena, int kv_dim, int head_dim, int block_shift, std::int64_t block_elems) {
    return {arena, arena + (std::int64_t{kv_dim} << block_shift), kv_dim, head_dim, block_shift, block_elems};
  }
  /// The same with blocks packed tight (block_elems = 2 * kv_dim << block_shift).
  static KvStore arena(T* base, int kv_dim, int head_dim, int block_shift) {
    return blocks(base, kv_dim, head_dim, block_shift, std::int64_t{2 * kv_dim} << block_shift);
  }

  /// Elements from k (or v) to the first element of `slot`'s row.
  LAZYLLM_HOST_DEVICE std::int64_t offset(std::int64_t slot) const {
    return (slot >> block_shift) * block_stride + (slot & ((std::int64_t{1} << block_shift) - 1)) * kv_dim;
  }
  /// KV head `kh` of `slot` (kh = 0: the whole row of kv_dim).
  LAZYLLM_HOST_DEVICE T* k_ptr(std::int64_t slot, int kh) const { return k_at(offset(slot), kh); }
  LAZYLLM_HOST_DEVICE T* v_ptr(std::int64_t slot, int kh) const { return v_at(offset(slot), kh); }
  /// The same from a row offset that offset() returned (a kernel that computes a key's offset in
  /// one lane and hands it to the others).
  LAZYLLM_HOST_DEVICE T* k_at(std::int64_t row_offset, int kh) const {
    return k + row_offset + std::int64_t(kh) * head_dim;
  }
  LAZYLLM_HOST_DEVICE T* v_at(std::int64_t row_offset, int kh) const {
    return v + row_offset + std::int64_t(kh) * head_dim;
  }
};

/// Where the Aux Cache rows (the fp32 residual stream of pruned tokens) live.
struct AuxStore {
  float* base = nullptr;
  int dim = 0;                    // elements of one row
  int per_block = 1;              // rows per block
  std::int64_t block_stride = 0;  // floats from one block to the next

  /// A separate `slots x dim` array.
  static AuxStore plain(float* base, int dim) { return {base, dim, 1, dim}; }
  /// Rows packed `per_block` to a block of `block_floats` floats of an arena.
  static AuxStore blocks(float* arena, int dim, int per_block, std::int64_t block_floats) {
    return {arena, dim, per_block, block_floats};
  }

  /// The row of slot `s`.
  LAZYLLM_HOST_DEVICE float* ptr(std::int64_t s) const {
    if (per_block == 1) return base + s * block_stride;  // the same formula, without the division
    return base + (s / per_block) * block_stride + (s % per_block) * dim;
  }
};

static_assert(std::is_trivially_copyable_v<KvStore<float>> && std::is_trivially_copyable_v<AuxStore>);

}  // namespace lazyllm
