// SPDX-License-Identifier: MIT
// lazyllm-bench: time-to-first-token and decode speed of dense vs pruned policies, llama-bench
// style, on the CPU reference or the CUDA backend (bench_cuda.cu).
//   lazyllm-bench --synthetic tiny -p 128,256 -n 16 --policy dense,lazy --schedule aggressive -r 3 -o md
//   lazyllm-bench -m ../shared/models/stories260K.bin -p 256 -n 64 --policy dense,lazy --schedule 1:0.5,2:0.5,3:0.5
//   lazyllm-bench --backend cuda --synthetic llama2-7b -p 2048,4096 -n 32 --schedule aggressive -o json
//   lazyllm-bench --backend cuda --synthetic llama2-7b -p 4096 -n 0 --schedule 4:0.5,8:0.5,16:0.5 --floor --breakdown
// Tests: pp<N> = prefill of N tokens (TTFT), tg<M>@d<N> = M decode steps after it (ms/token),
// pp<N>+tg<M> = both (total time). Timing: CUDA events on the backend's stream (cuda), steady
// clock (cpu).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "../examples/common/cli.hpp"
#include "../examples/common/synthetic.hpp"
#include "bench.hpp"
#include "lazyllm/backend/memory_need.hpp"
#include "lazyllm/dist/tp_cpu.hpp"
#include "lazyllm/lazyllm.hpp"
#include "null_backend.hpp"

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

std::string fmt(const char* f, double a) {
  char b[64];
  std::snprintf(b, sizeof b, f, a);
  return b;
}
std::string fmt2(const char* f, double a, double b2) {
  char b[96];
  std::snprintf(b, sizeof b, f, a, b2);
  return b;
}

/// A derived table row (llama-bench style): one of pp / tg / pp+tg of a Measurement.
struct Row {
  const Measurement* m = nullptr;
  std::string test;
  enum Kind { PP, TG, PPTG } kind = PP;
  double ttft = 0, ttft_sd = 0;    // pp, pp+tg
  double mspt = 0, mspt_sd = 0;    // tg, pp+tg
  double total = 0, total_sd = 0;  // the quantity compared with dense: TTFT, ms/token, total ms
  double tps = 0, tps_sd = 0;      // tokens per second: mean and spread over the repetitions
  double fraction = 1.0;
  double speedup = 0;  // vs dense of the same test (0 = no dense run)
  double floor = 0;    // pp only
};

/// The spread of tokens per second over the repetitions (`tokens` per `ms[r]` milliseconds each).
double rate_sd(const std::vector<double>& ms, double tokens) {
  std::vector<double> rate;
  for (double t : ms)
    if (t > 0) rate.push_back(1000.0 * tokens / t);
  return stddev(rate);
}

/// 260K, 3.80M, 6.74B: llama-bench's way of writing a parameter count.
std::string kmb(double n) {
  char b[32];
  if (n >= 1e9)
    std::snprintf(b, sizeof b, "%.2fB", n / 1e9);
  else if (n >= 1e6)
    std::snprintf(b, sizeof b, "%.2fM", n / 1e6);
  else if (n >= 1e3)
    std::snprintf(b, sizeof b, "%.0fK", n / 1e3);
  else
    std::snprintf(b, sizeof b, "%.0f", n);
  return b;
}

