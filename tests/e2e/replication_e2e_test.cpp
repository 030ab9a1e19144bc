// Replication end to end: the real balctld and two real balctl-agents on
// fake cPanel trees (tests/fixtures/agent/cpanel_source and
// cpanel_standby, with stand-in pkgacct and restorepkg), the chunks going
// through the engine's embedded chunk store, or through an S3-compatible
// server (tests/standins/s3_standin, which checks every SigV4 presigned
// URL), on loopback.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <fstream>

#include "tests/e2e/balctld_node.hpp"
#include "tests/e2e/process.hpp"
#include "tests/standins/s3_standin.hpp"

using namespace balctl;
using namespace balctl::test;
using json = nlohmann::json;

namespace {

std::string fixture(const std::string& name) {
  return std::string(BALCTL_SOURCE_DIR) + "/tests/fixtures/agent/" + name;
}

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

/// A pool with two cPanel members, each with its own agent and fake root.
struct cpanel_pair {
  node n;
  std::string pool;
  member_id source = 0, standby = 0;
  std::unique_ptr<process> source_agent, standby_agent;
  int runs = 0;

  // While set, the bucket answers 503 SlowDown to PUTs of chunk 2 and on
  // (declared before s3: the stand-in's loop reads it until it stops).
  std::atomic<bool> throttle{false};
  // With use_s3(): the bucket the chunks go through instead of the engine.
  std::unique_ptr<s3_standin> s3;

  std::string root(const std::string& who) { return n.dir.file(who + "-root"); }
  std::string state(const std::string& who) { return n.dir.file(who + "/state.json"); }

  /// Chunks go to bucket "balctl-chunks" (prefix "e2e/") of an S3 stand-in.
  void use_s3() {
    s3_standin_options o;
    o.region = "eu-west-3";
    o.buckets = {"balctl-chunks"};
    o.access_key_id = "AKIDE2E";
    o.secret_access_key = "e2e/secret+key";
    o.slow_down = [this](const std::string& method, const std::string& name) {
      if (!throttle || method != "PUT") {
        return false;
      }
      // "<bucket>/e2e/<pool>/<run>/<index>": chunk 2 and on.
      auto index = name.substr(name.rfind('/') + 1);
      return index != "0" && index != "1";
    };
    s3 = std::make_unique<s3_standin>(o);
    REQUIRE(s3->start().empty());
    std::ofstream(n.dir.file("s3-secret")) << o.secret_access_key << "\n";
    n.config_extra["protection"] = {{"object_store", "s3"},
                                    {"s3",
                                     {{"endpoint", s3->endpoint()},
                                      {"region", o.region},
                                      {"bucket", "balctl-chunks"},
                                      {"prefix", "e2e/"},
                                      {"access_key_id", o.access_key_id},
                                      {"secret_access_key_file", n.dir.file("s3-secret")}}}};
  }

  /// SigV4 refusals the bucket answered (none is expected).
  std::uint64_t s3_refusals() {
    std::uint64_t n = 0;
    for (const char* code : {"SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId",
                             "AuthorizationQueryParametersError", "InvalidToken"}) {
      n += s3->errors(code);
    }
    return n;
  }

