// SPDX-License-Identifier: MIT
// Hugging Face tokenizer.json with a byte-level BPE model (GPT-2's scheme, as Llama 3 and
// Qwen2/2.5/3 ship it), encoded and decoded exactly as the Hugging Face `tokenizers` library does.
//
// Needs PCRE2 (8-bit, with Unicode support) and utf8proc: link the CMake target
// lazyllm::hf_tokenizer, or -lpcre2-8 -lutf8proc (Debian: libpcre2-dev libutf8proc-dev).
//
// What is read, in the order `tokenizers` applies it to a text:
//  1. added_tokens: matched in the raw text first (leftmost, longest), with their single_word,
//     lstrip and rstrip flags; tokens with normalized=true are matched in the normalised text of
//     the pieces between the others. Ids are assigned as `tokenizers` assigns them (the content's
//     id in the model's vocabulary, else the next free id after it), not read from "id".
//  2. normalizer: null or NFC (utf8proc), alone or in a Sequence.
//  3. pre_tokenizer: Split steps (a regular expression or a string, behaviour Isolated), then a
//     ByteLevel step (add_prefix_space, use_regex with GPT-2's expression); alone or in a
//     Sequence. Split expressions are Oniguruma syntax: they are translated to PCRE2 (UTF, Unicode
//     properties, JIT when available) where the two agree -- \s is Unicode's White_Space, \d is
//     \p{Nd} -- and refused where they would not (\w, \b, \h, ^, $, inline options other than i).
//  4. model: BPE over the byte-level alphabet: merges by rank (lowest first, leftmost among equal
//     ranks), ignore_merges (a whole pre-token that is in the vocabulary is one token), unk_token
//     and fuse_unk; byte_fallback, dropout, and subword prefixes/suffixes are refused.
//  5. post_processor: null, ByteLevel (no effect on ids), TemplateProcessing's "single" template
//     (e.g. Llama 3's BOS), alone or in a Sequence; added only when asked for (add_bos).
//  6. decoder: ByteLevel (bytes back from the byte-level alphabet; invalid UTF-8 in the result is
//     replaced as Rust's String::from_utf8_lossy does).
// Anything else (another model, normaliser, pre-tokenizer, post-processor or decoder type; a
// tokenizer.json "version" other than "1.0") is refused with a FormatError naming the file and
// the field. truncation and padding are ignored (lazyllm never truncates or pads).
//
// Input text that is not valid UTF-8 is encoded as if each invalid sequence were U+FFFD (as
// Python's errors="replace" or llama.cpp would give it; `tokenizers` itself only takes valid
// strings).
#pragma once

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#if PCRE2_CODE_UNIT_WIDTH != 8
#error "lazyllm/text/hf_tokenizer.hpp needs PCRE2_CODE_UNIT_WIDTH 8"
#endif
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lazyllm/detail/error.hpp"
#include "lazyllm/text/llama2c_tokenizer.hpp"  // detail::StringHash, detail::read_tokenizer_file

namespace lazyllm {

namespace detail::hf {

// ------------------------------------------------------------------------------------ UTF-8

/// The UTF-8 sequence at s[i]: its length (1-4) when valid, storing the code point in *cp; else
/// minus the length of its maximal invalid subpart (the bytes Rust's from_utf8_lossy and the
/// WHATWG decoder turn into one U+FFFD each).
inline int utf8_sequence(std::string_view s, std::size_t i, char32_t* cp = nullptr) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned c = p[i];
  if (c < 0x80) {
    if (cp) *cp = c;
    return 1;
  }
  int len;
  char32_t v;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    v = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    v = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    v = c & 0x07;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return -1;
  }
  for (int k = 1; k < len; ++k) {
    if (i + static_cast<std::size_t>(k) >= s.size()) return -k;
    const unsigned b = p[i + static_cast<std::size_t>(k)];
    if (b < lo || b > hi) return -k;
    lo = 0x80;
    hi = 0xBF;
    v = (v << 6) | (b & 0x3F);
  }
  if (cp) *cp = v;
  return len;
}

inline bool is_valid_utf8(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const int n = utf8_sequence(s, i);
    if (n < 0) return false;
    i += static_cast<std::size_t>(n);
  }
  return true;
}

/// `s` with every maximal invalid subpart replaced by U+FFFD (Rust's String::from_utf8_lossy).
inline std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const int n = utf8_sequence(s, i);
    if (n > 0) {
      out.append(s.substr(i, static_cast<std::size_t>(n)));
      i += static_cast<std::size_t>(n);
    } else {
      out += "\xEF\xBF\xBD";
      i += static_cast<std::size_t>(-n);
    }
  }
  return out;
}

inline void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

/// Unicode's White_Space property (Rust's char::is_whitespace, regex's \s).
constexpr bool is_white_space(char32_t c) noexcept {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/// Word characters as Rust regex's \w sees them, through utf8proc's general categories: letters,
/// marks, decimal and letter numbers, connector punctuation, ZWNJ/ZWJ. (Rust adds the few
/// Other_Alphabetic symbols outside those categories; only single_word added tokens ask.)
inline bool is_word_char(char32_t c) noexcept {
  if (c == 0x200C || c == 0x200D) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

/// The code point that ends `s` (valid UTF-8, not empty).
inline char32_t last_code_point(std::string_view s) noexcept {
  std::size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  char32_t c = 0;
  utf8_sequence(s, i, &c);
  return c;
}

/// NFC of valid UTF-8 `s`, appended to `out`. Text whose code points are all below U+0300 is NFC
/// already (no such character decomposes, none composes with another): it is copied.
inline void append_nfc(std::string_view s, std::string& out) {
  const bool below_0300 =
      std::none_of(s.begin(), s.end(), [](char ch) { return static_cast<unsigned char>(ch) >= 0xCC; });
  if (below_0300) {
    out.append(s);
    return;
  }
  utf8proc_uint8_t* dst = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()), &dst,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) throw Error(std::string("NFC normalisation failed: ") + utf8proc_errmsg(n));
  out.append(reinterpret_cast<const char*>(dst), static_cast<std::size_t>(n));
  std::free(dst);
}

// ------------------------------------------------------------------------ byte-level alphabet

/// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes
/// for U+0100..U+0143 in byte order, so that every token is printable text.
struct ByteAlphabet {
  std::array<char32_t, 256> to_char{};
  std::array<std::int16_t, 0x144> to_byte{};  // by code point; -1: not in the alphabet
  ByteAlphabet() {
    to_byte.fill(-1);
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_char[static_cast<std::size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
      to_byte[to_char[static_cast<std::size_t>(b)]] = static_cast<std::int16_t>(b);
    }
  }
};

inline const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet a;
  return a;
}

/// The bytes a byte-level token stands for; nullopt when a character of it is not in the
/// alphabet (or it is not valid UTF-8).
inline std::optional<std::string> byte_level_to_bytes(std::string_view token) {
  const ByteAlphabet& a = byte_alphabet();
  std::string out;
  out.reserve(token.size());
  for (std::size_t i = 0; i < token.size();) {
    char32_t c = 0;
    const int n = utf8_sequence(token, i, &c);
    if (n < 0 || c >= a.to_byte.size() || a.to_byte[c] < 0) return std::nullopt;
    out += static_cast<char>(a.to_byte[c]);
    i += static_cast<std::size_t>(n);
  }
  return out;
}

/// `bytes` written in the byte-level alphabet (as the token appears in tokenizer.json).
inline std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  for (unsigned char b : bytes) append_utf8(out, byte_alphabet().to_char[b]);
  return out;
}

// ------------------------------------------------------------------------------------- regex

