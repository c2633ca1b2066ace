// SPDX-License-Identifier: MIT
// Synthetic weights of a real model shape (random values), for timing runs without a checkpoint:
// lazyllm-bench --synthetic, lazyllm-server --synthetic, lazyllm-bench-serving --synthetic.
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lazyllm/config/families.hpp"
#include "lazyllm/config/model_config.hpp"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/model/weights.hpp"

namespace lazyllm {

/// The shape names synthetic_config() knows, for usage lines and errors.
inline const char* synthetic_shape_names() {
  return "llama2-7b, llama2-13b, llama3.1-8b, llama3.1-70b, llama3.2-1b, llama3.2-3b, qwen2.5-7b, mistral-7b, tiny";
}

/// The shape called `name` (synthetic_shape_names()). The Llama 3.x, Qwen2.5 and Mistral shapes
/// are the published configs (config/families.hpp), context as released. Throws InvalidArgument
/// for others.
inline RuntimeConfig synthetic_config(const std::string& name) {
  if (name == "llama3.1-8b") return to_runtime(config::Llama31_8B{});
  if (name == "llama3.1-70b") return to_runtime(config::Llama31_70B{});
  if (name == "llama3.2-1b") return to_runtime(config::Llama32_1B{});
  if (name == "llama3.2-3b") return to_runtime(config::Llama32_3B{});
  if (name == "qwen2.5-7b") return to_runtime(config::Qwen25_7B{});
  if (name == "mistral-7b") return to_runtime(config::Mistral7B_v03{});
  RuntimeConfig c;
  c.vocab_size = 32000;
  c.max_seq_len = 32768;  // RoPE table extended: 16k prompts plus generation fit
  c.rope_style = RopeStyle::RotateHalf;
  if (name == "llama2-7b")
    c.dim = 4096, c.hidden_dim = 11008, c.n_layers = 32, c.n_heads = 32, c.n_kv_heads = 32;
  else if (name == "llama2-13b")
    c.dim = 5120, c.hidden_dim = 13824, c.n_layers = 40, c.n_heads = 40, c.n_kv_heads = 40;
  else if (name == "tiny")
    c.dim = 256, c.hidden_dim = 688, c.n_layers = 8, c.n_heads = 4, c.n_kv_heads = 4, c.vocab_size = 1024;
  else
    throw InvalidArgument("--synthetic: unknown shape '" + name + "' (" + synthetic_shape_names() + ")");
  return c;
}

/// Random weights of the exact shape, for timing only: uniform values (scaled like a trained
/// model's), one set of layer weights shared by every layer to keep host memory and start-up small.
inline ModelWeights synthetic_weights(const RuntimeConfig& c, std::uint64_t seed) {
  ModelWeights w;
  w.config = c;
  w.source = "synthetic";
  std::uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  auto tensor = [&](std::size_t n, float scale, float mean) {
    auto b = std::make_shared<std::vector<float>>(n);
    for (auto& v : *b) {
      state ^= state << 13, state ^= state >> 7, state ^= state << 17;  // xorshift64
      v = mean + scale * (float(state >> 40) * 0x1.0p-24f * 2.0f - 1.0f);
    }
    w.storage.push_back(b);
    return b->data();
  };
  const std::size_t d = c.dim, h = c.hidden_dim, kv = c.kv_dim(), v = c.vocab_size, q = c.q_dim(), hd = c.head_dim();
  const float s = std::sqrt(3.0f / float(d)), sh = std::sqrt(3.0f / float(h)),
              sq = std::sqrt(3.0f / float(q));  // unit-variance outputs
  w.token_embedding = tensor(v * d, 1.0f, 0.0f);
  LayerWeights shared{tensor(d, 0.0f, 1.0f), tensor(q * d, s, 0),  tensor(kv * d, s, 0),
                      tensor(kv * d, s, 0),  tensor(d * q, sq, 0), tensor(d, 0.0f, 1.0f),
                      tensor(h * d, s, 0),   tensor(d * h, sh, 0), tensor(h * d, s, 0)};
  if (c.attention_bias)
    shared.bq = tensor(q, 0.1f, 0), shared.bk = tensor(kv, 0.1f, 0), shared.bv = tensor(kv, 0.1f, 0);
  if (c.qk_norm) shared.q_norm = tensor(hd, 0.0f, 1.0f), shared.k_norm = tensor(hd, 0.0f, 1.0f);
  w.layers.assign(std::size_t(c.n_layers), shared);
  w.final_norm = tensor(d, 0.0f, 1.0f);
  w.classifier = tensor(v * d, s, 0.0f);
  return w;
}

}  // namespace lazyllm
