// SPDX-License-Identifier: MIT
// -i: one turn per line of stdin, the KV cache kept across turns.
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include "app.hpp"
#include "lazyllm/text/chat.hpp"

namespace lazyllm::driver {

namespace {

/// The text of one interactive turn as token ids. With --chat: the Llama 2 multi-turn format,
/// `<s>[INST] {user} [/INST] {answer} </s><s>[INST] {user} [/INST]`, where the answer is the
/// model's own tokens (already in the KV cache), so a later turn adds EOS + BOS "[INST] u [/INST]".
/// With a tokenizer.json's chat format (Llama 3, ChatML): the first turn rendered whole, a later
/// one as the answer's end-of-turn token then render_chat_turn() of the user message.
/// Without --chat: the raw text (BOS before the first turn only).
std::vector<std::int32_t> turn_tokens(const Options& o, const Tokenizer& tok, const std::optional<ChatTemplate>& chat,
                                      int turn, const std::string& text) {
  if (!o.chat) return tok.encode(text, turn == 0);
  std::vector<ChatMessage> msgs;
  if (turn == 0 && o.system_given) msgs.push_back({"system", o.system});
  msgs.push_back({"user", text});
  if (chat && chat->format != ChatFormat::llama2) {
    if (turn == 0) return chat_tokens(tok, *chat, msgs);
    EncodeOptions eo;
    eo.add_bos = false;
    eo.parse_special = true;
    auto ids = tok.encode(render_chat_turn(*chat, msgs.back()), eo);
    if (!chat->stop_tokens.empty())
      if (const std::int32_t stop = tok.find(chat->stop_tokens.front()); stop >= 0) ids.insert(ids.begin(), stop);
    return ids;
  }
  auto ids = llama2_chat_tokens(tok, msgs);
  if (turn > 0) ids.insert(ids.begin(), tok.eos_id());
  return ids;
}

}  // namespace

int run_interactive(App& app) {
  const Options& o = app.o;
  const bool tty_in = isatty(fileno(stdin)) != 0;
  nlohmann::json turns = nlohmann::json::array();
  std::vector<std::string> user_text;
  std::vector<std::vector<std::int32_t>> turn_ids;
  std::vector<std::int32_t> all_generated;
  double prefill_total = 0, decode_total = 0;
  std::size_t prompt_total = 0;
  if (tty_in)
    std::fprintf(stderr, "interactive: one turn per line, end with Ctrl-D (EOF)%s\n",
                 o.chat ? "; each turn is a Llama 2 [INST] message" : "");
  Conversation conv;
  conv.next = [&](int t) -> std::optional<std::vector<std::int32_t>> {
    std::string text;
    if (t == 0 && o.text_given) {
      text = o.prompt_text;
    } else {
      std::string line;
      for (;;) {
        if (tty_in) {
          std::fputs("> ", stderr);
          std::fflush(stderr);
        }
        if (!std::getline(std::cin, line)) return std::nullopt;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!detail::strip_whitespace(line).empty()) break;
      }
      text = line;
    }
    auto ids = turn_tokens(o, *app.tok, app.chat, t, text);
    user_text.push_back(text);
    turn_ids.push_back(ids);
    app.stream_prev = ids.back();
    return ids;
  };
  conv.done = [&](int t, const RunResult& r) {
    if (app.stream) {
      std::fputc('\n', stdout);
      std::fflush(stdout);
    }
    if (o.print_ids) {
      std::printf("%s\n", join(r.ids).c_str());
      std::fflush(stdout);
    }
    const std::string label = "turn " + std::to_string(t + 1);
    std::fprintf(stderr, "%s: %d tokens appended to the %d already in the KV cache (context %d of %d tokens)%s\n",
                 label.c_str(), r.n_prompt, r.cache_before, r.cache_after, app.ctx,
                 r.stopped_eos ? ", answer ended at EOS" : "");
    print_footer(label.c_str(), r, app.load_ms, app.gpu);
    if (r.context_full)
      std::fprintf(stderr,
                   "%s: the context is full (%d of %d tokens): the answer was cut off; start again with a "
                   "larger -c to go on\n",
                   label.c_str(), r.cache_after, app.ctx);
    nlohmann::json tj = run_json(app, app.chosen, r, turn_ids.back().back());
    tj["turn"] = t + 1;
    tj["user"] = user_text.back();
    tj["ids"] = turn_ids.back();
    tj["cache_before"] = r.cache_before;
    tj["cache_after"] = r.cache_after;
    turns.push_back(std::move(tj));
    all_generated.insert(all_generated.end(), r.ids.begin(), r.ids.end());
    prefill_total += r.prefill_ms;
    decode_total += r.decode_ms;
    prompt_total += std::size_t(r.n_prompt);
  };
  const ConversationEnd end = app.converse(conv);
  std::fprintf(stderr, "interactive: %zu turn(s), %zu prompt tokens prefilled, %zu tokens generated\n", turns.size(),
               prompt_total, all_generated.size());
  write_stats(app, end.stats, prompt_total, all_generated, prefill_total, decode_total);
  app.doc["prompt"] = {{"source", o.chat ? "chat" : "text"},
                       {"system", o.system_given ? nlohmann::json(o.system) : nlohmann::json(nullptr)}};
  app.doc["turns"] = std::move(turns);
  app.doc["error"] = end.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(end.error);
  write_json(app);
  if (!end.error.empty()) throw UsageError(end.error);
  return 0;
}

}  // namespace lazyllm::driver
