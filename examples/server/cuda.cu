// SPDX-License-Identifier: MIT
// The server's scheduler over the CUDA backends (built with -DLAZYLLM_SERVER_CUDA=ON): bf16 on
// SelectingCudaBackend (LazyLLM's percentile rule on the GPU), fp16 and fp32 on their
// CudaBackends. Each model is uploaded once and shared by the engine's backend.
#include <cuda_runtime.h>

#include "factory.hpp"
#include "lazyllm/backend/cuda/cuda_backend.cuh"
#include "lazyllm/backend/cuda/selecting_backend.cuh"

namespace lazyllm::server {

namespace {
template <class Backend>
std::unique_ptr<Service> make(ModelWeights w, const SchedulerOptions& o) {
  auto model = std::make_shared<const typename Backend::Model>(std::move(w));
  return std::make_unique<Scheduler<Backend>>(std::move(model), o);
}
}  // namespace

std::unique_ptr<Service> make_cuda_service(ModelWeights w, const SchedulerOptions& o, const std::string& precision) {
  if (precision == "fp16") return make<CudaBackendFp16>(std::move(w), o);
  if (precision == "fp32") return make<CudaBackendFp32>(std::move(w), o);
  return make<SelectingCudaBackend>(std::move(w), o);
}

namespace {
template <class Backend>
OfflineRunner offline(ModelWeights w) {
  std::shared_ptr<const typename Backend::Model> model = std::make_shared<const typename Backend::Model>(std::move(w));
  return [model](const std::vector<TraceRequest>& trace, const OfflineOptions& o) {
    return run_offline<Backend>(model, trace, o);
  };
}
}  // namespace

OfflineRunner offline_cuda(ModelWeights w, const std::string& precision) {
  if (precision == "fp16") return offline<CudaBackendFp16>(std::move(w));
  if (precision == "fp32") return offline<CudaBackendFp32>(std::move(w));
  return offline<SelectingCudaBackend>(std::move(w));
}

bool cuda_server_built() { return true; }

bool cuda_device_present() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

}  // namespace lazyllm::server
