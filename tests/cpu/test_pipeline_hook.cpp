// Pipeline::on_layer(): one call per layer of every step, in order, with the step's phase, size
// and |C_l|; the logits are the same with and without it; an empty function turns it off.
#include <vector>

#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/lazy.hpp"
#include "random_model.hpp"
#include "test_util.hpp"

using namespace lazyllm;

TEST_CASE("pipeline: on_layer reports every layer of every step, and changes nothing") {
  const RuntimeConfig c = test::small_config();  // 4 layers
  const ModelWeights w = test::random_model(c, 7);
  const std::vector<std::int32_t> prompt{1, 5, 9, 13, 17, 21, 25, 29, 33, 37};
  using Pipe = Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, CpuBackend>;
  const policy::Lazy pol(Schedule::parse("1:0.5,3:0.5"));

  Pipe plain(CpuBackend{w}, pol);
  const auto a = plain.prefill(prompt);
  const std::vector<float> ref_prefill(a.begin(), a.end());
  const auto b = plain.decode(40);
  const std::vector<float> ref_decode(b.begin(), b.end());

  Pipe hooked(CpuBackend{w}, pol);
  std::vector<LayerProgress> seen;
  hooked.on_layer([&](const LayerProgress& e) { seen.push_back(e); });
  const auto p = hooked.prefill(prompt);
  CHECK(std::vector<float>(p.begin(), p.end()) == ref_prefill);
  REQUIRE(seen.size() == 4);
  for (int l = 0; l < 4; ++l) {
    CAPTURE(l);
    CHECK(seen[std::size_t(l)].layer == l);
    CHECK(seen[std::size_t(l)].n_layers == 4);
    CHECK(seen[std::size_t(l)].phase == Phase::Prefill);
    CHECK(seen[std::size_t(l)].new_tokens == 10);
    CHECK(seen[std::size_t(l)].computed == hooked.stats().steps[0].computed[std::size_t(l)]);
  }
  // Pruning into layers 1 and 3 computes fewer tokens there (5 of 10 kept at p = 0.5, +1 at most
  // for the newest token).
  CHECK(seen[0].computed == 10);
  CHECK(seen[1].computed <= 6);
  CHECK(seen[1].computed >= 5);

  const auto d = hooked.decode(40);
  CHECK(std::vector<float>(d.begin(), d.end()) == ref_decode);
  REQUIRE(seen.size() == 8);
  CHECK(seen[4].phase == Phase::Decode);
  CHECK(seen[4].new_tokens == 1);

  hooked.on_layer({});
  hooked.decode(41);
  CHECK(seen.size() == 8);
}
