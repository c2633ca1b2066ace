// SPDX-License-Identifier: MIT
// The ModelConfig customisation point: the shape of a Llama-architecture model.
#pragma once
#include <concepts>
#include <cstdint>
#include <ostream>
#include <string>

#include "lazyllm/detail/error.hpp"

namespace lazyllm {

/// How rotary embeddings pair up the dimensions of a head.
///  - Interleaved: pairs (0,1), (2,3), ... — llama2.c and Meta's original checkpoints.
///  - RotateHalf:  pairs (i, i + head_dim/2) — Hugging Face checkpoints (q/k rows permuted).
enum class RopeStyle : std::uint8_t { Interleaved, RotateHalf };

inline const char* to_string(RopeStyle s) {
  return s == RopeStyle::Interleaved ? "interleaved" : "rotate_half";
}

/// A model shape. A type satisfies ModelConfig when an object of it exposes these members
/// (static constexpr members in compile-time configs such as Llama2_7B, plain data members in
/// RuntimeConfig). Everything else in the library is derived from them.
template <class C>
concept ModelConfig = requires(const C& c) {
  { c.dim } -> std::convertible_to<int>;
  { c.hidden_dim } -> std::convertible_to<int>;
  { c.n_layers } -> std::convertible_to<int>;
  { c.n_heads } -> std::convertible_to<int>;
  { c.n_kv_heads } -> std::convertible_to<int>;
  { c.vocab_size } -> std::convertible_to<int>;
  { c.max_seq_len } -> std::convertible_to<int>;
  { c.norm_eps } -> std::convertible_to<float>;
  { c.rope_theta } -> std::convertible_to<float>;
  { c.rope_style } -> std::convertible_to<RopeStyle>;
  { c.tied_embeddings } -> std::convertible_to<bool>;
};

/// A configuration whose sizes are known at run time (read from a checkpoint or config.json).
struct RuntimeConfig {
  int dim = 0;
  int hidden_dim = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int vocab_size = 0;
  int max_seq_len = 0;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeStyle rope_style = RopeStyle::Interleaved;
  bool tied_embeddings = false;

  constexpr int head_dim() const { return n_heads > 0 ? dim / n_heads : 0; }
  constexpr int kv_dim() const { return head_dim() * n_kv_heads; }
  constexpr int group_size() const { return n_kv_heads > 0 ? n_heads / n_kv_heads : 0; }

  /// Number of weights in the model (embedding and classifier counted once when tied).
  constexpr std::int64_t n_params() const {
    const std::int64_t d = dim, h = hidden_dim, kv = kv_dim(), v = vocab_size;
    const std::int64_t per_layer = 2 * d + d * d * 2 + 2 * d * kv + 3 * d * h;
    return v * d * (tied_embeddings ? 1 : 2) + n_layers * per_layer + d;
  }

  /// Throws ConfigError naming the first inconsistency.
  void validate() const {
    auto fail = [](const std::string& m) { throw ConfigError("invalid model config: " + m); };
    if (dim <= 0) fail("dim must be positive (got " + std::to_string(dim) + ")");
    if (hidden_dim <= 0) fail("hidden_dim must be positive (got " + std::to_string(hidden_dim) + ")");
    if (n_layers <= 0) fail("n_layers must be positive (got " + std::to_string(n_layers) + ")");
    if (n_heads <= 0) fail("n_heads must be positive (got " + std::to_string(n_heads) + ")");
    if (n_kv_heads <= 0) fail("n_kv_heads must be positive (got " + std::to_string(n_kv_heads) + ")");
    if (vocab_size <= 0) fail("vocab_size must be positive (got " + std::to_string(vocab_size) + ")");
    if (max_seq_len <= 0) fail("max_seq_len must be positive (got " + std::to_string(max_seq_len) + ")");
    if (dim % n_heads != 0)
      fail("dim " + std::to_string(dim) + " is not divisible by n_heads " + std::to_string(n_heads));
    if (n_heads % n_kv_heads != 0)
      fail("n_heads " + std::to_string(n_heads) + " is not divisible by n_kv_heads " +
           std::to_string(n_kv_heads));
    if (head_dim() % 2 != 0) fail("head_dim " + std::to_string(head_dim()) + " must be even for RoPE");
    if (!(norm_eps > 0.0f)) fail("norm_eps must be positive");
    if (!(rope_theta > 0.0f)) fail("rope_theta must be positive");
  }

  friend bool operator==(const RuntimeConfig&, const RuntimeConfig&) = default;
  friend std::ostream& operator<<(std::ostream& os, const RuntimeConfig& c) {
    return os << "dim=" << c.dim << " hidden=" << c.hidden_dim << " layers=" << c.n_layers
              << " heads=" << c.n_heads << " kv_heads=" << c.n_kv_heads << " vocab=" << c.vocab_size
              << " ctx=" << c.max_seq_len << " eps=" << c.norm_eps << " theta=" << c.rope_theta
              << " rope=" << to_string(c.rope_style) << (c.tied_embeddings ? " tied" : " untied");
  }
};

/// Any ModelConfig as a RuntimeConfig.
template <ModelConfig C>
constexpr RuntimeConfig to_runtime(const C& c) {
  RuntimeConfig r;
  r.dim = c.dim;
  r.hidden_dim = c.hidden_dim;
  r.n_layers = c.n_layers;
  r.n_heads = c.n_heads;
  r.n_kv_heads = c.n_kv_heads;
  r.vocab_size = c.vocab_size;
  r.max_seq_len = c.max_seq_len;
  r.norm_eps = c.norm_eps;
  r.rope_theta = c.rope_theta;
  r.rope_style = c.rope_style;
  r.tied_embeddings = c.tied_embeddings;
  return r;
}

/// True for configs whose sizes are compile-time constants (checked against the loaded model).
template <class C>
inline constexpr bool is_static_config_v = requires { std::integral_constant<int, C::dim>{}; };

}  // namespace lazyllm
