// SPDX-License-Identifier: MIT
#include "http.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <httplib.h>

#include "api.hpp"

namespace lazyllm::server {
namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

/// Equal strings, in time that does not depend on where they differ.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char d = a.size() == b.size() ? 0 : 1;
  const std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i)
    d |= static_cast<unsigned char>((i < a.size() ? a[i] : 0) ^ (i < b.size() ? b[i] : 0));
  return d == 0;
}

int port_of(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  return -1;
}

std::string address_of(const sockaddr_storage& a) {
  char b[INET6_ADDRSTRLEN] = "";
  if (a.ss_family == AF_INET) ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(a).sin_addr, b, sizeof b);
  if (a.ss_family == AF_INET6) ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(a).sin6_addr, b, sizeof b);
  return b;
}

/// The socket of the connection `req` came on (its ports), or -1. cpp-httplib does not hand the
/// socket to handlers; a handler needs it to see a client hang up while it waits for tokens.
int connection_fd(const httplib::Request& req) {
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return -1;
  int found = -1;
  while (const dirent* e = ::readdir(d)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (*end || fd < 0) continue;
    struct stat st;
    if (::fstat(int(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage peer{}, local{};
    socklen_t pl = sizeof peer, ll = sizeof local;
    if (::getpeername(int(fd), reinterpret_cast<sockaddr*>(&peer), &pl) != 0) continue;
    if (::getsockname(int(fd), reinterpret_cast<sockaddr*>(&local), &ll) != 0) continue;
    if (port_of(peer) == req.remote_port && port_of(local) == req.local_port && address_of(peer) == req.remote_addr) {
      found = int(fd);
      break;
    }
  }
  ::closedir(d);
  return found;
}

std::string new_id(const char* prefix) {
  static std::atomic<std::uint64_t> counter{0};
  static const std::uint64_t salt = std::random_device{}();
  char b[64];
  std::snprintf(b, sizeof b, "%s-%" PRIx64 "%06" PRIx64, prefix, salt & 0xffffff, counter++);
  return b;
}

const char* finish_text(Finish f) { return f == Finish::Length ? "length" : "stop"; }

json usage_json(int prompt, int completion, const JobStats& s) {
  auto frac = [](std::int64_t a, std::int64_t b) { return b > 0 ? double(a) / double(b) : 1.0; };
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"lazyllm",
           {{"ttft_ms", s.ttft_ms >= 0 ? json(s.ttft_ms) : json(nullptr)},
            {"queue_ms", s.queue_ms},
            {"e2e_ms", s.e2e_ms},
            {"policy", s.policy},
            {"prefill_token_layers_fraction", frac(s.prefill_token_layers, s.prefill_dense_token_layers)},
            {"token_layers_fraction", frac(s.token_layers, s.dense_token_layers)},
            {"revivals", s.revivals},
            {"preemptions", s.preemptions}}}};
}

}  // namespace

struct HttpServer::Impl {
  Service& service;
  ServedModel model;
  HttpOptions opt;
  JobContext ctx;
  httplib::Server svr;
  std::time_t started = std::time(nullptr);

  Impl(Service& s, ServedModel m, HttpOptions o) : service(s), model(std::move(m)), opt(std::move(o)) {
    ctx.config = &service.config();
    ctx.n_ctx = service.n_ctx();
    ctx.tokenizer = model.tokenizer ? &*model.tokenizer : nullptr;
    ctx.chat_format = model.chat ? &*model.chat : nullptr;
    ctx.default_schedule = model.default_schedule;
    routes();
  }

  static void send_error(httplib::Response& res, int status, const std::string& message, const std::string& param = {},
                         const std::string& code = {}) {
    res.status = status;
    res.set_content(dump(ApiError::error_body(status, message, param, code)), "application/json");
  }

  /// Runs a handler body; ApiError becomes its status and error object, anything else a 500.
  template <class F>
  static void guarded(httplib::Response& res, F&& f) {
    try {
      f();
    } catch (const ApiError& e) {
      res.status = e.status();
      res.set_content(dump(e.body()), "application/json");
    } catch (const std::exception& e) {
      send_error(res, 500, std::string("internal error: ") + e.what());
    }
  }

  bool authorised(const httplib::Request& req) const {
    if (opt.api_key.empty()) return true;
    const std::string h = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (h.size() < kBearer.size() || h.compare(0, kBearer.size(), kBearer) != 0) return false;
    return same_secret(std::string_view(h).substr(kBearer.size()), opt.api_key);
  }