/// An Oniguruma expression (what `tokenizers` compiles) as the PCRE2 expression that matches the
/// same text under PCRE2_UTF | PCRE2_UCP. Escapes whose meaning differs between the two, or
/// that tokenizer.json files do not use, are refused with the reason (std::nullopt + `why`).
inline std::optional<std::string> onig_to_pcre2(std::string_view p, std::string& why) {
  std::string out;
  out.reserve(p.size() + 32);
  bool in_class = false;
  for (std::size_t i = 0; i < p.size();) {
    const char c = p[i];
    if (c == '\\') {
      if (i + 1 >= p.size()) {
        why = "ends with a backslash";
        return std::nullopt;
      }
      const char d = p[i + 1];
      switch (d) {
        case 's':
          out += "\\p{White_Space}";
          break;  // PCRE2's \s also takes U+180E
        case 'S':
          out += "\\P{White_Space}";
          break;
        case 'd':
          out += "\\p{Nd}";
          break;
        case 'D':
          out += "\\P{Nd}";
          break;
        case 'p':
        case 'P': {
          const std::size_t close = p.find('}', i);
          if (i + 2 >= p.size() || p[i + 2] != '{' || close == std::string_view::npos) {
            why = "\\p without {property}";
            return std::nullopt;
          }
          out.append(p.substr(i, close + 1 - i));
          i = close + 1;
          continue;
        }
        case 'u': {  // \uHHHH
          if (i + 6 > p.size()) {
            why = "short \\u escape";
            return std::nullopt;
          }
          out += "\\x{";
          out.append(p.substr(i + 2, 4));
          out += '}';
          i += 6;
          continue;
        }
        case 'x':  // \xHH or \x{H...}: the same in both
        case 'r':
        case 'n':
        case 't':
        case 'f':
        case 'e':
        case 'a':
          out += '\\';
          out += d;
          break;
        default:
          if (static_cast<unsigned char>(d) < 0x80 && !std::isalnum(static_cast<unsigned char>(d))) {
            out += '\\';  // an escaped literal
            out += d;
            break;
          }
          why = std::string("the escape \\") + d + " is not supported";
          return std::nullopt;
      }
      i += 2;
      continue;
    }
    if (in_class) {
      if (c == '[') {
        why = "nested character classes are not supported";
        return std::nullopt;
      }
      if (c == ']') in_class = false;
    } else if (c == '[') {
      in_class = true;
    } else if (c == '^' || c == '$') {
      why = "anchors ^ and $ are not supported";  // line anchors in Oniguruma, subject anchors in PCRE2
      return std::nullopt;
    } else if (c == '(' && i + 1 < p.size() && p[i + 1] == '?') {
      const char k = i + 2 < p.size() ? p[i + 2] : '\0';
      const bool allowed = k == ':' || k == '=' || k == '!' || k == '<' || k == '>' || p.substr(i + 2, 2) == "i:" ||
                           p.substr(i + 2, 2) == "i)" || p.substr(i + 2, 3) == "-i:" || p.substr(i + 2, 3) == "-i)";
      if (!allowed) {
        why = "inline options other than (?i) are not supported";
        return std::nullopt;
      }
    }
    out += c;
    ++i;
  }
  if (in_class) {
    why = "unterminated character class";
    return std::nullopt;
  }
  return out;
}

/// A compiled PCRE2 expression (UTF, Unicode properties; JIT-compiled where PCRE2 has a JIT).
/// Immutable and thread-safe; matching state lives in a Matcher.
class Regex {
 public:
  /// Throws FormatError(file, ...) when the pattern does not compile.
  Regex(std::string_view pattern, bool literal, const std::string& file, const std::string& where) {
    int err = 0;
    PCRE2_SIZE at = 0;
    const std::uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &err, &at, nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      throw FormatError(file, where + ": regular expression does not compile at offset " + std::to_string(at) + ": " +
                                  reinterpret_cast<const char*>(msg));
    }
    code_.reset(code, pcre2_code_free);
    jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;  // no JIT on this platform: interpreted
  }

  bool jit() const noexcept { return jit_; }

  /// Per-thread matching state (match data; a JIT stack once the default one is too small).
  class Matcher {
   public:
    explicit Matcher(const Regex& re) : re_(&re), md_(pcre2_match_data_create_from_pattern(re.code_.get(), nullptr)) {
      if (!md_) throw std::bad_alloc();
    }
    Matcher(Matcher&& o) noexcept
        : re_(o.re_),
          md_(std::exchange(o.md_, nullptr)),
          mc_(std::exchange(o.mc_, nullptr)),
          stack_(std::exchange(o.stack_, nullptr)) {}
    Matcher(const Matcher&) = delete;
    Matcher& operator=(const Matcher&) = delete;
    Matcher& operator=(Matcher&&) = delete;
    ~Matcher() {
      if (md_) pcre2_match_data_free(md_);
      if (mc_) pcre2_match_context_free(mc_);
      if (stack_) pcre2_jit_stack_free(stack_);
    }

    /// f(begin, end) for each non-empty match in valid UTF-8 `s`, left to right, as Oniguruma's
    /// find_iter gives them (an empty match moves on by one character).
    template <class F>
    void for_each(std::string_view s, F&& f) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
      std::size_t off = 0;
      while (off < s.size()) {
        int rc = pcre2_match(re_->code_.get(), subject, s.size(), off, PCRE2_NO_UTF_CHECK, md_, mc_);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && grow_stack())
          rc = pcre2_match(re_->code_.get(), subject, s.size(), off, PCRE2_NO_UTF_CHECK, md_, mc_);
        if (rc == PCRE2_ERROR_NOMATCH) return;
        if (rc < 0) {
          PCRE2_UCHAR msg[256];
          pcre2_get_error_message(rc, msg, sizeof msg);
          throw Error(std::string("pre-tokenizer regular expression failed on a text of ") + std::to_string(s.size()) +
                      " bytes: " + reinterpret_cast<const char*>(msg));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md_);
        const std::size_t b = ov[0], e = ov[1];
        if (e > b) {
          f(b, e);
          off = e;
        } else {
          const int n = utf8_sequence(s, b);
          off = b + static_cast<std::size_t>(n > 0 ? n : 1);
        }
      }
    }

   private:
    bool grow_stack() {
      if (stack_ || !re_->jit_) return false;
      stack_ = pcre2_jit_stack_create(64 * 1024, 256 * 1024 * 1024, nullptr);
      mc_ = pcre2_match_context_create(nullptr);
      if (!stack_ || !mc_) return false;
      pcre2_jit_stack_assign(mc_, nullptr, stack_);
      return true;
    }

    const Regex* re_;
    pcre2_match_data* md_ = nullptr;
    pcre2_match_context* mc_ = nullptr;
    pcre2_jit_stack* stack_ = nullptr;
  };

 private:
  std::shared_ptr<pcre2_code> code_;
  bool jit_ = false;
};

