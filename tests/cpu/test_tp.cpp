// Tensor parallelism on the CPU: the in-process communicator (sum order, broadcast, failures that
// must not hang), the sharding of heads, KV heads and FFN units, and the sharded backend run as
// tp = 1, 2, 4 threads against the unsharded model for every shipped policy: the same kept sets,
// revivals and Aux Cache peaks, logits within a stated tolerance, and on every rank the same
// scores, selections and logits bit for bit; through Pipeline and through an Engine that batches
// several sequences per step.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/dist/any_comm.hpp"
#include "lazyllm/dist/communicator.hpp"
#include "lazyllm/dist/shard.hpp"
#include "lazyllm/dist/thread_comm.hpp"
#include "lazyllm/dist/tp_cpu.hpp"
#include "lazyllm/engine/engine.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/any.hpp"
#include "random_model.hpp"
#include "synthetic_inputs.hpp"
#include "test_util.hpp"

using lazyllm::test::prompt_of;

using namespace lazyllm;

namespace {

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

}  // namespace

// ------------------------------------------------------------------ the communicator

TEST_CASE("tp comm: all_reduce_sum adds in rank order, the same bits on every rank, for any length") {
  static_assert(Communicator<ThreadComm> && Communicator<AnyComm> && Communicator<SingleRank>);
  static_assert(!Communicator<int>);
  // 1e8 + 1 rounds to 1e8 in float: only the order ((1e8 + 1) + -1e8) + 1 gives exactly 1.
  std::vector<std::vector<float>> got(4);
  run_ranks(4, [&](ThreadComm c) {
    const float mine[4] = {1e8f, 1.0f, -1e8f, 1.0f};
    std::vector<float> x(5, mine[c.rank()]);
    c.all_reduce_sum(std::span<float>(x));
    got[std::size_t(c.rank())] = x;
  });
  for (const auto& g : got) CHECK(g == std::vector<float>(5, 1.0f));

  // Random data of several lengths (shorter than the group, not a multiple of it, empty): every
  // rank gets exactly the sequential rank-order sum, in floats and in doubles.
  for (const int n_ranks : {1, 2, 3, 4}) {
    for (const std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(3), std::size_t(1000), std::size_t(1001)}) {
      CAPTURE(n_ranks);
      CAPTURE(n);
      std::vector<std::vector<float>> in(static_cast<std::size_t>(n_ranks)), out(static_cast<std::size_t>(n_ranks));
      std::vector<std::vector<double>> ind(static_cast<std::size_t>(n_ranks)), outd(static_cast<std::size_t>(n_ranks));
      std::mt19937 rng(unsigned(n * 7 + std::size_t(n_ranks)));
      std::normal_distribution<float> nd(0.0f, 1.0f);
      for (int r = 0; r < n_ranks; ++r)
        for (std::size_t i = 0; i < n; ++i) {
          const float v = nd(rng) * std::pow(10.0f, float(int(i % 7) - 3));
          in[std::size_t(r)].push_back(v);
          ind[std::size_t(r)].push_back(double(v) / 3.0);
        }
      run_ranks(n_ranks, [&](ThreadComm c) {
        auto x = in[std::size_t(c.rank())];
        auto y = ind[std::size_t(c.rank())];
        c.all_reduce_sum(std::span<float>(x));
        c.all_reduce_sum(std::span<double>(y));
        out[std::size_t(c.rank())] = x;
        outd[std::size_t(c.rank())] = y;
      });
      std::vector<float> want(n);
      std::vector<double> wantd(n);
      for (std::size_t i = 0; i < n; ++i) {
        float s = in[0][i];
        double sd = ind[0][i];
        for (int r = 1; r < n_ranks; ++r) s += in[std::size_t(r)][i], sd += ind[std::size_t(r)][i];
        want[i] = s;
        wantd[i] = sd;
      }
      for (int r = 0; r < n_ranks; ++r) {
        CHECK(same_bits(out[std::size_t(r)], want));
        CHECK(same_bits(outd[std::size_t(r)], wantd));  // (memcmp of an empty vector's null data is UB)
      }
    }
  }
}

