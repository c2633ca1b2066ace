// SPDX-License-Identifier: MIT
// The model families beyond Llama 2 (Llama 3.x, Qwen2/2.5, Qwen3, Mistral): the RoPE frequency
// table of every rope type against direct transcriptions of its formula, and tiny checkpoints of
// each family (tests/data/families, written by tools/hf_check/families_ref.py) against the logits
// of an independent float64 PyTorch forward, dense and with LazyLLM pruning.
#include <cmath>
#include <fstream>
#include <numbers>

#include <nlohmann/json.hpp>

#include "lazyllm/config/families.hpp"
#include "lazyllm/config/rope.hpp"
#include "lazyllm/lazyllm.hpp"
#include "naive_forward.hpp"
#include "test_util.hpp"

using namespace lazyllm;
using nlohmann::json;

namespace {

RuntimeConfig rope_config(int head_dim, float theta, RopeScaling rs, int max_seq_len = 131072) {
  RuntimeConfig c;
  c.dim = head_dim * 4;
  c.hidden_dim = 64;
  c.n_layers = 1;
  c.n_heads = 4;
  c.n_kv_heads = 4;
  c.vocab_size = 16;
  c.max_seq_len = max_seq_len;
  c.rope_theta = theta;
  c.rope_style = RopeStyle::RotateHalf;
  c.rope_scaling = rs;
  return c;
}

double plain_inv_freq(double theta, int i, int hd) { return 1.0 / std::pow(theta, double(2 * i) / hd); }

}  // namespace

TEST_CASE("RoPE table: default and linear") {
  const RuntimeConfig c = rope_config(128, 500000.0f, {});
  const RopeFrequencies f = rope_frequencies(c);
  REQUIRE(f.inv_freq.size() == 64);
  CHECK(f.attention_factor == 1.0);
  for (int i : {0, 1, 17, 63})
    CHECK(f.inv_freq[std::size_t(i)] == doctest::Approx(plain_inv_freq(500000.0, i, 128)).epsilon(1e-12));
  RopeScaling lin;
  lin.type = RopeType::Linear;
  lin.factor = 4.0f;
  const RopeFrequencies g = rope_frequencies(rope_config(128, 500000.0f, lin));
  for (std::size_t i = 0; i < 64; ++i) CHECK(g.inv_freq[i] == doctest::Approx(f.inv_freq[i] / 4.0).epsilon(1e-12));
  CHECK(g.attention_factor == 1.0);
}

TEST_CASE("RoPE table: llama3 keeps high frequencies, divides low ones by factor, blends between") {
  // Llama 3.1 8B: head_dim 128, theta 500000, factor 8, low 1, high 4, original context 8192.
  const RuntimeConfig c = to_runtime(config::Llama31_8B{});
  REQUIRE(c.rope_scaling.type == RopeType::Llama3);
  const RopeFrequencies f = rope_frequencies(c);
  REQUIRE(f.inv_freq.size() == 64);
  const double old_ctx = 8192, lo_wavelen = old_ctx / 1.0, hi_wavelen = old_ctx / 4.0;
  int n_high = 0, n_low = 0, n_mid = 0;
  for (int i = 0; i < 64; ++i) {
    const double base = plain_inv_freq(500000.0, i, 128), wavelen = 2 * std::numbers::pi / base;
    const double got = f.inv_freq[std::size_t(i)];
    CAPTURE(i);
    if (wavelen < hi_wavelen) {
      CHECK(got == doctest::Approx(base).epsilon(1e-12));
      ++n_high;
    } else if (wavelen > lo_wavelen) {
      CHECK(got == doctest::Approx(base / 8.0).epsilon(1e-12));
      ++n_low;
    } else {  // smooth = (old_ctx / wavelen - low) / (high - low); (1 - smooth) * f / factor + smooth * f
      const double smooth = (old_ctx / wavelen - 1.0) / (4.0 - 1.0);
      CHECK(got == doctest::Approx((1 - smooth) * base / 8.0 + smooth * base).epsilon(1e-12));
      CHECK(got > base / 8.0);
      CHECK(got < base);
      ++n_mid;
    }
  }
  CHECK(n_high > 0);
  CHECK(n_low > 0);
  CHECK(n_mid > 0);
  CHECK(f.attention_factor == 1.0);
}