  void routes() {
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (req.path == "/" || req.path == "/index.html" || req.path == "/health" || authorised(req))
        return httplib::Server::HandlerResponse::Unhandled;
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(
          res, 401,
          req.has_header("Authorization") ? "invalid API key" : "an API key is required (Authorization: Bearer KEY)",
          {}, "invalid_api_key");
      return httplib::Server::HandlerResponse::Handled;
    });
    // Errors cpp-httplib makes itself (404, 413, 400 for unreadable requests) get an error object too.
    svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string msg;
      if (res.status == 404)
        msg = "no such endpoint: " + req.method + " " + req.path;
      else if (res.status == 413)
        msg = "the request body is too large";
      else if (res.status == 400)
        msg = "the HTTP request could not be read";
      else
        msg = "HTTP error " + std::to_string(res.status);
      send_error(res, res.status, msg);
    });
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(res, 500, "internal error: " + what);
    });

    svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(kChatPage, "text/html; charset=utf-8");
    });
    svr.Get("/index.html", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(kChatPage, "text/html; charset=utf-8");
    });
    svr.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      const RuntimeConfig& c = service.config();
      json m = {{"id", model.id},
                {"object", "model"},
                {"created", started},
                {"owned_by", "lazyllm"},
                {"lazyllm",
                 {{"path", model.path},
                  {"n_ctx", service.n_ctx()},
                  {"n_layers", c.n_layers},
                  {"vocab_size", c.vocab_size},
                  {"backend", service.backend_name()},
                  {"chat_format", model.chat ? json(model.chat->name) : json(nullptr)},
                  {"default_schedule", model.default_schedule}}}};
      res.set_content(dump({{"object", "list"}, {"data", json::array({m})}}), "application/json");
    });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_text(), "text/plain; version=0.0.4");
    });
    svr.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { tokenize(req, res); });
    });
    svr.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { detokenize(req, res); });
    });
    svr.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { generate(req, res, Endpoint::Completions); });
    });
    svr.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { generate(req, res, Endpoint::ChatCompletions); });
    });
  }

  static json object_body(const httplib::Request& req) {
    if (detail::json_depth(req.body, 32) > 32) throw ApiError(400, "the request's JSON is nested too deeply");
    json j;
    try {
      j = json::parse(req.body);
    } catch (const json::exception& e) {
      throw ApiError(400, std::string("malformed JSON: ") + e.what());
    }
    if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
    return j;
  }

  const Tokenizer& tokenizer() const {
    if (!model.tokenizer) throw ApiError(400, "this server's model has no tokenizer");
    return *model.tokenizer;
  }

  void tokenize(const httplib::Request& req, httplib::Response& res) {
    const json j = object_body(req);
    std::string content;
    bool add_special = false, has_content = false;
    for (const auto& [k, v] : j.items()) {
      if (k == "content")
        content = detail::string(k, v), has_content = true;
      else if (k == "add_special")
        add_special = detail::boolean(k, v);
      else
        throw ApiError(400, "unknown field '" + k + "' (known: content, add_special)", k);
    }
    if (!has_content) throw ApiError(400, "'content' is missing", "content");
    res.set_content(dump({{"tokens", tokenizer().encode(content, add_special)}}), "application/json");
  }

  void detokenize(const httplib::Request& req, httplib::Response& res) {
    const json j = object_body(req);
    std::vector<std::int32_t> ids;
    bool has = false;
    const int vocab = service.config().vocab_size;
    for (const auto& [k, v] : j.items()) {
      if (k != "tokens") throw ApiError(400, "unknown field '" + k + "' (known: tokens)", k);
      if (!v.is_array()) detail::wrong_type(k, v, "an array of token ids");
      for (std::size_t i = 0; i < v.size(); ++i)
        ids.push_back(std::int32_t(detail::integer("tokens[" + std::to_string(i) + "]", v[i], 0, vocab - 1)));
      has = true;
    }
    if (!has) throw ApiError(400, "'tokens' is missing", "tokens");
    res.set_content(dump({{"content", tokenizer().decode(ids)}}), "application/json");
  }

  std::string metrics_text() const {
    const Metrics m = service.metrics();
    std::ostringstream o;
    auto metric = [&](const char* name, const char* type, const char* help, auto value) {
      o << "# HELP lazyllm_" << name << ' ' << help << "\n# TYPE lazyllm_" << name << ' ' << type << "\nlazyllm_"
        << name << ' ' << value << '\n';
    };
    metric("requests_running", "gauge", "Requests in the engine now.", m.running);
    metric("requests_waiting", "gauge", "Requests queued for the engine.", m.waiting);
    metric("requests_finished_total", "counter", "Requests that ended at a stop token, a stop string or their length.",
           m.requests_finished);
    metric("requests_cancelled_total", "counter", "Requests dropped because their client left.", m.requests_cancelled);
    metric("requests_failed_total", "counter", "Requests that ended with a server error.", m.requests_failed);
    metric("requests_rejected_total", "counter", "Requests refused at admission (queue full, larger than the pool).",
           m.requests_rejected);
    metric("prompt_tokens_total", "counter", "Prompt tokens prefilled (re-prefills after a preemption included).",
           m.prompt_tokens);
    metric("generation_tokens_total", "counter", "Tokens generated and sent.", m.generated_tokens);
    metric("prompt_tokens_per_second", "gauge", "Prompt tokens prefilled per second over the last window.",
           m.prompt_tokens_per_s);
    metric("generation_tokens_per_second", "gauge", "Tokens generated per second over the last window.",
           m.generated_tokens_per_s);
    metric("rate_window_seconds", "gauge", "The window of the per-second rates.", m.rate_window_s);
    metric("token_layers_computed_total", "counter", "Token-layers the model computed (LazyLLM skips pruned ones).",
           m.token_layers);
    metric("token_layers_dense_total", "counter", "Token-layers a dense model would have computed for the same tokens.",
           m.dense_token_layers);
    metric("pool_blocks_total", "gauge", "KV/Aux blocks in the pool.", m.pool_blocks_total);
    metric("pool_blocks_used", "gauge", "KV/Aux blocks held by sequences.", m.pool_blocks_used);
    metric("pool_blocks_free", "gauge", "KV/Aux blocks free.", m.pool_blocks_total - m.pool_blocks_used);
    metric("pool_blocks_peak", "gauge", "Most blocks held at once.", m.pool_blocks_peak);
    metric("pool_bytes", "gauge", "Bytes of the pool's arena.", m.pool_bytes);
    metric("steps_total", "counter", "Engine steps.", m.steps);
    metric("preemptions_total", "counter", "Requests taken out of the engine to make room (and replayed later).",
           m.preemptions);
    metric("cancel_delay_steps_max", "gauge",
           "Most steps a cancelled request still took part in after its cancel was seen (0 or 1: within one step).",
           m.cancel_delay_steps_max);
    return o.str();
  }

  json chunk(const std::string& id, bool chat, const std::string& text, const char* finish, bool first) const {
    json choice = {{"index", 0}, {"finish_reason", finish ? json(finish) : json(nullptr)}};
    if (chat) {
      json delta = json::object();
      if (first) delta["role"] = "assistant";
      if (first || !text.empty() || !finish) delta["content"] = text;
      choice["delta"] = delta;
      choice["logprobs"] = nullptr;
    } else {
      choice["text"] = text;
      choice["logprobs"] = nullptr;
    }
    return {{"id", id},
            {"object", chat ? "chat.completion.chunk" : "text_completion"},
            {"created", std::time(nullptr)},
            {"model", model.id},
            {"choices", json::array({choice})}};
  }

  /// Waits (bounded) for a job that was asked to cancel to finish, for its statistics.
  static void wait_finished(const Job& job) {
    const auto until = Clock::now() + std::chrono::seconds(30);
    while (job.finish_reason() == Finish::None && Clock::now() < until) job.wait(-1, 100);
  }

  void generate(const httplib::Request& req, httplib::Response& res, Endpoint ep) {
    const ApiRequest r = parse_request(req.body, ep);
    if (!r.model.empty() && r.model != model.id)
      throw ApiError(404, "the model '" + r.model + "' is not served here (this server serves '" + model.id + "')",
                     "model", "model_not_found");
    auto job = std::make_shared<Job>(make_job(r, ctx));
    const Admission a = service.submit(job);
    if (a.status == Admission::QueueFull || a.status == Admission::ShuttingDown) {
      res.set_header("Retry-After", "1");
      throw ApiError(503, a.message, {}, a.status == Admission::QueueFull ? "queue_full" : "shutting_down");
    }
    if (a.status == Admission::TooLarge) throw ApiError(400, a.message, "max_tokens", "pool_too_small");
    const bool chat = ep == Endpoint::ChatCompletions;
    const std::string id = new_id(chat ? "chatcmpl" : "cmpl");
    const int fd = connection_fd(req);
    const int n_prompt = int(job->spec.prompt.size());
    const Tokenizer* tok = ctx.tokenizer;
    if (!r.stream) {
      TextStream ts(tok, job->spec.prompt.back(), r.stop);
      std::vector<std::int32_t> toks;
      std::string text;
      for (;;) {
        const bool done = job->read(toks.size(), toks);
        for (std::size_t i = std::size_t(ts.tokens()); i < toks.size() && !ts.stopped(); ++i) text += ts.add(toks[i]);
        if (ts.stopped()) {  // a stop string: the rest is not wanted
          service.cancel(job);
          wait_finished(*job);
          break;
        }
        if (done) {
          text += ts.flush();
          break;
        }
        if (job->wait(fd, 1000) == Job::Wake::Disconnected) {  // nobody to answer: free the sequence now
          service.cancel(job);
          res.status = 499;
          return;
        }
      }
      const Finish f = job->finish_reason();
      if (f == Finish::Error || (f == Finish::Cancelled && !ts.stopped()))
        throw ApiError(job->error_status() ? job->error_status() : 500,
                       job->error().empty() ? "cancelled" : job->error());
      const int completion = ts.stopped() ? ts.tokens() : int(toks.size());
      const char* finish = ts.stopped() ? "stop" : finish_text(f);
      json choice = {{"index", 0}, {"finish_reason", finish}, {"logprobs", nullptr}};
      if (chat)
        choice["message"] = {{"role", "assistant"}, {"content", text}};
      else
        choice["text"] = text;
      const json out = {{"id", id},
                        {"object", chat ? "chat.completion" : "text_completion"},
                        {"created", std::time(nullptr)},
                        {"model", model.id},
                        {"choices", json::array({choice})},
                        {"usage", usage_json(n_prompt, completion, job->stats())}};
      res.set_content(dump(out), "application/json");
      return;
    }

    // Streaming: one server-sent event per generated token, then the finish, usage and [DONE].
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    auto ts = std::make_shared<TextStream>(tok, job->spec.prompt.back(), r.stop);
    const bool usage = r.include_usage;
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, job, ts, fd, id, chat, usage, n_prompt](std::size_t, httplib::DataSink& sink) {
          auto send = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
          auto event = [&](const json& j) { return send("data: " + dump(j) + "\n\n"); };
          bool first = true;
          std::vector<std::int32_t> toks;
          if (chat) {
            if (!event(chunk(id, true, "", nullptr, true))) return service.cancel(job), false;
            first = false;
          }
          for (;;) {
            const bool done = job->read(toks.size(), toks);
            for (std::size_t i = std::size_t(ts->tokens()); i < toks.size() && !ts->stopped(); ++i) {
              const std::string delta = ts->add(toks[i]);
              if (ts->stopped() && delta.empty()) break;
              if (!event(chunk(id, chat, delta, nullptr, first))) return service.cancel(job), false;
              first = false;
            }
            if (ts->stopped()) {
              service.cancel(job);
              wait_finished(*job);
              break;
            }
            if (done) break;
            if (job->wait(fd, 1000) == Job::Wake::Disconnected) return service.cancel(job), false;
          }
          const Finish f = job->finish_reason();
          if (f == Finish::Error || (f == Finish::Cancelled && !ts->stopped())) {
            const int status = job->error_status() ? job->error_status() : 500;
            event(ApiError::error_body(status, job->error().empty() ? "cancelled" : job->error()));
          } else {
            if (!event(chunk(id, chat, ts->flush(), ts->stopped() ? "stop" : finish_text(f), first)))
              return service.cancel(job), false;
            if (usage) {
              const int completion = ts->stopped() ? ts->tokens() : int(toks.size());
              json u = chunk(id, chat, "", nullptr, false);
              u["choices"] = json::array();
              u["usage"] = usage_json(n_prompt, completion, job->stats());
              if (!event(u)) return false;
            }
          }
          send("data: [DONE]\n\n");
          sink.done();
          return true;
        },
        [this, job](bool) {
          if (job->finish_reason() == Finish::None) service.cancel(job);  // never streamed, or cut off
        });
  }
};

