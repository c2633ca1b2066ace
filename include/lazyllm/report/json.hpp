// SPDX-License-Identifier: MIT
// RunStats as JSON (nlohmann/json), for tools that write reports. Opt-in: the core headers do not
// include it, so an engine that embeds lazyllm needs no JSON library (or may vendor its own).
#pragma once
#include <nlohmann/json.hpp>

#include "lazyllm/stats.hpp"

namespace lazyllm {

inline nlohmann::json to_json(const StepStats& s) {
  return {{"phase", s.phase == Phase::Prefill ? "prefill" : "decode"},
          {"new_tokens", s.new_tokens},
          {"context", s.context},
          {"selected", s.selected},
          {"computed", s.computed},
          {"token_layers", s.token_layers()},
          {"dense_token_layers", s.dense_token_layers()},
          {"revivals", s.revivals},
          {"ms", s.ms}};
}

inline nlohmann::json to_json(const RunStats& r) {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : r.steps) steps.push_back(to_json(s));
  return {{"policy", r.policy},
          {"schedule", r.schedule},
          {"n_layers", r.n_layers},
          {"prefill_token_layers", r.prefill_token_layers()},
          {"prefill_dense_token_layers", r.prefill_dense_token_layers()},
          {"prefill_fraction", r.prefill_fraction()},
          {"total_token_layers", r.total_token_layers()},
          {"total_dense_token_layers", r.total_dense_token_layers()},
          {"total_revivals", r.total_revivals()},
          {"aux_peak_entries", r.aux_peak_entries},
          {"aux_peak_bytes", r.aux_peak_bytes},
          {"steps", steps}};
}

}  // namespace lazyllm
