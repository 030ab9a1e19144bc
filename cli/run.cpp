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

/// The token and the DNS secret out of everything printed: as they are, and
/// as JSON writes them (a secret with '"' or '\\' is escaped in a body).
outcome finish(outcome o, const std::string& token, const std::string& secret = "") {
  for (const std::string& s : {token, secret}) {
    if (s.empty()) {
      continue;
    }
    std::string escaped = json(s).dump(-1, ' ', false, json::error_handler_t::replace);
    escaped = escaped.substr(1, escaped.size() - 2);
    for (const std::string& form : {s, escaped}) {
      o.out = redact(std::move(o.out), form);
      o.err = redact(std::move(o.err), form);
    }
  }
  return o;
}

/// The first line of a secret file, trailing CR, LF and spaces trimmed.
std::string first_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  line.erase(line.find_last_not_of("\r\n ") + 1);
  return line;
}

} // namespace

std::string render_usage_error(const parse_result& r) {
  return "balctl: " + r.message + "\n" + r.usage + "Run 'balctl --help' for all commands.\n";
}

secret_result resolve_secret(const invocation& inv, const std::optional<read_result>& file,
                             const std::optional<std::string>& env_value) {
  secret_result r;
  if (!inv.secret.wanted) {
    return r;
  }
  if (inv.secret.file) {
    const std::string& path = *inv.secret.file;
    if (!file || file->status != read_status::ok) {
      // read_text_file's error ends with the reason ("...: No such file or directory").
      std::string why = file ? file->error : "not read";
      if (auto colon = why.rfind(": "); colon != std::string::npos) {
        why = why.substr(colon + 2);
      }
      r.error = "--secret-file " + path + ": cannot read it (" + why + ")";
      return r;
    }
    std::string s = first_line(file->text);
    if (s.empty()) {
      r.error = "--secret-file " + path + ": the first line is empty (it holds the secret)";
      return r;
    }
    r.secret = std::move(s);
    return r;
  }
  // Only an add takes the environment: a variable left exported for one
  // credential must not silently replace another's secret on a "set".
  if (env_value && !env_value->empty() && inv.command == "provider add") {
    r.secret = *env_value;
    return r;
  }
  if (inv.secret.required) {
    r.error = inv.command == "provider add"
                ? "missing secret: put it in a file and pass --secret-file FILE, or set "
                  "env " + std::string(dns_secret_env) + " (never on the command line)"
                : "nothing to change: give at least one option, or a new secret with "
                  "--secret-file FILE";
  }
  return r;
}

outcome run(const invocation& inv, const connection& conn, http_transport& transport,
            std::int64_t now_ms, const std::optional<std::string>& dns_secret) {
  outcome o;
  http_call call;
  call.method = inv.request.method;
  call.url = conn.server + inv.request.path;
  // Sent only by the commands that take one; "" is never a secret.
  bool send_secret = inv.secret.wanted && dns_secret && !dns_secret->empty();
  std::string secret = send_secret ? *dns_secret : "";
  std::optional<std::string> shown_body; // what --verbose echoes
  if (inv.request.body || send_secret) {
    json body = inv.request.body ? *inv.request.body : json::object();
    json shown = body;
    if (send_secret) {
      body["secret"] = secret;
      shown["secret"] = "***";
    }
    // parse_args only builds bodies from valid UTF-8; a secret that is not
    // is replaced rather than thrown on (the server then refuses it).
    call.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
    shown_body = shown.dump(-1, ' ', false, json::error_handler_t::replace);
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
    if (shown_body) {
      o.err += "> " + *shown_body + "\n";
    }
  }

  http_reply reply = transport.perform(call);
  if (reply.what == http_reply::kind::unreachable) {
    o.exit_code = exit_unreachable;
    o.err += "balctl: cannot reach " + conn.server + ": " + reply.error + "\n";
    return finish(std::move(o), conn.token, secret);
  }
  if (reply.what == http_reply::kind::failed) {
    o.exit_code = exit_unexpected;
    o.err += "balctl: " + reply.error + "\n";
    return finish(std::move(o), conn.token, secret);
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
    return finish(std::move(o), conn.token, secret);
  }
  if (!empty_body && !body_is_json) {
    o.exit_code = exit_unexpected;
    o.err += "balctl: HTTP " + std::to_string(reply.status) + " with a body that is not JSON\n";
    return finish(std::move(o), conn.token, secret);
  }
  if (inv.global.json) {
    o.out = empty_body ? "" : pretty(reply.body);
    return finish(std::move(o), conn.token, secret);
  }
  bool no_body_expected = inv.output == output_kind::pool_deleted ||
                          inv.output == output_kind::member_removed ||
                          inv.output == output_kind::account_removed;
  if (!no_body_expected && !body.is_object()) {
    o.exit_code = exit_unexpected;
    o.err += "balctl: HTTP " + std::to_string(reply.status) +
             (empty_body ? " with no body" : " with a body that is not a JSON object") +
             " for " + inv.command + "\n";
    return finish(std::move(o), conn.token, secret);
  }
  o.out = render_success(inv, body, now_ms);
  if (send_secret) {
    o.out += "secret sent from " +
             (inv.secret.file ? "--secret-file " + *inv.secret.file
                              : "env " + std::string(dns_secret_env)) +
             " (write-only: the server never shows it)\n";
  }
  return finish(std::move(o), conn.token, secret);
}

} // namespace balctl::cli
