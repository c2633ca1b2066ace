// Builds a pipeline from the installed headers and runs it on an in-memory model.
#include <cstdio>
#include <vector>

#include <lazyllm/lazyllm.hpp>

#include "tiny_model.hpp"

int main() {
  using namespace lazyllm;
  const ModelWeights w = tiny_model();
  Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, CpuBackend> pipe(CpuBackend{w}, policy::Lazy(Schedule::parse("1:0.5")));
  const std::vector<std::int32_t> prompt{1, 2, 3, 4};
  const auto logits = pipe.prefill(prompt);
  std::printf("consumer: %zu logits, %d tokens at layer 1\n", logits.size(), pipe.stats().steps[0].selected[1]);
  return logits.size() == 8 ? 0 : 1;
}
