// SPDX-License-Identifier: MIT
// Where the files of a model are: the Hugging Face directory a -m argument names, and the
// tokenizer that ships beside it. Shared by the example programs.
#pragma once
#include <filesystem>
#include <string>
#include <system_error>

namespace lazyllm::cli {

/// The HF directory `model` names (itself, or the folder of its config.json / safetensors), else "".
inline std::filesystem::path hf_directory(const std::filesystem::path& model) {
  std::error_code ec;
  if (std::filesystem::is_directory(model, ec)) return model;
  const auto name = model.filename().string();
  if (model.extension() == ".safetensors" || name == "config.json" || name == "model.safetensors.index.json")
    return model.parent_path().empty() ? std::filesystem::path(".") : model.parent_path();
  return {};
}

/// The tokenizer beside an HF checkpoint: tokenizer.model (SentencePiece), else tokenizer.bin
/// (llama2.c); "" when `model` is not an HF directory or has neither.
inline std::string tokenizer_beside(const std::filesystem::path& model) {
  const auto dir = hf_directory(model);
  std::error_code ec;
  if (!dir.empty())
    for (const char* name : {"tokenizer.model", "tokenizer.bin"})
      if (std::filesystem::is_regular_file(dir / name, ec)) return (dir / name).string();
  return {};
}

}  // namespace lazyllm::cli
