// The installed package's lazyllm::cuda: the same in-memory model through CudaBackend. Built in CI
// (no GPU there: it then says so and exits 0); on a GPU machine it runs the pipeline.
#include <cuda_runtime.h>

#include <cstdio>
#include <lazyllm/backend/cuda/cuda_backend.cuh>
#include <lazyllm/lazyllm.hpp>
#include <vector>

#include "tiny_model.hpp"

int main() {
  using namespace lazyllm;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("consumer_cuda: built against lazyllm::cuda; no GPU here, not run\n");
    return 0;
  }
  const ModelWeights w = tiny_model();
  Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, CudaBackend> pipe(CudaBackend{w},
                                                                            policy::Lazy(Schedule::parse("1:0.5")));
  const std::vector<std::int32_t> prompt{1, 2, 3, 4};
  const auto logits = pipe.prefill(prompt);
  std::printf("consumer_cuda: %zu logits, %d tokens at layer 1\n", logits.size(), pipe.stats().steps[0].selected[1]);
  return logits.size() == 8 ? 0 : 1;
}
