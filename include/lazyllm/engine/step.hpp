// SPDX-License-Identifier: MIT
// The LazyLLM step over one or many sequences: the core that Pipeline (one sequence) and Engine
// (many) share. Internal: users reach it through those two.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <numeric>
#include <span>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "lazyllm/backend/attention_backend.hpp"
#include "lazyllm/cache/cache_layout.hpp"
#include "lazyllm/config/model_config.hpp"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/policy/pruning_policy.hpp"
#include "lazyllm/stats.hpp"

namespace lazyllm {

/// What Pipeline::on_layer() reports after each layer of a step (e.g. for prefill progress).
struct LayerProgress {
  int layer = 0;  // the layer just issued to the backend (0-based)
  int n_layers = 0;
  Phase phase = Phase::Prefill;
  int new_tokens = 0;  // tokens appended by this step
  int computed = 0;    // |C_l|: tokens this layer computed
};

namespace detail {

/// One sequence: its tokens, policy, cache layout (which (layer, position) pairs have K/V or an
/// Aux entry, and where) and statistics, plus the scratch of a step. Nothing here is large or
/// on a device: the K/V and Aux data live in the backend's storage, addressed by the layout's
/// slots.
template <class Policy, class Layout>
struct SequenceCore {
  Policy policy;
  Layout layout;
  LayoutShape shape;
  int n_ctx = 0;
  bool prunes = false;  // the policy prunes going into some layer
  std::vector<std::int32_t> tokens;
  RunStats stats;

  // ---- per-step scratch (kept to avoid reallocations) ----
  std::vector<std::int32_t> sel, prev_c, cur_c, src_rows, aux_rows;
  std::vector<std::int64_t> src_aux, q_slots, kv_slots, aux_slots;
  std::vector<std::uint8_t> keep, cached_next;
  std::vector<float> scores;
  StepStats st;
  std::int64_t aux_peak = 0;
  std::size_t tokens_before = 0;
  int row_begin = 0, prev_row_begin = 0;
  bool prune_next = false;
  float rule = -1.0f;

  SequenceCore(Policy p, Layout l) : policy(std::move(p)), layout(std::move(l)) {}

  /// Sizes the layout for `rc` and a context of `ctx` tokens (0: the model's max_seq_len).
  void init(const RuntimeConfig& rc, int ctx) {
    if (ctx < 0 || ctx > rc.max_seq_len)
      throw InvalidArgument("context size " + std::to_string(ctx) + " is outside 1.." + std::to_string(rc.max_seq_len) +
                            " (the model's max_seq_len)");
    n_ctx = ctx ? ctx : rc.max_seq_len;
    if constexpr (requires { policy.schedule(); }) policy.schedule().validate_for(rc.n_layers);
    LayoutShape s{rc.n_layers, n_ctx, std::vector<bool>(std::size_t(rc.n_layers), false)};
    for (int l = 1; l < rc.n_layers; ++l) s.aux_layers[std::size_t(l)] = bool(policy.prunes_into(l));
    prunes = std::find(s.aux_layers.begin(), s.aux_layers.end(), true) != s.aux_layers.end();
    layout.reset(s);
    shape = std::move(s);
    start_stats(rc.n_layers);
  }

  /// Forgets the tokens, the cache entries and the statistics.
  void reset() {
    layout.reset(shape);
    tokens.clear();
    start_stats(shape.n_layers);
  }

  void start_stats(int n_layers) {
    stats = {};
    std::ostringstream os;
    os << policy;
    stats.policy = os.str();
    for (int l = 1; l < n_layers; ++l)
      if (policy.prunes_into(l)) stats.pruning_layers.push_back(l);
    if constexpr (requires { policy.schedule(); })
      stats.schedule = policy.schedule().to_string();
    else  // a policy without a schedule: say what it does rather than "none" when it prunes
      stats.schedule = stats.pruning_layers.empty() ? "none" : stats.policy;
    stats.n_layers = n_layers;
    aux_peak = 0;
  }

  /// Throws InvalidArgument (and changes nothing) when `in` cannot be appended.
  void check_input(std::span<const std::int32_t> in, int vocab_size) const {
    if (in.empty()) throw InvalidArgument("no tokens to process");
    if (std::int64_t(tokens.size()) + std::int64_t(in.size()) > n_ctx)
      throw InvalidArgument("prompt of " + std::to_string(tokens.size() + in.size()) +
                            " tokens does not fit the context of " + std::to_string(n_ctx) + " tokens");
    for (auto id : in)
      if (id < 0 || id >= vocab_size)
        throw InvalidArgument("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                              std::to_string(vocab_size - 1) + ")");
  }

