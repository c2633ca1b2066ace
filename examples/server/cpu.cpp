// SPDX-License-Identifier: MIT
// The server's scheduler over the CPU reference backend.
#include "factory.hpp"
#include "lazyllm/backend/cpu/cpu_backend.hpp"

namespace lazyllm::server {

template class Scheduler<CpuBackend>;

std::unique_ptr<Service> make_cpu_service(ModelWeights w, const SchedulerOptions& o) {
  auto model = std::make_shared<const CpuModel>(std::move(w));
  return std::make_unique<Scheduler<CpuBackend>>(std::move(model), o);
}

OfflineRunner offline_cpu(ModelWeights w) {
  std::shared_ptr<const CpuModel> model = std::make_shared<const CpuModel>(std::move(w));
  return [model](const std::vector<TraceRequest>& trace, const OfflineOptions& o) {
    return run_offline<CpuBackend>(model, trace, o);
  };
}

}  // namespace lazyllm::server
