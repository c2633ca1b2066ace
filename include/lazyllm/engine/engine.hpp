// SPDX-License-Identifier: MIT
// Engine<Backend, Policy>: many sequences over one shared model, stepped together (continuous
// batching), with their K/V and Aux Cache in one block pool the engine sizes.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "lazyllm/backend/attention_backend.hpp"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/engine/pool.hpp"
#include "lazyllm/engine/pooled_layout.hpp"
#include "lazyllm/engine/step.hpp"
#include "lazyllm/model/sampler.hpp"
#include "lazyllm/policy/any.hpp"
#include "lazyllm/stats.hpp"

namespace lazyllm {

/// A sequence's handle in an Engine (never reused by that engine).
using SeqId = std::int64_t;

/// How the engine's block pool is made.
struct EngineOptions {
  /// Blocks in the pool; 0 = as many as `pool_bytes` holds.
  std::int64_t pool_blocks = 0;
  /// Bytes for the pool's arena, when pool_blocks is 0. 0 (with pool_blocks 0) = room for one
  /// dense sequence of the model's max_seq_len (and an Aux entry per token).
  std::int64_t pool_bytes = 0;
  /// K/V tokens per block (a power of two; 16 is what paged engines use).
  int block_tokens = 16;
  /// The arena's memory; empty = the backend's own (host memory, or cudaMalloc on a GPU).
  ArenaAllocator allocator{};
  /// Use this pool (another engine's, for example) instead of making one: the options above are
  /// then ignored. It must have been made for a backend of this model (engine_pool_geometry()).
  std::shared_ptr<BlockPool> pool{};
  /// Most tokens one step feeds (prompt chunks plus decode tokens), 0 = no limit. Decode tokens
  /// come first, then prompts (whole, or in their SequenceOptions::prefill_chunk) in the order
  /// they were added; an input that does not fit waits for a later step (a step's first input
  /// always goes, whatever its size).
  int max_step_tokens = 0;
};

/// Per-sequence settings.
struct SequenceOptions {
  /// The most tokens this sequence may hold (prompt plus generated); 0 = the model's max_seq_len.
  int n_ctx = 0;
  /// Prompt tokens per step (0 = the whole prompt in one step). Each chunk is a prefill step of
  /// its own (as Pipeline::prefill of the chunk): LazyLLM selects from the chunk's last token.
  int prefill_chunk = 0;
  /// What sample() draws with.
  SamplerParams sampling{};
};

/// What one Engine::step() did.
struct StepResult {
  std::vector<SeqId> stepped;  // sequences that took part
  std::vector<SeqId> ready;    // those whose input is all consumed: logits(id) / sample(id) now
  int tokens = 0;              // input tokens fed (prompt chunks + decode tokens)
  double ms = 0.0;             // wall time of the step
};

/// The pool geometry a backend's model needs (what EngineOptions::pool must have been made with).
template <class Backend>
PoolGeometry engine_pool_geometry(const Backend& be, int block_tokens = 16) {
  return PoolGeometry{block_tokens, be.kv_token_bytes(), be.aux_bytes_per_token()};
}

/// Many sequences over one model.
///
/// The model (Backend::Model: the weights, on the backend's device) is shared and immutable: any
/// number of engines and threads may use one std::shared_ptr<const Model>. Each sequence is small
/// host state: its tokens, policy, per-layer sets and the block lists of its K/V and Aux entries;
/// their data lives in one BlockPool arena. A sequence takes blocks as its sets grow (a token that
/// LazyLLM pruned before layer l takes none at layers >= l) and gives them back when removed.
///
/// A step runs every sequence that has input: a prompt (whole or a chunk) or one decode token,
/// mixed freely, each with its own policy and schedule. Each sequence gets what it would get run
/// alone (bit for bit on the CPU backend). The step is atomic: when it throws -- OutOfBlocks, a
/// token outside the vocabulary, a backend error -- no sequence has changed, so the caller can
/// remove a sequence (or wait) and step again.
///
/// Not thread-safe: one thread drives an engine. Run one engine per thread to use several.
template <class Backend, class Policy = policy::AnyPolicy>
class Engine {
  static_assert(BatchedBackend<Backend>,
                "lazyllm: Engine needs a BatchedBackend (a shared Model type, layer_batch, logits_rows and a "
                "block-pool arena: see include/lazyllm/backend/attention_backend.hpp); CpuBackend and the CUDA "
                "backends are");
  static_assert(detail::check_policy<Policy>());

