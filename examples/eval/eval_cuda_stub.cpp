// SPDX-License-Identifier: MIT
// lazyllm-eval without the CUDA backend (built when CMake found no CUDA compiler).
#include "eval_run.hpp"

namespace lazyllm::evalrun {

std::vector<ExampleResult> run_examples_cuda(const ModelWeights&, const AnyPolicy&, int, const std::vector<Prepared>&,
                                             const TokenClasses&, const Progress&, bool) {
  throw Error("--backend cuda: this build has no CUDA backend (configure with LAZYLLM_CUDA=ON and nvcc)");
}

}  // namespace lazyllm::evalrun
