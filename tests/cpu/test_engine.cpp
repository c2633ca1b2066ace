// The engine core on the CPU: many sequences per step over one shared model give each sequence
// exactly what it gets alone (every shipped policy, sequences joining and leaving, chunked and
// whole prefills mixed with decode steps), the block pool (typed exhaustion, blocks returned, a
// pruned sequence holding fewer blocks), atomic steps under injected failures at every layer, and
// several threads each running an engine over one model.
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/cache/paged.hpp"
#include "lazyllm/engine/engine.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/any.hpp"
#include "random_model.hpp"
#include "synthetic_inputs.hpp"
#include "test_util.hpp"

using lazyllm::test::prompt_of;

using namespace lazyllm;

namespace {

/// One request of a scenario: its prompt (fed in chunks of `chunk`, 0 = whole), how many tokens
/// it generates greedily, the step at which it joins, and its policy.
struct Request {
  std::vector<std::int32_t> prompt;
  int chunk = 0;
  int n_decode = 0;
  int join = 0;
  policy::AnyPolicy policy;
};

/// What a sequence produced: the logits after each of its completed inputs, and per step |S_l|,
/// |C_l| and revivals.
struct Trace {
  std::vector<std::vector<float>> logits;
  std::vector<std::vector<int>> sets;
  std::vector<std::int64_t> revivals;
  std::int64_t aux_peak = 0;
  friend bool operator==(const Trace&, const Trace&) = default;
};

void record_stats(Trace& t, const RunStats& st) {
  for (const auto& s : st.steps) {
    t.sets.push_back(s.selected);
    t.sets.push_back(s.computed);
    t.revivals.push_back(s.revivals);
  }
  t.aux_peak = st.aux_peak_entries;
}

/// The request alone through a Pipeline: prefill chunk by chunk, then greedy decode.
Trace alone(const ModelWeights& w, const Request& r) {
  Pipeline<RuntimeConfig, policy::AnyPolicy, ContiguousLayout, CpuBackend> p(CpuBackend{w}, r.policy);
  Trace t;
  std::span<const float> l;
  const std::size_t chunk = r.chunk > 0 ? std::size_t(r.chunk) : r.prompt.size();
  for (std::size_t at = 0; at < r.prompt.size(); at += chunk)
    l = p.prefill(std::span(r.prompt).subspan(at, std::min(chunk, r.prompt.size() - at)));
  t.logits.emplace_back(l.begin(), l.end());
  for (int i = 0; i < r.n_decode; ++i) {
    l = p.decode(argmax(l));
    t.logits.emplace_back(l.begin(), l.end());
  }
  record_stats(t, p.stats());
  return t;
}

/// The requests together through an Engine<B>; `before_step(engine, step)` may interfere.
template <class B = CpuBackend>
std::vector<Trace> together(std::shared_ptr<const CpuModel> model, const std::vector<Request>& reqs,
                            EngineOptions opts = {}, std::function<void(Engine<B>&, int)> before_step = {},
                            std::int64_t* peak_blocks = nullptr) {
  if (opts.pool_blocks == 0) opts.pool_blocks = 1024;
  Engine<B> eng(std::move(model), std::move(opts));
  std::vector<Trace> out(reqs.size());
  std::map<SeqId, std::size_t> which;
  std::map<SeqId, int> decoded;
  std::size_t joined = 0;
  for (int step = 0; joined < reqs.size() || eng.size() > 0; ++step) {
    for (std::size_t i = 0; i < reqs.size(); ++i)
      if (reqs[i].join == step) {
        SequenceOptions so;
        so.prefill_chunk = reqs[i].chunk;
        const SeqId id = eng.add(reqs[i].prompt, reqs[i].policy, so);
        which[id] = i;
        decoded[id] = 0;
        ++joined;
      }
    if (before_step) before_step(eng, step);
    const StepResult r = eng.step();
    if (peak_blocks) *peak_blocks = std::max(*peak_blocks, eng.pool().used());
    for (const SeqId id : r.ready) {
      Trace& t = out[which[id]];
      const auto l = eng.logits(id);
      t.logits.emplace_back(l.begin(), l.end());
      if (decoded[id] < reqs[which[id]].n_decode) {
        ++decoded[id];
        eng.decode(id, eng.sample(id));
      } else {
        record_stats(t, eng.stats(id));
        eng.remove(id);  // leaves mid-run while others go on
      }
    }
    REQUIRE(step < 1000);
  }
  CHECK(eng.pool().used() == 0);  // every block is back
  return out;
}

std::vector<Request> mixed_requests(int vocab) {
  const Schedule s = Schedule::parse("1:0.5,2:0.3,3:0.5");
  std::vector<Request> r;
  r.push_back({prompt_of(40, 1, vocab), 0, 6, 0, policy::Lazy(s)});
  r.push_back({prompt_of(33, 2, vocab), 7, 5, 0, policy::Dense{}});
  r.push_back({prompt_of(27, 3, vocab), 0, 8, 2, policy::Static(s)});
  r.push_back({prompt_of(45, 4, vocab), 10, 4, 3, policy::Lazy(s, 4)});
  r.push_back({prompt_of(19, 5, vocab), 0, 7, 3, policy::RandomDrop(s, 9)});
  r.push_back({prompt_of(30, 6, vocab), 4, 3, 5, policy::Window(Schedule::parse("2:0.5"))});
  r.push_back({prompt_of(24, 7, vocab), 0, 9, 8, policy::Lazy(Schedule::parse("2:0.6"))});
  return r;
}

}  // namespace

