// Protection's actors (actors/protection, actors/account) on CAF's
// deterministic test scheduler, driven through control_impl as the admin
// API and the agent API drive them: replication schedules come due on a
// manual clock (the schedule's minimum is 300 s, so an end-to-end test
// would wait five minutes for each start), the agent's side played by
// the test.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "actors/control_impl.hpp"
#include "tests/actors/actor_test_support.hpp"
#include "transport/protocol.hpp"

using namespace balctl;
using namespace balctl::test;
using json = nlohmann::json;

namespace {

// A status body as member id's agent sends it, reporting cPanel.
std::string cpanel_status(member_id id) {
  return R"({"hostname":"node)" + std::to_string(id) +
         R"(.example.test","agent_version":"1.0","stacks":{"cpanel":{"version":"118.0.5"}}})";
}

struct fixture : engine_rig {
  std::unique_ptr<control_impl> control;

  fixture() : engine_rig({make_pool("web", {1, 2})}, {}, {}, deps()) {
    control = std::make_unique<control_impl>(sys, h.supervisor, parts.reg, "");
  }

  static protection_deps deps() {
    protection_deps pd;
    pd.presign = [](const std::string& method, const std::string& key) {
      return "http://chunks.test/" + key + "?m=" + method;
    };
    pd.chunk_size = 65536;
    return pd;
  }

  void beat(member_id id, const std::string& body = {}) {
    auto r = send_beat(id, body);
    CAPTURE(id, protocol::to_string(r.reason));
    REQUIRE(r.ok);
  }

  /// Both members report cPanel: Protection is available. (Not in the
  /// constructor: a failed REQUIRE there would skip the destructor that
  /// stops the actors, and the actor system would wait for them forever.)
  void cpanel_up() {
    beat(1, cpanel_status(1));
    beat(2, cpanel_status(2));
  }

  // Both clocks forward by ms, both members heartbeating once a second.
  void run_for(std::int64_t ms) {
    for (std::int64_t t = 0; t < ms; t += 1000) {
      tick(1000);
      beat(1);
      beat(2);
    }
  }

  /// One control_impl call, answered on the test scheduler.
  template <class T, class F>
  api::outcome<T> call(F&& f) {
    std::optional<api::outcome<T>> out;
    f([&](api::outcome<T> o) { out = std::move(o); });
    sched.run();
    REQUIRE(out);
    return std::move(*out);
  }

  void protect(const std::string& id, const std::string& overlap) {
    json body = {{"id", id},
                 {"domain", id + ".example.test"},
                 {"source", 1},
                 {"standby", 2},
                 {"dns_provider", "cloudflare"},
                 {"replication_every_s", 300},
                 {"replication_overlap", overlap}};
    auto r = call<account_view>([&](auto cb) { control->put_account("web", "", body.dump(), cb); });
    INFO(r.error.message);
    REQUIRE(r.ok());
  }

  json replication(const std::string& account) {
    auto r = call<std::string>([&](auto cb) { control->replication("web", account, cb); });
    INFO(r.error.message);
    REQUIRE(r.ok());
    return json::parse(*r.value);
  }

  /// The replication log (sync and failure lines), oldest first.
  std::vector<std::string> log() {
    auto r = call<std::vector<activity_record>>(
      [&](auto cb) { control->activity("web", 0, 1000, 0, cb); });
    REQUIRE(r.ok());
    std::vector<std::string> out;
    for (auto it = r.value->rbegin(); it != r.value->rend(); ++it) {
      if (it->kind == to_string(activity_kind::replication_sync) ||
          it->kind == to_string(activity_kind::replication_failed)) {
        out.push_back(it->message);
      }
    }
    return out;
  }

