// SPDX-License-Identifier: MIT
// Tokenizer: one value type over the tokenizer formats (SentencePiece .model, llama2.c
// tokenizer.bin, Hugging Face tokenizer.json with byte-level BPE), load_tokenizer() which picks
// the backend by file name, and find_tokenizer() which finds the file in a model directory.
//
// LAZYLLM_WITH_HF_TOKENIZER: 1 when tokenizer.json support is compiled in (lazyllm/text/
// hf_tokenizer.hpp, which needs PCRE2 and utf8proc: link the CMake target lazyllm::hf_tokenizer,
// which defines the macro); 0 or undefined: tokenizer.json files are refused with a FormatError.
#pragma once
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "lazyllm/detail/error.hpp"
#include "lazyllm/text/llama2c_tokenizer.hpp"
#include "lazyllm/text/sentencepiece.hpp"

#ifndef LAZYLLM_WITH_HF_TOKENIZER
#define LAZYLLM_WITH_HF_TOKENIZER 0
#endif
#if LAZYLLM_WITH_HF_TOKENIZER
#include "lazyllm/text/hf_tokenizer.hpp"
#endif

namespace lazyllm {

/// How Tokenizer::encode treats a text.
struct EncodeOptions {
  /// The tokenizer's own leading special tokens: BOS for Llama 2 and Llama 3 (tokenizer.json: what
  /// its post-processor adds; Qwen adds none).
  bool add_bos = true;
  /// tokenizer.json: text of special tokens ("<|eot_id|>") becomes their id, as Hugging Face does
  /// by default; false: it is encoded as ordinary text. (SentencePiece and llama2.c tokenizers
  /// never read special tokens in text: no effect there.)
  bool parse_special = true;
};

namespace detail {

struct TokenizerConcept {
  virtual ~TokenizerConcept() = default;
  virtual std::vector<std::int32_t> encode(std::string_view text, bool add_bos) const = 0;
  virtual std::vector<std::int32_t> encode(std::string_view text, const EncodeOptions& o) const = 0;
  virtual std::string piece(std::int32_t id) const = 0;
  virtual std::int32_t find(std::string_view text) const = 0;
  virtual std::string decode(std::int32_t prev, std::int32_t id) const = 0;
  virtual std::string decode(std::span<const std::int32_t> ids) const = 0;
  virtual std::int32_t vocab_size() const = 0;
  virtual std::int32_t bos_id() const = 0;
  virtual std::int32_t eos_id() const = 0;
};

template <class Backend>
struct TokenizerModel final : TokenizerConcept {
  explicit TokenizerModel(Backend b) : backend(std::move(b)) {}
  std::vector<std::int32_t> encode(std::string_view text, bool add_bos) const override {
    return backend.encode(text, add_bos);
  }
  std::vector<std::int32_t> encode(std::string_view text, const EncodeOptions& o) const override {
    if constexpr (requires { backend.encode(text, o.add_bos, o.parse_special); })
      return backend.encode(text, o.add_bos, o.parse_special);
    else
      return backend.encode(text, o.add_bos);
  }
  std::string piece(std::int32_t id) const override {
    if constexpr (requires { backend.piece(id); })
      return std::string(backend.piece(id));
    else
      return backend.decode(-1, id);
  }
  std::int32_t find(std::string_view text) const override {
    if constexpr (requires { backend.find(text); })
      return backend.find(text);
    else
      return -1;
  }
  std::string decode(std::int32_t prev, std::int32_t id) const override { return backend.decode(prev, id); }
  std::string decode(std::span<const std::int32_t> ids) const override { return backend.decode(ids); }
  std::int32_t vocab_size() const override { return backend.vocab_size(); }
  std::int32_t bos_id() const override { return backend.bos_id(); }
  std::int32_t eos_id() const override { return backend.eos_id(); }
  Backend backend;
};

}  // namespace detail

/// What a tokenizer backend provides (Llama2cTokenizer, SentencePieceTokenizer, HfTokenizer).
/// Optional: encode(text, add_bos, parse_special), piece(id), find(text).
template <class T>
concept TokenizerBackend = requires(const T& t, std::string_view s, std::span<const std::int32_t> ids) {
  { t.encode(s, true) } -> std::same_as<std::vector<std::int32_t>>;
  { t.decode(std::int32_t{}, std::int32_t{}) } -> std::same_as<std::string>;
  { t.decode(ids) } -> std::same_as<std::string>;
  { t.vocab_size() } -> std::convertible_to<std::int32_t>;
  { t.bos_id() } -> std::convertible_to<std::int32_t>;
  { t.eos_id() } -> std::convertible_to<std::int32_t>;
};

/// A loaded tokenizer. Cheap to copy (the backend is shared and immutable); thread-safe to use.
class Tokenizer {
 public:
  template <TokenizerBackend Backend>
  requires(!std::same_as<Backend, Tokenizer>) explicit Tokenizer(Backend backend)
      : impl_(std::make_shared<const detail::TokenizerModel<Backend>>(std::move(backend))) {}

