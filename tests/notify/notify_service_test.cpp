// The notify_service against real peers on loopback: a real SMTP server
// (aiosmtpd, tests/support/smtp_server.hpp) and a webhook receiver on the
// project's HTTP server. Waits are bounded polls; the de-duplication window
// and giving up run on a manual clock.

#include <catch2/catch.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <deque>
#include <mutex>

#include <nlohmann/json.hpp>

#include "adapters/notify/notify_service.hpp"
#include "engine/secrets.hpp"
#include "tests/e2e/process.hpp"
#include "tests/support/smtp_server.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/test_certs.hpp"
#include "transport/http_server.hpp"

using namespace balctl;
using namespace balctl::notify;
using balctl::test::wait_until;

namespace {

// Short back-off so retries come within a test's bounded wait.
notify_config fast_config() {
  notify_config c;
  c.smtp_from = "balctl@engine.example";
  c.retry_initial_ms = 20;
  c.retry_max_ms = 100;
  c.webhook_timeout_ms = 5000;
  return c;
}

alert make_alert(const std::string& key) {
  alert a;
  a.key = key;
  a.pool = "linux-fleet";
  a.member = 7;
  a.kind = "member_down";
  a.subject = "node7 is down in linux-fleet";
  a.text = "node7 missed its heartbeats for 30 s.\nStandby: node8.";
  a.at_ms = 1'700'000'000'000;
  return a;
}

std::unique_ptr<notify_service> started(const notify_config& c, balctl::clock& t) {
  std::string error;
  auto s = make_notify_service(c, t, &error);
  INFO(error);
  REQUIRE(s);
  return s;
}

/// A started service on a manual clock: post an alert, wait for counters.
struct rig {
  manual_clock t;
  std::unique_ptr<notify_service> svc;
  explicit rig(const notify_config& c = fast_config()) : svc(started(c, t)) {}
  /// Posts alert "k" (or a) to these recipients and URLs; true when queued.
  bool post(std::vector<std::string> emails, std::vector<std::string> hooks,
            alert a = make_alert("k")) {
    a.emails = std::move(emails);
    a.webhooks = std::move(hooks);
    return svc->post(std::move(a));
  }
  /// Bounded wait until cond holds for the counters.
  bool wait(const std::function<bool(const notify_counters&)>& cond) {
    return wait_until([&] { return cond(svc->counters()); }, 10'000);
  }
  notify_counters counters() const { return svc->counters(); }
};

/// A webhook receiver: answers with the scripted statuses in order, then 200.
struct receiver {
  std::mutex mu;
  std::vector<http::request> seen;
  std::deque<int> statuses;
  http::server srv{"127.0.0.1:0", http::server_limits{},
                   [this](http::request&& r, http::responder respond) {
                     http::response resp;
                     {
                       std::lock_guard<std::mutex> g(mu);
                       seen.push_back(r);
                       if (!statuses.empty()) {
                         resp.status = statuses.front();
                         statuses.pop_front();
                       }
                     }
                     resp.body = "{}";
                     respond(std::move(resp));
                   }};
  receiver() { REQUIRE(srv.start().empty()); }
  std::string url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(srv.bound_port()) + path;
  }
  std::size_t count() {
    std::lock_guard<std::mutex> g(mu);
    return seen.size();
  }
  http::request at(std::size_t i) {
    std::lock_guard<std::mutex> g(mu);
    return seen.at(i);
  }
};

std::string hmac_hex(const std::string& key, const std::string& body) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), md, &len);
  return secrets::to_hex(md, len);
}

} // namespace

TEST_CASE("an e-mail alert reaches a real SMTP server: envelope, headers and body",
          "[notify][smtp]") {
  test::smtp_server smtp;
  auto c = fast_config();
  c.smtp_url = smtp.url();
  rig r(c);
  CHECK(r.post({"ops@example.com", "oncall@example.com"}, {}));
  REQUIRE(r.wait([](const notify_counters& n) { return n.email.sent == 1; }));
  auto msgs = smtp.messages();
  REQUIRE(msgs.size() == 1);
  const auto& m = msgs[0];
  CHECK(m.mail_from == "balctl@engine.example");
  CHECK(m.rcpt_tos == std::vector<std::string>{"ops@example.com", "oncall@example.com"});
  CHECK(m.header("Subject") == "node7 is down in linux-fleet");
  CHECK(m.header("From") == "balctl@engine.example");
  CHECK(m.header("To") == "ops@example.com, oncall@example.com");
  CHECK(m.header("Date") == "Tue, 14 Nov 2023 22:13:20 +0000");
  CHECK(m.header("Content-Type") == "text/plain; charset=utf-8");
  CHECK(m.header("Message-ID").find("@engine.example>") != std::string::npos);
  CHECK(m.body() == "node7 missed its heartbeats for 30 s.\r\nStandby: node8.\r\n");
  auto n = r.counters();
  CHECK(n.email.retried == 0);
  CHECK(n.email.failed == 0);
}

