#include "tests/standins/cloudflare_standin.hpp"

#include "api/request.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <mutex>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "transport/http_server.hpp"
#include "transport/listen_address.hpp"

namespace balctl::test {
namespace {

using json = nlohmann::json;

const std::string api_prefix = "/client/v4";

// --- small helpers -----------------------------------------------------------

std::uint64_t fnv1a(const std::string& s, std::uint64_t basis) {
  std::uint64_t h = basis;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// 32 hex digits, the shape of Cloudflare's zone and record ids.
std::string hex32(const std::string& s) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx",
                static_cast<unsigned long long>(fnv1a(s, 14695981039346656037ull)),
                static_cast<unsigned long long>(fnv1a(s, 0x9ae16a3b2f90404full)));
  return buf;
}

std::string lower(std::string s) {
  for (auto& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

std::string upper(std::string s) {
  for (auto& c : s) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string strip_dot(std::string s) {
  while (!s.empty() && s.back() == '.') {
    s.pop_back();
  }
  return s;
}

// The admin API's decoder; a malformed escape is kept as it came.
std::string percent_decode(const std::string& s) {
  std::string out;
  return api::percent_decode(s, out) ? out : s;
}

std::multimap<std::string, std::string> parse_query(const std::string& q) {
  std::multimap<std::string, std::string> out;
  std::size_t start = 0;
  while (start <= q.size()) {
    auto amp = q.find('&', start);
    std::string part = q.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
    if (!part.empty()) {
      auto eq = part.find('=');
      if (eq == std::string::npos) {
        out.emplace(percent_decode(part), "");
      } else {
        out.emplace(percent_decode(part.substr(0, eq)), percent_decode(part.substr(eq + 1)));
      }
    }
    if (amp == std::string::npos) {
      break;
    }
    start = amp + 1;
  }
  return out;
}

const std::string* param(const std::multimap<std::string, std::string>& q, const std::string& k) {
  auto it = q.find(k);
  return it == q.end() ? nullptr : &it->second;
}

bool parse_i64(const std::string& s, std::int64_t& out) {
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  out = std::stoll(s);
  return true;
}

std::string now_iso8601() {
  auto now = std::chrono::system_clock::now();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(us % 1'000'000));
  return buf;
}

// A host name as Cloudflare accepts it: labels of 1..63 letters, digits,
// '-' or '_', a leading "*" label allowed, at most 253 characters.
bool valid_host(const std::string& name) {
  if (name.empty() || name.size() > 253) {
    return false;
  }
  std::size_t start = 0;
  bool first = true;
  while (true) {
    auto dot = name.find('.', start);
    std::string label = name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (label.empty() || label.size() > 63) {
      return false;
    }
    if (!(first && label == "*")) {
      for (unsigned char c : label) {
        if (!(std::isalnum(c) || c == '-' || c == '_')) {
          return false;
        }
      }
    }
    if (dot == std::string::npos) {
      return true;
    }
    first = false;
    start = dot + 1;
  }
}

bool valid_token_format(const std::string& t) {
  if (t.empty()) {
    return false;
  }
  for (unsigned char c : t) {
    if (!(std::isalnum(c) || c == '-' || c == '_')) {
      return false;
    }
  }
  return true;
}

bool proxiable(const std::string& type) {
  return type == "A" || type == "AAAA" || type == "CNAME";
}

const std::set<std::string>& known_types() {
  static const std::set<std::string> t{"A", "AAAA", "CNAME", "MX", "SRV", "TXT", "NS"};
  return t;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
  }
}

// --- envelopes ---------------------------------------------------------------

struct api_error {
  int status = 400;
  int code = 0;
  std::string message;
  json chain = nullptr; // error_chain, when Cloudflare sends one
};

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

http::response envelope_error(int status, const std::vector<api_error>& errs) {
  json e = json::array();
  for (const auto& x : errs) {
    json one = {{"code", x.code}, {"message", x.message}};
    if (!x.chain.is_null()) {
      one["error_chain"] = x.chain;
    }
    e.push_back(std::move(one));
  }
  json body = {{"success", false}, {"errors", e}, {"messages", json::array()}, {"result", nullptr}};
  http::response r;
  r.status = status;
  r.body = dump(body);
  return r;
}

http::response envelope_error(const api_error& e) { return envelope_error(e.status, {e}); }

http::response envelope_ok(json result, json result_info = nullptr) {
  json body = {{"success", true}, {"errors", json::array()}, {"messages", json::array()},
               {"result", std::move(result)}};
  if (!result_info.is_null()) {
    body["result_info"] = std::move(result_info);
  }
  http::response r;
  r.status = 200;
  r.body = dump(body);
  return r;
}

api_error validation(int code, std::string message) {
  return api_error{400, code, std::move(message), nullptr};
}

std::optional<int> int_field(const json& o, const char* k) {
  if (o.is_object() && o.contains(k) && o[k].is_number_integer()) {
    auto v = o[k].get<std::int64_t>();
    if (v >= 0 && v <= 65535) {
      return static_cast<int>(v);
    }
  }
  return std::nullopt;
}

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) {
      ++i;
    }
    std::size_t j = i;
    while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) {
      ++j;
    }
    if (j > i) {
      out.push_back(s.substr(i, j - i));
    }
    i = j;
  }
  return out;
}

