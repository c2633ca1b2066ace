// The whole CUDA backend against CpuBackend: one layer at Llama-2-7B dims, whole models through
// the Pipeline (random small, Llama-2-7B-shaped with 2 layers, stories260K), pruning statistics,
// layouts, streams and errors.
#include <numeric>

#include "gpu_util.hpp"
#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/backend/cuda/cuda_backend.cuh"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/cache/paged.hpp"
#include "lazyllm/config/llama2.hpp"
#include "lazyllm/model/sampler.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/dense.hpp"
#include "lazyllm/policy/lazy.hpp"
#include "random_model.hpp"

using namespace lazyllm;
using namespace lazyllm::test;

template <class Policy, class Layout = ContiguousLayout>
using GpuPipe = Pipeline<RuntimeConfig, Policy, Layout, CudaBackend>;
template <class Policy, class Layout = ContiguousLayout>
using CpuPipe = Pipeline<RuntimeConfig, Policy, Layout, CpuBackend>;

namespace {

// Bounds (normalised error max|a-b|/max|b|), bf16 weights against the fp32 reference:
constexpr double kLayerBound = 2e-2;   // one decoder layer's output (residual stream)
constexpr double kScoresBound = 5e-2;  // last-row attention scores of a layer
constexpr double kLogitsBound = 5e-2;  // logits after a whole model

std::vector<float> copy_of(std::span<const float> s) { return {s.begin(), s.end()}; }

}  // namespace

TEST_CASE("no GPU: constructing a CudaBackend throws a clear Error") {
  int n = 0;
  const bool none = cudaGetDeviceCount(&n) != cudaSuccess || n == 0;
  (void)cudaGetLastError();
  const auto w = random_model(small_config(), 1);
  if (none) {
    CHECK_THROWS_WITH_AS(CudaBackend{w}, doctest::Contains("no CUDA GPU is available"), Error);
  } else {
    MESSAGE("a GPU is visible: checking that construction succeeds instead");
    CHECK_NOTHROW(CudaBackend{w});
  }
}

TEST_CASE("one layer at Llama-2-7B dims (MHA and GQA) vs CpuBackend::layer, prompts 1, 7, 129") {
  if (!have_gpu()) return;
  for (int kvh : {32, 8}) {
    const auto w = random_model(llama7b_like(1, kvh), 3, 0.02f);
    CpuBackend cpu(w);
    CudaBackend gpu(w);
    for (int n : {1, 7, 129}) {
      CAPTURE(kvh);
      CAPTURE(n);
      cpu.allocate(n + 8, 0);
      gpu.allocate(n + 8, 0);
      const auto ids = prompt_of(n, 5, w.config.vocab_size);
      // positions with a gap (a pruned set), slots reversed
      std::vector<std::int32_t> pos(n);
      std::vector<std::int64_t> slots(n);
      for (int i = 0; i < n; ++i) pos[i] = 2 * i + (i > n / 2 ? 5 : 0), slots[i] = n + 7 - i;
      const LayerCall call{0, pos, slots, pos, slots, true};
      CpuBackend::Activations cx;
      CudaBackend::Activations gx;
      cpu.embed(ids, cx);
      gpu.embed(ids, gx);
      std::vector<float> cs(n), gs(n);
      cpu.layer(call, cx, cs);
      gpu.layer(call, gx, gs);
      const auto got = gx.to_host();
      const double e = norm_err(got, cx.data), es = norm_err(gs, cs);
      MESSAGE("layer kvh=" << kvh << " n=" << n << ": output err " << e << ", scores err " << es);
      CHECK(e < kLayerBound);
      CHECK(es < kScoresBound);
      const auto cl = copy_of(cpu.logits(cx, n - 1));
      CHECK(norm_err(gpu.logits(gx, n - 1), cl) < kLogitsBound);
    }
  }
}