TEST_CASE("an alert with CR/LF in its subject and an address cannot add a recipient",
          "[notify][smtp]") {
  test::smtp_server smtp;
  auto c = fast_config();
  c.smtp_url = smtp.url();
  rig r(c);
  auto a = make_alert("k");
  a.subject = "down\r\nBcc: intruder@example.com";
  CHECK(r.post({"ops@example.com", "x@example.com>\r\nRCPT TO:<intruder@example.com"}, {}, a));
  REQUIRE(r.wait([](const notify_counters& n) { return n.email.sent == 1; }));
  auto msgs = smtp.messages();
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].rcpt_tos == std::vector<std::string>{"ops@example.com"});
  CHECK(msgs[0].header("Bcc").empty());
  CHECK(msgs[0].header("Subject") == "down  Bcc: intruder@example.com");
}

TEST_CASE("an e-mail waits out an SMTP server that is down and goes out once it is back",
          "[notify][smtp]") {
  test::smtp_server smtp;
  smtp.stop();
  auto c = fast_config();
  c.smtp_url = smtp.url();
  rig r(c);
  CHECK(r.post({"ops@example.com"}, {}));
  REQUIRE(r.wait([](const notify_counters& n) { return n.email.retried >= 2; }));
  CHECK(r.counters().email.sent == 0);
  smtp.start();
  REQUIRE(r.wait([](const notify_counters& n) { return n.email.sent == 1; }));
  CHECK(smtp.messages().size() == 1);
  CHECK(r.counters().email.failed == 0);
}

