#pragma once

// What the engine shows operators: the admin API's read models, filled by
// the pool actors and the supervisor, rendered to JSON by api/. Plain
// structs: no CAF, no JSON here.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "engine/accounts.hpp"
#include "engine/types.hpp"

namespace balctl {

/// A pool as listed, with its run-time settings.
struct pool_summary {
  std::string id;    // pool_config::name: stable, in URLs
  std::string name;  // display name (label, or id when none)
  std::string preset;
  bool from_api = false; // else declared in the config file (read-only here)
  std::uint64_t members = 0;
  std::uint64_t enrolled = 0; // members whose agent has enrolled
  std::uint64_t agents_healthy = 0;
  member_id active = 0;
  bool holding = false;
  // Settings.
  int failover_delay_s = 0;
  std::string failover_hostname;
  std::string failback;
  int failback_stable_s = 0;
  double mass_silence_share = 0;
  int mass_silence_min_members = 0;
  int mass_silence_window_s = 0;
  // The Dynamic DNS card.
  std::string dns_provider;
  std::string dns_zone;
  int dns_ttl_s = 0;
  bool dns_sync = true;
  bool dns_only = false;
};

/// One member as the admin API shows it (tiles, lists, detail).
struct member_info {
  member_id id = 0;
  std::string name;
  std::string hostname;
  std::string linux_family; // "rhel" | "debian" | "" (declared in config)
  std::vector<std::string> allowed_ips;
  member_state state = member_state::pending;
  std::int64_t state_since_ms = 0;
  std::int64_t last_seen_ms = 0; // 0 = never heard
  bool enrolled = true;
  bool damped = false;
  bool active = false;
  bool has_status = false;
  member_status status;
};

/// The seed's Fleet Status for one pool: KPIs over every member, visible
/// pool tabs, and one page of member tiles.
struct member_page {
  std::vector<member_info> members;
  std::uint64_t total = 0;
};

/// Member counts (members, enrolled, healthy) are the summary's.
struct pool_overview {
  pool_summary pool;
  std::int64_t last_check_in_ms = 0; // newest heartbeat, 0 = none
  std::uint64_t outdated_agents = 0;
  std::uint64_t cpanel_members = 0;
  std::uint64_t running_jobs = 0; // dispatched to or running on an agent
  std::uint64_t queued_jobs = 0;
  std::uint64_t cron_jobs = 0; // the members' crontab lines, as agents report
  std::uint64_t backups = 0;   // backup archives on the members
  bool protection = false;
  bool managed_dns = false;
  member_page tiles;
};

/// What an operator fills in to add a server (the seed's "Add server").
struct new_member {
  std::string name;
  std::string hostname;
  std::string linux_family; // "rhel" | "debian"
  std::vector<std::string> allowed_ips;
};

/// A member just added or re-enrolled, with its one-time secret.
struct enrollment_ticket {
  member_info member;
  std::string pool;
  std::string secret; // shown once; the engine keeps its SHA-256 only
};

/// What an agent receives for a valid enrollment.
struct enrollment_grant {
  member_id member = 0;
  std::string pool;
  std::string key_hex; // its heartbeat key
};

/// One record of the Managed DNS catalogue: what the engine wants it to
/// hold and what its provider showed at the last Refresh DNS.
struct dns_record_view {
  std::string account; // "" = the pool's failover record (Dynamic DNS card)
  std::string name;
  std::string type;
  bool cut = true;      // follows the active member / the account's side
  bool managed = true;
  bool dns_only = false;
  std::string origin;   // failover | protection | whm | cloudflare
  std::string provider; // the credential its changes go to, "" = none
  std::string provider_error; // why there is none
  std::string expected; // "" = not known (no address, or nothing to compare)
  int ttl_s = 0;
  // Refresh DNS.
  std::int64_t checked_ms = 0; // 0 = never read
  std::string live_status;     // found | missing | failed
  std::string live;
  int live_ttl_s = 0;
  int live_proxied = -1;       // -1 = not reported
  std::string error;
  bool drift = false; // read, expected known, and the live value differs
};

struct account_view {
  protected_account account;
  member_id on_member = 0; // where its records point now
  member_state source_state = member_state::pending;
  member_state standby_state = member_state::pending;
  std::vector<dns_record_view> records;
};

struct account_page {
  std::vector<account_view> accounts;
  std::uint64_t total = 0;
};

/// The pool's Managed DNS tab: DNS health, the Dynamic DNS card's record,
/// protected accounts' records (one page), the pool's API providers.
struct dns_catalogue {
  std::string pool;
  bool managed_dns = false; // the tab shows (2+ cPanel members)
  std::vector<dns_provider_config> providers; // the pool's own, secrets blanked
  std::vector<std::string> config_providers;  // ids the config file offers
  std::vector<dns_record_view> failover;      // 0 or 1 record
  account_page accounts;
  // Over every account of the pool.
  std::uint64_t records = 0;
  std::uint64_t checked = 0;
  std::uint64_t drift = 0;
  std::uint64_t on_standby = 0;
  std::int64_t refreshed_ms = 0; // the last Refresh DNS, 0 = never
  std::uint64_t reads_pending = 0;
};

/// Semantic-version order ("1.10.0" > "1.9.2"); missing parts count as 0,
/// non-numeric suffixes are ignored. True when have is older than latest.
bool version_older(const std::string& have, const std::string& latest);

} // namespace balctl
