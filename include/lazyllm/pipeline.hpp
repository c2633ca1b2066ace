// SPDX-License-Identifier: MIT
// Pipeline<Config, Policy, Layout, Backend>: the LazyLLM forward pass over any backend.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <numeric>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "lazyllm/backend/attention_backend.hpp"
#include "lazyllm/cache/cache_layout.hpp"
#include "lazyllm/config/model_config.hpp"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/policy/pruning_policy.hpp"
#include "lazyllm/stats.hpp"

namespace lazyllm {

namespace detail {
template <class C>
constexpr bool check_config() {
  static_assert(ModelConfig<C>,
                "lazyllm: the ModelConfig argument must expose dim, hidden_dim, n_layers, n_heads, "
                "n_kv_heads, vocab_size, max_seq_len, norm_eps, rope_theta, rope_style and "
                "tied_embeddings (see include/lazyllm/config/model_config.hpp)");
  return true;
}
}  // namespace detail

/// What Pipeline::on_layer() reports after each layer of a step (e.g. for prefill progress).
struct LayerProgress {
  int layer = 0;       // the layer just issued to the backend (0-based)
  int n_layers = 0;
  Phase phase = Phase::Prefill;
  int new_tokens = 0;  // tokens appended by this step
  int computed = 0;    // |C_l|: tokens this layer computed
};

/// One sequence through a Llama-architecture model with LazyLLM pruning.
///
/// Every step (a prompt, or one generated token) runs the layers in order. Layer 0 sees every
/// context token; going into each layer where the policy prunes, the policy keeps part of the
/// current set S_l using the last token's attention; S_{l+1} is a subset of S_l. A token of S_l
/// without layer-l K/V is computed at layer l, from this step's layer l-1 output or from its Aux
/// Cache entry (a revival); every other token of S_l is read from the KV cache. So each token is
/// computed at most once per layer, and an empty schedule is exactly the dense model.
template <class Config, class Policy, class Layout, class Backend>
class Pipeline {
  static_assert(detail::check_config<Config>() && detail::check_policy<Policy>() &&
                detail::check_layout<Layout>() && detail::check_backend<Backend>());

 public:
  using Activations = typename Backend::Activations;

  /// `n_ctx` = 0 uses the model's max_seq_len. Throws ConfigError when the backend's model does
  /// not have the shape of `Config`, InvalidArgument for a bad context size or schedule.
  Pipeline(Backend backend, Policy policy = {}, Layout layout = {}, int n_ctx = 0, Config config = {})
      : backend_(std::move(backend)), policy_(std::move(policy)), layout_(std::move(layout)) {
    const RuntimeConfig& rc = backend_.config();
    if (!std::is_same_v<Config, RuntimeConfig> && !same_shape(to_runtime(config), rc)) {
      std::ostringstream os;
      os << "model shape (" << rc << ") does not match the pipeline's config (" << to_runtime(config) << ")";
      throw ConfigError(os.str());
    }
    if (n_ctx < 0 || n_ctx > rc.max_seq_len)
      throw InvalidArgument("context size " + std::to_string(n_ctx) + " is outside 1.." + std::to_string(rc.max_seq_len) +
                            " (the model's max_seq_len)");
    n_ctx_ = n_ctx ? n_ctx : rc.max_seq_len;
    if constexpr (requires { policy_.schedule(); }) policy_.schedule().validate_for(rc.n_layers);
    LayoutShape shape{rc.n_layers, n_ctx_, std::vector<bool>(std::size_t(rc.n_layers), false)};
    for (int l = 1; l < rc.n_layers; ++l) shape.aux_layers[std::size_t(l)] = bool(policy_.prunes_into(l));
    prunes_ = std::find(shape.aux_layers.begin(), shape.aux_layers.end(), true) != shape.aux_layers.end();
    layout_.reset(shape);
    backend_.allocate(layout_.kv_slots(), layout_.aux_slots());
    shape_ = std::move(shape);
    start_stats();
  }

  /// Appends tokens (a prompt, or the next turn of a chat) and returns the logits of the last.
  std::span<const float> prefill(std::span<const std::int32_t> tokens) { return step(tokens, Phase::Prefill); }
  /// Appends one generated token and returns the logits that follow it.
  std::span<const float> decode(std::int32_t token) { return step({&token, 1}, Phase::Decode); }

  /// Calls `f` after each layer of every step, once the layer is issued to the backend (an
  /// asynchronous backend may still be running it; call backend().synchronize() in `f` to wait).
  /// Optional: an empty function (the default) costs one branch per layer.
  void on_layer(std::function<void(const LayerProgress&)> f) { on_layer_ = std::move(f); }

