// SPDX-License-Identifier: MIT
// Paged layout: K/V in fixed-size blocks taken from a shared pool on first use, found through a
// per-layer block table (slot = block * BlockSize + pos % BlockSize). Layers that LazyLLM leaves
// sparse take only the blocks they touch. The Aux Cache is kept per position (it is small).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lazyllm/cache/cache_layout.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/detail/error.hpp"

namespace lazyllm {

template <int BlockSize = 16>
class PagedLayout {
  static_assert(BlockSize > 0 && (BlockSize & (BlockSize - 1)) == 0, "PagedLayout: BlockSize must be a power of two");

 public:
  static constexpr int block_size = BlockSize;

  /// The default pool holds the dense worst case; `max_blocks` caps it (0 = worst case).
  PagedLayout() = default;
  explicit PagedLayout(std::int64_t max_blocks) : max_blocks_(max_blocks) {}

  void reset(const LayoutShape& s) {
    shape_ = s;
    blocks_per_layer_ = (s.n_ctx + BlockSize - 1) / BlockSize;
    table_.assign(std::size_t(s.n_layers) * std::size_t(blocks_per_layer_), -1);
    pool_ = max_blocks_ > 0 ? max_blocks_ : std::int64_t(s.n_layers) * blocks_per_layer_;
    used_blocks_ = 0;
    present_.assign(std::size_t(pool_ * BlockSize), 0);
    aux_.reset(s);
    undo_.clear();
    in_step_ = false;
  }
  std::int64_t kv_slots() const { return pool_ * BlockSize; }
  std::int64_t aux_slots() const { return aux_.aux_slots(); }
  std::int64_t blocks_in_use() const { return used_blocks_; }

  std::int64_t kv_slot(int l, std::int32_t p) const {
    const auto b = table_[entry(l, p)];
    if (b < 0) return -1;
    const auto s = b * BlockSize + (p % BlockSize);
    return present_[std::size_t(s)] ? s : -1;
  }
  std::int64_t add_kv(int l, std::int32_t p) {
    auto& b = table_[entry(l, p)];
    if (b < 0) {
      if (used_blocks_ == pool_)
        throw Error("paged KV cache: all " + std::to_string(pool_) + " blocks of " + std::to_string(BlockSize) +
                    " tokens are in use (raise max_blocks)");
      b = used_blocks_++;
      if (in_step_) undo_.push_back({entry(l, p), -1});
    }
    const auto s = b * BlockSize + (p % BlockSize);
    if (present_[std::size_t(s)])
      throw Error("internal: K/V of token " + std::to_string(p) + " at layer " + std::to_string(l) + " computed twice");
    present_[std::size_t(s)] = 1;
    if (in_step_) undo_.push_back({0, s});
    return s;
  }
  std::int64_t aux_slot(int l, std::int32_t p) const { return aux_.aux_slot(l, p); }
  std::int64_t add_aux(int l, std::int32_t p) { return aux_.add_aux(l, p); }
  void release_aux(int l, std::int32_t p) { aux_.release_aux(l, p); }
  std::int64_t aux_live() const { return aux_.aux_live(); }
  static constexpr std::string_view name() { return "paged"; }

  // TransactionalLayout: blocks are taken in order from a counter, so undoing a step's block
  // allocations (newest first) returns the counter to where it was.
  void begin_step() {
    undo_.clear();
    in_step_ = true;
    aux_.begin_step();
  }
  void commit_step() {
    undo_.clear();
    in_step_ = false;
    aux_.commit_step();
  }
  void rollback_step() {
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
      if (it->slot >= 0) {
        present_[std::size_t(it->slot)] = 0;
      } else {
        table_[it->table_entry] = -1;
        --used_blocks_;
      }
    }
    undo_.clear();
    in_step_ = false;
    aux_.rollback_step();
  }

  /// The block table of one layer (block id per BlockSize positions, -1 = none).
  std::span<const std::int64_t> block_table(int l) const {
    return {table_.data() + std::size_t(l) * std::size_t(blocks_per_layer_), std::size_t(blocks_per_layer_)};
  }

 private:
  std::size_t entry(int l, std::int32_t p) const {
    return std::size_t(l) * std::size_t(blocks_per_layer_) + std::size_t(p / BlockSize);
  }
  std::int64_t max_blocks_ = 0;
  LayoutShape shape_;
  int blocks_per_layer_ = 0;
  std::vector<std::int64_t> table_;
  std::int64_t pool_ = 0, used_blocks_ = 0;
  std::vector<std::uint8_t> present_;
  ContiguousLayout aux_;  // Aux Cache bookkeeping (its K/V side is unused)
  struct Undo {
    std::size_t table_entry;  // a block taken for this table entry (when slot < 0)
    std::int64_t slot;        // a slot marked present
  };
  std::vector<Undo> undo_;
  bool in_step_ = false;
};

static_assert(TransactionalLayout<PagedLayout<>>);

}  // namespace lazyllm
