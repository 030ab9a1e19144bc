#pragma once

// The project's one CAF type-ID block: atoms and message types. Include this
// (and CAF) only from actors/ and the binaries that spawn actors.

#include <string>
#include <vector>

#include <caf/all.hpp>

#include "adapters/dns/provider.hpp"
#include "adapters/store/store.hpp"
#include "engine/pool_policy.hpp"
#include "engine/types.hpp"
#include "engine/views.hpp"

namespace balctl {

/// One member as the pool sees it (pool snapshots, tests, the admin API).
struct member_view {
  member_id id = 0;
  std::string name;
  std::string hostname;
  member_state state = member_state::pending;
  std::int64_t state_since_ms = 0;
  std::int64_t last_seen_ms = 0;
  bool damped = false;
  bool has_status = false;
  member_status status;
};

struct pool_view {
  std::string name;
  member_id active = 0;
  member_id primary = 0;
  bool holding = false;
  bool protection = false;  // pool features (engine/features)
  bool managed_dns = false;
  std::vector<member_view> members;
};

/// What a member actor tells its pool after every evaluation: the
/// transition it took, if any (else from == to == its current state, since
/// at_ms), and when it must be evaluated next. The pool
/// holds every member's timer (engine/deadline_queue), so a member that
/// reports no next deadline is only woken again by a heartbeat.
struct member_report_msg {
  member_id member = 0;
  member_state from = member_state::pending;
  member_state to = member_state::pending;
  std::int64_t at_ms = 0;
  bool has_next = false;
  std::int64_t next_ms = 0;
};

// -- inspect overloads (CAF 0.17 needs them for every message type) ---------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stack_info& x) {
  return f(caf::meta::type_name("stack_info"), x.present, x.version);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, galera_info& x) {
  return f(caf::meta::type_name("galera_info"), x.present, x.cluster_size,
           x.state, x.ready);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, jobs_info& x) {
  return f(caf::meta::type_name("jobs_info"), x.present, x.cron, x.backups, x.last_backup_ms);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_status& x) {
  return f(caf::meta::type_name("member_status"), x.hostname, x.agent_version,
           x.openlitespeed, x.mariadb, x.galera, x.cpanel, x.load1, x.load5,
           x.load15, x.cpu_pct, x.mem_used_bytes, x.mem_total_bytes,
           x.disk_used_bytes, x.disk_total_bytes, x.jobs);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pool_decision& x) {
  return f(caf::meta::type_name("pool_decision"), x.kind, x.pool, x.from, x.to,
           x.reason, x.at_ms);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_state_record& x) {
  return f(caf::meta::type_name("member_state_record"), x.id, x.state,
           x.state_since_ms, x.last_seen_ms, x.last_seq);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_view& x) {
  return f(caf::meta::type_name("member_view"), x.id, x.name, x.hostname,
           x.state, x.state_since_ms, x.last_seen_ms, x.damped, x.has_status,
           x.status);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pool_view& x) {
  return f(caf::meta::type_name("pool_view"), x.name, x.active, x.primary,
           x.holding, x.protection, x.managed_dns, x.members);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_report_msg& x) {
  return f(caf::meta::type_name("member_report_msg"), x.member, x.from,
           x.to, x.at_ms, x.has_next, x.next_ms);
}

// -- admin API read models and commands (engine/views.hpp, store.hpp) ------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_config& x) {
  return f(caf::meta::type_name("member_config"), x.id, x.name, x.hostname,
           x.allowed_ips, x.key, x.linux_family, x.enrolled, x.public_ipv4,
           x.public_ipv6);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pool_config& x) {
  return f(caf::meta::type_name("pool_config"), x.name, x.label, x.from_api,
           x.preset, x.failover_delay_s, x.failover_hostname, x.failback,
           x.failback_stable_s, x.mass_silence_share,
           x.mass_silence_min_members, x.mass_silence_window_s, x.dns_provider,
           x.dns_zone, x.dns_ttl_s, x.dns_sync, x.dns_only, x.members);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pool_summary& x) {
  return f(caf::meta::type_name("pool_summary"), x.id, x.name, x.preset,
           x.from_api, x.members, x.enrolled, x.agents_healthy, x.active,
           x.holding,
           x.failover_delay_s, x.failover_hostname, x.failback,
           x.failback_stable_s, x.mass_silence_share,
           x.mass_silence_min_members, x.mass_silence_window_s, x.dns_provider,
           x.dns_zone, x.dns_ttl_s, x.dns_sync, x.dns_only);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_info& x) {
  return f(caf::meta::type_name("member_info"), x.id, x.name, x.hostname,
           x.linux_family, x.allowed_ips, x.state, x.state_since_ms,
           x.last_seen_ms, x.enrolled, x.damped, x.active, x.has_status,
           x.status);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_page& x) {
  return f(caf::meta::type_name("member_page"), x.members, x.total);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pool_overview& x) {
  return f(caf::meta::type_name("pool_overview"), x.pool, x.last_check_in_ms,
           x.outdated_agents, x.cpanel_members, x.running_jobs, x.queued_jobs,
           x.cron_jobs, x.backups,
           x.protection, x.managed_dns, x.tiles);
}


