// Sampling: greedy, temperature, top-k, top-p, repetition penalty, seeds; statistics as JSON.
#include <map>

#include "lazyllm/model/sampler.hpp"
#include "lazyllm/stats.hpp"
#include "test_util.hpp"

using namespace lazyllm;

TEST_CASE("greedy is argmax, first index on ties") {
  const std::vector<float> l{0.1f, 3.0f, -1.0f, 3.0f};
  Sampler s;
  CHECK(s.sample(l) == 1);
  CHECK(argmax(l) == 1);
}

TEST_CASE("top-k 1 and a tiny top-p reduce to greedy at any temperature") {
  const std::vector<float> l{0.5f, 2.0f, 1.9f, -3.0f};
  Sampler k1({.temperature = 5.0f, .top_k = 1, .seed = 3});
  Sampler p0({.temperature = 5.0f, .top_p = 1e-6f, .seed = 3});
  for (int i = 0; i < 50; ++i) {
    CHECK(k1.sample(l) == 1);
    CHECK(p0.sample(l) == 1);
  }
}

TEST_CASE("temperature sampling follows the softmax and is reproducible per seed") {
  const std::vector<float> l{std::log(0.2f), std::log(0.3f), std::log(0.5f)};
  Sampler a({.temperature = 1.0f, .seed = 42}), b({.temperature = 1.0f, .seed = 42});
  std::map<int, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const int x = a.sample(l);
    CHECK(x == b.sample(l));
    ++counts[x];
  }
  CHECK(counts[0] / double(n) == doctest::Approx(0.2).epsilon(0.1));
  CHECK(counts[1] / double(n) == doctest::Approx(0.3).epsilon(0.1));
  CHECK(counts[2] / double(n) == doctest::Approx(0.5).epsilon(0.1));
  // top-k 2 removes the least likely token entirely
  Sampler k2({.temperature = 1.0f, .top_k = 2, .seed = 1});
  for (int i = 0; i < 2000; ++i) CHECK(k2.sample(l) != 0);
}

TEST_CASE("repetition penalty discourages recent tokens") {
  const std::vector<float> l{1.0f, 1.2f};
  const std::vector<std::int32_t> recent{1};
  Sampler s({.repeat_penalty = 1.5f});
  CHECK(s.sample(l) == 1);
  CHECK(s.sample(l, recent) == 0);  // 1.2 / 1.5 = 0.8 < 1.0
}

TEST_CASE("invalid sampling parameters are refused") {
  CHECK_THROWS_AS(Sampler({.temperature = -1.0f}), InvalidArgument);
  CHECK_THROWS_AS(Sampler({.top_p = 0.0f}), InvalidArgument);
  CHECK_THROWS_AS(Sampler({.top_k = -2}), InvalidArgument);
}

TEST_CASE("run statistics serialise with derived totals") {
  RunStats r;
  r.policy = "lazy(1:0.5)";
  r.schedule = "1:0.5";
  r.n_layers = 2;
  r.steps.push_back({Phase::Prefill, 10, 10, {10, 5}, {10, 5}, 0, 1.5});
  r.steps.push_back({Phase::Decode, 1, 11, {11, 6}, {1, 2}, 1, 0.2});
  const auto j = to_json(r);
  CHECK(j["prefill_token_layers"] == 15);
  CHECK(j["prefill_dense_token_layers"] == 20);
  CHECK(j["total_token_layers"] == 18);
  CHECK(j["total_dense_token_layers"] == 22);
  CHECK(j["total_revivals"] == 1);
  CHECK(j["steps"][1]["phase"] == "decode");
  CHECK(j["prefill_fraction"].get<double>() == doctest::Approx(0.75));
}