TEST_CASE("pipeline, small random model (MHA/GQA/MQA, both RoPE forms): dense and lazy vs CPU") {
  if (!have_gpu()) return;
  for (auto rope : {RopeStyle::Interleaved, RopeStyle::RotateHalf})
    for (int kvh : {4, 2, 1}) {
      CAPTURE(kvh);
      const auto w = random_model(small_config(rope, kvh), 7u + unsigned(kvh));
      const auto ids = prompt_of(40, 3, w.config.vocab_size);
      CpuPipe<policy::Dense> c(CpuBackend{w});
      GpuPipe<policy::Dense> g(CudaBackend{w});
      double worst = 0;
      auto lc = copy_of(c.prefill(std::span(ids).first(24)));
      worst = std::max(worst, norm_err(g.prefill(std::span(ids).first(24)), lc));
      for (int i = 24; i < 40; ++i) {  // teacher-forced decode
        lc = copy_of(c.decode(ids[i]));
        worst = std::max(worst, norm_err(g.decode(ids[i]), lc));
      }
      MESSAGE("small dense kvh=" << kvh << ": worst logits err " << worst);
      CHECK(worst < kLogitsBound);
    }
}

TEST_CASE("pipeline, hidden_dim not a multiple of 8 (zero-padded FFN, as stories260K's 172) vs CPU") {
  if (!have_gpu()) return;
  auto cfg = small_config(RopeStyle::Interleaved, 2);
  cfg.hidden_dim = 44;
  const auto w = random_model(cfg, 19);
  const auto ids = prompt_of(30, 5, w.config.vocab_size);
  CpuPipe<policy::Dense> c(CpuBackend{w});
  GpuPipe<policy::Dense> g(CudaBackend{w});
  auto lc = copy_of(c.prefill(std::span(ids).first(20)));
  double worst = norm_err(g.prefill(std::span(ids).first(20)), lc);
  for (int i = 20; i < 30; ++i) {
    lc = copy_of(c.decode(ids[i]));
    worst = std::max(worst, norm_err(g.decode(ids[i]), lc));
  }
  MESSAGE("hidden 44 (padded to 48): worst logits err " << worst);
  CHECK(worst < kLogitsBound);
}

TEST_CASE("pipeline, Llama-2-7B-shaped model with 2 layers, vocab 1024: dense vs CPU") {
  if (!have_gpu()) return;
  const auto w = random_model(llama7b_like(2), 9, 0.02f);
  const auto ids = prompt_of(48, 7, w.config.vocab_size);
  CpuPipe<policy::Dense> c(CpuBackend{w}, {}, {}, 64);
  GpuPipe<policy::Dense> g(CudaBackend{w}, {}, {}, 64);
  auto lc = copy_of(c.prefill(std::span(ids).first(40)));
  double worst = norm_err(g.prefill(std::span(ids).first(40)), lc);
  for (int i = 40; i < 48; ++i) {
    lc = copy_of(c.decode(ids[i]));
    worst = std::max(worst, norm_err(g.decode(ids[i]), lc));
  }
  MESSAGE("7B-shaped 2-layer: worst logits err " << worst);
  CHECK(worst < kLogitsBound);
}

TEST_CASE("warm_up: the same logits, bit for bit, with and without it") {
  if (!have_gpu()) return;
  const auto w = random_model(llama7b_like(2), 11, 0.02f);
  const auto ids = prompt_of(36, 5, w.config.vocab_size);
  CudaBackend warm{w};
  warm.warm_up(32);
  warm.warm_up(3);  // the GEMV sizes: nothing to do
  GpuPipe<policy::Dense> a(CudaBackend{w}, {}, {}, 64), b(std::move(warm), {}, {}, 64);
  const auto la = copy_of(a.prefill(std::span(ids).first(32)));
  const auto lb = copy_of(b.prefill(std::span(ids).first(32)));
  CHECK(la == lb);
  for (int i = 32; i < 36; ++i) CHECK(copy_of(a.decode(ids[i])) == copy_of(b.decode(ids[i])));
}

