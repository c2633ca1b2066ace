// SPDX-License-Identifier: MIT
// load_model(path): an HF directory (or a file inside one) or a llama2.c .bin file.
#pragma once
#include <filesystem>

#include "lazyllm/io/hf.hpp"
#include "lazyllm/io/llama2c.hpp"

namespace lazyllm {

/// `opts` applies to HF checkpoints (llama2.c files are fp32 and always mapped without a copy).
inline ModelWeights load_model(const std::filesystem::path& path, const LoadOptions& opts = {}) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw FormatError(path.string(), "no such file or directory");
  if (std::filesystem::is_directory(path, ec)) return load_hf(path, opts);
  const auto name = path.filename().string();
  if (path.extension() == ".safetensors" || name == "config.json" || name == "model.safetensors.index.json")
    return load_hf(path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path(), opts);
  return load_llama2c(path);
}

}  // namespace lazyllm
