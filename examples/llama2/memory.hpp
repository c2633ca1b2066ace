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

#include "lazyllm/backend/memory_need.hpp"
#include "lazyllm/detail/format.hpp"
#include "lazyllm/io/hf.hpp"
#include "lazyllm/io/llama2c.hpp"

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

/// The HF directory `model` names (itself, or the folder of its config.json / safetensors), else "".
inline std::filesystem::path hf_directory(const std::filesystem::path& model) {
  std::error_code ec;
  if (std::filesystem::is_directory(model, ec)) return model;
  const auto name = model.filename().string();
  if (model.extension() == ".safetensors" || name == "config.json" || name == "model.safetensors.index.json")
    return model.parent_path().empty() ? std::filesystem::path(".") : model.parent_path();
  return {};
}

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
