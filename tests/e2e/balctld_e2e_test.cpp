// End to end: the real balctld process, configured by file, fed by the
// project's own sender (balctl-loadgen) over loopback.

#include <catch2/catch.hpp>

#include <chrono>
#include <regex>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include "tests/e2e/process.hpp"

using namespace balctl::test;
using steady = std::chrono::steady_clock;

namespace {

std::string member_json(int id) {
  std::string hex;
  char b[3];
  std::snprintf(b, sizeof b, "%02x", id);
  for (int i = 0; i < 32; ++i) {
    hex += b;
  }
  return R"({"id":)" + std::to_string(id) + R"(,"name":"node)" +
         std::to_string(id) + R"(","hostname":"node)" + std::to_string(id) +
         R"(.example.test","allowed_ips":["127.0.0.1"],"key":")" + hex + R"("})";
}

// A UDP port free right now, for a test that restarts balctld and needs the
// same port twice.
int free_udp_port() {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

void write_config(const std::string& path, const std::string& store_path,
                  int delay_s, int port = 0) {
  std::ofstream out(path);
  out << R"({"udp_listen":"127.0.0.1:)" << port << R"(","store_path":")" << store_path
      << R"(","admin":{"listen":"127.0.0.1:0"},"pools":[{"name":"e2e","failover_delay_s":)" << delay_s
      << R"(,"failover_hostname":"www.e2e.test","members":[)" << member_json(1)
      << "," << member_json(2) << "," << member_json(3) << "]}]}";
}

struct engine {
  temp_dir dir;
  std::unique_ptr<process> daemon;
  int port = 0;

  void start() {
    auto ready = dir.file("ready");
    std::remove(ready.c_str());
    daemon = std::make_unique<process>(
      std::vector<std::string>{BALCTLD_PATH, "--config", dir.file("balctld.json"),
                               "--ready-file", ready, "--metrics-file",
                               dir.file("metrics.json")},
      dir.file("balctld.out"), dir.file("balctld.log"));
    REQUIRE(daemon->started());
    REQUIRE(wait_until([&] { return !read_file(ready).empty(); }, 10'000));
    port = std::stoi(read_file(ready));
  }

  std::string log() { return read_file(dir.file("balctld.log")); }

  std::unique_ptr<process> sender(int duration_s,
                                  std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{LOADGEN_PATH,
                                  "--target",
                                  "127.0.0.1:" + std::to_string(port),
                                  "--config",
                                  dir.file("balctld.json"),
                                  "--interval-ms",
                                  "500",
                                  "--body-every",
                                  "20",
                                  "--duration-s",
                                  std::to_string(duration_s)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = std::make_unique<process>(argv, dir.file("loadgen.out"),
                                       dir.file("loadgen.err"));
    REQUIRE(p->started());
    return p;
  }
};

bool has_failover(const std::string& log, const std::string& to) {
  std::regex re("event=pool_decision pool=e2e kind=failover from=1 to=" + to);
  return std::regex_search(log, re);
}

} // namespace

TEST_CASE("balctld fails over within the failover delay plus one second",
          "[e2e][failover]") {
  engine e;
  const int delay_s = 10;
  const int stop_after_s = 3;
  write_config(e.dir.file("balctld.json"), e.dir.file("store.db"), delay_s);
  e.start();
  auto t0 = steady::now();
  auto sender = e.sender(stop_after_s + delay_s + 5,
                         {"--stop-after-s", "1:" + std::to_string(stop_after_s)});
  // Every member is heard and healthy first.
  REQUIRE(wait_until(
    [&] {
      auto l = e.log();
      return l.find("member=3 from=pending to=healthy") != std::string::npos &&
             l.find("member=1 from=pending to=healthy") != std::string::npos;
    },
    5000));
  REQUIRE(wait_until([&] { return has_failover(e.log(), "2"); },
                     (stop_after_s + delay_s + 2) * 1000));
  auto t1 = steady::now();
  auto since_stop_ms =
    std::chrono::duration_cast<std::chrono::milliseconds>(t1 - t0).count() -
    stop_after_s * 1000;
  CAPTURE(since_stop_ms);
  // Member 1's last heartbeat is at most one interval before it stopped.
  CHECK(since_stop_ms >= delay_s * 1000 - 600);
  CHECK(since_stop_ms <= delay_s * 1000 + 1000);
  // The DNS step follows the decision once the store has recorded it.
  CHECK(wait_until([&] { return e.log().find("event=dns_change") != std::string::npos; }, 5000));
  sender->stop();
  CHECK(e.daemon->stop() == 0);
  auto m = nlohmann::json::parse(read_file(e.dir.file("metrics.json")));
  CHECK(m["failovers"] == 1);
  // The active member is part of what a restart restores.
  e.start();
  CHECK(e.log().find("event=pool_loaded pool=e2e members=3 restored_states=3 active=2") !=
        std::string::npos);
  CHECK(m["accepted"].get<std::uint64_t>() > 20);
  CHECK(m["rejected"]["bad_tag"] == 0);
}

TEST_CASE("balctld counts forged and unknown heartbeats and keeps running",
          "[e2e][ingest]") {
  engine e;
  write_config(e.dir.file("balctld.json"), e.dir.file("store.db"), 10);
  e.start();
  // Right ids, wrong key: every datagram fails the tag check.
  auto forged = e.sender(1, {"--key-hex", std::string(64, 'a')});
  CHECK(forged->wait_exit(10'000) == 0);
  CHECK(e.daemon->poll() == -1); // still running
  CHECK(e.daemon->stop() == 0);
  auto m = nlohmann::json::parse(read_file(e.dir.file("metrics.json")));
  CHECK(m["accepted"] == 0);
  CHECK(m["rejected"]["bad_tag"].get<std::uint64_t>() > 0);
  CHECK(e.log().find("event=heartbeat_rejected reason=bad_tag") != std::string::npos);
}

TEST_CASE("a balctld restart restores state and causes no failover",
          "[e2e][restart]") {
  engine e;
  const int delay_s = 10;
  write_config(e.dir.file("balctld.json"), e.dir.file("store.db"), delay_s,
               free_udp_port());
  e.start();
  auto sender = e.sender(40);
  REQUIRE(wait_until(
    [&] { return e.log().find("member=3 from=pending to=healthy") != std::string::npos; },
    5000));
  REQUIRE(e.daemon->stop() == 0);
  // The engine is away for a while; the members keep sending.
  auto away_until = steady::now() + std::chrono::seconds(3);
  wait_until([&] { return steady::now() >= away_until; }, 4000);
  e.start();
  auto log = e.log();
  CHECK(log.find("restored_states=3") != std::string::npos);
  // Over more than a failover delay: nobody goes down, nothing moves.
  auto watch_until = steady::now() + std::chrono::seconds(delay_s + 2);
  bool moved = false;
  wait_until(
    [&] {
      moved = e.log().find("event=pool_decision") != std::string::npos;
      return moved || steady::now() >= watch_until;
    },
    (delay_s + 3) * 1000);
  CHECK_FALSE(moved);
  CHECK(e.log().find("to=down") == std::string::npos);
  sender->stop();
  CHECK(e.daemon->stop() == 0);
}

TEST_CASE("balctld rejects an invalid config naming the key, exit code 2",
          "[e2e][config]") {
  temp_dir dir;
  {
    std::ofstream out(dir.file("bad.json"));
    out << R"({"pools":[{"name":"p","failover_delay_s":5,"members":[]}]})";
  }
  process p({BALCTLD_PATH, "--config", dir.file("bad.json")}, dir.file("out"),
            dir.file("err"));
  CHECK(p.wait_exit(10'000) == 2);
  CHECK(read_file(dir.file("err")).find("pools[0].failover_delay_s") !=
        std::string::npos);
}