TEST_CASE("tp comm: broadcast from every root; broadcast_value; AnyComm and SingleRank") {
  for (int root = 0; root < 3; ++root) {
    std::vector<std::vector<std::int32_t>> got(3);
    std::vector<double> values(3);
    run_ranks(3, [&](ThreadComm c) {
      std::vector<std::int32_t> v(17, 100 * c.rank());
      v[3] = c.rank();
      c.broadcast(std::as_writable_bytes(std::span<std::int32_t>(v)), root);
      got[std::size_t(c.rank())] = v;
      AnyComm any(c);  // the type-erased handle is the same rank
      double d = 0.5 + c.rank();
      broadcast_value(any, d, root);
      values[std::size_t(c.rank())] = d;
    });
    std::vector<std::int32_t> want(17, 100 * root);
    want[3] = root;
    for (int r = 0; r < 3; ++r) {
      CHECK(got[std::size_t(r)] == want);
      CHECK(values[std::size_t(r)] == 0.5 + root);
    }
  }
  AnyComm solo;
  CHECK(solo.rank() == 0);
  CHECK(solo.size() == 1);
  std::vector<float> x{1.5f, -2.0f};
  solo.all_reduce_sum(std::span<float>(x));
  CHECK(x == std::vector<float>{1.5f, -2.0f});
  int v = 7;
  broadcast_value(solo, v);
  CHECK(v == 7);
  CHECK_THROWS_AS(solo.broadcast({}, 1), InvalidArgument);
  CHECK_THROWS_AS(ThreadGroup(0), InvalidArgument);
  CHECK_THROWS_AS(ThreadComm(std::make_shared<ThreadGroup>(2), 2), InvalidArgument);
}

TEST_CASE("tp comm: a rank that throws aborts the group; the others do not hang; the cause is rethrown") {
  // Rank 2 fails before its first collective while the others wait in it.
  std::atomic<int> aborted{0};
  try {
    run_ranks(4, [&](ThreadComm c) {
      std::vector<float> x(8, 1.0f);
      if (c.rank() == 2) throw std::runtime_error("rank two broke");
      try {
        c.all_reduce_sum(std::span<float>(x));
      } catch (const CommAborted& e) {
        ++aborted;
        CHECK(std::string(e.what()).find("rank 2 failed: rank two broke") != std::string::npos);
        throw;
      }
    });
    FAIL("run_ranks returned");
  } catch (const CommAborted&) {
    FAIL("the cause was not rethrown");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) == "rank two broke");
  }
  CHECK(aborted == 3);

  // A rank that fails after some collectives, while the others go on to the next ones.
  aborted = 0;
  CHECK_THROWS_WITH_AS(run_ranks(3,
                                 [&](ThreadComm c) {
                                   std::vector<double> x(4, 1.0);
                                   for (int i = 0; i < 5; ++i) {
                                     if (c.rank() == 1 && i == 3) throw InvalidArgument("bad input on rank 1");
                                     try {
                                       c.all_reduce_sum(std::span<double>(x));
                                     } catch (const CommAborted&) {
                                       ++aborted;
                                       throw;
                                     }
                                   }
                                 }),
                       "bad input on rank 1", InvalidArgument);
  CHECK(aborted == 2);

  // A rank that returns early (it made fewer calls): the ranks waiting for it abort.
  CHECK_THROWS_AS(run_ranks(3,
                            [&](ThreadComm c) {
                              std::vector<float> x(4, 1.0f);
                              const int calls = c.rank() == 0 ? 1 : 3;
                              for (int i = 0; i < calls; ++i) c.all_reduce_sum(std::span<float>(x));
                            }),
                  CommAborted);
  try {
    run_ranks(2, [&](ThreadComm c) {
      std::vector<float> x(4, 1.0f);
      if (c.rank() == 1) c.all_reduce_sum(std::span<float>(x));
    });
    FAIL("no error");
  } catch (const CommAborted& e) {
    CHECK(std::string(e.what()) ==
          "rank 0 finished while rank 1 waits in a collective (the ranks made different calls)");
  }

  // Different calls on different ranks: every rank sees it, and says what differed.
  try {
    run_ranks(2, [&](ThreadComm c) {
      std::vector<float> x(c.rank() == 0 ? 4 : 5, 1.0f);
      c.all_reduce_sum(std::span<float>(x));
    });
    FAIL("no error");
  } catch (const CommAborted& e) {
    CHECK(std::string(e.what()) ==
          "the ranks made different calls: rank 0 called all_reduce_sum of floats of 4 (root 0), rank 1 "
          "all_reduce_sum of floats of 5 (root 0)");
  }

  // An aborted group stays aborted: every later collective throws at once, with the first reason.
  auto g = std::make_shared<ThreadGroup>(2);
  ThreadComm c0(g, 0);
  c0.abort("stop");
  c0.abort("a later reason");
  std::vector<float> x(2);
  CHECK_THROWS_WITH_AS(c0.all_reduce_sum(std::span<float>(x)), "stop", CommAborted);
  CHECK_THROWS_WITH_AS(ThreadComm(g, 1).broadcast(std::as_writable_bytes(std::span<float>(x)), 0), "stop", CommAborted);
  CHECK(g->aborted());
}

