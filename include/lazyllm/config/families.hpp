// SPDX-License-Identifier: MIT
// Compile-time configs of today's common Llama-architecture families, with their published
// hyperparameters (the config.json of each Hugging Face release): Llama 3.1 / 3.2 (GQA, 128k
// vocabulary, llama3 RoPE), Qwen2.5 (q/k/v biases), Mistral 7B v0.3 (GQA, no sliding window).
// The optional ModelConfig members (head_dim, rope_scaling, attention_bias, ...) are declared
// where a family has them.
#pragma once
#include "lazyllm/config/model_config.hpp"

namespace lazyllm::config {

/// Llama 3.1 and 3.2: vocabulary 128256, theta 500000, llama3 RoPE (low 1, high 4, original
/// context 8192) with `Factor` (8 for 3.1, 32 for 3.2), context 131072.
template <int Dim, int Hidden, int Layers, int Heads, int KvHeads, bool Tied, int Factor>
struct Llama3Shape {
  static constexpr int dim = Dim;
  static constexpr int hidden_dim = Hidden;
  static constexpr int n_layers = Layers;
  static constexpr int n_heads = Heads;
  static constexpr int n_kv_heads = KvHeads;
  static constexpr int vocab_size = 128256;
  static constexpr int max_seq_len = 131072;
  static constexpr float norm_eps = 1e-5f;
  static constexpr float rope_theta = 500000.0f;
  static constexpr RopeStyle rope_style = RopeStyle::RotateHalf;
  static constexpr bool tied_embeddings = Tied;
  static constexpr int head_dim = Dim / Heads;
  static constexpr RopeScaling rope_scaling{.type = RopeType::Llama3,
                                            .factor = float(Factor),
                                            .low_freq_factor = 1.0f,
                                            .high_freq_factor = 4.0f,
                                            .original_max_position_embeddings = 8192};
  static_assert(Dim % Heads == 0 && Heads % KvHeads == 0, "Llama3Shape: inconsistent head counts");
};

using Llama31_8B = Llama3Shape<4096, 14336, 32, 32, 8, false, 8>;
using Llama31_70B = Llama3Shape<8192, 28672, 80, 64, 8, false, 8>;
using Llama32_1B = Llama3Shape<2048, 8192, 16, 32, 8, true, 32>;  // head_dim 64, tied classifier
using Llama32_3B = Llama3Shape<3072, 8192, 28, 24, 8, true, 32>;  // head_dim 128, tied classifier

/// Qwen2.5 7B (Instruct the same): q/k/v biases, theta 1e6, 32k context as released (YaRN
/// factor 4 for 128k is a user's config.json edit; the loader reads it).
struct Qwen25_7B {
  static constexpr int dim = 3584;
  static constexpr int hidden_dim = 18944;
  static constexpr int n_layers = 28;
  static constexpr int n_heads = 28;
  static constexpr int n_kv_heads = 4;
  static constexpr int vocab_size = 152064;
  static constexpr int max_seq_len = 32768;
  static constexpr float norm_eps = 1e-6f;
  static constexpr float rope_theta = 1000000.0f;
  static constexpr RopeStyle rope_style = RopeStyle::RotateHalf;
  static constexpr bool tied_embeddings = false;
  static constexpr int head_dim = 128;
  static constexpr bool attention_bias = true;
};

/// Mistral 7B v0.3: vocabulary 32768, theta 1e6, 32k context, no sliding window.
struct Mistral7B_v03 {
  static constexpr int dim = 4096;
  static constexpr int hidden_dim = 14336;
  static constexpr int n_layers = 32;
  static constexpr int n_heads = 32;
  static constexpr int n_kv_heads = 8;
  static constexpr int vocab_size = 32768;
  static constexpr int max_seq_len = 32768;
  static constexpr float norm_eps = 1e-5f;
  static constexpr float rope_theta = 1000000.0f;
  static constexpr RopeStyle rope_style = RopeStyle::RotateHalf;
  static constexpr bool tied_embeddings = false;
  static constexpr int head_dim = 128;
  static constexpr int sliding_window = 0;
};

static_assert(ModelConfig<Llama31_8B> && ModelConfig<Llama32_1B> && ModelConfig<Qwen25_7B> &&
              ModelConfig<Mistral7B_v03>);

}  // namespace lazyllm::config
