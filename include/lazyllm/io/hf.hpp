// SPDX-License-Identifier: MIT
// Hugging Face checkpoints of the Llama family (model_type llama, mistral, qwen2, qwen3):
// config.json + model.safetensors, or a sharded model.safetensors.index.json. fp32 tensors are
// mapped; fp16/bf16 are converted to fp32 (or kept, LoadOptions::keep_source_dtype).
#pragma once
#include <cctype>
#include <climits>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lazyllm/io/safetensors.hpp"
#include "lazyllm/model/weights.hpp"

namespace lazyllm {

namespace detail {

inline nlohmann::json read_json_file(const std::filesystem::path& path) {
  std::ifstream f(path);
  if (!f) throw FormatError(path.string(), "cannot open (missing?)");
  try {
    return nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path.string(), std::string("not valid JSON: ") + e.what());
  }
}

/// The model shape from an HF config.json (transformers 4.x and 5.x spellings).
inline RuntimeConfig hf_config(const std::filesystem::path& path) {
  const auto j = read_json_file(path);
  const std::string p = path.string();
  if (!j.is_object()) throw FormatError(p, "not a JSON object");
  auto present = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
  auto require = [&](const char* key) -> const nlohmann::json& {
    if (!present(key)) throw FormatError(p, std::string("missing key '") + key + "'");
    return j[key];
  };
  // A dimension: an integer in [1, max] (ConfigLimits), named by its key when it is not.
  auto as_int = [&](const char* key, int max) {
    const auto& v = require(key);
    if (!v.is_number_integer() || v.get<std::int64_t>() < INT_MIN ||
        (v.is_number_unsigned() ? v.get<std::uint64_t>() > INT_MAX : v.get<std::int64_t>() > INT_MAX))
      throw FormatError(p, std::string("key '") + key + "' is not an int (got " + v.dump() + ")");
    const int x = int(v.get<std::int64_t>());
    if (x > max)
      throw FormatError(p, std::string("key '") + key + "' " + std::to_string(x) + " is above the supported maximum " +
                               std::to_string(max));
    return x;
  };
  auto as_float = [&](const nlohmann::json& v, const char* key) {
    if (!v.is_number()) throw FormatError(p, std::string("key '") + key + "' is not a number (got " + v.dump() + ")");
    const double x = v.get<double>();  // range-checked before narrowing: a double past FLT_MAX has no float
    if (!(std::fabs(x) <= double(std::numeric_limits<float>::max())))
      throw FormatError(p, std::string("key '") + key + "' is out of range (got " + v.dump() + ")");
    return float(x);
  };
  auto expect_string = [&](const char* key, const char* want, const char* what) {
    if (present(key) && j[key] != want)
      throw FormatError(p, std::string(key) + " " + j[key].dump() + " is not supported (" + what + ")");
  };
  // The families whose decoder is Llama's with at most these additions: q/k/v biases (qwen2),
  // per-head q/k RMSNorm (qwen3), a sliding window (mistral; refused past it at run time).
  std::string family = "llama";
  if (present("model_type")) {
    if (!j["model_type"].is_string()) throw FormatError(p, "key 'model_type' is not a string");
    family = j["model_type"].get<std::string>();
    if (family != "llama" && family != "mistral" && family != "qwen2" && family != "qwen3")
      throw FormatError(p, "model_type " + j["model_type"].dump() +
                               " is not supported (only \"llama\", \"mistral\", \"qwen2\" and \"qwen3\")");
  }
  expect_string("hidden_act", "silu", "only \"silu\"");
  if (present("mlp_bias") && j["mlp_bias"] != false)
    throw FormatError(p, "mlp_bias " + j["mlp_bias"].dump() + " is not supported (no MLP biases)");
  if (present("attention_bias") && j["attention_bias"] != false && family != "qwen2")
    throw FormatError(p, "attention_bias " + j["attention_bias"].dump() + " is not supported for " + family +
                             " (its output projection would have a bias too)");
  if (present("use_sliding_window") && j["use_sliding_window"] != false)
    throw FormatError(p, "use_sliding_window " + j["use_sliding_window"].dump() + " is not supported for " + family);
  RuntimeConfig c;
  using Lim = ConfigLimits;
  c.dim = as_int("hidden_size", Lim::max_dim);
  c.hidden_dim = as_int("intermediate_size", Lim::max_hidden_dim);
  c.n_layers = as_int("num_hidden_layers", Lim::max_layers);
  c.n_heads = as_int("num_attention_heads", Lim::max_heads);
  c.n_kv_heads = present("num_key_value_heads") ? as_int("num_key_value_heads", Lim::max_heads) : c.n_heads;
  c.vocab_size = as_int("vocab_size", Lim::max_vocab_size);
  c.max_seq_len = as_int("max_position_embeddings", Lim::max_seq_len);
  c.norm_eps = as_float(require("rms_norm_eps"), "rms_norm_eps");
  c.attention_bias = family == "qwen2";  // Qwen2's q/k/v projections always have biases
  c.qk_norm = family == "qwen3";
  if (family == "mistral" && present("sliding_window")) c.sliding_window = as_int("sliding_window", INT_MAX);
  if (present("head_dim")) {
    c.explicit_head_dim = as_int("head_dim", Lim::max_dim);
    if (c.explicit_head_dim <= 0)
      throw FormatError(p, "key 'head_dim' must be positive (got " + j["head_dim"].dump() + ")");
    if (c.n_heads > 0 && c.dim % c.n_heads == 0 && c.explicit_head_dim == c.dim / c.n_heads)
      c.explicit_head_dim = 0;  // the default
  }

  // RoPE: transformers 4.x writes rope_theta at the top level and the scaling in rope_scaling
  // ("type" or "rope_type"); 5.x writes both into rope_parameters. Either (or both) is read.
  nlohmann::json rope = nlohmann::json::object();
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (!present(key)) continue;
    if (!j[key].is_object()) throw FormatError(p, std::string(key) + " is not an object (got " + j[key].dump() + ")");
    for (const auto& [k, v] : j[key].items()) rope[k == "type" ? "rope_type" : k] = v;
  }
  if (present("partial_rotary_factor") && !rope.contains("partial_rotary_factor"))
    rope["partial_rotary_factor"] = j["partial_rotary_factor"];  // 4.x spells it at the top level
  auto rp_present = [&](const char* key) { return rope.contains(key) && !rope[key].is_null(); };
  auto rp_float = [&](const char* key) { return as_float(rope[key], (std::string("rope ") + key).c_str()); };
  auto rp_int = [&](const char* key) {
    const auto& v = rope[key];
    if (!v.is_number() || v.get<double>() != std::floor(v.get<double>()) || v.get<double>() < 1 ||
        v.get<double>() > double(Lim::max_seq_len))
      throw FormatError(p, std::string("rope ") + key + " " + v.dump() + " is not a positive integer");
    return int(v.get<double>());
  };
  c.rope_theta = present("rope_theta") ? as_float(j["rope_theta"], "rope_theta") : 10000.0f;
  if (rp_present("rope_theta")) c.rope_theta = rp_float("rope_theta");
  if (rp_present("partial_rotary_factor") && rope["partial_rotary_factor"] != 1.0 && rope["partial_rotary_factor"] != 1)
    throw FormatError(p, "rope partial_rotary_factor " + rope["partial_rotary_factor"].dump() +
                             " is not supported (every dimension rotates)");
  const std::string rope_type = rp_present("rope_type") && rope["rope_type"].is_string()
                                    ? rope["rope_type"].get<std::string>()
                                    : (rp_present("rope_type") ? rope["rope_type"].dump() : "default");
  RopeScaling& rs = c.rope_scaling;
  if (rope_type == "default") {
    rs.type = RopeType::Default;
  } else if (rope_type == "linear") {
    rs.type = RopeType::Linear;
  } else if (rope_type == "llama3") {
    rs.type = RopeType::Llama3;
  } else if (rope_type == "yarn") {
    rs.type = RopeType::Yarn;
  } else {
    throw FormatError(p, "rope_type \"" + rope_type + "\" is not supported (default, linear, llama3 or yarn)");
  }
  if (rs.type != RopeType::Default) {
    const char* t = to_string(rs.type);
    if (rp_present("original_max_position_embeddings"))
      rs.original_max_position_embeddings = rp_int("original_max_position_embeddings");
    if (rp_present("factor")) {
      rs.factor = rp_float("factor");
    } else if (rs.type == RopeType::Yarn && rs.original_max_position_embeddings > 0) {
      rs.factor = float(double(c.max_seq_len) / rs.original_max_position_embeddings);  // as transformers 5 does
    } else {
      throw FormatError(p, std::string("rope ") + t + " needs 'factor'");
    }
    if (rs.type == RopeType::Llama3) {
      for (const char* k : {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
        if (!rp_present(k)) throw FormatError(p, std::string("rope llama3 needs '") + k + "'");
      rs.low_freq_factor = rp_float("low_freq_factor");
      rs.high_freq_factor = rp_float("high_freq_factor");
    }
    if (rs.type == RopeType::Yarn) {
      if (rs.original_max_position_embeddings == 0) rs.original_max_position_embeddings = c.max_seq_len;
      // transformers: `get("beta_fast") or 32`, so 0 means the default too.
      if (rp_present("beta_fast") && rope["beta_fast"] != 0) rs.beta_fast = rp_float("beta_fast");
      if (rp_present("beta_slow") && rope["beta_slow"] != 0) rs.beta_slow = rp_float("beta_slow");
      if (rp_present("attention_factor")) rs.attention_factor = rp_float("attention_factor");
      if (rp_present("mscale")) rs.mscale = rp_float("mscale");
      if (rp_present("mscale_all_dim")) rs.mscale_all_dim = rp_float("mscale_all_dim");
      if (rp_present("truncate")) {
        if (!rope["truncate"].is_boolean()) throw FormatError(p, "rope truncate is not a boolean");
        rs.truncate = rope["truncate"].get<bool>();
      }
    }
  }
  c.rope_style = RopeStyle::RotateHalf;
  if (present("tie_word_embeddings")) {
    if (!j["tie_word_embeddings"].is_boolean()) throw FormatError(p, "key 'tie_word_embeddings' is not a boolean");
    c.tied_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  try {
    c.validate();
  } catch (const ConfigError& e) {
    throw FormatError(p, e.what());
  }
  return c;
}

/// The file a sharded checkpoint's index names, if it lies inside the model directory: a relative
/// path without "..", whose real path (symlinks resolved) is inside the directory's real path.
/// When the index is itself a symlink (the Hugging Face cache links every file of a snapshot into
/// one blobs folder), the folder its real path lies in counts as inside too. FormatError otherwise.
inline std::filesystem::path shard_path(const std::filesystem::path& dir, const std::string& name,
                                        const std::filesystem::path& index) {
  namespace fs = std::filesystem;
  auto refuse = [&](const std::string& why) {
    throw FormatError(index.string(), "shard '" + name + "' " + why + " (shards must lie inside the model directory)");
  };
  const fs::path rel(name);
  if (name.empty() || rel.filename().empty()) refuse("is not a file name");
  if (rel.has_root_path()) refuse("is an absolute path");
  for (const auto& part : rel)
    if (part == "..") refuse("has a '..' component");
  auto inside = [](const fs::path& real, const fs::path& root) {
    const fs::path r = real.lexically_relative(root);
    return !r.empty() && *r.begin() != "..";
  };
  std::error_code ec;
  const fs::path real = fs::weakly_canonical(dir / rel, ec);
  if (ec) refuse("cannot be resolved (" + ec.message() + ")");
  const fs::path root = fs::weakly_canonical(dir, ec);
  if (ec) refuse("cannot be resolved (" + ec.message() + ")");
  if (inside(real, root)) return dir / rel;
  if (fs::is_symlink(index, ec) && inside(real, fs::weakly_canonical(index, ec).parent_path()) && !ec) return dir / rel;
  refuse("resolves to " + real.string() + ", outside the model directory");
  return {};
}

}  // namespace detail

/// How the loaders hand over tensors.
struct LoadOptions {
  /// false (default): every tensor is fp32 (fp16/bf16 checkpoints are converted: 4 bytes of host
  /// memory per parameter). true: fp16/bf16 tensors stay in their dtype as views into the mapped
  /// file (no copy), for a backend that uploads its own precision (CudaBackend); the CPU backend
  /// converts such weights itself.
  bool keep_source_dtype = false;
};

/// Loads an HF Llama directory. Every tensor is checked for presence and for the exact shape the
/// config implies; errors are FormatErrors naming the file.
inline ModelWeights load_hf(const std::filesystem::path& dir, const LoadOptions& opts = {}) {
  if (!std::filesystem::is_directory(dir)) throw FormatError(dir.string(), "not a directory");
  ModelWeights w;
  w.source = dir.string();
  w.config = detail::hf_config(dir / "config.json");
  const auto& c = w.config;

  // name -> shard that holds it
  std::map<std::string, std::shared_ptr<const SafetensorsFile>> where;
  const auto single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
  const bool sharded = !std::filesystem::exists(single);
  if (!sharded) {
    auto f = SafetensorsFile::open(single);
    for (const auto& [name, _] : f->tensors()) where[name] = f;
  } else if (std::filesystem::exists(index)) {
    const auto j = detail::read_json_file(index);
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw FormatError(index.string(), "missing key 'weight_map'");
    std::map<std::string, std::shared_ptr<const SafetensorsFile>> shards;
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) throw FormatError(index.string(), "weight_map entry '" + name + "' is not a file name");
      auto& s = shards[file.get<std::string>()];
      if (!s) s = SafetensorsFile::open(detail::shard_path(dir, file.get<std::string>(), index));
      if (!s->has(name))
        throw FormatError(s->path(), "missing tensor '" + name + "' (listed in " + index.filename().string() + ")");
      where[name] = s;
    }
  } else {
    throw FormatError(dir.string(), "has neither model.safetensors nor model.safetensors.index.json");
  }

