// SPDX-License-Identifier: MIT
// lazyllm-bench-tp-comm: what tensor parallelism adds to a step of a model of the given shape
// (default: Llama 2 70B) -- the all-reduces of the exact sizes the sharded backend sends (two per
// layer of rows x dim fp32 values; the LazyLLM scores before each pruning layer), timed with NCCL
// over tp GPUs, one thread per GPU (dist/nccl_comm.cuh), and summed over a prefill and a decode
// step, dense and under a LazyLLM schedule (whose later layers compute fewer rows, so send less).
//
//   NCCL_NVLS_ENABLE=0 lazyllm-bench-tp-comm --tp 2,4,8 -p 1024,4096 --schedule 4:0.5,8:0.5,16:0.5
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "../examples/common/cli.hpp"
#include "lazyllm/dist/nccl_comm.cuh"
#include "lazyllm/policy/lazy.hpp"
#include "lazyllm/policy/schedule.hpp"

using namespace lazyllm;

namespace {

/// |S_l| per layer of a prefill of n tokens under the schedule (the percentile rule's keep count).
std::vector<std::int64_t> prefill_rows(int n, int n_layers, const Schedule& s) {
  std::vector<std::int64_t> rows(static_cast<std::size_t>(n_layers));
  std::int64_t cur = n;
  for (int l = 0; l < n_layers; ++l) {
    const float p = l > 0 ? s.percentile_into(l) : -1.0f;
    if (p >= 0.0f) cur = std::int64_t(detail::percentile_keep_count(std::size_t(cur), p));
    rows[std::size_t(l)] = cur;
  }
  return rows;
}

int usage(const char* msg) {
  if (msg) std::fprintf(stderr, "lazyllm-bench-tp-comm: %s\n", msg);
  std::fprintf(stderr,
               "usage: lazyllm-bench-tp-comm [--tp 2,4,8] [--dim 8192] [--layers 80] [-p 1024,4096] "
               "[--schedule 4:0.5,8:0.5,16:0.5] [-r 20]\n"
               "  tp values above the visible GPU count are skipped.\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> tps{2, 4, 8}, prompts{1024, 4096};
  int dim = 8192, n_layers = 80, reps = 20;
  std::string schedule = "4:0.5,8:0.5,16:0.5";
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto val = [&]() -> std::string {
        if (i + 1 >= argc) throw InvalidArgument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--tp")
        tps = cli::parse_int_list("--tp", val());
      else if (a == "--dim")
        dim = cli::parse_int_list("--dim", val()).at(0);
      else if (a == "--layers")
        n_layers = cli::parse_int_list("--layers", val()).at(0);
      else if (a == "-p")
        prompts = cli::parse_int_list("-p", val());
      else if (a == "--schedule")
        schedule = val();
      else if (a == "-r")
        reps = cli::parse_int_list("-r", val()).at(0);
      else if (a == "-h" || a == "--help")
        return usage(nullptr);
      else
        return usage(("unknown option " + a).c_str());
    }
  } catch (const std::exception& e) {  // cli::UsageError and the library's InvalidArgument
    return usage(e.what());
  }
  try {
    const Schedule sched = Schedule::parse(schedule);
    sched.validate_for(n_layers);
    int gpus = 0;
    if (cudaGetDeviceCount(&gpus) != cudaSuccess) gpus = 0;
    std::printf("lazyllm-bench-tp-comm: dim %d, %d layers, schedule %s, %d GPUs visible, NCCL_NVLS_ENABLE=%s\n", dim,
                n_layers, schedule.c_str(), gpus,
                std::getenv("NCCL_NVLS_ENABLE") ? std::getenv("NCCL_NVLS_ENABLE") : "(unset: set to 0)");
    // The message sizes (floats) a step sends: rows x dim per all-reduce, and the scores.
    std::vector<std::size_t> sizes{std::size_t(dim)};
    std::map<int, std::vector<std::int64_t>> lazy_rows;
    for (const int n : prompts) {
      sizes.push_back(std::size_t(n) * std::size_t(dim));
      sizes.push_back(std::size_t(n));
      lazy_rows[n] = prefill_rows(n, n_layers, sched);
      for (const auto r : lazy_rows[n]) {
        sizes.push_back(std::size_t(r) * std::size_t(dim));
        sizes.push_back(std::size_t(r));
      }
    }
    std::sort(sizes.begin(), sizes.end());
    sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());

    std::printf(
        "\n| tp | step | prompt | dense: all-reduce ms per step | LazyLLM: ms per step | largest all-reduce "
        "(MiB) | its time (ms) | bus bandwidth (GB/s) |\n|---:|---|---:|---:|---:|---:|---:|---:|\n");
    for (const int tp : tps) {
      if (tp > gpus) {
        std::printf("| %d | (skipped: %d GPUs visible) | | | | | | |\n", tp, gpus);
        continue;
      }
      std::map<std::size_t, double> ms;  // floats -> ms per all-reduce (rank 0's events)
      std::mutex m;
      run_nccl_ranks(NcclGroup::first_devices(tp), [&](NcclComm& c) {
        float* buf = nullptr;
        LAZYLLM_CUDA_RT_CHECK(cudaMalloc(&buf, sizes.back() * sizeof(float)));
        LAZYLLM_CUDA_RT_CHECK(cudaMemsetAsync(buf, 0, sizes.back() * sizeof(float), c.stream()));
        cudaEvent_t a, b;
        cudaEventCreate(&a);
        cudaEventCreate(&b);
        for (const std::size_t n : sizes) {
          for (int w = 0; w < 3; ++w) c.all_reduce_sum(std::span<float>(buf, n));  // warm-up
          c.synchronize();
          cudaEventRecord(a, c.stream());
          for (int r = 0; r < reps; ++r) c.all_reduce_sum(std::span<float>(buf, n));
          cudaEventRecord(b, c.stream());
          c.synchronize();
          float t = 0;
          cudaEventElapsedTime(&t, a, b);
          if (c.rank() == 0) {
            std::lock_guard lk(m);
            ms[n] = double(t) / reps;
          }
        }
        cudaEventDestroy(a);
        cudaEventDestroy(b);
        cudaFree(buf);
      });
      for (const int n : prompts) {
        double dense = 0, lazy = 0;
        for (int l = 0; l < n_layers; ++l) {
          dense += 2 * ms[std::size_t(n) * std::size_t(dim)];
          lazy += 2 * ms[std::size_t(lazy_rows[n][std::size_t(l)]) * std::size_t(dim)];
          if (l + 1 < n_layers && sched.percentile_into(l + 1) >= 0.0f)
            lazy += ms[std::size_t(lazy_rows[n][std::size_t(l)])];
        }
        const std::size_t big = std::size_t(n) * std::size_t(dim);
        const double bytes = double(big) * 4, t = ms[big];
        const double busbw = t > 0 ? bytes * 2.0 * (tp - 1) / tp / (t * 1e-3) / 1e9 : 0.0;
        std::printf("| %d | prefill | %d | %.2f | %.2f | %.1f | %.3f | %.0f |\n", tp, n, dense, lazy, bytes / 1048576.0,
                    t, busbw);
      }
      // Decode: one row per layer; LazyLLM adds the scores over the context at its pruning layers.
      for (const int n : prompts) {
        double dense = 2.0 * n_layers * ms[std::size_t(dim)], lazy = dense;
        for (int l = 1; l < n_layers; ++l)
          if (sched.percentile_into(l) >= 0.0f) lazy += ms[std::size_t(lazy_rows[n][std::size_t(l - 1)])];
        std::printf("| %d | decode | %d | %.2f | %.2f | %.3f | %.4f | |\n", tp, n, dense, lazy, dim * 4 / 1048576.0,
                    ms[std::size_t(dim)]);
      }
    }
  } catch (const InvalidArgument& e) {
    return usage(e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lazyllm-bench-tp-comm: %s\n", e.what());
    return 1;
  }
  return 0;
}
