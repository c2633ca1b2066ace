// gpu::Profiler (lazyllm-bench --breakdown): intervals charged to the right class and layer,
// flushing when the event pool is full, and the CudaBackend's marks covering a whole prefill.
#include <cmath>

#include "gpu_util.hpp"
#include "lazyllm/backend/cuda/cuda_backend.cuh"
#include "lazyllm/backend/cuda/profiler.cuh"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/lazy.hpp"
#include "random_model.hpp"

using namespace lazyllm;
using namespace lazyllm::test;

namespace {

/// Busy-waits `ns` nanoseconds of GPU time (global timer), independent of the SM clock.
__global__ void spin_kernel(long long ns) {
  unsigned long long t0 = 0, t = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  } while (t - t0 < static_cast<unsigned long long>(ns));
}

void spin_ms(double ms, cudaStream_t s) {
  spin_kernel<<<1, 1, 0, s>>>(static_cast<long long>(ms * 1e6));
  LAZYLLM_CUDA_CHECK_LAUNCH();
}

}  // namespace

TEST_CASE("Profiler: intervals go to the class and layer of their opening mark") {
  if (!have_gpu()) return;
  gpu::Profiler prof(2, /*capacity=*/3);  // tiny pool: forces flushes in the middle of the pass
  gpu::ProfileHook hook{&prof, nullptr, -1};
  // Load spin_kernel before timing: with lazy module loading (the CUDA 12+ default) its first
  // launch loads the module, which once put 1.5+ ms into the first interval (H200, 2026-11-28).
  spin_ms(0.0, nullptr);
  LAZYLLM_CUDA_CHECK(cudaDeviceSynchronize());
  prof.begin(nullptr);
  hook.mark(gpu::OpClass::Gemm, 0);
  spin_ms(3.0, nullptr);
  hook.mark(gpu::OpClass::Attention, 1);
  spin_ms(1.5, nullptr);
  hook.mark(gpu::OpClass::Gather);  // same layer as the last mark (1)
  spin_ms(1.0, nullptr);
  hook.mark(gpu::OpClass::Gemm, -1);  // outside the layers
  spin_ms(2.0, nullptr);
  prof.end(nullptr);
  // An interval holds at least its spin (less event resolution, 0.05 ms) and at most the spin
  // plus launch gaps and the host time of a pool flush (measured ~0.55 ms on an H100): 1.5 ms.
  auto near = [](double got, double spin) { return got > spin - 0.05 && got < spin + 1.5; };
  INFO("gemm 0: " << prof.ms(0, gpu::OpClass::Gemm) << " ms, attention 1: " << prof.ms(1, gpu::OpClass::Attention)
                  << " ms, gather 1: " << prof.ms(1, gpu::OpClass::Gather)
                  << " ms, gemm -1: " << prof.ms(-1, gpu::OpClass::Gemm) << " ms");
  CHECK(near(prof.ms(0, gpu::OpClass::Gemm), 3.0));
  CHECK(near(prof.ms(1, gpu::OpClass::Attention), 1.5));
  CHECK(near(prof.ms(1, gpu::OpClass::Gather), 1.0));
  CHECK(near(prof.ms(-1, gpu::OpClass::Gemm), 2.0));
  CHECK(prof.ms(0, gpu::OpClass::Attention) == 0.0);
  CHECK((prof.total() > 7.45 && prof.total() < 10.5));  // the four spins plus at most two flushes
  const double first_pass_gemm0 = prof.ms(0, gpu::OpClass::Gemm);
  CHECK(prof.passes() == 1);
  // A mark with no pass running is ignored; a second pass accumulates.
  hook.mark(gpu::OpClass::Gemm, 0);
  prof.begin(nullptr);
  hook.mark(gpu::OpClass::Gemm, 0);
  spin_ms(1.0, nullptr);
  prof.end(nullptr);
  CHECK(near(prof.ms(0, gpu::OpClass::Gemm) - first_pass_gemm0, 1.0));
  CHECK(prof.passes() == 2);
  CHECK_THROWS_AS(prof.end(nullptr), Error);
}

TEST_CASE("Profiler attached to CudaBackend: a lazy prefill's classes add up to its TTFT") {
  if (!have_gpu()) return;
  RuntimeConfig c = small_config(RopeStyle::RotateHalf, 2);
  c.max_seq_len = 256;
  const auto w = random_model(c, 11u);
  Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, CudaBackend> pipe(
      CudaBackend{w}, policy::Lazy(Schedule::parse("1:0.5,2:0.5")));
  const auto ids = prompt_of(100, 5, c.vocab_size);
  (void)pipe.prefill(ids);  // warm-up
  gpu::Profiler prof(c.n_layers);
  cudaEvent_t a = nullptr, b = nullptr;
  LAZYLLM_CUDA_CHECK(cudaEventCreate(&a));
  LAZYLLM_CUDA_CHECK(cudaEventCreate(&b));
  pipe.backend().set_profiler(&prof);
  pipe.reset();
  LAZYLLM_CUDA_CHECK(cudaEventRecord(a, pipe.backend().stream()));
  prof.begin(pipe.backend().stream());
  (void)pipe.prefill(ids);
  prof.end(pipe.backend().stream());
  LAZYLLM_CUDA_CHECK(cudaEventRecord(b, pipe.backend().stream()));
  LAZYLLM_CUDA_CHECK(cudaEventSynchronize(b));
  float outer = 0;
  LAZYLLM_CUDA_CHECK(cudaEventElapsedTime(&outer, a, b));
  MESSAGE("profiled prefill " << prof.total() << " ms, outer events " << outer << " ms");
  // The intervals tile the pass: their sum is within the outer interval, and close to it.
  CHECK(prof.total() <= double(outer) + 0.05);
  CHECK(prof.total() > 0.8 * double(outer));
  for (int l = 0; l < c.n_layers; ++l) {
    CAPTURE(l);
    CHECK(prof.ms(l, gpu::OpClass::Gemm) > 0.0);
    CHECK(prof.ms(l, gpu::OpClass::Attention) > 0.0);
    CHECK(prof.ms(l, gpu::OpClass::Norm) > 0.0);
  }
  // Scores and selection happen in the layers before a pruning layer (0 and 1), not after.
  CHECK(prof.ms(0, gpu::OpClass::Scores) > 0.0);
  CHECK(prof.ms(1, gpu::OpClass::Select) > 0.0);
  CHECK(prof.ms(3, gpu::OpClass::Scores) == 0.0);
  CHECK(prof.ms(-1, gpu::OpClass::Gemm) > 0.0);  // the classifier
  // Detached: nothing more is recorded.
  pipe.backend().set_profiler(nullptr);
  const double before = prof.total();
  pipe.reset();
  (void)pipe.prefill(ids);
  CHECK(prof.total() == before);
  CHECK(prof.passes() == 1);
  (void)cudaEventDestroy(a);
  (void)cudaEventDestroy(b);
}
