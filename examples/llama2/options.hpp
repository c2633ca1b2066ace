// SPDX-License-Identifier: MIT
// The driver's command line: its options and their parsing (options.cpp).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "lazyllm/model/sampler.hpp"
#include "lazyllm/policy/schedule.hpp"

namespace lazyllm::driver {

using cli::UsageError;

struct Options {
  std::string model;
  std::vector<std::int32_t> prompt{1};
  bool prompt_given = false;
  int n_predict = 64;  // -1: until EOS or the context is full
  int n_ctx = 0;
  SamplerParams sampler;
  std::string backend = "auto";
  // CUDA storage: auto | bf16 | fp16 | fp32 (the CPU reference is fp32). auto becomes the
  // checkpoint's own dtype before the model loads (resolve_precision in main.cpp).
  std::string precision = "auto";
  bool precision_auto = true;  // set by parse_args: --precision not given, or given as auto
  std::string policy = "dense";
  int keep_recent = 0;  // --keep-recent N: Lazy also keeps the last N tokens of each set
  // (cuda, bf16) LazyLLM's percentile rule on the GPU (SelectingCudaBackend): unset = on where the
  // run stores bf16, off for fp16/fp32; --device-select forces it on (refused for fp16/fp32),
  // --no-device-select off (the policy selects on the host, as CudaBackend does).
  std::optional<bool> device_select;
  std::string schedule = "default";
  bool schedule_given = false;
  std::string stats_file;
  bool print_ids = false;
  bool compare = false;
  bool demo = false;     // no -m: the built-in default
  bool demo_qa = false;  // ... with the shipped models/lazyqa: one generated multi-document question
  // Text in, text out (main.cpp only; the generation loop sees token ids).
  std::string tokenizer;    // -z: .model (SentencePiece) or llama2.c tokenizer.bin
  std::string prompt_text;  // -p TEXT, or the contents of -f FILE once read
  std::string prompt_file;  // -f FILE ("-" = stdin)
  bool text_given = false;  // -p or -f
  int prompt_sources = 0;   // how many of -p, -f, --prompt-ids were given
  bool chat = false;        // --chat: Llama 2 chat template around the text prompt
  std::string system;       // --system TEXT
  bool system_given = false;
  std::string json_file;     // --json FILE
  bool interactive = false;  // -i: turns from stdin, the KV cache kept across them
  bool progress = false;     // --progress: per-layer prefill progress for every prompt
  bool mem_check = true;     // off with --no-mem-check
  // llama.cpp's habits
  bool ignore_eos = false;  // --ignore-eos: no stop at BOS/EOS
  // Ids that end generation: Llama 2's BOS and EOS by default; main.cpp sets them from the HF
  // config.json (bos/eos_token_id), the tokenizer.json's EOS and the chat format's stop tokens.
  std::vector<std::int32_t> stop_ids{1, 2};
  bool verbose_prompt = false;        // --verbose-prompt: the templated prompt and its ids on stderr
  int threads = 0;                    // -t N (0: $LAZYLLM_THREADS, else every core)
  int tp = 1;                         // --tp N: tensor parallel over N ranks (CPU threads)
  float min_p = 0.0f;                 // --min-p P (0: off)
  bool random_seed = false;           // -s -1: a random seed (printed)
  std::string sampling_filter_given;  // the last of --top-k/--top-p/--min-p given ("" if none)
  bool check_weights = false;         // --check-weights: refuse NaN/Inf weights after loading
};

/// The options of argv, checked (a UsageError for anything wrong); -h prints the usage and exits.
Options parse_args(int argc, char** argv);

/// --schedule for a model of `n_layers` layers (a UsageError naming the flag when it is not one).
Schedule make_schedule(const std::string& text, int n_layers);

}  // namespace lazyllm::driver
