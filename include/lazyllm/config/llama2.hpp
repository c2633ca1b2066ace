// SPDX-License-Identifier: MIT
// Compile-time configs of the Llama 2 family (as released by Meta; HF checkpoints use RotateHalf).
#pragma once
#include "lazyllm/config/model_config.hpp"

namespace lazyllm::config {

template <int Dim, int Hidden, int Layers, int Heads, int KvHeads>
struct Llama2Shape {
  static constexpr int dim = Dim;
  static constexpr int hidden_dim = Hidden;
  static constexpr int n_layers = Layers;
  static constexpr int n_heads = Heads;
  static constexpr int n_kv_heads = KvHeads;
  static constexpr int vocab_size = 32000;
  static constexpr int max_seq_len = 4096;
  static constexpr float norm_eps = 1e-5f;
  static constexpr float rope_theta = 10000.0f;
  static constexpr RopeStyle rope_style = RopeStyle::RotateHalf;
  static constexpr bool tied_embeddings = false;
  static constexpr int head_dim = Dim / Heads;
  static_assert(Dim % Heads == 0 && Heads % KvHeads == 0, "Llama2Shape: inconsistent head counts");
};

using Llama2_7B = Llama2Shape<4096, 11008, 32, 32, 32>;
using Llama2_13B = Llama2Shape<5120, 13824, 40, 40, 40>;
using Llama2_70B = Llama2Shape<8192, 28672, 80, 64, 8>;  // grouped-query attention, 8 KV heads

/// karpathy/tinyllamas stories260K (../shared/models/stories260K.bin): GQA, tied classifier.
struct Stories260K {
  static constexpr int dim = 64;
  static constexpr int hidden_dim = 172;
  static constexpr int n_layers = 5;
  static constexpr int n_heads = 8;
  static constexpr int n_kv_heads = 4;
  static constexpr int vocab_size = 512;
  static constexpr int max_seq_len = 512;
  static constexpr float norm_eps = 1e-5f;
  static constexpr float rope_theta = 10000.0f;
  static constexpr RopeStyle rope_style = RopeStyle::Interleaved;
  static constexpr bool tied_embeddings = true;
};

static_assert(ModelConfig<Llama2_7B> && ModelConfig<Llama2_70B> && ModelConfig<Stories260K>);

}  // namespace lazyllm::config
