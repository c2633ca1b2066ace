// SPDX-License-Identifier: MIT
// The driver's memory accounting: the model's shape and dtype read without loading it, the memory
// available, and what a run used (for the timing footer). Linux: /proc/meminfo and
// /proc/self/status. What each backend needs is the library's (lazyllm/backend/memory_need.hpp).
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
#include "lazyllm/backend/memory_need.hpp"
#include "lazyllm/detail/format.hpp"
#include "lazyllm/io/hf.hpp"
#include "lazyllm/io/llama2c.hpp"
#include "lazyllm/io/safetensors.hpp"

namespace lazyllm::driver {

using detail::format_bytes;

/// A byte count as written in an environment override: digits with an optional K, M, G or T
/// suffix (binary). nullopt when it is not one.
inline std::optional<std::uint64_t> parse_bytes(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || v < 0) return std::nullopt;
  std::uint64_t mul = 1;
  const std::string suffix = end;
  if (suffix == "" || suffix == "B")
    mul = 1;
  else if (suffix == "K" || suffix == "KiB")
    mul = 1ull << 10;
  else if (suffix == "M" || suffix == "MiB")
    mul = 1ull << 20;
  else if (suffix == "G" || suffix == "GiB")
    mul = 1ull << 30;
  else if (suffix == "T" || suffix == "TiB")
    mul = 1ull << 40;
  else
    return std::nullopt;
  return std::uint64_t(v * double(mul));
}

using cli::hf_directory;  // examples/common/model_files.hpp

/// -m names a model file or an HF directory: anything else that exists (a FIFO, a device, a
/// socket) is refused before anything opens it (opening a FIFO would block for ever).
inline void check_model_path(const std::filesystem::path& model) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto st = fs::status(model, ec);
  if (ec || !fs::exists(st)) return;  // the loader reports a missing file
  if (!fs::is_regular_file(st) && !fs::is_directory(st))
    throw Error("-m " + model.string() +
                ": not a regular file or a model directory (a FIFO, device or socket cannot hold a model)");
  if (fs::is_directory(st))
    for (const char* name : {"config.json", "model.safetensors", "model.safetensors.index.json"}) {
      const auto f = fs::status(model / name, ec);
      if (!ec && fs::exists(f) && !fs::is_regular_file(f))
        throw Error("-m " + model.string() + ": " + name + " is not a regular file");
    }
}

/// The model's shape, validated as the loader validates it but without reading the weights, so a
/// corrupt header reads as corrupt (not as "not enough memory" for its absurd shape): a llama2.c
/// file is mapped and checked whole by its loader (header and size; zero copy, nothing is read);
/// an HF directory's config.json is checked against the embedding's shape in the safetensors
/// header. Throws the loader's FormatError naming the file; nullopt when the path does not exist
/// (load_model then reports it).
inline std::optional<RuntimeConfig> validated_config(const std::filesystem::path& model) {
  std::error_code ec;
  if (!std::filesystem::exists(model, ec)) return std::nullopt;
  const std::filesystem::path dir = hf_directory(model);
  if (dir.empty()) return load_llama2c(model).config;
  const RuntimeConfig c = detail::hf_config(dir / "config.json");
  const std::string embed = "model.embed_tokens.weight";
  std::filesystem::path file = dir / "model.safetensors";
  if (!std::filesystem::exists(file, ec)) {
    const auto j = detail::read_json_file(dir / "model.safetensors.index.json");
    if (!j.contains("weight_map") || !j["weight_map"].contains(embed)) return c;  // the loader says what is missing
    file = dir / j["weight_map"][embed].get<std::string>();
  }
  const auto st = SafetensorsFile::open(file);
  if (st->has(embed)) {
    const auto& shape = st->info(embed).shape;
    if (shape != std::vector<std::int64_t>{c.vocab_size, c.dim})
      throw FormatError(file.string(), embed + " is " + shape_string(shape) + " but config.json says [vocab_size " +
                                           std::to_string(c.vocab_size) + ", hidden_size " + std::to_string(c.dim) +
                                           "]: the config does not describe these weights");
  }
  return c;
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
    if (std::sscanf(line.c_str(), "VmRSS: %lld kB", &kib) == 1)
      u.rss = kib * 1024;
    else if (std::sscanf(line.c_str(), "VmHWM: %lld kB", &kib) == 1)
      u.rss_peak = kib * 1024;
  }
  return u;
}

}  // namespace lazyllm::driver