// ------------------------------------------------------------------ sharding

TEST_CASE("tp shard: heads, KV heads (split or replicated) and FFN units per rank; models that do not split") {
  RuntimeConfig c = test::small_config(RopeStyle::Interleaved, 4);  // 4 heads, 4 KV heads, hidden 48
  CHECK(shard_ranges(c, {0, 1}) == ShardRanges{0, 4, 0, 4, 0, 48});
  CHECK(shard_ranges(c, {1, 2}) == ShardRanges{2, 2, 2, 2, 24, 24});
  CHECK(shard_ranges(c, {3, 4}) == ShardRanges{3, 1, 3, 1, 36, 12});
  c.n_kv_heads = 2;  // GQA: split at tp = 2, replicated at tp = 4 (rank r uses KV head r / 2)
  CHECK(shard_ranges(c, {1, 2}) == ShardRanges{2, 2, 1, 1, 24, 24});
  CHECK(shard_ranges(c, {0, 4}).kv_first == 0);
  CHECK(shard_ranges(c, {1, 4}).kv_first == 0);
  CHECK(shard_ranges(c, {2, 4}) == ShardRanges{2, 1, 1, 1, 24, 12});
  c.n_kv_heads = 1;  // one KV head: every rank holds it
  for (int r = 0; r < 4; ++r) CHECK(shard_ranges(c, {r, 4}).kv_first == 0);
  c.hidden_dim = 50;  // FFN units need not divide: contiguous near-equal ranges
  int total = 0;
  for (int r = 0; r < 4; ++r) {
    const auto s = shard_ranges(c, {r, 4});
    CHECK(s.ffn_first == total);
    total += s.n_ffn;
  }
  CHECK(total == 50);

  c = test::small_config(RopeStyle::Interleaved, 4);
  CHECK_THROWS_WITH_AS(shard_ranges(c, {0, 3}),
                       "tensor parallel over 3 ranks: the model's 4 query heads do not split evenly (tp must divide "
                       "n_heads)",
                       ConfigError);
  c.n_heads = 12, c.dim = 48, c.n_kv_heads = 4;  // 4 KV heads over 6 ranks
  CHECK_THROWS_WITH_AS(shard_ranges(c, {0, 6}),
                       "tensor parallel over 6 ranks: the model's 4 KV heads neither split evenly nor replicate "
                       "evenly (tp must divide n_kv_heads or be a multiple of it)",
                       ConfigError);
  CHECK_THROWS_AS(shard_ranges(c, {2, 2}), InvalidArgument);
  CHECK_THROWS_AS(shard_ranges(c, {0, 0}), InvalidArgument);
  const auto w = test::random_model(test::small_config(), 3, 0.3f);
  CHECK_THROWS_AS(run_tp(w, 3, [](CpuRank&) { FAIL("a rank ran"); }), ConfigError);  // before any thread
  // A backend's communicator must be the model's rank.
  auto shard = std::make_shared<const CpuModel>(w, Shard{1, 2});
  CHECK_THROWS_WITH_AS(CpuBackend{shard},
                       "CpuBackend: the model is the shard of rank 1 of 2 but the communicator is rank 0 of 1",
                       InvalidArgument);
}

