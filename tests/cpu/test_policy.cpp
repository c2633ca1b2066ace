// Schedules and policies as values: parsing, validation, the percentile rule, presets.
#include <numeric>
#include <sstream>

#include "lazyllm/policy/any.hpp"
#include "lazyllm/policy/dense.hpp"
#include "lazyllm/policy/lazy.hpp"
#include "lazyllm/policy/random_drop.hpp"
#include "lazyllm/policy/static.hpp"
#include "lazyllm/policy/window.hpp"
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

TEST_CASE("window: the first `sink` tokens and the most recent ones, the nominal count, no scores") {
  std::vector<std::int32_t> pos(10);
  std::iota(pos.begin(), pos.end(), 0);
  const std::vector<float> scores{9, 9, 9, 9, 9, 9, 9, 9, 9, 0};  // ignored
  std::vector<std::uint8_t> cached(10, 0), keep(10);
  const SelectArgs args{2, 4, Phase::Prefill, 0, pos, scores, cached};
  policy::Window(Schedule::parse("2:0.5"), 2).select(args, keep);  // keeps 5: 2 first + 3 last
  CHECK(keep == std::vector<std::uint8_t>{1, 1, 0, 0, 0, 0, 0, 1, 1, 1});
  policy::Window(Schedule::parse("2:0.5"), 0).select(args, keep);  // no sink: the last 5
  CHECK(keep == std::vector<std::uint8_t>{0, 0, 0, 0, 0, 1, 1, 1, 1, 1});
  policy::Window(Schedule::parse("2:0.8"), 4).select(args, keep);  // nominal 2: the sinks stay, and the newest
  CHECK(keep == std::vector<std::uint8_t>{1, 1, 1, 1, 0, 0, 0, 0, 0, 1});
  policy::Window(Schedule::parse("2:0.0"), 4).select(args, keep);  // keeps all
  CHECK(keep == std::vector<std::uint8_t>(10, 1));
  std::vector<std::uint8_t> one(1);
  policy::Window(Schedule::parse("2:0.9"), 4)
      .select(SelectArgs{2, 4, Phase::Prefill, 0, {pos.data(), 1}, {scores.data(), 1}, {cached.data(), 1}}, one);
  CHECK(one[0] == 1);
  CHECK_THROWS_AS(policy::Window(Schedule::parse("2:0.5"), -1), InvalidArgument);
  std::ostringstream os;
  os << policy::Window(Schedule::parse("2:0.5"), 3);
  CHECK(os.str() == "window(2:0.5, sink=3)");
}

TEST_CASE("AnyPolicy: a run-time choice that behaves exactly as the policy it holds") {
  const Schedule s = Schedule::parse("1:0.4,3:0.5");
  std::vector<std::int32_t> pos(12);
  std::iota(pos.begin(), pos.end(), 0);
  const std::vector<float> scores{.3f, .1f, .5f, .2f, .2f, .9f, .4f, .05f, .6f, .7f, .15f, .8f};
  std::vector<std::uint8_t> cached{1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0};
  const std::vector<policy::AnyPolicy> all{policy::Dense{}, policy::Lazy(s), policy::Static(s),
                                           policy::RandomDrop(s, 5), policy::Window(s)};
  for (const auto& any : all) {
    CAPTURE(any);
    for (auto phase : {Phase::Prefill, Phase::Decode})
      for (int into : {1, 2, 3}) {
        const SelectArgs a{into, 4, phase, phase == Phase::Prefill ? 0 : 3, pos, scores, cached};
        std::vector<std::uint8_t> k1(12), k2(12);
        any.select(a, k1);
        std::visit([&](const auto& p) { p.select(a, k2); }, any.variant());
        CHECK(k1 == k2);
        CHECK(any.prunes_into(into) ==
              std::visit([&](const auto& p) { return bool(p.prunes_into(into)); }, any.variant()));
      }
  }
  CHECK(all[0].schedule().empty());
  CHECK(all[1].schedule() == s);
  CHECK(all[3].name() == "random");
  CHECK(policy::AnyPolicy{} == policy::AnyPolicy(policy::Dense{}));
  CHECK(all[1] != all[2]);  // same schedule, different policy
  std::ostringstream os;
  for (const auto& p : all) os << p << ' ';
  CHECK(os.str() ==
        "dense lazy(1:0.4,3:0.5) static(1:0.4,3:0.5) random(1:0.4,3:0.5, seed=5) window(1:0.4,3:0.5, sink=4) ");
  // make_policy: every documented name, and a clear error for anything else
  CHECK(policy::kPolicies.size() == std::variant_size_v<policy::AnyPolicy::Variant>);
  for (std::string_view n : policy::kPolicies) {
    CHECK(policy::is_policy_name(n));
    CHECK(policy::make_policy(n, s, 5).name() == n);
  }
  CHECK(policy::make_policy("random", s, 5) == all[3]);
  CHECK_FALSE(policy::is_policy_name("Lazy"));
  CHECK_THROWS_WITH_AS(policy::make_policy("topk", s), doctest::Contains("dense, lazy, static, random, window"),
                       InvalidArgument);
}

