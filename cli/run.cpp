#include "cli/run.hpp"

#include "cli/render.hpp"

namespace balctl::cli {

namespace {

using json = nlohmann::json;

/// The server's body re-indented, keys in the server's order.
std::string pretty(const std::string& body) {
  auto j = nlohmann::ordered_json::parse(body, nullptr, false);
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

outcome finish(outcome o, const std::string& token) {
  o.out = redact(std::move(o.out), token);
  o.err = redact(std::move(o.err), token);
  return o;
}

} // namespace

std::string render_usage_error(const parse_result& r) {
  return "balctl: " + r.message + "\n" + r.usage + "Run 'balctl --help' for all commands.\n";
}

outcome run(const invocation& inv, const connection& conn, http_transport& transport,
            std::int64_t now_ms) {
  outcome o;
  http_call call;
  call.method = inv.request.method;
  call.url = conn.server + inv.request.path;
  if (inv.request.body) {
    // parse_args only builds bodies from valid UTF-8, so this cannot throw.
    call.body = inv.request.body->dump(-1, ' ', false, json::error_handler_t::replace);
  }
  call.token = conn.token;
  call.timeout_s = conn.timeout_s;
  call.cacert = conn.cacert;
  call.insecure = conn.insecure;

  if (conn.verbose) {
    o.err += "> " + call.method + " " + call.url + "\n";
    o.err += "> server from " + conn.server_from + ", token from " + conn.token_from + "\n";
    if (!call.token.empty()) {
      o.err += "> Authorization: Bearer ***\n";
    }
    if (call.body) {
      o.err += "> " + *call.body + "\n";
    }
  }

  http_reply reply = transport.perform(call);
  if (reply.what == http_reply::kind::unreachable) {
    o.exit_code = exit_unreachable;
    o.err += "balctl: cannot reach " + conn.server + ": " + reply.error + "\n";
    return finish(std::move(o), conn.token);
  }
  if (reply.what == http_reply::kind::failed) {
    o.exit_code = exit_unexpected;
    o.err += "balctl: " + reply.error + "\n";
    return finish(std::move(o), conn.token);
  }
  if (conn.verbose) {
    o.err += "< HTTP " + std::to_string(reply.status) + "\n";
  }

  o.exit_code = exit_code_for_status(reply.status);
  bool empty_body = reply.body.find_first_not_of(" \t\r\n") == std::string::npos;
  json body = empty_body ? json() : json::parse(reply.body, nullptr, false);
  bool body_is_json = !empty_body && !body.is_discarded();

  if (o.exit_code != exit_ok) {
    // Scripts using --json get the error body too, on stdout.
    if (inv.global.json && body_is_json) {
      o.out = pretty(reply.body);
    }
    o.err += render_api_error(reply.status, reply.body, reply.retry_after);
    return finish(std::move(o), conn.token);
  }
  if (!empty_body && !body_is_json) {
    o.exit_code = exit_unexpected;
    o.err += "balctl: HTTP " + std::to_string(reply.status) + " with a body that is not JSON\n";
    return finish(std::move(o), conn.token);
  }
  if (inv.global.json) {
    o.out = empty_body ? "" : pretty(reply.body);
    return finish(std::move(o), conn.token);
  }
  bool no_body_expected =
    inv.output == output_kind::pool_deleted || inv.output == output_kind::member_removed;
  if (!no_body_expected && !body.is_object()) {
    o.exit_code = exit_unexpected;
    o.err += "balctl: HTTP " + std::to_string(reply.status) +
             (empty_body ? " with no body" : " with a body that is not a JSON object") +
             " for " + inv.command + "\n";
    return finish(std::move(o), conn.token);
  }
  o.out = render_success(inv, body, now_ms);
  return finish(std::move(o), conn.token);
}

} // namespace balctl::cli
