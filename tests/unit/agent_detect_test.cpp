#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "agent/detect.hpp"
#include "transport/protocol.hpp"
#include "tests/support/temp_dir.hpp"

using namespace balctl;
using namespace balctl::agent;
namespace fs = std::filesystem;

namespace {

// tests/unit/agent_detect_test.cpp -> tests/fixtures/agent
fs::path fixtures() {
  return fs::path(__FILE__).parent_path().parent_path() / "fixtures" / "agent";
}

detect_options at(const std::string& tree) {
  auto root = fixtures() / tree;
  REQUIRE(fs::is_directory(root));
  detect_options o;
  o.root = root.string();
  return o;
}

std::string command(const std::string& name) {
  return (fixtures() / "commands" / name).string();
}

/// A scratch directory, optionally a copy of a fixture tree, removed at the end.
class temp_tree : public test::temp_dir {
 public:
  explicit temp_tree(const std::string& fixture = "") : test::temp_dir("balctl-detect") {
    if (!fixture.empty()) {
      fs::copy(fixtures() / fixture, path(), fs::copy_options::recursive);
    }
  }
  detect_options options() const {
    detect_options o;
    o.root = path().string();
    return o;
  }
  void write(const std::string& rel, const std::string& contents) const {
    auto p = path() / rel;
    fs::create_directories(p.parent_path());
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << contents;
    REQUIRE(f.good());
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

/// Children of this process that exited and were never reaped.
int zombie_children() {
  int n = 0;
  const auto self = std::to_string(::getpid());
  for (const auto& e : fs::directory_iterator("/proc")) {
    const auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    auto stat = slurp(e.path() / "stat"); // pid (comm) state ppid ...
    auto close = stat.rfind(')');
    if (close == std::string::npos || close + 4 >= stat.size()) {
      continue;
    }
    char state = stat[close + 2];
    auto ppid_start = close + 4;
    auto ppid = stat.substr(ppid_start, stat.find(' ', ppid_start) - ppid_start);
    if (state == 'Z' && ppid == self) {
      ++n;
    }
  }
  return n;
}

/// True when pid is gone or dead (a zombie waiting for its new parent).
bool dead(pid_t pid) {
  auto stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] == 'Z';
}

template <class F>
long long elapsed_ms(F&& f) {
  auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now() - start)
      .count();
}

constexpr std::uint64_t kib = 1024;

const char* const stat_first =
    "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 100 0 100 700 100 0 0 0 0 0\n";

} // namespace

// ---------------------------------------------------------------------------
// Stacks, one fixture tree each.

TEST_CASE("an empty system reports no stack", "[agent][detect][unit]") {
  auto d = detect_stacks(at("none"));
  CHECK(d == detected_stacks{});
  CHECK_FALSE(d.openlitespeed.present);
  CHECK_FALSE(d.mariadb.present);
  CHECK(d.mariadb_flavor.empty());
  CHECK_FALSE(d.galera.present);
  CHECK_FALSE(d.cpanel.present);
}

TEST_CASE("OpenLiteSpeed is detected with the version from its VERSION file",
          "[agent][detect][unit]") {
  auto d = detect_stacks(at("ols"));
  CHECK(d.openlitespeed == stack_info{true, "1.7.19"});
  CHECK_FALSE(d.mariadb.present);
  CHECK_FALSE(d.galera.present);
  CHECK_FALSE(d.cpanel.present);
}

TEST_CASE("LiteSpeed Enterprise (lshttpd without bin/openlitespeed) is not OpenLiteSpeed",
          "[agent][detect][unit]") {
  temp_tree t("ols");
  fs::rename(t.path() / "usr/local/lsws/bin/openlitespeed",
             t.path() / "usr/local/lsws/bin/lshttpd");
  CHECK_FALSE(detect_stacks(t.options()).openlitespeed.present);
}

TEST_CASE("OpenLiteSpeed without a VERSION file is present with an unknown version",
          "[agent][detect][unit]") {
  temp_tree t("ols");
  fs::remove(t.path() / "usr/local/lsws/VERSION");
  CHECK(detect_stacks(t.options()).openlitespeed == stack_info{true, ""});
}

