// SPDX-License-Identifier: MIT
// lazyllm-bench-serving: a serving benchmark in the habit of vLLM's benchmark_serving. A trace of
// requests (random prompt ids of --input-len tokens, --output-len tokens each, Poisson arrivals
// at --request-rate) goes to a lazyllm-server through streaming clients, and, with --offline,
// the same trace straight through the engine in this process; reported: TTFT, time per output
// token, inter-token latency and end-to-end percentiles, throughput, and the server's overhead
// against the offline engine. Usage: lazyllm-bench-serving -h
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "../../examples/common/cli.hpp"
#include "../../examples/common/synthetic.hpp"
#include "factory.hpp"
#include "lazyllm/io/load.hpp"
#include "lazyllm/policy/lazy.hpp"

namespace {

using namespace lazyllm;
using namespace lazyllm::server;
using cli::UsageError;
using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

const char* kUsage = R"(usage: lazyllm-bench-serving [options]

Serving benchmark (vLLM's benchmark_serving habit): streaming clients send a trace of requests
(random prompt token ids, a fixed output length, Poisson arrivals) to lazyllm-server; --offline
runs the same trace through the engine in this process, and the difference is the server's own
overhead. Each schedule and rate is one run; the server runs come first, then the offline ones.

where
  --url URL             a running lazyllm-server
  --server PATH         start this lazyllm-server on a free port with the model options below
                        (stopped before the offline runs)
  --offline             the same traces through the engine in this process (needs -m or
                        --synthetic)
model (for --server and --offline)
  -m PATH               llama2.c .bin or Hugging Face directory
  --synthetic SHAPE     random weights of a real shape: llama2-7b, llama2-13b, tiny
  --backend B           cpu | cuda (default cpu)
  --precision P         (cuda) bf16 | fp16 | fp32 (default bf16)
  -np, --parallel N     requests in the engine at once (default 16)
  -c N                  tokens per request (default: input + output length)
  --kv-blocks N, --pool-mb MB   the block pool (default: the server's)
  -b, --batch-size N    most tokens per engine step (default 8192)
  --server-arg ARG      one more argument for the server (repeatable)
trace
  --num-prompts N       requests per run (default 32)
  --request-rate R,...  requests per second, Poisson; inf = all at once (default inf)
  --max-concurrency N   clients in flight at most (default: no limit)
  --input-len N         prompt tokens (default 256)
  --output-len N        generated tokens per request, EOS ignored (default 32)
  --schedule S          LazyLLM schedule of every request, or none (dense); repeat for several
                        (default: none)
  --seed S              trace seed (default 0)
  --warmup N            requests before each run, not measured (default 2)
output
  -o md|json            stdout format (default md)
  --json FILE           also write the JSON there
  --api-key KEY         for --url
  --timeout S           per request (default 600)
  -h, --help            this text
Example (CPU, the demo model; CI runs this):
  lazyllm-bench-serving --server build/examples/server/lazyllm-server -m models/lazyqa \
      --offline --input-len 64 --output-len 8 --num-prompts 8 --request-rate 20,inf \
      --schedule none --schedule 3:0.3,5:0.5
)";

struct Options {
  std::string url, server, model, synthetic, backend = "cpu", precision = "bf16", api_key;
  bool offline = false;
  int parallel = 16, n_ctx = 0, step_tokens = 8192;
  std::int64_t kv_blocks = 0;
  double pool_mb = 0;
  std::vector<std::string> server_args;
  int num_prompts = 32, max_concurrency = 0, input_len = 256, output_len = 32, warmup = 2;
  std::vector<double> rates{std::numeric_limits<double>::infinity()};
  std::vector<std::string> schedules;
  std::uint64_t seed = 0;
  std::string format = "md", json_file;
  int timeout_s = 600;
};

double parse_double(const std::string& flag, const std::string& v) {
  if (v == "inf") return std::numeric_limits<double>::infinity();
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || !(d > 0)) throw UsageError(flag + ": '" + v + "' is not a positive number or inf");
  return d;
}

Options parse_args(int argc, char** argv) {
  Options o;
  auto num = [](const std::string& f, const std::string& v, long long min) { return cli::parse_int(f, v, min); };
  for (cli::Args a(argc, argv); a.next();) {
    const std::string f = a.flag();
    if (f == "-h" || f == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (f == "--url")
      o.url = a.value();
    else if (f == "--server")
      o.server = a.value();
    else if (f == "--offline")
      o.offline = true;
    else if (f == "-m")
      o.model = a.value();
    else if (f == "--synthetic")
      o.synthetic = a.value();
    else if (f == "--backend")
      o.backend = a.value();
    else if (f == "--precision")
      o.precision = a.value();
    else if (f == "-np" || f == "--parallel")
      o.parallel = int(num(f, a.value(), 1));
    else if (f == "-c")
      o.n_ctx = int(num(f, a.value(), 1));
    else if (f == "--kv-blocks")
      o.kv_blocks = num(f, a.value(), 1);
    else if (f == "--pool-mb")
      o.pool_mb = double(num(f, a.value(), 1));
    else if (f == "-b" || f == "--batch-size")
      o.step_tokens = int(num(f, a.value(), 0));
    else if (f == "--server-arg")
      o.server_args.push_back(a.value());
    else if (f == "--num-prompts")
      o.num_prompts = int(num(f, a.value(), 1));
    else if (f == "--request-rate") {
      o.rates.clear();
      std::string v = a.value();
      for (std::size_t b = 0; b <= v.size();) {
        const auto e = std::min(v.find(',', b), v.size());
        o.rates.push_back(parse_double(f, v.substr(b, e - b)));
        b = e + 1;
      }
    } else if (f == "--max-concurrency")
      o.max_concurrency = int(num(f, a.value(), 1));
    else if (f == "--input-len")
      o.input_len = int(num(f, a.value(), 1));
    else if (f == "--output-len")
      o.output_len = int(num(f, a.value(), 1));
    else if (f == "--schedule")
      o.schedules.push_back(a.value());
    else if (f == "--seed")
      o.seed = std::uint64_t(num(f, a.value(), 0));
    else if (f == "--warmup")
      o.warmup = int(num(f, a.value(), 0));
    else if (f == "-o")
      o.format = a.value();
    else if (f == "--json")
      o.json_file = a.value();
    else if (f == "--api-key")
      o.api_key = a.value();
    else if (f == "--timeout")
      o.timeout_s = int(num(f, a.value(), 1));
    else
      throw UsageError("unknown option '" + f + "' (see -h)");
  }
  if (o.url.empty() && o.server.empty() && !o.offline) throw UsageError("give --url, --server or --offline (see -h)");
  if (!o.url.empty() && !o.server.empty()) throw UsageError("--url and --server are alternatives: give one");
  if ((!o.server.empty() || o.offline) && o.model.empty() == o.synthetic.empty())
    throw UsageError("--server and --offline need the model: give -m or --synthetic (one of them)");
  if (o.backend != "cpu" && o.backend != "cuda") throw UsageError("--backend '" + o.backend + "' is not cpu or cuda");
  if (o.format != "md" && o.format != "json") throw UsageError("-o '" + o.format + "' is not md or json");
  if (o.kv_blocks > 0 && o.pool_mb > 0) throw UsageError("--kv-blocks and --pool-mb are alternatives");
  if (o.schedules.empty()) o.schedules.push_back("none");
  if (o.n_ctx == 0) o.n_ctx = o.input_len + o.output_len;
  return o;
}

// ------------------------------------------------------------------ the trace

std::vector<TraceRequest> make_trace(const Options& o, double rate, int vocab, const policy::AnyPolicy& pol,
                                     std::uint64_t seed, int n) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int32_t> tok(3, vocab - 1);
  std::exponential_distribution<double> gap(std::isinf(rate) ? 1.0 : rate);
  std::vector<TraceRequest> t(static_cast<std::size_t>(n));
  double at = 0;
  for (auto& r : t) {
    r.prompt.assign(1, 1);  // BOS, then random ids
    while (int(r.prompt.size()) < o.input_len) r.prompt.push_back(tok(rng));
    r.output_len = o.output_len;
    r.policy = pol;
    r.arrival_s = at;
    if (!std::isinf(rate)) at += gap(rng);
  }
  return t;
}

policy::AnyPolicy policy_of(const std::string& schedule, int n_layers) {
  const Schedule s = policy::schedule_from_string(schedule, n_layers);
  return s.empty() ? policy::AnyPolicy(policy::Dense{}) : policy::AnyPolicy(policy::Lazy(s));
}

// ------------------------------------------------------------------ the server side

struct Url {
  std::string host;
  int port = 80;
};
Url parse_url(const std::string& u) {
  std::string s = u;
  if (s.rfind("http://", 0) == 0) s = s.substr(7);
  while (!s.empty() && s.back() == '/') s.pop_back();
  const auto c = s.rfind(':');
  if (c == std::string::npos) return {s, 80};
  return {s.substr(0, c), int(cli::parse_int("--url", s.substr(c + 1), 1))};
}

/// A lazyllm-server child process on a free port.
class ServerProcess {
 public:
  ServerProcess(const std::string& exe, std::vector<std::string> args) {
    int fds[2];
    if (::pipe(fds) != 0) throw Error("pipe failed");
    pid_ = ::fork();
    if (pid_ < 0) throw Error("fork failed");
    if (pid_ == 0) {
      ::dup2(fds[1], 2);
      ::close(fds[0]);
      ::close(fds[1]);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(exe.c_str()));
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(exe.c_str(), argv.data());
      std::fprintf(stderr, "lazyllm-bench-serving: cannot run %s\n", exe.c_str());
      ::_exit(127);
    }
    ::close(fds[1]);
    // Its stderr goes on to ours; the "listening on" line gives the port.
    reader_ = std::thread([this, fd = fds[0]] {
      std::string line;
      char c;
      while (::read(fd, &c, 1) == 1) {
        if (c != '\n') {
          line += c;
          continue;
        }
        std::fprintf(stderr, "  [server] %s\n", line.c_str());
        const auto p = line.find("listening on http://");
        if (p != std::string::npos) {
          std::lock_guard<std::mutex> l(mu_);
          url_ = line.substr(p + 13);
          cv_.notify_all();
        }
        line.clear();
      }
      ::close(fd);
      std::lock_guard<std::mutex> l(mu_);
      exited_ = true;
      cv_.notify_all();
    });
  }
  ~ServerProcess() { stop(); }

