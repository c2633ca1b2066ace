// SPDX-License-Identifier: MIT
// lazyllm-hf-check, CUDA half: the same prompt through CudaBackend pipelines (dense, lazy with an
// empty schedule, paged layout, and lazy with a schedule when one is given).
#include <cuda_runtime.h>

#include "hf_check.hpp"
#include "lazyllm/backend/cuda/cuda_backend.cuh"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/cache/paged.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/dense.hpp"
#include "lazyllm/policy/lazy.hpp"

namespace lazyllm::hf_check {

CudaOutput run_cuda(const ModelWeights& w, const CudaRequest& req) {
  CudaOutput out;
  const int dev = gpu::detail::require_device();  // a clear Error without a GPU
  cudaDeviceProp prop{};
  LAZYLLM_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  out.device = prop.name;
  const std::span<const std::int32_t> ids(req.ids);
  const int n_ctx = int(ids.size()) + req.greedy;
  {
    Pipeline<RuntimeConfig, policy::Dense, ContiguousLayout, CudaBackend> p(CudaBackend(w), {}, {}, n_ctx);
    out.dense.name = "cuda";
    impl::run_pipe(p, ids, req.positions, req.repeats, out.dense, req.greedy);
  }
  {
    Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, CudaBackend> p(CudaBackend(w), policy::Lazy{}, {}, n_ctx);
    out.lazy_empty.name = "cuda_lazy_empty";
    impl::run_pipe(p, ids, {}, 1, out.lazy_empty);
  }
  {
    Pipeline<RuntimeConfig, policy::Dense, PagedLayout<16>, CudaBackend> p(CudaBackend(w), {}, {}, n_ctx);
    out.paged.name = "cuda_paged";
    impl::run_pipe(p, ids, {}, 1, out.paged);
  }
  if (!req.schedule.empty()) {
    const policy::Lazy pol(policy::schedule_from_string(req.schedule, w.config.n_layers));
    Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, CudaBackend> p(CudaBackend(w), pol, {}, n_ctx);
    out.lazy.name = "cuda_lazy";
    impl::run_pipe(p, ids, {}, req.repeats, out.lazy, req.greedy);
    out.has_lazy = true;
  }
  return out;
}

}  // namespace lazyllm::hf_check
