// SPDX-License-Identifier: MIT
// A user-written pruning policy plugged into the pipeline at compile time.
//
// RecentPlusTop keeps a fixed window of the most recent tokens and, of the rest, those at or
// above a percentile of the scores. Build with -DLAZYLLM_SHOW_CONCEPT_ERROR to see what the
// compiler says when a type does not satisfy the PruningPolicy concept.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include "lazyllm/lazyllm.hpp"

using namespace lazyllm;

struct RecentPlusTop {
  int window = 16;          // the newest `window` tokens are always kept
  float percentile = 0.5f;  // of the others, drop those below this quantile of the scores
  int from_layer = 2;       // prune going into this layer and every layer after it

  bool prunes_into(int layer) const { return layer >= from_layer; }
  void select(const SelectArgs& a, std::span<std::uint8_t> keep) const {
    const float thr = detail::percentile_threshold(a.scores, percentile);
    const std::int32_t newest = a.positions.back();
    for (std::size_t i = 0; i < keep.size(); ++i)
      keep[i] = (a.positions[i] > newest - window || a.scores[i] >= thr) ? 1 : 0;
  }
  static constexpr std::string_view name() { return "recent+top"; }
  friend bool operator==(const RecentPlusTop&, const RecentPlusTop&) = default;
  friend std::ostream& operator<<(std::ostream& os, const RecentPlusTop& p) {
    return os << "recent+top(window=" << p.window << ", p=" << p.percentile << ", from=" << p.from_layer << ')';
  }
};

#ifdef LAZYLLM_SHOW_CONCEPT_ERROR
struct NotAPolicy {  // no prunes_into / select: the pipeline refuses it with a readable message
  int window = 16;
};
using Broken = Pipeline<RuntimeConfig, NotAPolicy, ContiguousLayout, CpuBackend>;
Broken* broken = nullptr;
static_assert(sizeof(Broken) > 0);
#endif

int main(int argc, char** argv) {
  const std::string arg = argc > 1 ? argv[1] : "";
  if (arg == "-h" || arg == "--help" || argc > 2 || (!arg.empty() && arg[0] == '-')) {
    std::fprintf(argc > 2 || (arg != "-h" && arg != "--help") ? stderr : stdout,
                 "usage: lazyllm-custom-policy [MODEL]\n"
                 "  Runs a user-written policy (RecentPlusTop: a window of recent tokens plus the top of the\n"
                 "  scores) on MODEL, a model with stories260K's shape (default: %s), and prints its |S_l|.\n",
                 LAZYLLM_DEFAULT_MODEL);
    return arg == "-h" || arg == "--help" ? 0 : 2;
  }
  const std::filesystem::path model =
      arg.empty() ? std::filesystem::path(LAZYLLM_DEFAULT_MODEL) : std::filesystem::path(arg);
  if (!std::filesystem::exists(model)) {
    std::fprintf(stderr, "skipped: model %s not found\n", model.c_str());
    return 77;
  }
  const ModelWeights w = load_model(model);
  Pipeline<config::Stories260K, RecentPlusTop, ContiguousLayout, CpuBackend> pipe(CpuBackend{w},
                                                                                  RecentPlusTop{8, 0.5f, 2});
  std::vector<std::int32_t> prompt{1};
  for (int i = 0; i < 63; ++i) prompt.push_back(3 + (i * 37) % 500);
  auto logits = pipe.prefill(prompt);
  for (int i = 0; i < 8; ++i) logits = pipe.decode(argmax(logits));
  const auto& s = pipe.stats();
  std::printf("policy %s: prefill |S_l| =", s.policy.c_str());
  for (int n : s.steps.front().selected) std::printf(" %d", n);
  std::printf("; %.1f%% of dense token-layers; %lld revivals over %zu decode steps\n", 100.0 * s.prefill_fraction(),
              static_cast<long long>(s.total_revivals()), s.steps.size() - 1);
  return s.prefill_fraction() < 1.0 ? 0 : 1;
}
