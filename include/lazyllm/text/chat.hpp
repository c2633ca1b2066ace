// SPDX-License-Identifier: MIT
// The Llama 2 chat prompt format.
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

}  // namespace lazyllm
