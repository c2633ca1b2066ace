// SPDX-License-Identifier: MIT
// PooledLayout: one sequence's K/V and Aux Cache slots, in blocks drawn from a shared BlockPool.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lazyllm/cache/cache_layout.hpp"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/engine/pool.hpp"

namespace lazyllm {

/// The layout of a sequence served by the engine. Slots are packed in the order tokens are
/// computed, layer by layer: the k-th token computed at layer l takes entry k of that layer's
/// block list, so a layer whose set LazyLLM has pruned to a third of the prompt holds a third of
/// the blocks (a token pruned before layer l takes no block at layers >= l). Aux Cache entries
/// are packed the same way per pruning layer, their freed entries reused. Blocks return to the
/// pool when the layout is reset or destroyed.
///
/// Slots are global indices into the pool's arena: K/V slot = block * B + i, Aux slot = block *
/// aux_per_block + i (cache/kv_store.hpp turns them into addresses). Move-only (it owns blocks);
/// TransactionalLayout, so a failed step gives back exactly the blocks it took.
class PooledLayout {
 public:
  PooledLayout() = default;  // unusable until given a pool (reset() throws)
  explicit PooledLayout(std::shared_ptr<BlockPool> pool) : pool_(std::move(pool)) {
    if (pool_) {
      const auto& g = pool_->geometry();
      shift_ = g.block_shift();
      per_aux_ = g.aux_per_block();
    }
  }
  PooledLayout(PooledLayout&& o) noexcept { *this = std::move(o); }
  PooledLayout& operator=(PooledLayout&& o) noexcept {
    if (this != &o) {
      release_all();
      pool_ = std::move(o.pool_);
      shift_ = o.shift_;
      per_aux_ = o.per_aux_;
      kv_ = std::move(o.kv_);
      aux_ = std::move(o.aux_);
      pending_free_ = std::move(o.pending_free_);
      undo_ = std::move(o.undo_);
      in_step_ = o.in_step_;
      aux_live_ = o.aux_live_;
      blocks_ = o.blocks_;
      o.kv_.clear();
      o.aux_.clear();
      o.blocks_ = 0;
    }
    return *this;
  }
  PooledLayout(const PooledLayout&) = delete;
  PooledLayout& operator=(const PooledLayout&) = delete;
  ~PooledLayout() { release_all(); }

  void reset(const LayoutShape& s) {
    if (!pool_) throw ConfigError("PooledLayout: no block pool (construct it with one)");
    release_all();
    kv_.assign(std::size_t(s.n_layers), Table{});
    aux_.assign(std::size_t(s.n_layers), Table{});
    for (int l = 0; l < s.n_layers; ++l)
      aux_[std::size_t(l)].enabled = l < int(s.aux_layers.size()) && s.aux_layers[std::size_t(l)];
    pending_free_.clear();
    undo_.clear();
    in_step_ = false;
    aux_live_ = 0;
  }

  std::int64_t kv_slots() const { return pool_ ? pool_->capacity() << shift_ : 0; }
  std::int64_t aux_slots() const { return pool_ ? pool_->capacity() * per_aux_ : 0; }

  std::int64_t kv_slot(int l, std::int32_t p) const {
    const Table& t = kv_[std::size_t(l)];
    const std::int32_t i = t.index_of(p);
    return i < 0 ? -1 : (t.blocks[std::size_t(i >> shift_)] << shift_) + (i & ((1 << shift_) - 1));
  }
  std::int64_t add_kv(int l, std::int32_t p) {
    Table& t = kv_[std::size_t(l)];
    if (t.index_of(p) >= 0)
      throw Error("internal: K/V of token " + std::to_string(p) + " at layer " + std::to_string(l) + " computed twice");
    const std::int32_t i = t.count;
    const bool new_block = (i & ((1 << shift_) - 1)) == 0;
    if (new_block) take_block(t);  // may throw OutOfBlocks: nothing has changed yet
    t.set(p, i);
    ++t.count;
    if (in_step_) undo_.push_back({Op::AddKv, l, p, i, new_block, false});
    return kv_slot(l, p);
  }