TEST_CASE("lazy keep_recent: the percentile rule plus the last N tokens; 0 is the paper's rule") {
  std::vector<std::int32_t> pos(8);
  std::iota(pos.begin(), pos.end(), 0);
  const std::vector<float> scores{.9f, .1f, .8f, .7f, .2f, .05f, .03f, .6f};
  std::vector<std::uint8_t> cached(8, 0), keep(8);
  const SelectArgs a{1, 4, Phase::Prefill, 0, pos, scores, cached};
  policy::Lazy(Schedule::parse("1:0.5")).select(a, keep);  // threshold .6: rank 4 of the sorted scores
  CHECK(keep == std::vector<std::uint8_t>{1, 0, 1, 1, 0, 0, 0, 1});
  policy::Lazy(Schedule::parse("1:0.5"), 3).select(a, keep);  // + positions 5, 6 (7 is kept already)
  CHECK(keep == std::vector<std::uint8_t>{1, 0, 1, 1, 0, 1, 1, 1});
  policy::Lazy(Schedule::parse("1:0.5"), 100).select(a, keep);  // more than the set: all
  CHECK(keep == std::vector<std::uint8_t>(8, 1));
  CHECK(policy::Lazy(Schedule::parse("1:0.5")) != policy::Lazy(Schedule::parse("1:0.5"), 3));
  std::ostringstream os;
  os << policy::Lazy(Schedule::parse("1:0.5"), 3) << ' ' << policy::Lazy(Schedule::parse("1:0.5"));
  CHECK(os.str() == "lazy(1:0.5, recent=3) lazy(1:0.5)");
  CHECK_THROWS_AS(policy::Lazy(Schedule::parse("1:0.5"), -1), InvalidArgument);
  CHECK(policy::make_policy("lazy", Schedule::parse("1:0.5"), 0, 3) ==
        policy::AnyPolicy(policy::Lazy(Schedule::parse("1:0.5"), 3)));
}

