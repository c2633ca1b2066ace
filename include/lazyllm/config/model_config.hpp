// SPDX-License-Identifier: MIT
// The ModelConfig customisation point: the shape of a Llama-architecture model.
#pragma once
#include <cmath>
#include <concepts>
#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>

#include "lazyllm/detail/error.hpp"

namespace lazyllm {

/// How rotary embeddings pair up the dimensions of a head.
///  - Interleaved: pairs (0,1), (2,3), ... — llama2.c and Meta's original checkpoints.
///  - RotateHalf:  pairs (i, i + head_dim/2) — Hugging Face checkpoints (q/k rows permuted).
enum class RopeStyle : std::uint8_t { Interleaved, RotateHalf };

inline const char* to_string(RopeStyle s) { return s == RopeStyle::Interleaved ? "interleaved" : "rotate_half"; }

/// How the rotary frequencies are derived from rope_theta (Hugging Face's `rope_type`):
///  - Default: theta^(-2i/head_dim).
///  - Linear:  the default divided by `factor` (position interpolation).
///  - Llama3:  Llama 3.1 / 3.2: low frequencies divided by `factor`, high ones kept, a smooth ramp
///             between (`low_freq_factor`, `high_freq_factor`, `original_max_position_embeddings`).
///  - Yarn:    YaRN (Qwen2.5 long context): a ramp between interpolated and original frequencies
///             (`beta_fast`, `beta_slow`), and an attention factor that scales cos and sin.
/// config/rope.hpp turns these into the per-pair inverse frequencies every backend uses.
enum class RopeType : std::uint8_t { Default, Linear, Llama3, Yarn };

inline const char* to_string(RopeType t) {
  switch (t) {
    case RopeType::Linear:
      return "linear";
    case RopeType::Llama3:
      return "llama3";
    case RopeType::Yarn:
      return "yarn";
    default:
      return "default";
  }
}

/// The parameters of a RoPE type (Hugging Face's `rope_scaling` / `rope_parameters`). Only the
/// ones its type reads matter; the defaults are transformers' defaults.
struct RopeScaling {
  RopeType type = RopeType::Default;
  float factor = 1.0f;                       // linear, llama3, yarn
  float low_freq_factor = 1.0f;              // llama3
  float high_freq_factor = 4.0f;             // llama3
  int original_max_position_embeddings = 0;  // llama3 (required), yarn (0: max_seq_len)
  float beta_fast = 32.0f;                   // yarn
  float beta_slow = 1.0f;                    // yarn
  float attention_factor = 0.0f;             // yarn: cos and sin scale; 0 = 0.1 ln(factor) + 1 (or from mscale)
  float mscale = 0.0f;                       // yarn (DeepSeek spelling): with mscale_all_dim, the attention factor
  float mscale_all_dim = 0.0f;               //   is get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)
  bool truncate = true;                      // yarn: round the correction range to whole dimensions
  friend constexpr bool operator==(const RopeScaling&, const RopeScaling&) = default;
};

/// A model shape. A type satisfies ModelConfig when an object of it exposes these members
/// (static constexpr members in compile-time configs such as Llama2_7B, plain data members in
/// RuntimeConfig). Everything else in the library is derived from them.
///
/// Optional members (read through detail::config_* below, with these defaults when absent):
/// `head_dim` (dim / n_heads), `rope_scaling` (a RopeScaling; default RoPE), `attention_bias`
/// (false: no q/k/v biases), `qk_norm` (false: no per-head RMSNorm of q and k, as in Qwen3) and
/// `sliding_window` (0: full attention).
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
  /// Width of one attention head; 0 (the default) means dim / n_heads. Set when a checkpoint
  /// says otherwise (Qwen3, some Mistral variants): q is then n_heads * head_dim wide, not dim.
  int explicit_head_dim = 0;
  RopeScaling rope_scaling{};
  /// q, k and v projections carry biases (Qwen2 / Qwen2.5). The output projection never does.
  bool attention_bias = false;
  /// Qwen3: RMSNorm over each head of q and k (weights of head_dim, eps norm_eps) before RoPE.
  bool qk_norm = false;
  /// Mistral's sliding-window attention span; 0 means none. Not implemented as a mask: the
  /// backends refuse a position at or past it (where the window would start to matter).
  int sliding_window = 0;

