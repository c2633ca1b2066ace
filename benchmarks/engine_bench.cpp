// SPDX-License-Identifier: MIT
// lazyllm-bench-engine: the serving scenario of the engine core. B requests arrive at once, each a
// P-token prompt and G output tokens; one Engine serves them all (continuous batching over one
// model and one block pool), dense and with LazyLLM. Reports time to first token per request
// (mean, p90), prompt and output tokens/s, total time and the peak bytes the block pool held.
//
//   lazyllm-bench-engine --synthetic tiny -b 1,4 -p 128 -n 8
//   lazyllm-bench-engine --backend cuda --synthetic llama2-7b -b 1,4,16,32 -p 4096 -n 128
//       --policy dense,lazy --schedule 4:0.5,8:0.5,16:0.5 -o json --out engine.json
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../examples/common/cli.hpp"
#include "../examples/common/synthetic.hpp"
#include "bench_meta.hpp"
#include "engine_bench.hpp"
#include "lazyllm/backend/cpu/cpu_backend.hpp"

namespace lazyllm::bench {

std::vector<ServeResult> serve_cpu(const ModelWeights& w, const std::vector<ServeCase>& cases, const EngineRun& run) {
  auto model = std::make_shared<const CpuModel>(w);
  std::vector<ServeResult> out;
  for (const auto& c : cases) {
    EngineOptions o;
    o.block_tokens = run.block_tokens;
    o.max_step_tokens = run.max_step_tokens;
    const auto& mc = model->config();
    const std::int64_t kv_token_bytes = 2 * std::int64_t(mc.kv_dim()) * 4;
    // Default: room for every request's dense K/V at its full length, plus 10 %.
    o.pool_bytes = run.pool_bytes > 0 ? run.pool_bytes
                                      : std::int64_t(c.requests) * (c.prompt + c.gen + run.block_tokens) * mc.n_layers *
                                            kv_token_bytes * 11 / 10;
    Engine<CpuBackend> eng(model, o);
    out.push_back(serve(eng, c));
  }
  return out;
}

}  // namespace lazyllm::bench

namespace {
using namespace lazyllm;
using namespace lazyllm::bench;

std::vector<int> int_list(const std::string& flag, const std::string& v, int lo) {
  std::vector<int> out;
  std::size_t b = 0;
  while (b <= v.size()) {
    const std::size_t e = std::min(v.find(',', b), v.size());
    out.push_back(int(cli::parse_int(flag, v.substr(b, e - b), lo)));
    b = e + 1;
  }
  return out;
}

std::string fmt(const char* f, double a) {
  char b[64];
  std::snprintf(b, sizeof b, f, a);
  return b;
}

const char* kUsage =
    "usage: lazyllm-bench-engine [--backend cpu|cuda] [--synthetic SHAPE] [-b LIST] [-p N]\n"
    "                            [-n N] [--policy LIST] [--schedule S] [--pool-gb X] [--block-tokens N]\n"
    "                            [--max-step-tokens N] [--batched-attention on|off] [-o md|json] [--out FILE]\n"
    "                            [--json FILE] [--progress]\n"
    "The engine's serving scenario: B requests (each of -b's values in turn) arrive at once, each a prompt of\n"
    "-p random tokens and -n greedy output tokens, served by one Engine with continuous batching.\n"
    "  --backend B        cpu (default) or cuda\n"
    "  --synthetic S      random weights of a real shape (default: tiny): llama2-7b, llama2-13b,\n"
    "                     llama3.1-8b, llama3.1-70b, llama3.2-1b, llama3.2-3b, qwen2.5-7b, mistral-7b, tiny\n"
    "  -b LIST            concurrent requests, e.g. 1,4,16,32 (default 1,4)\n"
    "  -p N               prompt tokens per request (default 128)\n"
    "  -n N               output tokens per request (default 8)\n"
    "  --policy LIST      dense,lazy (default; also static, random, window)\n"
    "  --schedule S       the pruning schedule of the other policies (default: aggressive)\n"
    "  --pool-gb X        the block pool's size (default: every request's dense K/V on the CPU; on a GPU\n"
    "                     the free memory after the weights, less 4 GiB for activations)\n"
    "  --block-tokens N   K/V tokens per block (default 16)\n"
    "  --max-step-tokens N  the engine's token budget per step (default: none)\n"
    "  --batched-attention on|off  cuda: the decode-shaped sequences' attention in one launch per layer\n"
    "                     (on) or one launch per sequence (off, the default)\n"
    "  -o md|json         output format (default md); --out FILE writes it there\n"
    "  --json FILE        also the JSON report, into FILE\n"
    "Requests that do not fit the pool wait (deferrals) or, when running ones outgrow it, are stopped and\n"
    "started again later (preemptions); both are reported.\n";

}  // namespace

