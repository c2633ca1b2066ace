// The pipeline on the CPU reference backend: dense against a naive forward, and the LazyLLM
// semantics (exact dense equivalence, pruning, nesting, Aux Cache, revival).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "greedy_run.hpp"
#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/cache/paged.hpp"
#include "lazyllm/config/llama2.hpp"
#include "lazyllm/model/sampler.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/any.hpp"
#include "lazyllm/policy/dense.hpp"
#include "lazyllm/policy/lazy.hpp"
#include "lazyllm/policy/random_drop.hpp"
#include "lazyllm/policy/static.hpp"
#include "naive_forward.hpp"
#include "random_model.hpp"
#include "synthetic_inputs.hpp"
#include "test_util.hpp"

using lazyllm::test::norm_err;
using lazyllm::test::prompt_of;

using namespace lazyllm;
using test::greedy_run;
using test::random_model;
using test::small_config;

template <class Policy, class Layout = ContiguousLayout>
using CpuPipe = Pipeline<RuntimeConfig, Policy, Layout, CpuBackend>;

namespace {

// The invariant of DESIGN §1.5: a token has an Aux entry at layer l exactly when it has layer-(l-1)
// K/V but no layer-l K/V, and K/V caches nest.
template <class P, class L>
void check_cache_invariants(const P& pipe, const L& layout, int n_layers, bool aux_layer(int)) {
  for (int p = 0; p < pipe.n_past(); ++p) {
    CHECK(layout.kv_slot(0, p) >= 0);  // layer 0 computes every token
    for (int l = 1; l < n_layers; ++l) {
      const bool has = layout.kv_slot(l, p) >= 0, below = layout.kv_slot(l - 1, p) >= 0;
      CHECK((!has || below));  // nesting
      if (aux_layer(l)) CHECK((layout.aux_slot(l, p) >= 0) == (below && !has));
    }
  }
}

}  // namespace

TEST_CASE("dense prefill and decode match the naive full-recompute forward") {
  for (auto rope : {RopeStyle::Interleaved, RopeStyle::RotateHalf})
    for (int kvh : {4, 2, 1}) {  // MHA, GQA, MQA
      CAPTURE(kvh);
      const auto w = random_model(small_config(rope, kvh), 7u + unsigned(kvh));
      const auto ids = prompt_of(20, 3, w.config.vocab_size);
      const auto ref = test::naive_forward(w, std::vector<int>(ids.begin(), ids.end()));
      CpuPipe<policy::Dense> pipe(CpuBackend{w});
      // prefill of 12 tokens, then 8 decode steps teacher-forced with the prompt
      auto logits = pipe.prefill(std::span(ids).first(12));
      CHECK(norm_err(logits, ref.logits[11]) < 1e-5);
      for (int i = 12; i < 20; ++i) {
        logits = pipe.decode(ids[i]);
        CHECK(norm_err(logits, ref.logits[i]) < 1e-5);
      }
    }
}

TEST_CASE("the two RoPE forms give the same model when q/k rows are permuted (HF <-> Meta)") {
  auto meta = random_model(small_config(RopeStyle::Interleaved, 2), 11);
  // Build the HF form: per head, row j < hd/2 takes Meta row 2j, row j >= hd/2 takes 2(j-hd/2)+1.
  ModelWeights hf = meta;
  hf.config.rope_style = RopeStyle::RotateHalf;
  const int d = meta.config.dim, hd = meta.config.head_dim();
  auto permute = [&](const float* src, int heads) {
    auto buf = std::make_shared<std::vector<float>>(std::size_t(heads) * hd * d);
    for (int h = 0; h < heads; ++h)
      for (int j = 0; j < hd; ++j) {
        const int from = j < hd / 2 ? 2 * j : 2 * (j - hd / 2) + 1;
        std::copy_n(src + std::size_t(h * hd + from) * d, d, buf->data() + std::size_t(h * hd + j) * d);
      }
    hf.storage.push_back(buf);
    return buf->data();
  };
  for (int l = 0; l < meta.config.n_layers; ++l) {
    hf.layers[l].wq = permute(meta.layers[l].wq.f32(), meta.config.n_heads);
    hf.layers[l].wk = permute(meta.layers[l].wk.f32(), meta.config.n_kv_heads);
  }
  const auto ids = prompt_of(16, 5, meta.config.vocab_size);
  CpuPipe<policy::Dense> a(CpuBackend{meta}), b(CpuBackend{hf});
  const auto la = a.prefill(ids);
  const std::vector<float> va(la.begin(), la.end());
  CHECK(norm_err(b.prefill(ids), va) < 1e-5);
}

