// SPDX-License-Identifier: MIT
// The driver's memory accounting: what a run will need (checked before the model loads) and what
// it used (for the timing footer). Linux: /proc/meminfo and /proc/self/status; the GPU side is
// queried through cuda.cu (cudaMemGetInfo).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "../common/model_files.hpp"
#include "lazyllm/io/hf.hpp"
#include "lazyllm/io/llama2c.hpp"

namespace lazyllm::driver {

/// "512.0 KiB", "13.48 GiB": binary units, for messages.
inline std::string format_bytes(std::uint64_t b) {
  char buf[64];
  const double d = double(b);
  if (b >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", d / double(1ull << 30));
  else if (b >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", d / double(1ull << 20));
  else if (b >= (1ull << 10)) std::snprintf(buf, sizeof buf, "%.1f KiB", d / double(1ull << 10));
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  return buf;
}

/// A byte count as written in an environment override: digits with an optional K, M, G or T
/// suffix (binary). nullopt when it is not one.
inline std::optional<std::uint64_t> parse_bytes(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || v < 0) return std::nullopt;
  std::uint64_t mul = 1;
  const std::string suffix = end;
  if (suffix == "" || suffix == "B") mul = 1;
  else if (suffix == "K" || suffix == "KiB") mul = 1ull << 10;
  else if (suffix == "M" || suffix == "MiB") mul = 1ull << 20;
  else if (suffix == "G" || suffix == "GiB") mul = 1ull << 30;
  else if (suffix == "T" || suffix == "TiB") mul = 1ull << 40;
  else return std::nullopt;
  return std::uint64_t(v * double(mul));
}

using cli::hf_directory;  // examples/common/model_files.hpp

/// The model's shape without loading its weights (config.json, or the llama2.c header); nullopt
/// when it cannot be read (load_model then reports the problem with the file).
inline std::optional<RuntimeConfig> peek_config(const std::filesystem::path& model) {
  try {
    const std::filesystem::path dir = hf_directory(model);
    if (!dir.empty()) return detail::hf_config(dir / "config.json");
    std::ifstream f(model, std::ios::binary);
    unsigned char b[40] = {};
    if (!f.read(reinterpret_cast<char*>(b), sizeof b)) return std::nullopt;
    std::int32_t h[7];
    std::uint32_t magic = 0;
    std::memcpy(&magic, b, 4);
    bool shared = false;
    if (magic == detail::kLlama2cMagic) {
      std::memcpy(h, b + 8, sizeof h);
      shared = b[36] != 0;
    } else {
      std::memcpy(h, b, sizeof h);
      if (h[5] == INT32_MIN) return std::nullopt;
      shared = h[5] > 0;
      if (h[5] < 0) h[5] = -h[5];
    }
    return detail::llama2c_config(model.string(), h, shared);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

/// The dtype of the checkpoint's weights without reading them: "f32" for a llama2.c .bin file,
/// else the dtype of the first layer's query projection in the safetensors header ("f32", "f16"
/// or "bf16"); nullopt when it cannot be read (load_model then reports the problem).
inline std::optional<std::string> peek_weight_dtype(const std::filesystem::path& model) {
  try {
    std::error_code ec;
    const std::filesystem::path dir = hf_directory(model);
    if (dir.empty())
      return std::filesystem::is_regular_file(model, ec) ? std::optional<std::string>("f32") : std::nullopt;
    const std::string probe = "model.layers.0.self_attn.q_proj.weight";
    std::filesystem::path file = dir / "model.safetensors";
    if (!std::filesystem::exists(file, ec)) {
      const auto j = detail::read_json_file(dir / "model.safetensors.index.json");
      file = dir / j.at("weight_map").at(probe).get<std::string>();
    }
    const auto st = SafetensorsFile::open(file);
    std::string dt = to_string(st->info(probe).dtype);
    for (auto& ch : dt) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    return dt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

/// What a run needs in one memory (host RAM or GPU), in bytes.
struct MemoryNeed {
  std::string where;  // "RAM" or "GPU memory"
  std::uint64_t weights = 0, kv_cache = 0, aux_cache = 0, activations = 0;
  std::string weights_note;  // e.g. "fp32"
  std::uint64_t total() const { return weights + kv_cache + aux_cache + activations; }
  std::string breakdown() const {
    std::string s = "weights " + format_bytes(weights);
    if (!weights_note.empty()) s += " (" + weights_note + ")";
    if (kv_cache) s += " + KV cache " + format_bytes(kv_cache);
    if (aux_cache) s += " + Aux Cache " + format_bytes(aux_cache);
    if (activations) s += " + activations/workspace ~" + format_bytes(activations);
    return s + " = " + format_bytes(total());
  }
};

/// Per-row scratch of one layer (x, its copy, the normed input, q, k, v, attention output, the
/// output projection, gate and up) for `rows` rows, plus the logits and per-head scores.
inline std::uint64_t activation_bytes(const RuntimeConfig& c, std::uint64_t rows) {
  const std::uint64_t d = std::uint64_t(c.dim), kvd = std::uint64_t(c.kv_dim()), hid = std::uint64_t(c.hidden_dim);
  return rows * (6 * d + 2 * kvd + 2 * hid) * 4 + std::uint64_t(c.vocab_size) * 4 +
         std::uint64_t(c.n_heads) * rows * 4;
}

/// Host RAM for the CPU backend: fp32 weights (mapped or converted at load), fp32 K and V for
/// every layer and position of the context, the Aux Cache of `aux_layers` layers, and the
/// activations of a prefill as long as the context. With `kv_on_host` false (the CUDA backend)
/// only the upload's staging buffer: the checkpoint stays memory-mapped (page cache, not a copy;
/// the driver loads with keep_source_dtype) and each tensor passes through one bf16 buffer.
inline MemoryNeed host_need(const RuntimeConfig& c, int n_ctx, int aux_layers, bool kv_on_host, int store_bytes = 2,
                            const std::string& store_name = "bf16") {
  MemoryNeed m;
  m.where = "RAM";
  if (!kv_on_host) {
    const std::uint64_t d = std::uint64_t(c.dim),
                        widest = std::max<std::uint64_t>(std::uint64_t(c.vocab_size), std::uint64_t(c.hidden_dim) + 8);
    m.weights = widest * d * std::uint64_t(store_bytes);
    m.weights_note = store_name + " staging of the largest tensor for the GPU upload; the file stays mapped";
    return m;
  }
  m.weights = std::uint64_t(c.n_params()) * 4;
  m.weights_note = "fp32";
  {
    const std::uint64_t ctx = std::uint64_t(n_ctx);
    m.kv_cache = 2 * std::uint64_t(c.n_layers) * ctx * std::uint64_t(c.kv_dim()) * 4;
    m.aux_cache = std::uint64_t(aux_layers) * ctx * std::uint64_t(c.dim) * 4;
    m.activations = activation_bytes(c, ctx);
  }
  return m;
}

/// GPU memory for the CUDA backend: weights in its storage type (`store_bytes`, `store_name`:
/// bf16 by default; plus norms and RoPE tables), K and V in the same type, the
/// fp32 Aux Cache, and activations plus GEMM workspace (an estimate: 64 MiB of workspace).
inline MemoryNeed gpu_need(const RuntimeConfig& c, int n_ctx, int aux_layers, int store_bytes = 2,
                           const std::string& store_name = "bf16") {
  MemoryNeed m;
  m.where = "GPU memory";
  const std::uint64_t ctx = std::uint64_t(n_ctx);
  const std::uint64_t sb = std::uint64_t(store_bytes);
  m.weights = std::uint64_t(c.n_params()) * sb + std::uint64_t(c.max_seq_len) * std::uint64_t(c.head_dim()) * 4;
  m.weights_note = store_name;
  m.kv_cache = 2 * std::uint64_t(c.n_layers) * ctx * std::uint64_t(c.kv_dim()) * sb;
  m.aux_cache = std::uint64_t(aux_layers) * ctx * std::uint64_t(c.dim) * 4;
  m.activations = activation_bytes(c, ctx) + (64ull << 20);
  return m;
}

/// Available host memory: $LAZYLLM_AVAILABLE_MEMORY when set (a testing override, e.g. "64M"),
/// else MemAvailable from /proc/meminfo; nullopt when neither can be read.
inline std::optional<std::uint64_t> host_available(std::string* source = nullptr) {
  if (const char* env = std::getenv("LAZYLLM_AVAILABLE_MEMORY")) {
    if (auto v = parse_bytes(env)) {
      if (source) *source = "LAZYLLM_AVAILABLE_MEMORY";
      return v;
    }
  }
  std::ifstream f("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (f >> key >> kib) {
    std::getline(f, unit);
    if (key == "MemAvailable:") {
      if (source) *source = "MemAvailable in /proc/meminfo";
      return kib * 1024;
    }
  }
  return std::nullopt;
}

/// This process's resident set now and at its peak (VmRSS, VmHWM), in bytes; -1 when unknown.
struct HostMemoryUse {
  std::int64_t rss = -1, rss_peak = -1;
};
inline HostMemoryUse host_memory_use() {
  HostMemoryUse u;
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    long long kib = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %lld kB", &kib) == 1) u.rss = kib * 1024;
    else if (std::sscanf(line.c_str(), "VmHWM: %lld kB", &kib) == 1) u.rss_peak = kib * 1024;
  }
  return u;
}

}  // namespace lazyllm::driver
