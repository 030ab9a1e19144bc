#include "config/config.hpp"

#include "adapters/store/redis_store.hpp"
#include "transport/tls_session.hpp"

#include <arpa/inet.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

namespace balctl {

namespace {

using json = nlohmann::json;

// Collects errors with the key path of what is being read.
class reader {
public:
  explicit reader(std::vector<field_error>& errors) : errors_(errors) {}

  void error(const std::string& path, const std::string& msg) {
    errors_.push_back(field_error{path, msg, ""});
  }
  void error_value(const std::string& path, const json& v,
                   const std::string& msg) {
    errors_.push_back(field_error{path, msg, v.dump()});
  }

  /// Reports keys of obj not in allowed.
  void check_keys(const json& obj, const std::string& prefix,
                  std::initializer_list<const char*> allowed) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      bool known = false;
      for (const char* a : allowed) {
        if (it.key() == a) {
          known = true;
          break;
        }
      }
      if (!known) {
        error(prefix + it.key(), "unknown key");
      }
    }
  }

  void integer(const json& obj, const std::string& prefix, const char* key,
               int& out, long long lo, long long hi) {
    auto i = obj.find(key);
    if (i == obj.end()) {
      return;
    }
    auto path = prefix + key;
    if (!i->is_number_integer()) {
      error(path, "must be an integer");
      return;
    }
    auto v = i->get<long long>();
    if (v < lo || v > hi) {
      error_value(path, *i, "must be between " + std::to_string(lo) + " and " +
                              std::to_string(hi));
      return;
    }
    out = static_cast<int>(v);
  }

  void share(const json& obj, const std::string& prefix, const char* key,
             double& out) {
    auto i = obj.find(key);
    if (i == obj.end()) {
      return;
    }
    auto path = prefix + key;
    if (!i->is_number()) {
      error(path, "must be a number");
      return;
    }
    auto v = i->get<double>();
    if (!(v > 0.0 && v <= 1.0)) {
      error_value(path, *i, "must be greater than 0 and at most 1");
      return;
    }
    out = v;
  }

  bool string(const json& obj, const std::string& prefix, const char* key,
              std::string& out) {
    auto i = obj.find(key);
    if (i == obj.end()) {
      return false;
    }
    if (!i->is_string()) {
      error(prefix + key, "must be a string");
      return false;
    }
    out = i->get<std::string>();
    return true;
  }

  void boolean(const json& obj, const std::string& prefix, const char* key,
               bool& out) {
    auto i = obj.find(key);
    if (i == obj.end()) {
      return;
    }
    if (!i->is_boolean()) {
      error(prefix + key, "must be true or false");
      return;
    }
    out = i->get<bool>();
  }

private:
  std::vector<field_error>& errors_;
};

} // namespace

bool valid_dns_name(const std::string& s) {
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.front() == '-') {
    return false;
  }
  std::size_t label = 0;
  for (char c : s) {
    if (c == '.') {
      if (label == 0) {
        return false;
      }
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || ++label > 63) {
      return false;
    }
  }
  return true;
}

