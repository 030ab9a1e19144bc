#include "engine/alerts.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace balctl {

namespace {

using json = nlohmann::json;

constexpr int hysteresis_pct = 5;

bool valid_email(const std::string& s) {
  auto at = s.find('@');
  return s.size() <= 254 && at != std::string::npos && at > 0 && at + 1 < s.size() &&
         s.find_first_of(" \t\r\n<>,;\"") == std::string::npos &&
         s.find('@', at + 1) == std::string::npos;
}

bool valid_url(const std::string& s) {
  return s.size() <= 2048 && (s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0) &&
         s.find_first_of(" \t\r\n") == std::string::npos && s.size() > 8;
}

// A JSON object read key by key; the first problem is kept.
struct reader {
  const json& j;
  std::optional<field_problem> problem;

  void flag(const char* k, bool& out) {
    auto it = j.find(k);
    if (problem || it == j.end()) {
      return;
    }
    if (!it->is_boolean()) {
      problem = field_problem{k, "must be true or false"};
      return;
    }
    out = it->get<bool>();
  }
  void number(const char* k, int lo, int hi, int& out) {
    auto it = j.find(k);
    if (problem || it == j.end()) {
      return;
    }
    if (!it->is_number_integer() || it->get<std::int64_t>() < lo ||
        it->get<std::int64_t>() > hi) {
      problem = field_problem{k, "must be an integer between " + std::to_string(lo) + " and " +
                                 std::to_string(hi)};
      return;
    }
    out = it->get<int>();
  }
  void optional_number(const char* k, int lo, int hi, std::optional<int>& out) {
    auto it = j.find(k);
    if (problem || it == j.end()) {
      return;
    }
    if (it->is_null()) {
      out.reset();
      return;
    }
    int v = 0;
    number(k, lo, hi, v);
    if (!problem) {
      out = v;
    }
  }
  void list(const char* k, bool urls, std::vector<std::string>& out) {
    auto it = j.find(k);
    if (problem || it == j.end()) {
      return;
    }
    if (!it->is_array() || it->size() > 50) {
      problem = field_problem{k, "must be an array of at most 50 strings"};
      return;
    }
    std::vector<std::string> v;
    for (std::size_t i = 0; i < it->size(); ++i) {
      const auto& e = (*it)[i];
      auto field = std::string(k) + "[" + std::to_string(i) + "]";
      if (!e.is_string() || (urls ? !valid_url(e.get<std::string>())
                                  : !valid_email(e.get<std::string>()))) {
        problem = field_problem{field, urls ? "must be an http:// or https:// URL"
                                          : "must be an e-mail address"};
        return;
      }
      v.push_back(e.get<std::string>());
    }
    out = std::move(v);
  }
  void known(std::initializer_list<const char*> keys) {
    for (auto it = j.begin(); it != j.end() && !problem; ++it) {
      if (std::none_of(keys.begin(), keys.end(), [&](const char* k) { return it.key() == k; })) {
        problem = field_problem{it.key(), "unknown field", "unknown_field"};
      }
    }
  }
};

std::optional<field_problem> parse_object(const std::string& body, json& out) {
  out = json::parse(body, nullptr, false);
  if (!out.is_object()) {
    return field_problem{"", "the body must be a JSON object", "invalid_json"};
  }
  return std::nullopt;
}

std::string percent(double used, double total) {
  return std::to_string(static_cast<int>(total > 0 ? 100.0 * used / total : 0)) + "%";
}

} // namespace

std::string to_json_text(const monitoring_presets& p) {
  return json{{"heartbeat_alerts", p.heartbeat_alerts},
              {"heartbeat_threshold", p.heartbeat_threshold},
              {"cpu_alerts", p.cpu_alerts},
              {"cpu_pct", p.cpu_pct},
              {"disk_alerts", p.disk_alerts},
              {"disk_pct", p.disk_pct},
              {"service_alerts", p.service_alerts},
              {"emails", p.emails},
              {"webhooks", p.webhooks},
              {"failover_banner_s", p.failover_banner_s},
              {"failover_email", p.failover_email},
              {"failover_emails", p.failover_emails}}
    .dump();
}

std::string to_json_text(const member_alert_settings& s) {
  auto opt = [](const auto& v) { return v ? json(*v) : json(nullptr); };
  return json{{"enabled", s.enabled},
              {"heartbeat_alerts", opt(s.heartbeat_alerts)},
              {"cpu_pct", opt(s.cpu_pct)},
              {"disk_pct", opt(s.disk_pct)},
              {"emails", s.emails}}
    .dump();
}