TEST_CASE("tp shard: the ranks' slices put back together are the model (fp32 views and bf16 copies)") {
  RuntimeConfig c = test::small_config(RopeStyle::Interleaved, 2);
  c.hidden_dim = 50;
  const auto w = test::random_model(c, 5, 0.3f);
  const std::int64_t d = c.dim, hd = c.head_dim(), h = c.hidden_dim;
  for (const int tp : {1, 2, 4}) {
    CAPTURE(tp);
    for (int r = 0; r < tp; ++r) {
      const ShardWeights s = shard_weights(w, {r, tp});
      const ShardRanges& g = s.ranges;
      CHECK(s.token_embedding == w.token_embedding);
      for (int l = 0; l < c.n_layers; ++l) {
        const LayerWeights &a = s.layers[std::size_t(l)], &full = w.layers[std::size_t(l)];
        for (std::int64_t i = 0; i < g.n_q * hd * d; ++i)
          REQUIRE(a.wq.f32()[i] == full.wq.f32()[g.q_first * hd * d + i]);
        for (std::int64_t i = 0; i < g.n_kv * hd * d; ++i) {
          REQUIRE(a.wk.f32()[i] == full.wk.f32()[g.kv_first * hd * d + i]);
          REQUIRE(a.wv.f32()[i] == full.wv.f32()[g.kv_first * hd * d + i]);
        }
        for (std::int64_t row = 0; row < d; ++row) {
          for (std::int64_t j = 0; j < g.n_q * hd; ++j)
            REQUIRE(a.wo.f32()[row * g.n_q * hd + j] == full.wo.f32()[row * d + g.q_first * hd + j]);
          for (std::int64_t j = 0; j < g.n_ffn; ++j)
            REQUIRE(a.w2.f32()[row * g.n_ffn + j] == full.w2.f32()[row * h + g.ffn_first + j]);
        }
        for (std::int64_t i = 0; i < g.n_ffn * d; ++i) {
          REQUIRE(a.w1.f32()[i] == full.w1.f32()[g.ffn_first * d + i]);
          REQUIRE(a.w3.f32()[i] == full.w3.f32()[g.ffn_first * d + i]);
        }
      }
    }
  }
  // Layers that share tensors (synthetic benchmark models) share their copied columns too.
  ModelWeights shared = w;
  shared.layers.assign(shared.layers.size(), w.layers[0]);
  const ShardWeights sh = shard_weights(shared, {1, 2});
  CHECK(sh.layers[3].wo == sh.layers[0].wo);
  CHECK(sh.layers[3].w2 == sh.layers[0].w2);
  CHECK(sh.storage.size() == shared.storage.size() + 2);
  CHECK(sh.layers[0].wo.f32()[1] == w.layers[0].wo.f32()[std::int64_t(sh.ranges.q_first) * hd + 1]);
  // bf16 views: a shard converts its own slices; the same numbers as sharding the fp32 conversion.
  ModelWeights b = w;
  for_each_weight(b, [&](WeightView& t, std::int64_t n) {
    auto buf = std::make_shared<std::vector<std::uint16_t>>(std::size_t(n));
    for (std::int64_t i = 0; i < n; ++i)
      (*buf)[std::size_t(i)] = std::uint16_t(std::bit_cast<std::uint32_t>(t.f32()[i]) >> 16);
    t = WeightView(buf->data(), TensorDType::BF16);
    b.storage.push_back(buf);
  });
  const ModelWeights b32 = to_f32_weights(b);
  for (int r = 0; r < 2; ++r) {
    const CpuModel from_bf16(b, {r, 2}), from_f32(b32, {r, 2});
    for (int l = 0; l < c.n_layers; ++l) {
      const auto &x = from_bf16.layer(l), &y = from_f32.layer(l);
      const auto n_o = std::size_t(d * from_bf16.ranges().n_q * hd), n_2 = std::size_t(d * from_bf16.ranges().n_ffn);
      CHECK(x.wo.dtype() == TensorDType::F32);
      CHECK(std::equal(x.wo.f32(), x.wo.f32() + n_o, y.wo.f32()));
      CHECK(std::equal(x.w2.f32(), x.w2.f32() + n_2, y.w2.f32()));
      CHECK(std::equal(x.w1.f32(), x.w1.f32() + n_2, y.w1.f32()));
    }
    CHECK(std::equal(from_bf16.weights().classifier.f32(), from_bf16.weights().classifier.f32() + 64 * 32,
                     from_f32.weights().classifier.f32()));
  }
}

// ------------------------------------------------------------------ the sharded backend

