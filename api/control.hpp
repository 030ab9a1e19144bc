#pragma once

// What the admin API asks of the engine (DESIGN.md: adapters behind small
// interfaces). The API runs on the HTTP loop and never blocks: every call
// answers through a callback, possibly on another thread. The engine's
// implementation (actors/control_impl) turns each call into actor
// requests; tests of the API alone use a fake.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "adapters/store/store.hpp"
#include "engine/views.hpp"

namespace balctl::api {

/// A refused or failed call: the API's error code, the field at fault (""
/// for none) and a sentence. api/ maps the code to an HTTP status.
struct failure {
  std::string code;
  std::string field;
  std::string message;
};

template <class T>
struct outcome {
  std::optional<T> value;
  failure error; // when !value
  bool ok() const { return value.has_value(); }
  static outcome success(T v) { return outcome{std::move(v), {}}; }
  static outcome fail(failure f) { return outcome{std::nullopt, std::move(f)}; }
};

template <class T>
using done = std::function<void(outcome<T>)>;

/// Counts of members by state over the whole node (the registry).
struct state_counts {
  std::uint64_t pending = 0, healthy = 0, suspect = 0, down = 0, recovering = 0;
  std::uint64_t total() const {
    return pending + healthy + suspect + down + recovering;
  }
};

/// A member with its recent state history (activity log, newest first).
struct member_detail {
  member_info member;
  std::vector<activity_record> history;
};

inline failure no_protection() {
  return {"not_applicable", "", "this engine has no Protection"};
}

class control {
public:
  virtual ~control() = default;

