// Device percentile selection (cuda/select.cuh) against the host rule (policy/schedule.hpp's
// percentile_threshold, then score >= threshold, the last index optionally forced): the same
// kept indices in the same order (and flags() the same set as flags), with ties, at set sizes
// from 1 to 16384; a second call captured in a CUDA graph (proof that it queues work only: no
// host sync, no allocation); and
// SelectingCudaBackend (the rule inside the pipeline on the device) against CudaBackend (the
// policy on the host) over whole runs.
#include <cmath>
#include <vector>

#include "gpu_util.hpp"
#include "greedy_run.hpp"
#include "lazyllm/backend/cuda/select.cuh"
#include "lazyllm/backend/cuda/selecting_backend.cuh"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/lazy.hpp"
#include "lazyllm/policy/schedule.hpp"
#include "random_model.hpp"

using namespace lazyllm;
using namespace lazyllm::test;

namespace {

/// The host rule, written out: indices with score >= threshold, ascending, plus n - 1 if asked.
std::vector<std::int32_t> host_keep(const std::vector<float>& s, float p, bool keep_last) {
  const float thr = detail::percentile_threshold(s, p);
  std::vector<std::int32_t> out;
  for (int i = 0; i < int(s.size()); ++i)
    if (s[std::size_t(i)] >= thr || (keep_last && i == int(s.size()) - 1)) out.push_back(i);
  return out;
}

/// Attention-like scores: positive, with many exact ties when `ties` (a few distinct values).
std::vector<float> scores_of(int n, unsigned seed, bool ties) {
  auto v = randn(std::size_t(n), seed, 1.0f);
  for (auto& x : v) x = ties ? std::round(std::abs(x) * 2.0f) / 8.0f : std::exp(x) / float(n);
  return v;
}

struct DeviceSet {
  gpu::DeviceBuffer<float> scores;
  gpu::DeviceBuffer<std::int32_t> kept;
  gpu::DeviceBuffer<int> count;
  explicit DeviceSet(const std::vector<float>& s) : scores(s.size()), kept(s.size()), count(1) {
    LAZYLLM_CUDA_CHECK(cudaMemcpy(scores.get(), s.data(), s.size() * sizeof(float), cudaMemcpyHostToDevice));
  }
  std::vector<std::int32_t> read() const {
    int n = 0;
    LAZYLLM_CUDA_CHECK(cudaMemcpy(&n, count.get(), sizeof(int), cudaMemcpyDeviceToHost));
    std::vector<std::int32_t> out(std::size_t(std::max(n, 0)));
    if (n > 0)
      LAZYLLM_CUDA_CHECK(cudaMemcpy(out.data(), kept.get(), out.size() * sizeof(std::int32_t), cudaMemcpyDeviceToHost));
    return out;
  }
};

}  // namespace

TEST_CASE("select: device percentile selection equals the host rule (ties, sizes 1..16384)") {
  if (!have_gpu()) return;
  gpu::PercentileSelect sel;
  int cases = 0;
  for (int n : {1, 2, 3, 7, 100, 513, 4097, 16384})
    for (float p : {0.0f, 0.3f, 0.5f, 0.9f, 0.999f})
      for (bool ties : {false, true})
        for (bool keep_last : {false, true}) {
          CAPTURE(n);
          CAPTURE(p);
          CAPTURE(ties);
          CAPTURE(keep_last);
          const auto s = scores_of(n, unsigned(n * 7 + int(p * 1000) + ties), ties);
          DeviceSet d(s);
          sel.run(d.scores.get(), n, p, keep_last, d.kept.get(), d.count.get(), nullptr);
          const auto got = d.read();
          const auto want = host_keep(s, p, keep_last);
          CHECK(got == want);
          // The rule's arithmetic: at least n - floor(p n) kept (more only through ties / the last).
          CHECK(got.size() >= detail::percentile_keep_count(std::size_t(n), p));
          // flags() alone (SelectingCudaBackend::layer_select's path): 1 exactly at the kept indices.
          const auto un = std::size_t(n);
          const std::uint8_t* flags = sel.flags(d.scores.get(), n, p, keep_last, nullptr);
          std::vector<std::uint8_t> f(un), want_f(un, 0);
          LAZYLLM_CUDA_CHECK(cudaMemcpy(f.data(), flags, f.size(), cudaMemcpyDeviceToHost));
          for (auto i : want) want_f[std::size_t(i)] = 1;
          CHECK(f == want_f);
          ++cases;
        }
  CHECK(cases == 8 * 5 * 2 * 2);
}