  // ---- a step's transaction: every change to the sequence is kept only by commit() ----
  void begin(std::span<const std::int32_t> in, Phase phase, int n_layers) {
    tokens_before = tokens.size();
    if constexpr (TransactionalLayout<Layout>) {
      layout.begin_step();
    } else {
      static_assert(
          std::is_copy_constructible_v<Layout>,
          "lazyllm: a CacheLayout must be copyable or a TransactionalLayout (so a failed step can be undone)");
      saved_layout_ = layout;
    }
    tokens.insert(tokens.end(), in.begin(), in.end());
    st = {};
    st.phase = phase;
    st.new_tokens = int(in.size());
    st.context = int(tokens.size());
    st.selected.assign(std::size_t(n_layers), 0);
    st.computed.assign(std::size_t(n_layers), 0);
    step_aux_peak_ = aux_peak;
    const int N = int(tokens.size());
    sel.resize(std::size_t(N));
    std::iota(sel.begin(), sel.end(), 0);
    prev_c.clear();
    prev_row_begin = 0;
  }
  void commit(double ms, std::int64_t aux_bytes_per_token) {
    if constexpr (TransactionalLayout<Layout>)
      layout.commit_step();
    else
      saved_layout_ = {};
    st.ms = ms;
    stats.steps.push_back(std::move(st));
    aux_peak = step_aux_peak_;
    stats.aux_peak_entries = aux_peak;
    stats.aux_peak_bytes = aux_peak * aux_bytes_per_token;
  }
  void rollback() noexcept {
    if constexpr (TransactionalLayout<Layout>)
      layout.rollback_step();
    else
      layout = std::move(saved_layout_);
    tokens.resize(tokens_before);
  }

  /// C_l: the tokens of S_l without layer-l K/V, with where their input comes from (this step's
  /// row of layer l-1, or an Aux Cache entry: a revival).
  void find_computed(int l) {
    cur_c.clear();
    src_rows.clear();
    src_aux.clear();
    std::size_t pi = 0;
    for (const std::int32_t p : sel) {
      if (layout.kv_slot(l, p) >= 0) continue;
      cur_c.push_back(p);
      if (l == 0) continue;
      while (pi < prev_c.size() && prev_c[pi] < p) ++pi;
      if (pi < prev_c.size() && prev_c[pi] == p) {
        src_rows.push_back(std::int32_t(pi));
        src_aux.push_back(-1);
      } else {
        const std::int64_t a = layout.aux_slot(l, p);
        if (a < 0)
          throw Error("internal: token " + std::to_string(p) + " selected at layer " + std::to_string(l) +
                      " has neither K/V, nor this step's input, nor an Aux Cache entry");
        src_rows.push_back(-1);
        src_aux.push_back(a);
        ++st.revivals;
      }
    }
  }
  /// C_l differs from C_{l-1} (tokens dropped or revived): the layer's input must be assembled.
  bool rows_change() const {
    return cur_c.size() != prev_c.size() ||
           std::any_of(src_aux.begin(), src_aux.end(), [](std::int64_t a) { return a >= 0; });
  }
  /// K/V slots for the rows (C_l) and the slots of S_l.
  void assign_slots(int l) {
    q_slots.resize(cur_c.size());
    for (std::size_t i = 0; i < cur_c.size(); ++i) q_slots[i] = layout.add_kv(l, cur_c[i]);
    kv_slots.resize(sel.size());
    for (std::size_t j = 0; j < sel.size(); ++j) kv_slots[j] = layout.kv_slot(l, sel[j]);
  }

  /// Going into `layer`: the policy keeps part of S_{layer-1} from `sc` (or the backend already
  /// did, into `kp`: `by_backend`); computed tokens it drops park their hidden state (this step's
  /// output of layer-1, rows prev_row_begin + i of the activations) in the Aux Cache of `layer`:
  /// their rows and slots are appended to aux_rows / aux_slots for the caller to store.
  void select_into(int layer, Phase phase, bool by_backend, std::span<const float> sc, std::span<std::uint8_t> kp,
                   int n_layers) {
    const std::size_t n = sel.size();
    if (!by_backend) {
      std::fill(kp.begin(), kp.end(), std::uint8_t{1});
      cached_next.resize(n);
      for (std::size_t j = 0; j < n; ++j) cached_next[j] = layout.kv_slot(layer, sel[j]) >= 0 ? 1 : 0;
      SelectArgs args{layer, n_layers, phase, std::int64_t(stats.steps.size()), sel, sc, cached_next};
      policy.select(args, kp);
    }
    kp[n - 1] = 1;  // the newest token is always computed
    std::size_t w = 0, pi = 0;
    for (std::size_t j = 0; j < n; ++j) {
      const std::int32_t p = sel[j];
      if (kp[j]) {
        sel[w++] = p;
        continue;
      }
      while (pi < prev_c.size() && prev_c[pi] < p) ++pi;
      if (pi < prev_c.size() && prev_c[pi] == p) {  // computed this step: park it
        aux_rows.push_back(std::int32_t(prev_row_begin) + std::int32_t(pi));
        aux_slots.push_back(layout.add_aux(layer, p));
      }
    }
    sel.resize(w);
    step_aux_peak_ = std::max(step_aux_peak_, std::int64_t(layout.aux_live()));
  }

