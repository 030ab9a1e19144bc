#pragma once

// Alerts (the seed's Monitoring tabs): what a pool's monitoring presets
// and its members' alert settings make of the engine's events. Plain code:
// no CAF, no I/O, time passed in. The protection actor feeds it and posts
// what it returns to the notifiers (adapters/notify), which retry and
// de-duplicate by key (a flapping member costs one message per window).
//
// - Heartbeat: a member reaching the threshold state (suspect or down)
//   alerts once per outage; its recovery alerts too.
// - CPU and disk: a status body past the threshold alerts once, again only
//   after it fell 5 points below (no alert per status body).
// - Services: a detected stack that disappears from a member.
// - Protection: a pool failover or an account's DNS cut to its standby
//   (the failover e-mail and its recipients); a replication run failing.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/types.hpp"

namespace balctl {

/// The pool's Monitoring tab.
struct monitoring_presets {
  // Infrastructure alerts.
  bool heartbeat_alerts = true;
  std::string heartbeat_threshold = "down"; // suspect | down
  bool cpu_alerts = false;
  int cpu_pct = 90;   // 1..100
  bool disk_alerts = true;
  int disk_pct = 90;  // 1..100
  bool service_alerts = true;
  std::vector<std::string> emails;   // alert recipients
  std::vector<std::string> webhooks; // http(s) URLs, JSON POST
  // Protection DNS failover.
  int failover_banner_s = 7200;      // 0..7200 (the seed's Community limit)
  bool failover_email = true;
  std::vector<std::string> failover_emails; // "" = the alert recipients
};

/// A member's own Monitoring tab: unset fields follow the pool.
struct member_alert_settings {
  bool enabled = true;
  std::optional<bool> heartbeat_alerts;
  std::optional<int> cpu_pct; // enables CPU alerts for the member
  std::optional<int> disk_pct;
  std::vector<std::string> emails; // in addition to the pool's
};

std::string to_json_text(const monitoring_presets& p);
std::string to_json_text(const member_alert_settings& s);
/// Reads the keys present in an API body (or a stored record) onto p;
/// the first problem, with its field, or nullopt.
std::optional<field_problem> read_presets_json(const std::string& body, monitoring_presets& p);
std::optional<field_problem> read_member_alerts_json(const std::string& body,
                                                     member_alert_settings& s);

/// One alert to deliver.
struct alert_message {
  std::string key; // de-duplication: "<kind>/<pool>/<member or account>"
  std::string pool;
  member_id member = 0;
  std::string kind; // member_down | member_up | cpu | disk | service | failover | account_cut | replication_failed
  std::string subject;
  std::string text;
  std::int64_t at_ms = 0;
  std::vector<std::string> emails;
  std::vector<std::string> webhooks;
};

class alert_rules {
public:
  explicit alert_rules(std::string pool) : pool_(std::move(pool)) {}

  void set_presets(monitoring_presets p) { presets_ = std::move(p); }
  const monitoring_presets& presets() const { return presets_; }
  void set_member(member_id m, member_alert_settings s) { members_[m] = std::move(s); }
  void forget_member(member_id m);
  const member_alert_settings* member(member_id m) const;

  std::vector<alert_message> on_state(member_id m, const std::string& name, member_state from,
                                      member_state to, std::int64_t now_ms);
  std::vector<alert_message> on_status(member_id m, const std::string& name,
                                       const member_status& s, std::int64_t now_ms);
  /// The pool's failover record moved (text: the decision).
  std::vector<alert_message> on_failover(const std::string& text, std::int64_t now_ms);
  std::vector<alert_message> on_account_cut(const std::string& account,
                                            const std::string& domain, member_id to,
                                            std::int64_t now_ms);
  std::vector<alert_message> on_replication_failed(const std::string& account,
                                                   const std::string& text,
                                                   std::int64_t now_ms);

  /// Until when the pool header shows "Failover active", 0 = not now.
  std::int64_t failover_banner_until_ms(std::int64_t now_ms) const;

private:
  std::vector<std::string> recipients(member_id m) const;
  std::vector<std::string> failover_recipients() const;
  alert_message make(const std::string& kind, const std::string& who, member_id m,
                     std::string subject, std::string text, std::int64_t now_ms) const;

  std::string pool_;
  monitoring_presets presets_;
  std::map<member_id, member_alert_settings> members_;
  std::set<member_id> down_alerted_;
  std::set<std::pair<member_id, std::string>> over_; // (member, "cpu"|"disk") alerted
  std::map<member_id, std::set<std::string>> stacks_; // last seen stacks
  std::int64_t last_failover_ms_ = 0;
};

} // namespace balctl
