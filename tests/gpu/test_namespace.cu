// A user's translation unit as the docs show it: `using namespace lazyllm;`, CCCL (CUB and
// libcu++, which declare namespace ::cuda) and every CUDA header of lazyllm, with both
// namespaces named unqualified. It must compile: lazyllm's CUDA namespace is lazyllm::gpu (it was
// lazyllm::cuda, which made every unqualified `cuda::` in such a file ambiguous).
#include <cub/cub.cuh>
#include <cuda/std/limits>

#include "gpu_util.hpp"
#include "lazyllm/backend/cuda/cuda_backend.cuh"
#include "lazyllm/backend/cuda/profiler.cuh"
#include "lazyllm/backend/cuda/sampling.cuh"
#include "lazyllm/backend/cuda/select.cuh"
#include "lazyllm/backend/cuda/selecting_backend.cuh"

using namespace lazyllm;

static_assert(cuda::std::numeric_limits<int>::max() == 2147483647, "CCCL's ::cuda, unqualified");
static_assert(sizeof(gpu::bf16) == 2 && sizeof(gpu::fp16) == 2, "lazyllm::gpu, unqualified");
static_assert(std::is_same_v<CudaBackend, BasicCudaBackend<gpu::bf16>>);

TEST_CASE("namespace: lazyllm::gpu and CCCL's ::cuda side by side after `using namespace lazyllm`") {
  // Host-only: names from both namespaces resolve in one scope (no GPU needed).
  gpu::DeviceBuffer<float> empty;
  CHECK(!empty);
  CHECK(gpu::Storage<gpu::bf16>::host_bits(1.0f) == 0x3f80);
  CHECK(std::string(gpu::op_class_name(gpu::OpClass::Gemm)) == "gemm");
  CHECK(percentile_rank(10, 0.5f) == 5);  // lazyllm::percentile_rank, host and device
}
