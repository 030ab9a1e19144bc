#pragma once

// Protected accounts' DNS (the seed's Protection and Managed DNS tabs):
// which records of each protected cPanel account move on a cut-over, to
// what, when, and at which provider credential. Plain code: no CAF, no I/O,
// time passed in. The pool actor feeds the book member transitions and
// holds, and carries out the cuts it returns (actors/pool_accounts); the
// replication side of an account comes with the Protection issue.
//
// An account's records point at one side, its source member or its
// standby:
//
//          side down, other side healthy, pool not holding
//   source ──────────────────────────────────────────────▶ standby
//     ▲                                                      │
//     └─ source healthy failback_stable_s (automatic) ───────┤
//     └─ standby down while the source is healthy ───────────┤
//     └─ operator: Account Cut DNS to source (fail-back) ────┘
//
// - Only a side that is down moves an account (suspect does not), and only
//   to a side that is healthy (a damped member is never healthy). With the
//   other side not healthy: no cut, one alert per outage, and the cut
//   happens as soon as it turns healthy.
// - While the pool holds (mass silence, fleet hold) nothing is cut: the
//   engine's own network is the likelier culprit. A release re-evaluates.
// - Fail-back follows the pool's policy: manual by default (an operator's
//   cut to source), automatic after failback_stable_s of source health.
// - Accounts with managed DNS off ("Disable Managed DNS") are never cut,
//   and neither are their records with managed off; records not in the
//   cut-over list are catalogue rows (imported or synced), not moved.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "adapters/dns/provider.hpp"
#include "config/config.hpp"
#include "engine/pool_policy.hpp"
#include "engine/types.hpp"

namespace balctl {

enum class account_side : std::uint8_t { source, standby };
const char* to_string(account_side s); // "source" | "standby"
bool from_string(const std::string& s, account_side& out);

/// One row of an account's DNS catalogue (the seed's Protected Account
/// DNS list).
struct account_record {
  std::string name;                     // canonical FQDN
  dns::record_type type = dns::record_type::a;
  bool cut = true;       // in the cut-over list: follows the account's side
  bool managed = true;   // false: the engine never writes it
  bool dns_only = false; // Cloudflare: proxying off when it is cut
  // Cut rows: the value on each side; "" = derived (A: the member's public
  // IPv4, AAAA: its IPv6). MX and SRV rows name both.
  std::string source_content;
  std::string standby_content;
  // Rows not cut: the value as WHM (the source of truth) or Cloudflare last
  // showed it; Sync WHM→Cloudflare writes it.
  std::string content;
  int ttl_s = 0;          // 0 = the account's dns_ttl_s
  std::string origin = "protection"; // protection | whm | cloudflare
};

struct protected_account {
  std::string id;     // the cPanel user, unique in its pool
  std::string domain; // canonical
  member_id source = 0;
  member_id standby = 0;
  /// "cloudflare" (the pool's Global Cloudflare key), "whm" (the WHM key
  /// of the member the records move to) or a dns_providers[].id.
  std::string dns_provider = "cloudflare";
  std::string dns_zone; // "" = the provider finds it
  int dns_ttl_s = 300;
  bool managed = true;
  std::vector<account_record> records; // the domain's A when added
  // Replication (engine/replication): how often a run starts, 0 = only on
  // demand (Replicate now); a start while a run still goes is skipped
  // (logged) or waits for it (overlap "wait").
  int replication_every_s = 86400; // 0, or 300..2592000
  std::string replication_overlap = "skip"; // skip | wait
  // Where the records point now, and since when.
  account_side on = account_side::source;
  std::int64_t on_since_ms = 0;

