// SPDX-License-Identifier: MIT
// lazyllm-llama2: run a Llama 2 checkpoint with LazyLLM pruning. Text or token ids in, text or
// token ids out. Usage: lazyllm-llama2 -h
//
// The jobs, one file each: options.cpp (the command line), memory_check.cpp (before loading),
// this file (tokenizer, model, prompt, then a mode), one_shot.cpp (one prompt; --compare),
// interactive.cpp (-i), demo.cpp (the built-in default), report.cpp (--json, --stats),
// output.cpp (the footer on stderr), backend.cpp (the CPU or CUDA runs).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "../common/gpu_probe.hpp"
#include "../common/model_files.hpp"
#include "app.hpp"
#include "lazyllm/io/load.hpp"
#include "lazyllm/model/finite.hpp"
#include "lazyllm/text/chat.hpp"

namespace lazyllm::driver {

namespace {

/// -f: the file's bytes (stdin for "-"), one trailing newline ("\n" or "\r\n") dropped.
std::string read_prompt_file(const std::string& path) {
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (std::cin.bad()) throw Error("-f -: cannot read the prompt from stdin");
  } else {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) throw Error("-f " + path + ": is a directory, not a prompt file");
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error("-f " + path + ": cannot open the prompt file (" + std::strerror(errno) + ")");
    text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    if (f.bad()) throw Error("-f " + path + ": cannot read the prompt file");
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  return text;
}

/// The tokenizer: -z, else tokenizer.model (or tokenizer.bin) beside an HF checkpoint's
/// config.json. An HF directory's own tokenizer that fails to load is only a warning when the
/// prompt is token ids.
void open_tokenizer(App& app, bool& tok_auto) {
  Options& o = app.o;
  app.tok_path = o.tokenizer;
  tok_auto = false;
  if (app.tok_path.empty()) {
    app.tok_path = cli::tokenizer_beside(o.model);
    tok_auto = !app.tok_path.empty();
  }
  const bool needs_text = o.text_given || o.interactive;
  if (o.text_given && app.tok_path.empty())
    throw UsageError(
        "a text prompt (-p or -f) needs a tokenizer: give -z tokenizer.json (Hugging Face), "
        "-z tokenizer.model (SentencePiece) or -z tokenizer.bin (llama2.c), or use --prompt-ids");
  if (o.interactive && app.tok_path.empty())
    throw UsageError(
        "-i needs a tokenizer (its turns are text): give -z tokenizer.json (Hugging Face), "
        "-z tokenizer.model (SentencePiece) or -z tokenizer.bin (llama2.c)");
  if (!o.prompt_file.empty()) o.prompt_text = read_prompt_file(o.prompt_file);
  if (!app.tok_path.empty()) {
    try {
      app.tok = load_tokenizer(app.tok_path);
    } catch (const Error& e) {
      if (!tok_auto || needs_text) throw;
      std::fprintf(stderr, "warning: ignoring %s (%s); output stays token ids\n", app.tok_path.c_str(), e.what());
    }
  }
  // A tokenizer.json's directory declares its chat format (tokenizer_config.json's chat_template):
  // --chat and -i use it, and its end-of-turn token stops generation.
  if (app.tok && std::filesystem::path(app.tok_path).extension() == ".json") {
    try {
      app.chat = read_chat_template(std::filesystem::path(app.tok_path).parent_path());
    } catch (const Error& e) {
      if (o.chat) throw;
      std::fprintf(stderr, "warning: %s (no chat format)\n", e.what());
    }
    if (o.chat && !app.chat)
      throw UsageError("--chat: " + app.tok_path + " has no chat template beside it (tokenizer_config.json)");
  }
}

/// The ids that end generation: config.json's bos/eos_token_id (an id or a list) for a Hugging
/// Face directory, the tokenizer.json's EOS, and the chat format's stop tokens; Llama 2's 1 and 2
/// when none of these says otherwise.
void set_stop_ids(App& app) {
  auto ids = cli::stop_ids(app.o.model, app.tok ? &*app.tok : nullptr, app.tok_path, app.chat ? &*app.chat : nullptr,
                           app.w ? app.w->config.vocab_size : INT32_MAX);
  if (!ids.empty()) app.o.stop_ids = std::move(ids);
}

/// The tokenizer must fit the model's vocabulary (an auto-found one that does not is dropped when
/// the prompt is token ids).
void check_tokenizer_vocab(App& app, bool tok_auto) {
  const Options& o = app.o;
  const int vocab = app.w->config.vocab_size;
  if (app.tok && !cli::tokenizer_fits(app.tok_path, app.tok->vocab_size(), vocab)) {
    const std::string msg = "the tokenizer's vocabulary (" + std::to_string(app.tok->vocab_size()) + " pieces, " +
                            app.tok_path + ") does not match the model's (" + std::to_string(vocab) +
                            "); use the tokenizer the model was trained with";
    if (!tok_auto || o.text_given || o.interactive) throw UsageError(msg);
    std::fprintf(stderr, "warning: ignoring %s: %s\n", app.tok_path.c_str(), msg.c_str());
    app.tok.reset();
  }
  if (app.tok) std::fprintf(stderr, "tokenizer: %s (%d pieces)\n", app.tok_path.c_str(), app.tok->vocab_size());
}

/// -p / -f as token ids (with --chat, in the Llama 2 chat template).
void encode_prompt(App& app) {
  Options& o = app.o;
  app.prompt_kind = o.prompt_given ? "ids" : "default";
  if (!o.text_given || o.interactive) return;
  const auto t_tok = Clock::now();
  if (o.chat) {
    std::vector<ChatMessage> msgs;
    if (o.system_given) msgs.push_back({"system", o.system});
    msgs.push_back({"user", o.prompt_text});
    o.prompt = app.chat ? chat_tokens(*app.tok, *app.chat, msgs) : llama2_chat_tokens(*app.tok, msgs);
    app.prompt_kind = "chat";
  } else {
    o.prompt = app.tok->encode(o.prompt_text, true);
    app.prompt_kind = "text";
  }
  std::fprintf(stderr, "prompt: %zu tokens (%s, encoded in %.1f ms)\n", o.prompt.size(), app.prompt_kind.c_str(),
               ms_since(t_tok));
}

/// Progress on stderr, and the chosen run's text streamed to stdout piece by piece (unless
/// --print-ids).
void set_up_output(App& app) {
  app.last_prompt_id = app.o.prompt.empty() ? 1 : app.o.prompt.back();
  app.stream = app.tok && !app.o.print_ids;
  app.hooks.progress = true;
  app.hooks.progress_always = app.o.progress;
  app.hooks.tty = isatty(fileno(stderr)) != 0;
  app.stream_prev = app.last_prompt_id;
  if (app.stream)
    app.hooks.on_token = [&app](std::int32_t id) {
      const std::string piece = app.tok->decode(app.stream_prev, id);
      app.stream_prev = id;
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
}

/// --check-weights: every weight read once; a NaN or Inf is a corrupt checkpoint (exit 1).
void check_weights_finite(const ModelWeights& w) {
  const auto t0 = Clock::now();
  check_finite(w);
  std::fprintf(stderr, "weights: every value finite (checked in %.1f ms)\n", ms_since(t0));
}

/// One line on stderr: what computes and with what (llama.cpp's system_info).
void print_system_info(const App& app) {
  const Options& o = app.o;
  std::string gpu = "none";
  if (o.backend == "cuda") {
    std::uint64_t f = 0, t = 0;
    gpu = cli::gpu_memory_info(f, t) ? cli::gpu_name() + " (" + format_bytes(f) + " free of " + format_bytes(t) + ")"
                                     : "unknown";
  }
  const std::string tp = o.tp > 1 ? ", tensor parallel " + std::to_string(o.tp) + " ranks" : "";
  std::fprintf(stderr, "system: backend %s, precision %s, CPU threads %d%s, GPU %s, lazyllm %s\n", o.backend.c_str(),
               o.backend == "cuda" ? o.precision.c_str() : "fp32", detail::cpu_threads(), tp.c_str(), gpu.c_str(),
               LAZYLLM_VERSION);
}

/// --verbose-prompt: the prompt as the model sees it, token by token.
void print_prompt(const App& app) {
  const auto& ids = app.o.prompt;
  std::fprintf(stderr, "prompt: %zu tokens as the model sees them:\n", ids.size());
  std::int32_t prev = 1;
  for (const auto id : ids) {
    const std::string piece = app.tok ? app.tok->decode(prev, id) : std::string();
    std::fprintf(stderr, "%8d -> '%s'\n", id, piece.c_str());
    prev = id;
  }
}

int run(int argc, char** argv) {
  App app;
  app.o = parse_args(argc, argv);
  Options& o = app.o;
  check_model_path(o.model);  // before anything opens it: a FIFO would block
  if (o.random_seed)
    std::fprintf(stderr, "seed: %llu (random, from -s -1)\n", static_cast<unsigned long long>(o.sampler.seed));
  if (!o.sampling_filter_given.empty() && o.sampler.temperature == 0.0f)
    std::fprintf(stderr, "warning: %s has no effect with --temp 0 (greedy decoding); give --temp > 0 to sample\n",
                 o.sampling_filter_given.c_str());
  bool tok_auto = false;
  open_tokenizer(app, tok_auto);

  app.chosen = (o.compare && o.policy == "dense") ? "lazy" : o.policy;
  app.mem_check = check_memory(o, app.chosen);
  if (o.backend == "cuda" && !cli::gpu_available())
    throw Error(std::string("--backend cuda: ") + cli::gpu_unavailable_reason() + "; use --backend cpu");

  const auto t_load = Clock::now();
  // The CUDA backend reads fp16/bf16 checkpoints straight from the mapped file (no fp32 host copy).
  const ModelWeights w = load_model(o.model, LoadOptions{.keep_source_dtype = o.backend == "cuda"});
  app.w = &w;
  app.load_ms = ms_since(t_load);
  std::fprintf(
      stderr, "model: %s (%s, %.2fM params, %s)\nload: %.2f ms\n", o.model.c_str(),
      [&] {
        std::ostringstream s;
        s << w.config;
        return s.str();
      }()
          .c_str(),
      double(w.config.n_params()) / 1e6, w.source_dtype.c_str(), app.load_ms);
  if (o.check_weights) check_weights_finite(w);
  check_tokenizer_vocab(app, tok_auto);
  set_stop_ids(app);
  if (!app.tok) o.print_ids = true;  // no text to stream: the ids are the output
  print_system_info(app);
  encode_prompt(app);
  app.ctx = o.n_ctx ? o.n_ctx : w.config.max_seq_len;
  if (!o.interactive && std::int64_t(o.prompt.size()) > app.ctx)
    throw UsageError("prompt of " + std::to_string(o.prompt.size()) + " tokens does not fit the context of " +
                     std::to_string(app.ctx) + " tokens");
  if (o.n_ctx > w.config.max_seq_len)
    throw UsageError("-c " + std::to_string(o.n_ctx) + " exceeds the model's context of " +
                     std::to_string(w.config.max_seq_len));

  app.schedule = make_schedule(o.schedule, w.config.n_layers);
  app.pol = make_policy(app.chosen, app.schedule, o.sampler.seed, o.keep_recent);
  prepare_demo(app);
  if (o.verbose_prompt) print_prompt(app);
  if (o.backend == "cuda") app.gpu.known = cli::gpu_memory_info(app.gpu.free, app.gpu.total);
  set_up_output(app);
  start_json(app);
  return o.interactive ? run_interactive(app) : run_one_shot(app);
}

}  // namespace

}  // namespace lazyllm::driver

int main(int argc, char** argv) {
  return lazyllm::cli::run_main("lazyllm-llama2", [&] { return lazyllm::driver::run(argc, argv); });
}