  /// Forgets the sequence (KV and Aux Cache) and the statistics.
  void reset() {
    layout_.reset(shape_);
    tokens_.clear();
    start_stats();
  }

  int n_past() const { return int(tokens_.size()); }
  int n_ctx() const { return n_ctx_; }
  const RunStats& stats() const { return stats_; }
  const Policy& policy() const { return policy_; }
  const Layout& layout() const { return layout_; }
  Backend& backend() { return backend_; }
  const RuntimeConfig& config() const { return backend_.config(); }

 private:
  static bool same_shape(const RuntimeConfig& a, const RuntimeConfig& b) {
    return a.dim == b.dim && a.hidden_dim == b.hidden_dim && a.n_layers == b.n_layers && a.n_heads == b.n_heads &&
           a.n_kv_heads == b.n_kv_heads && a.vocab_size == b.vocab_size;
  }

  void start_stats() {
    stats_ = {};
    std::ostringstream os;
    os << policy_;
    stats_.policy = os.str();
    if constexpr (requires { policy_.schedule(); })
      stats_.schedule = policy_.schedule().to_string();
    else
      stats_.schedule = "none";  // as an empty Schedule prints (AnyPolicy holding Dense says the same)
    stats_.n_layers = backend_.config().n_layers;
  }

  std::span<const float> step(std::span<const std::int32_t> tokens, Phase phase) {
    const auto t0 = std::chrono::steady_clock::now();
    const RuntimeConfig& c = backend_.config();
    if (tokens.empty()) throw InvalidArgument("no tokens to process");
    if (n_past() + std::int64_t(tokens.size()) > n_ctx_)
      throw InvalidArgument("prompt of " + std::to_string(n_past() + tokens.size()) +
                            " tokens does not fit the context of " + std::to_string(n_ctx_) + " tokens");
    for (auto id : tokens)
      if (id < 0 || id >= c.vocab_size)
        throw InvalidArgument("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                              std::to_string(c.vocab_size - 1) + ")");
    tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
    const int L = c.n_layers, N = n_past();

    StepStats st;
    st.phase = phase;
    st.new_tokens = int(tokens.size());
    st.context = N;
    st.selected.assign(std::size_t(L), 0);
    st.computed.assign(std::size_t(L), 0);

    sel_.resize(std::size_t(N));
    std::iota(sel_.begin(), sel_.end(), 0);
    prev_c_.clear();
    // A decode step that prunes nothing (the dense model) makes the same launches every step with
    // one row per layer: a GraphStepBackend may defer them and replay them as CUDA graphs. Not with
    // an on_layer callback, which may wait for each layer.
    GraphStep graph{backend_, false};
    if constexpr (GraphStepBackend<Backend>)
      graph.on = phase == Phase::Decode && tokens.size() == 1 && !prunes_ && !on_layer_ && backend_.begin_graph_step(N);
    for (int l = 0; l < L; ++l) {
      // C_l: the tokens of S_l without layer-l K/V, with where their input comes from.
      cur_c_.clear();
      src_rows_.clear();
      src_aux_.clear();
      std::size_t pi = 0;
      for (const std::int32_t p : sel_) {
        if (layout_.kv_slot(l, p) >= 0) continue;
        cur_c_.push_back(p);
        if (l == 0) continue;
        while (pi < prev_c_.size() && prev_c_[pi] < p) ++pi;
        if (pi < prev_c_.size() && prev_c_[pi] == p) {
          src_rows_.push_back(std::int32_t(pi));
          src_aux_.push_back(-1);
        } else {
          const std::int64_t a = layout_.aux_slot(l, p);
          if (a < 0)
            throw Error("internal: token " + std::to_string(p) + " selected at layer " + std::to_string(l) +
                        " has neither K/V, nor this step's input, nor an Aux Cache entry");
          src_rows_.push_back(-1);
          src_aux_.push_back(a);
          ++st.revivals;
        }
      }
      if (l == 0) {
        ids_.resize(cur_c_.size());
        for (std::size_t i = 0; i < cur_c_.size(); ++i) ids_[i] = tokens_[std::size_t(cur_c_[i])];
        backend_.embed(ids_, x_);
      } else if (cur_c_.size() != prev_c_.size() ||
                 std::any_of(src_aux_.begin(), src_aux_.end(), [](std::int64_t a) { return a >= 0; })) {
        // Rows change (tokens dropped or revived): assemble this layer's input. When C_l is
        // exactly C_{l-1}, x already is the input and nothing moves.
        backend_.gather(x_, src_rows_, src_aux_, x_next_);
        std::swap(x_, x_next_);
        for (std::size_t i = 0; i < cur_c_.size(); ++i)
          if (src_rows_[i] < 0) layout_.release_aux(l, cur_c_[i]);
      }

      q_slots_.resize(cur_c_.size());
      for (std::size_t i = 0; i < cur_c_.size(); ++i) q_slots_[i] = layout_.add_kv(l, cur_c_[i]);
      kv_slots_.resize(sel_.size());
      for (std::size_t j = 0; j < sel_.size(); ++j) kv_slots_[j] = layout_.kv_slot(l, sel_[j]);

      const bool prune_next = l + 1 < L && policy_.prunes_into(l + 1);
      const float rule = prune_next ? backend_rule(l + 1, phase) : -1.0f;
      LayerCall call{l, cur_c_, q_slots_, sel_, kv_slots_, prune_next};
      if (rule >= 0.0f) {  // only a SelectingBackend gets a rule (backend_rule)
        if constexpr (SelectingBackend<Backend>) {
          keep_.resize(sel_.size());
          backend_.layer_select(call, x_, rule, keep_);
        }
      } else {
        scores_.resize(prune_next ? sel_.size() : 0);
        backend_.layer(call, x_, scores_);
      }
      st.selected[std::size_t(l)] = int(sel_.size());
      st.computed[std::size_t(l)] = int(cur_c_.size());
      if (on_layer_) on_layer_(LayerProgress{l, L, phase, int(tokens.size()), int(cur_c_.size())});
      std::swap(prev_c_, cur_c_);
      if (prune_next) select_into(l + 1, phase, rule >= 0.0f);
    }
    if constexpr (GraphStepBackend<Backend>)
      if (graph.on) backend_.end_graph_step();
    const auto logits = backend_.logits(x_, x_.rows - 1);
    backend_.synchronize();
    st.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    stats_.steps.push_back(std::move(st));
    return logits;
  }

