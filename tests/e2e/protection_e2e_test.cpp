// Protection end to end: the real balctld, its admin API and the agents'
// own API (docs/protocol.md, "The agent API"), signed here exactly as an
// agent signs, on loopback ports chosen at run time.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>

#include "transport/agent_auth.hpp"
#include "tests/e2e/balctld_node.hpp"

using namespace balctl;
using namespace balctl::test;
using json = nlohmann::json;

namespace {

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

protocol::key key_of(int id) {
  protocol::key k{};
  k.fill(static_cast<std::uint8_t>(id));
  return k;
}

/// A call to the agent API as member `id` would make it; skew_ms moves
/// its clock, tamper changes the signature.
reply agent_call(node& n, int id, const std::string& method, const std::string& target,
                 const std::string& body = "", std::int64_t skew_ms = 0, bool tamper = false,
                 int sign_as = 0) {
  auto ts = std::to_string(now_ms() + skew_ms);
  auto sig = agent_auth::sign(agent_auth::derive_api_key(key_of(sign_as != 0 ? sign_as : id)),
                              method, target, ts, body);
  if (tamper) {
    sig[0] = sig[0] == 'a' ? 'b' : 'a';
  }
  std::optional<std::string> sent;
  if (method != "GET") {
    sent = body;
  }
  return n.call(method, target, sent, "",
                {"X-Balctl-Member: " + std::to_string(id), "X-Balctl-Timestamp: " + ts,
                 "X-Balctl-Signature: " + sig});
}

} // namespace

TEST_CASE("an operator's job reaches its member's agent only, runs, reports its output, and "
          "survives a restart",
          "[protection][jobs][e2e]") {
  node n;
  n.start();
  auto q = n.post("/v1/pools/example/members/1/jobs",
                  {{"command", "uptime"}, {"timeout_s", 60}});
  REQUIRE(q.status == 201);
  auto id = q.body["id"].get<std::string>();
  CHECK(q.body["status"] == "queued");
  CHECK(q.body["requested_by"] == "ops");
  CHECK(q.body["params"]["command"] == "uptime");

  // Member 2's agent gets nothing; member 1's gets the job once.
  auto other = agent_call(n, 2, "GET", "/v1/agent/jobs");
  REQUIRE(other.status == 200);
  CHECK(other.body["jobs"].empty());
  auto got = agent_call(n, 1, "GET", "/v1/agent/jobs");
  REQUIRE(got.status == 200);
  REQUIRE(got.body["jobs"].size() == 1);
  CHECK(got.body["jobs"][0]["id"] == id);
  CHECK(got.body["jobs"][0]["kind"] == "command");
  CHECK(got.body["jobs"][0]["params"]["command"] == "uptime");
  CHECK(got.body["poll_s"].get<int>() > 0);
  CHECK(agent_call(n, 1, "GET", "/v1/agent/jobs").body["jobs"].empty());

  // Member 2 cannot report member 1's job.
  auto stolen = agent_call(n, 2, "POST", "/v1/agent/jobs/" + id,
                           R"({"status":"succeeded","exit_code":0})");
  CHECK(stolen.status == 404);
  CHECK(stolen.code() == "job_not_found");

  auto running = agent_call(n, 1, "POST", "/v1/agent/jobs/" + id, R"({"status":"running"})");
  REQUIRE(running.status == 200);
  CHECK(running.body["status"] == "running");
  auto list = n.get("/v1/pools/example/members/1/jobs");
  REQUIRE(list.status == 200);
  CHECK(list.body["running"] == 1);
  // The pool's Fleet Status counts it.
  auto overview = n.get("/v1/pools/example/overview");
  REQUIRE(overview.status == 200);
  CHECK(overview.body["kpis"]["running_jobs"] == 1);
  auto done = agent_call(n, 1, "POST", "/v1/agent/jobs/" + id,
                         R"({"status":"succeeded","exit_code":0,"output":" 10:00 up 3 days"})");
  REQUIRE(done.status == 200);
  CHECK(done.body["status"] == "succeeded");
  auto again = agent_call(n, 1, "POST", "/v1/agent/jobs/" + id,
                          R"({"status":"failed","exit_code":1})");
  CHECK(again.status == 409);
  CHECK(again.code() == "job_finished");

  auto job = n.get("/v1/pools/example/jobs/" + id);
  REQUIRE(job.status == 200);
  CHECK(job.body["status"] == "succeeded");
  CHECK(job.body["exit_code"] == 0);
  CHECK(job.body["output"] == " 10:00 up 3 days");
  auto log = n.get("/v1/pools/example/activity?kind=jobs");
  REQUIRE(log.status == 200);
  REQUIRE(log.body["events"].size() >= 2);
  CHECK(log.body["events"][0]["message"].get<std::string>().find("succeeded") !=
        std::string::npos);

  // A restart keeps the job and its outcome.
  n.stop();
  n.start();
  auto kept = n.get("/v1/pools/example/jobs/" + id);
  REQUIRE(kept.status == 200);
  CHECK(kept.body["status"] == "succeeded");
  CHECK(kept.body["output"] == " 10:00 up 3 days");
  // New ids never reuse an old one.
  auto next = n.post("/v1/pools/example/members/1/jobs", {{"command", "true"}});
  REQUIRE(next.status == 201);
  CHECK(next.body["id"] != id);
}