HttpServer::HttpServer(Service& service, ServedModel model, HttpOptions options)
    : impl_(std::make_unique<Impl>(service, std::move(model), std::move(options))) {
  auto& svr = impl_->svr;
  const HttpOptions& o = impl_->opt;
  const int threads = std::max(4, o.threads);
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(std::size_t(threads)); };
  svr.set_payload_max_length(o.max_body);
  svr.set_read_timeout(o.timeout_s, 0);
  svr.set_write_timeout(o.timeout_s, 0);
  svr.set_tcp_nodelay(true);  // tokens go out as they come
  // SO_REUSEADDR only: cpp-httplib's default also sets SO_REUSEPORT, which would let a second
  // server bind the same port and silently take half of its connections.
  svr.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof yes);
  });
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  auto& svr = impl_->svr;
  const HttpOptions& o = impl_->opt;
  int port = o.port;
  if (port == 0) {
    port = svr.bind_to_any_port(o.host);
    if (port < 0) throw Error("cannot listen on " + o.host + " (any port)");
  } else if (!svr.bind_to_port(o.host, port)) {
    throw Error("cannot listen on " + o.host + ":" + std::to_string(port) +
                " (in use, or not an address of this machine)");
  }
  return port;
}

void HttpServer::run() { impl_->svr.listen_after_bind(); }
void HttpServer::stop() {
  if (impl_ && impl_->svr.is_running()) impl_->svr.stop();
}

}  // namespace lazyllm::server
