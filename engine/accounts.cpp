#include "engine/accounts.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <limits>
#include <sstream>
#include <type_traits>

#include <nlohmann/json.hpp>

namespace balctl {

namespace {

using json = nlohmann::json;

account_side other(account_side s) {
  return s == account_side::source ? account_side::standby : account_side::source;
}

bool is_ip(const std::string& s, bool v6) {
  unsigned char buf[16];
  return inet_pton(v6 ? AF_INET6 : AF_INET, s.c_str(), buf) == 1;
}


bool is_uint(const std::string& s, long max) {
  if (s.empty() || s.size() > 6 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  return std::stol(s) <= max;
}

// Why content is not a value of type t ("" when it is).
std::string content_problem(dns::record_type t, const std::string& c) {
  auto w = dns::content_words(c);
  switch (t) {
    case dns::record_type::a:
      return w.size() == 1 && is_ip(w[0], false) ? "" : "must be an IPv4 address";
    case dns::record_type::aaaa:
      return w.size() == 1 && is_ip(w[0], true) ? "" : "must be an IPv6 address";
    case dns::record_type::mx:
      return w.size() == 2 && is_uint(w[0], 65535) && valid_dns_name(dns::canonical_name(w[1]))
               ? ""
               : "must be \"PREFERENCE HOST\" (e.g. \"10 mail.example.com\")";
    case dns::record_type::srv:
      return w.size() == 4 && is_uint(w[0], 65535) && is_uint(w[1], 65535) &&
                 is_uint(w[2], 65535) && valid_dns_name(dns::canonical_name(w[3]))
               ? ""
               : "must be \"PRIORITY WEIGHT PORT TARGET\" (e.g. \"10 5 5060 sip.example.com\")";
  }
  return "unknown record type";
}

json record_json(const account_record& r) {
  return {{"name", r.name},
          {"type", dns::to_string(r.type)},
          {"cut", r.cut},
          {"managed", r.managed},
          {"dns_only", r.dns_only},
          {"source_content", r.source_content},
          {"standby_content", r.standby_content},
          {"content", r.content},
          {"ttl_s", r.ttl_s},
          {"origin", r.origin}};
}

template <class T>
void take(const json& j, const char* k, T& out) {
  if (auto i = j.find(k); i != j.end() && !i->is_null()) {
    out = i->get<T>();
  }
}

} // namespace

bool name_within(const std::string& name, const std::string& zone) {
  return name == zone ||
         (name.size() > zone.size() && name.compare(name.size() - zone.size(), zone.size(), zone) == 0 &&
          name[name.size() - zone.size() - 1] == '.');
}

const char* to_string(account_side s) {
  return s == account_side::source ? "source" : "standby";
}

bool from_string(const std::string& s, account_side& out) {
  if (s == "source") {
    out = account_side::source;
  } else if (s == "standby") {
    out = account_side::standby;
  } else {
    return false;
  }
  return true;
}

std::string to_json_text(const protected_account& a) {
  auto rs = json::array();
  for (const auto& r : a.records) {
    rs.push_back(record_json(r));
  }
  json j = {{"id", a.id},
            {"domain", a.domain},
            {"source", a.source},
            {"standby", a.standby},
            {"dns_provider", a.dns_provider},
            {"dns_zone", a.dns_zone},
            {"dns_ttl_s", a.dns_ttl_s},
            {"managed", a.managed},
            {"replication_every_s", a.replication_every_s},
            {"replication_overlap", a.replication_overlap},
            {"records", std::move(rs)},
            {"on", to_string(a.on)},
            {"on_since_ms", a.on_since_ms}};
  return j.dump();
}

std::optional<protected_account> account_from_json_text(const std::string& text,
                                                        std::string* error) {
  try {
    auto j = json::parse(text);
    protected_account a;
    take(j, "id", a.id);
    take(j, "domain", a.domain);
    take(j, "source", a.source);
    take(j, "standby", a.standby);
    take(j, "dns_provider", a.dns_provider);
    take(j, "dns_zone", a.dns_zone);
    take(j, "dns_ttl_s", a.dns_ttl_s);
    take(j, "managed", a.managed);
    take(j, "replication_every_s", a.replication_every_s);
    take(j, "replication_overlap", a.replication_overlap);
    take(j, "on_since_ms", a.on_since_ms);
    std::string on = "source";
    take(j, "on", on);
    if (!from_string(on, a.on)) {
      throw std::runtime_error("on = " + on);
    }
    const auto& records = j.at("records");
    if (!records.is_array()) {
      throw std::runtime_error("records is not an array");
    }
    for (const auto& rj : records) {
      if (!rj.is_object()) {
        throw std::runtime_error("a record is not an object");
      }
      account_record r;
      take(rj, "name", r.name);
      std::string type = "A";
      take(rj, "type", type);
      if (!dns::from_string(type, r.type)) {
        throw std::runtime_error("record type " + type);
      }
      take(rj, "cut", r.cut);
      take(rj, "managed", r.managed);
      take(rj, "dns_only", r.dns_only);
      take(rj, "source_content", r.source_content);
      take(rj, "standby_content", r.standby_content);
      take(rj, "content", r.content);
      take(rj, "ttl_s", r.ttl_s);
      take(rj, "origin", r.origin);
      a.records.push_back(std::move(r));
    }
    return a;
  } catch (const std::exception& e) {
    if (error) {
      *error = e.what();
    }
    return std::nullopt;
  }
}

std::optional<field_problem> validate_account(protected_account& a) {
  if (!valid_pool_name(a.id)) {
    return field_problem{"id", "must be the cPanel user: 1 to 64 characters of A-Z a-z 0-9 . _ -"};
  }
  a.domain = dns::canonical_name(a.domain);
  if (!valid_dns_name(a.domain) || a.domain.find('.') == std::string::npos) {
    return field_problem{"domain", "must be a domain name (e.g. example.com)"};
  }
  if (a.source == 0) {
    return field_problem{"source", "required: the member the account lives on"};
  }
  if (a.standby == 0) {
    return field_problem{"standby", "required: the member that takes it over"};
  }
  if (a.source == a.standby) {
    return field_problem{"standby", "must be another member than the source"};
  }
  if (a.dns_provider != "cloudflare" && a.dns_provider != "whm" &&
      !valid_pool_name(a.dns_provider)) {
    return field_problem{"dns_provider", "must be cloudflare, whm or a DNS provider id"};
  }
  a.dns_zone = dns::canonical_name(a.dns_zone);
  if (!a.dns_zone.empty() && (!valid_dns_name(a.dns_zone) || !name_within(a.domain, a.dns_zone))) {
    return field_problem{"dns_zone", "must be empty or a zone the domain is in"};
  }
  if (a.dns_ttl_s < 1 || a.dns_ttl_s > 86400) {
    return field_problem{"dns_ttl_s", "must be between 1 and 86400"};
  }
  if (a.replication_every_s != 0 &&
      (a.replication_every_s < 300 || a.replication_every_s > 2592000)) {
    return field_problem{"replication_every_s",
                         "must be 0 (on demand only) or between 300 and 2592000 seconds"};
  }
  if (a.replication_overlap != "skip" && a.replication_overlap != "wait") {
    return field_problem{"replication_overlap", "must be skip or wait"};
  }
  if (a.records.empty()) {
    account_record r;
    r.name = a.domain;
    a.records.push_back(std::move(r));
  }
  if (a.records.size() > 1000) {
    return field_problem{"records", "at most 1000 records an account"};
  }
  std::set<std::pair<std::string, dns::record_type>> seen;
  for (std::size_t i = 0; i < a.records.size(); ++i) {
    auto& r = a.records[i];
    auto at = "records[" + std::to_string(i) + "].";
    r.name = dns::canonical_name(r.name);
    const auto& zone = a.dns_zone.empty() ? a.domain : a.dns_zone;
    if (!valid_dns_name(r.name) || !name_within(r.name, zone)) {
      return field_problem{at + "name", "must be " + zone + " or a name under it"};
    }
    if (!seen.insert({r.name, r.type}).second) {
      return field_problem{at + "name", std::string("a second ") + dns::to_string(r.type) +
                                          " row for " + r.name};
    }
    if (r.ttl_s < 0 || r.ttl_s > 86400) {
      return field_problem{at + "ttl_s", "must be 0 (the account's) or between 1 and 86400"};
    }
    bool derived = r.type == dns::record_type::a || r.type == dns::record_type::aaaa;
    for (auto [key, value] : {std::pair<const char*, std::string*>{"source_content", &r.source_content},
                              {"standby_content", &r.standby_content},
                              {"content", &r.content}}) {
      if (!value->empty()) {
        if (auto p = content_problem(r.type, *value); !p.empty()) {
          return field_problem{at + key, p};
        }
      } else if (r.cut && !derived && std::string(key) != "content") {
        return field_problem{at + key, std::string("required for a ") + dns::to_string(r.type) +
                                         " row in the cut-over list (only A and AAAA derive "
                                         "from the member's address)"};
      }
    }
    if (r.origin != "protection" && r.origin != "whm" && r.origin != "cloudflare") {
      return field_problem{at + "origin", "must be protection, whm or cloudflare"};
    }
  }
  return std::nullopt;
}

std::optional<field_problem> read_account_json(const std::string& body,
                                               protected_account& a, bool create) {
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return field_problem{"", "the body must be a JSON object"};
  }
  auto unknown = [](const std::string& f) {
    return field_problem{f, "unknown key", "unknown_field"};
  };
  // Typed reads: the first wrong type names its field.
  std::optional<field_problem> bad;
  // null reads as absent: what GET answers can be sent back as it is.
  auto str = [&](const json& o, const std::string& path, const char* k, std::string& out) {
    auto i = o.find(k);
    if (bad || i == o.end() || i->is_null()) {
      return;
    }
    if (!i->is_string()) {
      bad = field_problem{path + k, "must be a string"};
      return;
    }
    out = i->get<std::string>();
  };
  auto boolean = [&](const json& o, const std::string& path, const char* k, bool& out) {
    auto i = o.find(k);
    if (bad || i == o.end()) {
      return;
    }
    if (!i->is_boolean()) {
      bad = field_problem{path + k, "must be true or false"};
      return;
    }
    out = i->get<bool>();
  };
  // Whole numbers within the field's type (member ids use all 64 bits, an
  // int field never wraps); ranges are validate_account's.
  auto integer = [&](const json& o, const std::string& path, const char* k, auto& out) {
    using T = std::remove_reference_t<decltype(out)>;
    auto i = o.find(k);
    if (bad || i == o.end()) {
      return;
    }
    if (!i->is_number_unsigned() ||
        i->get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) {
      bad = field_problem{path + k, "must be an integer between 0 and " +
                                      std::to_string(std::numeric_limits<T>::max())};
      return;
    }
    out = static_cast<T>(i->get<std::uint64_t>());
  };
  for (auto it = j.begin(); it != j.end(); ++it) {
    static const std::set<std::string> known = {"id", "domain", "source", "standby",
                                                "dns_provider", "dns_zone", "dns_ttl_s",
                                                "managed", "records", "replication_every_s",
                                                "replication_overlap"};
    // What GET adds (state, not settings): ignored, so a GET can be sent
    // back changed; "on" only when it says what is so.
    static const std::set<std::string> shown = {"on_member", "on_since_ms", "source_state", "replication",
                                                "standby_state", "drift"};
    if (it.key() == "on") {
      if (it.value() != to_string(a.on)) {
        return field_problem{"on", std::string("the side its records point at (") +
                                     to_string(a.on) +
                                     ") changes with a cut: POST .../accounts/{id}/cut"};
      }
    } else if (known.count(it.key()) == 0 && shown.count(it.key()) == 0) {
      return unknown(it.key());
    }
  }
  if (create) {
    if (!j.contains("id")) {
      return field_problem{"id", "required: the cPanel user of the account", "missing_field"};
    }
    str(j, "", "id", a.id);
    for (const char* k : {"domain", "source", "standby"}) {
      if (!j.contains(k)) {
        return field_problem{k, "required", "missing_field"};
      }
    }
  } else if (j.contains("id") && j["id"] != a.id) {
    return field_problem{"id", "an account's id cannot change"};
  }
  str(j, "", "domain", a.domain);
  integer(j, "", "source", a.source);
  integer(j, "", "standby", a.standby);
  str(j, "", "dns_provider", a.dns_provider);
  str(j, "", "dns_zone", a.dns_zone);
  integer(j, "", "dns_ttl_s", a.dns_ttl_s);
  boolean(j, "", "managed", a.managed);
  integer(j, "", "replication_every_s", a.replication_every_s);
  str(j, "", "replication_overlap", a.replication_overlap);
  if (auto rs = j.find("records"); !bad && rs != j.end()) {
    if (!rs->is_array()) {
      return field_problem{"records", "must be an array of records"};
    }
    std::vector<account_record> out;
    for (std::size_t i = 0; i < rs->size() && !bad; ++i) {
      const auto& rj = (*rs)[i];
      auto path = "records[" + std::to_string(i) + "].";
      if (!rj.is_object()) {
        return field_problem{path.substr(0, path.size() - 1), "must be an object"};
      }
      for (auto it = rj.begin(); it != rj.end(); ++it) {
        static const std::set<std::string> known = {"name", "type", "cut", "managed", "dns_only",
                                                    "source_content", "standby_content",
                                                    "content", "ttl_s", "origin"};
        // What GET adds to a row (the catalogue's view of it), ignored so a
        // GET's list can be changed and sent back.
        static const std::set<std::string> shown = {"expected", "live", "drift", "provider",
                                                    "provider_error", "effective_ttl_s"};
        if (known.count(it.key()) == 0 && shown.count(it.key()) == 0) {
          return unknown(path + it.key());
        }
      }
      account_record r;
      if (!rj.contains("name")) {
        return field_problem{path + "name", "required", "missing_field"};
      }
      str(rj, path, "name", r.name);
      std::string type = "A";
      str(rj, path, "type", type);
      if (!bad && !dns::from_string(type, r.type)) {
        return field_problem{path + "type", "must be A, AAAA, MX or SRV (got \"" + type + "\")"};
      }
      boolean(rj, path, "cut", r.cut);
      boolean(rj, path, "managed", r.managed);
      boolean(rj, path, "dns_only", r.dns_only);
      str(rj, path, "source_content", r.source_content);
      str(rj, path, "standby_content", r.standby_content);
      str(rj, path, "content", r.content);
      integer(rj, path, "ttl_s", r.ttl_s);
      str(rj, path, "origin", r.origin);
      out.push_back(std::move(r));
    }
    if (!bad) {
      a.records = std::move(out);
    }
  }
  if (bad) {
    return bad;
  }
  return validate_account(a);
}

std::string content_on(const account_record& r, const protected_account& a,
                       account_side s,
                       const std::function<std::string(member_id, bool)>& address) {
  const auto& explicit_content = s == account_side::source ? r.source_content : r.standby_content;
  if (!explicit_content.empty()) {
    return explicit_content;
  }
  if (r.type == dns::record_type::a || r.type == dns::record_type::aaaa) {
    return address(a.member_on(s), r.type == dns::record_type::aaaa);
  }
  return {};
}

std::string resolve_provider(const std::string& spec, member_id to,
                             const std::vector<dns_provider_config>& pool_providers,
                             const std::vector<dns_provider_config>& config_providers,
                             std::string* why) {
  auto say = [&](std::string s) {
    if (why) {
      *why = std::move(s);
    }
    return std::string();
  };
  if (spec == "cloudflare") {
    const dns_provider_config* only = nullptr;
    std::size_t count = 0;
    for (const auto& p : pool_providers) {
      if (p.kind == dns_provider_kind::cloudflare) {
        if (p.global) {
          return p.id;
        }
        only = &p;
        ++count;
      }
    }
    if (count == 1) {
      return only->id;
    }
    for (const auto& p : config_providers) {
      if (p.kind == dns_provider_kind::cloudflare && p.global) {
        return p.id;
      }
    }
    return say(count == 0 ? "the pool has no Cloudflare key (add one under API providers)"
                          : "the pool has several Cloudflare keys and none is marked Global");
  }
  if (spec == "whm") {
    for (const auto& p : pool_providers) {
      if (p.kind == dns_provider_kind::whm && p.member == to) {
        return p.id;
      }
    }
    return say("member " + std::to_string(to) + " has no WHM DNS key (add one under API providers)");
  }
  for (const auto* list : {&pool_providers, &config_providers}) {
    for (const auto& p : *list) {
      if (p.id == spec) {
        return p.id;
      }
    }
  }
  return say("no DNS provider has id '" + spec + "'");
}

// -- account_book -------------------------------------------------------------

namespace {

std::string row_key(const std::string& name, dns::record_type t) {
  return name + "/" + dns::to_string(t);
}

} // namespace

void account_book::index(const protected_account& a) {
  by_member_[a.source].insert(a.id);
  by_member_[a.standby].insert(a.id);
  for (const auto& r : a.records) {
    row_owner_.emplace(row_key(r.name, r.type), a.id);
  }
}

const std::string* account_book::owner_of(const std::string& name, dns::record_type t) const {
  auto i = row_owner_.find(row_key(dns::canonical_name(name), t));
  return i == row_owner_.end() ? nullptr : &i->second;
}

void account_book::unindex(const protected_account& a) {
  for (const auto& r : a.records) {
    auto i = row_owner_.find(row_key(r.name, r.type));
    if (i != row_owner_.end() && i->second == a.id) {
      row_owner_.erase(i);
    }
  }
  for (auto m : {a.source, a.standby}) {
    auto i = by_member_.find(m);
    if (i != by_member_.end()) {
      i->second.erase(a.id);
      if (i->second.empty()) {
        by_member_.erase(i);
      }
    }
  }
}

void account_book::put(protected_account a) {
  if (auto i = accounts_.find(a.id); i != accounts_.end()) {
    unindex(i->second);
    clear_failback(a.id);
  }
  blocked_.erase(a.id);
  index(a);
  auto id = a.id;
  accounts_[id] = std::move(a);
}

bool account_book::remove(const std::string& id) {
  auto i = accounts_.find(id);
  if (i == accounts_.end()) {
    return false;
  }
  unindex(i->second);
  clear_failback(id);
  blocked_.erase(id);
  accounts_.erase(i);
  return true;
}

const protected_account* account_book::find(const std::string& id) const {
  auto i = accounts_.find(id);
  return i == accounts_.end() ? nullptr : &i->second;
}

std::vector<std::string> account_book::of_member(member_id m) const {
  auto i = by_member_.find(m);
  if (i == by_member_.end()) {
    return {};
  }
  return {i->second.begin(), i->second.end()};
}

void account_book::clear_failback(const std::string& id) {
  if (auto i = failback_at_.find(id); i != failback_at_.end()) {
    failback_queue_.erase({i->second, id});
    failback_at_.erase(i);
  }
}

void account_book::evaluate(protected_account& a, const pool_policy& p,
                            std::int64_t now_ms, result& out) {
  clear_failback(a.id);
  if (!a.managed) {
    blocked_.erase(a.id);
    return;
  }
  const auto to = other(a.on);
  const auto cur = a.current();
  const auto next = a.member_on(to);
  const auto cur_state = p.state_of(cur);
  const auto next_state = p.state_of(next);
  if (cur_state == member_state::down) {
    if (p.network_hold()) {
      // The pool's hold decision has said why; the release re-evaluates.
      return;
    }
    if (next_state == member_state::healthy) {
      blocked_.erase(a.id);
      out.cuts.push_back(account_cut{a.id, to, cur, next, to == account_side::source,
                                     std::string(to_string(a.on)) + " member " +
                                       std::to_string(cur) + " is down; " +
                                       to_string(to) + " member " + std::to_string(next) +
                                       " is healthy"});
    } else if (blocked_.insert(a.id).second) {
      out.alerts.push_back("account " + a.id + " (" + a.domain + "): " + to_string(a.on) +
                           " member " + std::to_string(cur) + " is down and " +
                           to_string(to) + " member " + std::to_string(next) + " is " +
                           to_string(next_state) +
                           ": DNS not cut until it is healthy");
    }
    return;
  }
  blocked_.erase(a.id);
  auto at = failback_due_ms(a, p);
  if (!at) {
    return;
  }
  if (now_ms >= *at) {
    auto stable_ms = p.params().failback_stable_ms;
    out.cuts.push_back(account_cut{a.id, account_side::source, a.standby, a.source, true,
                                   "source member " + std::to_string(a.source) +
                                     " has been healthy for " +
                                     std::to_string(now_ms - (*at - stable_ms)) +
                                     " ms (fail-back after " + std::to_string(stable_ms) +
                                     " ms)"});
    return;
  }
  failback_at_[a.id] = *at;
  failback_queue_.insert({*at, a.id});
}

// Automatic fail-back: the source healthy for failback_stable since it
// recovered (or since the account moved, when that is later), never during
// a hold: fail-back is never urgent.
std::optional<std::int64_t> account_book::failback_due_ms(const protected_account& a,
                                                          const pool_policy& p) const {
  if (!a.managed || a.on != account_side::standby ||
      p.params().failback != failback_policy::automatic || p.network_hold()) {
    return std::nullopt;
  }
  auto since = p.healthy_since_ms(a.source);
  if (!since) {
    return std::nullopt;
  }
  return std::max(*since, a.on_since_ms) + p.params().failback_stable_ms;
}

account_book::result account_book::on_member_state(member_id m, const pool_policy& p,
                                                   std::int64_t now_ms) {
  result out;
  auto i = by_member_.find(m);
  if (i == by_member_.end()) {
    return out;
  }
  // Copied: evaluate never changes the index, but apply() may later.
  for (const auto& id : std::vector<std::string>(i->second.begin(), i->second.end())) {
    evaluate(accounts_.at(id), p, now_ms, out);
  }
  return out;
}

account_book::result account_book::evaluate_one(const std::string& id, const pool_policy& p,
                                                std::int64_t now_ms) {
  result out;
  if (auto i = accounts_.find(id); i != accounts_.end()) {
    evaluate(i->second, p, now_ms, out);
  }
  return out;
}

account_book::result account_book::evaluate_all(const pool_policy& p, std::int64_t now_ms) {
  result out;
  for (auto& [id, a] : accounts_) {
    evaluate(a, p, now_ms, out);
  }
  return out;
}

account_book::result account_book::on_tick(const pool_policy& p, std::int64_t now_ms) {
  result out;
  std::vector<std::string> due;
  for (auto i = failback_queue_.begin(); i != failback_queue_.end() && i->first <= now_ms; ++i) {
    due.push_back(i->second);
  }
  for (const auto& id : due) {
    evaluate(accounts_.at(id), p, now_ms, out);
  }
  return out;
}

std::optional<std::int64_t> account_book::next_deadline_ms() const {
  if (failback_queue_.empty()) {
    return std::nullopt;
  }
  return failback_queue_.begin()->first;
}

std::optional<account_cut> account_book::request_cut(const std::string& id, account_side to,
                                                     bool force, const pool_policy& p,
                                                     std::string* why) const {
  auto say = [&](std::string s) {
    if (why) {
      *why = std::move(s);
    }
    return std::nullopt;
  };
  const auto* a = find(id);
  if (a == nullptr) {
    return say("no protected account '" + id + "'");
  }
  if (!a->managed) {
    return say("managed DNS is off for account " + id + "; turn it on to cut its DNS");
  }
  auto target = a->member_on(to);
  auto state = p.state_of(target);
  if (state != member_state::healthy && !force) {
    return say(std::string(to_string(to)) + " member " + std::to_string(target) + " is " +
               to_string(state) + "; cut over only to a healthy member, or force");
  }
  return account_cut{id, to, a->current(), target,
                     to == account_side::source && a->on == account_side::standby,
                     "operator cut account " + id + " to " + to_string(to) + " member " +
                       std::to_string(target) +
                       (state != member_state::healthy
                          ? " (forced, member " + std::string(to_string(state)) + ")"
                          : std::string())};
}

void account_book::apply(const account_cut& c, const pool_policy& p, std::int64_t now_ms) {
  auto i = accounts_.find(c.account);
  if (i == accounts_.end()) {
    return;
  }
  i->second.on = c.to;
  i->second.on_since_ms = now_ms;
  blocked_.erase(c.account);
  clear_failback(c.account);
  if (auto at = failback_due_ms(i->second, p)) {
    failback_at_[c.account] = *at;
    failback_queue_.insert({*at, c.account});
  }
}

} // namespace balctl
