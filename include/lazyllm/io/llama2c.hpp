// SPDX-License-Identifier: MIT
// llama2.c checkpoints: the legacy format (7 x int32 header) and the version-1 "ak42" export.
#pragma once
#include <climits>
#include <cstdint>
#include <filesystem>
#include <string>

#include "lazyllm/io/mapped_file.hpp"
#include "lazyllm/model/weights.hpp"

namespace lazyllm {

namespace detail {

constexpr std::uint32_t kLlama2cMagic = 0x616b3432;  // "ak42" as a little-endian uint32
constexpr std::size_t kLlama2cV1Header = 256;

/// Hands out consecutive fp32 tensors of a mapped llama2.c file, checking bounds.
struct FloatCursor {
  const MappedFile& file;
  std::size_t offset;
  WeightView take(std::int64_t n) {
    const auto bytes = std::size_t(n) * sizeof(float);
    if (bytes > file.size() - offset) throw FormatError(file.path(), "truncated (tensor past end of file)");
    const auto* p = file.bytes().data() + offset;
    offset += bytes;
    return WeightView(p, TensorDType::F32, n);
  }
};

/// a * b + c in uint64, saturating at UINT64_MAX (headers can hold absurd values).
constexpr std::uint64_t sat_mad(std::uint64_t a, std::uint64_t b, std::uint64_t c = 0) {
  constexpr auto kMax = ~std::uint64_t(0);
  if (a != 0 && b > kMax / a) return kMax;
  return a * b > kMax - c ? kMax : a * b + c;
}

inline RuntimeConfig llama2c_config(const std::string& path, const std::int32_t h[7], bool shared) {
  RuntimeConfig c;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.vocab_size = h[5];
  c.max_seq_len = h[6];
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.rope_style = RopeStyle::Interleaved;
  c.tied_embeddings = shared;
  try {
    c.validate();
  } catch (const ConfigError& e) {
    throw FormatError(path, std::string("bad header: ") + e.what());
  }
  return c;
}

/// Number of fp32 values after the header (saturating), including the legacy RoPE tables.
inline std::uint64_t llama2c_weight_floats(const RuntimeConfig& c, bool legacy) {
  const std::uint64_t d = std::uint64_t(c.dim), h = std::uint64_t(c.hidden_dim), kv = std::uint64_t(c.kv_dim()),
                      v = std::uint64_t(c.vocab_size), L = std::uint64_t(c.n_layers);
  // per layer: 2 norms, wq + wo, wk + wv, w1 + w2 + w3 (each factor < 2^31, so 2*d*d etc. fit)
  const std::uint64_t per_layer = sat_mad(2 * d, d, sat_mad(2 * d, kv, sat_mad(3 * d, h, 2 * d)));
  std::uint64_t n = sat_mad(L, per_layer, sat_mad(c.tied_embeddings ? 1 : 2, sat_mad(v, d), d));
  if (legacy) n = sat_mad(std::uint64_t(c.max_seq_len), std::uint64_t(c.head_dim()), n);  // freq_cis real + imag
  return n;
}

}  // namespace detail

/// Loads a llama2.c checkpoint, zero-copy (the weights point into the mapping).
///  - legacy: int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative when the
///    classifier is stored separately), seq_len; fp32 tensors in the order embedding, attn norms,
///    wq, wk, wv, wo, ffn norms, w1, w2, w3, final norm, two RoPE tables (skipped), [classifier].
///  - version 1: uint32 magic "ak42", int32 version 1, the same 7 ints (vocab positive), uint8
///    shared-classifier flag, zero padding to 256 bytes; then attn norms, ffn norms, final norm,
///    embedding, wq, wk, wv, wo, w1, w2, w3, [classifier].
/// The file must be exactly as long as its header implies: shorter is "truncated", longer means
/// the header does not describe this file (e.g. a legacy file without its RoPE tables, or a
/// v2 int8 export mislabelled); both are FormatErrors naming the file. Nothing past the end of
/// the file is ever read. Config: Interleaved RoPE, norm_eps 1e-5, rope_theta 10000.
inline ModelWeights load_llama2c(const std::filesystem::path& path) {
  auto file = MappedFile::open(path);
  const std::string p = file->path();
  const auto b = file->bytes();
  if (b.size() < 28) throw FormatError(p, "too short for a llama2.c header (" + std::to_string(b.size()) + " bytes)");
  ModelWeights w;
  w.source = p;
  const bool v1 = detail::read_pod<std::uint32_t>(b, 0) == detail::kLlama2cMagic;
  std::int32_t h[7];
  std::size_t offset = 0;
  bool shared = false;
  if (v1) {
    if (b.size() < detail::kLlama2cV1Header)
      throw FormatError(p, "too short for a llama2.c v1 header (" + std::to_string(b.size()) + " of 256 bytes)");
    const auto version = detail::read_pod<std::int32_t>(b, 4);
    if (version != 1)
      throw FormatError(p, "llama2.c 'ak42' export version " + std::to_string(version) +
                               " is not supported (only version 1 holds fp32 weights)");
    for (int i = 0; i < 7; ++i) h[i] = detail::read_pod<std::int32_t>(b, 8 + 4 * std::size_t(i));
    shared = detail::read_pod<std::uint8_t>(b, 36) != 0;
    offset = detail::kLlama2cV1Header;
  } else {
    for (int i = 0; i < 7; ++i) h[i] = detail::read_pod<std::int32_t>(b, 4 * std::size_t(i));
    shared = h[5] > 0;
    if (h[5] == INT32_MIN) throw FormatError(p, "bad header: vocab_size " + std::to_string(h[5]));
    if (h[5] < 0) h[5] = -h[5];
    offset = 28;
  }
  w.config = detail::llama2c_config(p, h, shared);
  const auto& c = w.config;
  const std::uint64_t expected = detail::sat_mad(detail::llama2c_weight_floats(c, !v1), 4, offset);
  if (b.size() < expected)
    throw FormatError(p, "truncated: expected at least " + std::to_string(expected) + " bytes, file has " +
                             std::to_string(b.size()));
  if (b.size() > expected)
    throw FormatError(p, "has " + std::to_string(b.size() - expected) +
                             " bytes beyond the tensors its header implies (wrong format or corrupt header?)");

  const std::int64_t d = c.dim, hd = c.hidden_dim, kv = c.kv_dim(), v = c.vocab_size;
  const int L = c.n_layers;
  detail::FloatCursor cur{*file, offset};
  w.layers.resize(std::size_t(L));
  auto per_layer = [&](WeightView LayerWeights::*field, std::int64_t n) {
    for (auto& lw : w.layers) lw.*field = cur.take(n);
  };
  if (v1) {
    per_layer(&LayerWeights::attn_norm, d);
    per_layer(&LayerWeights::ffn_norm, d);
    w.final_norm = cur.take(d);
    w.token_embedding = cur.take(v * d);
  } else {
    w.token_embedding = cur.take(v * d);
    per_layer(&LayerWeights::attn_norm, d);
  }
  per_layer(&LayerWeights::wq, d * d);
  per_layer(&LayerWeights::wk, kv * d);
  per_layer(&LayerWeights::wv, kv * d);
  per_layer(&LayerWeights::wo, d * d);
  if (!v1) per_layer(&LayerWeights::ffn_norm, d);
  per_layer(&LayerWeights::w1, hd * d);
  per_layer(&LayerWeights::w2, d * hd);
  per_layer(&LayerWeights::w3, hd * d);
  if (!v1) {
    w.final_norm = cur.take(d);
    cur.take(std::int64_t(c.max_seq_len) * c.head_dim());  // freq_cis_real + freq_cis_imag
  }
  w.classifier = c.tied_embeddings ? w.token_embedding : cur.take(v * d);
  w.storage.push_back(file);
  return w;
}

}  // namespace lazyllm