TEST_CASE("percentile count is exactly n - floor(p * n) for the decimal written (0.7 of 10 keeps 3)") {
  // float(0.7) * 10 is 6.99999988: a float rank kept 4 of 10, and 2 of 10 at 0.9.
  CHECK(detail::percentile_keep_count(10, 0.7f) == 3);
  CHECK(detail::percentile_keep_count(10, 0.9f) == 1);
  CHECK(detail::percentile_keep_count(20, 0.35f) == 13);
  CHECK(detail::percentile_keep_count(20, 0.95f) == 1);
  CHECK(percentile_rank(10, 0.7f) == 7);  // the device rank (backend/cuda/select.cuh) is this function
  static_assert(percentile_rank(100, 0.29f) == 29 && percentile_rank(3, 0.5f) == 1 && percentile_rank(1, 0.99f) == 0);
  // Every two-place decimal, and a sweep of six-place ones, written as text, against integer
  // arithmetic on the digits.
  for (int c = 0; c < 100; ++c) {
    const std::string text = std::string(c < 10 ? "0.0" : "0.") + std::to_string(c);
    const float p = Schedule::parse("1:" + text).entries()[0].percentile;
    for (std::int64_t n = 1; n <= 300; ++n) {
      CAPTURE(text);
      CAPTURE(n);
      REQUIRE(percentile_rank(n, p) == std::min(n * c / 100, n - 1));
    }
  }
  for (std::int64_t q = 1; q < 1000000; q += 9973) {
    const std::string digits = std::to_string(1000000 + q).substr(1);
    const float p = Schedule::parse("1:0." + digits).entries()[0].percentile;
    for (std::int64_t n : {std::int64_t(1), std::int64_t(7), std::int64_t(1000), std::int64_t(999999),
                           std::int64_t(1000000), std::int64_t(123456789), std::int64_t(1) << 40}) {
      CAPTURE(digits);
      CAPTURE(n);
      REQUIRE(percentile_rank(n, p) == std::min<std::int64_t>(std::int64_t((__int128)n * q / 1000000), n - 1));
    }
  }
  // The host rule on 10 distinct scores at 0.7 keeps the top 3.
  std::vector<std::int32_t> pos(10);
  std::iota(pos.begin(), pos.end(), 0);
  const std::vector<float> scores{5, 1, 9, 3, 7, 0, 8, 2, 6, 4};
  std::vector<std::uint8_t> cached(10, 0), keep(10);
  policy::Lazy(Schedule::parse("1:0.7")).select(SelectArgs{1, 4, Phase::Prefill, 0, pos, scores, cached}, keep);
  CHECK(keep == std::vector<std::uint8_t>{0, 0, 1, 0, 1, 0, 1, 0, 0, 0});
  CHECK(detail::percentile_threshold(scores, 0.7f) == 7.0f);
}

