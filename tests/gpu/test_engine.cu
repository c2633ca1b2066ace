// The engine core on CUDA: one shared model, many sequences per step in one block pool. A batch
// of one is the pipeline bit for bit; in a batch of up to 32 sequences at Llama-2-7B layer dims
// (prompts up to 8192 tokens, dense and LazyLLM mixed, prefills and decode steps mixed) each
// sequence gets the kept sets it gets alone and its logits within a stated bound; the pool across
// sequences; OutOfBlocks and an injected failure at every layer leave every sequence as it was; a
// GPU out-of-memory in the middle of a run is a clear Error and the retried step succeeds.
#include <map>
#include <memory>
#include <vector>

#include "gpu_util.hpp"
#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/backend/cuda/cuda_backend.cuh"
#include "lazyllm/backend/cuda/selecting_backend.cuh"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/engine/engine.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/any.hpp"
#include "random_model.hpp"
#include "synthetic_inputs.hpp"

using lazyllm::test::prompt_of;

using namespace lazyllm;
using namespace lazyllm::test;

namespace {

// Bounds (normalised error max|a-b|/max|b|):
constexpr double kBatchVsAlone = 2e-2;  // the same bf16 backend, other GEMM row counts (cuBLASLt tiles)
constexpr double kVsCpu = 5e-2;         // bf16 against the fp32 reference (as test_backend.cu)

struct Req {
  std::vector<std::int32_t> prompt;
  int chunk = 0;     // prefill chunk (0: whole)
  int join = 0;      // step at which it is added
  int n_decode = 0;  // teacher-forced decode tokens after its prompt
  policy::AnyPolicy policy;
};

struct Trace {
  std::vector<std::vector<float>> logits;
  std::vector<std::vector<int>> sets;  // |S_l| and |C_l| per step
  std::vector<std::int64_t> revivals;
};

/// The requests through one engine (all of them at once, joining at their step; decode tokens
/// teacher-forced so that every run feeds the same ids).
template <class B, class Model>
std::vector<Trace> run_engine(std::shared_ptr<const Model> model, const std::vector<Req>& reqs, EngineOptions o = {},
                              bool per_sequence_gemms = false) {
  Engine<B> eng(model, o);
  if constexpr (requires { eng.backend().set_per_sequence_gemms(true); })
    eng.backend().set_per_sequence_gemms(per_sequence_gemms);
  std::vector<Trace> out(reqs.size());
  std::map<SeqId, std::size_t> which;
  std::map<SeqId, int> decoded;
  std::size_t joined = 0;
  for (int step = 0; joined < reqs.size() || eng.size() > 0; ++step) {
    for (std::size_t i = 0; i < reqs.size(); ++i)
      if (reqs[i].join == step) {
        const SeqId id = eng.add(reqs[i].prompt, reqs[i].policy, {.prefill_chunk = reqs[i].chunk});
        which[id] = i, decoded[id] = 0, ++joined;
      }
    const StepResult r = eng.step();
    for (const SeqId id : r.ready) {
      const std::size_t i = which[id];
      const auto l = eng.logits(id);
      out[i].logits.emplace_back(l.begin(), l.end());
      if (decoded[id] < reqs[i].n_decode) {
        eng.decode(id, std::int32_t((decoded[id]++ * 7 + int(i) * 13 + 5) % eng.config().vocab_size));
        continue;
      }
      for (const auto& st : eng.stats(id).steps) {
        out[i].sets.push_back(st.selected);
        out[i].sets.push_back(st.computed);
        out[i].revivals.push_back(st.revivals);
      }
      eng.remove(id);
    }
    REQUIRE(step < 1000);
  }
  CHECK(eng.pool().used() == 0);
  return out;
}

/// Each request alone (its own engine over the same model).
template <class B, class Model>
std::vector<Trace> run_alone(std::shared_ptr<const Model> model, const std::vector<Req>& reqs, EngineOptions o = {}) {
  std::vector<Trace> out;
  for (auto r : reqs) {
    r.join = 0;
    out.push_back(run_engine<B>(model, {r}, o)[0]);
  }
  return out;
}

}  // namespace

