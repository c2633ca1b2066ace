// SPDX-License-Identifier: MIT
// Host-side fp32 weights of a Llama-architecture model, as produced by the loaders.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lazyllm/config/model_config.hpp"

namespace lazyllm {

/// One decoder layer. Every matrix is row-major [out_features, in_features] (y = W x), the
/// layout of both llama2.c and Hugging Face checkpoints.
struct LayerWeights {
  const float* attn_norm = nullptr;  // [dim]
  const float* wq = nullptr;         // [n_heads * head_dim, dim]
  const float* wk = nullptr;         // [n_kv_heads * head_dim, dim]
  const float* wv = nullptr;         // [n_kv_heads * head_dim, dim]
  const float* wo = nullptr;         // [dim, n_heads * head_dim]
  const float* ffn_norm = nullptr;   // [dim]
  const float* w1 = nullptr;         // gate [hidden_dim, dim]
  const float* w2 = nullptr;         // down [dim, hidden_dim]
  const float* w3 = nullptr;         // up   [hidden_dim, dim]
};

/// A loaded model: its configuration and fp32 views of every weight. The views point either into
/// a memory-mapped file (fp32 checkpoints, zero copy) or into buffers converted at load time
/// (fp16/bf16); `storage` keeps whichever it is alive, so copies of ModelWeights share it.
struct ModelWeights {
  RuntimeConfig config;
  std::string source;                  // file or directory it was read from
  std::string source_dtype = "f32";    // dtype of the tensors in the file ("f32", "f16", "bf16")
  const float* token_embedding = nullptr;  // [vocab, dim]
  std::vector<LayerWeights> layers;
  const float* final_norm = nullptr;  // [dim]
  const float* classifier = nullptr;  // [vocab, dim]; == token_embedding when tied
  std::vector<std::shared_ptr<const void>> storage;
};

}  // namespace lazyllm