template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, new_member& x) {
  return f(caf::meta::type_name("new_member"), x.name, x.hostname,
           x.linux_family, x.allowed_ips);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, enrollment_ticket& x) {
  return f(caf::meta::type_name("enrollment_ticket"), x.member, x.pool,
           x.secret);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, enrollment_grant& x) {
  return f(caf::meta::type_name("enrollment_grant"), x.member, x.pool,
           x.key_hex);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, enrollment_record& x) {
  return f(caf::meta::type_name("enrollment_record"), x.secret_sha256,
           x.member, x.pool, x.created_ms);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, activity_line& x) {
  return f(caf::meta::type_name("activity_line"), x.at_ms, x.member, x.kind,
           x.from, x.to, x.message);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, activity_record& x) {
  return f(caf::meta::type_name("activity_record"), x.id, x.pool, x.at_ms,
           x.kind, x.member, x.message, x.from_state, x.to_state);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stored_record& x) {
  return f(caf::meta::type_name("stored_record"), x.kind, x.pool, x.id, x.body);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dns_change_record& x) {
  return f(caf::meta::type_name("dns_change_record"), x.id, x.decision, x.pool,
           x.provider, x.zone, x.name, x.type, x.content, x.ttl_s, x.proxied,
           x.priority, x.status, x.created_ms, x.error);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, account_record& x) {
  return f(caf::meta::type_name("account_record"), x.name, x.type, x.cut, x.managed,
           x.dns_only, x.source_content, x.standby_content, x.content, x.ttl_s,
           x.origin);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, protected_account& x) {
  return f(caf::meta::type_name("protected_account"), x.id, x.domain, x.source,
           x.standby, x.dns_provider, x.dns_zone, x.dns_ttl_s, x.managed, x.records,
           x.on, x.on_since_ms);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dns_record_view& x) {
  return f(caf::meta::type_name("dns_record_view"), x.account, x.name, x.type, x.cut,
           x.managed, x.dns_only, x.origin, x.provider, x.provider_error, x.expected,
           x.ttl_s, x.checked_ms, x.live_status, x.live, x.live_ttl_s, x.live_proxied,
           x.error, x.drift);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, account_view& x) {
  return f(caf::meta::type_name("account_view"), x.account, x.on_member, x.source_state,
           x.standby_state, x.records);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, account_page& x) {
  return f(caf::meta::type_name("account_page"), x.accounts, x.total);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dns_catalogue& x) {
  return f(caf::meta::type_name("dns_catalogue"), x.pool, x.managed_dns, x.providers,
           x.config_providers, x.failover, x.accounts, x.records, x.checked, x.drift,
           x.on_standby, x.refreshed_ms, x.reads_pending);
}

/// Cluster: what the store holds of pools and members, protected accounts
/// and API DNS credentials (secrets included: a message between actors of
/// one node, never sent to another).
struct catalog_snapshot {
  std::vector<pool_config> pools;
  std::vector<dns_provider_config> providers;
  std::vector<std::string> account_pools; // the pool of accounts[i]
  std::vector<protected_account> accounts;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, catalog_snapshot& x) {
  return f(caf::meta::type_name("catalog_snapshot"), x.pools, x.providers, x.account_pools,
           x.accounts);
}

// Without the secret: what inspect sees is what CAF prints (tracing,
// unexpected messages). Actors of one node pass the struct by value, secret
// and all; carrying credentials between nodes needs a deliberate format.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dns_provider_config& x) {
  return f(caf::meta::type_name("dns_provider_config"), x.id, x.kind, x.api_base,
           x.server, x.user, x.server_id, x.tsig_name, x.tsig_algorithm,
           x.ca_file, x.global, x.rate_limit_requests, x.rate_limit_window_s,
           x.max_in_flight, x.timeout_ms, x.pool, x.member);
}

} // namespace balctl