  member_id member_on(account_side s) const {
    return s == account_side::source ? source : standby;
  }
  member_id current() const { return member_on(on); }
};

/// Whether name is zone or a name under it (both canonical).
bool name_within(const std::string& name, const std::string& zone);

/// Text form (store rows, tests): every field, side included.
std::string to_json_text(const protected_account& a);
/// nullopt and *error when the text is not a valid stored account.
std::optional<protected_account> account_from_json_text(const std::string& text,
                                                        std::string* error);

/// An account as an operator sends it (POST, PATCH): validates the fields
/// (first error: field path and reason), canonicalises names and fills in
/// the default cut-over list (the domain's A record).
std::optional<field_problem> validate_account(protected_account& a);

/// Reads the keys present in an API body onto a (id only when creating;
/// "records" replaces the whole list; the side is not writable), then
/// validates it. The first problem, with its field path, or nullopt.
std::optional<field_problem> read_account_json(const std::string& body,
                                               protected_account& a, bool create);

/// The value a cut row takes on side s; "" when it cannot be derived
/// (no address of that family). address(m, ipv6) gives the member's.
std::string content_on(const account_record& r, const protected_account& a,
                       account_side s,
                       const std::function<std::string(member_id, bool)>& address);

/// The provider credential an account's change to member `to` goes to:
/// an explicit id as it is; "cloudflare": the pool's Global Cloudflare key,
/// else its only one, else a config-file one marked global; "whm": the WHM
/// key of member `to`. "" when there is none (*why says why).
std::string resolve_provider(const std::string& spec, member_id to,
                             const std::vector<dns_provider_config>& pool_providers,
                             const std::vector<dns_provider_config>& config_providers,
                             std::string* why);

struct account_cut {
  std::string account;
  account_side to = account_side::standby;
  member_id from_member = 0;
  member_id to_member = 0;
  bool failback = false; // back to the source
  std::string reason;
};

class account_book {
public:
  struct result {
    std::vector<account_cut> cuts;
    std::vector<std::string> alerts; // sentences for the activity log
  };

  /// Adds or replaces an account (its side and since are taken as given).
  void put(protected_account a);
  bool remove(const std::string& id);
  const protected_account* find(const std::string& id) const;
  std::size_t size() const { return accounts_.size(); }
  /// In id order.
  const std::map<std::string, protected_account>& all() const { return accounts_; }
  /// Accounts whose source or standby is m.
  std::vector<std::string> of_member(member_id m) const;
  /// The account whose catalogue has a row of this name and type, if any
  /// (a record belongs to one account of a pool).
  const std::string* owner_of(const std::string& name, dns::record_type t) const;

  /// After member m changed state (policy already fed): the accounts that
  /// touch m are evaluated.
  result on_member_state(member_id m, const pool_policy& p, std::int64_t now_ms);
  /// One account evaluated (just added or changed).
  result evaluate_one(const std::string& id, const pool_policy& p, std::int64_t now_ms);
  /// Every account evaluated (a hold released, settings changed, a start).
  result evaluate_all(const pool_policy& p, std::int64_t now_ms);
  /// The accounts whose automatic fail-back is due at now_ms.
  result on_tick(const pool_policy& p, std::int64_t now_ms);
  /// When on_tick must run next for an automatic fail-back, if ever.
  std::optional<std::int64_t> next_deadline_ms() const;

  /// An operator's Account Cut DNS to side `to`: refused (nullopt, *why)
  /// when the account is unknown, not managed, or the member on that side
  /// is not healthy and !force. A cut to the side it is on re-applies its
  /// records (read-compare-write makes that a read when they are in place).
  std::optional<account_cut> request_cut(const std::string& id, account_side to,
                                         bool force, const pool_policy& p,
                                         std::string* why) const;
  /// Records that a cut was decided: the account now points at c.to (an
  /// automatic fail-back, if the policy has one, is scheduled from now).
  void apply(const account_cut& c, const pool_policy& p, std::int64_t now_ms);

private:
  void evaluate(protected_account& a, const pool_policy& p, std::int64_t now_ms,
                result& out);
  // When a's automatic fail-back is due, if it has one to wait for.
  std::optional<std::int64_t> failback_due_ms(const protected_account& a,
                                              const pool_policy& p) const;
  void index(const protected_account& a);
  void unindex(const protected_account& a);
  void clear_failback(const std::string& id);

  std::map<std::string, protected_account> accounts_;
  std::unordered_map<member_id, std::set<std::string>> by_member_;
  std::unordered_map<std::string, std::string> row_owner_; // "name/TYPE" → account
  // Accounts whose side is down with nobody healthy to take over, alerted
  // once per outage.
  std::set<std::string> blocked_;
  // Automatic fail-backs waiting for the source's stable time.
  std::unordered_map<std::string, std::int64_t> failback_at_;
  std::set<std::pair<std::int64_t, std::string>> failback_queue_;
};

} // namespace balctl
