// lazyllm::generate(): the stop conditions, the pending token, feed_last, the hooks' order, and
// the same ids as a hand-written loop on a real pipeline.
#include <doctest/doctest.h>

#include <limits>
#include <string>
#include <vector>

#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/generate.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/dense.hpp"
#include "lazyllm/policy/lazy.hpp"
#include "random_model.hpp"

using namespace lazyllm;

namespace {

/// A pipeline whose logits pick a scripted next id: after n tokens in the cache, the largest logit
/// is script[n - prompt length] (or 5 past the script's end). Records the calls.
struct ScriptedPipe {
  explicit ScriptedPipe(std::vector<std::int32_t> s) : script(std::move(s)) {}
  std::vector<std::int32_t> script;
  int ctx = 100;
  int past = 0, prompt_len = 0;
  std::vector<std::string> calls;
  std::vector<float> logits = std::vector<float>(16, 0.0f);

  std::span<const float> next() {
    std::fill(logits.begin(), logits.end(), 0.0f);
    const std::size_t k = std::size_t(past - prompt_len);
    logits[std::size_t(k < script.size() ? script[k] : 5)] = 1.0f;
    return logits;
  }
  std::span<const float> prefill(std::span<const std::int32_t> t) {
    calls.push_back("prefill " + std::to_string(t.size()));
    past += int(t.size());
    prompt_len = past;
    return next();
  }
  std::span<const float> decode(std::int32_t id) {
    calls.push_back("decode " + std::to_string(id));
    ++past;
    return next();
  }
  int n_past() const { return past; }
  int n_ctx() const { return ctx; }
};

std::int32_t greedy(std::span<const float> l) { return argmax(l); }

}  // namespace

TEST_CASE("generate stops at max_tokens and leaves the last token pending") {
  ScriptedPipe p({7, 8, 9, 10});
  const std::vector<std::int32_t> prompt{1, 3, 4};
  const auto r = generate(p, prompt, greedy, [](std::int32_t) {}, {.max_tokens = 3});
  CHECK(r.ids == std::vector<std::int32_t>{7, 8, 9});
  CHECK(r.stop == StopReason::MaxTokens);
  CHECK(r.pending);
  CHECK(p.calls == std::vector<std::string>{"prefill 3", "decode 7", "decode 8"});
  CHECK(r.ttft_ms > 0);
}

TEST_CASE("generate with feed_last decodes every generated token") {
  ScriptedPipe p({7, 8, 9});
  const std::vector<std::int32_t> prompt{1};
  const auto r = generate(p, prompt, greedy, [](std::int32_t) {}, {.max_tokens = 3, .feed_last = true});
  CHECK(r.ids == std::vector<std::int32_t>{7, 8, 9});
  CHECK(!r.pending);
  CHECK(p.calls == std::vector<std::string>{"prefill 1", "decode 7", "decode 8", "decode 9"});
}

TEST_CASE("generate with max_tokens 0 only prefills") {
  ScriptedPipe p({7});
  const std::vector<std::int32_t> prompt{1, 2};
  const auto r = generate(p, prompt, greedy, [](std::int32_t) {}, {.max_tokens = 0});
  CHECK(r.ids.empty());
  CHECK(r.stop == StopReason::MaxTokens);
  CHECK(r.ttft_ms == 0);
  CHECK(p.calls == std::vector<std::string>{"prefill 2"});
}

TEST_CASE("a stop id ends generation and is not emitted") {
  ScriptedPipe p({7, 2, 9});
  const std::vector<std::int32_t> prompt{1};
  std::vector<std::int32_t> seen;
  const auto r = generate(p, prompt, greedy, [&](std::int32_t id) { seen.push_back(id); }, {.max_tokens = 10});
  CHECK(r.ids == std::vector<std::int32_t>{7});
  CHECK(seen == r.ids);
  CHECK(r.stop == StopReason::StopToken);
  CHECK(!r.pending);
  // With no stop ids the same script runs to max_tokens.
  ScriptedPipe q({7, 2, 9});
  const auto all = generate(q, prompt, greedy, [](std::int32_t) {}, {.max_tokens = 3, .stop_ids = {}});
  CHECK(all.ids == std::vector<std::int32_t>{7, 2, 9});
}

TEST_CASE("on_token returning false stops after that token, which is kept but not decoded") {
  ScriptedPipe p({7, 8, 9});
  const std::vector<std::int32_t> prompt{1};
  const auto r = generate(p, prompt, greedy, [](std::int32_t id) { return id != 8; }, {.max_tokens = -1});
  CHECK(r.ids == std::vector<std::int32_t>{7, 8});
  CHECK(r.stop == StopReason::Callback);
  CHECK(p.calls == std::vector<std::string>{"prefill 1", "decode 7"});
}

