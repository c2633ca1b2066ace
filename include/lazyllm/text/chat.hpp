// SPDX-License-Identifier: MIT
// Chat prompt formats: Llama 2, Llama 3 and ChatML (Qwen2/2.5/3), and read_chat_template(), which
// tells from a model directory's tokenizer_config.json which one its chat_template is.
//
// ---- Llama 2
//
// Source: Meta's reference implementation, Llama.chat_completion() in llama/generation.py of
// github.com/meta-llama/llama (Llama 2 release); Hugging Face's chat_template for
// meta-llama/Llama-2-*-chat-hf produces the same text. As implemented there:
//  - an optional leading system message is folded into the first user message as
//    "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + user;
//  - the remaining messages must alternate user, assistant, user, ...;
//  - every completed (user, assistant) pair is tokenized on its own as
//    BOS + "[INST] {user} [/INST] {assistant} " + EOS (note the space before EOS);
//  - the final user message is tokenized as BOS + "[INST] {user} [/INST]" (no EOS), and the
//    model's answer follows;
//  - each user and assistant content is stripped of surrounding whitespace; the first user
//    message is stripped after the system prompt has been folded in (so whitespace around the
//    system prompt itself, and before that user text, is kept, exactly as both references do).
// Differences, all deliberate: stripping removes ASCII whitespace only (Python's str.strip() also
// removes Unicode spaces). Meta requires the dialog to end with a user message; we also accept a
// dialog that ends with an assistant answer (every pair completed, nothing open), e.g. to render a
// finished conversation. Meta's refusal when user content contains "[INST]"/"<<SYS>>" tags is not
// reproduced.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lazyllm/detail/error.hpp"
#include "lazyllm/text/tokenizer.hpp"

