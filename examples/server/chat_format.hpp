// SPDX-License-Identifier: MIT
// Chat formats: how /v1/chat/completions turns a list of messages into the prompt a model was
// trained on. One is picked per model (--chat-format, else the chat template a tokenizer.json's
// tokenizer_config.json declares, else from the model's name); adding one is adding an entry to
// chat_formats(). The Llama 2, Llama 3 and ChatML ones are the library's renderers (text/chat.hpp).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lazyllm/detail/error.hpp"
#include "lazyllm/eval/task.hpp"
#include "lazyllm/text/chat.hpp"
#include "lazyllm/text/tokenizer.hpp"

namespace lazyllm::server {

struct ChatFormat {
  std::string name;
  std::string description;
  /// The prompt's token ids; throws InvalidArgument when the messages do not fit the format
  /// (roles out of order, ...).
  std::function<std::vector<std::int32_t>(const Tokenizer&, std::span<const ChatMessage>)> tokens;
};

namespace detail {

/// The format of lazyllm's own retrieval models (models/lazyqa*): the system message is the
/// context (documents, each ending in a blank line), answered turns are written as the task's
/// practice questions, and the last user message is the question:
///   {context}Question: {q1}\nAnswer: {a1}\n\nQuestion: {q}\nAnswer:
/// encoded with BOS, as lazyllm-make-task's prompts are.
inline std::string qa_chat_text(std::span<const ChatMessage> m) {
  if (m.empty()) throw InvalidArgument("qa chat: no messages");
  std::size_t i = 0;
  std::string text;
  if (m[0].role == "system") {
    text = std::string(lazyllm::detail::strip_whitespace(m[0].content));
    if (!text.empty()) text += "\n\n";
    i = 1;
  }
  if (i == m.size()) throw InvalidArgument("qa chat: a system message needs a user message after it");
  for (; i < m.size(); i += 2) {
    if (m[i].role != "user")
      throw InvalidArgument("qa chat: message " + std::to_string(i) + " has role '" + m[i].role +
                            "', expected 'user' (roles must be [system], user, assistant, user, ...)");
    const std::string_view q = lazyllm::detail::strip_whitespace(m[i].content);
    if (i + 1 == m.size()) return eval::mdqa_prompt(text, q);
    if (m[i + 1].role != "assistant")
      throw InvalidArgument("qa chat: message " + std::to_string(i + 1) + " has role '" + m[i + 1].role +
                            "', expected 'assistant' (roles must be [system], user, assistant, user, ...)");
    text += eval::practice_turn(q, lazyllm::detail::strip_whitespace(m[i + 1].content));
  }
  throw InvalidArgument("qa chat: the last message must be the user's question");
}

}  // namespace detail

/// `f`'s template with the library's defaults (Llama 3's <|begin_of_text|>; ChatML without a
/// default system message), for --chat-format without a declared template.
inline ChatTemplate default_template(lazyllm::ChatFormat f) {
  ChatTemplate t;
  t.format = f;
  return t;
}

/// The format of a chat template (text/chat.hpp's renderers), named as chat_formats() names it.
inline ChatFormat chat_format_of(const ChatTemplate& t, std::string description = {}) {
  if (description.empty()) description = std::string(to_string(t.format)) + " chat (tokenizer_config.json)";
  return {to_string(t.format), std::move(description),
          [t](const Tokenizer& tok, std::span<const ChatMessage> m) { return chat_tokens(tok, t, m); }};
}

/// Every chat format this server knows.
inline const std::vector<ChatFormat>& chat_formats() {
  static const std::vector<ChatFormat> formats{
      {"llama2", "Llama 2 chat: <s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST] {answer} </s>...",
       [](const Tokenizer& t, std::span<const ChatMessage> m) { return llama2_chat_tokens(t, m); }},
      chat_format_of(default_template(lazyllm::ChatFormat::llama3),
                     "Llama 3 chat: <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\\n\\n"
                     "{content}<|eot_id|>..."),
      chat_format_of(default_template(lazyllm::ChatFormat::chatml),
                     "ChatML (Qwen): <|im_start|>{role}\\n{content}<|im_end|>\\n... (no default system message)"),
      {"qa", "lazyllm's retrieval models: {system = documents}Question: {user}\\nAnswer:",
       [](const Tokenizer& t, std::span<const ChatMessage> m) { return t.encode(detail::qa_chat_text(m), true); }},
  };
  return formats;
}

/// The format called `name`; throws InvalidArgument naming the known ones.
inline const ChatFormat& chat_format(std::string_view name) {
  std::string known;
  for (const auto& f : chat_formats()) {
    if (f.name == name) return f;
    known += (known.empty() ? "" : ", ") + f.name;
  }
  throw InvalidArgument("unknown chat format '" + std::string(name) + "' (known: " + known + ")");
}

/// The format a model was trained on, from its name: qa for lazyllm's own models (a file or
/// folder whose name starts with "lazyqa"), else llama2.
inline std::string default_chat_format(const std::filesystem::path& model) {
  std::filesystem::path p = model;
  if (p.filename().empty()) p = p.parent_path();  // "models/lazyqa/"
  const std::string name = p.filename().string();
  return name.rfind("lazyqa", 0) == 0 ? "qa" : "llama2";
}

/// The format chat requests use: `name` (--chat-format) when given, else the model's declared
/// chat template (read_chat_template() beside its tokenizer.json), else default_chat_format().
/// A name equal to the declared template's format keeps the template's details (Qwen's default
/// system message, its BOS token). Throws InvalidArgument for an unknown name.
inline ChatFormat pick_chat_format(std::string_view name, const std::filesystem::path& model,
                                   const std::optional<ChatTemplate>& declared) {
  if (declared && (name.empty() || name == to_string(declared->format))) {
    // Llama 2's declared template is the Llama 2 format itself.
    if (declared->format == lazyllm::ChatFormat::llama2) return chat_format("llama2");
    return chat_format_of(*declared);
  }
  return chat_format(name.empty() ? default_chat_format(model) : std::string(name));
}

}  // namespace lazyllm::server