namespace {

/// A policy that records what it was given and what it kept (the kept positions of every
/// selection, the scores it selected from), around any shipped policy.
struct Log {
  std::vector<std::vector<std::int32_t>> kept;
  std::vector<std::vector<float>> scores;
};
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

/// What one rank (or the unsharded model) produced for one request.
struct Trace {
  std::vector<std::vector<float>> logits;  // after the prompt, then after each decode token
  std::vector<std::vector<int>> sets;      // |S_l| and |C_l| per step
  std::vector<std::int64_t> revivals;
  std::int64_t aux_peak = 0;
  Log log;
};

void record_stats(Trace& t, const RunStats& st) {
  for (const auto& s : st.steps) {
    t.sets.push_back(s.selected);
    t.sets.push_back(s.computed);
    t.revivals.push_back(s.revivals);
  }
  t.aux_peak = st.aux_peak_entries;
}

/// The prompt, then the given decode tokens (or greedy ones, appended to `tokens`, when it is empty).
Trace run_pipeline(CpuBackend be, const policy::AnyPolicy& pol, const std::vector<std::int32_t>& prompt, int n_decode,
                   std::vector<std::int32_t>& tokens) {
  Recorder rec{pol};
  Pipeline<RuntimeConfig, Recorder, ContiguousLayout, CpuBackend> p(std::move(be), rec);
  const bool greedy = tokens.empty();
  Trace t;
  auto l = p.prefill(prompt);
  t.logits.emplace_back(l.begin(), l.end());
  for (int i = 0; i < n_decode; ++i) {
    if (greedy) tokens.push_back(argmax(l));
    l = p.decode(tokens[std::size_t(i)]);
    t.logits.emplace_back(l.begin(), l.end());
  }
  record_stats(t, p.stats());
  t.log = *rec.log;
  return t;
}

struct Errors {
  double logits = 0, logit_scale = 0, scores = 0;
  void add(const Trace& a, const Trace& b) {
    for (std::size_t s = 0; s < a.logits.size(); ++s)
      for (std::size_t i = 0; i < a.logits[s].size(); ++i) {
        logits = std::max(logits, double(std::fabs(a.logits[s][i] - b.logits[s][i])));
        logit_scale = std::max(logit_scale, double(std::fabs(a.logits[s][i])));
      }
    for (std::size_t s = 0; s < a.log.scores.size() && s < b.log.scores.size(); ++s)
      for (std::size_t i = 0; i < a.log.scores[s].size() && i < b.log.scores[s].size(); ++i)
        scores = std::max(scores, double(std::fabs(a.log.scores[s][i] - b.log.scores[s][i])));
  }
};

// The all-reduces add the ranks' partial dot products instead of accumulating one dot product:
// fp32 rounding in another order, a few 1e-7 relative per layer. Measured over the runs below
// (4 layers, random weights of scale 0.3, logits up to 8.7): at most 2.1e-5 on the logits and
// 6.9e-7 on the scores (which are <= 1); the bounds leave a margin of about 10x.
constexpr double kLogitTol = 2e-4;
constexpr double kScoreTol = 5e-6;

std::vector<policy::AnyPolicy> every_policy() {
  const Schedule s = Schedule::parse("1:0.5,2:0.3,3:0.5");
  return {policy::Dense{},   policy::Lazy(s),          policy::Lazy(s, 4),
          policy::Static(s), policy::RandomDrop(s, 9), policy::Window(Schedule::parse("2:0.5"))};
}

struct Shape {
  std::string name;
  RuntimeConfig config;
  std::vector<int> tps;
};
std::vector<Shape> shapes() {
  RuntimeConfig wide = test::small_config(RopeStyle::RotateHalf, 2);
  wide.dim = 64, wide.n_heads = 8, wide.hidden_dim = 70;  // KV heads split at 2, replicated at 4; FFN 17/18
  return {{"MHA 4/4", test::small_config(RopeStyle::Interleaved, 4), {1, 2, 4}},
          {"GQA 4/2", test::small_config(RopeStyle::RotateHalf, 2), {1, 2, 4}},
          {"MQA 4/1", test::small_config(RopeStyle::Interleaved, 1), {1, 2, 4}},
          {"GQA 8/2, hidden 70", wide, {1, 2, 4}}};
}

}  // namespace

TEST_CASE("tp pipeline: tp = 1, 2, 4 keep the same sets and revivals as the unsharded model, every policy") {
  Errors err;
  std::int64_t revivals = 0;
  int runs = 0;
  for (const Shape& shape : shapes()) {
    const auto w = test::random_model(shape.config, 11, 0.3f);
    const auto prompt = prompt_of(40, 3, w.config.vocab_size);
    const int n_decode = 8;
    for (const auto& pol : every_policy()) {
      CAPTURE(shape.name);
      CAPTURE(pol);
      std::vector<std::int32_t> tokens;
      const Trace ref = run_pipeline(CpuBackend(w), pol, prompt, n_decode, tokens);  // greedy; its tokens go on
      for (auto v : ref.revivals) revivals += v;
      for (const int tp : shape.tps) {
        CAPTURE(tp);
        std::vector<Trace> got(static_cast<std::size_t>(tp));
        run_tp(w, tp, [&](CpuRank& r) {
          auto toks = tokens;
          got[std::size_t(r.rank())] = run_pipeline(r.backend(), pol, prompt, n_decode, toks);
        });
        ++runs;
        for (int r = 0; r < tp; ++r) {
          const Trace& g = got[std::size_t(r)];
          CAPTURE(r);
          // Every rank: the same selections from the same scores, the same logits, bit for bit.
          CHECK(g.log.kept == got[0].log.kept);
          REQUIRE(g.log.scores.size() == got[0].log.scores.size());
          for (std::size_t s = 0; s < g.log.scores.size(); ++s) CHECK(same_bits(g.log.scores[s], got[0].log.scores[s]));
          for (std::size_t s = 0; s < g.logits.size(); ++s) CHECK(same_bits(g.logits[s], got[0].logits[s]));
          // And what the unsharded model keeps, revives and parks.
          CHECK(g.log.kept == ref.log.kept);
          CHECK(g.sets == ref.sets);
          CHECK(g.revivals == ref.revivals);
          CHECK(g.aux_peak == ref.aux_peak);
        }
        if (tp == 1) {  // one rank is the unsharded model itself
          for (std::size_t s = 0; s < ref.logits.size(); ++s) CHECK(same_bits(got[0].logits[s], ref.logits[s]));
          for (std::size_t s = 0; s < ref.log.scores.size(); ++s)
            CHECK(same_bits(got[0].log.scores[s], ref.log.scores[s]));
        }
        Errors e;
        e.add(got[0], ref);
        CHECK(e.logits <= kLogitTol);
        CHECK(e.scores <= kScoreTol);
        err.logits = std::max(err.logits, e.logits);
        err.scores = std::max(err.scores, e.scores);
        err.logit_scale = std::max(err.logit_scale, e.logit_scale);
      }
    }
  }
  CHECK(revivals > 0);  // the scenarios exercise revival in decode
  MESSAGE("tp vs unsharded over " << runs << " runs: max |logit error| " << err.logits << " (logits up to "
                                  << err.logit_scale << "), max |score error| " << err.scores);
}