bool valid_pool_name(const std::string& s) {
  if (s.empty() || s.size() > 64) {
    return false;
  }
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

namespace {

bool valid_ip(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool valid_listen(const std::string& s) {
  std::string host, port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() ||
        s[close + 1] != ':') {
      return false;
    }
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
    unsigned char buf[16];
    if (inet_pton(AF_INET6, host.c_str(), buf) != 1) {
      return false;
    }
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return false;
    }
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    unsigned char buf[4];
    if (inet_pton(AF_INET, host.c_str(), buf) != 1 && host != "localhost") {
      return false;
    }
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  return std::stoi(port) <= 65535;
}

void read_public_addresses(reader& r, const json& j, const std::string& p,
                           member_config& m) {
  in_addr v4{};
  in6_addr v6{};
  if (r.string(j, p, "public_ipv4", m.public_ipv4) && !m.public_ipv4.empty() &&
      inet_pton(AF_INET, m.public_ipv4.c_str(), &v4) != 1) {
    r.error_value(p + "public_ipv4", j["public_ipv4"], "must be an IPv4 address");
  }
  if (r.string(j, p, "public_ipv6", m.public_ipv6) && !m.public_ipv6.empty() &&
      inet_pton(AF_INET6, m.public_ipv6.c_str(), &v6) != 1) {
    r.error_value(p + "public_ipv6", j["public_ipv6"], "must be an IPv6 address");
  }
}

void read_member(reader& r, const json& j, const std::string& p,
                 member_config& m) {
  if (!j.is_object()) {
    r.error(p.substr(0, p.size() - 1), "must be an object");
    return;
  }
  r.check_keys(j, p, {"id", "name", "hostname", "allowed_ips", "key",
                      "public_ipv4", "public_ipv6"});
  read_public_addresses(r, j, p, m);
  auto id = j.find("id");
  if (id == j.end()) {
    r.error(p + "id", "required");
  } else if (!id->is_number_unsigned() && !id->is_number_integer()) {
    r.error(p + "id", "must be an integer");
  } else if (id->is_number_unsigned() ? id->get<std::uint64_t>() == 0
                                      : id->get<long long>() <= 0) {
    // Non-negative numbers are stored unsigned: reading ids above INT64_MAX
    // as long long made valid 64-bit ids look negative.
    r.error_value(p + "id", *id, "must be greater than 0");
  } else {
    m.id = id->get<std::uint64_t>();
  }
  if (!r.string(j, p, "hostname", m.hostname)) {
    if (j.find("hostname") == j.end()) {
      r.error(p + "hostname", "required");
    }
  } else if (!valid_dns_name(m.hostname)) {
    r.error_value(p + "hostname", j["hostname"],
                  "must be a DNS name (letters, digits, hyphens, dots; at most 253)");
  }
  if (r.string(j, p, "name", m.name) && (m.name.empty() || m.name.size() > 64)) {
    r.error_value(p + "name", j["name"], "must be 1 to 64 characters");
  }
  if (m.name.empty()) {
    m.name = m.hostname;
  }
  auto ips = j.find("allowed_ips");
  if (ips != j.end()) {
    if (!ips->is_array()) {
      r.error(p + "allowed_ips", "must be an array of IP addresses");
    } else {
      for (std::size_t i = 0; i < ips->size(); ++i) {
        const auto& v = (*ips)[i];
        auto ip_path = p + "allowed_ips[" + std::to_string(i) + "]";
        if (!v.is_string() || !valid_ip(v.get<std::string>())) {
          r.error_value(ip_path, v, "must be an IPv4 or IPv6 address");
        } else {
          m.allowed_ips.push_back(v.get<std::string>());
        }
      }
    }
  }
  // Never echo the key: it is a secret.
  auto key = j.find("key");
  if (key == j.end()) {
    r.error(p + "key", "required");
  } else if (!key->is_string() || !protocol::key_from_hex(key->get<std::string>(), m.key)) {
    r.error(p + "key", "must be 64 hex characters");
  }
}

// The settings an operator may change at run time (admin API), read with
// the same rules as the file.
void read_settings(reader& r, const json& j, const std::string& p,
                   pool_config& pc) {
  std::string s;
  r.integer(j, p, "failover_delay_s", pc.failover_delay_s, 10, 120);
  if (r.string(j, p, "failover_hostname", pc.failover_hostname) &&
      !pc.failover_hostname.empty() && !valid_dns_name(pc.failover_hostname)) {
    r.error_value(p + "failover_hostname", j["failover_hostname"],
                  "must be empty or a DNS name");
  }
  if (r.string(j, p, "failback", s) && !from_string(s, pc.failback)) {
    r.error_value(p + "failback", j["failback"], "must be manual or automatic");
  }
  r.integer(j, p, "failback_stable_s", pc.failback_stable_s, 10, 86400);
  r.share(j, p, "mass_silence_share", pc.mass_silence_share);
  r.integer(j, p, "mass_silence_min_members", pc.mass_silence_min_members, 1,
            1'000'000);
  r.integer(j, p, "mass_silence_window_s", pc.mass_silence_window_s, 0, 3600);
  if (r.string(j, p, "dns_provider", pc.dns_provider) && !pc.dns_provider.empty() &&
      !valid_pool_name(pc.dns_provider)) {
    r.error_value(p + "dns_provider", j["dns_provider"], "must be a dns_providers[].id");
  }
  if (r.string(j, p, "dns_zone", pc.dns_zone) && !pc.dns_zone.empty() &&
      !valid_dns_name(pc.dns_zone)) {
    r.error_value(p + "dns_zone", j["dns_zone"], "must be empty or a DNS name");
  }
  r.integer(j, p, "dns_ttl_s", pc.dns_ttl_s, 1, 86400);
  r.boolean(j, p, "dns_sync", pc.dns_sync);
  r.boolean(j, p, "dns_only", pc.dns_only);
}

const char* const pool_setting_keys[] = {
  "failover_delay_s", "failover_hostname", "failback", "failback_stable_s",
  "mass_silence_share", "mass_silence_min_members", "mass_silence_window_s",
  "dns_provider", "dns_zone", "dns_ttl_s", "dns_sync", "dns_only"};

// A secret kept in a file (key at prefix + key, path as written): its first
// line, trailing CR and spaces removed. An unreadable file is an error naming
// the key and the path, never the content.
void read_secret_file(reader& r, const json& j, const std::string& prefix, const char* key,
                      const std::string& path, std::string& out) {
  std::ifstream in(path);
  if (!in) {
    r.error_value(prefix + key, j[key], std::string("cannot read: ") + std::strerror(errno));
    return;
  }
  std::getline(in, out);
  while (!out.empty() && (out.back() == '\r' || out.back() == ' ')) {
    out.pop_back();
  }
}

void read_dns_provider(reader& r, const json& j, const std::string& p,
                       dns_provider_config& d) {
  if (!j.is_object()) {
    r.error(p.substr(0, p.size() - 1), "must be an object");
    return;
  }
  r.check_keys(j, p, {"id", "type", "api_base", "server", "user", "server_id",
                      "tsig_name", "tsig_algorithm", "secret", "secret_file",
                      "ca_file", "global", "rate_limit_requests",
                      "rate_limit_window_s", "max_in_flight", "timeout_ms"});
  if (!r.string(j, p, "id", d.id)) {
    if (j.find("id") == j.end()) {
      r.error(p + "id", "required");
    }
  } else if (!valid_pool_name(d.id)) {
    r.error_value(p + "id", j["id"], "must be 1 to 64 characters of A-Z a-z 0-9 . _ -");
  }
  std::string type;
  if (!r.string(j, p, "type", type)) {
    if (j.find("type") == j.end()) {
      r.error(p + "type", "required (cloudflare, whm, powerdns or rfc2136)");
    }
  } else if (!from_string(type, d.kind)) {
    r.error_value(p + "type", j["type"], "must be cloudflare, whm, powerdns or rfc2136");
  }
  auto url_ok = [](const std::string& u) {
    return u.rfind("http://", 0) == 0 || u.rfind("https://", 0) == 0;
  };
  if (r.string(j, p, "api_base", d.api_base) && !url_ok(d.api_base)) {
    r.error_value(p + "api_base", j["api_base"], "must be an http(s) URL");
  }
  if (d.kind == dns_provider_kind::cloudflare) {
    if (d.api_base.empty()) {
      d.api_base = "https://api.cloudflare.com/client/v4";
    }
    d.rate_limit_requests = 1200;
  } else if (d.kind != dns_provider_kind::rfc2136 && d.api_base.empty() &&
             j.find("api_base") == j.end() && !type.empty()) {
    r.error(p + "api_base", "required for type " + type);
  }
  if (r.string(j, p, "server", d.server) && !valid_listen(d.server)) {
    r.error_value(p + "server", j["server"], "must be host:port or [v6]:port");
  }
  if (d.kind == dns_provider_kind::rfc2136 && d.server.empty() &&
      j.find("server") == j.end()) {
    r.error(p + "server", "required for type rfc2136");
  }
  r.string(j, p, "user", d.user);
  r.string(j, p, "server_id", d.server_id);
  r.string(j, p, "tsig_name", d.tsig_name);
  if (r.string(j, p, "tsig_algorithm", d.tsig_algorithm) &&
      d.tsig_algorithm != "hmac-sha256" && d.tsig_algorithm != "hmac-sha512" &&
      d.tsig_algorithm != "hmac-sha1") {
    r.error_value(p + "tsig_algorithm", j["tsig_algorithm"],
                  "must be hmac-sha256, hmac-sha512 or hmac-sha1");
  }
  if (d.kind == dns_provider_kind::rfc2136 && d.tsig_name.empty()) {
    r.error(p + "tsig_name", "required for type rfc2136");
  }
  // The secret is never echoed, not even when it is of the wrong type.
  auto sec = j.find("secret");
  if (sec != j.end() && !sec->is_string()) {
    r.error(p + "secret", "must be a string");
  } else if (sec != j.end()) {
    d.secret = sec->get<std::string>();
  }
  std::string file;
  if (r.string(j, p, "secret_file", file)) {
    read_secret_file(r, j, p, "secret_file", file, d.secret);
  }
  if (d.secret.empty()) {
    r.error(p + "secret", "required (or secret_file)");
  }
  r.string(j, p, "ca_file", d.ca_file);
  r.boolean(j, p, "global", d.global);
  r.integer(j, p, "rate_limit_requests", d.rate_limit_requests, 0, 1'000'000);
  r.integer(j, p, "rate_limit_window_s", d.rate_limit_window_s, 1, 86400);
  r.integer(j, p, "max_in_flight", d.max_in_flight, 1, 256);
  r.integer(j, p, "timeout_ms", d.timeout_ms, 100, 600000);
}

void read_pool(reader& r, const json& j, const std::string& p, pool_config& pc) {
  if (!j.is_object()) {
    r.error(p.substr(0, p.size() - 1), "must be an object");
    return;
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = it.key() == "name" || it.key() == "preset" || it.key() == "members";
    for (const char* k : pool_setting_keys) {
      known = known || it.key() == k;
    }
    if (!known) {
      r.error(p + it.key(), "unknown key");
    }
  }
  if (!r.string(j, p, "name", pc.name)) {
    if (j.find("name") == j.end()) {
      r.error(p + "name", "required");
    }
  } else if (!valid_pool_name(pc.name)) {
    r.error_value(p + "name", j["name"],
                  "must be 1 to 64 characters of A-Z a-z 0-9 . _ -");
  }
  std::string s;
  if (r.string(j, p, "preset", s) && !from_string(s, pc.preset)) {
    r.error_value(p + "preset", j["preset"], "must be generic-linux or haproxy");
  }
  read_settings(r, j, p, pc);
  auto members = j.find("members");
  if (members != j.end()) {
    if (!members->is_array()) {
      r.error(p + "members", "must be an array");
      return;
    }
    pc.members.resize(members->size());
    for (std::size_t i = 0; i < members->size(); ++i) {
      read_member(r, (*members)[i], p + "members[" + std::to_string(i) + "].",
                  pc.members[i]);
    }
  }
}

void read_admin(reader& r, const json& j, admin_config& a) {
  const std::string p = "admin.";
  if (!j.is_object()) {
    r.error("admin", "must be an object");
    return;
  }
  r.check_keys(j, p,
               {"listen", "tls_cert_file", "tls_key_file", "tokens",
                "max_header_bytes", "max_body_bytes", "request_timeout_ms",
                "idle_timeout_s", "max_connections",
                "enroll_failures_per_minute", "public_url",
                "heartbeat_endpoint", "heartbeat_tls_endpoint",
                "heartbeat_interval_s", "agent_install_url",
                "agent_binary_url", "agent_dist_dir", "agent_version_latest",
                "activity_retention"});
  if (r.string(j, p, "listen", a.listen) && !a.listen.empty() &&
      !valid_listen(a.listen)) {
    r.error_value(p + "listen", j["listen"],
                  "must be empty (no admin endpoint), host:port or [v6]:port");
  }
  r.string(j, p, "tls_cert_file", a.tls_cert_file);
  r.string(j, p, "tls_key_file", a.tls_key_file);
  if (a.tls_cert_file.empty() != a.tls_key_file.empty()) {
    r.error(p + "tls_key_file", "tls_cert_file and tls_key_file go together");
  }
  r.integer(j, p, "max_header_bytes", a.max_header_bytes, 1024, 1048576);
  r.integer(j, p, "max_body_bytes", a.max_body_bytes, 1024, 67108864);
  r.integer(j, p, "request_timeout_ms", a.request_timeout_ms, 100, 600000);
  r.integer(j, p, "idle_timeout_s", a.idle_timeout_s, 1, 3600);
  r.integer(j, p, "max_connections", a.max_connections, 1, 100000);
  r.integer(j, p, "enroll_failures_per_minute", a.enroll_failures_per_minute,
            1, 10000);
  // (public_url is read with the other URLs below)
  auto endpoint = [&](const char* key, std::string& out, const char* empty_means) {
    if (!r.string(j, p, key, out) || out.empty() || valid_listen(out)) {
      return;
    }
    // Agents may be told a DNS name where balctld binds an address.
    auto colon = out.rfind(':');
    auto host = out.substr(0, colon == std::string::npos ? 0 : colon);
    if (colon == std::string::npos || !valid_dns_name(host) ||
        !valid_listen("127.0.0.1" + out.substr(colon))) {
      r.error_value(p + key, j[key],
                    std::string("must be empty (") + empty_means + ") or host:port");
    }
  };
  endpoint("heartbeat_endpoint", a.heartbeat_endpoint, "the udp_listen address");
  endpoint("heartbeat_tls_endpoint", a.heartbeat_tls_endpoint,
           "the heartbeat_tls.listen address");
  // Each read once, so a value of the wrong type is one error.
  for (auto [key, out] : {std::pair<const char*, std::string*>{"public_url", &a.public_url},
                          {"agent_install_url", &a.agent_install_url},
                          {"agent_binary_url", &a.agent_binary_url}}) {
    if (r.string(j, p, key, *out) && !out->empty() && out->rfind("http://", 0) != 0 &&
        out->rfind("https://", 0) != 0) {
      r.error_value(p + key, j[key], "must be an http:// or https:// URL");
    }
  }
  r.integer(j, p, "heartbeat_interval_s", a.heartbeat_interval_s, 1, 60);
  r.string(j, p, "agent_dist_dir", a.agent_dist_dir);
  r.string(j, p, "agent_version_latest", a.agent_version_latest);
  r.integer(j, p, "activity_retention", a.activity_retention, 100, 10'000'000);
  auto tokens = j.find("tokens");
  if (tokens == j.end()) {
    return;
  }
  if (!tokens->is_array()) {
    r.error(p + "tokens", "must be an array");
    return;
  }
  for (std::size_t i = 0; i < tokens->size(); ++i) {
    const auto& t = (*tokens)[i];
    auto tp = p + "tokens[" + std::to_string(i) + "].";
    if (!t.is_object()) {
      r.error(tp.substr(0, tp.size() - 1), "must be an object");
      continue;
    }
    r.check_keys(t, tp, {"name", "role", "sha256"});
    admin_token tok;
    if (!r.string(t, tp, "name", tok.name) || tok.name.empty()) {
      r.error(tp + "name", "required, a non-empty string");
    }
    std::string role;
    if (!r.string(t, tp, "role", role) ||
        (role != "admin" && role != "read-only")) {
      r.error(tp + "role", "must be admin or read-only");
    }
    tok.admin = role == "admin";
    std::string hex;
    // Only a hash is configured; still never echoed.
    if (!r.string(t, tp, "sha256", hex) || hex.size() != 64 ||
        !protocol::key_from_hex(hex, tok.sha256)) {
      r.error(tp + "sha256",
              "must be the token's SHA-256 as 64 hex characters "
              "(balctld --hash-token prints it)");
    }
    a.tokens.push_back(tok);
  }
}

// "" when path names a non-empty regular file this process can open, else
// why not.
std::string unreadable(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return "cannot read: is a directory";
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return std::string("cannot read: ") + std::strerror(errno);
  }
  if (in.peek() == std::ifstream::traits_type::eof()) {
    return "cannot read: the file is empty";
  }
  return {};
}