  std::set<std::string> dtypes;
  auto get = [&](const std::string& name, std::vector<std::int64_t> shape) -> WeightView {
    auto it = where.find(name);
    if (it == where.end()) throw FormatError((sharded ? index : single).string(), "missing tensor '" + name + "'");
    const auto& info = it->second->info(name);
    if (info.shape != shape)
      throw FormatError(it->second->path(), "tensor '" + name + "' has shape " + shape_string(info.shape) +
                                                ", the config implies " + shape_string(shape));
    dtypes.insert(to_string(info.dtype));
    if (opts.keep_source_dtype && info.dtype != TensorDType::F32) return it->second->view(name);
    return std::span<const float>(it->second->as_f32(name, w.storage), std::size_t(info.numel()));
  };
  const std::int64_t d = c.dim, h = c.hidden_dim, kv = c.kv_dim(), v = c.vocab_size, q = c.q_dim(), hd = c.head_dim();
  // A bias this loader would silently drop (o_proj, MLP) means another architecture: refuse it.
  for (const auto& [name, f] : where) {
    const bool qkv_bias =
        name.ends_with("q_proj.bias") || name.ends_with("k_proj.bias") || name.ends_with("v_proj.bias");
    if (name.ends_with(".bias") && !(qkv_bias && c.attention_bias))
      throw FormatError(f->path(), "tensor '" + name + "' is not supported (this architecture has no such bias)");
  }
  w.token_embedding = get("model.embed_tokens.weight", {v, d});
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    LayerWeights lw;
    lw.attn_norm = get(pre + "input_layernorm.weight", {d});
    lw.wq = get(pre + "self_attn.q_proj.weight", {q, d});
    lw.wk = get(pre + "self_attn.k_proj.weight", {kv, d});
    lw.wv = get(pre + "self_attn.v_proj.weight", {kv, d});
    lw.wo = get(pre + "self_attn.o_proj.weight", {d, q});
    if (c.attention_bias) {
      lw.bq = get(pre + "self_attn.q_proj.bias", {q});
      lw.bk = get(pre + "self_attn.k_proj.bias", {kv});
      lw.bv = get(pre + "self_attn.v_proj.bias", {kv});
    }
    if (c.qk_norm) {
      lw.q_norm = get(pre + "self_attn.q_norm.weight", {hd});
      lw.k_norm = get(pre + "self_attn.k_norm.weight", {hd});
    }
    lw.ffn_norm = get(pre + "post_attention_layernorm.weight", {d});
    lw.w1 = get(pre + "mlp.gate_proj.weight", {h, d});
    lw.w2 = get(pre + "mlp.down_proj.weight", {d, h});
    lw.w3 = get(pre + "mlp.up_proj.weight", {h, d});
    w.layers.push_back(lw);
  }
  w.final_norm = get("model.norm.weight", {d});
  if (!c.tied_embeddings && !where.count("lm_head.weight"))
    w.config.tied_embeddings = true;  // no lm_head: the classifier is the embedding, as transformers does
  w.classifier = c.tied_embeddings ? w.token_embedding : get("lm_head.weight", {v, d});
  std::set<const SafetensorsFile*> kept;  // keep each mapping alive once (views point into it)
  for (const auto& [name, f] : where)
    if (kept.insert(f.get()).second) w.storage.push_back(f);
  w.source_dtype.clear();
  for (const auto& t : dtypes) w.source_dtype += (w.source_dtype.empty() ? "" : "+") + t;
  for (auto& ch : w.source_dtype) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return w;
}

}  // namespace lazyllm
