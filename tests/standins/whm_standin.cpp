#include "tests/standins/whm_standin.hpp"

#include "api/request.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <sstream>

#include <nlohmann/json.hpp>

#include "transport/http_server.hpp"

namespace balctl::test {

using json = nlohmann::json;

// One item of a zone file as cPanel's zone parser sees it: a comment line
// (:RAW), the $TTL directive, the SOA (several lines), or a resource record
// on one line. Line numbers are not stored: they are the running sum of
// `lines`, so removing an item moves every later item up.
struct whm_standin::entry {
  enum class kind { raw, ttl, soa, rr };
  kind k = kind::rr;
  int lines = 1;
  std::string raw;                          // kind::raw
  std::string name;                         // rr/soa: absolute, lower case, no dot
  std::string type;                         // rr: upper case
  long ttl_s = 14400;
  std::map<std::string, std::string> data;  // rr: address, exchange, ... as dumped
};

struct whm_standin::zone_file {
  std::string name;
  std::vector<entry> entries;
  std::uint32_t serial = 2025010100;
  long default_ttl_s = 14400;
};

namespace {

using entry = whm_standin::entry;
using zone_file = whm_standin::zone_file;
using params = std::map<std::string, std::string>;

const char* standin_host = "whm-standin.invalid";

std::string lower(std::string s) {
  for (auto& c : s) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return s;
}

std::string upper(std::string s) {
  for (auto& c : s) {
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    }
  }
  return s;
}

std::string strip_dot(std::string s) {
  while (!s.empty() && s.back() == '.') {
    s.pop_back();
  }
  return s;
}

bool parse_long(const std::string& s, long& out) {
  if (s.empty()) {
    return false;
  }
  char* end = nullptr;
  out = std::strtol(s.c_str(), &end, 10);
  return end != nullptr && *end == '\0';
}

// application/x-www-form-urlencoded, as in a query string.
params parse_form(const std::string& s, params out = {}) {
  std::size_t pos = 0;
  while (pos <= s.size()) {
    auto amp = s.find('&', pos);
    auto part = s.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    if (!part.empty()) {
      auto eq = part.find('=');
      // The admin API's decoder; a malformed escape is kept as it came.
      auto decode = [](const std::string& in) {
        std::string o;
        return api::percent_decode(in, o) ? o : in;
      };
      out[decode(part.substr(0, eq))] =
          eq == std::string::npos ? std::string() : decode(part.substr(eq + 1));
    }
    if (amp == std::string::npos) {
      break;
    }
    pos = amp + 1;
  }
  return out;
}

bool valid_host(const std::string& name) {
  if (name.empty() || name.size() > 253) {
    return false;
  }
  std::size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) {
        return false;
      }
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '*';
    if (!ok || ++label > 63) {
      return false;
    }
  }
  return label > 0;
}

bool in_zone(const std::string& name, const std::string& zone) {
  return name == zone ||
         (name.size() > zone.size() && name.compare(name.size() - zone.size(), zone.size(), zone) == 0 &&
          name[name.size() - zone.size() - 1] == '.');
}

std::string canonical_address(int family, const std::string& s, bool& ok) {
  unsigned char buf[16];
  char text[INET6_ADDRSTRLEN];
  ok = inet_pton(family, s.c_str(), buf) == 1 && inet_ntop(family, buf, text, sizeof text) != nullptr;
  return ok ? std::string(text) : std::string();
}

bool u16(const std::string& s, long& v) { return parse_long(s, v) && v >= 0 && v <= 65535; }

// The names of a type's data fields, as addzonerecord takes and dumpzone
// shows them.
std::vector<std::string> data_fields(const std::string& type) {
  if (type == "A" || type == "AAAA") {
    return {"address"};
  }
  if (type == "MX") {
    return {"preference", "exchange"};
  }
  if (type == "SRV") {
    return {"priority", "weight", "port", "target"};
  }
  if (type == "CNAME") {
    return {"cname"};
  }
  if (type == "TXT") {
    return {"txtdata"};
  }
  if (type == "NS") {
    return {"nsdname"};
  }
  return {};
}

