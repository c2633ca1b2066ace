// SPDX-License-Identifier: MIT
// The built-in default (no -m, no prompt): its prompt, and the line that says who answered right.
#include <cstdio>
#include <string>

#include "app.hpp"
#include "lazyllm/eval/metrics.hpp"
#include "lazyllm/eval/task.hpp"
#include "lazyllm/text/chat.hpp"

namespace lazyllm::driver {

void prepare_demo(App& app) {
  Options& o = app.o;
  if (o.demo_qa) {
    // One question from the task generator (the same as `lazyllm-make-task`), seed = --seed.
    if (!app.tok) throw Error("the demo model " + o.model + " has no tokenizer.bin beside it");
    constexpr int kDemoTokens = 1024;
    const eval::TaskGenerator gen({.seed = o.sampler.seed, .length = kDemoTokens, .variant = eval::Variant::Single},
                                  eval::token_counter(*app.tok));
    const eval::TaskExample ex = gen.example(0);
    o.prompt = app.tok->encode(ex.prompt(), true);
    app.demo_answer = ex.answers.at(0);
    std::fprintf(stderr,
                 "demo: a question about one of %d documents (%zu tokens; the answer is in document %d), as made by\n"
                 "      lazyllm-make-task --seed %llu --count 1 --length %d --variant single -z %s --emit-prompt\n"
                 "demo: Question: %s\ndemo: expected answer: %s\n",
                 ex.n_docs, o.prompt.size(), ex.answer_doc + 1, static_cast<unsigned long long>(o.sampler.seed),
                 kDemoTokens, app.tok_path.c_str(), ex.input.c_str(), app.demo_answer.c_str());
    app.prompt_kind = "demo";
  } else if (o.demo) {
    // A long prompt the model finds natural: its own greedy continuation of BOS.
    Options gen = o;
    gen.n_predict = std::min(255, app.w->config.max_seq_len / 2);
    gen.sampler = SamplerParams{};
    const auto made = app.run(policy::Dense{}, gen);
    o.prompt.assign(1, 1);
    o.prompt.insert(o.prompt.end(), made.ids.begin(), made.ids.end());
    std::fprintf(stderr,
                 "demo: prompt = BOS + the model's own %zu-token greedy continuation; then %d tokens with dense and "
                 "with lazy\n",
                 made.ids.size(), o.n_predict);
    app.prompt_kind = "demo";
  }
}

void print_demo_verdict(const App& app, const RunResult& dense, const RunResult& run) {
  if (!app.o.demo_qa || !app.tok) return;
  auto verdict = [&](const RunResult& r) {
    const std::string text = continuation_text(*app.tok, app.last_prompt_id, r.ids);
    return "'" + std::string(detail::strip_whitespace(text)) + "' (" +
           (eval::exact_match(text, app.demo_answer) == 1.0 ? "right" : "wrong") + ")";
  };
  std::fprintf(stderr, "demo: expected '%s'; dense answered %s, %s answered %s\n", app.demo_answer.c_str(),
               verdict(dense).c_str(), app.chosen.c_str(), verdict(run).c_str());
}

}  // namespace lazyllm::driver
