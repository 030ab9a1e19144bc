// The ingest path on bytes: no sockets, time passed in.

#include <catch2/catch.hpp>

#include <functional>
#include <limits>

#include "engine/registry.hpp"
#include "tests/fakes/fake_notifier.hpp"

using namespace balctl;
using protocol::reject_reason;

namespace {

constexpr std::int64_t now0 = 1'700'000'000'000;

protocol::key key_for(member_id id) {
  protocol::key k{};
  k.fill(static_cast<std::uint8_t>(0x40 + id));
  return k;
}

ip_address ip(const char* text) {
  ip_address a;
  REQUIRE(ip_address::parse(text, a));
  return a;
}

struct fixture {
  registry reg;
  ingest in{reg, 30'000};
  std::shared_ptr<test::fake_notifier> notes = std::make_shared<test::fake_notifier>();
  std::shared_ptr<member_slot> slot;

  fixture() {
    slot = std::make_shared<member_slot>();
    slot->id = 7;
    slot->hostname = "node7.example.test";
    slot->set_key(key_for(7));
    slot->allowed_ips = {ip("192.0.2.10"), ip("2001:db8::10")};
    slot->set_notifier(notes);
    reg.add(slot);
  }

  accept_result send(std::uint64_t seq, std::string_view body = {},
                     std::int64_t ts = now0, const char* src = "192.0.2.10",
                     member_id id = 7, std::int64_t now = now0) {
    std::uint8_t buf[protocol::max_datagram_size];
    protocol::header h;
    h.member = id;
    h.seq = seq;
    h.timestamp_ms = ts;
    auto n = protocol::encode(buf, sizeof buf, h, body, key_for(id));
    REQUIRE(n > 0);
    return in.accept(buf, n, ip(src), now);
  }

  std::uint64_t rejected(reject_reason r) const {
    return in.counters().rejected[static_cast<std::size_t>(r)].load();
  }
};

const std::string body7 = R"({"hostname":"node7.example.test","stacks":{"cpanel":{}}})";

} // namespace

TEST_CASE("an authentic heartbeat is accepted and stored in the slot",
          "[ingest][unit]") {
  fixture f;
  auto r = f.send(1);
  CHECK(r.ok);
  CHECK(f.in.counters().accepted == 1);
  CHECK(f.slot->last_seen_ms == now0);
  CHECK(f.slot->last_seq == 1);
  CHECK(f.in.counters().rejected_total() == 0);
}

TEST_CASE("each rejection reason is counted under its own name", "[ingest][unit]") {
  fixture f;
  REQUIRE(f.send(10).ok);
  struct row {
    const char* what;
    std::function<accept_result()> send;
    reject_reason expected;
  };
  std::vector<row> rows = {
    {"unknown member", [&] { return f.send(11, {}, now0, "192.0.2.10", 99); },
     reject_reason::unknown_member},
    {"source not allowed", [&] { return f.send(11, {}, now0, "198.51.100.1"); },
     reject_reason::source_not_allowed},
    {"timestamp too old", [&] { return f.send(11, {}, now0 - 30'001); },
     reject_reason::stale_timestamp},
    {"timestamp too new", [&] { return f.send(11, {}, now0 + 30'001); },
     reject_reason::stale_timestamp},
    {"same sequence", [&] { return f.send(10); }, reject_reason::replayed},
    {"lower sequence", [&] { return f.send(9); }, reject_reason::replayed},
    {"hostname mismatch",
     [&] { return f.send(11, R"({"hostname":"evil.example.test"})"); },
     reject_reason::hostname_mismatch},
    {"malformed body", [&] { return f.send(11, R"({"hostname":5})"); },
     reject_reason::malformed_body},
  };
  for (auto& r : rows) {
    CAPTURE(r.what);
    auto res = r.send();
    CHECK_FALSE(res.ok);
    CHECK(res.reason == r.expected);
    CHECK(f.rejected(r.expected) >= 1);
  }
  CHECK(f.rejected(reject_reason::stale_timestamp) == 2);
  CHECK(f.rejected(reject_reason::replayed) == 2);
  // Nothing rejected moved the slot.
  CHECK(f.slot->last_seq == 10);
  CHECK(f.in.counters().accepted == 1);
}

TEST_CASE("a forged tag and garbage are rejected", "[ingest][unit]") {
  fixture f;
  std::uint8_t buf[protocol::max_datagram_size];
  protocol::header h;
  h.member = 7;
  h.seq = 1;
  h.timestamp_ms = now0;
  auto n = protocol::encode(buf, sizeof buf, h, {}, key_for(8)); // wrong key
  auto r = f.in.accept(buf, n, ip("192.0.2.10"), now0);
  CHECK(r.reason == reject_reason::bad_tag);
  r = f.in.accept(buf, 10, ip("192.0.2.10"), now0);
  CHECK(r.reason == reject_reason::truncated);
  CHECK(f.slot->last_seen_ms == 0);
  CHECK(f.in.counters().rejected_total() == 2);
}

TEST_CASE("a new key from re-enrolment is accepted at once and the old key no longer",
          "[ingest][unit]") {
  fixture f;
  REQUIRE(f.send(1).ok);
  f.slot->set_key(key_for(99));
  CHECK(f.slot->key() == key_for(99));
  // Signed with the old key: rejected from now on.
  CHECK(f.send(2).reason == reject_reason::bad_tag);
  std::uint8_t buf[protocol::max_datagram_size];
  protocol::header h;
  h.member = 7;
  h.seq = 3;
  h.timestamp_ms = now0;
  auto n = protocol::encode(buf, sizeof buf, h, {}, key_for(99));
  CHECK(f.in.accept(buf, n, ip("192.0.2.10"), now0).ok);
  CHECK(f.slot->last_seq == 3);
}

TEST_CASE("an allowed IPv6 source is accepted, and an empty allow list admits any",
          "[ingest][unit]") {
  fixture f;
  CHECK(f.send(1, {}, now0, "2001:db8::10").ok);
  f.slot->allowed_ips.clear();
  CHECK(f.send(2, {}, now0, "203.0.113.77").ok);
}

TEST_CASE("a member that is not healthy is reported once until the actor clears it",
          "[ingest][unit]") {
  fixture f;
  f.slot->state = member_state::down;
  for (std::uint64_t s = 1; s <= 50; ++s) {
    REQUIRE(f.send(s).ok);
  }
  CHECK(f.notes->heard_calls().size() == 1);
  f.slot->heard_pending = false; // what the member actor does
  REQUIRE(f.send(51).ok);
  CHECK(f.notes->heard_calls().size() == 2);
}

TEST_CASE("a healthy member's steady heartbeats send nothing to the actors",
          "[ingest][unit]") {
  fixture f;
  f.slot->state = member_state::healthy;
  for (std::uint64_t s = 1; s <= 100; ++s) {
    REQUIRE(f.send(s).ok);
  }
  CHECK(f.notes->heard_calls().empty());
  CHECK(f.notes->status_calls().empty());
}

TEST_CASE("a status body is passed on when it changes, once", "[ingest][unit]") {
  fixture f;
  f.slot->state = member_state::healthy;
  REQUIRE(f.send(1, body7).ok);
  REQUIRE(f.send(2, body7).ok);
  REQUIRE(f.send(3, body7).ok);
  auto calls = f.notes->status_calls();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].first == 7);
  CHECK(calls[0].second.cpanel.present);
  REQUIRE(f.send(4, R"({"hostname":"node7.example.test"})").ok);
  CHECK(f.notes->status_calls().size() == 2);
  CHECK_FALSE(f.notes->status_calls()[1].second.cpanel.present);
}

TEST_CASE("a malformed body does not burn the sequence number", "[ingest][unit]") {
  fixture f;
  REQUIRE(f.send(5).ok);
  CHECK_FALSE(f.send(6, "not json").ok);
  CHECK(f.slot->last_seq == 5);
  CHECK(f.send(6).ok);
}

TEST_CASE("ip addresses compare across text forms", "[ingest][unit]") {
  CHECK(ip("192.0.2.1") == ip("::ffff:192.0.2.1"));
  CHECK_FALSE(ip("192.0.2.1") == ip("192.0.2.2"));
  CHECK(ip("2001:db8::1").to_string() == "2001:db8::1");
  CHECK(ip("192.0.2.1").to_string() == "192.0.2.1");
  ip_address a;
  CHECK_FALSE(ip_address::parse("300.1.1.1", a));
  CHECK_FALSE(ip_address::parse("host.example", a));
}

TEST_CASE("the registry finds, replaces and removes slots", "[ingest][unit]") {
  registry reg;
  auto s = std::make_shared<member_slot>();
  s->id = 3;
  reg.add(s);
  CHECK(reg.find(3) == s);
  auto s2 = std::make_shared<member_slot>();
  s2->id = 3;
  reg.add(s2);
  CHECK(reg.find(3) == s2);
  CHECK(reg.size() == 1);
  CHECK(reg.all().size() == 1);
  reg.remove(3);
  CHECK(reg.find(3) == nullptr);
}

TEST_CASE("a status body that found no actor to take it is offered again",
          "[ingest][unit]") {
  fixture f;
  f.slot->state = member_state::healthy;
  f.slot->set_notifier(nullptr); // the pool is not up yet
  REQUIRE(f.send(1, body7).ok);
  f.slot->set_notifier(f.notes);
  REQUIRE(f.send(2, body7).ok);
  CHECK(f.notes->status_calls().size() == 1);
}

TEST_CASE("a member heard before its pool is up is reported once the pool is",
          "[ingest][unit]") {
  fixture f;
  f.slot->state = member_state::pending;
  f.slot->set_notifier(nullptr);
  REQUIRE(f.send(1).ok);
  CHECK_FALSE(f.slot->heard_pending.load()); // not left taken by nobody
  f.slot->set_notifier(f.notes);
  REQUIRE(f.send(2).ok);
  CHECK(f.notes->heard_calls().size() == 1);
}

TEST_CASE("timestamps at the ends of the int64 range are stale, not overflowed",
          "[ingest][unit]") {
  fixture f;
  auto lo = std::numeric_limits<std::int64_t>::min();
  auto hi = std::numeric_limits<std::int64_t>::max();
  CHECK(f.send(1, {}, lo).reason == reject_reason::stale_timestamp);
  CHECK(f.send(2, {}, hi).reason == reject_reason::stale_timestamp);
  CHECK(f.send(3, {}, now0 - 30'000).ok); // the window's edges are inside
  CHECK(f.send(4, {}, now0 + 30'000).ok);
}

TEST_CASE("last_seen_ms moves only on accept", "[ingest][unit]") {
  fixture f;
  REQUIRE(f.send(1, {}, now0, "192.0.2.10", 7, now0).ok);
  const std::int64_t later = now0 + 5'000;
  CHECK_FALSE(f.send(1, {}, later, "192.0.2.10", 7, later).ok);           // replayed
  CHECK_FALSE(f.send(2, {}, later, "198.51.100.1", 7, later).ok);         // source
  CHECK_FALSE(f.send(2, "not json", later, "192.0.2.10", 7, later).ok);   // body
  CHECK(f.slot->last_seen_ms == now0);
  REQUIRE(f.send(2, {}, later, "192.0.2.10", 7, later).ok);
  CHECK(f.slot->last_seen_ms == later);
}

TEST_CASE("without a notifier, beats are accepted and heard_pending stays clear",
          "[ingest][unit]") {
  fixture f;
  f.slot->set_notifier(nullptr);
  f.slot->state = member_state::pending;
  REQUIRE(f.send(1, body7).ok);
  REQUIRE(f.send(2).ok);
  CHECK_FALSE(f.slot->heard_pending);
  // Once the actor layer attaches, the next beat is reported.
  f.slot->set_notifier(f.notes);
  REQUIRE(f.send(3).ok);
  CHECK(f.notes->heard_calls().size() == 1);
}

namespace {

// A heartbeat for member 7 asking for an acknowledgement.
accept_result send_asking(fixture& f, std::uint64_t seq, std::uint8_t* ack_out,
                          std::int64_t ts = now0, std::string_view body = {},
                          const protocol::key& k = key_for(7)) {
  std::uint8_t buf[protocol::max_datagram_size];
  protocol::header h;
  h.flags = protocol::flag_ack_requested;
  h.member = 7;
  h.seq = seq;
  h.timestamp_ms = ts;
  auto n = protocol::encode(buf, sizeof buf, h, body, k);
  REQUIRE(n > 0);
  return f.in.accept(buf, n, ip("192.0.2.10"), now0, ack_out);
}

} // namespace

TEST_CASE("an accepted heartbeat that asks is acknowledged with the member's key",
          "[ingest][unit]") {
  fixture f;
  std::uint8_t ack[protocol::ack_size];
  auto r = send_asking(f, 10, ack);
  CHECK(r.ok);
  REQUIRE(r.ack_len == protocol::ack_size);
  auto a = protocol::decode_ack(ack, r.ack_len, key_for(7));
  REQUIRE(a);
  CHECK(a->result == protocol::ack_result::accepted);
  CHECK(a->member == 7);
  CHECK(a->seq == 10);
  CHECK(a->engine_time_ms == now0);

  SECTION("one that does not ask gets nothing") {
    CHECK(f.send(11).ack_len == 0);
  }
  SECTION("a replay is answered with the last accepted sequence number") {
    auto again = send_asking(f, 5, ack);
    CHECK_FALSE(again.ok);
    REQUIRE(again.ack_len == protocol::ack_size);
    auto n = protocol::decode_ack(ack, again.ack_len, key_for(7));
    REQUIRE(n);
    CHECK(n->result == protocol::ack_result::replayed);
    CHECK(n->seq == 10);
  }
  SECTION("a stale timestamp is answered with the engine's time") {
    auto late = send_asking(f, 11, ack, now0 - 60'000);
    CHECK(late.reason == reject_reason::stale_timestamp);
    auto n = protocol::decode_ack(ack, late.ack_len, key_for(7));
    REQUIRE(n);
    CHECK(n->result == protocol::ack_result::stale_timestamp);
    CHECK(n->engine_time_ms == now0);
  }
  SECTION("a body with another hostname is answered as such") {
    auto bad = send_asking(f, 11, ack, now0, R"({"hostname":"other.test"})");
    CHECK(bad.reason == reject_reason::hostname_mismatch);
    auto n = protocol::decode_ack(ack, bad.ack_len, key_for(7));
    REQUIRE(n);
    CHECK(n->result == protocol::ack_result::hostname_mismatch);
  }
  SECTION("a forged datagram is never answered: nothing is said before the tag verifies") {
    auto forged = send_asking(f, 12, ack, now0, {}, key_for(8));
    CHECK(forged.reason == reject_reason::bad_tag);
    CHECK(forged.ack_len == 0);
  }
}
