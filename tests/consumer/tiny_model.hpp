// The consumers' in-memory model: 2 layers, GQA, constant weights (no file needed).
#pragma once
#include <memory>
#include <vector>

#include <lazyllm/lazyllm.hpp>

inline lazyllm::ModelWeights tiny_model() {
  using namespace lazyllm;
  RuntimeConfig c;
  c.dim = 16, c.hidden_dim = 24, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 1, c.vocab_size = 8, c.max_seq_len = 8;
  auto buf = std::make_shared<std::vector<float>>(1 << 14, 0.01f);
  ModelWeights w;
  w.config = c;
  w.storage.push_back(buf);
  const float* p = buf->data();
  w.token_embedding = w.classifier = w.final_norm = p;
  w.layers.assign(2, LayerWeights{p, p, p, p, p, p, p, p, p});
  return w;
}