TEST_CASE("MariaDB in a Galera cluster reports its version, flavor and cluster state",
          "[agent][detect][unit]") {
  auto o = at("mariadb_galera");

  SECTION("without a defaults file") {}
  SECTION("with a defaults file read under the root") {
    o.mysql_defaults_file = "/etc/balctl/mysql.cnf";
  }

  auto d = detect_stacks(o);
  CHECK(d.mariadb == stack_info{true, "10.11.6"});
  CHECK(d.mariadb_flavor == "mariadb");
  CHECK(d.galera.present);
  CHECK(d.galera.cluster_size == 3);
  CHECK(d.galera.state == "Synced");
  CHECK(d.galera.ready);
  CHECK_FALSE(d.openlitespeed.present);
  CHECK_FALSE(d.cpanel.present);
}

TEST_CASE("a missing defaults file makes the client fail: Galera not detected, MariaDB still is",
          "[agent][detect][unit]") {
  auto o = at("mariadb_galera");
  o.mysql_defaults_file = "/etc/balctl/missing.cnf";
  auto d = detect_stacks(o);
  CHECK(d.mariadb == stack_info{true, "10.11.6"});
  CHECK(d.galera == galera_info{});
}

TEST_CASE("Galera is not asked for when no MariaDB or MySQL server is installed",
          "[agent][detect][unit]") {
  // The client alone (a workstation, a web node with only the client).
  temp_tree t("mariadb_galera");
  fs::remove(t.path() / "usr/sbin/mariadbd");
  auto d = detect_stacks(t.options());
  CHECK_FALSE(d.mariadb.present);
  CHECK_FALSE(d.galera.present);
}

TEST_CASE("MySQL without Galera reports flavor mysql and no Galera", "[agent][detect][unit]") {
  auto d = detect_stacks(at("mysql"));
  CHECK(d.mariadb == stack_info{true, "8.0.35"});
  CHECK(d.mariadb_flavor == "mysql");
  CHECK(d.galera == galera_info{});
}

TEST_CASE("a server binary only in /usr/libexec (RHEL packages) is detected",
          "[agent][detect][unit]") {
  temp_tree t;
  t.write("usr/libexec/mysqld", slurp(fixtures() / "mysql/usr/sbin/mysqld"));
  fs::permissions(t.path() / "usr/libexec/mysqld", fs::perms::owner_all);
  auto d = detect_stacks(t.options());
  CHECK(d.mariadb == stack_info{true, "8.0.35"});
  CHECK(d.mariadb_flavor == "mysql");
}

TEST_CASE("cPanel reports its version without the leading 11.", "[agent][detect][unit]") {
  auto d = detect_stacks(at("cpanel"));
  CHECK(d.cpanel == stack_info{true, "118.0.5"});
  CHECK_FALSE(d.openlitespeed.present);
  CHECK_FALSE(d.mariadb.present);

  SECTION("the version file alone is enough") {
    temp_tree t("cpanel");
    fs::remove(t.path() / "usr/local/cpanel/cpanel");
    CHECK(detect_stacks(t.options()).cpanel == stack_info{true, "118.0.5"});
  }
  SECTION("the binary alone is present with an unknown version") {
    temp_tree t("cpanel");
    fs::remove(t.path() / "usr/local/cpanel/version");
    CHECK(detect_stacks(t.options()).cpanel == stack_info{true, ""});
  }
}

TEST_CASE("garbage everywhere gives present stacks with unknown versions and no Galera",
          "[agent][detect][unit]") {
  // bin/openlitespeed is ELF junk, VERSION files are binary, mysqld exits 1 after
  // printing a good-looking version, the client floods 4 MB of junk.
  auto d = detect_stacks(at("garbage"));
  CHECK(d.openlitespeed == stack_info{true, ""});
  CHECK(d.cpanel == stack_info{true, ""});
  CHECK(d.mariadb == stack_info{true, ""});
  CHECK(d.mariadb_flavor.empty());
  CHECK(d.galera == galera_info{});
}