/// GPT-2's pre-tokenizer expression (ByteLevel with use_regex), in PCRE2 form.
inline constexpr std::string_view kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\p{White_Space}\\p{L}\\p{N}]+|\\p{White_Space}+(?!\\P{White_"
    "Space})|\\p{White_Space}+";

// --------------------------------------------------------------------------------- containers

/// Byte trie of the added tokens' contents, for leftmost-longest matching.
class TokenTrie {
 public:
  bool empty() const noexcept { return nodes_.size() == 1; }
  void insert(std::string_view key, std::int32_t value) {
    std::size_t n = 0;
    for (unsigned char c : key) {
      auto& next = nodes_[n].next;
      auto it = std::find_if(next.begin(), next.end(), [&](const auto& e) { return e.first == c; });
      if (it != next.end()) {
        n = static_cast<std::size_t>(it->second);
      } else {
        nodes_[n].next.emplace_back(c, static_cast<std::int32_t>(nodes_.size()));
        n = nodes_.size();
        nodes_.emplace_back();
      }
    }
    nodes_[n].value = value;
    first_[static_cast<unsigned char>(key.front())] = true;
  }
  /// The leftmost, then longest, key in text[from..]: {begin, end, value}; begin == npos if none.
  struct Match {
    std::size_t begin, end;
    std::int32_t value;
  };
  Match find(std::string_view text, std::size_t from) const {
    for (std::size_t i = from; i < text.size(); ++i) {
      if (!first_[static_cast<unsigned char>(text[i])]) continue;
      std::size_t n = 0, best_end = 0;
      std::int32_t best = -1;
      for (std::size_t j = i; j < text.size(); ++j) {
        const auto& next = nodes_[n].next;
        const unsigned char c = static_cast<unsigned char>(text[j]);
        auto it = std::find_if(next.begin(), next.end(), [&](const auto& e) { return e.first == c; });
        if (it == next.end()) break;
        n = static_cast<std::size_t>(it->second);
        if (nodes_[n].value >= 0) {
          best = nodes_[n].value;
          best_end = j + 1;
        }
      }
      if (best >= 0) return {i, best_end, best};
    }
    return {std::string_view::npos, 0, -1};
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, std::int32_t>> next;
    std::int32_t value = -1;
  };
  std::vector<Node> nodes_{1};
  std::array<bool, 256> first_{};
};

/// (left id, right id) -> (rank, merged id): open addressing, for the merge loop's lookups.
class MergeTable {
 public:
  struct Entry {
    std::uint64_t key = kEmpty;
    std::uint32_t rank = 0;
    std::int32_t merged = -1;
  };
  void reserve(std::size_t n) {
    std::size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    slots_.assign(cap, Entry{});
    mask_ = cap - 1;
  }
  /// A later merge of the same pair replaces the earlier one (as `tokenizers`' map does).
  void insert_or_assign(std::int32_t a, std::int32_t b, std::uint32_t rank, std::int32_t merged) {
    const std::uint64_t key = pack(a, b);
    for (std::size_t i = slot(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == kEmpty) ++size_;
      if (slots_[i].key == kEmpty || slots_[i].key == key) {
        slots_[i] = {key, rank, merged};
        return;
      }
    }
  }
  const Entry* find(std::int32_t a, std::int32_t b) const noexcept {
    const std::uint64_t key = pack(a, b);
    for (std::size_t i = slot(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return &slots_[i];
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }
  std::size_t size() const noexcept { return size_; }

 private:
  static constexpr std::uint64_t kEmpty = ~std::uint64_t{0};  // ids are < 2^31: never a key
  static std::uint64_t pack(std::int32_t a, std::int32_t b) noexcept {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }
  std::size_t slot(std::uint64_t key) const noexcept {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> 20) & mask_;
  }
  std::vector<Entry> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

/// string_view -> id, open addressing (the vocabulary's lookups at load and per pre-token). The
/// keys are not copied: their storage must outlive the map.
class FlatStringMap {
 public:
  void reserve(std::size_t n) {
    std::size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    if (cap > slots_.size()) rehash(cap);
  }
  /// Inserts `key`, or gives it the new value.
  void assign(std::string_view key, std::int32_t value) {
    if (2 * (size_ + 1) > slots_.size()) rehash(std::max<std::size_t>(16, 2 * slots_.size()));
    const std::uint64_t h = hash(key);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.value < 0) {
        s = {key.data(), static_cast<std::uint32_t>(key.size()), value, static_cast<std::uint32_t>(h >> 32)};
        ++size_;
        return;
      }
      if (s.hash == static_cast<std::uint32_t>(h >> 32) && std::string_view(s.key, s.len) == key) {
        s.value = value;
        return;
      }
    }
  }
  /// The value of `key`, or -1.
  std::int32_t find(std::string_view key) const noexcept {
    if (slots_.empty()) return -1;
    const std::uint64_t h = hash(key);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.value < 0) return -1;
      if (s.hash == static_cast<std::uint32_t>(h >> 32) && std::string_view(s.key, s.len) == key) return s.value;
    }
  }
  std::size_t size() const noexcept { return size_; }

 private:
  struct Slot {
    const char* key = nullptr;
    std::uint32_t len = 0;
    std::int32_t value = -1;  // -1: empty
    std::uint32_t hash = 0;
  };
  static std::uint64_t hash(std::string_view s) noexcept {  // FNV-1a, then a multiplicative mix
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
    return (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ull;
  }
  void rehash(std::size_t cap) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    size_ = 0;
    for (const Slot& s : old)
      if (s.value >= 0) assign(std::string_view(s.key, s.len), s.value);
  }
  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

/// tokenizer.json read in one pass (nlohmann's SAX interface): model.vocab and model.merges, the
/// bulk of the file, go straight into flat arrays; the rest becomes a JSON document. (The full
/// document of a 128k vocabulary takes 3-5x longer to build than the parse itself.)
struct TokenizerDocument {
  nlohmann::json rest;  // everything but model.vocab and model.merges
  bool has_vocab = false, has_merges = false;
  // model.vocab in file order: token text_[offset, offset + size), its id.
  struct VocabEntry {
    std::uint32_t offset, size;
    std::int64_t id;
  };
  std::vector<VocabEntry> vocab;
  // model.merges by rank: a = text_[offset, offset + a), b right after it (so a + b is one view).
  struct MergeEntry {
    std::uint32_t offset, a, b;
  };
  std::vector<MergeEntry> merges;
  std::string vocab_text, merge_text;

  std::string_view token(const VocabEntry& e) const noexcept {
    return std::string_view(vocab_text).substr(e.offset, e.size);
  }
  std::string_view left(const MergeEntry& e) const noexcept {
    return std::string_view(merge_text).substr(e.offset, e.a);
  }
  std::string_view right(const MergeEntry& e) const noexcept {
    return std::string_view(merge_text).substr(e.offset + e.a, e.b);
  }
  std::string_view joined(const MergeEntry& e) const noexcept {
    return std::string_view(merge_text).substr(e.offset, e.a + e.b);
  }
};

class TokenizerJsonReader : public nlohmann::json_sax<nlohmann::json> {
 public:
  using Json = nlohmann::json;
  explicit TokenizerJsonReader(TokenizerDocument& doc) : doc_(doc) {}
  /// Why the read stopped ("" when it did not).
  const std::string& error() const noexcept { return error_; }

  bool null() override { return value(nullptr); }
  bool boolean(bool v) override { return value(v); }
  bool number_integer(number_integer_t v) override {
    if (state_ == State::vocab) return vocab_id(v);
    return value(v);
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (state_ == State::vocab)
      return vocab_id(v > static_cast<number_unsigned_t>(std::numeric_limits<std::int64_t>::max())
                          ? -1
                          : static_cast<std::int64_t>(v));
    return value(v);
  }
  bool number_float(number_float_t v, const string_t&) override { return value(v); }
  bool string(string_t& v) override {
    if (state_ == State::merges) {  // "a b", the older form
      const auto sp = v.find(' ');
      if (sp == std::string::npos || v.find(' ', sp + 1) != std::string::npos)
        return fail("model.merges[" + std::to_string(doc_.merges.size()) + "] " + Json(v).dump() +
                    " is not two tokens separated by a space");
      if (!room(doc_.merge_text, v.size())) return false;
      const auto off = static_cast<std::uint32_t>(doc_.merge_text.size());
      doc_.merge_text.append(v, 0, sp);
      doc_.merge_text.append(v, sp + 1);
      doc_.merges.push_back({off, static_cast<std::uint32_t>(sp), static_cast<std::uint32_t>(v.size() - sp - 1)});
      return true;
    }
    if (state_ == State::merge_pair) {
      if (pair_size_ < 2) {
        if (!room(doc_.merge_text, v.size())) return false;
        doc_.merge_text += v;
        (pair_size_ == 0 ? doc_.merges.back().a : doc_.merges.back().b) = static_cast<std::uint32_t>(v.size());
      }
      ++pair_size_;
      return true;
    }
    return value(std::move(v));
  }
  bool binary(binary_t&) override { return fail("binary values are not JSON"); }
  bool start_object(std::size_t) override {
    if (state_ != State::none) return fail(where() + " holds an object");
    if (stack_.size() == 2 && stack_.back() == model_ && key_ == "vocab") {
      state_ = State::vocab;
      doc_.has_vocab = true;
      return true;
    }
    const bool is_model = stack_.size() == 1 && stack_.back()->is_object() && key_ == "model";
    Json* obj = value(Json::value_t::object) ? last_ : nullptr;
    if (is_model) model_ = obj;
    stack_.push_back(obj);
    return true;
  }
  bool key(string_t& k) override {
    if (state_ == State::vocab) {
      key_.swap(k);
      return true;
    }
    key_ = k;
    element_ = &(*stack_.back())[k];
    return true;
  }
  bool end_object() override {
    if (state_ == State::vocab) {
      state_ = State::none;
      return true;
    }
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (state_ == State::merges) {
      state_ = State::merge_pair;
      pair_size_ = 0;
      doc_.merges.push_back({static_cast<std::uint32_t>(doc_.merge_text.size()), 0, 0});
      return true;
    }
    if (state_ != State::none) return fail(where() + " holds an array");
    if (stack_.size() == 2 && stack_.back() == model_ && key_ == "merges") {
      state_ = State::merges;
      doc_.has_merges = true;
      return true;
    }
    value(Json::value_t::array);
    stack_.push_back(last_);
    return true;
  }
  bool end_array() override {
    if (state_ == State::merge_pair) {
      if (pair_size_ != 2) return fail(where() + " is not a pair of two tokens");
      state_ = State::merges;
      return true;
    }
    if (state_ == State::merges) {
      state_ = State::none;
      return true;
    }
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    return fail(std::string("not valid JSON (") + e.what() + ")");
  }

 private:
  enum class State { none, vocab, merges, merge_pair };

  std::string where() const {
    if (state_ == State::vocab) return "model.vocab[" + Json(key_).dump() + "]";
    return "model.merges[" + std::to_string(doc_.merges.size() - (state_ == State::merge_pair ? 1 : 0)) + "]";
  }
  bool fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }
  bool vocab_id(std::int64_t id) {
    if (!room(doc_.vocab_text, key_.size())) return false;
    doc_.vocab.push_back(
        {static_cast<std::uint32_t>(doc_.vocab_text.size()), static_cast<std::uint32_t>(key_.size()), id});
    doc_.vocab_text += key_;
    return true;
  }
  bool room(const std::string& text, std::size_t more) {
    if (text.size() + more < std::numeric_limits<std::uint32_t>::max()) return true;
    return fail("model.vocab or model.merges is larger than 4 GiB");
  }
  template <class V>
  bool value(V&& v) {
    if (state_ == State::vocab) return fail(where() + " is not an integer id");
    if (state_ != State::none) return fail(where() + " holds something other than token strings");
    if (stack_.empty()) {
      doc_.rest = Json(std::forward<V>(v));
      last_ = &doc_.rest;
    } else if (stack_.back()->is_array()) {
      stack_.back()->emplace_back(std::forward<V>(v));
      last_ = &stack_.back()->back();
    } else {
      *element_ = Json(std::forward<V>(v));
      last_ = element_;
    }
    return true;
  }

  TokenizerDocument& doc_;
  std::vector<Json*> stack_;  // the open containers of `rest`
  Json* element_ = nullptr;   // where the next value of the innermost object goes
  Json* last_ = nullptr;      // the value just stored
  Json* model_ = nullptr;     // rest["model"]
  std::string key_;
  State state_ = State::none;
  int pair_size_ = 0;
  std::string error_;
};