namespace {

struct Request {
  std::vector<std::int32_t> prompt;
  int chunk = 0;
  int n_decode = 0;
  int join = 0;
  policy::AnyPolicy policy;
};

/// The requests through an Engine over `model` (with `comm`): request i's decode tokens are
/// tokens[i] (greedy ones, recorded there, when tokens[i] is empty).
std::vector<Trace> run_engine(std::shared_ptr<const CpuModel> model, AnyComm comm, const std::vector<Request>& reqs,
                              std::vector<std::vector<std::int32_t>>& tokens, int* max_batch = nullptr) {
  Engine<CpuBackend> eng(std::move(model), EngineOptions{.pool_blocks = 1024}, comm);
  std::vector<Trace> out(reqs.size());
  std::map<SeqId, std::size_t> which;
  std::map<SeqId, int> decoded;
  std::vector<bool> greedy(reqs.size());
  for (std::size_t i = 0; i < reqs.size(); ++i) greedy[i] = tokens[i].empty();
  std::size_t joined = 0;
  for (int step = 0; joined < reqs.size() || eng.size() > 0; ++step) {
    for (std::size_t i = 0; i < reqs.size(); ++i)
      if (reqs[i].join == step) {
        const SeqId id = eng.add(reqs[i].prompt, reqs[i].policy, {.prefill_chunk = reqs[i].chunk});
        which[id] = i;
        decoded[id] = 0;
        ++joined;
      }
    const StepResult r = eng.step();
    if (max_batch) *max_batch = std::max(*max_batch, int(r.stepped.size()));
    for (const SeqId id : r.ready) {
      const std::size_t i = which[id];
      const auto l = eng.logits(id);
      out[i].logits.emplace_back(l.begin(), l.end());
      const int k = decoded[id]++;
      if (k < reqs[i].n_decode) {
        if (greedy[i]) tokens[i].push_back(eng.sample(id));
        eng.decode(id, tokens[i][std::size_t(k)]);
      } else {
        record_stats(out[i], eng.stats(id));
        eng.remove(id);
      }
    }
    if (step > 1000) throw Error("runaway engine loop");
  }
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
  return r;
}

}  // namespace

