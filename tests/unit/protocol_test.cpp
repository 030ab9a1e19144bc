#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <vector>

#include "transport/protocol.hpp"

using namespace balctl;
using namespace balctl::protocol;

namespace {

key test_key(std::uint8_t start = 0) {
  key k{};
  for (std::size_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<std::uint8_t>(start + i);
  }
  return k;
}

std::vector<std::uint8_t> make(const header& h, std::string_view body,
                               const key& k = test_key()) {
  std::vector<std::uint8_t> buf(max_datagram_size);
  auto n = encode(buf.data(), buf.size(), h, body, k);
  REQUIRE(n > 0);
  buf.resize(n);
  return buf;
}

header beat(member_id m = 42, std::uint64_t seq = 7) {
  header h;
  h.member = m;
  h.seq = seq;
  h.timestamp_ms = 1'700'000'000'000;
  return h;
}

reject_reason reason_of(const std::vector<std::uint8_t>& b) {
  auto r = decode(b.data(), b.size());
  REQUIRE_FALSE(r.ok);
  return r.reason;
}

} // namespace

TEST_CASE("a steady-state heartbeat round-trips without a body", "[protocol][unit]") {
  auto b = make(beat(), {});
  CHECK(b.size() == header_size + tag_size);
  auto r = decode(b.data(), b.size());
  REQUIRE(r.ok);
  CHECK(r.view.hdr.member == 42);
  CHECK(r.view.hdr.seq == 7);
  CHECK(r.view.hdr.timestamp_ms == 1'700'000'000'000);
  CHECK(r.view.body.empty());
  CHECK(verify_tag(r.view, test_key()));
}

TEST_CASE("a heartbeat with a status body round-trips", "[protocol][unit]") {
  member_status s;
  s.hostname = "node9.example.com";
  s.agent_version = "1.2.0";
  s.cpanel = {true, "118.0.5"};
  s.mariadb = {true, "10.11.6"};
  s.openlitespeed = {true, ""};
  s.galera = {true, 3, "Synced", true};
  s.load1 = 0.5;
  s.cpu_pct = 3.25;
  s.mem_used_bytes = 1ull << 33;
  s.disk_total_bytes = 1ull << 40;
  auto body = status_to_json(s);
  auto b = make(beat(), body);
  auto r = decode(b.data(), b.size());
  REQUIRE(r.ok);
  CHECK(r.view.hdr.flags & flag_body);
  CHECK(verify_tag(r.view, test_key()));
  std::string err;
  auto back = parse_status(r.view.body, &err);
  REQUIRE(back);
  CHECK(back->hostname == s.hostname);
  CHECK(back->agent_version == s.agent_version);
  CHECK(back->cpanel == s.cpanel);
  CHECK(back->mariadb == s.mariadb);
  CHECK(back->openlitespeed == s.openlitespeed);
  CHECK(back->galera == s.galera);
  CHECK_FALSE(back->galera.state.empty());
  CHECK(back->load1 == s.load1);
  CHECK(back->cpu_pct == s.cpu_pct);
  CHECK(back->mem_used_bytes == s.mem_used_bytes);
  CHECK(back->disk_total_bytes == s.disk_total_bytes);
}

TEST_CASE("the documented example datagram has exactly these bytes",
          "[protocol][unit]") {
  // docs/protocol.md, "Worked example": key 00..1f, member 42, seq 7,
  // timestamp 1700000000000, no body.
  const std::vector<std::uint8_t> expected = {
    0x42, 0x4c, 0x48, 0x42, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0xdd, 0xb5, 0xb6, 0x82,
    0xb2, 0x37, 0x7a, 0xf5, 0x8b, 0xc7, 0x52, 0x15, 0x14, 0x8b, 0xc8, 0xe8};
  CHECK(make(beat(), {}) == expected);
}