TEST_CASE("a prompt in two parts (chat turns) equals the prompt at once") {
  const auto w = random_model(small_config(), 3);
  const auto ids = prompt_of(30, 9, w.config.vocab_size);
  CpuPipe<policy::Dense> one(CpuBackend{w}), two(CpuBackend{w});
  const auto l1 = one.prefill(ids);
  const std::vector<float> v1(l1.begin(), l1.end());
  two.prefill(std::span(ids).first(17));
  const auto l2 = two.prefill(std::span(ids).subspan(17));
  CHECK(std::equal(v1.begin(), v1.end(), l2.begin()));
}

TEST_CASE("empty and all-zero schedules reproduce dense exactly (logits and ids)") {
  const auto w = random_model(small_config(), 5);
  const auto ids = prompt_of(40, 2, w.config.vocab_size);
  auto run = [&](auto pol) {
    CpuPipe<decltype(pol)> pipe(CpuBackend{w}, pol);
    std::vector<float> all;
    auto lg = pipe.prefill(ids);
    for (int i = 0; i < 12; ++i) {
      all.insert(all.end(), lg.begin(), lg.end());
      lg = pipe.decode(argmax(lg));
    }
    return all;
  };
  const auto dense = run(policy::Dense{});
  CHECK(run(policy::Lazy{}) == dense);
  CHECK(run(policy::Lazy(Schedule::parse("1:0,2:0,3:0"))) == dense);
  CHECK(run(policy::Static(Schedule::parse("2:0"))) == dense);
}

TEST_CASE("lazy prefill equals a naive pruned forward: same kept sets, same logits") {
  for (auto sched : {"1:0.5", "1:0.3,2:0.5,3:0.7", "2:0.9"}) {
    CAPTURE(sched);
    const auto w = random_model(small_config(RopeStyle::RotateHalf, 2), 21, 0.3f);
    const auto ids = prompt_of(48, 4, w.config.vocab_size);
    const Schedule s = Schedule::parse(sched);
    const auto ref = test::naive_forward(w, std::vector<int>(ids.begin(), ids.end()), s, false);
    CpuPipe<policy::Lazy> pipe(CpuBackend{w}, policy::Lazy(s));
    const auto logits = pipe.prefill(ids);
    CHECK(norm_err(logits, ref.logits[0]) < 1e-4);
    const auto& st = pipe.stats().steps.at(0);
    for (int l = 0; l < w.config.n_layers; ++l) CHECK(st.selected[l] == int(ref.kept[l].size()));
    CHECK(pipe.stats().prefill_fraction() < 1.0);
  }
}