TEST_CASE("schedule percentiles are plain decimals of at most 6 places; hex floats and exponents are refused") {
  for (const char* bad : {"8:0x1p-1", "8:0X.8", "8:5e-1", "8:inf", "8:nan", "8:+0.5", "8: 0.5", "8:0.5 ", "8:.",
                          "8:", "8:0..5", "8:0,5"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(Schedule::parse(bad), InvalidArgument);
  }
  CHECK_THROWS_WITH_AS(Schedule::parse("8:0x1p-1"),
                       "schedule entry '8:0x1p-1': percentile '0x1p-1' is not a number (write a decimal such as 0.5)",
                       InvalidArgument);
  CHECK_THROWS_WITH_AS(Schedule::parse("8:0.1234567"),
                       "schedule entry '8:0.1234567': percentile '0.1234567' has more than 6 decimal places",
                       InvalidArgument);
  CHECK_THROWS_WITH_AS(Schedule::parse("8:1.5"), "schedule entry '8:1.5': percentile '1.5' is not in [0, 1)",
                       InvalidArgument);
  CHECK_THROWS_WITH_AS(Schedule::parse("8:-0.5"), doctest::Contains("is not in [0, 1)"), InvalidArgument);
  CHECK(Schedule::parse("8:.5") == Schedule::parse("8:0.5"));
  CHECK(Schedule::parse("8:0.500000000") == Schedule::parse("8:0.5"));  // trailing zeros are not places
  CHECK(Schedule::parse("8:0").entries()[0].percentile == 0.0f);
  CHECK(Schedule::parse("8:00.25").entries()[0].percentile == 0.25f);
  // Printed as written, and read back equal (no "1e-06").
  const auto s = Schedule::parse("1:0.000001,2:0.35,3:0.999999,4:0");
  CHECK(s.to_string() == "1:0.000001,2:0.35,3:0.999999,4:0");
  CHECK(Schedule::parse(s.to_string()) == s);
  // A float in code counts as its nearest millionth; one that rounds to 1 is not a percentile.
  CHECK_THROWS_WITH_AS(Schedule({{1, 0.9999999f}}), doctest::Contains("not in [0, 1)"), InvalidArgument);
  CHECK(Schedule({{1, 0.7f}}) == Schedule::parse("1:0.7"));
}

TEST_CASE("schedules live in schedule.hpp: presets and schedule_from_string under both spellings") {
  CHECK(schedule_from_string("gentle", 32) == policy::schedule_from_string("gentle", 32));
  CHECK(preset_schedule("aggressive", 32) == Schedule::parse("4:0.5,8:0.5,16:0.5"));
  CHECK(schedule_from_string("2:0.7", 4) == Schedule::parse("2:0.7"));
  CHECK_THROWS_WITH_AS(schedule_from_string("9:0.5", 4), doctest::Contains("not below the model's 4"), InvalidArgument);
  CHECK(nominal_token_layer_fraction(Schedule::parse("2:0.7"), 4) == doctest::Approx((2 + 2 * 0.3) / 4));
}

TEST_CASE("static: earlier tokens keep their sets, this step's tokens get the rule over their own scores") {
  // Tokens 0..5 are from earlier steps (5, the previous newest, has K/V everywhere); 6..9 are new.
  std::vector<std::int32_t> pos(10);
  std::iota(pos.begin(), pos.end(), 0);
  const std::vector<float> scores{.9f, .9f, .9f, .9f, .9f, .9f, .1f, .4f, .3f, .2f};
  const std::vector<std::uint8_t> cached{1, 0, 1, 0, 0, 1, 0, 0, 0, 0};
  std::vector<std::uint8_t> keep(10);
  const policy::Static st(Schedule::parse("1:0.5"));
  st.select(SelectArgs{1, 4, Phase::Prefill, 3, pos, scores, cached}, keep);
  // Old: exactly the cached ones, whatever their scores. New: the top half of {.1,.4,.3,.2}.
  CHECK(keep == std::vector<std::uint8_t>{1, 0, 1, 0, 0, 1, 0, 1, 1, 0});
  // The first step: nothing cached, so the rule over every token, as Lazy.
  const std::vector<std::uint8_t> none(10, 0);
  std::vector<std::uint8_t> lazy_keep(10);
  st.select(SelectArgs{1, 4, Phase::Prefill, 0, pos, scores, none}, keep);
  policy::Lazy(Schedule::parse("1:0.5")).select(SelectArgs{1, 4, Phase::Prefill, 0, pos, scores, none}, lazy_keep);
  CHECK(keep == lazy_keep);
  // A decode step: only the newest is new (8, the previous newest, has K/V everywhere).
  const std::vector<std::uint8_t> dec{1, 0, 1, 1, 0, 1, 0, 1, 1, 0};
  std::vector<std::uint8_t> k2(10);
  st.select(SelectArgs{1, 4, Phase::Decode, 5, pos, scores, {dec.data(), 10}}, k2);
  CHECK(k2 == std::vector<std::uint8_t>{1, 0, 1, 1, 0, 1, 0, 1, 1, 1});
  // The bare rule stands for Static's selection in the first step only: it delegates given the step.
  CHECK(st.percentile_rule(1, Phase::Prefill) < 0.0f);
  CHECK(st.percentile_rule(1, Phase::Prefill, 0) == 0.5f);
  CHECK(st.percentile_rule(1, Phase::Prefill, 2) < 0.0f);
  CHECK(policy::AnyPolicy(st).percentile_rule(1, Phase::Prefill, 0) == 0.5f);
  CHECK(policy::AnyPolicy(st).percentile_rule(1, Phase::Prefill, 2) < 0.0f);
  CHECK(policy::AnyPolicy(policy::Lazy(Schedule::parse("1:0.5"))).percentile_rule(1, Phase::Decode, 7) == 0.5f);
}
