// SPDX-License-Identifier: MIT
// The llama2.c tokenizer.bin format and a byte-fallback BPE encoder over it.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iterator>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lazyllm/detail/error.hpp"

namespace lazyllm {

namespace detail {

/// Whole file as bytes; FormatError when it does not exist or cannot be read.
inline std::string read_tokenizer_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw FormatError(path.string(), "file not found");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw FormatError(path.string(), "cannot open file");
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw FormatError(path.string(), "read error");
  return bytes;
}

/// "<0xAB>" -> 0xAB; -1 when `piece` is not a byte piece.
inline int parse_byte_piece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(piece[3]), lo = hex(piece[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/// Hash for heterogeneous (string_view) lookup in unordered maps keyed by std::string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

/// Length of the UTF-8 sequence starting at text[i]: the lead byte plus up to 3 continuation
/// bytes that follow it (malformed input just yields shorter groups, which fall back to bytes).
inline std::size_t utf8_group_length(std::string_view text, std::size_t i) {
  std::size_t n = 1;
  while (n < 4 && i + n < text.size() && (static_cast<unsigned char>(text[i + n]) & 0xC0) == 0x80) ++n;
  return n;
}

}  // namespace detail

/// Tokenizer read from llama2.c's tokenizer.bin: int32 max_token_length, then per piece
/// float32 score, int32 byte length, the bytes (SentencePiece's '▁' already replaced by ' ').
/// Ids: 0 <unk>, 1 BOS, 2 EOS, 3..258 the byte pieces <0x00>..<0xFF> (Llama 2 layout).
class Llama2cTokenizer {
 public:
  /// vocab_size > 0: read exactly that many pieces (Llama 2: 32000); 0: read to the end of file.
  explicit Llama2cTokenizer(const std::filesystem::path& path, std::int32_t vocab_size = 0) {
    const std::string file = path.string();
    if (vocab_size < 0) throw FormatError(file, "negative vocab size requested");
    const std::string bytes = detail::read_tokenizer_file(path);
    if (bytes.size() < 4) throw FormatError(file, "truncated header (" + std::to_string(bytes.size()) + " bytes)");
    std::size_t pos = 0;
    auto read_i32 = [&] {
      std::int32_t v;
      std::memcpy(&v, bytes.data() + pos, 4);
      pos += 4;
      return v;
    };
    max_token_length_ = read_i32();
    if (max_token_length_ <= 0 || max_token_length_ > (1 << 16))
      throw FormatError(file, "bad max_token_length " + std::to_string(max_token_length_) +
                                  " (not a llama2.c tokenizer.bin?)");
    for (std::int32_t i = 0; vocab_size == 0 ? pos < bytes.size() : i < vocab_size; ++i) {
      const std::string at = "truncated at piece " + std::to_string(i);
      if (bytes.size() - pos < 8) throw FormatError(file, at);
      float score;
      std::memcpy(&score, bytes.data() + pos, 4);
      pos += 4;
      const std::int32_t len = read_i32();
      if (!std::isfinite(score)) throw FormatError(file, "non-finite score at piece " + std::to_string(i));
      if (len < 0 || len > max_token_length_)
        throw FormatError(file, "piece " + std::to_string(i) + " has length " + std::to_string(len) +
                                    " outside [0, max_token_length " + std::to_string(max_token_length_) + "]");
      if (bytes.size() - pos < static_cast<std::size_t>(len)) throw FormatError(file, at);
      pieces_.emplace_back(bytes.data() + pos, static_cast<std::size_t>(len));
      scores_.push_back(score);
      pos += static_cast<std::size_t>(len);
    }
    if (pos != bytes.size())
      throw FormatError(file, std::to_string(bytes.size() - pos) + " trailing bytes after " +
                                  std::to_string(vocab_size) + " pieces (wrong vocab size?)");
    if (pieces_.size() < 3) throw FormatError(file, "too few pieces (" + std::to_string(pieces_.size()) + ")");
    ids_.reserve(pieces_.size());
    for (std::size_t i = 0; i < pieces_.size(); ++i)
      ids_.emplace(pieces_[i], static_cast<std::int32_t>(i));  // first (lowest) id wins on duplicates
  }

  std::int32_t vocab_size() const noexcept { return static_cast<std::int32_t>(pieces_.size()); }
  std::int32_t bos_id() const noexcept { return 1; }
  std::int32_t eos_id() const noexcept { return 2; }
  std::int32_t max_token_length() const noexcept { return max_token_length_; }
  const std::string& piece(std::int32_t id) const { return pieces_.at(static_cast<std::size_t>(id)); }
  float score(std::int32_t id) const { return scores_.at(static_cast<std::size_t>(id)); }

  /// Id of an exact piece, or -1.
  std::int32_t find(std::string_view piece) const {
    auto it = ids_.find(piece);
    return it == ids_.end() ? -1 : it->second;
  }

  /// Byte-fallback BPE, as SentencePiece's BPE model does it: a dummy-prefix space for non-empty
  /// text, one symbol per UTF-8 character (or one per byte, as <0xXX> pieces, when the character
  /// is not a piece), then merge the adjacent pair whose concatenation is the highest-scoring
  /// piece (leftmost on ties) until no pair is a piece.
  std::vector<std::int32_t> encode(std::string_view text, bool add_bos) const {
    std::vector<std::int32_t> out;
    if (add_bos) out.push_back(bos_id());
    if (text.empty()) return out;

    std::vector<std::int32_t> sym;
    sym.reserve(text.size() + 1);
    auto push_text = [&](std::string_view s) {
      if (const std::int32_t id = find(s); id >= 0) {
        sym.push_back(id);
        return;
      }
      for (unsigned char b : s) sym.push_back(byte_id(b));
    };
    push_text(" ");
    for (std::size_t i = 0; i < text.size();) {
      const std::size_t n = detail::utf8_group_length(text, i);
      push_text(text.substr(i, n));
      i += n;
    }

    // merge[i]: id of the piece sym[i] + sym[i+1] (or -1); recomputed only next to a merge.
    std::string buf;
    auto pair_id = [&](std::size_t i) {
      buf.assign(pieces_[static_cast<std::size_t>(sym[i])]);
      buf.append(pieces_[static_cast<std::size_t>(sym[i + 1])]);
      return find(buf);
    };
    std::vector<std::int32_t> merge(sym.size() > 1 ? sym.size() - 1 : 0);
    for (std::size_t i = 0; i < merge.size(); ++i) merge[i] = pair_id(i);
    for (;;) {
      std::size_t best = merge.size();
      float best_score = -std::numeric_limits<float>::infinity();
      for (std::size_t i = 0; i < merge.size(); ++i)
        if (merge[i] >= 0 && (best == merge.size() || scores_[static_cast<std::size_t>(merge[i])] > best_score)) {
          best = i;
          best_score = scores_[static_cast<std::size_t>(merge[i])];
        }
      if (best == merge.size()) break;
      sym[best] = merge[best];
      sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(best) + 1);
      merge.erase(merge.begin() + static_cast<std::ptrdiff_t>(best));
      if (best < merge.size()) merge[best] = pair_id(best);
      if (best > 0) merge[best - 1] = pair_id(best - 1);
    }
    out.insert(out.end(), sym.begin(), sym.end());
    return out;
  }

  /// Text of `id` when it follows `prev` (for streaming): BOS/EOS give "", <unk> gives " ⁇ " (as
  /// SentencePiece renders it), <0xXX> gives that raw byte, and the leading space of a piece that
  /// directly follows BOS (the dummy prefix) is dropped.
  std::string decode(std::int32_t prev, std::int32_t id) const {
    if (id < 0 || id >= vocab_size())
      throw InvalidArgument("token id " + std::to_string(id) + " outside the vocabulary [0, " +
                            std::to_string(vocab_size()) + ")");
    if (id == bos_id() || id == eos_id()) return {};
    if (id == 0) return " \xE2\x81\x87 ";
    std::string_view p = pieces_[static_cast<std::size_t>(id)];
    if (const int b = detail::parse_byte_piece(p); b >= 0) return std::string(1, static_cast<char>(b));
    if (prev == bos_id() && !p.empty() && p.front() == ' ') p.remove_prefix(1);
    return std::string(p);
  }

  /// Concatenated decode(prev, id); the sequence is treated as starting right after a BOS, so
  /// the dummy-prefix space of the first piece is dropped as SentencePiece does.
  std::string decode(std::span<const std::int32_t> ids) const {
    std::string s;
    std::int32_t prev = bos_id();
    for (std::int32_t id : ids) {
      s += decode(prev, id);
      prev = id;
    }
    return s;
  }

 private:
  std::int32_t byte_id(unsigned char b) const {
    const std::int32_t id = static_cast<std::int32_t>(b) + 3;
    return id < vocab_size() ? id : 0;  // vocabularies without byte pieces map to <unk>
  }

  std::int32_t max_token_length_ = 0;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, std::int32_t, detail::StringHash, std::equal_to<>> ids_;
};

}  // namespace lazyllm