// cluster.tls_*: mutual TLS needs a certificate, its key and the CA that
// vouches for the peers, so one or two of them is a mistake, not "TLS off".
// The files are loaded here, as the middleman will: CAF's OpenSSL module
// reads them only at the first connection, on its own thread, where a bad
// file is an uncaught exception and a connection that hangs.
void read_cluster_tls(reader& r, const json& j, cluster_config& c) {
  const std::string p = "cluster.";
  std::pair<const char*, std::string*> keys[] = {{"tls_cert_file", &c.tls_cert_file},
                                                 {"tls_key_file", &c.tls_key_file},
                                                 {"tls_ca_file", &c.tls_ca_file}};
  int set = 0;
  for (auto [key, out] : keys) {
    if (r.string(j, p, key, *out) && out->empty()) {
      r.error(p + key, "must not be empty (leave the tls_* keys out for a plain link)");
    }
    set += out->empty() ? 0 : 1;
  }
  if (set == 0) {
    return;
  }
  if (set < 3) {
    for (auto [key, out] : keys) {
      if (out->empty() && j.find(key) == j.end()) {
        r.error(p + key, "required with the other cluster.tls_* keys: mutual TLS needs "
                         "tls_cert_file, tls_key_file and tls_ca_file together");
      }
    }
    c.tls_cert_file.clear(); // tls() stays false on an invalid config
    return;
  }
  bool readable = true;
  for (auto [key, out] : keys) {
    if (auto why = unreadable(*out); !why.empty()) {
      r.error_value(p + key, j[key], why);
      readable = false;
    }
  }
  if (!readable) {
    return;
  }
  std::string reason;
  auto bad = tls::check_identity(c.tls_cert_file, c.tls_key_file, c.tls_ca_file, &reason);
  const char* key = bad == tls::identity_file::certificate ? "tls_cert_file"
                    : bad == tls::identity_file::key       ? "tls_key_file"
                                                           : "tls_ca_file";
  if (bad != tls::identity_file::none) {
    r.error_value(p + key, j[key], reason);
  }
}

