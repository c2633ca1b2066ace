// SPDX-License-Identifier: MIT
// The OpenAI-compatible request: parse_request() validates a request body (JSON) into an
// ApiRequest, refusing what this server does not support with an OpenAI-style error object
// (never ignoring it); make_job() turns it into the engine's JobSpec (tokens, limits, policy);
// TextStream turns generated tokens into text deltas, honouring stop strings. No HTTP here: the
// fuzz target and the unit tests call these directly.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat_format.hpp"
#include "lazyllm/config/model_config.hpp"
#include "lazyllm/detail/error.hpp"
#include "lazyllm/model/sampler.hpp"
#include "lazyllm/policy/any.hpp"
#include "lazyllm/policy/lazy.hpp"
#include "lazyllm/text/chat.hpp"
#include "lazyllm/text/tokenizer.hpp"
#include "service.hpp"

namespace lazyllm::server {

using nlohmann::json;

/// An error a client gets: the HTTP status and OpenAI's error object
/// {"error": {"message", "type", "param", "code"}}.
class ApiError : public InvalidArgument {
 public:
  ApiError(int status, const std::string& message, std::string param = {}, std::string code = {}, std::string type = {})
      : InvalidArgument(message),
        status_(status),
        param_(std::move(param)),
        code_(std::move(code)),
        type_(type.empty() ? default_type(status) : std::move(type)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }
  const std::string& type() const { return type_; }
  json body() const { return error_body(status_, what(), param_, code_, type_); }

  static std::string default_type(int status) {
    if (status == 401) return "authentication_error";
    if (status == 404) return "not_found_error";
    if (status == 429 || status == 503) return "server_busy";
    if (status >= 500) return "server_error";
    return "invalid_request_error";
  }
  static json error_body(int status, std::string_view message, const std::string& param = {},
                         const std::string& code = {}, std::string type = {}) {
    if (type.empty()) type = default_type(status);
    return {{"error",
             {{"message", message},
              {"type", type},
              {"param", param.empty() ? json(nullptr) : json(param)},
              {"code", code.empty() ? json(nullptr) : json(code)}}}};
  }

 private:
  int status_;
  std::string param_, code_, type_;
};

enum class Endpoint { Completions, ChatCompletions };

/// A validated request (nothing tokenized yet).
struct ApiRequest {
  Endpoint endpoint = Endpoint::Completions;
  std::string model;  // "" when not given
  // /v1/completions: text, or token ids
  std::optional<std::string> prompt_text;
  std::vector<std::int64_t> prompt_ids;
  // /v1/chat/completions
  std::vector<ChatMessage> messages;
  std::optional<int> max_tokens;
  SamplerParams sampling{};
  bool seed_given = false;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;
  // "lazyllm": {...}
  std::optional<std::string> schedule;
  bool ignore_eos = false;
};

/// Limits on what a request may hold (beyond the body size, which the HTTP layer bounds).
struct RequestLimits {
  int max_depth = 32;        // JSON nesting
  std::size_t max_stop = 4;  // stop strings (OpenAI's limit)
  std::size_t max_stop_bytes = 256;
  std::size_t max_messages = 4096;
};

namespace detail {

/// The deepest nesting of arrays/objects in `s` (strings skipped), stopping early past `limit`.
inline int json_depth(std::string_view s, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : s) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if (c == ']' || c == '}')
      --depth;
  }
  return deepest;
}

inline const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "an unknown type";
  }
}

[[noreturn]] inline void wrong_type(const std::string& field, const json& v, const char* want) {
  throw ApiError(400, "'" + field + "' must be " + want + ", not " + type_name(v), field);
}

inline double number(const std::string& f, const json& v, double lo, double hi, const char* range) {
  if (!v.is_number()) wrong_type(f, v, "a number");
  const double d = v.get<double>();
  if (!(d >= lo && d <= hi)) throw ApiError(400, "'" + f + "' must be in " + range + ", got " + v.dump(), f);
  return d;
}

inline std::int64_t integer(const std::string& f, const json& v, std::int64_t lo, std::int64_t hi) {
  if (!v.is_number_integer()) wrong_type(f, v, "an integer");
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
    throw ApiError(400, "'" + f + "' is out of range: " + v.dump(), f);
  const std::int64_t i = v.get<std::int64_t>();
  if (i < lo || i > hi)
    throw ApiError(
        400, "'" + f + "' must be in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + std::to_string(i),
        f);
  return i;
}

