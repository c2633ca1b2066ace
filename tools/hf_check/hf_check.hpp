// SPDX-License-Identifier: MIT
// lazyllm-hf-check: shared between the host TU (hf_check.cpp) and the CUDA TU (cuda.cu).
// Runs prefills of one prompt through a Pipeline and keeps the logits it returns.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "lazyllm/model/weights.hpp"

namespace lazyllm::hf_check {

/// What one pipeline configuration produced for the prompt.
struct RunOutput {
  std::string name;                    // e.g. "cpu", "cuda", "cuda_lazy"
  std::string policy;                  // as the pipeline prints it
  std::vector<float> last;             // logits at the last prompt position (one prefill of all ids)
  double full_ms = 0;                  // wall time of that prefill (the last of `repeats`)
  std::vector<std::vector<float>> at;  // logits at each requested position (chunked prefill), may be empty
  double chunked_ms = 0;
  double token_layer_fraction = 1.0;    // computed token-layers / dense token-layers of the full prefill
  std::vector<std::int32_t> greedy;     // ids of `greedy` argmax decode steps after a full prefill
  std::vector<std::int32_t> lazy_kept;  // |S_l| per layer of the full prefill
};

/// The CUDA half (cuda.cu; cuda_stub.cpp when the build has no CUDA).
struct CudaRequest {
  std::vector<std::int32_t> ids;
  std::vector<int> positions;  // sorted, unique, last one == ids.size() - 1
  std::string schedule;        // "" = no lazy run with a schedule
  int repeats = 2;             // full prefills per pipeline (the first one warms up cuBLASLt etc.)
  int greedy = 0;              // argmax decode steps after the prompt (dense and lazy runs)
};
struct CudaOutput {
  std::string device;
  RunOutput dense;       // ContiguousLayout, policy::Dense
  RunOutput lazy_empty;  // policy::Lazy with an empty schedule (must equal dense bit for bit)
  RunOutput paged;       // PagedLayout<16>, policy::Dense
  bool has_lazy = false;
  RunOutput lazy;  // policy::Lazy(schedule)
};
CudaOutput run_cuda(const ModelWeights& w, const CudaRequest& req);

namespace impl {

inline double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

/// Full prefill (`repeats` times, reset in between) and, if positions is non-empty, a chunked
/// prefill on the same pipeline whose chunks end at each position.
template <class Pipe>
void run_pipe(Pipe& pipe, std::span<const std::int32_t> ids, const std::vector<int>& positions, int repeats,
              RunOutput& out, int greedy = 0) {
  for (int r = 0; r < std::max(repeats, 1); ++r) {
    pipe.reset();
    const auto t0 = std::chrono::steady_clock::now();
    const auto l = pipe.prefill(ids);
    out.full_ms = ms_since(t0);
    out.last.assign(l.begin(), l.end());
  }
  const auto& st = pipe.stats().steps.back();
  out.token_layer_fraction = double(st.token_layers()) / double(std::max<std::int64_t>(st.dense_token_layers(), 1));
  out.lazy_kept.assign(st.selected.begin(), st.selected.end());
  auto run_greedy = [&] {
    if (greedy > 0) {  // argmax continuation of a full prefill (whose logits are out.last)
      pipe.reset();
      const auto first = pipe.prefill(ids);
      std::vector<float> l(first.begin(), first.end());
      for (int i = 0; i < greedy; ++i) {
        const auto best = std::int32_t(std::max_element(l.begin(), l.end()) - l.begin());
        out.greedy.push_back(best);
        if (i + 1 == greedy) break;
        const auto next = pipe.decode(best);
        l.assign(next.begin(), next.end());
      }
    }
    std::ostringstream os;
    os << pipe.policy();
    out.policy = os.str();
  };
  if (positions.empty()) return run_greedy();
  pipe.reset();
  const auto t0 = std::chrono::steady_clock::now();
  std::size_t begin = 0;
  for (const int p : positions) {
    const auto l = pipe.prefill(ids.subspan(begin, std::size_t(p) + 1 - begin));
    out.at.emplace_back(l.begin(), l.end());
    begin = std::size_t(p) + 1;
  }
  out.chunked_ms = ms_since(t0);
  run_greedy();
}

/// max |a - b| (inf when the sizes differ or a value is not finite).
inline double max_abs_diff(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = std::abs(double(a[i]) - double(b[i]));
    if (!(d <= m)) m = std::isnan(d) ? INFINITY : d;  // NaN counts as infinitely wrong
  }
  return m;
}

}  // namespace impl
}  // namespace lazyllm::hf_check