TEST_CASE("tp engine: several sequences per step across ranks; each gets what it gets alone and unsharded") {
  for (const Shape& shape : shapes()) {
    CAPTURE(shape.name);
    const auto w = test::random_model(shape.config, 8, 0.3f);
    const auto reqs = mixed_requests(w.config.vocab_size);
    std::vector<std::vector<std::int32_t>> tokens(reqs.size());
    int max_batch = 0;
    const auto ref = run_engine(std::make_shared<const CpuModel>(w), {}, reqs, tokens, &max_batch);
    CHECK(max_batch >= 3);
    for (const int tp : {2, 4}) {
      CAPTURE(tp);
      std::vector<std::vector<Trace>> got(static_cast<std::size_t>(tp)), alone(static_cast<std::size_t>(tp));
      std::vector<std::int64_t> kv_bytes(static_cast<std::size_t>(tp));
      run_tp(w, tp, [&](CpuRank& r) {
        auto toks = tokens;
        got[std::size_t(r.rank())] = run_engine(r.model, r.comm, reqs, toks);
        for (std::size_t i = 0; i < reqs.size(); ++i) {
          // The request alone through a pipeline on the same shards (prefilled whole: chunking
          // changes the selections, so only unchunked requests are compared with it).
          if (reqs[i].chunk != 0) continue;
          auto t = toks[i];
          alone[std::size_t(r.rank())].push_back(
              run_pipeline(r.backend(), reqs[i].policy, reqs[i].prompt, reqs[i].n_decode, t));
        }
        kv_bytes[std::size_t(r.rank())] = r.backend().kv_token_bytes();
      });
      for (int r = 0; r < tp; ++r) {
        CAPTURE(r);
        CHECK(kv_bytes[std::size_t(r)] == 2 * 4 * w.config.head_dim() * shard_ranges(w.config, {r, tp}).n_kv);
        std::size_t a = 0;
        for (std::size_t i = 0; i < reqs.size(); ++i) {
          CAPTURE(i);
          const Trace &g = got[std::size_t(r)][i], &g0 = got[0][i];
          for (std::size_t s = 0; s < g.logits.size(); ++s) CHECK(same_bits(g.logits[s], g0.logits[s]));
          CHECK(g.sets == ref[i].sets);
          CHECK(g.revivals == ref[i].revivals);
          CHECK(g.aux_peak == ref[i].aux_peak);
          Errors e;
          e.add(g, ref[i]);
          CHECK(e.logits <= kLogitTol);
          if (reqs[i].chunk == 0) {  // batched = alone, bit for bit, on the same shards
            const Trace& al = alone[std::size_t(r)][a++];
            REQUIRE(al.logits.size() == g.logits.size());
            for (std::size_t s = 0; s < g.logits.size(); ++s) CHECK(same_bits(g.logits[s], al.logits[s]));
            CHECK(al.sets == g.sets);
          }
        }
      }
    }
  }
}

TEST_CASE("tp engine: rank 0 samples and broadcasts the token; with one seed every rank draws the same") {
  const auto w = test::random_model(test::small_config(RopeStyle::Interleaved, 2), 4, 0.3f);
  const auto prompt = prompt_of(30, 9, w.config.vocab_size);
  const int tp = 2, n = 12;
  std::vector<std::vector<std::int32_t>> fed(tp), own(tp);
  run_tp(w, tp, [&](CpuRank& r) {
    Engine<CpuBackend> eng(r.model, EngineOptions{.pool_blocks = 256}, r.comm);
    SequenceOptions so;
    so.sampling.temperature = 1.0f;
    so.sampling.seed = 1234;  // the same on every rank: every rank's own draw agrees too
    const SeqId id = eng.add(prompt, policy::Lazy(Schedule::parse("1:0.5,3:0.5")), so);
    for (int i = 0; i < n; ++i) {
      eng.step();
      std::int32_t tok = eng.sample(id);
      own[std::size_t(r.rank())].push_back(tok);
      if (!r.leader()) tok = -1;  // only rank 0's draw counts
      broadcast_value(r.comm, tok, 0);
      fed[std::size_t(r.rank())].push_back(tok);
      eng.decode(id, tok);
    }
  });
  CHECK(fed[1] == fed[0]);
  CHECK(own[1] == own[0]);
  CHECK(fed[0] == own[0]);
  CHECK(std::find(fed[0].begin(), fed[0].end(), -1) == fed[0].end());
}

namespace {
/// A communicator that throws at its all-reduce number `fail_at` on this rank (inside the
/// backend's layer call, between the collectives of a step).
struct FailingComm {
  ThreadComm inner;
  int fail_at = -1;
  std::shared_ptr<int> calls = std::make_shared<int>(0);
  int rank() const { return inner.rank(); }
  int size() const { return inner.size(); }
  void tick() {
    if ((*calls)++ == fail_at) throw Error("injected failure");
  }
  void all_reduce_sum(std::span<float> x) { tick(), inner.all_reduce_sum(x); }
  void all_reduce_sum(std::span<double> x) { tick(), inner.all_reduce_sum(x); }
  void broadcast(std::span<std::byte> x, int root) { inner.broadcast(x, root); }
  void abort(std::string_view why) noexcept { inner.abort(why); }
};
}  // namespace

