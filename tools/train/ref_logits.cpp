// SPDX-License-Identifier: MIT
// Checks an exported model against PyTorch: reads train.py's reference_logits.json (prompt ids,
// the last position's logits and the greedy continuation computed in fp32 from the bf16 weights),
// runs the same prompt through lazyllm's CPU reference (dense), and prints the largest logit
// difference and both greedy continuations. Exit 0 when the largest difference is within
// --tol (default 1e-2) relative to the largest |logit| and the greedy ids match, else 1.
// Build: g++ -std=c++20 -O2 -fopenmp -Iinclude -I.deps/include tools/train/ref_logits.cpp -o build/ref_logits
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lazyllm/lazyllm.hpp"

using namespace lazyllm;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: ref_logits MODEL_DIR reference_logits.json [--tol T]\n");
    return 2;
  }
  double tol = 1e-2;
  if (argc == 5 && std::string(argv[3]) == "--tol") tol = std::stod(argv[4]);
  try {
    std::ifstream f(argv[2]);
    const auto j = nlohmann::json::parse(f);
    const auto ids = j.at("prompt_ids").get<std::vector<std::int32_t>>();
    const auto ref = j.at("last_logits").get<std::vector<float>>();
    const auto ref_gen = j.at("greedy_ids").get<std::vector<std::int32_t>>();
    const ModelWeights w = load_model(argv[1]);
    Pipeline<RuntimeConfig, policy::Dense, ContiguousLayout, CpuBackend> pipe(CpuBackend{w}, policy::Dense{});
    auto logits = pipe.prefill(ids);
    if (logits.size() != ref.size()) {
      std::fprintf(stderr, "vocab differs: %zu vs %zu\n", logits.size(), ref.size());
      return 1;
    }
    double max_diff = 0, max_abs = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
      max_diff = std::max(max_diff, double(std::fabs(logits[i] - ref[i])));
      max_abs = std::max(max_abs, double(std::fabs(ref[i])));
    }
    std::vector<std::int32_t> gen;
    for (std::size_t s = 0; s < ref_gen.size(); ++s) {
      const auto it = std::max_element(logits.begin(), logits.end());
      const auto next = std::int32_t(it - logits.begin());
      gen.push_back(next);
      if (next == 2) break;
      logits = pipe.decode(next);
    }
    std::string g, r;
    for (auto x : gen) g += std::to_string(x) + " ";
    for (auto x : ref_gen) r += std::to_string(x) + " ";
    const bool ok = max_diff <= tol * max_abs && gen == ref_gen;
    std::printf("prompt %zu tokens; max |logit diff| %.3g (max |logit| %.3g, relative %.3g, tolerance %.3g)\n"
                "greedy lazyllm: %s\ngreedy torch:   %s\n%s\n",
                ids.size(), max_diff, max_abs, max_diff / max_abs, tol, g.c_str(), r.c_str(), ok ? "OK" : "MISMATCH");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ref_logits: %s\n", e.what());
    return 1;
  }
}
