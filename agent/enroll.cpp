#include "agent/enroll.hpp"

#include <chrono>
#include <random>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "agent/agent_api.hpp"
#include "agent/backoff.hpp"
#include "engine/log.hpp"
#include "transport/listen_address.hpp"

namespace balctl::agent {

namespace {

using json = nlohmann::json;

// Retry-After as delta-seconds (what the engine sends). An HTTP-date or
// anything else falls back to the back-off (0); a huge value is capped so
// the conversion to ms cannot overflow.
std::int64_t parse_retry_after_ms(const std::string& value) {
  auto first = value.find_first_not_of(" \t");
  if (first == std::string::npos) {
    return 0;
  }
  auto last = value.find_last_not_of(" \t");
  auto digits = value.substr(first, last - first + 1);
  if (digits.find_first_not_of("0123456789") != std::string::npos) {
    return 0;
  }
  if (digits.size() > 9) {
    return std::int64_t{999'999'999} * 1000;
  }
  return std::stoll(digits) * 1000;
}

// The API may echo what it was sent (a proxy's error page, say): the
// secret must not reach the operator's terminal or the logs through it.
std::string scrub(std::string text, const std::string& secret) {
  if (secret.empty()) {
    return text;
  }
  for (auto at = text.find(secret); at != std::string::npos;
       at = text.find(secret, at + 8)) {
    text.replace(at, secret.size(), "<secret>");
  }
  return text;
}

// The 200 answer as state; throws std::runtime_error naming the field.
agent_state parse_grant(const json& j, const enroll_request& req, const std::string& base) {
  if (!j.is_object()) {
    throw std::runtime_error("not a JSON object");
  }
  auto text = [&](const char* field, bool required) -> std::string {
    auto it = j.find(field);
    if (it == j.end() || it->is_null()) {
      if (required) {
        throw std::runtime_error(std::string(field) + ": missing");
      }
      return {};
    }
    if (!it->is_string()) {
      throw std::runtime_error(std::string(field) + ": must be a string");
    }
    return it->get<std::string>();
  };
  auto endpoint = [&](const char* field, const std::string& given) {
    auto resolved = resolve_endpoint_host(given, base);
    std::string host;
    int port = 0;
    if (!split_listen(resolved, host, port) || host.empty() || port == 0) {
      throw std::runtime_error(std::string(field) + ": must be host:port (got '" + given + "')");
    }
    return resolved;
  };
  agent_state s;
  auto m = j.find("member_id");
  if (m == j.end()) {
    throw std::runtime_error("member_id: missing");
  }
  if (!m->is_number_unsigned() || m->get<std::uint64_t>() == 0) {
    throw std::runtime_error("member_id: must be a positive integer");
  }
  s.member = m->get<std::uint64_t>();
  s.pool = text("pool", false);
  s.hostname = req.hostname;
  // Never quote the key: it authenticates every heartbeat.
  if (!protocol::key_from_hex(text("key", true), s.key)) {
    throw std::runtime_error("key: must be 64 hex characters");
  }
  s.api_base = base;
  s.heartbeat_udp = endpoint("heartbeat_udp", text("heartbeat_udp", true));
  if (auto tls = text("heartbeat_tls", false); !tls.empty()) {
    s.heartbeat_tls = endpoint("heartbeat_tls", tls);
  }
  if (auto it = j.find("interval_s"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer()) {
      throw std::runtime_error("interval_s: must be an integer");
    }
    // Out of the agent's range: its default rather than a refusal.
    auto iv = it->get<std::int64_t>();
    s.interval_s = iv >= 1 && iv <= 60 ? static_cast<int>(iv) : 2;
  }
  s.transport = req.transport;
  s.ca_file = req.ca_file;
  s.tls_server_name = req.tls_server_name;
  return s;
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

namespace {

enroll_outcome enroll_unscrubbed(const enroll_request& req, cli::http_transport& transport,
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
        out.state = parse_grant(json::parse(reply.body), req, base);
        out.ok = true;
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
      why = "engine answered " + std::to_string(reply.status) + ": " + api_error_text(reply.body);
      retry_after_ms = parse_retry_after_ms(reply.retry_after);
    } else {
      // 4xx: the secret, hostname or source was refused; retrying the same
      // request cannot change that (and counts against the rate limit).
      out.error = "enrolment refused (HTTP " + std::to_string(reply.status) +
                  "): " + api_error_text(reply.body);
      return out;
    }
    auto delay = std::max(delays.next(uniform), retry_after_ms);
    if (waited_ms + delay > req.give_up_after_ms) {
      out.error = why + "; gave up after " + std::to_string(waited_ms / 1000) + " s";
      return out;
    }
    log::warn("agent_enrol_retry", {{"api_base", base},
                                    {"error", scrub(why, req.secret)},
                                    {"retry_in_ms", std::to_string(delay)}});
    sleep(delay);
    waited_ms += delay;
  }
}

} // namespace

enroll_outcome enroll(const enroll_request& req, cli::http_transport& transport,
                      const sleep_fn& sleep) {
  auto out = enroll_unscrubbed(req, transport, sleep);
  out.error = scrub(std::move(out.error), req.secret);
  return out;
}

} // namespace balctl::agent