// Checks and normalises a record's data fields in place: "" or WHM's
// reason for refusing them.
std::string check_data(const std::string& type, std::map<std::string, std::string>& d) {
  for (const auto& f : data_fields(type)) {
    if (d.count(f) == 0 || d[f].empty()) {
      return "You must specify “" + f + "” for a record of type “" + type + "”.";
    }
  }
  bool ok = true;
  long v = 0;
  if (type == "A" || type == "AAAA") {
    auto a = canonical_address(type == "A" ? AF_INET : AF_INET6, d["address"], ok);
    if (!ok) {
      return "“" + d["address"] + "” is not a valid " + (type == "A" ? "IPv4" : "IPv6") +
             " address.";
    }
    d["address"] = a;
  } else if (type == "MX") {
    if (!u16(d["preference"], v)) {
      return "“" + d["preference"] + "” is not a valid MX preference.";
    }
    d["preference"] = std::to_string(v);
  } else if (type == "SRV") {
    for (const char* f : {"priority", "weight", "port"}) {
      if (!u16(d[f], v)) {
        return "“" + d[f] + "” is not a valid SRV " + f + ".";
      }
      d[f] = std::to_string(v);
    }
  }
  // Host names: cPanel writes them absolute and dumps them without the dot.
  for (const char* f : {"exchange", "target", "cname", "nsdname"}) {
    if (d.count(f) != 0) {
      auto h = lower(strip_dot(d[f]));
      if (!valid_host(h)) {
        return "“" + d[f] + "” is not a valid domain name.";
      }
      d[f] = h;
    }
  }
  return {};
}

// The record's name as stored: absolute, lower case, no dot. A name with
// its dot is absolute; one without is relative to the zone, like a zone
// file would read it.
bool absolute_name(const std::string& given, const std::string& zone, std::string& out) {
  auto n = lower(given);
  if (n == "@") {
    out = zone;
  } else if (!n.empty() && n.back() == '.') {
    out = strip_dot(n);
  } else {
    out = n.empty() ? std::string() : n + "." + zone;
  }
  return valid_host(out) && in_zone(out, zone);
}

const std::set<std::string>& known_types() {
  static const std::set<std::string> t = {"A", "AAAA", "MX", "SRV", "CNAME", "TXT", "NS"};
  return t;
}

// Builds a resource record from addzonerecord/editzonerecord parameters
// over `base` (a new record, or the one being edited). "" or the reason.
std::string build_rr(const zone_file& z, const params& p, entry base, entry& out) {
  auto get = [&](const char* k) -> const std::string* {
    auto it = p.find(k);
    return it == p.end() ? nullptr : &it->second;
  };
  if (const auto* n = get("name")) {
    if (!absolute_name(*n, z.name, base.name)) {
      return "“" + *n + "” is not a valid name in the zone “" + z.name + "”.";
    }
  }
  if (base.name.empty()) {
    return "You must specify the “name” parameter.";
  }
  if (const auto* t = get("type")) {
    auto type = upper(*t);
    if (known_types().count(type) == 0) {
      return "“" + *t + "” is not a valid record type.";
    }
    if (type != base.type) {
      base.data.clear();
    }
    base.type = type;
  }
  if (base.type.empty()) {
    return "You must specify the “type” parameter.";
  }
  if (const auto* c = get("class")) {
    if (upper(*c) != "IN") {
      return "“" + *c + "” is not a valid record class.";
    }
  }
  if (const auto* t = get("ttl")) {
    long ttl = 0;
    if (!parse_long(*t, ttl) || ttl < 1 || ttl > 2147483647L) {
      return "“" + *t + "” is not a valid TTL.";
    }
    base.ttl_s = ttl;
  }
  for (const auto& f : data_fields(base.type)) {
    if (const auto* v = get(f.c_str())) {
      base.data[f] = *v;
    }
  }
  auto bad = check_data(base.type, base.data);
  if (!bad.empty()) {
    return bad;
  }
  base.k = entry::kind::rr;
  base.lines = 1;
  out = std::move(base);
  return {};
}

