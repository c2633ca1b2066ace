// SPDX-License-Identifier: MIT
// The driver's text on stderr: the timing footer and the id and text helpers (app.hpp).
#include <cstdio>
#include <string>
#include <vector>

#include "app.hpp"

namespace lazyllm::driver {

double decode_ms_per_token(const RunResult& r) {
  const auto steps = r.stats.steps.size();
  return steps > 1 ? r.decode_ms / double(steps - 1) : 0.0;
}

double per_second(double n, double ms) { return ms > 0 ? 1000.0 * n / ms : 0.0; }

namespace {

std::string memory_text(const RunResult& r, const GpuBaseline& gpu) {
  std::string s = "memory: RSS " + (r.host.rss >= 0 ? format_bytes(std::uint64_t(r.host.rss)) : std::string("?")) +
                  " (peak " + (r.host.rss_peak >= 0 ? format_bytes(std::uint64_t(r.host.rss_peak)) : std::string("?")) +
                  ")";
  if (r.gpu_free >= 0) {
    const std::uint64_t in_use = std::uint64_t(r.gpu_total - r.gpu_free);
    if (gpu.known && gpu.free >= std::uint64_t(r.gpu_free))
      s += ", GPU " + format_bytes(gpu.free - std::uint64_t(r.gpu_free)) + " used by this run";
    s += ", GPU " + format_bytes(in_use) + " of " + format_bytes(std::uint64_t(r.gpu_total)) + " in use";
  }
  return s;
}

}  // namespace

/// "1 token", "2 tokens".
std::string count(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

void print_footer(const char* label, const RunResult& r, double load_ms, const GpuBaseline& gpu) {
  const double ms_tok = decode_ms_per_token(r);
  char ttft[48];
  // No token sampled (-n 0): there is no first token, so no TTFT (not 0, which read as < prefill).
  if (r.ttft_ms > 0)
    std::snprintf(ttft, sizeof ttft, "%.2f ms", r.ttft_ms);
  else
    std::snprintf(ttft, sizeof ttft, "- (no token sampled)");
  std::fprintf(stderr,
               "%s: load %.2f ms | prompt %s, prefill %.2f ms (%.1f tok/s), TTFT %s | generated %s, "
               "%.3f ms/token (%.1f tok/s) | token-layers computed %.1f%% of dense in prefill, %.1f%% overall, "
               "%s | %s\n",
               label, load_ms, count(std::size_t(r.n_prompt), "token", "tokens").c_str(), r.prefill_ms,
               per_second(double(r.n_prompt), r.prefill_ms), ttft, count(r.ids.size(), "token", "tokens").c_str(),
               ms_tok, per_second(1.0, ms_tok), 100.0 * r.stats.prefill_fraction(),
               r.stats.total_dense_token_layers()
                   ? 100.0 * double(r.stats.total_token_layers()) / double(r.stats.total_dense_token_layers())
                   : 100.0,
               count(std::size_t(r.stats.total_revivals()), "revival", "revivals").c_str(),
               memory_text(r, gpu).c_str());
}

void print_perf(const RunResult& r, double load_ms, int n_predict) {
  const std::size_t runs = r.stats.steps.empty() ? 0 : r.stats.steps.size() - 1;  // decode steps
  const double eval_ms = r.decode_ms - r.sample_ms;
  const double per_tok = r.n_prompt ? r.prefill_ms / r.n_prompt : 0.0, per_run = runs ? eval_ms / double(runs) : 0.0;
  const std::size_t sampled = r.ids.size() + (r.stop == StopReason::StopToken ? 1 : 0);
  std::string stop;
  switch (r.stop) {
    case StopReason::StopToken:
      stop = "EOS (or BOS) sampled";
      break;
    case StopReason::ContextFull:
      stop = "context full";
      break;
    case StopReason::Callback:
      stop = "stopped";
      break;
    case StopReason::MaxTokens:
      stop = "-n " + std::to_string(n_predict) + (n_predict == 1 ? " token generated" : " tokens generated");
      break;
  }
  std::fprintf(stderr, "perf: load time        = %10.2f ms\n", load_ms);
  std::fprintf(stderr, "perf: prompt eval time = %10.2f ms / %6d %-6s (%8.2f ms per token, %9.2f tokens per second)\n",
               r.prefill_ms, r.n_prompt, r.n_prompt == 1 ? "token" : "tokens", per_tok,
               per_second(double(r.n_prompt), r.prefill_ms));
  std::fprintf(stderr,
               "perf: eval time        = %10.2f ms / %6zu runs   (%8.2f ms per token, %9.2f tokens per second)\n",
               eval_ms, runs, per_run, per_second(double(runs), eval_ms));
  std::fprintf(stderr, "perf: sampling time    = %10.2f ms / %6zu runs   (%8.3f ms per token)\n", r.sample_ms, sampled,
               sampled ? r.sample_ms / double(sampled) : 0.0);
  const std::size_t total = std::size_t(r.n_prompt) + r.ids.size();
  std::fprintf(stderr, "perf: total time       = %10.2f ms / %6zu %s\n", load_ms + r.prefill_ms + r.decode_ms, total,
               total == 1 ? "token" : "tokens");
  std::fprintf(stderr, "perf: stop reason      = %s\n", stop.c_str());
}

std::string join(const std::vector<std::int32_t>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(v[i]);
  }
  return s;
}

std::string continuation_text(const Tokenizer& tok, std::int32_t prev, const std::vector<std::int32_t>& ids) {
  std::string s;
  for (auto id : ids) {
    s += tok.decode(prev, id);
    prev = id;
  }
  return s;
}

}  // namespace lazyllm::driver
