#pragma once

// The store interface (DESIGN.md: adapters behind small interfaces). The
// embedded default is SQLite (sqlite_store); Redis comes with the multi-node
// issue. Calls may block on disk: only the store actor calls them.
// Failures throw store_error with the operation and the backend's message.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include "config/config.hpp"
#include "engine/accounts.hpp"
#include "engine/pool_policy.hpp"
#include "engine/types.hpp"

namespace balctl {

class store_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// The store cannot be reached now (Redis down, slow or refusing): the
/// write was not made and may be made again later. SQLite never throws it.
class store_unavailable : public store_error {
public:
  using store_error::store_error;
};

/// Cluster: the pool's lease has a newer fencing token than the write
/// carried, or has expired: another node owns (or may own) the pool, so
/// this node must not act for it. Never owed, never retried.
class store_fenced : public store_error {
public:
  using store_error::store_error;
};

/// Runtime state of one member (not its configuration).
struct member_state_record {
  member_id id = 0;
  member_state state = member_state::pending;
  std::int64_t state_since_ms = 0;
  std::int64_t last_seen_ms = 0;
  std::uint64_t last_seq = 0;
};

/// An enrollment waiting for its agent: only the secret's SHA-256 is kept.
struct enrollment_record {
  std::array<std::uint8_t, 32> secret_sha256{};
  member_id member = 0;
  std::string pool;
  std::int64_t created_ms = 0;
};

/// One line of a pool's activity log (enrolled, state changes, decisions,
/// operator changes).
struct activity_record {
  std::int64_t id = 0; // assigned by append_activity; newest is highest
  std::string pool;
  std::int64_t at_ms = 0;
  std::string kind;    // enrolled | member_added | member_removed | state_change | decision | ...
  member_id member = 0; // 0 = the pool itself
  std::string message;
  // For kind state_change: the member's states (history in member detail).
  std::string from_state, to_state;
};

/// An activity line as a pool collects it before the store writes it: its
/// kind and states as small enums, the pool name once per batch. A fleet
/// starting up logs one line per member; at a million members the queued
/// lines must stay small (about 56 bytes here, three times less than an
/// activity_record).
enum class activity_kind : std::uint8_t {
  enrolled,
  member_added,
  member_removed,
  state_change,
  decision,
  pool_created,
  pool_renamed,
  settings_changed,
  dns_change, // a DNS change confirmed by its provider
  dns_alert,  // a DNS change failing (provider down, credentials refused)
  account_changed, // a protected account added, changed or removed
  account_cut,     // a protected account's DNS cut to its standby or back
  dns_provider_changed, // an API provider credential added, changed or removed
  replication_sync,     // a replication run started, done, skipped or waiting
  replication_transfer, // a run's chunks: manifest, stored, restore started
  replication_failed,   // a run failed (retried or not)
  job,                  // a member's remote job queued, finished or cancelled
};
const char* to_string(activity_kind k);

struct activity_line {
  std::int64_t at_ms = 0;
  member_id member = 0;
  activity_kind kind = activity_kind::decision;
  member_state from = member_state::pending; // state_change only
  member_state to = member_state::pending;
  std::string message;
};

/// The record the store writes for a line of pool.
activity_record to_record(const std::string& pool, const activity_line& l);

struct decision_record {
  std::int64_t id = 0; // assigned by record_decision
  pool_decision decision;
  std::string status = "pending"; // pending | done | failed
};

/// One DNS change as the journal holds it: written before the provider is
/// asked, marked done when the provider confirms it (or superseded when a
/// newer change of the same record replaced it before it ran).
struct dns_change_record {
  std::int64_t id = 0;       // assigned by journal_dns_changes
  std::int64_t decision = 0; // the pool decision it carries out, 0 = manual
  std::string pool;
  std::string provider;      // dns_providers[].id
  std::string zone, name;
  std::string type;          // "A" | "AAAA" | "MX" | "SRV"
  std::string content;
  int ttl_s = 60;
  int proxied = -1;          // -1 = leave as it is, 0 = DNS only, 1 = proxied
  int priority = 1;          // 0 = pool failover records first
  std::string status = "pending"; // pending | done | failed | superseded | cancelled
  std::int64_t created_ms = 0;
  std::string error;         // the provider's last refusal, for failed
};

/// One of Protection's small records (engine/jobs, engine/replication,
/// the monitoring presets): a JSON body under (kind, pool, id). Few, small
/// and rarely written next to heartbeats, so one generic shape serves them.
struct stored_record {
  std::string kind; // "job" | "replication" | "monitoring" | ...
  std::string pool;
  std::string id;
  std::string body;
};

class store {
public:
  virtual ~store() = default;

