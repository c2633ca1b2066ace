// A backend's whole-model logits against the CPU reference, for the precision tests
// (test_fp16.cu, test_fp32.cu): one prefill, then teacher-forced decode steps.
#pragma once
#include <algorithm>
#include <span>
#include <vector>

#include "gpu_util.hpp"
#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/dense.hpp"

namespace lazyllm::test {

template <class Backend, class Policy = policy::Dense>
using Pipe = Pipeline<RuntimeConfig, Policy, ContiguousLayout, Backend>;

inline std::vector<float> logits_copy(std::span<const float> s) { return {s.begin(), s.end()}; }

/// Worst normalised logits error of `Backend` against the CPU over a dense prefill of `prefill`
/// tokens and teacher-forced decode of the rest of `ids`.
template <class Backend>
double worst_vs_cpu(const ModelWeights& w, const std::vector<std::int32_t>& ids, int prefill, int n_ctx = 0) {
  Pipe<CpuBackend> c(CpuBackend{w}, {}, {}, n_ctx);
  Pipe<Backend> g(Backend{w}, {}, {}, n_ctx);
  auto lc = logits_copy(c.prefill(std::span(ids).first(std::size_t(prefill))));
  double worst = norm_err(g.prefill(std::span(ids).first(std::size_t(prefill))), lc);
  for (std::size_t i = std::size_t(prefill); i < ids.size(); ++i) {
    lc = logits_copy(c.decode(ids[i]));
    worst = std::max(worst, norm_err(g.decode(ids[i]), lc));
  }
  return worst;
}

}  // namespace lazyllm::test