TEST_CASE("a Galera client that hangs is killed after the command timeout",
          "[agent][detect][unit]") {
  auto o = at("hangs");
  o.command_timeout_ms = 200;
  detected_stacks d;
  auto ms = elapsed_ms([&] { d = detect_stacks(o); });
  CHECK(ms < 5000); // the client sleeps 30 s
  CHECK(d.mariadb == stack_info{true, "10.11.6"});
  CHECK(d.mariadb_flavor == "mariadb");
  CHECK(d.galera == galera_info{});
  CHECK(zombie_children() == 0);
}

TEST_CASE("a FIFO or a directory where a file belongs neither blocks nor counts",
          "[agent][detect][unit]") {
  temp_tree t;
  t.write("usr/local/lsws/bin/openlitespeed", "");
  REQUIRE(::mkfifo((t.path() / "usr/local/lsws/VERSION").c_str(), 0600) == 0);
  fs::create_directories(t.path() / "usr/local/cpanel/version");
  fs::create_directories(t.path() / "proc");
  REQUIRE(::mkfifo((t.path() / "proc/loadavg").c_str(), 0600) == 0);
  fs::create_directories(t.path() / "proc/meminfo");
  t.write("usr/sbin/mysqld", "not executable");

  auto d = detect_stacks(t.options());
  CHECK(d.openlitespeed == stack_info{true, ""});
  CHECK_FALSE(d.cpanel.present); // a directory is not the version file
  CHECK(d.mariadb == stack_info{true, ""}); // present, but cannot be run
  auto m = metrics_reader(t.options()).sample();
  CHECK(m.load1 == 0);
  CHECK(m.mem_total_bytes == 0);
}

// ---------------------------------------------------------------------------
// Parsers.

TEST_CASE("server versions are read from mysqld --version of every flavor",
          "[agent][detect][unit]") {
  auto [output, version] = GENERATE(table<std::string, std::string>({
      {"/usr/sbin/mariadbd  Ver 10.11.6-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 "
       "(Debian 12)\n",
       "10.11.6"},
      {"/usr/sbin/mysqld  Ver 8.0.35 for Linux on x86_64 (MySQL Community Server - GPL)\n",
       "8.0.35"},
      {"/usr/sbin/mariadbd  Ver 11.4.2-MariaDB-ubu2404 for debian-linux-gnu on x86_64 "
       "(mariadb.org binary distribution)",
       "11.4.2"},
      {"/usr/libexec/mysqld  Ver 10.5.22-MariaDB for Linux on x86_64 (MariaDB Server)",
       "10.5.22"},
      {"/usr/sbin/mysqld  Ver 8.0.35-27 for Linux on x86_64 (Percona Server (GPL), Release 27)",
       "8.0.35"},
      {"mysqld  Ver 5.7.44 for Linux on x86_64 (MySQL Community Server (GPL))", "5.7.44"},
      {"warning: something first\r\n/usr/sbin/mysqld  Ver 8.4.0 for Linux on x86_64\r\n",
       "8.4.0"},
      {"", ""},
      {"Ver", ""},
      {"mysqld Ver x.y for Linux", ""},
      {"mysqld Ver 10 for Linux", ""},
      {"mysqld Ver .10.1 for Linux", ""},
      {"mysqld Version 10.11.6", ""},
      {std::string("mysqld Ver \xff\x00 10.11.6", 21), ""},
  }));
  CAPTURE(output);
  CHECK(parse_server_version(output) == version);
}

TEST_CASE("a server version is at most 64 characters", "[agent][detect][unit]") {
  std::string v = "1";
  for (int i = 0; i < 100; ++i) {
    v += ".1";
  }
  auto got = parse_server_version("mysqld  Ver " + v + " for Linux");
  CHECK(got.size() <= max_version_size);
  CHECK(got.rfind("1.1.1", 0) == 0);
}

TEST_CASE("cPanel version files are read without the leading 11.", "[agent][detect][unit]") {
  auto [contents, version] = GENERATE(table<std::string, std::string>({
      {"11.118.0.5\n", "118.0.5"},
      {"11.110.0.17", "110.0.17"},
      {"  11.126.0.1  \r\n", "126.0.1"},
      {"118.0.5\n", "118.0.5"},
      {"11.118\n", "11.118"},
      {"", ""},
      {"\n11.118.0.5\n", ""},
      {"11.x.", ""},
      {"11.118.0.5 beta", ""},
      {"\xef\xbb\xbf" "11.118.0.5", ""},
  }));
  CAPTURE(contents);
  CHECK(parse_cpanel_version(contents) == version);
}

