// SPDX-License-Identifier: MIT
// The CacheLayout customisation point: where each token's per-layer K/V and Aux Cache entry live.
#pragma once
#include <concepts>
#include <cstdint>
#include <string_view>
#include <vector>

namespace lazyllm {

/// What a layout is sized for. `aux_layers[l]` is true where the policy may drop tokens going
/// into layer l: only those layers get an Aux Cache.
struct LayoutShape {
  int n_layers = 0;
  int n_ctx = 0;
  std::vector<bool> aux_layers;
};

/// A cache layout is host-side index metadata: it maps (layer, position) to a *slot*, an index
/// into storage that the backend owns (K and V: kv_slots() x kv_dim each; Aux: aux_slots() x dim).
/// Slots are -1 when absent. The backend passes slot arrays to its kernels, so the same kernels
/// serve every layout (the FlashInfer paged_kv_t idea: a plain descriptor plus an indirection).
///   - `add_kv(l, p)` marks token p as having layer-l K/V and returns its slot;
///   - `add_aux(l, p)` / `release_aux(l, p)` manage the Aux Cache entry of token p at layer l.
template <class L>
concept CacheLayout = std::default_initializable<L> &&
    requires(L& c, const L& cc, const LayoutShape& shape, int layer, std::int32_t pos) {
  c.reset(shape);
  { cc.kv_slots() } -> std::convertible_to<std::int64_t>;
  { cc.aux_slots() } -> std::convertible_to<std::int64_t>;
  { cc.kv_slot(layer, pos) } -> std::convertible_to<std::int64_t>;
  { c.add_kv(layer, pos) } -> std::convertible_to<std::int64_t>;
  { cc.aux_slot(layer, pos) } -> std::convertible_to<std::int64_t>;
  { c.add_aux(layer, pos) } -> std::convertible_to<std::int64_t>;
  c.release_aux(layer, pos);
  { cc.aux_live() } -> std::convertible_to<std::int64_t>;
  { cc.name() } -> std::convertible_to<std::string_view>;
};

/// Optional: a layout that can undo a step. `begin_step()` opens a step, `rollback_step()` undoes
/// every add_kv / add_aux / release_aux since then (blocks taken are given back, released Aux
/// entries come back with their slots and data untouched), `commit_step()` keeps them. Between
/// begin and commit a released Aux slot is not reused, so a rollback finds its data intact. The
/// pipeline and the engine make every step atomic with it; a layout without it is copied before
/// each step instead (correct, but O(context) host work per step).
template <class L>
concept TransactionalLayout = CacheLayout<L> && requires(L& c) {
  c.begin_step();
  c.commit_step();
  c.rollback_step();
};

namespace detail {
template <class L>
constexpr bool check_layout() {
  static_assert(CacheLayout<L>,
                "lazyllm: the CacheLayout argument must be default-constructible and provide "
                "reset(LayoutShape), kv_slots(), aux_slots(), kv_slot(l,p), add_kv(l,p), "
                "aux_slot(l,p), add_aux(l,p), release_aux(l,p), aux_live() and name() "
                "(see include/lazyllm/cache/cache_layout.hpp)");
  return true;
}
}  // namespace detail

}  // namespace lazyllm