void read_cluster(reader& r, const json& j, cluster_config& c) {
  const std::string p = "cluster.";
  if (!j.is_object()) {
    r.error("cluster", "must be an object");
    return;
  }
  r.check_keys(j, p, {"node_id", "listen", "advertise", "lease_ttl_ms", "takeover_grace_s",
                      "tls_cert_file", "tls_key_file", "tls_ca_file"});
  if (!r.string(j, p, "node_id", c.node_id)) {
    r.error(p + "node_id", "required");
  } else if (c.node_id.empty() || c.node_id.size() > 64 ||
             c.node_id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                         "0123456789._-") != std::string::npos) {
    r.error_value(p + "node_id", j["node_id"], "must be 1 to 64 characters of A-Z a-z 0-9 . _ -");
  }
  if (r.string(j, p, "listen", c.listen) && !valid_listen(c.listen)) {
    r.error_value(p + "listen", j["listen"], "must be host:port or [v6]:port");
  }
  if (r.string(j, p, "advertise", c.advertise) && !valid_listen(c.advertise)) {
    r.error_value(p + "advertise", j["advertise"], "must be host:port or [v6]:port");
  }
  r.integer(j, p, "lease_ttl_ms", c.lease_ttl_ms, 1000, 120000);
  r.integer(j, p, "takeover_grace_s", c.takeover_grace_s, 0, 3600);
  read_cluster_tls(r, j, c);
}

