// SPDX-License-Identifier: MIT
// lazyllm-eval: score dense and pruned generation on LongBench-format JSONL (the project's
// lazyllm_mdqa task, or real LongBench files). Usage: lazyllm-eval -h
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "../common/cli.hpp"
#include "../common/gpu_probe.hpp"
#include "eval_run.hpp"
#include "lazyllm/eval/datasets.hpp"
#include "lazyllm/eval/metrics.hpp"
#include "lazyllm/eval/record.hpp"
#include "lazyllm/io/load.hpp"
#include "lazyllm/text/tokenizer.hpp"

namespace {

using namespace lazyllm;
using namespace lazyllm::evalrun;

const char* kUsage = R"(usage: lazyllm-eval -m MODEL --data FILE.jsonl [options]

  -m PATH               llama2.c .bin file or Hugging Face model directory
  -z PATH               tokenizer (.model or llama2.c .bin); default: tokenizer.model or
                        tokenizer.bin in the model's directory
  --data FILE           LongBench-format JSONL: input, context, answers, dataset, _id, all_classes
  --dataset NAME        score every example as dataset NAME (default: each line's "dataset")
  --limit N             only the first N examples
  --policy LIST         comma-separated: dense, lazy, static, random, window (default dense,lazy)
  --schedule SPEC       for lazy/static/random/window: LAYER:PERCENTILE,... or a preset (none, gentle,
                        default, aggressive); repeat the flag or separate with ';' for several
                        (default: default)
  --seed S              RandomDrop's seed (default 0)
  --keep-recent N       lazy also keeps the last N tokens of each set whatever their scores
                        (default 0: the paper's method; reported as policy "lazy+recentN")
  --backend NAME        cpu | cuda | auto (default auto: cuda when built and a GPU is present)
  --device-select       (cuda) apply LazyLLM's percentile rule on the GPU, reading back keep flags
                        instead of scores (SelectingCudaBackend; the default)
  --no-device-select    (cuda) select on the host from the read-back scores instead
  -c N                  context size (default: the model's); longer prompts are truncated in the
                        middle (LongBench's way) to fit it together with the answer
  --max-new N           tokens to generate (default: the dataset's LongBench length)
  -o FILE               also write the markdown table to FILE
  --json FILE           write everything as JSON (per policy/schedule and per example)
  -r N                  time every configuration N times (the predictions are the first run's);
                        the table shows TTFT as mean ± sd over the N (default 1)
  --png FILE            also plot score vs TTFT speedup (one point per policy and schedule) to FILE
                        (tools/eval/plot.py; needs python3-matplotlib, which scripts/deps.sh installs)
  --label TEXT          what the data is, for the plot's title and --json (e.g. "single-hop, notes 0.7")
  --plot-x AXIS         speedup (default) or fraction: the token-layers computed
  --plot FILES          plot saved --json files (comma-separated, one panel each) to --png; no run
  --progress            one line on stderr per example (on a terminal: one updated line with the
                        running score and an ETA, the default there)
  -h, --help            this text
Generation is greedy and stops at EOS, at max-new, or (short-answer datasets) at the first
newline after some text. The table goes to stdout (one per dataset when the file mixes datasets:
their metrics differ, so no mean is taken across them). Exit codes: 0 ok, 1 input or runtime
error, 2 usage error.
)";

using lazyllm::cli::UsageError;

struct Options {
  std::string model, tokenizer, data, dataset, table_file, json_file, backend = "auto";
  std::vector<std::string> policies{"dense", "lazy"};
  std::vector<std::string> schedules;
  long long limit = -1;
  int n_ctx = 0, max_new = 0;
  std::uint64_t seed = 0;
  int keep_recent = 0;
  bool progress = false;
  int reps = 1;
  std::string png, plot_x = "speedup", label;
  std::vector<std::string> plot_files;
  std::optional<bool> device_select;  // unset: on with the CUDA backend (--[no-]device-select)
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream is(s);
  while (std::getline(is, cur, sep))
    if (!cur.empty()) out.push_back(cur);
  return out;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (cli::Args args(argc, argv); args.next();) {
    const std::string a = args.flag();
    auto value = [&] { return args.value(); };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "-m" || a == "--model")
      o.model = value();
    else if (a == "-z" || a == "--tokenizer")
      o.tokenizer = value();
    else if (a == "--data")
      o.data = value();
    else if (a == "--dataset")
      o.dataset = value();
    else if (a == "--limit")
      o.limit = cli::parse_int(a, value(), 0);
    else if (a == "--policy")
      o.policies = split(value(), ',');
    else if (a == "--schedule") {
      for (auto& s : split(value(), ';')) o.schedules.push_back(s);
    } else if (a == "--seed")
      o.seed = cli::parse_u64(a, value());
    else if (a == "--keep-recent")
      o.keep_recent = int(cli::parse_int(a, value(), 0));
    else if (a == "--backend")
      o.backend = value();
    else if (a == "-c")
      o.n_ctx = int(cli::parse_int(a, value(), 1));
    else if (a == "--max-new")
      o.max_new = int(cli::parse_int(a, value(), 1));
    else if (a == "-o")
      o.table_file = value();
    else if (a == "--json")
      o.json_file = value();
    else if (a == "--progress")
      o.progress = true;
    else if (a == "-r")
      o.reps = int(cli::parse_int(a, value(), 1, 1000));
    else if (a == "--png")
      o.png = value();
    else if (a == "--plot-x")
      o.plot_x = value();
    else if (a == "--label")
      o.label = value();
    else if (a == "--plot")
      o.plot_files = split(value(), ',');
    else if (a == "--device-select" || a == "--no-device-select")
      o.device_select = a == "--device-select";
    else
      throw UsageError("unknown option '" + a + "' (see -h)");
  }
  if (o.plot_x != "speedup" && o.plot_x != "fraction") throw UsageError("--plot-x must be speedup or fraction");
  if (!o.plot_files.empty()) {
    if (o.png.empty()) throw UsageError("--plot needs --png FILE (where to write the plot)");
    return o;
  }
  if (o.model.empty()) throw UsageError("-m MODEL is required");
  if (o.data.empty()) throw UsageError("--data FILE.jsonl is required");
  if (o.policies.empty()) throw UsageError("--policy: give at least one of " + policy::policy_names());
  std::vector<std::string> unique;  // each policy once, in the order given
  for (const auto& p : o.policies)
    if (std::find(unique.begin(), unique.end(), p) == unique.end()) unique.push_back(p);
  o.policies = std::move(unique);
  for (const auto& p : o.policies)
    if (!policy::is_policy_name(p)) throw UsageError("--policy '" + p + "' is not one of " + policy::policy_names());
  if (o.schedules.empty()) o.schedules = {"default"};
  if (o.backend != "cpu" && o.backend != "cuda" && o.backend != "auto")
    throw UsageError("--backend '" + o.backend + "' is not available (cpu, cuda or auto)");
  if (o.backend == "auto") o.backend = cli::gpu_available() ? "cuda" : "cpu";
  if (o.device_select && o.backend != "cuda")
    throw UsageError(std::string(*o.device_select ? "--device-select" : "--no-device-select") +
                     " applies to the CUDA backend");
  if (!o.dataset.empty()) {
    try {
      eval::dataset_spec(o.dataset);
    } catch (const InvalidArgument& e) {
      throw UsageError(std::string("--dataset: ") + e.what());
    }
  }
  return o;
}

struct Example {
  std::string id, dataset, input, context;
  std::vector<std::string> answers, all_classes;
  const eval::DatasetSpec* spec = nullptr;
  int prompt_tokens = 0;  // as built, before truncation
  bool truncated = false;
  int answer_doc = -1, n_docs = 0;  // lazyllm-make-task records: where the answer is
  /// The answer document's fifth of the context (0 = first, 4 = last), or -1 when unknown.
  int position_bucket() const {
    return answer_doc >= 0 && n_docs > 0 ? int(std::min<long long>(4, 5LL * answer_doc / n_docs)) : -1;
  }
};

std::vector<Example> read_jsonl(const Options& o) {
  std::ifstream f(o.data, std::ios::binary);
  if (!f) throw Error("--data " + o.data + ": cannot open (" + std::strerror(errno) + ")");
  std::vector<Example> out;
  std::string line;
  for (long long n = 1; std::getline(f, line); ++n) {
    if (o.limit >= 0 && (long long)out.size() >= o.limit) break;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = o.data + ":" + std::to_string(n);
    eval::Record r = eval::parse_record(line, o.data, n, o.dataset);  // types and ranges checked
    Example e;
    e.id = std::move(r.id);
    e.dataset = std::move(r.dataset);
    e.input = std::move(r.input);
    e.context = std::move(r.context);
    e.answers = std::move(r.answers);
    e.all_classes = std::move(r.all_classes);
    e.answer_doc = r.answer_doc;
    e.n_docs = r.n_docs;
    try {
      e.spec = &eval::dataset_spec(e.dataset);
    } catch (const InvalidArgument& err) {
      throw UsageError(where + ": " + err.what());
    }
    if (e.spec->metric == eval::Metric::Classification && e.all_classes.empty())
      throw Error(where + ": dataset " + e.dataset +
                  " is scored by classification but the line has no \"all_classes\"");
    out.push_back(std::move(e));
  }
  if (f.bad()) throw Error("--data " + o.data + ": read error");
  if (out.empty()) throw Error("--data " + o.data + ": no examples");
  return out;
}

/// The tokenizer path: -z, else tokenizer.model / tokenizer.bin in the model's directory.
std::string find_tokenizer(const Options& o) {
  if (!o.tokenizer.empty()) return o.tokenizer;
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path m(o.model);
  const fs::path dir = fs::is_directory(m, ec) ? m : m.parent_path();
  for (const char* name : {"tokenizer.model", "tokenizer.bin"})
    if (!dir.empty() && fs::is_regular_file(dir / name, ec)) return (dir / name).string();
  throw UsageError("no tokenizer: give -z tokenizer.model or -z tokenizer.bin (none beside the model)");
}

/// The prediction text as LongBench scores it: surrounding whitespace dropped, and for
/// short-answer datasets only the first line.
std::string prediction_text(const std::string& raw, bool first_line) {
  std::string s = raw;
  const auto b = s.find_first_not_of(" \t\r\n");
  s = b == std::string::npos ? std::string() : s.substr(b);
  if (first_line) s = s.substr(0, s.find('\n'));
  const auto e = s.find_last_not_of(" \t\r\n");
  return e == std::string::npos ? std::string() : s.substr(0, e + 1);
}

struct Config {
  std::string policy, schedule_text;
  Schedule schedule;
};

struct Summary {
  double score = 0, em = 0, starts = 0, ttft_ms = 0, ttft_sd = 0, prefill_ms = 0, fraction = 1, speedup = 0;
  std::vector<double> ttft_reps;  // mean TTFT of each -r repetition
  int n_em = 0;
  std::array<std::pair<double, int>, 5> by_position{};        // sum of scores, count, per fifth of the context
  std::map<std::string, std::pair<double, int>> per_dataset;  // sum of scores, count
};

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

/// --png: tools/eval/plot.py on the --json document(s); a clear error when it cannot run.
void plot_png(const std::vector<std::string>& json_files, const Options& o) {
  const char* env = std::getenv("LAZYLLM_PLOT_SCRIPT");
  const std::string script = env && *env ? env : std::string(LAZYLLM_SOURCE_DIR) + "/tools/eval/plot.py";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(script, ec))
    throw Error("--png: the plotting script " + script +
                " is not there (set LAZYLLM_PLOT_SCRIPT to tools/eval/plot.py)");
  auto quote = [](const std::string& a) {
    std::string q = "'";
    for (char c : a) {
      if (c == '\'')
        q += "'\\''";
      else
        q.push_back(c);
    }
    return q + "'";
  };
  // Debian's python3 (where python3-matplotlib installs), unless LAZYLLM_PYTHON says otherwise.
  const char* py_env = std::getenv("LAZYLLM_PYTHON");
  const std::string python = py_env && *py_env                                 ? py_env
                             : std::filesystem::exists("/usr/bin/python3", ec) ? "/usr/bin/python3"
                                                                               : "python3";
  std::string cmd = quote(python) + " " + quote(script);
  for (const auto& f : json_files) {
    cmd += ' ';
    cmd += quote(f);
  }
  cmd += " -o ";
  cmd += quote(o.png);
  cmd += " --x ";
  cmd += o.plot_x;
  if (std::system(cmd.c_str()) != 0)
    throw Error("--png " + o.png +
                ": the plot failed (python3 and matplotlib are needed: apt-get install "
                "python3-matplotlib, or bash scripts/deps.sh)");
}

/// "1m05s", "42s": an ETA.
std::string duration_text(double s) {
  char b[32];
  if (s >= 60)
    std::snprintf(b, sizeof b, "%dm%02ds", int(s) / 60, int(s) % 60);
  else
    std::snprintf(b, sizeof b, "%.0fs", s);
  return b;
}

int run(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  if (!o.plot_files.empty()) {
    plot_png(o.plot_files, o);
    return 0;
  }
  std::vector<Example> examples;
  try {
    examples = read_jsonl(o);
  } catch (const UsageError& e) {
    // A dataset name that is not LongBench's: the whole file may still be scored as one of them.
    if (std::string(e.what()).find("is not known") != std::string::npos)
      throw UsageError(std::string(e.what()) + "; to score every line as one of them, give --dataset NAME");
    throw;
  }
  const std::string tok_path = find_tokenizer(o);
  const Tokenizer tok = load_tokenizer(tok_path);
  const ModelWeights w = load_model(o.model, LoadOptions{.keep_source_dtype = o.backend == "cuda"});
  if (tok.vocab_size() != w.config.vocab_size)
    throw UsageError("the tokenizer's vocabulary (" + std::to_string(tok.vocab_size()) + " pieces, " + tok_path +
                     ") does not match the model's (" + std::to_string(w.config.vocab_size) + ")");
  if (o.n_ctx > w.config.max_seq_len)
    throw UsageError("-c " + std::to_string(o.n_ctx) + " exceeds the model's context of " +
                     std::to_string(w.config.max_seq_len));
  const int n_ctx = o.n_ctx ? o.n_ctx : w.config.max_seq_len;
  std::fprintf(stderr, "model: %s (%d layers, context %d), tokenizer: %s, backend: %s\n", o.model.c_str(),
               w.config.n_layers, n_ctx, tok_path.c_str(), o.backend.c_str());

  // Configurations: dense once, every other policy with every schedule.
  std::vector<Config> configs;
  for (const auto& p : o.policies) {
    if (p == "dense") {
      configs.push_back({p, "none", Schedule{}});
      continue;
    }
    for (const auto& s : o.schedules) {
      try {
        configs.push_back({p, s, policy::schedule_from_string(s, w.config.n_layers)});
      } catch (const InvalidArgument& e) {
        throw UsageError("--schedule '" + s + "': " + e.what());
      }
    }
  }

  // Prompts: the dataset's template, BOS + tokens, truncated in the middle to leave room for the answer.
  std::vector<Prepared> prepared;
  int n_truncated = 0;
  for (auto& e : examples) {
    Prepared p;
    p.max_new = o.max_new ? o.max_new : e.spec->max_new_tokens;
    p.stop_at_newline = e.spec->stop_at_newline;
    p.ids = tok.encode(eval::build_prompt(*e.spec, e.context, e.input), true);
    e.prompt_tokens = int(p.ids.size());
    const int budget = n_ctx - p.max_new;
    if (budget < 2)
      throw UsageError("context of " + std::to_string(n_ctx) + " tokens leaves no room for a prompt and " +
                       std::to_string(p.max_new) + " new tokens");
    if (int(p.ids.size()) > budget) {
      // LongBench keeps the first and the last half of the tokens (we cut token ids, BOS kept).
      const std::size_t head = std::size_t(budget / 2), tail = std::size_t(budget) - head;
      std::vector<std::int32_t> cut(p.ids.begin(), p.ids.begin() + std::ptrdiff_t(head));
      cut.insert(cut.end(), p.ids.end() - std::ptrdiff_t(tail), p.ids.end());
      p.ids = std::move(cut);
      e.truncated = true;
      ++n_truncated;
    }
    prepared.push_back(std::move(p));
  }
  if (n_truncated)
    std::fprintf(stderr,
                 "note: %d of %zu prompts are longer than the context allows (%d tokens minus the answer's); "
                 "their middle was cut out, as LongBench does\n",
                 n_truncated, examples.size(), n_ctx);

  TokenClasses cls;
  cls.newline.resize(std::size_t(tok.vocab_size()));
  cls.text.resize(std::size_t(tok.vocab_size()));
  for (std::int32_t id = 0; id < tok.vocab_size(); ++id) {
    const std::string piece = tok.decode(0, id);
    cls.newline[std::size_t(id)] = piece.find('\n') != std::string::npos;
    cls.text[std::size_t(id)] = piece.find_first_not_of(" \t\r\n") != std::string::npos;
  }

  // The policy as reported: Lazy with --keep-recent is not the paper's method, so it is named apart.
  auto reported = [&](const std::string& p) {
    return p == "lazy" && o.keep_recent > 0 ? "lazy+recent" + std::to_string(o.keep_recent) : p;
  };
  nlohmann::json runs = nlohmann::json::array();
  std::vector<Summary> summaries;
  double dense_ttft = -1;
  for (const auto& c : configs) {
    const AnyPolicy pol = policy::make_policy(c.policy, c.schedule, o.seed, o.keep_recent);
    const std::string label = c.policy == "dense" ? c.policy : c.policy + " " + c.schedule.to_string();
    // Progress: by default on a terminal one line rewritten in place, with the running score and
    // an ETA; --progress (or no terminal with --progress) one line per example.
    const bool tty = isatty(fileno(stderr)) != 0;
    Progress progress;
    double running = 0;
    const auto t_config = Clock::now();
    if (o.progress || tty)
      progress = [&](std::size_t done, const ExampleResult& r) {
        const Example& e = examples[done - 1];
        const std::string raw = tok.decode(r.ids);
        const std::string pred =
            e.spec->metric == eval::Metric::CodeSim ? raw : prediction_text(raw, e.spec->stop_at_newline);
        running += eval::score(*e.spec, pred, e.answers, e.all_classes);
        const double el = std::chrono::duration<double>(Clock::now() - t_config).count();
        const double eta = el / double(done) * double(prepared.size() - done);
        std::fprintf(stderr, "%s[%s] %zu/%zu, score so far %.1f, %s left%s", tty && !o.progress ? "\r" : "",
                     label.c_str(), done, prepared.size(), 100.0 * running / double(done), duration_text(eta).c_str(),
                     tty && !o.progress ? "   " : "\n");
        if (tty && !o.progress && done == prepared.size()) std::fputc('\n', stderr);
        std::fflush(stderr);
      };
    auto run_once = [&](const Progress& pr) {
      return o.backend == "cuda" ? run_examples_cuda(w, pol, n_ctx, prepared, cls, pr, o.device_select.value_or(true))
                                 : run_examples(CpuBackend{w}, pol, n_ctx, prepared, cls, pr);
    };
    const std::vector<ExampleResult> res = run_once(progress);
    // -r N: the same examples timed N - 1 more times (greedy: the same predictions); the mean
    // TTFT of each repetition gives the spread.
    std::vector<double> rep_ttft;
    auto mean_ttft = [](const std::vector<ExampleResult>& rs) {
      double t = 0;
      for (const auto& r : rs) t += r.ttft_ms;
      return rs.empty() ? 0.0 : t / double(rs.size());
    };
    rep_ttft.push_back(mean_ttft(res));
    for (int k = 1; k < o.reps; ++k) rep_ttft.push_back(mean_ttft(run_once({})));
    Summary s;
    std::int64_t tl = 0, dtl = 0;
    nlohmann::json per = nlohmann::json::array();
    for (std::size_t i = 0; i < res.size(); ++i) {
      const Example& e = examples[i];
      const std::string raw = tok.decode(res[i].ids);
      // Code similarity picks its line from the text as generated (indentation counts).
      const std::string pred =
          e.spec->metric == eval::Metric::CodeSim ? raw : prediction_text(raw, e.spec->stop_at_newline);
      const double sc = eval::score(*e.spec, pred, e.answers, e.all_classes);
      s.score += sc;
      auto& pd = s.per_dataset[e.dataset];
      pd.first += sc;
      pd.second += 1;
      if (const int b = e.position_bucket(); b >= 0) {
        s.by_position[std::size_t(b)].first += sc;
        s.by_position[std::size_t(b)].second += 1;
      }
      nlohmann::json ej = {{"_id", e.id},
                           {"dataset", e.dataset},
                           {"prediction", pred},
                           {"raw", raw},
                           {"score", sc},
                           {"ttft_ms", res[i].ttft_ms},
                           {"prefill_ms", res[i].prefill_ms},
                           {"decode_ms", res[i].decode_ms},
                           {"generated_tokens", res[i].ids.size()},
                           {"prompt_tokens", prepared[i].ids.size()},
                           {"token_layers", res[i].token_layers},
                           {"dense_token_layers", res[i].dense_token_layers}};
      if (e.spec->has_exact_match) {
        const double em = eval::best_over(eval::exact_match, pred, e.answers);
        const double starts = eval::best_over(eval::starts_with_answer, pred, e.answers);
        s.em += em;
        s.starts += starts;
        ++s.n_em;
        ej["em"] = em;
        ej["starts_with_answer"] = starts;
      } else {
        ej["em"] = nullptr;
        ej["starts_with_answer"] = nullptr;
      }
      s.ttft_ms += res[i].ttft_ms;
      s.prefill_ms += res[i].prefill_ms;
      tl += res[i].token_layers;
      dtl += res[i].dense_token_layers;
      per.push_back(std::move(ej));
    }
    const double n = double(res.size());
    s.score = 100.0 * s.score / n;
    s.em = s.n_em ? 100.0 * s.em / double(s.n_em) : 0.0;
    s.starts = s.n_em ? 100.0 * s.starts / double(s.n_em) : 0.0;
    s.ttft_ms = 0;
    for (double t : rep_ttft) s.ttft_ms += t / double(rep_ttft.size());
    for (double t : rep_ttft) s.ttft_sd += (t - s.ttft_ms) * (t - s.ttft_ms);
    s.ttft_sd = rep_ttft.size() > 1 ? std::sqrt(s.ttft_sd / double(rep_ttft.size() - 1)) : 0.0;
    s.ttft_reps = rep_ttft;
    s.prefill_ms /= n;
    s.fraction = dtl ? double(tl) / double(dtl) : 1.0;
    if (c.policy == "dense" && dense_ttft < 0) dense_ttft = s.ttft_ms;
    nlohmann::json pdj = nlohmann::json::object();
    for (const auto& [name, v] : s.per_dataset) pdj[name] = {{"score", 100.0 * v.first / v.second}, {"n", v.second}};
    nlohmann::json bpj = nlohmann::json::array();
    for (const auto& [sum, count] : s.by_position)
      bpj.push_back({{"score", count ? nlohmann::json(100.0 * sum / count) : nlohmann::json(nullptr)}, {"n", count}});
    runs.push_back({{"policy", reported(c.policy)},
                    {"schedule", c.policy == "dense" ? std::string("none") : c.schedule.to_string()},
                    {"schedule_spec", c.schedule_text},
                    {"score", s.score},
                    {"em", s.n_em ? nlohmann::json(s.em) : nlohmann::json(nullptr)},
                    {"starts_with_answer", s.n_em ? nlohmann::json(s.starts) : nlohmann::json(nullptr)},
                    {"ttft_ms", s.ttft_ms},
                    {"ttft_ms_sd", s.ttft_sd},
                    {"ttft_ms_reps", s.ttft_reps},
                    {"prefill_ms", s.prefill_ms},
                    {"token_layers_fraction", s.fraction},
                    {"per_dataset", pdj},
                    {"by_answer_position", bpj},
                    {"examples", per}});
    summaries.push_back(s);
    std::fprintf(stderr, "[%s] score %.2f, TTFT %.2f ms, token-layers %.1f%%\n", label.c_str(), s.score, s.ttft_ms,
                 100.0 * s.fraction);
  }
  // Speedups against dense (when dense ran).
  for (std::size_t k = 0; k < summaries.size(); ++k) {
    auto& s = summaries[k];
    s.speedup = dense_ttft > 0 && s.ttft_ms > 0 ? dense_ttft / s.ttft_ms : 0.0;
    runs[k]["ttft_speedup"] = dense_ttft > 0 ? nlohmann::json(s.speedup) : nlohmann::json(nullptr);
    // Less compute but slower than dense: the timing is not the method's (another process had
    // the CPU, or a cold start); say so rather than let the table mislead.
    if (configs[k].policy != "dense" && s.fraction < 0.999 && s.speedup > 0 && s.speedup < 1.0)
      std::fprintf(stderr,
                   "warning: %s %s computed %.1f%% of the token-layers but its TTFT is %.2fx dense's: the machine was "
                   "probably busy (other processes); rerun with -r 3 to see the spread\n",
                   reported(configs[k].policy).c_str(), configs[k].schedule.to_string().c_str(), 100.0 * s.fraction,
                   s.speedup);
  }

  std::map<std::string, int> dataset_counts;
  for (const auto& e : examples) ++dataset_counts[e.dataset];
  std::string datasets;
  for (const auto& [name, count] : dataset_counts) {
    if (!datasets.empty()) datasets += ", ";
    datasets += name + " (" + std::to_string(count) + ")";
  }
  std::ostringstream table;
  table << "Model " << o.model << ", " << examples.size() << " examples: " << datasets << "; backend " << o.backend
        << ", context " << n_ctx << (n_truncated ? ", " + std::to_string(n_truncated) + " truncated" : std::string())
        << ".\n\n";
  auto ttft_text = [&](double mean, double sd) {
    return o.reps > 1 ? fmt("%.2f", mean) + " ± " + fmt("%.2f", sd) : fmt("%.2f", mean);
  };
  if (dataset_counts.size() == 1) {
    table << "| policy | schedule | score | EM | starts right | TTFT ms | token-layers % | speedup |\n";
    table << "|---|---|---:|---:|---:|---:|---:|---:|\n";
    for (std::size_t k = 0; k < configs.size(); ++k) {
      const auto& c = configs[k];
      const auto& s = summaries[k];
      table << "| " << reported(c.policy) << " | " << (c.policy == "dense" ? std::string("-") : c.schedule.to_string())
            << " | " << fmt("%.2f", s.score) << " | " << (s.n_em ? fmt("%.2f", s.em) : std::string("-")) << " | "
            << (s.n_em ? fmt("%.1f", s.starts) : std::string("-")) << " | " << ttft_text(s.ttft_ms, s.ttft_sd) << " | "
            << fmt("%.1f", 100.0 * s.fraction) << " | "
            << (dense_ttft > 0 ? fmt("%.2fx", s.speedup) : std::string("n/a")) << " |\n";
    }
  } else {
    // Different datasets have different metrics (F1, Rouge-L, accuracy, ...): one table each, no
    // mean across them. TTFT and speedup over that dataset's examples (first timing run).
    for (const auto& [name, count] : dataset_counts) {
      const auto& spec = eval::dataset_spec(name);
      table << "Dataset " << name << " (" << eval::to_string(spec.metric) << ", " << count
            << (count == 1 ? " example" : " examples") << "):\n\n";
      table << "| policy | schedule | score | EM | starts right | TTFT ms | token-layers % | speedup |\n";
      table << "|---|---|---:|---:|---:|---:|---:|---:|\n";
      double dense_t = -1;
      for (std::size_t k = 0; k < configs.size(); ++k) {
        double sc = 0, em = 0, st = 0, t = 0;
        std::int64_t tl = 0, dtl = 0;
        int n = 0, n_em = 0;
        for (const auto& e : runs[k]["examples"]) {
          if (e["dataset"] != name) continue;
          ++n;
          sc += e["score"].get<double>();
          t += e["ttft_ms"].get<double>();
          tl += e["token_layers"].get<std::int64_t>();
          dtl += e["dense_token_layers"].get<std::int64_t>();
          if (!e["em"].is_null()) {
            ++n_em;
            em += e["em"].get<double>();
            st += e["starts_with_answer"].get<double>();
          }
        }
        t /= std::max(n, 1);
        if (configs[k].policy == "dense" && dense_t < 0) dense_t = t;
        const auto& c = configs[k];
        table << "| " << reported(c.policy) << " | "
              << (c.policy == "dense" ? std::string("-") : c.schedule.to_string()) << " | "
              << fmt("%.2f", 100.0 * sc / std::max(n, 1)) << " | "
              << (n_em ? fmt("%.2f", 100.0 * em / n_em) : std::string("-")) << " | "
              << (n_em ? fmt("%.1f", 100.0 * st / n_em) : std::string("-")) << " | " << fmt("%.2f", t) << " | "
              << fmt("%.1f", dtl ? 100.0 * double(tl) / double(dtl) : 100.0) << " | "
              << (dense_t > 0 && t > 0 ? fmt("%.2fx", dense_t / t) : std::string("n/a")) << " |\n";
      }
      table << "\n";
    }
  }
  if (dense_ttft <= 0) table << "\n(speedup needs dense in --policy)\n";
  // lazyllm-make-task records say where the answer is: the score by the answer document's place.
  const bool positions = std::all_of(examples.begin(), examples.end(), [](const Example& e) { return e.n_docs > 0; });
  if (positions) {
    table << "\nScore by where the answer document is (fifths of the context, first to last; examples in each):\n\n";
    table << "| policy | schedule |";
    for (int b = 0; b < 5; ++b)
      table << " " << b + 1 << "/5 (" << summaries.front().by_position[std::size_t(b)].second << ") |";
    table << "\n|---|---|---:|---:|---:|---:|---:|\n";
    for (std::size_t k = 0; k < configs.size(); ++k) {
      const auto& c = configs[k];
      table << "| " << reported(c.policy) << " | " << (c.policy == "dense" ? std::string("-") : c.schedule.to_string())
            << " |";
      for (const auto& [sum, count] : summaries[k].by_position)
        table << " " << (count ? fmt("%.1f", 100.0 * sum / count) : std::string("-")) << " |";
      table << "\n";
    }
  }
  std::fputs(table.str().c_str(), stdout);
  std::fflush(stdout);
  if (!o.table_file.empty()) {
    std::ofstream f(o.table_file);
    if (!(f << table.str())) throw Error("-o " + o.table_file + ": cannot write");
  }
  if (!o.json_file.empty() || !o.png.empty()) {
    nlohmann::json j;
    j["model"] = o.model;
    j["tokenizer"] = tok_path;
    if (!o.label.empty()) j["label"] = o.label;
    j["data"] = o.data;
    j["backend"] = o.backend;
    j["device_select"] = o.backend == "cuda" && o.device_select.value_or(true);
    j["n_ctx"] = n_ctx;
    j["n_layers"] = w.config.n_layers;
    j["max_new"] = o.max_new ? nlohmann::json(o.max_new) : nlohmann::json("per dataset");
    j["seed"] = o.seed;
    j["n_examples"] = examples.size();
    j["n_truncated"] = n_truncated;
    nlohmann::json ex = nlohmann::json::array();
    for (const auto& e : examples)
      ex.push_back({{"_id", e.id},
                    {"dataset", e.dataset},
                    {"metric", eval::to_string(e.spec->metric)},
                    {"input", e.input},
                    {"answers", e.answers},
                    {"prompt_tokens", e.prompt_tokens},
                    {"truncated", e.truncated},
                    {"answer_doc", e.answer_doc >= 0 ? nlohmann::json(e.answer_doc) : nlohmann::json(nullptr)},
                    {"n_docs", e.n_docs > 0 ? nlohmann::json(e.n_docs) : nlohmann::json(nullptr)}});
    j["examples"] = ex;
    j["runs"] = runs;
    if (!o.json_file.empty()) {
      std::ofstream f(o.json_file);
      if (!(f << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n'))
        throw Error("--json " + o.json_file + ": cannot write");
    }
    if (!o.png.empty()) {
      // The plot reads the --json document: the one written above, or a temporary copy.
      std::string path = o.json_file;
      if (path.empty()) {
        path = o.png + ".json.tmp";
        std::ofstream f(path);
        if (!(f << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n'))
          throw Error("--png " + o.png + ": cannot write " + path);
      }
      plot_png({path}, o);
      if (o.json_file.empty()) std::filesystem::remove(path);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return lazyllm::cli::run_main("lazyllm-eval", [&] { return run(argc, argv); });
}