TEST_CASE("select: a sized call is graph-capturable and gives the same result") {
  if (!have_gpu()) return;
  const int n = 4096;
  const auto s = scores_of(n, 99, true);
  DeviceSet d(s);
  gpu::PercentileSelect sel;
  sel.reserve(n);
  cudaStream_t st = nullptr;
  LAZYLLM_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  LAZYLLM_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  sel.run(d.scores.get(), n, 0.5f, true, d.kept.get(), d.count.get(), st);
  LAZYLLM_CUDA_CHECK(cudaStreamEndCapture(st, &graph));
  LAZYLLM_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  LAZYLLM_CUDA_CHECK(cudaMemsetAsync(d.count.get(), 0, sizeof(int), st));
  LAZYLLM_CUDA_CHECK(cudaGraphLaunch(exec, st));
  LAZYLLM_CUDA_CHECK(cudaStreamSynchronize(st));
  CHECK(d.read() == host_keep(s, 0.5f, true));
  LAZYLLM_CUDA_CHECK(cudaGraphExecDestroy(exec));
  LAZYLLM_CUDA_CHECK(cudaGraphDestroy(graph));
  LAZYLLM_CUDA_CHECK(cudaStreamDestroy(st));
}

TEST_CASE("select: bad arguments are refused with a clear error") {
  if (!have_gpu()) return;
  gpu::PercentileSelect sel;
  DeviceSet d(std::vector<float>{1.0f, 2.0f});
  CHECK_THROWS_AS(sel.run(d.scores.get(), 0, 0.5f, true, d.kept.get(), d.count.get(), nullptr), InvalidArgument);
  CHECK_THROWS_AS(sel.run(d.scores.get(), 2, 1.0f, true, d.kept.get(), d.count.get(), nullptr), InvalidArgument);
  CHECK_THROWS_AS(sel.run(d.scores.get(), 2, -0.1f, true, d.kept.get(), d.count.get(), nullptr), InvalidArgument);
  CHECK_THROWS_AS(sel.run(nullptr, 2, 0.5f, true, d.kept.get(), d.count.get(), nullptr), InvalidArgument);
  CHECK_THROWS_AS(sel.run(d.scores.get(), 2, 0.5f, true, nullptr, d.count.get(), nullptr), InvalidArgument);
  CHECK_THROWS_AS(sel.flags(nullptr, 2, 0.5f, true, nullptr), InvalidArgument);
  CHECK_THROWS_AS(sel.flags(d.scores.get(), 0, 0.5f, true, nullptr), InvalidArgument);
  CHECK_THROWS_AS(sel.flags(d.scores.get(), 2, 1.0f, true, nullptr), InvalidArgument);
}

TEST_CASE("select: SelectingCudaBackend gives CudaBackend's runs (host selection) bit for bit, 1..4096 tokens") {
  if (!have_gpu()) return;
  // The rule on the device (PercentileSelect::flags on the layer's scores) must keep exactly what
  // the host policy keeps from the same scores copied back: same |S_l| and |C_l| per layer and
  // step, same revivals, same logits. A 4-layer model (MHA/GQA) over prompts that give single- and
  // multi-block sorts, with decode steps that re-select and revive.
  for (const auto& [kv_heads, n] : {std::pair{4, 1}, std::pair{4, 129}, std::pair{2, 1000}, std::pair{4, 4096}}) {
    RuntimeConfig c = small_config();
    c.n_kv_heads = kv_heads;
    c.max_seq_len = 4200;
    const auto w = random_model(c, 3, 0.3f);
    const policy::Lazy pol(Schedule::parse("1:0.5,2:0.3,3:0.5"));
    const auto ids = prompt_of(n, 23, c.vocab_size);
    auto run = [&](auto backend) {
      Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, decltype(backend)> g(std::move(backend), pol);
      auto [all, sets] = greedy_run(g, ids, 6);
      return std::tuple{all, sets, g.stats().total_revivals()};
    };
    CAPTURE(n);
    CAPTURE(kv_heads);
    const auto host = run(CudaBackend{w});
    const auto dev = run(SelectingCudaBackend{w});
    SelectingCudaBackend off{w};
    off.set_device_select(false);
    const auto dev_off = run(std::move(off));
    CHECK(std::get<1>(dev) == std::get<1>(host));
    CHECK(std::get<2>(dev) == std::get<2>(host));
    CHECK(std::get<0>(dev) == std::get<0>(host));
    CHECK(std::get<0>(dev_off) == std::get<0>(host));
    MESSAGE("n " << n << ": revivals " << std::get<2>(host));
  }
}