  /// The server's URL once it listens (it may load a model first: up to `seconds`).
  std::string wait_url(int seconds) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, std::chrono::seconds(seconds), [&] { return !url_.empty() || exited_; });
    if (url_.empty()) throw Error("the server did not start listening (see its messages above)");
    return url_;
  }
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st = 0;
      for (int i = 0; i < 300 && ::waitpid(pid_, &st, WNOHANG) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (::waitpid(pid_, &st, WNOHANG) == 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &st, 0);
      }
      pid_ = -1;
    }
    if (reader_.joinable()) reader_.join();
  }

 private:
  pid_t pid_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string url_;
  bool exited_ = false;
};

httplib::Headers auth_headers(const Options& o) {
  httplib::Headers h{{"Content-Type", "application/json"}};
  if (!o.api_key.empty()) h.emplace("Authorization", "Bearer " + o.api_key);
  return h;
}

/// The served model's id, vocabulary and depth (GET /v1/models).
struct ServedInfo {
  std::string id;
  int vocab = 0, n_layers = 0;
};
ServedInfo served_info(const Url& u, const Options& o) {
  httplib::Client cli(u.host, u.port);
  cli.set_read_timeout(30, 0);
  auto r = cli.Get("/v1/models", auth_headers(o));
  if (!r || r->status != 200)
    throw Error("GET /v1/models failed" + (r ? ": HTTP " + std::to_string(r->status) : std::string()));
  const json j = json::parse(r->body);
  const json& m = j.at("data").at(0);
  return {m.at("id").get<std::string>(), m.at("lazyllm").at("vocab_size").get<int>(),
          m.at("lazyllm").at("n_layers").get<int>()};
}