TEST_CASE("bf16 / fp16 source weights (keep_source_dtype) give the logits of their fp32 values, bit for bit") {
  if (!have_gpu()) return;
  auto c = small_config(RopeStyle::RotateHalf);
  c.hidden_dim = 44;  // padded FFN rows: the bf16 row copy must honour the destination stride
  for (const bool tied : {false, true}) {
    c.tied_embeddings = tied;
    const auto w = random_model(c, 17);
    const auto ids = prompt_of(40, 9, c.vocab_size);
    for (const TensorDType t : {TensorDType::BF16, TensorDType::F16}) {
      CAPTURE(tied);
      CAPTURE(to_string(t));
      const auto [bits, vals] = rounded_to(w, t);
      REQUIRE(!bits.all_f32());
      GpuPipe<policy::Dense> a(CudaBackend{bits}, {}, {}, 64), b(CudaBackend{vals}, {}, {}, 64);
      CHECK(copy_of(a.prefill(std::span(ids).first(32))) == copy_of(b.prefill(std::span(ids).first(32))));
      for (int i = 32; i < 40; ++i) CHECK(copy_of(a.decode(ids[i])) == copy_of(b.decode(ids[i])));
    }
  }
}

// stories260K is a trained 260K-parameter model with a flat next-token distribution: in 19 of
// the 64 greedy steps from [1] the CPU's top-2 logits are within 5% of the largest logit, and
// rounding only its weights to bf16 in the fp32 CPU backend already changes the logits by up to
// 8.3% (normalised) and flips step 54. Identical greedy ids are therefore not attainable with bf16
// weights; the test bounds the logits error and the number of flips, teacher-forced with the
// CPU's ids so that one flip does not change every later step, and logs every flip's margin.
constexpr double kStoriesLogitsBound = 0.2;  // measured 0.128 (weights-only bf16 on the CPU: 0.083)
constexpr int kStoriesMaxFlips = 8;          // of 64 steps; measured 5
constexpr double kFlipMargin = 0.15;         // a flip needs a top-2 margin < 2 x the step's error

double top2_margin(std::span<const float> v) {
  float a = -INFINITY, b = -INFINITY, mx = 0;
  for (float x : v) {
    mx = std::max(mx, std::abs(x));
    if (x > a) b = a, a = x;
    else if (x > b) b = x;
  }
  return double(a - b) / std::max(mx, 1e-30f);
}

TEST_CASE("stories260K: greedy 64 ids from prompt [1] vs the CPU backend (bounded, near-tie flips only)") {
  if (!have_gpu() || !have_shared("stories260K.bin")) return;
  const auto w = load_llama2c(shared_models() / "stories260K.bin");
  const std::vector<std::int32_t> prompt{1};
  CpuPipe<policy::Dense> c(CpuBackend{w});
  GpuPipe<policy::Dense> g(CudaBackend{w});
  std::vector<std::int32_t> ic, ig;
  double worst = 0;
  int flips = 0, near_ties = 0;
  auto lc = copy_of(c.prefill(prompt));
  auto lg = copy_of(g.prefill(prompt));
  for (int i = 0; i < 64; ++i) {
    worst = std::max(worst, norm_err(lg, lc));
    ic.push_back(argmax(lc));
    ig.push_back(argmax(lg));
    near_ties += top2_margin(lc) < 0.05;
    if (ig.back() != ic.back()) {
      ++flips;
      MESSAGE("step " << i << ": GPU id " << ig.back() << ", CPU id " << ic.back() << ", CPU top-2 margin "
                      << top2_margin(lc));
      CHECK(top2_margin(lc) < kFlipMargin);
    }
    lc = copy_of(c.decode(ic.back()));
    lg = copy_of(g.decode(ic.back()));
  }
  MESSAGE("stories260K greedy (teacher-forced): worst logits err " << worst << ", argmax flips " << flips
                                                                   << " of 64, CPU steps with margin < 5%: " << near_ties);
  CHECK(worst < kStoriesLogitsBound);
  CHECK(flips <= kStoriesMaxFlips);
  // The GPU alone is deterministic: the same greedy run twice gives the same ids.
  auto run = [&] {
    GpuPipe<policy::Dense> p(CudaBackend{w});
    std::vector<std::int32_t> ids;
    auto l = p.prefill(prompt);
    for (int i = 0; i < 64; ++i) {
      ids.push_back(argmax(l));
      l = p.decode(ids.back());
    }
    return ids;
  };
  CHECK(run() == run());
}