std::vector<Row> derive_rows(const std::vector<Measurement>& ms) {
  std::vector<Row> rows;
  for (const auto& m : ms) {
    Row pp;
    pp.m = &m;
    pp.kind = Row::PP;
    pp.test = "pp" + std::to_string(m.n_prompt);
    pp.ttft = pp.total = mean(m.ttft_ms);
    pp.ttft_sd = pp.total_sd = stddev(m.ttft_ms);
    pp.tps = pp.ttft > 0 ? 1000.0 * m.n_prompt / pp.ttft : 0;
    pp.tps_sd = rate_sd(m.ttft_ms, double(m.n_prompt));
    pp.fraction = m.prefill_fraction();
    pp.floor = mean(m.floor_ms);
    rows.push_back(pp);
    if (m.n_gen == 0 || m.decode_ms.empty()) continue;
    Row tg;
    tg.m = &m;
    tg.kind = Row::TG;
    tg.test = "tg" + std::to_string(m.n_gen) + "@d" + std::to_string(m.n_prompt);
    tg.mspt = tg.total = mean(m.decode_ms);
    tg.mspt_sd = tg.total_sd = stddev(m.decode_ms);
    tg.tps = tg.mspt > 0 ? 1000.0 / tg.mspt : 0;
    tg.tps_sd = rate_sd(m.decode_ms, 1.0);
    tg.fraction = m.decode_fraction();
    rows.push_back(tg);
    Row both;
    both.m = &m;
    both.kind = Row::PPTG;
    both.test = "pp" + std::to_string(m.n_prompt) + "+tg" + std::to_string(m.n_gen);
    std::vector<double> tot;
    for (std::size_t r = 0; r < m.ttft_ms.size() && r < m.decode_ms.size(); ++r)
      tot.push_back(m.ttft_ms[r] + m.n_gen * m.decode_ms[r]);
    both.ttft = pp.ttft, both.ttft_sd = pp.ttft_sd, both.mspt = tg.mspt, both.mspt_sd = tg.mspt_sd;
    both.total = mean(tot);
    both.total_sd = stddev(tot);
    both.tps = both.total > 0 ? 1000.0 * (m.n_prompt + m.n_gen) / both.total : 0;
    both.tps_sd = rate_sd(tot, double(m.n_prompt + m.n_gen));
    both.fraction = m.total_fraction();
    rows.push_back(both);
  }
  for (auto& r : rows)
    for (const auto& d : rows)
      if (d.m->policy == "dense" && d.test == r.test && d.m->n_gen == r.m->n_gen && r.total > 0)
        r.speedup = d.total / r.total;
  return rows;
}

struct Report {
  std::string model, backend, command;
  std::int64_t params = 0;
  std::uint64_t size_bytes = 0;  // the weights as this backend holds them (fp32 on the CPU, bf16 on CUDA)
  int threads = 0;               // CPU threads
  nlohmann::json env;
  std::vector<Measurement> ms;
  bool floor = false, breakdown = false;
};

void print_md_header(bool floor) {
  std::printf(
      "| model | size | params | backend | threads | policy | schedule | test | TTFT ms | ms/token | t/s | "
      "token-layers %% | speedup vs dense |%s\n|---|---:|---:|---|---:|---|---|---|---:|---:|---:|---:|---:|%s\n",
      floor ? " GEMM floor ms | TTFT / floor |" : "", floor ? "---:|---:|" : "");
}

void print_md_rows(const Report& rep) {
  const auto rows = derive_rows(rep.ms);
  for (const auto& r : rows) {
    const std::string ttft = r.kind == Row::TG ? "-" : fmt2("%.2f ± %.2f", r.ttft, r.ttft_sd);
    const std::string mspt = r.kind == Row::PP ? "-" : fmt2("%.3f ± %.3f", r.mspt, r.mspt_sd);
    std::string extra;
    if (rep.floor)
      extra = r.kind == Row::PP && r.floor > 0
                  ? " " + fmt("%.2f", r.floor) + " | " + fmt("%.3f", r.ttft / r.floor) + " |"
                  : " - | - |";
    std::printf("| %s | %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %.1f | %s |%s\n", rep.model.c_str(),
                detail::format_bytes(rep.size_bytes).c_str(), kmb(double(rep.params)).c_str(), rep.backend.c_str(),
                rep.threads, r.m->policy.c_str(), r.m->schedule.c_str(), r.test.c_str(), ttft.c_str(), mspt.c_str(),
                fmt2("%.1f ± %.1f", r.tps, r.tps_sd).c_str(), 100.0 * r.fraction,
                r.speedup > 0 ? fmt("%.2fx", r.speedup).c_str() : "-", extra.c_str());
  }
}