TEST_CASE("wsrep status gives Galera's cluster size, state and readiness",
          "[agent][detect][unit]") {
  using row = std::tuple<std::string, bool, int, std::string, bool>;
  auto [tsv, present, size, state, ready] =
      GENERATE(table<std::string, bool, int, std::string, bool>({
          row{"wsrep_cluster_size\t3\nwsrep_local_state_comment\tSynced\nwsrep_ready\tON\n",
              true, 3, "Synced", true},
          row{"wsrep_local_state_comment\tDonor/Desynced\nwsrep_cluster_size\t3\n"
              "wsrep_ready\tON\n",
              true, 3, "Donor/Desynced", true},
          row{"wsrep_cluster_size\t2\nwsrep_local_state_comment\tJoining\nwsrep_ready\tOFF\n",
              true, 2, "Joining", false},
          row{"wsrep_cluster_size\t3\r\nwsrep_local_state_comment\tJoined\r\nwsrep_ready\ton\r\n",
              true, 3, "Joined", true},
          // a provider loaded but not in a cluster (yet): Galera, not ready
          row{"wsrep_cluster_size\t0\nwsrep_provider_name\tGalera\n"
              "wsrep_local_state_comment\tInitialized\nwsrep_ready\tOFF\n",
              true, 0, "Initialized", false},
          // MariaDB without a provider still lists wsrep_*: not Galera
          row{"wsrep_cluster_size\t0\nwsrep_provider_name\t\nwsrep_cluster_status\tDisconnected\n"
              "wsrep_local_state_comment\t\nwsrep_ready\tOFF\n",
              false, 0, "", false},
          row{"", false, 0, "", false},
          row{"wsrep_cluster_size 3\nwsrep_ready ON\n", false, 0, "", false},
          row{"wsrep_cluster_size\t-3\nwsrep_ready\tON\n", false, 0, "", false},
          row{"wsrep_cluster_size\t99999999999999999999\n", false, 0, "", false},
          row{"wsrep_cluster_size\t3\nwsrep_local_state_comment\t\xff\x01Synced\x7f\n", true,
              3, "Synced", false},
      }));
  CAPTURE(tsv);
  auto g = parse_wsrep_status(tsv);
  CHECK(g.present == present);
  CHECK(g.cluster_size == size);
  CHECK(g.state == state);
  CHECK(g.ready == ready);
}

TEST_CASE("a Galera state is at most 64 printable characters", "[agent][detect][unit]") {
  auto g = parse_wsrep_status("wsrep_cluster_size\t1\nwsrep_local_state_comment\t" +
                              std::string(500, 'x') + "\n");
  CHECK(g.state == std::string(64, 'x'));
}

// ---------------------------------------------------------------------------
// run_command.

TEST_CASE("run_command passes arguments verbatim, without a shell", "[agent][detect][unit]") {
  auto r = run_command({command("print_args.sh"), "a b", "'q'", "$HOME", "", "-e"}, 5000);
  CHECK(r.ran);
  CHECK_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  CHECK(r.ok());
  CHECK(r.out == "a b\n'q'\n$HOME\n\n-e\n");
}

TEST_CASE("run_command reports a non-zero exit with what was printed",
          "[agent][detect][unit]") {
  auto r = run_command({command("exit_3.sh")}, 5000);
  CHECK(r.ran);
  CHECK(r.exit_code == 3);
  CHECK_FALSE(r.ok());
  CHECK(r.out == "partial\n");
}

TEST_CASE("run_command gives the child /dev/null as stdin and drops its stderr",
          "[agent][detect][unit]") {
  auto r = run_command({command("stdin_stderr.sh")}, 5000);
  CHECK(r.ok());
  CHECK(r.out == "out\n");
}

TEST_CASE("run_command keeps max_bytes of a flood and still waits for the exit",
          "[agent][detect][unit]") {
  auto r = run_command({command("flood.sh")}, 10000, 1000);
  CHECK(r.ok());
  REQUIRE(r.out.size() == 1000);
  CHECK(r.out.substr(0, 11) == "0123456789\n");
  CHECK(zombie_children() == 0);
}

