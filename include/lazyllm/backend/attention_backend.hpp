// SPDX-License-Identifier: MIT
// The AttentionBackend customisation point: the compute of the model, one layer at a time, over
// the token sets the pipeline chooses.
#pragma once
#include <concepts>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "lazyllm/config/model_config.hpp"
#include "lazyllm/engine/pool.hpp"

namespace lazyllm {

/// One decoder layer over a pruned token set. Rows of the activations are the tokens computed
/// at this layer (C_l), in position order; attention runs over S_l (cached K/V of selected tokens
/// plus the K/V written for C_l this call), causally by original position.
struct LayerCall {
  int layer = 0;
  std::span<const std::int32_t> q_pos;     // positions of the rows (C_l), ascending
  std::span<const std::int64_t> q_slots;   // K/V slots the rows' K/V are written to
  std::span<const std::int32_t> kv_pos;    // positions of S_l (a superset of q_pos), ascending
  std::span<const std::int64_t> kv_slots;  // slots of S_l's K/V
  bool want_scores = false;                // fill scores over kv_pos: last row's softmax attention, mean over heads
};

/// One sequence's share of a batched layer call: its rows of the activations (its C_l) and its
/// entries of the concatenated key arrays (its S_l).
struct SeqSpan {
  int row_begin = 0;          // first row of x (rows are grouped by sequence, in call order)
  int rows = 0;               // |C_l| of this sequence (>= 1: its newest token is always computed)
  std::int64_t kv_begin = 0;  // first entry of kv_pos / kv_slots (and of the scores)
  std::int64_t n_kv = 0;      // |S_l| of this sequence
  bool want_scores = false;   // fill scores[kv_begin, kv_begin + n_kv): its last row's attention
};

/// One decoder layer over several sequences at once: the GEMMs run over all rows, attention runs
/// per sequence over its own set (causal by position, within the sequence). q_pos / q_slots have
/// one entry per row; kv_pos / kv_slots are the sequences' sets one after another. A batch of one
/// sequence is exactly a LayerCall.
struct BatchLayerCall {
  int layer = 0;
  std::span<const std::int32_t> q_pos;
  std::span<const std::int64_t> q_slots;
  std::span<const std::int32_t> kv_pos;
  std::span<const std::int64_t> kv_slots;
  std::span<const SeqSpan> seqs;
};

/// A backend owns the weights, the activations and the K/V + Aux storage, and provides:
///  - `Activations`: a rows x dim buffer type (host or device);
///  - `allocate(kv_slots, aux_slots)`: storage for the layout's slots;
///  - `embed(ids, x)`: x = embedding rows of the token ids;
///  - `gather(src, src_rows, aux_slots, dst)`: dst row i = src row src_rows[i], or, where that is
///    -1, the Aux Cache entry aux_slots[i];
///  - `store_aux(x, rows, aux_slots)`: copy rows of x into Aux Cache slots;
///  - `layer(call, x, scores)`: one decoder layer in place on x;
///  - `logits(x, row)`: final norm + classifier of one row, as host floats;
///  - `config()`, `name()`, `aux_bytes_per_token()`, `synchronize()`.
template <class B>
concept AttentionBackend = requires(B& b, const B& cb, typename B::Activations& x, const typename B::Activations& cx,
                                    std::span<const std::int32_t> ids, std::span<const std::int64_t> slots,
                                    const LayerCall& call, std::span<float> scores, std::int64_t n) {
  typename B::Activations;
  b.allocate(n, n);
  b.embed(ids, x);
  b.gather(cx, ids, slots, x);
  b.store_aux(cx, ids, slots);
  b.layer(call, x, scores);
  { b.logits(cx, 0) } -> std::convertible_to<std::span<const float>>;
  { cb.config() } -> std::convertible_to<const RuntimeConfig&>;
  { cb.name() } -> std::convertible_to<std::string_view>;
  { cb.aux_bytes_per_token() } -> std::convertible_to<std::int64_t>;
  b.synchronize();
};

/// Optional: a backend that can replay a step's launches (the CUDA backend: one CUDA graph per
/// decode step). Before a step whose every layer computes one row and wants no scores (a decode
/// step that prunes nothing), the pipeline calls `begin_graph_step(n_kv_max)` (no layer will see
/// more keys); when it returns true, the backend may defer the launches of the step's embed and
/// layer calls (the pipeline reads nothing back until `logits`), and `end_graph_step()`, called
/// after the last layer and before `logits`, is the point by which all of them are issued.
/// `cancel_graph_step()` drops a recording when the step throws (a no-op otherwise). Results must
/// be those of the same calls run one by one.
template <class B>
concept GraphStepBackend = requires(B& b, int n) {
  { b.begin_graph_step(n) } -> std::convertible_to<bool>;
  b.end_graph_step();
  b.cancel_graph_step();
};

/// Optional: a backend that applies LazyLLM's percentile rule itself, where the scores are
/// (SelectingCudaBackend, cuda/selecting_backend.cuh: CUB on the device, so n keep flags come back
/// instead of n scores, and the host does no selection work). When `device_select()` is true and the policy's selection
/// going into layer l+1 is exactly the rule (PercentileRulePolicy, pruning_policy.hpp, returns p >= 0), the pipeline
/// calls `layer_select(call, x, p, keep)` instead of `layer(call, x, scores)` and the policy's select: one layer as
/// `layer` with call.want_scores, then keep[i] = 1 where the scores (over call.kv_pos) are >= the p-quantile threshold
/// (detail::percentile_threshold, ties kept) and for the last key, 0 elsewhere; `keep` has call.kv_pos.size() entries.
/// The kept sets must be those of the policy on the same scores.
template <class B>
concept SelectingBackend = requires(B& b, const B& cb, typename B::Activations& x, const LayerCall& call, float p,
                                    std::span<std::uint8_t> keep) {
  { cb.device_select() } -> std::convertible_to<bool>;
  b.layer_select(call, x, p, keep);
};

/// Optional (required by the Engine): a backend that runs many sequences per step over one shared
/// model and keeps their K/V and Aux Cache entries in a BlockPool's arena.
///  - `B::Model`: the immutable weights on the backend's device, shared by any number of
///    backends (threads, engines) through std::shared_ptr<const Model>; `B(model, args...)`
///    builds a backend over it without copying weights, `model()` returns it;
///  - `kv_token_bytes()`: K + V of one token at one layer, in the backend's storage type;
///  - `arena_allocator()`: where the pool's arena lives when the engine brings none;
///  - `bind_arena(pool)`: use the BlockPool's arena for K/V and Aux (slots are the pool's);
///  - `layer_batch(call, x, scores)`: BatchLayerCall;
///  - `logits_rows(x, rows, out)`: the logits of several rows, out[i * vocab ...] (host floats).
template <class B>
concept BatchedBackend = AttentionBackend<B> &&
    requires(B& b, const B& cb, const BatchLayerCall& call, typename B::Activations& x,
             const typename B::Activations& cx, std::span<float> scores, const BlockPool& pool,
             std::span<const int> rows) {
  typename B::Model;
  { cb.model() } -> std::convertible_to<const std::shared_ptr<const typename B::Model>&>;
  { cb.kv_token_bytes() } -> std::convertible_to<std::int64_t>;
  b.arena_allocator();
  b.bind_arena(pool);
  b.layer_batch(call, x, scores);
  b.logits_rows(cx, rows, scores);
};

/// Optional: a BatchedBackend that also applies the percentile rule itself per sequence (the
/// batched form of SelectingBackend): percentiles[i] >= 0 for the sequences whose selection is the
/// rule (they must want scores), < 0 for the others, whose scores come back as in layer_batch;
/// keep flags come back over the concatenated sets for the former.
template <class B>
concept BatchSelectingBackend = BatchedBackend<B> && SelectingBackend<B> &&
    requires(B& b, const BatchLayerCall& call, typename B::Activations& x, std::span<const float> percentiles,
             std::span<float> scores, std::span<std::uint8_t> keep) {
  b.layer_select_batch(call, x, percentiles, scores, keep);
};

namespace detail {
template <class B>
constexpr bool check_backend() {
  static_assert(AttentionBackend<B>,
                "lazyllm: the AttentionBackend argument must provide an Activations type and "
                "allocate, embed, gather, store_aux, layer, logits, config, name, "
                "aux_bytes_per_token and synchronize (see include/lazyllm/backend/attention_backend.hpp)");
  return true;
}
}  // namespace detail

}  // namespace lazyllm
