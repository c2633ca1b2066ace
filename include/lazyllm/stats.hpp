// SPDX-License-Identifier: MIT
// What a run did: token sets per layer and step, compute, revivals, Aux Cache, timing.
// (JSON output: lazyllm/report/json.hpp, opt-in, so the core needs no JSON library.)
#pragma once
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "lazyllm/policy/pruning_policy.hpp"

namespace lazyllm {

struct StepStats {
  Phase phase = Phase::Prefill;
  int new_tokens = 0;              // tokens appended this step
  int context = 0;                 // context length after the step
  std::vector<int> selected;       // |S_l| per layer: tokens layer l attends over
  std::vector<int> computed;       // |C_l| per layer: tokens layer l computes (K/V written)
  std::int64_t revivals = 0;       // token-layers computed from an Aux Cache entry
  double ms = 0.0;                 // wall time of the step (backend synchronised)

  std::int64_t token_layers() const { return std::accumulate(computed.begin(), computed.end(), std::int64_t{0}); }
  std::int64_t dense_token_layers() const { return std::int64_t(new_tokens) * std::int64_t(computed.size()); }
};

struct RunStats {
  std::string policy;                // the policy as printed, e.g. "lazy(8:0.3,16:0.5)"
  std::string schedule;              // its schedule ("none" for dense; a policy without one: as printed)
  std::vector<int> pruning_layers;   // layers the policy may prune going into (prunes_into)
  int n_layers = 0;
  std::vector<StepStats> steps;      // steps[0] is the prefill of the first prompt
  std::int64_t aux_peak_entries = 0;
  std::int64_t aux_peak_bytes = 0;

  std::int64_t prefill_token_layers() const { return steps.empty() ? 0 : steps.front().token_layers(); }
  std::int64_t prefill_dense_token_layers() const { return steps.empty() ? 0 : steps.front().dense_token_layers(); }
  std::int64_t total_token_layers() const {
    std::int64_t s = 0;
    for (const auto& st : steps) s += st.token_layers();
    return s;
  }
  std::int64_t total_dense_token_layers() const {
    std::int64_t s = 0;
    for (const auto& st : steps) s += st.dense_token_layers();
    return s;
  }
  std::int64_t total_revivals() const {
    std::int64_t s = 0;
    for (const auto& st : steps) s += st.revivals;
    return s;
  }
  /// Fraction of dense token-layers computed in the first prefill (1.0 for dense).
  double prefill_fraction() const {
    const auto d = prefill_dense_token_layers();
    return d ? double(prefill_token_layers()) / double(d) : 1.0;
  }
};

}  // namespace lazyllm