TEST_CASE("structural defects are rejected with their reason", "[protocol][unit]") {
  auto good = make(beat(), {});
  SECTION("bad magic") {
    good[0] = 'X';
    CHECK(reason_of(good) == reject_reason::bad_magic);
  }
  SECTION("unknown version") {
    good[4] = 2;
    CHECK(reason_of(good) == reject_reason::bad_version);
  }
  SECTION("unknown flag bits") {
    good[5] = 0x80;
    CHECK(reason_of(good) == reject_reason::bad_flags);
  }
  SECTION("body flag without a body") {
    good[5] = flag_body;
    CHECK(reason_of(good) == reject_reason::bad_flags);
  }
  SECTION("a body length without the body flag") {
    good[7] = 4;
    CHECK(reason_of(good) == reject_reason::bad_flags);
  }
  SECTION("trailing bytes") {
    good.push_back(0);
    CHECK(reason_of(good) == reject_reason::length_mismatch);
  }
  SECTION("body length past the end") {
    auto b = make(beat(), R"({"hostname":"h"})");
    b[7] = static_cast<std::uint8_t>(b[7] + 10);
    CHECK(reason_of(b) == reject_reason::truncated);
  }
  SECTION("oversized") {
    std::vector<std::uint8_t> big(max_datagram_size + 1, 0);
    CHECK(reason_of(big) == reject_reason::oversized);
  }
}

TEST_CASE("the ack-requested flag is accepted", "[protocol][unit]") {
  auto h = beat();
  h.flags = flag_ack_requested;
  auto b = make(h, {});
  auto r = decode(b.data(), b.size());
  REQUIRE(r.ok);
  CHECK(verify_tag(r.view, test_key()));
}

TEST_CASE("every truncation of a valid datagram is rejected", "[protocol][unit]") {
  auto b = make(beat(), R"({"hostname":"node1.example.test"})");
  for (std::size_t len = 0; len < b.size(); ++len) {
    CAPTURE(len);
    auto r = decode(b.data(), len);
    CHECK_FALSE(r.ok);
  }
  CHECK_FALSE(decode(nullptr, 0).ok);
}

TEST_CASE("a flipped bit anywhere is never accepted", "[protocol][unit]") {
  auto b = make(beat(), R"({"hostname":"node1.example.test"})");
  for (std::size_t byte = 0; byte < b.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      auto c = b;
      c[byte] ^= static_cast<std::uint8_t>(1 << bit);
      auto r = decode(c.data(), c.size());
      CAPTURE(byte, bit);
      CHECK_FALSE((r.ok && verify_tag(r.view, test_key())));
    }
  }
}

TEST_CASE("a datagram signed with another key fails the tag check", "[protocol][unit]") {
  auto b = make(beat(), {}, test_key(1));
  auto r = decode(b.data(), b.size());
  REQUIRE(r.ok);
  CHECK_FALSE(verify_tag(r.view, test_key(0)));
  CHECK(verify_tag(r.view, test_key(1)));
}

TEST_CASE("random garbage never crashes the decoder", "[protocol][unit]") {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> len(0, max_datagram_size + 64);
  std::size_t accepted = 0;
  for (int i = 0; i < 20'000; ++i) {
    std::vector<std::uint8_t> g(len(rng));
    for (auto& x : g) {
      x = static_cast<std::uint8_t>(byte(rng));
    }
    if (i % 2 == 0 && g.size() >= 4) {
      g[0] = 'B', g[1] = 'L', g[2] = 'H', g[3] = 'B'; // get past the magic
    }
    auto r = decode(g.data(), g.size());
    if (r.ok) {
      accepted += verify_tag(r.view, test_key()) ? 1 : 0;
      std::string err;
      parse_status(r.view.body, &err);
    }
  }
  CHECK(accepted == 0);
}

TEST_CASE("encode refuses a body or buffer that does not fit", "[protocol][unit]") {
  std::vector<std::uint8_t> buf(max_datagram_size);
  std::string huge(max_body_size + 1, 'x');
  CHECK(encode(buf.data(), buf.size(), beat(), huge, test_key()) == 0);
  CHECK(encode(buf.data(), header_size + tag_size - 1, beat(), {}, test_key()) == 0);
  std::string largest(max_body_size, 'x');
  CHECK(encode(buf.data(), buf.size(), beat(), largest, test_key()) ==
        max_datagram_size);
}

TEST_CASE("status body errors name the field", "[protocol][unit]") {
  auto [body, field] = GENERATE(table<std::string, std::string>({
    {"not json", "body"},
    {"[1,2]", "body"},
    {"{}", "hostname"},
    {R"({"hostname":""})", "hostname"},
    {R"({"hostname":7})", "hostname"},
    {R"({"hostname":"h","agent_version":3})", "agent_version"},
    {R"({"hostname":"h","stacks":[]})", "stacks"},
    {R"({"hostname":"h","stacks":{"cpanel":1}})", "stacks.cpanel"},
    {R"({"hostname":"h","stacks":{"mariadb":{"version":1}}})", "stacks.mariadb.version"},
    {R"({"hostname":"h","stacks":{"galera":{"ready":"yes"}}})", "stacks.galera.ready"},
    {R"({"hostname":"h","stacks":{"galera":{"cluster_size":-1}}})", "stacks.galera.cluster_size"},
    {R"({"hostname":"h","metrics":{"cpu_pct":"high"}})", "metrics.cpu_pct"},
    {R"({"hostname":"h","metrics":{"load1":-2}})", "metrics.load1"},
    {R"({"hostname":"h","metrics":5})", "metrics"},
  }));
  CAPTURE(body);
  std::string err;
  CHECK_FALSE(parse_status(body, &err));
  CHECK(err.rfind(field, 0) == 0);
}