// "notify": the alert channels. A file holding a secret is read here, so a
// wrong path is an error naming the key; the secret itself is never echoed.
void read_notify(reader& r, const json& j, notify_config& n) {
  const std::string p = "notify.";
  if (!j.is_object()) {
    r.error("notify", "must be an object");
    return;
  }
  r.check_keys(j, p, {"smtp_url", "smtp_from", "smtp_username", "smtp_password_file",
                      "smtp_starttls", "smtp_ca_file", "webhook_secret_file",
                      "webhook_timeout_ms", "dedup_window_s", "max_queue", "retry_initial_ms",
                      "retry_max_ms", "retry_give_up_s"});
  // The URL may carry user:password@: errors never echo it.
  if (r.string(j, p, "smtp_url", n.smtp_url) && !n.smtp_url.empty()) {
    const bool smtps = n.smtp_url.rfind("smtps://", 0) == 0;
    auto rest = n.smtp_url.substr(smtps ? 8 : 7);
    if (!smtps && n.smtp_url.rfind("smtp://", 0) != 0) {
      r.error(p + "smtp_url", "must start with smtp:// or smtps://");
    } else if (rest.empty() || rest.front() == '/' || rest.find('@') != std::string::npos ||
               rest.find_first_of(" \t\r\n") != std::string::npos) {
      r.error(p + "smtp_url", "must be smtp[s]://host[:port] (credentials go in "
                              "smtp_username and smtp_password_file)");
    }
  }
  if (r.string(j, p, "smtp_from", n.smtp_from) &&
      (n.smtp_from.find('@') == std::string::npos ||
       n.smtp_from.find_first_of("<>\r\n \t") != std::string::npos)) {
    r.error_value(p + "smtp_from", j["smtp_from"], "must be a bare address (user@domain)");
  }
  if (!n.smtp_url.empty() && n.smtp_from.empty()) {
    r.error(p + "smtp_from", "required with smtp_url");
  }
  r.string(j, p, "smtp_username", n.smtp_username);
  if (r.string(j, p, "smtp_password_file", n.smtp_password_file)) {
    read_secret_file(r, j, p, "smtp_password_file", n.smtp_password_file, n.smtp_password);
    if (n.smtp_username.empty()) {
      r.error(p + "smtp_password_file", "only with smtp_username");
    }
  }
  if (!n.smtp_username.empty() && n.smtp_password_file.empty()) {
    r.error(p + "smtp_password_file", "required with smtp_username");
  }
  r.boolean(j, p, "smtp_starttls", n.smtp_starttls);
  if (n.smtp_starttls && n.smtp_url.rfind("smtps://", 0) == 0) {
    r.error(p + "smtp_starttls", "only with smtp:// (smtps:// is TLS from the start)");
  }
  if (r.string(j, p, "smtp_ca_file", n.smtp_ca_file) && !n.smtp_ca_file.empty()) {
    if (auto why = unreadable(n.smtp_ca_file); !why.empty()) {
      r.error_value(p + "smtp_ca_file", j["smtp_ca_file"], why);
    }
  }
  if (r.string(j, p, "webhook_secret_file", n.webhook_secret_file)) {
    read_secret_file(r, j, p, "webhook_secret_file", n.webhook_secret_file, n.webhook_secret);
    if (n.webhook_secret.empty() && !n.webhook_secret_file.empty()) {
      r.error_value(p + "webhook_secret_file", j["webhook_secret_file"],
                    "the first line (the secret) is empty");
    }
  }
  r.integer(j, p, "webhook_timeout_ms", n.webhook_timeout_ms, 100, 600000);
  r.integer(j, p, "dedup_window_s", n.dedup_window_s, 0, 86400);
  r.integer(j, p, "max_queue", n.max_queue, 1, 1'000'000);
  r.integer(j, p, "retry_initial_ms", n.retry_initial_ms, 10, 3'600'000);
  r.integer(j, p, "retry_max_ms", n.retry_max_ms, 10, 86'400'000);
  r.integer(j, p, "retry_give_up_s", n.retry_give_up_s, 1, 604800);
  if (n.retry_max_ms < n.retry_initial_ms) {
    r.error_value(p + "retry_max_ms", n.retry_max_ms,
                  "must be at least retry_initial_ms (" + std::to_string(n.retry_initial_ms) +
                    ")");
  }
}

void read_heartbeat_tls(reader& r, const json& j, heartbeat_tls_config& t) {
  const std::string p = "heartbeat_tls.";
  if (!j.is_object()) {
    r.error("heartbeat_tls", "must be an object");
    return;
  }
  r.check_keys(j, p, {"listen", "cert_file", "key_file", "max_connections",
                      "handshake_timeout_ms", "idle_timeout_s"});
  if (r.string(j, p, "listen", t.listen) && !t.listen.empty() &&
      !valid_listen(t.listen)) {
    r.error_value(p + "listen", j["listen"],
                  "must be empty (no TLS listener), host:port or [v6]:port");
  }
  r.string(j, p, "cert_file", t.cert_file);
  r.string(j, p, "key_file", t.key_file);
  if (!t.listen.empty() && (t.cert_file.empty() || t.key_file.empty())) {
    r.error(p + (t.cert_file.empty() ? "cert_file" : "key_file"),
            "required when heartbeat_tls.listen is set");
  }
  r.integer(j, p, "max_connections", t.max_connections, 1, 1'000'000);
  r.integer(j, p, "handshake_timeout_ms", t.handshake_timeout_ms, 100, 600000);
  r.integer(j, p, "idle_timeout_s", t.idle_timeout_s, 5, 3600);
}

// An http(s) base URL: scheme, a host, an optional port and path; no
// query, fragment, credentials or spaces (it is a prefix for signed URLs).
bool valid_base_url(const std::string& u) {
  auto scheme_end = u.find("://");
  if (scheme_end == std::string::npos) {
    return false;
  }
  auto scheme = u.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    return false;
  }
  auto rest = u.substr(scheme_end + 3);
  auto host = rest.substr(0, rest.find('/'));
  return !host.empty() && host[0] != ':' &&
         u.find_first_of("?#@ \t\r\n") == std::string::npos;
}

bool all_of_chars(const std::string& s, const char* allowed) {
  return s.find_first_not_of(allowed) == std::string::npos;
}

constexpr const char* lower_alnum = "abcdefghijklmnopqrstuvwxyz0123456789";

