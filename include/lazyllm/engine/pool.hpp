// SPDX-License-Identifier: MIT
// The block pool: one arena of fixed-size blocks per model that holds the K/V and the Aux Cache
// entries of every sequence, sized (and optionally allocated) by the engine.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "lazyllm/detail/error.hpp"

namespace lazyllm {

/// The pool has no free block. Thrown from inside a step, which is then undone: every sequence is
/// exactly as it was before the step, so the caller can finish or drop a sequence and step again.
class OutOfBlocks : public Error {
 public:
  OutOfBlocks(std::int64_t capacity, std::int64_t block_bytes)
      : Error("KV block pool exhausted: all " + std::to_string(capacity) + " blocks of " + std::to_string(block_bytes) +
              " bytes are in use (finish or drop a sequence, or give the pool more memory)"),
        capacity_(capacity) {}
  std::int64_t capacity() const noexcept { return capacity_; }

 private:
  std::int64_t capacity_;
};

/// The shape of a block. A block holds the K and V of `block_tokens` tokens of one layer (a power
/// of two), or as many Aux Cache entries as fit in the same bytes (`aux_per_block()`, at least 1).
struct PoolGeometry {
  int block_tokens = 16;
  std::int64_t kv_token_bytes = 0;   // K + V of one token at one layer
  std::int64_t aux_token_bytes = 0;  // one Aux Cache entry (the fp32 residual stream)

  std::int64_t block_bytes() const { return std::int64_t(block_tokens) * kv_token_bytes; }
  int aux_per_block() const { return aux_token_bytes > 0 ? int(block_bytes() / aux_token_bytes) : 0; }
  int block_shift() const {
    int s = 0;
    while ((1 << s) < block_tokens) ++s;
    return s;
  }
  /// Throws ConfigError when the block cannot hold an Aux entry or block_tokens is not a power of 2.
  void validate() const {
    if (block_tokens < 1 || block_tokens > (1 << 20) || (block_tokens & (block_tokens - 1)) != 0)
      throw ConfigError("block pool: block_tokens " + std::to_string(block_tokens) + " must be a power of two");
    if (kv_token_bytes <= 0 || aux_token_bytes <= 0 || kv_token_bytes % 16 != 0)
      throw ConfigError("block pool: bad token sizes (K/V " + std::to_string(kv_token_bytes) + " bytes, Aux " +
                        std::to_string(aux_token_bytes) + " bytes)");
    if (aux_per_block() < 1 || std::int64_t(aux_per_block()) * aux_token_bytes > block_bytes()) {
      int need = block_tokens;
      while (std::int64_t(need) * kv_token_bytes < aux_token_bytes) need *= 2;
      throw ConfigError("block pool: a block of " + std::to_string(block_tokens) + " tokens (" +
                        std::to_string(block_bytes()) + " bytes) cannot hold one Aux Cache entry (" +
                        std::to_string(aux_token_bytes) + " bytes): use block_tokens >= " + std::to_string(need));
    }
  }
};

/// Memory for the arena. Empty (the default) = the backend's own (host memory for the CPU
/// backend, cudaMalloc for the CUDA backend); an engine may hand in its own.
struct ArenaAllocator {
  std::function<void*(std::size_t bytes)> allocate;
  std::function<void(void* p, std::size_t bytes)> deallocate;
  explicit operator bool() const { return bool(allocate) && bool(deallocate); }
};

/// Host memory, 256-byte aligned (the CPU backend's arena).
inline ArenaAllocator host_arena_allocator() {
  return {[](std::size_t n) { return ::operator new (std::max<std::size_t>(n, 1), std::align_val_t{256}); },
          [](void* p, std::size_t) { ::operator delete (p, std::align_val_t{256}); }};
}

/// A fixed number of blocks in one arena, handed out and taken back by id. Thread-safe: several
/// engines (one per thread) may draw on one pool. Block ids, not addresses, are what layouts keep;
/// the backend turns them into addresses (cache/kv_store.hpp).
class BlockPool {
 public:
  /// `n_blocks` blocks of `g` (validated); the arena comes from `alloc`. Throws ConfigError for a
  /// bad geometry or size, and whatever the allocator throws when it has no memory.
  BlockPool(PoolGeometry g, std::int64_t n_blocks, ArenaAllocator alloc) : geometry_(g), capacity_(n_blocks) {
    g.validate();
    if (n_blocks < 1) throw ConfigError("block pool: needs at least one block, got " + std::to_string(n_blocks));
    if (!alloc) throw ConfigError("block pool: no allocator");
    const auto bytes = std::size_t(n_blocks) * std::size_t(g.block_bytes());
    if (bytes / std::size_t(g.block_bytes()) != std::size_t(n_blocks))
      throw ConfigError("block pool: " + std::to_string(n_blocks) + " blocks overflow the address space");
    void* p = alloc.allocate(bytes);
    if (!p) throw Error("block pool: the allocator returned no memory for " + std::to_string(bytes) + " bytes");
    arena_ = std::shared_ptr<void>(p, [d = alloc.deallocate, bytes](void* q) { d(q, bytes); });
    bytes_ = bytes;
    free_.resize(std::size_t(n_blocks));
    // Handed out lowest id first (a stack popped from the back).
    for (std::int64_t i = 0; i < n_blocks; ++i) free_[std::size_t(i)] = n_blocks - 1 - i;
  }
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  /// A free block's id, or -1 when there is none.
  std::int64_t try_allocate() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) return -1;
    const auto b = free_.back();
    free_.pop_back();
    peak_ = std::max(peak_, capacity_ - std::int64_t(free_.size()));
    return b;
  }
  /// A free block's id; throws OutOfBlocks when there is none.
  std::int64_t allocate() {
    const auto b = try_allocate();
    if (b < 0) throw OutOfBlocks(capacity_, geometry_.block_bytes());
    return b;
  }
  /// Gives a block back (its data is not cleared).
  void release(std::int64_t b) {
    std::lock_guard<std::mutex> lock(mu_);
    if (b < 0 || b >= capacity_ || std::int64_t(free_.size()) >= capacity_)
      throw Error("internal: block pool: release of block " + std::to_string(b));
    free_.push_back(b);
  }

  const PoolGeometry& geometry() const { return geometry_; }
  std::int64_t capacity() const { return capacity_; }
  std::int64_t used() const {
    std::lock_guard<std::mutex> lock(mu_);
    return capacity_ - std::int64_t(free_.size());
  }
  std::int64_t free() const { return capacity_ - used(); }
  /// Most blocks in use at once since construction or reset_peak().
  std::int64_t peak() const {
    std::lock_guard<std::mutex> lock(mu_);
    return peak_;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    peak_ = capacity_ - std::int64_t(free_.size());
  }
  void* arena() const { return arena_.get(); }
  std::size_t bytes() const { return bytes_; }

 private:
  PoolGeometry geometry_;
  std::int64_t capacity_ = 0;
  std::shared_ptr<void> arena_;
  std::size_t bytes_ = 0;
  mutable std::mutex mu_;
  std::vector<std::int64_t> free_;
  std::int64_t peak_ = 0;
};

}  // namespace lazyllm