// ---------------------------------------------------------------------------------- the model

struct AddedToken {
  std::string content;
  bool special = false, single_word = false, lstrip = false, rstrip = false, normalized = false;
};

enum class TokenKind : std::uint8_t { none, model, added, special };

/// Everything read from one tokenizer.json, immutable after construction (not copyable: the
/// maps view its strings).
struct Model {
  Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  std::string file;
  // Vocabulary, by id: the bytes each token stands for (arena[offset[id], offset[id + 1])), and
  // what it is.
  std::string arena;
  std::vector<std::uint32_t> offset;
  std::vector<TokenKind> kind;
  FlatStringMap model_ids;  // vocabulary tokens by their bytes (views into arena)
  std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>> added_ids;  // by content
  std::array<std::int32_t, 256> byte_id{};  // the single-byte token of each byte, or -1
  MergeTable merges;
  bool ignore_merges = false;
  std::int32_t unk_id = -1;
  bool fuse_unk = false;
  // Added tokens by id; tries of the raw-text and the normalised-text ones.
  std::unordered_map<std::int32_t, AddedToken> added;
  TokenTrie raw_trie, normalized_trie;
  bool nfc = false;
  std::vector<Regex> splits;                 // Split steps, in order
  bool prefix_space = false;                 // ByteLevel add_prefix_space
  std::optional<Regex> gpt2;                 // ByteLevel use_regex
  std::vector<std::int32_t> prefix, suffix;  // post-processor's single template around the text
  std::int32_t bos = -1, eos = -1;

  std::int32_t size() const noexcept { return static_cast<std::int32_t>(kind.size()); }
  /// The bytes of `id` (>= 0); "" for ids past the vocabulary.
  std::string_view bytes(std::int32_t id) const noexcept {
    const auto i = static_cast<std::size_t>(id);
    if (i + 1 >= offset.size()) return {};
    return std::string_view(arena).substr(offset[i], offset[i + 1] - offset[i]);
  }
};

/// Reusable state of one encode() call.
struct Scratch {
  std::vector<Regex::Matcher> matchers;  // one per Split step
  std::optional<Regex::Matcher> gpt2;
  std::vector<std::int32_t> sym;
  std::vector<std::uint32_t> prev, next;
  struct Candidate {
    std::uint32_t rank, left;
    std::int32_t left_id, right_id, merged;
  };
  std::vector<Candidate> heap;
};

}  // namespace detail::hf

/// A Hugging Face tokenizer.json with a byte-level BPE model (Llama 3, Qwen2/2.5/3), encoding and
/// decoding as `tokenizers` does. Cheap to copy (the model is shared and immutable); thread-safe.
class HfTokenizer {
 public:
  /// Reads `path` (tokenizer.json) and, when it sits beside it, tokenizer_config.json (for the
  /// eos_token, and a bos_token when the post-processor adds none). FormatError naming the file
  /// and the field when a file is malformed or uses something not implemented.
  explicit HfTokenizer(const std::filesystem::path& path) {
    const std::string file = path.string();
    const std::string text = detail::read_tokenizer_file(path);
    auto m = build(text, file);
    const auto config = path.parent_path() / "tokenizer_config.json";
    std::error_code ec;
    if (std::filesystem::is_regular_file(config, ec)) read_config(*m, config);
    model_ = std::move(m);
  }

  /// From tokenizer.json's text (`name` names it in errors); no tokenizer_config.json.
  static HfTokenizer from_json(std::string_view json_text, const std::string& name = "tokenizer.json") {
    return HfTokenizer(build(json_text, name));
  }

  /// Number of ids: one past the highest id of the vocabulary and the added tokens. (A model's
  /// embedding may have more rows, e.g. Qwen2.5's 152,064 for 151,665 tokens: ids without a token,
  /// here or beyond, decode to "" as in tokenizers.)
  std::int32_t vocab_size() const noexcept { return model_->size(); }
  /// The post-processor's first special token (Llama 3: <|begin_of_text|>), else
  /// tokenizer_config.json's bos_token; -1 when there is none (Qwen).
  std::int32_t bos_id() const noexcept { return model_->bos; }
  /// tokenizer_config.json's eos_token (Llama 3: <|eot_id|>, Qwen: <|im_end|>); -1 when unknown.
  std::int32_t eos_id() const noexcept { return model_->eos; }
  const std::string& file() const noexcept { return model_->file; }
  /// The special tokens the post-processor adds before and after the text when add_bos is set.
  std::span<const std::int32_t> prefix_ids() const noexcept { return model_->prefix; }
  std::span<const std::int32_t> suffix_ids() const noexcept { return model_->suffix; }

