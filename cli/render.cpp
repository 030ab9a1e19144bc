#include "cli/render.hpp"

#include <algorithm>
#include <cstdio>

namespace balctl::cli {

namespace {

using json = nlohmann::json;

/// Replaces control characters (C0, DEL) with '?'; keeps '\n' if asked.
std::string clean(std::string s, bool keep_newlines = false) {
  for (auto& c : s) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 || u == 0x7F) && !(keep_newlines && c == '\n')) {
      c = '?';
    }
  }
  return s;
}

/// Display width in UTF-8 code points (continuation bytes do not count).
std::size_t width(const std::string& s) {
  return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

std::string dump_scalar(const json& v) {
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

/// A value for display: strings as is, booleans yes/no, numbers as JSON
/// writes them, null or missing "-", arrays comma-joined.
std::string text(const json& v) {
  if (v.is_null()) {
    return "-";
  }
  if (v.is_string()) {
    return v.get<std::string>();
  }
  if (v.is_boolean()) {
    return v.get<bool>() ? "yes" : "no";
  }
  if (v.is_array()) {
    std::string out;
    for (const auto& e : v) {
      out += (out.empty() ? "" : ",") + text(e);
    }
    return out.empty() ? "-" : out;
  }
  return dump_scalar(v);
}

const json& at(const json& j, const char* key) {
  static const json null_value;
  if (j.is_object()) {
    auto it = j.find(key);
    if (it != j.end()) {
      return *it;
    }
  }
  return null_value;
}

std::string text(const json& j, const char* key) { return text(at(j, key)); }

std::optional<std::int64_t> ms(const json& j, const char* key) {
  const json& v = at(j, key);
  if (v.is_number()) {
    return v.get<std::int64_t>();
  }
  return std::nullopt;
}

std::string age(const json& j, const char* key, std::int64_t now_ms) {
  return relative_age(ms(j, key), now_ms);
}

std::string pct(const json& v) {
  if (!v.is_number()) {
    return "-";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", v.get<double>());
  return buf;
}

std::string bytes(const json& v) {
  if (!v.is_number()) {
    return "-";
  }
  double b = v.get<double>();
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (b >= 1024 && u < 5) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

/// "a of b" when both are numbers.
std::string ratio(const json& j, const char* part, const char* whole) {
  return text(j, part) + " / " + text(j, whole);
}

using fields = std::vector<std::pair<std::string, std::string>>;

fields pool_fields(const json& p) {
  return {{"id", text(p, "id")},
          {"name", text(p, "name")},
          {"preset", text(p, "preset")},
          {"members", text(p, "members")},
          {"agents healthy", text(p, "agents_healthy")},
          {"active member", text(p, "active_member")},
          {"holding", text(p, "holding")}};
}

std::string settings_block(const json& s) {
  // The API's own key names: they map one to one onto the flags.
  static const std::vector<std::string> order = {
    "failover_delay_s",   "failover_hostname",        "failback", "failback_stable_s",
    "mass_silence_share", "mass_silence_min_members", "mass_silence_window_s",
    "dns_provider",       "dns_zone",                 "dns_ttl_s", "dns_sync",
    "dns_only"};
  fields f;
  for (const auto& k : order) {
    std::string v = text(s, k.c_str());
    if (k == "mass_silence_window_s" && v == "0") {
      v += " (= failover_delay_s)";
    }
    if ((k == "failover_hostname" || k == "dns_provider" || k == "dns_zone") &&
        v.empty() && s.is_object() && s.contains(k)) {
      v = "-";
    } else if (k.rfind("dns_", 0) == 0 && s.is_object() && !s.contains(k)) {
      continue;
    }
    if (k == "failover_hostname" && v.empty()) {
      v = "-";
    }
    f.emplace_back(k, v);
  }
  if (s.is_object()) {
    for (const auto& [k, v] : s.items()) {
      if (std::find(order.begin(), order.end(), k) == order.end()) {
        f.emplace_back(k, text(v));
      }
    }
  }
  return render_fields(f);
}

std::string member_state(const json& m) {
  std::string s = text(m, "state");
  if (at(m, "damped").is_boolean() && at(m, "damped").get<bool>()) {
    s += " (damped)";
  }
  return s;
}

std::string render_enrollment(const json& e, const std::string& pool,
                              const std::string& member_id) {
  std::string out;
  // Not indented and newlines kept: it is copied and pasted as it is.
  out += "Install command (run as root on " + clean(text(e, "hostname")) + "):\n\n";
  out += clean(text(e, "install_command"), true) + "\n\n";
  out += render_fields({{"enrollment secret", text(e, "secret")},
                        {"hostname", text(e, "hostname")},
                        {"allowed ips", text(e, "allowed_ips")},
                        {"api base", text(e, "api_base")}});
  out += "\nThe secret and install command are shown only this once; they cannot be\n"
         "shown again. If lost, issue new ones with: balctl member reenrol " +
         pool + " " + (member_id.empty() ? "ID" : member_id) + "\n";
  return out;
}

std::string pool_list(const json& body) {
  const json& pools = at(body, "pools");
  if (!pools.is_array() || pools.empty()) {
    return "no pools\n";
  }
  text_table t{{"ID", "NAME", "PRESET", "MEMBERS", "HEALTHY", "ACTIVE", "HOLDING"},
          {},
          {false, false, false, true, true, true, false}};
  for (const auto& p : pools) {
    t.rows.push_back({text(p, "id"), text(p, "name"), text(p, "preset"), text(p, "members"),
                      text(p, "agents_healthy"), text(p, "active_member"),
                      text(p, "holding")});
  }
  return render_table(t);
}

std::string member_list(const json& body, std::int64_t now_ms) {
  const json& members = at(body, "members");
  if (!members.is_array() || members.empty()) {
    return "no members\n";
  }
  text_table t{{"ID", "NAME", "HOSTNAME", "FAMILY", "STATE", "SINCE", "LAST HEARTBEAT", "AGENT",
           "ENROLLED", "ACTIVE"},
          {},
          {true}};
  for (const auto& m : members) {
    t.rows.push_back({text(m, "id"), text(m, "name"), text(m, "hostname"),
                      text(m, "linux_family"), member_state(m), age(m, "state_since_ms", now_ms),
                      age(m, "last_heartbeat_ms", now_ms), text(m, "agent_version"),
                      text(m, "enrolled"), text(m, "active")});
  }
  std::string out = render_table(t);
  const json& total = at(body, "total");
  if (total.is_number() && total.get<std::int64_t>() > static_cast<std::int64_t>(members.size())) {
    out += std::to_string(members.size()) + " of " + text(total) +
           " members shown (--offset N / --limit N for others)\n";
  }
  return out;
}

std::string member_detail(const json& m, std::int64_t now_ms) {
  std::string out = render_fields({{"id", text(m, "id")},
                                   {"name", text(m, "name")},
                                   {"hostname", text(m, "hostname")},
                                   {"linux family", text(m, "linux_family")},
                                   {"allowed ips", text(m, "allowed_ips")},
                                   {"state", member_state(m)},
                                   {"state since", age(m, "state_since_ms", now_ms)},
                                   {"last heartbeat", age(m, "last_heartbeat_ms", now_ms)},
                                   {"agent version", text(m, "agent_version")},
                                   {"enrolled", text(m, "enrolled")},
                                   {"active", text(m, "active")},
                                   {"tabs", text(m, "tabs")}});
  const json& stacks = at(m, "stacks");
  out += "\nStacks\n";
  if (stacks.is_object() && !stacks.empty()) {
    text_table t{{"STACK", "PRESENT", "DETAILS"}, {}, {}};
    for (const auto& [name, s] : stacks.items()) {
      std::string details;
      if (s.is_object()) {
        for (const auto& [k, v] : s.items()) {
          if (k != "present") {
            details += (details.empty() ? "" : " ") + k + "=" + text(v);
          }
        }
      }
      t.rows.push_back({name, text(s, "present"), details.empty() ? "-" : details});
    }
    out += render_table(t);
  } else {
    out += "none reported\n";
  }
  const json& metrics = at(m, "metrics");
  out += "\nMetrics\n";
  if (metrics.is_object() && !metrics.empty()) {
    fields f;
    for (const auto& [k, v] : metrics.items()) {
      bool is_bytes = k.size() > 6 && k.compare(k.size() - 6, 6, "_bytes") == 0;
      bool is_pct = k.size() > 4 && k.compare(k.size() - 4, 4, "_pct") == 0;
      f.emplace_back(k, is_bytes ? bytes(v) : is_pct ? pct(v) : text(v));
    }
    out += render_fields(f);
  } else {
    out += "none reported yet\n";
  }
  const json& history = at(m, "history");
  out += "\nHistory\n";
  if (history.is_array() && !history.empty()) {
    text_table t{{"AT", "FROM", "TO"}, {}, {}};
    for (const auto& h : history) {
      t.rows.push_back({age(h, "at_ms", now_ms), text(h, "from"), text(h, "to")});
    }
    out += render_table(t);
  } else {
    out += "no state changes\n";
  }
  return out;
}

std::string fleet_status(const json& s) {
  std::string by_state;
  const json& states = at(s, "by_state");
  static const std::vector<std::string> order = {"pending", "healthy", "suspect", "down",
                                                 "recovering"};
  for (const auto& k : order) {
    by_state += (by_state.empty() ? "" : ", ") + k + " " + text(states, k.c_str());
  }
  if (states.is_object()) {
    for (const auto& [k, v] : states.items()) {
      if (std::find(order.begin(), order.end(), k) == order.end()) {
        by_state += ", " + k + " " + text(v);
      }
    }
  }
  return render_fields({{"pools", text(s, "pools")},
                        {"members", text(s, "members")},
                        {"agents healthy", ratio(s, "agents_healthy", "agents_total")},
                        {"fleet health", pct(at(s, "fleet_health_pct"))},
                        {"holding pools", text(s, "holding_pools")},
                        {"by state", by_state}});
}

std::string cluster_status(const json& c) {
  std::string out = render_fields({{"this node", text(c, "node")},
                                   {"pools", text(c, "pools")},
                                   {"lease ttl", text(c, "lease_ttl_ms") + " ms"}});
  const json& nodes = at(c, "nodes");
  text_table n{{"NODE", "POOLS", "ADMIN", "FORWARD", "EXPIRES IN"}, {}, {false, true}};
  if (nodes.is_array()) {
    for (const auto& x : nodes) {
      n.rows.push_back({text(x, "id"), text(x, "pools"), text(x, "admin"), text(x, "forward"),
                        text(x, "expires_in_ms") + " ms"});
    }
  }
  out += "\n" + render_table(n);
  const json& leases = at(c, "leases");
  text_table l{{"POOL", "OWNER", "TOKEN", "LEASE AGE", "EXPIRES IN", "LIVE"}, {}, {false, false, true}};
  if (leases.is_array()) {
    for (const auto& x : leases) {
      l.rows.push_back({text(x, "pool"), text(x, "node"), text(x, "token"),
                        text(x, "age_ms") + " ms", text(x, "expires_in_ms") + " ms",
                        text(x, "live")});
    }
  }
  out += "\n" + render_table(l);
  return out;
}

std::string pool_overview(const json& o, std::int64_t now_ms) {
  const json& pool = at(o, "pool");
  const json& k = at(o, "kpis");
  std::string out = "pool " + clean(text(pool, "id")) + " (" + clean(text(pool, "name")) +
                    ", " + clean(text(pool, "preset")) + ")\n";
  // The server's own age avoids our clock's skew; the timestamp is the fallback.
  std::string last_check_in;
  const json& age_s = at(k, "last_check_in_age_s");
  if (age_s.is_number()) {
    last_check_in = relative_age(0, age_s.get<std::int64_t>() * 1000);
  } else {
    last_check_in = age(k, "last_check_in_ms", now_ms);
  }
  std::string tabs;
  const json& t = at(o, "tabs");
  if (t.is_object()) {
    // Spec order, then any others.
    static const std::vector<std::string> order = {"overview", "protection", "managed_dns",
                                                   "monitoring", "settings"};
    std::vector<std::string> names = order;
    for (const auto& [name, v] : t.items()) {
      if (std::find(order.begin(), order.end(), name) == order.end()) {
        names.push_back(name);
      }
    }
    for (const auto& name : names) {
      const json& v = at(t, name.c_str());
      if (v.is_boolean() && v.get<bool>()) {
        tabs += (tabs.empty() ? "" : ", ") + name;
      }
    }
  }
  out += render_fields({{"members", text(k, "members")},
                        {"agents healthy", ratio(k, "agents_healthy", "agents_total")},
                        {"last check-in", last_check_in},
                        {"fleet health", pct(at(k, "fleet_health_pct"))},
                        {"outdated agents", text(k, "outdated_agents") + " (latest " +
                                              text(k, "agent_version_latest") + ")"},
                        {"running jobs", text(k, "running_jobs") +
                                           (at(k, "queued_jobs").is_number()
                                              ? " (" + text(k, "queued_jobs") + " queued)"
                                              : "")},
                        {"backups", text(k, "backups")},
                        {"cron jobs", text(k, "cron_jobs")},
                        {"active member", text(o, "active_member")},
                        {"holding", text(o, "holding")},
                        {"tabs", tabs.empty() ? "-" : tabs}});
  const json& tiles = at(o, "tiles");
  out += "\n";
  if (!tiles.is_array() || tiles.empty()) {
    out += "no members\n";
    return out;
  }
  text_table tt{{"ID", "NAME", "HOSTNAME", "STATE", "STACKS", "AGENT", "ACTIVE"}, {}, {true}};
  for (const auto& m : tiles) {
    tt.rows.push_back({text(m, "id"), text(m, "name"), text(m, "hostname"), text(m, "state"),
                       text(m, "stacks"), text(m, "agent_version"), text(m, "active")});
  }
  out += render_table(tt);
  const json& total = at(o, "tiles_total");
  if (total.is_number() && total.get<std::int64_t>() > static_cast<std::int64_t>(tiles.size())) {
    out += std::to_string(tiles.size()) + " of " + text(total) +
           " members shown (--tiles-offset N / --tiles-limit N for others)\n";
  }
  return out;
}

std::string activity(const json& body, const invocation& inv, std::int64_t now_ms) {
  const json& events = at(body, "events");
  std::string out;
  if (!events.is_array() || events.empty()) {
    out = "no events\n";
  } else {
    text_table t{{"ID", "AGE", "KIND", "MEMBER", "MESSAGE"}, {}, {true}};
    for (const auto& e : events) {
      t.rows.push_back({text(e, "id"), age(e, "at_ms", now_ms), text(e, "kind"),
                        text(e, "member"), text(e, "message")});
    }
    out = render_table(t);
  }
  const json& next = at(body, "next_before");
  if (next.is_number()) {
    // The next page of the same log: the filter goes with it.
    out += "older events: balctl log " + inv.pool +
           (inv.log_kind.empty() ? "" : " --" + inv.log_kind) + " --before " + text(next) +
           "\n";
  }
  return out;
}

// ---- Protection and Managed DNS ----------------------------------------

/// "12 reads", "1 read".
std::string count_of(const json& n, const std::string& one, const std::string& many) {
  return text(n) + " " + (n.is_number() && n.get<double>() == 1 ? one : many);
}

/// "7 healthy": an account's member on one side and its state.
std::string side_member(const json& a, const char* member, const char* state) {
  return text(a, member) + " " + text(a, state);
}

/// A record's value as the last Refresh DNS read it back.
std::string live_value(const json& r) {
  const json& live = at(r, "live");
  if (!live.is_object()) {
    return "not read";
  }
  std::string status = text(live, "status");
  if (status != "found") {
    return status; // missing | failed
  }
  std::string v = text(live, "content");
  const json& proxied = at(live, "proxied");
  if (proxied.is_boolean() && proxied.get<bool>()) {
    v += " (proxied)";
  }
  return v;
}

/// The TTL the engine writes, and the live one when it differs.
std::string record_ttl(const json& r) {
  // effective_ttl_s: the row's own ttl_s, or its account's when that is 0.
  const json& ttl = at(r, "effective_ttl_s");
  std::string t = text(ttl);
  const json& live_ttl = at(at(r, "live"), "ttl_s");
  if (live_ttl.is_number() && live_ttl != ttl) {
    t += " (live " + text(live_ttl) + ")";
  }
  return t;
}

/// Whether a record moves: "yes" (in the cut-over list), "no" (a catalogue
/// row), "unmanaged" (the engine never writes it).
std::string record_cut(const json& r) {
  const json& managed = at(r, "managed");
  if (managed.is_boolean() && !managed.get<bool>()) {
    return "unmanaged";
  }
  return text(r, "cut");
}

/// Records, expected against live, each row after its account's id when
/// `account` is given; the reasons a record cannot move or was not read
/// follow the table, one line each.
struct record_rows {
  text_table table;
  std::vector<std::string> problems;
  bool with_account;

  explicit record_rows(bool account_column) : with_account(account_column) {
    table.headers = {"NAME", "TYPE", "CUT", "EXPECTED", "LIVE", "TTL", "CHECKED", "DRIFT",
                     "PROVIDER"};
    if (with_account) {
      table.headers.insert(table.headers.begin(), "ACCOUNT");
    }
  }

  void add(const json& r, const std::string& account, std::int64_t now_ms) {
    std::vector<std::string> row = {text(r, "name"),   text(r, "type"),     record_cut(r),
                                    text(r, "expected"), live_value(r),     record_ttl(r),
                                    age(at(r, "live"), "checked_ms", now_ms),
                                    text(r, "drift"),  text(r, "provider")};
    if (with_account) {
      row.insert(row.begin(), account);
    }
    table.rows.push_back(std::move(row));
    std::string what = (account.empty() ? "" : account + " ") + text(r, "name") + " " +
                       text(r, "type") + ": ";
    if (at(r, "provider_error").is_string()) {
      problems.push_back(what + "no DNS provider: " + text(r, "provider_error"));
    }
    if (at(at(r, "live"), "error").is_string()) {
      problems.push_back(what + "read: " + text(at(r, "live"), "error"));
    }
  }

  std::string render() const {
    if (table.rows.empty()) {
      return "no records\n";
    }
    std::string out = render_table(table);
    for (const auto& p : problems) {
      out += "problem: " + clean(p) + "\n";
    }
    return out;
  }
};

/// "every 3600 s, overlap skip" / "on demand only, overlap wait": an
/// account's replication schedule from its two settings.
std::string schedule(const json& every_s, const json& overlap) {
  std::string when = every_s.is_number() && every_s.get<std::int64_t>() > 0
                       ? "every " + text(every_s) + " s"
                       : "on demand only";
  return when + ", overlap " + text(overlap);
}

std::string account_list(const json& body) {
  const json& accounts = at(body, "accounts");
  if (!accounts.is_array() || accounts.empty()) {
    return "no protected accounts\n";
  }
  text_table t{{"ID", "DOMAIN", "ON", "SOURCE", "STANDBY", "PROVIDER", "MANAGED", "RECORDS",
                "DRIFT"},
               {},
               {false, false, false, false, false, false, false, true, true}};
  for (const auto& a : accounts) {
    const json& records = at(a, "records");
    t.rows.push_back({text(a, "id"), text(a, "domain"), side_member(a, "on", "on_member"),
                      side_member(a, "source", "source_state"),
                      side_member(a, "standby", "standby_state"), text(a, "dns_provider"),
                      text(a, "managed"),
                      records.is_array() ? std::to_string(records.size()) : "-",
                      text(a, "drift")});
  }
  std::string out = render_table(t);
  const json& total = at(body, "total");
  if (total.is_number() &&
      total.get<std::int64_t>() > static_cast<std::int64_t>(accounts.size())) {
    out += std::to_string(accounts.size()) + " of " + text(total) +
           " accounts shown (--offset N / --limit N for others)\n";
  }
  return out;
}

std::string account_detail(const json& a, std::int64_t now_ms) {
  const json& records = at(a, "records");
  std::string zone = text(a, "dns_zone");
  fields f = {
    {"id", text(a, "id")},
    {"domain", text(a, "domain")},
    {"records on", side_member(a, "on", "on_member") + ", since " + age(a, "on_since_ms", now_ms)},
    {"source", side_member(a, "source", "source_state")},
    {"standby", side_member(a, "standby", "standby_state")},
    {"dns provider", text(a, "dns_provider")},
    {"dns zone", zone == "-" ? "- (found at the provider)" : zone},
    {"dns ttl_s", text(a, "dns_ttl_s")},
    {"managed dns", text(a, "managed")},
    {"drift", text(a, "drift") + " of " +
                (records.is_array() ? std::to_string(records.size()) : "-") + " records"}};
  if (at(a, "replication_every_s").is_number()) {
    f.emplace_back("replication",
                   schedule(at(a, "replication_every_s"), at(a, "replication_overlap")));
  }
  std::string out = render_fields(f) + "\nRecords\n";
  record_rows rows(false);
  if (records.is_array()) {
    for (const auto& r : records) {
      rows.add(r, "", now_ms);
    }
  }
  return out + rows.render();
}

std::string provider_list(const json& providers) {
  if (!providers.is_array() || providers.empty()) {
    return "no DNS providers\n";
  }
  text_table t{{"ID", "TYPE", "ENDPOINT", "GLOBAL", "MEMBER", "RATE LIMIT", "SECRET", "DETAILS"},
               {},
               {}};
  static const std::vector<std::string> shown = {"id",     "type",   "api_base",
                                                 "server", "global", "member",
                                                 "rate_limit_requests",
                                                 "rate_limit_window_s", "secret_set"};
  for (const auto& p : providers) {
    std::string endpoint = at(p, "api_base").is_string() ? text(p, "api_base")
                                                         : text(p, "server");
    const json& requests = at(p, "rate_limit_requests");
    std::string rate = requests.is_number() && requests.get<double>() == 0
                         ? "none"
                         : text(requests) + " / " + text(p, "rate_limit_window_s") + "s";
    const json& secret_set = at(p, "secret_set");
    std::string details;
    if (p.is_object()) {
      for (const auto& [k, v] : p.items()) {
        if (std::find(shown.begin(), shown.end(), k) == shown.end()) {
          details += (details.empty() ? "" : " ") + k + "=" + text(v);
        }
      }
    }
    t.rows.push_back({text(p, "id"), text(p, "type"), endpoint, text(p, "global"),
                      text(p, "member"), rate,
                      secret_set.is_boolean() && secret_set.get<bool>() ? "set" : "-",
                      details.empty() ? "-" : details});
  }
  return render_table(t);
}

std::string dns_catalogue(const json& c, const std::string& pool, std::int64_t now_ms) {
  const json& h = at(c, "health");
  const json& managed = at(c, "managed_dns");
  std::string out = "Managed DNS of pool " + clean(pool) +
                    (managed.is_boolean() && !managed.get<bool>()
                       ? " (tab hidden: fewer than 2 cPanel members)"
                       : "") +
                    "\n";
  out += clean("DNS health: " + count_of(at(h, "accounts"), "account", "accounts") + " (" +
               text(h, "on_standby") + " on standby), " +
               count_of(at(h, "records"), "record", "records") + ", " + text(h, "checked") +
               " checked, " + text(h, "drift") + " drift; refreshed " +
               age(h, "refreshed_ms", now_ms) + ", " +
               count_of(at(h, "reads_pending"), "read", "reads") + " pending") +
         "\n";

  out += "\nFailover record\n";
  const json& failover = at(c, "failover");
  if (failover.is_object()) {
    record_rows rows(false);
    rows.add(failover, "", now_ms);
    out += rows.render();
  } else {
    out += "none (the pool has no failover hostname: balctl pool settings " + clean(pool) +
           " --failover-hostname H)\n";
  }

  out += "\nDNS providers\n" + provider_list(at(c, "providers"));
  const json& config_providers = at(c, "config_providers");
  if (config_providers.is_array() && !config_providers.empty()) {
    out += "from the config file: " + clean(text(config_providers)) + "\n";
  }

  out += "\nRecords of protected accounts\n";
  const json& accounts = at(c, "accounts");
  record_rows rows(true);
  if (accounts.is_array()) {
    for (const auto& a : accounts) {
      const json& records = at(a, "records");
      if (records.is_array()) {
        for (const auto& r : records) {
          rows.add(r, text(a, "id"), now_ms);
        }
      }
    }
  }
  out += accounts.is_array() && !accounts.empty() ? rows.render() : "no protected accounts\n";
  const json& total = at(c, "total");
  if (accounts.is_array() && total.is_number() &&
      total.get<std::int64_t>() > static_cast<std::int64_t>(accounts.size())) {
    out += std::to_string(accounts.size()) + " of " + text(total) +
           " accounts shown (--offset N / --limit N for others)\n";
  }
  return out;
}

// ---- Replication and jobs ----------------------------------------------

/// When the next scheduled run is due: "in 5m", or why there is none.
std::string next_due(const json& v, std::int64_t now_ms) {
  if (ms(v, "next_due_ms")) {
    return age(v, "next_due_ms", now_ms);
  }
  const json& every = at(v, "every_s");
  return every.is_number() && every.get<std::int64_t>() == 0 ? "on demand" : "-";
}

/// "idle", or "packaging (run alice-3, manual, attempt 2)".
std::string phase(const json& v) {
  std::string p = text(v, "phase");
  if (at(v, "run").is_string()) {
    p += " (run " + text(v, "run") + ", " + text(v, "trigger") + ", attempt " +
         text(v, "attempts") + ")";
  }
  return p;
}

/// One account's replication (GET .../accounts/{id}/replication).
std::string replication_view(const json& v, const std::string& pool, const std::string& account,
                             std::int64_t now_ms) {
  fields f = {{"account", account},
              {"health", text(v, "health")},
              {"phase", phase(v)}};
  const json& chunks = at(v, "chunks");
  if (chunks.is_number() && chunks.get<std::int64_t>() > 0) {
    f.emplace_back("package", text(v, "chunks_stored") + " of " + text(chunks) +
                                " chunks stored, " + bytes(at(v, "bytes")));
  }
  if (at(v, "job").is_string()) {
    f.emplace_back("job", text(v, "job") + " (balctl job show " + pool + " " + text(v, "job") +
                            ")");
  }
  f.emplace_back("schedule", schedule(at(v, "every_s"), at(v, "overlap")));
  std::string last_sync = age(v, "last_sync_ms", now_ms);
  if (auto took = ms(v, "last_duration_ms")) {
    last_sync += " (took " + short_duration(*took) + ")";
  }
  f.emplace_back("last sync", last_sync);
  f.emplace_back("next run", next_due(v, now_ms));
  if (ms(v, "retry_at_ms")) {
    f.emplace_back("retry", age(v, "retry_at_ms", now_ms));
  }
  if (at(v, "waiting").is_boolean() && at(v, "waiting").get<bool>()) {
    f.emplace_back("waiting", "yes (a start waits for the run going)");
  }
  f.emplace_back("last failure", age(v, "last_failure_ms", now_ms));
  std::string error = text(v, "last_error");
  f.emplace_back("last error", error.empty() ? "-" : error);
  f.emplace_back("runs", text(v, "runs_ok") + " ok, " + text(v, "runs_failed") + " failed, " +
                           text(v, "starts_skipped") + " starts skipped");
  return render_fields(f);
}

/// "2 healthy, 1 failing": the dashboard's health counts, worst last.
std::string health_counts(const json& h) {
  static const std::vector<std::string> order = {"healthy", "running", "manual", "never",
                                                 "stale",   "failing", "unknown"};
  std::string out;
  auto add = [&](const std::string& k, const json& n) {
    out += (out.empty() ? "" : ", ") + text(n) + " " + k;
  };
  for (const auto& k : order) {
    if (at(h, k.c_str()).is_number()) {
      add(k, at(h, k.c_str()));
    }
  }
  if (h.is_object()) {
    for (const auto& [k, n] : h.items()) {
      if (std::find(order.begin(), order.end(), k) == order.end()) {
        add(k, n);
      }
    }
  }
  return out.empty() ? "-" : out;
}

/// The Protection dashboard (GET /v1/pools/{id}/protection).
std::string protection(const json& d, const std::string& pool, std::int64_t now_ms) {
  const json& jobs = at(d, "jobs");
  std::string out = "Protection of pool " + clean(pool) + "\n";
  out += render_fields({{"protected accounts", text(d, "protected_accounts")},
                        {"replication health", health_counts(at(d, "health"))},
                        {"last sync", age(d, "last_sync_ms", now_ms)},
                        {"jobs", text(jobs, "running") + " running, " + text(jobs, "queued") +
                                   " queued"}});
  const json& accounts = at(d, "accounts");
  out += "\n";
  if (!accounts.is_object() || accounts.empty()) {
    return out + "no protected accounts\n";
  }
  text_table t{{"ACCOUNT", "HEALTH", "PHASE", "LAST SYNC", "NEXT DUE", "LAST ERROR"}, {}, {}};
  for (const auto& [id, v] : accounts.items()) {
    std::string error = text(v, "last_error");
    t.rows.push_back({id, text(v, "health"), text(v, "phase"), age(v, "last_sync_ms", now_ms),
                      next_due(v, now_ms), error.empty() ? "-" : error});
  }
  return out + render_table(t);
}

/// What a job does, in one cell: its command's first line, else its owner.
std::string job_what(const json& j) {
  const json& command = at(at(j, "params"), "command");
  if (command.is_string()) {
    std::string c = command.get<std::string>();
    c = c.substr(0, c.find('\n'));
    if (width(c) > 60) {
      std::size_t cut = 57; // not inside a UTF-8 sequence
      while (cut > 0 && (static_cast<unsigned char>(c[cut]) & 0xC0) == 0x80) {
        --cut;
      }
      c = c.substr(0, cut) + "...";
    }
    return c;
  }
  std::string owner = text(j, "owner");
  return owner.empty() ? "-" : owner;
}

std::string job_list(const json& body, std::int64_t now_ms) {
  const json& jobs = at(body, "jobs");
  std::string out;
  if (!jobs.is_array() || jobs.empty()) {
    out = "no jobs\n";
  } else {
    text_table t{{"ID", "MEMBER", "KIND", "STATUS", "EXIT", "CREATED", "FINISHED", "WHAT"},
                 {},
                 {false, true, false, false, true}};
    for (const auto& j : jobs) {
      t.rows.push_back({text(j, "id"), text(j, "member"), text(j, "kind"), text(j, "status"),
                        text(j, "exit_code"), age(j, "created_ms", now_ms),
                        ms(j, "finished_ms") ? age(j, "finished_ms", now_ms) : "-",
                        job_what(j)});
    }
    out = render_table(t);
  }
  return out + text(body, "queued") + " queued, " + text(body, "running") + " running, " +
         text(body, "failed") + " failed\n";
}

/// A job's status, exit code and times (GET .../jobs/{id}).
std::string job_fields(const json& j, std::int64_t now_ms) {
  fields f = {{"id", text(j, "id")},
              {"member", text(j, "member")},
              {"kind", text(j, "kind")}};
  const json& params = at(j, "params");
  if (at(params, "command").is_string()) {
    f.emplace_back("command", text(params, "command"));
  } else if (params.is_object() && !params.empty()) {
    f.emplace_back("params", dump_scalar(params));
  }
  f.emplace_back("status", text(j, "status"));
  f.emplace_back("exit code", text(j, "exit_code"));
  std::string error = text(j, "error");
  if (!error.empty() && error != "-") {
    f.emplace_back("error", error);
  }
  // An operator's job names its token; replication's, its account.
  std::string by = at(j, "owner").is_string() && !text(j, "owner").empty()
                     ? text(j, "owner")
                     : text(j, "requested_by");
  f.emplace_back("requested by", by.empty() ? "-" : by);
  f.emplace_back("timeout", text(j, "timeout_s") + " s");
  f.emplace_back("created", age(j, "created_ms", now_ms));
  for (const auto& [label, key] : std::vector<std::pair<std::string, const char*>>{
         {"dispatched", "dispatched_ms"}, {"started", "started_ms"}}) {
    f.emplace_back(label, ms(j, key) ? age(j, key, now_ms) : "-");
  }
  std::string finished = ms(j, "finished_ms") ? age(j, "finished_ms", now_ms) : "-";
  auto from = ms(j, "started_ms") ? ms(j, "started_ms") : ms(j, "dispatched_ms");
  if (ms(j, "finished_ms") && from) {
    finished += " (took " + short_duration(*ms(j, "finished_ms") - *from) + ")";
  }
  f.emplace_back("finished", finished);
  return render_fields(f);
}

std::string job_detail(const json& j, std::int64_t now_ms) {
  std::string out = job_fields(j, now_ms) + "\nOutput\n";
  const json& output = at(j, "output");
  if (!output.is_string() || output.get<std::string>().empty()) {
    return out + "(none)\n";
  }
  // As the member printed it (its tail), line breaks kept.
  std::string o = clean(output.get<std::string>(), true);
  return out + o + (o.back() == '\n' ? "" : "\n");
}

std::string dns_queued(const invocation& inv, const json& body) {
  std::string what;
  if (inv.command == "dns refresh") {
    what = count_of(at(body, "reads_queued"), "read", "reads");
  } else {
    what = count_of(at(body, "zones_queued"), "zone", "zones") +
           (inv.command == "dns import" ? " to import" : " to sync from WHM to Cloudflare");
  }
  return "queued " + what + (inv.account_id.empty() ? "" : " for account " + inv.account_id) +
         "; see 'balctl dns show " + inv.pool + "'\n";
}

} // namespace

int exit_code_for_status(long status) {
  if (status >= 200 && status < 300) {
    return exit_ok;
  }
  switch (status) {
  case 401:
  case 403:
    return exit_auth;
  case 404:
    return exit_not_found;
  case 400:
  case 409:
  case 413:
  case 422:
  case 429:
    return exit_rejected;
  default:
    return exit_unexpected;
  }
}

std::string render_table(const text_table& t) {
  std::size_t cols = t.headers.size();
  for (const auto& r : t.rows) {
    cols = std::max(cols, r.size());
  }
  std::vector<std::vector<std::string>> lines;
  if (!t.headers.empty()) {
    lines.push_back(t.headers);
  }
  for (const auto& r : t.rows) {
    lines.push_back(r);
  }
  std::vector<std::size_t> widths(cols, 0);
  for (auto& l : lines) {
    l.resize(cols);
    for (std::size_t c = 0; c < cols; ++c) {
      l[c] = clean(l[c]);
      widths[c] = std::max(widths[c], width(l[c]));
    }
  }
  std::string out;
  for (const auto& l : lines) {
    std::string line;
    for (std::size_t c = 0; c < cols; ++c) {
      std::string pad(widths[c] - width(l[c]), ' ');
      bool right = c < t.right_aligned.size() && t.right_aligned[c];
      line += right ? pad + l[c] : l[c] + pad;
      if (c + 1 < cols) {
        line += "  ";
      }
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  return out;
}

std::string render_fields(const std::vector<std::pair<std::string, std::string>>& f) {
  std::size_t w = 0;
  for (const auto& [label, value] : f) {
    w = std::max(w, width(label));
  }
  std::string out;
  for (const auto& [label, value] : f) {
    std::string line = clean(label) + std::string(w - width(label) + 2, ' ') + clean(value);
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  return out;
}

std::string short_duration(std::int64_t ms) {
  std::int64_t s = (ms < 0 ? -ms : ms) / 1000;
  if (s < 60) {
    return std::to_string(s) + "s";
  }
  if (s < 3600) {
    return std::to_string(s / 60) + "m";
  }
  if (s < 86400) {
    return std::to_string(s / 3600) + "h";
  }
  return std::to_string(s / 86400) + "d";
}

std::string relative_age(std::optional<std::int64_t> at_ms, std::int64_t now_ms) {
  if (!at_ms) {
    return "never";
  }
  std::int64_t d = now_ms - *at_ms;
  std::string v = short_duration(d);
  return d <= -1000 ? "in " + v : v + " ago";
}

std::string render_api_error(long status, const std::string& body,
                             const std::string& retry_after) {
  json j = json::parse(body, nullptr, false);
  const json& e = at(j, "error");
  std::string out;
  if (at(e, "code").is_string() && at(e, "message").is_string()) {
    out = "balctl: " + clean(text(e, "message")) + " (" + clean(text(e, "code"));
    const json& field = at(e, "field");
    if (field.is_string() && !field.get<std::string>().empty()) {
      out += ", field " + clean(field.get<std::string>());
    }
    out += ")\n";
  } else {
    // Not our API answering (a proxy, another service on the port).
    std::string snippet = body.substr(0, body.find('\n'));
    if (snippet.size() > 200) {
      snippet = snippet.substr(0, 200) + "...";
    }
    out = "balctl: HTTP " + std::to_string(status) + " without an API error body" +
          (snippet.empty() ? "" : ": " + clean(snippet)) + "\n";
  }
  if (status == 429 && !retry_after.empty()) {
    out += "balctl: retry after " + clean(retry_after) + " s\n";
  }
  return out;
}

std::string render_success(const invocation& inv, const json& body, std::int64_t now_ms) {
  const std::string& pool = inv.pool;
  switch (inv.output) {
  case output_kind::fleet_status:
    return fleet_status(body);
  case output_kind::cluster_status:
    return cluster_status(body);
  case output_kind::pool_overview:
    return pool_overview(body, now_ms);
  case output_kind::pool_list:
    return pool_list(body);
  case output_kind::pool_detail:
    return render_fields(pool_fields(body)) + "\nSettings\n" +
           settings_block(at(body, "settings"));
  case output_kind::pool_created:
    return "created pool " + clean(text(body, "id")) + "\n" + render_fields(pool_fields(body));
  case output_kind::pool_renamed:
    return "renamed pool " + clean(text(body, "id")) + "\n" + render_fields(pool_fields(body));
  case output_kind::pool_cut:
    return "cut pool " + clean(text(body, "id")) + " to member " + inv.member_id +
           " (the failover record follows)\n" + render_fields(pool_fields(body));
  case output_kind::pool_deleted:
    return "deleted pool " + pool + "\n";
  case output_kind::settings:
    return settings_block(body);
  case output_kind::settings_updated:
    return "updated settings of pool " + pool + " (applied without restart)\n" +
           settings_block(body);
  case output_kind::member_added: {
    const json& m = at(body, "member");
    std::string id = clean(text(m, "id"));
    return "added member " + id + " (" + clean(text(m, "name")) + ", " +
           clean(text(m, "hostname")) + ") to pool " + pool + "\n\n" +
           render_enrollment(at(body, "enrollment"), pool, id);
  }
  case output_kind::member_list:
    return member_list(body, now_ms);
  case output_kind::member_detail:
    return member_detail(body, now_ms);
  case output_kind::member_removed:
    return "removed member " + inv.member_id + " from pool " + pool + "\n";
  case output_kind::member_reenrolled:
    return "new enrollment for member " + inv.member_id + " of pool " + pool +
           "; its current key stops working when the agent enrols with this secret\n\n" +
           render_enrollment(at(body, "enrollment"), pool, inv.member_id);
  case output_kind::activity:
    return activity(body, inv, now_ms);
  case output_kind::account_list:
    return account_list(body);
  case output_kind::account_detail:
    return account_detail(body, now_ms);
  case output_kind::account_added:
    return "added protected account " + clean(text(body, "id")) + " (" +
           clean(text(body, "domain")) + ") to pool " + pool + "\n" +
           account_detail(body, now_ms);
  case output_kind::account_updated:
    return "updated protected account " + clean(text(body, "id")) + " of pool " + pool + "\n" +
           account_detail(body, now_ms);
  case output_kind::account_removed:
    return "removed protected account " + inv.account_id + " from pool " + pool + "\n";
  case output_kind::account_cut: {
    bool failback = text(body, "on") == "source";
    return std::string(failback ? "failed back" : "cut") + " account " +
           clean(text(body, "id")) + "'s DNS to its " + clean(text(body, "on")) + ", member " +
           clean(text(body, "on_member")) + "\n" + account_detail(body, now_ms);
  }
  case output_kind::dns_catalogue:
    return dns_catalogue(body, pool, now_ms);
  case output_kind::dns_queued:
    return dns_queued(inv, body);
  case output_kind::provider_list:
    return provider_list(at(body, "providers"));
  case output_kind::provider_added:
    return "added DNS provider " + inv.provider_id + " to pool " + pool + "\n" +
           provider_list(at(body, "providers"));
  case output_kind::provider_updated:
    return "updated DNS provider " + inv.provider_id + " of pool " + pool + "\n" +
           provider_list(at(body, "providers"));
  case output_kind::protection:
    return protection(body, pool, now_ms);
  case output_kind::replication_started:
    return "replication of account " + inv.account_id + " started (run " +
           clean(text(body, "run")) + "); follow it with 'balctl account replication " + pool +
           " " + inv.account_id + "'\n" + replication_view(body, pool, inv.account_id, now_ms);
  case output_kind::replication:
    return replication_view(body, pool, inv.account_id, now_ms);
  case output_kind::job_queued:
    return "queued job " + clean(text(body, "id")) + " for member " + inv.member_id +
           " of pool " + pool + "; follow it with 'balctl job show " + pool + " " +
           clean(text(body, "id")) + "'\n" + job_fields(body, now_ms);
  case output_kind::job_list:
    return job_list(body, now_ms);
  case output_kind::job_detail:
    return job_detail(body, now_ms);
  case output_kind::job_cancelled:
    return "cancelled job " + inv.job_id + " of pool " + pool + "\n" + job_fields(body, now_ms);
  case output_kind::provider_removed:
    return "removed DNS provider " + inv.provider_id + " from pool " + pool + "\n" +
           provider_list(at(body, "providers"));
  }
  return "";
}

std::string redact(std::string text, const std::string& secret) {
  if (secret.empty()) {
    return text;
  }
  std::size_t pos = 0;
  while ((pos = text.find(secret, pos)) != std::string::npos) {
    text.replace(pos, secret.size(), "***");
    pos += 3;
  }
  return text;
}

} // namespace balctl::cli