TEST_CASE("RoPE table: yarn ramp and attention factor") {
  RopeScaling y;
  y.type = RopeType::Yarn;
  y.factor = 4.0f;
  y.original_max_position_embeddings = 32768;
  const RuntimeConfig c = rope_config(128, 1000000.0f, y, 131072);
  const RopeFrequencies f = rope_frequencies(c);
  // Transcription: correction dims d(r) = hd ln(orig / (2 pi r)) / (2 ln base), low = floor(d(32)),
  // high = ceil(d(1)); pair i keeps the original frequency with weight 1 - clamp((i - low) / (high - low)).
  auto dim_for = [](double rot) {
    return 128 * std::log(32768.0 / (rot * 2 * std::numbers::pi)) / (2 * std::log(1e6));
  };
  const double low = std::max(0.0, std::floor(dim_for(32))), high = std::min(127.0, std::ceil(dim_for(1)));
  CHECK(low == 23);  // worked by hand: d(32) = 128 ln(162.97) / 27.63 = 23.6, d(1) = 39.65
  CHECK(high == 40);
  for (int i : {0, 10, 18, 25, 30, 41, 50, 63}) {
    const double base = plain_inv_freq(1e6, i, 128);
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    const double want = base / 4.0 * ramp + base * (1 - ramp);
    CAPTURE(i);
    CHECK(f.inv_freq[std::size_t(i)] == doctest::Approx(want).epsilon(1e-12));
  }
  CHECK(f.inv_freq[0] == doctest::Approx(1.0));                                  // fastest: unchanged
  CHECK(f.inv_freq[63] == doctest::Approx(plain_inv_freq(1e6, 63, 128) / 4.0));  // slowest: interpolated
  CHECK(f.attention_factor == doctest::Approx(0.1 * std::log(4.0) + 1.0).epsilon(1e-12));
  RuntimeConfig given = c;
  given.rope_scaling.attention_factor = 1.5f;
  CHECK(rope_frequencies(given).attention_factor == doctest::Approx(1.5));
  RuntimeConfig ms = c;
  ms.rope_scaling.mscale = 1.0f;
  ms.rope_scaling.mscale_all_dim = 0.5f;
  CHECK(rope_frequencies(ms).attention_factor ==
        doctest::Approx((0.1 * std::log(4.0) + 1.0) / (0.05 * std::log(4.0) + 1.0)).epsilon(1e-12));
}

TEST_CASE("RoPE with an attention factor scales q and k rotations (CPU op)") {
  std::vector<float> v{1, 2, 3, 4}, u = v;
  const double inv[2] = {0.5, 0.01};
  cpu::rope(v.data(), 4, 3, inv, 1.0, RopeStyle::RotateHalf);
  cpu::rope(u.data(), 4, 3, inv, 2.0, RopeStyle::RotateHalf);
  for (int i = 0; i < 4; ++i) CHECK(u[std::size_t(i)] == doctest::Approx(2 * v[std::size_t(i)]));
}