TEST_CASE("lazy decode: sets nest, counts follow the percentile, Aux Cache invariant, revivals") {
  const auto w = random_model(small_config(), 8, 0.3f);
  const auto ids = prompt_of(50, 6, w.config.vocab_size);
  const Schedule s = Schedule::parse("1:0.5,2:0.5,3:0.5");
  CpuPipe<policy::Lazy> pipe(CpuBackend{w}, policy::Lazy(s));
  auto lg = pipe.prefill(ids);
  auto is_aux = [](int l) { return l >= 1; };
  check_cache_invariants(pipe, pipe.layout(), 4, is_aux);
  for (int i = 0; i < 30; ++i) {
    lg = pipe.decode(argmax(lg));
    check_cache_invariants(pipe, pipe.layout(), 4, is_aux);
  }
  const auto& stats = pipe.stats();
  std::vector<std::int64_t> per_layer(4, 0);
  for (const auto& st : stats.steps) {
    CHECK(st.selected[0] == st.context);  // layer 0 sees the whole context
    for (int l = 0; l < 4; ++l) {
      per_layer[l] += st.computed[l];
      CHECK(st.computed[l] <= st.selected[l]);
      CHECK(st.computed[l] >= 1);  // the newest token is computed at every layer
      if (l > 0) {
        CHECK(st.selected[l] <= st.selected[l - 1]);
        CHECK(st.selected[l] >= int(detail::percentile_keep_count(std::size_t(st.selected[l - 1]), 0.5f)));
      }
    }
  }
  // Each token is computed at most once per layer over the whole run.
  for (int l = 0; l < 4; ++l) CHECK(per_layer[l] <= pipe.n_past());
  CHECK(per_layer[0] == pipe.n_past());
  CHECK(stats.total_revivals() > 0);  // pruned tokens came back
  CHECK(stats.aux_peak_entries > 0);
  CHECK(stats.aux_peak_bytes == stats.aux_peak_entries * w.config.dim * 4);
  CHECK(stats.total_token_layers() < stats.total_dense_token_layers() + 0);
}

TEST_CASE("static never revives; random keeps the nominal counts and is seeded") {
  const auto w = random_model(small_config(), 8, 0.3f);
  const auto ids = prompt_of(40, 6, w.config.vocab_size);
  const Schedule s = Schedule::parse("1:0.5,3:0.5");
  CpuPipe<policy::Static> st(CpuBackend{w}, policy::Static(s));
  auto lg = st.prefill(ids);
  for (int i = 0; i < 10; ++i) lg = st.decode(argmax(lg));
  CHECK(st.stats().total_revivals() == 0);
  const auto& pre = st.stats().steps[0];
  for (std::size_t k = 1; k < st.stats().steps.size(); ++k) {
    const auto& d = st.stats().steps[k];
    CHECK(d.selected[1] == pre.selected[1] + int(k));  // kept prompt tokens + generated ones
    CHECK(d.token_layers() == 4);                      // only the new token is computed
  }

  auto run_random = [&](std::uint64_t seed) {
    CpuPipe<policy::RandomDrop> r(CpuBackend{w}, policy::RandomDrop(s, seed));
    auto l = r.prefill(ids);
    return std::pair{std::vector<float>(l.begin(), l.end()), r.stats().steps[0].selected};
  };
  const auto a = run_random(1), b = run_random(1), c = run_random(2);
  CHECK(a.first == b.first);
  CHECK(a.first != c.first);
  CHECK(a.second == std::vector<int>{40, 20, 20, 10});
}

