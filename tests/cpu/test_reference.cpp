// End to end against the independent PyTorch implementations (tools/reference/):
// stories260K (llama2.c format, interleaved RoPE, GQA, tied classifier) and a tiny random HF
// Llama (rotate-half RoPE, rope_theta 50000, GQA, untied lm_head) in fp32, bf16 and sharded form.
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "lazyllm/lazyllm.hpp"
#include "test_util.hpp"

using namespace lazyllm;
using nlohmann::json;

namespace {
json read_fixture(const std::string& name) {
  std::ifstream f(std::filesystem::path(LAZYLLM_TEST_DATA).parent_path() / "fixtures" / name);
  REQUIRE_MESSAGE(f.good(), "missing fixture tests/fixtures/" << name);
  return json::parse(f);
}
using Pipe = Pipeline<RuntimeConfig, policy::Dense, ContiguousLayout, CpuBackend>;
}  // namespace

TEST_CASE("stories260K: greedy ids and top-10 logits match the PyTorch reference") {
  if (!test::have_shared("stories260K.bin")) return;
  const auto fx = read_fixture("stories260K.json");
  const ModelWeights w = load_model(test::shared_models() / "stories260K.bin");
  for (const auto& c : fx["cases"]) {
    const auto prompt = c["prompt"].get<std::vector<std::int32_t>>();
    const auto greedy = c["greedy"].get<std::vector<std::int32_t>>();
    CAPTURE(prompt.size());
    // Teacher-forced through prompt + greedy: prefill the prompt, then decode the reference ids.
    std::vector<std::int32_t> seq = prompt;
    seq.insert(seq.end(), greedy.begin(), greedy.end());
    std::map<int, json> want;
    for (const auto& l : c["logits"]) want[l["pos"].get<int>()] = l;
    Pipe pipe(CpuBackend{w});
    auto logits = pipe.prefill(prompt);
    std::vector<std::int32_t> got;
    for (std::size_t pos = prompt.size() - 1; pos + 1 < seq.size(); ++pos) {
      got.push_back(argmax(logits));
      if (auto it = want.find(int(pos)); it != want.end()) {
        const auto ids = it->second["top_ids"].get<std::vector<int>>();
        const auto vals = it->second["top_logits"].get<std::vector<double>>();
        for (std::size_t k = 0; k < ids.size(); ++k) CHECK(logits[std::size_t(ids[k])] == doctest::Approx(vals[k]).epsilon(1e-4));
      }
      logits = pipe.decode(seq[pos + 1]);
    }
    CHECK(got == greedy);
  }
  // Every logit at position 0 of the first case.
  const auto all0 = fx["cases"][0]["all_logits_pos0"].get<std::vector<double>>();
  Pipe pipe(CpuBackend{w});
  const std::vector<std::int32_t> bos{1};
  const auto l0 = pipe.prefill(bos);
  REQUIRE(l0.size() == all0.size());
  for (std::size_t i = 0; i < all0.size(); ++i) CHECK(l0[i] == doctest::Approx(all0[i]).epsilon(1e-4));
}

TEST_CASE("HF tiny Llama: logits at every position match transformers (fp32, sharded, bf16)") {
  const auto fx = read_fixture("hf_tiny.json");
  const auto prompt = fx["prompt"].get<std::vector<std::int32_t>>();
  auto check_dir = [&](const char* dir, const char* key, double tol) {
    CAPTURE(dir);
    const ModelWeights w = load_model(test::test_data() / dir);
    CHECK(w.config.rope_style == RopeStyle::RotateHalf);
    CHECK(w.config.rope_theta == 50000.0f);
    CHECK(!w.config.tied_embeddings);
    const auto ref = fx[key].get<std::vector<std::vector<double>>>();
    Pipe pipe(CpuBackend{w});
    auto logits = pipe.prefill(std::span(prompt).first(1));
    double max_err = 0;
    for (std::size_t pos = 0; pos < prompt.size(); ++pos) {
      for (std::size_t v = 0; v < ref[pos].size(); ++v) max_err = std::max(max_err, std::abs(logits[v] - ref[pos][v]));
      if (pos + 1 < prompt.size()) logits = pipe.decode(prompt[pos + 1]);
    }
    CHECK(max_err < tol);
    return max_err;
  };
  // Logits span about +-0.6; a wrong rope_theta moves them by 9e-4, bf16 rounding by 2e-3.
  check_dir("hf_tiny", "logits_f32", 2e-5);
  check_dir("hf_tiny_sharded", "logits_f32", 2e-5);
  check_dir("hf_tiny_bf16", "logits_bf16_weights", 2e-5);
  // Greedy continuation.
  const ModelWeights w = load_model(test::test_data() / "hf_tiny");
  Pipe pipe(CpuBackend{w});
  auto logits = pipe.prefill(prompt);
  std::vector<std::int32_t> got;
  for (int i = 0; i < 16; ++i) {
    got.push_back(argmax(logits));
    logits = pipe.decode(got.back());
  }
  CHECK(got == fx["greedy_f32"].get<std::vector<std::int32_t>>());
}