void print_md_breakdown(const Report& rep) {
  if (!rep.breakdown) return;
  auto class_table = [&](const char* title, const char* time_col, bool decode) {
    std::printf("\n%s\n\n| policy | schedule | test | %s |", title, time_col);
    for (auto c : kBreakdownClasses) std::printf(" %.*s |", int(c.size()), c.data());
    std::printf("\n|---|---|---|---:|");
    for (std::size_t i = 0; i < kBreakdownClasses.size(); ++i) std::printf("---:|");
    std::printf("\n");
    for (const auto& m : rep.ms) {
      const auto& b = decode ? m.decode_breakdown : m.breakdown;
      if (b.ms.empty()) continue;
      const std::string test = decode ? "tg" + std::to_string(b.passes) + "@d" + std::to_string(m.n_prompt)
                                      : "pp" + std::to_string(m.n_prompt);
      std::printf("| %s | %s | %s | %.3f |", m.policy.c_str(), m.schedule.c_str(), test.c_str(), b.ttft_ms);
      for (std::size_t c = 0; c < kBreakdownClasses.size(); ++c)
        std::printf(" %.3f (%.0f%%) |", b.total(c), b.ttft_ms > 0 ? 100.0 * b.total(c) / b.ttft_ms : 0.0);
      std::printf("\n");
    }
  };
  class_table(
      "Prefill time per op class (ms per prefill; CUDA events at op boundaries, one profiled pass set "
      "after the timed repetitions):",
      "profiled TTFT", false);
  bool any_decode = false;
  for (const auto& m : rep.ms) any_decode = any_decode || !m.decode_breakdown.ms.empty();
  if (any_decode)
    class_table(
        "Decode time per op class (ms per token, after the prompt; the gaps between ops, e.g. the host "
        "preparing a layer, fall in the class of the op that follows):",
        "profiled ms/token", true);
  for (const auto& m : rep.ms) {
    const auto& b = m.breakdown;
    if (b.ms.empty()) continue;
    std::printf("\nPer layer, %s %s pp%d (ms; |C_l| = tokens computed):\n\n| layer | tokens |", m.policy.c_str(),
                m.schedule.c_str(), m.n_prompt);
    for (auto c : kBreakdownClasses) std::printf(" %.*s |", int(c.size()), c.data());
    std::printf(" total |\n|---:|---:|");
    for (std::size_t i = 0; i <= kBreakdownClasses.size(); ++i) std::printf("---:|");
    std::printf("\n");
    for (std::size_t bkt = 0; bkt < b.ms.size(); ++bkt) {
      const int l = int(bkt) - 1;
      double tot = 0;
      for (double v : b.ms[bkt]) tot += v;
      if (l < 0)
        std::printf("| outside | - |");
      else
        std::printf("| %d | %d |", l, std::size_t(l) < m.computed.size() ? m.computed[std::size_t(l)] : 0);
      for (double v : b.ms[bkt]) std::printf(" %.3f |", v);
      std::printf(" %.3f |\n", tot);
    }
  }
}

void print_csv_header() {
  std::printf(
      "model,params,backend,policy,schedule,test,n_prompt,n_gen,reps,ttft_ms,ttft_sd_ms,ms_per_token,"
      "ms_per_token_sd,total_ms,tokens_per_s,token_layers_pct,speedup_vs_dense,floor_ms,ttft_over_floor,"
      "size_bytes,threads,tokens_per_s_sd\n");
}

