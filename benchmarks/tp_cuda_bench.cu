// SPDX-License-Identifier: MIT
// lazyllm-bench-tp-cuda: a model sharded over tp GPUs (TpCudaBackend over NcclComm, one thread per
// GPU): time to first token and decode time per token, dense and LazyLLM, on synthetic weights of
// a real shape (default Llama 2 70B: dim 8192, 80 layers, 64 heads, 8 KV heads, FFN 28672).
// Synthetic weights share one layer's tensors, which each rank uploads once and runs 80 times:
// the per-layer compute and traffic are the model's, its memory is not.
//
//   NCCL_NVLS_ENABLE=0 lazyllm-bench-tp-cuda --tp 2,4,8 -p 1024,4096 -n 16 --schedule 4:0.5,8:0.5,16:0.5
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "../examples/common/cli.hpp"
#include "../examples/common/synthetic.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/dist/tp_cuda_backend.cuh"
#include "lazyllm/model/sampler.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/any.hpp"

using namespace lazyllm;

namespace {

int usage(const char* msg) {
  if (msg) std::fprintf(stderr, "lazyllm-bench-tp-cuda: %s\n", msg);
  std::fprintf(stderr,
               "usage: lazyllm-bench-tp-cuda [--tp 2,4,8] [--shape llama2-70b|llama2-7b|llama2-13b] [--layers N] "
               "[-p 1024,4096] [-n 16] [--schedule 4:0.5,8:0.5,16:0.5] [-r 3]\n"
               "  tp values above the visible GPU count are skipped.\n");
  return 2;
}

RuntimeConfig shape_config(const std::string& name) {
  if (name == "llama2-70b") {
    RuntimeConfig c;
    c.dim = 8192, c.hidden_dim = 28672, c.n_layers = 80, c.n_heads = 64, c.n_kv_heads = 8, c.vocab_size = 32000;
    c.max_seq_len = 32768, c.rope_style = RopeStyle::RotateHalf;
    return c;
  }
  return synthetic_config(name);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> tps{2, 4, 8}, prompts{1024, 4096};
  std::string shape = "llama2-70b", schedule = "4:0.5,8:0.5,16:0.5";
  int layers = 0, n_gen = 16, reps = 3;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto val = [&]() -> std::string {
        if (i + 1 >= argc) throw InvalidArgument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--tp")
        tps = cli::parse_int_list("--tp", val());
      else if (a == "--shape")
        shape = val();
      else if (a == "--layers")
        layers = cli::parse_int_list("--layers", val()).at(0);
      else if (a == "-p")
        prompts = cli::parse_int_list("-p", val());
      else if (a == "-n")
        n_gen = cli::parse_int_list("-n", val()).at(0);
      else if (a == "--schedule")
        schedule = val();
      else if (a == "-r")
        reps = std::max(1, cli::parse_int_list("-r", val()).at(0));
      else if (a == "-h" || a == "--help")
        return usage(nullptr);
      else
        return usage(("unknown option " + a).c_str());
    }
  } catch (const std::exception& e) {  // cli::UsageError and the library's InvalidArgument
    return usage(e.what());
  }
  try {
    RuntimeConfig c = shape_config(shape);
    if (layers > 0) c.n_layers = layers;
    const Schedule sched = Schedule::parse(schedule);
    sched.validate_for(c.n_layers);
    int gpus = 0;
    if (cudaGetDeviceCount(&gpus) != cudaSuccess) gpus = 0;
    std::fprintf(stderr, "lazyllm-bench-tp-cuda: making synthetic %s weights (%d layers, one set shared)\n",
                 shape.c_str(), c.n_layers);
    const ModelWeights w = synthetic_weights(c, 1);
    const int max_p = *std::max_element(prompts.begin(), prompts.end());
    std::printf(
        "lazyllm-bench-tp-cuda: %s (%d layers), %d GPUs visible, %d decode tokens, median of %d, "
        "NCCL_NVLS_ENABLE=%s\n\n",
        shape.c_str(), c.n_layers, gpus, n_gen, reps,
        std::getenv("NCCL_NVLS_ENABLE") ? std::getenv("NCCL_NVLS_ENABLE") : "(unset: set to 0)");
    std::printf("| tp | policy | prompt | prefill %% | TTFT ms | decode ms/token |\n|---:|---|---:|---:|---:|---:|\n");
    const std::vector<std::pair<std::string, policy::AnyPolicy>> pols{{"dense", policy::Dense{}},
                                                                      {"lazy " + schedule, policy::Lazy(sched)}};
    for (const int tp : tps) {
      if (tp > gpus) {
        std::printf("| %d | (skipped: %d GPUs visible) | | | | |\n", tp, gpus);
        continue;
      }
      struct Row {
        std::string policy;
        int prompt;
        double fraction, ttft, decode;
      };
      std::vector<Row> rows;
      run_nccl_ranks(NcclGroup::first_devices(tp), [&](NcclComm& comm) {
        TpCudaBackend proto(w, comm);  // uploaded once per rank; each pipeline moves it in
        for (const auto& [pname, pol] : pols) {
          Pipeline<RuntimeConfig, policy::AnyPolicy, ContiguousLayout, TpCudaBackend> p(
              std::move(proto), pol, ContiguousLayout{}, max_p + n_gen + 1);
          for (const int n : prompts) {
            std::vector<std::int32_t> prompt(static_cast<std::size_t>(n));
            for (int i = 0; i < n; ++i) prompt[std::size_t(i)] = 1 + std::int32_t((i * 7919) % (c.vocab_size - 1));
            std::vector<double> ttft, dec;
            double fraction = 0;
            for (int r = -1; r < reps; ++r) {  // r = -1: warm-up (cuBLASLt plans, NCCL channels)
              p.reset();
              int go = 0;
              broadcast_value(comm, go);  // start together
              const auto t0 = std::chrono::steady_clock::now();
              auto l = p.prefill(prompt);  // logits() waits for the stream
              const auto t1 = std::chrono::steady_clock::now();
              for (int i = 0; i < n_gen; ++i) l = p.decode(argmax(l));
              const auto t2 = std::chrono::steady_clock::now();
              if (r < 0) continue;
              ttft.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
              dec.push_back(n_gen ? std::chrono::duration<double, std::milli>(t2 - t1).count() / n_gen : 0.0);
              fraction = p.stats().prefill_fraction();
            }
            if (comm.rank() == 0) rows.push_back({pname, n, fraction, cli::median(ttft), cli::median(dec)});
          }
          proto = std::move(p.backend());
        }
      });
      for (const auto& r : rows)
        std::printf("| %d | %s | %d | %.1f | %.1f | %.2f |\n", tp, r.policy.c_str(), r.prompt, 100 * r.fraction, r.ttft,
                    r.decode);
      std::fflush(stdout);
    }
  } catch (const InvalidArgument& e) {
    return usage(e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lazyllm-bench-tp-cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}
