#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include "agent/transport_policy.hpp"

using namespace balctl::agent;

namespace {

// The runner's figures: a 2 s interval, acks due within 3/4 of it, two
// misses to leave UDP, UDP tried again every 5 minutes.
constexpr std::int64_t interval_ms = 2000;
constexpr std::int64_t ack_timeout_ms = 1500;
constexpr std::int64_t reprobe_ms = 300'000;

/// Drives a policy the way the runner does: plan a beat, "send" it with a
/// fresh sequence number, and tell the policy what was asked.
struct driver {
  transport_policy policy;
  std::uint64_t seq = 100;
  std::int64_t now = 1'000'000;

  explicit driver(transport_mode m, int miss_limit = 2)
    : policy(m, ack_timeout_ms, miss_limit, reprobe_ms) {}

  struct sent {
    beat_plan plan;
    std::uint64_t seq = 0;       // the beat's
    std::uint64_t probe_seq = 0; // the UDP probe's, when one was sent
  };

  /// One beat at `now` (then the clock moves on by one interval).
  sent beat(bool tls_up) {
    sent s;
    s.plan = policy.plan(now, tls_up);
    bool skip = s.plan.via == path::tls && !tls_up;
    if (!skip) {
      s.seq = ++seq;
      if (s.plan.ask_ack) {
        policy.asked(s.plan.via, s.seq, now);
      }
      if (s.plan.udp_probe) {
        s.probe_seq = ++seq;
        policy.asked(path::udp, s.probe_seq, now);
      }
    }
    now += interval_ms;
    return s;
  }

  bool switched(path* to) { return policy.take_switched(to); }
};

} // namespace

TEST_CASE("transport modes parse from their names and print back", "[agent][transport][unit]") {
  auto [text, mode] = GENERATE(table<std::string, transport_mode>({
    {"udp", transport_mode::udp}, {"tls", transport_mode::tls}, {"auto", transport_mode::auto_}}));
  transport_mode m = transport_mode::udp;
  REQUIRE(parse_transport_mode(text, m));
  CHECK(m == mode);
  CHECK(std::string(to_string(m)) == text);
}

TEST_CASE("an unknown transport mode is refused and leaves the output alone", "[agent][transport][unit]") {
  auto text = GENERATE(as<std::string>{}, "", "quic", "UDP", "Auto", "udp ", "tcp");
  CAPTURE(text);
  transport_mode m = transport_mode::tls;
  CHECK_FALSE(parse_transport_mode(text, m));
  CHECK(m == transport_mode::tls);
}

TEST_CASE("paths print as udp and tls", "[agent][transport][unit]") {
  CHECK(std::string(to_string(path::udp)) == "udp");
  CHECK(std::string(to_string(path::tls)) == "tls");
}

TEST_CASE("udp mode sends every beat over UDP and never asks for an ack", "[agent][transport][unit]") {
  driver d(transport_mode::udp);
  CHECK(d.policy.current() == path::udp);
  CHECK_FALSE(d.policy.wants_tls());
  for (int i = 0; i < 20; ++i) {
    auto s = d.beat(i % 2 == 0);
    CHECK(s.plan.via == path::udp);
    CHECK_FALSE(s.plan.ask_ack);
    CHECK_FALSE(s.plan.udp_probe);
  }
  path to{};
  CHECK_FALSE(d.switched(&to));
  CHECK(d.policy.misses() == 0);
}

TEST_CASE("tls mode sends every beat over TLS and asks for acks", "[agent][transport][unit]") {
  driver d(transport_mode::tls);
  CHECK(d.policy.current() == path::tls);
  CHECK(d.policy.wants_tls());
  for (int i = 0; i < 10; ++i) {
    auto s = d.beat(true);
    CHECK(s.plan.via == path::tls);
    CHECK(s.plan.ask_ack);
    CHECK_FALSE(s.plan.udp_probe);
    // Acknowledged each time: the next beat asks again, nothing is missed.
    CHECK_FALSE(d.policy.acked(path::tls, s.seq, d.now - interval_ms + 30));
    CHECK(d.policy.misses() == 0);
  }
}

TEST_CASE("tls mode counts unanswered requests (for replacing the connection) but never leaves TLS",
          "[agent][transport][unit]") {
  driver d(transport_mode::tls);
  for (int i = 0; i < 8; ++i) {
    auto s = d.beat(true);
    CHECK(s.plan.via == path::tls);
    CHECK(s.plan.ask_ack);
  }
  // The eighth beat found the seventh request unanswered: 7 misses so far.
  CHECK(d.policy.misses() == 7);
  path to{};
  CHECK_FALSE(d.switched(&to));
  CHECK(d.policy.current() == path::tls);
  CHECK(d.policy.wants_tls());
  // An ack resets the count.
  d.policy.acked(path::tls, d.seq, d.now);
  CHECK(d.policy.misses() == 0);
}