void print_csv(const Report& rep) {
  auto opt = [](bool have, double v, const char* f) { return have ? fmt(f, v) : std::string(); };
  for (const auto& r : derive_rows(rep.ms)) {
    const bool has_pp = r.kind != Row::TG, has_tg = r.kind != Row::PP, has_floor = r.kind == Row::PP && r.floor > 0;
    // Schedules contain commas: quote the field.
    std::printf("%s,%lld,%s,%s,\"%s\",%s,%d,%d,%zu,%s,%s,%s,%s,%.4f,%.3f,%.3f,%s,%s,%s,%llu,%d,%.3f\n",
                rep.model.c_str(), static_cast<long long>(rep.params), rep.backend.c_str(), r.m->policy.c_str(),
                r.m->schedule.c_str(), r.test.c_str(), r.m->n_prompt, r.kind == Row::PP ? 0 : r.m->n_gen,
                r.m->ttft_ms.size(), opt(has_pp, r.ttft, "%.4f").c_str(), opt(has_pp, r.ttft_sd, "%.4f").c_str(),
                opt(has_tg, r.mspt, "%.4f").c_str(), opt(has_tg, r.mspt_sd, "%.4f").c_str(), r.total, r.tps,
                100.0 * r.fraction, opt(r.speedup > 0, r.speedup, "%.4f").c_str(),
                opt(has_floor, r.floor, "%.4f").c_str(), opt(has_floor, r.ttft / r.floor, "%.4f").c_str(),
                static_cast<unsigned long long>(rep.size_bytes), rep.threads, r.tps_sd);
  }
}

nlohmann::json to_json(const Breakdown& b) {
  nlohmann::json classes = nlohmann::json::array(), layers = nlohmann::json::array(), totals = nlohmann::json::object();
  for (auto c : kBreakdownClasses) classes.push_back(std::string(c));
  for (std::size_t c = 0; c < kBreakdownClasses.size(); ++c) totals[std::string(kBreakdownClasses[c])] = b.total(c);
  for (std::size_t i = 1; i < b.ms.size(); ++i) layers.push_back(b.ms[i]);
  return {{"classes", classes},  {"passes", b.passes},           {"ttft_ms", b.ttft_ms},
          {"totals_ms", totals}, {"outside_layers_ms", b.ms[0]}, {"per_layer_ms", layers}};
}

nlohmann::json report_json(const Report& rep) {
  nlohmann::json j;
  j["schema"] = "lazyllm-bench/1";
  j["peer"] = "lazyllm";
  j["model"] = rep.model;
  j["params"] = rep.params;
  j["size_bytes"] = rep.size_bytes;
  j["threads"] = rep.threads;
  j["backend"] = rep.backend;
  j["command"] = rep.command;
  j["env"] = rep.env;
  j["measurements"] = nlohmann::json::array();
  for (const auto& m : rep.ms) {
    nlohmann::json e = {{"policy", m.policy},
                        {"schedule", m.schedule},
                        {"n_prompt", m.n_prompt},
                        {"n_gen", m.n_gen},
                        {"ttft_ms", m.ttft_ms},
                        {"ttft_ms_mean", mean(m.ttft_ms)},
                        {"ttft_ms_sd", stddev(m.ttft_ms)},
                        {"decode_ms_per_token", m.decode_ms},
                        {"decode_ms_per_token_mean", mean(m.decode_ms)},
                        {"prefill_token_layer_fraction", m.prefill_fraction()},
                        {"decode_token_layer_fraction", m.decode_fraction()},
                        {"computed_per_layer", m.computed},
                        {"sm_clock_mhz", m.sm_clock_mhz}};
    if (!m.floor_ms.empty()) {
      e["floor_ms"] = m.floor_ms;
      e["floor_ms_mean"] = mean(m.floor_ms);
      e["ttft_over_floor"] = mean(m.ttft_ms) / mean(m.floor_ms);
    }
    if (!m.breakdown.ms.empty()) e["breakdown"] = to_json(m.breakdown);
    if (!m.decode_breakdown.ms.empty()) e["decode_breakdown"] = to_json(m.decode_breakdown);
    j["measurements"].push_back(e);
  }
  j["rows"] = nlohmann::json::array();
  for (const auto& r : derive_rows(rep.ms)) {
    nlohmann::json e = {{"policy", r.m->policy},
                        {"schedule", r.m->schedule},
                        {"test", r.test},
                        {"total_ms", r.total},
                        {"total_ms_sd", r.total_sd},
                        {"tokens_per_s", r.tps},
                        {"token_layer_fraction", r.fraction}};
    if (r.kind != Row::TG) e["ttft_ms"] = r.ttft;
    if (r.kind != Row::PP) e["ms_per_token"] = r.mspt;
    if (r.speedup > 0) e["speedup_vs_dense"] = r.speedup;
    if (r.kind == Row::PP && r.floor > 0) e["ttft_over_floor"] = r.ttft / r.floor;
    e["tokens_per_s_sd"] = r.tps_sd;
    j["rows"].push_back(e);
  }
  return j;
}

