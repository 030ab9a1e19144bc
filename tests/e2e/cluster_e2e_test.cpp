// Three balctld nodes, one real redis-server, on loopback: pools spread
// evenly, heartbeats and API calls reaching a node that does not own a pool
// are forwarded to its owner (CAF middleman), a node killed with SIGKILL has
// its pools taken over within the lease time without a false failover, and
// a paused node (SIGSTOP) that wakes after its leases moved gives them up.
// With a real DNS server (Knot, RFC 2136): a pool whose owner dies during a
// member outage, or in the middle of its DNS cut-over, fails over exactly
// once, by the new owner; a paused old owner cannot cut DNS when it wakes.
// Over mutual TLS (cluster.tls_*): forwarding works between nodes whose
// certificates one CA signed, and a node with a certificate from another CA
// can neither reach the others nor be reached.

#include <catch2/catch.hpp>

#include <csignal>
#include <map>
#include <set>

#include "tests/e2e/balctld_node.hpp"
#include "tests/support/knot_server.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/test_certs.hpp"

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

/// The cluster link over mutual TLS: the node shows cert/key and trusts ca.
void configure_tls(node& n, const std::string& cert, const std::string& key,
                   const std::string& ca) {
  n.config_extra["cluster"]["tls_cert_file"] = cert;
  n.config_extra["cluster"]["tls_key_file"] = key;
  n.config_extra["cluster"]["tls_ca_file"] = ca;
}

/// The cluster's CA with a certificate for each of nodes, and another CA
/// (files rogue-*) the cluster does not trust, with one certificate.
struct cluster_pki {
  temp_dir dir;
  test_pki ca = make_test_pki(dir.file(""));
  test_pki rogue = make_test_pki(dir.file(""), "rogue-");
  std::string rogue_cert = dir.file("rogue-node.pem");
  std::string rogue_key = dir.file("rogue-node.key");

  cluster_pki() {
    REQUIRE(ca.error.empty());
    REQUIRE(rogue.error.empty());
    REQUIRE(make_node_cert(rogue, rogue_cert, rogue_key));
  }
  /// Configures n with a certificate of its own from the cluster's CA.
  void trusted(node& n, const std::string& id) {
    auto cert = dir.file(id + ".pem");
    auto key = dir.file(id + ".key");
    REQUIRE(make_node_cert(ca, cert, key));
    configure_tls(n, cert, key, ca.ca_cert);
  }
};

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

/// Healthy members of the given pools, as n's API shows them.
std::size_t healthy_in(node& n, const std::set<std::string>& pool_names) {
  std::size_t count = 0;
  for (const auto& p : pool_names) {
    auto r = n.get("/v1/pools/" + p + "/members");
    if (r.status != 200) {
      continue;
    }
    for (const auto& m : r.body["members"]) {
      count += m.value("state", "") == "healthy" ? 1 : 0;
    }
  }
  return count;
}

