// SPDX-License-Identifier: MIT
// lazyllm-bench-engine built without CUDA: --backend cuda says so.
#include <vector>

#include <nlohmann/json.hpp>

#include "engine_bench.hpp"
#include "lazyllm/detail/error.hpp"

namespace lazyllm::bench {
std::vector<ServeResult> serve_cuda(const ModelWeights&, const std::vector<ServeCase>&, const EngineRun&,
                                    nlohmann::json&) {
  throw Error("this build has no CUDA backend (configure with the CUDA toolkit, LAZYLLM_CUDA=AUTO or ON)");
}
}  // namespace lazyllm::bench
