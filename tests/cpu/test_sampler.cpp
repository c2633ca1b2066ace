// Sampling: greedy, temperature, top-k, top-p, repetition penalty, seeds; statistics as JSON.
#include <map>
#include <numeric>
#include <random>

#include "lazyllm/model/sampler.hpp"
#include "lazyllm/report/json.hpp"
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

namespace {

/// The sampling rule written plainly, as Sampler did it before it sorted only what it reads (the
/// whole candidate list sorted up front; with top_p 1 a prefix mass rounded up to 1 stops the
/// cut early): the reference the faster Sampler must reproduce.
std::int32_t reference_sample(std::vector<float> work, const SamplerParams& p, double u) {
  if (p.temperature == 0.0f) return argmax(work);
  std::vector<int> idx(work.size());
  std::iota(idx.begin(), idx.end(), 0);
  const std::size_t k = p.top_k > 0 ? std::min<std::size_t>(std::size_t(p.top_k), idx.size()) : idx.size();
  std::sort(idx.begin(), idx.end(), [&](int a, int b) {
    return work[std::size_t(a)] > work[std::size_t(b)] || (work[std::size_t(a)] == work[std::size_t(b)] && a < b);
  });
  idx.resize(k);
  std::vector<float> e(k);
  const float m = work[std::size_t(idx[0])];
  double sum = 0.0;
  for (std::size_t i = 0; i < k; ++i) sum += e[i] = std::exp((work[std::size_t(idx[i])] - m) / p.temperature);
  std::size_t n = k;
  double mass = 0.0;
  for (std::size_t i = 0; i < k; ++i) {
    mass += float(e[i] / sum);
    if (mass >= p.top_p) {  // with top_p 1 only a mass rounded up to 1 stops early
      n = i + 1;
      break;
    }
  }
  double total = 0.0;
  for (std::size_t i = 0; i < n; ++i) total += float(e[i] / sum);
  const double r = u * total;
  double acc = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    acc += float(e[i] / sum);
    if (r < acc) return idx[i];
  }
  return idx[n - 1];
}

/// The uniform draws a Sampler seeded with `seed` makes (splitmix64, as sampler.hpp).
double nth_uniform(std::uint64_t seed, int n) {
  std::uint64_t st = seed, z = 0;
  for (int i = 0; i <= n; ++i) {
    z = (st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
  }
  return double(z >> 11) * 0x1.0p-53;
}

}  // namespace

TEST_CASE("Sampler sorts only what it reads, and draws what the fully sorted rule draws") {
  // Vocabularies of 7 to 32000, peaked and flat logits, ties, top-k / top-p combinations: the
  // same ids as reference_sample (its sums run in another order, which could only flip a draw
  // landing within rounding of a boundary; none does here).
  std::mt19937 gen(5);
  int draws = 0, mismatches = 0;
  for (int vocab : {7, 300, 32000}) {
    for (float scale : {0.5f, 3.0f, 8.0f}) {
      std::normal_distribution<float> nd(0.0f, scale);
      std::vector<float> l(static_cast<std::size_t>(vocab));
      for (auto& x : l) x = nd(gen);
      for (int i = 0; i < vocab / 5; ++i) l[std::size_t(gen() % unsigned(vocab))] = l[0];  // ties
      const std::vector<SamplerParams> ps{{.temperature = 1.0f},
                                          {.temperature = 0.8f, .top_p = 0.9f},
                                          {.temperature = 1.3f, .top_p = 0.95f},
                                          {.temperature = 0.7f, .top_k = 40, .top_p = 0.9f},
                                          {.temperature = 0.6f, .top_k = 2000},
                                          {.temperature = 2.0f, .top_k = 1000, .top_p = 0.5f},
                                          {.temperature = 0.05f, .top_p = 0.99f}};
      for (SamplerParams p : ps) {
        p.seed = std::uint64_t(vocab) * 131 + std::uint64_t(scale * 10);
        Sampler s(p);
        for (int d = 0; d < 40; ++d) {
          const int got = s.sample(l), want = reference_sample(l, p, nth_uniform(p.seed, d));
          ++draws;
          if (got != want) {
            ++mismatches;
            MESSAGE("vocab " << vocab << " scale " << scale << " T " << p.temperature << " k " << p.top_k << " p "
                             << p.top_p << " draw " << d << ": " << got << " vs " << want);
          }
        }
      }
    }
  }
  MESSAGE(draws << " draws compared");
  CHECK(draws == 3 * 3 * 7 * 40);
  CHECK(mismatches == 0);
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

TEST_CASE("sampler: min-p drops the tokens less likely than min_p times the most likely one") {
  // p proportional to exp(l): token 0 is the most likely; token 1 at e^-0.5 = 0.61 of it, token 2
  // at e^-1 = 0.37, token 3 at e^-3 = 0.05.
  const std::vector<float> logits{2.0f, 1.5f, 1.0f, -1.0f};
  auto draws = [&](float min_p) {
    SamplerParams p;
    p.temperature = 1.0f;
    p.min_p = min_p;
    p.seed = 7;
    Sampler s(p);
    std::vector<int> seen(4, 0);
    for (int i = 0; i < 4000; ++i) ++seen[std::size_t(s.sample(logits))];
    return seen;
  };
  const auto all = draws(0.0f), half = draws(0.5f), one = draws(1.0f);
  CHECK(all[3] > 0);
  CHECK(half[2] == 0);
  CHECK(half[3] == 0);
  CHECK(half[0] > half[1]);
  CHECK(half[1] > 1000);  // renormalised over {0, 1}: 0.38 of the draws
  CHECK(one[0] == 4000);
  SamplerParams bad;
  bad.min_p = 1.5f;
  CHECK_THROWS_AS(Sampler{bad}, InvalidArgument);
}