 private:
  std::conditional_t<TransactionalLayout<Layout>, char, Layout> saved_layout_{};
  std::int64_t step_aux_peak_ = 0;
};

/// One step's input for one sequence.
struct StepInput {
  std::span<const std::int32_t> tokens;
  Phase phase = Phase::Prefill;
};

/// Runs steps over sequences that share one backend. One sequence calls the backend's
/// single-sequence interface (layer, layer_select, the graph-step hooks) exactly as a Pipeline
/// always has; several call its batched interface (BatchedBackend).
template <class Backend>
class StepRunner {
 public:
  using Activations = typename Backend::Activations;

  /// Runs the layers of one step for `seqs[i]` consuming `in[i]`, then `finish(x, last_rows)`
  /// (the caller's logits; last_rows[i] is the row of sequence i's newest token), then commits.
  /// Any exception (bad input, out of blocks, a throwing callback or backend) leaves every
  /// sequence as it was and is rethrown.
  template <class Seq, class Finish>
  void run(Backend& be, std::span<Seq* const> seqs, std::span<const StepInput> in,
           const std::function<void(const LayerProgress&)>& on_layer, Finish&& finish) {
    const auto t0 = std::chrono::steady_clock::now();
    const RuntimeConfig& c = be.config();
    for (std::size_t i = 0; i < seqs.size(); ++i) seqs[i]->check_input(in[i].tokens, c.vocab_size);
    std::size_t begun = 0;
    GraphStep graph{be, false};
    try {
      for (; begun < seqs.size(); ++begun) seqs[begun]->begin(in[begun].tokens, in[begun].phase, c.n_layers);
      if (seqs.size() == 1)
        layers_one(be, *seqs[0], in[0], on_layer, graph);
      else
        layers_batch(be, seqs, in, on_layer);
      last_rows_.resize(seqs.size());
      for (std::size_t i = 0; i < seqs.size(); ++i)
        last_rows_[i] = seqs[i]->prev_row_begin + int(seqs[i]->prev_c.size()) - 1;
      finish(x_, std::span<const int>(last_rows_));
    } catch (...) {
      for (std::size_t i = 0; i < begun; ++i) seqs[i]->rollback();
      throw;
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    for (auto* s : seqs) s->commit(ms, be.aux_bytes_per_token());
  }

  Activations& activations() { return x_; }

 private:
  // The percentile the backend applies itself going into `layer` (SelectingBackend), or -1 when
  // the policy selects from the scores on the host.
  template <class Seq>
  static float backend_rule(const Backend& be, const Seq& s, int layer, Phase phase) {
    if constexpr (SelectingBackend<Backend> && PercentileRulePolicy<decltype(s.policy)>) {
      if (be.device_select()) {
        // A policy whose rule depends on the step (Static: the first prompt only) says so.
        if constexpr (requires { s.policy.percentile_rule(layer, phase, std::int64_t{0}); })
          return float(s.policy.percentile_rule(layer, phase, std::int64_t(s.stats.steps.size())));
        else
          return float(s.policy.percentile_rule(layer, phase));
      }
    }
    return -1.0f;
  }

  // Drops the backend's recording of a step that throws before end_graph_step (a no-op after it).
  struct GraphStep {
    Backend& backend;
    bool on = false;
    ~GraphStep() {
      if constexpr (GraphStepBackend<Backend>)
        if (on) backend.cancel_graph_step();
    }
  };

  /// One sequence: the backend's single-sequence calls, in the order a Pipeline has always made them.
  template <class Seq>
  void layers_one(Backend& be, Seq& s, const StepInput& in, const std::function<void(const LayerProgress&)>& on_layer,
                  GraphStep& graph) {
    const int L = be.config().n_layers;
    const Phase phase = in.phase;
    // A decode step that prunes nothing (the dense model) makes the same launches every step with
    // one row per layer: a GraphStepBackend may defer them and replay them as CUDA graphs. Not with
    // an on_layer callback, which may wait for each layer.
    if constexpr (GraphStepBackend<Backend>)
      graph.on = phase == Phase::Decode && in.tokens.size() == 1 && !s.prunes && !on_layer &&
                 be.begin_graph_step(int(s.tokens.size()));
    for (int l = 0; l < L; ++l) {
      s.find_computed(l);
      s.row_begin = 0;
      if (l == 0) {
        ids_.resize(s.cur_c.size());
        for (std::size_t i = 0; i < s.cur_c.size(); ++i) ids_[i] = s.tokens[std::size_t(s.cur_c[i])];
        be.embed(ids_, x_);
      } else if (s.rows_change()) {
        // Rows change (tokens dropped or revived): assemble this layer's input. When C_l is
        // exactly C_{l-1}, x already is the input and nothing moves.
        be.gather(x_, s.src_rows, s.src_aux, x_next_);
        std::swap(x_, x_next_);
        for (std::size_t i = 0; i < s.cur_c.size(); ++i)
          if (s.src_rows[i] < 0) s.layout.release_aux(l, s.cur_c[i]);
      }
      s.assign_slots(l);

      s.prune_next = l + 1 < L && s.policy.prunes_into(l + 1);
      s.rule = s.prune_next ? backend_rule(be, s, l + 1, phase) : -1.0f;
      LayerCall call{l, s.cur_c, s.q_slots, s.sel, s.kv_slots, s.prune_next};
      if (s.rule >= 0.0f) {  // only a SelectingBackend gets a rule (backend_rule)
        if constexpr (SelectingBackend<Backend>) {
          s.keep.resize(s.sel.size());
          be.layer_select(call, x_, s.rule, s.keep);
        }
      } else {
        s.scores.resize(s.prune_next ? s.sel.size() : 0);
        be.layer(call, x_, s.scores);
      }
      s.st.selected[std::size_t(l)] = int(s.sel.size());
      s.st.computed[std::size_t(l)] = int(s.cur_c.size());
      if (on_layer) on_layer(LayerProgress{l, L, phase, int(in.tokens.size()), int(s.cur_c.size())});
      std::swap(s.prev_c, s.cur_c);
      s.prev_row_begin = 0;
      if (s.prune_next) {
        s.aux_rows.clear();
        s.aux_slots.clear();
        s.keep.resize(s.sel.size());
        s.select_into(l + 1, phase, s.rule >= 0.0f, s.scores, s.keep, L);
        if (!s.aux_rows.empty()) be.store_aux(x_, s.aux_rows, s.aux_slots);
      }
    }
    if constexpr (GraphStepBackend<Backend>)
      if (graph.on) be.end_graph_step();
  }

  /// Several sequences: GEMMs over all their rows, attention and selection per sequence.
  template <class Seq>
  void layers_batch(Backend& be, std::span<Seq* const> seqs, std::span<const StepInput> in,
                    const std::function<void(const LayerProgress&)>& on_layer) {
    if constexpr (!BatchedBackend<Backend>) {
      (void)be, (void)in, (void)on_layer;
      throw InvalidArgument(std::string("backend '") + std::string(be.name()) +
                            "' runs one sequence per step (it is not a BatchedBackend)");
    } else {
      const int L = be.config().n_layers;
      const std::size_t n = seqs.size();
      spans_.resize(n);
      rules_.resize(n);
      for (int l = 0; l < L; ++l) {
        // Each sequence's C_l; rows are grouped by sequence.
        int total = 0;
        bool change = false;
        for (auto* s : seqs) {
          s->find_computed(l);
          s->row_begin = total;
          total += int(s->cur_c.size());
          change = change || (l > 0 && (s->rows_change() || s->row_begin != s->prev_row_begin));
        }
        if (l == 0) {
          ids_.clear();
          for (auto* s : seqs)
            for (const auto p : s->cur_c) ids_.push_back(s->tokens[std::size_t(p)]);
          be.embed(ids_, x_);
        } else if (change) {
          g_src_rows_.clear();
          g_src_aux_.clear();
          for (auto* s : seqs)
            for (std::size_t i = 0; i < s->cur_c.size(); ++i) {
              g_src_rows_.push_back(s->src_rows[i] >= 0 ? s->prev_row_begin + s->src_rows[i] : -1);
              g_src_aux_.push_back(s->src_aux[i]);
            }
          be.gather(x_, g_src_rows_, g_src_aux_, x_next_);
          std::swap(x_, x_next_);
          for (auto* s : seqs)
            for (std::size_t i = 0; i < s->cur_c.size(); ++i)
              if (s->src_rows[i] < 0) s->layout.release_aux(l, s->cur_c[i]);
        }
        // Slots, and the concatenated index arrays.
        g_q_pos_.clear();
        g_q_slots_.clear();
        g_kv_pos_.clear();
        g_kv_slots_.clear();
        bool any_rule = false;
        for (std::size_t i = 0; i < n; ++i) {
          auto& s = *seqs[i];
          s.assign_slots(l);
          s.prune_next = l + 1 < L && s.policy.prunes_into(l + 1);
          s.rule = -1.0f;  // the backend selects only through the batched rule call
          if constexpr (BatchSelectingBackend<Backend>)
            if (s.prune_next) s.rule = backend_rule(be, s, l + 1, in[i].phase);
          any_rule = any_rule || s.rule >= 0.0f;
          rules_[i] = s.rule;
          spans_[i] = SeqSpan{s.row_begin, int(s.cur_c.size()), std::int64_t(g_kv_pos_.size()),
                              std::int64_t(s.sel.size()), s.prune_next};
          g_q_pos_.insert(g_q_pos_.end(), s.cur_c.begin(), s.cur_c.end());
          g_q_slots_.insert(g_q_slots_.end(), s.q_slots.begin(), s.q_slots.end());
          g_kv_pos_.insert(g_kv_pos_.end(), s.sel.begin(), s.sel.end());
          g_kv_slots_.insert(g_kv_slots_.end(), s.kv_slots.begin(), s.kv_slots.end());
        }
        const BatchLayerCall call{l, g_q_pos_, g_q_slots_, g_kv_pos_, g_kv_slots_, spans_};
        g_scores_.assign(g_kv_pos_.size(), 0.0f);
        g_keep_.assign(g_kv_pos_.size(), 1);
        if constexpr (BatchSelectingBackend<Backend>) {
          if (any_rule)
            be.layer_select_batch(call, x_, rules_, g_scores_, g_keep_);
          else
            be.layer_batch(call, x_, g_scores_);
        } else {
          be.layer_batch(call, x_, g_scores_);
        }
        int computed = 0, new_tokens = 0;
        for (std::size_t i = 0; i < n; ++i) new_tokens += int(in[i].tokens.size());
        for (auto* s : seqs) {
          s->st.selected[std::size_t(l)] = int(s->sel.size());
          s->st.computed[std::size_t(l)] = int(s->cur_c.size());
          computed += int(s->cur_c.size());
        }
        if (on_layer) on_layer(LayerProgress{l, L, in[0].phase, new_tokens, computed});
        // Selection per sequence into layer l+1; the dropped rows computed this step go to the
        // Aux Cache in one call.
        g_aux_rows_.clear();
        g_aux_slots_.clear();
        for (std::size_t i = 0; i < n; ++i) {
          auto& s = *seqs[i];
          std::swap(s.prev_c, s.cur_c);
          s.prev_row_begin = s.row_begin;
          if (!s.prune_next) continue;
          s.aux_rows.clear();
          s.aux_slots.clear();
          const auto b = std::size_t(spans_[i].kv_begin), m = std::size_t(spans_[i].n_kv);
          s.select_into(l + 1, in[i].phase, s.rule >= 0.0f, std::span<const float>(g_scores_).subspan(b, m),
                        std::span<std::uint8_t>(g_keep_).subspan(b, m), L);
          g_aux_rows_.insert(g_aux_rows_.end(), s.aux_rows.begin(), s.aux_rows.end());
          g_aux_slots_.insert(g_aux_slots_.end(), s.aux_slots.begin(), s.aux_slots.end());
        }
        if (!g_aux_rows_.empty()) be.store_aux(x_, g_aux_rows_, g_aux_slots_);
      }
    }
  }

  Activations x_{}, x_next_{};
  std::vector<std::int32_t> ids_, g_q_pos_, g_kv_pos_, g_src_rows_, g_aux_rows_;
  std::vector<std::int64_t> g_q_slots_, g_kv_slots_, g_src_aux_, g_aux_slots_;
  std::vector<float> g_scores_, rules_;
  std::vector<std::uint8_t> g_keep_;
  std::vector<SeqSpan> spans_;
  std::vector<int> last_rows_;
};

}  // namespace detail
}  // namespace lazyllm