TEST_CASE("unknown stacks and fields in the status body are ignored",
          "[protocol][unit]") {
  std::string err;
  auto s = parse_status(
    R"({"hostname":"h","future":1,"stacks":{"nginx":{},"cpanel":{}}})", &err);
  REQUIRE(s);
  CHECK(s->cpanel.present);
  CHECK_FALSE(s->mariadb.present);
}

TEST_CASE("keys parse from 64 hex characters only", "[protocol][unit]") {
  key k{};
  CHECK(key_from_hex(key_to_hex(test_key()), k));
  CHECK(k == test_key());
  CHECK(key_from_hex(std::string(64, 'A'), k));
  CHECK(k[0] == 0xAA);
  CHECK_FALSE(key_from_hex(std::string(63, 'a'), k));
  CHECK_FALSE(key_from_hex(std::string(64, 'g'), k));
}

TEST_CASE("an acknowledgement round-trips and is exactly as long as a bodyless heartbeat",
          "[protocol][unit]") {
  ack a;
  a.result = ack_result::replayed;
  a.member = 42;
  a.seq = 99;
  a.engine_time_ms = 1700000000123;
  std::uint8_t buf[ack_size];
  REQUIRE(encode_ack(buf, a, test_key()) == ack_size);
  CHECK(ack_size == header_size + tag_size); // never larger than what it answers
  CHECK(buf[0] == 'B');
  CHECK(buf[3] == 'K');
  auto d = decode_ack(buf, sizeof buf, test_key());
  REQUIRE(d);
  CHECK(d->result == ack_result::replayed);
  CHECK(d->member == 42);
  CHECK(d->seq == 99);
  CHECK(d->engine_time_ms == 1700000000123);

  SECTION("another member's key does not verify it") {
    CHECK_FALSE(decode_ack(buf, sizeof buf, test_key(1)));
  }
  SECTION("any flipped bit is refused") {
    for (std::size_t i = 0; i < ack_size; ++i) {
      std::uint8_t copy[ack_size];
      std::memcpy(copy, buf, ack_size);
      copy[i] ^= 0x01;
      CAPTURE(i);
      CHECK_FALSE(decode_ack(copy, ack_size, test_key()));
    }
  }
  SECTION("a heartbeat is not an acknowledgement") {
    auto hb = make(beat(), {});
    CHECK_FALSE(decode_ack(hb.data(), hb.size(), test_key()));
  }
  SECTION("wrong lengths are refused") {
    CHECK_FALSE(decode_ack(buf, ack_size - 1, test_key()));
    CHECK_FALSE(decode_ack(nullptr, 0, test_key()));
  }
}

TEST_CASE("stream framing reads a frame's length from its first 8 bytes",
          "[protocol][unit]") {
  auto bodyless = make(beat(), {});
  auto with_body = make(beat(), R"({"hostname":"h"})");
  CHECK(frame_size(bodyless.data(), 0) == 0);
  CHECK(frame_size(bodyless.data(), 7) == 0);
  CHECK(frame_size(bodyless.data(), 8) == bodyless.size());
  CHECK(frame_size(with_body.data(), with_body.size()) == with_body.size());
  std::uint8_t junk[8] = {'B', 'L', 'X', 'B', 1, 0, 0, 0};
  CHECK(frame_size(junk, 2) == 0);             // "BL" could still be a frame
  CHECK(frame_size(junk, 3) == frame_garbage); // "BLX" cannot
  std::uint8_t v2[8] = {'B', 'L', 'H', 'B', 2, 0, 0, 0};
  CHECK(frame_size(v2, 8) == frame_garbage);
  std::uint8_t huge[8] = {'B', 'L', 'H', 'B', 1, 1, 0xff, 0xff};
  CHECK(frame_size(huge, 8) == frame_garbage); // past max_datagram_size
}