TEST_CASE("generate stops when the context is full, and says so only when more was wanted") {
  ScriptedPipe p({7, 8, 9, 10});
  p.ctx = 4;
  const std::vector<std::int32_t> prompt{1, 3};
  const auto r = generate(p, prompt, greedy, [](std::int32_t) {}, {.max_tokens = -1});
  // prompt 2 + decode 7 + decode 8 = 4 tokens: 9 is sampled, then there is no room to decode it.
  CHECK(r.ids == std::vector<std::int32_t>{7, 8, 9});
  CHECK(r.stop == StopReason::ContextFull);
  CHECK(p.past == 4);
  ScriptedPipe q({7, 8, 9, 10});
  q.ctx = 4;
  const auto exact = generate(q, prompt, greedy, [](std::int32_t) {}, {.max_tokens = 3});
  CHECK(exact.stop == StopReason::MaxTokens);  // the budget and the context end together
  CHECK(!exact.pending);
}

TEST_CASE("the hooks bracket the prefill and each decode step") {
  ScriptedPipe p({7, 8});
  const std::vector<std::int32_t> prompt{1};
  std::vector<std::string> order;
  GenerateHooks h;
  h.after_prefill = [&](std::span<const float> l) {
    order.push_back("after_prefill " + std::to_string(p.calls.size()) + " argmax " + std::to_string(argmax(l)));
  };
  h.before_decode = [&] { order.push_back("before " + std::to_string(p.calls.size())); };
  h.after_decode = [&] { order.push_back("after " + std::to_string(p.calls.size())); };
  generate(
      p, prompt, greedy, [](std::int32_t) {}, {.max_tokens = 2, .feed_last = true}, h);
  CHECK(order == std::vector<std::string>{"after_prefill 1 argmax 7", "before 1", "after 2", "before 2", "after 3"});
}

TEST_CASE("the Sampler overload keeps the history: prompt and generated ids appended") {
  ScriptedPipe p({7, 8});
  const std::vector<std::int32_t> prompt{1, 3};
  Sampler s;
  std::vector<std::int32_t> history{42};
  const auto r = generate(p, prompt, s, history, [](std::int32_t) {}, {.max_tokens = 2});
  CHECK(r.ids == std::vector<std::int32_t>{7, 8});
  CHECK(history == std::vector<std::int32_t>{42, 1, 3, 7, 8});
}

TEST_CASE("generate gives the hand-written greedy loop's ids on a real pipeline, dense and lazy") {
  const auto c = test::small_config();
  const auto w = test::random_model(c);
  const std::vector<std::int32_t> prompt{1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45};
  for (const std::string sched : {"", "1:0.5,3:0.5"}) {
    CAPTURE(sched);
    policy::Lazy lazy(Schedule::parse(sched));
    Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, CpuBackend> a(CpuBackend{w}, lazy), b(CpuBackend{w}, lazy);
    std::vector<std::int32_t> want;
    auto l = a.prefill(prompt);
    for (int i = 0; i < 12; ++i) {
      want.push_back(argmax(l));
      if (i + 1 < 12) l = a.decode(want.back());
    }
    const auto r = generate(b, prompt, greedy, [](std::int32_t) {}, {.max_tokens = 12, .stop_ids = {}});
    CHECK(r.ids == want);
    CHECK(b.stats().total_token_layers() == a.stats().total_token_layers());
    CHECK(b.stats().total_revivals() == a.stats().total_revivals());
  }
}

TEST_CASE("non-finite logits stop generation with an error naming the step") {
  struct NanPipe : ScriptedPipe {
    using ScriptedPipe::ScriptedPipe;
    int nan_at = 2;  // tokens generated before the logits turn NaN
    std::span<const float> decode(std::int32_t id) {
      auto l = ScriptedPipe::decode(id);
      if (past - prompt_len >= nan_at) logits[3] = std::numeric_limits<float>::quiet_NaN();
      return l;
    }
  };
  NanPipe p({7, 8, 9, 10});
  const std::vector<std::int32_t> prompt{1};
  CHECK_THROWS_WITH_AS(generate(p, prompt, greedy, [](std::int32_t) {}, {.max_tokens = 8}),
                       doctest::Contains("the logits are not finite (nan at token id 3 of 16, at decode step 2)"),
                       Error);
  NanPipe q({7, 8, 9, 10});
  const auto r = generate(q, prompt, greedy, [](std::int32_t) {}, {.max_tokens = 4, .check_finite = false});
  CHECK(r.ids.size() == 4);  // unchecked, NaN logits run on (argmax picks whatever)
}