inline bool boolean(const std::string& f, const json& v) {
  if (!v.is_boolean()) wrong_type(f, v, "a boolean");
  return v.get<bool>();
}

inline std::string string(const std::string& f, const json& v) {
  if (!v.is_string()) wrong_type(f, v, "a string");
  return v.get<std::string>();
}

[[noreturn]] inline void unsupported(const std::string& f, const std::string& what) {
  throw ApiError(400, "'" + f + "' " + what + " is not supported by this server", f, "unsupported_parameter");
}

/// A parameter that is accepted only at its default (which changes nothing).
inline void only_default(const std::string& f, const json& v, const json& neutral, const std::string& what) {
  if (v.is_null() || v == neutral) return;
  unsupported(f, what);
}

/// One message's content: a string, or text parts [{"type": "text", "text": "..."}].
inline std::string content_of(const std::string& f, const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (!v.is_array()) wrong_type(f, v, "a string or an array of text parts");
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::string pf = f + "[" + std::to_string(i) + "]";
    const json& part = v[i];
    if (!part.is_object()) wrong_type(pf, part, "an object");
    for (const auto& [k, x] : part.items())
      if (k != "type" && k != "text") throw ApiError(400, "unknown field '" + pf + "." + k + "'", pf + "." + k);
    if (!part.contains("type") || string(pf + ".type", part["type"]) != "text")
      unsupported(pf + ".type", "other than \"text\"");
    if (!part.contains("text")) throw ApiError(400, "'" + pf + ".text' is missing", pf + ".text");
    s += string(pf + ".text", part["text"]);
  }
  return s;
}

}  // namespace detail

