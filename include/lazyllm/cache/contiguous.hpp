// SPDX-License-Identifier: MIT
// Contiguous layout: per layer, one slot per position (slot = layer * n_ctx + pos).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lazyllm/cache/cache_layout.hpp"
#include "lazyllm/detail/error.hpp"

namespace lazyllm {

class ContiguousLayout {
 public:
  void reset(const LayoutShape& s) {
    shape_ = s;
    const auto cells = std::size_t(s.n_layers) * std::size_t(s.n_ctx);
    kv_present_.assign(cells, 0);
    aux_index_.assign(std::size_t(s.n_layers), -1);
    int n_aux = 0;
    for (int l = 0; l < s.n_layers; ++l)
      if (l < int(s.aux_layers.size()) && s.aux_layers[std::size_t(l)]) aux_index_[std::size_t(l)] = n_aux++;
    aux_present_.assign(std::size_t(n_aux) * std::size_t(s.n_ctx), 0);
    aux_live_ = 0;
    undo_.clear();
    in_step_ = false;
  }
  std::int64_t kv_slots() const { return std::int64_t(shape_.n_layers) * shape_.n_ctx; }
  std::int64_t aux_slots() const { return std::int64_t(aux_present_.size()); }

  std::int64_t kv_slot(int l, std::int32_t p) const {
    const auto s = cell(l, p);
    return kv_present_[std::size_t(s)] ? s : -1;
  }
  std::int64_t add_kv(int l, std::int32_t p) {
    const auto s = cell(l, p);
    if (kv_present_[std::size_t(s)])
      throw Error("internal: K/V of token " + std::to_string(p) + " at layer " + std::to_string(l) + " computed twice");
    kv_present_[std::size_t(s)] = 1;
    log(Op::AddKv, s);
    return s;
  }
  std::int64_t aux_slot(int l, std::int32_t p) const {
    const auto s = aux_cell(l, p);
    return (s >= 0 && aux_present_[std::size_t(s)]) ? s : -1;
  }
  std::int64_t add_aux(int l, std::int32_t p) {
    const auto s = aux_cell(l, p);
    if (s < 0) throw Error("internal: layer " + std::to_string(l) + " has no Aux Cache");
    if (aux_present_[std::size_t(s)])
      throw Error("internal: token " + std::to_string(p) + " already has an Aux entry at layer " + std::to_string(l));
    aux_present_[std::size_t(s)] = 1;
    ++aux_live_;
    log(Op::AddAux, s);
    return s;
  }
  void release_aux(int l, std::int32_t p) {
    const auto s = aux_cell(l, p);
    if (s >= 0 && aux_present_[std::size_t(s)]) {
      aux_present_[std::size_t(s)] = 0;
      --aux_live_;
      log(Op::ReleaseAux, s);
    }
  }

  // TransactionalLayout: an undo log of the step's changes (each cell's slot is fixed, so a
  // released Aux slot is never handed to another token).
  void begin_step() {
    undo_.clear();
    in_step_ = true;
  }
  void commit_step() {
    undo_.clear();
    in_step_ = false;
  }
  void rollback_step() {
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
      const auto c = std::size_t(it->cell);
      switch (it->op) {
        case Op::AddKv:
          kv_present_[c] = 0;
          break;
        case Op::AddAux:
          aux_present_[c] = 0, --aux_live_;
          break;
        case Op::ReleaseAux:
          aux_present_[c] = 1, ++aux_live_;
          break;
      }
    }
    commit_step();
  }
  std::int64_t aux_live() const { return aux_live_; }
  static constexpr std::string_view name() { return "contiguous"; }

 private:
  std::int64_t cell(int l, std::int32_t p) const { return std::int64_t(l) * shape_.n_ctx + p; }
  std::int64_t aux_cell(int l, std::int32_t p) const {
    const int a = aux_index_[std::size_t(l)];
    return a < 0 ? -1 : std::int64_t(a) * shape_.n_ctx + p;
  }
  enum class Op : std::uint8_t { AddKv, AddAux, ReleaseAux };
  struct Undo {
    Op op;
    std::int64_t cell;
  };
  void log(Op op, std::int64_t cell) {
    if (in_step_) undo_.push_back({op, cell});
  }

  LayoutShape shape_;
  std::vector<std::uint8_t> kv_present_;
  std::vector<int> aux_index_;
  std::vector<std::uint8_t> aux_present_;
  std::int64_t aux_live_ = 0;
  std::vector<Undo> undo_;
  bool in_step_ = false;
};

static_assert(TransactionalLayout<ContiguousLayout>);

}  // namespace lazyllm