void read_s3(reader& r, const json& j, s3_config& s, bool required) {
  const std::string p = "protection.s3.";
  if (!j.is_object()) {
    r.error("protection.s3", "must be an object");
    return;
  }
  r.check_keys(j, p, {"endpoint", "region", "bucket", "path_style", "prefix",
                      "access_key_id", "secret_access_key_file", "session_token_file"});
  auto need = [&](const char* key, const std::string& v) {
    if (required && v.empty()) {
      r.error(p + key, "required with protection.object_store = \"s3\"");
      return false;
    }
    return !v.empty();
  };
  r.string(j, p, "endpoint", s.endpoint);
  if (need("endpoint", s.endpoint) && !valid_base_url(s.endpoint)) {
    r.error_value(p + "endpoint", j["endpoint"],
                  "must be an http:// or https:// URL (host[:port][/path], no query)");
  }
  r.string(j, p, "region", s.region);
  if (need("region", s.region) &&
      (s.region.size() > 32 || !all_of_chars(s.region, "abcdefghijklmnopqrstuvwxyz0123456789-"))) {
    r.error_value(p + "region", j["region"], "must be 1..32 characters of a-z 0-9 -");
  }
  r.string(j, p, "bucket", s.bucket);
  if (need("bucket", s.bucket) &&
      (s.bucket.size() < 3 || s.bucket.size() > 63 ||
       !all_of_chars(s.bucket, "abcdefghijklmnopqrstuvwxyz0123456789.-") ||
       std::strchr(lower_alnum, s.bucket.front()) == nullptr ||
       std::strchr(lower_alnum, s.bucket.back()) == nullptr)) {
    r.error_value(p + "bucket", j["bucket"],
                  "must be 3..63 characters of a-z 0-9 . - starting and ending with a "
                  "letter or digit (S3 bucket naming rules)");
  }
  r.boolean(j, p, "path_style", s.path_style);
  if (r.string(j, p, "prefix", s.prefix) && !s.prefix.empty() &&
      (s.prefix.size() > 256 || s.prefix.front() == '/' ||
       s.prefix.find("//") != std::string::npos ||
       (s.prefix + "/").find("../") != std::string::npos ||
       !all_of_chars(s.prefix, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               "0123456789._-/"))) {
    r.error_value(p + "prefix", j["prefix"],
                  "must be up to 256 characters of A-Z a-z 0-9 . _ - / without a leading "
                  "'/', '//' or '..' segments");
  }
  r.string(j, p, "access_key_id", s.access_key_id);
  if (need("access_key_id", s.access_key_id) &&
      (s.access_key_id.size() > 128 ||
       !all_of_chars(s.access_key_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789._-"))) {
    // Not echoed: an access key id is not secret, but half a secret pasted
    // here by mistake would be.
    r.error(p + "access_key_id", "must be 1..128 characters of A-Z a-z 0-9 . _ -");
  }
  for (auto [key, out, must] :
       {std::tuple{"secret_access_key_file", &s.secret_access_key_file, true},
        std::tuple{"session_token_file", &s.session_token_file, false}}) {
    r.string(j, p, key, *out);
    bool set = must ? need(key, *out) : !out->empty();
    if (set && required) {
      if (auto why = unreadable(*out); !why.empty()) {
        r.error_value(p + key, j[key], why);
      }
    }
  }
}

void read_protection(reader& r, const json& j, protection_config& pc) {
  const std::string p = "protection.";
  if (!j.is_object()) {
    r.error("protection", "must be an object");
    return;
  }
  r.check_keys(j, p, {"object_store", "chunk_dir", "public_url", "chunk_size_bytes",
                      "url_ttl_s", "s3"});
  if (r.string(j, p, "object_store", pc.object_store) && pc.object_store != "embedded" &&
      pc.object_store != "s3") {
    r.error_value(p + "object_store", j["object_store"], "must be embedded or s3");
  }
  if (r.string(j, p, "chunk_dir", pc.chunk_dir) && pc.chunk_dir.empty()) {
    r.error(p + "chunk_dir", "must not be empty (leave it out for <store_path>.chunks)");
  }
  if (r.string(j, p, "public_url", pc.public_url) && !pc.public_url.empty() &&
      !valid_base_url(pc.public_url)) {
    r.error_value(p + "public_url", j["public_url"],
                  "must be an http:// or https:// URL (host[:port][/path], no query)");
  }
  r.integer(j, p, "chunk_size_bytes", pc.chunk_size_bytes, 64 * 1024, 64 * 1024 * 1024);
  r.integer(j, p, "url_ttl_s", pc.url_ttl_s, 60, 604800);
  bool s3 = pc.object_store == "s3";
  // The embedded store's keys mean nothing with a bucket: refused rather
  // than silently unused (an s3 block kept with "embedded" is checked,
  // ready for a switch).
  for (const char* key : {"chunk_dir", "public_url"}) {
    if (s3 && j.contains(key)) {
      r.error(p + key, "only with protection.object_store = \"embedded\" (with s3 the "
                       "chunks and their URLs are the bucket's)");
    }
  }
  if (auto s = j.find("s3"); s != j.end()) {
    read_s3(r, *s, pc.s3, s3);
  } else if (s3) {
    r.error(p + "s3", "required with protection.object_store = \"s3\"");
  }
}

} // namespace

config_result parse_config(const std::string& json_text) {
  config_result res;
  std::vector<field_error> field_errors;
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    // The lexer's message quotes the token it choked on ("last read: '...'"),
    // which can be a member key (an unterminated or line-broken key string).
    // Keys are secrets: drop the quoted token, the byte offset locates it.
    std::string what = e.what();
    auto quoted = what.find("; last read: ");
    if (quoted != std::string::npos) {
      what.erase(quoted);
    }
    res.errors.push_back("config: not valid JSON at byte " +
                         std::to_string(e.byte) + ": " + what);
    return res;
  }
  if (!j.is_object()) {
    res.errors.push_back("config: the top level must be a JSON object");
    return res;
  }
  reader r(field_errors);
  auto& c = res.config;
  r.check_keys(j, "",
               {"udp_listen", "store_path", "store", "store_password_file", "store_tls_ca_file",
                "store_tls_cert_file", "store_tls_key_file", "store_prefix",
                "store_timeout_ms", "store_max_owed", "log_level", "max_clock_skew_s",
                "restart_grace_s", "suspect_after_pct", "recovery_stable_s",
                "flap_threshold", "flap_window_s", "flap_hold_s",
                "fleet_silence_share", "fleet_silence_min_members",
                "fleet_silence_window_s", "silence_release_settle_s",
                "snapshot_interval_s", "admin", "heartbeat_tls", "cluster", "notify",
                "protection", "dns_providers", "pools"});
  if (r.string(j, "", "udp_listen", c.udp_listen) && !valid_listen(c.udp_listen)) {
    r.error_value("udp_listen", j["udp_listen"],
                  "must be host:port or [v6]:port with port 0..65535");
  }
  if (r.string(j, "", "store_path", c.store_path) && c.store_path.empty()) {
    r.error("store_path", "must not be empty");
  }
  // The URL may hold a password: errors name the part at fault, never echo it.
  if (r.string(j, "", "store", c.store) && !c.store.empty()) {
    std::string why;
    if (!parse_redis_url(c.store, &why)) {
      r.error("store", why);
    }
  }
  if (r.string(j, "", "store_password_file", c.store_password_file)) {
    if (c.store.empty()) {
      r.error("store_password_file", "only with a redis:// store");
    } else if (!std::ifstream(c.store_password_file)) {
      r.error_value("store_password_file", j["store_password_file"],
                    std::string("cannot read: ") + std::strerror(errno));
    }
  }
  // TLS files for a rediss:// store: read now, so a wrong path is a config
  // error naming the key rather than a connection that never comes up.
  const bool store_tls = c.store.rfind("rediss://", 0) == 0;
  for (auto [key, field] : {std::pair{"store_tls_ca_file", &c.store_tls_ca_file},
                            std::pair{"store_tls_cert_file", &c.store_tls_cert_file},
                            std::pair{"store_tls_key_file", &c.store_tls_key_file}}) {
    if (!r.string(j, "", key, *field) || field->empty()) {
      continue; // "" = not set
    }
    if (!store_tls) {
      r.error(key, "only with a rediss:// store");
    } else if (!std::ifstream(*field)) {
      r.error_value(key, j[key], std::string("cannot read: ") + std::strerror(errno));
    }
  }
  if (store_tls && c.store_tls_cert_file.empty() != c.store_tls_key_file.empty()) {
    // A client certificate is useless without its key, and the reverse.
    bool no_cert = c.store_tls_cert_file.empty();
    r.error(no_cert ? "store_tls_cert_file" : "store_tls_key_file",
            no_cert ? "required with store_tls_key_file" : "required with store_tls_cert_file");
  }
  if (r.string(j, "", "store_prefix", c.store_prefix) &&
      (c.store_prefix.empty() || c.store_prefix.size() > 64 ||
       c.store_prefix.find_first_of(" \t\r\n") != std::string::npos)) {
    r.error_value("store_prefix", j["store_prefix"], "must be 1..64 characters without spaces");
  }
  r.integer(j, "", "store_timeout_ms", c.store_timeout_ms, 100, 60000);
  r.integer(j, "", "store_max_owed", c.store_max_owed, 1000, 10'000'000);
  if (r.string(j, "", "log_level", c.log_level) && c.log_level != "debug" &&
      c.log_level != "info" && c.log_level != "warn" && c.log_level != "error") {
    r.error_value("log_level", j["log_level"], "must be debug, info, warn or error");
  }
  r.integer(j, "", "max_clock_skew_s", c.max_clock_skew_s, 1, 600);
  r.integer(j, "", "restart_grace_s", c.restart_grace_s, 0, 3600);
  r.integer(j, "", "suspect_after_pct", c.suspect_after_pct, 10, 90);
  r.integer(j, "", "recovery_stable_s", c.recovery_stable_s, 0, 3600);
  r.integer(j, "", "flap_threshold", c.flap_threshold, 1, 100);
  r.integer(j, "", "flap_window_s", c.flap_window_s, 10, 86400);
  r.integer(j, "", "flap_hold_s", c.flap_hold_s, 0, 86400);
  r.share(j, "", "fleet_silence_share", c.fleet_silence_share);
  r.integer(j, "", "fleet_silence_min_members", c.fleet_silence_min_members, 1,
            10'000'000);
  r.integer(j, "", "fleet_silence_window_s", c.fleet_silence_window_s, 1, 3600);
  r.integer(j, "", "silence_release_settle_s", c.silence_release_settle_s, 0, 600);
  r.integer(j, "", "snapshot_interval_s", c.snapshot_interval_s, 1, 3600);
  auto pools = j.find("pools");
  if (pools != j.end()) {
    if (!pools->is_array()) {
      r.error("pools", "must be an array");
    } else {
      c.pools.resize(pools->size());
      for (std::size_t i = 0; i < pools->size(); ++i) {
        read_pool(r, (*pools)[i], "pools[" + std::to_string(i) + "].", c.pools[i]);
      }
    }
  }
  if (auto a = j.find("admin"); a != j.end()) {
    read_admin(r, *a, c.admin);
  }
  if (auto cl = j.find("cluster"); cl != j.end()) {
    read_cluster(r, *cl, c.cluster);
    if (c.store.empty()) {
      r.error("cluster", "needs a redis:// store (\"store\"): the nodes share their state there");
    }
  }
  if (auto pr = j.find("protection"); pr != j.end()) {
    read_protection(r, *pr, c.protection);
  }
  if (auto d = j.find("dns_providers"); d != j.end()) {
    if (!d->is_array()) {
      r.error("dns_providers", "must be an array");
    } else {
      c.dns_providers.resize(d->size());
      for (std::size_t i = 0; i < d->size(); ++i) {
        read_dns_provider(r, (*d)[i], "dns_providers[" + std::to_string(i) + "].",
                          c.dns_providers[i]);
      }
    }
  }
  if (auto t = j.find("heartbeat_tls"); t != j.end()) {
    read_heartbeat_tls(r, *t, c.heartbeat_tls);
  }
  if (auto n = j.find("notify"); n != j.end()) {
    read_notify(r, *n, c.notify);
  }
  for (const auto& e : field_errors) {
    res.errors.push_back(e.to_string());
  }
  // Uniqueness across the whole file; pools name existing providers.
  std::unordered_map<std::string, std::size_t> provider_ids;
  for (std::size_t i = 0; i < c.dns_providers.size(); ++i) {
    const auto& id = c.dns_providers[i].id;
    if (!id.empty() && !provider_ids.emplace(id, i).second) {
      res.errors.push_back("dns_providers[" + std::to_string(i) + "].id = \"" + id +
                           "\": duplicate provider id (also dns_providers[" +
                           std::to_string(provider_ids[id]) + "])");
    }
  }
  for (std::size_t i = 0; i < c.pools.size(); ++i) {
    const auto& p = c.pools[i];
    if (!p.dns_provider.empty() && provider_ids.count(p.dns_provider) == 0) {
      res.errors.push_back("pools[" + std::to_string(i) + "].dns_provider = \"" +
                           p.dns_provider + "\": no dns_providers[] entry has this id");
    }
  }
  std::unordered_map<std::string, std::size_t> pool_names;
  std::unordered_map<member_id, std::string> member_ids;
  for (std::size_t i = 0; i < c.pools.size(); ++i) {
    const auto& p = c.pools[i];
    auto pp = "pools[" + std::to_string(i) + "]";
    if (!p.name.empty() && !pool_names.emplace(p.name, i).second) {
      res.errors.push_back(pp + ".name = \"" + p.name +
                           "\": duplicate pool name (also pools[" +
                           std::to_string(pool_names[p.name]) + "])");
    }
    for (std::size_t k = 0; k < p.members.size(); ++k) {
      auto id = p.members[k].id;
      if (id == 0) {
        continue;
      }
      auto mp = pp + ".members[" + std::to_string(k) + "]";
      auto ins = member_ids.emplace(id, mp);
      if (!ins.second) {
        res.errors.push_back(mp + ".id = " + std::to_string(id) +
                             ": duplicate member id (also " + ins.first->second +
                             ")");
      }
    }
  }
  return res;
}

