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

void print_footer(const char* label, const RunResult& r, double load_ms, const GpuBaseline& gpu) {
  const double ms_tok = decode_ms_per_token(r);
  std::fprintf(
      stderr,
      "%s: load %.2f ms | prompt %d tokens, prefill %.2f ms (%.1f tok/s), TTFT %.2f ms | generated %zu tokens, "
      "%.3f ms/token (%.1f tok/s) | token-layers computed %.1f%% of dense in prefill, %.1f%% overall, "
      "%lld revivals | %s\n",
      label, load_ms, r.n_prompt, r.prefill_ms, per_second(double(r.n_prompt), r.prefill_ms), r.ttft_ms, r.ids.size(),
      ms_tok, per_second(1.0, ms_tok), 100.0 * r.stats.prefill_fraction(),
      r.stats.total_dense_token_layers()
          ? 100.0 * double(r.stats.total_token_layers()) / double(r.stats.total_dense_token_layers())
          : 100.0,
      static_cast<long long>(r.stats.total_revivals()), memory_text(r, gpu).c_str());
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
