// SPDX-License-Identifier: MIT
#include "bench.hpp"

namespace lazyllm::bench {
std::vector<Row> run_cuda(const ModelWeights&, const AnyPolicy&, const Plan&) {
  throw Error("--backend cuda: this build has no CUDA backend");
}
std::string device_name() { return "none"; }
}  // namespace lazyllm::bench