  // The percentile the backend applies itself going into `layer` (SelectingBackend), or -1 when
  // the policy selects from the scores on the host.
  float backend_rule(int layer, Phase phase) const {
    if constexpr (SelectingBackend<Backend> && PercentileRulePolicy<Policy>)
      if (backend_.device_select()) return policy_.percentile_rule(layer, phase);
    return -1.0f;
  }

  // Going into `layer`: the policy keeps part of S_{layer-1} (or the backend did, into keep_:
  // `by_backend`); computed tokens it drops park their hidden state (this step's output of
  // layer-1) in the Aux Cache of `layer`.
  void select_into(int layer, Phase phase, bool by_backend) {
    const std::size_t n = sel_.size();
    if (!by_backend) {
      keep_.assign(n, 1);
      cached_next_.resize(n);
      for (std::size_t j = 0; j < n; ++j) cached_next_[j] = layout_.kv_slot(layer, sel_[j]) >= 0 ? 1 : 0;
      const int n_layers = backend_.config().n_layers;
      SelectArgs args{layer, n_layers, phase, std::int64_t(stats_.steps.size()), sel_, scores_, cached_next_};
      policy_.select(args, keep_);
    }
    keep_[n - 1] = 1;  // the newest token is always computed
    aux_rows_.clear();
    aux_slots_.clear();
    std::size_t w = 0, pi = 0;
    for (std::size_t j = 0; j < n; ++j) {
      const std::int32_t p = sel_[j];
      if (keep_[j]) {
        sel_[w++] = p;
        continue;
      }
      while (pi < prev_c_.size() && prev_c_[pi] < p) ++pi;
      if (pi < prev_c_.size() && prev_c_[pi] == p) {  // computed this step: park it
        aux_rows_.push_back(std::int32_t(pi));
        aux_slots_.push_back(layout_.add_aux(layer, p));
      }
    }
    sel_.resize(w);
    if (!aux_rows_.empty()) backend_.store_aux(x_, aux_rows_, aux_slots_);
    stats_.aux_peak_entries = std::max(stats_.aux_peak_entries, std::int64_t(layout_.aux_live()));
    stats_.aux_peak_bytes = stats_.aux_peak_entries * backend_.aux_bytes_per_token();
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

  Backend backend_;
  Policy policy_;
  Layout layout_;
  LayoutShape shape_;
  int n_ctx_ = 0;
  bool prunes_ = false;  // the policy prunes going into some layer
  std::vector<std::int32_t> tokens_;
  RunStats stats_;
  std::function<void(const LayerProgress&)> on_layer_;
  // Per-step scratch (kept to avoid reallocations).
  Activations x_{}, x_next_{};
  std::vector<std::int32_t> sel_, prev_c_, cur_c_, src_rows_, ids_, aux_rows_;
  std::vector<std::int64_t> src_aux_, q_slots_, kv_slots_, aux_slots_;
  std::vector<float> scores_;
  std::vector<std::uint8_t> keep_, cached_next_;
};

}  // namespace lazyllm