TEST_CASE("engine: each sequence of a batch gets what it gets alone, bit for bit, for every policy") {
  const auto w = test::random_model(test::small_config(), 8, 0.3f);
  auto model = std::make_shared<const CpuModel>(w);
  const auto reqs = mixed_requests(w.config.vocab_size);
  std::vector<Trace> ref;
  for (const auto& r : reqs) ref.push_back(alone(w, r));
  std::int64_t revivals = 0;
  for (const auto& t : ref)
    for (auto v : t.revivals) revivals += v;
  CHECK(revivals > 0);  // the scenario exercises revival in decode

  for (const int block_tokens : {16, 4, 1}) {
    CAPTURE(block_tokens);
    EngineOptions o;
    o.block_tokens = block_tokens;
    const auto got = together(model, reqs, o);
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      CAPTURE(i);
      CHECK(got[i].logits == ref[i].logits);
      CHECK(got[i].sets == ref[i].sets);
      CHECK(got[i].revivals == ref[i].revivals);
      CHECK(got[i].aux_peak == ref[i].aux_peak);
    }
  }
}

TEST_CASE("engine: a token budget per step: decode tokens first, inputs never cut to fit, the rest wait") {
  const auto w = test::random_model(test::small_config(), 8, 0.3f);
  auto model = std::make_shared<const CpuModel>(w);
  const Schedule s = Schedule::parse("1:0.5,3:0.5");
  Engine<CpuBackend> eng(model, EngineOptions{.pool_blocks = 256, .max_step_tokens = 16});
  const SeqId a = eng.add(prompt_of(10, 1, 64), policy::Lazy(s));
  const SeqId b = eng.add(prompt_of(40, 2, 64), policy::Lazy(s), {.prefill_chunk = 8});
  const SeqId c = eng.add(prompt_of(30, 3, 64), policy::Lazy(s));  // whole: 30 tokens in one step
  auto r = eng.step();  // a's 10 tokens; b's chunk of 8 does not fit in the 6 left; c neither
  CHECK(r.tokens == 10);
  CHECK(r.ready == std::vector<SeqId>{a});
  eng.decode(a, eng.sample(a));
  r = eng.step();  // a's decode token, then b's chunk (8); c's 30 wait
  CHECK(r.tokens == 9);
  CHECK(eng.pending(b) == 32);
  CHECK(eng.pending(c) == 30);
  eng.decode(a, eng.sample(a));
  eng.remove(a);
  r = eng.step();  // b's chunk (8); c waits
  CHECK(r.tokens == 8);
  eng.remove(b);
  r = eng.step();  // c alone: larger than the budget, it goes whole as a step's first input
  CHECK(r.tokens == 30);
  CHECK(r.ready == std::vector<SeqId>{c});
  CHECK(eng.stats(c).steps.size() == 1);
}

namespace {
/// A CpuBackend that counts the rows whose logits it computes.
struct CountingCpu : CpuBackend {
  CountingCpu(std::shared_ptr<const CpuModel> m, std::int64_t* rows) : CpuBackend(std::move(m)), rows_(rows) {}
  void logits_rows(const Activations& x, std::span<const int> rows, std::span<float> out) {
    *rows_ += std::int64_t(rows.size());
    CpuBackend::logits_rows(x, rows, out);
  }
  std::int64_t* rows_;
};
}  // namespace

