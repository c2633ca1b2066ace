// SPDX-License-Identifier: MIT
// The HTTP face of the server (cpp-httplib): the OpenAI-compatible endpoints, /health, /metrics,
// /tokenize, /detokenize and the chat page, over a Service. Compiled once, for every backend.
#pragma once
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "chat_format.hpp"
#include "lazyllm/text/tokenizer.hpp"
#include "service.hpp"

namespace lazyllm::server {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0: any free port (bind() says which)
  std::string api_key;              // non-empty: every endpoint but / and /health wants it
  int timeout_s = 600;              // socket read/write timeout
  std::size_t max_body = 8u << 20;  // larger request bodies get 413
  int threads = 0;                  // handler threads (0: enough for parallel + queue + 16)
};

/// The model as the API shows it.
struct ServedModel {
  std::string id;  // "model" in requests and responses
  std::string path;
  std::optional<Tokenizer> tokenizer;  // none: token-id prompts only, no chat
  std::optional<ChatFormat> chat;      // with a tokenizer
  std::string default_schedule = "none";
};

class HttpServer {
 public:
  HttpServer(Service& service, ServedModel model, HttpOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds the listening socket; returns the port. Throws Error when it cannot.
  int bind();
  /// Serves until stop() (from any thread).
  void run();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The chat page served at / (page.html, embedded at build time).
extern const char* const kChatPage;

}  // namespace lazyllm::server