TEST_CASE("RuntimeConfig: the new fields are validated in one line and printed") {
  RuntimeConfig c = rope_config(64, 10000.0f, {});
  c.explicit_head_dim = 32;  // q is 4 * 32 = 128 wide with dim 256
  c.validate();
  CHECK(c.q_dim() == 128);
  CHECK(c.kv_dim() == 128);
  auto fails = [](RuntimeConfig x, const std::string& what) {
    CAPTURE(what);
    try {
      x.validate();
      FAIL("no ConfigError");
    } catch (const ConfigError& e) {
      CHECK(std::string(e.what()).find(what) != std::string::npos);
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
    }
  };
  RuntimeConfig bad = c;
  bad.explicit_head_dim = 7;
  fails(bad, "head_dim 7 must be even for RoPE");
  bad = c;
  bad.rope_scaling.type = RopeType::Llama3;
  bad.rope_scaling.factor = 8;
  fails(bad, "rope llama3: original_max_position_embeddings must be positive");
  bad.rope_scaling.original_max_position_embeddings = 8192;
  bad.rope_scaling.high_freq_factor = 0.5f;
  fails(bad, "high_freq_factor 0.500000 must exceed low_freq_factor");
  bad = c;
  bad.rope_scaling.type = RopeType::Yarn;
  bad.rope_scaling.factor = 0;
  fails(bad, "rope yarn: factor 0.000000 must be a positive number");
  bad = c;
  bad.sliding_window = -1;
  fails(bad, "sliding_window -1 must be positive");
  std::ostringstream os;
  RuntimeConfig p = c;
  p.attention_bias = p.qk_norm = true;
  p.sliding_window = 4096;
  p.rope_scaling.type = RopeType::Yarn;
  p.rope_scaling.factor = 4;
  os << p;
  for (const std::string s : {"head_dim=32", "rope_type=yarn factor=4", "qkv_bias", "qk_norm", "sliding_window=4096"}) {
    CAPTURE(s);
    CHECK(os.str().find(s) != std::string::npos);
  }
  // Existing compile-time configs (no optional members) keep their defaults.
  const RuntimeConfig l2 = to_runtime(config::Llama2_7B{});
  CHECK(l2.explicit_head_dim == 0);
  CHECK(l2.head_dim() == 128);
  CHECK(l2.rope_scaling == RopeScaling{});
  CHECK(!l2.attention_bias);
  CHECK(!l2.qk_norm);
  CHECK(l2.sliding_window == 0);
  CHECK(config_differences(l2, l2).empty());
  CHECK(config_differences(l2, p).find("head_dim 32 (config says 128)") != std::string::npos);
}

// ---- tiny checkpoints of each family against the PyTorch reference ---------------------------

namespace {

struct Fixture {
  ModelWeights w;
  std::vector<std::int32_t> prompt, greedy;
  std::vector<std::vector<double>> step_logits;
};

Fixture load_fixture(const std::string& name) {
  const auto dir = test::test_data() / "families" / name;
  std::ifstream f(dir / "reference.json");
  REQUIRE_MESSAGE(f.good(), "missing tests/data/families/" << name << "/reference.json");
  const json j = json::parse(f);
  Fixture fx;
  fx.w = load_model(dir);
  fx.prompt = j["prompt"].get<std::vector<std::int32_t>>();
  fx.greedy = j["greedy"].get<std::vector<std::int32_t>>();
  fx.step_logits = j["step_logits"].get<std::vector<std::vector<double>>>();
  return fx;
}

using DensePipe = Pipeline<RuntimeConfig, policy::Dense, ContiguousLayout, CpuBackend>;

/// Prefill the prompt, decode the reference's greedy ids; the largest |logit - reference| over
/// every step, and the ids our own argmax picks.
std::pair<double, std::vector<std::int32_t>> run_against(const ModelWeights& w, const Fixture& fx) {
  DensePipe pipe(CpuBackend{w});
  auto logits = pipe.prefill(fx.prompt);
  double err = 0;
  std::vector<std::int32_t> got;
  for (std::size_t s = 0; s < fx.step_logits.size(); ++s) {
    REQUIRE(logits.size() == fx.step_logits[s].size());
    for (std::size_t v = 0; v < logits.size(); ++v)
      err = std::max(err, std::abs(double(logits[v]) - fx.step_logits[s][v]));
    got.push_back(argmax(logits));
    if (s < fx.greedy.size()) logits = pipe.decode(fx.greedy[s]);
  }
  got.pop_back();
  return {err, got};
}

// Logits span several units; fp32 against the float64 reference differs by ~1e-5. Each feature
// switched off below moves them by more than 1e-2.
constexpr double kTol = 2e-4;

}  // namespace