std::optional<field_problem> read_presets_json(const std::string& body, monitoring_presets& p) {
  json j;
  if (auto e = parse_object(body, j)) {
    return e;
  }
  monitoring_presets out = p;
  reader r{j, std::nullopt};
  r.known({"heartbeat_alerts", "heartbeat_threshold", "cpu_alerts", "cpu_pct", "disk_alerts",
           "disk_pct", "service_alerts", "emails", "webhooks", "failover_banner_s",
           "failover_email", "failover_emails", "failover_banner_until_ms"});
  r.flag("heartbeat_alerts", out.heartbeat_alerts);
  if (!r.problem && j.contains("heartbeat_threshold")) {
    const auto& t = j["heartbeat_threshold"];
    if (!t.is_string() || (t != "suspect" && t != "down")) {
      r.problem = field_problem{"heartbeat_threshold", "must be suspect or down"};
    } else {
      out.heartbeat_threshold = t.get<std::string>();
    }
  }
  r.flag("cpu_alerts", out.cpu_alerts);
  r.number("cpu_pct", 1, 100, out.cpu_pct);
  r.flag("disk_alerts", out.disk_alerts);
  r.number("disk_pct", 1, 100, out.disk_pct);
  r.flag("service_alerts", out.service_alerts);
  r.list("emails", false, out.emails);
  r.list("webhooks", true, out.webhooks);
  r.number("failover_banner_s", 0, 7200, out.failover_banner_s);
  r.flag("failover_email", out.failover_email);
  r.list("failover_emails", false, out.failover_emails);
  if (r.problem) {
    return r.problem;
  }
  p = std::move(out);
  return std::nullopt;
}

std::optional<field_problem> read_member_alerts_json(const std::string& body,
                                                     member_alert_settings& s) {
  json j;
  if (auto e = parse_object(body, j)) {
    return e;
  }
  member_alert_settings out = s;
  reader r{j, std::nullopt};
  r.known({"enabled", "heartbeat_alerts", "cpu_pct", "disk_pct", "emails"});
  r.flag("enabled", out.enabled);
  if (!r.problem && j.contains("heartbeat_alerts")) {
    const auto& h = j["heartbeat_alerts"];
    if (h.is_null()) {
      out.heartbeat_alerts.reset();
    } else if (h.is_boolean()) {
      out.heartbeat_alerts = h.get<bool>();
    } else {
      r.problem = field_problem{"heartbeat_alerts", "must be true, false or null (the pool's)"};
    }
  }
  r.optional_number("cpu_pct", 1, 100, out.cpu_pct);
  r.optional_number("disk_pct", 1, 100, out.disk_pct);
  r.list("emails", false, out.emails);
  if (r.problem) {
    return r.problem;
  }
  s = std::move(out);
  return std::nullopt;
}

void alert_rules::forget_member(member_id m) {
  members_.erase(m);
  down_alerted_.erase(m);
  stacks_.erase(m);
  over_.erase({m, "cpu"});
  over_.erase({m, "disk"});
}

const member_alert_settings* alert_rules::member(member_id m) const {
  auto it = members_.find(m);
  return it == members_.end() ? nullptr : &it->second;
}

std::vector<std::string> alert_rules::recipients(member_id m) const {
  auto out = presets_.emails;
  if (const auto* s = member(m)) {
    for (const auto& e : s->emails) {
      if (std::find(out.begin(), out.end(), e) == out.end()) {
        out.push_back(e);
      }
    }
  }
  return out;
}

std::vector<std::string> alert_rules::failover_recipients() const {
  return presets_.failover_emails.empty() ? presets_.emails : presets_.failover_emails;
}

alert_message alert_rules::make(const std::string& kind, const std::string& who, member_id m,
                                std::string subject, std::string text,
                                std::int64_t now_ms) const {
  alert_message a;
  a.key = kind + "/" + pool_ + "/" + who;
  a.pool = pool_;
  a.member = m;
  a.kind = kind;
  a.subject = "[balctl] " + pool_ + ": " + std::move(subject);
  a.text = std::move(text);
  a.at_ms = now_ms;
  a.emails = recipients(m);
  a.webhooks = presets_.webhooks;
  return a;
}

std::vector<alert_message> alert_rules::on_state(member_id m, const std::string& name,
                                                 member_state from, member_state to,
                                                 std::int64_t now_ms) {
  std::vector<alert_message> out;
  const auto* s = member(m);
  bool on = presets_.heartbeat_alerts;
  if (s != nullptr && s->heartbeat_alerts) {
    on = *s->heartbeat_alerts;
  }
  if (s != nullptr && !s->enabled) {
    on = false;
  }
  bool reached = to == member_state::down ||
                 (presets_.heartbeat_threshold == "suspect" && to == member_state::suspect);
  auto who = std::to_string(m);
  if (reached && down_alerted_.count(m) == 0) {
    down_alerted_.insert(m);
    if (on) {
      out.push_back(make("member_down", who, m,
                         "member " + name + " is " + to_string(to),
                         "Member " + name + " (id " + who + ") of pool " + pool_ + " went " +
                           to_string(from) + " -> " + to_string(to) +
                           ": its heartbeats stopped.",
                         now_ms));
    }
  } else if (to == member_state::healthy && down_alerted_.erase(m) != 0 && on) {
    out.push_back(make("member_up", who, m, "member " + name + " is healthy again",
                       "Member " + name + " (id " + who + ") of pool " + pool_ +
                         " is heartbeating again (" + to_string(from) + " -> healthy).",
                       now_ms));
  }
  return out;
}