/// One streamed request: token arrival times as the client sees them.
RequestTiming one_request(const Url& u, const Options& o, const std::string& model, const TraceRequest& r,
                          const std::string& schedule, SteadyClock::time_point t0) {
  RequestTiming t;
  t.prompt_tokens = int(r.prompt.size());
  auto now = [&] { return std::chrono::duration<double>(SteadyClock::now() - t0).count(); };
  json body = {{"model", model},
               {"prompt", r.prompt},
               {"max_tokens", r.output_len},
               {"temperature", 0},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}},
               {"lazyllm", {{"schedule", schedule}, {"ignore_eos", true}}}};
  httplib::Client cli(u.host, u.port);
  cli.set_read_timeout(o.timeout_s, 0);
  cli.set_write_timeout(o.timeout_s, 0);
  cli.set_connection_timeout(30, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.headers = auth_headers(o);
  req.body = body.dump();
  std::string buf;
  bool done = false;
  req.content_receiver = [&](const char* data, std::size_t n, std::uint64_t, std::uint64_t) {
    const double at = now();
    buf.append(data, n);
    std::size_t cut;
    while ((cut = buf.find("\n\n")) != std::string::npos) {
      const std::string ev = buf.substr(0, cut);
      buf.erase(0, cut + 2);
      if (ev.rfind("data: ", 0) != 0) continue;
      const std::string payload = ev.substr(6);
      if (payload == "[DONE]") {
        done = true;
        continue;
      }
      const json j = json::parse(payload, nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("error")) t.error = j["error"].value("message", "error event");
      if (j.contains("usage") && j["usage"].is_object()) {
        const json& x = j["usage"].value("lazyllm", json::object());
        t.prefill_fraction = x.value("prefill_token_layers_fraction", -1.0);
        t.preemptions = x.value("preemptions", 0);
      }
      if (j.contains("choices"))
        for (const auto& c : j["choices"])
          if (c.value("finish_reason", json(nullptr)).is_null()) {  // one event per generated token
            if (t.first < 0) t.first = at;
            t.last = at;
            t.token_times.push_back(at);
            ++t.tokens;
          }
    }
    return true;
  };
  t.sent = now();
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  const bool sent = cli.send(req, res, err);
  if (!sent)
    t.error = "HTTP client error " + httplib::to_string(err);
  else if (res.status != 200)
    t.error = "HTTP " + std::to_string(res.status) + " " + buf + res.body;
  t.ok = t.error.empty() && done && t.tokens == r.output_len;
  if (t.error.empty() && !t.ok)
    t.error = "got " + std::to_string(t.tokens) + " of " + std::to_string(r.output_len) + " tokens" +
              (done ? "" : ", no [DONE]");
  return t;
}

