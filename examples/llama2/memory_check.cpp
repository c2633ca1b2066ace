// SPDX-License-Identifier: MIT
// The driver's memory check before the model loads (memory_check.hpp).
#include "memory_check.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "../common/gpu_probe.hpp"
#include "lazyllm/policy/any.hpp"
#include "memory.hpp"

namespace lazyllm::driver {

namespace {

int count_aux_layers(const policy::AnyPolicy& p, int n_layers) {
  int n = 0;
  for (int l = 1; l < n_layers; ++l) n += p.prunes_into(l) ? 1 : 0;
  return n;
}

}  // namespace

MemoryCheck check_memory(Options& o, const std::string& chosen) {
  const bool cuda = o.backend == "cuda";
  if (o.precision_auto) {
    const std::string dt = cuda ? peek_weight_dtype(o.model).value_or("bf16") : "f32";
    o.precision = dt == "f32" ? "fp32" : dt == "f16" ? "fp16" : "bf16";
    if (cuda)
      std::fprintf(stderr, "precision: %s (auto: the checkpoint's dtype%s)\n", o.precision.c_str(),
                   o.precision == "fp32" ? "; --precision bf16 is faster" : "");
  }
  MemoryCheck mc;
  const auto cfg = validated_config(o.model);  // a corrupt file reads as corrupt, not as too big
  if (!cfg) return mc;
  const int ctx = o.n_ctx ? std::min(o.n_ctx, cfg->max_seq_len) : cfg->max_seq_len;
  const policy::AnyPolicy pol =
      policy::make_policy(chosen, make_schedule(o.schedule, cfg->n_layers), o.sampler.seed, o.keep_recent);
  const int aux_layers = count_aux_layers(pol, cfg->n_layers);
  mc.known = true;
  mc.n_ctx = ctx;
  mc.aux_layers = aux_layers;
  mc.enforced = o.mem_check;

  auto fail = [&](const MemoryNeed& need, std::uint64_t available, const std::string& source) {
    throw Error("not enough memory: " + o.model + " with -c " + std::to_string(ctx) + " needs " + need.breakdown() +
                " of " + need.where + ", but " + format_bytes(available) + " is available (" + source +
                "); use a smaller -c or a smaller model" +
                std::string(!cuda && cli::gpu_available() ? ", try --backend cuda" : "") +
                std::string(cuda && o.precision == "fp32" ? ", try --precision bf16" : "") +
                ", or pass --no-mem-check to try anyway");
  };
  std::uint64_t free_b = 0, total_b = 0;
  std::string gpu_source = "cudaMemGetInfo";
  bool gpu_known = false;
  if (cuda) {
    gpu_known = cli::gpu_memory_info(free_b, total_b);
    if (const char* env = std::getenv("LAZYLLM_AVAILABLE_GPU_MEMORY"))
      if (auto v = parse_bytes(env)) {
        free_b = *v;
        gpu_known = true;
        gpu_source = "LAZYLLM_AVAILABLE_GPU_MEMORY";
      }
    if (o.precision_auto && o.precision == "fp32" && gpu_known &&
        gpu_memory_need(*cfg, ctx, aux_layers, 4, "fp32").total() > free_b &&
        gpu_memory_need(*cfg, ctx, aux_layers, 2, "bf16").total() <= free_b) {
      std::fprintf(stderr, "precision: the fp32 checkpoint does not fit in GPU memory in fp32; computing in bf16\n");
      o.precision = "bf16";
    }
  }
  const int store_bytes = o.precision == "fp32" ? 4 : 2;  // settled above
  std::string host_source;
  const auto host_avail = host_available(&host_source);
  // With CUDA the host holds only the upload's staging buffer (the checkpoint stays mapped).
  const MemoryNeed host =
      cuda ? gpu_upload_host_need(*cfg, store_bytes, o.precision) : cpu_memory_need(*cfg, ctx, aux_layers);
  mc.host = host;
  mc.host_available = host_avail;
  mc.host_source = host_source;
  std::fprintf(stderr, "memory: %s of RAM needed, %s available\n", host.breakdown().c_str(),
               host_avail ? format_bytes(*host_avail).c_str() : "unknown");
  if (o.mem_check && host_avail && host.total() > *host_avail) fail(host, *host_avail, host_source);
  if (cuda) {
    const MemoryNeed gpu = gpu_memory_need(*cfg, ctx, aux_layers, store_bytes, o.precision);
    mc.gpu = gpu;
    if (gpu_known) mc.gpu_free = free_b;
    mc.gpu_source = gpu_source;
    std::fprintf(stderr, "memory: %s of GPU memory needed, %s free\n", gpu.breakdown().c_str(),
                 gpu_known ? format_bytes(free_b).c_str() : "unknown");
    if (o.mem_check && gpu_known && gpu.total() > free_b) fail(gpu, free_b, gpu_source);
  }
  return mc;
}

}  // namespace lazyllm::driver