/// Validates `body` for `ep`. Throws ApiError (400) for malformed JSON, a wrong type, a value out
/// of range, an unknown field, or one this server does not support at a value that would change
/// the result.
inline ApiRequest parse_request(std::string_view body, Endpoint ep, const RequestLimits& lim = {}) {
  using namespace detail;
  if (json_depth(body, lim.max_depth) > lim.max_depth)
    throw ApiError(400, "the request's JSON is nested deeper than " + std::to_string(lim.max_depth) + " levels");
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    std::string m = e.what();
    if (const auto p = m.find("] "); p != std::string::npos) m = m.substr(p + 2);  // drop nlohmann's tag
    throw ApiError(400, "malformed JSON: " + m);
  }
  if (!j.is_object()) throw ApiError(400, std::string("the request body must be a JSON object, not ") + type_name(j));

  const bool chat = ep == Endpoint::ChatCompletions;
  ApiRequest r;
  r.endpoint = ep;
  std::optional<std::int64_t> max_tokens, max_completion_tokens;
  const json* stream_options = nullptr;
  bool has_prompt = false, has_messages = false;
  for (const auto& [k, v] : j.items()) {
    if (k == "model") {
      if (!v.is_null()) r.model = string(k, v);
    } else if (k == "max_tokens") {
      if (!v.is_null()) max_tokens = integer(k, v, 1, std::numeric_limits<int>::max());
    } else if (k == "max_completion_tokens" && chat) {
      if (!v.is_null()) max_completion_tokens = integer(k, v, 1, std::numeric_limits<int>::max());
    } else if (k == "temperature") {
      if (!v.is_null()) r.sampling.temperature = float(number(k, v, 0.0, 2.0, "[0, 2]"));
    } else if (k == "top_p") {
      if (!v.is_null()) {
        r.sampling.top_p = float(number(k, v, 0.0, 1.0, "(0, 1]"));
        if (!(r.sampling.top_p > 0.0f)) throw ApiError(400, "'top_p' must be in (0, 1], got " + v.dump(), k);
      }
    } else if (k == "top_k") {  // vLLM's and llama.cpp's extension; -1 and 0 mean no limit
      if (!v.is_null()) r.sampling.top_k = int(std::max<std::int64_t>(0, integer(k, v, -1, 1 << 30)));
    } else if (k == "min_p") {
      if (!v.is_null()) r.sampling.min_p = float(number(k, v, 0.0, 1.0, "[0, 1]"));
    } else if (k == "seed") {
      if (!v.is_null()) {
        r.sampling.seed = std::uint64_t(
            integer(k, v, std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()));
        r.seed_given = true;
      }
    } else if (k == "stop") {
      if (v.is_null()) continue;
      if (v.is_string())
        r.stop.push_back(v.get<std::string>());
      else if (v.is_array()) {
        if (v.size() > lim.max_stop)
          throw ApiError(400, "'stop' may hold at most " + std::to_string(lim.max_stop) + " strings", k);
        for (std::size_t i = 0; i < v.size(); ++i) r.stop.push_back(string("stop[" + std::to_string(i) + "]", v[i]));
      } else {
        wrong_type(k, v, "a string or an array of strings");
      }
      for (const auto& s : r.stop) {
        if (s.empty()) throw ApiError(400, "'stop' strings must not be empty", k);
        if (s.size() > lim.max_stop_bytes)
          throw ApiError(400, "'stop' strings may be at most " + std::to_string(lim.max_stop_bytes) + " bytes", k);
      }
    } else if (k == "n") {
      if (!v.is_null() && integer(k, v, 1, std::numeric_limits<int>::max()) != 1) unsupported(k, "other than 1");
    } else if (k == "stream") {
      if (!v.is_null()) r.stream = boolean(k, v);
    } else if (k == "stream_options") {
      if (v.is_null()) continue;
      if (!v.is_object()) wrong_type(k, v, "an object");
      stream_options = &v;
      for (const auto& [sk, sv] : v.items()) {
        if (sk == "include_usage") {
          if (!sv.is_null()) r.include_usage = boolean("stream_options.include_usage", sv);
        } else {
          throw ApiError(400, "unknown field 'stream_options." + sk + "'", "stream_options." + sk);
        }
      }
    } else if (k == "frequency_penalty" || k == "presence_penalty") {
      if (!v.is_null() && number(k, v, -2.0, 2.0, "[-2, 2]") != 0.0) unsupported(k, "other than 0");
    } else if (k == "logit_bias") {
      if (!v.is_null() && !(v.is_object() && v.empty())) unsupported(k, "(a non-empty map)");
    } else if (k == "user") {  // an end-user id for the caller's own records: changes nothing
      if (!v.is_null()) string(k, v);
    } else if (k == "lazyllm") {
      if (v.is_null()) continue;
      if (!v.is_object()) wrong_type(k, v, "an object");
      for (const auto& [lk, lv] : v.items()) {
        const std::string f = "lazyllm." + lk;
        if (lk == "schedule") {
          if (!lv.is_null()) r.schedule = string(f, lv);
        } else if (lk == "ignore_eos") {
          if (!lv.is_null()) r.ignore_eos = boolean(f, lv);
        } else {
          throw ApiError(400, "unknown field '" + f + "' (known: schedule, ignore_eos)", f);
        }
      }
    } else if (!chat && k == "prompt") {
      has_prompt = true;
      // A string, token ids, or a batch of exactly one of those.
      const json* p = &v;
      if (v.is_array() && v.size() == 1 && (v[0].is_string() || v[0].is_array())) p = &v[0];
      if (p->is_string()) {
        r.prompt_text = p->get<std::string>();
      } else if (p->is_array()) {
        if (p->empty()) throw ApiError(400, "'prompt' is empty", k);
        for (std::size_t i = 0; i < p->size(); ++i) {
          const json& id = (*p)[i];
          if (id.is_string() || id.is_array()) unsupported(k, "with several prompts (one per request)");
          r.prompt_ids.push_back(
              integer("prompt[" + std::to_string(i) + "]", id, 0, std::numeric_limits<std::int32_t>::max()));
        }
      } else {
        wrong_type(k, v, "a string or an array of token ids");
      }
    } else if (!chat && (k == "echo")) {
      only_default(k, v, false, "true");
    } else if (!chat && (k == "best_of")) {
      only_default(k, v, 1, "other than 1");
    } else if (!chat && (k == "logprobs")) {
      only_default(k, v, json(), "(log probabilities)");
    } else if (!chat && (k == "suffix")) {
      only_default(k, v, "", "(insertion)");
    } else if (chat && k == "messages") {
      has_messages = true;
      if (!v.is_array()) wrong_type(k, v, "an array of messages");
      if (v.empty()) throw ApiError(400, "'messages' is empty", k);
      if (v.size() > lim.max_messages)
        throw ApiError(400, "'messages' may hold at most " + std::to_string(lim.max_messages) + " messages", k);
      for (std::size_t i = 0; i < v.size(); ++i) {
        const std::string f = "messages[" + std::to_string(i) + "]";
        const json& m = v[i];
        if (!m.is_object()) wrong_type(f, m, "an object");
        ChatMessage msg;
        bool has_role = false, has_content = false;
        for (const auto& [mk, mv] : m.items()) {
          if (mk == "role") {
            msg.role = string(f + ".role", mv);
            has_role = true;
          } else if (mk == "content") {
            if (!mv.is_null()) msg.content = content_of(f + ".content", mv);
            has_content = true;
          } else if (mk == "name") {
            only_default(f + ".name", mv, "", "(participant names)");
          } else {
            throw ApiError(400, "unknown field '" + f + "." + mk + "'", f + "." + mk);
          }
        }
        if (!has_role) throw ApiError(400, "'" + f + ".role' is missing", f + ".role");
        if (!has_content) throw ApiError(400, "'" + f + ".content' is missing", f + ".content");
        if (msg.role == "developer") msg.role = "system";  // OpenAI's newer name for it
        if (msg.role != "system" && msg.role != "user" && msg.role != "assistant")
          unsupported(f + ".role", "'" + msg.role + "' (system, user and assistant are)");
        r.messages.push_back(std::move(msg));
      }
    } else if (chat && k == "logprobs") {
      only_default(k, v, false, "(log probabilities)");
    } else if (chat && k == "top_logprobs") {
      only_default(k, v, 0, "(log probabilities)");
    } else if (chat && k == "response_format") {
      if (!v.is_null() && !(v.is_object() && v.size() == 1 && v.contains("type") && v["type"] == "text"))
        unsupported(k, "other than {\"type\": \"text\"}");
    } else if (chat && (k == "tools" || k == "functions")) {
      if (!v.is_null() && !(v.is_array() && v.empty())) unsupported(k, "(tool calls)");
    } else if (chat && (k == "tool_choice" || k == "function_call")) {
      only_default(k, v, "none", "(tool calls)");
    } else if (chat && k == "parallel_tool_calls") {
      if (!v.is_null()) boolean(k, v);  // meaningless without tools, which are refused
    } else {
      throw ApiError(400, "unknown field '" + k + "'", k, "unknown_parameter");
    }
  }
  if (!chat && !has_prompt) throw ApiError(400, "'prompt' is missing", "prompt");
  if (chat && !has_messages) throw ApiError(400, "'messages' is missing", "messages");
  if (stream_options && !r.stream) throw ApiError(400, "'stream_options' needs \"stream\": true", "stream_options");
  if (max_tokens && max_completion_tokens && *max_tokens != *max_completion_tokens)
    throw ApiError(400, "'max_tokens' and 'max_completion_tokens' differ: give one", "max_completion_tokens");
  if (max_completion_tokens) max_tokens = max_completion_tokens;
  if (max_tokens) r.max_tokens = int(*max_tokens);
  return r;
}