/// The trace against the server: each request sent at its arrival time by a client of its own.
std::vector<RequestTiming> run_clients(const Url& u, const Options& o, const std::string& model,
                                       const std::vector<TraceRequest>& trace, const std::string& schedule) {
  std::vector<RequestTiming> out(trace.size());
  std::vector<std::thread> clients;
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  const auto t0 = SteadyClock::now();
  for (std::size_t i = 0; i < trace.size(); ++i) {
    std::this_thread::sleep_until(
        t0 + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(trace[i].arrival_s)));
    if (o.max_concurrency > 0) {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return in_flight < o.max_concurrency; });
    }
    {
      std::lock_guard<std::mutex> l(mu);
      ++in_flight;
    }
    clients.emplace_back([&, i] {
      out[i] = one_request(u, o, model, trace[i], schedule, t0);
      std::lock_guard<std::mutex> l(mu);
      --in_flight;
      cv.notify_all();
    });
  }
  for (auto& c : clients) c.join();
  return out;
}

// ------------------------------------------------------------------ the summary

double percentile(std::vector<double> v, double p) {  // linear between closest ranks (numpy's default)
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const double x = p / 100.0 * double(v.size() - 1);
  const auto lo = std::size_t(std::floor(x)), hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (v[hi] - v[lo]) * (x - double(lo));
}
double mean(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

json summarize(const std::string& mode, const std::string& schedule, double rate, const std::vector<RequestTiming>& t) {
  std::vector<double> ttft, tpot, itl, e2e, frac;
  double begin = std::numeric_limits<double>::infinity(), end = 0;
  long long in = 0, out = 0;
  int ok = 0, preempted = 0;
  std::string first_error;
  for (const auto& r : t) {
    begin = std::min(begin, r.sent);
    if (!r.ok) {
      if (first_error.empty()) first_error = r.error;
      continue;
    }
    ++ok;
    end = std::max(end, r.last);
    in += r.prompt_tokens;
    out += r.tokens;
    ttft.push_back(1000 * (r.first - r.sent));
    e2e.push_back(1000 * (r.last - r.sent));
    if (r.tokens > 1) tpot.push_back(1000 * (r.last - r.first) / double(r.tokens - 1));
    for (std::size_t k = 1; k < r.token_times.size(); ++k)
      itl.push_back(1000 * (r.token_times[k] - r.token_times[k - 1]));
    if (r.prefill_fraction >= 0) frac.push_back(r.prefill_fraction);
    preempted += r.preemptions;
  }
  const double dur = ok ? end - begin : 0;
  auto num = [](double v) { return std::isnan(v) || std::isinf(v) ? json(nullptr) : json(v); };
  return {{"mode", mode},
          {"schedule", schedule},
          {"request_rate", std::isinf(rate) ? json("inf") : json(rate)},
          {"requests", t.size()},
          {"completed", ok},
          {"failed", int(t.size()) - ok},
          {"first_error", first_error.empty() ? json(nullptr) : json(first_error)},
          {"duration_s", dur},
          {"request_throughput", num(dur > 0 ? ok / dur : NAN)},
          {"input_tokens_per_s", num(dur > 0 ? double(in) / dur : NAN)},
          {"output_tokens_per_s", num(dur > 0 ? double(out) / dur : NAN)},
          {"ttft_ms",
           {{"mean", num(mean(ttft))},
            {"p50", num(percentile(ttft, 50))},
            {"p90", num(percentile(ttft, 90))},
            {"p99", num(percentile(ttft, 99))}}},
          {"tpot_ms",
           {{"mean", num(mean(tpot))},
            {"p50", num(percentile(tpot, 50))},
            {"p90", num(percentile(tpot, 90))},
            {"p99", num(percentile(tpot, 99))}}},
          {"itl_ms",
           {{"p50", num(percentile(itl, 50))}, {"p90", num(percentile(itl, 90))}, {"p99", num(percentile(itl, 99))}}},
          {"e2e_ms", {{"mean", num(mean(e2e))}, {"p50", num(percentile(e2e, 50))}, {"p90", num(percentile(e2e, 90))}}},
          {"prefill_token_layers_fraction", num(mean(frac))},
          {"preemptions", preempted}};
}

std::string cell(const json& v, const char* fmt = "%.1f") {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  char b[64];
  std::snprintf(b, sizeof b, fmt, v.get<double>());
  return b;
}

void print_md(const json& runs) {
  std::printf(
      "| mode | schedule | rate (req/s) | done | time (s) | req/s | out tok/s | TTFT p50 | TTFT p90 | TTFT p99 | TPOT "
      "p50 | TPOT "
      "p90 | ITL p99 | E2E p50 | prefill computed | preempted |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& r : runs) {
    const double f =
        r["prefill_token_layers_fraction"].is_null() ? -1 : r["prefill_token_layers_fraction"].get<double>();
    char frac[32] = "-";
    if (f >= 0) std::snprintf(frac, sizeof frac, "%.1f %%", 100 * f);
    std::printf("| %s | %s | %s | %d/%d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n",
                r["mode"].get<std::string>().c_str(), r["schedule"].get<std::string>().c_str(),
                cell(r["request_rate"], "%g").c_str(), r["completed"].get<int>(), int(r["requests"].get<std::size_t>()),
                cell(r["duration_s"], "%.2f").c_str(), cell(r["request_throughput"], "%.2f").c_str(),
                cell(r["output_tokens_per_s"]).c_str(), cell(r["ttft_ms"]["p50"]).c_str(),
                cell(r["ttft_ms"]["p90"]).c_str(), cell(r["ttft_ms"]["p99"]).c_str(),
                cell(r["tpot_ms"]["p50"], "%.2f").c_str(), cell(r["tpot_ms"]["p90"], "%.2f").c_str(),
                cell(r["itl_ms"]["p99"], "%.2f").c_str(), cell(r["e2e_ms"]["p50"]).c_str(), frac,
                r["preemptions"].get<int>());
  }
  std::printf(
      "\nTimes in ms. TTFT: arrival to first token; TPOT: (last - first token) / (tokens - 1); ITL: between tokens.\n");
}

/// Server minus offline, per schedule and rate present in both.
json overheads(const json& runs) {
  json out = json::array();
  for (const auto& s : runs) {
    if (s["mode"] != "server") continue;
    for (const auto& f : runs) {
      if (f["mode"] != "offline" || f["schedule"] != s["schedule"] || f["request_rate"] != s["request_rate"]) continue;
      auto diff = [](const json& a, const json& b) {
        return a.is_null() || b.is_null() ? json(nullptr) : json(a.get<double>() - b.get<double>());
      };
      auto ratio = [](const json& a, const json& b) {
        return a.is_null() || b.is_null() || b.get<double>() == 0 ? json(nullptr)
                                                                  : json(a.get<double>() / b.get<double>());
      };
      out.push_back({{"schedule", s["schedule"]},
                     {"request_rate", s["request_rate"]},
                     {"ttft_p50_ms", diff(s["ttft_ms"]["p50"], f["ttft_ms"]["p50"])},
                     {"ttft_p90_ms", diff(s["ttft_ms"]["p90"], f["ttft_ms"]["p90"])},
                     {"tpot_p50_ms", diff(s["tpot_ms"]["p50"], f["tpot_ms"]["p50"])},
                     {"output_tokens_per_s_ratio", ratio(s["output_tokens_per_s"], f["output_tokens_per_s"])}});
    }
  }
  return out;
}

int run(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  ::signal(SIGPIPE, SIG_IGN);
  json runs = json::array();

  // The server runs.
  std::unique_ptr<ServerProcess> proc;
  std::string url = o.url;
  if (!o.server.empty()) {
    std::vector<std::string> args = {"--port",    "0",
                                     "--backend", o.backend,
                                     "-np",       std::to_string(o.parallel),
                                     "-c",        std::to_string(o.n_ctx),
                                     "-b",        std::to_string(o.step_tokens),
                                     "--queue",   std::to_string(o.num_prompts + o.warmup + 8),
                                     "--timeout", std::to_string(o.timeout_s)};
    if (!o.model.empty())
      args.insert(args.end(), {"-m", o.model});
    else
      args.insert(args.end(), {"--synthetic", o.synthetic});
    if (o.backend == "cuda") args.insert(args.end(), {"--precision", o.precision});
    if (o.kv_blocks > 0) args.insert(args.end(), {"--kv-blocks", std::to_string(o.kv_blocks)});
    if (o.pool_mb > 0) args.insert(args.end(), {"--pool-mb", std::to_string(std::int64_t(o.pool_mb))});
    args.insert(args.end(), o.server_args.begin(), o.server_args.end());
    proc = std::make_unique<ServerProcess>(o.server, args);
    url = proc->wait_url(1800);
  }
  if (!url.empty()) {
    const Url u = parse_url(url);
    const ServedInfo info = served_info(u, o);
    std::fprintf(stderr, "lazyllm-bench-serving: server %s, model %s\n", url.c_str(), info.id.c_str());
    for (const auto& schedule : o.schedules) {
      const auto pol = policy_of(schedule, info.n_layers);
      if (o.warmup > 0)
        run_clients(u, o, info.id, make_trace(o, INFINITY, info.vocab, pol, o.seed + 999, o.warmup), schedule);
      for (const double rate : o.rates) {
        const auto trace = make_trace(o, rate, info.vocab, pol, o.seed, o.num_prompts);
        const json s = summarize("server", schedule, rate, run_clients(u, o, info.id, trace, schedule));
        std::fprintf(stderr, "lazyllm-bench-serving: server, %s, rate %s: %d/%d done, TTFT p50 %s ms, %s out tok/s\n",
                     schedule.c_str(), cell(s["request_rate"], "%g").c_str(), s["completed"].get<int>(), o.num_prompts,
                     cell(s["ttft_ms"]["p50"]).c_str(), cell(s["output_tokens_per_s"]).c_str());
        runs.push_back(s);
      }
    }
  }
  if (proc) proc->stop();

  // The offline runs: the same traces through the engine here.
  if (o.offline) {
    ModelWeights w = o.model.empty() ? synthetic_weights(synthetic_config(o.synthetic), 1)
                                     : load_model(o.model, LoadOptions{.keep_source_dtype = o.backend == "cuda"});
    const int vocab = w.config.vocab_size, n_layers = w.config.n_layers;
    OfflineRunner runner = o.backend == "cuda" ? offline_cuda(std::move(w), o.precision) : offline_cpu(std::move(w));
    OfflineOptions oo;
    oo.parallel = o.parallel;
    oo.step_tokens = o.step_tokens;
    oo.n_ctx = o.n_ctx;
    oo.pool_blocks = o.kv_blocks;
    oo.pool_bytes = std::int64_t(o.pool_mb * 1024 * 1024);
    for (const auto& schedule : o.schedules) {
      const auto pol = policy_of(schedule, n_layers);
      if (o.warmup > 0) runner(make_trace(o, INFINITY, vocab, pol, o.seed + 999, o.warmup), oo);
      for (const double rate : o.rates) {
        const json s =
            summarize("offline", schedule, rate, runner(make_trace(o, rate, vocab, pol, o.seed, o.num_prompts), oo));
        std::fprintf(stderr, "lazyllm-bench-serving: offline, %s, rate %s: %d/%d done, TTFT p50 %s ms, %s out tok/s\n",
                     schedule.c_str(), cell(s["request_rate"], "%g").c_str(), s["completed"].get<int>(), o.num_prompts,
                     cell(s["ttft_ms"]["p50"]).c_str(), cell(s["output_tokens_per_s"]).c_str());
        runs.push_back(s);
      }
    }
  }

  const json report = {
      {"benchmark", "lazyllm-bench-serving"},
      {"model",
       o.model.empty() ? (o.synthetic.empty() ? json(nullptr) : json("synthetic:" + o.synthetic)) : json(o.model)},
      {"backend", o.backend},
      {"parallel", o.parallel},
      {"num_prompts", o.num_prompts},
      {"input_len", o.input_len},
      {"output_len", o.output_len},
      {"max_concurrency", o.max_concurrency},
      {"seed", o.seed},
      {"runs", runs},
      {"server_overhead", overheads(runs)}};
  if (!o.json_file.empty()) {
    std::ofstream f(o.json_file);
    if (!(f << report.dump(2) << '\n')) throw Error("cannot write " + o.json_file);
  }
  if (o.format == "json") {
    std::printf("%s\n", report.dump(2).c_str());
  } else {
    print_md(runs);
    const json& ov = report["server_overhead"];
    if (!ov.empty()) {
      std::printf("\nServer overhead against the offline engine (server minus offline, same trace):\n\n");
      std::printf(
          "| schedule | rate (req/s) | TTFT p50 (ms) | TTFT p90 (ms) | TPOT p50 (ms) | out tok/s, server / offline "
          "|\n");
      std::printf("|---|---:|---:|---:|---:|---:|\n");
      for (const auto& r : ov)
        std::printf("| %s | %s | %s | %s | %s | %s |\n", r["schedule"].get<std::string>().c_str(),
                    cell(r["request_rate"], "%g").c_str(), cell(r["ttft_p50_ms"], "%+.2f").c_str(),
                    cell(r["ttft_p90_ms"], "%+.2f").c_str(), cell(r["tpot_p50_ms"], "%+.3f").c_str(),
                    cell(r["output_tokens_per_s_ratio"], "%.3f").c_str());
    }
  }
  for (const auto& r : runs)
    if (r["failed"].get<int>() > 0) {
      std::fprintf(stderr, "lazyllm-bench-serving: %d request(s) failed in a %s run (%s)\n", r["failed"].get<int>(),
                   r["mode"].get<std::string>().c_str(), cell(r["first_error"]).c_str());
      return 1;
    }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return lazyllm::cli::run_main("lazyllm-bench-serving", [&] { return run(argc, argv); });
}
