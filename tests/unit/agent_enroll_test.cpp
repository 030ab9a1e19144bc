#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "agent/enroll.hpp"
#include "cli/client.hpp"
#include "engine/log.hpp"
#include "transport/protocol.hpp"

using namespace balctl;
using namespace balctl::agent;
using Catch::Matchers::Contains;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string secret = "enrol-s3cr3t-9f8e7d6c5b4a";
const std::string key_hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// Answers from a script, in order (the last one repeats), and records
/// every call. No sockets.
class fake_http final : public cli::http_transport {
 public:
  explicit fake_http(std::vector<cli::http_reply> script) : script_(std::move(script)) {}
  cli::http_reply perform(const cli::http_call& call) override {
    calls.push_back(call);
    REQUIRE_FALSE(script_.empty());
    auto i = std::min(next_, script_.size() - 1);
    ++next_;
    return script_[i];
  }
  std::vector<cli::http_call> calls;

 private:
  std::vector<cli::http_reply> script_;
  std::size_t next_ = 0;
};

/// Records the delays instead of sleeping.
struct fake_sleep {
  std::vector<std::int64_t> delays;
  sleep_fn fn() {
    return [this](std::int64_t ms) { delays.push_back(ms); };
  }
  std::int64_t total() const { return std::accumulate(delays.begin(), delays.end(), std::int64_t{0}); }
};

cli::http_reply answered(long status, const std::string& body, const std::string& retry_after = "") {
  cli::http_reply r;
  r.what = cli::http_reply::kind::answered;
  r.status = status;
  r.body = body;
  r.retry_after = retry_after;
  return r;
}

cli::http_reply unreachable(const std::string& why = "Failed to connect to engine.example port 7947") {
  cli::http_reply r;
  r.what = cli::http_reply::kind::unreachable;
  r.error = why;
  return r;
}

std::string api_error_body(long status, const std::string& code, const std::string& message) {
  return json{{"error", {{"status", status}, {"code", code}, {"field", nullptr}, {"message", message}}}}
    .dump();
}

json grant() {
  return json{{"member_id", 42},
              {"pool", "web"},
              {"key", key_hex},
              {"heartbeat_udp", "0.0.0.0:7946"},
              {"heartbeat_tls", "0.0.0.0:7948"},
              {"interval_s", 5}};
}

enroll_request request() {
  enroll_request r;
  r.secret = secret;
  r.hostname = "db-1.example";
  r.api_base = "https://engine.example:7947";
  r.ca_file = "/etc/balctl/ca.pem";
  r.transport = "tls";
  r.tls_server_name = "hb.engine.example";
  r.give_up_after_ms = 300'000;
  return r;
}

/// Sets the log level for the scope and restores the one before.
class log_level_guard {
 public:
  explicit log_level_guard(log::level l) {
    for (auto was : {log::level::debug, log::level::info, log::level::warn, log::level::error}) {
      if (log::enabled(was)) {
        old_ = was;
        break;
      }
    }
    log::set_level(l);
  }
  ~log_level_guard() { log::set_level(old_); }
  log_level_guard(const log_level_guard&) = delete;
  log_level_guard& operator=(const log_level_guard&) = delete;

 private:
  log::level old_ = log::level::info;
};

/// Quiets the retry warnings (stderr) for the scope.
struct quiet_logs : log_level_guard {
  quiet_logs() : log_level_guard(log::level::error) {}
};