// The item that starts at `line`, or entries.size().
std::size_t item_at(const zone_file& z, long line) {
  long at = 1;
  for (std::size_t i = 0; i < z.entries.size(); ++i) {
    if (at == line) {
      return i;
    }
    at += z.entries[i].lines;
  }
  return z.entries.size();
}

std::string presentation(const entry& e) {
  const auto& d = e.data;
  auto f = [&](const char* k) {
    auto it = d.find(k);
    return it == d.end() ? std::string() : it->second;
  };
  if (e.type == "MX") {
    return f("preference") + " " + f("exchange");
  }
  if (e.type == "SRV") {
    return f("priority") + " " + f("weight") + " " + f("port") + " " + f("target");
  }
  auto fields = data_fields(e.type);
  return fields.empty() ? std::string() : f(fields[0].c_str());
}

// A whm_record → addzonerecord parameters (the seed() hook).
params params_of(const whm_record& r) {
  params p = {{"name", r.name + "."}, {"type", r.type}, {"ttl", std::to_string(r.ttl_s)}};
  auto type = upper(r.type);
  std::istringstream in(r.content);
  std::vector<std::string> w;
  for (std::string s; in >> s;) {
    w.push_back(s);
  }
  auto fields = data_fields(type);
  if (type == "TXT") {
    p["txtdata"] = r.content;
  } else {
    for (std::size_t i = 0; i < fields.size() && i < w.size(); ++i) {
      p[fields[i]] = w[i];
    }
  }
  return p;
}

json envelope(const std::string& command, int result, const std::string& reason) {
  return {{"metadata",
           {{"command", command}, {"reason", reason}, {"result", result}, {"version", 1}}}};
}

http::response json_response(int status, const json& body) {
  http::response r;
  r.status = status;
  r.content_type = "application/json; charset=UTF-8";
  r.body = body.dump();
  return r;
}

http::response refusal(const std::string& command, const std::string& reason) {
  return json_response(200, envelope(command, 0, reason));
}

// cpsrvd's answer to credentials it does not accept.
http::response access_denied(int status) {
  return json_response(status, {{"cpanelresult",
                                 {{"apiversion", "2"},
                                  {"error", "Access denied"},
                                  {"data", {{"reason", "Access denied"}, {"result", "0"}}},
                                  {"type", "text"}}}});
}

json dump_entry(const zone_file& z, const entry& e, long line) {
  json j = {{"Line", line}};
  switch (e.k) {
    case entry::kind::raw:
      j["type"] = ":RAW";
      j["raw"] = e.raw;
      j["name"] = "";
      j["ttl"] = std::to_string(z.default_ttl_s);
      break;
    case entry::kind::ttl:
      j["type"] = "$TTL";
      j["name"] = "";
      j["ttl"] = std::to_string(e.ttl_s);
      break;
    case entry::kind::soa:
      j["type"] = "SOA";
      j["name"] = e.name + ".";
      j["class"] = "IN";
      j["ttl"] = std::to_string(e.ttl_s);
      j["Lines"] = e.lines;
      j["serial"] = std::to_string(z.serial);
      for (const auto& [k, v] : e.data) {
        j[k] = v;
      }
      break;
    case entry::kind::rr:
      j["type"] = e.type;
      j["name"] = e.name + ".";
      j["class"] = "IN";
      j["ttl"] = std::to_string(e.ttl_s);
      for (const auto& [k, v] : e.data) {
        j[k] = v;
      }
      break;
  }
  return j;
}

std::string reload_reason(const zone_file& z) {
  return std::string("Bind reloading on ") + standin_host + " using rndc zone: [" + z.name + "]";
}

} // namespace

