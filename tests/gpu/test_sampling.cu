// Device sampling (cuda/sampling.cuh) against the host Sampler (model/sampler.hpp): the same ids
// on the same logits (greedy with ties, penalties, temperature/top-k/top-p over many seeds), the
// distribution against an independent softmax, and CudaBackend::sample against CudaBackend::logits.
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "gpu_util.hpp"
#include "lazyllm/backend/cuda/cuda_backend.cuh"
#include "lazyllm/backend/cuda/sampling.cuh"
#include "lazyllm/model/sampler.hpp"
#include "random_model.hpp"

using namespace lazyllm;
using namespace lazyllm::test;

namespace {

/// Random logits with deliberate ties: every `tie_every`-th value is rounded to a multiple of
/// 0.25 (many equal values), and the maximum appears at three positions.
std::vector<float> tied_logits(int n, unsigned seed, float scale) {
  auto v = randn(std::size_t(n), seed, scale);
  for (int i = 0; i < n; i += 3) v[std::size_t(i)] = std::round(v[std::size_t(i)] * 4.0f) / 4.0f;
  const float mx = *std::max_element(v.begin(), v.end()) + 1.0f;
  for (int i : {n / 2, n / 3, n - 1}) v[std::size_t(i)] = mx;
  return v;
}

/// Independent reference: the lowest index of the maximum (explicit loop, not std::max_element).
int first_max(const std::vector<float>& v) {
  int best = 0;
  for (int i = 1; i < int(v.size()); ++i)
    if (v[std::size_t(i)] > v[std::size_t(best)]) best = i;
  return best;
}

}  // namespace

TEST_CASE("sampling: the device sampler's splitmix64 draws are the host Sampler's") {
  // Host-only. With 1024 equal logits at temperature 1 every probability is exactly 2^-10, so the
  // host Sampler returns floor(u * 1024) of its draw u: its top 10 bits, draw by draw.
  const std::vector<float> flat(1024, 0.5f);
  for (std::uint64_t seed : {0ull, 1ull, 42ull, 0xDEADBEEFull}) {
    CAPTURE(seed);
    Sampler host({.temperature = 1.0f, .seed = seed});
    gpu::detail::SplitMix64 rng{seed};
    int mismatches = 0;
    for (int i = 0; i < 2000; ++i) {
      const double u = rng.uniform();
      REQUIRE(u >= 0.0);
      REQUIRE(u < 1.0);
      mismatches += host.sample(flat) != int(std::floor(u * 1024.0));
    }
    CHECK(mismatches == 0);
  }
}

TEST_CASE("sampling: invalid parameters and arguments throw") {
  CHECK_THROWS_AS(gpu::DeviceSampler({.temperature = -1.0f}), InvalidArgument);
  CHECK_THROWS_AS(gpu::DeviceSampler({.top_p = 0.0f}), InvalidArgument);
  CHECK_THROWS_AS(gpu::DeviceSampler({.top_k = -2}), InvalidArgument);
  gpu::DeviceSampler s;
  CHECK_THROWS_AS(s.sample(nullptr, 10, nullptr), InvalidArgument);
}

