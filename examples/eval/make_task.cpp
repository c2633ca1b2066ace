// SPDX-License-Identifier: MIT
// lazyllm-make-task: the synthetic multi-document QA task as LongBench-format JSONL.
// Usage: lazyllm-make-task -h
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

#include "../common/cli.hpp"
#include "lazyllm/eval/task.hpp"
#include "lazyllm/text/tokenizer.hpp"

namespace {

using namespace lazyllm;

const char* kUsage = R"(usage: lazyllm-make-task [options]

  --seed S              seed (default 0); the same options give a byte-identical file
  --count N             number of examples (default 100)
  --length L            target prompt length (default 1024): tokens by -z (BOS included), else
                        whitespace-separated words (an approximation: 1 word ~ 1 token)
  --variant V           single | twohop | mixed (default single)
  -z PATH               tokenizer that counts the length: SentencePiece .model or llama2.c .bin
  --emit-prompt         add a "prompt" field: the full templated prompt text
  --questions K         (training) K - 1 answered practice questions about the context before
                        the real one, written as "training_segments" (default 1: none)
  --answer-position LO:HI
                        (training) place the questioned document (two-hop: both documents)
                        uniformly in this part of the context, as fractions: 0 = first
                        document, 1 = end (default 0:1; e.g. 0:0.2 puts the answer far from
                        the question)
  --filler F            about this fraction (0..0.95) of --length is "Note: ..." paragraphs of
                        sentences that state no fact, between the documents, in place of
                        distractors (default 0: none); the question and answer are unchanged
  -o FILE               output file (default: stdout)
  -h, --help            this text
One JSON object per line: input, context, answers, length, dataset, language, all_classes, _id.
Each prompt has the most documents whose length stays <= L (fewer than about two documents
short of it); only when the required documents alone exceed L is a prompt longer (warned).
)";

using lazyllm::cli::UsageError;

int run(int argc, char** argv) {
  eval::TaskOptions opt;
  long long count = 100;
  std::string tok_path, out_path;
  bool emit_prompt = false;
  for (cli::Args args(argc, argv); args.next();) {
    const std::string a = args.flag();
    auto value = [&] { return args.value(); };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--seed") {
      opt.seed = cli::parse_u64(a, value());  // strtoull wrapped seeds above 2^64 - 1
    } else if (a == "--count")
      count = cli::parse_int(a, value(), 0);
    else if (a == "--length")
      opt.length = cli::parse_int(a, value(), 1);
    else if (a == "--variant") {
      try {
        opt.variant = eval::parse_variant(value());
      } catch (const InvalidArgument& e) {
        throw UsageError(std::string("--variant: ") + e.what());
      }
    } else if (a == "-z" || a == "--tokenizer")
      tok_path = value();
    else if (a == "--emit-prompt")
      emit_prompt = true;
    else if (a == "--questions")
      opt.questions = int(cli::parse_int(a, value(), 1));
    else if (a == "--answer-position") {
      const std::string v = value();
      const auto colon = v.find(':');
      char *e1 = nullptr, *e2 = nullptr;
      const std::string lo = v.substr(0, colon), hi = colon == std::string::npos ? "" : v.substr(colon + 1);
      opt.position_lo = std::strtod(lo.c_str(), &e1);
      opt.position_hi = std::strtod(hi.c_str(), &e2);
      if (colon == std::string::npos || lo.empty() || hi.empty() || *e1 || *e2 || !(opt.position_lo >= 0.0) ||
          !(opt.position_lo < opt.position_hi) || !(opt.position_hi <= 1.0))
        throw UsageError("--answer-position: '" + v + "' is not LO:HI with 0 <= LO < HI <= 1");
    } else if (a == "--filler") {
      const std::string v = value();
      char* end = nullptr;
      opt.filler = std::strtod(v.c_str(), &end);
      if (v.empty() || *end || !(opt.filler >= 0.0 && opt.filler <= eval::kMaxFiller))
        throw UsageError("--filler: '" + v + "' is not a fraction in [0, 0.95]");
    } else if (a == "-o")
      out_path = value();
    else
      throw UsageError("unknown option '" + a + "' (see -h)");
  }
  eval::LengthCounter counter = eval::word_counter();
  if (!tok_path.empty()) counter = eval::token_counter(load_tokenizer(tok_path));
  const eval::TaskGenerator gen(opt, counter);

  std::ofstream file;
  if (!out_path.empty()) {
    file.open(out_path, std::ios::binary);
    if (!file) throw Error("-o " + out_path + ": cannot open for writing");
  }
  std::ostream& out = out_path.empty() ? std::cout : file;
  long long over = 0;
  std::int64_t min_len = 0, max_len = 0;
  for (long long i = 0; i < count; ++i) {
    const eval::TaskExample ex = gen.example(std::uint64_t(i));
    if (ex.length > opt.length) ++over;
    min_len = i ? std::min(min_len, ex.length) : ex.length;
    max_len = i ? std::max(max_len, ex.length) : ex.length;
    out << eval::to_json(ex, emit_prompt).dump() << '\n';
  }
  out.flush();
  if (!out) throw Error("cannot write " + (out_path.empty() ? std::string("stdout") : out_path));
  std::fprintf(stderr, "lazyllm-make-task: %lld %s, length %lld..%lld %s (target %lld)\n", count,
               count == 1 ? "example" : "examples", (long long)min_len, (long long)max_len,
               tok_path.empty() ? "words" : "tokens", (long long)opt.length);
  if (over)
    std::fprintf(stderr,
                 "lazyllm-make-task: warning: %lld examples exceed --length %lld (the required documents "
                 "alone are longer)\n",
                 over, (long long)opt.length);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return lazyllm::cli::run_main("lazyllm-make-task", [&] { return run(argc, argv); });
}
