// SPDX-License-Identifier: MIT
// The server without the CUDA engine (LAZYLLM_SERVER_CUDA off).
#include "factory.hpp"

namespace lazyllm::server {

std::unique_ptr<Service> make_cuda_service(ModelWeights, const SchedulerOptions&, const std::string&) {
  throw Error(
      "--backend cuda: this build of lazyllm-server has no CUDA server (configure with "
      "-DLAZYLLM_SERVER_CUDA=ON on a machine with nvcc)");
}
OfflineRunner offline_cuda(ModelWeights, const std::string&) {
  throw Error(
      "--backend cuda: this build has no CUDA engine for lazyllm-bench-serving (configure with "
      "-DLAZYLLM_SERVER_CUDA=ON on a machine with nvcc)");
}
bool cuda_server_built() { return false; }
bool cuda_device_present() { return false; }

}  // namespace lazyllm::server