  virtual void list_pools(done<std::vector<pool_summary>> cb) = 0;
  /// pc: id (name), label, preset and settings; no members.
  virtual void create_pool(pool_config pc, done<pool_summary> cb) = 0;
  virtual void get_pool(const std::string& pool, done<pool_summary> cb) = 0;
  virtual void rename_pool(const std::string& pool, const std::string& label,
                           done<pool_summary> cb) = 0;
  virtual void delete_pool(const std::string& pool, bool force,
                           done<bool> cb) = 0;
  /// patch: the request body (a JSON object of settings), validated by the
  /// engine against the pool's current settings.
  virtual void update_settings(const std::string& pool, const std::string& patch,
                               done<pool_summary> cb) = 0;
  virtual void overview(const std::string& pool, std::uint64_t offset,
                        std::uint64_t limit, done<pool_overview> cb) = 0;
  virtual void add_member(const std::string& pool, new_member m,
                          done<enrollment_ticket> cb) = 0;
  virtual void list_members(const std::string& pool, std::uint64_t offset,
                            std::uint64_t limit, done<member_page> cb) = 0;
  virtual void get_member(const std::string& pool, member_id m,
                          done<member_info> cb) = 0;
  /// The member and its last 50 activity lines.
  virtual void get_member_detail(const std::string& pool, member_id m,
                                 done<member_detail> cb) = 0;
  /// force: remove the active member even with no healthy standby.
  virtual void remove_member(const std::string& pool, member_id m, bool force,
                             done<bool> cb) = 0;
  virtual void reenrol(const std::string& pool, member_id m,
                       done<enrollment_ticket> cb) = 0;
  /// Cut pool: make m the active member and move the failover record to
  /// it; force: even when m is not healthy.
  virtual void cut_pool(const std::string& pool, member_id m, bool force,
                        done<pool_summary> cb) = 0;
  // -- Managed DNS and Protection (api/dns_routes.cpp) -----------------------
  virtual void dns_catalogue(const std::string& pool, std::uint64_t offset,
                             std::uint64_t limit, done<balctl::dns_catalogue> cb) = 0;
  virtual void list_accounts(const std::string& pool, std::uint64_t offset,
                             std::uint64_t limit, done<account_page> cb) = 0;
  virtual void get_account(const std::string& pool, const std::string& id,
                           done<account_view> cb) = 0;
  /// id "" adds one; body: the request's JSON, read by engine/accounts.
  virtual void put_account(const std::string& pool, const std::string& id,
                           const std::string& body, done<account_view> cb) = 0;
  virtual void delete_account(const std::string& pool, const std::string& id,
                              done<bool> cb) = 0;
  /// Account Cut DNS: side "standby" or "source" (fail-back).
  virtual void cut_account(const std::string& pool, const std::string& id,
                           const std::string& side, bool force,
                           done<account_view> cb) = 0;
  /// what: refresh | import | sync; account "" = every account. Answers how
  /// many reads (refresh) or zones (import, sync) were queued.
  virtual void dns_action(const std::string& pool, const std::string& what,
                          const std::string& account, done<std::uint64_t> cb) = 0;
  /// The pool's API provider credentials, secrets blanked.
  virtual void list_providers(const std::string& pool,
                              done<std::vector<dns_provider_config>> cb) = 0;
  /// id "" adds one; body: the request's JSON, read with the config rules.
  virtual void put_provider(const std::string& pool, const std::string& id,
                            const std::string& body,
                            done<std::vector<dns_provider_config>> cb) = 0;
  virtual void delete_provider(const std::string& pool, const std::string& id,
                               done<std::vector<dns_provider_config>> cb) = 0;
  /// Newest first, ids below before (0 = newest); member 0 = whole pool.
  virtual void activity(const std::string& pool, std::int64_t before,
                        std::uint64_t limit, member_id member,
                        done<std::vector<activity_record>> cb) = 0;
  virtual void enroll(const std::string& hostname, const std::string& secret,
                      const std::string& source_ip,
                      done<enrollment_grant> cb) = 0;
  /// Synchronous and cheap enough for /metrics and /v1/status: reads the
  /// registry's slots.
  virtual state_counts count_states() const = 0;
  /// The engine is up (actors spawned, listeners bound).
  virtual bool ready() const = 0;
  /// The engine answers: its supervisor (and so its pools) is alive and
  /// not stuck. /readyz asks this on every probe.
  virtual void ping(done<bool> cb) = 0;
  // -- Protection: jobs and replication (api/protection_routes.cpp) --------
  // Answers are JSON text (actors/protection renders them). Defaults
  // refuse, for fakes of the API that have no Protection.
  /// body: {"member", "kind", "params", "timeout_s", "requested_by"}.
  virtual void queue_job(const std::string& pool, const std::string& body,
                         done<std::string> cb) {
    (void)pool, (void)body;
    cb(outcome<std::string>::fail(no_protection()));
  }
  /// member 0: the pool's jobs.
  virtual void list_jobs(const std::string& pool, member_id m, done<std::string> cb) {
    (void)pool, (void)m;
    cb(outcome<std::string>::fail(no_protection()));
  }
  virtual void get_job(const std::string& pool, const std::string& id, done<std::string> cb) {
    (void)pool, (void)id;
    cb(outcome<std::string>::fail(no_protection()));
  }
  virtual void cancel_job(const std::string& pool, const std::string& id,
                          done<std::string> cb) {
    (void)pool, (void)id;
    cb(outcome<std::string>::fail(no_protection()));
  }
  /// Replicate now.
  virtual void replicate(const std::string& pool, const std::string& account,
                         done<std::string> cb) {
    (void)pool, (void)account;
    cb(outcome<std::string>::fail(no_protection()));
  }
  /// account "": the Protection dashboard; else that account's replication.
  virtual void replication(const std::string& pool, const std::string& account,
                           done<std::string> cb) {
    (void)pool, (void)account;
    cb(outcome<std::string>::fail(no_protection()));
  }
  /// The pool's Monitoring presets (member 0) or a member's alert
  /// settings; body "" reads, else it is the PATCH's JSON.
  virtual void monitoring(const std::string& pool, member_id m, const std::string& body,
                          done<std::string> cb) {
    (void)pool, (void)m, (void)body;
    cb(outcome<std::string>::fail(no_protection()));
  }
  /// An agent's call (docs/protocol.md, "The agent API"), its signature
  /// already verified against member m's key: path is what follows
  /// /v1/agent/.
  virtual void agent_call(member_id m, const std::string& method, const std::string& path,
                          const std::string& body, done<std::string> cb) {
    (void)m, (void)method, (void)path, (void)body;
    cb(outcome<std::string>::fail(no_protection()));
  }
  /// Member m's heartbeat key and whether it is enrolled (the agent API's
  /// signatures); nullopt for an unknown member.
  virtual std::optional<protocol::key> agent_key(member_id m) const {
    (void)m;
    return std::nullopt;
  }

  /// Cluster: nodes, pools per node and leases, as JSON text; a failure
  /// "not_clustered" on a node without a cluster.
  virtual void cluster_status(done<std::string> cb) {
    cb(outcome<std::string>::fail(
      {"not_clustered", "", "this balctld runs alone (no \"cluster\" in its config)"}));
  }
};

} // namespace balctl::api