/// -o jsonl: one flat record per table row (every field a scalar), for jq and pandas.
void print_jsonl(const Report& rep) {
  for (const auto& r : derive_rows(rep.ms)) {
    nlohmann::json e = {{"model", rep.model},
                        {"size_bytes", rep.size_bytes},
                        {"params", rep.params},
                        {"backend", rep.backend},
                        {"threads", rep.threads},
                        {"policy", r.m->policy},
                        {"schedule", r.m->schedule},
                        {"test", r.test},
                        {"n_prompt", r.m->n_prompt},
                        {"n_gen", r.kind == Row::PP ? 0 : r.m->n_gen},
                        {"reps", r.m->ttft_ms.size()},
                        {"total_ms", r.total},
                        {"total_ms_sd", r.total_sd},
                        {"tokens_per_s", r.tps},
                        {"tokens_per_s_sd", r.tps_sd},
                        {"token_layer_fraction", r.fraction},
                        {"commit", rep.env.value("commit", "")},
                        {"date", rep.env.value("date", "")}};
    e["ttft_ms"] = r.kind != Row::TG ? nlohmann::json(r.ttft) : nlohmann::json(nullptr);
    e["ms_per_token"] = r.kind != Row::PP ? nlohmann::json(r.mspt) : nlohmann::json(nullptr);
    e["speedup_vs_dense"] = r.speedup > 0 ? nlohmann::json(r.speedup) : nlohmann::json(nullptr);
    std::cout << e.dump() << '\n';
  }
}

}  // namespace

namespace lazyllm::bench {
std::vector<Measurement> run_cpu(const ModelWeights& w, const std::vector<AnyPolicy>& pols, const Plan& plan) {
  if (plan.tp > 1) {  // every rank runs the same measurements on its shard; rank 0's times are reported
    std::vector<Measurement> out;
    run_tp(w, plan.tp, [&](CpuRank& r) {
      CpuBackend backend = r.backend();
      HostTimer timer;
      Plan p = plan;
      p.progress = plan.progress && r.leader();
      auto ms = run_policies(backend, pols, p, timer);
      if (r.leader()) out = std::move(ms);
    });
    return out;
  }
  CpuBackend backend(w);
  HostTimer timer;
  return run_policies(backend, pols, plan, timer);
}
std::vector<Measurement> run_host(const RuntimeConfig& c, const std::vector<AnyPolicy>& pols, const Plan& plan) {
  NullBackend backend(c);
  HostTimer timer;
  return run_policies(backend, pols, plan, timer);
}
}  // namespace lazyllm::bench