  void start() {
    // Small chunks: the ~500 KiB account travels in several.
    n.config_extra["protection"]["chunk_size_bytes"] = 65536;
    n.start();
    pool = n.make_pool("cPanel Fleet");
    for (const char* who : {"source", "standby"}) {
      REQUIRE(sh("cp -a '" + fixture(std::string("cpanel_") + who) + "' '" + root(who) + "'") ==
              0);
      REQUIRE(sh("mkdir -p '" + n.dir.file(who) + "'") == 0);
      auto added = n.add_member(pool, std::string(who) + ".e2e.test");
      auto id = added["member"]["id"].get<member_id>();
      (std::string(who) == "source" ? source : standby) = id;
      process enrol({BALCTL_AGENT_PATH, "--enrol", "--key",
                     added["enrollment"]["secret"].get<std::string>(), "--hostname",
                     std::string(who) + ".e2e.test", "--api-base",
                     "http://127.0.0.1:" + std::to_string(n.admin_port), "--state-file",
                     state(who)},
                    n.dir.file(std::string(who) + "-enrol.out"),
                    n.dir.file(std::string(who) + "-enrol.log"));
      REQUIRE(enrol.wait_exit(30'000) == 0);
    }
  }

  std::unique_ptr<process> run_agent(const std::string& who) {
    auto tag = who + "-agent-" + std::to_string(++runs);
    auto p = std::make_unique<process>(
      std::vector<std::string>{BALCTL_AGENT_PATH, "run", "--state-file", state(who),
                               "--transport", "udp", "--interval-s", "1",
                               "--detect-interval-s", "1", "--jobs-interval-s", "1", "--root",
                               root(who)},
      n.dir.file(tag + ".out"), n.dir.file(tag + ".log"));
    REQUIRE(p->started());
    return p;
  }

  /// Both agents running and both members reporting cPanel.
  void start_with_agents() {
    start();
    source_agent = run_agent("source");
    standby_agent = run_agent("standby");
    wait_cpanel_members(2);
  }

  std::string base() { return "/v1/pools/" + pool; }

  void wait_cpanel_members(std::uint64_t want) {
    bool ok = wait_until([&] {
      auto o = n.get(base() + "/overview");
      return o.status == 200 && o.body["kpis"]["cpanel_members"] == want;
    }, 20'000);
    INFO(n.log());
    REQUIRE(ok);
  }

  void protect_alice(const std::string& dns_provider = "cloudflare") {
    auto r = n.post(base() + "/accounts", {{"id", "alice"},
                                           {"domain", "alice.example.test"},
                                           {"source", source},
                                           {"standby", standby},
                                           {"dns_provider", dns_provider},
                                           {"replication_every_s", 0}});
    INFO(r.raw);
    REQUIRE(r.status == 201);
  }

  json replication() {
    auto r = n.get(base() + "/accounts/alice/replication");
    REQUIRE(r.status == 200);
    return r.body;
  }

  bool wait_phase(const std::string& phase, int ms = 60'000) {
    return wait_until([&] { return replication()["phase"] == phase; }, ms);
  }

  std::string replication_log() {
    auto r = n.get(base() + "/activity?kind=replication&limit=1000");
    REQUIRE(r.status == 200);
    std::string out;
    for (const auto& e : r.body["events"]) {
      out += e["message"].get<std::string>() + "\n";
    }
    return out;
  }

  bool restored_identical() {
    return sh("diff -r '" + root("source") + "/home/alice' '" + root("standby") +
              "/home/alice' >/dev/null 2>&1") == 0;
  }

  /// Chunk files left in the engine's embedded chunk store.
  long chunk_files() {
    auto out = n.dir.file("chunk-count");
    sh("find '" + n.dir.file("store.db.chunks") + "' -type f ! -name '.*' ! -name '*secret*' "
       "2>/dev/null | wc -l > '" + out + "'");
    return std::stol(read_file(out));
  }
};

} // namespace

TEST_CASE("Replicate now packages the account on the source, moves it in chunks through the "
          "embedded store and restores it on the standby",
          "[replication][e2e]") {
  cpanel_pair p;
  p.start_with_agents();
  p.protect_alice();
  CHECK(p.replication()["health"] == "manual");

  auto r = p.n.post(p.base() + "/accounts/alice/replicate", json::object());
  INFO(r.raw);
  REQUIRE(r.status == 202);
  CHECK(r.body["phase"] == "packaging");
  bool synced = wait_until([&] { return p.replication()["health"] == "healthy"; }, 60'000);
  INFO(p.n.log());
  INFO(read_file(p.n.dir.file("source-agent-1.log")));
  INFO(read_file(p.n.dir.file("standby-agent-1.log")));
  REQUIRE(synced);
  auto v = p.replication();
  CHECK(v["last_sync_ms"].is_number());
  CHECK(v["runs_ok"] == 1);
  CHECK(v["phase"] == "idle");
  CHECK(p.restored_identical());
  // The chunks are removed once the restore succeeded.
  CHECK(wait_until([&] { return p.chunk_files() == 0; }, 10'000));

  auto log = p.replication_log();
  CHECK(log.find("sync started (manual)") != std::string::npos);
  CHECK(log.find("chunks, ") != std::string::npos);
  CHECK(log.find("sync done") != std::string::npos);

  auto dash = p.n.get(p.base() + "/protection");
  REQUIRE(dash.status == 200);
  CHECK(dash.body["protected_accounts"] == 1);
  CHECK(dash.body["health"]["healthy"] == 1);
  CHECK(dash.body["last_sync_ms"].is_number());
}

TEST_CASE("the engine killed mid-transfer resumes the run where it was: no chunk uploaded "
          "twice, a start meanwhile skipped, the restore done after the restart",
          "[replication][e2e]") {
  cpanel_pair p;
  p.start_with_agents();
  p.protect_alice();
  // The standby's agent is away: the run stops after the upload.
  p.standby_agent->stop();
  REQUIRE(p.n.post(p.base() + "/accounts/alice/replicate", json::object()).status == 202);
  bool uploaded = p.wait_phase("restoring");
  INFO(p.n.log());
  REQUIRE(uploaded);
  auto chunks = p.replication()["chunks"].get<long>();
  CHECK(chunks > 1);
  CHECK(p.replication()["chunks_stored"] == chunks);

  // No overlap: a start while the run goes is refused and logged.
  auto again = p.n.post(p.base() + "/accounts/alice/replicate", json::object());
  CHECK(again.status == 409);
  CHECK(again.code() == "replication_running");
  CHECK(p.replication_log().find("manual sync skipped") != std::string::npos);
  CHECK(p.n.metric("balctl_replication_starts_skipped_total") == 1);

  // kill -9 in the middle of the transfer, then a restart on the same store.
  REQUIRE(kill(p.n.daemon->pid(), SIGKILL) == 0);
  p.n.daemon->wait_exit(10'000);
  // Back on the same port: the agents enrolled with that API base.
  p.n.admin_extra["listen"] = "127.0.0.1:" + std::to_string(p.n.admin_port);
  p.n.start();
  auto after = p.replication();
  CHECK(after["phase"] == "restoring");
  CHECK(after["chunks_stored"] == chunks);
  CHECK(p.chunk_files() == chunks);

  p.standby_agent = p.run_agent("standby");
  bool synced = wait_until([&] { return p.replication()["health"] == "healthy"; }, 60'000);
  INFO(p.n.log());
  REQUIRE(synced);
  CHECK(p.restored_identical());
  auto log = p.replication_log();
  // One manifest answered with uploads: the chunks went up once.
  CHECK(count_of(log, " to upload") == 1);
  CHECK(count_of(log, "sync done") == 1);
}

TEST_CASE("an account cut to its standby runs the post-failover hook there", "[replication][e2e]") {
  cpanel_pair p;
  p.start_with_agents();
  // A credential whose server is not there: the cut is decided and
  // journaled (its DNS write retried in the background), and the hook runs.
  auto prov = p.n.post(p.base() + "/dns/providers", {{"id", "pdns-away"},
                                                     {"type", "powerdns"},
                                                     {"api_base", "http://127.0.0.1:9"},
                                                     {"secret", "k"}});
  INFO(prov.raw);
  REQUIRE(prov.status == 201);
  p.protect_alice("pdns-away");
  auto cut = p.n.post(p.base() + "/accounts/alice/cut", {{"to", "standby"}, {"force", true}});
  INFO(cut.raw);
  REQUIRE(cut.status == 200);
  auto env = p.root("standby") + "/tmp/post-failover.env";
  bool ran = wait_until([&] { return !read_file(env).empty(); }, 30'000);
  INFO(p.n.log());
  REQUIRE(ran);
  auto text = read_file(env);
  CHECK(text.find("BALCTL_ACCOUNT=alice") != std::string::npos);
  CHECK(text.find("BALCTL_DOMAIN=alice.example.test") != std::string::npos);
  CHECK(text.find("BALCTL_POOL=" + p.pool) != std::string::npos);
  auto jobs = p.n.get(p.base() + "/members/" + std::to_string(p.standby) + "/jobs");
  REQUIRE(jobs.status == 200);
  REQUIRE(!jobs.body["jobs"].empty());
  CHECK(jobs.body["jobs"][0]["kind"] == "post_failover_hook");
  CHECK(wait_until([&] {
    auto j = p.n.get(p.base() + "/members/" + std::to_string(p.standby) + "/jobs");
    return j.body["jobs"][0]["status"] == "succeeded";
  }, 10'000));
}

TEST_CASE("through an S3-compatible bucket: the engine presigns, the agents move the chunks, "
          "and the bucket is empty once the standby restored the account",
          "[replication][s3][e2e]") {
  cpanel_pair p;
  p.use_s3();
  p.start_with_agents();
  CHECK(p.n.log().find("event=object_store_ready store=\"s3 " + p.s3->endpoint()) !=
        std::string::npos);
  p.protect_alice();
  REQUIRE(p.n.post(p.base() + "/accounts/alice/replicate", json::object()).status == 202);
  bool synced = wait_until([&] { return p.replication()["health"] == "healthy"; }, 60'000);
  INFO(p.n.log());
  INFO(read_file(p.n.dir.file("source-agent-1.log")));
  INFO(read_file(p.n.dir.file("standby-agent-1.log")));
  REQUIRE(synced);
  CHECK(p.restored_identical());
  // "transfer of run alice-1: <bytes> bytes in <n> chunks, <n> to upload"
  auto log = p.replication_log();
  auto at = log.find(" bytes in ");
  REQUIRE(at != std::string::npos);
  auto chunks = std::stoull(log.substr(at + 10));
  CHECK(log.find(std::to_string(chunks) + " chunks, " + std::to_string(chunks) + " to upload") !=
        std::string::npos);
  CHECK(chunks > 1);
  // Every chunk went up once and down at least once, each URL's signature
  // checked by the bucket; nothing went through the engine's own store.
  CHECK(p.s3->puts_stored() == chunks);
  CHECK(p.s3->requests("GET") >= chunks);
  CHECK(p.s3_refusals() == 0);
  CHECK(wait_until([&] { return p.s3->object_count() == 0; }, 10'000));
  // /metrics: the run, its chunks, and the engine's own removals of them
  // (on the store handle's thread; the standby's agent deleted them first,
  // and S3 answers 204 for an absent key).
  auto total = static_cast<long long>(chunks);
  CHECK(p.n.metric("balctl_replication_runs_total{result=\"ok\"}") == 1);
  CHECK(p.n.metric("balctl_replication_runs_total{result=\"failed\"}") == 0);
  CHECK(p.n.metric("balctl_replication_chunks_stored_total") == total);
  CHECK(wait_until([&] {
    return p.n.metric("balctl_chunk_removals_total{result=\"removed\"}") == total;
  }, 10'000));
  CHECK(p.n.metric("balctl_chunk_removals_total{result=\"failed\"}") == 0);
  CHECK(p.n.metric("balctl_chunk_presign_failures_total") == 0);
}

TEST_CASE("through S3, the engine killed half-way through the upload: the run resumes after "
          "the restart and no stored chunk is uploaded again",
          "[replication][s3][e2e]") {
  cpanel_pair p;
  p.use_s3();
  p.start_with_agents();
  p.protect_alice();
  // The bucket stores chunks 0 and 1, then throttles: the upload stops
  // half-way, the agent retrying chunk 2.
  p.throttle = true;
  REQUIRE(p.n.post(p.base() + "/accounts/alice/replicate", json::object()).status == 202);
  bool half = wait_until([&] {
    return p.s3->errors("SlowDown") >= 1 && p.replication()["chunks_stored"] == 2;
  }, 60'000);
  INFO(p.n.log());
  REQUIRE(half);
  auto chunks = p.replication()["chunks"].get<std::uint64_t>();
  REQUIRE(chunks > 3);
  CHECK(p.replication()["phase"] == "packaging"); // its upload, in fact

  REQUIRE(kill(p.n.daemon->pid(), SIGKILL) == 0);
  p.n.daemon->wait_exit(10'000);
  p.n.admin_extra["listen"] = "127.0.0.1:" + std::to_string(p.n.admin_port);
  p.n.start();
  auto after = p.replication();
  CHECK(after["phase"] == "packaging");
  CHECK(after["chunks_stored"] == 2);
  p.throttle = false; // the agent's next retry gets through

  bool synced = wait_until([&] { return p.replication()["health"] == "healthy"; }, 90'000);
  INFO(read_file(p.n.dir.file("source-agent-1.log")));
  REQUIRE(synced);
  CHECK(p.restored_identical());
  CHECK(p.s3->puts_stored() == chunks); // chunks 0 and 1 were not sent again
  CHECK(p.s3_refusals() == 0);
  auto log = p.replication_log();
  CHECK(count_of(log, "sync done") == 1);
  CHECK(wait_until([&] { return p.s3->object_count() == 0; }, 10'000));
  // The restarted engine counted the chunks it was told about: the rest.
  CHECK(p.n.metric("balctl_replication_chunks_stored_total") ==
        static_cast<long long>(chunks) - 2);
  CHECK(p.n.metric("balctl_replication_runs_total{result=\"ok\"}") == 1);
}
