#include "agent/agent_api.hpp"

#include <chrono>

#include <nlohmann/json.hpp>

namespace balctl::agent {

namespace {

std::int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// A chunk is at most a few MiB; an API answer a few KiB. Generous, so a
// slow link does not fail a transfer that is progressing.
constexpr long request_timeout_s = 120;

} // namespace

agent_api::agent_api(std::string api_base, member_id member,
                     const protocol::key& heartbeat_key, std::string ca_file,
                     cli::http_transport& transport)
  : base_(std::move(api_base)),
    member_(member),
    key_(agent_auth::derive_api_key(heartbeat_key)),
    ca_file_(std::move(ca_file)),
    transport_(transport) {
  while (!base_.empty() && base_.back() == '/') {
    base_.pop_back();
  }
}

cli::http_reply agent_api::call(const std::string& method, const std::string& target,
                                const std::string& body,
                                const std::atomic<bool>* abort) const {
  cli::http_call c;
  c.method = method;
  c.url = base_ + target;
  if (!body.empty()) {
    c.body = body;
  }
  c.timeout_s = request_timeout_s;
  c.cacert = ca_file_;
  c.abort = abort;
  auto ts = std::to_string(wall_ms());
  c.headers = {
    std::string(agent_auth::member_header) + ": " + std::to_string(member_),
    std::string(agent_auth::timestamp_header) + ": " + ts,
    std::string(agent_auth::signature_header) + ": " +
      agent_auth::sign(key_, method, target, ts, body),
  };
  return transport_.perform(c);
}

cli::http_reply agent_api::fetch(const std::string& method, const std::string& url,
                                 const std::string* body,
                                 const std::atomic<bool>* abort) const {
  cli::http_call c;
  c.method = method;
  c.url = url;
  if (body != nullptr) {
    c.body = *body;
    c.content_type = "application/octet-stream";
  }
  c.timeout_s = request_timeout_s;
  c.cacert = ca_file_;
  c.abort = abort;
  return transport_.perform(c);
}

std::string api_error_text(const std::string& body) {
  try {
    auto j = nlohmann::json::parse(body);
    const auto& e = j.at("error");
    return e.at("message").get<std::string>() + " (" + e.at("code").get<std::string>() + ")";
  } catch (const std::exception&) {
    return body.substr(0, 200);
  }
}

std::string describe(const cli::http_reply& r) {
  if (r.what == cli::http_reply::kind::answered) {
    return "HTTP " + std::to_string(r.status) + ": " + api_error_text(r.body);
  }
  return r.error;
}

} // namespace balctl::agent
