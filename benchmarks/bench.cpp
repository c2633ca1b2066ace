// SPDX-License-Identifier: MIT
// lazyllm-bench: time-to-first-token and decode speed of dense vs pruned policies, llama-bench
// style, on the CPU reference or the CUDA backend (bench_cuda.cu).
//   lazyllm-bench --synthetic tiny -p 128,256 -n 16 --policy dense,lazy --schedule aggressive -r 3 -o md
//   lazyllm-bench --backend cuda --synthetic llama2-7b -p 2048,4096 -n 32 --schedule aggressive -o json
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "bench.hpp"
#include "lazyllm/lazyllm.hpp"

namespace {
using namespace lazyllm;
using namespace lazyllm::bench;

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t b = 0;
  while (b <= s.size()) {
    const auto e = std::min(s.find(sep, b), s.size());
    if (e > b) out.push_back(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

RuntimeConfig synthetic_config(const std::string& name) {
  RuntimeConfig c;
  c.vocab_size = 32000;
  c.max_seq_len = 16384;
  c.rope_style = RopeStyle::RotateHalf;
  if (name == "llama2-7b") c.dim = 4096, c.hidden_dim = 11008, c.n_layers = 32, c.n_heads = 32, c.n_kv_heads = 32;
  else if (name == "llama2-13b") c.dim = 5120, c.hidden_dim = 13824, c.n_layers = 40, c.n_heads = 40, c.n_kv_heads = 40;
  else if (name == "tiny") c.dim = 256, c.hidden_dim = 688, c.n_layers = 8, c.n_heads = 4, c.n_kv_heads = 4, c.vocab_size = 1024;
  else throw InvalidArgument("--synthetic: unknown shape '" + name + "' (llama2-7b, llama2-13b, tiny)");
  return c;
}

/// Random weights of the exact shape, for timing only: uniform values (scaled like a trained
/// model's), one set of layer weights shared by every layer to keep host memory and start-up small.
ModelWeights synthetic_weights(const RuntimeConfig& c, std::uint64_t seed) {
  ModelWeights w;
  w.config = c;
  w.source = "synthetic";
  std::uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  auto tensor = [&](std::size_t n, float scale, float mean) {
    auto b = std::make_shared<std::vector<float>>(n);
    for (auto& v : *b) {
      state ^= state << 13, state ^= state >> 7, state ^= state << 17;  // xorshift64
      v = mean + scale * (float(state >> 40) * 0x1.0p-24f * 2.0f - 1.0f);
    }
    w.storage.push_back(b);
    return b->data();
  };
  const std::size_t d = c.dim, h = c.hidden_dim, kv = c.kv_dim(), v = c.vocab_size;
  const float s = std::sqrt(3.0f / float(d)), sh = std::sqrt(3.0f / float(h));  // unit-variance outputs
  w.token_embedding = tensor(v * d, 1.0f, 0.0f);
  const LayerWeights shared{tensor(d, 0.0f, 1.0f), tensor(d * d, s, 0), tensor(kv * d, s, 0), tensor(kv * d, s, 0),
                            tensor(d * d, s, 0),   tensor(d, 0.0f, 1.0f), tensor(h * d, s, 0), tensor(d * h, sh, 0),
                            tensor(h * d, s, 0)};
  w.layers.assign(std::size_t(c.n_layers), shared);
  w.final_norm = tensor(d, 0.0f, 1.0f);
  w.classifier = tensor(v * d, s, 0.0f);
  return w;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / double(v.size());
}
double stddev(const std::vector<double>& v) {
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return v.size() > 1 ? std::sqrt(s / double(v.size() - 1)) : 0.0;
}

}  // namespace

namespace lazyllm::bench {
std::vector<Row> run_cpu(const ModelWeights& w, const AnyPolicy& p, const Plan& plan) {
  return std::visit([&](const auto& pol) { return run_policy(CpuBackend{w}, pol, plan); }, p);
}
}  // namespace lazyllm::bench

int main(int argc, char** argv) {
  try {
    std::string shape = "tiny", prompts = "128,256", policies = "dense,lazy", out = "md", backend = "cpu";
    std::vector<std::string> schedules;
    Plan plan;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto val = [&]() -> std::string {
        if (i + 1 >= argc) throw InvalidArgument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--synthetic") shape = val();
      else if (a == "-p") prompts = val();
      else if (a == "-n") plan.n_gen = std::stoi(val());
      else if (a == "-r") plan.reps = std::stoi(val());
      else if (a == "--policy") policies = val();
      else if (a == "--schedule") schedules.push_back(val());
      else if (a == "--backend") backend = val();
      else if (a == "-o") out = val();
      else if (a == "--progress") plan.progress = true;
      else if (a == "-h" || a == "--help") {
        std::puts("usage: lazyllm-bench [--backend cpu|cuda] [--synthetic tiny|llama2-7b|llama2-13b] [-p 128,256]\n"
                  "                     [-n 16] [-r 3] [--policy dense,lazy,static,random] [--schedule S]...\n"
                  "                     [-o md|json] [--progress]");
        return 0;
      } else throw InvalidArgument("unknown option '" + a + "'");
    }
    if (backend != "cpu" && backend != "cuda") throw InvalidArgument("--backend must be cpu or cuda");
    if (schedules.empty()) schedules.push_back("aggressive");
    for (const auto& ps : split(prompts, ',')) plan.prompts.push_back(std::stoi(ps));
    const RuntimeConfig c = synthetic_config(shape);
    std::fprintf(stderr, "lazyllm-bench: synthetic %s (%.2fB params), backend %s\n", shape.c_str(),
                 double(c.n_params()) / 1e9, backend.c_str());
    const auto t0 = Clock::now();
    const ModelWeights w = synthetic_weights(c, 1);
    std::fprintf(stderr, "  weights generated in %.1f s\n", std::chrono::duration<double>(Clock::now() - t0).count());
    std::vector<Row> rows;
    for (const auto& pname : split(policies, ',')) {
      for (const auto& sname : pname == "dense" ? std::vector<std::string>{"none"} : schedules) {
        const Schedule s = sname.find(':') == std::string::npos ? policy::preset_schedule(sname, c.n_layers) : Schedule::parse(sname);
        const AnyPolicy pol = make_policy(pname, s);
        auto r = backend == "cuda" ? run_cuda(w, pol, plan) : run_cpu(w, pol, plan);
        rows.insert(rows.end(), r.begin(), r.end());
      }
    }
    if (out == "json") {
      nlohmann::json j;
      j["model"] = shape;
      j["params"] = c.n_params();
      j["backend"] = backend;
      j["device"] = backend == "cuda" ? device_name() : std::string("cpu x") + std::to_string(detail::cpu_threads());
      for (const auto& r : rows)
        j["results"].push_back({{"policy", r.policy}, {"schedule", r.schedule}, {"test", r.test}, {"ms", r.ms},
                                {"mean_ms", mean(r.ms)}, {"sd_ms", stddev(r.ms)}, {"token_layer_fraction", r.fraction}});
      std::cout << j.dump(2) << '\n';
    } else {
      std::printf("| model | backend | policy | schedule | test | ms (mean ± sd) | t/s | token-layers %% | speedup vs dense |\n"
                  "|---|---|---|---|---|---|---|---|---|\n");
      for (const auto& r : rows) {
        double dense = 0;
        for (const auto& d : rows)
          if (d.policy == "dense" && d.test == r.test) dense = mean(d.ms);
        const bool is_pp = r.test.rfind("pp", 0) == 0;
        const double tokens = is_pp ? std::stod(r.test.substr(2)) : 1.0;
        std::printf("| %s | %s | %s | %s | %s | %.2f ± %.2f | %.1f | %.1f | %.2fx |\n", shape.c_str(), backend.c_str(),
                    r.policy.c_str(), r.schedule.c_str(), r.test.c_str(), mean(r.ms), stddev(r.ms),
                    1000.0 * tokens / mean(r.ms), 100.0 * r.fraction, dense > 0 ? dense / mean(r.ms) : 0.0);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lazyllm-bench: error: %s\n", e.what());
    return 2;
  }
}
