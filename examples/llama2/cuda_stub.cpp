// SPDX-License-Identifier: MIT
// The driver without the CUDA backend (built when CMake found no CUDA compiler).
#include "driver.hpp"

namespace lazyllm::driver {

namespace {
[[noreturn]] void no_cuda() {
  throw Error("--backend cuda: this build has no CUDA backend (configure with LAZYLLM_CUDA=ON and nvcc)");
}
}  // namespace

RunResult run_policy_cuda(const ModelWeights&, const AnyPolicy&, const Options&, const Hooks&) { no_cuda(); }

ConversationEnd converse_cuda(const ModelWeights&, const AnyPolicy&, const Options&, const Hooks&,
                              const Conversation&) {
  no_cuda();
}

}  // namespace lazyllm::driver
