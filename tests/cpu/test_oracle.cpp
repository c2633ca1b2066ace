// The pipeline against the masking oracle (oracle.hpp): same kept sets at every layer of every
// step, logits within tolerance, over a prefill and 32 decode steps with revivals.
#include <memory>

#include "lazyllm/lazyllm.hpp"
#include "oracle.hpp"
#include "random_model.hpp"
#include "test_util.hpp"

using namespace lazyllm;

namespace {

struct Decision {
  std::int64_t step;
  int into_layer;
  std::vector<std::int32_t> kept;
};

/// Wraps a policy and records every decision the pipeline applies (the newest token always kept).
template <class P>
struct Recording {
  P inner{};
  std::shared_ptr<std::vector<Decision>> log = std::make_shared<std::vector<Decision>>();
  bool prunes_into(int l) const { return inner.prunes_into(l); }
  void select(const SelectArgs& a, std::span<std::uint8_t> keep) const {
    inner.select(a, keep);
    Decision d{a.step, a.into_layer, {}};
    for (std::size_t i = 0; i < keep.size(); ++i)
      if (keep[i] || i + 1 == keep.size()) d.kept.push_back(a.positions[i]);
    log->push_back(d);
  }
  std::string_view name() const { return "recording"; }
  friend bool operator==(const Recording& a, const Recording& b) { return a.inner == b.inner; }
  friend std::ostream& operator<<(std::ostream& os, const Recording& r) { return os << r.inner; }
};

test::Oracle::Rule percentile_rule(const Schedule& s) {
  return [s](int, int into, const std::vector<int>&, const std::vector<double>& scores) {
    std::vector<double> sorted = scores;
    std::sort(sorted.begin(), sorted.end());
    const auto n = sorted.size();
    const double thr = sorted[std::min<std::size_t>(std::size_t(std::floor(double(s.percentile_into(into)) * double(n))), n - 1)];
    std::vector<bool> keep(n);
    for (std::size_t i = 0; i < n; ++i) keep[i] = scores[i] >= thr;
    return keep;
  };
}

double norm_err(std::span<const float> a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < b.size(); ++i) num = std::max(num, std::abs(a[i] - b[i])), den = std::max(den, std::abs(b[i]));
  return num / den;
}

template <class P>
void compare_with_oracle(const ModelWeights& w, const std::vector<std::int32_t>& prompt, int decode_steps, P policy,
                         test::Oracle::Rule rule, double tol) {
  Recording<P> rec{policy};
  Pipeline<RuntimeConfig, Recording<P>, ContiguousLayout, CpuBackend> pipe(CpuBackend{w}, rec);
  test::Oracle oracle(w, rule, [&](int l) { return policy.prunes_into(l); });
  auto logits = pipe.prefill(prompt);
  auto ref = oracle.step(std::vector<int>(prompt.begin(), prompt.end()));
  for (int t = 0;; ++t) {
    CAPTURE(t);
    CHECK(norm_err(logits, ref) < tol);
    // The same sets at every layer of this step.
    const auto& st = pipe.stats().steps.at(std::size_t(t));
    for (int l = 0; l < w.config.n_layers; ++l) CHECK(st.selected[l] == int(oracle.set(t, l).size()));
    for (const auto& d : *rec.log)
      if (d.step == t) {
        const auto& o = oracle.set(t, d.into_layer);
        CHECK(std::vector<int>(d.kept.begin(), d.kept.end()) == o);
      }
    if (t == decode_steps) break;
    const auto next = argmax(logits);
    logits = pipe.decode(next);
    ref = oracle.step({next});
  }
}

}  // namespace

TEST_CASE("oracle: stories260K, lazy 2:0.5,4:0.5, prefill of 40 + 32 decode steps") {
  if (!test::have_shared("stories260K.bin")) return;
  const ModelWeights w = load_model(test::shared_models() / "stories260K.bin");
  std::vector<std::int32_t> prompt{1};
  for (int i = 1; i < 40; ++i) prompt.push_back(3 + (i * 131) % 509);
  const Schedule s = Schedule::parse("2:0.5,4:0.5");
  compare_with_oracle(w, prompt, 32, policy::Lazy(s), percentile_rule(s), 1e-4);
}

TEST_CASE("oracle: random GQA model, lazy 1:0.4,2:0.5,3:0.5 with revivals") {
  const auto w = test::random_model(test::small_config(RopeStyle::RotateHalf, 2), 99, 0.3f);
  std::vector<std::int32_t> prompt{1};
  for (int i = 1; i < 30; ++i) prompt.push_back(3 + (i * 7) % 60);
  const Schedule s = Schedule::parse("1:0.4,2:0.5,3:0.5");
  compare_with_oracle(w, prompt, 32, policy::Lazy(s), percentile_rule(s), 1e-4);
}

namespace {
/// Drops token 3 going into layer 2 in the prefill; keeps everything afterwards.
struct DropThreeOnce {
  bool prunes_into(int l) const { return l == 2; }
  void select(const SelectArgs& a, std::span<std::uint8_t> keep) const {
    for (std::size_t i = 0; i < keep.size(); ++i) keep[i] = !(a.step == 0 && a.positions[i] == 3);
  }
  std::string_view name() const { return "drop-3-once"; }
  friend bool operator==(const DropThreeOnce&, const DropThreeOnce&) = default;
  friend std::ostream& operator<<(std::ostream& os, const DropThreeOnce&) { return os << "drop-3-once"; }
};
}  // namespace

TEST_CASE("a constructed revival: token 3 is parked at layer 2, then revived from the Aux Cache") {
  const auto w = test::random_model(test::small_config(), 5, 0.3f);
  const std::vector<std::int32_t> prompt{1, 9, 17, 25, 33, 41};
  Pipeline<RuntimeConfig, DropThreeOnce, ContiguousLayout, CpuBackend> pipe(CpuBackend{w});
  auto logits = pipe.prefill(prompt);
  const auto& lay = pipe.layout();
  CHECK(lay.kv_slot(1, 3) >= 0);
  CHECK(lay.kv_slot(2, 3) < 0);    // not computed at layer 2
  CHECK(lay.aux_slot(2, 3) >= 0);  // its layer-1 output is parked
  CHECK(lay.aux_live() == 1);
  CHECK(pipe.stats().steps[0].computed == std::vector<int>{6, 6, 5, 5});
  logits = pipe.decode(argmax(logits));
  const auto& st = pipe.stats().steps[1];
  CHECK(st.revivals == 1);
  CHECK(st.computed == std::vector<int>{1, 1, 2, 2});  // the new token, plus token 3 at layers 2 and 3
  CHECK(lay.kv_slot(2, 3) >= 0);
  CHECK(lay.kv_slot(3, 3) >= 0);
  CHECK(lay.aux_slot(2, 3) < 0);  // released once its K/V exist
  CHECK(lay.aux_live() == 0);
  // And the numbers are the oracle's.
  const DropThreeOnce pol;
  compare_with_oracle(w, prompt, 4, pol,
                      [](int t, int, const std::vector<int>& pos, const std::vector<double>&) {
                        std::vector<bool> keep(pos.size());
                        for (std::size_t i = 0; i < pos.size(); ++i) keep[i] = !(t == 0 && pos[i] == 3);
                        return keep;
                      },
                      1e-5);
}
