// SPDX-License-Identifier: MIT
// lazyllm-llama2: run a Llama 2 checkpoint with LazyLLM pruning. Text or token ids in, text or
// token ids out. Usage: lazyllm-llama2 -h
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <unistd.h>

#include "driver.hpp"
#include "lazyllm/eval/metrics.hpp"
#include "lazyllm/eval/task.hpp"
#include "lazyllm/lazyllm.hpp"
#include "lazyllm/report/json.hpp"
#include "lazyllm/text/chat.hpp"
#include "lazyllm/text/tokenizer.hpp"

namespace {

using namespace lazyllm;
using namespace lazyllm::driver;

const char* kUsage = R"(usage: lazyllm-llama2 [options]

  -m PATH               llama2.c .bin file or Hugging Face model directory
                        (default: the built-in demo model, which also turns on --compare)
  -z PATH               tokenizer: SentencePiece .model or llama2.c tokenizer.bin (default for a
                        Hugging Face directory: tokenizer.model beside config.json, else
                        tokenizer.bin there)
  -p TEXT               text prompt, encoded with BOS (needs a tokenizer)
  -f FILE               text prompt read from FILE (- = stdin; one trailing newline dropped)
  --prompt-ids IDS      comma-separated token ids, used as given (default: 1 = BOS)
                        (-p, -f and --prompt-ids are alternatives: give at most one)
  --chat                wrap the text prompt in the Llama 2 chat template as the user message
  --system TEXT         the chat's system prompt (needs --chat)
  -i, --interactive     chat on: read one turn per line of stdin until EOF, answer each; the
                        KV cache is kept, so a turn prefills only its own tokens (-p/-f, if
                        given, is the first turn; with --chat each turn is a [INST] message)
  -n N                  tokens to generate (default 64); stops early at BOS (1) or EOS (2)
  -c N                  context size (default: the model's); the memory check sizes the KV
                        and Aux Cache for it
  --temp T              temperature, 0 = greedy (default 0)
  --top-k K, --top-p P  sampling filters (default off)
  --repeat-penalty R    penalise recently generated ids (default 1 = off)
  --seed S              sampling seed (default 0)
  --backend NAME        cpu | cuda | auto (default auto: cuda when this build has it and a GPU
                        is present, else cpu)
  --precision P         CUDA storage type: auto (default) | bf16 | fp16 | fp32. auto computes in
                        the checkpoint's dtype: fp32 for llama2.c .bin files and fp32 safetensors
                        (what the CPU reference computes, same greedy ids; falls back to bf16
                        when fp32 does not fit in GPU memory), else bf16 or fp16 as stored.
                        Force bf16 for speed on an fp32 checkpoint.
  --policy NAME         dense | lazy | static | random | window (default dense)
  --schedule S          LAYER:PERCENTILE,... e.g. 8:0.3,16:0.5,24:0.7, or a preset:
                        none | gentle | default | aggressive (default: default)
  --keep-recent N       lazy also keeps the last N tokens of every set whatever their scores
                        (default 0: the paper's rule; docs/accuracy.md measures N = 16)
  --device-select       (cuda, bf16) apply LazyLLM's percentile rule on the GPU and read back
                        keep flags instead of scores (SelectingCudaBackend; the default for bf16)
  --no-device-select    (cuda) select on the host from the read-back scores instead
  --compare             run dense and the chosen policy (lazy if dense) on the same prompt
  --stats FILE.json     write the run's pruning statistics as JSON
  --json FILE           write the whole run as JSON (config, prompt, ids, text, timings, stats;
                        with --compare both runs and the comparison)
  --print-ids           print the generated ids on one line of stdout (instead of the text)
  --progress            per-layer prefill progress on stderr for every prompt (default: only
                        for prompts of 1024 tokens or more)
  --no-mem-check        skip the check that weights + KV cache + Aux Cache + activations fit
                        in free RAM (CPU) or GPU memory (CUDA) before loading
  -h, --help            this text
With a tokenizer the generated text streams to stdout as it is produced; --print-ids prints the
ids instead. Everything else goes to stderr. Exit codes: 0 ok, 1 runtime error (including not
enough memory), 2 usage error (including a prompt or turn that does not fit the context).
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
  for (cli::Args args(argc, argv); args.next();) {
    const std::string a = args.flag();
    auto value = [&] { return args.value(); };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "-m" || a == "--model") o.model = value();
    else if (a == "--prompt-ids") { o.prompt = parse_ids(value()); ++o.prompt_sources; }
    else if (a == "-p" || a == "--prompt") { o.prompt_text = value(); o.text_given = true; ++o.prompt_sources; }
    else if (a == "-f" || a == "--file") { o.prompt_file = value(); o.text_given = true; ++o.prompt_sources; }
    else if (a == "-z" || a == "--tokenizer") o.tokenizer = value();
    else if (a == "--chat") o.chat = true;
    else if (a == "--system") { o.system = value(); o.system_given = true; }
    else if (a == "--json") o.json_file = value();
    else if (a == "-n") o.n_predict = parse_number<int>(a, value());
    else if (a == "-c") o.n_ctx = parse_number<int>(a, value());
    else if (a == "--temp") o.sampler.temperature = parse_number<float>(a, value());
    else if (a == "--top-k") o.sampler.top_k = parse_number<int>(a, value());
    else if (a == "--top-p") o.sampler.top_p = parse_number<float>(a, value());
    else if (a == "--repeat-penalty") o.sampler.repeat_penalty = parse_number<float>(a, value());
    else if (a == "--seed") o.sampler.seed = parse_number<std::uint64_t>(a, value());
    else if (a == "--backend") o.backend = value();
    else if (a == "--precision") o.precision = value();
    else if (a == "--policy") o.policy = value();
    else if (a == "--keep-recent")
      o.keep_recent = parse_number<int>(a, value());
    else if (a == "--schedule") { o.schedule = value(); o.schedule_given = true; }
    else if (a == "--stats") o.stats_file = value();
    else if (a == "--print-ids") o.print_ids = true;
    else if (a == "--compare") o.compare = true;
    else if (a == "--device-select" || a == "--no-device-select")
      o.device_select = a == "--device-select";
    else if (a == "-i" || a == "--interactive") o.interactive = true;
    else if (a == "--progress") o.progress = true;
    else if (a == "--no-mem-check") o.mem_check = false;
    else throw UsageError("unknown option '" + a + "' (see -h)");
  }
  o.prompt_given = o.prompt_sources > 0;
  if (o.prompt_sources > 1)
    throw UsageError("-p, -f and --prompt-ids are alternatives: give one prompt source (got " +
                     std::to_string(o.prompt_sources) + ")");
  if (o.system_given && !o.chat) throw UsageError("--system needs --chat");
  if (o.chat && !o.text_given && !o.interactive) throw UsageError("--chat needs a text prompt (-p or -f) or -i");
  if (o.interactive) {
    if (o.compare) throw UsageError("-i and --compare cannot be combined (compare one prompt with -p or -f)");
    if (o.prompt_file == "-") throw UsageError("-i reads its turns from stdin: -f - cannot be used with it");
    if (o.prompt_sources > 0 && !o.text_given)
      throw UsageError("-i takes text turns: give the first turn with -p or -f, not --prompt-ids");
  }
  if (o.backend != "cpu" && o.backend != "cuda" && o.backend != "auto")
    throw UsageError("--backend '" + o.backend + "' is not available (cpu, cuda or auto)");
  if (o.precision != "auto" && o.precision != "bf16" && o.precision != "fp16" && o.precision != "fp32")
    throw UsageError("--precision '" + o.precision + "' is not one of auto, bf16, fp16, fp32");
  o.precision_auto = o.precision == "auto";
  if (o.backend == "auto") o.backend = cuda_device_available() ? "cuda" : "cpu";
  if (!o.precision_auto && o.backend != "cuda")
    throw UsageError("--precision applies to the CUDA backend (the CPU reference always computes in fp32)");
  if (o.device_select && o.backend != "cuda")
    throw UsageError(std::string(*o.device_select ? "--device-select" : "--no-device-select") +
                     " applies to the CUDA backend");
  if (!policy::is_policy_name(o.policy))
    throw UsageError("--policy '" + o.policy + "' is not one of " + policy::policy_names());
  try {
    o.sampler.validate();
  } catch (const InvalidArgument& e) {
    throw UsageError(e.what());
  }
  if (o.model.empty()) {
    // The built-in default: the project's own retrieval model (models/lazyqa), else stories260K.
    std::error_code ec;
    const bool qa =
        std::filesystem::is_regular_file(std::filesystem::path(LAZYLLM_DEFAULT_MODEL) / "model.safetensors", ec);
    o.model = qa ? LAZYLLM_DEFAULT_MODEL : LAZYLLM_FALLBACK_MODEL;
    if (!o.prompt_given && !o.interactive) {
      o.compare = o.demo = true;
      o.demo_qa = qa;
      // lazyqa has 6 layers: `gentle` (3:0.3,5:0.5), the lightest preset, costs it least (docs/accuracy.md)
      if (qa && !o.schedule_given) o.schedule = "gentle";
    }
  }
  if (o.policy == "dense" && o.schedule_given && !o.compare)
    throw UsageError("--schedule needs --policy lazy, static or random (or --compare)");
  return o;
}

Schedule make_schedule(const std::string& text, int n_layers) {
  try {
    return policy::schedule_from_string(text, n_layers);
  } catch (const InvalidArgument& e) {
    throw UsageError(std::string("--schedule: ") + e.what());
  }
}

RunResult run_policy(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks = {}) {
  if (o.backend == "cuda") return run_policy_cuda(w, p, o, hooks);
  return generate(CpuBackend{w}, p, o, hooks);
}

ConversationEnd run_conversation(const ModelWeights& w, const AnyPolicy& p, const Options& o, const Hooks& hooks,
                                 const Conversation& conv) {
  if (o.backend == "cuda") return converse_cuda(w, p, o, hooks, conv);
  return converse(CpuBackend{w}, p, o, hooks, conv);
}

double decode_ms_per_token(const RunResult& r) {
  const auto steps = r.stats.steps.size();
  return steps > 1 ? r.decode_ms / double(steps - 1) : 0.0;
}

double per_second(double n, double ms) { return ms > 0 ? 1000.0 * n / ms : 0.0; }

/// GPU memory: free before the first run (cudaMemGetInfo), to report what a run used.
struct GpuBaseline {
  bool known = false;
  std::uint64_t free = 0, total = 0;
};

std::string memory_text(const RunResult& r, const GpuBaseline& gpu) {
  std::string s = "memory: RSS " + (r.host.rss >= 0 ? format_bytes(std::uint64_t(r.host.rss)) : std::string("?")) +
                  " (peak " + (r.host.rss_peak >= 0 ? format_bytes(std::uint64_t(r.host.rss_peak)) : std::string("?")) + ")";
  if (r.gpu_free >= 0) {
    const std::uint64_t in_use = std::uint64_t(r.gpu_total - r.gpu_free);
    if (gpu.known && gpu.free >= std::uint64_t(r.gpu_free))
      s += ", GPU " + format_bytes(gpu.free - std::uint64_t(r.gpu_free)) + " used by this run";
    s += ", GPU " + format_bytes(in_use) + " of " + format_bytes(std::uint64_t(r.gpu_total)) + " in use";
  }
  return s;
}

void print_footer(const char* label, const RunResult& r, double load_ms, const GpuBaseline& gpu) {
  const double ms_tok = decode_ms_per_token(r);
  std::fprintf(stderr,
               "%s: load %.2f ms | prompt %d tokens, prefill %.2f ms (%.1f tok/s), TTFT %.2f ms | generated %zu tokens, "
               "%.3f ms/token (%.1f tok/s) | token-layers computed %.1f%% of dense in prefill, %.1f%% overall, "
               "%lld revivals | %s\n",
               label, load_ms, r.n_prompt, r.prefill_ms, per_second(double(r.n_prompt), r.prefill_ms), r.ttft_ms,
               r.ids.size(), ms_tok, per_second(1.0, ms_tok), 100.0 * r.stats.prefill_fraction(),
               r.stats.total_dense_token_layers()
                   ? 100.0 * double(r.stats.total_token_layers()) / double(r.stats.total_dense_token_layers())
                   : 100.0,
               static_cast<long long>(r.stats.total_revivals()), memory_text(r, gpu).c_str());
}

std::string join(const std::vector<std::int32_t>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(v[i]);
  }
  return s;
}

