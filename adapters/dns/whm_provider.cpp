#include "adapters/dns/whm_provider.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/text.hpp"

namespace balctl::dns {

namespace {

using json = nlohmann::json;
using param = std::pair<std::string, std::string>;

// What the provider keeps across operations: the zones WHM served at the
// last listzones, and the zone found for each name.
struct shared {
  whm_options o;
  std::optional<std::set<std::string>> zones;
  std::unordered_map<std::string, std::string> zone_of;
};

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string with_dot(const std::string& n) { return n.empty() || n.back() == '.' ? n : n + "."; }

std::string lower(std::string s) {
  for (auto& c : s) {
    c = ascii_lower(c);
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

// WHM serialises values read from the zone file as JSON strings ("ttl":
// "14400") and computed ones as numbers ("Line": 12): accept both.
bool as_long(const json& o, const char* key, long& out) {
  if (!o.is_object() || !o.contains(key)) {
    return false;
  }
  const auto& v = o[key];
  if (v.is_number_integer()) {
    out = v.get<long>();
    return true;
  }
  return v.is_string() && parse_long(v.get<std::string>(), out);
}

std::string as_string(const json& o, const char* key) {
  if (o.is_object() && o.contains(key) && o[key].is_string()) {
    return o[key].get<std::string>();
  }
  return {};
}

bool port_number(const std::string& s, long& out) {
  return parse_long(s, out) && out >= 0 && out <= 65535;
}

// The WHM parameters that carry `content` for type t (addzonerecord and
// editzonerecord take the same ones). Host names go absolute, with their
// dot: a zone file would read a name without one as relative to the zone.
// Returns "" or why the content cannot be a record of type t.
std::string data_params(record_type t, const std::string& content, std::vector<param>& out) {
  auto w = content_words(content);
  switch (t) {
    case record_type::a:
    case record_type::aaaa: {
      unsigned char buf[16];
      int family = t == record_type::a ? AF_INET : AF_INET6;
      if (w.size() != 1 || inet_pton(family, w[0].c_str(), buf) != 1) {
        return std::string("content \"") + content + "\" is not an " +
               (t == record_type::a ? "IPv4" : "IPv6") + " address";
      }
      out.emplace_back("address", w[0]);
      return {};
    }
    case record_type::mx: {
      long pref = 0;
      if (w.size() != 2 || !port_number(w[0], pref)) {
        return "content \"" + content + "\" is not \"PREFERENCE EXCHANGE\"";
      }
      out.emplace_back("exchange", with_dot(canonical_name(w[1])));
      out.emplace_back("preference", std::to_string(pref));
      return {};
    }
    case record_type::srv: {
      long prio = 0, weight = 0, port = 0;
      if (w.size() != 4 || !port_number(w[0], prio) || !port_number(w[1], weight) ||
          !port_number(w[2], port)) {
        return "content \"" + content + "\" is not \"PRIORITY WEIGHT PORT TARGET\"";
      }
      out.emplace_back("priority", std::to_string(prio));
      out.emplace_back("weight", std::to_string(weight));
      out.emplace_back("port", std::to_string(port));
      out.emplace_back("target", with_dot(canonical_name(w[3])));
      return {};
    }
  }
  return "unknown record type";
}

// A dumpzone record's value in presentation form ("" when a field is
// missing, which then matches nothing).
std::string content_of(record_type t, const json& rec) {
  switch (t) {
    case record_type::a:
    case record_type::aaaa:
      return as_string(rec, "address");
    case record_type::mx: {
      long pref = 0;
      auto exchange = as_string(rec, "exchange");
      if (!as_long(rec, "preference", pref) || exchange.empty()) {
        return {};
      }
      return std::to_string(pref) + " " + canonical_name(exchange);
    }
    case record_type::srv: {
      long prio = 0, weight = 0, port = 0;
      auto target = as_string(rec, "target");
      if (!as_long(rec, "priority", prio) || !as_long(rec, "weight", weight) ||
          !as_long(rec, "port", port) || target.empty()) {
        return {};
      }
      return std::to_string(prio) + " " + std::to_string(weight) + " " + std::to_string(port) +
             " " + canonical_name(target);
    }
  }
  return {};
}

bool contains(const std::string& haystack, const char* needle) {
  return haystack.find(needle) != std::string::npos;
}

// An answer that is not a success: the failure it means. WHM refuses a
// token with HTTP 403 and cpsrvd's {"cpanelresult":{"error":"Access
// denied",...}}; a function it refuses answers HTTP 200 with
// metadata.result 0 and the reason.
step failure_of(const http_response& r, const std::string& what, const std::string& user) {
  if (!r.transport_error.empty()) {
    return step::fail(failure::transient, "whm " + what + ": " + r.transport_error);
  }
  auto j = json::parse(r.body, nullptr, false);
  std::string reason;
  if (j.is_object() && j.contains("metadata") && j["metadata"].is_object()) {
    reason = as_string(j["metadata"], "reason");
  } else if (j.is_object() && j.contains("cpanelresult") && j["cpanelresult"].is_object()) {
    reason = as_string(j["cpanelresult"], "error");
  }
  auto status = "HTTP " + std::to_string(r.status) + (reason.empty() ? "" : ": " + reason);
  if (r.status == 429) {
    long after_s = 0;
    std::int64_t after_ms = 0;
    if (parse_long(r.header_value("Retry-After"), after_s) && after_s > 0) {
      after_ms = static_cast<std::int64_t>(after_s) * 1000;
    }
    return step::fail(failure::rate_limited, "whm " + what + ": rate limited (" + status + ")",
                      after_ms);
  }
  auto refused = [&] {
    return step::fail(failure::auth, "whm " + what + ": WHM refused the API token of user " +
                                         user + " (" + status + ")");
  };
  if (r.status == 401 || r.status == 403) {
    return refused();
  }
  if (r.status >= 500 || r.status < 200) {
    return step::fail(failure::transient, "whm " + what + ": " + status);
  }
  if (r.status != 200) {
    return step::fail(failure::permanent, "whm " + what + ": " + status);
  }
  if (!j.is_object()) {
    return step::fail(failure::transient, "whm " + what + ": the answer is not JSON");
  }
  if (j.contains("cpanelresult")) {
    auto e = lower(reason);
    if (contains(e, "access denied")) {
      return refused();
    }
    return step::fail(failure::permanent, "whm " + what + ": " + status);
  }
  if (!j.contains("metadata") || !j["metadata"].is_object()) {
    return step::fail(failure::transient,
                      "whm " + what + ": the answer has no metadata (not WHM API 1)");
  }
  auto why = lower(reason);
  if (contains(why, "access denied") || contains(why, "permission denied") ||
      contains(why, "api token")) {
    return refused();
  }
  // A refusal that says it may pass is worth a retry; any other refusal is
  // about the request (no such zone, bad type, bad address) and will not.
  if (contains(why, "timed out") || contains(why, "timeout") || contains(why, "temporarily") ||
      contains(why, "try again")) {
    return step::fail(failure::transient, "whm " + what + " refused: " + reason);
  }
  return step::fail(failure::permanent,
                    "whm " + what + " refused: " + (reason.empty() ? "no reason given" : reason));
}

// The answer's JSON when it is a WHM success (HTTP 200, metadata.result 1).
bool succeeded(const http_response& r, json& out) {
  if (!r.transport_error.empty() || r.status != 200) {
    return false;
  }
  out = json::parse(r.body, nullptr, false);
  if (!out.is_object() || !out.contains("metadata") || !out["metadata"].is_object()) {
    return false;
  }
  const auto& res = out["metadata"].contains("result") ? out["metadata"]["result"] : json();
  if (res.is_number_integer()) {
    return res.get<long>() == 1;
  }
  if (res.is_boolean()) {
    return res.get<bool>();
  }
  return res.is_string() && res.get<std::string>() == "1";
}

// One record of the wanted name and type as dumpzone shows it.
struct line_record {
  long line = 0;
  std::string content;
  int ttl_s = 0;
};

class whm_op final : public operation {
public:
  enum class mode { apply, read, list };
  whm_op(std::shared_ptr<shared> sh, record want, mode m)
    : sh_(std::move(sh)), want_(std::move(want)), mode_(m) {
    want_.name = canonical_name(want_.name);
    want_.zone = canonical_name(want_.zone);
  }

  step start() override {
    if (mode_ == mode::list) {
      if (want_.zone.empty()) {
        return step::fail(failure::permanent, "whm: list needs a zone");
      }
      zone_ = want_.zone;
      return dump();
    }
    if (want_.name.empty()) {
      return step::fail(failure::permanent, "whm: a record needs a name");
    }
    if (mode_ == mode::apply) {
      std::vector<param> ignored;
      auto bad = data_params(want_.type, want_.content, ignored);
      if (!bad.empty()) {
        return step::fail(failure::permanent, "whm: " + want_.name + " " +
                                                  to_string(want_.type) + ": " + bad);
      }
      if (want_.ttl_s < 1) {
        return step::fail(failure::permanent, "whm: " + want_.name + " ttl_s = " +
                                                  std::to_string(want_.ttl_s) +
                                                  ": must be at least 1");
      }
    }
    if (!want_.zone.empty()) {
      zone_ = want_.zone;
      return dump();
    }
    if (auto z = sh_->zone_of.find(want_.name); z != sh_->zone_of.end()) {
      zone_ = z->second;
      return dump();
    }
    if (sh_->zones) {
      if (auto z = longest_suffix(*sh_->zones); !z.empty()) {
        zone_ = z;
        sh_->zone_of[want_.name] = z;
        return dump();
      }
    }
    // Not in the zones seen last time (or none seen yet): ask again, the
    // zone may be new.
    stage_ = stage::find_zone;
    return get("listzones", {});
  }

  step on_http(const http_response& r) override {
    json j;
    switch (stage_) {
      case stage::find_zone: {
        if (!succeeded(r, j)) {
          return failure_of(r, "listzones", sh_->o.user);
        }
        std::set<std::string> zones;
        const auto& data = j.contains("data") ? j["data"] : json();
        if (data.is_object() && data.contains("zone") && data["zone"].is_array()) {
          for (const auto& z : data["zone"]) {
            auto d = canonical_name(as_string(z, "domain"));
            if (!d.empty()) {
              zones.insert(d);
            }
          }
        }
        sh_->zones = zones;
        auto z = longest_suffix(zones);
        if (z.empty()) {
          return step::fail(failure::permanent, "whm: no zone on the server holds " + want_.name +
                                                    " (listzones has " +
                                                    std::to_string(zones.size()) + " zones)");
        }
        zone_ = z;
        sh_->zone_of[want_.name] = z;
        return dump();
      }
      case stage::dump: {
        if (!succeeded(r, j)) {
          forget_zone_if_gone(r);
          return failure_of(r, "dumpzone " + zone_, sh_->o.user);
        }
        auto records = zone_records(j);
        if (!records) {
          return step::fail(failure::transient, "whm dumpzone " + zone_ +
                                                    ": the answer holds no data.zone[].record[]");
        }
        if (mode_ == mode::list) {
          return list_records(*records);
        }
        auto set = the_set(*records);
        if (mode_ == mode::read) {
          step s = step::done_write(false);
          if (!set.empty()) {
            record got = want_;
            got.zone = zone_;
            got.content = set.front().content;
            got.ttl_s = set.front().ttl_s;
            got.proxied.reset();
            s.live = got;
          }
          return s;
        }
        return plan(set);
      }
      case stage::write: {
        if (!succeeded(r, j)) {
          return failure_of(r, writing_, sh_->o.user);
        }
        wrote_ = true;
        return next_write();
      }
      case stage::confirm: {
        if (!succeeded(r, j)) {
          return failure_of(r, "dumpzone " + zone_, sh_->o.user);
        }
        auto records = zone_records(j);
        if (!records) {
          return step::fail(failure::transient, "whm dumpzone " + zone_ +
                                                    ": the answer holds no data.zone[].record[]");
        }
        auto set = the_set(*records);
        if (set.size() == 1 && matches(set.front())) {
          return step::done_write(true);
        }
        return step::fail(failure::transient,
                          "whm: " + want_.name + " " + to_string(want_.type) + " holds " +
                              std::to_string(set.size()) + " record(s)" +
                              (set.empty() ? "" : ", the first \"" + set.front().content + "\"") +
                              " after the write, not \"" + want_.content + "\" ttl " +
                              std::to_string(want_.ttl_s) + " alone: the write is not confirmed");
      }
    }
    return step::fail(failure::permanent, "whm: unexpected answer");
  }

private:
  enum class stage { find_zone, dump, write, confirm };
  struct write_call {
    std::string function;
    std::vector<param> params;
    std::string what; // for messages
  };

  std::string longest_suffix(const std::set<std::string>& zones) const {
    // www.a.example.com → itself, a.example.com, example.com, com.
    std::string n = want_.name;
    while (!n.empty()) {
      if (zones.count(n) != 0) {
        return n;
      }
      auto dot = n.find('.');
      if (dot == std::string::npos) {
        break;
      }
      n = n.substr(dot + 1);
    }
    return {};
  }

  // A zone that WHM no longer serves must not stay cached: the next
  // operation lists the zones again.
  void forget_zone_if_gone(const http_response& r) {
    if (r.transport_error.empty() && r.status == 200) {
      for (auto it = sh_->zone_of.begin(); it != sh_->zone_of.end();) {
        it = it->second == zone_ ? sh_->zone_of.erase(it) : std::next(it);
      }
      if (sh_->zones) {
        sh_->zones->erase(zone_);
      }
    }
  }

  step get(const std::string& function, const std::vector<param>& params) {
    auto base = sh_->o.api_base;
    while (!base.empty() && base.back() == '/') {
      base.pop_back();
    }
    auto url = base + "/json-api/" + function + "?api.version=1";
    for (const auto& [k, v] : params) {
      url += "&" + url_encode(k) + "=" + url_encode(v);
    }
    return step::send(http_request{
        "GET", url,
        {{"Authorization", "whm " + sh_->o.user + ":" + sh_->o.api_token},
         {"Accept", "application/json"}},
        {}});
  }

  step dump() {
    stage_ = wrote_ ? stage::confirm : stage::dump;
    return get("dumpzone", {{"domain", zone_}});
  }

  // data.zone[0].record[], nullopt when the answer has no such array.
  static std::optional<std::vector<json>> zone_records(const json& j) {
    if (!j.contains("data") || !j["data"].is_object() || !j["data"].contains("zone") ||
        !j["data"]["zone"].is_array()) {
      return std::nullopt;
    }
    std::vector<json> out;
    bool any = false;
    for (const auto& z : j["data"]["zone"]) {
      if (z.is_object() && z.contains("record") && z["record"].is_array()) {
        any = true;
        for (const auto& rec : z["record"]) {
          out.push_back(rec);
        }
      }
    }
    if (!any) {
      return std::nullopt;
    }
    return out;
  }

  // The records of the wanted name and type, by line.
  std::vector<line_record> the_set(const std::vector<json>& records) const {
    std::vector<line_record> out;
    for (const auto& rec : records) {
      long line = 0, ttl = 0;
      if (!rec.is_object() || canonical_name(as_string(rec, "name")) != want_.name ||
          !iequals(as_string(rec, "type"), to_string(want_.type)) ||
          !as_long(rec, "Line", line)) {
        continue;
      }
      line_record lr;
      lr.line = line;
      lr.content = content_of(want_.type, rec);
      lr.ttl_s = as_long(rec, "ttl", ttl) ? static_cast<int>(ttl) : 0;
      out.push_back(std::move(lr));
    }
    std::sort(out.begin(), out.end(),
              [](const line_record& a, const line_record& b) { return a.line < b.line; });
    return out;
  }

  bool matches(const line_record& l) const {
    return l.ttl_s == want_.ttl_s && same_content(want_.type, l.content, want_.content);
  }

  std::vector<param> record_params() const {
    std::vector<param> p = {{"name", with_dot(want_.name)},
                            {"type", to_string(want_.type)},
                            {"class", "IN"},
                            {"ttl", std::to_string(want_.ttl_s)}};
    data_params(want_.type, want_.content, p); // checked in start()
    return p;
  }

  // Read-compare-write: which calls turn the set into exactly {desired}.
  step plan(const std::vector<line_record>& set) {
    auto describe = [&](const char* fn, long line) {
      return std::string(fn) + " " + zone_ + " line " + std::to_string(line) + " (" +
             want_.name + " " + to_string(want_.type) + ")";
    };
    if (set.empty()) {
      auto p = record_params();
      p.insert(p.begin(), param{"domain", zone_});
      writes_.push_back({"addzonerecord", p,
                         "addzonerecord " + zone_ + " (" + want_.name + " " +
                             to_string(want_.type) + ")"});
    } else {
      // Keep a line that already holds the value; else rewrite the first.
      std::size_t keep = 0;
      bool in_place = false;
      for (std::size_t i = 0; i < set.size(); ++i) {
        if (matches(set[i])) {
          keep = i;
          in_place = true;
          break;
        }
      }
      if (in_place && set.size() == 1) {
        return step::done_write(false);
      }
      if (!in_place) {
        auto p = record_params();
        p.insert(p.begin(), {{"domain", zone_}, {"line", std::to_string(set[keep].line)}});
        writes_.push_back({"editzonerecord", p, describe("editzonerecord", set[keep].line)});
      }
      // Removing a line moves every later line up by one: remove the
      // highest first so the lines still to remove keep their numbers.
      // An edit rewrites its line in place and moves nothing.
      std::vector<long> extra;
      for (std::size_t i = 0; i < set.size(); ++i) {
        if (i != keep) {
          extra.push_back(set[i].line);
        }
      }
      std::sort(extra.rbegin(), extra.rend());
      for (auto line : extra) {
        writes_.push_back({"removezonerecord",
                           {{"zone", zone_}, {"line", std::to_string(line)}},
                           describe("removezonerecord", line)});
      }
    }
    return next_write();
  }

  step next_write() {
    if (next_ < writes_.size()) {
      const auto& w = writes_[next_++];
      stage_ = stage::write;
      writing_ = w.what;
      return get(w.function, w.params);
    }
    return dump(); // wrote_ is set: this dump confirms
  }

  step list_records(const std::vector<json>& records) const {
    step s = step::done_write(false);
    for (const auto& rec : records) {
      record_type t;
      long ttl = 0;
      if (!rec.is_object() || !from_string(as_string(rec, "type"), t)) {
        continue;
      }
      auto content = content_of(t, rec);
      auto name = canonical_name(as_string(rec, "name"));
      if (content.empty() || name.empty()) {
        continue;
      }
      record out;
      out.zone = zone_;
      out.name = name;
      out.type = t;
      out.content = content;
      out.ttl_s = as_long(rec, "ttl", ttl) ? static_cast<int>(ttl) : 0;
      s.records.push_back(std::move(out));
    }
    return s;
  }

  std::shared_ptr<shared> sh_;
  record want_;
  mode mode_;
  std::string zone_;
  stage stage_ = stage::dump;
  std::vector<write_call> writes_;
  std::size_t next_ = 0;
  std::string writing_;
  bool wrote_ = false;
};

class whm_provider final : public provider {
public:
  explicit whm_provider(whm_options o) : sh_(std::make_shared<shared>()) {
    sh_->o = std::move(o);
  }
  const char* kind() const override { return "whm"; }
  std::unique_ptr<operation> apply(const record& desired) override {
    return std::make_unique<whm_op>(sh_, desired, whm_op::mode::apply);
  }
  std::unique_ptr<operation> read(const record& key) override {
    return std::make_unique<whm_op>(sh_, key, whm_op::mode::read);
  }
  std::unique_ptr<operation> list(const std::string& zone) override {
    record r;
    r.zone = zone;
    return std::make_unique<whm_op>(sh_, r, whm_op::mode::list);
  }

private:
  std::shared_ptr<shared> sh_;
};

} // namespace

std::unique_ptr<provider> make_whm_provider(whm_options o) {
  return std::make_unique<whm_provider>(std::move(o));
}

} // namespace balctl::dns
