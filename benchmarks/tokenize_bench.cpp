// SPDX-License-Identifier: MIT
// lazyllm-bench-tokenize: how long the llama2.c tokenizer.bin encoder takes on prompts of growing
// length (lazyllm-make-task's multi-document prompts), against the O(n^2) rescanning definition
// it must equal (detail::bpe_encode_by_rescanning), timed on the same prompts in the same run.
// Exits 1 when the two give different ids.
//   lazyllm-bench-tokenize -z ../shared/models/tokenizer.bin --words 750,3000,6000 -r 5 -o md
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_meta.hpp"
#include "lazyllm/eval/task.hpp"
#include "lazyllm/text/llama2c_tokenizer.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string tokenizer, out = "md";
  std::vector<long> words = {750, 3000, 6000};
  int reps = 5;
  bool reference = true;
};

const char* kUsage =
    "usage: lazyllm-bench-tokenize -z TOKENIZER.bin [--words 750,3000,6000] [-r REPS] [-o md|json]\n"
    "                              [--no-reference]\n"
    "  -z PATH          llama2.c tokenizer.bin (e.g. ../shared/models/tokenizer.bin, Llama 2's 32000 pieces)\n"
    "  --words LIST     prompt lengths in the task generator's words (~1.3-2 tokens each), seed 5\n"
    "  -r N             repetitions per prompt (median reported; default 5; the reference runs once)\n"
    "  --no-reference   skip the O(n^2) rescanning encoder (and the check that the ids agree)\n";

/// Median of a copy (the middle one for odd sizes, the lower middle for even).
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[(v.size() - 1) / 2];
}

template <class F>
double time_ms(F&& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "-z") {
      o.tokenizer = value();
    } else if (a == "--words") {
      o.words.clear();
      const std::string v = value();
      for (std::size_t b = 0; b <= v.size();) {
        const std::size_t e = std::min(v.find(',', b), v.size());
        char* end = nullptr;
        const long w = std::strtol(v.c_str() + b, &end, 10);
        if (end != v.c_str() + e || w < 1)
          throw std::invalid_argument("--words: '" + v + "' is not a list of counts >= 1");
        o.words.push_back(w);
        b = e + 1;
      }
    } else if (a == "-r") {
      o.reps = std::atoi(value().c_str());
      if (o.reps < 1) throw std::invalid_argument("-r needs a count >= 1");
    } else if (a == "-o") {
      o.out = value();
      if (o.out != "md" && o.out != "json") throw std::invalid_argument("-o must be md or json");
    } else if (a == "--no-reference") {
      o.reference = false;
    } else if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      throw std::invalid_argument("unknown argument '" + a + "'");
    }
  }
  if (o.tokenizer.empty()) throw std::invalid_argument("give the tokenizer with -z");
  return o;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  const lazyllm::Llama2cTokenizer tok(o.tokenizer);
  nlohmann::json rows = nlohmann::json::array();
  bool agree = true;
  for (const long words : o.words) {
    const std::string text =
        lazyllm::eval::TaskGenerator({5, words, lazyllm::eval::Variant::Single}).example(0).prompt();
    std::vector<std::int32_t> ids;
    std::vector<double> ms;
    for (int r = 0; r <= o.reps; ++r) {  // the first one warms up
      const double t = time_ms([&] { ids = tok.encode(text, false); });
      if (r) ms.push_back(t);
    }
    nlohmann::json row = {{"words", words},        {"bytes", text.size()}, {"tokens", ids.size()},
                          {"heap_ms", median(ms)}, {"heap_ms_all", ms},    {"rescanning_ms", nullptr},
                          {"same_ids", nullptr}};
    if (o.reference) {
      std::vector<std::int32_t> ref;
      row["rescanning_ms"] = time_ms([&] { ref = lazyllm::detail::bpe_encode_by_rescanning(tok, text); });
      row["same_ids"] = ref == ids;
      agree = agree && ref == ids;
    }
    rows.push_back(row);
  }
  if (o.out == "json") {
    const nlohmann::json j = {{"tool", "lazyllm-bench-tokenize"},
                              {"tokenizer", o.tokenizer},
                              {"vocab", tok.vocab_size()},
                              {"reps", o.reps},
                              {"commit", lazyllm::bench::git_commit()},
                              {"date", lazyllm::bench::utc_now()},
                              {"rows", rows}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("Tokenizer %s (%d pieces); median of %d, commit %s\n\n", o.tokenizer.c_str(), tok.vocab_size(), o.reps,
                lazyllm::bench::git_commit().c_str());
    std::printf("| words | bytes | tokens | encode ms | rescanning ms | speedup | same ids |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---|\n");
    for (const auto& r : rows) {
      const double heap = r["heap_ms"].get<double>();
      if (r["rescanning_ms"].is_null()) {
        std::printf("| %ld | %zu | %zu | %.2f | - | - | - |\n", r["words"].get<long>(), r["bytes"].get<std::size_t>(),
                    r["tokens"].get<std::size_t>(), heap);
        continue;
      }
      const double ref = r["rescanning_ms"].get<double>();
      std::printf("| %ld | %zu | %zu | %.2f | %.1f | %.0fx | %s |\n", r["words"].get<long>(),
                  r["bytes"].get<std::size_t>(), r["tokens"].get<std::size_t>(), heap, ref, ref / heap,
                  r["same_ids"].get<bool>() ? "yes" : "NO");
    }
  }
  if (!agree) std::fprintf(stderr, "lazyllm-bench-tokenize: the heap encoder and the rescanning one disagree\n");
  return agree ? 0 : 1;
} catch (const std::invalid_argument& e) {  // the command line
  std::fprintf(stderr, "lazyllm-bench-tokenize: %s\n%s", e.what(), kUsage);
  return 2;
} catch (const std::exception& e) {  // e.g. the tokenizer file
  std::fprintf(stderr, "lazyllm-bench-tokenize: %s\n", e.what());
  return 2;
}
