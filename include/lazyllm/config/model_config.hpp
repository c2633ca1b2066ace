// SPDX-License-Identifier: MIT
// The ModelConfig customisation point: the shape of a Llama-architecture model.
#pragma once
#include <cmath>
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

/// The largest shape lazyllm accepts, dimension by dimension: several times the largest Llama
/// (405B: dim 16384, hidden 53248, 126 layers, 128 heads, vocab 128256, 131072 positions), and
/// small enough that every size computed from them (weights, KV and Aux Cache, in elements or
/// bytes) fits an int64 with room to spare. RuntimeConfig::validate() refuses anything larger, so
/// a corrupt header fails as "dim 1073741824 is above ..." instead of as an absurd size.
struct ConfigLimits {
  static constexpr int max_dim = 1 << 16;         // 65536
  static constexpr int max_hidden_dim = 1 << 18;  // 262144
  static constexpr int max_layers = 1 << 10;      // 1024
  static constexpr int max_heads = 1 << 12;       // 4096 (query or key/value heads)
  static constexpr int max_vocab_size = 1 << 22;  // 4194304
  static constexpr int max_seq_len = 1 << 24;     // 16777216
};

namespace detail {
/// a * b + c in int64, or ConfigError naming `what` on overflow (callers pass non-negative values).
constexpr std::int64_t checked_mad(std::int64_t a, std::int64_t b, std::int64_t c, const char* what) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r) || __builtin_add_overflow(r, c, &r))
    throw ConfigError(std::string("invalid model config: ") + what + " overflows a 64-bit integer");
  return r;
}
}  // namespace detail

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

  /// Number of weights in the model (embedding and classifier counted once when tied). Checked
  /// arithmetic: ConfigError for a shape whose count overflows (validate() refuses such shapes).
  constexpr std::int64_t n_params() const {
    const std::int64_t d = dim, h = hidden_dim, kv = kv_dim(), v = vocab_size;
    constexpr const char* what = "the parameter count";
    if (d < 0 || h < 0 || kv < 0 || v < 0 || n_layers < 0)
      throw ConfigError("invalid model config: negative dimension in " + std::string(what));
    std::int64_t per_layer = detail::checked_mad(2 * d, d, 2 * d, what);  // 2 norms, wq + wo
    per_layer = detail::checked_mad(2 * d, kv, per_layer, what);          // wk + wv
    per_layer = detail::checked_mad(3 * d, h, per_layer, what);           // w1, w2, w3
    const std::int64_t embed = detail::checked_mad(v, d, 0, what);
    return detail::checked_mad(n_layers, per_layer, detail::checked_mad(embed, tied_embeddings ? 1 : 2, d, what), what);
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
    auto bound = [&](const char* name, int v, int max) {
      if (v > max)
        fail(std::string(name) + " " + std::to_string(v) + " is above the supported maximum " + std::to_string(max));
    };
    bound("dim", dim, ConfigLimits::max_dim);
    bound("hidden_dim", hidden_dim, ConfigLimits::max_hidden_dim);
    bound("n_layers", n_layers, ConfigLimits::max_layers);
    bound("n_heads", n_heads, ConfigLimits::max_heads);
    bound("n_kv_heads", n_kv_heads, ConfigLimits::max_heads);
    bound("vocab_size", vocab_size, ConfigLimits::max_vocab_size);
    bound("max_seq_len", max_seq_len, ConfigLimits::max_seq_len);
    if (dim % n_heads != 0)
      fail("dim " + std::to_string(dim) + " is not divisible by n_heads " + std::to_string(n_heads));
    if (n_heads % n_kv_heads != 0)
      fail("n_heads " + std::to_string(n_heads) + " is not divisible by n_kv_heads " +
           std::to_string(n_kv_heads));
    if (head_dim() % 2 != 0) fail("head_dim " + std::to_string(head_dim()) + " must be even for RoPE");
    if (!(norm_eps > 0.0f) || !(norm_eps < 1.0f)) fail("norm_eps " + std::to_string(norm_eps) + " is not in (0, 1)");
    if (!(rope_theta > 0.0f) || !std::isfinite(rope_theta))
      fail("rope_theta " + std::to_string(rope_theta) + " is not a positive finite number");
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