 public:
  using Model = typename Backend::Model;

  /// An engine over `model`; `backend_args` go to the backend after the model (the CUDA backend's
  /// stream, for example). Throws ConfigError for a bad pool size, and the allocator's error when
  /// the pool's memory cannot be had.
  template <class... BackendArgs>
  explicit Engine(std::shared_ptr<const Model> model, EngineOptions opts = {}, BackendArgs&&... backend_args)
      : be_(std::move(model), std::forward<BackendArgs>(backend_args)...), opts_(std::move(opts)) {
    const RuntimeConfig& c = be_.config();
    if (opts_.max_step_tokens < 0)
      throw InvalidArgument("engine: max_step_tokens " + std::to_string(opts_.max_step_tokens) + " must be >= 0");
    const PoolGeometry g = engine_pool_geometry(be_, opts_.block_tokens);
    if (opts_.pool) {
      const PoolGeometry& h = opts_.pool->geometry();
      if (h.kv_token_bytes != g.kv_token_bytes || h.aux_token_bytes != g.aux_token_bytes)
        throw ConfigError("engine: the given pool was made for another model or storage type");
      pool_ = opts_.pool;
    } else {
      g.validate();
      std::int64_t blocks = opts_.pool_blocks;
      if (blocks <= 0) {
        const std::int64_t bytes =
            opts_.pool_bytes > 0
                ? opts_.pool_bytes
                : std::int64_t(c.n_layers) * ((c.max_seq_len + g.block_tokens - 1) / g.block_tokens) * g.block_bytes();
        blocks = bytes / g.block_bytes();
        if (blocks < 1)
          throw ConfigError("engine: a pool of " + std::to_string(bytes) + " bytes holds no block of " +
                            std::to_string(g.block_bytes()) + " bytes");
      }
      pool_ = std::make_shared<BlockPool>(g, blocks, opts_.allocator ? opts_.allocator : be_.arena_allocator());
    }
    be_.bind_arena(*pool_);
  }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  ~Engine() {
    try {
      be_.synchronize();  // no queued work may write into blocks once they go back to the pool
    } catch (...) {
    }
  }

  /// A new sequence with `prompt` as its first input (fed at the next steps). Throws
  /// InvalidArgument for an empty prompt, a token outside the vocabulary, a prompt longer than
  /// the sequence's context, or a bad policy schedule; nothing is added then.
  SeqId add(std::span<const std::int32_t> prompt, Policy policy = {}, SequenceOptions opts = {}) {
    if (opts.prefill_chunk < 0)
      throw InvalidArgument("prefill_chunk " + std::to_string(opts.prefill_chunk) + " must be >= 0");
    auto s = std::make_unique<Seq>(std::move(policy), PooledLayout(pool_), opts);
    s->core.init(be_.config(), opts.n_ctx);
    s->core.check_input(prompt, be_.config().vocab_size);
    s->pending.assign(prompt.begin(), prompt.end());
    s->phase = Phase::Prefill;
    const SeqId id = next_id_++;
    seqs_.emplace(id, std::move(s));
    return id;
  }

  /// The next generated token of `id` (after its logits were read): one decode row at the next step.
  void decode(SeqId id, std::int32_t token) { feed(id, {&token, 1}, Phase::Decode); }
  /// More prompt for `id` (the next turn of a chat): prefill rows at the next steps.
  void append(SeqId id, std::span<const std::int32_t> tokens) { feed(id, tokens, Phase::Prefill); }

