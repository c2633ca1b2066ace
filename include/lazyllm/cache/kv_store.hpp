// SPDX-License-Identifier: MIT
// Where the data behind a slot lives: plain descriptors that compute addresses, shared by every
// backend (host code, and device code when compiled by nvcc).
//
// A layout hands out slots; a backend keeps K/V and Aux Cache entries in storage that these
// descriptors address. Two storages exist:
//   - plain arrays (a Pipeline's own storage): K and V are `slots x kv_dim` arrays, the Aux Cache
//     an `aux_slots x dim` fp32 array;
//   - a block arena (the engine's BlockPool, engine/pool.hpp): block b holds either the K and V
//     of B consecutive slots (K of all B, then V of all B) or `per_block` Aux entries, so K/V and
//     Aux entries of every sequence share one pool of blocks.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define LAZYLLM_HD __host__ __device__ __forceinline__
#else
#define LAZYLLM_HD inline
#endif

namespace lazyllm {

/// K/V of slot s at k + offset(s), v + offset(s), each kv_dim values of T.
template <class T>
struct KvStore {
  T* k = nullptr;
  T* v = nullptr;
  int kv_dim = 0;
  int block_shift = 0;            // slots per block = 1 << block_shift
  std::int64_t block_stride = 0;  // elements from one block to the next

  LAZYLLM_HD std::int64_t offset(std::int64_t slot) const {
    return (slot >> block_shift) * block_stride + (slot & ((std::int64_t{1} << block_shift) - 1)) * kv_dim;
  }
  LAZYLLM_HD T* k_at(std::int64_t slot) const { return k + offset(slot); }
  LAZYLLM_HD T* v_at(std::int64_t slot) const { return v + offset(slot); }

  /// Separate `slots x kv_dim` arrays.
  static KvStore plain(T* k, T* v, int kv_dim) { return {k, v, kv_dim, 0, kv_dim}; }
  /// Blocks of 1 << block_shift slots in an arena of blocks of `block_elems` elements (at least
  /// 2 * kv_dim << block_shift): K of the block's slots first, then their V.
  static KvStore blocks(T* arena, int kv_dim, int block_shift, std::int64_t block_elems) {
    return {arena, arena + (std::int64_t{kv_dim} << block_shift), kv_dim, block_shift, block_elems};
  }
};

/// Aux Cache entry s (dim fp32 values, the residual stream) at base + (s / per_block) *
/// block_stride + (s % per_block) * dim.
struct AuxStore {
  float* base = nullptr;
  int dim = 0;
  int per_block = 1;
  std::int64_t block_stride = 0;  // floats from one block to the next

  LAZYLLM_HD float* at(std::int64_t slot) const {
    return base + (slot / per_block) * block_stride + (slot % per_block) * dim;
  }

  /// A separate `slots x dim` array.
  static AuxStore plain(float* base, int dim) { return {base, dim, 1, dim}; }
  /// Entries packed `per_block` to a block of `block_floats` floats of the arena.
  static AuxStore blocks(float* arena, int dim, int per_block, std::int64_t block_floats) {
    return {arena, dim, per_block, block_floats};
  }
};

}  // namespace lazyllm