namespace lazyllm {

/// One chat message. role: "system" (only as the first message), "user" or "assistant".
struct ChatMessage {
  std::string role;
  std::string content;
};

namespace detail {

inline std::string_view strip_whitespace(std::string_view s) {
  constexpr std::string_view ws = " \t\n\r\f\v";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

/// One BOS-delimited segment of a Llama 2 chat prompt.
struct ChatTurn {
  std::string text;  // "[INST] u [/INST] a " for a completed pair, "[INST] u [/INST]" for the open one
  bool completed;    // followed by EOS
};

inline std::vector<ChatTurn> llama2_chat_turns(std::span<const ChatMessage> messages) {
  if (messages.empty()) throw InvalidArgument("llama2 chat: no messages");
  std::size_t first = 0;
  bool has_system = false;
  if (messages[0].role == "system") {
    has_system = true;
    first = 1;
  }
  if (first == messages.size()) throw InvalidArgument("llama2 chat: a system message needs a user message after it");
  std::vector<ChatTurn> turns;
  for (std::size_t i = first; i < messages.size(); i += 2) {
    const ChatMessage& u = messages[i];
    if (u.role != "user")
      throw InvalidArgument("llama2 chat: message " + std::to_string(i) + " has role '" + u.role +
                            "', expected 'user' (roles must be [system], user, assistant, user, ...)");
    std::string text = "[INST] ";
    if (i == first && has_system)
      text += strip_whitespace("<<SYS>>\n" + messages[0].content + "\n<</SYS>>\n\n" + u.content);
    else
      text += strip_whitespace(u.content);
    text += " [/INST]";
    if (i + 1 == messages.size()) {
      turns.push_back({std::move(text), false});
      break;
    }
    const ChatMessage& a = messages[i + 1];
    if (a.role != "assistant")
      throw InvalidArgument("llama2 chat: message " + std::to_string(i + 1) + " has role '" + a.role +
                            "', expected 'assistant' (roles must be [system], user, assistant, user, ...)");
    text += ' ';
    text += strip_whitespace(a.content);
    text += ' ';
    turns.push_back({std::move(text), true});
  }
  return turns;
}

}  // namespace detail

/// The Llama 2 chat prompt as text, BOS rendered as "<s>" and EOS as "</s>" (for display and
/// tests; feed the model llama2_chat_tokens(), since "<s>" in text does not tokenize to BOS).
/// E.g. {system S, user U} -> "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST]".
/// Throws InvalidArgument when the roles are not [system], user, assistant, user, ...
inline std::string llama2_chat_prompt(std::span<const ChatMessage> messages) {
  std::string s;
  for (const auto& t : detail::llama2_chat_turns(messages)) {
    s += "<s>";
    s += t.text;
    if (t.completed) s += "</s>";
  }
  return s;
}

/// The Llama 2 chat prompt as token ids: each turn encoded on its own with BOS, EOS appended after
/// each completed assistant answer (what Meta's chat_completion feeds the model).
inline std::vector<std::int32_t> llama2_chat_tokens(const Tokenizer& tok, std::span<const ChatMessage> messages) {
  std::vector<std::int32_t> ids;
  for (const auto& t : detail::llama2_chat_turns(messages)) {
    const auto part = tok.encode(t.text, true);
    ids.insert(ids.end(), part.begin(), part.end());
    if (t.completed) ids.push_back(tok.eos_id());
  }
  return ids;
}

// ---- Llama 3 and ChatML
//
// Both render the conversation as one text that is encoded with special-token parsing and no
// added BOS (as transformers' apply_chat_template(tokenize=True) does): chat_tokens().
// render_llama3_chat() is the chat_template of Meta's Llama 3 tokenizer_config.json, and
// render_chatml() with ChatmlStyle::reasoning that of Qwen3's; tests/data/hf_tokenizer/chat.json
// holds those templates' renderings (by @huggingface/jinja) that the tests compare against, for
// system / user / assistant messages (no tools). Deliberate differences: messages with other roles
// are refused (Qwen3's template drops or reformats them), and an empty conversation is refused.

namespace detail {

/// Python's str.isspace(), which Jinja's trim filter (str.strip) uses.
constexpr bool python_isspace(char32_t c) noexcept {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/// The code point starting at s[i] and its length (invalid UTF-8: that byte, length 1).
inline std::pair<char32_t, std::size_t> utf8_at(std::string_view s, std::size_t i) noexcept {
  const auto b = static_cast<unsigned char>(s[i]);
  const std::size_t n = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
  if (n == 1 || i + n > s.size()) return {b, 1};
  char32_t c = b & (0x7F >> n);
  for (std::size_t k = 1; k < n; ++k) {
    const auto cb = static_cast<unsigned char>(s[i + k]);
    if ((cb & 0xC0) != 0x80) return {b, 1};
    c = (c << 6) | (cb & 0x3F);
  }
  return {c, n};
}

/// Python's s.strip(): Unicode whitespace off both ends.
inline std::string_view python_strip(std::string_view s) noexcept {
  std::size_t b = 0;
  while (b < s.size()) {
    const auto [c, n] = utf8_at(s, b);
    if (!python_isspace(c)) break;
    b += n;
  }
  std::size_t e = s.size();
  while (e > b) {
    std::size_t k = e - 1;
    while (k > b && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
    if (!python_isspace(utf8_at(s, k).first)) break;
    e = k;
  }
  return s.substr(b, e - b);
}

inline std::string_view strip_newlines_left(std::string_view s) noexcept {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  return s;
}
inline std::string_view strip_newlines_right(std::string_view s) noexcept {
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}

}  // namespace detail

/// The Llama 3 chat prompt (Meta's template): BOS, then per message
/// "<|start_header_id|>ROLE<|end_header_id|>\n\n" + content (whitespace-stripped) + "<|eot_id|>",
/// then with add_generation_prompt the assistant's header. Any role is rendered as given.
inline std::string render_llama3_chat(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                      std::string_view bos_token = "<|begin_of_text|>") {
  std::string s;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (i == 0) s += bos_token;
    s += "<|start_header_id|>";
    s += messages[i].role;
    s += "<|end_header_id|>\n\n";
    s += detail::python_strip(messages[i].content);
    s += "<|eot_id|>";
  }
  if (add_generation_prompt) s += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return s;
}

/// What varies between ChatML templates.
struct ChatmlStyle {
  /// The system message rendered when the conversation does not start with one (Qwen2 and
  /// Qwen2.5 have one; Qwen3 none: "").
  std::string default_system;
  /// Qwen3's reasoning blocks: an assistant message's "<think>...</think>" is dropped from the
  /// answers before the last user query and kept, normalised, after it.
  bool reasoning = false;
  /// With reasoning and a generation prompt: false appends an empty think block (Qwen3's
  /// enable_thinking=False); true or unset leaves the model to think.
  std::optional<bool> enable_thinking;
};

/// The ChatML prompt (Qwen2/2.5/3): "<|im_start|>ROLE\ncontent<|im_end|>\n" per message, then with
/// add_generation_prompt "<|im_start|>assistant\n". Roles: system, user, assistant.
/// Throws InvalidArgument for an empty conversation or another role.
inline std::string render_chatml(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                 const ChatmlStyle& style = {}) {
  if (messages.empty()) throw InvalidArgument("chatml chat: no messages");
  for (std::size_t i = 0; i < messages.size(); ++i)
    if (messages[i].role != "system" && messages[i].role != "user" && messages[i].role != "assistant")
      throw InvalidArgument("chatml chat: message " + std::to_string(i) + " has role '" + messages[i].role +
                            "' (expected system, user or assistant)");
  std::string s;
  auto turn = [&](std::string_view role, std::string_view content) {
    s += "<|im_start|>";
    s += role;
    s += '\n';
    s += content;
    s += "<|im_end|>\n";
  };
  if (messages[0].role == "system")
    turn("system", messages[0].content);
  else if (!style.default_system.empty())
    turn("system", style.default_system);
  // Qwen3: the last user message that is not a tool response; answers after it keep their
  // reasoning.
  std::size_t last_query = messages.size() - 1;
  for (std::size_t i = messages.size(); i-- > 0;) {
    const std::string_view c = messages[i].content;
    const bool tool_response = c.starts_with("<tool_response>") && c.ends_with("</tool_response>");
    if (messages[i].role == "user" && !tool_response) {
      last_query = i;
      break;
    }
  }
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "system") {
      if (i > 0) turn("system", m.content);
      continue;
    }
    if (m.role == "user" || !style.reasoning) {
      turn(m.role, m.content);
      continue;
    }
    std::string_view content = m.content, reasoning;
    if (const auto end = content.rfind("</think>"); end != std::string_view::npos) {
      std::string_view before = m.content;
      before = before.substr(0, before.find("</think>"));
      before = detail::strip_newlines_right(before);
      if (const auto open = before.rfind("<think>"); open != std::string_view::npos)
        before.remove_prefix(open + std::string_view("<think>").size());
      reasoning = detail::strip_newlines_left(before);
      content = detail::strip_newlines_left(content.substr(end + std::string_view("</think>").size()));
    }
    s += "<|im_start|>assistant\n";
    if (i > last_query && (i + 1 == messages.size() || !reasoning.empty())) {
      s += "<think>\n";
      s += detail::strip_newlines_right(detail::strip_newlines_left(reasoning));
      s += "\n</think>\n\n";
      s += detail::strip_newlines_left(content);
    } else {
      s += content;
    }
    s += "<|im_end|>\n";
  }
  if (add_generation_prompt) {
    s += "<|im_start|>assistant\n";
    if (style.reasoning && style.enable_thinking == false) s += "<think>\n\n</think>\n\n";
  }
  return s;
}

enum class ChatFormat { llama2, llama3, chatml };

inline const char* to_string(ChatFormat f) noexcept {
  switch (f) {
    case ChatFormat::llama2:
      return "llama2";
    case ChatFormat::llama3:
      return "llama3";
    case ChatFormat::chatml:
      return "chatml";
  }
  return "?";
}

/// A model's chat format, as read_chat_template() finds it.
struct ChatTemplate {
  ChatFormat format = ChatFormat::llama2;
  std::string bos_token = "<|begin_of_text|>";  // llama3: rendered before the first message
  ChatmlStyle chatml;                           // chatml
  /// The tokens that end an assistant turn ("<|eot_id|>", "<|im_end|>", "</s>"), and the
  /// tokenizer_config.json eos_token when it is another one; Tokenizer::find() gives their ids.
  std::vector<std::string> stop_tokens;
};

/// `messages` as the text of `t`'s prompt. Llama 2 renders BOS/EOS as "<s>"/"</s>" for display and
/// ignores add_generation_prompt (its prompt always ends open after the last user message).
inline std::string render_chat(const ChatTemplate& t, std::span<const ChatMessage> messages,
                               bool add_generation_prompt = true) {
  switch (t.format) {
    case ChatFormat::llama2:
      return llama2_chat_prompt(messages);
    case ChatFormat::llama3:
      return render_llama3_chat(messages, add_generation_prompt, t.bos_token);
    case ChatFormat::chatml:
      return render_chatml(messages, add_generation_prompt, t.chatml);
  }
  return {};
}

/// The text that continues a conversation once the model's answer has ended with the format's
/// stop token (<|eot_id|>, <|im_end|>): `message` (user or system) and, with
/// add_generation_prompt, the assistant's header. For a multi-turn chat that keeps its KV cache:
/// render_chat(messages + {answer, message}) == render_chat(messages) + answer + stop token +
/// render_chat_turn(message) (the answer trimmed, for Llama 3). Exact for Llama 3 and ChatML
/// without reasoning; with Qwen3's reasoning the template also drops earlier answers' <think>
/// blocks (enable_thinking=false's empty one too), which the cache keeps. InvalidArgument for Llama 2 (its turns are
/// separate BOS/EOS sequences: llama2_chat_tokens()).
inline std::string render_chat_turn(const ChatTemplate& t, const ChatMessage& message,
                                    bool add_generation_prompt = true) {
  switch (t.format) {
    case ChatFormat::llama3:
      return render_llama3_chat(std::span(&message, 1), add_generation_prompt, "");
    case ChatFormat::chatml: {
      if (message.role != "user" && message.role != "system")
        throw InvalidArgument("chatml chat: a continuing turn has role '" + message.role +
                              "' (expected user or system)");
      std::string s = "\n<|im_start|>" + message.role + "\n" + message.content + "<|im_end|>\n";
      if (add_generation_prompt) {
        s += "<|im_start|>assistant\n";
        if (t.chatml.reasoning && t.chatml.enable_thinking == false) s += "<think>\n\n</think>\n\n";
      }
      return s;
    }
    case ChatFormat::llama2:
      break;
  }
  throw InvalidArgument("llama2 chat: continue a conversation with llama2_chat_tokens() of its turns");
}

/// `messages` as token ids to feed the model: Llama 2 as llama2_chat_tokens(); Llama 3 and ChatML
/// the rendered text encoded with special-token parsing and no added BOS (the text has its own).
inline std::vector<std::int32_t> chat_tokens(const Tokenizer& tok, const ChatTemplate& t,
                                             std::span<const ChatMessage> messages, bool add_generation_prompt = true) {
  if (t.format == ChatFormat::llama2) return llama2_chat_tokens(tok, messages);
  EncodeOptions o;
  o.add_bos = false;
  o.parse_special = true;
  return tok.encode(render_chat(t, messages, add_generation_prompt), o);
}

namespace detail {

/// The text of a Jinja string literal that starts at src[i] (a quote), unescaped; nullopt if
/// unterminated.
inline std::optional<std::string> jinja_string_at(std::string_view src, std::size_t i) {
  const char q = src[i];
  std::string out;
  for (std::size_t k = i + 1; k < src.size(); ++k) {
    if (src[k] == q) return out;
    if (src[k] == '\\' && k + 1 < src.size()) {
      const char e = src[++k];
      out += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
    } else {
      out += src[k];
    }
  }
  return std::nullopt;
}

}  // namespace detail

/// The chat format a Jinja chat_template implements, told by its markers: Llama 3 headers,
/// ChatML's <|im_start|> (with Qwen3's <think> handling when it mentions </think>; a default
/// system message when a string literal renders a whole system turn), or Llama 2's [INST] with
/// <<SYS>>. `where` names the source in errors. FormatError for templates it cannot render exactly
/// (Llama 3.1's date and tools header, Mistral's [INST] without <<SYS>>, anything else).
inline ChatTemplate classify_chat_template(std::string_view jinja, const std::string& where) {
  auto has = [&](std::string_view m) { return jinja.find(m) != std::string_view::npos; };
  ChatTemplate t;
  if (has("<|start_header_id|>") && has("<|end_header_id|>") && has("<|eot_id|>")) {
    if (has("Cutting Knowledge Date") || has("ipython") || has("tools"))
      throw FormatError(where,
                        "the Llama 3.1+ chat template (date and tool headers) is not implemented; "
                        "lazyllm renders the Llama 3 one");
    t.format = ChatFormat::llama3;
    t.stop_tokens = {"<|eot_id|>"};
    return t;
  }
  if (has("<|im_start|>") && has("<|im_end|>")) {
    t.format = ChatFormat::chatml;
    t.chatml.reasoning = has("</think>");
    // A literal that renders a whole system turn is the default system message (Qwen2/2.5).
    for (std::size_t at = jinja.find("<|im_start|>system\\n"); at != std::string_view::npos;
         at = jinja.find("<|im_start|>system\\n", at + 1)) {
      if (at == 0 || (jinja[at - 1] != '\'' && jinja[at - 1] != '"')) continue;
      const auto lit = detail::jinja_string_at(jinja, at - 1);
      constexpr std::string_view head = "<|im_start|>system\n", tail = "<|im_end|>\n";
      if (lit && lit->size() > head.size() + tail.size() && lit->ends_with(tail)) {
        t.chatml.default_system = lit->substr(head.size(), lit->size() - head.size() - tail.size());
        break;
      }
    }
    t.stop_tokens = {"<|im_end|>"};
    return t;
  }
  if (has("[INST]") && has("<<SYS>>")) {
    t.format = ChatFormat::llama2;
    t.stop_tokens = {"</s>"};
    return t;
  }
  throw FormatError(where,
                    std::string("chat template not recognised") +
                        (has("[INST]") ? " (an [INST] template without Llama 2's <<SYS>>, e.g. Mistral's)" : "") +
                        "; lazyllm renders Llama 2, Llama 3 and ChatML (Qwen) chats");
}

/// The chat format of a model directory: the chat_template of its tokenizer_config.json (a
/// string, or the "default" of a list of named templates), else its chat_template.jinja; bos_token
/// and eos_token from tokenizer_config.json. std::nullopt when the directory declares no chat
/// template (e.g. a base model, or a Llama 2 directory with only tokenizer.model: the caller
/// decides, e.g. the Llama 2 format for SentencePiece tokenizers). FormatError for malformed files
/// and templates classify_chat_template() refuses. `model` may also be a tokenizer_config.json.
inline std::optional<ChatTemplate> read_chat_template(const std::filesystem::path& model) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir = fs::is_directory(model, ec) ? model : model.parent_path();
  const fs::path config = fs::is_directory(model, ec) ? model / "tokenizer_config.json" : model;
  auto read = [](const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    if (!f) throw FormatError(p.string(), "cannot open file");
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  nlohmann::json c = nlohmann::json::object();
  if (fs::is_regular_file(config, ec)) {
    try {
      c = nlohmann::json::parse(read(config));
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(config.string(), std::string("not valid JSON (") + e.what() + ")");
    }
    if (!c.is_object()) throw FormatError(config.string(), "not a tokenizer_config.json (not a JSON object)");
  }
  std::string jinja, where = config.string();
  if (auto it = c.find("chat_template"); it != c.end() && !it->is_null()) {
    if (it->is_string()) {
      jinja = it->get<std::string>();
    } else if (it->is_array()) {
      for (const auto& e : *it)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
          jinja = e["template"].get<std::string>();
      if (jinja.empty()) throw FormatError(where, "chat_template is a list without a \"default\" template");
    } else {
      throw FormatError(where, "chat_template is neither a string nor a list of named templates");
    }
  } else if (fs::is_regular_file(dir / "chat_template.jinja", ec)) {
    where = (dir / "chat_template.jinja").string();
    jinja = read(dir / "chat_template.jinja");
  } else {
    return std::nullopt;
  }
  ChatTemplate t = classify_chat_template(jinja, where);
  auto token = [&](const char* key) -> std::string {
    auto it = c.find(key);
    if (it == c.end() || it->is_null()) return {};
    if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"];
    if (it->is_string()) return *it;
    throw FormatError(config.string(), std::string(key) + " is neither a string nor {\"content\": ...}");
  };
  if (const std::string bos = token("bos_token"); !bos.empty()) t.bos_token = bos;
  if (const std::string eos = token("eos_token"); !eos.empty() && eos != t.stop_tokens.front())
    t.stop_tokens.push_back(eos);
  return t;
}

}  // namespace lazyllm
