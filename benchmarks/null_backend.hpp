// SPDX-License-Identifier: MIT
// A backend that computes nothing: `lazyllm-bench --backend host` times the pipeline's own host
// work (token sets, cache-layout slots, Aux Cache bookkeeping, the policy's selection) for a
// model shape, with no weights. Scores are a fixed hash of the position, so pruning selects real,
// repeatable subsets. It is also the smallest complete AttentionBackend.
#pragma once
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "lazyllm/backend/attention_backend.hpp"

namespace lazyllm::bench {

class NullBackend {
 public:
  struct Activations {
    int rows = 0;
  };
  explicit NullBackend(const RuntimeConfig& c) : config_(c), logits_(std::size_t(c.vocab_size), 0.0f) {}
  void allocate(std::int64_t, std::int64_t) {}
  void embed(std::span<const std::int32_t> ids, Activations& x) { x.rows = int(ids.size()); }
  void gather(const Activations&, std::span<const std::int32_t> rows, std::span<const std::int64_t>, Activations& dst) {
    dst.rows = int(rows.size());
  }
  void store_aux(const Activations&, std::span<const std::int32_t>, std::span<const std::int64_t>) {}
  void layer(const LayerCall& call, Activations&, std::span<float> scores) {
    if (!call.want_scores) return;
    for (std::size_t i = 0; i < call.kv_pos.size(); ++i)
      scores[i] = float((std::uint32_t(call.kv_pos[i]) * 2654435761u) >> 8) * 0x1.0p-24f;
  }
  std::span<const float> logits(const Activations&, int) { return logits_; }
  const RuntimeConfig& config() const { return config_; }
  std::string_view name() const { return "host"; }
  std::int64_t aux_bytes_per_token() const { return 0; }
  void synchronize() {}

 private:
  RuntimeConfig config_;
  std::vector<float> logits_;
};
static_assert(AttentionBackend<NullBackend>);

}  // namespace lazyllm::bench
