// SPDX-License-Identifier: MIT
// lazyllm-llama2's command line: the usage text and parse_args().
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "../common/gpu_probe.hpp"
#include "lazyllm/policy/any.hpp"
#include "lazyllm/policy/lazy.hpp"
#include "options.hpp"

namespace lazyllm::driver {

namespace {

const char* kUsage = R"(usage: lazyllm-llama2 [options]

  -m PATH               llama2.c .bin file or Hugging Face model directory
                        (default: the built-in demo model, which also turns on --compare)
  -z PATH               tokenizer: Hugging Face tokenizer.json (Llama 3, Qwen), SentencePiece
                        .model or llama2.c tokenizer.bin (default for a Hugging Face directory:
                        tokenizer.model beside config.json, else tokenizer.json, else tokenizer.bin)
  -p, --prompt TEXT     text prompt, encoded with BOS (needs a tokenizer)
  -f, --file FILE       text prompt read from FILE (- = stdin; one trailing newline dropped)
  --prompt-ids IDS      comma-separated token ids, used as given (default: 1 = BOS)
                        (-p, -f and --prompt-ids are alternatives: give at most one)
  --chat                wrap the text prompt in the model's chat format as the user message: the
                        chat_template of tokenizer_config.json beside the tokenizer (Llama 3,
                        ChatML for Qwen), else Llama 2's [INST]
  --system TEXT         the chat's system prompt (needs --chat)
  -sys, --system-prompt TEXT
                        the same, and turns --chat on (llama.cpp's spelling)
  --verbose-prompt      print the prompt as the model sees it (templated text and token ids)
  -i, --interactive     chat on: read one turn per line of stdin until EOF, answer each; the
                        KV cache is kept, so a turn prefills only its own tokens (-p/-f, if
                        given, is the first turn; with --chat each turn is a [INST] message)
  -n, --n-predict N     tokens to generate (default 64; -1 = until EOS or the context is full);
                        stops early at BOS or EOS (config.json's ids; 1 and 2 without one) and
                        at the chat format's end-of-turn token
  --ignore-eos          do not stop at BOS/EOS: generate all -n tokens
  -c, --ctx-size N      context size (default 0 = the model's); the memory check sizes the KV
                        and Aux Cache for it
  -t, --threads N       CPU threads (default: $LAZYLLM_THREADS, else every core)
  --tp N                tensor parallel over N ranks on the CPU: one thread per rank, each
                        holding 1/N of the attention heads and of the FFN (default 1). The
                        output is the same as with 1 rank; N must split the model's heads
  --temp T              temperature, 0 = greedy (default 0)
  --top-k K, --top-p P  sampling filters (default off: 0, 1)
  --min-p P             drop tokens less likely than P times the most likely one (default 0 = off)
  --repeat-penalty R    penalise recently generated ids (default 1 = off)
  -s, --seed S          sampling seed (default 0; -1 = a random seed, printed)
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
  --print-ids           print the generated ids on one line of stdout (instead of the text;
                        without a tokenizer the ids are printed anyway)
  --progress            per-layer prefill progress on stderr for every prompt (default: only
                        for prompts of 1024 tokens or more)
  --check-weights       read every weight once after loading and refuse NaN or Inf
  --no-mem-check        skip the check that weights + KV cache + Aux Cache + activations fit
                        in free RAM (CPU) or GPU memory (CUDA) before loading
  --version             the version and the commit it was built from
  -h, --help            this text
With a tokenizer the generated text streams to stdout as it is produced; --print-ids (or no
tokenizer) prints the ids instead. Everything else goes to stderr. Exit codes: 0 ok, 1 input or
runtime error (a missing or corrupt file, not enough memory, non-finite logits), 2 usage error
(including a prompt or turn that does not fit the context).
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

}  // namespace

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
    else if (a == "--prompt-ids") {
      o.prompt = parse_ids(value());
      ++o.prompt_sources;
    } else if (a == "-p" || a == "--prompt") {
      o.prompt_text = value();
      o.text_given = true;
      ++o.prompt_sources;
    } else if (a == "-f" || a == "--file") {
      o.prompt_file = value();
      o.text_given = true;
      ++o.prompt_sources;
    } else if (a == "-z" || a == "--tokenizer")
      o.tokenizer = value();
    else if (a == "--chat")
      o.chat = true;
    else if (a == "--system") {
      o.system = value();
      o.system_given = true;
    } else if (a == "--system-prompt" || a == "-sys") {
      o.system = value();
      o.system_given = o.chat = true;
    } else if (a == "--verbose-prompt")
      o.verbose_prompt = true;
    else if (a == "--json")
      o.json_file = value();
    else if (a == "-n" || a == "--n-predict")
      o.n_predict = int(cli::parse_int(a, value(), -1));
    else if (a == "--ignore-eos")
      o.ignore_eos = true;
    else if (a == "-c" || a == "--ctx-size")
      o.n_ctx = int(cli::parse_int(a, value(), 0));
    else if (a == "-t" || a == "--threads")
      o.threads = int(cli::parse_int(a, value(), 1, 4096));
    else if (a == "--tp")
      o.tp = int(cli::parse_int(a, value(), 1, 1024));
    else if (a == "--temp") {
      o.sampler.temperature = float(cli::parse_float(a, value(), 0.0, 1e6));
    } else if (a == "--top-k") {
      o.sampler.top_k = int(cli::parse_int(a, value(), 0));
      o.sampling_filter_given = a;
    } else if (a == "--top-p") {
      o.sampler.top_p = float(cli::parse_float(a, value(), 0.0, 1.0));
      o.sampling_filter_given = a;
    } else if (a == "--min-p") {
      o.min_p = float(cli::parse_float(a, value(), 0.0, 1.0));
      o.sampling_filter_given = a;
    } else if (a == "--repeat-penalty")
      o.sampler.repeat_penalty = float(cli::parse_float(a, value(), 0.0, 1e6));
    else if (a == "-s" || a == "--seed") {
      const std::string v = value();
      o.random_seed = v == "-1";
      if (!o.random_seed) o.sampler.seed = cli::parse_u64(a, v);
    } else if (a == "--backend")
      o.backend = value();
    else if (a == "--precision")
      o.precision = value();
    else if (a == "--policy")
      o.policy = value();
    else if (a == "--keep-recent")
      o.keep_recent = int(cli::parse_int(a, value(), 0));
    else if (a == "--schedule") {
      o.schedule = value();
      o.schedule_given = true;
    } else if (a == "--stats")
      o.stats_file = value();
    else if (a == "--print-ids")
      o.print_ids = true;
    else if (a == "--compare")
      o.compare = true;
    else if (a == "--device-select" || a == "--no-device-select")
      o.device_select = a == "--device-select";
    else if (a == "-i" || a == "--interactive")
      o.interactive = true;
    else if (a == "--progress")
      o.progress = true;
    else if (a == "--no-mem-check")
      o.mem_check = false;
    else if (a == "--check-weights")
      o.check_weights = true;
    else if (a == "--version") {
      std::printf("lazyllm-llama2 %s (commit %s)\n", LAZYLLM_VERSION, LAZYLLM_BUILD_COMMIT);
      std::exit(0);
    } else
      throw UsageError("unknown option '" + a + "' (see -h)");
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
  if (o.tp > 1) {
    // Tensor parallel over GPUs is lazyllm::TpCudaBackend (docs/tensor_parallel.md); the driver
    // runs it on the CPU reference.
    if (o.backend == "cuda")
      throw UsageError(
          "--tp runs on the CPU backend in this driver (--backend cpu); over several GPUs see "
          "lazyllm-bench-tp-cuda and docs/tensor_parallel.md");
    if (o.interactive) throw UsageError("--tp and -i cannot be combined (give one prompt with -p or -f)");
    o.backend = "cpu";
  }
  if (o.backend == "auto") o.backend = cli::gpu_available() ? "cuda" : "cpu";
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
  if (o.random_seed) {
    std::random_device rd;
    o.sampler.seed = (std::uint64_t(rd()) << 32) | rd();
  }
  if (o.threads > 0) setenv("LAZYLLM_THREADS", std::to_string(o.threads).c_str(), 1);
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

}  // namespace lazyllm::driver