namespace balctl::dns {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, header& x) {
  return f(caf::meta::type_name("dns_header"), x.name, x.value);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, http_response& x) {
  return f(caf::meta::type_name("http_response"), x.transport_error, x.status,
           x.headers, x.body);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dns_response& x) {
  return f(caf::meta::type_name("dns_response"), x.transport_error, x.wire);
}

} // namespace balctl::dns

namespace balctl {

/// An admin request refused: the API's error code (api/ maps it to an HTTP
/// status), the field at fault ("" for none) and a sentence. Carried in a
/// caf::error's context (sec::runtime_error) so request handlers keep
/// returning result<T>.
inline caf::error refuse(std::string code, std::string field,
                         std::string message) {
  return caf::make_error(caf::sec::runtime_error, std::move(code),
                         std::move(field), std::move(message));
}

/// The store refused a write for a pool this node no longer owns (another
/// node took its lease): store_fenced, carried as refuse("fenced", ...).
/// Whoever asked must not act for the pool (no DNS change).
inline bool is_fenced(const caf::error& e) {
  const auto& ctx = e.context();
  return e.category() == caf::atom("system") &&
         static_cast<caf::sec>(e.code()) == caf::sec::runtime_error &&
         ctx.match_elements<std::string, std::string, std::string>() &&
         ctx.get_as<std::string>(0) == "fenced";
}

} // namespace balctl