  /// One step over every sequence that has input (see EngineOptions::max_step_tokens). Returns
  /// which sequences ran and which are now ready (logits of their newest token). Atomic: if it
  /// throws, every sequence (its tokens, input, cache entries, statistics) is as it was.
  StepResult step() {
    StepResult res;
    batch_.clear();
    inputs_.clear();
    order_.clear();
    completes_.clear();
    std::int64_t budget = opts_.max_step_tokens > 0 ? opts_.max_step_tokens : std::int64_t(1) << 62;
    // Decode tokens first (a running sequence never waits for a new prompt), then prompts. A
    // sequence's own input per step (its whole prompt, or its prefill_chunk) is never cut to fit:
    // what does not fit waits for a later step (the first input of a step always goes), so what
    // a sequence computes does not depend on what runs beside it.
    for (int pass = 0; pass < 2; ++pass)
      for (auto& [id, s] : seqs_) {
        if (s->pending.empty() || (s->phase == Phase::Decode) != (pass == 0)) continue;
        std::int64_t n = std::int64_t(s->pending.size());
        if (s->phase == Phase::Prefill && s->opts.prefill_chunk > 0)
          n = std::min<std::int64_t>(n, s->opts.prefill_chunk);
        if (n > budget && !batch_.empty()) continue;
        budget -= n;
        batch_.push_back(&s->core);
        inputs_.push_back({std::span<const std::int32_t>(s->pending.data(), std::size_t(n)), s->phase});
        order_.push_back(id);
        completes_.push_back(n == std::int64_t(s->pending.size()));
      }
    if (batch_.empty()) return res;
    const std::size_t V = std::size_t(be_.config().vocab_size);
    // Logits only for the sequences this step makes ready (a prompt chunk that is not the last
    // needs none): the classifier is the largest GEMM of a decode step.
    runner_.run(be_, std::span<Core* const>(batch_), std::span<const detail::StepInput>(inputs_), {},
                [&](const typename Backend::Activations& x, std::span<const int> last) {
                  ready_rows_.clear();
                  for (std::size_t i = 0; i < last.size(); ++i)
                    if (completes_[i]) ready_rows_.push_back(last[i]);
                  logits_.resize(ready_rows_.size() * V);
                  if (!ready_rows_.empty()) be_.logits_rows(x, ready_rows_, logits_);
                  be_.synchronize();
                });
    // Committed: consume the input and publish the logits.
    std::size_t ready_at = 0;  // row of logits_ of the next ready sequence
    for (std::size_t i = 0; i < order_.size(); ++i) {
      Seq& s = *seqs_.at(order_[i]);
      const auto n = inputs_[i].tokens.size();
      res.tokens += int(n);
      s.pending.erase(s.pending.begin(), s.pending.begin() + std::ptrdiff_t(n));
      res.stepped.push_back(order_[i]);
      s.has_logits = completes_[i];
      if (s.has_logits) {
        s.logits.assign(logits_.begin() + std::ptrdiff_t(ready_at * V),
                        logits_.begin() + std::ptrdiff_t((ready_at + 1) * V));
        ++ready_at;
        res.ready.push_back(order_[i]);
      }
    }
    res.ms = seqs_.at(order_[0])->core.stats.steps.back().ms;
    return res;
  }

  /// The logits that follow `id`'s newest token (after a step made it ready).
  std::span<const float> logits(SeqId id) const {
    const Seq& s = get(id);
    if (!s.has_logits) throw InvalidArgument("sequence " + std::to_string(id) + " has no logits (step it first)");
    return s.logits;
  }
  /// The next token of `id`, drawn with its SequenceOptions::sampling (greedy by default) from
  /// its logits; `recent` feeds the repetition penalty.
  std::int32_t sample(SeqId id, std::span<const std::int32_t> recent = {}) {
    Seq& s = get(id);
    return s.sampler.sample(logits(id), recent);
  }

