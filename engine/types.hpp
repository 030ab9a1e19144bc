#pragma once

// Domain vocabulary shared by every layer. No CAF, no libuv here.

#include <cstdint>
#include <string>

namespace balctl {

using member_id = std::uint64_t;

/// Life cycle of one member, as seen by failure detection (engine/member_fsm).
enum class member_state : std::uint8_t {
  pending,    // enrolled, never heard from
  healthy,    // heartbeating within the suspect window
  suspect,    // silent longer than suspect_after, not yet the failover delay
  down,       // silent longer than the pool's failover delay
  recovering, // heard again after down; must stay stable before healthy
};

const char* to_string(member_state s);
bool from_string(const std::string& s, member_state& out);

enum class pool_preset : std::uint8_t { generic_linux, haproxy };
const char* to_string(pool_preset p);
bool from_string(const std::string& s, pool_preset& out);

enum class failback_policy : std::uint8_t { manual, automatic };
const char* to_string(failback_policy p);
bool from_string(const std::string& s, failback_policy& out);

/// The Linux family an operator picked when adding a server: it chooses
/// the package manager of the install command. none: declared in config.
enum class linux_family : std::uint8_t { none, rhel, debian };
const char* to_string(linux_family f); // "", "rhel", "debian"
bool from_string(const std::string& s, linux_family& out); // rhel|debian only

/// One detected stack on a member (the seed's member tabs).
/// A refused API body: the field at fault (a JSON path such as
/// "records[2].name"), why, and the error code the API answers with.
struct field_problem {
  std::string field;
  std::string message;
  std::string code = "invalid_field"; // | unknown_field | missing_field
};

struct stack_info {
  bool present = false;
  std::string version; // empty when the agent could not tell
  bool operator==(const stack_info& o) const {
    return present == o.present && version == o.version;
  }
};

struct galera_info {
  bool present = false;
  int cluster_size = 0;
  std::string state; // wsrep_local_state_comment, e.g. "Synced"
  bool ready = false;
  bool operator==(const galera_info& o) const {
    return present == o.present && cluster_size == o.cluster_size &&
           state == o.state && ready == o.ready;
  }
};

/// Scheduled work on a member (the status body's "jobs"; the pool's Fleet
/// Status KPIs).
struct jobs_info {
  bool present = false;
  std::uint64_t cron = 0;           // cron job lines in the host's crontabs
  std::uint64_t backups = 0;        // backup archives under /backup
  std::int64_t last_backup_ms = 0;  // newest archive's mtime, Unix ms; 0 = none
  bool operator==(const jobs_info& o) const {
    return present == o.present && cron == o.cron && backups == o.backups &&
           last_backup_ms == o.last_backup_ms;
  }
};

/// The optional JSON status body of a heartbeat, decoded
/// (docs/protocol.md, "Status body").
struct member_status {
  std::string hostname;
  std::string agent_version;
  stack_info openlitespeed;
  stack_info mariadb;
  galera_info galera;
  stack_info cpanel;
  double load1 = 0, load5 = 0, load15 = 0;
  double cpu_pct = 0;
  std::uint64_t mem_used_bytes = 0, mem_total_bytes = 0;
  std::uint64_t disk_used_bytes = 0, disk_total_bytes = 0;
  jobs_info jobs;
};

} // namespace balctl