  /// Token ids of `text`; with add_bos, BOS first (tokenizer.json: the post-processor's special
  /// tokens, if any). No EOS is ever added. Special-token text is parsed (see EncodeOptions).
  std::vector<std::int32_t> encode(std::string_view text, bool add_bos) const { return impl_->encode(text, add_bos); }
  std::vector<std::int32_t> encode(std::string_view text, const EncodeOptions& o) const {
    return impl_->encode(text, o);
  }
  /// The text of one token for display: its bytes (possibly part of a UTF-8 character), special
  /// tokens by their name ("<|eot_id|>", "<s>").
  std::string piece(std::int32_t id) const { return impl_->piece(id); }
  /// The id of the token spelled `text` ("<|im_end|>", "</s>"), or -1.
  std::int32_t find(std::string_view text) const { return impl_->find(text); }
  /// Text of `id` emitted after `prev`, for streaming output: concatenating the pieces of a
  /// generated sequence gives its bytes (byte pieces come out one raw byte at a time).
  std::string decode(std::int32_t prev, std::int32_t id) const { return impl_->decode(prev, id); }
  /// Text of a whole sequence (BOS/EOS dropped, no leading dummy-prefix space).
  std::string decode(std::span<const std::int32_t> ids) const { return impl_->decode(ids); }
  int vocab_size() const { return impl_->vocab_size(); }
  std::int32_t bos_id() const { return impl_->bos_id(); }
  std::int32_t eos_id() const { return impl_->eos_id(); }

  /// The backend when it is a `Backend`, else nullptr.
  template <TokenizerBackend Backend>
  const Backend* backend() const noexcept {
    auto* m = dynamic_cast<const detail::TokenizerModel<Backend>*>(impl_.get());
    return m ? &m->backend : nullptr;
  }

 private:
  std::shared_ptr<const detail::TokenizerConcept> impl_;
};

/// `*.model` -> SentencePiece, `*.bin` -> llama2.c tokenizer.bin (vocab size read from the file),
/// `*.json` -> Hugging Face tokenizer.json (byte-level BPE; tokenizer_config.json beside it is
/// read too). Missing, unreadable or malformed files, and other extensions, throw FormatError
/// naming the file.
inline Tokenizer load_tokenizer(const std::filesystem::path& path) {
  const std::string ext = path.extension().string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw FormatError(path.string(), "file not found");
  if (std::filesystem::is_directory(path, ec))
    throw FormatError(path.string(), "is a directory (find_tokenizer() finds the tokenizer file in a model directory)");
  if (ext == ".json") {
#if LAZYLLM_WITH_HF_TOKENIZER
    return Tokenizer(HfTokenizer(path));
#else
    throw FormatError(path.string(),
                      "Hugging Face tokenizer.json, but lazyllm was built without tokenizer.json "
                      "support (install pkg-config libpcre2-dev libutf8proc-dev and reconfigure)");
#endif
  }
  if (ext == ".model") {
#if LAZYLLM_WITH_SENTENCEPIECE
    return Tokenizer(SentencePieceTokenizer(path));
#else
    throw FormatError(path.string(),
                      "SentencePiece tokenizer, but lazyllm was built without SentencePiece "
                      "(install libsentencepiece-dev, or use llama2.c's tokenizer.bin)");
#endif
  }
  if (ext == ".bin") return Tokenizer(Llama2cTokenizer(path));
  throw FormatError(path.string(), "unknown tokenizer format '" + ext +
                                       "' (expected .json for Hugging Face, .model for SentencePiece or .bin for "
                                       "llama2.c)");
}

/// The tokenizer file of a model directory: tokenizer.model (SentencePiece: Llama 2, Mistral),
/// else tokenizer.json (Hugging Face: Llama 3, Qwen), else tokenizer.bin (llama2.c); a file path
/// is returned as it is. FormatError naming the directory when it has none of them.
/// (tokenizer.model comes first because Llama 2 and Mistral directories also hold a
/// tokenizer.json in the SentencePiece style, which HfTokenizer does not read.)
inline std::filesystem::path find_tokenizer(const std::filesystem::path& model) {
  std::error_code ec;
  if (!std::filesystem::is_directory(model, ec)) return model;
  for (const char* name : {"tokenizer.model", "tokenizer.json", "tokenizer.bin"})
    if (std::filesystem::is_regular_file(model / name, ec)) return model / name;
  throw FormatError(model.string(), "no tokenizer.model, tokenizer.json or tokenizer.bin in this directory");
}

}  // namespace lazyllm