TEST_CASE("engine: logits are computed only for the sequences a step makes ready") {
  const auto w = test::random_model(test::small_config(), 8, 0.3f);
  auto model = std::make_shared<const CpuModel>(w);
  const Schedule s = Schedule::parse("1:0.5,3:0.5");
  std::int64_t rows = 0;
  Engine<CountingCpu> eng(model, EngineOptions{.pool_blocks = 256}, &rows);
  const SeqId a = eng.add(prompt_of(10, 1, 64), policy::Lazy(s));
  const SeqId b = eng.add(prompt_of(24, 2, 64), policy::Lazy(s), {.prefill_chunk = 8});
  auto r = eng.step();  // a whole, b's first chunk: a only is ready
  CHECK(r.ready == std::vector<SeqId>{a});
  CHECK(rows == 1);
  const auto la = std::vector<float>(eng.logits(a).begin(), eng.logits(a).end());
  eng.decode(a, eng.sample(a));
  r = eng.step();  // a's decode token, b's second chunk
  CHECK(r.ready == std::vector<SeqId>{a});
  CHECK(rows == 2);
  r = eng.step();  // b's last chunk; a has no input
  CHECK(r.ready == std::vector<SeqId>{b});
  CHECK(rows == 3);
  // b's logits are its own row's (the rows of skipped sequences do not shift them): b alone.
  Engine<CpuBackend> alone(model, EngineOptions{.pool_blocks = 256});
  const SeqId b1 = alone.add(prompt_of(24, 2, 64), policy::Lazy(s), {.prefill_chunk = 8});
  for (int i = 0; i < 3; ++i) alone.step();
  REQUIRE(alone.ready(b1));
  const auto lb = eng.logits(b), lb1 = alone.logits(b1);
  CHECK(std::equal(lb.begin(), lb.end(), lb1.begin(), lb1.end()));
  CHECK_FALSE(la.empty());
}

TEST_CASE("engine: a batch of one is the single-sequence pipeline, bit for bit") {
  const auto w = test::random_model(test::small_config(), 8, 0.3f);
  const Request r{prompt_of(50, 4, 64), 0, 10, 0, policy::Lazy(Schedule::parse("1:0.5,2:0.5"))};
  const Trace ref = alone(w, r);
  const auto got = together(std::make_shared<const CpuModel>(w), {r});
  CHECK(got[0] == ref);
}

TEST_CASE("engine: a pruned sequence holds fewer blocks than a dense one, and gives them back") {
  const auto w = test::random_model(test::small_config(), 8, 0.3f);
  auto model = std::make_shared<const CpuModel>(w);
  EngineOptions o;
  o.block_tokens = 4;
  o.pool_blocks = 400;
  Engine<CpuBackend> eng(model, o);
  const auto prompt = prompt_of(90, 3, 64);
  const SeqId dense = eng.add(prompt, policy::Dense{});
  const SeqId lazy = eng.add(prompt, policy::Lazy(Schedule::parse("1:0.5,2:0.5,3:0.5")));
  eng.step();
  const std::int64_t bd = eng.blocks(dense), bl = eng.blocks(lazy);
  CHECK(bd == 4 * ((90 + 3) / 4));  // 4 layers of 90 tokens in blocks of 4
  CHECK(bl < bd * 3 / 4);           // 44 of 92 K/V blocks, plus 21 Aux blocks (an Aux entry is a layer of K/V here)
  CHECK(eng.pool().used() == bd + bl);
  const auto lazy_kv = [&] {
    std::int64_t k = 0;
    for (int l = 0; l < 4; ++l) k += eng.layout(lazy).kv_blocks(l);
    return k;
  }();
  CHECK(eng.layout(lazy).kv_blocks(0) == eng.layout(dense).kv_blocks(0));
  CHECK(eng.layout(lazy).kv_blocks(3) <= (12 + 3) / 4 + 1);  // 90 -> 45 -> 23 -> 12 tokens
  CHECK(lazy_kv < bd / 2);
  CHECK(lazy_kv < bl);  // the rest are Aux Cache blocks
  eng.remove(dense);
  CHECK(eng.pool().used() == bl);
  eng.remove(lazy);
  CHECK(eng.pool().used() == 0);
  CHECK(eng.pool().peak() == bd + bl);
}

