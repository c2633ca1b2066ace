// Pipeline::on_layer(): one call per layer of every step, in order, with the step's phase, size
// and |C_l|; the logits are the same with and without it; an empty function turns it off.
#include <functional>
#include <stdexcept>
#include <vector>

#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/model/sampler.hpp"
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

namespace {

/// A GraphStepBackend on the CPU: between begin_graph_step and end_graph_step it records embed
/// and layer calls (copies of their index arrays) and runs nothing; end_graph_step runs them. It
/// checks the pipeline's side of the contract (only decode steps that prune nothing are offered,
/// nothing reads results before end_graph_step, a throwing step is cancelled) with logits that
/// must equal a plain CpuBackend's bit for bit.
struct DeferringCpu : CpuBackend {
  using CpuBackend::CpuBackend;
  bool accept = true;
  bool recording = false;
  int begins = 0, ends = 0, cancels = 0, recorded_layers = 0, throw_at_layer = -1;
  std::vector<int> n_kv_max;
  std::vector<std::function<void()>> queue;

  bool begin_graph_step(int n) {
    ++begins;
    n_kv_max.push_back(n);
    recording = accept;
    return accept;
  }
  void end_graph_step() {
    REQUIRE(recording);
    ++ends;
    recording = false;
    for (auto& f : queue) f();
    queue.clear();
  }
  void cancel_graph_step() {
    if (recording) ++cancels;
    recording = false;
    queue.clear();
  }
  void embed(std::span<const std::int32_t> ids, Activations& x) {
    if (!recording) return CpuBackend::embed(ids, x);
    x.resize(int(ids.size()), config().dim);  // the shape now, the values at end_graph_step
    queue.push_back([this, v = std::vector<std::int32_t>(ids.begin(), ids.end()), &x] { CpuBackend::embed(v, x); });
  }
  void layer(const LayerCall& call, Activations& x, std::span<float> scores) {
    if (!recording) return CpuBackend::layer(call, x, scores);
    REQUIRE_FALSE(call.want_scores);
    REQUIRE(x.rows == 1);
    if (call.layer == throw_at_layer) throw std::runtime_error("injected");
    ++recorded_layers;
    queue.push_back([this, l = call.layer, qp = std::vector<std::int32_t>(call.q_pos.begin(), call.q_pos.end()),
                     qs = std::vector<std::int64_t>(call.q_slots.begin(), call.q_slots.end()),
                     kp = std::vector<std::int32_t>(call.kv_pos.begin(), call.kv_pos.end()),
                     ks = std::vector<std::int64_t>(call.kv_slots.begin(), call.kv_slots.end()), &x] {
      CpuBackend::layer(LayerCall{l, qp, qs, kp, ks, false}, x, {});
    });
  }
  template <class... A>
  void gather(A&&... a) {
    REQUIRE_FALSE(recording);
    CpuBackend::gather(std::forward<A>(a)...);
  }
  template <class... A>
  void store_aux(A&&... a) {
    REQUIRE_FALSE(recording);
    CpuBackend::store_aux(std::forward<A>(a)...);
  }
  std::span<const float> logits(const Activations& x, int row) {
    REQUIRE_FALSE(recording);
    return CpuBackend::logits(x, row);
  }
};
static_assert(GraphStepBackend<DeferringCpu>);
static_assert(!GraphStepBackend<CpuBackend>);

}  // namespace

TEST_CASE("pipeline: GraphStepBackend is offered exactly the decode steps that prune nothing") {
  const RuntimeConfig c = test::small_config();  // 4 layers
  const ModelWeights w = test::random_model(c, 8);
  const std::vector<std::int32_t> prompt{1, 5, 9, 13, 17, 21, 25, 29, 33, 37};
  using Plain = Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, CpuBackend>;
  using Deferred = Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, DeferringCpu>;

  SUBCASE("dense: every decode step recorded and run at its end, the same logits") {
    Plain a(CpuBackend{w});
    Deferred b(DeferringCpu{w});
    auto la = a.prefill(prompt);
    auto lb = b.prefill(prompt);
    CHECK(std::vector<float>(la.begin(), la.end()) == std::vector<float>(lb.begin(), lb.end()));
    CHECK(b.backend().begins == 0);  // a prefill is never offered
    for (int i = 0; i < 6; ++i) {
      const std::int32_t next = argmax(la);
      la = a.decode(next);
      lb = b.decode(next);
      CHECK(std::vector<float>(la.begin(), la.end()) == std::vector<float>(lb.begin(), lb.end()));
    }
    CHECK(b.backend().begins == 6);
    CHECK(b.backend().ends == 6);
    CHECK(b.backend().recorded_layers == 6 * c.n_layers);
    CHECK(b.backend().n_kv_max == std::vector<int>{11, 12, 13, 14, 15, 16});
    b.backend().accept = false;  // a backend may decline: the step runs call by call
    la = a.decode(3);
    lb = b.decode(3);
    CHECK(std::vector<float>(la.begin(), la.end()) == std::vector<float>(lb.begin(), lb.end()));
    CHECK(b.backend().ends == 6);
  }
  SUBCASE("a pruning policy is never offered a step; nor is a step with an on_layer callback") {
    Deferred b(DeferringCpu{w}, policy::Lazy(Schedule::parse("1:0.5,3:0.5")));
    auto l = b.prefill(prompt);
    for (int i = 0; i < 3; ++i) l = b.decode(argmax(l));
    CHECK(b.backend().begins == 0);
    Deferred d(DeferringCpu{w});
    d.on_layer([](const LayerProgress&) {});
    l = d.prefill(prompt);
    l = d.decode(argmax(l));
    CHECK(d.backend().begins == 0);
  }
  SUBCASE("a step that throws after begin_graph_step is cancelled; after reset, steps record again") {
    Plain a(CpuBackend{w});
    Deferred b(DeferringCpu{w});
    (void)b.prefill(prompt);
    b.backend().throw_at_layer = 2;
    CHECK_THROWS_AS(b.decode(4), std::runtime_error);
    CHECK(b.backend().cancels == 1);
    CHECK_FALSE(b.backend().recording);
    b.backend().throw_at_layer = -1;
    b.reset();
    auto la = a.prefill(prompt);
    auto lb = b.prefill(prompt);
    la = a.decode(4);
    lb = b.decode(4);
    CHECK(std::vector<float>(la.begin(), la.end()) == std::vector<float>(lb.begin(), lb.end()));
    CHECK(b.backend().ends == 1);
    CHECK(b.backend().cancels == 1);
  }
}