TEST_CASE("sampling: greedy on the device is the host argmax (vocab 32000 and 512, ties, penalties)") {
  if (!have_gpu()) return;
  for (int vocab : {32000, 512, 1, 1000003}) {
    CAPTURE(vocab);
    gpu::DeviceSampler dev;
    Sampler host;
    for (unsigned seed = 0; seed < 20; ++seed) {
      CAPTURE(seed);
      const auto l = vocab > 1 ? tied_logits(vocab, seed, 2.0f) : std::vector<float>{0.3f};
      const auto d = to_device(l);
      const int want = first_max(l);
      CHECK(host.sample(l) == want);
      CHECK(dev.sample(d.get(), vocab, nullptr) == want);
    }
    // all equal, all -inf: index 0 (the host's choice)
    const std::vector<float> same(std::size_t(vocab), -2.5f), ninf(std::size_t(vocab), -INFINITY);
    CHECK(dev.sample(to_device(same).get(), vocab, nullptr) == 0);
    CHECK(dev.sample(to_device(ninf).get(), vocab, nullptr) == 0);
  }
  // repetition penalty: duplicates count twice, out-of-range ids are ignored, positive and
  // negative logits; the device result must equal the host Sampler's on the same inputs.
  cudaStream_t stream = nullptr;
  REQUIRE(cudaStreamCreate(&stream) == cudaSuccess);
  for (float pen : {1.3f, 0.7f}) {
    gpu::DeviceSampler dev({.repeat_penalty = pen});
    Sampler host({.repeat_penalty = pen});
    for (unsigned seed = 0; seed < 30; ++seed) {
      CAPTURE(pen);
      CAPTURE(seed);
      auto l = randn(4096, 100 + seed, 0.5f);
      const int top = first_max(l);
      std::vector<std::int32_t> recent{top, top, -5, 4096, 99999, 7, 7, 7, 3000, top};
      l[7] = -l[top];  // a negative logit that the penalty pushes further down (or up for p < 1)
      const auto d = to_device(l);
      const int want = host.sample(l, recent);
      CHECK(dev.sample(d.get(), 4096, stream, recent) == want);
      // the logits on the device are left untouched
      CHECK(to_host(d.get(), l.size()) == l);
    }
  }
  LAZYLLM_CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST_CASE(
    "sampling: temperature, top-k, min-p, top-p, penalty on the device give the host Sampler's ids over many seeds") {
  if (!have_gpu()) return;
  struct Case {
    SamplerParams p;
    float scale;
  };
  const std::vector<Case> cases{
      {{.temperature = 1.0f}, 1.0f},
      {{.temperature = 0.7f, .top_k = 40, .top_p = 0.9f}, 2.0f},
      {{.temperature = 1.3f, .top_p = 0.95f}, 3.0f},
      {{.temperature = 0.8f, .top_k = 5}, 1.0f},
      {{.temperature = 1.0f, .top_k = 1}, 1.0f},
      {{.temperature = 2.0f, .top_p = 0.5f, .repeat_penalty = 1.3f}, 2.0f},
      {{.temperature = 0.05f, .top_k = 100, .top_p = 0.99f}, 1.0f},
      {{.temperature = 1.0f, .min_p = 0.05f}, 2.0f},  // min-p (the server's min_p)
      {{.temperature = 0.9f, .top_k = 50, .top_p = 0.9f, .min_p = 0.2f}, 3.0f},
      {{.temperature = 1.5f, .min_p = 0.9f}, 1.0f},  // usually the argmax alone
  };
  int draws = 0, mismatches = 0;
  const std::uint64_t n_seeds = quick_mode() ? 3 : 40;
  for (int vocab : {512, 32000}) {
    for (std::size_t ci = 0; ci < cases.size(); ++ci) {
      for (std::uint64_t seed = 0; seed < n_seeds; ++seed) {
        SamplerParams p = cases[ci].p;
        p.seed = seed * 7919 + 3;
        Sampler host(p);
        gpu::DeviceSampler dev(p);
        std::vector<std::int32_t> recent;
        for (int step = 0; step < 5; ++step) {
          const unsigned ls = unsigned(seed * 31 + unsigned(step) * 7 + ci);
          const auto l =
              (step % 2) ? tied_logits(vocab, ls, cases[ci].scale) : randn(std::size_t(vocab), ls, cases[ci].scale);
          const auto d = to_device(l);
          const int want = host.sample(l, recent);
          const int got = dev.sample(d.get(), vocab, nullptr, recent);
          ++draws;
          if (got != want) {
            ++mismatches;
            MESSAGE("vocab " << vocab << " case " << ci << " seed " << seed << " step " << step << ": device " << got
                             << ", host " << want);
          }
          recent.push_back(want);
        }
      }
    }
  }
  MESSAGE(draws << " draws compared");
  CHECK(mismatches == 0);
}

TEST_CASE("sampling: distribution on the device (top-k support, chi-square against the softmax, top-p support)") {
  if (!have_gpu()) return;
  const int vocab = 512;
  const auto l = randn(vocab, 77, 1.5f);
  const auto d = to_device(l);
  // Independent reference: order by value (ties cannot matter for normal draws), softmax in fp64.
  std::vector<int> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return l[std::size_t(a)] > l[std::size_t(b)]; });

  const bool quick = quick_mode();  // few draws: the support checks only
  SUBCASE("top-k 5 at T = 1: only the 5 largest appear; chi-square (4 dof) < 18.47 (p = 0.001)") {
    const int n = quick ? 200 : 4000, k = 5;
    gpu::DeviceSampler dev({.temperature = 1.0f, .top_k = k, .seed = 2024});
    std::map<int, int> counts;
    for (int i = 0; i < n; ++i) ++counts[dev.sample(d.get(), vocab, nullptr)];
    std::vector<double> prob(k);
    double z = 0;
    for (int j = 0; j < k; ++j)
      z += prob[std::size_t(j)] =
          std::exp(double(l[std::size_t(order[std::size_t(j)])]) - double(l[std::size_t(order[0])]));
    double chi2 = 0;
    int inside = 0;
    for (int j = 0; j < k; ++j) {
      const double expect = n * prob[std::size_t(j)] / z;
      const int got = counts.count(order[std::size_t(j)]) ? counts[order[std::size_t(j)]] : 0;
      inside += got;
      chi2 += (got - expect) * (got - expect) / expect;
    }
    CHECK(inside == n);  // nothing outside the top 5
    CHECK(counts.size() <= std::size_t(k));
    MESSAGE("chi-square " << chi2);
    if (!quick) CHECK(chi2 < 18.47);
  }
  SUBCASE("top-p 0.6 at T = 0.5: only the smallest prefix of mass >= 0.6 appears, all of it does") {
    const float T = 0.5f;
    std::vector<double> prob(vocab);
    double z = 0;
    for (int j = 0; j < vocab; ++j)
      z += prob[std::size_t(j)] =
          std::exp((double(l[std::size_t(order[std::size_t(j)])]) - double(l[std::size_t(order[0])])) / T);
    double mass = 0;
    std::set<int> nucleus;
    std::set<int> likely;  // members with probability >= 0.005 within the nucleus: >= 15 expected draws each
    for (int j = 0; j < vocab && mass < double(0.6f); ++j) {
      mass += prob[std::size_t(j)] / z;
      nucleus.insert(order[std::size_t(j)]);
    }
    for (int j = 0; j < int(nucleus.size()); ++j)
      if (prob[std::size_t(j)] / z / mass >= 0.005) likely.insert(order[std::size_t(j)]);
    MESSAGE("nucleus of " << nucleus.size() << " ids (" << likely.size() << " likely), mass " << mass);
    gpu::DeviceSampler dev({.temperature = T, .top_p = 0.6f, .seed = 5});
    std::set<int> seen;
    for (int i = 0; i < (quick ? 200 : 3000); ++i) seen.insert(dev.sample(d.get(), vocab, nullptr));
    for (int id : seen) CHECK(nucleus.count(id) == 1);
    if (!quick)
      for (int id : likely) CHECK(seen.count(id) == 1);
  }
}