  constexpr int head_dim() const { return explicit_head_dim > 0 ? explicit_head_dim : n_heads > 0 ? dim / n_heads : 0; }
  /// Width of all query heads (== dim unless head_dim is explicit).
  constexpr int q_dim() const { return head_dim() * n_heads; }
  constexpr int kv_dim() const { return head_dim() * n_kv_heads; }
  constexpr int group_size() const { return n_kv_heads > 0 ? n_heads / n_kv_heads : 0; }

  /// Number of weights in the model (embedding and classifier counted once when tied). Checked
  /// arithmetic: ConfigError for a shape whose count overflows (validate() refuses such shapes).
  constexpr std::int64_t n_params() const {
    const std::int64_t d = dim, h = hidden_dim, kv = kv_dim(), v = vocab_size, q = q_dim(), hd = head_dim();
    constexpr const char* what = "the parameter count";
    if (d < 0 || h < 0 || kv < 0 || v < 0 || q < 0 || n_layers < 0)
      throw ConfigError("invalid model config: negative dimension in " + std::string(what));
    std::int64_t per_layer = detail::checked_mad(2 * d, q, 2 * d, what);  // 2 norms, wq + wo
    per_layer = detail::checked_mad(2 * d, kv, per_layer, what);          // wk + wv
    if (attention_bias) per_layer += q + 2 * kv;                          // bq, bk, bv
    if (qk_norm) per_layer += 2 * hd;                                     // q_norm, k_norm
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
    if (explicit_head_dim < 0)
      fail("head_dim " + std::to_string(explicit_head_dim) + " must be positive (0: dim / n_heads)");
    if (explicit_head_dim == 0 && dim % n_heads != 0)
      fail("dim " + std::to_string(dim) + " is not divisible by n_heads " + std::to_string(n_heads));
    bound("head_dim", explicit_head_dim, ConfigLimits::max_dim);
    if (std::int64_t(head_dim()) * n_heads > ConfigLimits::max_dim)
      fail("n_heads * head_dim " + std::to_string(std::int64_t(head_dim()) * n_heads) +
           " is above the supported maximum " + std::to_string(ConfigLimits::max_dim));
    if (n_heads % n_kv_heads != 0)
      fail("n_heads " + std::to_string(n_heads) + " is not divisible by n_kv_heads " + std::to_string(n_kv_heads));
    if (head_dim() % 2 != 0) fail("head_dim " + std::to_string(head_dim()) + " must be even for RoPE");
    if (!(norm_eps > 0.0f) || !(norm_eps < 1.0f)) fail("norm_eps " + std::to_string(norm_eps) + " is not in (0, 1)");
    if (!(rope_theta > 0.0f) || !std::isfinite(rope_theta))
      fail("rope_theta " + std::to_string(rope_theta) + " is not a positive finite number");
    const RopeScaling& rs = rope_scaling;
    const std::string rt = std::string("rope ") + to_string(rs.type) + ": ";
    auto positive = [&](const char* name, float v) {
      if (!(v > 0.0f) || !std::isfinite(v)) fail(rt + name + " " + std::to_string(v) + " must be a positive number");
    };
    if (rs.type != RopeType::Default) positive("factor", rs.factor);
    if (rs.type == RopeType::Linear && rs.factor < 1.0f)
      fail(rt + "factor " + std::to_string(rs.factor) + " is below 1");
    if (rs.type == RopeType::Llama3) {
      positive("low_freq_factor", rs.low_freq_factor);
      positive("high_freq_factor", rs.high_freq_factor);
      if (!(rs.high_freq_factor > rs.low_freq_factor))
        fail(rt + "high_freq_factor " + std::to_string(rs.high_freq_factor) + " must exceed low_freq_factor " +
             std::to_string(rs.low_freq_factor));
      if (rs.original_max_position_embeddings <= 0) fail(rt + "original_max_position_embeddings must be positive");
    }
    if (rs.type == RopeType::Yarn) {
      positive("beta_fast", rs.beta_fast);
      positive("beta_slow", rs.beta_slow);
      if (rs.original_max_position_embeddings < 0) fail(rt + "original_max_position_embeddings must be positive");
      if (!(rs.attention_factor >= 0.0f) || !std::isfinite(rs.attention_factor))
        fail(rt + "attention_factor " + std::to_string(rs.attention_factor) + " must be positive (0: derived)");
      if (!std::isfinite(rs.mscale) || !std::isfinite(rs.mscale_all_dim)) fail(rt + "mscale is not finite");
    }
    if (sliding_window < 0) fail("sliding_window " + std::to_string(sliding_window) + " must be positive (0: none)");
  }