TEST_CASE("window keeps sinks + recent tokens through the pipeline; AnyPolicy runs equal the concrete policy's") {
  const auto w = random_model(small_config(), 8, 0.3f);
  const auto ids = prompt_of(40, 6, w.config.vocab_size);
  const Schedule s = Schedule::parse("1:0.5,3:0.5");
  CpuPipe<policy::Window> win(CpuBackend{w}, policy::Window(s, 4));
  auto lg = win.prefill(ids);
  CHECK(win.stats().steps[0].selected == std::vector<int>{40, 20, 20, 10});
  for (int i = 0; i < 12; ++i) {
    lg = win.decode(argmax(lg));
    check_cache_invariants(win, win.layout(), 4, [](int l) { return l == 1 || l == 3; });
  }
  // The window only slides forward (its start moves by 1 - (growth of the kept count) >= 0 per
  // step), so no token ever comes back.
  CHECK(win.stats().total_revivals() == 0);
  for (std::size_t k = 1; k < win.stats().steps.size(); ++k)
    CHECK(win.stats().steps[k].selected[1] == int(detail::percentile_keep_count(std::size_t(40 + k), 0.5f)));

  // One Pipeline<..., AnyPolicy, ...> instantiation serves every policy, bit for bit.
  auto run = [&](auto pol) {
    CpuPipe<decltype(pol)> p(CpuBackend{w}, pol);
    auto [all, sets] = greedy_run(p, ids, 6);
    return std::tuple{all, sets, p.stats().policy, p.stats().schedule};
  };
  CHECK(run(policy::AnyPolicy(policy::Lazy(s))) == run(policy::Lazy(s)));
  CHECK(run(policy::AnyPolicy(policy::RandomDrop(s, 3))) == run(policy::RandomDrop(s, 3)));
  CHECK(run(policy::AnyPolicy(policy::Window(s))) == run(policy::Window(s)));
  CHECK(run(policy::AnyPolicy{}) == run(policy::Dense{}));
}

namespace {
// A SelectingBackend on the CPU (attention_backend.hpp): applies the percentile rule itself, the
// way the CUDA backend does on the device, and counts how often the pipeline let it.
struct RuleBackend : CpuBackend {
  using CpuBackend::CpuBackend;
  bool on = true;
  int calls = 0;
  bool device_select() const { return on; }
  void layer_select(const LayerCall& call, Activations& x, float p, std::span<std::uint8_t> keep) {
    std::vector<float> scores(call.kv_pos.size());
    layer(call, x, scores);
    const float thr = detail::percentile_threshold(scores, p);
    for (std::size_t i = 0; i < scores.size(); ++i) keep[i] = scores[i] >= thr ? 1 : 0;
    keep[keep.size() - 1] = 1;
    ++calls;
  }
};
static_assert(SelectingBackend<RuleBackend> && !SelectingBackend<CpuBackend>);
}  // namespace

TEST_CASE(
    "a backend that selects itself (SelectingBackend) gives the policy's runs bit for bit, where the rule applies") {
  const auto w = random_model(small_config(), 8, 0.3f);
  const auto ids = prompt_of(48, 11, w.config.vocab_size);
  const Schedule s = Schedule::parse("1:0.5,2:0.3,3:0.5");
  auto run = [&](auto backend, auto pol) {
    Pipeline<RuntimeConfig, decltype(pol), ContiguousLayout, decltype(backend)> p(std::move(backend), pol);
    auto [all, sets] = greedy_run(p, ids, 8);
    int calls = 0;
    if constexpr (requires { p.backend().calls; }) calls = p.backend().calls;
    return std::tuple{all, sets, p.stats().total_revivals(), calls};
  };
  // Lazy: the rule at all 3 boundaries of all 9 steps; revivals happen, so decode re-selects.
  const auto lazy_host = run(CpuBackend{w}, policy::Lazy(s));
  const auto lazy_dev = run(RuleBackend{w}, policy::Lazy(s));
  CHECK(std::get<2>(lazy_host) > 0);
  CHECK(std::get<0>(lazy_dev) == std::get<0>(lazy_host));
  CHECK(std::get<1>(lazy_dev) == std::get<1>(lazy_host));
  CHECK(std::get<2>(lazy_dev) == std::get<2>(lazy_host));
  CHECK(std::get<3>(lazy_dev) == 3 * 9);
  // Through AnyPolicy (the driver's and lazyllm-eval's instantiation) the same.
  const auto any_dev = run(RuleBackend{w}, policy::AnyPolicy(policy::Lazy(s)));
  CHECK(std::get<0>(any_dev) == std::get<0>(lazy_host));
  CHECK(std::get<3>(any_dev) == 3 * 9);
  // Static: the bare rule is its selection in the first step only, which a pipeline can hand
  // to the backend when it passes the step (percentile_rule's three-argument form); at most the
  // prefill's 3 boundaries. Later steps keep the cached sets on the host.
  const auto st_host = run(CpuBackend{w}, policy::Static(s));
  const auto st_dev = run(RuleBackend{w}, policy::Static(s));
  CHECK(std::get<0>(st_dev) == std::get<0>(st_host));
  CHECK(std::get<1>(st_dev) == std::get<1>(st_host));
  CHECK(std::get<3>(st_dev) <= 3);
  // Not the bare rule (keep_recent adds tokens; RandomDrop has no scores rule) or switched off:
  // the policy selects on the host.
  const auto recent_dev = run(RuleBackend{w}, policy::Lazy(s, 4));
  CHECK(std::get<0>(recent_dev) == std::get<0>(run(CpuBackend{w}, policy::Lazy(s, 4))));
  CHECK(std::get<3>(recent_dev) == 0);
  CHECK(std::get<3>(run(RuleBackend{w}, policy::AnyPolicy(policy::RandomDrop(s, 2)))) == 0);
  RuleBackend off{w};
  off.on = false;
  const auto off_run = run(std::move(off), policy::Lazy(s));
  CHECK(std::get<0>(off_run) == std::get<0>(lazy_host));
  CHECK(std::get<3>(off_run) == 0);
}

