// SPDX-License-Identifier: MIT
// lazyllm-server: an OpenAI-compatible HTTP server on lazyllm's engine (continuous batching, a
// LazyLLM schedule per request). Usage: lazyllm-server -h
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <optional>
#include <string>
#include <thread>

#include "../common/cli.hpp"
#include "../common/model_files.hpp"
#include "../common/synthetic.hpp"
#include "chat_format.hpp"
#include "factory.hpp"
#include "http.hpp"
#include "lazyllm/io/load.hpp"
#include "lazyllm/policy/lazy.hpp"
#include "lazyllm/text/chat.hpp"
#include "lazyllm/text/tokenizer.hpp"

namespace {

using namespace lazyllm;
using namespace lazyllm::server;
using cli::UsageError;

const char* kUsage = R"(usage: lazyllm-server [options]

An OpenAI-compatible HTTP server on lazyllm's engine: many requests at once, each pruned by
LazyLLM with its own schedule ("lazyllm": {"schedule": "..."} in a request). Endpoints:
POST /v1/completions, /v1/chat/completions, /tokenize, /detokenize; GET /v1/models, /health,
/metrics (Prometheus); a chat page at /.

model
  -m PATH               llama2.c .bin file or Hugging Face model directory (default: the
                        built-in demo model, models/lazyqa)
  --synthetic SHAPE     random weights of a real shape instead of -m: llama2-7b, llama2-13b,
                        llama3.1-8b, llama3.1-70b, llama3.2-1b, llama3.2-3b, qwen2.5-7b,
                        mistral-7b, tiny (for benchmarks: prompts as token ids, no text out)
  -z PATH               tokenizer: Hugging Face tokenizer.json (Llama 3, Qwen), SentencePiece
                        .model or llama2.c tokenizer.bin (default: tokenizer.model, else
                        tokenizer.json, else tokenizer.bin beside a Hugging Face model)
  -a, --alias NAME      the model's id in the API (default: its file or folder name)
  --chat-format F       how chat messages become a prompt: llama2 | llama3 | chatml | qa
                        (default: the chat_template of tokenizer_config.json beside a
                        tokenizer.json; else qa for lazyllm's lazyqa models, else llama2)
serving
  --host ADDR           address to listen on (default 127.0.0.1: this machine only)
  --port N              port (default 8080; 0 = any free port, printed at start)
  -np, --parallel N     requests in the engine at once (default 4)
  --queue N             requests that may wait beyond those; more get HTTP 503 (default 64)
  -c, --ctx-size N      tokens per request, prompt and generated (default: the model's)
  --kv-blocks N         the KV/Aux block pool, in blocks of --block-tokens tokens (default:
                        room for --parallel dense requests of -c tokens, and one
                        more for the Aux Cache)
  --pool-mb MB          the pool's size in MiB instead
  --block-tokens N      tokens per block (default 16)
  -b, --batch-size N    most tokens one engine step feeds (default 8192; a longer prompt gets
                        a step of its own)
  --prefill-chunk N     prefill prompts N tokens per step (default 0: whole prompts; LazyLLM
                        then selects per chunk, the same whatever else runs)
  --schedule S          LazyLLM schedule for requests that give none: LAYER:PERCENTILE,... or
                        a preset (none, gentle, default, aggressive); default none (dense)
compute
  --backend B           cpu | cuda | auto (default auto: cuda when this build has the CUDA
                        server and a GPU is present, else cpu)
  --precision P         (cuda) storage type: auto | bf16 | fp16 | fp32 (default auto: fp16
                        for fp16 checkpoints, else bf16)
  -t, --threads N       CPU threads (default: all cores)
security
  --api-key KEY         require "Authorization: Bearer KEY" on every endpoint but / and
                        /health (default: $LAZYLLM_API_KEY when set)
  --timeout S           socket read/write timeout in seconds (default 600)
  --max-body BYTES      largest request body; larger ones get 413 (default 8388608)
  --threads-http N      HTTP handler threads (default: parallel + queue + 16)
  -h, --help            this text
Exit codes: 0 stopped by SIGINT/SIGTERM, 1 runtime error (model, port), 2 usage error.
)";

struct Options {
  std::string model, synthetic, tokenizer, alias, chat_format;
  HttpOptions http;
  SchedulerOptions sched;
  double pool_mb = 0;
  std::string schedule = "none";
  std::string backend = "auto", precision = "auto";
  int threads = 0;
};

Options parse_args(int argc, char** argv) {
  Options o;
  if (const char* k = std::getenv("LAZYLLM_API_KEY")) o.http.api_key = k;
  auto num = [](const std::string& f, const std::string& v, long long min) { return cli::parse_int(f, v, min); };
  for (cli::Args args(argc, argv); args.next();) {
    const std::string a = args.flag();
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "-m" || a == "--model")
      o.model = args.value();
    else if (a == "--synthetic")
      o.synthetic = args.value();
    else if (a == "-z" || a == "--tokenizer")
      o.tokenizer = args.value();
    else if (a == "-a" || a == "--alias")
      o.alias = args.value();
    else if (a == "--chat-format")
      o.chat_format = args.value();
    else if (a == "--host")
      o.http.host = args.value();
    else if (a == "--port")
      o.http.port = int(num(a, args.value(), 0));
    else if (a == "-np" || a == "--parallel")
      o.sched.parallel = int(num(a, args.value(), 1));
    else if (a == "--queue")
      o.sched.max_queue = int(num(a, args.value(), 0));
    else if (a == "-c" || a == "--ctx-size")
      o.sched.n_ctx = int(num(a, args.value(), 1));
    else if (a == "--kv-blocks")
      o.sched.pool_blocks = num(a, args.value(), 1);
    else if (a == "--pool-mb")
      o.pool_mb = double(num(a, args.value(), 1));
    else if (a == "--block-tokens")
      o.sched.block_tokens = int(num(a, args.value(), 1));
    else if (a == "-b" || a == "--batch-size")
      o.sched.step_tokens = int(num(a, args.value(), 0));
    else if (a == "--prefill-chunk")
      o.sched.prefill_chunk = int(num(a, args.value(), 0));
    else if (a == "--schedule")
      o.schedule = args.value();
    else if (a == "--backend")
      o.backend = args.value();
    else if (a == "--precision")
      o.precision = args.value();
    else if (a == "-t" || a == "--threads")
      o.threads = int(num(a, args.value(), 1));
    else if (a == "--api-key")
      o.http.api_key = args.value();
    else if (a == "--timeout")
      o.http.timeout_s = int(num(a, args.value(), 1));
    else if (a == "--max-body")
      o.http.max_body = std::size_t(num(a, args.value(), 1));
    else if (a == "--threads-http")
      o.http.threads = int(num(a, args.value(), 1));
    else
      throw UsageError("unknown option '" + a + "' (see -h)");
  }
  if (o.http.port > 65535) throw UsageError("--port " + std::to_string(o.http.port) + " is not a port (0..65535)");
  if (!o.model.empty() && !o.synthetic.empty()) throw UsageError("-m and --synthetic are alternatives: give one");
  if (o.sched.pool_blocks > 0 && o.pool_mb > 0)
    throw UsageError("--kv-blocks and --pool-mb are alternatives: give one");
  if (o.pool_mb > 0) o.sched.pool_bytes = std::int64_t(o.pool_mb * 1024 * 1024);
  if (o.backend != "cpu" && o.backend != "cuda" && o.backend != "auto")
    throw UsageError("--backend '" + o.backend + "' is not one of cpu, cuda, auto");
  if (o.precision != "auto" && o.precision != "bf16" && o.precision != "fp16" && o.precision != "fp32")
    throw UsageError("--precision '" + o.precision + "' is not one of auto, bf16, fp16, fp32");
  if (o.backend == "auto") o.backend = cuda_server_built() && cuda_device_present() ? "cuda" : "cpu";
  if (o.backend == "cuda" && !cuda_server_built())
    throw Error(
        "--backend cuda: this build of lazyllm-server has no CUDA server (configure with "
        "-DLAZYLLM_SERVER_CUDA=ON on a machine with nvcc)");
  if (o.precision != "auto" && o.backend != "cuda")
    throw UsageError("--precision applies to the CUDA backend (the CPU reference computes in fp32)");
  if (o.http.threads == 0) o.http.threads = o.sched.parallel + o.sched.max_queue + 16;
  if (o.model.empty() && o.synthetic.empty()) o.model = LAZYLLM_DEFAULT_MODEL;
  return o;
}

bool loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

int run(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  if (o.threads > 0) ::setenv("LAZYLLM_THREADS", std::to_string(o.threads).c_str(), 1);  // before any CPU work

  // SIGINT/SIGTERM are taken by one thread (below); every thread started from here blocks them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  // The model and its tokenizer.
  ModelWeights w;
  std::string tok_path = o.tokenizer;
  std::string id = o.alias;
  if (!o.synthetic.empty()) {
    w = synthetic_weights(synthetic_config(o.synthetic), 1);
    if (id.empty()) id = "synthetic-" + o.synthetic;
  } else {
    std::error_code ec;
    if (!std::filesystem::exists(o.model, ec)) throw Error("-m " + o.model + ": no such file or directory");
    w = load_model(o.model, LoadOptions{.keep_source_dtype = o.backend == "cuda"});
    if (tok_path.empty()) tok_path = cli::tokenizer_beside(o.model);
    if (id.empty()) {
      std::filesystem::path p(o.model);
      if (p.filename().empty()) p = p.parent_path();
      id = p.filename().string();
    }
  }
  const RuntimeConfig& c = w.config;
  std::optional<Tokenizer> tok;
  if (!tok_path.empty()) {
    tok = load_tokenizer(tok_path);
    if (!cli::tokenizer_fits(tok_path, tok->vocab_size(), c.vocab_size)) {
      const std::string msg = "the tokenizer's vocabulary (" + std::to_string(tok->vocab_size()) + " pieces, " +
                              tok_path + ") does not match the model's (" + std::to_string(c.vocab_size) + ")";
      if (!o.tokenizer.empty()) throw UsageError(msg);
      std::fprintf(stderr, "lazyllm-server: warning: %s: prompts as token ids only\n", msg.c_str());
      tok.reset();
    }
  }
  // A tokenizer.json's directory declares the chat format (tokenizer_config.json's chat_template).
  std::optional<ChatTemplate> declared;
  if (tok && std::filesystem::path(tok_path).extension() == ".json") {
    try {
      declared = read_chat_template(std::filesystem::path(tok_path).parent_path());
    } catch (const Error& e) {
      if (o.chat_format.empty())
        std::fprintf(stderr, "lazyllm-server: warning: %s; chat requests use the %s format (see --chat-format)\n",
                     e.what(), default_chat_format(o.model).c_str());
    }
  }
  // Generation stops at the model's BOS/EOS and end-of-turn ids (else the tokenizer's BOS/EOS).
  if (o.synthetic.empty()) {
    auto ids = cli::stop_ids(o.model, tok ? &*tok : nullptr, tok_path, declared ? &*declared : nullptr, c.vocab_size);
    if (ids.empty() && tok) {
      for (const std::int32_t id : {tok->bos_id(), tok->eos_id()})
        if (id >= 0) ids.push_back(id);
    }
    if (!ids.empty()) o.sched.stop_ids = std::move(ids);
  }
  ServedModel served;
  served.id = id;
  served.path = o.synthetic.empty() ? o.model : "synthetic:" + o.synthetic;
  if (tok) {
    try {
      served.chat = pick_chat_format(o.chat_format, o.model, declared);
    } catch (const InvalidArgument& e) {
      throw UsageError(std::string("--chat-format: ") + e.what());
    }
  } else if (!o.chat_format.empty()) {
    throw UsageError("--chat-format needs a tokenizer (-z)");
  }
  served.tokenizer = tok;
  try {
    policy::schedule_from_string(o.schedule, c.n_layers);
  } catch (const InvalidArgument& e) {
    throw UsageError(std::string("--schedule: ") + e.what());
  }
  served.default_schedule = o.schedule;

  std::string precision = o.precision;
  if (precision == "auto") precision = w.source_dtype == "f16" ? "fp16" : "bf16";
  std::unique_ptr<Service> service;
  try {
    service = o.backend == "cuda" ? make_cuda_service(std::move(w), o.sched, precision)
                                  : make_cpu_service(std::move(w), o.sched);
  } catch (const InvalidArgument& e) {
    throw UsageError(e.what());
  } catch (const std::bad_alloc&) {
    throw Error("not enough memory for the model and its KV block pool" +
                std::string(o.sched.pool_bytes    ? " of " + std::to_string(o.sched.pool_bytes >> 20) + " MiB"
                            : o.sched.pool_blocks ? " of " + std::to_string(o.sched.pool_blocks) + " blocks"
                                                  : "") +
                ": give a smaller --pool-mb or --kv-blocks (or -np, -c)");
  }
  const Metrics m = service->metrics();
  std::fprintf(
      stderr,
      "lazyllm-server: model %s (%s, %d layers, vocab %d), backend %s%s, context %d tokens, %d parallel, queue "
      "%d, pool %lld blocks (%.1f MiB), schedule %s, chat format %s%s\n",
      id.c_str(), served.path.c_str(), c.n_layers, c.vocab_size, service->backend_name().c_str(),
      o.backend == "cuda" ? (" " + precision).c_str() : "", service->n_ctx(), o.sched.parallel, o.sched.max_queue,
      static_cast<long long>(m.pool_blocks_total), double(m.pool_bytes) / (1 << 20), o.schedule.c_str(),
      served.chat ? served.chat->name.c_str() : "none (no tokenizer)",
      o.http.api_key.empty() ? "" : ", API key required");
  if (!loopback(o.http.host) && o.http.api_key.empty())
    std::fprintf(stderr,
                 "lazyllm-server: warning: listening on %s without --api-key: anyone who can reach it may use it\n",
                 o.http.host.c_str());

  HttpServer http(*service, std::move(served), o.http);
  const int port = http.bind();
  // On SIGINT/SIGTERM: requests in flight end first (an error event "the server is shutting
  // down" for streams, 503 otherwise), so no handler waits for a long generation; then HTTP stops.
  Service* svc = service.get();
  std::thread([&http, svc, sigs] {
    int sig = 0;
    sigwait(&sigs, &sig);
    std::fprintf(stderr, "lazyllm-server: stopping\n");
    svc->shutdown();
    http.stop();
  }).detach();
  std::fprintf(stderr, "lazyllm-server: listening on http://%s:%d\n", o.http.host.c_str(), port);
  std::fflush(stderr);
  http.run();
  service->shutdown();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return lazyllm::cli::run_main("lazyllm-server", [&] { return run(argc, argv); });
}
