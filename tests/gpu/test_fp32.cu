// CudaBackendFp32 (fp32 storage, fp32 GEMMs, the fp32 attention kernel): the verification mode.
// It must compute what the CPU reference computes: logits within 1e-4 (normalised) at every shape
// here, and stories260K's free-running greedy ids identical to the CPU's.
#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "gpu_util.hpp"
#include "lazyllm/backend/cuda/cuda_backend.cuh"
#include "lazyllm/io/load.hpp"
#include "lazyllm/model/sampler.hpp"
#include "lazyllm/policy/lazy.hpp"
#include "pipeline_compare.hpp"
#include "random_model.hpp"

using namespace lazyllm;
using namespace lazyllm::test;

namespace {

constexpr double kFp32Bound = 1e-4;  // fp32 both sides; only the order of the sums differs

}  // namespace

TEST_CASE("fp32: name, and forced attention kernels are refused") {
  CHECK(CudaBackendFp32::name() == "cuda-fp32");
  if (!have_gpu()) return;
  gpu::Attention attn;
  gpu::AttnParams<float> a;
  a.rows = 1;
  a.kv.store.head_dim = 64;
  CHECK_THROWS_AS(attn.run(a, nullptr, 2), InvalidArgument);
  CHECK_THROWS_AS(attn.run(a, nullptr, 0, gpu::Attention::Kernel::TensorCore), InvalidArgument);
}

TEST_CASE("fp32: small models (MHA/GQA/MQA, both RoPE forms, padded FFN) and 7B-shaped layers vs CPU") {
  if (!have_gpu()) return;
  for (auto rope : {RopeStyle::Interleaved, RopeStyle::RotateHalf})
    for (int kvh : {4, 2, 1}) {
      CAPTURE(kvh);
      auto cfg = small_config(rope, kvh);
      if (kvh == 1) cfg.hidden_dim = 44;
      const auto w = random_model(cfg, 41u + unsigned(kvh));
      const double e = worst_vs_cpu<CudaBackendFp32>(w, prompt_of(40, 3, cfg.vocab_size), 24);
      MESSAGE("fp32 small kvh=" << kvh << ": worst logits err " << e);
      CHECK(e < kFp32Bound);
    }
  for (int kvh : {32, 8}) {
    CAPTURE(kvh);
    const auto w = random_model(llama7b_like(2, kvh, 1024, 128), 12, 0.02f);
    const double e = worst_vs_cpu<CudaBackendFp32>(w, prompt_of(72, 5, 1024), 66, 128);
    MESSAGE("fp32 7B-shaped kvh=" << kvh << ": worst logits err " << e);
    CHECK(e < kFp32Bound);
  }
}

TEST_CASE("fp32: stories260K greedy ids from [1] are the CPU's, free-running, and Lazy keeps the CPU's set sizes") {
  if (!have_gpu() || !have_shared("stories260K.bin")) return;
  const auto w = load_llama2c(shared_models() / "stories260K.bin");
  auto greedy = [&](auto&& pipe) {
    std::vector<std::int32_t> ids;
    auto l = pipe.prefill(std::vector<std::int32_t>{1});
    for (int i = 0; i < 64; ++i) {
      ids.push_back(argmax(l));
      l = pipe.decode(ids.back());
    }
    return ids;
  };
  const auto cpu_ids = greedy(Pipe<CpuBackend>(CpuBackend{w}));
  const auto gpu_ids = greedy(Pipe<CudaBackendFp32>(CudaBackendFp32{w}));
  CHECK(gpu_ids == cpu_ids);

  const policy::Lazy lazy(Schedule::parse("1:0.5,2:0.5,3:0.5"));
  Pipe<CpuBackend, policy::Lazy> lc(CpuBackend{w}, lazy);
  Pipe<CudaBackendFp32, policy::Lazy> lg(CudaBackendFp32{w}, lazy);
  const auto prompt = prompt_of(100, 13, w.config.vocab_size);
  auto a = logits_copy(lc.prefill(prompt));
  auto b = logits_copy(lg.prefill(prompt));
  double worst = norm_err(b, a);
  for (int i = 0; i < 16; ++i) {
    const std::int32_t next = argmax(a);
    a = logits_copy(lc.decode(next));
    b = logits_copy(lg.decode(next));
    worst = std::max(worst, norm_err(b, a));
  }
  MESSAGE("fp32 stories260K lazy: worst logits err " << worst);
  CHECK(worst < kFp32Bound);
  REQUIRE(lc.stats().steps.size() == lg.stats().steps.size());
  for (std::size_t k = 0; k < lc.stats().steps.size(); ++k) {
    CAPTURE(k);
    CHECK(lc.stats().steps[k].selected == lg.stats().steps[k].selected);
  }
}

TEST_CASE("fp32: models/lazyqa under LazyLLM = the independent PyTorch LazyLLM (reference_lazy.json)") {
  // The cases of ctest lazyqa_pytorch_lazy (tools/train/lazy_reference.py), on the GPU: the same
  // |S_l|, |C_l| and revivals at every layer and step, logits within the fp32 bound.
  const auto dir = test_data() / ".." / ".." / "models" / "lazyqa";
  if (!have_gpu()) return;
  REQUIRE(std::filesystem::exists(dir / "reference_lazy.json"));  // tracked in the repo: never skip
  const auto w = load_model(dir);
  std::ifstream f(dir / "reference_lazy.json");
  const auto j = nlohmann::json::parse(f);
  REQUIRE(j.at("cases").size() >= 10);
  for (const auto& c : j.at("cases")) {
    const std::string sched = c.at("schedule").get<std::string>();
    CAPTURE(sched);
    Pipe<CudaBackendFp32, policy::Lazy> g(CudaBackendFp32{w},
                                          policy::Lazy(policy::schedule_from_string(sched, w.config.n_layers)));
    const auto ids = c.at("prompt_ids").get<std::vector<std::int32_t>>();
    auto l = logits_copy(g.prefill(ids));
    CHECK(norm_err(l, c.at("last_logits").get<std::vector<float>>()) < kFp32Bound);
    CHECK(g.stats().steps.at(0).selected == c.at("selected").get<std::vector<int>>());
    CHECK(int(argmax(l)) == c.at("greedy_id").get<int>());
    const auto& steps = c.at("decode");
    for (std::size_t k = 0; k < steps.size(); ++k) {
      CAPTURE(k);
      l = logits_copy(g.decode(steps[k].at("id").get<std::int32_t>()));
      const auto& st = g.stats().steps.at(k + 1);
      CHECK(norm_err(l, steps[k].at("last_logits").get<std::vector<float>>()) < kFp32Bound);
      CHECK(st.selected == steps[k].at("selected").get<std::vector<int>>());
      CHECK(st.computed == steps[k].at("computed").get<std::vector<int>>());
      CHECK(st.revivals == steps[k].at("revivals").get<std::int64_t>());
    }
  }
}
