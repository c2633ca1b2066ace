// SPDX-License-Identifier: MIT
// The scheduler instantiated per backend: cpu.cpp (always), cuda.cu (when the build has the
// CUDA server, CMake option LAZYLLM_SERVER_CUDA) or cuda_stub.cpp.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "lazyllm/model/weights.hpp"
#include "offline.hpp"
#include "scheduler.hpp"
#include "service.hpp"

namespace lazyllm::server {

/// Scheduler<CpuBackend> over `w` (fp16/bf16 weights are converted to fp32).
std::unique_ptr<Service> make_cpu_service(ModelWeights w, const SchedulerOptions& o);

/// Scheduler over the CUDA backend in `precision` (bf16, fp16 or fp32; bf16 selects on the GPU).
/// Throws Error when this build has no CUDA server.
std::unique_ptr<Service> make_cuda_service(ModelWeights w, const SchedulerOptions& o, const std::string& precision);

/// Runs a trace through a fresh Engine over one model (loaded once) on the calling thread
/// (lazyllm-bench-serving --offline).
using OfflineRunner =
    std::function<std::vector<RequestTiming>(const std::vector<TraceRequest>&, const OfflineOptions&)>;
OfflineRunner offline_cpu(ModelWeights w);
OfflineRunner offline_cuda(ModelWeights w, const std::string& precision);

/// Whether this build has the CUDA server, and whether a GPU is present.
bool cuda_server_built();
bool cuda_device_present();

}  // namespace lazyllm::server
