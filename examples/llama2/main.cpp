// SPDX-License-Identifier: MIT
// lazyllm-llama2: run a Llama 2 checkpoint with LazyLLM pruning. Token IDs in, token IDs out.
// Usage: lazyllm-llama2 -h
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "driver.hpp"
#include "lazyllm/lazyllm.hpp"

namespace {

using namespace lazyllm;
using namespace lazyllm::driver;

const char* kUsage = R"(usage: lazyllm-llama2 [options]

  -m PATH               llama2.c .bin file or Hugging Face model directory
                        (default: the built-in demo model, which also turns on --compare)
  --prompt-ids IDS      comma-separated token ids, used as given (default: 1 = BOS)
  -n N                  tokens to generate (default 64); stops early at BOS (1) or EOS (2)
  -c N                  context size (default: the model's)
  --temp T              temperature, 0 = greedy (default 0)
  --top-k K, --top-p P  sampling filters (default off)
  --repeat-penalty R    penalise recently generated ids (default 1 = off)
  --seed S              sampling seed (default 0)
  --backend NAME        cpu | cuda | auto (default auto: cuda when this build has it and a GPU
                        is present, else cpu)
  --policy NAME         dense | lazy | static | random (default dense)
  --schedule S          LAYER:PERCENTILE,... e.g. 8:0.3,16:0.5,24:0.7, or a preset:
                        none | gentle | default | aggressive (default: default)
  --compare             run dense and the chosen policy (lazy if dense) on the same prompt
  --stats FILE.json     write the run's pruning statistics as JSON
  --print-ids           print the generated ids on one line of stdout
  -h, --help            this text
Everything but --print-ids output goes to stderr. Exit codes: 0 ok, 1 runtime error, 2 usage error.
)";

std::vector<std::int32_t> parse_ids(const std::string& s) {
  std::vector<std::int32_t> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t comma = std::min(s.find(',', start), s.size());
    const std::string item = s.substr(start, comma - start);
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 0 || v > 0x7fffffff)
      throw UsageError("--prompt-ids: '" + item + "' is not a token id");
    out.push_back(std::int32_t(v));
    if (comma == s.size()) break;
    start = comma + 1;
  }
  return out;
}

template <class T>
T parse_number(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  if constexpr (std::is_floating_point_v<T>) {
    const double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end) throw UsageError(flag + ": '" + v + "' is not a number");
    return T(d);
  } else {
    const long long d = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end || d < 0) throw UsageError(flag + ": '" + v + "' is not a non-negative integer");
    return T(d);
  }
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "-m" || a == "--model") o.model = value();
    else if (a == "--prompt-ids") { o.prompt = parse_ids(value()); o.prompt_given = true; }
    else if (a == "-n") o.n_predict = parse_number<int>(a, value());
    else if (a == "-c") o.n_ctx = parse_number<int>(a, value());
    else if (a == "--temp") o.sampler.temperature = parse_number<float>(a, value());
    else if (a == "--top-k") o.sampler.top_k = parse_number<int>(a, value());
    else if (a == "--top-p") o.sampler.top_p = parse_number<float>(a, value());
    else if (a == "--repeat-penalty") o.sampler.repeat_penalty = parse_number<float>(a, value());
    else if (a == "--seed") o.sampler.seed = parse_number<std::uint64_t>(a, value());
    else if (a == "--backend") o.backend = value();
    else if (a == "--policy") o.policy = value();
    else if (a == "--schedule") { o.schedule = value(); o.schedule_given = true; }
    else if (a == "--stats") o.stats_file = value();
    else if (a == "--print-ids") o.print_ids = true;
    else if (a == "--compare") o.compare = true;
    else throw UsageError("unknown option '" + a + "' (see -h)");
  }
  if (o.backend != "cpu" && o.backend != "cuda" && o.backend != "auto")
    throw UsageError("--backend '" + o.backend + "' is not available (cpu, cuda or auto)");
  if (o.backend == "auto") o.backend = cuda_device_available() ? "cuda" : "cpu";
  if (o.policy != "dense" && o.policy != "lazy" && o.policy != "static" && o.policy != "random")
    throw UsageError("--policy '" + o.policy + "' is not one of dense, lazy, static, random");
  try {
    o.sampler.validate();
  } catch (const InvalidArgument& e) {
    throw UsageError(e.what());
  }
  if (o.model.empty()) {
    o.model = LAZYLLM_DEFAULT_MODEL;
    if (!o.prompt_given) o.compare = o.demo = true;  // the built-in demo
  }
  if (o.policy == "dense" && o.schedule_given && !o.compare)
    throw UsageError("--schedule needs --policy lazy, static or random (or --compare)");
  return o;
}

Schedule make_schedule(const std::string& text, int n_layers) {
  try {
    if (text.find(':') == std::string::npos) return policy::preset_schedule(text, n_layers);
    Schedule s = Schedule::parse(text);
    s.validate_for(n_layers);
    return s;
  } catch (const InvalidArgument& e) {
    throw UsageError(std::string("--schedule: ") + e.what());
  }
}