CAF_BEGIN_TYPE_ID_BLOCK(balctl, caf::first_custom_type_id)

  CAF_ADD_TYPE_ID(balctl, (balctl::member_status))
  CAF_ADD_TYPE_ID(balctl, (balctl::pool_decision))
  CAF_ADD_TYPE_ID(balctl, (balctl::member_state_record))
  CAF_ADD_TYPE_ID(balctl, (std::vector<balctl::member_state_record>))
  CAF_ADD_TYPE_ID(balctl, (balctl::member_view))
  CAF_ADD_TYPE_ID(balctl, (balctl::pool_view))
  CAF_ADD_TYPE_ID(balctl, (std::vector<balctl::pool_view>))
  CAF_ADD_TYPE_ID(balctl, (balctl::member_report_msg))
  CAF_ADD_TYPE_ID(balctl, (std::vector<balctl::pool_decision>))
  CAF_ADD_TYPE_ID(balctl, (balctl::member_config))
  CAF_ADD_TYPE_ID(balctl, (balctl::pool_config))
  CAF_ADD_TYPE_ID(balctl, (std::vector<balctl::pool_config>))
  CAF_ADD_TYPE_ID(balctl, (balctl::catalog_snapshot))
  CAF_ADD_TYPE_ID(balctl, (balctl::pool_summary))
  CAF_ADD_TYPE_ID(balctl, (std::vector<balctl::pool_summary>))
  CAF_ADD_TYPE_ID(balctl, (balctl::member_info))
  CAF_ADD_TYPE_ID(balctl, (balctl::pool_overview))
  CAF_ADD_TYPE_ID(balctl, (balctl::member_page))
  CAF_ADD_TYPE_ID(balctl, (balctl::new_member))
  CAF_ADD_TYPE_ID(balctl, (balctl::enrollment_ticket))
  CAF_ADD_TYPE_ID(balctl, (balctl::enrollment_grant))
  CAF_ADD_TYPE_ID(balctl, (balctl::enrollment_record))
  CAF_ADD_TYPE_ID(balctl, (std::vector<balctl::enrollment_record>))
  CAF_ADD_TYPE_ID(balctl, (balctl::activity_record))
  CAF_ADD_TYPE_ID(balctl, (std::vector<balctl::activity_record>))
  CAF_ADD_TYPE_ID(balctl, (balctl::activity_line))
  CAF_ADD_TYPE_ID(balctl, (std::vector<balctl::activity_line>))
  CAF_ADD_TYPE_ID(balctl, (std::array<std::uint8_t, 32>))
  CAF_ADD_TYPE_ID(balctl, (balctl::dns_change_record))
  CAF_ADD_TYPE_ID(balctl, (std::vector<balctl::dns_change_record>))
  CAF_ADD_TYPE_ID(balctl, (balctl::dns_provider_config))
  CAF_ADD_TYPE_ID(balctl, (std::vector<balctl::dns_provider_config>))
  CAF_ADD_TYPE_ID(balctl, (balctl::account_record))
  CAF_ADD_TYPE_ID(balctl, (std::vector<balctl::account_record>))
  CAF_ADD_TYPE_ID(balctl, (balctl::protected_account))
  CAF_ADD_TYPE_ID(balctl, (std::vector<balctl::protected_account>))
  CAF_ADD_TYPE_ID(balctl, (balctl::dns_record_view))
  CAF_ADD_TYPE_ID(balctl, (std::vector<balctl::dns_record_view>))
  CAF_ADD_TYPE_ID(balctl, (balctl::account_view))
  CAF_ADD_TYPE_ID(balctl, (std::vector<balctl::account_view>))
  CAF_ADD_TYPE_ID(balctl, (balctl::account_page))
  CAF_ADD_TYPE_ID(balctl, (balctl::dns_catalogue))
  CAF_ADD_TYPE_ID(balctl, (std::vector<std::string>))
  CAF_ADD_TYPE_ID(balctl, (std::vector<std::int64_t>))
  CAF_ADD_TYPE_ID(balctl, (std::vector<std::uint64_t>))
  CAF_ADD_TYPE_ID(balctl, (balctl::dns::header))
  CAF_ADD_TYPE_ID(balctl, (std::vector<balctl::dns::header>))
  CAF_ADD_TYPE_ID(balctl, (balctl::dns::http_response))
  CAF_ADD_TYPE_ID(balctl, (balctl::dns::dns_response))
  CAF_ADD_TYPE_ID(balctl, (std::vector<std::uint8_t>))
  CAF_ADD_TYPE_ID(balctl, (balctl::stored_record))
  CAF_ADD_TYPE_ID(balctl, (std::vector<balctl::stored_record>))

  // member actor
  CAF_ADD_ATOM(balctl, balctl, heard_atom, "heard")
  CAF_ADD_ATOM(balctl, balctl, status_atom, "status")
  CAF_ADD_ATOM(balctl, balctl, deadline_atom, "deadline")
  // pool actor
  CAF_ADD_ATOM(balctl, balctl, report_atom, "report")
  CAF_ADD_ATOM(balctl, balctl, fleet_hold_atom, "fleethold")
  CAF_ADD_ATOM(balctl, balctl, failback_atom, "failback")
  CAF_ADD_ATOM(balctl, balctl, crash_atom, "crash")
  // supervisor
  CAF_ADD_ATOM(balctl, balctl, silence_atom, "silence")
  CAF_ADD_ATOM(balctl, balctl, population_atom, "populatn")
  CAF_ADD_ATOM(balctl, balctl, pool_atom, "pool")
  CAF_ADD_ATOM(balctl, balctl, checkpoint_atom, "checkpnt")
  CAF_ADD_ATOM(balctl, balctl, restart_atom, "restart")
  // store actor
  CAF_ADD_ATOM(balctl, balctl, record_atom, "record")
  CAF_ADD_ATOM(balctl, balctl, mark_atom, "mark")
  CAF_ADD_ATOM(balctl, balctl, save_atom, "save")
  CAF_ADD_ATOM(balctl, balctl, active_atom, "active")
  CAF_ADD_ATOM(balctl, balctl, fence_atom, "fence")
  // cluster
  CAF_ADD_ATOM(balctl, balctl, own_atom, "own")
  CAF_ADD_ATOM(balctl, balctl, disown_atom, "disown")
  CAF_ADD_ATOM(balctl, balctl, lease_atom, "lease")
  CAF_ADD_ATOM(balctl, balctl, handoff_atom, "handoff")
  CAF_ADD_ATOM(balctl, balctl, catalog_atom, "catalog")
  CAF_ADD_ATOM(balctl, balctl, enrollments_atom, "enrolls")
  CAF_ADD_ATOM(balctl, balctl, restore_atom, "restore")
  CAF_ADD_ATOM(balctl, balctl, owners_atom, "owners")
  CAF_ADD_ATOM(balctl, balctl, seen_atom, "seen")
  CAF_ADD_ATOM(balctl, balctl, forward_atom, "forward")
  CAF_ADD_ATOM(balctl, balctl, cluster_atom, "cluster")
  // dns executor
  CAF_ADD_ATOM(balctl, balctl, execute_atom, "execute")
  CAF_ADD_ATOM(balctl, balctl, submit_atom, "submit")
  CAF_ADD_ATOM(balctl, balctl, cut_atom, "cut")
  CAF_ADD_ATOM(balctl, balctl, dns_alert_atom, "dnsalert")
  CAF_ADD_ATOM(balctl, balctl, dns_http_atom, "dnshttp")
  CAF_ADD_ATOM(balctl, balctl, dns_wire_atom, "dnswire")
  CAF_ADD_ATOM(balctl, balctl, read_atom, "read")
  CAF_ADD_ATOM(balctl, balctl, list_atom, "list")
  CAF_ADD_ATOM(balctl, balctl, put_provider_atom, "putprov")
  CAF_ADD_ATOM(balctl, balctl, delete_provider_atom, "delprov")
  CAF_ADD_ATOM(balctl, balctl, put_account_atom, "putacct")
  CAF_ADD_ATOM(balctl, balctl, delete_account_atom, "delacct")
  CAF_ADD_ATOM(balctl, balctl, accounts_atom, "accounts")
  CAF_ADD_ATOM(balctl, balctl, account_atom, "account")
  CAF_ADD_ATOM(balctl, balctl, managed_dns_atom, "manageddns")
  CAF_ADD_ATOM(balctl, balctl, refresh_atom, "refresh")
  CAF_ADD_ATOM(balctl, balctl, import_atom, "import")
  CAF_ADD_ATOM(balctl, balctl, sync_atom, "sync")
  CAF_ADD_ATOM(balctl, balctl, providers_atom, "providers")
  // store actor: the DNS journal
  CAF_ADD_ATOM(balctl, balctl, journal_dns_atom, "journdns")
  CAF_ADD_ATOM(balctl, balctl, mark_dns_atom, "markdns")
  // admin API (pool, supervisor, store actor)
  CAF_ADD_ATOM(balctl, balctl, summary_atom, "summary")
  CAF_ADD_ATOM(balctl, balctl, overview_atom, "overview")
  CAF_ADD_ATOM(balctl, balctl, members_atom, "members")
  CAF_ADD_ATOM(balctl, balctl, member_atom, "member")
  CAF_ADD_ATOM(balctl, balctl, add_member_atom, "addmember")
  CAF_ADD_ATOM(balctl, balctl, remove_member_atom, "rmmember")
  CAF_ADD_ATOM(balctl, balctl, rename_atom, "rename")
  CAF_ADD_ATOM(balctl, balctl, settings_atom, "settings")
  CAF_ADD_ATOM(balctl, balctl, enrolled_atom, "enrolled")
  CAF_ADD_ATOM(balctl, balctl, enroll_atom, "enroll")
  CAF_ADD_ATOM(balctl, balctl, reenrol_atom, "reenrol")
  CAF_ADD_ATOM(balctl, balctl, create_pool_atom, "mkpool")
  CAF_ADD_ATOM(balctl, balctl, delete_pool_atom, "delpool")
  CAF_ADD_ATOM(balctl, balctl, pools_atom, "pools")
  CAF_ADD_ATOM(balctl, balctl, activity_flush_atom, "actflush")
  CAF_ADD_ATOM(balctl, balctl, activity_atom, "activity")
  CAF_ADD_ATOM(balctl, balctl, update_pool_atom, "updpool")
  CAF_ADD_ATOM(balctl, balctl, allocate_id_atom, "allocid")
  CAF_ADD_ATOM(balctl, balctl, put_enrollment_atom, "putenrol")
  CAF_ADD_ATOM(balctl, balctl, complete_enrollment_atom, "doneenrol")
  // Protection: records, jobs, replication (actors/protection, account)
  CAF_ADD_ATOM(balctl, balctl, put_records_atom, "putrecs")
  CAF_ADD_ATOM(balctl, balctl, delete_records_atom, "delrecs")
  CAF_ADD_ATOM(balctl, balctl, records_atom, "records")
  CAF_ADD_ATOM(balctl, balctl, protection_atom, "protect")
  CAF_ADD_ATOM(balctl, balctl, job_atom, "job")
  CAF_ADD_ATOM(balctl, balctl, jobs_atom, "jobs")
  CAF_ADD_ATOM(balctl, balctl, cancel_atom, "cancel")
  CAF_ADD_ATOM(balctl, balctl, agent_atom, "agent")
  CAF_ADD_ATOM(balctl, balctl, replicate_atom, "replicate")
  CAF_ADD_ATOM(balctl, balctl, replication_atom, "replicatn")
  CAF_ADD_ATOM(balctl, balctl, job_done_atom, "jobdone")
  CAF_ADD_ATOM(balctl, balctl, manifest_atom, "manifest")
  CAF_ADD_ATOM(balctl, balctl, chunk_atom, "chunk")
  CAF_ADD_ATOM(balctl, balctl, tick_atom, "tick")
  CAF_ADD_ATOM(balctl, balctl, alert_atom, "alert")
  CAF_ADD_ATOM(balctl, balctl, monitoring_atom, "monitoring")

CAF_END_TYPE_ID_BLOCK(balctl)