  /// True for added tokens marked special (skipped when decoding, not matched with parse_special off).
  bool is_special(std::int32_t id) const noexcept { return kind(id) == detail::hf::TokenKind::special; }
  /// True for ids of the added tokens (special or not).
  bool is_added(std::int32_t id) const noexcept {
    const auto k = kind(id);
    return k == detail::hf::TokenKind::added || k == detail::hf::TokenKind::special;
  }

  /// The id of an added token's content ("<|eot_id|>") or of the vocabulary token that stands for
  /// exactly these bytes (" world"); -1 when neither.
  std::int32_t find(std::string_view text) const {
    if (auto it = model_->added_ids.find(text); it != model_->added_ids.end()) return it->second;
    return model_->model_ids.find(text);
  }

  /// The token as tokenizer.json writes it ("Ġworld", "<|eot_id|>"); "" for ids without a token.
  /// (InvalidArgument for a negative id, here and in piece() and decode().)
  std::string token(std::int32_t id) const {
    check(id);
    const auto k = kind(id);
    if (k == detail::hf::TokenKind::none) return {};
    if (k != detail::hf::TokenKind::model) return model_->added.at(id).content;
    return detail::hf::bytes_to_byte_level(model_->bytes(id));
  }

  /// The bytes `id` stands for (an added token's content; possibly part of a UTF-8 character).
  std::string piece(std::int32_t id) const {
    check(id);
    return std::string(model_->bytes(id));
  }

  /// Token ids of `text`, as `tokenizers` encodes it: with add_bos, the post-processor's special
  /// tokens around it (Llama 3: <|begin_of_text|> first; Qwen: none); with parse_special, the
  /// text of special tokens becomes their id ("<|im_start|>" -> 151644), else it is ordinary text
  /// (as tokenizers' encode_special_tokens; non-special added tokens such as <think> still match).
  std::vector<std::int32_t> encode(std::string_view text, bool add_bos, bool parse_special = true) const {
    const detail::hf::Model& m = *model_;
    std::vector<std::int32_t> out;
    out.reserve(text.size() / 3 + 8);
    if (add_bos) out.insert(out.end(), m.prefix.begin(), m.prefix.end());
    std::string repaired;
    if (!detail::hf::is_valid_utf8(text)) {
      repaired = detail::hf::utf8_lossy(text);
      text = repaired;
    }
    detail::hf::Scratch s;
    for (const auto& re : m.splits) s.matchers.emplace_back(re);
    if (m.gpt2) s.gpt2.emplace(*m.gpt2);
    split_added(m.raw_trie, text, parse_special, out, [&](std::string_view segment) {
      if (m.nfc) {
        std::string normalized;
        detail::hf::append_nfc(segment, normalized);
        split_added(m.normalized_trie, normalized, parse_special, out,
                    [&](std::string_view part) { pre_tokenize(0, part, s, out); });
      } else {
        split_added(m.normalized_trie, segment, parse_special, out,
                    [&](std::string_view part) { pre_tokenize(0, part, s, out); });
      }
    });
    if (add_bos) out.insert(out.end(), m.suffix.begin(), m.suffix.end());
    return out;
  }

  /// The bytes of `id` when it follows `prev` (for streaming): special tokens and ids without a
  /// token give "", others their bytes, which may be part of a UTF-8 character (concatenating the
  /// pieces gives the text's bytes). `prev` is unused: byte-level pieces carry their own spaces.
  std::string decode(std::int32_t prev, std::int32_t id) const {
    (void)prev;
    check(id);
    if (is_special(id)) return {};
    return std::string(model_->bytes(id));
  }

  /// The text of a sequence, as `tokenizers`' decode: special tokens dropped (unless
  /// skip_special is false), bytes joined, invalid UTF-8 replaced by U+FFFD.
  std::string decode(std::span<const std::int32_t> ids, bool skip_special = true) const {
    std::string bytes;
    for (std::int32_t id : ids) {
      check(id);
      if (skip_special && is_special(id)) continue;
      bytes += model_->bytes(id);
    }
    return detail::hf::is_valid_utf8(bytes) ? bytes : detail::hf::utf8_lossy(bytes);
  }

 private:
  using Json = nlohmann::json;
  using Model = detail::hf::Model;

  explicit HfTokenizer(std::shared_ptr<const Model> m) : model_(std::move(m)) {}

  detail::hf::TokenKind kind(std::int32_t id) const noexcept {
    return id >= 0 && id < vocab_size() ? model_->kind[static_cast<std::size_t>(id)] : detail::hf::TokenKind::none;
  }

  /// Ids past the vocabulary are accepted (they have no token, as in tokenizers, which skips
  /// them when decoding: a model's embedding may be larger than its tokenizer, e.g. Qwen's);
  /// negative ones are not.
  void check(std::int32_t id) const {
    if (id < 0) throw InvalidArgument("token id " + std::to_string(id) + " is negative");
  }

  /// Splits `text` around the added tokens of `trie` as tokenizers' AddedVocabulary does: the
  /// leftmost-longest matches in turn; a special one is passed over (left in the text) without
  /// parse_special, a single_word one when a word character touches it; lstrip/rstrip widen the
  /// match over White_Space. Tokens go to `out`, the text between them to `gap`.
  template <class Gap>
  void split_added(const detail::hf::TokenTrie& trie, std::string_view text, bool parse_special,
                   std::vector<std::int32_t>& out, Gap&& gap) const {
    if (text.empty()) return;
    if (trie.empty()) {
      gap(text);
      return;
    }
    std::size_t start_offset = 0;
    for (std::size_t from = 0;;) {
      const auto mt = trie.find(text, from);
      if (mt.begin == std::string_view::npos) break;
      from = mt.end;
      const detail::hf::AddedToken& t = model_->added.at(mt.value);
      std::size_t start = mt.begin, stop = mt.end;
      if (!parse_special && t.special) continue;
      if (t.single_word) {
        const bool word_before =
            start > 0 && detail::hf::is_word_char(detail::hf::last_code_point(text.substr(0, start)));
        char32_t next_cp = 0;
        const bool word_after = stop < text.size() && detail::hf::utf8_sequence(text, stop, &next_cp) > 0 &&
                                detail::hf::is_word_char(next_cp);
        if (word_before || word_after) continue;
      }
      if (t.lstrip) {
        std::size_t b = start;
        while (b > 0) {
          std::size_t k = b - 1;
          while (k > 0 && (static_cast<unsigned char>(text[k]) & 0xC0) == 0x80) --k;
          char32_t c = 0;
          detail::hf::utf8_sequence(text, k, &c);
          if (!detail::hf::is_white_space(c)) break;
          b = k;
        }
        start = std::max(b, start_offset);
      }
      if (t.rstrip) {
        while (stop < text.size()) {
          char32_t c = 0;
          const int n = detail::hf::utf8_sequence(text, stop, &c);
          if (n < 0 || !detail::hf::is_white_space(c)) break;
          stop += static_cast<std::size_t>(n);
        }
      }
      if (start > start_offset) gap(text.substr(start_offset, start - start_offset));
      out.push_back(mt.value);
      start_offset = stop;  // the search goes on after the match itself, as tokenizers' does
    }
    if (start_offset < text.size()) gap(text.substr(start_offset));
  }