  /// Whether a call can be expected to reach the backend now (Redis:
  /// connected). The store actor replays what it owes once it is.
  virtual bool available() { return true; }

  /// Cluster: from now on the pool's decisions, DNS journal entries and
  /// account cuts are written only while its lease (redis_leases) still
  /// has this token and has not expired; otherwise store_fenced. 0 = no
  /// fence (one node). Only the Redis store has leases; SQLite ignores it.
  virtual void fence(const std::string& /*pool*/, std::int64_t /*token*/) {}

  // Pools and members (declared in config for now; the admin API issue adds
  // them at run time). put_pool replaces the pool and its member list.
  virtual void put_pool(const pool_config& p) = 0;
  virtual void delete_pool(const std::string& name) = 0;
  /// api_only: just the pools the admin API created (start-up reads those;
  /// the config file's are in memory already, however many members).
  virtual std::vector<pool_config> load_pools(bool api_only = false) = 0;
  /// Updates the pool's own row (label, settings), not its members.
  virtual void update_pool(const pool_config& p) = 0;
  /// Adds m at the end of pool's order, or updates it.
  virtual void put_member(const std::string& pool, const member_config& m) = 0;
  /// Removes a member with its state and enrollment.
  virtual void delete_member(member_id m) = 0;
  /// A fresh member id above every id the store has seen and at_least.
  virtual member_id allocate_member_id(member_id at_least) = 0;

  // Enrollments: one open enrollment per member (a new one replaces it).
  virtual void put_enrollment(const enrollment_record& e) = 0;
  /// In one transaction: the enrollment is gone (single use), the member
  /// has its new heartbeat key and counts as enrolled.
  virtual void complete_enrollment(member_id m, const protocol::key& k) = 0;
  virtual std::vector<enrollment_record> load_enrollments() = 0;

  // Activity log. append keeps at most keep_per_pool newest events a pool.
  virtual void append_activity(const std::vector<activity_record>& rs,
                               std::size_t keep_per_pool) = 0;
  /// Newest first, ids below before_id (0 = from the newest); member 0 =
  /// all of the pool's events.
  virtual std::vector<activity_record> activity(const std::string& pool,
                                                std::int64_t before_id,
                                                std::size_t limit,
                                                member_id member = 0) = 0;

  // Member runtime state. save_member_states writes a batch in one
  // transaction (checkpoints).
  virtual void save_member_state(const member_state_record& r) = 0;
  virtual void save_member_states(const std::vector<member_state_record>& rs) = 0;
  virtual std::vector<member_state_record> load_member_states() = 0;
  /// The states of these members only (a pool taken over from another node).
  virtual std::vector<member_state_record> load_member_states_of(
    const std::vector<member_id>& ids) {
    std::unordered_set<member_id> want(ids.begin(), ids.end());
    std::vector<member_state_record> out;
    for (auto& r : load_member_states()) {
      if (want.count(r.id) != 0) {
        out.push_back(r);
      }
    }
    return out;
  }

  // The active member of each pool.
  virtual void set_active_member(const std::string& pool, member_id m) = 0;
  virtual std::optional<member_id> active_member(const std::string& pool) = 0;

