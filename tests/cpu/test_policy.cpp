// Schedules and policies as values: parsing, validation, the percentile rule, presets.
#include <sstream>

#include "lazyllm/policy/dense.hpp"
#include "lazyllm/policy/lazy.hpp"
#include "lazyllm/policy/random_drop.hpp"
#include "lazyllm/policy/static.hpp"
#include "test_util.hpp"

using namespace lazyllm;

TEST_CASE("schedule parsing and printing round-trip") {
  const auto s = Schedule::parse("8:0.3,16:0.5,24:0.7");
  REQUIRE(s.entries().size() == 3);
  CHECK(s.entries()[1] == ScheduleEntry{16, 0.5f});
  CHECK(Schedule::parse(s.to_string()) == s);
  CHECK(Schedule::parse("").empty());
  CHECK(Schedule::parse("none").empty());
  CHECK(s.percentile_into(16) == 0.5f);
  CHECK(s.percentile_into(15) < 0.0f);
}

TEST_CASE("invalid schedules give a clear reason") {
  CHECK_THROWS_WITH_AS(Schedule::parse("8"), doctest::Contains("LAYER:PERCENTILE"), InvalidArgument);
  CHECK_THROWS_WITH_AS(Schedule::parse("x:0.3"), doctest::Contains("not an integer"), InvalidArgument);
  CHECK_THROWS_WITH_AS(Schedule::parse("8:abc"), doctest::Contains("not a number"), InvalidArgument);
  CHECK_THROWS_WITH_AS(Schedule::parse("0:0.3"), doctest::Contains(">= 1"), InvalidArgument);
  CHECK_THROWS_WITH_AS(Schedule::parse("8:0.3,8:0.5"), doctest::Contains("strictly increasing"), InvalidArgument);
  CHECK_THROWS_WITH_AS(Schedule::parse("8:1.0"), doctest::Contains("not in [0, 1)"), InvalidArgument);
  CHECK_THROWS_WITH_AS(Schedule::parse("8:-0.1"), doctest::Contains("not in [0, 1)"), InvalidArgument);
  CHECK_THROWS_WITH_AS(Schedule::parse("8:0.3,"), doctest::Contains("LAYER:PERCENTILE"), InvalidArgument);
  CHECK_THROWS_WITH_AS(Schedule::parse("40:0.3").validate_for(32), doctest::Contains("not below the model's 32"),
                       InvalidArgument);
}

TEST_CASE("percentile rule: threshold at rank floor(p*n), ties at the threshold kept") {
  const std::vector<float> s{0.1f, 0.4f, 0.2f, 0.2f, 0.3f};
  CHECK(detail::percentile_threshold(s, 0.0f) == 0.1f);
  CHECK(detail::percentile_threshold(s, 0.2f) == 0.2f);  // rank 1 of {.1,.2,.2,.3,.4}
  CHECK(detail::percentile_threshold(s, 0.99f) == 0.4f);
  policy::Lazy lazy(Schedule::parse("1:0.2"));
  std::vector<std::int32_t> pos{0, 1, 2, 3, 4};
  std::vector<std::uint8_t> cached(5, 0), keep(5);
  lazy.select(SelectArgs{1, 4, Phase::Prefill, 0, pos, s, cached}, keep);
  CHECK(keep == std::vector<std::uint8_t>{0, 1, 1, 1, 1});  // both 0.2s kept: 4 > nominal 4? equal here
  policy::Lazy lazy2(Schedule::parse("1:0.4"));             // rank 2 -> threshold 0.2, ties kept
  lazy2.select(SelectArgs{1, 4, Phase::Prefill, 0, pos, s, cached}, keep);
  CHECK(keep == std::vector<std::uint8_t>{0, 1, 1, 1, 1});
  CHECK(detail::percentile_keep_count(5, 0.4f) == 3);
}

TEST_CASE("policies are regular, printable values") {
  const policy::Lazy a(Schedule::parse("2:0.5")), b(Schedule::parse("2:0.5")), c(Schedule::parse("3:0.5"));
  CHECK(a == b);
  CHECK(a != c);
  std::ostringstream os;
  os << a << ' ' << policy::Dense{} << ' ' << policy::Static(Schedule::parse("2:0.5")) << ' '
     << policy::RandomDrop(Schedule::parse("2:0.5"), 7);
  CHECK(os.str() == "lazy(2:0.5) dense static(2:0.5) random(2:0.5, seed=7)");
  CHECK_FALSE(policy::Dense{}.prunes_into(3));
  CHECK(a.prunes_into(2));
  CHECK_FALSE(a.prunes_into(1));
}

TEST_CASE("presets scale with depth and their nominal compute is documented") {
  const auto agg = policy::preset_schedule("aggressive", 32);
  CHECK(agg == Schedule::parse("4:0.5,8:0.5,16:0.5"));
  CHECK(policy::nominal_token_layer_fraction(agg, 32) == doctest::Approx((4 + 4 * 0.5 + 8 * 0.25 + 16 * 0.125) / 32));
  CHECK(policy::nominal_token_layer_fraction(agg, 32) == doctest::Approx(0.3125));
  CHECK(policy::preset_schedule("default", 32) == Schedule::parse("8:0.3,16:0.5,24:0.5"));
  CHECK(policy::preset_schedule("gentle", 32) == Schedule::parse("16:0.3,24:0.5"));
  CHECK(policy::preset_schedule("default", 5).entries().size() >= 2);  // still valid for tiny models
  CHECK_THROWS_WITH_AS(policy::preset_schedule("fast", 32), doctest::Contains("unknown schedule preset"), InvalidArgument);
}