// Turns a request body (or a seed) into a record of zone `zone`, checking
// what Cloudflare checks. lenient: also take MX and SRV content in
// presentation form ("10 mail.example.com"), which only seeds may do.
std::optional<api_error> build_record(const json& body, const std::string& zone, bool lenient,
                                      cloudflare_record& out) {
  if (!body.is_object()) {
    return validation(9207, "Request body is invalid.");
  }
  cloudflare_record r;
  r.zone = zone;
  if (!body.contains("type") || !body["type"].is_string() ||
      known_types().count(upper(body["type"].get<std::string>())) == 0) {
    return validation(9020, "Invalid DNS record type");
  }
  r.type = upper(body["type"].get<std::string>());

  if (!body.contains("name") || !body["name"].is_string()) {
    return validation(9000, "DNS name is invalid.");
  }
  std::string name = strip_dot(lower(body["name"].get<std::string>()));
  if (name == "@") {
    name = zone;
  } else if (name != zone && !ends_with(name, "." + zone)) {
    // Cloudflare reads a name outside the zone as relative to it.
    name = name.empty() ? zone : name + "." + zone;
  }
  if (!valid_host(name)) {
    return validation(9000, "DNS name is invalid.");
  }
  r.name = name;

  std::string content;
  bool has_content = body.contains("content") && body["content"].is_string();
  if (has_content) {
    content = body["content"].get<std::string>();
  }
  if (r.type == "A" || r.type == "AAAA") {
    int family = r.type == "A" ? AF_INET : AF_INET6;
    unsigned char buf[16];
    char text[INET6_ADDRSTRLEN];
    if (!has_content || inet_pton(family, content.c_str(), buf) != 1 ||
        inet_ntop(family, buf, text, sizeof text) == nullptr) {
      return r.type == "A" ? validation(9005, "Content for A record must be a valid IPv4 address.")
                           : validation(9006, "Content for AAAA record must be a valid IPv6 address.");
    }
    r.content = text;
  } else if (r.type == "CNAME" || r.type == "NS") {
    std::string host = strip_dot(lower(content));
    if (!has_content || !valid_host(host)) {
      return validation(r.type == "CNAME" ? 9007 : 1004,
                        "Content for " + r.type + " record is invalid.");
    }
    r.content = host;
  } else if (r.type == "MX") {
    auto prio = int_field(body, "priority");
    auto w = words(content);
    if (!prio && lenient && w.size() == 2 && w[0].find_first_not_of("0123456789") == std::string::npos &&
        w[0].size() <= 5 && std::stoi(w[0]) <= 65535) {
      prio = std::stoi(w[0]);
      content = w[1];
    }
    std::string host = strip_dot(lower(content));
    if (!prio) {
      return validation(1004, "MX record priority must be an integer between 0 and 65535.");
    }
    if (!has_content || (host != "" && !valid_host(host))) {
      return validation(1004, "Content for MX record is invalid.");
    }
    r.priority = prio;
    r.content = host.empty() ? "." : host;
  } else if (r.type == "SRV") {
    json d = body.contains("data") ? body["data"] : json(nullptr);
    if (!d.is_object() && lenient) {
      auto w = words(content);
      auto num = [](const std::string& s) -> json {
        if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos) {
          return nullptr;
        }
        return std::stoi(s);
      };
      if (w.size() == 4) {
        d = {{"priority", num(w[0])}, {"weight", num(w[1])}, {"port", num(w[2])}, {"target", w[3]}};
      }
    }
    auto prio = int_field(d, "priority");
    auto weight = int_field(d, "weight");
    auto port = int_field(d, "port");
    std::string target =
      d.is_object() && d.contains("target") && d["target"].is_string()
        ? strip_dot(lower(d["target"].get<std::string>()))
        : std::string("!");
    if (!prio || !weight || !port || (!target.empty() && !valid_host(target))) {
      return validation(1004,
                        "SRV record data must hold priority, weight and port (0..65535) and a target host.");
    }
    if (target.empty()) {
      target = ".";
    }
    r.priority = prio;
    r.data = {{"priority", *prio}, {"weight", *weight}, {"port", *port}, {"target", target}};
    r.content = std::to_string(*weight) + " " + std::to_string(*port) + " " + target;
  } else { // TXT
    if (!has_content || content.empty() || content.size() > 2048) {
      return validation(1004, "Content for TXT record is invalid.");
    }
    r.content = content;
  }

  r.ttl = 1;
  if (body.contains("ttl")) {
    const auto& t = body["ttl"];
    std::int64_t v = t.is_number_integer() ? t.get<std::int64_t>() : -1;
    if (!(v == 1 || (v >= 60 && v <= 86400))) {
      return validation(9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.");
    }
    r.ttl = static_cast<int>(v);
  }
  r.proxied = false;
  if (body.contains("proxied")) {
    if (!body["proxied"].is_boolean()) {
      return validation(1004, "proxied must be a boolean.");
    }
    r.proxied = body["proxied"].get<bool>();
  }
  if (r.proxied && !proxiable(r.type)) {
    return validation(9004, "This record type cannot be proxied.");
  }
  if (r.proxied) {
    // A proxied record's TTL is Auto and cannot be edited.
    r.ttl = 1;
  }
  out = std::move(r);
  return std::nullopt;
}