TEST_CASE("engine on CUDA: a batch of one is the pipeline, bit for bit (dense and LazyLLM, graphs on)") {
  if (!have_gpu()) return;
  const auto w = random_model(small_config(), 13, 0.3f);
  const auto model = std::make_shared<const CudaModel<gpu::bf16>>(w);
  for (const policy::AnyPolicy& pol :
       {policy::AnyPolicy(policy::Dense{}), policy::AnyPolicy(policy::Lazy(Schedule::parse("1:0.4,3:0.6")))}) {
    Pipeline<RuntimeConfig, policy::AnyPolicy, ContiguousLayout, CudaBackend> p(CudaBackend{w}, pol);
    Engine<CudaBackend> e(model, EngineOptions{.pool_blocks = 64});
    const auto prompt = prompt_of(45, 2, w.config.vocab_size);
    const SeqId id = e.add(prompt, pol);
    auto lp = p.prefill(prompt);
    e.step();
    for (int i = 0; i < 12; ++i) {
      REQUIRE(std::vector<float>(lp.begin(), lp.end()) == std::vector<float>(e.logits(id).begin(), e.logits(id).end()));
      const auto next = argmax(lp);
      lp = p.decode(next);
      e.decode(id, next);
      e.step();
    }
    CHECK(p.stats().steps.size() == e.stats(id).steps.size());
    CHECK(e.backend().graph_steps() == p.backend().graph_steps());
  }
}

TEST_CASE("engine on CUDA: 32 sequences at Llama-2-7B layer dims, prompts up to 8192, vs each alone") {
  if (!have_gpu()) return;
  for (const int kv_heads : {32, 8}) {
    CAPTURE(kv_heads);
    auto cfg = llama7b_like(3, kv_heads, 1024, 8192 + 64);
    const auto w = random_model(cfg, 21, 0.02f);
    const auto model = std::make_shared<const CudaModel<gpu::bf16>>(w);
    const Schedule s = Schedule::parse("1:0.5,2:0.5");
    const std::vector<int> lens =
        quick_mode() ? std::vector<int>{1000, 1, 17, 300}
                     : std::vector<int>{8192, 1, 2, 17, 129, 1000, 4096, 64, 3, 511, 2048, 5, 77, 1500, 900, 33};
    std::vector<Req> reqs;
    const int n = quick_mode() ? 8 : 32;
    for (int i = 0; i < n; ++i) {
      Req r;
      r.prompt = prompt_of(lens[std::size_t(i) % lens.size()], unsigned(100 + i), cfg.vocab_size);
      r.chunk = (i % 5 == 3) ? 256 : 0;  // some prefill in chunks, beside others' decode steps
      r.join = i % 3;                    // some join once others decode
      r.n_decode = 3 + i % 4;
      r.policy = (i % 2) ? policy::AnyPolicy(policy::Dense{}) : policy::AnyPolicy(policy::Lazy(s));
      reqs.push_back(std::move(r));
    }
    EngineOptions o;
    o.pool_bytes = std::int64_t(6) << 30;
    const auto ref = run_alone<CudaBackend>(model, reqs, o);
    // Per-sequence GEMMs: each sequence computes exactly what it computes alone (attention,
    // selection, gathers, the Aux Cache and the pool are batched as in the default mode).
    const auto exact = run_engine<CudaBackend>(model, reqs, o, true);
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      CAPTURE(i);
      CHECK(exact[i].sets == ref[i].sets);
      CHECK(exact[i].revivals == ref[i].revivals);
      CHECK(exact[i].logits == ref[i].logits);
    }
    // One GEMM over every sequence's rows (the default): other row counts, other cuBLASLt kernels,
    // bf16 rounding differences; dense sequences stay within the bound, and LazyLLM's selections
    // may differ only where scores tie within that rounding.
    const auto got = run_engine<CudaBackend>(model, reqs, o);
    double worst = 0;
    int lazy_steps = 0, lazy_steps_differing = 0;
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      CAPTURE(i);
      REQUIRE(got[i].logits.size() == ref[i].logits.size());
      if (i % 2) {
        CHECK(got[i].sets == ref[i].sets);
        for (std::size_t k = 0; k < got[i].logits.size(); ++k)
          worst = std::max(worst, norm_err(got[i].logits[k], ref[i].logits[k]));
      } else {
        for (std::size_t k = 0; k < got[i].sets.size(); ++k) lazy_steps_differing += got[i].sets[k] != ref[i].sets[k];
        lazy_steps += int(got[i].sets.size());
        if (got[i].sets == ref[i].sets)
          for (std::size_t k = 0; k < got[i].logits.size(); ++k)
            worst = std::max(worst, norm_err(got[i].logits[k], ref[i].logits[k]));
      }
    }
    MESSAGE("kv_heads " << kv_heads << ": " << n << " sequences, worst logits error batch vs alone " << worst
                        << "; LazyLLM step records differing (near-tie selections) " << lazy_steps_differing << " of "
                        << lazy_steps);
    CHECK(worst < kBatchVsAlone);
  }
}