whm_standin::whm_standin() : whm_standin(options{}) {}

whm_standin::whm_standin(options o) : opt_(std::move(o)) {
  tokens_.insert({opt_.user, opt_.token});
}

whm_standin::~whm_standin() { stop(); }

std::string whm_standin::start() {
  if (server_) {
    return "whm stand-in: already started";
  }
  auto srv = std::make_unique<http::server>(
      "127.0.0.1:0", http::server_limits{}, [this](http::request&& req, http::responder respond) {
        http::response out;
        handle(std::move(req), out);
        respond(std::move(out));
      });
  auto err = srv->start();
  if (!err.empty()) {
    return "whm stand-in: " + err;
  }
  port_ = srv->bound_port();
  server_ = std::move(srv);
  return {};
}

void whm_standin::stop() {
  if (server_) {
    server_->stop();
    server_.reset();
  }
}

std::uint16_t whm_standin::port() const { return port_; }

std::string whm_standin::api_base() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

std::int64_t whm_standin::now_ms() const {
  if (opt_.clock_ms) {
    return opt_.clock_ms();
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void whm_standin::add_zone(const std::string& zone_name) {
  auto name = lower(strip_dot(zone_name));
  auto z = std::make_unique<zone_file>();
  z->name = name;
  entry e;
  e.k = entry::kind::raw;
  e.raw = std::string("; cPanel first:110.0.0 latest:110.0.0 Cpanel::ZoneFile::VERSION:1.3 hostname:") +
          standin_host;
  z->entries.push_back(e);
  e.raw = "; Zone file for " + name;
  z->entries.push_back(e);
  entry ttl;
  ttl.k = entry::kind::ttl;
  ttl.ttl_s = z->default_ttl_s;
  z->entries.push_back(ttl);
  entry soa;
  soa.k = entry::kind::soa;
  soa.name = name;
  soa.lines = 7; // "@ IN SOA mname rname (" + serial .. minimum + ")"
  soa.ttl_s = 86400;
  soa.data = {{"mname", "ns1." + name}, {"rname", "hostmaster." + name}, {"refresh", "3600"},
              {"retry", "1800"}, {"expire", "1209600"}, {"minimum", "86400"}};
  z->entries.push_back(soa);
  entry blank;
  blank.k = entry::kind::raw;
  z->entries.push_back(blank);
  for (const char* ns : {"ns1.", "ns2."}) {
    entry rr;
    rr.name = name;
    rr.type = "NS";
    rr.ttl_s = 86400;
    rr.data = {{"nsdname", ns + name}};
    z->entries.push_back(rr);
  }
  std::lock_guard<std::mutex> lock(mu_);
  zones_[name] = std::move(z);
}

std::string whm_standin::seed(const std::string& zone_name, const whm_record& r) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = zones_.find(lower(strip_dot(zone_name)));
  if (it == zones_.end()) {
    return "Zone does not exist.";
  }
  entry rr;
  auto bad = build_rr(*it->second, params_of(r), entry{}, rr);
  if (!bad.empty()) {
    return bad;
  }
  it->second->entries.push_back(std::move(rr));
  ++it->second->serial;
  return {};
}

std::vector<whm_record> whm_standin::records(const std::string& zone_name) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<whm_record> out;
  auto it = zones_.find(lower(strip_dot(zone_name)));
  if (it == zones_.end()) {
    return out;
  }
  long line = 1;
  for (const auto& e : it->second->entries) {
    if (e.k == entry::kind::rr) {
      out.push_back({e.name, e.type, presentation(e), static_cast<int>(e.ttl_s),
                     static_cast<int>(line)});
    }
    line += e.lines;
  }
  return out;
}

std::vector<whm_record> whm_standin::records(const std::string& zone, const std::string& name,
                                             const std::string& type) const {
  auto all = records(zone);
  std::vector<whm_record> out;
  auto n = lower(strip_dot(name));
  for (auto& r : all) {
    if (r.name == n && r.type == upper(type)) {
      out.push_back(std::move(r));
    }
  }
  return out;
}