// The request body that would recreate r (PATCH merges into it).
json body_of(const cloudflare_record& r) {
  json b = {{"type", r.type}, {"name", r.name}, {"content", r.content}, {"ttl", r.ttl},
            {"proxied", r.proxied}};
  if (r.priority) {
    b["priority"] = *r.priority;
  }
  if (!r.data.is_null()) {
    b["data"] = r.data;
  }
  return b;
}

bool identical(const cloudflare_record& a, const cloudflare_record& b) {
  return a.type == b.type && a.name == b.name && a.content == b.content &&
         a.priority == b.priority && a.data == b.data;
}

struct stored {
  cloudflare_record rec;
  std::string created_on;
  std::string modified_on;
};

struct zone_state {
  std::string id;
  std::string name;
  std::string created_on;
  std::map<std::uint64_t, stored> by_seq; // creation order
  std::unordered_map<std::string, std::uint64_t> by_id;
  std::multimap<std::string, std::uint64_t> by_name;
};

json zone_json(const zone_state& z) {
  return {{"id", z.id},
          {"name", z.name},
          {"status", "active"},
          {"paused", false},
          {"type", "full"},
          {"development_mode", 0},
          {"name_servers", {"ada.ns.cloudflare.com", "bob.ns.cloudflare.com"}},
          {"original_name_servers", nullptr},
          {"created_on", z.created_on},
          {"modified_on", z.created_on},
          {"account", {{"id", hex32("account")}, {"name", "stand-in"}}}};
}

json record_json(const zone_state& z, const stored& s) {
  const auto& r = s.rec;
  json j = {{"id", r.id},
            {"zone_id", z.id},
            {"zone_name", z.name},
            {"name", r.name},
            {"type", r.type},
            {"content", r.content},
            {"proxiable", proxiable(r.type)},
            {"proxied", r.proxied},
            {"ttl", r.ttl},
            {"settings", json::object()},
            {"meta", {{"auto_added", false}, {"managed_by_apps", false}, {"managed_by_argo_tunnel", false}}},
            {"comment", nullptr},
            {"tags", json::array()},
            {"created_on", s.created_on},
            {"modified_on", s.modified_on}};
  if (r.priority) {
    j["priority"] = *r.priority;
  }
  if (!r.data.is_null()) {
    j["data"] = r.data;
  }
  return j;
}

} // namespace

// --- the stand-in ------------------------------------------------------------

struct cloudflare_standin::impl {
  cloudflare_standin_options opt;