TEST_CASE("tls mode without a connection still plans TLS (the runner skips the beat)",
          "[agent][transport][unit]") {
  driver d(transport_mode::tls);
  auto s = d.beat(false);
  CHECK(s.plan.via == path::tls);
  CHECK_FALSE(s.plan.udp_probe);
  CHECK(s.seq == 0);
}

TEST_CASE("a lost TLS connection forgets its pending request without counting a miss",
          "[agent][transport][unit]") {
  driver d(transport_mode::tls);
  auto s = d.beat(true);
  REQUIRE(s.plan.ask_ack);
  d.policy.tls_lost();
  d.now += 10 * ack_timeout_ms;
  auto again = d.beat(true);
  CHECK(again.plan.ask_ack);
  CHECK(d.policy.misses() == 0);
}

TEST_CASE("auto starts on UDP and asks for an ack on every beat", "[agent][transport][unit]") {
  driver d(transport_mode::auto_);
  CHECK(d.policy.current() == path::udp);
  CHECK_FALSE(d.policy.wants_tls());
  for (int i = 0; i < 10; ++i) {
    auto s = d.beat(false);
    CHECK(s.plan.via == path::udp);
    CHECK(s.plan.ask_ack);
    CHECK_FALSE(s.plan.udp_probe);
    d.policy.acked(path::udp, s.seq, d.now - interval_ms + 20);
  }
  CHECK(d.policy.current() == path::udp);
  path to{};
  CHECK_FALSE(d.switched(&to));
}

TEST_CASE("auto does not ask again while a request is still within the ack timeout",
          "[agent][transport][unit]") {
  transport_policy p(transport_mode::auto_, ack_timeout_ms, 2, reprobe_ms);
  auto first = p.plan(0, false);
  REQUIRE(first.ask_ack);
  p.asked(path::udp, 1, 0);
  auto early = p.plan(ack_timeout_ms - 1, false);
  CHECK(early.via == path::udp);
  CHECK_FALSE(early.ask_ack);
  CHECK(p.misses() == 0);
  auto late = p.plan(ack_timeout_ms, false);
  CHECK(late.ask_ack);
  CHECK(p.misses() == 1);
}

TEST_CASE("auto switches to TLS after two ack requests in a row went unanswered, not before",
          "[agent][transport][unit]") {
  driver d(transport_mode::auto_);
  auto b1 = d.beat(false); // asks; never answered
  CHECK(b1.plan.via == path::udp);
  CHECK(d.policy.misses() == 0);

  auto b2 = d.beat(false); // finds b1 missed: one miss, still UDP
  CHECK(d.policy.misses() == 1);
  CHECK(d.policy.current() == path::udp);
  CHECK(b2.plan.via == path::udp);
  CHECK(b2.plan.ask_ack);
  CHECK_FALSE(d.policy.wants_tls());
  path to{};
  CHECK_FALSE(d.switched(&to));

  auto b3 = d.beat(false); // finds b2 missed too: switch
  CHECK(d.policy.current() == path::tls);
  CHECK(d.policy.wants_tls());
  CHECK(d.policy.misses() == 0);
  REQUIRE(d.switched(&to));
  CHECK(to == path::tls);
  // No connection yet: this very beat still goes over UDP, asking.
  CHECK(b3.plan.via == path::udp);
  CHECK(b3.plan.ask_ack);
}

TEST_CASE("auto with a miss limit of 3 needs three unanswered requests", "[agent][transport][unit]") {
  driver d(transport_mode::auto_, 3);
  d.beat(false);
  d.beat(false);
  d.beat(false);
  CHECK(d.policy.misses() == 2);
  CHECK(d.policy.current() == path::udp);
  d.beat(false);
  CHECK(d.policy.current() == path::tls);
}

TEST_CASE("a miss limit below 1 is treated as 1", "[agent][transport][unit]") {
  driver d(transport_mode::auto_, 0);
  d.beat(false);
  CHECK(d.policy.current() == path::udp);
  d.beat(false);
  CHECK(d.policy.current() == path::tls);
}

TEST_CASE("an ack on UDP resets the misses, so only misses in a row switch", "[agent][transport][unit]") {
  driver d(transport_mode::auto_);
  for (int round = 0; round < 5; ++round) {
    d.beat(false);                      // missed
    auto answered = d.beat(false);      // counts one miss; answered
    REQUIRE(d.policy.misses() == 1);
    CHECK_FALSE(d.policy.acked(path::udp, answered.seq, d.now - interval_ms + 40));
    CHECK(d.policy.misses() == 0);
    CHECK(d.policy.current() == path::udp);
  }
  path to{};
  CHECK_FALSE(d.switched(&to));
}