// |S_l| follows the percentile rule (keep the scores >= the value at rank floor(p n)), so CPU and
// GPU counts are equal unless scores tie exactly at the threshold on one side (ties are kept);
// bf16 noise breaks fp32 ties and can make new ones. So: equal, or the larger count is the
// tie-extended one. Which tokens are kept can differ where two scores are within bf16 noise,
// so the counts computed per step (which depend on earlier steps' caches) are reported only:
// the fp32 CPU with bf16-rounded weights already differs there from the fp32 CPU in 10 of 33 steps.
TEST_CASE("stories260K: Lazy 1:0.5,2:0.5,3:0.5 gives the CPU's |S_l| per layer per step") {
  if (!have_gpu() || !have_shared("stories260K.bin")) return;
  const auto w = load_llama2c(shared_models() / "stories260K.bin");
  const Schedule sched = Schedule::parse("1:0.5,2:0.5,3:0.5");
  const policy::Lazy pol(sched);
  CpuPipe<policy::Lazy> c(CpuBackend{w}, pol);
  GpuPipe<policy::Lazy> g(CudaBackend{w}, pol);
  const auto prompt = prompt_of(100, 17, w.config.vocab_size);
  auto lc = copy_of(c.prefill(prompt));
  g.prefill(prompt);
  for (int i = 0; i < 32; ++i) {  // teacher-forced with the CPU's greedy ids
    const auto next = argmax(lc);
    lc = copy_of(c.decode(next));
    g.decode(next);
  }
  const auto& sc = c.stats().steps;
  const auto& sg = g.stats().steps;
  REQUIRE(sc.size() == sg.size());
  int equal = 0, tie_steps = 0, computed_diff = 0;
  for (std::size_t s = 0; s < sc.size(); ++s) {
    CAPTURE(s);
    CHECK(sg[s].selected[0] == sg[s].context);
    if (sc[s].selected == sg[s].selected) {
      ++equal;
    } else {
      ++tie_steps;
      std::string a, b;
      for (int v : sc[s].selected) a += std::to_string(v) + " ";
      for (int v : sg[s].selected) b += std::to_string(v) + " ";
      MESSAGE("step " << s << ": CPU |S_l| " << a << "GPU |S_l| " << b);
      // the first layer where they differ: the larger count must exceed the percentile count
      for (int l = 1; l < w.config.n_layers; ++l) {
        if (sc[s].selected[l] == sg[s].selected[l]) continue;
        const auto& big = sc[s].selected[l] > sg[s].selected[l] ? sc[s] : sg[s];
        const float p = sched.percentile_into(l);
        CHECK(p > 0.0f);
        CHECK(std::size_t(big.selected[l]) > detail::percentile_keep_count(std::size_t(big.selected[l - 1]), p));
        break;
      }
    }
    computed_diff += sc[s].computed != sg[s].computed;
  }
  MESSAGE("stories260K lazy: " << sc.size() << " steps, |S_l| equal in " << equal << ", tie-explained differences in "
                               << tie_steps << "; steps whose computed counts differ " << computed_diff
                               << ", revivals CPU " << c.stats().total_revivals() << " GPU " << g.stats().total_revivals());
  CHECK(tie_steps <= 2);
}