std::vector<alert_message> alert_rules::on_status(member_id m, const std::string& name,
                                                  const member_status& st,
                                                  std::int64_t now_ms) {
  std::vector<alert_message> out;
  const auto* s = member(m);
  bool enabled = s == nullptr || s->enabled;
  auto who = std::to_string(m);
  auto check = [&](const char* what, bool on, int threshold, double pct,
                   const std::string& detail) {
    std::pair<member_id, std::string> k{m, what};
    if (on && pct >= threshold) {
      if (over_.insert(k).second && enabled) {
        out.push_back(make(what, who, m,
                           std::string(what) + " on " + name + " at " + detail,
                           "Member " + name + " (id " + who + ") reports " + what + " at " +
                             detail + ", over the alert threshold of " +
                             std::to_string(threshold) + "%.",
                           now_ms));
      }
    } else if (pct < threshold - hysteresis_pct) {
      over_.erase(k);
    }
  };
  bool cpu_on = presets_.cpu_alerts;
  int cpu_at = presets_.cpu_pct;
  bool disk_on = presets_.disk_alerts;
  int disk_at = presets_.disk_pct;
  if (s != nullptr && s->cpu_pct) {
    cpu_on = true;
    cpu_at = *s->cpu_pct;
  }
  if (s != nullptr && s->disk_pct) {
    disk_on = true;
    disk_at = *s->disk_pct;
  }
  check("cpu", cpu_on, cpu_at, st.cpu_pct, std::to_string(static_cast<int>(st.cpu_pct)) + "%");
  double disk = st.disk_total_bytes > 0
                  ? 100.0 * static_cast<double>(st.disk_used_bytes) /
                      static_cast<double>(st.disk_total_bytes)
                  : 0.0;
  check("disk", disk_on, disk_at, disk,
        percent(static_cast<double>(st.disk_used_bytes), static_cast<double>(st.disk_total_bytes)));

  std::set<std::string> now_stacks;
  if (st.openlitespeed.present) now_stacks.insert("openlitespeed");
  if (st.mariadb.present) now_stacks.insert("mariadb");
  if (st.galera.present) now_stacks.insert("galera");
  if (st.cpanel.present) now_stacks.insert("cpanel");
  auto it = stacks_.find(m);
  if (it != stacks_.end() && presets_.service_alerts && enabled) {
    for (const auto& gone : it->second) {
      if (now_stacks.count(gone) == 0) {
        out.push_back(make("service", who + "/" + gone, m,
                           gone + " no longer detected on " + name,
                           "Member " + name + " (id " + who + ") no longer reports " + gone +
                             ": the service stopped or was removed.",
                           now_ms));
      }
    }
  }
  stacks_[m] = std::move(now_stacks);
  return out;
}

std::vector<alert_message> alert_rules::on_failover(const std::string& text,
                                                    std::int64_t now_ms) {
  last_failover_ms_ = now_ms;
  std::vector<alert_message> out;
  if (!presets_.failover_email) {
    return out;
  }
  auto a = make("failover", "pool", 0, "DNS failover", text, now_ms);
  a.emails = failover_recipients();
  out.push_back(std::move(a));
  return out;
}

std::vector<alert_message> alert_rules::on_account_cut(const std::string& account,
                                                       const std::string& domain, member_id to,
                                                       std::int64_t now_ms) {
  last_failover_ms_ = now_ms;
  std::vector<alert_message> out;
  if (!presets_.failover_email) {
    return out;
  }
  auto a = make("account_cut", account, to, "DNS of " + domain + " cut to its standby",
                "Protected account " + account + " (" + domain + ") of pool " + pool_ +
                  ": DNS moved to member " + std::to_string(to) + ".",
                now_ms);
  a.emails = failover_recipients();
  out.push_back(std::move(a));
  return out;
}

std::vector<alert_message> alert_rules::on_replication_failed(const std::string& account,
                                                              const std::string& text,
                                                              std::int64_t now_ms) {
  return {make("replication_failed", account, 0, "replication of " + account + " failed", text,
               now_ms)};
}

std::int64_t alert_rules::failover_banner_until_ms(std::int64_t now_ms) const {
  if (last_failover_ms_ == 0 || presets_.failover_banner_s == 0) {
    return 0;
  }
  auto until = last_failover_ms_ + std::int64_t{presets_.failover_banner_s} * 1000;
  return until > now_ms ? until : 0;
}

} // namespace balctl