  // Decisions: recorded before they are acted on, then marked.
  virtual std::int64_t record_decision(const pool_decision& d) = 0;
  virtual void mark_decision(std::int64_t id, const std::string& status) = 0;
  /// Newest first; pool "" = all pools.
  virtual std::vector<decision_record> decisions(const std::string& pool,
                                                 std::size_t limit) = 0;
  virtual std::vector<decision_record> pending_decisions() = 0;

  // The DNS journal. journal_dns_changes writes a batch in one transaction
  // and returns the ids in order.
  virtual std::vector<std::int64_t> journal_dns_changes(
    const std::vector<dns_change_record>& cs) = 0;
  virtual void mark_dns_changes(const std::vector<std::int64_t>& ids,
                                const std::string& status,
                                const std::string& error) = 0;
  /// The changes to resume after a restart, oldest first: every pending
  /// change that no newer change of the same record (provider, name, type)
  /// follows; the others are marked superseded first.
  virtual std::vector<dns_change_record> pending_dns_changes() = 0;
  /// Newest first; pool "" = all.
  virtual std::vector<dns_change_record> dns_changes(const std::string& pool,
                                                     std::size_t limit) = 0;

  // Protected accounts' DNS side (engine/accounts), one row each with the
  // side its records point at. put_accounts writes a batch in one
  // transaction: a cut-over storm flips thousands of accounts at once.
  // Deleting a pool deletes its accounts.
  virtual void put_accounts(const std::string& pool,
                            const std::vector<protected_account>& as) = 0;
  /// A cut: the accounts' new sides and the DNS changes that carry it out,
  /// in one transaction (a crash keeps both or neither); the changes' ids.
  virtual std::vector<std::int64_t> journal_account_cuts(
    const std::string& pool, const std::vector<protected_account>& as,
    const std::vector<dns_change_record>& cs) = 0;
  virtual void delete_account(const std::string& pool, const std::string& id) = 0;
  /// Every pool's accounts, by pool then id.
  virtual std::vector<std::pair<std::string, protected_account>> load_accounts() = 0;

  // DNS provider credentials added through the admin API (config: the
  // file's dns_providers[] are not stored), secret included: the engine
  // must present it, so it cannot be kept as a hash. The store file is
  // made readable by its owner only. Deleting a pool deletes its own.
  virtual void put_dns_provider(const dns_provider_config& p) = 0;
  /// Several in one transaction (a new Global key and the others unmarked).
  virtual void put_dns_providers(const std::vector<dns_provider_config>& ps) = 0;
  virtual void delete_dns_provider(const std::string& id) = 0;
  virtual std::vector<dns_provider_config> load_dns_providers() = 0;
  // Protection's records. put_records writes a batch in one transaction
  // (a record with the same kind, pool and id is replaced); deleting a
  // pool deletes its records.
  virtual void put_records(const std::vector<stored_record>& rs) = 0;
  virtual void delete_records(const std::string& kind, const std::string& pool,
                              const std::vector<std::string>& ids) = 0;
  /// Every record of a kind (pool "": of every pool), by pool then id.
  virtual std::vector<stored_record> load_records(const std::string& kind,
                                                  const std::string& pool = "") = 0;

  /// What load_accounts and load_dns_providers could not read and left out
  /// (one line each, no secret), since the last call.
  virtual std::vector<std::string> take_skipped_rows() = 0;
};

/// Opens (and creates or migrates) the SQLite store at path.
std::unique_ptr<store> open_sqlite_store(const std::string& path);

} // namespace balctl

namespace balctl {

/// The store the config selects: SQLite at store_path, or Redis when
/// "store" is a redis:// URL (store_password_file, store_prefix,
/// store_timeout_ms). Throws store_error.
std::unique_ptr<store> open_configured_store(const engine_config& cfg);

/// Where that store is, for logs: the SQLite path or redis://host:port/db,
/// never a user or password.
std::string describe_store(const engine_config& cfg);

} // namespace balctl