TEST_CASE("paged and contiguous layouts, default and user streams: identical GPU results") {
  if (!have_gpu()) return;
  const auto w = random_model(small_config(), 13, 0.3f);
  const auto ids = prompt_of(45, 1, w.config.vocab_size);
  const policy::Lazy pol(Schedule::parse("1:0.4,3:0.6"));
  cudaStream_t stream = nullptr;
  LAZYLLM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  {
    GpuPipe<policy::Lazy> a(CudaBackend{w}, pol);
    GpuPipe<policy::Lazy, PagedLayout<16>> b(CudaBackend{w, stream}, pol);
    auto la = copy_of(a.prefill(ids));
    auto lb = copy_of(b.prefill(ids));
    for (int i = 0; i < 20; ++i) {
      REQUIRE(la == lb);  // bit-identical: same kernels, only the slots differ
      const auto next = argmax(la);
      la = copy_of(a.decode(next));
      lb = copy_of(b.decode(next));
    }
    CHECK(a.stats().total_revivals() > 0);
    CHECK(a.stats().aux_peak_bytes == a.stats().aux_peak_entries * w.config.dim * 4);
  }
  if (have_shared("stories260K.bin")) {
    const auto s = load_llama2c(shared_models() / "stories260K.bin");
    const policy::Lazy p2(Schedule::parse("1:0.5,2:0.5,3:0.5"));
    GpuPipe<policy::Lazy> a(CudaBackend{s}, p2);
    GpuPipe<policy::Lazy, PagedLayout<16>> b(CudaBackend{s, stream}, p2);
    auto la = copy_of(a.prefill(ids));
    auto lb = copy_of(b.prefill(ids));
    for (int i = 0; i < 30; ++i) {
      REQUIRE(la == lb);
      const auto next = argmax(la);
      la = copy_of(a.decode(next));
      lb = copy_of(b.decode(next));
    }
  }
  LAZYLLM_CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST_CASE("errors: KV cache larger than the GPU, bad layer call") {
  if (!have_gpu()) return;
  const auto w = random_model(small_config(), 2);
  CudaBackend b(w);
  const std::int64_t huge = std::int64_t(1) << 40;
  CHECK_THROWS_WITH_AS(b.allocate(huge, 0), doctest::Contains("bytes"), Error);
  b.allocate(16, 0);  // still usable afterwards
  CudaBackend::Activations x;
  const std::vector<std::int32_t> ids{1, 2, 3};
  b.embed(ids, x);
  const std::vector<std::int32_t> pos{0, 1};
  const std::vector<std::int64_t> slots{0, 1};
  std::vector<float> scores;
  CHECK_THROWS_AS(b.layer(LayerCall{0, pos, slots, pos, slots, false}, x, scores), InvalidArgument);
  const std::vector<std::int32_t> bad{1, 64};
  CHECK_THROWS_AS(b.embed(bad, x), InvalidArgument);
}

TEST_CASE("one Llama-2-7B layer: timing of prefill 4096 and decode (informational, no bound)") {
  if (!have_gpu()) return;
  const auto w = random_model(llama7b_like(1), 4, 0.02f);
  CudaBackend gpu(w);
  const int n = 4096;
  gpu.allocate(n + 1, 0);
  const auto ids = prompt_of(n, 3, w.config.vocab_size);
  std::vector<std::int32_t> pos(n + 1);
  std::vector<std::int64_t> slots(n + 1);
  std::iota(pos.begin(), pos.end(), 0);
  std::iota(slots.begin(), slots.end(), 0);
  CudaBackend::Activations x;
  std::vector<float> scores(n + 1);
  cudaEvent_t e0, e1;
  LAZYLLM_CUDA_CHECK(cudaEventCreate(&e0));
  LAZYLLM_CUDA_CHECK(cudaEventCreate(&e1));
  auto timed = [&](auto&& fn) {
    gpu.synchronize();
    LAZYLLM_CUDA_CHECK(cudaEventRecord(e0, gpu.stream()));
    fn();
    LAZYLLM_CUDA_CHECK(cudaEventRecord(e1, gpu.stream()));
    LAZYLLM_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    LAZYLLM_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    return ms;
  };
  const std::span<const std::int32_t> p(pos.data(), n);
  const std::span<const std::int64_t> s(slots.data(), n);
  // the same K/V slots are rewritten each repetition (same values)
  float best = 1e30f;
  for (int rep = 0; rep < 3; ++rep) {
    gpu.embed(ids, x);
    best = std::min(best, timed([&] { gpu.layer(LayerCall{0, p, s, p, s, false}, x, scores); }));
  }
  const std::vector<std::int32_t> one_id{5};
  const std::span<const std::int32_t> qp(pos.data() + n, 1);
  const std::span<const std::int64_t> qs(slots.data() + n, 1);
  float dec = 1e30f;
  for (int rep = 0; rep < 5; ++rep) {
    gpu.embed(one_id, x);
    dec = std::min(dec, timed([&] { gpu.layer(LayerCall{0, qp, qs, pos, slots, false}, x, scores); }));
  }
  MESSAGE("7B layer: prefill 4096 rows " << best << " ms (x32 layers = " << best * 32 << " ms), decode row over "
                                         << n + 1 << " keys " << dec << " ms");
  LAZYLLM_CUDA_CHECK(cudaEventDestroy(e0));
  LAZYLLM_CUDA_CHECK(cudaEventDestroy(e1));
}
