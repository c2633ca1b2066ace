// A model with seeded random weights, built in memory (no file), for tests at any shape.
#pragma once
#include <memory>
#include <random>
#include <vector>

#include "lazyllm/model/weights.hpp"

namespace lazyllm::test {

inline ModelWeights random_model(const RuntimeConfig& c, unsigned seed = 42, float scale = 0.08f) {
  c.validate();
  ModelWeights w;
  w.config = c;
  w.source = "random";
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto tensor = [&](std::size_t n, float s, float mean = 0.0f) {
    auto buf = std::make_shared<std::vector<float>>(n);
    for (auto& v : *buf) v = mean + s * nd(rng);
    w.storage.push_back(buf);
    return buf->data();
  };
  const std::size_t d = c.dim, h = c.hidden_dim, kv = c.kv_dim(), v = c.vocab_size;
  w.token_embedding = tensor(v * d, 1.0f);
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights lw;
    lw.attn_norm = tensor(d, 0.1f, 1.0f);
    lw.wq = tensor(d * d, scale);
    lw.wk = tensor(kv * d, scale);
    lw.wv = tensor(kv * d, scale);
    lw.wo = tensor(d * d, scale);
    lw.ffn_norm = tensor(d, 0.1f, 1.0f);
    lw.w1 = tensor(h * d, scale);
    lw.w2 = tensor(d * h, scale);
    lw.w3 = tensor(h * d, scale);
    w.layers.push_back(lw);
  }
  w.final_norm = tensor(d, 0.1f, 1.0f);
  w.classifier = c.tied_embeddings ? w.token_embedding : tensor(v * d, scale);
  return w;
}

inline RuntimeConfig small_config(RopeStyle rope = RopeStyle::Interleaved, int kv_heads = 2) {
  RuntimeConfig c;
  c.dim = 32;
  c.hidden_dim = 48;
  c.n_layers = 4;
  c.n_heads = 4;
  c.n_kv_heads = kv_heads;
  c.vocab_size = 64;
  c.max_seq_len = 96;
  c.rope_style = rope;
  return c;
}

}  // namespace lazyllm::test