  /// Where the first line holding part is in the log; -1 when none.
  long position_of(const std::string& part) {
    auto lines = log();
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].find(part) != std::string::npos) {
        return static_cast<long>(i);
      }
    }
    return -1;
  }

  std::size_t lines_with(const std::string& part) {
    std::size_t n = 0;
    for (const auto& l : log()) {
      n += l.find(part) != std::string::npos ? 1 : 0;
    }
    return n;
  }

  /// What member m's agent gets when it polls.
  json fetch_jobs(member_id m) {
    auto r = call<std::string>([&](auto cb) { control->agent_call(m, "GET", "jobs", "", cb); });
    REQUIRE(r.ok());
    return json::parse(*r.value)["jobs"];
  }

  void report(member_id m, const std::string& job, const std::string& status,
              const std::string& error = {}) {
    json body = {{"status", status}, {"exit_code", status == "failed" ? 1 : 0}, {"error", error}};
    auto r = call<std::string>(
      [&](auto cb) { control->agent_call(m, "POST", "jobs/" + job, body.dump(), cb); });
    INFO(r.error.message);
    REQUIRE(r.ok());
  }
};

} // namespace

TEST_CASE("a scheduled replication that comes due while the last run still goes is skipped "
          "and logged, and a failed run is resumed, not packaged again",
          "[actors][replication]") {
  fixture f;
  f.cpanel_up();
  f.protect("alice", "skip");
  // Every 300 s from when it was added: nothing yet at 299 s.
  f.run_for(299'000);
  CHECK(f.replication("alice")["phase"] == "idle");
  f.run_for(2'000);
  auto r = f.replication("alice");
  CHECK(r["phase"] == "packaging");
  CHECK(r["trigger"] == "schedule");
  CHECK(f.lines_with("sync started (schedule), run alice-1") == 1);
  // The source's agent takes the package job and is still at it 300 s on.
  auto jobs = f.fetch_jobs(1);
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0]["kind"] == "replicate_package");
  f.report(1, jobs[0]["id"].get<std::string>(), "running");
  f.run_for(300'000);
  r = f.replication("alice");
  CHECK(r["run"] == "alice-1");
  CHECK(r["phase"] == "packaging");
  CHECK(r["starts_skipped"] == 1);
  CHECK(f.lines_with("schedule sync skipped: run alice-1 still packaging") == 1);
  CHECK(f.metrics.replication_starts_skipped == 1);
  CHECK(f.fetch_jobs(1).empty()); // no second package job
  // The run fails: its retry (60 s on) resumes the same run, no second
  // package.
  f.report(1, jobs[0]["id"].get<std::string>(), "failed", "pkgacct: disk full");
  CHECK(f.replication("alice")["phase"] == "failed");
  CHECK(f.metrics.replication_runs_failed == 1);
  f.run_for(61'000);
  r = f.replication("alice");
  CHECK(r["run"] == "alice-1");
  CHECK(r["phase"] == "packaging");
  CHECK(f.lines_with("sync resumed (retry), run alice-1") == 1);
  CHECK(f.lines_with("skipped") == 1);
}

TEST_CASE("with replication_overlap wait, a start that comes due during a run is taken when "
          "the run ends",
          "[actors][replication]") {
  fixture f;
  f.cpanel_up();
  f.protect("bob", "wait");
  f.run_for(301'000);
  auto jobs = f.fetch_jobs(1);
  REQUIRE(jobs.size() == 1);
  auto first = jobs[0]["id"].get<std::string>();
  f.report(1, first, "running");
  f.run_for(300'000);
  auto r = f.replication("bob");
  CHECK(r["waiting"] == true);
  CHECK(r["starts_skipped"] == 0);
  CHECK(f.lines_with("scheduled sync waits: run bob-1 still packaging") == 1);
  CHECK(f.fetch_jobs(1).empty());
  // The run ends (failed): the waiting start is taken at once, resuming it.
  f.report(1, first, "failed", "pkgacct: disk full");
  r = f.replication("bob");
  CHECK(r["waiting"] == false);
  CHECK(r["phase"] == "packaging");
  CHECK(f.lines_with("sync resumed (schedule), run bob-1") == 1);
  // The failure ends the run before the start it lets go.
  CHECK(f.position_of("run bob-1 failed") >= 0);
  CHECK(f.position_of("run bob-1 failed") < f.position_of("sync resumed (schedule)"));
  jobs = f.fetch_jobs(1);
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0]["id"] != first);
  CHECK(jobs[0]["kind"] == "replicate_package");
}
