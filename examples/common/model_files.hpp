// SPDX-License-Identifier: MIT
// Where the files of a model are: the Hugging Face directory a -m argument names, the tokenizer
// that ships beside it, whether that tokenizer fits the model, and the ids that end generation.
// Shared by the example programs.
#pragma once
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "lazyllm/io/hf.hpp"
#include "lazyllm/text/chat.hpp"
#include "lazyllm/text/tokenizer.hpp"

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

/// The tokenizer beside an HF checkpoint: tokenizer.model (SentencePiece), else tokenizer.json
/// (Hugging Face: Llama 3, Qwen), else tokenizer.bin (llama2.c); "" when `model` is not an HF
/// directory or has none of them.
inline std::string tokenizer_beside(const std::filesystem::path& model) {
  const auto dir = hf_directory(model);
  std::error_code ec;
  if (!dir.empty())
    for (const char* name : {"tokenizer.model", "tokenizer.json", "tokenizer.bin"})
      if (std::filesystem::is_regular_file(dir / name, ec)) return (dir / name).string();
  return {};
}

/// Whether a tokenizer of `tok_vocab` ids (read from `tok_path`) fits a model of `model_vocab`
/// rows. Hugging Face checkpoints often pad the embedding past the tokenizer's ids (Qwen2.5: 152064
/// rows for 151665 tokens): a tokenizer.json may have fewer ids than the model, never more; the
/// other formats must match exactly.
inline bool tokenizer_fits(const std::filesystem::path& tok_path, std::int64_t tok_vocab, std::int64_t model_vocab) {
  return tok_path.extension() == ".json" ? tok_vocab <= model_vocab : tok_vocab == model_vocab;
}

/// The ids that end generation: config.json's bos/eos_token_id (an id or a list) for a Hugging
/// Face directory, a tokenizer.json's EOS, and the chat format's stop tokens (<|eot_id|>,
/// <|im_end|>), each below `vocab`; sorted, without duplicates. Empty when none of these says
/// anything (the caller keeps Llama 2's 1 and 2, or its tokenizer's BOS/EOS).
inline std::vector<std::int32_t> stop_ids(const std::filesystem::path& model, const Tokenizer* tok,
                                          const std::filesystem::path& tok_path, const ChatTemplate* chat,
                                          std::int64_t vocab) {
  std::vector<std::int32_t> ids;
  const auto dir = hf_directory(model);
  std::error_code ec;
  if (!dir.empty() && std::filesystem::is_regular_file(dir / "config.json", ec)) {
    const auto j = detail::read_json_file(dir / "config.json");
    for (const char* key : {"bos_token_id", "eos_token_id"}) {
      if (!j.is_object() || !j.contains(key)) continue;
      const auto& v = j[key];
      if (v.is_number_integer()) ids.push_back(v.get<std::int32_t>());
      if (v.is_array())
        for (const auto& x : v)
          if (x.is_number_integer()) ids.push_back(x.get<std::int32_t>());
    }
  }
  if (tok && tok_path.extension() == ".json") {
    ids.push_back(tok->eos_id());
    if (chat)
      for (const auto& t : chat->stop_tokens)
        if (const std::int32_t id = tok->find(t); id >= 0) ids.push_back(id);
  }
  std::erase_if(ids, [&](std::int32_t id) { return id < 0 || id >= vocab; });
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace lazyllm::cli