RunResult run_policy(const ModelWeights& w, const AnyPolicy& p, const Options& o) {
  if (o.backend == "cuda") return run_policy_cuda(w, p, o);
  return std::visit([&](const auto& pol) { return generate(CpuBackend{w}, pol, o); }, p);
}

void print_footer(const char* label, const RunResult& r, std::size_t n_prompt) {
  const auto steps = r.stats.steps.size();
  std::fprintf(stderr,
               "%s: prompt %zu tokens, prefill %.2f ms (%.1f tok/s) | generated %zu tokens, %.3f ms/token | "
               "token-layers computed %.1f%% of dense in prefill, %.1f%% overall, %lld revivals\n",
               label, n_prompt, r.prefill_ms, r.prefill_ms > 0 ? 1000.0 * double(n_prompt) / r.prefill_ms : 0.0,
               r.ids.size(), steps > 1 ? r.decode_ms / double(steps - 1) : 0.0, 100.0 * r.stats.prefill_fraction(),
               r.stats.total_dense_token_layers()
                   ? 100.0 * double(r.stats.total_token_layers()) / double(r.stats.total_dense_token_layers())
                   : 100.0,
               static_cast<long long>(r.stats.total_revivals()));
}

std::string join(const std::vector<std::int32_t>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(v[i]);
  }
  return s;
}

int run(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  const auto t_load = Clock::now();
  const ModelWeights w = load_model(o.model);
  const double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_load).count();
  std::fprintf(stderr, "model: %s (%s, %.2fM params, %s)\nload: %.2f ms\n", o.model.c_str(),
               [&] { std::ostringstream s; s << w.config; return s.str(); }().c_str(),
               double(w.config.n_params()) / 1e6, w.source_dtype.c_str(), load_ms);
  const int ctx = o.n_ctx ? o.n_ctx : w.config.max_seq_len;
  if (std::int64_t(o.prompt.size()) > ctx)
    throw UsageError("prompt of " + std::to_string(o.prompt.size()) + " tokens does not fit the context of " +
                     std::to_string(ctx) + " tokens");
  if (o.n_ctx > w.config.max_seq_len)
    throw UsageError("-c " + std::to_string(o.n_ctx) + " exceeds the model's context of " +
                     std::to_string(w.config.max_seq_len));

  const Schedule schedule = make_schedule(o.schedule, w.config.n_layers);
  const std::string chosen = (o.compare && o.policy == "dense") ? "lazy" : o.policy;
  const AnyPolicy pol = make_policy(chosen, schedule, o.sampler.seed);

  if (o.demo) {
    // A long prompt the model finds natural: its own greedy continuation of BOS.
    Options gen = o;
    gen.n_predict = std::min(255, w.config.max_seq_len / 2);
    gen.sampler = SamplerParams{};
    const auto made = run_policy(w, policy::Dense{}, gen);
    o.prompt.assign(1, 1);
    o.prompt.insert(o.prompt.end(), made.ids.begin(), made.ids.end());
    std::fprintf(stderr, "demo: prompt = BOS + the model's own %zu-token greedy continuation; then %d tokens with dense and with lazy\n",
                 made.ids.size(), o.n_predict);
  }
  if (o.compare) run_policy(w, policy::Dense{}, o);  // warm-up, so both timed runs start equal
  RunResult dense;
  if (o.compare) {
    dense = run_policy(w, policy::Dense{}, o);
    std::fprintf(stderr, "[dense] ids: %s\n", join(dense.ids).c_str());
    print_footer("dense", dense, o.prompt.size());
  }
  const RunResult r = run_policy(w, pol, o);
  if (o.compare) std::fprintf(stderr, "[%s] ids: %s\n", chosen.c_str(), join(r.ids).c_str());
  print_footer(chosen.c_str(), r, o.prompt.size());
  if (o.compare) {
    std::size_t agree = 0;
    while (agree < r.ids.size() && agree < dense.ids.size() && r.ids[agree] == dense.ids[agree]) ++agree;
    std::fprintf(stderr, "compare: schedule %s | TTFT dense %.2f ms, %s %.2f ms, speedup %.2fx | first %zu of %zu generated tokens agree\n",
                 schedule.to_string().c_str(), dense.prefill_ms, chosen.c_str(), r.prefill_ms,
                 r.prefill_ms > 0 ? dense.prefill_ms / r.prefill_ms : 0.0, agree, std::max(r.ids.size(), dense.ids.size()));
  }
  if (!o.stats_file.empty()) {
    nlohmann::json j = to_json(r.stats);
    j["model"] = o.model;
    j["prompt_tokens"] = o.prompt.size();
    j["generated"] = r.ids;
    j["load_ms"] = load_ms;
    j["prefill_ms"] = r.prefill_ms;
    j["decode_ms"] = r.decode_ms;
    std::ofstream f(o.stats_file);
    if (!(f << j.dump(2) << '\n')) throw Error("cannot write --stats file " + o.stats_file);
  }
  if (o.print_ids) std::printf("%s\n", join(r.ids).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "lazyllm-llama2: error: %s\n", e.what());
    return 2;
  } catch (const lazyllm::InvalidArgument& e) {
    std::fprintf(stderr, "lazyllm-llama2: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lazyllm-llama2: error: %s\n", e.what());
    return 1;
  }
}