/// Captures what is written to stderr (fd 2) for the scope.
class stderr_capture {
 public:
  stderr_capture() {
    std::string tmpl = (fs::temp_directory_path() / "balctl-agent-enrol-XXXXXX").string();
    int fd = ::mkstemp(tmpl.data());
    REQUIRE(fd >= 0);
    path_ = tmpl;
    std::fflush(stderr);
    saved_ = ::dup(2);
    REQUIRE(saved_ >= 0);
    REQUIRE(::dup2(fd, 2) >= 0);
    ::close(fd);
  }
  ~stderr_capture() {
    restore();
    std::error_code ec;
    fs::remove(path_, ec);
  }
  stderr_capture(const stderr_capture&) = delete;
  stderr_capture& operator=(const stderr_capture&) = delete;
  /// Restores stderr and returns what was written.
  std::string text() {
    restore();
    std::ifstream in(path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  void restore() {
    if (saved_ >= 0) {
      std::fflush(stderr);
      ::dup2(saved_, 2);
      ::close(saved_);
      saved_ = -1;
    }
  }
  std::string path_;
  int saved_ = -1;
};

} // namespace

TEST_CASE("a successful enrolment fills the state from the answer and the request", "[agent][enrol][unit]") {
  fake_http http({answered(200, grant().dump())});
  fake_sleep sleeps;
  auto out = enroll(request(), http, sleeps.fn());
  INFO(out.error);
  REQUIRE(out.ok);
  CHECK(out.error.empty());
  const auto& s = out.state;
  CHECK(s.member == 42);
  CHECK(s.pool == "web");
  CHECK(protocol::key_to_hex(s.key) == key_hex);
  // 0.0.0.0 in the answer means "the host you reached me at".
  CHECK(s.heartbeat_udp == "engine.example:7946");
  CHECK(s.heartbeat_tls == "engine.example:7948");
  CHECK(s.interval_s == 5);
  // From the request.
  CHECK(s.hostname == "db-1.example");
  CHECK(s.api_base == "https://engine.example:7947");
  CHECK(s.transport == "tls");
  CHECK(s.ca_file == "/etc/balctl/ca.pem");
  CHECK(s.tls_server_name == "hb.engine.example");
  CHECK(s.seq_reserved == 0);
  CHECK(http.calls.size() == 1);
  CHECK(sleeps.delays.empty());
}

TEST_CASE("the enrol request is a POST of hostname and secret to <api-base>/v1/enroll", "[agent][enrol][unit]") {
  auto base = GENERATE(as<std::string>{}, "https://engine.example:7947", "https://engine.example:7947/",
                       "https://engine.example:7947//");
  CAPTURE(base);
  auto req = request();
  req.api_base = base;
  fake_http http({answered(200, grant().dump())});
  fake_sleep sleeps;
  auto out = enroll(req, http, sleeps.fn());
  REQUIRE(out.ok);
  REQUIRE(http.calls.size() == 1);
  const auto& call = http.calls[0];
  CHECK(call.method == "POST");
  CHECK(call.url == "https://engine.example:7947/v1/enroll");
  REQUIRE(call.body);
  CHECK(json::parse(*call.body) == json{{"hostname", "db-1.example"}, {"secret", secret}});
  CHECK(call.token.empty());
  CHECK(call.cacert == "/etc/balctl/ca.pem");
  CHECK_FALSE(call.insecure);
  CHECK(call.timeout_s > 0);
  // The state keeps the base without the trailing slash.
  CHECK(out.state.api_base == "https://engine.example:7947");
}

TEST_CASE("an answer without heartbeat_tls or interval_s takes no TLS endpoint and a 2 s interval",
          "[agent][enrol][unit]") {
  auto g = grant();
  g.erase("heartbeat_tls");
  g.erase("interval_s");
  g.erase("pool");
  g["heartbeat_udp"] = "192.0.2.7:7946";
  fake_http http({answered(200, g.dump())});
  fake_sleep sleeps;
  auto out = enroll(request(), http, sleeps.fn());
  REQUIRE(out.ok);
  CHECK(out.state.heartbeat_udp == "192.0.2.7:7946");
  CHECK(out.state.heartbeat_tls.empty());
  CHECK(out.state.interval_s == 2);
  CHECK(out.state.pool.empty());
}

TEST_CASE("an interval_s outside 1..60 in the answer becomes 2", "[agent][enrol][unit]") {
  auto iv = GENERATE(as<long long>{}, 0, -1, 61, 4294967298LL);
  CAPTURE(iv);
  auto g = grant();
  g["interval_s"] = iv;
  fake_http http({answered(200, g.dump())});
  fake_sleep sleeps;
  auto out = enroll(request(), http, sleeps.fn());
  REQUIRE(out.ok);
  CHECK(out.state.interval_s == 2);
}

TEST_CASE("an unreachable engine is retried with back-off until it answers", "[agent][enrol][unit]") {
  quiet_logs quiet;
  fake_http http({unreachable(), unreachable(), unreachable(), answered(200, grant().dump())});
  fake_sleep sleeps;
  auto out = enroll(request(), http, sleeps.fn());
  INFO(out.error);
  REQUIRE(out.ok);
  CHECK(http.calls.size() == 4);
  REQUIRE(sleeps.delays.size() == 3);
  // Back-off from 1 s, doubling, jittered within [ceiling/2, ceiling].
  CHECK(sleeps.delays[0] >= 500);
  CHECK(sleeps.delays[0] <= 1000);
  CHECK(sleeps.delays[1] >= 1000);
  CHECK(sleeps.delays[1] <= 2000);
  CHECK(sleeps.delays[2] >= 2000);
  CHECK(sleeps.delays[2] <= 4000);
  // Every retry is the same request.
  for (const auto& c : http.calls) {
    CHECK(c.url == http.calls[0].url);
    CHECK(c.body == http.calls[0].body);
  }
}

TEST_CASE("a busy or rate-limiting engine is retried, honouring Retry-After", "[agent][enrol][unit]") {
  quiet_logs quiet;
  auto [status, code] = GENERATE(table<long, std::string>({
    {503, "unavailable"}, {429, "rate_limited"}, {500, "internal"}}));
  CAPTURE(status);
  fake_http http({answered(status, api_error_body(status, code, "try later"), "7"),
                  answered(status, api_error_body(status, code, "try later"), "12"),
                  answered(200, grant().dump())});
  fake_sleep sleeps;
  auto out = enroll(request(), http, sleeps.fn());
  INFO(out.error);
  REQUIRE(out.ok);
  CHECK(http.calls.size() == 3);
  REQUIRE(sleeps.delays.size() == 2);
  CHECK(sleeps.delays[0] >= 7000);
  CHECK(sleeps.delays[1] >= 12'000);
}

TEST_CASE("a 503 without Retry-After is retried with back-off", "[agent][enrol][unit]") {
  quiet_logs quiet;
  auto retry_after = GENERATE(as<std::string>{}, "", "Wed, 21 Oct 2015 07:28:00 GMT", "soon", "-5");
  CAPTURE(retry_after);
  fake_http http({answered(503, "Service Unavailable", retry_after), answered(200, grant().dump())});
  fake_sleep sleeps;
  auto out = enroll(request(), http, sleeps.fn());
  REQUIRE(out.ok);
  REQUIRE(sleeps.delays.size() == 1);
  CHECK(sleeps.delays[0] >= 500);
  CHECK(sleeps.delays[0] <= 1000);
}

TEST_CASE("a Retry-After beyond the time left gives up instead of overflowing", "[agent][enrol][unit]") {
  // Regression (UBSan): "9223372036854775807" * 1000 overflowed.
  quiet_logs quiet;
  auto retry_after = GENERATE(as<std::string>{}, "301", "9223372036854775807", "99999999999999999999999");
  CAPTURE(retry_after);
  fake_http http({answered(429, api_error_body(429, "rate_limited", "too many"), retry_after)});
  fake_sleep sleeps;
  auto out = enroll(request(), http, sleeps.fn());
  CHECK_FALSE(out.ok);
  CHECK(sleeps.delays.empty());
  CHECK(http.calls.size() == 1);
  CHECK_THAT(out.error, Contains("gave up"));
  CHECK_THAT(out.error, Contains("429"));
}

TEST_CASE("a refused enrolment is not retried and carries the API's message and code", "[agent][enrol][unit]") {
  auto [status, code, message] = GENERATE(table<long, std::string, std::string>({
    {401, "enrollment_invalid", "unknown, used or superseded enrollment secret"},
    {403, "enrollment_hostname_mismatch", "hostname db-2 is not the member's (db-1.example)"},
    {403, "enrollment_source_not_allowed", "198.51.100.7 is not in the member's allowed_ips"},
    {422, "invalid_field", "secret: must be the enrollment secret from the install command"},
    {400, "invalid_json", "the body is not valid JSON (at byte 1)"},
    {404, "not_found", "no such route"},
  }));
  CAPTURE(status, code);
  fake_http http({answered(status, api_error_body(status, code, message)), answered(200, grant().dump())});
  fake_sleep sleeps;
  auto out = enroll(request(), http, sleeps.fn());
  CHECK_FALSE(out.ok);
  CHECK(http.calls.size() == 1);
  CHECK(sleeps.delays.empty());
  CHECK_THAT(out.error, Contains("HTTP " + std::to_string(status)));
  CHECK_THAT(out.error, Contains(message));
  CHECK_THAT(out.error, Contains(code));
}

TEST_CASE("a refusal whose body is not the API's error shape still says what came back", "[agent][enrol][unit]") {
  fake_http http({answered(403, "<html>Forbidden by proxy</html>")});
  fake_sleep sleeps;
  auto out = enroll(request(), http, sleeps.fn());
  CHECK_FALSE(out.ok);
  CHECK_THAT(out.error, Contains("HTTP 403"));
  CHECK_THAT(out.error, Contains("Forbidden by proxy"));
}

TEST_CASE("a certificate that does not verify is not retried and points at --ca-file", "[agent][enrol][unit]") {
  auto r = unreachable("SSL certificate problem: unable to get local issuer certificate");
  r.tls_verify_failed = true;
  fake_http http({r, answered(200, grant().dump())});
  fake_sleep sleeps;
  auto out = enroll(request(), http, sleeps.fn());
  CHECK_FALSE(out.ok);
  CHECK(http.calls.size() == 1);
  CHECK(sleeps.delays.empty());
  CHECK_THAT(out.error, Contains("--ca-file"));
  CHECK_THAT(out.error, Contains("unable to get local issuer certificate"));
}

TEST_CASE("a request that cannot be made on our side is not retried", "[agent][enrol][unit]") {
  cli::http_reply r;
  r.what = cli::http_reply::kind::failed;
  r.error = "curl_easy_init failed";
  fake_http http({r, answered(200, grant().dump())});
  fake_sleep sleeps;
  auto out = enroll(request(), http, sleeps.fn());
  CHECK_FALSE(out.ok);
  CHECK(http.calls.size() == 1);
  CHECK(sleeps.delays.empty());
  CHECK_THAT(out.error, Contains("curl_easy_init failed"));
}

TEST_CASE("enrolment gives up after give_up_after_ms and says so", "[agent][enrol][unit]") {
  quiet_logs quiet;
  auto give_up_ms = GENERATE(as<std::int64_t>{}, 10'000, 60'000, 300'000);
  CAPTURE(give_up_ms);
  auto req = request();
  req.give_up_after_ms = give_up_ms;
  fake_http http({unreachable()});
  fake_sleep sleeps;
  auto out = enroll(req, http, sleeps.fn());
  CHECK_FALSE(out.ok);
  CHECK_THAT(out.error, Contains("gave up after"));
  CHECK_THAT(out.error, Contains("unreachable"));
  CHECK_THAT(out.error, Contains("Failed to connect"));
  CHECK(sleeps.total() <= give_up_ms);
  // It did keep trying until close to the limit: the next delay (at most
  // the 30 s ceiling) would have passed it.
  CHECK(sleeps.total() + 30'000 > give_up_ms);
  CHECK(http.calls.size() == sleeps.delays.size() + 1);
  for (auto d : sleeps.delays) {
    CHECK(d >= 500);
    CHECK(d <= 30'000);
  }
}

TEST_CASE("enrolment with no time to retry tries once", "[agent][enrol][unit]") {
  quiet_logs quiet;
  auto req = request();
  req.give_up_after_ms = 0;
  fake_http http({unreachable()});
  fake_sleep sleeps;
  auto out = enroll(req, http, sleeps.fn());
  CHECK_FALSE(out.ok);
  CHECK(http.calls.size() == 1);
  CHECK(sleeps.delays.empty());
  CHECK_THAT(out.error, Contains("gave up after 0 s"));
}

TEST_CASE("a malformed 200 answer is a clear error, not retried", "[agent][enrol][unit]") {
  auto bad = [](const std::string& field, json value) {
    auto g = grant();
    if (value.is_discarded()) {
      g.erase(field);
    } else {
      g[field] = value;
    }
    return g.dump();
  };
  const json drop = json::value_t::discarded;
  auto [body, says] = GENERATE_REF(table<std::string, std::string>({
    {"not json", "not understood"},
    {"", "not understood"},
    {"[]", "not a JSON object"},
    {"null", "not a JSON object"},
    {bad("member_id", drop), "member_id: missing"},
    {bad("member_id", "42"), "member_id: must be a positive integer"},
    {bad("member_id", 0), "member_id: must be a positive integer"},
    {bad("member_id", -3), "member_id: must be a positive integer"},
    {bad("member_id", 4.5), "member_id: must be a positive integer"},
    {bad("key", drop), "key: missing"},
    {bad("key", 7), "key: must be a string"},
    {bad("key", "abc"), "key: must be 64 hex characters"},
    {bad("key", "zz" + key_hex.substr(2)), "key: must be 64 hex characters"},
    {bad("key", key_hex + "00"), "key: must be 64 hex characters"},
    {bad("heartbeat_udp", drop), "heartbeat_udp: missing"},
    {bad("heartbeat_udp", 7946), "heartbeat_udp: must be a string"},
    {bad("heartbeat_udp", "nonsense"), "heartbeat_udp: must be host:port"},
    {bad("heartbeat_udp", "engine.example:99999"), "heartbeat_udp: must be host:port"},
    {bad("heartbeat_udp", "engine.example:0"), "heartbeat_udp: must be host:port"},
    {bad("heartbeat_tls", "nonsense"), "heartbeat_tls: must be host:port"},
    {bad("heartbeat_tls", false), "heartbeat_tls: must be a string"},
    {bad("pool", 5), "pool: must be a string"},
    {bad("interval_s", "2"), "interval_s: must be an integer"},
    {bad("interval_s", 2.5), "interval_s: must be an integer"},
  }));
  CAPTURE(body);
  fake_http http({answered(200, body), answered(200, grant().dump())});
  fake_sleep sleeps;
  auto out = enroll(request(), http, sleeps.fn());
  CHECK_FALSE(out.ok);
  CHECK(http.calls.size() == 1);
  CHECK(sleeps.delays.empty());
  CHECK_THAT(out.error, Contains("enrolment answer is not understood"));
  CHECK_THAT(out.error, Contains(says));
  // The key is never quoted back.
  CHECK_THAT(out.error, !Contains(key_hex.substr(4, 40)));
}

TEST_CASE("the secret never appears in any error text or log line", "[agent][enrol][unit]") {
  // An engine (or a proxy in front of it) may echo the request: the error
  // must still not carry the secret.
  auto echo = "{\"hostname\":\"db-1.example\",\"secret\":\"" + secret + "\"}";
  auto with_secret = "secret " + secret + " is not valid (" + secret + ")";
  auto verify = unreachable("certificate for " + secret);
  verify.tls_verify_failed = true;
  cli::http_reply failed;
  failed.what = cli::http_reply::kind::failed;
  failed.error = "cannot send " + secret;
  auto [name, script] = GENERATE_REF(table<std::string, std::vector<cli::http_reply>>({
    {"401 with the API's error", {answered(401, api_error_body(401, "enrollment_invalid", with_secret))}},
    {"422 echoing the body", {answered(422, echo)}},
    {"503 echoing, retried, then giving up", {answered(503, echo)}},
    {"503 echoing with a long Retry-After", {answered(503, echo, "200")}},
    {"unreachable, then giving up", {unreachable("connect " + secret)}},
    {"certificate failure", {verify}},
    {"our side failed", {failed}},
    {"200 that is not JSON", {answered(200, "oops " + secret)}},
    {"200 with a bad field", {answered(200, json{{"member_id", secret}}.dump())}},
    {"200 with a bad endpoint", {answered(200, [&] {
       auto g = grant();
       g["heartbeat_udp"] = secret;
       return g.dump();
     }())}},
  }));
  CAPTURE(name);
  // One retry fits in 1 s (the first delay is 0.5..1 s), so the retry
  // warning is logged once before giving up.
  log_level_guard warnings(log::level::warn);
  auto req = request();
  req.give_up_after_ms = 1000;
  fake_http http(script);
  fake_sleep sleeps;
  enroll_outcome out;
  std::string logged;
  {
    stderr_capture capture;
    out = enroll(req, http, sleeps.fn());
    logged = capture.text();
  }
  CHECK_FALSE(out.ok);
  CHECK_FALSE(out.error.empty());
  CHECK_THAT(out.error, !Contains(secret));
  CHECK_THAT(logged, !Contains(secret));
  if (sleeps.delays.size() == 1) {
    CHECK_THAT(logged, Contains("agent_enrol_retry")); // the log was looked at
  }
}

TEST_CASE("resolve_endpoint_host puts the API's host in place of an unspecified one", "[agent][enrol][unit]") {
  auto [endpoint, api_base, want] = GENERATE(table<std::string, std::string, std::string>({
    {"0.0.0.0:7946", "https://engine.example:7947", "engine.example:7946"},
    {"[::]:7946", "https://engine.example:7947", "engine.example:7946"},
    {":7946", "https://engine.example:7947", "engine.example:7946"},
    {"0.0.0.0:7946", "https://engine.example", "engine.example:7946"},
    {"0.0.0.0:7946", "http://engine.example:8080/prefix/", "engine.example:7946"},
    {"0.0.0.0:7946", "https://agent@engine.example:7947", "engine.example:7946"},
    {"0.0.0.0:7946", "https://[2001:db8::1]:7947", "[2001:db8::1]:7946"},
    {"[::]:7946", "https://[2001:db8::1]/", "[2001:db8::1]:7946"},
    {"0.0.0.0:7946", "http://192.0.2.1:7947", "192.0.2.1:7946"},
  }));
  CAPTURE(endpoint, api_base);
  CHECK(resolve_endpoint_host(endpoint, api_base) == want);
}

TEST_CASE("resolve_endpoint_host keeps a host the engine named", "[agent][enrol][unit]") {
  auto [endpoint, want] = GENERATE(table<std::string, std::string>({
    {"engine.example:7946", "engine.example:7946"},
    {"hb.engine.example:7946", "hb.engine.example:7946"},
    {"192.0.2.10:7946", "192.0.2.10:7946"},
    {"[2001:db8::5]:7946", "[2001:db8::5]:7946"},
    {"", ""},
    {"garbage", "garbage"},
  }));
  CAPTURE(endpoint);
  CHECK(resolve_endpoint_host(endpoint, "https://other.example:7947") == want);
}

TEST_CASE("url_host is the host of an http(s) URL", "[agent][enrol][unit]") {
  auto [url, want] = GENERATE(table<std::string, std::string>({
    {"https://engine.example:7947/v1", "engine.example"},
    {"http://engine.example", "engine.example"},
    {"https://engine.example/", "engine.example"},
    {"https://[2001:db8::1]:7947", "2001:db8::1"},
    {"https://[2001:db8::1]", "2001:db8::1"},
    {"https://user:pw@engine.example:7947/", "engine.example"},
    {"engine.example:7947", ""},
    {"https://[2001:db8::1", ""},
    {"", ""},
  }));
  CAPTURE(url);
  CHECK(url_host(url) == want);
}