int main(int argc, char** argv) {
  return cli::run_main("lazyllm-bench-engine", [&]() -> int {
    std::string backend = "cpu", shape = "tiny", policies = "dense,lazy", schedule_text = "aggressive", fmt_out = "md",
                out_file, json_file;
    std::vector<int> batches{1, 4};
    int prompt = 128, gen = 8;
    EngineRun run;
    double pool_gb = 0;
    std::string command = "lazyllm-bench-engine";
    for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
    for (cli::Args args(argc, argv); args.next();) {
      const std::string& a = args.flag();
      if (a == "-h" || a == "--help") {
        std::fputs(kUsage, stdout);
        return 0;
      }
      if (a == "--backend")
        backend = args.value();
      else if (a == "--synthetic")
        shape = args.value();
      else if (a == "-b")
        batches = int_list(a, args.value(), 1);
      else if (a == "-p")
        prompt = int(cli::parse_int(a, args.value(), 1));
      else if (a == "-n")
        gen = int(cli::parse_int(a, args.value(), 1));
      else if (a == "--policy")
        policies = args.value();
      else if (a == "--schedule")
        schedule_text = args.value();
      else if (a == "--pool-gb") {
        const std::string v = args.value();
        char* end = nullptr;
        pool_gb = std::strtod(v.c_str(), &end);
        if (v.empty() || *end || !(pool_gb > 0) || pool_gb > 1e6)
          throw cli::UsageError("--pool-gb: '" + v + "' is not a size in GB > 0");
      } else if (a == "--block-tokens")
        run.block_tokens = int(cli::parse_int(a, args.value(), 1));
      else if (a == "--max-step-tokens")
        run.max_step_tokens = int(cli::parse_int(a, args.value(), 1));
      else if (a == "-o")
        fmt_out = args.value();
      else if (a == "--out")
        out_file = args.value();
      else if (a == "--json")
        json_file = args.value();
      else if (a == "--progress")
        run.progress = true;
      else if (a == "--batched-attention") {
        const std::string v = args.value();
        if (v != "on" && v != "off") throw cli::UsageError("--batched-attention: 'on' or 'off', not '" + v + "'");
        run.batched_attention = v == "on";
      } else
        throw cli::UsageError("unknown option '" + a + "' (see --help)");
    }
    if (backend != "cpu" && backend != "cuda")
      throw cli::UsageError("--backend: 'cpu' or 'cuda', not '" + backend + "'");
    if (fmt_out != "md" && fmt_out != "json") throw cli::UsageError("-o: 'md' or 'json', not '" + fmt_out + "'");
    run.pool_bytes = std::int64_t(pool_gb * double(1ull << 30));
    const RuntimeConfig c = synthetic_config(shape);
    if (prompt + gen > c.max_seq_len)
      throw cli::UsageError("-p + -n = " + std::to_string(prompt + gen) + " exceeds the model's context of " +
                            std::to_string(c.max_seq_len));
    const Schedule schedule = policy::schedule_from_string(schedule_text, c.n_layers);
    std::vector<ServeCase> cases;
    for (const int b : batches) {
      std::size_t s = 0;
      while (s <= policies.size()) {
        const std::size_t e = std::min(policies.find(',', s), policies.size());
        ServeCase k;
        k.requests = b, k.prompt = prompt, k.gen = gen, k.progress = run.progress;
        k.policy_name = policies.substr(s, e - s);
        k.policy = policy::make_policy(k.policy_name, k.policy_name == "dense" ? Schedule{} : schedule, 1);
        k.schedule = k.policy_name == "dense" ? "none" : schedule.to_string();
        cases.push_back(std::move(k));
        s = e + 1;
      }
    }
    std::fprintf(stderr, "lazyllm-bench-engine: synthetic %s, backend %s, %zu cases\n", shape.c_str(), backend.c_str(),
                 cases.size());
    const ModelWeights w = synthetic_weights(c, 1);
    nlohmann::json device = nullptr;
    const std::vector<ServeResult> res =
        backend == "cuda" ? serve_cuda(w, cases, run, device) : serve_cpu(w, cases, run);

    std::string md, json;
    {
      md +=
          "| B | policy | schedule | TTFT mean ms | TTFT p90 ms | prompt tok/s | output tok/s | total s | "
          "KV after prompt MiB/req | peak KV pool GiB | held back | prefill token-layers | revivals |\n";
      md += "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
      for (std::size_t i = 0; i < res.size(); ++i) {
        const auto& r = res[i];
        const auto& k = cases[i];
        md += "| " + std::to_string(k.requests) + " | " + k.policy_name + " | " + k.schedule + " | " +
              fmt("%.1f", r.ttft_mean()) + " | " + fmt("%.1f", r.ttft_p(0.9)) + " | " + fmt("%.0f", r.prompt_tok_s()) +
              " | " + fmt("%.1f", r.output_tok_s()) + " | " + fmt("%.2f", r.total_ms / 1e3) + " | " +
              fmt("%.1f", r.prefill_blocks * double(r.block_bytes) / double(1 << 20)) + " | " +
              fmt("%.3f", double(r.peak_bytes()) / double(1ull << 30)) + " | " +
              std::to_string(r.deferrals + r.preemptions) + " | " + fmt("%.1f %%", 100 * r.prefill_fraction) + " | " +
              std::to_string(r.revivals) + " |\n";
      }
      md += "\nbuild: " + git_commit() + ", " + shape + ", backend " + backend + ", prompt " + std::to_string(prompt) +
            ", output " + std::to_string(gen) + " tokens per request\n";
    }
    {
      nlohmann::json j;
      j["schema"] = "lazyllm-bench-engine/1";
      j["command"] = command;
      j["commit"] = git_commit();
      j["date"] = utc_now();
      j["model"] = shape;
      j["backend"] = backend;
      j["device"] = device;
      j["prompt"] = prompt;
      j["gen"] = gen;
      j["block_tokens"] = run.block_tokens;
      j["max_step_tokens"] = run.max_step_tokens;
      for (std::size_t i = 0; i < res.size(); ++i) {
        const auto& r = res[i];
        const auto& k = cases[i];
        j["cases"].push_back({{"requests", k.requests},
                              {"policy", k.policy_name},
                              {"schedule", k.schedule},
                              {"ttft_ms", r.ttft_ms},
                              {"ttft_ms_mean", r.ttft_mean()},
                              {"ttft_ms_p90", r.ttft_p(0.9)},
                              {"prefill_ms", r.prefill_ms},
                              {"total_ms", r.total_ms},
                              {"prompt_tok_s", r.prompt_tok_s()},
                              {"output_tok_s", r.output_tok_s()},
                              {"output_tokens", r.output_tokens},
                              {"peak_pool_bytes", r.peak_bytes()},
                              {"pool_bytes", r.pool_blocks * r.block_bytes},
                              {"block_bytes", r.block_bytes},
                              {"deferrals", r.deferrals},
                              {"preemptions", r.preemptions},
                              {"max_running", r.max_running},
                              {"steps", r.steps},
                              {"prefill_token_layer_fraction", r.prefill_fraction},
                              {"kv_bytes_after_prompt_mean", r.prefill_blocks * double(r.block_bytes)},
                              {"revivals", r.revivals}});
      }
      json = j.dump(1) + "\n";
    }
    const auto emit = [](const std::string& file, const std::string& text) {
      if (file.empty()) {
        std::fputs(text.c_str(), stdout);
        return;
      }
      std::ofstream f(file);
      f << text;
      if (!f) throw Error("cannot write " + file);
    };
    emit(out_file, fmt_out == "md" ? md : json);
    if (!json_file.empty()) emit(json_file, json);
    return 0;
  });
}
