// SPDX-License-Identifier: MIT
// Tokenizer: one value type over the two Llama 2 tokenizer formats (SentencePiece .model,
// llama2.c tokenizer.bin), and load_tokenizer() which picks the backend by file extension.
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

namespace lazyllm {

namespace detail {

struct TokenizerConcept {
  virtual ~TokenizerConcept() = default;
  virtual std::vector<std::int32_t> encode(std::string_view text, bool add_bos) const = 0;
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
  std::string decode(std::int32_t prev, std::int32_t id) const override { return backend.decode(prev, id); }
  std::string decode(std::span<const std::int32_t> ids) const override { return backend.decode(ids); }
  std::int32_t vocab_size() const override { return backend.vocab_size(); }
  std::int32_t bos_id() const override { return backend.bos_id(); }
  std::int32_t eos_id() const override { return backend.eos_id(); }
  Backend backend;
};

}  // namespace detail

/// What a tokenizer backend provides (Llama2cTokenizer, SentencePieceTokenizer).
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
    requires(!std::same_as<Backend, Tokenizer>)
  explicit Tokenizer(Backend backend)
      : impl_(std::make_shared<const detail::TokenizerModel<Backend>>(std::move(backend))) {}

  /// Token ids of `text`; with add_bos, BOS (1) first. No EOS is ever added.
  std::vector<std::int32_t> encode(std::string_view text, bool add_bos) const { return impl_->encode(text, add_bos); }
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

/// `*.model` -> SentencePiece, `*.bin` -> llama2.c tokenizer.bin (vocab size read from the file).
/// Missing, unreadable or malformed files, and other extensions, throw FormatError naming the file.
inline Tokenizer load_tokenizer(const std::filesystem::path& path) {
  const std::string ext = path.extension().string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw FormatError(path.string(), "file not found");
  if (ext == ".model") {
#if LAZYLLM_WITH_SENTENCEPIECE
    return Tokenizer(SentencePieceTokenizer(path));
#else
    throw FormatError(path.string(), "SentencePiece tokenizer, but lazyllm was built without SentencePiece "
                                     "(install libsentencepiece-dev, or use llama2.c's tokenizer.bin)");
#endif
  }
  if (ext == ".bin") return Tokenizer(Llama2cTokenizer(path));
  throw FormatError(path.string(), "unknown tokenizer format '" + ext +
                                       "' (expected .model for SentencePiece or .bin for llama2.c)");
}

}  // namespace lazyllm
