// SPDX-License-Identifier: MIT
#include "bench.hpp"

namespace lazyllm::bench {
std::vector<Measurement> run_cuda(const ModelWeights&, const std::vector<AnyPolicy>&, const Plan&) {
  throw Error("--backend cuda: this build has no CUDA backend");
}
nlohmann::json cuda_device_info() { return {{"gpu", "none"}}; }
}  // namespace lazyllm::bench