TEST_CASE("tp pipeline: one rank failing inside a layer aborts the group; every rank's sequence is as it was") {
  const auto w = test::random_model(test::small_config(RopeStyle::Interleaved, 2), 6, 0.3f);
  const auto prompt = prompt_of(30, 2, w.config.vocab_size);
  const int tp = 4;
  std::set<int> failed_steps;
  for (const int fail_at : {0, 3, 9, 14, 21, 30}) {  // the prefill's and decode steps' collectives
    CAPTURE(fail_at);
    std::vector<int> n_past(tp, -1), steps(tp, -1);
    std::vector<std::string> what(tp);
    try {
      run_tp(w, tp, [&](CpuRank& r) {
        CpuBackend be(r.model, FailingComm{r.comm, r.rank() == 2 ? fail_at : -1});
        Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, CpuBackend> p(
            std::move(be), policy::Lazy(Schedule::parse("1:0.5,3:0.5")));
        try {
          auto l = p.prefill(prompt);
          for (int i = 0; i < 5; ++i) l = p.decode(argmax(l));
        } catch (const std::exception& e) {
          n_past[std::size_t(r.rank())] = p.n_past();
          steps[std::size_t(r.rank())] = int(p.stats().steps.size());
          what[std::size_t(r.rank())] = e.what();
          throw;
        }
      });
      FAIL("no error");
    } catch (const CommAborted&) {
      FAIL("the cause was not rethrown");
    } catch (const Error& e) {
      CHECK(std::string(e.what()) == "injected failure");
    }
    failed_steps.insert(steps[0]);
    for (int r = 0; r < tp; ++r) {
      CAPTURE(r);
      CHECK(steps[std::size_t(r)] == steps[0]);  // every rank failed in the same step, and undid it
      CHECK(n_past[std::size_t(r)] == (steps[0] == 0 ? 0 : 30 + steps[0] - 1));
      if (r == 2) continue;
      CHECK(what[std::size_t(r)].rfind("rank 2 failed in layer ", 0) == 0);
      CHECK(what[std::size_t(r)].find(": injected failure") != std::string::npos);
    }
  }
  CHECK(failed_steps.size() >= 3);  // failures in the prefill and in several decode steps
}

TEST_CASE("tp engine: OutOfBlocks happens on every rank at the same point, changes nothing, and the retry works") {
  const auto w = test::random_model(test::small_config(RopeStyle::Interleaved, 2), 8, 0.3f);
  const Schedule s = Schedule::parse("1:0.5,2:0.3,3:0.5");
  const auto pa = prompt_of(40, 1, 64), pb = prompt_of(90, 2, 64);
  // The reference: a alone, unsharded, greedy.
  std::vector<std::int32_t> toks;
  const Trace ref = run_pipeline(CpuBackend(w), policy::Lazy(s), pa, 5, toks);
  const int tp = 2;
  std::vector<std::vector<std::vector<float>>> logits(tp);
  std::vector<std::vector<std::string>> events(tp);
  run_tp(w, tp, [&](CpuRank& r) {
    EngineOptions o;
    o.block_tokens = 4;
    o.pool_blocks = 64;  // a fits; b's dense 90 tokens do not
    Engine<CpuBackend> eng(r.model, o, r.comm);
    auto& ev = events[std::size_t(r.rank())];
    auto& lg = logits[std::size_t(r.rank())];
    const SeqId a = eng.add(pa, policy::Lazy(s));
    eng.step();
    lg.emplace_back(eng.logits(a).begin(), eng.logits(a).end());
    const SeqId b = eng.add(pb, policy::Dense{});
    eng.decode(a, toks[0]);
    const std::int64_t used = eng.pool().used();
    try {
      eng.step();
      ev.push_back("no error");
    } catch (const OutOfBlocks&) {
      ev.push_back(eng.pool().used() == used && eng.pending(a) == 1 && eng.n_past(b) == 0 ? "out of blocks, unchanged"
                                                                                          : "out of blocks, changed");
    }
    eng.remove(b);
    for (int i = 0; i < 5; ++i) {
      eng.step();
      lg.emplace_back(eng.logits(a).begin(), eng.logits(a).end());
      if (i + 1 < 5) eng.decode(a, toks[std::size_t(i + 1)]);
    }
  });
  for (int r = 0; r < tp; ++r) {
    CAPTURE(r);
    CHECK(events[std::size_t(r)] == std::vector<std::string>{"out of blocks, unchanged"});
    REQUIRE(logits[std::size_t(r)].size() == ref.logits.size());
    for (std::size_t k = 0; k < ref.logits.size(); ++k) {
      CHECK(same_bits(logits[std::size_t(r)][k], logits[0][k]));
      double e = 0;
      for (std::size_t i = 0; i < ref.logits[k].size(); ++i)
        e = std::max(e, double(std::fabs(logits[std::size_t(r)][k][i] - ref.logits[k][i])));
      CHECK(e <= kLogitTol);
    }
  }
}
