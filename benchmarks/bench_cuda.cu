// SPDX-License-Identifier: MIT
// The CUDA side of lazyllm-bench: CUDA-event timing on the backend's stream, the GEMM floor
// (--floor), the per-op breakdown (--breakdown) and the device description for the JSON.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "bench.hpp"
#include "lazyllm/backend/cuda/cuda_backend.cuh"
#include "lazyllm/backend/cuda/profiler.cuh"
#include "lazyllm/backend/cuda/selecting_backend.cuh"

namespace lazyllm::bench {

static_assert(kBreakdownClasses.size() == std::size_t(gpu::kOpClasses));
static_assert(kBreakdownClasses[0] == gpu::op_class_name(gpu::OpClass::Gemm) &&
              kBreakdownClasses[3] == gpu::op_class_name(gpu::OpClass::Select) &&
              kBreakdownClasses[6] == gpu::op_class_name(gpu::OpClass::Other));

namespace {

/// Timing CUDA event (the backend's gpu::Event disables timing).
class TimingEvent {
 public:
  TimingEvent() { LAZYLLM_CUDA_CHECK(cudaEventCreate(&e_)); }
  TimingEvent(const TimingEvent&) = delete;
  TimingEvent& operator=(const TimingEvent&) = delete;
  ~TimingEvent() { (void)cudaEventDestroy(e_); }
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

double elapsed_ms(const TimingEvent& a, const TimingEvent& b) {
  LAZYLLM_CUDA_CHECK(cudaEventSynchronize(b.get()));
  float ms = 0;
  LAZYLLM_CUDA_CHECK(cudaEventElapsedTime(&ms, a.get(), b.get()));
  return double(ms);
}

__global__ void fill_random_bf16(gpu::bf16* p, std::size_t n, float scale, std::uint32_t seed) {
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    std::uint32_t h = std::uint32_t(i) * 2654435761u ^ seed ^ std::uint32_t(i >> 32) * 0x9E3779B9u;
    h ^= h >> 16, h *= 0x7feb352du, h ^= h >> 15, h *= 0x846ca68bu, h ^= h >> 16;
    p[i] = __float2bfloat16(scale * (float(h >> 8) * 0x1.0p-24f * 2.0f - 1.0f));
  }
}

void fill(gpu::DeviceBuffer<gpu::bf16>& b, float scale, std::uint32_t seed, cudaStream_t s) {
  if (!b) return;
  fill_random_bf16<<<1024, 256, 0, s>>>(b.get(), b.size(), scale, seed);
  LAZYLLM_CUDA_CHECK_LAUNCH();
}

/// The model's linear layers alone, through the backend's own gpu::Gemm (same cuBLASLt plans,
/// hence the same algorithms as the forward), on random bf16 data: per layer with r rows the
/// fused QKV [r, d] x [d + 2 kvd, d]^T, O [r, d] x [d, d]^T, fused gate/up [r, d] x [2 hid, d]^T
/// and down [r, hid] x [d, hid]^T (bf16 out), then the classifier of the last token (fp32 out).
/// One layer's weights serve every layer: at prefill sizes these GEMMs are compute-bound and a
/// layer's weights (hundreds of MB) do not stay in L2 anyway.
class GemmFloor {
 public:
  void prepare(const RuntimeConfig& c, int hid, int max_rows, cudaStream_t s) {
    const std::size_t d = std::size_t(c.dim), kvd = std::size_t(c.kv_dim()), h = std::size_t(hid);
    if (!w_qkv_) {
      const float sd = std::sqrt(3.0f / float(d)), sh = std::sqrt(3.0f / float(h));
      w_qkv_.reset((d + 2 * kvd) * d, "floor weights");
      w_o_.reset(d * d, "floor weights");
      w_gu_.reset(2 * h * d, "floor weights");
      w_down_.reset(d * h, "floor weights");
      w_cls_.reset(std::size_t(c.vocab_size) * d, "floor weights");
      logits_.reset(std::size_t(c.vocab_size), "floor logits");
      fill(w_qkv_, sd, 1, s), fill(w_o_, sd, 2, s), fill(w_gu_, sd, 3, s), fill(w_down_, sh, 4, s), fill(w_cls_, sd, 5, s);
    }
    if (std::size_t(max_rows) > rows_) {
      x_.reset(std::size_t(max_rows) * std::max(d, h), "floor activations");
      y_.reset(std::size_t(max_rows) * std::max(d + 2 * kvd, 2 * h), "floor activations");
      fill(x_, 1.0f, 6, s);
      rows_ = std::size_t(max_rows);
    }
  }
  /// Queues one pass: `rows[l]` tokens in layer l.
  void pass(gpu::Gemm& g, const RuntimeConfig& c, int hid, const std::vector<int>& rows, cudaStream_t s) {
    const int d = c.dim, kvd = c.kv_dim();
    for (int r : rows) {
      if (r <= 0) continue;
      g.run(x_.get(), w_qkv_.get(), y_.get(), r, d, d + 2 * kvd, s);
      g.run(x_.get(), w_o_.get(), y_.get(), r, d, d, s);
      g.run(x_.get(), w_gu_.get(), y_.get(), r, d, 2 * hid, s);
      g.run(x_.get(), w_down_.get(), y_.get(), r, hid, d, s);
    }
    g.run(x_.get(), w_cls_.get(), logits_.get(), 1, d, c.vocab_size, s);
  }