  /// The Split steps from `step` on, each piece kept (behaviour Isolated: the matches and the
  /// text between them), then the ByteLevel step and the model.
  void pre_tokenize(std::size_t step, std::string_view text, detail::hf::Scratch& s,
                    std::vector<std::int32_t>& out) const {
    if (text.empty()) return;
    const Model& m = *model_;
    if (step == m.splits.size()) {
      byte_level(text, s, out);
      return;
    }
    std::size_t last = 0;
    s.matchers[step].for_each(text, [&](std::size_t b, std::size_t e) {
      if (b > last) pre_tokenize(step + 1, text.substr(last, b - last), s, out);
      pre_tokenize(step + 1, text.substr(b, e - b), s, out);
      last = e;
    });
    if (last < text.size()) pre_tokenize(step + 1, text.substr(last), s, out);
  }

  void byte_level(std::string_view piece, detail::hf::Scratch& s, std::vector<std::int32_t>& out) const {
    const Model& m = *model_;
    std::string prefixed;
    if (m.prefix_space && piece.front() != ' ') {
      prefixed.reserve(piece.size() + 1);
      prefixed += ' ';
      prefixed.append(piece);
      piece = prefixed;
    }
    if (!s.gpt2) {
      bpe(piece, s, out);
      return;
    }
    std::size_t last = 0;
    s.gpt2->for_each(piece, [&](std::size_t b, std::size_t e) {
      if (b > last) bpe(piece.substr(last, b - last), s, out);
      bpe(piece.substr(b, e - b), s, out);
      last = e;
    });
    if (last < piece.size()) bpe(piece.substr(last), s, out);
  }

  /// The BPE model on one pre-token (its bytes): the whole piece when ignore_merges and it is a
  /// token; else one symbol per byte, then the lowest-ranked adjacent pair that has a merge is
  /// merged (leftmost among equal ranks) until none has. O(n log n): candidate pairs wait in a
  /// heap, symbols form a linked list (as Llama2cTokenizer::encode and tokenizers' Word do).
  void bpe(std::string_view piece, detail::hf::Scratch& s, std::vector<std::int32_t>& out) const {
    const Model& m = *model_;
    if (m.ignore_merges) {
      if (const std::int32_t id = m.model_ids.find(piece); id >= 0) {
        out.push_back(id);
        return;
      }
    }
    auto& sym = s.sym;
    sym.clear();
    bool pending_unk = false;  // a byte without a token waits here (fused with the next, fuse_unk)
    for (unsigned char b : piece) {
      const std::int32_t id = m.byte_id[b];
      if (id >= 0) {
        if (pending_unk) sym.push_back(m.unk_id);
        pending_unk = false;
        sym.push_back(id);
      } else if (m.unk_id >= 0) {
        if (pending_unk && !m.fuse_unk) sym.push_back(m.unk_id);
        pending_unk = true;
      }  // no unk_token: the byte is dropped, as tokenizers does
    }
    if (pending_unk) sym.push_back(m.unk_id);
    merge(s);
    for (std::uint32_t i = 0; !sym.empty() && i != kEnd; i = s.next[i]) out.push_back(sym[i]);
  }

  static constexpr std::uint32_t kEnd = std::numeric_limits<std::uint32_t>::max();

