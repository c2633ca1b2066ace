// SPDX-License-Identifier: MIT
// SentencePiece (.model) tokenizer over the system libsentencepiece (Debian: libsentencepiece-dev).
//
// LAZYLLM_WITH_SENTENCEPIECE: 1 when the wrapper is compiled in (code using it must link
// -lsentencepiece, e.g. through the CMake target lazyllm::sentencepiece, which defines the macro
// itself), 0 when not. Left undefined it follows __has_include(<sentencepiece_processor.h>).
#pragma once
#ifndef LAZYLLM_WITH_SENTENCEPIECE
#if __has_include(<sentencepiece_processor.h>)
#define LAZYLLM_WITH_SENTENCEPIECE 1
#else
#define LAZYLLM_WITH_SENTENCEPIECE 0
#endif
#endif

#if LAZYLLM_WITH_SENTENCEPIECE
#include <sentencepiece_processor.h>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lazyllm/detail/error.hpp"
#include "lazyllm/text/llama2c_tokenizer.hpp"  // detail::parse_byte_piece

namespace lazyllm {

/// A SentencePiece model file (Llama 2's tokenizer.model: BPE, 32000 pieces, byte fallback).
class SentencePieceTokenizer {
 public:
  explicit SentencePieceTokenizer(const std::filesystem::path& path)
      : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
    const std::string file = path.string();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw FormatError(file, "file not found");
    sentencepiece::util::Status st;
    try {
      st = sp_->Load(file);
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {  // libsentencepiece throws on some malformed models
      throw FormatError(file, std::string("not a SentencePiece model (") + e.what() + ")");
    }
    if (!st.ok()) throw FormatError(file, "not a SentencePiece model (" + st.ToString() + ")");
    if (sp_->GetPieceSize() <= 0) throw FormatError(file, "SentencePiece model has no pieces");
  }

  std::int32_t vocab_size() const { return sp_->GetPieceSize(); }
  std::int32_t bos_id() const { return sp_->bos_id(); }
  std::int32_t eos_id() const { return sp_->eos_id(); }
  const sentencepiece::SentencePieceProcessor& processor() const noexcept { return *sp_; }

  std::vector<std::int32_t> encode(std::string_view text, bool add_bos) const {
    std::vector<int> ids;
    if (const auto st = sp_->Encode(text, &ids); !st.ok())
      throw Error("SentencePiece encode failed: " + st.ToString());
    if (add_bos && bos_id() < 0)  // a model without a BOS piece: SentencePiece's id is -1
      throw InvalidArgument("this SentencePiece model has no BOS piece; encode without BOS");
    std::vector<std::int32_t> out;
    out.reserve(ids.size() + 1);
    if (add_bos) out.push_back(bos_id());
    out.insert(out.end(), ids.begin(), ids.end());
    return out;
  }

  /// Text of `id` when it follows `prev` (for streaming): control pieces (BOS/EOS) give "",
  /// <unk> gives " ⁇ ", byte pieces <0xXX> give that raw byte, '▁' becomes ' ', and the leading
  /// space of a piece right after BOS (the dummy prefix) is dropped.
  std::string decode(std::int32_t prev, std::int32_t id) const {
    check(id);
    if (sp_->IsControl(id)) return {};
    if (sp_->IsUnknown(id)) return " \xE2\x81\x87 ";
    const std::string& p = sp_->IdToPiece(id);
    if (sp_->IsByte(id)) {
      if (const int b = detail::parse_byte_piece(p); b >= 0) return std::string(1, static_cast<char>(b));
    }
    std::string s;
    s.reserve(p.size());
    constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 '▁'
    for (std::size_t i = 0; i < p.size();) {
      if (std::string_view(p).substr(i, 3) == kSpace) {
        s += ' ';
        i += 3;
      } else {
        s += p[i++];
      }
    }
    if (prev == bos_id() && !s.empty() && s.front() == ' ') s.erase(0, 1);
    return s;
  }

  /// The token for display: control and unknown pieces by name ("<s>", "<unk>"), others as
  /// decode(-1, id) gives them.
  std::string piece(std::int32_t id) const {
    check(id);
    if (sp_->IsControl(id) || sp_->IsUnknown(id)) return sp_->IdToPiece(id);
    return decode(-1, id);
  }

  /// The id of the piece spelled `text` ("</s>", "▁Hello"), or -1.
  std::int32_t find(std::string_view text) const {
    const int id = sp_->PieceToId(text);
    return id >= 0 && sp_->IdToPiece(id) == text ? id : -1;
  }

  /// SentencePiece's own detokenization (control pieces dropped, byte runs joined into UTF-8).
  std::string decode(std::span<const std::int32_t> ids) const {
    std::vector<int> v;
    v.reserve(ids.size());
    for (std::int32_t id : ids) {
      check(id);
      v.push_back(id);
    }
    std::string s;
    if (const auto st = sp_->Decode(v, &s); !st.ok()) throw Error("SentencePiece decode failed: " + st.ToString());
    return s;
  }

 private:
  void check(std::int32_t id) const {
    if (id < 0 || id >= vocab_size())
      throw InvalidArgument("token id " + std::to_string(id) + " outside the vocabulary [0, " +
                            std::to_string(vocab_size()) + ")");
  }

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace lazyllm
#endif  // LAZYLLM_WITH_SENTENCEPIECE