TEST_CASE("the agent API refuses unsigned, forged, stale and unknown callers, and bad jobs",
          "[protection][jobs][e2e]") {
  node n;
  n.start();
  auto forged = agent_call(n, 1, "GET", "/v1/agent/jobs", "", 0, true);
  CHECK(forged.status == 401);
  CHECK(forged.code() == "agent_signature_invalid");
  // Signed with member 2's key while claiming member 1.
  auto impostor = agent_call(n, 1, "GET", "/v1/agent/jobs", "", 0, false, 2);
  CHECK(impostor.status == 401);
  CHECK(impostor.code() == "agent_signature_invalid");
  auto stale = agent_call(n, 1, "GET", "/v1/agent/jobs", "", -400'000);
  CHECK(stale.status == 401);
  CHECK(stale.code() == "agent_signature_stale");
  auto unknown = agent_call(n, 99, "GET", "/v1/agent/jobs");
  CHECK(unknown.status == 401);
  CHECK(unknown.code() == "agent_unknown");
  auto bare = n.call("GET", "/v1/agent/jobs", std::nullopt, "");
  CHECK(bare.status == 401);
  auto bad_status = agent_call(n, 1, "POST", "/v1/agent/jobs/j-1", R"({"status":"maybe"})");
  CHECK(bad_status.status == 422);
  CHECK(bad_status.field() == "status");

  auto no_command = n.post("/v1/pools/example/members/1/jobs", {{"timeout_s", 5}});
  CHECK(no_command.status == 422);
  CHECK(no_command.field() == "command");
  auto bad_timeout =
    n.post("/v1/pools/example/members/1/jobs", {{"command", "true"}, {"timeout_s", 0}});
  CHECK(bad_timeout.status == 422);
  CHECK(bad_timeout.field() == "timeout_s");
  auto no_member = n.post("/v1/pools/example/members/77/jobs", {{"command", "true"}});
  CHECK(no_member.status == 404);
  auto viewer = n.post("/v1/pools/example/members/1/jobs", {{"command", "true"}}, viewer_token);
  CHECK(viewer.status == 403);

  // Cancelled before the agent fetched it: never offered.
  auto q = n.post("/v1/pools/example/members/1/jobs", {{"command", "sleep 100"}});
  REQUIRE(q.status == 201);
  auto id = q.body["id"].get<std::string>();
  auto c = n.post("/v1/pools/example/jobs/" + id + "/cancel", json::object());
  REQUIRE(c.status == 200);
  CHECK(c.body["status"] == "cancelled");
  CHECK(agent_call(n, 1, "GET", "/v1/agent/jobs").body["jobs"].empty());
  CHECK(n.post("/v1/pools/example/jobs/" + id + "/cancel", json::object()).status == 409);
  CHECK(n.get("/v1/pools/example/jobs/j-999").status == 404);
}

TEST_CASE("balctl job run, job list and job show reach the real engine and its agent API",
          "[protection][jobs][cli][e2e]") {
  node n;
  n.start();
  auto queued = n.cli({"job", "run", "example", "1", "--command", "true"});
  INFO("balctl printed:\n" << n.cli_transcript);
  REQUIRE(queued.exit_code == 0);
  CHECK(queued.err.empty());
  // "queued job j-1 for member 1 of pool example; follow it with ..."
  REQUIRE(queued.out.rfind("queued job ", 0) == 0);
  auto id = queued.out.substr(11, queued.out.find(' ', 11) - 11);
  CHECK(queued.out.find(" for member 1 of pool example; follow it with 'balctl job show "
                        "example " + id + "'\n") != std::string::npos);
  CHECK(queued.out.find("command       true\n") != std::string::npos);
  CHECK(queued.out.find("status        queued\n") != std::string::npos);
  CHECK(queued.out.find("requested by  ops\n") != std::string::npos);

  auto waiting = n.cli({"job", "list", "example", "1"});
  REQUIRE(waiting.exit_code == 0);
  CHECK(waiting.out.rfind("ID ", 0) == 0);
  CHECK(waiting.out.find(id + "       1  command  queued") != std::string::npos);
  CHECK(waiting.out.find("1 queued, 0 running, 0 failed\n") != std::string::npos);

  // Member 1's agent fetches it, runs it and reports, signed as an agent.
  auto got = agent_call(n, 1, "GET", "/v1/agent/jobs");
  REQUIRE(got.status == 200);
  REQUIRE(got.body["jobs"].size() == 1);
  CHECK(got.body["jobs"][0]["id"] == id);
  REQUIRE(agent_call(n, 1, "POST", "/v1/agent/jobs/" + id,
                     R"({"status":"succeeded","exit_code":0,"output":"ran true\n"})")
            .status == 200);

  auto shown = n.cli({"job", "show", "example", id});
  REQUIRE(shown.exit_code == 0);
  CHECK(shown.out.rfind("id            " + id + "\nmember        1\n", 0) == 0);
  CHECK(shown.out.find("status        succeeded\nexit code     0\n") != std::string::npos);
  CHECK(shown.out.find("finished      ") != std::string::npos);
  CHECK(shown.out.size() >= 18);
  CHECK(shown.out.substr(shown.out.size() - 17) == "\nOutput\nran true\n");
  auto pool_list = n.cli({"job", "list", "example"});
  REQUIRE(pool_list.exit_code == 0);
  CHECK(pool_list.out.find(id + "       1  command  succeeded     0") != std::string::npos);
  CHECK(pool_list.out.find("0 queued, 0 running, 0 failed\n") != std::string::npos);
  auto scripted = n.cli({"--json", "job", "show", "example", id});
  REQUIRE(scripted.exit_code == 0);
  auto j = json::parse(scripted.out, nullptr, false);
  CHECK(j["status"] == "succeeded");
  CHECK(j["output"] == "ran true\n");

  // Refusals keep the CLI's exit codes: 404 is 5, 409 and 422 are 6, 2 a usage error.
  auto missing = n.cli({"job", "show", "example", "j-999"});
  CHECK(missing.exit_code == 5);
  CHECK(missing.err.find("(job_not_found)") != std::string::npos);
  auto finished = n.cli({"job", "cancel", "example", id});
  CHECK(finished.exit_code == 6);
  CHECK(finished.err.find("(job_finished)") != std::string::npos);
  auto too_long = n.cli({"job", "run", "example", "1", "--command", "true", "--timeout-s",
                         "86401"});
  CHECK(too_long.exit_code == 6);
  CHECK(too_long.err.find("(invalid_field, field timeout_s)") != std::string::npos);
  CHECK(n.cli({"job", "run", "example", "1"}).exit_code == 2);
  CHECK(n.cli({"job", "run", "example", "1", "--command", "true"}, viewer_token).exit_code == 4);
}

TEST_CASE("balctl sets an account's replication schedule and shows it on the Protection "
          "dashboard",
          "[protection][cli][e2e]") {
  node n;
  n.start();
  auto added = n.cli({"account", "add", "example", "alice", "--domain", "alice.test",
                      "--source", "1", "--standby", "2", "--managed", "off",
                      "--replicate-every-s", "3600", "--replicate-overlap", "wait"});
  INFO("balctl printed:\n" << n.cli_transcript);
  REQUIRE(added.exit_code == 0);
  CHECK(added.out.find("replication   every 3600 s, overlap wait\n") != std::string::npos);
  auto off = n.cli({"account", "set", "example", "alice", "--replicate-every-s", "0"});
  REQUIRE(off.exit_code == 0);
  CHECK(off.out.find("replication   on demand only, overlap wait\n") != std::string::npos);
  auto bad = n.cli({"account", "set", "example", "alice", "--replicate-every-s", "60"});
  CHECK(bad.exit_code == 6);
  CHECK(bad.err.find("field replication_every_s") != std::string::npos);

  auto dashboard = n.cli({"protection", "example"});
  REQUIRE(dashboard.exit_code == 0);
  CHECK(dashboard.out.rfind("Protection of pool example\nprotected accounts  1\n", 0) == 0);
  CHECK(dashboard.out.find("\nalice    ") != std::string::npos);
  auto replication = n.cli({"account", "replication", "example", "alice"});
  REQUIRE(replication.exit_code == 0);
  CHECK(replication.out.find("phase         idle\n") != std::string::npos);
  CHECK(replication.out.find("schedule      on demand only, overlap wait\n") !=
        std::string::npos);
  // Neither member reports cPanel: Replicate now is refused, exit code 6.
  auto now_run = n.cli({"account", "replicate", "example", "alice"});
  CHECK(now_run.exit_code == 6);
  CHECK(now_run.err.find("(not_applicable)") != std::string::npos);
}