/// -f: the file's bytes (stdin for "-"), one trailing newline ("\n" or "\r\n") dropped.
std::string read_prompt_file(const std::string& path) {
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (std::cin.bad()) throw Error("-f -: cannot read the prompt from stdin");
  } else {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error("-f " + path + ": cannot open the prompt file (" + std::strerror(errno) + ")");
    text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    if (f.bad()) throw Error("-f " + path + ": cannot read the prompt file");
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  return text;
}

/// The text of `ids` generated after `prev` (what the stream printed).
std::string continuation_text(const Tokenizer& tok, std::int32_t prev, const std::vector<std::int32_t>& ids) {
  std::string s;
  for (auto id : ids) {
    s += tok.decode(prev, id);
    prev = id;
  }
  return s;
}

nlohmann::json memory_json(const RunResult& r, const GpuBaseline& gpu) {
  auto or_null = [](std::int64_t v) { return v >= 0 ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json j = {{"rss_bytes", or_null(r.host.rss)}, {"rss_peak_bytes", or_null(r.host.rss_peak)}};
  j["gpu_total_bytes"] = or_null(r.gpu_total);
  j["gpu_in_use_bytes"] = r.gpu_free >= 0 ? nlohmann::json(r.gpu_total - r.gpu_free) : nlohmann::json(nullptr);
  j["gpu_used_bytes"] = (r.gpu_free >= 0 && gpu.known && gpu.free >= std::uint64_t(r.gpu_free))
                            ? nlohmann::json(gpu.free - std::uint64_t(r.gpu_free))
                            : nlohmann::json(nullptr);
  return j;
}

nlohmann::json run_json(const std::string& policy, const RunResult& r, const std::optional<Tokenizer>& tok,
                        std::int32_t prev, double load_ms, const GpuBaseline& gpu) {
  nlohmann::json j;
  j["policy"] = policy;
  j["generated"] = r.ids;
  j["generated_tokens"] = r.ids.size();
  j["text"] = tok ? nlohmann::json(continuation_text(*tok, prev, r.ids)) : nlohmann::json(nullptr);
  j["stopped_eos"] = r.stopped_eos;
  j["context_full"] = r.context_full;
  j["load_ms"] = load_ms;
  j["prompt_tokens"] = r.n_prompt;
  j["prefill_ms"] = r.prefill_ms;
  j["prefill_tok_s"] = per_second(double(r.n_prompt), r.prefill_ms);
  j["ttft_ms"] = r.ttft_ms;
  j["decode_ms"] = r.decode_ms;
  j["decode_ms_per_token"] = decode_ms_per_token(r);
  j["decode_tok_s"] = per_second(1.0, decode_ms_per_token(r));
  j["memory"] = memory_json(r, gpu);
  j["stats"] = to_json(r.stats);
  return j;
}

nlohmann::json config_json(const RuntimeConfig& c) {
  return {{"dim", c.dim},
          {"hidden_dim", c.hidden_dim},
          {"n_layers", c.n_layers},
          {"n_heads", c.n_heads},
          {"n_kv_heads", c.n_kv_heads},
          {"vocab_size", c.vocab_size},
          {"max_seq_len", c.max_seq_len},
          {"norm_eps", c.norm_eps},
          {"rope_theta", c.rope_theta},
          {"rope_style", to_string(c.rope_style)},
          {"tied_embeddings", c.tied_embeddings},
          {"n_params", c.n_params()}};
}

int count_aux_layers(const AnyPolicy& p, int n_layers) {
  int n = 0;
  for (int l = 1; l < n_layers; ++l) n += p.prunes_into(l) ? 1 : 0;
  return n;
}

nlohmann::json need_json(const MemoryNeed& m, std::optional<std::uint64_t> available, const std::string& source) {
  return {{"weights_bytes", m.weights},   {"weights_dtype", m.weights_note},
          {"kv_cache_bytes", m.kv_cache}, {"aux_cache_bytes", m.aux_cache},
          {"activations_bytes", m.activations}, {"total_bytes", m.total()},
          {"available_bytes", available ? nlohmann::json(*available) : nlohmann::json(nullptr)},
          {"available_source", source}};
}

/// Before loading: the weights, KV cache, Aux Cache and activations for the requested context
/// must fit in available RAM (and, for CUDA, in free GPU memory). Throws Error with the numbers.
/// Also settles `--precision auto` (o.precision becomes fp32, fp16 or bf16; see --help): the
/// checkpoint's dtype, or bf16 when that is fp32 and only bf16 fits in GPU memory.
/// Returns what was checked (for --json); null when the model's shape could not be read (the
/// loader then reports the file's problem).
nlohmann::json check_memory(Options& o, const std::string& chosen) {
  const bool cuda = o.backend == "cuda";
  if (o.precision_auto) {
    const std::string dt = cuda ? peek_weight_dtype(o.model).value_or("bf16") : "f32";
    o.precision = dt == "f32" ? "fp32" : dt == "f16" ? "fp16" : "bf16";
    if (cuda)
      std::fprintf(stderr, "precision: %s (auto: the checkpoint's dtype%s)\n", o.precision.c_str(),
                   o.precision == "fp32" ? "; --precision bf16 is faster" : "");
  }
  const auto cfg = peek_config(o.model);
  if (!cfg) return nullptr;
  const int ctx = o.n_ctx ? std::min(o.n_ctx, cfg->max_seq_len) : cfg->max_seq_len;
  const AnyPolicy pol = make_policy(chosen, make_schedule(o.schedule, cfg->n_layers), o.sampler.seed, o.keep_recent);
  const int aux_layers = count_aux_layers(pol, cfg->n_layers);
  nlohmann::json j = {{"n_ctx", ctx}, {"aux_layers", aux_layers}, {"enforced", o.mem_check}};

  auto fail = [&](const MemoryNeed& need, std::uint64_t available, const std::string& source) {
    throw Error("not enough memory: " + o.model + " with -c " + std::to_string(ctx) + " needs " + need.breakdown() +
                " of " + need.where + ", but " + format_bytes(available) + " is available (" + source +
                "); use a smaller -c or a smaller model" +
                std::string(!cuda && cuda_device_available() ? ", try --backend cuda" : "") +
                std::string(cuda && o.precision == "fp32" ? ", try --precision bf16" : "") +
                ", or pass --no-mem-check to try anyway");
  };
  std::uint64_t free_b = 0, total_b = 0;
  std::string gpu_source = "cudaMemGetInfo";
  bool gpu_known = false;
  if (cuda) {
    gpu_known = cuda_memory_info(free_b, total_b);
    if (const char* env = std::getenv("LAZYLLM_AVAILABLE_GPU_MEMORY"))
      if (auto v = parse_bytes(env)) {
        free_b = *v;
        gpu_known = true;
        gpu_source = "LAZYLLM_AVAILABLE_GPU_MEMORY";
      }
    if (o.precision_auto && o.precision == "fp32" && gpu_known &&
        gpu_need(*cfg, ctx, aux_layers, 4, "fp32").total() > free_b &&
        gpu_need(*cfg, ctx, aux_layers, 2, "bf16").total() <= free_b) {
      std::fprintf(stderr, "precision: the fp32 checkpoint does not fit in GPU memory in fp32; computing in bf16\n");
      o.precision = "bf16";
    }
  }
  const int store_bytes = o.precision == "fp32" ? 4 : 2;  // settled above
  std::string host_source;
  const auto host_avail = host_available(&host_source);
  const MemoryNeed host = host_need(*cfg, ctx, aux_layers, !cuda, store_bytes, o.precision);
  j["host"] = need_json(host, host_avail, host_source);
  std::fprintf(stderr, "memory: %s of RAM needed, %s available\n", host.breakdown().c_str(),
               host_avail ? format_bytes(*host_avail).c_str() : "unknown");
  if (o.mem_check && host_avail && host.total() > *host_avail) fail(host, *host_avail, host_source);
  if (cuda) {
    const MemoryNeed gpu = gpu_need(*cfg, ctx, aux_layers, store_bytes, o.precision);
    j["gpu"] = need_json(gpu, gpu_known ? std::optional<std::uint64_t>(free_b) : std::nullopt, gpu_source);
    std::fprintf(stderr, "memory: %s of GPU memory needed, %s free\n", gpu.breakdown().c_str(),
                 gpu_known ? format_bytes(free_b).c_str() : "unknown");
    if (o.mem_check && gpu_known && gpu.total() > free_b) fail(gpu, free_b, gpu_source);
  }
  return j;
}

/// The text of one interactive turn as token ids. With --chat: the Llama 2 multi-turn format,
/// `<s>[INST] {user} [/INST] {answer} </s><s>[INST] {user} [/INST]`, where the answer is the
/// model's own tokens (already in the KV cache), so a later turn adds EOS + BOS "[INST] u [/INST]".
/// Without --chat: the raw text (BOS before the first turn only).
std::vector<std::int32_t> turn_tokens(const Options& o, const Tokenizer& tok, int turn, const std::string& text) {
  if (!o.chat) return tok.encode(text, turn == 0);
  std::vector<ChatMessage> msgs;
  if (turn == 0 && o.system_given) msgs.push_back({"system", o.system});
  msgs.push_back({"user", text});
  auto ids = llama2_chat_tokens(tok, msgs);
  if (turn > 0) ids.insert(ids.begin(), tok.eos_id());
  return ids;
}

int run(int argc, char** argv) {
  Options o = parse_args(argc, argv);

  // Tokenizer: -z, else tokenizer.model (or tokenizer.bin) beside an HF checkpoint's config.json.
  std::string tok_path = o.tokenizer;
  bool tok_auto = false;
  if (tok_path.empty()) {
    const auto dir = hf_directory(o.model);
    std::error_code ec;
    for (const char* name : {"tokenizer.model", "tokenizer.bin"})
      if (!dir.empty() && std::filesystem::is_regular_file(dir / name, ec)) {
        tok_path = (dir / name).string();
        tok_auto = true;
        break;
      }
  }
  const bool needs_text = o.text_given || o.interactive;
  if (o.text_given && tok_path.empty())
    throw UsageError("a text prompt (-p or -f) needs a tokenizer: give -z tokenizer.model (SentencePiece) or "
                     "-z tokenizer.bin (llama2.c), or use --prompt-ids");
  if (o.interactive && tok_path.empty())
    throw UsageError("-i needs a tokenizer (its turns are text): give -z tokenizer.model (SentencePiece) or "
                     "-z tokenizer.bin (llama2.c)");
  if (!o.prompt_file.empty()) o.prompt_text = read_prompt_file(o.prompt_file);
  std::optional<Tokenizer> tok;
  if (!tok_path.empty()) {
    try {
      tok = load_tokenizer(tok_path);
    } catch (const Error& e) {
      if (!tok_auto || needs_text) throw;
      std::fprintf(stderr, "warning: ignoring %s (%s); output stays token ids\n", tok_path.c_str(), e.what());
    }
  }

  const std::string chosen = (o.compare && o.policy == "dense") ? "lazy" : o.policy;
  const nlohmann::json mem_check = check_memory(o, chosen);

  const auto t_load = Clock::now();
  // The CUDA backend reads fp16/bf16 checkpoints straight from the mapped file (no fp32 host copy).
  const ModelWeights w = load_model(o.model, LoadOptions{.keep_source_dtype = o.backend == "cuda"});
  const double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_load).count();
  std::fprintf(stderr, "model: %s (%s, %.2fM params, %s)\nload: %.2f ms\n", o.model.c_str(),
               [&] { std::ostringstream s; s << w.config; return s.str(); }().c_str(),
               double(w.config.n_params()) / 1e6, w.source_dtype.c_str(), load_ms);
  if (tok && tok->vocab_size() != w.config.vocab_size) {
    const std::string msg = "the tokenizer's vocabulary (" + std::to_string(tok->vocab_size()) + " pieces, " +
                            tok_path + ") does not match the model's (" + std::to_string(w.config.vocab_size) +
                            "); use the tokenizer the model was trained with";
    if (!tok_auto || needs_text) throw UsageError(msg);
    std::fprintf(stderr, "warning: ignoring %s: %s\n", tok_path.c_str(), msg.c_str());
    tok.reset();
  }
  if (tok) std::fprintf(stderr, "tokenizer: %s (%d pieces)\n", tok_path.c_str(), tok->vocab_size());
  std::string prompt_kind = o.prompt_given ? "ids" : "default";
  if (o.text_given && !o.interactive) {
    const auto t_tok = Clock::now();
    if (o.chat) {
      std::vector<ChatMessage> msgs;
      if (o.system_given) msgs.push_back({"system", o.system});
      msgs.push_back({"user", o.prompt_text});
      o.prompt = llama2_chat_tokens(*tok, msgs);
      prompt_kind = "chat";
    } else {
      o.prompt = tok->encode(o.prompt_text, true);
      prompt_kind = "text";
    }
    std::fprintf(stderr, "prompt: %zu tokens (%s, encoded in %.1f ms)\n", o.prompt.size(), prompt_kind.c_str(),
                 std::chrono::duration<double, std::milli>(Clock::now() - t_tok).count());
  }
  const int ctx = o.n_ctx ? o.n_ctx : w.config.max_seq_len;
  if (!o.interactive && std::int64_t(o.prompt.size()) > ctx)
    throw UsageError("prompt of " + std::to_string(o.prompt.size()) + " tokens does not fit the context of " +
                     std::to_string(ctx) + " tokens");
  if (o.n_ctx > w.config.max_seq_len)
    throw UsageError("-c " + std::to_string(o.n_ctx) + " exceeds the model's context of " +
                     std::to_string(w.config.max_seq_len));

  const Schedule schedule = make_schedule(o.schedule, w.config.n_layers);
  const AnyPolicy pol = make_policy(chosen, schedule, o.sampler.seed, o.keep_recent);

  std::string demo_answer;
  if (o.demo_qa) {
    // One question from the task generator (the same as `lazyllm-make-task`), seed = --seed.
    if (!tok) throw Error("the demo model " + o.model + " has no tokenizer.bin beside it");
    constexpr int kDemoTokens = 1024;
    const eval::TaskGenerator gen({.seed = o.sampler.seed, .length = kDemoTokens, .variant = eval::Variant::Single},
                                  eval::token_counter(*tok));
    const eval::TaskExample ex = gen.example(0);
    o.prompt = tok->encode(ex.prompt(), true);
    demo_answer = ex.answers.at(0);
    std::fprintf(stderr,
                 "demo: a question about one of %d documents (%zu tokens; the answer is in document %d), as made by\n"
                 "      lazyllm-make-task --seed %llu --count 1 --length %d --variant single -z %s --emit-prompt\n"
                 "demo: Question: %s\ndemo: expected answer: %s\n",
                 ex.n_docs, o.prompt.size(), ex.answer_doc + 1, static_cast<unsigned long long>(o.sampler.seed),
                 kDemoTokens, tok_path.c_str(), ex.input.c_str(), demo_answer.c_str());
    prompt_kind = "demo";
  } else if (o.demo) {
    // A long prompt the model finds natural: its own greedy continuation of BOS.
    Options gen = o;
    gen.n_predict = std::min(255, w.config.max_seq_len / 2);
    gen.sampler = SamplerParams{};
    const auto made = run_policy(w, policy::Dense{}, gen);
    o.prompt.assign(1, 1);
    o.prompt.insert(o.prompt.end(), made.ids.begin(), made.ids.end());
    std::fprintf(stderr, "demo: prompt = BOS + the model's own %zu-token greedy continuation; then %d tokens with dense and with lazy\n",
                 made.ids.size(), o.n_predict);
    prompt_kind = "demo";
  }
  GpuBaseline gpu;
  if (o.backend == "cuda") gpu.known = cuda_memory_info(gpu.free, gpu.total);

  // Streaming: the chosen run's text goes to stdout piece by piece (unless --print-ids).
  std::int32_t last_prompt_id = o.prompt.empty() ? 1 : o.prompt.back();
  const bool stream = tok && !o.print_ids;
  Hooks hooks;
  hooks.progress = true;
  hooks.progress_always = o.progress;
  hooks.tty = isatty(fileno(stderr)) != 0;
  std::int32_t stream_prev = last_prompt_id;
  if (stream)
    hooks.on_token = [&](std::int32_t id) {
      const std::string piece = tok->decode(stream_prev, id);
      stream_prev = id;
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };

  nlohmann::json j;  // --json
  j["model"] = o.model;
  j["source_dtype"] = w.source_dtype;
  j["config"] = config_json(w.config);
  j["backend"] = o.backend;
  if (o.backend == "cuda") {
    j["precision"] = o.precision;
    j["device_select"] = o.device_select.value_or(o.precision == "bf16");  // where the percentile rule ran
  }
  j["policy"] = chosen;
  j["schedule"] = schedule.to_string();
  j["compare"] = o.compare;
  j["interactive"] = o.interactive;
  j["n_ctx"] = ctx;
  j["n_predict"] = o.n_predict;
  j["sampler"] = {{"temperature", o.sampler.temperature}, {"top_k", o.sampler.top_k}, {"top_p", o.sampler.top_p},
                  {"repeat_penalty", o.sampler.repeat_penalty}, {"seed", o.sampler.seed}};
  j["tokenizer"] = tok ? nlohmann::json(tok_path) : nlohmann::json(nullptr);
  j["load_ms"] = load_ms;
  j["memory_check"] = mem_check;
  auto write_json = [&] {
    if (o.json_file.empty()) return;
    std::ofstream f(o.json_file);
    // Generated text may hold a partial UTF-8 sequence: replace it rather than fail the dump.
    if (!(f << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n'))
      throw Error("cannot write --json file " + o.json_file);
  };
  auto write_stats = [&](const RunStats& stats, std::size_t n_prompt, const std::vector<std::int32_t>& generated,
                         double prefill_ms, double decode_ms) {
    if (o.stats_file.empty()) return;
    nlohmann::json s = to_json(stats);
    s["model"] = o.model;
    s["prompt_tokens"] = n_prompt;
    s["generated"] = generated;
    s["load_ms"] = load_ms;
    s["prefill_ms"] = prefill_ms;
    s["decode_ms"] = decode_ms;
    std::ofstream f(o.stats_file);
    if (!(f << s.dump(2) << '\n')) throw Error("cannot write --stats file " + o.stats_file);
  };

  if (o.interactive) {
    const bool tty_in = isatty(fileno(stdin)) != 0;
    nlohmann::json turns = nlohmann::json::array();
    std::vector<std::string> user_text;
    std::vector<std::vector<std::int32_t>> turn_ids;
    std::vector<std::int32_t> all_generated;
    double prefill_total = 0, decode_total = 0;
    std::size_t prompt_total = 0;
    if (tty_in)
      std::fprintf(stderr, "interactive: one turn per line, end with Ctrl-D (EOF)%s\n",
                   o.chat ? "; each turn is a Llama 2 [INST] message" : "");
    Conversation conv;
    conv.next = [&](int t) -> std::optional<std::vector<std::int32_t>> {
      std::string text;
      if (t == 0 && o.text_given) {
        text = o.prompt_text;
      } else {
        std::string line;
        for (;;) {
          if (tty_in) {
            std::fputs("> ", stderr);
            std::fflush(stderr);
          }
          if (!std::getline(std::cin, line)) return std::nullopt;
          if (!line.empty() && line.back() == '\r') line.pop_back();
          if (!detail::strip_whitespace(line).empty()) break;
        }
        text = line;
      }
      auto ids = turn_tokens(o, *tok, t, text);
      user_text.push_back(text);
      turn_ids.push_back(ids);
      stream_prev = ids.back();
      return ids;
    };
    conv.done = [&](int t, const RunResult& r) {
      if (stream) {
        std::fputc('\n', stdout);
        std::fflush(stdout);
      }
      if (o.print_ids) {
        std::printf("%s\n", join(r.ids).c_str());
        std::fflush(stdout);
      }
      const std::string label = "turn " + std::to_string(t + 1);
      std::fprintf(stderr, "%s: %d tokens appended to the %d already in the KV cache (context %d of %d tokens)%s\n",
                   label.c_str(), r.n_prompt, r.cache_before, r.cache_after, ctx,
                   r.stopped_eos ? ", answer ended at EOS" : "");
      print_footer(label.c_str(), r, load_ms, gpu);
      if (r.context_full)
        std::fprintf(stderr, "%s: the context is full (%d of %d tokens): the answer was cut off; start again with a "
                             "larger -c to go on\n", label.c_str(), r.cache_after, ctx);
      nlohmann::json tj = run_json(chosen, r, tok, turn_ids.back().back(), load_ms, gpu);
      tj["turn"] = t + 1;
      tj["user"] = user_text.back();
      tj["ids"] = turn_ids.back();
      tj["cache_before"] = r.cache_before;
      tj["cache_after"] = r.cache_after;
      turns.push_back(std::move(tj));
      all_generated.insert(all_generated.end(), r.ids.begin(), r.ids.end());
      prefill_total += r.prefill_ms;
      decode_total += r.decode_ms;
      prompt_total += std::size_t(r.n_prompt);
    };
    const ConversationEnd end = run_conversation(w, pol, o, hooks, conv);
    std::fprintf(stderr, "interactive: %zu turn(s), %zu prompt tokens prefilled, %zu tokens generated\n", turns.size(),
                 prompt_total, all_generated.size());
    write_stats(end.stats, prompt_total, all_generated, prefill_total, decode_total);
    j["prompt"] = {{"source", o.chat ? "chat" : "text"},
                   {"system", o.system_given ? nlohmann::json(o.system) : nlohmann::json(nullptr)}};
    j["turns"] = std::move(turns);
    j["error"] = end.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(end.error);
    write_json();
    if (!end.error.empty()) throw UsageError(end.error);
    return 0;
  }

  // Warm-up, so both timed runs start equal. On the GPU the pruned run also needs its own: its
  // first use loads the selection / gather kernels and asks cuBLASLt for the smaller row counts,
  // which cost more than this small model's whole prefill (seen on an H200: 16.5 ms cold against
  // 2.2 ms dense at 1k tokens; lazyllm-eval's warm per-example mean is 0.8 ms).
  if (o.compare) {
    run_policy(w, policy::Dense{}, o);
    if (o.backend == "cuda") run_policy(w, pol, o);
  }
  RunResult dense;
  if (o.compare) {
    Hooks dense_hooks = hooks;  // progress only: the chosen policy's run is the one that streams
    dense_hooks.on_token = {};
    dense = run_policy(w, policy::Dense{}, o, dense_hooks);
    std::fprintf(stderr, "[dense] ids: %s\n", join(dense.ids).c_str());
    if (tok) std::fprintf(stderr, "[dense] text: %s\n", continuation_text(*tok, last_prompt_id, dense.ids).c_str());
    print_footer("dense", dense, load_ms, gpu);
    if (stream) std::fprintf(stderr, "[%s] text on stdout:\n", chosen.c_str());
  }
  const RunResult r = run_policy(w, pol, o, hooks);
  if (stream) {
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  if (o.compare) std::fprintf(stderr, "[%s] ids: %s\n", chosen.c_str(), join(r.ids).c_str());
  print_footer(chosen.c_str(), r, load_ms, gpu);
  std::size_t agree = 0;
  while (agree < r.ids.size() && agree < dense.ids.size() && r.ids[agree] == dense.ids[agree]) ++agree;
  const double speedup = r.prefill_ms > 0 ? dense.prefill_ms / r.prefill_ms : 0.0;
  if (o.compare) {
    std::fprintf(stderr, "compare: schedule %s | TTFT dense %.2f ms, %s %.2f ms, speedup %.2fx | first %zu of %zu generated tokens agree\n",
                 schedule.to_string().c_str(), dense.prefill_ms, chosen.c_str(), r.prefill_ms, speedup, agree,
                 std::max(r.ids.size(), dense.ids.size()));
  }
  if (o.demo_qa && tok) {
    auto verdict = [&](const RunResult& run) {
      const std::string text = continuation_text(*tok, last_prompt_id, run.ids);
      return "'" + std::string(detail::strip_whitespace(text)) + "' (" +
             (eval::exact_match(text, demo_answer) == 1.0 ? "right" : "wrong") + ")";
    };
    std::fprintf(stderr, "demo: expected '%s'; dense answered %s, %s answered %s\n", demo_answer.c_str(),
                 verdict(dense).c_str(), chosen.c_str(), verdict(r).c_str());
    j["demo_answer"] = demo_answer;
  }
  write_stats(r.stats, o.prompt.size(), r.ids, r.prefill_ms, r.decode_ms);
  nlohmann::json prompt = {{"source", prompt_kind}, {"tokens", o.prompt.size()}, {"ids", o.prompt}};
  if (o.text_given) prompt["text"] = o.prompt_text;
  if (o.chat) prompt["system"] = o.system_given ? nlohmann::json(o.system) : nlohmann::json(nullptr);
  j["prompt"] = prompt;
  j["prompt_tokens"] = o.prompt.size();
  j["run"] = run_json(chosen, r, tok, last_prompt_id, load_ms, gpu);
  if (o.compare) {
    j["dense"] = run_json("dense", dense, tok, last_prompt_id, load_ms, gpu);
    j["comparison"] = {{"ttft_dense_ms", dense.prefill_ms},
                       {"ttft_ms", r.prefill_ms},
                       {"ttft_speedup", speedup},
                       {"agreeing_prefix", agree},
                       {"generated_max", std::max(r.ids.size(), dense.ids.size())},
                       {"prefill_fraction", r.stats.prefill_fraction()}};
  }
  write_json();
  if (o.print_ids) std::printf("%s\n", join(r.ids).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return lazyllm::cli::run_main("lazyllm-llama2", [&] { return run(argc, argv); });
}