  friend bool operator==(const RuntimeConfig&, const RuntimeConfig&) = default;
  friend std::ostream& operator<<(std::ostream& os, const RuntimeConfig& c) {
    os << "dim=" << c.dim << " hidden=" << c.hidden_dim << " layers=" << c.n_layers << " heads=" << c.n_heads
       << " kv_heads=" << c.n_kv_heads << " vocab=" << c.vocab_size << " ctx=" << c.max_seq_len << " eps=" << c.norm_eps
       << " theta=" << c.rope_theta << " rope=" << to_string(c.rope_style) << (c.tied_embeddings ? " tied" : " untied");
    if (c.explicit_head_dim > 0) os << " head_dim=" << c.explicit_head_dim;
    const RopeScaling& rs = c.rope_scaling;
    if (rs.type != RopeType::Default) {
      os << " rope_type=" << to_string(rs.type) << " factor=" << rs.factor;
      if (rs.type == RopeType::Llama3) os << " low_freq=" << rs.low_freq_factor << " high_freq=" << rs.high_freq_factor;
      if (rs.type == RopeType::Yarn) {
        os << " beta_fast=" << rs.beta_fast << " beta_slow=" << rs.beta_slow;
        if (rs.attention_factor > 0.0f) os << " attention_factor=" << rs.attention_factor;
        if (rs.mscale != 0.0f || rs.mscale_all_dim != 0.0f)
          os << " mscale=" << rs.mscale << " mscale_all_dim=" << rs.mscale_all_dim;
        if (!rs.truncate) os << " no_truncate";
      }
      if (rs.original_max_position_embeddings > 0) os << " original_ctx=" << rs.original_max_position_embeddings;
    }
    if (c.attention_bias) os << " qkv_bias";
    if (c.qk_norm) os << " qk_norm";
    if (c.sliding_window > 0) os << " sliding_window=" << c.sliding_window;
    return os;
  }
};

namespace detail {
// The optional ModelConfig members, with their defaults when a config does not declare them.
template <class C>
constexpr int config_head_dim(const C& c) {
  if constexpr (std::is_same_v<C, RuntimeConfig>)
    return c.head_dim();
  else if constexpr (requires {
                       { c.head_dim } -> std::convertible_to<int>;
                     })
    return int(c.head_dim);
  else
    return c.n_heads > 0 ? int(c.dim) / int(c.n_heads) : 0;
}
template <class C>
constexpr RopeScaling config_rope_scaling(const C& c) {
  if constexpr (requires {
                  { c.rope_scaling } -> std::convertible_to<RopeScaling>;
                })
    return c.rope_scaling;
  else
    return {};
}
template <class C>
constexpr bool config_attention_bias(const C& c) {
  if constexpr (requires {
                  { c.attention_bias } -> std::convertible_to<bool>;
                })
    return bool(c.attention_bias);
  else
    return false;
}
template <class C>
constexpr bool config_qk_norm(const C& c) {
  if constexpr (requires {
                  { c.qk_norm } -> std::convertible_to<bool>;
                })
    return bool(c.qk_norm);
  else
    return false;
}
template <class C>
constexpr int config_sliding_window(const C& c) {
  if constexpr (requires {
                  { c.sliding_window } -> std::convertible_to<int>;
                })
    return int(c.sliding_window);
  else
    return 0;
}
}  // namespace detail

