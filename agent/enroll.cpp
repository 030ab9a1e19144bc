#include "agent/enroll.hpp"

#include <chrono>
#include <random>

#include <nlohmann/json.hpp>

#include "agent/backoff.hpp"
#include "engine/log.hpp"
#include "transport/listen_address.hpp"

namespace balctl::agent {

namespace {

using json = nlohmann::json;

std::string api_error(const std::string& body) {
  try {
    auto j = json::parse(body);
    const auto& e = j.at("error");
    std::string msg = e.at("message").get<std::string>();
    std::string code = e.at("code").get<std::string>();
    return msg + " (" + code + ")";
  } catch (const std::exception&) {
    return body.substr(0, 200);
  }
}

} // namespace

std::string url_host(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) {
    return {};
  }
  auto rest = url.substr(scheme + 3);
  rest = rest.substr(0, rest.find('/'));
  auto at = rest.rfind('@');
  if (at != std::string::npos) {
    rest = rest.substr(at + 1);
  }
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    return close == std::string::npos ? std::string() : rest.substr(1, close - 1);
  }
  return rest.substr(0, rest.find(':'));
}

std::string resolve_endpoint_host(const std::string& endpoint,
                                  const std::string& api_base) {
  std::string host;
  int port = 0;
  if (endpoint.empty() || !split_listen(endpoint, host, port)) {
    // A DNS name (split_listen accepts any host text) or garbage: as given.
    return endpoint;
  }
  if (host.empty() || host == "0.0.0.0" || host == "::") {
    host = url_host(api_base);
  }
  if (host.find(':') != std::string::npos) {
    host = "[" + host + "]";
  }
  return host + ":" + std::to_string(port);
}

enroll_outcome enroll(const enroll_request& req, cli::http_transport& transport,
                      const sleep_fn& sleep) {
  enroll_outcome out;
  auto base = req.api_base;
  while (!base.empty() && base.back() == '/') {
    base.pop_back();
  }
  cli::http_call call;
  call.method = "POST";
  call.url = base + "/v1/enroll";
  call.body = json{{"hostname", req.hostname}, {"secret", req.secret}}.dump();
  call.timeout_s = 20;
  call.cacert = req.ca_file;
  std::mt19937_64 rng(std::random_device{}());
  auto uniform = [&](std::uint64_t n) { return n == 0 ? 0 : rng() % n; };
  backoff delays(1000, 30'000);
  std::int64_t waited_ms = 0;
  for (;;) {
    auto reply = transport.perform(call);
    std::string why;
    std::int64_t retry_after_ms = 0;
    if (reply.what == cli::http_reply::kind::answered && reply.status == 200) {
      try {
        auto j = json::parse(reply.body);
        agent_state s;
        s.member = j.at("member_id").get<std::uint64_t>();
        s.pool = j.value("pool", "");
        s.hostname = req.hostname;
        if (!protocol::key_from_hex(j.at("key").get<std::string>(), s.key)) {
          throw std::runtime_error("key is not 64 hex characters");
        }
        s.api_base = base;
        s.heartbeat_udp = resolve_endpoint_host(j.at("heartbeat_udp").get<std::string>(), base);
        s.heartbeat_tls = resolve_endpoint_host(j.value("heartbeat_tls", ""), base);
        s.interval_s = j.value("interval_s", 2);
        if (s.interval_s < 1 || s.interval_s > 60) {
          s.interval_s = 2;
        }
        s.transport = req.transport;
        s.ca_file = req.ca_file;
        s.tls_server_name = req.tls_server_name;
        out.ok = true;
        out.state = std::move(s);
        return out;
      } catch (const std::exception& e) {
        out.error = std::string("the engine's enrolment answer is not understood: ") + e.what();
        return out;
      }
    }
    if (reply.what == cli::http_reply::kind::failed) {
      out.error = "enrolment request could not be made: " + reply.error;
      return out;
    }
    if (reply.what == cli::http_reply::kind::unreachable) {
      if (reply.tls_verify_failed) {
        out.error = "the engine's TLS certificate did not verify (" + reply.error +
                    "); pass --ca-file with the CA that signed it";
        return out;
      }
      why = "engine unreachable: " + reply.error;
    } else if (reply.status == 429 || reply.status >= 500) {
      why = "engine answered " + std::to_string(reply.status) + ": " + api_error(reply.body);
      if (!reply.retry_after.empty()) {
        try {
          retry_after_ms = std::stoll(reply.retry_after) * 1000;
        } catch (const std::exception&) {
          retry_after_ms = 0;
        }
      }
    } else {
      // 4xx: the secret, hostname or source was refused; retrying the same
      // request cannot change that (and counts against the rate limit).
      out.error = "enrolment refused (HTTP " + std::to_string(reply.status) +
                  "): " + api_error(reply.body);
      return out;
    }
    auto delay = std::max(delays.next(uniform), retry_after_ms);
    if (waited_ms + delay > req.give_up_after_ms) {
      out.error = why + "; gave up after " + std::to_string(waited_ms / 1000) + " s";
      return out;
    }
    log::warn("agent_enrol_retry", {{"api_base", base},
                                    {"error", why},
                                    {"retry_in_ms", std::to_string(delay)}});
    sleep(delay);
    waited_ms += delay;
  }
}

} // namespace balctl::agent
