// SPDX-License-Identifier: MIT
// Checks an exported model against PyTorch. Two reference formats:
//  - train.py's reference_logits.json (prompt ids, the last position's logits and the greedy
//    continuation computed in fp32 from the bf16 weights): runs the prompt through lazyllm's CPU
//    reference (dense) and compares the logits and the greedy continuation;
//  - tools/train/lazy_reference.py's reference_lazy.json ("cases": prompt ids, a LazyLLM
//    schedule, |S_l| per layer, the last position's logits and greedy next token, from an
//    independent PyTorch implementation of the method): runs each case's prefill through the CPU
//    pipeline with policy::Lazy and compares |S_l| exactly, the logits and the greedy token, then
//    feeds the case's decode tokens and compares |S_l|, |C_l|, revivals, logits and greedy token
//    of each step.
// Prints the largest logit difference per check. Exit 0 when every difference is within --tol
// (default 1e-2) relative to the largest |logit| and the ids (and sets) match, else 1.
// Build: g++ -std=c++20 -O2 -fopenmp -Iinclude -I.deps/include tools/train/ref_logits.cpp -o build/ref_logits
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lazyllm/lazyllm.hpp"

using namespace lazyllm;

namespace {

/// Largest |a - b| and largest |b|.
std::pair<double, double> logit_diff(std::span<const float> a, std::span<const float> b) {
  double max_diff = 0, max_abs = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    max_diff = std::max(max_diff, double(std::fabs(a[i] - b[i])));
    max_abs = std::max(max_abs, double(std::fabs(b[i])));
  }
  return {max_diff, max_abs};
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (auto x : v) s += (s.empty() ? "" : " ") + std::to_string(x);
  return s;
}

/// reference_lazy.json: every case's prefill under policy::Lazy with its schedule.
int check_lazy_cases(const ModelWeights& w, const nlohmann::json& cases, double tol) {
  int bad = 0;
  for (const auto& c : cases) {
    const auto ids = c.at("prompt_ids").get<std::vector<std::int32_t>>();
    const auto ref = c.at("last_logits").get<std::vector<float>>();
    const auto ref_sel = c.at("selected").get<std::vector<int>>();
    const int ref_id = c.at("greedy_id").get<int>();
    const std::string sched = c.at("schedule").get<std::string>();
    Pipeline<RuntimeConfig, policy::Lazy, ContiguousLayout, CpuBackend> pipe(
        CpuBackend{w}, policy::Lazy{policy::schedule_from_string(sched, w.config.n_layers)});
    const auto logits = pipe.prefill(ids);
    if (logits.size() != ref.size()) {
      std::fprintf(stderr, "vocab differs: %zu vs %zu\n", logits.size(), ref.size());
      return 1;
    }
    const auto [max_diff, max_abs] = logit_diff(logits, ref);
    const auto& sel = pipe.stats().steps.at(0).selected;
    bool ok = max_diff <= tol * max_abs && sel == ref_sel && int(argmax(logits)) == ref_id;
    std::printf(
        "%-20s %zu tokens: |S_l| lazyllm [%s] torch [%s]; greedy %d / %d; max |logit diff| %.3g (relative %.3g)\n",
        sched.c_str(), ids.size(), join(sel).c_str(), join(ref_sel).c_str(), int(argmax(logits)), ref_id, max_diff,
        max_diff / max_abs);
    // Decode steps (DESIGN.md 1.5: selection from layer 0 each step, revival from the Aux Cache).
    const auto steps = c.value("decode", nlohmann::json::array());
    for (std::size_t k = 0; k < steps.size(); ++k) {
      const auto& d = steps[k];
      const auto ref_d = d.at("last_logits").get<std::vector<float>>();
      const auto out = pipe.decode(d.at("id").get<std::int32_t>());
      const auto [dd, da] = logit_diff(out, ref_d);
      const auto& st = pipe.stats().steps.at(k + 1);
      const bool step_ok = dd <= tol * da && st.selected == d.at("selected").get<std::vector<int>>() &&
                           st.computed == d.at("computed").get<std::vector<int>>() &&
                           st.revivals == d.at("revivals").get<std::int64_t>() &&
                           int(argmax(out)) == d.at("greedy_id").get<int>();
      ok = ok && step_ok;
      std::printf(
          "  decode %zu: |S_l| [%s] |C_l| [%s] (torch [%s]), revivals %lld / %lld; max |logit diff| %.3g (relative "
          "%.3g)%s\n",
          k + 1, join(st.selected).c_str(), join(st.computed).c_str(),
          join(d.at("computed").get<std::vector<int>>()).c_str(), static_cast<long long>(st.revivals),
          static_cast<long long>(d.at("revivals").get<std::int64_t>()), dd, dd / da, step_ok ? "" : "  MISMATCH");
    }
    bad += ok ? 0 : 1;
    std::printf("  %s\n", ok ? "OK" : "MISMATCH");
  }
  std::printf("%zu cases, %d mismatched (tolerance %.3g relative)\n", cases.size(), bad, tol);
  return bad == 0 && !cases.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: ref_logits MODEL_DIR reference_logits.json|reference_lazy.json [--tol T]\n");
    return 2;
  }
  double tol = 1e-2;
  if (argc == 5 && std::string(argv[3]) == "--tol") tol = std::stod(argv[4]);
  try {
    std::ifstream f(argv[2]);
    const auto j = nlohmann::json::parse(f);
    if (j.contains("cases")) return check_lazy_cases(load_model(argv[1]), j.at("cases"), tol);
    const auto ids = j.at("prompt_ids").get<std::vector<std::int32_t>>();
    const auto ref = j.at("last_logits").get<std::vector<float>>();
    const auto ref_gen = j.at("greedy_ids").get<std::vector<std::int32_t>>();
    const ModelWeights w = load_model(argv[1]);
    Pipeline<RuntimeConfig, policy::Dense, ContiguousLayout, CpuBackend> pipe(CpuBackend{w}, policy::Dense{});
    // Greedy for as many tokens as the reference, through EOS (kept) when it comes first; the
    // prompt's logits are compared with the reference's.
    std::vector<float> logits;
    GenerateHooks hooks;
    hooks.after_prefill = [&](std::span<const float> l) { logits.assign(l.begin(), l.end()); };
    const std::vector<std::int32_t> gen =
        generate(
            pipe, ids, [](std::span<const float> l) { return argmax(l); },
            [](std::int32_t id) { return id != 2; },
            {.max_tokens = int(ref_gen.size()), .stop_ids = {}, .feed_last = true}, hooks)
            .ids;
    if (logits.size() != ref.size()) {
      std::fprintf(stderr, "vocab differs: %zu vs %zu\n", logits.size(), ref.size());
      return 1;
    }
    const auto [max_diff, max_abs] = logit_diff(logits, ref);
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