TEST_CASE("engine: running out of blocks is OutOfBlocks, changes nothing, and the retried step succeeds") {
  const auto w = test::random_model(test::small_config(), 8, 0.3f);
  auto model = std::make_shared<const CpuModel>(w);
  const Schedule s = Schedule::parse("1:0.5,2:0.3,3:0.5");
  const Request ra{prompt_of(40, 1, 64), 0, 6, 0, policy::Lazy(s)};
  const Request rb{prompt_of(90, 2, 64), 0, 3, 0, policy::Dense{}};
  const Trace ref_a = alone(w, ra);

  EngineOptions o;
  o.block_tokens = 4;
  o.pool_blocks =
      64;  // a fits (32 blocks, at most 60 as revivals fill its sets); b's dense 90 tokens (92 blocks) do not
  Engine<CpuBackend> eng(model, o);
  const SeqId a = eng.add(ra.prompt, ra.policy);
  eng.step();
  const std::int64_t used = eng.pool().used();
  CHECK(used <= 36);
  const SeqId b = eng.add(rb.prompt, rb.policy);
  eng.decode(a, eng.sample(a));
  Trace got_a;
  got_a.logits.emplace_back(ref_a.logits[0]);
  CHECK_THROWS_AS(eng.step(), OutOfBlocks);
  // Nothing changed: a still has its decode token pending, b its prompt, the pool its blocks.
  CHECK(eng.pool().used() == used);
  CHECK(eng.pending(a) == 1);
  CHECK(eng.pending(b) == 90);
  CHECK(eng.n_past(a) == 40);
  CHECK(eng.n_past(b) == 0);
  CHECK(eng.stats(a).steps.size() == 1);
  // The engine drops the newcomer and steps again: a goes on exactly as alone.
  eng.remove(b);
  for (int i = 0; i < ra.n_decode; ++i) {
    const auto r = eng.step();
    REQUIRE(r.ready.size() == 1);
    const auto l = eng.logits(a);
    got_a.logits.emplace_back(l.begin(), l.end());
    if (i + 1 < ra.n_decode) eng.decode(a, eng.sample(a));
  }
  record_stats(got_a, eng.stats(a));
  CHECK(got_a == ref_a);
}

namespace {
/// A CpuBackend that throws when its layer call number `fail_at` (counted over the whole run)
/// starts: an injected failure at one layer of one step.
struct FailPlan {
  int fail_at = -1;
  int calls = 0;
};
struct FailingCpu : CpuBackend {
  FailingCpu(std::shared_ptr<const CpuModel> m, FailPlan* plan) : CpuBackend(std::move(m)), plan_(plan) {}
  FailingCpu(const ModelWeights& w, FailPlan* plan) : CpuBackend(w), plan_(plan) {}
  void tick() {
    if (plan_->calls++ == plan_->fail_at) throw Error("injected failure");
  }
  void layer(const LayerCall& c, Activations& x, std::span<float> s) {
    tick();
    CpuBackend::layer(c, x, s);
  }
  void layer_batch(const BatchLayerCall& c, Activations& x, std::span<float> s) {
    tick();
    CpuBackend::layer_batch(c, x, s);
  }
  FailPlan* plan_;
};
}  // namespace

