#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "agent/backoff.hpp"

using namespace balctl::agent;

namespace {

std::uint64_t lowest(std::uint64_t) { return 0; }
std::uint64_t highest(std::uint64_t n) { return n == 0 ? 0 : n - 1; }

} // namespace

TEST_CASE("back-off delays with the lowest draw are half the ceiling", "[agent][backoff][unit]") {
  backoff b(1000, 60'000);
  std::vector<std::int64_t> got;
  for (int i = 0; i < 9; ++i) {
    got.push_back(b.next(lowest));
  }
  CHECK(got == std::vector<std::int64_t>{500, 1000, 2000, 4000, 8000, 16'000, 30'000, 30'000, 30'000});
}

TEST_CASE("back-off delays with the highest draw are the ceiling", "[agent][backoff][unit]") {
  backoff b(1000, 60'000);
  std::vector<std::int64_t> got;
  for (int i = 0; i < 9; ++i) {
    got.push_back(b.next(highest));
  }
  CHECK(got == std::vector<std::int64_t>{1000, 2000, 4000, 8000, 16'000, 32'000, 60'000, 60'000, 60'000});
}

TEST_CASE("back-off delays stay within half the ceiling and the ceiling for any draw", "[agent][backoff][unit]") {
  auto [base, max] = GENERATE(table<std::int64_t, std::int64_t>({
    {1000, 60'000}, {10, 3'600'000}, {1, 1}, {1, 7}, {3, 1000}, {999, 1000}, {60'000, 60'000}}));
  CAPTURE(base, max);
  backoff b(base, max);
  std::mt19937_64 rng(12345);
  auto uniform = [&](std::uint64_t n) { return n == 0 ? 0 : rng() % n; };
  for (int i = 0; i < 200; ++i) {
    auto ceiling = b.ceiling_ms();
    auto d = b.next(uniform);
    CAPTURE(i, ceiling, d);
    CHECK(d >= ceiling / 2);
    CHECK(d <= ceiling);
    CHECK(d >= 1);
    CHECK(ceiling <= max);
  }
}

TEST_CASE("the uniform source is asked for the size of the jitter range", "[agent][backoff][unit]") {
  backoff b(1000, 4000);
  std::vector<std::uint64_t> asked;
  auto record = [&](std::uint64_t n) {
    asked.push_back(n);
    return std::uint64_t{0};
  };
  b.next(record);
  b.next(record);
  b.next(record);
  b.next(record);
  // [500, 1000] has 501 values, [1000, 2000] 1001, then [2000, 4000] twice.
  CHECK(asked == std::vector<std::uint64_t>{501, 1001, 2001, 2001});
}

TEST_CASE("the back-off ceiling doubles per failure up to the maximum", "[agent][backoff][unit]") {
  backoff b(250, 3000);
  std::vector<std::int64_t> ceilings;
  for (int i = 0; i < 7; ++i) {
    CHECK(b.failures() == i);
    ceilings.push_back(b.ceiling_ms());
    b.next(lowest);
  }
  CHECK(ceilings == std::vector<std::int64_t>{250, 500, 1000, 2000, 3000, 3000, 3000});
}

TEST_CASE("reset starts the back-off over from the base", "[agent][backoff][unit]") {
  backoff b(1000, 60'000);
  for (int i = 0; i < 10; ++i) {
    b.next(highest);
  }
  REQUIRE(b.ceiling_ms() == 60'000);
  b.reset();
  CHECK(b.failures() == 0);
  CHECK(b.ceiling_ms() == 1000);
  CHECK(b.next(highest) == 1000);
  CHECK(b.next(highest) == 2000);
}

TEST_CASE("a back-off delay is never 0, even when uniform returns 0", "[agent][backoff][unit]") {
  // Regression: with a 1 ms ceiling the delay was 1/2 + uniform(2) = 0, a
  // busy retry loop.
  auto [base, max] = GENERATE(table<std::int64_t, std::int64_t>({
    {1, 1}, {1, 2}, {0, 0}, {-5, -5}, {0, 1}, {1, 1000}}));
  CAPTURE(base, max);
  backoff b(base, max);
  for (int i = 0; i < 20; ++i) {
    CHECK(b.next(lowest) >= 1);
  }
}

TEST_CASE("a uniform source returning too much still keeps the delay within the ceiling",
          "[agent][backoff][unit]") {
  backoff b(1000, 8000);
  auto too_much = GENERATE(as<std::uint64_t>{}, 1, 5000, std::numeric_limits<std::uint64_t>::max());
  CAPTURE(too_much);
  auto wrong = [&](std::uint64_t n) { return n + too_much; };
  for (int i = 0; i < 6; ++i) {
    auto ceiling = b.ceiling_ms();
    auto d = b.next(wrong);
    CHECK(d >= ceiling / 2);
    CHECK(d <= ceiling);
  }
}

TEST_CASE("a maximum below the base is raised to the base", "[agent][backoff][unit]") {
  backoff b(1000, 10);
  for (int i = 0; i < 5; ++i) {
    CHECK(b.ceiling_ms() == 1000);
    auto d = b.next(highest);
    CHECK(d == 1000);
  }
}

TEST_CASE("a huge maximum neither overflows the ceiling nor lets it shrink", "[agent][backoff][unit]") {
  // Regression (UBSan): base 3 doubled 62 times passed INT64_MAX.
  auto base = GENERATE(as<std::int64_t>{}, 1, 2, 3, 1000);
  CAPTURE(base);
  backoff b(base, std::numeric_limits<std::int64_t>::max());
  std::int64_t previous = 0;
  for (int i = 0; i < 100; ++i) {
    auto c = b.ceiling_ms();
    CHECK(c >= previous);
    CHECK(c >= base);
    previous = c;
    CHECK(b.next(highest) == c);
  }
  CHECK(b.failures() == 62); // the count stops growing
}

TEST_CASE("heartbeat delays spread over the interval ± 10 % and never leave it",
          "[agent][backoff][unit]") {
  std::uint64_t pick = 0;
  auto fixed = [&](std::uint64_t n) { return pick % n; };
  pick = 0;
  CHECK(jittered(2000, fixed) == 1800);
  pick = 400;
  CHECK(jittered(2000, fixed) == 2200);
  pick = 200;
  CHECK(jittered(2000, fixed) == 2000);
  // A fleet's delays, from one seeded source, are not all the same.
  std::mt19937_64 rng(7);
  auto random = [&](std::uint64_t n) { return rng() % n; };
  std::set<std::int64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    auto d = jittered(2000, random);
    CHECK(d >= 1800);
    CHECK(d <= 2200);
    seen.insert(d);
  }
  CHECK(seen.size() > 100);
}