namespace {

const char* kUsage =
    "usage: lazyllm-bench [--backend cpu|cuda|host] [-m PATH]... | [--synthetic SHAPE]\n"
    "                     [-p 128,256] [-n 16,...] [-r 3] [-t N] [--tp N] [--policy dense,lazy,static,random,window]\n"
    "                     [--schedule S]... [-o md|json|jsonl|csv] [--progress] [--floor] [--breakdown]\n"
    "                     [--no-graphs] [--graph-chunk N] [--no-wgmma] [--device-select]\n"
    "  -m PATH        a model file or HF directory (load_model); repeat it (or separate with ',') for several;\n"
    "                 prompts are seeded made-up token ids\n"
    "  --synthetic S  random weights of a real shape (default: tiny): llama2-7b, llama2-13b, llama3.1-8b,\n"
    "                 llama3.1-70b, llama3.2-1b, llama3.2-3b, qwen2.5-7b, mistral-7b, tiny\n"
    "  -p LIST        prompt lengths (pp tests); -n LIST decode steps after each (tg tests; 0 = none);\n"
    "                 every -p with every -n, every policy with every schedule, as llama-bench crosses them\n"
    "  -r N           timed repetitions after one warm-up (the table shows mean +- standard deviation)\n"
    "  -t N           CPU threads (default: $LAZYLLM_THREADS, else every core)\n"
    "  --tp N         (cpu) tensor parallel over N ranks, one thread each with 1/N of the heads and FFN\n"
    "                 (over GPUs: lazyllm-bench-tp-cuda)\n"
    "  --schedule S   a preset (gentle, default, aggressive) or LAYER:PERCENTILE,... ; repeatable\n"
    "  -o FORMAT      md (default: a table, then 'build: <commit>'), json (everything), jsonl (one flat\n"
    "                 record per table row), csv\n"
    "  --floor        (cuda) also time the model's cuBLASLt GEMMs alone for the same per-layer token\n"
    "                 counts, and report TTFT / floor\n"
    "  --breakdown    (cuda) prefill time per op class and layer (one more set of profiled prefills)\n"
    "  --no-graphs    (cuda) launch dense decode steps kernel by kernel instead of as CUDA graphs\n"
    "  --graph-chunk N (cuda) layers per decode graph (default 4); --breakdown's profiled passes use no graphs\n"
    "  --no-wgmma     (cuda) prefill attention with the mma.sync kernel on Hopper too (A/B runs)\n"
    "  --device-select (cuda) LazyLLM's percentile rule on the GPU, only keep flags read back\n"
    "                 (SelectingCudaBackend; off: the policy selects on the host)\n"
    "  --backend host the pipeline's host bookkeeping alone (a backend that computes nothing; no\n"
    "                 weights are made): what the host adds per prefill and per token\n"
    "  LAZYLLM_COMMIT in the environment overrides the commit recorded in the output\n"
    "Exit codes: 0 ok, 1 input or runtime error (a missing or corrupt model), 2 usage error.\n";

using cli::UsageError;

std::string model_name_of(const std::string& model_path) {
  // "stories260K" for .../stories260K.bin, "Llama-2-7b-hf" for .../Llama-2-7b-hf/
  std::filesystem::path mp = std::filesystem::path(model_path).lexically_normal();
  if (mp.filename().empty()) mp = mp.parent_path();
  return (std::filesystem::is_directory(mp) ? mp.filename() : mp.stem()).string();
}

int run(int argc, char** argv) {
  std::string shape, prompts = "128,256", gens, policies = "dense,lazy", out = "md", backend = "cpu";
  std::vector<std::string> models, schedules;
  Plan plan;
  int threads = 0;
  std::string command = "lazyllm-bench";
  for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
  for (cli::Args args(argc, argv); args.next();) {
    const std::string a = args.flag();
    auto val = [&] { return args.value(); };
    if (a == "--synthetic")
      shape = val();
    else if (a == "-m") {
      for (const auto& m : split(val(), ',')) models.push_back(m);
    } else if (a == "-p")
      prompts = val();
    else if (a == "-n")
      gens = val();
    else if (a == "-r")
      plan.reps = int(cli::parse_int(a, val(), 1, 1000000));
    else if (a == "-t" || a == "--threads")
      threads = int(cli::parse_int(a, val(), 1, 4096));
    else if (a == "--policy")
      policies = val();
    else if (a == "--schedule")
      schedules.push_back(val());
    else if (a == "--backend")
      backend = val();
    else if (a == "-o")
      out = val();
    else if (a == "--progress")
      plan.progress = true;
    else if (a == "--tp")
      plan.tp = int(cli::parse_int(a, val(), 1, 1024));
    else if (a == "--floor")
      plan.floor = true;
    else if (a == "--breakdown")
      plan.breakdown = true;
    else if (a == "--no-graphs")
      plan.graphs = false;
    else if (a == "--graph-chunk")
      plan.graph_chunk = int(cli::parse_int(a, val(), 1, 1024));
    else if (a == "--no-wgmma")
      plan.wgmma = false;
    else if (a == "--device-select")
      plan.device_select = true;
    else if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else
      throw UsageError("unknown option '" + a + "' (see -h)");
  }
  if (backend != "cpu" && backend != "cuda" && backend != "host")
    throw UsageError("--backend must be cpu, cuda or host");
  if (out != "md" && out != "json" && out != "jsonl" && out != "csv")
    throw UsageError("-o must be md, json, jsonl or csv");
  if ((plan.floor || plan.breakdown) && backend != "cuda")
    throw UsageError("--floor and --breakdown time CUDA work: they need --backend cuda");
  if ((!plan.graphs || plan.graph_chunk > 0) && backend != "cuda")
    throw UsageError("--no-graphs and --graph-chunk set up CUDA graphs: they need --backend cuda");
  if (!plan.wgmma && backend != "cuda") throw UsageError("--no-wgmma picks a CUDA kernel: it needs --backend cuda");
  if (plan.device_select && backend != "cuda")
    throw UsageError("--device-select selects on the GPU: it needs --backend cuda");
  if (plan.tp > 1 && backend != "cpu")
    throw UsageError("--tp runs tensor parallel on the CPU backend (over GPUs: lazyllm-bench-tp-cuda)");
  if (schedules.empty()) schedules.push_back("aggressive");
  for (const auto& ps : split(prompts, ',')) plan.prompts.push_back(int(cli::parse_int("-p", ps, 1)));
  if (plan.prompts.empty()) throw UsageError("-p: no prompt lengths");
  std::vector<int> n_gens;
  for (const auto& g : split(gens.empty() ? "16" : gens, ',')) n_gens.push_back(int(cli::parse_int("-n", g, 0)));
  if (n_gens.empty()) throw UsageError("-n: no decode lengths");
  if (!models.empty() && !shape.empty()) throw UsageError("-m and --synthetic: give one of them");
  if (models.empty() && shape.empty()) shape = "tiny";
  if (threads > 0) setenv("LAZYLLM_THREADS", std::to_string(threads).c_str(), 1);
  if (!shape.empty()) {
    try {
      (void)synthetic_config(shape);
    } catch (const InvalidArgument& e) {
      throw UsageError(e.what());
    }
  }

  std::vector<Report> reports;
  const std::vector<std::string> sources = models.empty() ? std::vector<std::string>{""} : models;
  for (const auto& model_path : sources) {
    const auto t0 = Clock::now();
    // A model file is loaded first (its shape decides the presets and the context check).
    std::optional<ModelWeights> loaded;
    if (!model_path.empty()) loaded = load_model(model_path, LoadOptions{.keep_source_dtype = backend != "cpu"});
    const RuntimeConfig c = loaded ? loaded->config : synthetic_config(shape);
    int max_p = 0, max_n = 0;
    for (int p : plan.prompts) max_p = std::max(max_p, p);
    for (int n : n_gens) max_n = std::max(max_n, n);
    if (std::int64_t(max_p) + max_n + 1 > c.max_seq_len)
      throw UsageError("-p " + std::to_string(max_p) + " plus -n " + std::to_string(max_n) +
                       " does not fit the model's context of " + std::to_string(c.max_seq_len) + " tokens");
    std::vector<AnyPolicy> pols;
    for (const auto& pname : split(policies, ',')) {
      if (!policy::is_policy_name(pname))
        throw UsageError("--policy '" + pname + "' is not one of " + policy::policy_names());
      for (const auto& sname : pname == "dense" ? std::vector<std::string>{"none"} : schedules) {
        try {
          const Schedule sch = sname.find(':') == std::string::npos ? policy::preset_schedule(sname, c.n_layers)
                                                                    : Schedule::parse(sname);
          sch.validate_for(c.n_layers);
          pols.push_back(make_policy(pname, sch));
        } catch (const InvalidArgument& e) {
          throw UsageError("--schedule '" + sname + "': " + e.what());
        }
      }
    }
    std::fprintf(stderr, "lazyllm-bench: %s %s (%s params), backend %s\n", loaded ? "model" : "synthetic",
                 loaded ? model_path.c_str() : shape.c_str(), kmb(double(c.n_params())).c_str(), backend.c_str());
    // --backend host needs the shape only: no weights are generated.
    const ModelWeights w = loaded ? std::move(*loaded) : backend == "host" ? ModelWeights{} : synthetic_weights(c, 1);
    if (backend != "host")
      std::fprintf(stderr, "  weights %s in %.1f s\n", loaded ? "loaded" : "generated",
                   std::chrono::duration<double>(Clock::now() - t0).count());
    Report rep;
    rep.model = loaded ? model_name_of(model_path) : shape;
    rep.params = c.n_params();
    rep.size_bytes = backend == "cuda"   ? gpu_weight_bytes(c, 2)
                     : backend == "host" ? 0
                                         : cpu_memory_need(c, 0, 0).weights;
    rep.threads = detail::cpu_threads();
    rep.backend = plan.tp > 1 ? backend + ", tp " + std::to_string(plan.tp) : backend;
    rep.command = command;
    rep.floor = plan.floor;
    rep.breakdown = plan.breakdown;
    for (int n_gen : n_gens) {  // -p x -n crossed: every prompt length with every decode length
      Plan p = plan;
      p.n_gen = n_gen;
      auto ms = backend == "cuda"   ? run_cuda(w, pols, p)
                : backend == "host" ? run_host(c, pols, p)
                                    : run_cpu(w, pols, p);
      rep.ms.insert(rep.ms.end(), std::make_move_iterator(ms.begin()), std::make_move_iterator(ms.end()));
    }
    rep.env = {
        {"date", utc_now()},
        {"commit", git_commit()},
        {"host_threads", detail::cpu_threads()},
        {"compiler", __VERSION__},
        {"reps", plan.reps},
        {"decode_graphs", backend == "cuda" && plan.graphs},
        {"decode_graph_chunk", plan.graph_chunk},
        {"warmup", 1},
        {"timing", backend == "cuda"   ? "cudaEvent on the backend stream: prompt in -> first logits on the host"
                   : backend == "host" ? "steady_clock: the pipeline's host work alone (NullBackend computes nothing)"
                                       : "steady_clock: prompt in -> first logits"}};
    if (backend == "cuda") {
      rep.env["gpu"] = cuda_device_info();
      // prefill attention at head_dim 128 ran the wgmma kernel: the GPU runs it, no --no-wgmma
      rep.env["wgmma_attention"] = plan.wgmma && rep.env["gpu"].value("wgmma_attention_kernel", false);
      rep.env["device_select"] = plan.device_select;
    }
    reports.push_back(std::move(rep));
  }
  if (out == "json") {
    if (reports.size() == 1) {
      std::cout << report_json(reports.front()).dump(2) << '\n';
    } else {  // several -m: one report per model
      nlohmann::json all = nlohmann::json::array();
      for (const auto& r : reports) all.push_back(report_json(r));
      std::cout << all.dump(2) << '\n';
    }
  } else if (out == "jsonl") {
    for (const auto& r : reports) print_jsonl(r);
  } else if (out == "csv") {
    print_csv_header();
    for (const auto& r : reports) print_csv(r);
  } else {
    print_md_header(plan.floor);
    for (const auto& r : reports) print_md_rows(r);
    for (const auto& r : reports) print_md_breakdown(r);
    std::printf("\nbuild: %s\n", reports.front().env.value("commit", "unknown").c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return lazyllm::cli::run_main("lazyllm-bench", [&] { return run(argc, argv); });
}