TEST_CASE("engine on CUDA: a batch on the GPU against the same batch on the CPU reference; device selection") {
  if (!have_gpu()) return;
  const auto w = random_model(small_config(), 13, 0.3f);
  const Schedule s = Schedule::parse("1:0.5,2:0.3,3:0.5");
  std::vector<Req> reqs;
  for (int i = 0; i < 6; ++i)
    reqs.push_back({prompt_of(20 + 9 * i, unsigned(7 + i), w.config.vocab_size), i == 2 ? 8 : 0, i % 2, 4,
                    i % 3 == 0 ? policy::AnyPolicy(policy::Dense{}) : policy::AnyPolicy(policy::Lazy(s))});
  // A pool for all six at once (the default holds one sequence of the model's full context).
  const EngineOptions o{.pool_blocks = 256};
  const auto cpu = run_engine<CpuBackend>(std::make_shared<const CpuModel>(w), reqs, o);
  const auto model = std::make_shared<const CudaModel<gpu::bf16>>(w);
  const auto gpu = run_engine<CudaBackend>(model, reqs, o);
  const auto sel = run_engine<SelectingCudaBackend>(model, reqs, o);
  double worst = 0;
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    CAPTURE(i);
    CHECK(gpu[i].sets == cpu[i].sets);
    CHECK(sel[i].sets == gpu[i].sets);
    CHECK(sel[i].logits == gpu[i].logits);  // the rule on the device keeps what the host keeps
    for (std::size_t k = 0; k < gpu[i].logits.size(); ++k)
      worst = std::max(worst, norm_err(gpu[i].logits[k], cpu[i].logits[k]));
  }
  MESSAGE("small model, 6 sequences: worst logits error GPU vs CPU " << worst);
  CHECK(worst < kVsCpu);
}

namespace {
struct FailPlan {
  int fail_at = -1;
  int calls = 0;
};
struct FailingCuda : CudaBackend {
  FailingCuda(std::shared_ptr<const Model> m, FailPlan* plan) : CudaBackend(std::move(m)), plan_(plan) {}
  void tick() {
    if (plan_->calls++ == plan_->fail_at) throw Error("injected failure");
  }
  void layer(const LayerCall& c, Activations& x, std::span<float> s) {
    tick();
    CudaBackend::layer(c, x, s);
  }
  void layer_batch(const BatchLayerCall& c, Activations& x, std::span<float> s) {
    tick();
    CudaBackend::layer_batch(c, x, s);
  }
  FailPlan* plan_;
};
}  // namespace