TEST_CASE("paged and contiguous layouts give identical results") {
  const auto w = random_model(small_config(), 13, 0.3f);
  const auto ids = prompt_of(45, 1, w.config.vocab_size);
  const policy::Lazy pol(Schedule::parse("1:0.4,3:0.6"));
  CpuPipe<policy::Lazy> a(CpuBackend{w}, pol);
  CpuPipe<policy::Lazy, PagedLayout<8>> b(CpuBackend{w}, pol);
  auto la = a.prefill(ids);
  auto lb = b.prefill(ids);
  for (int i = 0; i < 15; ++i) {
    REQUIRE(std::equal(la.begin(), la.end(), lb.begin()));
    const auto next = argmax(la);
    la = a.decode(next);
    lb = b.decode(next);
  }
  CHECK(b.layout().blocks_in_use() <= 4 * ((60 + 7) / 8));
  // A pool too small for the sequence is a clear error, not a corruption.
  using Small = CpuPipe<policy::Dense, PagedLayout<8>>;
  Small small(CpuBackend{w}, {}, PagedLayout<8>(3));
  CHECK_THROWS_WITH_AS(small.prefill(ids), doctest::Contains("all 3 blocks of 8 tokens are in use"), Error);
}

TEST_CASE("bad input: prompt longer than the context, token outside the vocabulary, shape mismatch") {
  const auto w = random_model(small_config(), 1);
  CpuPipe<policy::Dense> pipe(CpuBackend{w}, {}, {}, 16);
  const auto ids = prompt_of(17, 1, w.config.vocab_size);
  CHECK_THROWS_WITH_AS(pipe.prefill(ids), doctest::Contains("does not fit the context of 16"), InvalidArgument);
  const std::vector<std::int32_t> bad{1, 64};
  CHECK_THROWS_WITH_AS(pipe.prefill(bad), doctest::Contains("outside the vocabulary"), InvalidArgument);
  using Wrong = Pipeline<config::Stories260K, policy::Dense, ContiguousLayout, CpuBackend>;
  CHECK_THROWS_WITH_AS(Wrong(CpuBackend{w}), doctest::Contains("does not match"), ConfigError);
  CHECK_THROWS_AS(CpuPipe<policy::Lazy>(CpuBackend{w}, policy::Lazy(Schedule::parse("4:0.5"))), InvalidArgument);
}

