// SPDX-License-Identifier: MIT
// Schedules as users write them (--schedule): presets and LAYER:PERCENTILE lists. An accepted
// schedule prints back to itself, and its percentile rule keeps what the docs say on any n.
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "lazyllm/policy/schedule.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lazyllm;
  if (size < 1) return 0;
  const int n_layers = 1 + data[0] % 64;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  fuzz::expect_only_library_errors([&] {
    const Schedule s = schedule_from_string(text, n_layers);
    fuzz::check(Schedule::parse(s.to_string()) == s);
    const double frac = nominal_token_layer_fraction(s, n_layers);
    fuzz::check(frac > 0.0 && frac <= 1.0);
    for (const auto& e : s.entries()) {
      fuzz::check(e.layer >= 1 && e.layer < n_layers);
      for (std::int64_t n : {1, 2, 3, 10, 4096, 1000003}) {
        const auto rank = percentile_rank(n, e.percentile);
        fuzz::check(rank >= 0 && rank < n);
        fuzz::check(detail::percentile_keep_count(std::size_t(n), e.percentile) == std::size_t(n - rank));
      }
    }
  });
  fuzz::expect_only_library_errors([&] { (void)Schedule::parse(text); });
  return 0;
}
