// SPDX-License-Identifier: MIT
// lazyllm-bench-tp: tensor parallelism on the CPU (one thread per rank, dist/tp_cpu.hpp): time to
// first token and decode time per token at each tp, dense and LazyLLM, on synthetic weights, and
// how far each tp's logits are from tp = 1's.
//
//   lazyllm-bench-tp --tp 1,2 --synthetic tiny -p 256 -n 16 -r 3
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "../examples/common/cli.hpp"
#include "../examples/common/synthetic.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/dist/tp_cpu.hpp"
#include "lazyllm/model/sampler.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/any.hpp"

using namespace lazyllm;

namespace {

struct Result {
  double ttft_ms = 0, decode_ms = 0, fraction = 0;
  std::vector<float> logits;  // after the last decode token (rank 0)
};

Result run_once(const ModelWeights& w, int tp, const policy::AnyPolicy& pol, const std::vector<std::int32_t>& prompt,
                int n_gen) {
  using Clock = std::chrono::steady_clock;
  Result res;
  run_tp(w, tp, [&](CpuRank& r) {
    Pipeline<RuntimeConfig, policy::AnyPolicy, ContiguousLayout, CpuBackend> p(r.backend(), pol, ContiguousLayout{},
                                                                               int(prompt.size()) + n_gen + 1);
    int go = 0;
    broadcast_value(r.comm, go);  // every rank has its shard and its pipeline: start together
    const auto t0 = Clock::now();
    auto l = p.prefill(prompt);
    const auto t1 = Clock::now();
    for (int i = 0; i < n_gen; ++i) l = p.decode(argmax(l));  // the same token on every rank
    const auto t2 = Clock::now();
    if (!r.leader()) return;
    res.ttft_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    res.decode_ms = n_gen > 0 ? std::chrono::duration<double, std::milli>(t2 - t1).count() / n_gen : 0.0;
    res.fraction = p.stats().prefill_fraction();
    res.logits.assign(l.begin(), l.end());
  });
  return res;
}

int usage(const char* msg) {
  if (msg) std::fprintf(stderr, "lazyllm-bench-tp: %s\n", msg);
  std::fprintf(stderr,
               "usage: lazyllm-bench-tp [--tp 1,2] [--synthetic SHAPE] [--layers N] [-p 256] "
               "[-n 16] [--schedule 1:0.5,...] [-r 3]\n"
               "  Times each tp (ranks as threads, LAZYLLM_THREADS split between them) dense and LazyLLM.\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> tps{1, 2};
  std::string shape = "tiny", schedule;
  int layers = 0, prompt_len = 256, n_gen = 16, reps = 3;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto val = [&]() -> std::string {
        if (i + 1 >= argc) throw InvalidArgument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--tp")
        tps = cli::parse_int_list("--tp", val());
      else if (a == "--synthetic")
        shape = val();
      else if (a == "--layers")
        layers = cli::parse_int_list("--layers", val()).at(0);
      else if (a == "-p")
        prompt_len = cli::parse_int_list("-p", val()).at(0);
      else if (a == "-n")
        n_gen = std::atoi(val().c_str());
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
    RuntimeConfig c = synthetic_config(shape);
    if (layers > 0) c.n_layers = layers;
    c.max_seq_len = std::max(c.max_seq_len, prompt_len + n_gen + 1);
    if (schedule.empty()) schedule = c.n_layers >= 4 ? "1:0.5,2:0.5,3:0.5" : "1:0.5";
    const ModelWeights w = synthetic_weights(c, 1);
    std::vector<std::int32_t> prompt(static_cast<std::size_t>(prompt_len));
    for (int i = 0; i < prompt_len; ++i) prompt[std::size_t(i)] = 1 + std::int32_t((i * 7919) % (c.vocab_size - 1));
    const std::vector<std::pair<std::string, policy::AnyPolicy>> pols{
        {"dense", policy::Dense{}}, {"lazy", policy::Lazy(Schedule::parse(schedule))}};
    std::printf("lazyllm-bench-tp: synthetic %s, %d layers, prompt %d, %d decode tokens, %d repetitions, %d cores\n",
                shape.c_str(), c.n_layers, prompt_len, n_gen, reps, detail::cpu_threads());
    std::printf("\n| tp | policy | schedule | prefill %% | TTFT ms | decode ms/token | max abs logit diff vs tp=1 |\n");
    std::printf("|---:|---|---|---:|---:|---:|---:|\n");
    std::vector<std::vector<float>> ref(pols.size());
    for (const int tp : tps) {
      for (std::size_t k = 0; k < pols.size(); ++k) {
        std::vector<double> ttft, dec;
        Result last;
        for (int r = 0; r < reps; ++r) {
          last = run_once(w, tp, pols[k].second, prompt, n_gen);
          ttft.push_back(last.ttft_ms);
          dec.push_back(last.decode_ms);
        }
        if (ref[k].empty() && tp == 1) ref[k] = last.logits;
        std::string diff = "-";
        if (!ref[k].empty() && ref[k].size() == last.logits.size()) {
          double m = 0;
          for (std::size_t i = 0; i < ref[k].size(); ++i)
            m = std::max(m, double(std::fabs(ref[k][i] - last.logits[i])));
          char b[32];
          std::snprintf(b, sizeof b, "%.2g", m);
          diff = b;
        }
        std::printf("| %d | %s | %s | %.1f | %.1f | %.2f | %s |\n", tp, pols[k].first.c_str(),
                    k == 0 ? "none" : schedule.c_str(), 100 * last.fraction, cli::median(ttft), cli::median(dec),
                    diff.c_str());
      }
    }
  } catch (const InvalidArgument& e) {
    return usage(e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lazyllm-bench-tp: %s\n", e.what());
    return 1;
  }
  return 0;
}
