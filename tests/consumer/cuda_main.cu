// The installed package's lazyllm::cuda: the same in-memory model through CudaBackend. Built in CI
// (no GPU there: it then says so and exits 0); on a GPU machine it runs the pipeline.
#include <cuda_runtime.h>

#include <cstdio>
#include <lazyllm/backend/cuda/cuda_backend.cuh>
#include <lazyllm/lazyllm.hpp>
#include <memory>
#include <vector>

int main() {
  using namespace lazyllm;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("consumer_cuda: built against lazyllm::cuda; no GPU here, not run\n");
    return 0;
  }
  RuntimeConfig c;
  c.dim = 16, c.hidden_dim = 24, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 1, c.vocab_size = 8, c.max_seq_len = 8;
  auto buf = std::make_shared<std::vector<float>>(1 << 14, 0.01f);
  ModelWeights w;
  w.config = c;
  w.storage.push_back(buf);
  const float* p = buf->data();
  w.token_embedding = w.classifier = w.final_norm = p;
  w.layers.assign(2, LayerWeights{p, p, p, p, p, p, p, p, p});
  Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, CudaBackend> pipe(CudaBackend{w},
                                                                            policy::Lazy(Schedule::parse("1:0.5")));
  const std::vector<std::int32_t> prompt{1, 2, 3, 4};
  const auto logits = pipe.prefill(prompt);
  std::printf("consumer_cuda: %zu logits, %d tokens at layer 1\n", logits.size(), pipe.stats().steps[0].selected[1]);
  return logits.size() == 8 ? 0 : 1;
}
