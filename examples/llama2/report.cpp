// SPDX-License-Identifier: MIT
// The driver's --json document and --stats file (app.hpp).
#include <fstream>
#include <sstream>
#include <string>

#include "app.hpp"
#include "lazyllm/report/json.hpp"

namespace lazyllm::driver {

namespace {

nlohmann::json need_json(const MemoryNeed& m, std::optional<std::uint64_t> available, const std::string& source) {
  return {{"weights_bytes", m.weights},
          {"weights_dtype", m.weights_note},
          {"kv_cache_bytes", m.kv_cache},
          {"aux_cache_bytes", m.aux_cache},
          {"activations_bytes", m.activations},
          {"total_bytes", m.total()},
          {"available_bytes", available ? nlohmann::json(*available) : nlohmann::json(nullptr)},
          {"available_source", source}};
}

nlohmann::json memory_json(const RunResult& r, const GpuBaseline& gpu) {
  auto or_null = [](std::int64_t v) { return v >= 0 ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json j = {{"rss_bytes", or_null(r.host.rss)}, {"rss_peak_bytes", or_null(r.host.rss_peak)}};
  j["gpu_total_bytes"] = or_null(r.gpu_total);
  j["gpu_in_use_bytes"] = r.gpu_free >= 0 ? nlohmann::json(r.gpu_total - r.gpu_free) : nlohmann::json(nullptr);
  j["gpu_used_bytes"] = (r.gpu_free >= 0 && gpu.known && gpu.free >= std::uint64_t(r.gpu_free))
                            ? nlohmann::json(gpu.free - std::uint64_t(r.gpu_free))
                            : nlohmann::json(nullptr);
  return j;
}

}  // namespace

nlohmann::json run_json(const App& app, const std::string& policy, const RunResult& r, std::int32_t prev) {
  const auto& tok = app.tok;
  const double load_ms = app.load_ms;
  const GpuBaseline& gpu = app.gpu;
  nlohmann::json j;
  j["policy"] = policy;
  j["generated"] = r.ids;
  j["generated_tokens"] = r.ids.size();
  j["text"] = tok ? nlohmann::json(continuation_text(*tok, prev, r.ids)) : nlohmann::json(nullptr);
  j["stopped_eos"] = r.stopped_eos;
  j["context_full"] = r.context_full;
  j["load_ms"] = load_ms;
  j["prompt_tokens"] = r.n_prompt;
  j["prefill_ms"] = r.prefill_ms;
  j["prefill_tok_s"] = per_second(double(r.n_prompt), r.prefill_ms);
  j["ttft_ms"] = r.ttft_ms;
  j["decode_ms"] = r.decode_ms;
  j["decode_ms_per_token"] = decode_ms_per_token(r);
  j["decode_tok_s"] = per_second(1.0, decode_ms_per_token(r));
  j["memory"] = memory_json(r, gpu);
  j["stats"] = to_json(r.stats);
  return j;
}

nlohmann::json config_json(const RuntimeConfig& c) {
  return {{"dim", c.dim},
          {"hidden_dim", c.hidden_dim},
          {"n_layers", c.n_layers},
          {"n_heads", c.n_heads},
          {"n_kv_heads", c.n_kv_heads},
          {"vocab_size", c.vocab_size},
          {"max_seq_len", c.max_seq_len},
          {"norm_eps", c.norm_eps},
          {"rope_theta", c.rope_theta},
          {"rope_style", to_string(c.rope_style)},
          {"tied_embeddings", c.tied_embeddings},
          {"n_params", c.n_params()}};
}

nlohmann::json to_json(const MemoryCheck& m) {
  if (!m.known) return nullptr;
  nlohmann::json j = {{"n_ctx", m.n_ctx}, {"aux_layers", m.aux_layers}, {"enforced", m.enforced}};
  j["host"] = need_json(m.host, m.host_available, m.host_source);
  if (m.gpu) j["gpu"] = need_json(*m.gpu, m.gpu_free, m.gpu_source);
  return j;
}

void start_json(App& app) {
  const Options& o = app.o;
  nlohmann::json& j = app.doc;
  j["model"] = o.model;
  j["source_dtype"] = app.w->source_dtype;
  j["config"] = config_json(app.w->config);
  j["backend"] = o.backend;
  if (o.backend == "cuda") {
    j["precision"] = o.precision;
    j["device_select"] = o.device_select.value_or(o.precision == "bf16");  // where the percentile rule ran
  }
  j["policy"] = app.chosen;
  j["schedule"] = app.schedule.to_string();
  j["compare"] = o.compare;
  j["interactive"] = o.interactive;
  j["n_ctx"] = app.ctx;
  j["n_predict"] = o.n_predict;
  j["sampler"] = {{"temperature", o.sampler.temperature},
                  {"top_k", o.sampler.top_k},
                  {"top_p", o.sampler.top_p},
                  {"repeat_penalty", o.sampler.repeat_penalty},
                  {"seed", o.sampler.seed}};
  j["tokenizer"] = app.tok ? nlohmann::json(app.tok_path) : nlohmann::json(nullptr);
  j["load_ms"] = app.load_ms;
  j["memory_check"] = to_json(app.mem_check);
}

void write_json(const App& app) {
  if (app.o.json_file.empty()) return;
  std::ofstream f(app.o.json_file);
  // Generated text may hold a partial UTF-8 sequence: replace it rather than fail the dump.
  if (!(f << app.doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n'))
    throw Error("cannot write --json file " + app.o.json_file);
}

void write_stats(const App& app, const RunStats& stats, std::size_t n_prompt,
                 const std::vector<std::int32_t>& generated, double prefill_ms, double decode_ms) {
  if (app.o.stats_file.empty()) return;
  nlohmann::json s = to_json(stats);
  s["model"] = app.o.model;
  s["prompt_tokens"] = n_prompt;
  s["generated"] = generated;
  s["load_ms"] = app.load_ms;
  s["prefill_ms"] = prefill_ms;
  s["decode_ms"] = decode_ms;
  std::ofstream f(app.o.stats_file);
  if (!(f << s.dump(2) << '\n')) throw Error("cannot write --stats file " + app.o.stats_file);
}

}  // namespace lazyllm::driver
