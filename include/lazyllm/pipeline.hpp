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
#include <type_traits>
#include <vector>

#include "lazyllm/backend/attention_backend.hpp"
#include "lazyllm/cache/cache_layout.hpp"
#include "lazyllm/config/model_config.hpp"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/engine/step.hpp"
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

/// One sequence through a Llama-architecture model with LazyLLM pruning.
///
/// Every step (a prompt, or one generated token) runs the layers in order. Layer 0 sees every
/// context token; going into each layer where the policy prunes, the policy keeps part of the
/// current set S_l using the last token's attention; S_{l+1} is a subset of S_l. A token of S_l
/// without layer-l K/V is computed at layer l, from this step's layer l-1 output or from its Aux
/// Cache entry (a revival); every other token of S_l is read from the KV cache. So each token is
/// computed at most once per layer, and an empty schedule is exactly the dense model.
///
/// A step is atomic: when it throws (a token outside the vocabulary, a full KV cache, a throwing
/// on_layer callback, a backend error), the sequence is exactly as it was before it. Pipeline is
/// the one-sequence face of the core that Engine (engine/engine.hpp) runs over many sequences.
template <class Config, class Policy, class Layout, class Backend>
class Pipeline {
  static_assert(detail::check_config<Config>() && detail::check_policy<Policy>() && detail::check_layout<Layout>() &&
                detail::check_backend<Backend>());

 public:
  using Activations = typename Backend::Activations;

  /// `n_ctx` = 0 uses the model's max_seq_len. Throws ConfigError when the backend's model does
  /// not have the shape (or the RoPE, norm, embedding or context settings) of `Config`,
  /// InvalidArgument for a bad context size or schedule.
  Pipeline(Backend backend, Policy policy = {}, Layout layout = {}, int n_ctx = 0, Config config = {})
      : backend_(std::move(backend)), seq_(std::move(policy), std::move(layout)) {
    const RuntimeConfig& rc = backend_.config();
    if constexpr (!std::is_same_v<Config, RuntimeConfig>) {
      const std::string diff = config_differences(to_runtime(config), rc);
      if (!diff.empty()) {
        std::ostringstream os;
        os << "model (" << rc << ") does not match the pipeline's config (" << to_runtime(config) << "): " << diff;
        throw ConfigError(os.str());
      }
    }
    seq_.init(rc, n_ctx);
    backend_.allocate(seq_.layout.kv_slots(), seq_.layout.aux_slots());
  }

  /// Appends tokens (a prompt, or the next turn of a chat) and returns the logits of the last.
  std::span<const float> prefill(std::span<const std::int32_t> tokens) { return step(tokens, Phase::Prefill); }
  /// Appends one generated token and returns the logits that follow it.
  std::span<const float> decode(std::int32_t token) { return step({&token, 1}, Phase::Decode); }

  /// Calls `f` after each layer of every step, once the layer is issued to the backend (an
  /// asynchronous backend may still be running it; call backend().synchronize() in `f` to wait).
  /// Optional: an empty function (the default) costs one branch per layer. When `f` throws, the
  /// step is undone and the exception propagates.
  void on_layer(std::function<void(const LayerProgress&)> f) { on_layer_ = std::move(f); }

  /// Forgets the sequence (KV and Aux Cache) and the statistics.
  void reset() { seq_.reset(); }

  int n_past() const { return int(seq_.tokens.size()); }
  int n_ctx() const { return seq_.n_ctx; }
  const RunStats& stats() const { return seq_.stats; }
  const Policy& policy() const { return seq_.policy; }
  const Layout& layout() const { return seq_.layout; }
  Backend& backend() { return backend_; }
  const RuntimeConfig& config() const { return backend_.config(); }

 private:
  std::span<const float> step(std::span<const std::int32_t> tokens, Phase phase) {
    using Seq = detail::SequenceCore<Policy, Layout>;
    Seq* const seqs[1] = {&seq_};
    const detail::StepInput in[1] = {{tokens, phase}};
    std::span<const float> logits;
    runner_.run(backend_, std::span<Seq* const>(seqs), std::span<const detail::StepInput>(in), on_layer_,
                [&](const Activations& x, std::span<const int> last) {
                  logits = backend_.logits(x, last[0]);
                  backend_.synchronize();
                });
    return logits;
  }

  Backend backend_;
  detail::SequenceCore<Policy, Layout> seq_;
  detail::StepRunner<Backend> runner_;
  std::function<void(const LayerProgress&)> on_layer_;
};

}  // namespace lazyllm