void copy_settings(pool_config& dst, const pool_config& src) {
  dst.failover_delay_s = src.failover_delay_s;
  dst.failover_hostname = src.failover_hostname;
  dst.failback = src.failback;
  dst.failback_stable_s = src.failback_stable_s;
  dst.mass_silence_share = src.mass_silence_share;
  dst.mass_silence_min_members = src.mass_silence_min_members;
  dst.mass_silence_window_s = src.mass_silence_window_s;
  dst.dns_provider = src.dns_provider;
  dst.dns_zone = src.dns_zone;
  dst.dns_ttl_s = src.dns_ttl_s;
  dst.dns_sync = src.dns_sync;
  dst.dns_only = src.dns_only;
}

const char* to_string(dns_provider_kind k) {
  switch (k) {
    case dns_provider_kind::cloudflare: return "cloudflare";
    case dns_provider_kind::whm: return "whm";
    case dns_provider_kind::powerdns: return "powerdns";
    case dns_provider_kind::rfc2136: return "rfc2136";
  }
  return "?";
}

bool from_string(const std::string& s, dns_provider_kind& out) {
  for (auto k : {dns_provider_kind::cloudflare, dns_provider_kind::whm,
                 dns_provider_kind::powerdns, dns_provider_kind::rfc2136}) {
    if (s == to_string(k)) {
      out = k;
      return true;
    }
  }
  return false;
}

