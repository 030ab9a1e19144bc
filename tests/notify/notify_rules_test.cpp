// The notifier's decisions and messages without a network: de-duplication,
// back-off, the e-mail's headers and the webhook's body and signature.

#include <catch2/catch.hpp>


#include <nlohmann/json.hpp>

#include "adapters/notify/channel.hpp"
#include "adapters/notify/message.hpp"
#include "adapters/notify/rules.hpp"
#include "tests/fakes/fake_notify_service.hpp"

using namespace balctl;
using namespace balctl::notify;

TEST_CASE("a key seen within the window is suppressed and counted for the next one",
          "[notify][unit]") {
  dedup d(900'000);
  const std::int64_t t0 = 1'700'000'000'000;
  CHECK_FALSE(d.decide("member_down/p/7", t0).suppressed);
  d.accepted("member_down/p/7", t0);
  for (int i = 1; i <= 4; ++i) {
    CHECK(d.decide("member_down/p/7", t0 + i * 1000).suppressed);
  }
  CHECK_FALSE(d.decide("member_down/p/8", t0 + 5000).suppressed); // another key
  auto later = d.decide("member_down/p/7", t0 + 900'000);
  CHECK_FALSE(later.suppressed);
  CHECK(later.earlier_suppressed == 4);
  CHECK(later.since_ms == t0);
  d.accepted("member_down/p/7", t0 + 900'000);
  CHECK(d.decide("member_down/p/7", t0 + 1'800'000).earlier_suppressed == 0);
}

TEST_CASE("a window of 0 suppresses nothing and remembers nothing", "[notify][unit]") {
  dedup d(0);
  for (int i = 0; i < 3; ++i) {
    CHECK_FALSE(d.decide("k", 1000).suppressed);
    d.accepted("k", 1000);
  }
  CHECK(d.keys() == 0);
}

TEST_CASE("keys past their window with nothing suppressed are forgotten", "[notify][unit]") {
  dedup d(1000);
  for (int i = 0; i < 2000; ++i) {
    d.accepted("k" + std::to_string(i), i < 1000 ? 0 : 5000);
  }
  CHECK(d.keys() < 2000);
}

TEST_CASE("back-off doubles from the first wait up to the cap, with half of it jittered",
          "[notify][unit]") {
  auto [retry, lo, hi] = GENERATE(table<int, std::int64_t, std::int64_t>(
    {{1, 500, 1000}, {2, 1000, 2000}, {3, 2000, 4000}, {9, 128'000, 256'000},
     {10, 150'000, 300'000},
     {40, 150'000, 300'000}}));
  CAPTURE(retry);
  for (std::uint32_t r : {0u, 1u, 77u, 4'000'000'000u}) {
    auto w = backoff_ms(retry, 1000, 300'000, r);
    CHECK(w >= lo);
    CHECK(w <= hi);
  }
}

TEST_CASE("an e-mail has the RFC 5322 headers and CRLF line ends", "[notify][unit]") {
  alert a;
  a.key = "member_down/linux-fleet/7";
  a.kind = "member_down";
  a.subject = "node7 is down";
  a.text = "line one\nline two\r\nline three";
  a.at_ms = 1'700'000'000'000;
  auto m = email_message(a, "balctl@engine.example", {"a@example.com", "b@example.com"},
                         "1.2@engine.example");
  CHECK(m.find("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n") == 0);
  CHECK(m.find("\r\nFrom: balctl@engine.example\r\n") != std::string::npos);
  CHECK(m.find("\r\nTo: a@example.com, b@example.com\r\n") != std::string::npos);
  CHECK(m.find("\r\nSubject: node7 is down\r\n") != std::string::npos);
  CHECK(m.find("\r\nMessage-ID: <1.2@engine.example>\r\n") != std::string::npos);
  CHECK(m.find("\r\nMIME-Version: 1.0\r\n") != std::string::npos);
  CHECK(m.find("\r\nContent-Type: text/plain; charset=utf-8\r\n") != std::string::npos);
  CHECK(m.substr(m.find("\r\n\r\n")) == "\r\n\r\nline one\r\nline two\r\nline three\r\n");
}

TEST_CASE("CR and LF in a subject cannot start another header", "[notify][unit]") {
  alert a;
  a.subject = "down\r\nBcc: intruder@example.com";
  a.kind = "x\ny";
  auto m = email_message(a, "f@example.com", {"a@example.com"}, "id@example.com");
  auto headers = m.substr(0, m.find("\r\n\r\n") + 2);
  CHECK(headers.find("\r\nBcc:") == std::string::npos);
  CHECK(headers.find("Subject: down  Bcc: intruder@example.com\r\n") != std::string::npos);
  CHECK(header_safe("a\rb\nc\td") == "a b c\td");
  CHECK_FALSE(valid_address("a@example.com\r\nRCPT TO:<x@example.com>"));
  CHECK_FALSE(valid_address("<a@example.com>"));
  CHECK_FALSE(valid_address("no-at-sign"));
  CHECK(valid_address("ops+alerts@example.com"));
}

TEST_CASE("a subject outside ASCII is sent as RFC 2047 encoded words", "[notify][unit]") {
  auto h = encode_header("Pool \xc3\xa9t\xc3\xa9 \xe2\x80\x94 node7 down");
  CHECK(h.rfind("=?UTF-8?B?", 0) == 0);
  CHECK(h.find("\r\n") == std::string::npos); // short enough for one word
  CHECK(encode_header("plain") == "plain");
  auto long_one = encode_header(std::string(60, 'x') + "\xc3\xa9" + std::string(60, 'y'));
  CHECK(long_one.find("?=\r\n =?UTF-8?B?") != std::string::npos);
}

TEST_CASE("the webhook body carries the alert's fields and is signed with HMAC-SHA256",
          "[notify][unit]") {
  alert a;
  a.key = "failover/linux-fleet";
  a.pool = "linux-fleet";
  a.member = 7;
  a.kind = "failover";
  a.subject = "failover";
  a.text = "node7 \xe2\x86\x92 node8";
  a.at_ms = 1'700'000'000'123;
  auto body = webhook_body(a);
  auto j = nlohmann::json::parse(body);
  CHECK(j["kind"] == "failover");
  CHECK(j["key"] == "failover/linux-fleet");
  CHECK(j["pool"] == "linux-fleet");
  CHECK(j["member"] == 7);
  CHECK(j["text"] == a.text);
  CHECK(j["at_ms"] == 1'700'000'000'123);
  CHECK(j.size() == 7);
  // RFC 4231 test case 2.
  CHECK(webhook_signature("Jefe", "what do ya want for nothing?") ==
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("what an attempt's result means for the delivery", "[notify][unit]") {
  std::string why;
  CHECK(webhook_verdict(CURLE_OK, 204, "", &why) == verdict::sent);
  CHECK(webhook_verdict(CURLE_OK, 500, "", &why) == verdict::retry);
  CHECK(webhook_verdict(CURLE_OK, 429, "", &why) == verdict::retry);
  CHECK(webhook_verdict(CURLE_OK, 404, "", &why) == verdict::failed);
  CHECK(why == "HTTP 404");
  CHECK(webhook_verdict(CURLE_COULDNT_CONNECT, 0, "", &why) == verdict::retry);
  CHECK(email_verdict(CURLE_OK, 250, "", &why) == verdict::sent);
  CHECK(email_verdict(CURLE_RECV_ERROR, 550, "", &why) == verdict::failed);
  CHECK(email_verdict(CURLE_RECV_ERROR, 451, "", &why) == verdict::retry);
  CHECK(email_verdict(CURLE_COULDNT_CONNECT, 0, "", &why) == verdict::retry);
  CHECK(email_verdict(CURLE_LOGIN_DENIED, 535, "", &why) == verdict::failed);
}

TEST_CASE("the suppressed note says how many and since when", "[notify][unit]") {
  CHECK(with_suppressed_note("down", 0, 0) == "down");
  CHECK(with_suppressed_note("down", 3, 1'700'000'000'000) ==
        "down\n\n(3 similar alerts suppressed since 2023-11-14T22:13:20Z)");
  CHECK(with_suppressed_note("down", 1, 1'700'000'000'000) ==
        "down\n\n(1 similar alert suppressed since 2023-11-14T22:13:20Z)");
}

TEST_CASE("the fake notify service records what is posted", "[notify][unit]") {
  test::fake_notify_service f;
  alert a;
  a.key = "k";
  CHECK(f.post(a));
  CHECK(f.posted().size() == 1);
  CHECK(f.counters().posted == 1);
}