TEST_CASE("an e-mail still undelivered after retry_give_up_s is given up and counted",
          "[notify][smtp]") {
  test::smtp_server smtp;
  smtp.stop();
  auto c = fast_config();
  c.smtp_url = smtp.url();
  c.retry_give_up_s = 60;
  rig r(c);
  CHECK(r.post({"ops@example.com"}, {}));
  REQUIRE(r.wait([](const notify_counters& n) { return n.email.retried >= 1; }));
  CHECK(r.counters().email.gave_up == 0);
  r.t.advance(61'000);
  REQUIRE(r.wait([](const notify_counters& n) { return n.email.gave_up == 1; }));
  auto n = r.counters();
  CHECK(n.email.failed == 1);
  CHECK(n.email.sent == 0);
}

TEST_CASE("a recipient the SMTP server refuses (550) fails the e-mail without retries",
          "[notify][smtp]") {
  test::smtp_server_options o;
  o.refuse_rcpt = "nobody@example.com";
  test::smtp_server smtp(o);
  auto c = fast_config();
  c.smtp_url = smtp.url();
  rig r(c);
  CHECK(r.post({"nobody@example.com"}, {}));
  REQUIRE(r.wait([](const notify_counters& n) { return n.email.failed == 1; }));
  CHECK(r.counters().email.retried == 0);
  CHECK(smtp.messages().empty());
}

namespace {

/// The test CA and a server certificate for 127.0.0.1 signed by it.
struct smtp_pki {
  test::temp_dir dir{"balctl-smtp-pki"};
  test::test_pki pki = test::make_test_pki(dir.file(""));
  smtp_pki() { REQUIRE(pki.error.empty()); }
  test::smtp_server_options tls(const std::string& mode) const {
    test::smtp_server_options o;
    o.tls = mode;
    o.cert_file = pki.server_cert;
    o.key_file = pki.server_key;
    return o;
  }
};

} // namespace

TEST_CASE("the e-mail goes over TLS, after a required STARTTLS or from the first byte with "
          "smtps://, the server's certificate checked against smtp_ca_file",
          "[notify][smtp][tls]") {
  smtp_pki p;
  for (const char* mode : {"starttls", "smtps"}) {
    CAPTURE(mode);
    test::smtp_server smtp(p.tls(mode));
    auto c = fast_config();
    c.smtp_url = smtp.url();
    c.smtp_starttls = std::string(mode) == "starttls";
    CHECK_THAT(c.smtp_url, Catch::StartsWith(c.smtp_starttls ? "smtp://" : "smtps://"));
    c.smtp_ca_file = p.pki.ca_cert;
    rig r(c);
    CHECK(r.post({"ops@example.com"}, {}));
    REQUIRE(r.wait([](const notify_counters& n) { return n.email.sent == 1; }));
    auto msgs = smtp.messages();
    REQUIRE(msgs.size() == 1);
    CHECK_THAT(msgs[0].tls, Catch::StartsWith("TLSv1."));
  }
}

TEST_CASE("with smtp_starttls an alert never goes in clear text: a server without STARTTLS, "
          "or with a certificate the CA did not sign, gets nothing and the e-mail is retried",
          "[notify][smtp][tls]") {
  smtp_pki p;
  test::smtp_server plain;
  test::smtp_server untrusted(p.tls("starttls"));
  for (auto* server : {&plain, &untrusted}) {
    auto c = fast_config();
    c.smtp_url = server->url();
    c.smtp_starttls = true;
    // The untrusted case: the system trust store, which does not hold the
    // test CA.
    c.smtp_ca_file = server == &plain ? p.pki.ca_cert : "";
    rig r(c);
    CHECK(r.post({"ops@example.com"}, {}));
    REQUIRE(r.wait([](const notify_counters& n) { return n.email.retried >= 2; }));
    CHECK(r.counters().email.sent == 0);
    CHECK(server->messages().empty());
  }
}

TEST_CASE("SMTP AUTH logs in with the configured user and password", "[notify][smtp]") {
  test::smtp_server_options o;
  o.auth = "alerts:s3cret";
  test::smtp_server smtp(o);
  auto c = fast_config();
  c.smtp_url = smtp.url();
  c.smtp_username = "alerts";
  c.smtp_password = "s3cret";
  rig r(c);
  CHECK(r.post({"ops@example.com"}, {}));
  REQUIRE(r.wait([](const notify_counters& n) { return n.email.sent == 1; }));
  auto msgs = smtp.messages();
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].login == "alerts");
}

TEST_CASE("a webhook gets the alert as JSON, signed with the configured secret",
          "[notify][webhook]") {
  receiver hook;
  auto c = fast_config();
  c.webhook_secret = "hook-secret";
  rig rg(c);
  auto a = make_alert("member_down/linux-fleet/7");
  CHECK(rg.post({}, {hook.url("/a"), hook.url("/b")}, a));
  REQUIRE(rg.wait([](const notify_counters& n) { return n.webhook.sent == 2; }));
  REQUIRE(hook.count() == 2);
  auto r = hook.at(0);
  CHECK(r.method == "POST");
  REQUIRE(r.header("content-type") != nullptr);
  CHECK(*r.header("content-type") == "application/json");
  auto j = nlohmann::json::parse(r.body);
  CHECK(j["kind"] == "member_down");
  CHECK(j["key"] == "member_down/linux-fleet/7");
  CHECK(j["pool"] == "linux-fleet");
  CHECK(j["member"] == 7);
  CHECK(j["subject"] == a.subject);
  CHECK(j["text"] == a.text);
  CHECK(j["at_ms"] == a.at_ms);
  REQUIRE(r.header("x-balctl-signature") != nullptr);
  CHECK(*r.header("x-balctl-signature") == "sha256=" + hmac_hex("hook-secret", r.body));
  CHECK(hook.at(0).path != hook.at(1).path); // one delivery per URL
}

TEST_CASE("a webhook without a secret is not signed", "[notify][webhook]") {
  receiver hook;
  rig r;
  CHECK(r.post({}, {hook.url()}));
  REQUIRE(r.wait([](const notify_counters& n) { return n.webhook.sent == 1; }));
  CHECK(hook.at(0).header("x-balctl-signature") == nullptr);
}