std::string member_address(const member_config& m, bool ipv6) {
  const auto& explicit_ip = ipv6 ? m.public_ipv6 : m.public_ipv4;
  if (!explicit_ip.empty()) {
    return explicit_ip;
  }
  for (const auto& ip : m.allowed_ips) {
    bool is_v6 = ip.find(':') != std::string::npos;
    if (is_v6 == ipv6) {
      return ip;
    }
  }
  return {};
}

std::string field_error::to_string() const {
  return value.empty() ? field + ": " + message
                       : field + " = " + value + ": " + message;
}

std::vector<field_error> read_pool_settings(const std::string& json_text,
                                            pool_config& pc) {
  std::vector<field_error> errors;
  reader r(errors);
  auto j = json::parse(json_text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    r.error("", "the body must be a JSON object");
    return errors;
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* k : pool_setting_keys) {
      known = known || it.key() == k;
    }
    if (!known) {
      r.error(it.key(), "unknown key");
    }
  }
  read_settings(r, j, "", pc);
  return errors;
}

std::vector<field_error> read_dns_provider_json(const std::string& json_text,
                                                dns_provider_config& out,
                                                bool allow_secret_file) {
  std::vector<field_error> errors;
  reader r(errors);
  auto j = json::parse(json_text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    r.error("", "the body must be a JSON object");
    return errors;
  }
  // Keys the config file does not have: taken off before its rules run.
  if (auto m = j.find("member"); m != j.end()) {
    if (m->is_number_unsigned()) {
      out.member = m->get<member_id>();
    } else if (!m->is_null()) {
      r.error("member", "must be a member id (a positive integer)");
    }
    j.erase(m);
  }
  if (auto p = j.find("pool"); p != j.end()) {
    if (p->is_string()) {
      out.pool = p->get<std::string>();
    }
    j.erase(p);
  }
  if (!allow_secret_file && j.contains("secret_file")) {
    r.error("secret_file", "not accepted here; send the secret itself");
    return errors;
  }
  // A partial object updates an existing credential: the keys it lacks
  // keep their values (a new one starts from nothing, so type is required).
  auto merged = json::object();
  if (!out.id.empty()) {
    merged = json::parse(dns_provider_json(out));
    merged.erase("member");
    merged.erase("pool");
    if (j.contains("type") && merged["type"] != j["type"]) {
      // Another kind of credential: its kind-specific defaults apply.
      merged.erase("api_base");
      merged.erase("rate_limit_requests");
    }
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    merged[it.key()] = it.value();
  }
  auto member = out.member;
  auto pool = out.pool;
  out = dns_provider_config{};
  out.member = member;
  out.pool = pool;
  read_dns_provider(r, merged, "", out);
  return errors;
}

std::string dns_provider_json(const dns_provider_config& p) {
  json j = {{"id", p.id},
            {"type", to_string(p.kind)},
            {"user", p.user},
            {"server_id", p.server_id},
            {"tsig_algorithm", p.tsig_algorithm},
            {"secret", p.secret},
            {"global", p.global},
            {"rate_limit_requests", p.rate_limit_requests},
            {"rate_limit_window_s", p.rate_limit_window_s},
            {"max_in_flight", p.max_in_flight},
            {"timeout_ms", p.timeout_ms}};
  // Keys whose empty value the rules refuse are left out when empty.
  for (auto [k, v] : {std::pair<const char*, const std::string*>{"api_base", &p.api_base},
                      {"server", &p.server},
                      {"tsig_name", &p.tsig_name},
                      {"ca_file", &p.ca_file},
                      {"pool", &p.pool}}) {
    if (!v->empty()) {
      j[k] = *v;
    }
  }
  if (p.member != 0) {
    j["member"] = p.member;
  }
  return j.dump();
}

config_result load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    config_result res;
    res.errors.push_back("config file " + path +
                         ": cannot read: " + std::strerror(errno));
    return res;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str());
}

} // namespace balctl