  mutable std::mutex mu;
  std::set<std::string> tokens;
  bool refuse_all = false;
  std::map<std::string, zone_state> zones;            // by name
  std::unordered_map<std::string, std::string> zone_by_id; // id -> name
  std::uint64_t next_seq = 0;
  int fail_remaining = 0;
  int fail_status = 503;
  cloudflare_standin_counters c;
  std::deque<std::int64_t> admitted; // requests admitted by the rate limit, in the window
  std::deque<std::int64_t> arrivals; // every /client/v4 request, in the window

  std::unique_ptr<http::server> server;

  std::int64_t now_ms() const {
    if (opt.clock_ms) {
      return opt.clock_ms();
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
  }

  // -- with mu held --

  zone_state& zone_named(const std::string& name) {
    auto it = zones.find(name);
    if (it != zones.end()) {
      return it->second;
    }
    zone_state z;
    z.name = name;
    z.id = hex32("zone:" + name);
    z.created_on = now_iso8601();
    zone_by_id[z.id] = name;
    return zones.emplace(name, std::move(z)).first->second;
  }

  zone_state* zone_by(const std::string& id) {
    auto it = zone_by_id.find(id);
    return it == zone_by_id.end() ? nullptr : &zones.at(it->second);
  }

  stored& insert(zone_state& z, cloudflare_record r) {
    auto seq = ++next_seq;
    r.id = hex32(z.id + "/record/" + std::to_string(seq));
    r.zone = z.name;
    stored s;
    s.created_on = now_iso8601();
    s.modified_on = s.created_on;
    s.rec = std::move(r);
    z.by_id[s.rec.id] = seq;
    z.by_name.emplace(s.rec.name, seq);
    return z.by_seq.emplace(seq, std::move(s)).first->second;
  }

  void unindex_name(zone_state& z, const std::string& name, std::uint64_t seq) {
    auto range = z.by_name.equal_range(name);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == seq) {
        z.by_name.erase(it);
        return;
      }
    }
  }

  // Cloudflare's refusals of a record next to the others at its name.
  std::optional<api_error> conflicts(const zone_state& z, const cloudflare_record& r,
                                     const std::string& self_id) const {
    auto range = z.by_name.equal_range(r.name);
    for (auto it = range.first; it != range.second; ++it) {
      const auto& other = z.by_seq.at(it->second).rec;
      if (other.id != self_id && identical(other, r)) {
        return validation(81058, "An identical record already exists.");
      }
    }
    for (auto it = range.first; it != range.second; ++it) {
      const auto& other = z.by_seq.at(it->second).rec;
      if (other.id == self_id) {
        continue;
      }
      bool clash = (r.type == "CNAME" && proxiable(other.type)) ||
                   (proxiable(r.type) && other.type == "CNAME");
      if (clash) {
        return validation(81053, "An A, AAAA, or CNAME record with that host already exists.");
      }
    }
    return std::nullopt;
  }

  void note_arrival(std::int64_t now) {
    std::int64_t w = std::max<std::int64_t>(1, opt.rate_limit_window_ms);
    while (!arrivals.empty() && arrivals.front() <= now - w) {
      arrivals.pop_front();
    }
    arrivals.push_back(now);
    c.max_requests_in_window = std::max<std::uint64_t>(c.max_requests_in_window, arrivals.size());
  }

  std::optional<http::response> check_auth(const http::request& rq) {
    const std::string* h = rq.header("authorization");
    if (h == nullptr) {
      return envelope_error(400, {{400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers"}});
    }
    std::string token;
    bool bearer = h->size() > 7 && lower(h->substr(0, 7)) == "bearer ";
    if (bearer) {
      token = h->substr(7);
    }
    if (!bearer || !valid_token_format(token)) {
      api_error e{400, 6003, "Invalid request headers",
                  json::array({{{"code", 6111}, {"message", "Invalid format for Authorization header"}}})};
      return envelope_error(e);
    }
    if (refuse_all || tokens.count(token) == 0) {
      return envelope_error(403, {{403, 10000, "Authentication error"}});
    }
    return std::nullopt;
  }

  std::optional<http::response> check_rate(std::int64_t now) {
    if (opt.rate_limit_requests == 0) {
      return std::nullopt;
    }
    std::int64_t w = std::max<std::int64_t>(1, opt.rate_limit_window_ms);
    while (!admitted.empty() && admitted.front() <= now - w) {
      admitted.pop_front();
    }
    if (admitted.size() >= opt.rate_limit_requests) {
      // Seconds until the oldest admitted request leaves the window, rounded up.
      std::int64_t wait_ms = admitted.front() + w - now;
      std::int64_t secs = std::max<std::int64_t>(1, (wait_ms + 999) / 1000);
      auto r = envelope_error(429, {{429, 971, "Please wait and consider throttling your request speed"}});
      r.headers.emplace_back("Retry-After", std::to_string(secs));
      return r;
    }
    admitted.push_back(now);
    return std::nullopt;
  }

  http::response no_route(const std::string& path) {
    return envelope_error(
      404, {{404, 7003, "Could not route to " + path + ", perhaps your object identifier is invalid?"},
            {404, 7000, "No route for that URI"}});
  }

  http::response not_allowed() {
    return envelope_error(405, {{405, 7001, "Method not allowed for this endpoint"}});
  }

  http::response api(const http::request& rq) {
    std::int64_t now = now_ms();
    ++c.requests;
    ++c.by_method[rq.method];
    note_arrival(now);
    if (auto refused = check_auth(rq)) {
      ++c.unauthorized;
      return *refused;
    }
    if (auto limited = check_rate(now)) {
      ++c.rate_limited;
      return *limited;
    }
    if (fail_remaining > 0) {
      --fail_remaining;
      ++c.injected_failures;
      if (fail_status == 429) {
        ++c.rate_limited;
        auto r = envelope_error(429, {{429, 971, "Please wait and consider throttling your request speed"}});
        r.headers.emplace_back("Retry-After", "1");
        return r;
      }
      // Cloudflare documents no code for an outage; the status stands in.
      return envelope_error(fail_status, {{fail_status, fail_status, reason_phrase(fail_status)}});
    }

    std::string rel = rq.path.substr(api_prefix.size()); // "/zones/..."
    std::vector<std::string> seg;
    for (std::size_t i = 0; i < rel.size();) {
      auto slash = rel.find('/', i);
      std::string s = rel.substr(i, slash == std::string::npos ? std::string::npos : slash - i);
      if (!s.empty()) {
        seg.push_back(s);
      }
      if (slash == std::string::npos) {
        break;
      }
      i = slash + 1;
    }
    if (seg.empty() || seg[0] != "zones" || seg.size() > 4 || (seg.size() >= 3 && seg[2] != "dns_records")) {
      return no_route(rel);
    }
    if (seg.size() == 1) {
      return rq.method == "GET" ? list_zones(rq) : not_allowed();
    }
    zone_state* z = zone_by(seg[1]);
    if (z == nullptr) {
      return no_route(rel);
    }
    if (seg.size() == 2) {
      return rq.method == "GET" ? envelope_ok(zone_json(*z)) : not_allowed();
    }
    if (seg.size() == 3) {
      if (rq.method == "GET") {
        return list_records(*z, rq);
      }
      if (rq.method == "POST") {
        return create(*z, rq);
      }
      return not_allowed();
    }
    auto it = z->by_id.find(seg[3]);
    if (rq.method != "GET" && rq.method != "PATCH" && rq.method != "PUT" && rq.method != "DELETE") {
      return not_allowed();
    }
    if (it == z->by_id.end()) {
      return envelope_error(404, {{404, 81044, "Record does not exist."}});
    }
    stored& s = z->by_seq.at(it->second);
    if (rq.method == "GET") {
      return envelope_ok(record_json(*z, s));
    }
    if (rq.method == "DELETE") {
      std::string id = s.rec.id;
      auto seq = it->second;
      unindex_name(*z, s.rec.name, seq);
      z->by_id.erase(it);
      z->by_seq.erase(seq);
      ++c.writes;
      return envelope_ok({{"id", id}});
    }
    return update(*z, s, it->second, rq);
  }

  http::response list_zones(const http::request& rq) {
    auto q = parse_query(rq.query);
    std::vector<const zone_state*> hits;
    const std::string* name = param(q, "name");
    const std::string* status = param(q, "status");
    for (const auto& [n, z] : zones) {
      if (name != nullptr && strip_dot(lower(*name)) != n) {
        continue;
      }
      if (status != nullptr && *status != "active") {
        continue;
      }
      hits.push_back(&z);
    }
    // Zones: per_page 5..50, default 20.
    return page_of(hits, q, 20, 5, 50, [](const zone_state* z) { return zone_json(*z); });
  }

  template <class T, class F>
  http::response page_of(const std::vector<T>& all, const std::multimap<std::string, std::string>& q,
                         std::int64_t def_per_page, std::int64_t min_per_page,
                         std::int64_t max_per_page, F to_json) {
    std::int64_t page = 1, per_page = def_per_page;
    if (const auto* p = param(q, "page")) {
      parse_i64(*p, page);
    }
    if (const auto* p = param(q, "per_page")) {
      parse_i64(*p, per_page);
    }
    page = std::max<std::int64_t>(1, page);
    per_page = std::clamp<std::int64_t>(per_page, min_per_page, max_per_page);
    std::int64_t total = static_cast<std::int64_t>(all.size());
    std::int64_t pages = std::max<std::int64_t>(1, (total + per_page - 1) / per_page);
    json result = json::array();
    // page * per_page may overflow for absurd values: compare by division.
    if ((page - 1) < (total + per_page - 1) / per_page) {
      std::int64_t first = (page - 1) * per_page;
      for (std::int64_t i = first; i < total && i < first + per_page; ++i) {
        result.push_back(to_json(all[static_cast<std::size_t>(i)]));
      }
    }
    json info = {{"page", page},
                 {"per_page", per_page},
                 {"count", result.size()},
                 {"total_count", total},
                 {"total_pages", pages}};
    return envelope_ok(std::move(result), std::move(info));
  }

  http::response list_records(const zone_state& z, const http::request& rq) {
    auto q = parse_query(rq.query);
    bool any = false;
    if (const auto* m = param(q, "match")) {
      any = *m == "any";
    }
    std::vector<std::function<bool(const cloudflare_record&)>> tests;
    if (const auto* t = param(q, "type")) {
      std::string want = upper(*t);
      tests.push_back([want](const cloudflare_record& r) { return r.type == want; });
    }
    for (const char* k : {"name", "name.exact"}) {
      if (const auto* n = param(q, k)) {
        std::string want = strip_dot(lower(*n));
        tests.push_back([want](const cloudflare_record& r) { return r.name == want; });
      }
    }
    if (const auto* n = param(q, "name.contains")) {
      std::string want = lower(*n);
      tests.push_back([want](const cloudflare_record& r) { return r.name.find(want) != std::string::npos; });
    }
    if (const auto* n = param(q, "name.startswith")) {
      std::string want = lower(*n);
      tests.push_back([want](const cloudflare_record& r) { return r.name.rfind(want, 0) == 0; });
    }
    if (const auto* n = param(q, "name.endswith")) {
      std::string want = strip_dot(lower(*n));
      tests.push_back([want](const cloudflare_record& r) { return ends_with(r.name, want); });
    }
    for (const char* k : {"content", "content.exact"}) {
      if (const auto* v = param(q, k)) {
        std::string want = *v;
        tests.push_back([want](const cloudflare_record& r) { return r.content == want; });
      }
    }
    if (const auto* v = param(q, "proxied")) {
      bool want = *v == "true";
      tests.push_back([want](const cloudflare_record& r) { return r.proxied == want; });
    }
    std::vector<const stored*> hits;
    for (const auto& [seq, s] : z.by_seq) {
      (void)seq;
      bool ok = !any || tests.empty();
      for (const auto& t : tests) {
        bool pass = t(s.rec);
        if (any && pass) {
          ok = true;
          break;
        }
        if (!any && !pass) {
          ok = false;
          break;
        }
      }
      if (ok) {
        hits.push_back(&s);
      }
    }
    if (const auto* o = param(q, "order")) {
      bool desc = false;
      if (const auto* d = param(q, "direction")) {
        desc = *d == "desc";
      }
      std::string key = *o;
      auto less = [&key](const stored* a, const stored* b) {
        const auto& x = a->rec;
        const auto& y = b->rec;
        if (key == "type") return x.type < y.type;
        if (key == "name") return x.name < y.name;
        if (key == "content") return x.content < y.content;
        if (key == "ttl") return x.ttl < y.ttl;
        if (key == "proxied") return x.proxied < y.proxied;
        return false;
      };
      std::stable_sort(hits.begin(), hits.end(), [&](const stored* a, const stored* b) {
        return desc ? less(b, a) : less(a, b);
      });
    }
    return page_of(hits, q, 100, 1, std::max<std::int64_t>(1, opt.max_per_page),
                   [&z](const stored* s) { return record_json(z, *s); });
  }

  http::response create(zone_state& z, const http::request& rq) {
    json body = json::parse(rq.body, nullptr, false);
    cloudflare_record r;
    if (auto e = build_record(body.is_discarded() ? json(nullptr) : body, z.name, false, r)) {
      return envelope_error(*e);
    }
    if (auto e = conflicts(z, r, "")) {
      return envelope_error(*e);
    }
    stored& s = insert(z, std::move(r));
    ++c.writes;
    return envelope_ok(record_json(z, s));
  }

  http::response update(zone_state& z, stored& s, std::uint64_t seq, const http::request& rq) {
    json body = json::parse(rq.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return envelope_error(validation(9207, "Request body is invalid."));
    }
    json merged = body;
    if (rq.method == "PATCH") {
      merged = body_of(s.rec);
      // A new type drops the old type's own fields unless given again.
      if (body.contains("type")) {
        merged.erase("priority");
        merged.erase("data");
      }
      for (auto it = body.begin(); it != body.end(); ++it) {
        merged[it.key()] = it.value();
      }
    }
    cloudflare_record r;
    if (auto e = build_record(merged, z.name, false, r)) {
      return envelope_error(*e);
    }
    if (auto e = conflicts(z, r, s.rec.id)) {
      return envelope_error(*e);
    }
    r.id = s.rec.id;
    r.zone = z.name;
    if (r.name != s.rec.name) {
      unindex_name(z, s.rec.name, seq);
      z.by_name.emplace(r.name, seq);
    }
    s.rec = std::move(r);
    s.modified_on = now_iso8601();
    ++c.writes;
    return envelope_ok(record_json(z, s));
  }

  // -- the control endpoints (no auth, outside /client/v4; mu not held) --

  http::response control(const http::request& rq, cloudflare_standin& self) {
    http::response r;
    if (rq.path == "/__standin/stats" && rq.method == "GET") {
      r.body = dump(self.stats());
      return r;
    }
    if (rq.path == "/__standin/seed" && rq.method == "POST") {
      json body = json::parse(rq.body, nullptr, false);
      if (body.is_discarded() || !body.is_array()) {
        r.status = 400;
        r.body = dump({{"error", "seed: the body must be a JSON array of records"}});
        return r;
      }
      try {
        r.body = dump({{"seeded", self.seed_json(body)}});
      } catch (const std::exception& e) {
        r.status = 400;
        r.body = dump({{"error", e.what()}});
      }
      return r;
    }
    r.status = 404;
    r.body = dump({{"error", "no stand-in endpoint " + rq.method + " " + rq.path}});
    return r;
  }

  std::string seed_one(const json& element, std::size_t index, cloudflare_record& out) {
    std::string where = "seed: records[" + std::to_string(index) + "]";
    if (!element.is_object() || !element.contains("zone") || !element["zone"].is_string() ||
        element["zone"].get<std::string>().empty()) {
      return where + ".zone: missing; must be the zone's name";
    }
    std::string zone = strip_dot(lower(element["zone"].get<std::string>()));
    if (!valid_host(zone)) {
      return where + ".zone = " + zone + ": not a valid zone name";
    }
    if (auto e = build_record(element, zone, true, out)) {
      return where + " (" + element.value("name", std::string()) + " " +
             element.value("type", std::string()) + "): " + e->message + " (" +
             std::to_string(e->code) + ")";
    }
    return {};
  }
};

cloudflare_standin::cloudflare_standin(cloudflare_standin_options o) : impl_(std::make_unique<impl>()) {
  impl_->opt = std::move(o);
  for (const auto& t : impl_->opt.tokens) {
    impl_->tokens.insert(t);
  }
}

cloudflare_standin::~cloudflare_standin() { stop(); }

std::string cloudflare_standin::start() {
  std::string host;
  int port = 0;
  if (!split_listen(impl_->opt.listen, host, port)) {
    return "cloudflare stand-in: listen " + impl_->opt.listen + ": must be host:port or [v6]:port";
  }
  if (host.rfind("127.", 0) != 0 && host != "::1") {
    return "cloudflare stand-in: listen " + impl_->opt.listen + ": must be a loopback address";
  }
  if (impl_->server) {
    return "cloudflare stand-in: already started";
  }
  http::server_limits limits;
  limits.max_body_bytes = 64 * 1024 * 1024; // seeds of many records
  limits.max_connections = 4096;
  impl* st = impl_.get();
  auto handler = [this, st](http::request&& rq, http::responder respond) {
    if (rq.path.rfind("/__standin/", 0) == 0 && st->opt.control_endpoints) {
      respond(st->control(rq, *this));
      return;
    }
    if (rq.path != api_prefix && rq.path.rfind(api_prefix + "/", 0) != 0) {
      respond(envelope_error(404, {{404, 7000, "No route for that URI"}}));
      return;
    }
    http::response r;
    {
      std::lock_guard<std::mutex> lk(st->mu);
      r = st->api(rq);
      ++st->c.by_status[r.status];
    }
    respond(std::move(r));
  };
  impl_->server = std::make_unique<http::server>(impl_->opt.listen, limits, handler);
  auto err = impl_->server->start();
  if (!err.empty()) {
    impl_->server.reset();
    return "cloudflare stand-in: " + err;
  }
  return {};
}

void cloudflare_standin::stop() {
  if (impl_ && impl_->server) {
    impl_->server->stop();
  }
}

std::uint16_t cloudflare_standin::port() const {
  return impl_->server ? impl_->server->bound_port() : 0;
}

std::string cloudflare_standin::api_base() const {
  return "http://127.0.0.1:" + std::to_string(port()) + api_prefix;
}

std::string cloudflare_standin::add_zone(const std::string& name) {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->zone_named(strip_dot(lower(name))).id;
}

std::string cloudflare_standin::zone_id(const std::string& name) const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  auto it = impl_->zones.find(strip_dot(lower(name)));
  return it == impl_->zones.end() ? std::string() : it->second.id;
}

void cloudflare_standin::add_token(const std::string& token) {
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->tokens.insert(token);
}

void cloudflare_standin::refuse_all_tokens(bool refuse) {
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->refuse_all = refuse;
}

std::string cloudflare_standin::seed(const cloudflare_record& r) {
  json element = body_of(r);
  element["zone"] = r.zone;
  std::lock_guard<std::mutex> lk(impl_->mu);
  cloudflare_record built;
  auto err = impl_->seed_one(element, 0, built);
  if (!err.empty()) {
    throw std::invalid_argument(err);
  }
  auto& z = impl_->zone_named(built.zone);
  return impl_->insert(z, std::move(built)).rec.id;
}

std::size_t cloudflare_standin::seed_json(const nlohmann::json& records) {
  if (!records.is_array()) {
    throw std::invalid_argument("seed: must be a JSON array of records");
  }
  std::lock_guard<std::mutex> lk(impl_->mu);
  std::vector<cloudflare_record> built(records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    auto err = impl_->seed_one(records[i], i, built[i]);
    if (!err.empty()) {
      throw std::invalid_argument(err);
    }
  }
  for (auto& r : built) {
    auto& z = impl_->zone_named(r.zone);
    impl_->insert(z, std::move(r));
  }
  return built.size();
}

std::vector<cloudflare_record> cloudflare_standin::records(const std::string& zone) const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  std::vector<cloudflare_record> out;
  auto it = impl_->zones.find(strip_dot(lower(zone)));
  if (it != impl_->zones.end()) {
    for (const auto& [seq, s] : it->second.by_seq) {
      (void)seq;
      out.push_back(s.rec);
    }
  }
  return out;
}

void cloudflare_standin::fail_next(int n, int http_status) {
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->fail_remaining = std::max(0, n);
  impl_->fail_status = http_status;
}

cloudflare_standin_counters cloudflare_standin::counters() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->c;
}

nlohmann::json cloudflare_standin::stats() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  const auto& c = impl_->c;
  json by_method = json::object();
  for (const auto& [m, n] : c.by_method) {
    by_method[m] = n;
  }
  json by_status = json::object();
  for (const auto& [s, n] : c.by_status) {
    by_status[std::to_string(s)] = n;
  }
  std::size_t records = 0;
  for (const auto& [name, z] : impl_->zones) {
    (void)name;
    records += z.by_seq.size();
  }
  return {{"requests", c.requests},
          {"writes", c.writes},
          {"rate_limited", c.rate_limited},
          {"unauthorized", c.unauthorized},
          {"injected_failures", c.injected_failures},
          {"by_method", by_method},
          {"by_status", by_status},
          {"max_requests_in_window", c.max_requests_in_window},
          {"rate_limit",
           {{"requests", impl_->opt.rate_limit_requests}, {"window_ms", impl_->opt.rate_limit_window_ms}}},
          {"zones", impl_->zones.size()},
          {"records", records}};
}

} // namespace balctl::test