/// balctl-loadgen beating every member of pool_list() to n, until stopped.
std::unique_ptr<process> beat_all(node& n) {
  std::ofstream(n.dir.file("beats.json")) << json{{"pools", pool_list()}}.dump();
  auto p = std::make_unique<process>(
    std::vector<std::string>{LOADGEN_PATH, "--target", "127.0.0.1:" + std::to_string(n.udp_port),
                             "--config", n.dir.file("beats.json"), "--interval-ms", "200",
                             "--duration-s", "60"},
    n.dir.file("loadgen.out"), n.dir.file("loadgen.log"));
  REQUIRE(p->started());
  return p;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

// Three nodes, one pool "web" with a failover record at a real Knot. The
// members beat to a node that does not own the pool (entry), so its
// heartbeats reach whichever node owns it through forwarding.
struct dns_cluster {
  static constexpr int failover_delay_s = 10; // the least allowed
  knot_server ns;
  redis_server redis;
  node nodes[3];
  long serial_before = 0;
  std::string first_owner;
  std::unique_ptr<process> m1, m2;

  dns_cluster() {
    serial_before = ns.serial();
    json members = json::array();
    for (int id : {1, 2}) {
      members.push_back({{"id", id},
                         {"hostname", "node" + std::to_string(id) + ".example.test"},
                         {"key", key_hex(id)},
                         {"allowed_ips", {"127.0.0.1"}},
                         {"public_ipv4", "192.0.2." + std::to_string(id)}});
    }
    const char* ids[] = {"node-a", "node-b", "node-c"};
    for (int i = 0; i < 3; ++i) {
      configure(nodes[i], redis, ids[i]);
      nodes[i].config_extra["dns_providers"] = {{{"id", "ns1"},
                                                 {"type", "rfc2136"},
                                                 {"server", ns.server()},
                                                 {"tsig_name", ns.key_name()},
                                                 {"secret", ns.secret()},
                                                 {"timeout_ms", 1000}}};
      nodes[i].config_extra["pools"] = {{{"name", "web"},
                                         {"failover_delay_s", failover_delay_s},
                                         {"failover_hostname", "www.example.test"},
                                         {"dns_provider", "ns1"},
                                         {"dns_ttl_s", 30},
                                         {"members", members}}};
      nodes[i].start();
    }
    REQUIRE(wait_until([&] { return owners(nodes[0])["node-a"].size() +
                                      owners(nodes[0])["node-b"].size() +
                                      owners(nodes[0])["node-c"].size() == 1; }, 15'000));
    for (const auto& [n, ps] : owners(nodes[0])) {
      if (ps.count("web") != 0) {
        first_owner = n;
      }
    }
    REQUIRE(!first_owner.empty());
    // m1 is the primary, so the active member.
    m1 = entry().beat(1, "node1.example.test", key_hex(1), 120, "m1");
    m2 = entry().beat(2, "node2.example.test", key_hex(2), 120, "m2");
    REQUIRE(wait_until([&] { return states() == "healthy,healthy"; }, 15'000));
  }

  node& by_id(const std::string& id) { return nodes[id == "node-a" ? 0 : id == "node-b" ? 1 : 2]; }
  node& owner() { return by_id(first_owner); }
  /// The first node that is not the pool's first owner.
  node& entry() { return by_id(first_owner == "node-a" ? "node-b" : "node-a"); }
  /// The node that is neither.
  node& third() {
    for (auto& n : nodes) {
      if (&n != &owner() && &n != &entry()) {
        return n;
      }
    }
    return nodes[2];
  }

  /// m1's and m2's states as the owner reports them, through entry.
  std::string states() {
    auto r = entry().get("/v1/pools/web/members");
    if (r.status != 200) {
      return "";
    }
    std::map<int, std::string> by;
    for (const auto& m : r.body["members"]) {
      by[m.value("id", 0)] = m.value("state", "");
    }
    return by[1] + "," + by[2];
  }

  std::string pool_owner() {
    for (const auto& [n, ps] : owners(entry())) {
      if (ps.count("web") != 0) {
        return n;
      }
    }
    return "";
  }

  std::vector<std::string> record() { return ns.dig("www.example.test", "A"); }

  /// Until another node than the first owner holds the pool's lease.
  void wait_for_new_owner() {
    REQUIRE(wait_until([&] {
      auto o = pool_owner();
      return !o.empty() && o != first_owner;
    }, 10'000));
  }

  /// The pool's activity lines (in the shared store) of a kind, for a
  /// member (0: any), whose message holds text.
  std::size_t activity(const std::string& kind, int member, const std::string& text) {
    auto r = entry().get("/v1/pools/web/activity?limit=200");
    std::size_t n = 0;
    if (r.status == 200 && r.body.contains("events")) {
      for (const auto& e : r.body["events"]) {
        n += e.value("kind", "") == kind &&
                 (member == 0 || (e["member"].is_number() && e["member"] == member)) &&
                 e.value("message", "").find(text) != std::string::npos
               ? 1
               : 0;
      }
    }
    return n;
  }
};

std::size_t failovers_in(node& n) {
  return count_of(n.log(), "event=pool_decision pool=web kind=failover");
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

TEST_CASE("the owner killed during a member outage: the new owner fails the pool over once, "
          "nobody is declared down by the takeover",
          "[e2e][cluster][redis][dns]") {
  dns_cluster cl;
  // The outage: m1 goes silent; the owner sees it suspect, then dies.
  cl.m1->stop();
  REQUIRE(wait_until([&] { return cl.states() == "suspect,healthy"; }, 10'000));
  ::kill(cl.owner().daemon->pid(), SIGKILL);
  cl.owner().daemon->wait_exit(5000);
  cl.wait_for_new_owner();
  auto next = cl.pool_owner();
  CAPTURE(cl.first_owner, next);
  // The grace (the failover delay) after the takeover, then m1 is down.
  REQUIRE(wait_until([&] { return cl.record() == std::vector<std::string>{"192.0.2.2"}; },
                     30'000));
  CHECK(cl.ns.serial() == cl.serial_before + 1);
  CHECK(failovers_in(cl.owner()) == 0);
  CHECK(failovers_in(cl.by_id(next)) == 1);
  CHECK(cl.by_id(next).log().find("event=pool_decision pool=web kind=failover from=1 to=2") !=
        std::string::npos);
  // m2 was never declared down, and nobody else failed the pool over.
  CHECK(cl.states() == "down,healthy");
  REQUIRE(wait_until([&] { return cl.activity("decision", 0, "failover:") == 1; }, 5000));
  CHECK(cl.activity("state_change", 2, "-> down") == 0);
  CHECK(failovers_in(cl.entry()) + failovers_in(cl.third()) == 1);
  cl.m2->stop();
  cl.entry().stop();
  cl.third().stop();
}

TEST_CASE("the owner killed in the middle of its DNS cut-over: the new owner finishes it once",
          "[e2e][cluster][redis][dns]") {
  dns_cluster cl;
  // The DNS server stops answering: the owner decides, journals the
  // change, and its update is in flight when it dies.
  cl.ns.pause(true);
  cl.m1->stop();
  REQUIRE(wait_until([&] { return failovers_in(cl.owner()) == 1; }, 20'000));
  REQUIRE(wait_until([&] { return cl.owner().metric("balctl_dns_requests_total") >= 1; }, 5000));
  ::kill(cl.owner().daemon->pid(), SIGKILL);
  cl.owner().daemon->wait_exit(5000);
  cl.ns.pause(false);
  CHECK(cl.record() == std::vector<std::string>{"192.0.2.10"});
  cl.wait_for_new_owner();
  auto& next = cl.by_id(cl.pool_owner());
  REQUIRE(wait_until([&] { return cl.record() == std::vector<std::string>{"192.0.2.2"}; },
                     20'000));
  CHECK(next.log().find("dns_changes_resumed=1") != std::string::npos);
  // The new owner took the decision over: it decides nothing itself.
  REQUIRE(wait_until([&] { return cl.states() == "down,healthy"; }, 20'000));
  CHECK(failovers_in(next) == 0);
  CHECK(failovers_in(cl.entry()) + failovers_in(cl.third()) == 0);
  CHECK(cl.ns.serial() == cl.serial_before + 1);
  CHECK(cl.entry().get("/v1/pools/web").body["active_member"] == 2);
  cl.m2->stop();
  cl.entry().stop();
  cl.third().stop();
}

TEST_CASE("an owner paused during a member outage wakes after the takeover and cannot cut DNS",
          "[e2e][cluster][redis][dns]") {
  dns_cluster cl;
  cl.m1->stop();
  REQUIRE(wait_until([&] { return cl.states() == "suspect,healthy"; }, 10'000));
  ::kill(cl.owner().daemon->pid(), SIGSTOP);
  cl.wait_for_new_owner();
  auto& next = cl.by_id(cl.pool_owner());
  REQUIRE(wait_until([&] { return cl.record() == std::vector<std::string>{"192.0.2.2"}; },
                     30'000));
  auto serial_after = cl.ns.serial();
  CHECK(serial_after == cl.serial_before + 1);
  // Woken long past m1's failover delay, and past its lease: it evaluates
  // nothing until a renewal confirms the lease, which none will.
  ::kill(cl.owner().daemon->pid(), SIGCONT);
  REQUIRE(wait_until([&] {
    return cl.owner().log().find("event=lease_given_up pool=web") != std::string::npos;
  }, 10'000));
  // Its DNS requests, had it sent any, would have reached Knot by now.
  wait_until([&] { return cl.owner().metric("balctl_dns_requests_total") > 0; }, 3000);
  auto old_log = cl.owner().log();
  CAPTURE(old_log);
  CHECK(cl.owner().metric("balctl_dns_requests_total") == 0);
  CHECK(old_log.find("result=written") == std::string::npos);
  CHECK(failovers_in(cl.owner()) == 0);
  CHECK(old_log.find("event=member_state pool=web member=2 from=healthy to=down") ==
        std::string::npos);
  CHECK(cl.ns.serial() == serial_after);
  CHECK(failovers_in(next) == 1);
  cl.m2->stop();
  for (auto& n : cl.nodes) {
    n.stop();
  }
}

TEST_CASE("a pool created at run time through one node is leased, listed and served through "
          "every node",
          "[e2e][cluster][redis]") {
  redis_server redis;
  node nodes[3];
  const char* ids[] = {"node-a", "node-b", "node-c"};
  for (int i = 0; i < 3; ++i) {
    configure(nodes[i], redis, ids[i]);
    nodes[i].start();
  }
  auto& a = nodes[0];
  auto pool = a.make_pool("Runtime Fleet");
  // Leased by one node, whichever.
  std::string owner;
  REQUIRE(wait_until([&] {
    for (const auto& [n, ps] : owners(a)) {
      if (ps.count(pool) != 0) {
        owner = n;
      }
    }
    return !owner.empty();
  }, 10'000));
  auto at = [&](const std::string& id) -> node& {
    return nodes[id == "node-a" ? 0 : id == "node-b" ? 1 : 2];
  };
  node* others[2];
  for (int i = 0, j = 0; i < 3; ++i) {
    if (ids[i] != owner) {
      others[j++] = &nodes[i];
    }
  }
  // Listed by every node, the owner's summary.
  for (auto& n : nodes) {
    REQUIRE(wait_until([&] {
      auto r = n.get("/v1/pools");
      return r.status == 200 && r.raw.find("Runtime Fleet") != std::string::npos &&
             r.body["pools"].size() == pools + 1;
    }, 10'000));
  }
  // A member added through a node that does not own the pool (the call
  // goes to the owner), enrolled through the other one (the enrollment is
  // found in Redis and handed to the owner), heartbeating to that node
  // (its key reached it through Redis).
  auto added = others[0]->add_member(pool, "rt1.e2e.test");
  auto id = added["member"]["id"].get<member_id>();
  auto secret = added["enrollment"]["secret"].get<std::string>();
  auto g = others[1]->post("/v1/enroll", {{"hostname", "rt1.e2e.test"}, {"secret", secret}}, "");
  REQUIRE(g.status == 200);
  auto key = g.body["key"].get<std::string>();
  CHECK(at(owner).log().find("event=member_enrolled pool=" + pool) != std::string::npos);
  auto beats = others[1]->beat(id, "rt1.e2e.test", key, 30, "rt1");
  REQUIRE(wait_until([&] {
    auto r = others[0]->get("/v1/pools/" + pool + "/members");
    return r.status == 200 && r.body["members"].size() == 1 &&
           r.body["members"][0].value("state", "") == "healthy";
  }, 15'000));
  CHECK(others[1]->log().find("event=pool_reloaded pool=" + pool) != std::string::npos);
  beats->stop();

  // A DNS credential added through a node that does not own the pool: the
  // other nodes' routers load it from Redis (a takeover finds its
  // executor), and no node logs its secret.
  const std::string secret_token = "tok-secret-runtime-pool";
  auto prov = others[0]->post("/v1/pools/" + pool + "/dns/providers",
                              {{"id", "cf-rt"},
                               {"type", "cloudflare"},
                               {"api_base", "http://127.0.0.1:9"},
                               {"secret", secret_token},
                               {"timeout_ms", 2000}});
  INFO(prov.raw);
  REQUIRE(prov.status == 201);
  for (auto* n : others) {
    REQUIRE(wait_until([&] {
      return n->log().find("event=dns_provider_reloaded pool=" + pool + " id=cf-rt") !=
             std::string::npos;
    }, 10'000));
  }

  // Deleted through a node that does not own it: gone everywhere, and its
  // lease with it.
  auto del = others[1]->call("DELETE", "/v1/pools/" + pool + "?force=true");
  CHECK(del.status / 100 == 2);
  REQUIRE(wait_until([&] {
    for (auto& n : nodes) {
      if (n.get("/v1/pools/" + pool).status != 404) {
        return false;
      }
    }
    for (const auto& [n, ps] : owners(a)) {
      if (ps.count(pool) != 0) {
        return false;
      }
    }
    return true;
  }, 10'000));
  CHECK(at(owner).log().find("reason=\"the pool was deleted\"") != std::string::npos);
  REQUIRE(wait_until([&] {
    return others[0]->log().find("event=dns_provider_deleted pool=" + pool + " id=cf-rt") !=
           std::string::npos;
  }, 10'000));
  for (auto& n : nodes) {
    CHECK(n.log().find(secret_token) == std::string::npos);
  }
  for (auto& n : nodes) {
    n.stop();
  }
}

TEST_CASE("a node joining takes its share by handoff: detection goes on from the old owner's "
          "last heartbeats, not from a new grace",
          "[e2e][cluster][redis]") {
  constexpr int delay_s = 20;
  redis_server redis;
  node a, b;
  configure(a, redis, "node-a");
  configure(b, redis, "node-b");
  for (auto* n : {&a, &b}) {
    for (auto& p : n->config_extra["pools"]) {
      p["failover_delay_s"] = delay_s;
    }
  }
  a.start();
  // Primaries (the active members) and standbys beat to node a, apart.
  json primaries = json::array(), standbys = json::array();
  for (const auto& p : pool_list()) {
    primaries.push_back({{"name", p["name"]}, {"members", {p["members"][0]}}});
    standbys.push_back({{"name", p["name"]}, {"members", {p["members"][1]}}});
  }
  std::ofstream(a.dir.file("primaries.json")) << json{{"pools", primaries}}.dump();
  std::ofstream(a.dir.file("standbys.json")) << json{{"pools", standbys}}.dump();
  auto loadgen = [&](const std::string& which, int duration_s) {
    auto p = std::make_unique<process>(
      std::vector<std::string>{LOADGEN_PATH, "--target", "127.0.0.1:" + std::to_string(a.udp_port),
                               "--config", a.dir.file(which + ".json"), "--interval-ms", "200",
                               "--duration-s", std::to_string(duration_s)},
      a.dir.file(which + ".out"), a.dir.file(which + ".log"));
    REQUIRE(p->started());
    return p;
  };
  auto standby_beats = loadgen("standbys", 90);
  auto primary_beats = loadgen("primaries", 90);
  REQUIRE(wait_until([&] { return owners(a)["node-a"].size() == pools; }, 10'000));
  REQUIRE(wait_until([&] { return healthy_members(a) == 2 * pools; }, 15'000));

  // Every primary goes silent; half-way through the failover delay node b
  // joins and takes its share.
  primary_beats->stop();
  auto silent = std::chrono::steady_clock::now();
  wait_until([] { return false; }, delay_s * 1000 / 2);
  b.start();
  REQUIRE(wait_until([&] {
    auto o = owners(a);
    return o["node-a"].size() == pools / 2 && o["node-b"].size() == pools / 2;
  }, 10'000));
  CHECK(count_of(b.log(), "handed_off=yes") == pools / 2);
  CHECK(count_of(a.log(), "event=pool_handed_off") == pools / 2);

  // Every pool fails over about delay_s after the silence began: b's too,
  // not delay_s after it took them (that would be 1.5 x delay_s).
  REQUIRE(wait_until([&] {
    return count_of(a.log() + b.log(), "event=pool_decision pool=p") == pools;
  }, (delay_s + 15) * 1000));
  auto took_s = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - silent)
                  .count() /
                1000.0;
  CAPTURE(took_s);
  CHECK(took_s < delay_s * 1.25);
  CHECK(count_of(b.log(), "event=pool_decision pool=p") == pools / 2);
  // The standbys were never declared down (the handoff kept them heard).
  CHECK(count_of(a.log() + b.log(), "to=down") == pools);
  standby_beats->stop();
  a.stop();
  b.stop();
}

TEST_CASE("cluster nodes linked by mutual TLS forward heartbeats and API calls to the pools "
          "the other node owns",
          "[e2e][cluster][redis][tls]") {
  redis_server redis;
  cluster_pki pki;
  node a, b;
  configure(a, redis, "node-a");
  configure(b, redis, "node-b");
  pki.trusted(a, "node-a");
  pki.trusted(b, "node-b");
  a.start();
  b.start();
  for (auto* n : {&a, &b}) {
    CHECK(n->log().find("event=cluster_listening") != std::string::npos);
    CHECK(n->log().find("tls=on") != std::string::npos);
    // The file names may be logged, never what is in them.
    CHECK(n->log().find("PRIVATE KEY") == std::string::npos);
  }
  REQUIRE(wait_until([&] {
    auto o = owners(a);
    return o["node-a"].size() == pools / 2 && o["node-b"].size() == pools / 2;
  }, 10'000));

  // Every member beats to node a only: node b's pools hear them through
  // forwarding over TLS, and node b's API shows them all healthy (a's
  // pools through forwarded API calls).
  auto loadgen = beat_all(a);
  REQUIRE(wait_until([&] { return healthy_members(b) == 2 * pools; }, 10'000));
  CHECK(healthy_in(b, owners(b)["node-b"]) == pools);
  auto connected = [](node& n, const std::string& peer) {
    auto log = n.log();
    auto at = log.find("event=cluster_node_connected node=" + peer);
    return at != std::string::npos && log.find("tls=on", at) != std::string::npos;
  };
  CHECK(connected(a, "node-b"));
  CHECK(connected(b, "node-a"));
  CHECK(a.log().find("event=cluster_node_unreachable") == std::string::npos);
  loadgen->stop();
  a.stop();
  b.stop();
}

TEST_CASE("a cluster node whose certificate another CA signed cannot forward nor be forwarded "
          "to, and its refused connections leave the other nodes' link working",
          "[e2e][cluster][redis][tls]") {
  redis_server redis;
  cluster_pki pki;
  node a, b, r;
  configure(a, redis, "node-a");
  configure(b, redis, "node-b");
  configure(r, redis, "node-r");
  pki.trusted(a, "node-a");
  pki.trusted(b, "node-b");
  // It trusts the cluster's CA, so it accepts the others' certificates:
  // their refusing its certificate is what stops it.
  configure_tls(r, pki.rogue_cert, pki.rogue_key, pki.ca.ca_cert);
  a.start();
  b.start();
  r.start();
  // It still gets its share: the leases are in Redis, not on this link.
  REQUIRE(wait_until([&] {
    auto o = owners(a);
    return o["node-a"].size() == pools / 3 && o["node-b"].size() == pools / 3 &&
           o["node-r"].size() == pools / 3;
  }, 10'000));
  auto o = owners(a);
  std::set<std::string> others = o["node-a"];
  others.insert(o["node-b"].begin(), o["node-b"].end());

  // Every member beats to node r only: its own pools hear them, the
  // others' do not, since neither a nor b accepts its connection.
  auto loadgen = beat_all(r);
  REQUIRE(wait_until([&] { return healthy_in(r, o["node-r"]) == 2 * pools / 3; }, 10'000));
  auto refused = [&](node& from, const std::string& to) {
    auto log = from.log();
    auto at = log.find("event=cluster_node_unreachable node=" + to);
    return at != std::string::npos && log.find("tls=on", at) != std::string::npos &&
           log.find("disconnect_during_handshake", at) != std::string::npos;
  };
  REQUIRE(wait_until([&] { return refused(r, "node-a") && refused(r, "node-b"); }, 5000));
  // Nor can they reach it: they do not trust the other CA.
  REQUIRE(wait_until([&] { return refused(a, "node-r") && refused(b, "node-r"); }, 5000));
  // A few more of its rounds (one per lease_ttl / 3) with heartbeats
  // flowing: still nothing reached the others' pools.
  auto rounds = count_of(r.log(), "event=cluster_node_unreachable node=node-a");
  wait_until([&] {
    return count_of(r.log(), "event=cluster_node_unreachable node=node-a") >= rounds + 2;
  }, 5000);
  CHECK(healthy_in(a, others) == 0);
  CHECK(r.log().find("event=cluster_node_connected") == std::string::npos);
  CHECK(a.log().find("event=cluster_node_connected node=node-r") == std::string::npos);

  // Meanwhile a and b, whose listeners refused r again and again, still
  // forward to each other: the members now also beat to b, and a's pools
  // hear them through b.
  process to_b({LOADGEN_PATH, "--target", "127.0.0.1:" + std::to_string(b.udp_port), "--config",
                r.dir.file("beats.json"), "--interval-ms", "200", "--duration-s", "60"},
               b.dir.file("loadgen.out"), b.dir.file("loadgen.log"));
  REQUIRE(to_b.started());
  REQUIRE(wait_until([&] { return healthy_in(a, others) == 2 * 2 * pools / 3; }, 10'000));
  to_b.stop();
  loadgen->stop();
  a.stop();
  b.stop();
  r.stop();
}
