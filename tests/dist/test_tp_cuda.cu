// TpCudaBackend (dist/tp_cuda_backend.cuh) over 1, 2, 4 and 8 GPUs (as many as are visible),
// one thread per GPU, against the CPU reference: dense logits within the CUDA backend's bound,
// and on every rank the same scores, selections and logits bit for bit -- on small random models
// (MHA, GQA split and replicated, MQA) and on the Llama 2 70B layer shape with 2 layers.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/dist/tp_cuda_backend.cuh"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/any.hpp"
#include "random_model.hpp"
#include "synthetic_inputs.hpp"

using lazyllm::test::norm_err;
using lazyllm::test::prompt_of;

using namespace lazyllm;

namespace tp_cuda_test {
struct Log {
  std::vector<std::vector<std::int32_t>> kept;
  std::vector<std::vector<float>> scores;
};
/// Records each selection (kept positions, the scores it saw) around a shipped policy.
struct Recorder {
  policy::AnyPolicy inner;
  std::shared_ptr<Log> log = std::make_shared<Log>();
  bool prunes_into(int l) const { return inner.prunes_into(l); }
  void select(const SelectArgs& a, std::span<std::uint8_t> keep) const {
    inner.select(a, keep);
    log->scores.emplace_back(a.scores.begin(), a.scores.end());
    std::vector<std::int32_t> k;
    for (std::size_t i = 0; i < keep.size(); ++i)
      if (keep[i] || i + 1 == keep.size()) k.push_back(a.positions[i]);
    log->kept.push_back(std::move(k));
  }
  std::string_view name() const { return inner.name(); }
  friend bool operator==(const Recorder& a, const Recorder& b) { return a.inner == b.inner; }
  friend std::ostream& operator<<(std::ostream& os, const Recorder& r) { return os << r.inner; }
};

}  // namespace tp_cuda_test
using tp_cuda_test::Log;
using tp_cuda_test::Recorder;

namespace {

constexpr double kLogitsBound = 5e-2;  // normalised, as the single-GPU CUDA backend's tests

int visible_gpus() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

struct Trace {
  std::vector<std::vector<float>> logits;
  Log log;
};

/// Prefill of `prefill` tokens of `ids`, then the rest teacher-forced.
template <class Backend>
Trace run(Backend be, const policy::AnyPolicy& pol, const std::vector<std::int32_t>& ids, int prefill) {
  Recorder rec{pol};
  Pipeline<RuntimeConfig, Recorder, ContiguousLayout, Backend> p(std::move(be), rec, {}, int(ids.size()) + 1);
  Trace t;
  auto l = p.prefill(std::span(ids).first(std::size_t(prefill)));
  t.logits.emplace_back(l.begin(), l.end());
  for (std::size_t i = std::size_t(prefill); i < ids.size(); ++i) {
    l = p.decode(ids[i]);
    t.logits.emplace_back(l.begin(), l.end());
  }
  t.log = *rec.log;
  return t;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
}

/// The model through TpCudaBackend at `tp` against the CPU: returns the worst normalised logits
/// error of rank 0 (dense) and checks that every rank saw and did the same.
double check_tp(const ModelWeights& w, int tp, const policy::AnyPolicy& pol, const std::vector<std::int32_t>& ids,
                int prefill, const Trace& cpu) {
  std::vector<Trace> got(static_cast<std::size_t>(tp));
  run_nccl_ranks(NcclGroup::first_devices(tp),
                 [&](NcclComm& c) { got[std::size_t(c.rank())] = run(TpCudaBackend(w, c), pol, ids, prefill); });
  for (int r = 1; r < tp; ++r) {
    CAPTURE(r);
    CHECK(got[std::size_t(r)].log.kept == got[0].log.kept);
    REQUIRE(got[std::size_t(r)].log.scores.size() == got[0].log.scores.size());
    for (std::size_t s = 0; s < got[0].log.scores.size(); ++s)
      CHECK(same_bits(got[std::size_t(r)].log.scores[s], got[0].log.scores[s]));
    for (std::size_t s = 0; s < got[0].logits.size(); ++s)
      CHECK(same_bits(got[std::size_t(r)].logits[s], got[0].logits[s]));
  }
  std::size_t same_sets = 0;
  for (std::size_t s = 0; s < std::min(cpu.log.kept.size(), got[0].log.kept.size()); ++s)
    same_sets += cpu.log.kept[s] == got[0].log.kept[s];
  double worst = 0;
  for (std::size_t s = 0; s < cpu.logits.size(); ++s)
    worst = std::max(worst, norm_err(got[0].logits[s], cpu.logits[s]));
  MESSAGE("tp " << tp << " " << pol << ": worst logits err " << worst << ", selections equal to the CPU's " << same_sets
                << " of " << cpu.log.kept.size());
  return worst;
}

}  // namespace

TEST_CASE("tp cuda: small random models (MHA, GQA split/replicated, MQA) at tp = 1, 2, 4 vs the CPU") {
  const int gpus = visible_gpus();
  if (gpus == 0) {
    MESSAGE("SKIPPED: no CUDA device");
    return;
  }
  const Schedule s = Schedule::parse("1:0.5,3:0.5");
  for (const int kvh : {4, 2, 1}) {
    CAPTURE(kvh);
    const auto w = test::random_model(test::small_config(RopeStyle::RotateHalf, kvh), 7u + unsigned(kvh));
    const auto ids = prompt_of(40, 3, w.config.vocab_size);
    for (const auto& pol : {policy::AnyPolicy(policy::Dense{}), policy::AnyPolicy(policy::Lazy(s))}) {
      CAPTURE(pol);
      const Trace cpu = run(CpuBackend(w), pol, ids, 24);
      for (const int tp : {1, 2, 4}) {
        if (tp > gpus) continue;
        CAPTURE(tp);
        const double e = check_tp(w, tp, pol, ids, 24, cpu);
        if (pol.name() == "dense") CHECK(e < kLogitsBound);
      }
    }
  }
}

TEST_CASE("tp cuda: the Llama 2 70B layer shape, 2 layers, at tp = 2, 4, 8 vs the CPU") {
  const int gpus = visible_gpus();
  if (gpus < 2) {
    MESSAGE("SKIPPED: needs 2 GPUs, " << gpus << " visible");
    return;
  }
  RuntimeConfig c;
  c.dim = 8192, c.hidden_dim = 28672, c.n_layers = 2, c.n_heads = 64, c.n_kv_heads = 8, c.vocab_size = 1024;
  c.max_seq_len = 128, c.rope_style = RopeStyle::RotateHalf, c.rope_theta = 10000.0f;
  const auto w = test::random_model(c, 9, 0.02f);
  const auto ids = prompt_of(48, 7, c.vocab_size);
  for (const auto& pol :
       {policy::AnyPolicy(policy::Dense{}), policy::AnyPolicy(policy::Lazy(Schedule::parse("1:0.5")))}) {
    CAPTURE(pol);
    const Trace cpu = run(CpuBackend(w), pol, ids, 40);
    for (const int tp : {2, 4, 8}) {
      if (tp > gpus) {
        MESSAGE("SKIPPED: tp " << tp << " needs " << tp << " GPUs, " << gpus << " visible");
        continue;
      }
      CAPTURE(tp);
      const double e = check_tp(w, tp, pol, ids, 40, cpu);
      if (pol.name() == "dense") CHECK(e < kLogitsBound);
    }
  }
}