  /// Finishes or cancels `id` at any time between steps: its blocks go back to the pool.
  void remove(SeqId id) {
    auto it = seqs_.find(id);
    if (it == seqs_.end()) throw InvalidArgument("no sequence " + std::to_string(id) + " in this engine");
    be_.synchronize();  // the pool may hand its blocks to another engine's stream
    seqs_.erase(it);
  }

  bool contains(SeqId id) const { return seqs_.count(id) != 0; }
  std::size_t size() const { return seqs_.size(); }
  std::vector<SeqId> ids() const {
    std::vector<SeqId> v;
    for (const auto& [id, s] : seqs_) v.push_back(id);
    return v;
  }
  /// Input tokens of `id` not yet fed.
  int pending(SeqId id) const { return int(get(id).pending.size()); }
  bool ready(SeqId id) const { return get(id).has_logits; }
  int n_past(SeqId id) const { return int(get(id).core.tokens.size()); }
  int n_ctx(SeqId id) const { return get(id).core.n_ctx; }
  std::span<const std::int32_t> tokens(SeqId id) const { return get(id).core.tokens; }
  const RunStats& stats(SeqId id) const { return get(id).core.stats; }
  const Policy& policy(SeqId id) const { return get(id).core.policy; }
  /// Pool blocks `id` holds (K/V and Aux).
  std::int64_t blocks(SeqId id) const { return get(id).core.layout.blocks_in_use(); }
  const PooledLayout& layout(SeqId id) const { return get(id).core.layout; }

  BlockPool& pool() { return *pool_; }
  const std::shared_ptr<BlockPool>& shared_pool() const { return pool_; }
  Backend& backend() { return be_; }
  const RuntimeConfig& config() const { return be_.config(); }

 private:
  using Core = detail::SequenceCore<Policy, PooledLayout>;
  struct Seq {
    Seq(Policy p, PooledLayout l, const SequenceOptions& o)
        : core(std::move(p), std::move(l)), opts(o), sampler(o.sampling) {}
    Core core;
    SequenceOptions opts;
    Sampler sampler;
    std::vector<std::int32_t> pending;  // input not yet fed
    Phase phase = Phase::Prefill;
    bool has_logits = false;
    std::vector<float> logits;
  };

  Seq& get(SeqId id) {
    auto it = seqs_.find(id);
    if (it == seqs_.end()) throw InvalidArgument("no sequence " + std::to_string(id) + " in this engine");
    return *it->second;
  }
  const Seq& get(SeqId id) const { return const_cast<Engine*>(this)->get(id); }

  void feed(SeqId id, std::span<const std::int32_t> tokens, Phase phase) {
    Seq& s = get(id);
    if (!s.pending.empty())
      throw InvalidArgument("sequence " + std::to_string(id) + " still has " + std::to_string(s.pending.size()) +
                            " input tokens to step");
    const std::int64_t total = std::int64_t(s.core.tokens.size()) + std::int64_t(tokens.size());
    if (!tokens.empty() && total > s.core.n_ctx)
      throw InvalidArgument("sequence " + std::to_string(id) + ": " + std::to_string(total) +
                            " tokens do not fit its context of " + std::to_string(s.core.n_ctx));
    s.core.check_input(tokens, be_.config().vocab_size);
    s.pending.assign(tokens.begin(), tokens.end());
    s.phase = phase;
    s.has_logits = false;
  }

  Backend be_;
  EngineOptions opts_;
  std::shared_ptr<BlockPool> pool_;
  std::map<SeqId, std::unique_ptr<Seq>> seqs_;
  SeqId next_id_ = 0;
  detail::StepRunner<Backend> runner_;
  std::vector<Core*> batch_;
  std::vector<detail::StepInput> inputs_;
  std::vector<SeqId> order_;
  std::vector<float> logits_;
  std::vector<char> completes_;  // step(): whether order_[i]'s input is the rest of its pending tokens
  std::vector<int> ready_rows_;  // step(): the rows whose logits it computes
};

}  // namespace lazyllm
