// SPDX-License-Identifier: MIT
// Hugging Face Llama checkpoints: config.json + model.safetensors, or a sharded
// model.safetensors.index.json. fp32 tensors are mapped; fp16/bf16 are converted to fp32.
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
  expect_string("model_type", "llama", "only \"llama\"");
  expect_string("hidden_act", "silu", "only \"silu\"");
  if (present("rope_scaling"))
    throw FormatError(p, "rope_scaling " + j["rope_scaling"].dump() + " is not supported (plain RoPE only)");
  for (const char* bias : {"attention_bias", "mlp_bias"})
    if (present(bias) && j[bias] != false)
      throw FormatError(p, std::string(bias) + " " + j[bias].dump() + " is not supported (Llama has no biases)");
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
  c.rope_theta = present("rope_theta") ? as_float(j["rope_theta"], "rope_theta") : 10000.0f;
  if (present("rope_parameters")) {  // transformers 5 moves rope_theta / rope_type here
    const auto& rp = j["rope_parameters"];
    if (!rp.is_object()) throw FormatError(p, "rope_parameters is not an object");
    if (rp.contains("rope_type") && rp["rope_type"] != "default")
      throw FormatError(p, "rope_parameters.rope_type " + rp["rope_type"].dump() + " is not supported (plain RoPE only)");
    if (rp.contains("rope_theta")) c.rope_theta = as_float(rp["rope_theta"], "rope_parameters.rope_theta");
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
  if (present("head_dim") && as_int("head_dim", Lim::max_dim) != c.head_dim())
    throw FormatError(p, "head_dim " + j["head_dim"].dump() + " differs from hidden_size / num_attention_heads = " +
                             std::to_string(c.head_dim()) + " (not supported)");
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
  const std::int64_t d = c.dim, h = c.hidden_dim, kv = c.kv_dim(), v = c.vocab_size;
  w.token_embedding = get("model.embed_tokens.weight", {v, d});
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    LayerWeights lw;
    lw.attn_norm = get(pre + "input_layernorm.weight", {d});
    lw.wq = get(pre + "self_attn.q_proj.weight", {d, d});
    lw.wk = get(pre + "self_attn.k_proj.weight", {kv, d});
    lw.wv = get(pre + "self_attn.v_proj.weight", {kv, d});
    lw.wo = get(pre + "self_attn.o_proj.weight", {d, d});
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