TEST_CASE("engine on CUDA: a failure at any layer of any step, and OutOfBlocks, leave every sequence as it was") {
  if (!have_gpu()) return;
  const auto w = random_model(small_config(), 13, 0.3f);
  const auto model = std::make_shared<const CudaModel<gpu::bf16>>(w);
  const Schedule s = Schedule::parse("1:0.5,2:0.3,3:0.5");
  const std::vector<Req> reqs{{prompt_of(30, 1, 64), 0, 0, 3, policy::Lazy(s)},
                              {prompt_of(25, 2, 64), 9, 1, 2, policy::Static(s)},
                              {prompt_of(12, 3, 64), 0, 2, 3, policy::Lazy(s, 2)}};
  auto run = [&](int fail_at, int* calls, int* failures) {
    FailPlan plan{fail_at};
    Engine<FailingCuda> eng(model, EngineOptions{.pool_blocks = 256}, &plan);
    std::vector<std::vector<float>> out;
    std::map<SeqId, std::size_t> which;
    std::map<SeqId, int> decoded;
    std::size_t joined = 0;
    for (int step = 0; joined < reqs.size() || eng.size() > 0; ++step) {
      for (std::size_t i = 0; i < reqs.size(); ++i)
        if (reqs[i].join == step) {
          const SeqId id = eng.add(reqs[i].prompt, reqs[i].policy, {.prefill_chunk = reqs[i].chunk});
          which[id] = i, decoded[id] = 0, ++joined;
        }
      StepResult r;
      try {
        r = eng.step();
      } catch (const Error&) {
        ++*failures;
        r = eng.step();
      }
      for (const SeqId id : r.ready) {
        out.emplace_back(eng.logits(id).begin(), eng.logits(id).end());
        if (decoded[id]++ < reqs[which[id]].n_decode)
          eng.decode(id, argmax(eng.logits(id)));
        else
          eng.remove(id);
      }
    }
    CHECK(eng.pool().used() == 0);
    *calls = plan.calls;
    return out;
  };
  int calls = 0, failures = 0;
  const auto ref = run(-1, &calls, &failures);
  REQUIRE(calls > 20);
  for (int at = 0; at < calls; ++at) {
    CAPTURE(at);
    int c = 0, f = 0;
    CHECK(run(at, &c, &f) == ref);
    CHECK(f == 1);
  }
  // OutOfBlocks: a pool that holds one of two prompts (a 60-token dense prompt takes 15 blocks of
  // 4 tokens at each of the 4 layers, 16 once its decode token comes: 64 + 60 > 90).
  Engine<CudaBackend> eng(model, EngineOptions{.pool_blocks = 90, .block_tokens = 4});
  const SeqId a = eng.add(prompt_of(60, 4, 64), policy::Dense{});
  eng.step();
  const auto used = eng.pool().used();
  const SeqId b = eng.add(prompt_of(60, 5, 64), policy::Dense{});
  eng.decode(a, 7);
  CHECK_THROWS_AS(eng.step(), OutOfBlocks);
  CHECK(eng.pool().used() == used);
  CHECK(eng.pending(a) == 1);
  CHECK(eng.pending(b) == 60);
  eng.remove(b);
  CHECK(eng.step().ready == std::vector<SeqId>{a});
}

TEST_CASE("engine on CUDA: out of GPU memory in the middle of a run is a clear Error; the retried step succeeds") {
  if (!have_gpu()) return;
  auto cfg = llama7b_like(2, 32, 1024, 8192 + 8);
  const auto w = random_model(cfg, 23, 0.02f);
  const auto model = std::make_shared<const CudaModel<gpu::bf16>>(w);
  const auto big = prompt_of(8192, 9, 1024), small = prompt_of(20, 10, 1024);
  auto clean = [&] {
    Engine<CudaBackend> e(model, EngineOptions{.pool_bytes = std::int64_t(2) << 30});
    const SeqId x = e.add(small, policy::Dense{});
    e.step();
    const SeqId y = e.add(big, policy::Lazy(Schedule::parse("1:0.5")));
    e.decode(x, 3);
    e.step();
    return std::pair{std::vector<float>(e.logits(x).begin(), e.logits(x).end()),
                     std::vector<float>(e.logits(y).begin(), e.logits(y).end())};
  };
  const auto want = clean();
  Engine<CudaBackend> e(model, EngineOptions{.pool_bytes = std::int64_t(2) << 30});
  const SeqId x = e.add(small, policy::Dense{});
  e.step();
  // Take the GPU's free memory but 64 MiB: the 8192-token step's activations cannot be had.
  std::size_t free_b = 0, total_b = 0;
  LAZYLLM_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  void* hog = nullptr;
  REQUIRE(cudaMalloc(&hog, free_b - (std::size_t(64) << 20)) == cudaSuccess);
  const SeqId y = e.add(big, policy::Lazy(Schedule::parse("1:0.5")));
  e.decode(x, 3);
  bool threw = false;
  try {
    e.step();
  } catch (const Error& err) {
    threw = true;
    MESSAGE("out of memory: " << std::string(err.what()));
    CHECK(std::string(err.what()).find("cannot allocate") != std::string::npos);
  }
  CHECK(threw);
  CHECK(e.pending(y) == 8192);
  CHECK(e.pending(x) == 1);
  LAZYLLM_CUDA_CHECK(cudaFree(hog));
  e.step();
  CHECK(std::vector<float>(e.logits(x).begin(), e.logits(x).end()) == want.first);
  CHECK(std::vector<float>(e.logits(y).begin(), e.logits(y).end()) == want.second);
}
