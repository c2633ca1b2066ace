// A pipeline run for the tests that compare two of them (CPU and GPU tests).
#pragma once
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "lazyllm/model/sampler.hpp"

namespace lazyllm::test {

/// A prompt then `n` greedy decode steps: every step's logits end to end, and each step's |S_l|
/// and |C_l| per layer.
template <class Pipe>
std::pair<std::vector<float>, std::vector<std::vector<int>>> greedy_run(Pipe& p, std::span<const std::int32_t> ids,
                                                                        int n) {
  auto l = p.prefill(ids);
  std::vector<float> all(l.begin(), l.end());
  for (int i = 0; i < n; ++i) {
    l = p.decode(argmax(l));
    all.insert(all.end(), l.begin(), l.end());
  }
  std::vector<std::vector<int>> sets;
  for (const auto& st : p.stats().steps) sets.push_back(st.selected), sets.push_back(st.computed);
  return {std::move(all), std::move(sets)};
}

}  // namespace lazyllm::test