TEST_CASE("engine: a failure injected at any layer of any step leaves every sequence as it was") {
  const auto w = test::random_model(test::small_config(), 8, 0.3f);
  auto model = std::make_shared<const CpuModel>(w);
  const Schedule s = Schedule::parse("1:0.5,2:0.3,3:0.5");
  std::vector<Request> reqs;
  reqs.push_back({prompt_of(30, 1, 64), 0, 4, 0, policy::Lazy(s)});
  reqs.push_back({prompt_of(25, 2, 64), 9, 3, 1, policy::Static(s)});
  reqs.push_back({prompt_of(12, 3, 64), 0, 3, 2, policy::Lazy(s, 2)});
  // The clean run, counting layer calls.
  auto run = [&](int fail_at, int* calls, int* failures) {
    FailPlan plan{fail_at};
    Engine<FailingCpu> eng(model, EngineOptions{.pool_blocks = 256}, &plan);
    std::vector<Trace> out(reqs.size());
    std::map<SeqId, std::size_t> which;
    std::map<SeqId, int> decoded;
    std::size_t joined = 0;
    for (int step = 0; joined < reqs.size() || eng.size() > 0; ++step) {
      for (std::size_t i = 0; i < reqs.size(); ++i)
        if (reqs[i].join == step) {
          SequenceOptions so;
          so.prefill_chunk = reqs[i].chunk;
          const SeqId id = eng.add(reqs[i].prompt, reqs[i].policy, so);
          which[id] = i, decoded[id] = 0, ++joined;
        }
      StepResult r;
      try {
        r = eng.step();
      } catch (const Error&) {
        ++*failures;
        r = eng.step();  // the same step again
      }
      for (const SeqId id : r.ready) {
        const auto l = eng.logits(id);
        out[which[id]].logits.emplace_back(l.begin(), l.end());
        if (decoded[id]++ < reqs[which[id]].n_decode) {
          eng.decode(id, eng.sample(id));
        } else {
          record_stats(out[which[id]], eng.stats(id));
          eng.remove(id);
        }
      }
    }
    CHECK(eng.pool().used() == 0);
    *calls = plan.calls;
    return out;
  };
  int calls = 0, failures = 0;
  const auto ref = run(-1, &calls, &failures);
  CHECK(failures == 0);
  REQUIRE(calls > 20);
  for (int at = 0; at < calls; ++at) {
    CAPTURE(at);
    int c = 0, f = 0;
    const auto got = run(at, &c, &f);
    CHECK(f == 1);
    CHECK(got == ref);
  }
}

TEST_CASE("pipeline: a throwing on_layer callback at any layer leaves the sequence as it was") {
  const auto w = test::random_model(test::small_config(), 8, 0.3f);
  using Pipe = Pipeline<RuntimeConfig, policy::Lazy, PagedLayout<4>, CpuBackend>;
  const policy::Lazy pol(Schedule::parse("1:0.5,3:0.5"));
  const auto prompt = prompt_of(30, 5, 64);
  Pipe ref(CpuBackend{w}, pol);
  std::vector<std::vector<float>> want;
  auto l = ref.prefill(prompt);
  want.emplace_back(l.begin(), l.end());
  for (int i = 0; i < 6; ++i) {
    l = ref.decode(argmax(l));
    want.emplace_back(l.begin(), l.end());
  }
  for (int step = 0; step < 7; ++step)
    for (int layer = 0; layer < 4; ++layer) {
      CAPTURE(step);
      CAPTURE(layer);
      Pipe p(CpuBackend{w}, pol);
      int seen = 0;
      bool armed = true;
      p.on_layer([&](const LayerProgress& e) {
        if (armed && seen == step && e.layer == layer) {
          armed = false;
          throw std::runtime_error("callback failed");
        }
        if (e.layer == 3) ++seen;
      });
      std::vector<std::vector<float>> got;
      std::int32_t next = 0;
      for (int s = 0; s < 7; ++s) {
        auto once = [&] { return s == 0 ? p.prefill(prompt) : p.decode(next); };
        std::span<const float> out;
        if (s == step) {
          CHECK_THROWS_AS(once(), std::runtime_error);
          CHECK(p.n_past() == (s == 0 ? 0 : 30 + s - 1));
          CHECK(int(p.stats().steps.size()) == s);
        }
        out = once();
        got.emplace_back(out.begin(), out.end());
        next = argmax(out);
      }
      CHECK(got == want);
    }
}

TEST_CASE("engine: several threads, each with its own engine over one shared model") {
  const auto w = test::random_model(test::small_config(), 8, 0.3f);
  auto model = std::make_shared<const CpuModel>(w);
  const auto reqs = mixed_requests(64);
  const auto ref = together(model, reqs);
  std::vector<std::vector<Trace>> got(4);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) ts.emplace_back([&, t] { got[std::size_t(t)] = together(model, reqs); });
  for (auto& t : ts) t.join();
  for (const auto& g : got) CHECK(g == ref);
  CHECK(model.use_count() == 1);
}

