// SPDX-License-Identifier: MIT
// lazyllm-eval's input: LongBench-style JSONL records, line by line (the record reader), then the
// dataset lookup, the prompt template and the metric of each accepted record on its own text.
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "lazyllm/eval/datasets.hpp"
#include "lazyllm/eval/record.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lazyllm;
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  long long n = 0;
  for (std::size_t start = 0; start < all.size();) {
    const std::size_t end = std::min(all.find('\n', start), all.size());
    const std::string_view line = all.substr(start, end - start);
    start = end + 1;
    ++n;
    fuzz::expect_only_library_errors([&] {
      const eval::Record r = eval::parse_record(line, "fuzz.jsonl", n, (n % 3 == 0) ? "qasper" : "");
      fuzz::check(r.answer_doc == -1 || (r.answer_doc >= 0 && r.answer_doc < r.n_docs));
      fuzz::check(!r.answers.empty());
      const auto& spec = eval::dataset_spec(r.dataset);
      if (r.context.size() + r.input.size() > 4096) return;  // the metrics are quadratic
      (void)eval::build_prompt(spec, r.context, r.input);
      const double s = eval::score(spec, r.input, r.answers, r.all_classes);
      fuzz::check(s >= 0.0 && s <= 1.0);
    });
  }
  return 0;
}