/// What make_job() needs to know about the server and its model.
struct JobContext {
  const RuntimeConfig* config = nullptr;
  int n_ctx = 0;
  const Tokenizer* tokenizer = nullptr;  // null: token-id prompts only
  const ChatFormat* chat_format = nullptr;
  std::string default_schedule = "none";    // for requests that name none
  int default_max_tokens_completions = 16;  // OpenAI's default for /v1/completions
};

/// The engine job for a validated request: the prompt's tokens (chat: through the model's
/// format), checked against the vocabulary and the context, max_tokens (default: 16 for
/// completions, the rest of the context for chat), the sampler, and the policy (LazyLLM with the
/// request's or the server's schedule; dense when that is empty). Throws ApiError.
inline JobSpec make_job(const ApiRequest& r, const JobContext& c) {
  JobSpec s;
  const int vocab = c.config->vocab_size;
  if (r.endpoint == Endpoint::ChatCompletions) {
    if (!c.tokenizer) throw ApiError(400, "this server's model has no tokenizer: use /v1/completions with token ids");
    try {
      s.prompt = c.chat_format->tokens(*c.tokenizer, r.messages);
    } catch (const InvalidArgument& e) {
      throw ApiError(400, e.what(), "messages");
    }
  } else if (r.prompt_text) {
    if (!c.tokenizer) throw ApiError(400, "this server's model has no tokenizer: give 'prompt' as token ids", "prompt");
    s.prompt = c.tokenizer->encode(*r.prompt_text, true);
  } else {
    for (const auto id : r.prompt_ids) {
      if (id >= vocab)
        throw ApiError(
            400, "token id " + std::to_string(id) + " is outside the vocabulary (0.." + std::to_string(vocab - 1) + ")",
            "prompt");
      s.prompt.push_back(std::int32_t(id));
    }
  }
  const std::int64_t n = std::int64_t(s.prompt.size());
  if (n >= c.n_ctx)
    throw ApiError(400,
                   "the prompt has " + std::to_string(n) + " tokens, and the context holds " + std::to_string(c.n_ctx) +
                       " (prompt and generated tokens together): shorten the prompt",
                   r.endpoint == Endpoint::ChatCompletions ? "messages" : "prompt", "context_length_exceeded");
  const std::int64_t room = c.n_ctx - n;
  if (r.max_tokens) {
    if (*r.max_tokens > room)
      throw ApiError(400,
                     "max_tokens " + std::to_string(*r.max_tokens) + " does not fit: the prompt has " +
                         std::to_string(n) + " tokens and the context holds " + std::to_string(c.n_ctx) + " (at most " +
                         std::to_string(room) + " more)",
                     "max_tokens", "context_length_exceeded");
    s.max_tokens = *r.max_tokens;
  } else {
    s.max_tokens = int(
        r.endpoint == Endpoint::Completions ? std::min<std::int64_t>(room, c.default_max_tokens_completions) : room);
  }
  s.sampling = r.sampling;
  try {
    s.sampling.validate();
  } catch (const InvalidArgument& e) {
    throw ApiError(400, e.what());
  }
  const std::string sched = r.schedule.value_or(c.default_schedule);
  try {
    const Schedule schedule = policy::schedule_from_string(sched, c.config->n_layers);
    if (schedule.empty())
      s.policy = policy::Dense{};
    else
      s.policy = policy::Lazy(schedule);
  } catch (const InvalidArgument& e) {
    throw ApiError(400, std::string("lazyllm.schedule: ") + e.what(), "lazyllm.schedule");
  }
  s.ignore_eos = r.ignore_eos;
  return s;
}