TEST_CASE("run_command reports a child killed by a signal as failed",
          "[agent][detect][unit]") {
  auto r = run_command({command("killed.sh")}, 5000);
  CHECK(r.ran);
  CHECK_FALSE(r.timed_out);
  CHECK(r.exit_code == -1);
  CHECK(r.out == "before\n");
}

TEST_CASE("run_command does not run what is missing or not executable",
          "[agent][detect][unit]") {
  temp_tree t;
  t.write("plain.sh", "#!/bin/sh\necho hi\n");
  fs::permissions(t.path() / "plain.sh", fs::perms::owner_read | fs::perms::owner_write);
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {(t.path() / "missing").string()},
           {(t.path() / "plain.sh").string()},
           {t.path().string()},
           {""},
           {}}) {
    auto r = run_command(argv, 5000);
    CHECK_FALSE(r.ran);
    CHECK_FALSE(r.ok());
    CHECK(r.out.empty());
  }
  CHECK(zombie_children() == 0);
}

TEST_CASE("run_command kills the whole process group of a command past its timeout",
          "[agent][detect][unit]") {
  temp_tree t;
  auto pid_file = t.path() / "sleep.pid";
  command_result r;
  auto ms = elapsed_ms([&] { r = run_command({command("sleep_with_child.sh"), pid_file.string()}, 200); });
  CHECK(r.ran);
  CHECK(r.timed_out);
  CHECK(r.exit_code == -1);
  CHECK_FALSE(r.ok());
  CHECK(ms >= 200);
  CHECK(ms < 5000);
  CHECK(zombie_children() == 0);

  // The script's `sleep 30` was reparented when the script died; SIGKILL to
  // the group ended it too. Its exit is asynchronous: a bounded wait.
  auto pid_text = slurp(pid_file);
  REQUIRE_FALSE(pid_text.empty());
  auto sleep_pid = static_cast<pid_t>(std::stol(pid_text));
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = dead(sleep_pid);
    if (!gone) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  CHECK(gone);
}

TEST_CASE("run_command with a zero timeout fails at once", "[agent][detect][unit]") {
  auto r = run_command({command("sleep_with_child.sh"), "/dev/null"}, 0);
  CHECK(r.ran);
  CHECK(r.timed_out);
  CHECK(zombie_children() == 0);
}

// ---------------------------------------------------------------------------
// Metrics.

TEST_CASE("metrics come from loadavg, meminfo and statvfs under the root",
          "[agent][detect][unit]") {
  metrics_reader reader(at("none"));
  auto m = reader.sample();
  CHECK(m.load1 == 0.12);
  CHECK(m.load5 == 0.20);
  CHECK(m.load15 == 0.18);
  CHECK(m.cpu_pct == 0); // first sample
  CHECK(m.mem_total_bytes == 8029944 * kib);
  CHECK(m.mem_used_bytes == (8029944 - 5931320) * kib);
  CHECK(m.disk_total_bytes > 0);
  CHECK(m.disk_used_bytes <= m.disk_total_bytes);

  // Same counters again: nothing elapsed, no percentage.
  CHECK(reader.sample().cpu_pct == 0);
}

TEST_CASE("garbage in /proc gives zeroed metrics", "[agent][detect][unit]") {
  auto o = at("garbage");
  o.disk_path = "/no/such/dir";
  metrics_reader reader(o);
  for (int i = 0; i < 2; ++i) {
    auto m = reader.sample();
    CHECK(m.load1 == 0);
    CHECK(m.load5 == 0);
    CHECK(m.load15 == 0);
    CHECK(m.cpu_pct == 0);
    CHECK(m.mem_used_bytes == 0);
    CHECK(m.mem_total_bytes == 0);
    CHECK(m.disk_used_bytes == 0);
    CHECK(m.disk_total_bytes == 0);
  }
}

TEST_CASE("a missing root gives zeroed metrics", "[agent][detect][unit]") {
  detect_options o;
  o.root = "/no/such/root";
  auto m = metrics_reader(o).sample();
  CHECK(m.load1 == 0);
  CHECK(m.mem_total_bytes == 0);
  CHECK(m.disk_total_bytes == 0);
  CHECK(detect_stacks(o) == detected_stacks{});
}