namespace {
// A prompt, `n` greedy steps, a second prompt (the next turn of a chat), `n` more steps; the cache
// invariant after every step. Returns every step's logits.
template <class Pipe>
std::vector<float> two_turns(Pipe& p, const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b, int n,
                             bool aux_layer(int)) {
  std::vector<float> all;
  auto take = [&](std::span<const float> l) {
    all.insert(all.end(), l.begin(), l.end());
    check_cache_invariants(p, p.layout(), p.config().n_layers, aux_layer);
    return argmax(l);
  };
  auto next = take(p.prefill(a));
  for (int i = 0; i < n; ++i) next = take(p.decode(next));
  next = take(p.prefill(b));
  for (int i = 0; i < n; ++i) next = take(p.decode(next));
  return all;
}
}  // namespace

TEST_CASE("static prunes each prompt once, over several prompts too, and never revives") {
  const auto w = random_model(small_config(), 8, 0.3f);
  const Schedule s = Schedule::parse("1:0.5,3:0.5");
  CpuPipe<policy::Static> st(CpuBackend{w}, policy::Static(s));
  const auto a = prompt_of(40, 6, w.config.vocab_size), b = prompt_of(24, 9, w.config.vocab_size);
  two_turns(st, a, b, 4, [](int l) { return l == 1 || l == 3; });
  const auto& steps = st.stats().steps;
  REQUIRE(steps.size() == 10);
  CHECK(st.stats().total_revivals() == 0);
  // The second prompt: the earlier tokens keep their layer-1 set (the last decode step's, whose
  // newest token joined it), and layer 1 computes only the second prompt's tokens the rule keeps:
  // at least half of the 24, never all.
  const auto &before = steps[4], &turn = steps[5];
  CHECK(turn.phase == Phase::Prefill);
  CHECK(turn.selected[1] == before.selected[1] + turn.computed[1]);
  CHECK(turn.computed[1] >= 12);
  CHECK(turn.computed[1] < 24);
  for (std::size_t k = 6; k < steps.size(); ++k) CHECK(steps[k].token_layers() == 4);  // decode: the new token only
  // Through AnyPolicy, and with a backend that selects itself, the same run bit for bit.
  CpuPipe<policy::AnyPolicy> any(CpuBackend{w}, policy::AnyPolicy(policy::Static(s)));
  Pipeline<RuntimeConfig, policy::Static, ContiguousLayout, RuleBackend> dev(RuleBackend{w}, policy::Static(s));
  CpuPipe<policy::Static> ref(CpuBackend{w}, policy::Static(s));
  const auto want = two_turns(ref, a, b, 4, [](int l) { return l == 1 || l == 3; });
  CHECK(two_turns(any, a, b, 4, [](int l) { return l == 1 || l == 3; }) == want);
  CHECK(two_turns(dev, a, b, 4, [](int l) { return l == 1 || l == 3; }) == want);
  CHECK(dev.stats().total_revivals() == 0);
  CHECK(dev.backend().calls <= 3);  // the bare rule in the first prefill at most
}

TEST_CASE("window never revives, on short contexts and over several prompts too: the sinks always stay") {
  const auto w = random_model(small_config(), 8, 0.3f);
  const auto V = w.config.vocab_size;
  CpuPipe<policy::Window> win(CpuBackend{w}, policy::Window(Schedule::parse("1:0.5"), 4));
  two_turns(win, prompt_of(6, 3, V), prompt_of(9, 4, V), 12, [](int l) { return l == 1; });
  CHECK(win.stats().total_revivals() == 0);
  // Kept going into layer 1: the 4 sinks and the newest while the nominal n - floor(n/2) is at
  // most 4 (6 tokens: 5 kept), the nominal count from there on.
  for (const auto& st : win.stats().steps) {
    CAPTURE(st.context);
    const int n = st.context, want = n - n / 2;
    CHECK(st.selected[1] == (n <= 4 ? n : want > 4 ? want : 5));
  }
  CHECK(win.stats().steps[0].selected == std::vector<int>{6, 5, 5, 5});
}