 private:
  gpu::DeviceBuffer<gpu::bf16> w_qkv_, w_o_, w_gu_, w_down_, w_cls_, x_, y_;
  gpu::DeviceBuffer<float> logits_;
  std::size_t rows_ = 0;
};

std::string pci_bus_id() {
  int dev = 0;
  char bus[32] = {};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetPCIBusId(bus, sizeof bus, dev) != cudaSuccess) return "";
  return bus;
}

/// A field list from nvidia-smi for this device ("" when nvidia-smi is missing).
std::string nvidia_smi(const std::string& fields) {
  const std::string q = " --query-gpu=" + fields + " --format=csv,noheader,nounits";
  const std::string bus = pci_bus_id();
  std::string r = bus.empty() ? "" : shell_first_line("nvidia-smi -i " + bus + q);
  if (r.empty()) r = shell_first_line("nvidia-smi" + q);
  return r;
}

double current_sm_clock_mhz() {
  const std::string r = nvidia_smi("clocks.sm");
  try {
    return r.empty() ? 0.0 : std::stod(r);
  } catch (const std::exception&) {
    return 0.0;
  }
}

/// CUDA-event timing and the CUDA-only extras, for run_policy.
struct CudaExt {
  TimingEvent a, b;
  GemmFloor floor;

  template <class Pipe>
  void start(Pipe& pipe) {
    LAZYLLM_CUDA_CHECK(cudaEventRecord(a.get(), pipe.backend().stream()));
  }
  /// prefill()/decode() return host logits, so the stream is drained when this is recorded: the
  /// interval is prompt in (before the embedding's index upload) -> logits on the host.
  template <class Pipe>
  double stop(Pipe& pipe) {
    LAZYLLM_CUDA_CHECK(cudaEventRecord(b.get(), pipe.backend().stream()));
    return elapsed_ms(a, b);
  }

  template <class Pipe>
  void after_prompt(Pipe& pipe, const std::vector<std::int32_t>& prompt, const Plan& plan, Measurement& m) {
    m.sm_clock_mhz = current_sm_clock_mhz();
    auto& be = pipe.backend();
    const cudaStream_t s = be.stream();
    const RuntimeConfig& c = pipe.config();
    if (plan.floor) {
      // Dense: n tokens in every layer; pruned: the |C_l| the run computed.
      std::vector<int> rows = m.computed;
      if (rows.empty()) rows.assign(std::size_t(c.n_layers), m.n_prompt);
      floor.prepare(c, be.padded_hidden(), m.n_prompt, s);
      floor.pass(be.gemm(), c, be.padded_hidden(), rows, s);  // warm-up (cuBLASLt plans)
      LAZYLLM_CUDA_CHECK(cudaStreamSynchronize(s));
      for (int r = 0; r < plan.reps; ++r) {
        LAZYLLM_CUDA_CHECK(cudaEventRecord(a.get(), s));
        floor.pass(be.gemm(), c, be.padded_hidden(), rows, s);
        LAZYLLM_CUDA_CHECK(cudaEventRecord(b.get(), s));
        m.floor_ms.push_back(elapsed_ms(a, b));
      }
      if (plan.progress)
        std::fprintf(stderr, "  %s %s pp%d: GEMM floor %.2f ms\n", m.policy.c_str(), m.schedule.c_str(), m.n_prompt,
                     m.floor_ms.back());
    }
    if (plan.breakdown) {
      gpu::Profiler prof(c.n_layers);
      struct Detach {
        decltype(be)& b;
        ~Detach() { b.set_profiler(nullptr); }
      } detach{be};
      be.set_profiler(&prof);
      for (int r = 0; r < std::max(1, plan.reps); ++r) {
        pipe.reset();
        prof.begin(s);
        (void)pipe.prefill(prompt);
        prof.end(s);
      }
      Breakdown& bd = m.breakdown;
      bd.passes = prof.passes();
      bd.ms.assign(std::size_t(c.n_layers + 1), {});
      for (int l = -1; l < c.n_layers; ++l)
        for (int k = 0; k < gpu::kOpClasses; ++k)
          bd.ms[std::size_t(l + 1)][std::size_t(k)] = prof.ms(l, gpu::OpClass(k)) / prof.passes();
      bd.ttft_ms = prof.total() / prof.passes();
      if (plan.progress)
        std::fprintf(stderr, "  %s %s pp%d: profiled TTFT %.2f ms (gemm %.2f)\n", m.policy.c_str(),
                     m.schedule.c_str(), m.n_prompt, bd.ttft_ms, bd.total(0));
      if (plan.n_gen > 0) {  // decode steps after the prompt, one profiled pass each
        gpu::Profiler dprof(c.n_layers);
        be.set_profiler(nullptr);
        pipe.reset();
        GenerateHooks hooks;
        hooks.after_prefill = [&](std::span<const float>) { be.set_profiler(&dprof); };
        hooks.before_decode = [&] { dprof.begin(s); };
        hooks.after_decode = [&] { dprof.end(s); };
        generate(pipe, prompt, greedy, [](std::int32_t) {}, greedy_steps(plan.n_gen), hooks);
        Breakdown& dd = m.decode_breakdown;
        dd.passes = dprof.passes();
        dd.ms.assign(std::size_t(c.n_layers + 1), {});
        for (int l = -1; l < c.n_layers; ++l)
          for (int k = 0; k < gpu::kOpClasses; ++k)
            dd.ms[std::size_t(l + 1)][std::size_t(k)] = dprof.ms(l, gpu::OpClass(k)) / dprof.passes();
        dd.ttft_ms = dprof.total() / dprof.passes();
        if (plan.progress)
          std::fprintf(stderr, "  %s %s tg%d@d%d: profiled %.3f ms/token (gemm %.3f, attention %.3f)\n",
                       m.policy.c_str(), m.schedule.c_str(), plan.n_gen, m.n_prompt, dd.ttft_ms, dd.total(0),
                       dd.total(1));
      }
    }
  }
};

}  // namespace

