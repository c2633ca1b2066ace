// SPDX-License-Identifier: MIT
// One prompt, one answer; with --compare (and in the built-in demo) dense first on the same prompt.
#include <algorithm>
#include <cstdio>
#include <string>

#include "app.hpp"

namespace lazyllm::driver {

int run_one_shot(App& app) {
  const Options& o = app.o;
  // Warm-up, so both timed runs start equal. On the GPU the pruned run also needs its own: its
  // first use loads the selection / gather kernels and asks cuBLASLt for the smaller row counts,
  // which cost more than this small model's whole prefill (seen on an H200: 16.5 ms cold against
  // 2.2 ms dense at 1k tokens; lazyllm-eval's warm per-example mean is 0.8 ms).
  if (o.compare) {
    app.run(policy::Dense{}, o);
    if (o.backend == "cuda") app.run(app.pol, o);
  }
  RunResult dense;
  if (o.compare) {
    Hooks dense_hooks = app.hooks;  // progress only: the chosen policy's run is the one that streams
    dense_hooks.on_token = {};
    dense = app.run(policy::Dense{}, o, dense_hooks);
    std::fprintf(stderr, "[dense] ids: %s\n", join(dense.ids).c_str());
    if (app.tok)
      std::fprintf(stderr, "[dense] text: %s\n", continuation_text(*app.tok, app.last_prompt_id, dense.ids).c_str());
    print_footer("dense", dense, app.load_ms, app.gpu);
    if (app.stream) std::fprintf(stderr, "[%s] text on stdout:\n", app.chosen.c_str());
  }
  const RunResult r = app.run(app.pol, o, app.hooks);
  if (app.stream) {
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  if (o.compare) std::fprintf(stderr, "[%s] ids: %s\n", app.chosen.c_str(), join(r.ids).c_str());
  print_footer(app.chosen.c_str(), r, app.load_ms, app.gpu);
  print_perf(r, app.load_ms, o.n_predict);
  std::size_t agree = 0;
  while (agree < r.ids.size() && agree < dense.ids.size() && r.ids[agree] == dense.ids[agree]) ++agree;
  const double speedup = r.prefill_ms > 0 ? dense.prefill_ms / r.prefill_ms : 0.0;
  if (o.compare) {
    std::fprintf(stderr,
                 "compare: schedule %s | TTFT dense %.2f ms, %s %.2f ms, speedup %.2fx | first %zu of %zu generated "
                 "tokens agree\n",
                 app.schedule.to_string().c_str(), dense.prefill_ms, app.chosen.c_str(), r.prefill_ms, speedup, agree,
                 std::max(r.ids.size(), dense.ids.size()));
  }
  print_demo_verdict(app, dense, r);
  // A model this small is launch-bound on a GPU: its pruned prefill is not cheaper there, and a
  // speedup below 1 would read as LazyLLM's result. Say so, and where the GPU result is.
  if (o.demo && o.backend == "cuda" && app.w->config.n_params() < 100'000'000)
    std::fprintf(stderr,
                 "demo: on a GPU these timings say nothing about LazyLLM: this %.1fM-parameter model's prefill takes "
                 "about a millisecond dense or pruned, bounded by kernel launches and the host round trip at each "
                 "pruning layer, not by compute (on the CPU it is compute-bound, and pruning pays). For the GPU "
                 "speedup on a Llama-2-7B-shaped model run\n"
                 "demo:   build/benchmarks/lazyllm-bench --backend cuda --synthetic llama2-7b -p 4096 -n 0 "
                 "--policy dense,lazy --schedule 4:0.5,8:0.5,16:0.5\n"
                 "demo: (docs/benchmarks.md: 3.26x at 4096 tokens on an H200), or run this demo with --backend cpu.\n",
                 double(app.w->config.n_params()) / 1e6);
  nlohmann::json& j = app.doc;
  if (o.demo_qa && app.tok) j["demo_answer"] = app.demo_answer;
  write_stats(app, r.stats, o.prompt.size(), r.ids, r.prefill_ms, r.decode_ms);
  nlohmann::json prompt = {{"source", app.prompt_kind}, {"tokens", o.prompt.size()}, {"ids", o.prompt}};
  if (o.text_given) prompt["text"] = o.prompt_text;
  if (o.chat) prompt["system"] = o.system_given ? nlohmann::json(o.system) : nlohmann::json(nullptr);
  j["prompt"] = prompt;
  j["prompt_tokens"] = o.prompt.size();
  j["run"] = run_json(app, app.chosen, r, app.last_prompt_id);
  if (o.compare) {
    j["dense"] = run_json(app, "dense", dense, app.last_prompt_id);
    j["comparison"] = {{"ttft_dense_ms", dense.prefill_ms},
                       {"ttft_ms", r.prefill_ms},
                       {"ttft_speedup", speedup},
                       {"agreeing_prefix", agree},
                       {"generated_max", std::max(r.ids.size(), dense.ids.size())},
                       {"prefill_fraction", r.stats.prefill_fraction()}};
  }
  write_json(app);
  if (o.print_ids) std::printf("%s\n", join(r.ids).c_str());
  return 0;
}

}  // namespace lazyllm::driver
