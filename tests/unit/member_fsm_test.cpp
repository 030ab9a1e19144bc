#include "engine/member_fsm.hpp"

#include <catch2/catch.hpp>

using namespace balctl;

// Failure messages name states, not their numbers. The same specialization
// appears in pool_policy_test.cpp; both are identical (ODR).
namespace Catch {
template <>
struct StringMaker<balctl::member_state> {
  static std::string convert(balctl::member_state s) {
    return balctl::to_string(s);
  }
};
} // namespace Catch

namespace {

// Defaults spelled out so the arithmetic in the tests can be read here:
// suspect at +15 s, down at +30 s, healthy after 10 s of recovery (300 s
// while damped: 3 downs within 600 s).
detection_params params() {
  detection_params p;
  p.failover_delay_ms = 30'000;
  p.suspect_after_ms = 15'000;
  p.recovery_stable_ms = 10'000;
  p.flap_threshold = 3;
  p.flap_window_ms = 600'000;
  p.flap_hold_ms = 300'000;
  return p;
}

constexpr std::int64_t t0 = 1'700'000'000'000;

// Takes a healthy member (last heard at `at`) through down and back to
// recovering; returns the time it entered recovering.
std::int64_t down_and_back(member_fsm& fsm, std::int64_t at) {
  REQUIRE(fsm.evaluate(at, at + 30'000)->to == member_state::down);
  const std::int64_t heard = at + 40'000;
  REQUIRE(fsm.evaluate(heard, heard)->to == member_state::recovering);
  return heard;
}

} // namespace

TEST_CASE("a pending member becomes healthy on its first heartbeat and never "
          "goes down by itself",
          "[member][unit]") {
  member_fsm fsm(params(), member_state::pending, t0);
  CHECK_FALSE(fsm.evaluate(0, t0 + 10'000'000));
  CHECK(fsm.state() == member_state::pending);
  CHECK_FALSE(fsm.next_deadline_ms(0));

  auto tr = fsm.evaluate(t0 + 5, t0 + 5);
  REQUIRE(tr);
  CHECK(tr->from == member_state::pending);
  CHECK(tr->to == member_state::healthy);
  CHECK(tr->at_ms == t0 + 5);
  CHECK(fsm.state_since_ms() == t0 + 5);
}

TEST_CASE("suspect and down start at exactly their boundary millisecond",
          "[member][unit]") {
  member_fsm fsm(params(), member_state::healthy, t0);
  const std::int64_t seen = t0;

  CHECK_FALSE(fsm.evaluate(seen, seen + 14'999));
  CHECK(fsm.state() == member_state::healthy);

  auto suspect = fsm.evaluate(seen, seen + 15'000);
  REQUIRE(suspect);
  CHECK(suspect->from == member_state::healthy);
  CHECK(suspect->to == member_state::suspect);

  CHECK_FALSE(fsm.evaluate(seen, seen + 29'999));
  CHECK(fsm.state() == member_state::suspect);

  auto down = fsm.evaluate(seen, seen + 30'000);
  REQUIRE(down);
  CHECK(down->from == member_state::suspect);
  CHECK(down->to == member_state::down);
  CHECK(down->at_ms == seen + 30'000);
  CHECK_FALSE(fsm.next_deadline_ms(seen));
}

TEST_CASE("a healthy member found silent past the failover delay reports one "
          "transition straight to down",
          "[member][unit]") {
  auto [silence, expected] = GENERATE(table<std::int64_t, member_state>({
    {14'999, member_state::healthy},
    {15'000, member_state::suspect},
    {29'999, member_state::suspect},
    {30'000, member_state::down},
    {90'000, member_state::down},
  }));
  CAPTURE(silence, expected);
  member_fsm fsm(params(), member_state::healthy, t0);
  auto tr = fsm.evaluate(t0, t0 + silence);
  CHECK(fsm.state() == expected);
  if (expected == member_state::healthy) {
    CHECK_FALSE(tr);
  } else {
    REQUIRE(tr);
    CHECK(tr->from == member_state::healthy);
    CHECK(tr->to == expected);
  }
}

TEST_CASE("a suspect member heard again is healthy", "[member][unit]") {
  member_fsm fsm(params(), member_state::healthy, t0);
  REQUIRE(fsm.evaluate(t0, t0 + 20'000)->to == member_state::suspect);
  auto tr = fsm.evaluate(t0 + 21'000, t0 + 21'000);
  REQUIRE(tr);
  CHECK(tr->from == member_state::suspect);
  CHECK(tr->to == member_state::healthy);
}

TEST_CASE("a timer that fires early evaluates to nothing and the deadline "
          "follows the last heartbeat",
          "[member][unit]") {
  member_fsm fsm(params(), member_state::healthy, t0);
  CHECK(fsm.next_deadline_ms(t0) == t0 + 15'000);

  // A heartbeat at +10 s arrived after the timer was armed: at the old
  // deadline the member has been silent for only 5 s.
  const std::int64_t newer = t0 + 10'000;
  CHECK_FALSE(fsm.evaluate(newer, t0 + 15'000));
  CHECK(fsm.state() == member_state::healthy);
  CHECK(fsm.next_deadline_ms(newer) == newer + 15'000);

  // The re-armed timer is on time.
  auto tr = fsm.evaluate(newer, newer + 15'000);
  REQUIRE(tr);
  CHECK(tr->to == member_state::suspect);
  CHECK(fsm.next_deadline_ms(newer) == newer + 30'000);
  CHECK(fsm.evaluate(newer, newer + 30'000)->to == member_state::down);
}

TEST_CASE("a down member heard again recovers and is healthy after the "
          "stability period",
          "[member][unit]") {
  member_fsm fsm(params(), member_state::healthy, t0);
  const std::int64_t since = down_and_back(fsm, t0);
  CHECK(fsm.state_since_ms() == since);

  // Heartbeats keep coming every 5 s; healthy at exactly +10 s.
  CHECK(fsm.next_deadline_ms(since + 5'000) == since + 10'000);
  CHECK_FALSE(fsm.evaluate(since + 5'000, since + 9'999));
  CHECK(fsm.state() == member_state::recovering);
  auto tr = fsm.evaluate(since + 5'000, since + 10'000);
  REQUIRE(tr);
  CHECK(tr->from == member_state::recovering);
  CHECK(tr->to == member_state::healthy);
}

TEST_CASE("a gap while recovering makes the member suspect again",
          "[member][unit]") {
  // Long stability period so the gap comes first.
  auto p = params();
  p.recovery_stable_ms = 60'000;
  member_fsm fsm(p, member_state::healthy, t0);
  const std::int64_t since = down_and_back(fsm, t0);

  CHECK(fsm.next_deadline_ms(since) == since + 15'000);
  CHECK_FALSE(fsm.evaluate(since, since + 14'999));
  auto tr = fsm.evaluate(since, since + 15'000);
  REQUIRE(tr);
  CHECK(tr->from == member_state::recovering);
  CHECK(tr->to == member_state::suspect);

  SECTION("and down again when the gap reaches the failover delay") {
    CHECK(fsm.evaluate(since, since + 30'000)->to == member_state::down);
  }
  SECTION("a gap as long as the failover delay goes straight to down") {
    member_fsm other(p, member_state::healthy, t0);
    const std::int64_t s2 = down_and_back(other, t0);
    auto straight = other.evaluate(s2, s2 + 30'000);
    REQUIRE(straight);
    CHECK(straight->from == member_state::recovering);
    CHECK(straight->to == member_state::down);
  }
}

TEST_CASE("a member that went down three times within the window needs the "
          "flap hold before it is healthy",
          "[member][unit]") {
  member_fsm fsm(params(), member_state::healthy, t0);
  std::int64_t at = t0;
  std::int64_t since = 0;
  for (int i = 0; i < 3; ++i) {
    since = down_and_back(fsm, at);
    if (i < 2) {
      CHECK_FALSE(fsm.damped(since));
      REQUIRE(fsm.evaluate(since, since + 10'000)->to == member_state::healthy);
      at = since + 10'000;
    }
  }
  // Downs at t0+30 s, +80 s, +130 s: damped.
  CHECK(fsm.damped(since));
  const std::int64_t hb = since + 10'000;
  CHECK_FALSE(fsm.evaluate(hb, since + 10'000));
  CHECK(fsm.state() == member_state::recovering);
  CHECK(fsm.next_deadline_ms(hb) == hb + 15'000); // gap comes first
  CHECK_FALSE(fsm.evaluate(since + 299'990, since + 299'999));
  CHECK(fsm.state() == member_state::recovering);
  CHECK(fsm.next_deadline_ms(since + 299'990) == since + 300'000);
  auto tr = fsm.evaluate(since + 299'990, since + 300'000);
  REQUIRE(tr);
  CHECK(tr->to == member_state::healthy);
}

TEST_CASE("flap damping lapses once the downs leave the window",
          "[member][unit]") {
  auto p = params();
  p.flap_hold_ms = 1'000'000; // longer than the window: damping lapses first
  member_fsm fsm(p, member_state::healthy, t0);
  std::int64_t at = t0;
  std::int64_t since = 0;
  for (int i = 0; i < 3; ++i) {
    since = down_and_back(fsm, at);
    if (i < 2) {
      REQUIRE(fsm.evaluate(since, since + 10'000)->to == member_state::healthy);
      at = since + 10'000;
    }
  }
  // First of the three downs at t0 + 30 s: damped through t0 + 630 s.
  const std::int64_t first_down = t0 + 30'000;
  CHECK(fsm.damped(first_down + 600'000));
  CHECK_FALSE(fsm.damped(first_down + 600'001));
  CHECK(fsm.next_deadline_ms(first_down + 599'000) == first_down + 600'001);

  CHECK_FALSE(fsm.evaluate(first_down + 599'000, first_down + 600'000));
  CHECK(fsm.state() == member_state::recovering);
  auto tr = fsm.evaluate(first_down + 599'000, first_down + 600'001);
  REQUIRE(tr);
  CHECK(tr->to == member_state::healthy);

  SECTION("after the window the member recovers in the ordinary time") {
    const std::int64_t later = first_down + 700'000;
    const std::int64_t s = down_and_back(fsm, later);
    CHECK_FALSE(fsm.damped(s));
    CHECK(fsm.next_deadline_ms(s) == s + 10'000);
    CHECK(fsm.evaluate(s, s + 10'000)->to == member_state::healthy);
  }
}

TEST_CASE("two downs within the window do not damp", "[member][unit]") {
  member_fsm fsm(params(), member_state::healthy, t0);
  std::int64_t since = down_and_back(fsm, t0);
  REQUIRE(fsm.evaluate(since, since + 10'000)->to == member_state::healthy);
  since = down_and_back(fsm, since + 10'000);
  CHECK_FALSE(fsm.damped(since));
  CHECK(fsm.evaluate(since, since + 10'000)->to == member_state::healthy);
}

TEST_CASE("a restored member is not declared down before the restart grace "
          "ends, however long it is silent",
          "[member][unit]") {
  const std::int64_t restart = t0;
  const std::int64_t grace_until = restart + 120'000;
  auto initial = GENERATE(member_state::healthy, member_state::suspect);
  CAPTURE(initial);
  member_fsm fsm(params(), initial, restart, grace_until);

  // Silent since the restart: suspect from +15 s, but held there.
  fsm.evaluate(restart, restart + 30'000);
  CHECK(fsm.state() == member_state::suspect);
  CHECK(fsm.next_deadline_ms(restart) == grace_until);
  CHECK_FALSE(fsm.evaluate(restart, grace_until - 1));
  CHECK(fsm.state() == member_state::suspect);

  auto tr = fsm.evaluate(restart, grace_until);
  REQUIRE(tr);
  CHECK(tr->to == member_state::down);
}

TEST_CASE("after the restart grace the failover delay rules again",
          "[member][unit]") {
  member_fsm fsm(params(), member_state::healthy, t0, t0 + 5'000);
  CHECK(fsm.next_deadline_ms(t0) == t0 + 15'000);
  REQUIRE(fsm.evaluate(t0, t0 + 15'000)->to == member_state::suspect);
  CHECK(fsm.next_deadline_ms(t0) == t0 + 30'000);
  CHECK_FALSE(fsm.evaluate(t0, t0 + 29'999));
  CHECK(fsm.evaluate(t0, t0 + 30'000)->to == member_state::down);
}

TEST_CASE("a non-pending member never heard from counts as silent",
          "[member][unit]") {
  member_fsm fsm(params(), member_state::healthy, t0, t0 + 60'000);
  auto tr = fsm.evaluate(0, t0 + 1);
  REQUIRE(tr);
  CHECK(tr->to == member_state::suspect); // grace still keeps it from down
  CHECK(fsm.next_deadline_ms(0) == t0 + 60'000);
  CHECK(fsm.evaluate(0, t0 + 60'000)->to == member_state::down);
}
