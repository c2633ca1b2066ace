// SPDX-License-Identifier: MIT
// lazyllm-bench: time-to-first-token and decode speed of dense vs pruned policies, llama-bench
// style. This build measures the CPU reference backend; the CUDA backend plugs into the same loop.
//   lazyllm-bench --synthetic tiny -p 128,256 -n 16 --policy dense,lazy --schedule aggressive -r 3 -o md
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "lazyllm/lazyllm.hpp"

namespace {
using namespace lazyllm;
using Clock = std::chrono::steady_clock;

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

ModelWeights synthetic_weights(const RuntimeConfig& c, unsigned seed) {
  ModelWeights w;
  w.config = c;
  w.source = "synthetic";
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto tensor = [&](std::size_t n, float scale, float mean) {
    auto b = std::make_shared<std::vector<float>>(n);
    for (auto& v : *b) v = mean + scale * nd(rng);
    w.storage.push_back(b);
    return b->data();
  };
  const std::size_t d = c.dim, h = c.hidden_dim, kv = c.kv_dim(), v = c.vocab_size;
  const float s = 1.0f / std::sqrt(float(d));
  w.token_embedding = tensor(v * d, 1.0f, 0.0f);
  for (int l = 0; l < c.n_layers; ++l)
    w.layers.push_back({tensor(d, 0.0f, 1.0f), tensor(d * d, s, 0), tensor(kv * d, s, 0), tensor(kv * d, s, 0),
                        tensor(d * d, s, 0), tensor(d, 0.0f, 1.0f), tensor(h * d, s, 0), tensor(d * h, 1.0f / std::sqrt(float(h)), 0),
                        tensor(h * d, s, 0)});
  w.final_norm = tensor(d, 0.0f, 1.0f);
  w.classifier = tensor(v * d, s, 0.0f);
  return w;
}

struct Row {
  std::string policy, schedule, test;
  std::vector<double> ms;  // per repetition
  double fraction = 1.0;   // token-layers computed / dense
};

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

template <class Policy>
void bench_one(const ModelWeights& w, const Policy& pol, int n_prompt, int n_gen, int reps, Row& pp, Row& tg) {
  std::vector<std::int32_t> prompt(static_cast<std::size_t>(n_prompt));
  std::mt19937 rng(123);
  for (auto& t : prompt) t = 3 + std::int32_t(rng() % std::uint32_t(w.config.vocab_size - 3));
  for (int r = -1; r < reps; ++r) {  // r = -1 is the warm-up
    Pipeline<RuntimeConfig, Policy, ContiguousLayout, CpuBackend> pipe(CpuBackend{w}, pol, {}, n_prompt + n_gen + 1);
    auto t0 = Clock::now();
    auto logits = pipe.prefill(prompt);
    const double ttft = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    t0 = Clock::now();
    for (int i = 0; i < n_gen; ++i) logits = pipe.decode(argmax(logits));
    const double dec = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (r < 0) continue;
    pp.ms.push_back(ttft);
    if (n_gen) tg.ms.push_back(dec / n_gen);
    pp.fraction = pipe.stats().prefill_fraction();
    tg.fraction = pipe.stats().total_dense_token_layers()
                      ? double(pipe.stats().total_token_layers()) / double(pipe.stats().total_dense_token_layers())
                      : 1.0;
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string shape = "tiny", prompts = "128,256", policies = "dense,lazy", out = "md";
    std::vector<std::string> schedules;
    int n_gen = 16, reps = 3;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto val = [&]() -> std::string {
        if (i + 1 >= argc) throw InvalidArgument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--synthetic") shape = val();
      else if (a == "-p") prompts = val();
      else if (a == "-n") n_gen = std::stoi(val());
      else if (a == "-r") reps = std::stoi(val());
      else if (a == "--policy") policies = val();
      else if (a == "--schedule") schedules.push_back(val());
      else if (a == "-o") out = val();
      else if (a == "-h" || a == "--help") {
        std::puts("usage: lazyllm-bench [--synthetic tiny|llama2-7b|llama2-13b] [-p 128,256] [-n 16] [-r 3]\n"
                  "                     [--policy dense,lazy,static,random] [--schedule S]... [-o md|json]");
        return 0;
      } else throw InvalidArgument("unknown option '" + a + "'");
    }
    if (schedules.empty()) schedules.push_back("aggressive");
    const RuntimeConfig c = synthetic_config(shape);
    std::fprintf(stderr, "lazyllm-bench: building synthetic %s (%.1fM params) on the CPU backend, %d threads\n",
                 shape.c_str(), double(c.n_params()) / 1e6, detail::cpu_threads());
    const ModelWeights w = synthetic_weights(c, 1);
    std::vector<Row> rows;
    for (const auto& ps : split(prompts, ',')) {
      const int np = std::stoi(ps);
      double dense_ms = 0;
      for (const auto& pname : split(policies, ',')) {
        const bool dense = pname == "dense";
        for (const auto& sname : dense ? std::vector<std::string>{"none"} : schedules) {
          const Schedule s = sname.find(':') == std::string::npos ? policy::preset_schedule(sname, c.n_layers) : Schedule::parse(sname);
          Row pp{pname, s.to_string(), "pp" + ps, {}, 1.0}, tg{pname, s.to_string(), "tg" + std::to_string(n_gen), {}, 1.0};
          std::fprintf(stderr, "  %s %s pp%d ...\n", pname.c_str(), s.to_string().c_str(), np);
          if (pname == "dense") bench_one(w, policy::Dense{}, np, n_gen, reps, pp, tg);
          else if (pname == "lazy") bench_one(w, policy::Lazy(s), np, n_gen, reps, pp, tg);
          else if (pname == "static") bench_one(w, policy::Static(s), np, n_gen, reps, pp, tg);
          else if (pname == "random") bench_one(w, policy::RandomDrop(s, 1), np, n_gen, reps, pp, tg);
          else throw InvalidArgument("--policy: unknown '" + pname + "'");
          if (dense) dense_ms = mean(pp.ms);
          rows.push_back(pp);
          if (n_gen) rows.push_back(tg);
        }
      }
      (void)dense_ms;
    }
    if (out == "json") {
      nlohmann::json j;
      j["model"] = shape;
      j["backend"] = "cpu";
      j["threads"] = detail::cpu_threads();
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
        std::printf("| %s | cpu | %s | %s | %s | %.2f ± %.2f | %.1f | %.1f | %.2fx |\n", shape.c_str(), r.policy.c_str(),
                    r.schedule.c_str(), r.test.c_str(), mean(r.ms), stddev(r.ms), 1000.0 * tokens / mean(r.ms),
                    100.0 * r.fraction, dense > 0 ? dense / mean(r.ms) : 0.0);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lazyllm-bench: error: %s\n", e.what());
    return 2;
  }
}