TEST_CASE(
    "sampling: CudaBackend::sample is the argmax of CudaBackend::logits; with temperature it is the host Sampler's") {
  if (!have_gpu()) return;
  RuntimeConfig c = small_config();
  c.vocab_size = 1000;
  const auto w = random_model(c, 9);
  CudaBackend backend(w);
  CudaBackend::Activations x;
  const int rows = 6;
  x.from_host(randn(std::size_t(rows) * std::size_t(c.dim), 4), rows, c.dim);
  gpu::DeviceSampler greedy;
  for (int r = 0; r < rows; ++r) {
    CAPTURE(r);
    const auto l = backend.logits(x, r);
    const std::vector<float> lh(l.begin(), l.end());
    CHECK(backend.sample(x, r, greedy) == first_max(lh));
  }
  const SamplerParams p{.temperature = 0.9f, .top_k = 50, .top_p = 0.95f, .repeat_penalty = 1.1f, .seed = 11};
  Sampler host(p);
  gpu::DeviceSampler dev(p);
  std::vector<std::int32_t> recent;
  for (int i = 0; i < 60; ++i) {
    const int r = i % rows;
    const auto l = backend.logits(x, r);
    const std::vector<float> lh(l.begin(), l.end());
    const int want = host.sample(lh, recent);
    CHECK(backend.sample(x, r, dev, recent) == want);
    recent.push_back(want);
  }
  CHECK_THROWS_AS(backend.sample(x, rows, greedy), InvalidArgument);
}

TEST_CASE("sampling: timing of device sampling vs logits copy + host Sampler, vocab 32000 (informational, no bound)") {
  if (!have_gpu()) return;
  const int vocab = 32000, iters = 200;
  const auto l = randn(vocab, 3, 2.0f);
  const auto d = to_device(l);
  std::vector<float> h(static_cast<std::size_t>(vocab));
  for (const SamplerParams& p : {SamplerParams{}, SamplerParams{.temperature = 0.8f, .top_k = 40, .top_p = 0.9f},
                                 SamplerParams{.temperature = 1.0f, .top_p = 0.9f}}) {
    gpu::DeviceSampler dev(p);
    Sampler host(p);
    (void)dev.sample(d.get(), vocab, nullptr);  // warm: buffers grow once
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) (void)dev.sample(d.get(), vocab, nullptr);
    auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) {
      LAZYLLM_CUDA_CHECK(cudaMemcpy(h.data(), d.get(), h.size() * sizeof(float), cudaMemcpyDeviceToHost));
      (void)host.sample(h);
    }
    auto t2 = std::chrono::steady_clock::now();
    const double dev_us = std::chrono::duration<double, std::micro>(t1 - t0).count() / iters;
    const double host_us = std::chrono::duration<double, std::micro>(t2 - t1).count() / iters;
    MESSAGE("T " << p.temperature << " top-k " << p.top_k << " top-p " << p.top_p << ": device " << dev_us
                 << " us/sample, copy + host " << host_us << " us/sample");
  }
}
