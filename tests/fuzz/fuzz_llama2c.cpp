// SPDX-License-Identifier: MIT
// llama2.c checkpoints (legacy and "ak42" v1): the header, the size check and the views. A file
// that loads and is small enough then runs through the pipeline with a policy and schedule
// chosen by the input's last bytes (any weights, NaN and Inf included, must give logits or a
// library error, never a crash).
#include <algorithm>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/cache/paged.hpp"
#include "lazyllm/io/llama2c.hpp"
#include "lazyllm/model/finite.hpp"
#include "lazyllm/model/sampler.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/any.hpp"

namespace {

void run_model(const lazyllm::ModelWeights& w, std::uint8_t knob) {
  using namespace lazyllm;
  const auto& c = w.config;
  if (c.n_params() > 200000 || c.max_seq_len < 2) return;  // keep an execution fast
  const int L = c.n_layers;
  const Schedule s = L > 2 ? Schedule::parse("1:0.5,2:0.7") : L > 1 ? Schedule::parse("1:0.35") : Schedule{};
  const auto pol = policy::make_policy(policy::kPolicies[knob % policy::kPolicies.size()], s, knob);
  const int n = std::min(c.max_seq_len - 1, 5);
  std::vector<std::int32_t> prompt;
  for (int i = 0; i < n; ++i) prompt.push_back((i * 7 + knob) % c.vocab_size);
  auto go = [&](auto& pipe) {
    auto logits = pipe.prefill(prompt);
    Sampler sampler(
        SamplerParams{.temperature = (knob & 8) ? 0.8f : 0.0f, .top_k = knob % 4, .top_p = 0.9f, .seed = knob});
    for (int i = 0; i + n < c.max_seq_len && i < 2; ++i) logits = pipe.decode(sampler.sample(logits));
    fuzz::expect_only_library_errors([&] { check_finite_logits(logits); });
  };
  if (knob & 16) {
    Pipeline<RuntimeConfig, policy::AnyPolicy, PagedLayout<4>, CpuBackend> pipe(CpuBackend{w}, pol);
    go(pipe);
  } else {
    Pipeline<RuntimeConfig, policy::AnyPolicy, ContiguousLayout, CpuBackend> pipe(CpuBackend{w}, pol);
    go(pipe);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lazyllm;
  const auto path = fuzz::write_file("model.bin", {reinterpret_cast<const char*>(data), size});
  fuzz::expect_only_library_errors([&] {
    const ModelWeights w = load_llama2c(path);
    check_weights(w);
    fuzz::check(w.layers.size() == std::size_t(w.config.n_layers));
    (void)find_non_finite(w);
    run_model(w, size ? data[size - 1] : 0);
  });
  return 0;
}