/// Any ModelConfig as a RuntimeConfig (optional members at their defaults when absent).
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
  if constexpr (std::is_same_v<C, RuntimeConfig>) {
    r.explicit_head_dim = c.explicit_head_dim;
  } else {
    const int hd = detail::config_head_dim(c);
    r.explicit_head_dim = (c.n_heads > 0 && hd * int(c.n_heads) == int(c.dim)) ? 0 : hd;
  }
  r.rope_scaling = detail::config_rope_scaling(c);
  r.attention_bias = detail::config_attention_bias(c);
  r.qk_norm = detail::config_qk_norm(c);
  r.sliding_window = detail::config_sliding_window(c);
  return r;
}

namespace detail {
/// Sliding-window attention is not implemented as a mask: a query at position >= sliding_window
/// (where Mistral's window, `q - k < window`, would first hide a key) is refused in one line, the
/// same on every backend. Positions below it attend exactly as full attention does.
inline void check_sliding_window(const RuntimeConfig& c, std::int64_t pos) {
  if (c.sliding_window > 0 && pos >= c.sliding_window)
    throw ConfigError("position " + std::to_string(pos) + " is at or past the model's sliding window of " +
                      std::to_string(c.sliding_window) +
                      " tokens: sliding-window attention is not supported (keep prompt and output within it)");
}
}  // namespace detail

/// The fields in which `got` differs from `want`, comma-separated ("" when none): for messages
/// that compare a compile-time config with a loaded model.
inline std::string config_differences(const RuntimeConfig& want, const RuntimeConfig& got) {
  std::string out;
  auto field = [&](const char* name, const auto& a, const auto& b) {
    if (a == b) return;
    std::ostringstream os;
    os << (out.empty() ? "" : ", ") << name << " " << b << " (config says " << a << ")";
    out += os.str();
  };
  field("dim", want.dim, got.dim);
  field("hidden_dim", want.hidden_dim, got.hidden_dim);
  field("n_layers", want.n_layers, got.n_layers);
  field("n_heads", want.n_heads, got.n_heads);
  field("n_kv_heads", want.n_kv_heads, got.n_kv_heads);
  field("vocab_size", want.vocab_size, got.vocab_size);
  field("max_seq_len", want.max_seq_len, got.max_seq_len);
  field("norm_eps", want.norm_eps, got.norm_eps);
  field("rope_theta", want.rope_theta, got.rope_theta);
  field("rope_style", std::string(to_string(want.rope_style)), std::string(to_string(got.rope_style)));
  field("tied_embeddings", want.tied_embeddings, got.tied_embeddings);
  field("head_dim", want.head_dim(), got.head_dim());
  field("rope_type", std::string(to_string(want.rope_scaling.type)), std::string(to_string(got.rope_scaling.type)));
  if (want.rope_scaling.type == got.rope_scaling.type && !(want.rope_scaling == got.rope_scaling))
    out += std::string(out.empty() ? "" : ", ") + "rope parameters (factor, frequencies or context) differ";
  field("attention_bias", want.attention_bias, got.attention_bias);
  field("qk_norm", want.qk_norm, got.qk_norm);
  field("sliding_window", want.sliding_window, got.sliding_window);
  return out;
}

/// True for configs whose sizes are compile-time constants (checked against the loaded model).
template <class C>
inline constexpr bool is_static_config_v = requires {
  std::integral_constant<int, C::dim>{};
};

}  // namespace lazyllm