TEST_CASE("a late ack for an earlier request still proves UDP works", "[agent][transport][unit]") {
  driver d(transport_mode::auto_);
  auto b1 = d.beat(false);
  d.beat(false); // b1 counted as missed; b2 asks
  REQUIRE(d.policy.misses() == 1);
  d.policy.acked(path::udp, b1.seq, d.now - 100); // b1's ack, late
  CHECK(d.policy.misses() == 0);
  d.beat(false); // b2 unanswered: one miss, not two
  CHECK(d.policy.misses() == 1);
  CHECK(d.policy.current() == path::udp);
}

TEST_CASE("on UDP an ack that arrives over TLS does not count", "[agent][transport][unit]") {
  driver d(transport_mode::auto_);
  d.beat(false);
  auto b2 = d.beat(false);
  REQUIRE(d.policy.misses() == 1);
  CHECK_FALSE(d.policy.acked(path::tls, b2.seq, d.now));
  CHECK(d.policy.misses() == 1);
  d.beat(false);
  CHECK(d.policy.current() == path::tls);
}

namespace {

/// An auto policy that has just moved to TLS.
driver on_tls() {
  driver d(transport_mode::auto_);
  d.beat(false);
  d.beat(false);
  d.beat(false);
  REQUIRE(d.policy.current() == path::tls);
  path to{};
  REQUIRE(d.switched(&to));
  return d;
}

} // namespace

TEST_CASE("on TLS without a connection beats go over UDP and ask, and an ack there switches back to UDP",
          "[agent][transport][unit]") {
  auto d = on_tls();
  d.now += ack_timeout_ms; // the switching beat's UDP request has expired
  auto s = d.beat(false);
  CHECK(s.plan.via == path::udp);
  CHECK(s.plan.ask_ack);
  CHECK_FALSE(s.plan.udp_probe);
  CHECK(d.policy.current() == path::tls);
  CHECK(d.policy.acked(path::udp, s.seq, d.now - interval_ms + 50));
  CHECK(d.policy.current() == path::udp);
  CHECK_FALSE(d.policy.wants_tls());
  path to{};
  REQUIRE(d.switched(&to));
  CHECK(to == path::udp);
  // Back on UDP it asks every beat again.
  auto next = d.beat(false);
  CHECK(next.plan.via == path::udp);
  CHECK(next.plan.ask_ack);
}

TEST_CASE("on TLS without a connection an unanswered UDP request is not re-asked before its timeout",
          "[agent][transport][unit]") {
  auto d = on_tls();
  // The beat that switched asked over UDP at now - interval; its request is
  // pending until the ack timeout has passed.
  transport_policy& p = d.policy;
  auto t = d.now - interval_ms;
  auto early = p.plan(t + ack_timeout_ms - 1, false);
  CHECK(early.via == path::udp);
  CHECK_FALSE(early.ask_ack);
  auto late = p.plan(t + ack_timeout_ms, false);
  CHECK(late.ask_ack);
}

TEST_CASE("on TLS with a connection beats go over TLS and a UDP probe is planned every reprobe interval",
          "[agent][transport][unit]") {
  auto d = on_tls();
  auto switched_at = d.now - interval_ms;
  int probes = 0;
  std::int64_t first_probe_at = 0;
  std::uint64_t last_probe_seq = 0;
  // About 11 minutes of beats; TLS acks arrive, UDP probes do not.
  while (d.now < switched_at + 2 * reprobe_ms + 60'000) {
    auto at = d.now;
    auto s = d.beat(true);
    CHECK(s.plan.via == path::tls);
    CHECK(s.plan.ask_ack);
    CHECK(d.policy.current() == path::tls);
    d.policy.acked(path::tls, s.seq, at + 30);
    if (s.plan.udp_probe) {
      ++probes;
      CHECK(s.probe_seq != 0);
      if (probes == 1) {
        first_probe_at = at;
      }
      last_probe_seq = s.probe_seq;
    }
  }
  CHECK(probes == 2);
  // Not before a full reprobe interval on TLS.
  CHECK(first_probe_at >= switched_at + reprobe_ms);
  CHECK(first_probe_at < switched_at + reprobe_ms + interval_ms);
  CHECK(last_probe_seq != 0);
  CHECK(d.policy.current() == path::tls);
  path to{};
  CHECK_FALSE(d.switched(&to));
}

