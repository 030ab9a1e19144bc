#pragma once

// Stack detection and host metrics for balctl-agent: what fills the status
// body of a heartbeat (docs/protocol.md, "Status body").
//
// Everything is read through a root prefix (detect_options::root), so tests
// point it at a fake filesystem tree with fake commands in it. No input
// crashes the agent: a missing file, garbage contents, or a command that
// hangs, floods its output or exits non-zero gives "not detected", "version
// unknown" or zeroed metrics. No function here throws.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/types.hpp"

namespace balctl::agent {

struct detect_options {
  /// Every path below is read as root + path ("/" = the real system).
  std::string root = "/";
  /// "" = none; else passed as --defaults-extra-file=<root + file> (the
  /// first argument, as the mysql client requires) when asking Galera.
  std::string mysql_defaults_file;
  /// A command running longer is killed (SIGKILL, with its process group)
  /// and counts as failed. Detection runs at most two commands.
  int command_timeout_ms = 3000;
  /// Disk usage is statvfs(root + disk_path).
  std::string disk_path = "/";
};

struct command_result {
  bool ran = false;       // the program was started (false: missing, not executable)
  bool timed_out = false; // killed after timeout_ms
  bool cancelled = false; // killed because the cancel flag turned true
  int exit_code = -1;     // exit status; -1 when killed by a signal or not run
  std::string out;        // stdout, at most max_bytes
  bool truncated = false; // more than max_bytes came; out holds the head (or tail)
  /// Started, exited by itself with status 0.
  bool ok() const { return ran && !timed_out && exit_code == 0; }
};

/// Runs argv[0] (a path; no PATH search, no shell) with argv. stdin is
/// /dev/null, stderr is discarded, stdout is captured up to max_bytes (the
/// rest is read and dropped so the child never blocks on a full pipe). The
/// child runs in its own process group; after timeout_ms the whole group is
/// killed with SIGKILL. The child is always reaped before returning.
command_result run_command(const std::vector<std::string>& argv, int timeout_ms,
                           std::size_t max_bytes = 65536);

/// The same, with the knobs jobs need (agent/jobs.hpp).
struct command_spec {
  std::vector<std::string> argv;
  int timeout_ms = 3000;
  std::size_t max_bytes = 65536;
  bool keep_tail = false;   // keep the last max_bytes (a job's report) instead of the first
  bool with_stderr = false; // stderr into the same pipe as stdout, interleaved
  /// "NAME=value" entries laid over the agent's environment.
  std::vector<std::string> env;
  /// Looked at every 100 ms; true kills the process group (result: cancelled).
  const std::atomic<bool>* cancel = nullptr;
};
command_result run_command(const command_spec& spec);

struct detected_stacks {
  stack_info openlitespeed;
  stack_info mariadb;         // MariaDB or MySQL server
  std::string mariadb_flavor; // "mariadb" | "mysql" | "" (unknown)
  galera_info galera;
  stack_info cpanel;
  bool operator==(const detected_stacks& o) const {
    return openlitespeed == o.openlitespeed && mariadb == o.mariadb &&
           mariadb_flavor == o.mariadb_flavor && galera == o.galera &&
           cpanel == o.cpanel;
  }
  bool operator!=(const detected_stacks& o) const { return !(*this == o); }
};

/// Detects OpenLiteSpeed, MariaDB/MySQL, Galera (only asked when MariaDB or
/// MySQL was found) and cPanel/WHM. Versions are at most max_version_size
/// printable ASCII characters, "" when unknown.
detected_stacks detect_stacks(const detect_options& o);

constexpr std::size_t max_version_size = 64;

struct host_metrics {
  double load1 = 0, load5 = 0, load15 = 0;
  double cpu_pct = 0; // 0..100, busy share of all CPUs since the previous sample
  std::uint64_t mem_used_bytes = 0, mem_total_bytes = 0;
  std::uint64_t disk_used_bytes = 0, disk_total_bytes = 0;
};

/// Reads load average, CPU, memory and disk usage. Every value is finite and
/// >= 0 (the engine rejects anything else); a source that cannot be read or
/// parsed leaves its values at 0.
class metrics_reader {
 public:
  explicit metrics_reader(detect_options o);
  /// cpu_pct is the busy share between this sample and the previous one
  /// (0 on the first, and when the counters did not advance or went back).
  host_metrics sample();

 private:
  struct cpu_times {
    std::uint64_t busy = 0;
    std::uint64_t total = 0;
  };
  detect_options opts_;
  std::optional<cpu_times> prev_cpu_;
};

/// Cron job lines (/var/spool/cron/*, /var/spool/cron/crontabs/*,
/// /etc/crontab, /etc/cron.d/*) and backup archives (*.tar.gz, *.tar in
/// /backup and up to three directory levels below it, newest mtime), under
/// root. Unreadable places count 0.
jobs_info count_jobs(const detect_options& o);

/// Job lines in one crontab: not blank, not a comment, not NAME=value.
std::uint64_t count_cron_lines(const std::string& crontab);

/// Copies stacks, metrics and job counts into the status body; hostname and
/// agent_version are left as they are.
void fill_status(member_status& s, const detected_stacks& d, const host_metrics& m,
                 const jobs_info& jobs);
void fill_status(member_status& s, const detected_stacks& d, const host_metrics& m);

// Parsers, exposed for tests. On garbage: "" or a galera_info not present.

/// "10.11.6" from "/usr/sbin/mariadbd  Ver 10.11.6-MariaDB-0+deb12u1 for ...".
std::string parse_server_version(const std::string& version_output);
/// "118.0.5" from "11.118.0.5" (cPanel drops the leading "11.").
std::string parse_cpanel_version(const std::string& file_contents);
/// wsrep status from `mysql -N -B -e "SHOW GLOBAL STATUS LIKE 'wsrep_%'"`.
galera_info parse_wsrep_status(const std::string& tsv);

} // namespace balctl::agent