TEST_CASE("engine: engines may share one pool; bad arguments are refused and change nothing") {
  const auto w = test::random_model(test::small_config(), 8, 0.3f);
  auto model = std::make_shared<const CpuModel>(w);
  Engine<CpuBackend> a(model, EngineOptions{.pool_blocks = 64});
  Engine<CpuBackend> b(model, EngineOptions{.pool = a.shared_pool()});
  const SeqId x = a.add(prompt_of(20, 1, 64));
  const SeqId y = b.add(prompt_of(20, 1, 64));
  a.step();
  b.step();
  CHECK(a.pool().used() == 2 * 4 * 2);  // two sequences, 4 layers, 20 tokens in blocks of 16
  CHECK(std::vector<float>(a.logits(x).begin(), a.logits(x).end()) ==
        std::vector<float>(b.logits(y).begin(), b.logits(y).end()));
  CHECK_THROWS_AS(a.add({}), InvalidArgument);
  CHECK_THROWS_AS(a.add(std::vector<std::int32_t>{1, 64}), InvalidArgument);
  CHECK_THROWS_AS(a.add(prompt_of(97, 1, 64)), InvalidArgument);
  CHECK(a.size() == 1);
  CHECK_THROWS_AS(a.decode(x, 99), InvalidArgument);
  CHECK(a.pending(x) == 0);
  CHECK_THROWS_AS(a.logits(123), InvalidArgument);
  CHECK_THROWS_AS(a.remove(123), InvalidArgument);
  a.decode(x, 5);
  CHECK_THROWS_AS(a.decode(x, 6), InvalidArgument);  // its last input is not stepped yet
  CHECK_FALSE(a.ready(x));
  CHECK_THROWS_AS(a.logits(x), InvalidArgument);
  CHECK_THROWS_AS((Engine<CpuBackend>(model, EngineOptions{.pool_blocks = 4, .block_tokens = 3})), ConfigError);
  CHECK_THROWS_AS((Engine<CpuBackend>(model, EngineOptions{.pool_bytes = 100})), ConfigError);
}

TEST_CASE("pooled layout: blocks and Aux entries come back exactly on rollback") {
  auto pool = std::make_shared<BlockPool>(PoolGeometry{4, 64, 128}, 10, host_arena_allocator());
  CHECK(pool->geometry().aux_per_block() == 2);
  PooledLayout lay(pool);
  LayoutShape shape{2, 100, {false, true}};
  lay.reset(shape);
  lay.begin_step();
  for (int p = 0; p < 6; ++p) lay.add_kv(0, p);
  lay.add_kv(1, 5);
  const auto a0 = lay.add_aux(1, 0), a1 = lay.add_aux(1, 1), a2 = lay.add_aux(1, 2);
  lay.commit_step();
  CHECK(pool->used() == 2 + 1 + 2);  // 6 K/V at layer 0 (2 blocks), 1 at layer 1, 3 Aux (2 blocks)
  CHECK(lay.kv_slot(0, 4) / 4 != lay.kv_slot(0, 3) / 4);
  CHECK(a0 / 2 == a1 / 2);
  lay.begin_step();
  lay.release_aux(1, 1);              // a revival frees an entry ...
  const auto a3 = lay.add_aux(1, 7);  // ... that a later drop in the same step must not take
  CHECK(a3 != a1);
  lay.add_kv(1, 1);
  for (int p = 6; p < 12; ++p) lay.add_kv(0, p);
  CHECK(pool->used() == 5 + 1);  // layer 0's entries 8..11 take a third block
  lay.rollback_step();
  CHECK(pool->used() == 5);
  CHECK(lay.aux_slot(1, 1) == a1);
  CHECK(lay.aux_slot(1, 7) == -1);
  CHECK(lay.kv_slot(1, 1) == -1);
  CHECK(lay.kv_slot(0, 6) == -1);
  CHECK(lay.aux_live() == 3);
  lay.begin_step();
  lay.release_aux(1, 1);
  lay.commit_step();
  lay.begin_step();
  CHECK(lay.add_aux(1, 8) == a1);  // freed in a committed step: reused
  lay.commit_step();
  CHECK(lay.aux_slot(1, 2) == a2);
  PooledLayout moved = std::move(lay);
  CHECK(pool->used() == 5);
  moved.reset(shape);
  CHECK(pool->used() == 0);
  // Exhaustion: typed, and the layout is unchanged.
  moved.begin_step();
  for (int p = 0; p < 40; ++p) moved.add_kv(0, p);
  CHECK_THROWS_AS(moved.add_kv(0, 40), OutOfBlocks);
  CHECK(moved.kv_slot(0, 40) == -1);
  moved.rollback_step();
  CHECK(pool->used() == 0);
}