TEST_CASE("an acknowledged UDP probe switches back to UDP", "[agent][transport][unit]") {
  auto d = on_tls();
  driver::sent probe_beat;
  for (int i = 0; i < 1000 && probe_beat.probe_seq == 0; ++i) {
    auto at = d.now;
    probe_beat = d.beat(true);
    d.policy.acked(path::tls, probe_beat.seq, at + 30);
  }
  REQUIRE(probe_beat.probe_seq != 0);
  CHECK(d.policy.acked(path::udp, probe_beat.probe_seq, d.now - interval_ms + 40));
  CHECK(d.policy.current() == path::udp);
  CHECK_FALSE(d.policy.wants_tls());
  path to{};
  REQUIRE(d.switched(&to));
  CHECK(to == path::udp);
  CHECK_FALSE(d.switched(&to));
  auto s = d.beat(true);
  CHECK(s.plan.via == path::udp);
  CHECK(s.plan.ask_ack);
  CHECK_FALSE(s.plan.udp_probe);
}

TEST_CASE("a TLS ack while on TLS keeps the path", "[agent][transport][unit]") {
  auto d = on_tls();
  auto s = d.beat(true);
  REQUIRE(s.plan.via == path::tls);
  CHECK_FALSE(d.policy.acked(path::tls, s.seq, d.now));
  CHECK(d.policy.current() == path::tls);
  path to{};
  CHECK_FALSE(d.switched(&to));
}

TEST_CASE("take_switched reports each switch once", "[agent][transport][unit]") {
  driver d(transport_mode::auto_);
  path to = path::udp;
  CHECK_FALSE(d.switched(&to));
  d.beat(false);
  d.beat(false);
  d.beat(false);
  REQUIRE(d.switched(&to));
  CHECK(to == path::tls);
  CHECK_FALSE(d.switched(&to));
  CHECK_FALSE(d.switched(nullptr));
  // Back to UDP: reported once more, and null is accepted.
  d.now += ack_timeout_ms;
  auto s = d.beat(false);
  REQUIRE(d.policy.acked(path::udp, s.seq, d.now));
  CHECK(d.switched(nullptr));
  CHECK_FALSE(d.switched(&to));
}

TEST_CASE("a replaced TLS stream starts with no misses, so it gets to carry frames",
          "[agent][transport][unit]") {
  // Regression: misses survived tls_lost(), so every new stream was
  // condemned at its first beat and TLS heartbeats stopped for good.
  driver d(transport_mode::tls);
  for (int i = 0; i < 4; ++i) {
    d.beat(true); // asks, nothing answers
  }
  CHECK(d.policy.misses() >= 3);
  d.policy.tls_lost();
  CHECK(d.policy.misses() == 0);
  auto s = d.beat(true);
  CHECK(s.plan.ask_ack);
  CHECK(d.policy.misses() == 0);
  d.policy.acked(path::tls, s.seq, d.now);
  CHECK(d.policy.misses() == 0);
}

TEST_CASE("an ack request that could not be sent counts as unanswered, and auto moves "
          "to TLS", "[agent][transport][unit]") {
  // Regression: a local firewall refusing UDP (EPERM) kept auto on UDP
  // forever, since only sent requests could go unanswered.
  driver d(transport_mode::auto_);
  auto p = d.policy.plan(d.now, false);
  REQUIRE(p.via == path::udp);
  REQUIRE(p.ask_ack);
  d.policy.unsent(path::udp, d.now);
  CHECK(d.policy.misses() == 1);
  CHECK(d.policy.current() == path::udp);
  d.now += interval_ms;
  p = d.policy.plan(d.now, false);
  d.policy.unsent(path::udp, d.now);
  CHECK(d.policy.current() == path::tls);
  path to = path::udp;
  CHECK(d.switched(&to));
  CHECK(to == path::tls);

  SECTION("udp mode never counts them") {
    driver u(transport_mode::udp);
    u.policy.unsent(path::udp, u.now);
    CHECK(u.policy.misses() == 0);
  }
}

TEST_CASE("on TLS, only the answer to the outstanding UDP probe brings auto back to UDP",
          "[agent][transport][unit]") {
  driver d(transport_mode::auto_);
  auto first = d.beat(false);
  d.beat(false);
  d.beat(false);
  REQUIRE(d.policy.current() == path::tls);
  d.switched(nullptr);
  // A late ack for a beat sent before the switch proves nothing.
  CHECK_FALSE(d.policy.acked(path::udp, first.seq, d.now));
  CHECK(d.policy.current() == path::tls);
  // Without a stream, beats go over UDP and ask: the answer to that one does.
  auto probe = d.beat(false);
  REQUIRE(probe.plan.via == path::udp);
  REQUIRE(probe.plan.ask_ack);
  CHECK_FALSE(d.policy.acked(path::udp, probe.seq + 1, d.now));
  CHECK(d.policy.acked(path::udp, probe.seq, d.now));
  CHECK(d.policy.current() == path::udp);
}