TEST_CASE("CPU percent is the busy share of the time between two samples",
          "[agent][detect][unit]") {
  temp_tree t("none");
  t.write("proc/stat", stat_first); // busy 200 of 1000
  metrics_reader reader(t.options());
  CHECK(reader.sample().cpu_pct == 0);

  SECTION("busy excludes idle and iowait; guest is not counted twice") {
    // total 1500 (+500), idle 900, iowait 200: busy 400 (+200) -> 40 %
    t.write("proc/stat", "cpu  250 0 150 900 200 0 0 0 77 11\n");
    CHECK(reader.sample().cpu_pct == 40.0);
  }
  SECTION("irq, softirq and steal are busy") {
    // +100 irq, +100 softirq, +100 steal, +100 idle: 300 of 400 -> 75 %
    t.write("proc/stat", "cpu  100 0 100 800 100 100 100 100 0 0\n");
    CHECK(reader.sample().cpu_pct == 75.0);
  }
  SECTION("counters going back give 0") {
    t.write("proc/stat", "cpu  50 0 50 300 50 0 0 0 0 0\n");
    CHECK(reader.sample().cpu_pct == 0);
  }
  SECTION("a garbled sample gives 0 and the next one measures from the last good one") {
    t.write("proc/stat", "cpu  \xff\xff\n");
    CHECK(reader.sample().cpu_pct == 0);
    t.write("proc/stat", "cpu  300 0 300 1100 300 0 0 0 0 0\n"); // busy 600 (+400) of 2000 (+1000)
    CHECK(reader.sample().cpu_pct == 40.0);
  }
  SECTION("iowait running backwards never gives more than 100") {
    // total +50, but iowait fell by 100: busy +150
    t.write("proc/stat", "cpu  250 0 100 700 0 0 0 0 0 0\n");
    CHECK(reader.sample().cpu_pct == 100.0);
  }
}

TEST_CASE("load averages that are not finite numbers >= 0 are zeroed",
          "[agent][detect][unit]") {
  auto [contents, l1, l5, l15] = GENERATE(table<std::string, double, double, double>({
      {"12.50 7.25 3.00 9/999 1\n", 12.5, 7.25, 3.0},
      {"0 0 0", 0, 0, 0},
      {"nan nan nan 1/1 1", 0, 0, 0},
      {"inf 1 1 1/1 1", 0, 0, 0},
      {"-1 0 0 1/1 1", 0, 0, 0},
      {"1e400 0 0 1/1 1", 0, 0, 0},
      {"0.5 0.5", 0, 0, 0},
      {"0x1p3 1 1", 0, 0, 0},
      {"", 0, 0, 0},
      {"\n0.5 0.5 0.5", 0, 0, 0},
  }));
  CAPTURE(contents);
  temp_tree t;
  t.write("proc/loadavg", contents);
  auto m = metrics_reader(t.options()).sample();
  CHECK(m.load1 == l1);
  CHECK(m.load5 == l5);
  CHECK(m.load15 == l15);
}

TEST_CASE("memory is MemTotal minus MemAvailable, with fallbacks for old kernels and garbage",
          "[agent][detect][unit]") {
  auto [contents, used, total] = GENERATE(table<std::string, std::uint64_t, std::uint64_t>({
      {"MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\n", 400 * kib, 1000 * kib},
      // before Linux 3.14: no MemAvailable
      {"MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n", 600 * kib,
       1000 * kib},
      {"MemTotal: 1000 kB\nMemAvailable: 2000 kB\n", 0, 1000 * kib},
      {"MemTotal: 1000 kB\n", 0, 0},
      {"MemAvailable: 600 kB\n", 0, 0},
      {"MemTotal: 0 kB\nMemAvailable: 0 kB\n", 0, 0},
      {"MemTotal: 99999999999999999999 kB\nMemAvailable: 1 kB\n", 0, 0},
      {"MemTotal: 18014398509481984 kB\nMemAvailable: 1 kB\n", 0, 0}, // 2^54 kB overflows
      {"MemTotal: 1000 MB\nMemAvailable: 600 kB\n", 0, 0},
      {"MemTotal:\nMemAvailable:\n", 0, 0},
  }));
  CAPTURE(contents);
  temp_tree t;
  t.write("proc/meminfo", contents);
  auto m = metrics_reader(t.options()).sample();
  CHECK(m.mem_used_bytes == used);
  CHECK(m.mem_total_bytes == total);
}