/// Generated tokens to text, piece by piece, for streaming: holds back bytes that may still
/// become a stop string or complete a UTF-8 character, and ends the text before the first stop
/// string.
class TextStream {
 public:
  TextStream(const Tokenizer* tok, std::int32_t last_prompt_token, std::vector<std::string> stop)
      : tok_(tok), prev_(last_prompt_token), stop_(std::move(stop)) {
    for (const auto& s : stop_) longest_stop_ = std::max(longest_stop_, s.size());
  }

  /// Adds a token; returns the text that may be sent now (maybe empty). After a stop string
  /// matched, stopped() is true and later tokens add nothing.
  std::string add(std::int32_t token) {
    if (stopped_) return {};
    ++tokens_;
    if (tok_) text_ += tok_->decode(prev_, token);
    prev_ = token;
    // A stop string can only start where it could not be seen complete before this token.
    const std::size_t from = checked_ > longest_stop_ ? checked_ - longest_stop_ : 0;
    std::size_t cut = std::string::npos;
    for (const auto& s : stop_) cut = std::min(cut, text_.find(s, from));
    if (cut != std::string::npos) {
      stopped_ = true;
      text_.resize(cut);
      return take(text_.size());
    }
    checked_ = text_.size();
    // Hold back a suffix that starts a stop string, and an incomplete UTF-8 character.
    std::size_t safe = text_.size();
    for (const auto& s : stop_)
      for (std::size_t k = std::min(s.size() - 1, text_.size()); k > 0; --k)
        if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
          safe = std::min(safe, text_.size() - k);
          break;
        }
    safe = utf8_boundary(safe);
    return safe > sent_ ? take(safe) : std::string{};
  }
  /// At the end: whatever was held back.
  std::string flush() { return take(text_.size()); }

  bool stopped() const { return stopped_; }
  /// Tokens added until the stop (the one completing a stop string included).
  int tokens() const { return tokens_; }
  const std::string& text() const { return text_; }

  /// The longest prefix of text_[0, n) that does not end inside a UTF-8 character.
  std::size_t utf8_boundary(std::size_t n) const {
    std::size_t i = n, back = 0;
    while (i > sent_ && back < 4) {
      const unsigned char c = static_cast<unsigned char>(text_[i - 1]);
      if ((c & 0xC0) != 0x80) {  // a lead byte (or ASCII): is its character complete?
        const std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
        return back + 1 >= len ? n : i - 1;
      }
      --i, ++back;
    }
    return n;
  }

 private:
  std::string take(std::size_t upto) {
    if (upto <= sent_) return {};
    std::string out = text_.substr(sent_, upto - sent_);
    sent_ = upto;
    return out;
  }

  const Tokenizer* tok_;
  std::int32_t prev_;
  std::vector<std::string> stop_;
  std::size_t longest_stop_ = 0;
  std::string text_;
  std::size_t sent_ = 0, checked_ = 0;
  int tokens_ = 0;
  bool stopped_ = false;
};

}  // namespace lazyllm::server