TEST_CASE("a webhook answering 500 twice then 200 gets the alert once, after two retries",
          "[notify][webhook]") {
  receiver hook;
  hook.statuses = {500, 500, 200};
  rig r;
  CHECK(r.post({}, {hook.url()}));
  REQUIRE(r.wait([](const notify_counters& n) { return n.webhook.sent == 1; }));
  auto n = r.counters();
  CHECK(n.webhook.retried == 2);
  CHECK(n.webhook.failed == 0);
  CHECK(hook.count() == 3);
  CHECK(hook.at(0).body == hook.at(2).body); // the same alert each time
}

TEST_CASE("a webhook answering 400 fails for good at once", "[notify][webhook]") {
  receiver hook;
  hook.statuses = {400};
  rig r;
  CHECK(r.post({}, {hook.url()}));
  REQUIRE(r.wait([](const notify_counters& n) { return n.webhook.failed == 1; }));
  auto n = r.counters();
  CHECK(n.webhook.retried == 0);
  CHECK(n.webhook.sent == 0);
  CHECK(hook.count() == 1);
}

TEST_CASE("the same key five times within the window goes out once, and after the window the "
          "next one says how many were suppressed",
          "[notify][webhook]") {
  receiver hook;
  auto c = fast_config();
  c.dedup_window_s = 900;
  rig r(c);
  auto a = make_alert("member_down/linux-fleet/7");
  a.webhooks = {hook.url()};
  CHECK(r.svc->post(a));
  for (int i = 0; i < 4; ++i) {
    r.t.advance(60'000);
    CHECK_FALSE(r.svc->post(a));
  }
  REQUIRE(r.wait([](const notify_counters& n) { return n.webhook.sent == 1; }));
  CHECK(r.counters().suppressed == 4);
  CHECK(hook.count() == 1);
  r.t.set(1'700'000'000'000 + 900'000);
  CHECK(r.svc->post(a));
  REQUIRE(r.wait([](const notify_counters& n) { return n.webhook.sent == 2; }));
  auto text = nlohmann::json::parse(hook.at(1).body)["text"].get<std::string>();
  CHECK(text == a.text + "\n\n(4 similar alerts suppressed since 2023-11-14T22:13:20Z)");
  auto n = r.counters();
  CHECK(n.posted == 6);
  CHECK(n.suppressed == 4);
}

TEST_CASE("a full queue drops and counts alerts, and post never blocks", "[notify][webhook]") {
  receiver hook;
  manual_clock t;
  auto c = fast_config();
  c.max_queue = 5;
  notify_service_impl svc(c, t);
  auto begin = std::chrono::steady_clock::now();
  int queued = 0;
  for (int i = 0; i < 8; ++i) {
    auto a = make_alert("k" + std::to_string(i));
    a.webhooks = {hook.url()};
    queued += svc.post(a) ? 1 : 0;
  }
  CHECK(std::chrono::steady_clock::now() - begin < std::chrono::seconds(1));
  CHECK(queued == 5);
  CHECK(svc.counters().dropped == 3);
  // A dropped alert never started its window: the key goes out next time.
  auto again = make_alert("k7");
  again.webhooks = {hook.url()};
  CHECK_FALSE(svc.post(again)); // still full
  REQUIRE(svc.start().empty());
  REQUIRE(wait_until([&] { return svc.counters().webhook.sent == 5; }, 10'000));
  CHECK(svc.post(again));
  REQUIRE(wait_until([&] { return svc.counters().webhook.sent == 6; }, 10'000));
  CHECK(svc.counters().dropped == 4);
}

TEST_CASE("stopping abandons what is waiting, counts it, and refuses later alerts",
          "[notify][webhook]") {
  test::smtp_server smtp;
  smtp.stop(); // every attempt fails: the delivery stays in the retry queue
  auto c = fast_config();
  c.smtp_url = smtp.url();
  rig r(c);
  CHECK(r.post({"ops@example.com"}, {}));
  REQUIRE(r.wait([](const notify_counters& n) { return n.email.retried >= 1; }));
  r.svc->stop();
  CHECK(r.counters().abandoned == 1);
  CHECK_FALSE(r.svc->post(make_alert("other")));
  CHECK(r.counters().dropped == 1);
  r.svc->stop(); // idempotent
}

TEST_CASE("an e-mail alert without smtp_url configured fails and is counted",
          "[notify][smtp]") {
  rig r;
  CHECK(r.post({"ops@example.com"}, {}));
  REQUIRE(r.wait([](const notify_counters& n) { return n.email.failed == 1; }));
  CHECK(r.counters().email.retried == 0);
}