std::vector<Measurement> run_cuda(const ModelWeights& w, const std::vector<AnyPolicy>& pols, const Plan& plan) {
  const auto t0 = Clock::now();
  // SelectingCudaBackend with the rule off is CudaBackend (the policy selects on the host), so
  // --device-select A/B runs share one Pipeline instantiation.
  SelectingCudaBackend backend(w);
  backend.set_decode_graphs(plan.graphs);
  backend.set_wgmma_attention(plan.wgmma);
  backend.set_device_select(plan.device_select);
  if (plan.graph_chunk > 0) backend.set_graph_chunk_layers(plan.graph_chunk);
  backend.synchronize();
  std::fprintf(stderr, "  weights uploaded in %.1f s\n", std::chrono::duration<double>(Clock::now() - t0).count());
  CudaExt ext;
  return run_policies(backend, pols, plan, ext);
}

nlohmann::json cuda_device_info() {
  nlohmann::json j;
  int dev = 0, driver = 0, runtime = 0, clock_khz = 0, mem_clock_khz = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return {{"gpu", "unknown"}};
  }
  (void)cudaDriverGetVersion(&driver);
  (void)cudaRuntimeGetVersion(&runtime);
  (void)cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, dev);
  (void)cudaDeviceGetAttribute(&mem_clock_khz, cudaDevAttrMemoryClockRate, dev);
  auto ver = [](int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); };
  j["gpu"] = prop.name;
  j["pci_bus_id"] = pci_bus_id();
  j["compute_capability"] = std::to_string(prop.major) + "." + std::to_string(prop.minor);
  j["sms"] = prop.multiProcessorCount;
  j["memory_gib"] = double(prop.totalGlobalMem) / double(1ull << 30);
  j["l2_mib"] = double(prop.l2CacheSize) / double(1 << 20);
  j["sm_clock_max_mhz"] = clock_khz / 1000;
  j["mem_clock_max_mhz"] = mem_clock_khz / 1000;
  j["cuda_driver_api"] = ver(driver);
  j["cuda_runtime"] = ver(runtime);
  j["cublaslt"] = std::to_string(cublasLtGetVersion());
  const std::string smi = nvidia_smi("driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit,pstate");
  j["nvidia_smi"] = smi;  // driver, SM clock now, max SM clock, memory clock, power limit, pstate
  std::string driver_version = smi.substr(0, smi.find(','));
  if (driver_version.empty()) {
    std::ifstream f("/proc/driver/nvidia/version");
    std::getline(f, driver_version);
  }
  j["driver_version"] = driver_version.empty() ? "unknown" : driver_version;
  j["sm_clock_now_mhz"] = current_sm_clock_mhz();
  try {  // whether prefill attention can take the Hopper wgmma kernel (sm_90a code on an sm_90 GPU)
    j["wgmma_attention_kernel"] = gpu::sm90_attention_available();
  } catch (const std::exception&) {
    j["wgmma_attention_kernel"] = false;
  }
  return j;
}

}  // namespace lazyllm::bench