TEST_CASE("families: each tiny checkpoint loads with its family's features") {
  const auto l = load_fixture("llama31").w.config;
  CHECK(l.rope_scaling.type == RopeType::Llama3);
  CHECK(l.rope_scaling.factor == 8.0f);
  CHECK(l.rope_scaling.original_max_position_embeddings == 8192);
  CHECK(l.rope_theta == 500000.0f);
  CHECK(!l.attention_bias);
  const auto q2 = load_fixture("qwen2").w.config;
  CHECK(q2.rope_scaling.type == RopeType::Yarn);
  CHECK(q2.attention_bias);
  CHECK(q2.tied_embeddings);
  const auto q3 = load_fixture("qwen3").w.config;
  CHECK(q3.qk_norm);
  CHECK(q3.head_dim() == 32);
  CHECK(q3.q_dim() == 128);
  CHECK(q3.dim == 64);
  const auto m = load_fixture("mistral").w.config;
  CHECK(m.sliding_window == 4096);
}

TEST_CASE("families: dense logits and greedy ids match the PyTorch reference") {
  for (const std::string name : {"llama31", "qwen2", "qwen3", "mistral"}) {
    CAPTURE(name);
    const Fixture fx = load_fixture(name);
    const auto [err, ids] = run_against(fx.w, fx);
    MESSAGE(name << ": max |logit - reference| = " << err);
    CHECK(err < kTol);
    CHECK(ids == fx.greedy);
  }
}

TEST_CASE("families: each feature matters (switched off, the logits leave the tolerance)") {
  auto off = [](const std::string& name, auto edit) {
    CAPTURE(name);
    Fixture fx = load_fixture(name);
    edit(fx.w.config);
    const double err = run_against(fx.w, fx).first;
    CHECK(err > 50 * kTol);
  };
  off("llama31", [](RuntimeConfig& c) { c.rope_scaling = {}; });                   // llama3 -> default RoPE
  off("qwen2", [](RuntimeConfig& c) { c.rope_scaling.attention_factor = 1.0f; });  // no YaRN mscale
  off("qwen2", [](RuntimeConfig& c) { c.attention_bias = false; });                // biases ignored
  off("qwen3", [](RuntimeConfig& c) { c.qk_norm = false; });                       // q/k norms skipped
}

TEST_CASE("families: LazyLLM runs, keeps sane sets, and matches the naive pruned forward") {
  for (const std::string name : {"llama31", "qwen2", "qwen3", "mistral"}) {
    CAPTURE(name);
    const Fixture fx = load_fixture(name);
    // An empty schedule is exactly the dense forward.
    Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, CpuBackend> none(CpuBackend{fx.w}, policy::Lazy{});
    DensePipe dense(CpuBackend{fx.w});
    const auto a = none.prefill(fx.prompt);
    const std::vector<float> la(a.begin(), a.end());
    const auto b = dense.prefill(fx.prompt);
    CHECK(std::equal(la.begin(), la.end(), b.begin()));

    const Schedule s = Schedule::parse("1:0.5");
    Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, CpuBackend> lazy(CpuBackend{fx.w}, policy::Lazy(s));
    auto logits = lazy.prefill(fx.prompt);
    const auto& pre = lazy.stats().steps[0];
    const int n = int(fx.prompt.size());
    CHECK(pre.selected[0] == n);
    CHECK(pre.selected[1] < n);
    CHECK(pre.selected[1] >= int(detail::percentile_keep_count(std::size_t(n), 0.5f)));
    // The independent naive forward (full recompute, explicit score matrix) prunes the same tokens
    // and gives the same last-row logits.
    std::vector<int> ids(fx.prompt.begin(), fx.prompt.end());
    const auto naive = test::naive_forward(fx.w, ids, s, false);
    CHECK(int(naive.kept[1].size()) == pre.selected[1]);
    double err = 0;
    for (std::size_t v = 0; v < logits.size(); ++v)
      err = std::max(err, std::abs(double(logits[v]) - naive.logits[0][v]));
    CHECK(err < 1e-3);
    for (int i = 0; i < 4; ++i) logits = lazy.decode(argmax(logits));
    CHECK(lazy.stats().steps.size() == 5);
    CHECK(lazy.stats().prefill_fraction() < 1.0);
  }
}