TEST_CASE("disk usage is statvfs of the disk path under the root", "[agent][detect][unit]") {
  temp_tree t;
  auto o = t.options();
  SECTION("an existing path") {
    auto m = metrics_reader(o).sample();
    CHECK(m.disk_total_bytes > 0);
    CHECK(m.disk_used_bytes <= m.disk_total_bytes);
  }
  SECTION("a missing path") {
    o.disk_path = "/missing";
    auto m = metrics_reader(o).sample();
    CHECK(m.disk_total_bytes == 0);
    CHECK(m.disk_used_bytes == 0);
  }
}

// ---------------------------------------------------------------------------
// Into the status body, and through the engine's parser.

TEST_CASE("fill_status copies stacks and metrics and leaves the identity alone",
          "[agent][detect][unit]") {
  member_status s;
  s.hostname = "node9.example.com";
  s.agent_version = "1.2.0";
  detected_stacks d;
  d.mariadb = {true, "10.11.6"};
  d.galera = {true, 3, "Synced", true};
  host_metrics m;
  m.load1 = 0.5;
  m.load5 = std::numeric_limits<double>::quiet_NaN();
  m.load15 = -1;
  m.cpu_pct = std::numeric_limits<double>::infinity();
  m.mem_used_bytes = 2;
  m.mem_total_bytes = 8;
  m.disk_used_bytes = 20;
  m.disk_total_bytes = 80;
  fill_status(s, d, m);
  CHECK(s.hostname == "node9.example.com");
  CHECK(s.agent_version == "1.2.0");
  CHECK(s.mariadb == d.mariadb);
  CHECK(s.galera == d.galera);
  CHECK_FALSE(s.openlitespeed.present);
  CHECK(s.load1 == 0.5);
  CHECK(s.load5 == 0); // the engine rejects NaN, negatives and infinities
  CHECK(s.load15 == 0);
  CHECK(s.cpu_pct == 0);
  CHECK(s.mem_used_bytes == 2);
  CHECK(s.mem_total_bytes == 8);
  CHECK(s.disk_used_bytes == 20);
  CHECK(s.disk_total_bytes == 80);
}

TEST_CASE("the engine accepts the status body the agent builds from every fixture",
          "[agent][detect][unit]") {
  auto tree = GENERATE(as<std::string>{}, "none", "ols", "mariadb_galera", "mysql", "cpanel",
                       "garbage", "hangs");
  CAPTURE(tree);
  auto o = at(tree);
  o.command_timeout_ms = tree == "hangs" ? 200 : 5000;
  auto d = detect_stacks(o);
  metrics_reader reader(o);
  reader.sample();
  auto m = reader.sample();

  member_status s;
  s.hostname = "node9.example.com";
  s.agent_version = "1.2.0";
  fill_status(s, d, m);
  std::string body;
  REQUIRE_NOTHROW(body = protocol::status_to_json(s));
  CHECK(body.size() <= protocol::max_body_size);

  std::string error;
  auto back = protocol::parse_status(body, &error);
  INFO(body);
  INFO(error);
  REQUIRE(back);
  CHECK(back->hostname == s.hostname);
  CHECK(back->openlitespeed == s.openlitespeed);
  CHECK(back->mariadb == s.mariadb);
  CHECK(back->galera == s.galera);
  CHECK(back->cpanel == s.cpanel);
  CHECK(back->load1 == s.load1);
  CHECK(back->load5 == s.load5);
  CHECK(back->load15 == s.load15);
  CHECK(back->cpu_pct == s.cpu_pct);
  CHECK(back->mem_used_bytes == s.mem_used_bytes);
  CHECK(back->mem_total_bytes == s.mem_total_bytes);
  CHECK(back->disk_used_bytes == s.disk_used_bytes);
  CHECK(back->disk_total_bytes == s.disk_total_bytes);
}

