// Three balctld nodes, one real redis-server, on loopback: pools spread
// evenly, heartbeats and API calls reaching a node that does not own a pool
// are forwarded to its owner (CAF middleman), a node killed with SIGKILL has
// its pools taken over within the lease time without a false failover, and
// a paused node (SIGSTOP) that wakes after its leases moved gives them up.

#include <catch2/catch.hpp>

#include <csignal>
#include <map>
#include <set>

#include "tests/e2e/balctld_node.hpp"
#include "tests/support/redis_server.hpp"

using namespace balctl;
using namespace balctl::test;

namespace {

constexpr int lease_ttl_ms = 2000;
constexpr int pools = 6;

json pool_list() {
  json ps = json::array();
  int id = 1;
  for (int p = 0; p < pools; ++p) {
    json ms = json::array();
    for (int i = 0; i < 2; ++i, ++id) {
      ms.push_back({{"id", id},
                    {"hostname", "m" + std::to_string(id) + ".e2e.test"},
                    {"key", key_hex(id)},
                    {"allowed_ips", {"127.0.0.1"}}});
    }
    ps.push_back({{"name", "p" + std::to_string(p)}, {"failover_delay_s", 10}, {"members", ms}});
  }
  return ps;
}

void configure(node& n, const redis_server& r, const std::string& id) {
  n.config_extra = {{"store", "redis://127.0.0.1:" + std::to_string(r.port()) + "/0"},
                    {"store_prefix", "cl:"},
                    {"snapshot_interval_s", 1},
                    {"cluster",
                     {{"node_id", id}, {"listen", "127.0.0.1:0"}, {"lease_ttl_ms", lease_ttl_ms}}},
                    {"pools", pool_list()}};
}

/// Live leases by owner, as a node's /v1/cluster shows them.
std::map<std::string, std::set<std::string>> owners(node& n) {
  std::map<std::string, std::set<std::string>> out;
  auto r = n.get("/v1/cluster");
  if (r.status != 200 || !r.body.contains("leases")) {
    return out;
  }
  for (const auto& l : r.body["leases"]) {
    if (l.value("live", false)) {
      out[l.value("node", "")].insert(l.value("pool", ""));
    }
  }
  return out;
}

std::size_t healthy_members(node& n) {
  std::size_t count = 0;
  for (int p = 0; p < pools; ++p) {
    auto r = n.get("/v1/pools/p" + std::to_string(p) + "/members");
    if (r.status != 200) {
      continue;
    }
    for (const auto& m : r.body["members"]) {
      count += m.value("state", "") == "healthy" ? 1 : 0;
    }
  }
  return count;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

} // namespace

TEST_CASE("three nodes share the pools, a killed node's pools move within the lease time without "
          "a failover, a paused node gives its pools up when it wakes",
          "[e2e][cluster][redis]") {
  redis_server redis;
  node a, b, c;
  configure(a, redis, "node-a");
  configure(b, redis, "node-b");
  configure(c, redis, "node-c");
  a.start();
  b.start();
  c.start();

  // Every member heartbeats to node a only: the pools b and c own hear
  // them through forwarding.
  json beats = {{"pools", pool_list()}};
  std::ofstream(a.dir.file("beats.json")) << beats.dump();
  process loadgen({LOADGEN_PATH, "--target", "127.0.0.1:" + std::to_string(a.udp_port), "--config",
                   a.dir.file("beats.json"), "--interval-ms", "200", "--duration-s", "90"},
                  a.dir.file("loadgen.out"), a.dir.file("loadgen.log"));
  REQUIRE(loadgen.started());

  // Fair spread: two pools each.
  REQUIRE(wait_until([&] {
    auto o = owners(a);
    return o.size() == 3 && o["node-a"].size() == 2 && o["node-b"].size() == 2 &&
           o["node-c"].size() == 2;
  }, 15'000));
  // Healthy everywhere, read through node a (API calls forwarded to owners).
  REQUIRE(wait_until([&] { return healthy_members(a) == 2 * pools; }, 15'000));
  CHECK(healthy_members(c) == 2 * pools);
  auto status = a.cli({"cluster", "status"});
  CHECK(status.exit_code == 0);
  CHECK_THAT(status.out, Catch::Contains("node-b") && Catch::Contains("OWNER"));

  // kill -9 node b: its two pools go to a and c within the lease time.
  auto b_pools = owners(a)["node-b"];
  REQUIRE(b_pools.size() == 2);
  auto killed = std::chrono::steady_clock::now();
  ::kill(b.daemon->pid(), SIGKILL);
  b.daemon->wait_exit(5000);
  REQUIRE(wait_until([&] {
    auto o = owners(a);
    return o.count("node-b") == 0 && o["node-a"].size() + o["node-c"].size() == pools;
  }, 10'000));
  auto moved_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - killed)
                    .count();
  CAPTURE(moved_ms);
  CHECK(moved_ms <= lease_ttl_ms + 2000);
  auto o = owners(a);
  CHECK(o["node-a"].size() == 3);
  CHECK(o["node-c"].size() == 3);

  // Past the grace (the failover delay): nobody failed over, every member
  // is still healthy (the forwarded heartbeats reach the new owners).
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(12);
  bool failover = false;
  while (!failover && std::chrono::steady_clock::now() < until) {
    failover = a.log().find("kind=failover") != std::string::npos ||
               c.log().find("kind=failover") != std::string::npos;
    wait_until([] { return false; }, 200);
  }
  CHECK_FALSE(failover);
  CHECK(healthy_members(a) == 2 * pools);
  CHECK(count_of(a.log() + c.log(), "event=pool_taken_over") >= 2 * pools / 3 + 2);

  // SIGSTOP node c past its leases: a takes every pool; c wakes, its
  // renewals fail, it stops acting for them; then the share evens out.
  ::kill(c.daemon->pid(), SIGSTOP);
  REQUIRE(wait_until([&] { return owners(a)["node-a"].size() == pools; }, 10'000));
  ::kill(c.daemon->pid(), SIGCONT);
  REQUIRE(wait_until([&] {
    return c.log().find("event=lease_given_up") != std::string::npos;
  }, 10'000));
  REQUIRE(wait_until([&] {
    auto o2 = owners(a);
    return o2["node-a"].size() == 3 && o2["node-c"].size() == 3;
  }, 15'000));
  CHECK(a.log().find("kind=failover") == std::string::npos);
  CHECK(c.log().find("kind=failover") == std::string::npos);
  loadgen.stop();
  a.stop();
  c.stop();
}