  /// Merges s.sym in place; afterwards the surviving symbols are linked from 0 through s.next.
  void merge(detail::hf::Scratch& s) const {
    const Model& m = *model_;
    auto& sym = s.sym;
    if (sym.empty()) return;
    if (sym.size() >= kEnd)
      throw InvalidArgument("a pre-token of " + std::to_string(sym.size()) + " bytes is too long");
    const auto n = static_cast<std::uint32_t>(sym.size());
    s.prev.resize(n);
    s.next.resize(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      s.prev[i] = i == 0 ? kEnd : i - 1;
      s.next[i] = i + 1 == n ? kEnd : i + 1;
    }
    using Candidate = detail::hf::Scratch::Candidate;
    auto worse = [](const Candidate& a, const Candidate& b) {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    };
    auto& heap = s.heap;
    heap.clear();
    auto offer = [&](std::uint32_t l, std::uint32_t r) {
      if (l == kEnd || r == kEnd) return;
      if (const auto* e = m.merges.find(sym[l], sym[r])) {
        heap.push_back({e->rank, l, sym[l], sym[r], e->merged});
        std::push_heap(heap.begin(), heap.end(), worse);
      }
    };
    for (std::uint32_t i = 0; i + 1 < n; ++i) offer(i, i + 1);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), worse);
      const Candidate c = heap.back();
      heap.pop_back();
      const std::uint32_t r = s.next[c.left];
      // Stale: the left symbol was merged away or changed, or its right neighbour did.
      if (r == kEnd || sym[c.left] != c.left_id || sym[r] != c.right_id) continue;
      sym[c.left] = c.merged;
      s.next[c.left] = s.next[r];
      if (s.next[r] != kEnd) s.prev[s.next[r]] = c.left;
      s.next[r] = kEnd;
      sym[r] = -1;  // unlinked: candidates that start at it are now stale
      offer(s.prev[c.left], c.left);
      offer(c.left, s.next[c.left]);
    }
  }

  // -------------------------------------------------------------------------------- reading

  static std::string type_of(const Json& j) {
    if (!j.is_object()) return j.is_null() ? "null" : "(not an object)";
    auto it = j.find("type");
    return it != j.end() && it->is_string() ? it->get<std::string>() : "(no type)";
  }

  /// The steps of a component that may be given alone or as a {"type": "Sequence", key: [...]}.
  static std::vector<const Json*> steps_of(const Json& j, const char* key, const std::string& file,
                                           const std::string& where) {
    std::vector<const Json*> steps;
    if (j.is_null()) return steps;
    if (type_of(j) == "Sequence") {
      auto it = j.find(key);
      if (it == j.end() || !it->is_array())
        throw FormatError(file, where + ": Sequence without a \"" + key + "\" array");
      for (const auto& s : *it) steps.push_back(&s);
    } else {
      steps.push_back(&j);
    }
    return steps;
  }

  /// A boolean field; `fallback` when absent or null.
  static bool flag(const Json& obj, const char* key, bool fallback, const std::string& file, const std::string& where) {
    if (!obj.is_object()) throw FormatError(file, where + " is not an object");
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) throw FormatError(file, where + "." + key + " is not a boolean");
    return it->get<bool>();
  }

  /// A component that may be absent (null then).
  static const Json& member_or_null(const Json& obj, const char* key) {
    static const Json null;
    auto it = obj.find(key);
    return it == obj.end() ? null : *it;
  }

  static std::shared_ptr<Model> build(std::string_view text, const std::string& file) {
    detail::hf::TokenizerDocument doc;
    detail::hf::TokenizerJsonReader reader(doc);
    bool ok = false;
    try {
      ok = Json::sax_parse(text.begin(), text.end(), &reader);
    } catch (const Json::exception& e) {
      throw FormatError(file, std::string("not valid JSON (") + e.what() + ")");
    }
    if (!ok) throw FormatError(file, reader.error().empty() ? std::string("not valid JSON") : reader.error());
    try {
      return build_model(doc, file);
    } catch (const Json::exception& e) {
      throw FormatError(file, std::string("malformed tokenizer.json (") + e.what() + ")");
    }
  }

  static std::shared_ptr<Model> build_model(const detail::hf::TokenizerDocument& doc, const std::string& file) {
    namespace hf = detail::hf;
    const Json& j = doc.rest;
    if (!j.is_object()) throw FormatError(file, "not a tokenizer.json (the top level is not a JSON object)");
    auto need = [&](const Json& obj, const char* key, const std::string& where) -> const Json& {
      auto it = obj.find(key);
      if (it == obj.end()) throw FormatError(file, where + " has no \"" + key + "\"");
      return *it;
    };
    if (auto v = j.find("version"); v != j.end() && !(v->is_string() && v->get<std::string>() == "1.0"))
      throw FormatError(file, "tokenizer.json version " + v->dump() + " is not supported (only \"1.0\")");
    auto m = std::make_shared<Model>();
    m->file = file;

    // model
    const Json& model = need(j, "model", "tokenizer.json");
    if (type_of(model) != "BPE")
      throw FormatError(file, "model type '" + type_of(model) +
                                  "' is not supported (lazyllm reads byte-level BPE tokenizer.json files, "
                                  "as Llama 3 and Qwen2/2.5/3 ship them)");
    if (flag(model, "byte_fallback", false, file, "model"))
      throw FormatError(file,
                        "model.byte_fallback (SentencePiece-style BPE) is not supported; use the model's "
                        "tokenizer.model instead");
    if (auto d = model.find("dropout"); d != model.end() && !d->is_null() && !(d->is_number() && d->get<double>() == 0))
      throw FormatError(file, "model.dropout " + d->dump() + " is not supported (only null)");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (auto p = model.find(key);
          p != model.end() && !p->is_null() && !(p->is_string() && p->get<std::string>().empty()))
        throw FormatError(file,
                          std::string("model.") + key + " " + p->dump() + " is not supported (only null or \"\")");
    m->ignore_merges = flag(model, "ignore_merges", false, file, "model");
    m->fuse_unk = flag(model, "fuse_unk", false, file, "model");

    if (!doc.has_vocab) throw FormatError(file, "model has no \"vocab\" object");
    constexpr std::int64_t kMaxId = (1 << 24) - 1;  // far above any real vocabulary; guards allocations
    hf::FlatStringMap by_text;                      // tokenizer.json's spelling -> id (views into `doc`)
    by_text.reserve(doc.vocab.size());
    std::int32_t max_id = -1;
    for (const auto& e : doc.vocab) {
      const std::string_view token = doc.token(e);
      const std::int64_t id = e.id;
      if (id < 0 || id > kMaxId)
        throw FormatError(file, "model.vocab[" + Json(token).dump() + "] = " + std::to_string(id) +
                                    " is not an id in [0, " + std::to_string(kMaxId) + "]");
      by_text.assign(token, static_cast<std::int32_t>(id));
      max_id = std::max(max_id, static_cast<std::int32_t>(id));
    }
    // Real vocabularies number their tokens 0, 1, 2, ...; a few unused ids are fine, a sparse
    // numbering would only cost memory (one slot per id).
    if (static_cast<std::size_t>(max_id) >= doc.vocab.size() + 65536)
      throw FormatError(file, "model.vocab has an id " + std::to_string(max_id) + " for only " +
                                  std::to_string(doc.vocab.size()) + " tokens (more than 65536 ids unused)");
    // The bytes of each id (joined into the arena at the end) and whether they came from the
    // byte-level alphabet (then the encoder can reach the token).
    std::vector<std::string> bytes_of(static_cast<std::size_t>(max_id + 1));
    std::vector<bool> reachable(bytes_of.size());
    m->kind.assign(bytes_of.size(), hf::TokenKind::none);
    m->byte_id.fill(-1);
    for (const auto& e : doc.vocab) {
      const std::string_view token = doc.token(e);
      const auto id = static_cast<std::size_t>(e.id);
      m->kind[id] = hf::TokenKind::model;
      auto bytes = hf::byte_level_to_bytes(token);
      reachable[id] = bytes.has_value();
      // Outside the byte-level alphabet: decoded verbatim (as the ByteLevel decoder does).
      bytes_of[id] = bytes ? std::move(*bytes) : std::string(token);
    }
    if (auto u = model.find("unk_token"); u != model.end() && !u->is_null()) {
      if (!u->is_string()) throw FormatError(file, "model.unk_token is not a string");
      m->unk_id = by_text.find(u->get_ref<const std::string&>());
      if (m->unk_id < 0) throw FormatError(file, "model.unk_token " + u->dump() + " is not in model.vocab");
    }

    if (!doc.has_merges) throw FormatError(file, "model has no \"merges\" array");
    m->merges.reserve(doc.merges.size());
    for (std::size_t rank = 0; rank < doc.merges.size(); ++rank) {
      const auto& e = doc.merges[rank];
      const std::string_view a = doc.left(e), b = doc.right(e);
      const std::int32_t ia = by_text.find(a), ib = by_text.find(b), ij = by_text.find(doc.joined(e));
      if (ia < 0 || ib < 0 || ij < 0)
        throw FormatError(file, "model.merges[" + std::to_string(rank) + "] " + Json::array({a, b}).dump() +
                                    ": a token of it or of its result is not in model.vocab");
      m->merges.insert_or_assign(ia, ib, static_cast<std::uint32_t>(rank), ij);
    }

    // normalizer
    const Json& normalizer = member_or_null(j, "normalizer");
    for (const Json* step : steps_of(normalizer, "normalizers", file, "normalizer")) {
      if (type_of(*step) != "NFC")
        throw FormatError(file, "normalizer type '" + type_of(*step) + "' is not supported (only NFC or none)");
      m->nfc = true;
    }

    // pre_tokenizer: Split* then ByteLevel
    const Json& pre = member_or_null(j, "pre_tokenizer");
    const auto pre_steps = steps_of(pre, "pretokenizers", file, "pre_tokenizer");
    bool byte_level = false;
    for (std::size_t i = 0; i < pre_steps.size(); ++i) {
      const Json& step = *pre_steps[i];
      const std::string type = type_of(step);
      const std::string where = "pre_tokenizer step " + std::to_string(i) + " (" + type + ")";
      if (byte_level) throw FormatError(file, where + " after ByteLevel is not supported");
      if (type == "Split") {
        const Json& behavior = need(step, "behavior", where);
        if (!(behavior.is_string() && behavior.get<std::string>() == "Isolated"))
          throw FormatError(file, where + ": behavior " + behavior.dump() + " is not supported (only \"Isolated\")");
        if (flag(step, "invert", false, file, where)) throw FormatError(file, where + ": invert is not supported");
        const Json& pattern = need(step, "pattern", where);
        if (auto r = pattern.find("Regex"); pattern.is_object() && r != pattern.end() && r->is_string()) {
          std::string why;
          const auto translated = hf::onig_to_pcre2(r->get_ref<const std::string&>(), why);
          if (!translated) throw FormatError(file, where + ": regular expression " + r->dump() + ": " + why);
          m->splits.emplace_back(*translated, false, file, where);
        } else if (auto s = pattern.find("String"); pattern.is_object() && s != pattern.end() && s->is_string()) {
          if (s->get_ref<const std::string&>().empty()) throw FormatError(file, where + ": empty String pattern");
          m->splits.emplace_back(s->get_ref<const std::string&>(), true, file, where);
        } else {
          throw FormatError(file, where + ": pattern is neither {\"Regex\": ...} nor {\"String\": ...}");
        }
      } else if (type == "ByteLevel") {
        byte_level = true;
        m->prefix_space = flag(step, "add_prefix_space", true, file, where);
        if (flag(step, "use_regex", true, file, where)) m->gpt2.emplace(hf::kGpt2Pattern, false, file, where);
      } else {
        throw FormatError(file, "pre_tokenizer type '" + type +
                                    "' is not supported (only Split with behaviour Isolated, then ByteLevel)");
      }
    }
    if (!byte_level) throw FormatError(file, "pre_tokenizer has no ByteLevel step (not a byte-level BPE tokenizer)");

    // decoder
    const Json& decoder = member_or_null(j, "decoder");
    const auto dec_steps = steps_of(decoder, "decoders", file, "decoder");
    if (dec_steps.size() != 1 || type_of(*dec_steps[0]) != "ByteLevel")
      throw FormatError(file, "decoder type '" + (dec_steps.empty() ? std::string("null") : type_of(*dec_steps[0])) +
                                  (dec_steps.size() > 1 ? "' (in a Sequence)" : "'") +
                                  " is not supported (only ByteLevel)");

    // added tokens: ids as tokenizers assigns them
    if (auto at = j.find("added_tokens"); at != j.end() && !at->is_null()) {
      if (!at->is_array()) throw FormatError(file, "added_tokens is not an array");
      const auto model_size = static_cast<std::int64_t>(by_text.size());
      std::int64_t next_id = model_size;
      for (std::size_t i = 0; i < at->size(); ++i) {
        const Json& e = (*at)[i];
        const std::string where = "added_tokens[" + std::to_string(i) + "]";
        const Json& content = need(e, "content", where);
        if (!content.is_string()) throw FormatError(file, where + ".content is not a string");
        hf::AddedToken t;
        t.content = content.get<std::string>();
        if (t.content.empty()) continue;
        if (!hf::is_valid_utf8(t.content)) throw FormatError(file, where + ".content is not valid UTF-8");
        t.special = flag(e, "special", false, file, where);
        t.single_word = flag(e, "single_word", false, file, where);
        t.lstrip = flag(e, "lstrip", false, file, where);
        t.rstrip = flag(e, "rstrip", false, file, where);
        t.normalized = flag(e, "normalized", !t.special, file, where);
        std::int64_t id;
        if (auto it = m->added_ids.find(t.content); it != m->added_ids.end()) {
          id = it->second;
        } else if (const std::int32_t v = by_text.find(t.content); v >= 0) {
          id = v;
        } else {
          id = next_id++;
        }
        if (id > kMaxId) throw FormatError(file, where + ": too many tokens");
        m->added_ids[t.content] = static_cast<std::int32_t>(id);
        m->added[static_cast<std::int32_t>(id)] = std::move(t);
      }
      if (!m->added.empty()) {
        std::int32_t top = 0;
        for (const auto& [id, t] : m->added) top = std::max(top, id);
        if (static_cast<std::size_t>(top) >= bytes_of.size()) {
          bytes_of.resize(static_cast<std::size_t>(top) + 1);
          reachable.resize(bytes_of.size());
          m->kind.resize(bytes_of.size(), hf::TokenKind::none);
        }
      }
      for (auto& [id, t] : m->added) {
        const auto k = static_cast<std::size_t>(id);
        m->kind[k] = t.special ? hf::TokenKind::special : hf::TokenKind::added;
        // Decoded through the ByteLevel decoder: byte-level text becomes its bytes, other text stays.
        auto bytes = hf::byte_level_to_bytes(t.content);
        bytes_of[k] = bytes ? std::move(*bytes) : t.content;  // (a vocabulary token's id keeps its bytes)
        if (t.normalized && m->nfc) {
          std::string n;
          hf::append_nfc(t.content, n);
          m->normalized_trie.insert(n, id);
        } else {
          (t.normalized ? m->normalized_trie : m->raw_trie).insert(t.content, id);
        }
      }
    }

    // The arena of token bytes, and the model's tokens by their bytes.
    std::size_t total = 0;
    for (const auto& b : bytes_of) total += b.size();
    if (total >= std::numeric_limits<std::uint32_t>::max()) throw FormatError(file, "vocabulary too large");
    m->arena.reserve(total);
    m->offset.reserve(bytes_of.size() + 1);
    for (const auto& b : bytes_of) {
      m->offset.push_back(static_cast<std::uint32_t>(m->arena.size()));
      m->arena += b;
    }
    m->offset.push_back(static_cast<std::uint32_t>(m->arena.size()));
    m->model_ids.reserve(bytes_of.size());
    for (std::size_t id = 0; id < bytes_of.size(); ++id) {
      if (!reachable[id]) continue;
      const auto i = static_cast<std::int32_t>(id);
      m->model_ids.assign(m->bytes(i), i);
      if (bytes_of[id].size() == 1) m->byte_id[static_cast<unsigned char>(bytes_of[id][0])] = i;
    }

    // post_processor
    const Json& post = member_or_null(j, "post_processor");
    for (const Json* step : steps_of(post, "processors", file, "post_processor")) {
      const std::string type = type_of(*step);
      if (type == "ByteLevel") continue;  // only trims offsets
      if (type != "TemplateProcessing")
        throw FormatError(
            file, "post_processor type '" + type + "' is not supported (only TemplateProcessing, ByteLevel or none)");
      const Json& single = need(*step, "single", "post_processor TemplateProcessing");
      const Json& specials = need(*step, "special_tokens", "post_processor TemplateProcessing");
      if (!single.is_array() || !specials.is_object())
        throw FormatError(file,
                          "post_processor TemplateProcessing: single is not an array or special_tokens not an object");
      if (!m->prefix.empty() || !m->suffix.empty())
        throw FormatError(file, "post_processor: more than one TemplateProcessing is not supported");
      bool seen_sequence = false;
      for (const Json& item : single) {
        if (auto sq = item.find("Sequence"); item.is_object() && sq != item.end()) {
          if (seen_sequence)
            throw FormatError(file, "post_processor TemplateProcessing: more than one Sequence in single");
          seen_sequence = true;
          continue;
        }
        auto st = item.is_object() ? item.find("SpecialToken") : item.end();
        if (!item.is_object() || st == item.end() || !st->is_object())
          throw FormatError(file,
                            "post_processor TemplateProcessing: single item " + item.dump() + " is not understood");
        const std::string& name = need(*st, "id", "post_processor SpecialToken").get_ref<const std::string&>();
        auto sp = specials.find(name);
        if (sp == specials.end())
          throw FormatError(file,
                            "post_processor TemplateProcessing: special token '" + name + "' is not in special_tokens");
        const Json& ids = need(*sp, "ids", "post_processor special_tokens['" + name + "']");
        for (const Json& id : ids) {
          if (!id.is_number_integer() || id.get<std::int64_t>() < 0 ||
              id.get<std::int64_t>() >= static_cast<std::int64_t>(m->kind.size()))
            throw FormatError(
                file, "post_processor special_tokens['" + name + "'] has id " + id.dump() + " outside the vocabulary");
          (seen_sequence ? m->suffix : m->prefix).push_back(static_cast<std::int32_t>(id.get<std::int64_t>()));
        }
      }
      if (!seen_sequence) throw FormatError(file, "post_processor TemplateProcessing: single has no Sequence");
    }
    if (!m->prefix.empty()) m->bos = m->prefix.front();
    return m;
  }

  /// bos_token / eos_token of tokenizer_config.json: a string, {"content": ...} or null.
  static void read_config(Model& m, const std::filesystem::path& path) {
    const std::string file = path.string();
    Json c;
    try {
      const std::string text = detail::read_tokenizer_file(path);
      c = Json::parse(text);
    } catch (const Json::exception& e) {
      throw FormatError(file, std::string("not valid JSON (") + e.what() + ")");
    }
    if (!c.is_object()) throw FormatError(file, "not a tokenizer_config.json (the top level is not a JSON object)");
    auto token_of = [&](const char* key) -> std::int32_t {
      auto it = c.find(key);
      if (it == c.end() || it->is_null()) return -1;
      const Json* v = &*it;
      if (v->is_object()) {
        auto ct = v->find("content");
        if (ct == v->end()) throw FormatError(file, std::string(key) + " has no content");
        v = &*ct;
      }
      if (!v->is_string()) throw FormatError(file, std::string(key) + " is not a string");
      const std::string& s = v->get_ref<const std::string&>();
      if (auto a = m.added_ids.find(s); a != m.added_ids.end()) return a->second;
      if (const std::int32_t a = m.model_ids.find(s); a >= 0) return a;
      throw FormatError(file, std::string(key) + " " + v->dump() + " is not a token of " + m.file);
    };
    m.eos = token_of("eos_token");
    if (m.bos < 0) m.bos = token_of("bos_token");
  }

  std::shared_ptr<const Model> model_;
};

}  // namespace lazyllm