TEST_CASE("a Galera node's status body carries what was detected", "[agent][detect][unit]") {
  auto d = detect_stacks(at("mariadb_galera"));
  auto m = metrics_reader(at("mariadb_galera")).sample();
  member_status s;
  s.hostname = "db1.example.com";
  fill_status(s, d, m);
  auto back = protocol::parse_status(protocol::status_to_json(s), nullptr);
  REQUIRE(back);
  CHECK(back->mariadb == stack_info{true, "10.11.6"});
  CHECK(back->galera == galera_info{true, 3, "Synced", true});
  CHECK(back->load1 == 1.52);
  CHECK(back->mem_total_bytes == 8029944 * kib);
}

TEST_CASE("cron job lines are counted without comments, blanks and variable settings",
          "[agent][detect][jobs][unit]") {
  auto [text, n] = GENERATE(table<std::string, std::uint64_t>({
    {"", 0},
    {"# only a comment\n\n   \n", 0},
    {"MAILTO=root\nSHELL = /bin/sh\n_X=1\n", 0},
    {"0 6 * * * /usr/bin/true\n", 1},
    {"0 6 * * * /usr/bin/true", 1},             // no final newline
    {"@reboot /usr/local/bin/start\r\n", 1},    // CRLF
    {"  */5 * * * * echo A=B\n", 1},           // "=" in the command
    {"\t# indented comment\n15 3 * * * x\n@daily y\n", 2},
  }));
  CAPTURE(text);
  CHECK(count_cron_lines(text) == n);
}

TEST_CASE("cron lines and backup archives are counted on a cPanel tree",
          "[agent][detect][jobs][unit]") {
  SECTION("the fixture: five cron jobs, three archives within three levels of /backup") {
    auto j = count_jobs(at("cpanel_source"));
    CHECK(j.present);
    // root: 3 (two settings skipped), alice: 1, /etc/crontab: 0,
    // /etc/cron.d/sa-update: 1, /etc/cron.d/.placeholder skipped.
    CHECK(j.cron == 5);
    // 2026-01-04/accounts/alice.tar.gz, weekly/2026-01-04/accounts/{alice.tar.gz,bob.tar};
    // not README, not a/b/c/d/deep.tar.gz (four levels down).
    CHECK(j.backups == 3);
    CHECK(j.last_backup_ms > 0);
  }
  SECTION("the newest archive's mtime, Debian's crontabs directory") {
    temp_tree t("cpanel_source");
    t.write("var/spool/cron/crontabs/bob", "1 1 * * * bob-job\n2 2 * * * other\n");
    auto set_mtime = [&](const std::string& rel, std::int64_t s) {
      fs::last_write_time(t.path() / rel,
                          fs::file_time_type::clock::now() -
                            std::chrono::seconds(std::time(nullptr) - s));
    };
    set_mtime("backup/2026-01-04/accounts/alice.tar.gz", 1'767'225'600);
    set_mtime("backup/weekly/2026-01-04/accounts/alice.tar.gz", 1'767'312'000);
    set_mtime("backup/weekly/2026-01-04/accounts/bob.tar", 1'767'000'000);
    auto j = count_jobs(t.options());
    CHECK(j.cron == 7);
    CHECK(j.backups == 3);
    // file_time_type is not system_clock: allow a second of conversion slack.
    CHECK(std::llabs(j.last_backup_ms - 1'767'312'000'000LL) <= 1000);
  }
  SECTION("a host with neither: present, all zero, and the status body says so") {
    auto j = count_jobs(at("none"));
    CHECK(j.present);
    CHECK(j.cron == 0);
    CHECK(j.backups == 0);
    CHECK(j.last_backup_ms == 0);
    member_status s;
    s.hostname = "h";
    fill_status(s, detected_stacks{}, host_metrics{}, j);
    auto body = protocol::status_to_json(s);
    CHECK(body.find(R"("jobs":{"backups":0,"cron":0})") != std::string::npos);
    std::string err;
    auto back = protocol::parse_status(body, &err);
    REQUIRE(back);
    CHECK(back->jobs == j);
  }
}
