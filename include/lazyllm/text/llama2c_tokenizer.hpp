// SPDX-License-Identifier: MIT
// The llama2.c tokenizer.bin format and a byte-fallback BPE encoder over it.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
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

  /// The symbols before any merge: the dummy-prefix space, then one per UTF-8 character of
  /// `text` (one <0xXX> byte piece per byte when the character is not a piece). Empty text: none.
  std::vector<std::int32_t> initial_symbols(std::string_view text) const {
    std::vector<std::int32_t> sym;
    if (text.empty()) return sym;
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
    return sym;
  }

  /// Byte-fallback BPE, as SentencePiece's BPE model does it: from initial_symbols(text), merge
  /// the adjacent pair whose concatenation is the highest-scoring piece (leftmost on ties) until
  /// no pair is a piece. O(n log n) in the text's length: the candidate pairs wait in a heap and
  /// the symbols form a linked list (detail::bpe_encode_by_rescanning is the O(n^2) definition
  /// it is tested against: 480 ms for a 12k-token prompt with Llama 2's vocabulary, 10 ms here).
  std::vector<std::int32_t> encode(std::string_view text, bool add_bos) const {
    std::vector<std::int32_t> out;
    if (add_bos) out.push_back(bos_id());
    std::vector<std::int32_t> sym = initial_symbols(text);
    if (sym.empty()) return out;

    // Symbols in text order as a linked list (next[i] == kEnd: last; a symbol merged into its
    // left neighbour is unlinked and never seen again).
    constexpr std::uint32_t kEnd = std::numeric_limits<std::uint32_t>::max();
    if (sym.size() >= kEnd)
      throw InvalidArgument("text of " + std::to_string(text.size()) + " bytes is too long to encode");
    const auto n_sym = static_cast<std::uint32_t>(sym.size());
    std::vector<std::uint32_t> prev(n_sym), next(n_sym);
    for (std::uint32_t i = 0; i < n_sym; ++i) {
      prev[i] = i == 0 ? kEnd : i - 1;
      next[i] = i + 1 == n_sym ? kEnd : i + 1;
    }
    // A candidate merge of symbols left and right (adjacent when pushed, holding the pieces
    // left_id and right_id then). It is stale once either side has changed: the symbols keep
    // their first positions, so "leftmost" is the smallest `left` among the live candidates.
    struct Candidate {
      float score;
      std::uint32_t left, right;
      std::int32_t left_id, right_id, merged;
    };
    auto worse = [](const Candidate& a, const Candidate& b) {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    };
    std::vector<Candidate> heap;
    std::string buf;
    auto offer = [&](std::uint32_t l, std::uint32_t r) {
      if (l == kEnd || r == kEnd) return;
      buf.assign(pieces_[static_cast<std::size_t>(sym[l])]);
      buf.append(pieces_[static_cast<std::size_t>(sym[r])]);
      if (const std::int32_t id = find(buf); id >= 0) {
        heap.push_back({scores_[static_cast<std::size_t>(id)], l, r, sym[l], sym[r], id});
        std::push_heap(heap.begin(), heap.end(), worse);
      }
    };
    for (std::uint32_t i = 0; i + 1 < n_sym; ++i) offer(i, i + 1);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), worse);
      const Candidate c = heap.back();
      heap.pop_back();
      if (next[c.left] != c.right || sym[c.left] != c.left_id || sym[c.right] != c.right_id) continue;  // stale
      sym[c.left] = c.merged;
      next[c.left] = next[c.right];
      if (next[c.right] != kEnd) prev[next[c.right]] = c.left;
      next[c.right] = kEnd;  // unlinked: every candidate that starts at it is now stale
      offer(prev[c.left], c.left);
      offer(c.left, next[c.left]);
    }
    for (std::uint32_t i = 0; i != kEnd; i = next[i]) out.push_back(sym[i]);
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

namespace detail {

/// Llama2cTokenizer::encode's definition, written directly (no BOS): after every merge, scan
/// every adjacent pair for the highest-scoring piece, leftmost on ties (each pair's piece is
/// looked up once and again only next to a merge). O(n^2) in the text's length: this was
/// encode until the heap replaced it, and is now the tests' oracle and lazyllm-bench-tokenize's
/// baseline.
inline std::vector<std::int32_t> bpe_encode_by_rescanning(const Llama2cTokenizer& t, std::string_view text) {
  std::vector<std::int32_t> sym = t.initial_symbols(text);
  std::string buf;
  auto pair_id = [&](std::size_t i) {
    buf.assign(t.piece(sym[i]));
    buf.append(t.piece(sym[i + 1]));
    return t.find(buf);
  };
  std::vector<std::int32_t> merge(sym.size() > 1 ? sym.size() - 1 : 0);  // piece of sym[i] + sym[i+1], or -1
  for (std::size_t i = 0; i < merge.size(); ++i) merge[i] = pair_id(i);
  for (;;) {
    std::size_t best = merge.size();
    float best_score = 0.0f;
    for (std::size_t i = 0; i < merge.size(); ++i)
      if (merge[i] >= 0 && (best == merge.size() || t.score(merge[i]) > best_score)) {
        best = i;
        best_score = t.score(merge[i]);
      }
    if (best == merge.size()) return sym;
    sym[best] = merge[best];
    sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    merge.erase(merge.begin() + static_cast<std::ptrdiff_t>(best));
    if (best < merge.size()) merge[best] = pair_id(best);
    if (best > 0) merge[best - 1] = pair_id(best - 1);
  }
}

}  // namespace detail

}  // namespace lazyllm