std::uint32_t whm_standin::serial(const std::string& zone_name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = zones_.find(lower(strip_dot(zone_name)));
  return it == zones_.end() ? 0 : it->second->serial;
}

whm_counters whm_standin::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

void whm_standin::fail_next(int n, int http_status, int retry_after_s) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_count_ = n;
  fail_status_ = http_status;
  fail_retry_after_s_ = retry_after_s;
}

void whm_standin::revoke_tokens() {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_.clear();
}

void whm_standin::add_token(const std::string& user, const std::string& token) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_.insert({user, token});
}

void whm_standin::set_rate_limit(std::size_t requests, std::int64_t window_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  opt_.rate_limit_requests = requests;
  opt_.rate_limit_window_ms = window_ms;
  window_.clear();
}

void whm_standin::handle(http::request&& req, http::response& out) {
  std::lock_guard<std::mutex> lock(mu_);
  ++counters_.requests;
  auto count = [this](const http::response& r) {
    if (r.status == 429) {
      ++counters_.rate_limited;
    } else if (r.status == 401 || r.status == 403) {
      ++counters_.auth_refused;
    }
  };

  if (fail_count_ > 0) {
    --fail_count_;
    if (fail_status_ == 401 || fail_status_ == 403) {
      out = access_denied(fail_status_);
    } else {
      out.status = fail_status_;
      out.content_type = "text/html";
      out.body = "<html><body><h1>" + std::to_string(fail_status_) +
                 " (injected by the WHM stand-in)</h1></body></html>";
      if (fail_status_ == 429) {
        out.headers.emplace_back("Retry-After", std::to_string(fail_retry_after_s_));
      }
    }
    count(out);
    return;
  }

  // Path: /json-api/<function>, optionally behind a /cpsessNNN session.
  std::string path = req.path;
  if (path.rfind("/cpsess", 0) == 0) {
    auto slash = path.find('/', 1);
    path = slash == std::string::npos ? std::string() : path.substr(slash);
  }
  const std::string prefix = "/json-api/";
  if (path.rfind(prefix, 0) != 0 || path.size() == prefix.size()) {
    out.status = 404;
    out.content_type = "text/html";
    out.body = "<html><body><h1>404 Not Found</h1></body></html>";
    return;
  }
  auto command = path.substr(prefix.size());

  // Sliding window: admitted requests in (now - window, now].
  if (opt_.rate_limit_requests > 0) {
    auto now = now_ms();
    while (!window_.empty() && window_.front() <= now - opt_.rate_limit_window_ms) {
      window_.erase(window_.begin());
    }
    if (window_.size() >= opt_.rate_limit_requests) {
      auto wait_ms = window_.front() + opt_.rate_limit_window_ms - now;
      auto wait_s = std::max<std::int64_t>(1, (wait_ms + 999) / 1000);
      out = json_response(429, envelope(command, 0,
                                        "Too many requests: " +
                                            std::to_string(opt_.rate_limit_requests) + " per " +
                                            std::to_string(opt_.rate_limit_window_ms) + " ms"));
      out.headers.emplace_back("Retry-After", std::to_string(wait_s));
      count(out);
      return;
    }
    window_.push_back(now);
  }

  // Authorization: whm USER:TOKEN (the scheme in any case).
  bool authorized = false;
  if (const auto* h = req.header("authorization")) {
    auto sp = h->find(' ');
    if (sp != std::string::npos && lower(h->substr(0, sp)) == "whm") {
      auto cred = h->substr(sp + 1);
      auto colon = cred.find(':');
      if (colon != std::string::npos &&
          tokens_.count({cred.substr(0, colon), cred.substr(colon + 1)}) != 0) {
        authorized = true;
      }
    }
  }
  if (!authorized) {
    out = access_denied(403);
    count(out);
    return;
  }

  auto p = parse_form(req.query);
  if (req.method == "POST") {
    p = parse_form(req.body, std::move(p));
  }
  if (p["api.version"] != "1") {
    out = refusal(command, "The WHM stand-in answers WHM API 1 only: add api.version=1.");
    return;
  }
  auto zone_param = [&](const char* first, const char* second) -> zone_file* {
    auto name = p.count(first) != 0 ? p[first] : p[second];
    auto it = zones_.find(lower(strip_dot(name)));
    return it == zones_.end() ? nullptr : it->second.get();
  };
  auto line_param = [&](const zone_file& z, std::size_t& index, std::string& why) {
    long line = 0;
    if (!parse_long(p["line"], line) || line < 1) {
      why = "“" + p["line"] + "” is not a valid line number.";
      return false;
    }
    index = item_at(z, line);
    if (index == z.entries.size() || z.entries[index].k != entry::kind::rr) {
      why = "No resource record starts at line " + std::to_string(line) + " of the zone “" +
            z.name + "”.";
      return false;
    }
    return true;
  };

  if (command == "listzones") {
    json zones = json::array();
    for (const auto& [name, z] : zones_) {
      zones.push_back({{"domain", name}, {"zonefile", name + ".db"}});
    }
    auto body = envelope(command, 1, "OK");
    body["data"] = {{"zone", zones}};
    out = json_response(200, body);
    return;
  }
  if (command == "dumpzone") {
    auto* z = zone_param("domain", "zone");
    if (z == nullptr) {
      out = refusal(command, "Zone does not exist.");
      return;
    }
    json recs = json::array();
    long line = 1;
    for (const auto& e : z->entries) {
      recs.push_back(dump_entry(*z, e, line));
      line += e.lines;
    }
    auto body = envelope(command, 1, "Zone Serialized");
    body["data"] = {{"zone", json::array({{{"record", recs}}})}};
    out = json_response(200, body);
    return;
  }
  if (command == "addzonerecord") {
    auto* z = zone_param("domain", "zone");
    if (z == nullptr) {
      out = refusal(command, "Zone does not exist.");
      return;
    }
    entry base;
    base.ttl_s = 86400; // addzonerecord's documented default
    entry rr;
    auto bad = build_rr(*z, p, base, rr);
    if (!bad.empty()) {
      out = refusal(command, bad);
      return;
    }
    z->entries.push_back(std::move(rr));
    ++z->serial;
    ++counters_.writes;
    out = json_response(200, envelope(command, 1, reload_reason(*z)));
    return;
  }
  if (command == "editzonerecord") {
    auto* z = zone_param("domain", "zone");
    if (z == nullptr) {
      out = refusal(command, "Zone does not exist.");
      return;
    }
    std::size_t index = 0;
    std::string why;
    if (!line_param(*z, index, why)) {
      out = refusal(command, why);
      return;
    }
    entry rr;
    auto bad = build_rr(*z, p, z->entries[index], rr);
    if (!bad.empty()) {
      out = refusal(command, bad);
      return;
    }
    z->entries[index] = std::move(rr);
    ++z->serial;
    ++counters_.writes;
    out = json_response(200, envelope(command, 1, reload_reason(*z)));
    return;
  }
  if (command == "removezonerecord") {
    auto* z = zone_param("zone", "domain");
    if (z == nullptr) {
      out = refusal(command, "Zone does not exist.");
      return;
    }
    std::size_t index = 0;
    std::string why;
    if (!line_param(*z, index, why)) {
      out = refusal(command, why);
      return;
    }
    z->entries.erase(z->entries.begin() + static_cast<std::ptrdiff_t>(index));
    ++z->serial;
    ++counters_.writes;
    out = json_response(200, envelope(command, 1, reload_reason(*z)));
    return;
  }
  out = refusal(command, "Unknown app (“" + command + "”) requested for this version (1) of the API.");
}

} // namespace balctl::test