TEST_CASE("families: sliding window longer than the sequence is exact; past it, one-line refusal") {
  Fixture fx = load_fixture("mistral");
  fx.w.config.sliding_window = int(fx.prompt.size());  // positions 0..n-1 fit; n would not
  DensePipe pipe(CpuBackend{fx.w});
  auto logits = pipe.prefill(fx.prompt);
  double err = 0;
  for (std::size_t v = 0; v < logits.size(); ++v)
    err = std::max(err, std::abs(double(logits[v]) - fx.step_logits[0][v]));
  CHECK(err < kTol);
  try {
    pipe.decode(argmax(logits));
    FAIL("decode past the sliding window was not refused");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find("position 12 is at or past the model's sliding window of 12 tokens") !=
          std::string::npos);
  }
}

TEST_CASE("families: transformers 5's rope_parameters reads as 4.x's rope_scaling") {
  const auto src = test::test_data() / "families" / "llama31";
  const auto dir = test::scratch("fam_v5");
  std::filesystem::copy_file(src / "model.safetensors", dir / "model.safetensors");
  json cfg = json::parse(std::ifstream(src / "config.json"));
  json rp = cfg["rope_scaling"];
  rp["rope_theta"] = cfg["rope_theta"];
  cfg.erase("rope_scaling");
  cfg.erase("rope_theta");
  cfg["rope_parameters"] = rp;
  cfg["head_dim"] = 16;  // explicit, equal to hidden / heads: the same config
  test::write_file(dir / "config.json", cfg.dump());
  CHECK(load_model(dir).config == load_fixture("llama31").w.config);
}

TEST_CASE("families: tensor-parallel CPU ranks (biases, q/k norms, head_dim != dim/n_heads) match one rank") {
  for (const std::string name : {"qwen2", "qwen3", "llama31"}) {
    CAPTURE(name);
    const Fixture fx = load_fixture(name);
    const double err1 = run_against(fx.w, fx).first;
    for (const int tp : {2, 4}) {  // 4 query heads, 2 KV heads: split, then replicated
      CAPTURE(tp);
      std::vector<std::vector<float>> last(static_cast<std::size_t>(tp));
      std::vector<std::vector<int>> kept(static_cast<std::size_t>(tp));
      run_tp(fx.w, tp, [&](CpuRank& r) {
        Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, CpuBackend> pipe(
            r.backend(), policy::Lazy(Schedule::parse("1:0.5")));
        const auto l = pipe.prefill(fx.prompt);
        last[std::size_t(r.rank())].assign(l.begin(), l.end());
        kept[std::size_t(r.rank())] = pipe.stats().steps[0].selected;
      });
      Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, CpuBackend> one(CpuBackend{fx.w},
                                                                              policy::Lazy(Schedule::parse("1:0.5")));
      const auto want = one.prefill(fx.prompt);
      for (int r = 0; r < tp; ++r) {
        CHECK(kept[std::size_t(r)] == one.stats().steps[0].selected);
        double err = 0;
        for (std::size_t v = 0; v < want.size(); ++v)
          err = std::max(err, std::abs(double(last[std::size_t(r)][v]) - double(want[v])));
        CHECK(err < 1e-4);
      }
    }
    CHECK(err1 < kTol);
  }
}

TEST_CASE("family configs: published shapes") {
  const RuntimeConfig l8 = to_runtime(config::Llama31_8B{});
  CHECK(l8.n_params() == 8030261248);  // Llama 3.1 8B: 8.03 B parameters
  const RuntimeConfig l70 = to_runtime(config::Llama31_70B{});
  CHECK(l70.n_params() == 70553706496);
  const RuntimeConfig l1 = to_runtime(config::Llama32_1B{});
  CHECK(l1.tied_embeddings);
  CHECK(l1.n_params() == 1235814400);
  const RuntimeConfig l3 = to_runtime(config::Llama32_3B{});
  CHECK(l3.n_params() == 3212749824);
  const RuntimeConfig q = to_runtime(config::Qwen25_7B{});
  CHECK(q.attention_bias);
  CHECK(q.n_params() == 7615616512);  // Qwen2.5-7B: 7.62 B
  const RuntimeConfig m = to_runtime(config::Mistral7B_v03{});
  CHECK(m.n_params() == 7248023552);  // Mistral 7B v0.3: 7.25 B
  CHECK(m.sliding_window == 0);
  for (const RuntimeConfig* c : {&l8, &l70, &l1, &l3, &q, &m}) c->validate();
}
