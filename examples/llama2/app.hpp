// SPDX-License-Identifier: MIT
// The driver once its model is loaded: what its modes share (main.cpp builds it; one_shot.cpp,
// interactive.cpp and demo.cpp use it; report.cpp writes it as JSON, output.cpp as text).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "driver.hpp"
#include "lazyllm/text/chat.hpp"
#include "lazyllm/text/tokenizer.hpp"
#include "memory_check.hpp"

namespace lazyllm::driver {

/// GPU memory: free before the first run (cudaMemGetInfo), to report what a run used.
struct GpuBaseline {
  bool known = false;
  std::uint64_t free = 0, total = 0;
};

struct App {
  Options o;
  std::string tok_path;  // "" without a tokenizer
  std::optional<Tokenizer> tok;
  std::optional<ChatTemplate> chat;  // the chat format of a tokenizer.json's directory, if it has one
  const ModelWeights* w = nullptr;
  double load_ms = 0;
  std::string chosen;  // the policy that runs (lazy when --compare with --policy dense)
  int ctx = 0;         // the context size in tokens
  Schedule schedule;
  policy::AnyPolicy pol;
  std::string prompt_kind;  // text, chat, ids, default or demo
  std::string demo_answer;  // the built-in demo's expected answer
  GpuBaseline gpu;
  MemoryCheck mem_check;
  Hooks hooks;                   // progress, and the streaming of the chosen run's text
  bool stream = false;           // the generated text goes to stdout as it is produced
  std::int32_t stream_prev = 1;  // the token before the next streamed one (for the decoder)
  std::int32_t last_prompt_id = 1;
  nlohmann::json doc;  // --json

  /// One run of `p` with options `opts` on the chosen backend.
  RunResult run(const policy::AnyPolicy& p, const Options& opts, const Hooks& h = {}) const;
  /// Interactive turns on the chosen backend.
  ConversationEnd converse(const Conversation& conv) const;
};

// one_shot.cpp, interactive.cpp: the modes (exit code 0; errors are thrown).
int run_one_shot(App& app);
int run_interactive(App& app);
// demo.cpp: the built-in default's prompt (o.prompt, demo_answer), and its verdict line.
void prepare_demo(App& app);
void print_demo_verdict(const App& app, const RunResult& dense, const RunResult& run);

// output.cpp: the text on stderr.
double decode_ms_per_token(const RunResult& r);
double per_second(double n, double ms);
void print_footer(const char* label, const RunResult& r, double load_ms, const GpuBaseline& gpu);
/// llama.cpp's llama_perf summary: load, prompt eval, eval, sampling, total, and why it stopped.
void print_perf(const RunResult& r, double load_ms, int n_predict);
std::string join(const std::vector<std::int32_t>& v);
/// The text of `ids` generated after `prev` (what the stream printed).
std::string continuation_text(const Tokenizer& tok, std::int32_t prev, const std::vector<std::int32_t>& ids);

// report.cpp: the --json document and --stats.
nlohmann::json config_json(const RuntimeConfig& c);
nlohmann::json to_json(const MemoryCheck& m);
nlohmann::json run_json(const App& app, const std::string& policy, const RunResult& r, std::int32_t prev);
/// The header of the --json document (model, config, backend, policy, sampler, memory check).
void start_json(App& app);
void write_json(const App& app);
void write_stats(const App& app, const RunStats& stats, std::size_t n_prompt,
                 const std::vector<std::int32_t>& generated, double prefill_ms, double decode_ms);

}  // namespace lazyllm::driver