  std::int64_t aux_slot(int l, std::int32_t p) const {
    const Table& t = aux_[std::size_t(l)];
    const std::int32_t i = t.enabled ? t.index_of(p) : -1;
    return i < 0 ? -1 : t.blocks[std::size_t(i / per_aux_)] * per_aux_ + i % per_aux_;
  }
  std::int64_t add_aux(int l, std::int32_t p) {
    Table& t = aux_[std::size_t(l)];
    if (!t.enabled) throw Error("internal: layer " + std::to_string(l) + " has no Aux Cache");
    if (t.index_of(p) >= 0)
      throw Error("internal: token " + std::to_string(p) + " already has an Aux entry at layer " + std::to_string(l));
    std::int32_t i;
    bool new_block = false, reused = false;
    if (!t.free.empty()) {
      i = t.free.back();
      t.free.pop_back();
      reused = true;
    } else {
      i = t.count;
      new_block = i % per_aux_ == 0;
      if (new_block) take_block(t);
      ++t.count;
    }
    t.set(p, i);
    ++aux_live_;
    if (in_step_) undo_.push_back({Op::AddAux, l, p, i, new_block, reused});
    return aux_slot(l, p);
  }
  void release_aux(int l, std::int32_t p) {
    Table& t = aux_[std::size_t(l)];
    const std::int32_t i = t.enabled ? t.index_of(p) : -1;
    if (i < 0) return;
    t.set(p, -1);
    --aux_live_;
    if (in_step_) {
      pending_free_.push_back({l, i});  // reusable only once the step is committed
      undo_.push_back({Op::ReleaseAux, l, p, i, false, false});
    } else {
      t.free.push_back(i);
    }
  }
  std::int64_t aux_live() const { return aux_live_; }
  static constexpr std::string_view name() { return "pooled"; }

  // TransactionalLayout
  void begin_step() {
    commit_step();
    in_step_ = true;
  }
  void commit_step() {
    for (const auto& [l, i] : pending_free_) aux_[std::size_t(l)].free.push_back(i);
    pending_free_.clear();
    undo_.clear();
    in_step_ = false;
  }
  void rollback_step() {
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
      Table& t = (it->op == Op::AddKv ? kv_ : aux_)[std::size_t(it->layer)];
      switch (it->op) {
        case Op::AddKv:
          t.set(it->pos, -1);
          --t.count;
          if (it->new_block) give_back_last_block(t);
          break;
        case Op::AddAux:
          t.set(it->pos, -1);
          --aux_live_;
          if (it->reused) {
            t.free.push_back(it->index);
          } else {
            --t.count;
            if (it->new_block) give_back_last_block(t);
          }
          break;
        case Op::ReleaseAux:
          t.set(it->pos, it->index);
          ++aux_live_;
          pending_free_.pop_back();
          break;
      }
    }
    undo_.clear();
    pending_free_.clear();
    in_step_ = false;
  }

  /// Blocks this sequence holds (K/V and Aux), and how many of them hold K/V of layer l.
  std::int64_t blocks_in_use() const { return blocks_; }
  std::int64_t kv_blocks(int l) const { return std::int64_t(kv_[std::size_t(l)].blocks.size()); }
  const std::shared_ptr<BlockPool>& pool() const { return pool_; }

 private:
  struct Table {
    bool enabled = true;
    std::int32_t count = 0;            // entries handed out (including freed ones)
    std::vector<std::int32_t> index;   // position -> entry (or -1)
    std::vector<std::int64_t> blocks;  // entry / per-block -> block id
    std::vector<std::int32_t> free;    // freed entries (Aux only)
    std::int32_t index_of(std::int32_t p) const {
      return p >= 0 && std::size_t(p) < index.size() ? index[std::size_t(p)] : -1;
    }
    void set(std::int32_t p, std::int32_t i) {
      if (std::size_t(p) >= index.size()) index.resize(std::max(std::size_t(p) + 1, index.size() * 2), -1);
      index[std::size_t(p)] = i;
    }
  };
  enum class Op : std::uint8_t { AddKv, AddAux, ReleaseAux };
  struct Undo {
    Op op;
    int layer;
    std::int32_t pos, index;
    bool new_block, reused;
  };

  void take_block(Table& t) {
    t.blocks.push_back(pool_->allocate());
    ++blocks_;
  }
  void give_back_last_block(Table& t) {
    pool_->release(t.blocks.back());
    t.blocks.pop_back();
    --blocks_;
  }
  void release_all() noexcept {
    if (!pool_) return;
    for (auto* tables : {&kv_, &aux_})
      for (auto& t : *tables)
        for (const auto b : t.blocks) {
          try {
            pool_->release(b);
          } catch (...) {
          }
        }
    kv_.clear();
    aux_.clear();
    blocks_ = 0;
  }

  std::shared_ptr<BlockPool> pool_;
  int shift_ = 0, per_aux_ = 1;
  std::vector<Table> kv_, aux_;
  std::vector<std::pair<int, std::int32_t>> pending_free_;
  std::vector<Undo> undo_;
  bool in_step_ = false;
  std::int64_t aux_live_ = 0;
  std::int64_t blocks_ = 0;
};

static_assert(TransactionalLayout<PooledLayout>);

}  // namespace lazyllm
