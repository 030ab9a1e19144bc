// The agent's job loop and replication (agent/job_loop, agent/jobs) against
// a fake engine agent API on loopback: it checks every request's signature
// with the engine's own verifier (transport/agent_auth), hands out jobs,
// records reports, and stores chunks behind "presigned" URLs in the same
// server. The agent code is the real one, running in-process on its own
// threads with the fixture trees in tests/fixtures/agent/cpanel_{source,standby}
// as its --root.

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/agent_api.hpp"
#include "agent/job_loop.hpp"
#include "cli/client.hpp"
#include "tests/support/temp_dir.hpp"
#include "transport/agent_auth.hpp"
#include "transport/http_server.hpp"

using namespace balctl;
using namespace balctl::agent;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path fixtures() { return fs::path(BALCTL_SOURCE_DIR) / "tests" / "fixtures" / "agent"; }

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

/// Polls pred every 10 ms for at most timeout; true once it holds.
bool wait_until(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

std::vector<std::string> split_path(const std::string& p) {
  std::vector<std::string> out;
  std::size_t pos = 1;
  while (pos <= p.size()) {
    auto next = p.find('/', pos);
    if (next == std::string::npos) {
      next = p.size();
    }
    out.push_back(p.substr(pos, next - pos));
    pos = next + 1;
  }
  return out;
}

protocol::key test_key(std::uint8_t seed) {
  protocol::key k{};
  for (std::size_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<std::uint8_t>(seed + i);
  }
  return k;
}

/// The engine's agent API, as docs/protocol.md describes it, in memory.
class fake_engine {
public:
  static constexpr member_id member = 7;
  const protocol::key key = test_key(1);

  fake_engine()
    : server_("127.0.0.1:0", limits(), [this](http::request&& r, http::responder respond) {
        respond(handle(r));
      }) {
    auto err = server_.start();
    REQUIRE(err.empty());
  }
  ~fake_engine() { server_.stop(); }

  std::string base() const { return "http://127.0.0.1:" + std::to_string(server_.bound_port()); }

  void queue(json job) {
    std::lock_guard<std::mutex> lk(mu);
    queued.push_back(std::move(job));
  }
  /// The reports of one job, in arrival order.
  std::vector<json> reports_of(const std::string& id) {
    std::lock_guard<std::mutex> lk(mu);
    return reports[id];
  }
  /// The final report (succeeded or failed), or null.
  json final_of(const std::string& id) {
    for (const auto& r : reports_of(id)) {
      if (r.value("status", "") != "running") {
        return r;
      }
    }
    return nullptr;
  }
  json wait_final(const std::string& id) {
    REQUIRE(wait_until([&] { return !final_of(id).is_null(); }));
    return final_of(id);
  }
  /// The restore job's params for what the engine holds of a run.
  json restore_params(const std::string& run, const std::string& account) {
    std::lock_guard<std::mutex> lk(mu);
    const auto& st = runs.at(run);
    json chunks = json::array();
    for (const auto& c : st.manifest["chunks"]) {
      auto i = c["index"].get<int>();
      auto url = base() + "/chunks/" + run + "/" + std::to_string(i) + "?token=t";
      chunks.push_back({{"index", i}, {"size", c["size"]}, {"sha256", c["sha256"]},
                        {"url", url}, {"delete_url", url}});
    }
    return {{"run", run}, {"account", account}, {"size", st.manifest["size"]},
            {"sha256", st.manifest["sha256"]}, {"chunks", chunks}};
  }

  struct run_state {
    json manifest;
    std::map<int, std::string> chunks; // index -> bytes held
  };

  std::mutex mu;
  int poll_s = 1;
  std::deque<json> queued;
  std::map<std::string, std::vector<json>> reports;
  std::vector<std::int64_t> poll_times_ms;
  std::vector<std::string> auth_failures; // error codes answered with 401
  bool refuse_reports = false;        // 401 on every report
  bool refuse_final_reports = false;  // 401 on reports that are not "running"
  std::map<std::string, run_state> runs;
  int manifests = 0;
  int puts = 0;
  std::vector<int> put_indexes;
  int puts_with_agent_headers = 0;
  int forbid_next_puts = 0;           // answer this many PUTs 403 (expired URL)
  int fail_puts_from_index = -1;      // >= 0: PUTs of this index and above get 500
  std::set<int> corrupt_on_get;       // chunks served with a flipped byte
  std::map<int, int> gets;            // index -> GETs
  int deletes = 0;

private:
  static http::server_limits limits() {
    http::server_limits l;
    l.max_body_bytes = 4 * 1024 * 1024;
    return l;
  }

  http::response json_response(int status, const json& j) {
    http::response r;
    r.status = status;
    r.body = j.dump();
    return r;
  }

  http::response handle(const http::request& r) {
    std::lock_guard<std::mutex> lk(mu);
    auto parts = split_path(r.path);
    if (!parts.empty() && parts[0] == "chunks") {
      return chunk_store(r, parts);
    }
    // Everything under /v1/agent is signed.
    auto* m = r.header("x-balctl-member");
    auto* ts = r.header("x-balctl-timestamp");
    auto* sig = r.header("x-balctl-signature");
    if (m == nullptr || *m != std::to_string(member) || ts == nullptr || sig == nullptr) {
      auth_failures.push_back("agent_unknown");
      return http::error_response(401, "agent_unknown", "", "no such member");
    }
    auto target = r.query.empty() ? r.path : r.path + "?" + r.query;
    auto v = agent_auth::verify(key, r.method, target, *ts, r.body, *sig, now_ms());
    if (v != agent_auth::verdict::ok) {
      auth_failures.push_back(agent_auth::to_code(v));
      return http::error_response(401, agent_auth::to_code(v), "", "signature refused");
    }
    if (r.method == "GET" && r.path == "/v1/agent/jobs") {
      poll_times_ms.push_back(now_ms());
      json jobs = json::array();
      while (!queued.empty() && jobs.size() < 16) {
        jobs.push_back(queued.front());
        queued.pop_front();
      }
      return json_response(200, {{"jobs", jobs}, {"poll_s", poll_s}});
    }
    if (r.method == "POST" && parts.size() == 4 && parts[2] == "jobs") {
      auto body = json::parse(r.body, nullptr, false);
      REQUIRE_FALSE(body.is_discarded());
      bool final = body.value("status", "") != "running";
      reports[parts[3]].push_back(body);
      if (refuse_reports || (final && refuse_final_reports)) {
        auth_failures.push_back("agent_signature_invalid");
        return http::error_response(401, "agent_signature_invalid", "", "refused for the test");
      }
      return json_response(200, {{"status", body["status"]}});
    }
    if (r.method == "POST" && parts.size() == 5 && parts[2] == "replication" &&
        parts[4] == "manifest") {
      ++manifests;
      auto body = json::parse(r.body);
      auto& st = runs[parts[3]];
      if (!st.manifest.is_null() && st.manifest["sha256"] != body["sha256"]) {
        st.chunks.clear(); // another package: start over
      }
      st.manifest = body;
      json upload = json::array();
      for (const auto& c : body["chunks"]) {
        auto i = c["index"].get<int>();
        auto held = st.chunks.find(i);
        if (held == st.chunks.end() || agent_auth::sha256_hex(held->second) != c["sha256"]) {
          upload.push_back({{"index", i}, {"method", "PUT"},
                            {"url", base() + "/chunks/" + parts[3] + "/" + std::to_string(i) +
                                      "?token=t"}});
        }
      }
      return json_response(200, {{"upload", upload}});
    }
    if (r.method == "POST" && parts.size() == 6 && parts[2] == "replication" &&
        parts[4] == "chunks") {
      auto& st = runs[parts[3]];
      auto held = st.chunks.find(std::stoi(parts[5]));
      auto body = json::parse(r.body);
      if (held == st.chunks.end() || agent_auth::sha256_hex(held->second) != body["sha256"]) {
        return http::error_response(400, "chunk_mismatch", "sha256", "not what was uploaded");
      }
      return json_response(200, json::object());
    }
    return http::error_response(404, "not_found", "", r.method + " " + r.path);
  }

  http::response chunk_store(const http::request& r, const std::vector<std::string>& parts) {
    if (parts.size() != 3 || r.query != "token=t") {
      return http::error_response(403, "forbidden", "", "bad presigned URL");
    }
    auto& st = runs[parts[1]];
    int index = std::stoi(parts[2]);
    if (r.method == "PUT") {
      if (r.header("x-balctl-signature") != nullptr || r.header("x-balctl-member") != nullptr) {
        ++puts_with_agent_headers;
      }
      if (forbid_next_puts > 0) {
        --forbid_next_puts;
        return http::error_response(403, "expired", "", "presigned URL expired");
      }
      if (fail_puts_from_index >= 0 && index >= fail_puts_from_index) {
        return http::error_response(500, "unavailable", "", "store down for the test");
      }
      ++puts;
      put_indexes.push_back(index);
      st.chunks[index] = r.body;
      return http::response{200, "application/json", {}, "{}"};
    }
    auto held = st.chunks.find(index);
    if (held == st.chunks.end()) {
      return http::error_response(404, "no_chunk", "", "no such chunk");
    }
    if (r.method == "GET") {
      ++gets[index];
      http::response resp{200, "application/octet-stream", {}, held->second};
      if (corrupt_on_get.count(index) != 0 && !resp.body.empty()) {
        resp.body[resp.body.size() / 2] ^= 0x55;
      }
      return resp;
    }
    if (r.method == "DELETE") {
      ++deletes;
      st.chunks.erase(held);
      return http::response{204, "application/json", {}, ""};
    }
    return http::error_response(405, "method", "", r.method);
  }

  http::server server_;
};

/// One agent's job loop: its own copy of a fixture tree as --root and its
/// own state directory.
class agent_under_test {
public:
  agent_under_test(fake_engine& e, const std::string& fixture,
                   protocol::key key = test_key(1))
    : root_("balctl-jobs-root"),
      state_dir_("balctl-jobs-state"),
      api_(e.base(), fake_engine::member, key, "", http_) {
    fs::copy(fixtures() / fixture, root_.path(),
             fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    opts_.root = root_.path().string();
    opts_.work_dir = state_dir_.path().string();
    opts_.interval_s = 1;
    // Fast retries: the tests wait for outcomes, never for the clock.
    opts_.report_backoff_base_ms = 20;
    opts_.report_backoff_max_ms = 100;
    opts_.transfer_backoff_base_ms = 20;
    opts_.transfer_backoff_max_ms = 100;
    opts_.poll_backoff_max_ms = 3000;
  }
  ~agent_under_test() { stop(); }

  void start() {
    loop_ = std::make_unique<job_loop>(opts_, api_);
    loop_->start();
  }
  void stop() {
    if (loop_) {
      loop_->join();
      loop_.reset();
    }
  }
  job_loop& loop() { return *loop_; }
  fs::path root() const { return root_.path(); }
  fs::path work_dir() const { return state_dir_.path(); }
  job_loop_options& options() { return opts_; }

private:
  test::temp_dir root_;
  test::temp_dir state_dir_;
  cli::curl_transport_impl http_;
  agent_api api_;
  job_loop_options opts_;
  std::unique_ptr<job_loop> loop_;
};

json command_job(const std::string& id, const std::string& command, int timeout_s = 30) {
  return {{"id", id}, {"kind", "command"}, {"created_ms", now_ms()},
          {"timeout_s", timeout_s}, {"params", {{"command", command}}}};
}

json package_job(const std::string& id, const std::string& run, int timeout_s = 60,
                 int chunk_size = 64 * 1024) {
  return {{"id", id}, {"kind", "replicate_package"}, {"created_ms", now_ms()},
          {"timeout_s", timeout_s},
          {"params", {{"run", run}, {"account", "alice"}, {"chunk_size", chunk_size}}}};
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

/// Every regular file under dir, relative path -> contents.
std::map<std::string, std::string> tree(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) {
      out[fs::relative(e.path(), dir).string()] = slurp(e.path());
    }
  }
  return out;
}

/// Runs a replicate_package job of alice on the source agent until its
/// final report, and stops the agent.
json package_alice(fake_engine& engine, agent_under_test& source, const std::string& id,
                   const std::string& run) {
  engine.queue(package_job(id, run));
  source.start();
  auto p = engine.wait_final(id);
  source.stop();
  return p;
}

struct curl_once {
  cli::curl_global_guard guard;
};
curl_once& curl() {
  static curl_once c;
  return c;
}

} // namespace

TEST_CASE("a command job reports running, then its output and exit code",
          "[agent][jobs][adapters]") {
  REQUIRE(curl().guard.ok());
  fake_engine engine;
  engine.queue(command_job("j-ok", "echo hello; echo to-stderr >&2"));
  engine.queue(command_job("j-bad", "echo failing; exit 3"));
  agent_under_test agent(engine, "cpanel_source");
  agent.start();

  auto ok = engine.wait_final("j-ok");
  CHECK(ok["status"] == "succeeded");
  CHECK(ok["exit_code"] == 0);
  CHECK(ok["output"] == "hello\nto-stderr\n");
  auto bad = engine.wait_final("j-bad");
  CHECK(bad["status"] == "failed");
  CHECK(bad["exit_code"] == 3);
  CHECK(bad["output"] == "failing\n");
  for (const auto* id : {"j-ok", "j-bad"}) {
    auto reps = engine.reports_of(id);
    REQUIRE(reps.size() == 2);
    CHECK(reps[0] == json{{"status", "running"}});
  }
  std::lock_guard<std::mutex> lk(engine.mu);
  CHECK(engine.auth_failures.empty());
}

TEST_CASE("a job past its timeout is killed with its process group and reported timed out",
          "[agent][jobs][adapters]") {
  REQUIRE(curl().guard.ok());
  fake_engine engine;
  agent_under_test agent(engine, "cpanel_source");
  auto pid_file = agent.work_dir() / "sleeper.pid";
  engine.queue(command_job("j-slow", "sleep 60 & echo $! > " + pid_file.string() +
                                       "; echo started; wait", 1));
  agent.start();
  auto t0 = std::chrono::steady_clock::now();
  auto r = engine.wait_final("j-slow");
  CHECK(r["status"] == "failed");
  CHECK(r["error"] == "timed out");
  CHECK(r["output"] == "started\n");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  // The backgrounded grandchild went with the group.
  auto pid = std::stoi(slurp(pid_file));
  CHECK(wait_until([&] { return ::kill(pid, 0) != 0; }, std::chrono::seconds(5)));
}

TEST_CASE("output over 64 KiB is cut to its tail", "[agent][jobs][adapters]") {
  REQUIRE(curl().guard.ok());
  fake_engine engine;
  engine.queue(command_job("j-flood", "yes 0123456789 | head -c 300000; echo THE-END"));
  agent_under_test agent(engine, "cpanel_source");
  agent.start();
  auto r = engine.wait_final("j-flood");
  CHECK(r["status"] == "succeeded");
  auto out = r["output"].get<std::string>();
  CHECK(out.size() == 65536);
  CHECK(out.substr(out.size() - 8) == "THE-END\n");
}

TEST_CASE("a refused signature (401) is logged and not retried forever",
          "[agent][jobs][adapters]") {
  REQUIRE(curl().guard.ok());
  fake_engine engine;

  SECTION("polls signed with the wrong key back off and run nothing") {
    engine.queue(command_job("j-never", "true"));
    agent_under_test agent(engine, "cpanel_source", test_key(99));
    agent.start();
    REQUIRE(wait_until([&] { return agent.loop().stats().polls_failed >= 2; }));
    agent.stop();
    std::lock_guard<std::mutex> lk(engine.mu);
    CHECK(engine.poll_times_ms.empty()); // none got past the signature
    REQUIRE(engine.auth_failures.size() >= 2);
    CHECK(engine.auth_failures[0] == "agent_signature_invalid");
    CHECK(engine.queued.size() == 1);
  }
  SECTION("a refused running report: the job is not run, and not reported again") {
    engine.refuse_reports = true;
    auto marker = fs::temp_directory_path() / ("balctl-never-" + std::to_string(now_ms()));
    engine.queue(command_job("j-refused", "touch " + marker.string()));
    agent_under_test agent(engine, "cpanel_source");
    agent.start();
    REQUIRE(wait_until([&] { return agent.loop().stats().jobs_finished == 1; }));
    auto stats = agent.loop().stats();
    agent.stop();
    CHECK(engine.reports_of("j-refused").size() == 1);
    CHECK(stats.reports_refused == 1);
    CHECK_FALSE(fs::exists(marker));
  }
  SECTION("a refused final report is sent once") {
    engine.refuse_final_reports = true;
    engine.queue(command_job("j-final", "echo done"));
    agent_under_test agent(engine, "cpanel_source");
    agent.start();
    REQUIRE(wait_until([&] { return agent.loop().stats().jobs_finished == 1; }));
    auto stats = agent.loop().stats();
    agent.stop();
    CHECK(stats.reports_refused == 1);
    auto reps = engine.reports_of("j-final");
    REQUIRE(reps.size() == 2);
    CHECK(reps[0]["status"] == "running");
    CHECK(reps[1]["status"] == "succeeded");
  }
}

TEST_CASE("a replication packages the account, uploads its chunks and restores it on the standby",
          "[agent][jobs][replication][adapters]") {
  REQUIRE(curl().guard.ok());
  fake_engine engine;
  agent_under_test source(engine, "cpanel_source");
  agent_under_test standby(engine, "cpanel_standby");
  // The first upload URL has expired: the agent asks for fresh ones.
  engine.forbid_next_puts = 1;
  auto p = package_alice(engine, source, "j-pkg", "r-1");
  INFO(p.dump());
  REQUIRE(p["status"] == "succeeded");
  std::size_t n_chunks = 0;
  {
    std::lock_guard<std::mutex> lk(engine.mu);
    const auto& run = engine.runs.at("r-1");
    n_chunks = run.manifest["chunks"].size();
    CHECK(n_chunks >= 4); // a few hundred KiB in 64 KiB chunks
    CHECK(run.chunks.size() == n_chunks);
    CHECK(engine.manifests == 2);
    CHECK(engine.puts == static_cast<int>(n_chunks));
    CHECK(engine.puts_with_agent_headers == 0);
  }
  // The package stays in the run directory for a resume.
  CHECK(fs::exists(source.work_dir() / "replication" / "r-1" / "cpmove-alice.tar.gz"));
  CHECK_FALSE(fs::exists(source.work_dir() / "replication" / "r-1" / "staging"));

  REQUIRE_FALSE(fs::exists(standby.root() / "home" / "alice"));
  engine.queue({{"id", "j-restore"}, {"kind", "replicate_restore"}, {"timeout_s", 60},
                {"params", engine.restore_params("r-1", "alice")}});
  standby.start();
  auto r = engine.wait_final("j-restore");
  INFO(r.dump());
  REQUIRE(r["status"] == "succeeded");
  CHECK(r["output"].get<std::string>().find("restorepkg: restored alice") != std::string::npos);
  CHECK(tree(standby.root() / "home" / "alice") == tree(source.root() / "home" / "alice"));
  CHECK_FALSE(fs::exists(standby.work_dir() / "replication" / "r-1" / "restore"));
  std::lock_guard<std::mutex> lk(engine.mu);
  CHECK(engine.deletes == static_cast<int>(n_chunks));
  CHECK(engine.runs.at("r-1").chunks.empty());
}

TEST_CASE("a resumed replication uploads only the chunks the engine is missing",
          "[agent][jobs][replication][adapters]") {
  REQUIRE(curl().guard.ok());
  fake_engine engine;
  agent_under_test source(engine, "cpanel_source");
  // The chunk store fails from chunk 2 on: the first job times out with
  // chunks 0 and 1 held.
  engine.fail_puts_from_index = 2;
  engine.queue(package_job("j-first", "r-2", 2));
  source.start();
  auto first = engine.wait_final("j-first");
  CHECK(first["status"] == "failed");
  CHECK(first["error"] == "timed out");
  std::size_t n_chunks = 0;
  {
    std::lock_guard<std::mutex> lk(engine.mu);
    n_chunks = engine.runs.at("r-2").manifest["chunks"].size();
    REQUIRE(n_chunks >= 4);
    CHECK(engine.runs.at("r-2").chunks.size() == 2);
    engine.fail_puts_from_index = -1;
    engine.puts = 0;
    engine.put_indexes.clear();
  }
  engine.queue(package_job("j-second", "r-2"));
  auto second = engine.wait_final("j-second");
  INFO(second.dump());
  REQUIRE(second["status"] == "succeeded");
  CHECK(second["output"].get<std::string>().find("resuming") != std::string::npos);
  std::lock_guard<std::mutex> lk(engine.mu);
  CHECK(engine.puts == static_cast<int>(n_chunks) - 2);
  for (auto i : engine.put_indexes) {
    CHECK(i >= 2);
  }
  CHECK(engine.runs.at("r-2").chunks.size() == n_chunks);
}

TEST_CASE("a chunk with a wrong hash on download fails the restore",
          "[agent][jobs][replication][adapters]") {
  REQUIRE(curl().guard.ok());
  fake_engine engine;
  agent_under_test source(engine, "cpanel_source");
  agent_under_test standby(engine, "cpanel_standby");
  REQUIRE(package_alice(engine, source, "j-pkg", "r-3")["status"] == "succeeded");
  {
    std::lock_guard<std::mutex> lk(engine.mu);
    engine.corrupt_on_get.insert(1);
  }
  engine.queue({{"id", "j-restore"}, {"kind", "replicate_restore"}, {"timeout_s", 60},
                {"params", engine.restore_params("r-3", "alice")}});
  standby.start();
  auto r = engine.wait_final("j-restore");
  CHECK(r["status"] == "failed");
  auto err = r["error"].get<std::string>();
  CHECK(err.find("chunk 1: sha256") != std::string::npos);
  CHECK_FALSE(fs::exists(standby.root() / "home" / "alice"));
  CHECK_FALSE(fs::exists(standby.work_dir() / "replication" / "r-3" / "restore"));
  std::lock_guard<std::mutex> lk(engine.mu);
  CHECK(engine.gets[1] == 3); // retried, then given up
  CHECK(engine.deletes == 0);
}

TEST_CASE("the post-failover hook runs with its environment", "[agent][jobs][adapters]") {
  REQUIRE(curl().guard.ok());
  fake_engine engine;
  json params = {{"pool", "web"}, {"account", "alice"}, {"domain", "alice.example.com"}};
  engine.queue({{"id", "j-hook"}, {"kind", "post_failover_hook"}, {"timeout_s", 30},
                {"params", params}});

  SECTION("present and executable: run, its environment written") {
    agent_under_test agent(engine, "cpanel_standby");
    agent.start();
    auto r = engine.wait_final("j-hook");
    CHECK(r["status"] == "succeeded");
    CHECK(r["output"] == "hook ran for alice\n");
    CHECK(slurp(agent.root() / "tmp" / "post-failover.env") ==
          "BALCTL_ACCOUNT=alice\nBALCTL_DOMAIN=alice.example.com\nBALCTL_POOL=web\n"
          "BALCTL_ROOT=" + agent.root().string() + "\n");
  }
  SECTION("absent: succeeded, no hook") {
    agent_under_test agent(engine, "cpanel_source");
    agent.start();
    auto r = engine.wait_final("j-hook");
    CHECK(r["status"] == "succeeded");
    CHECK(r["output"] == "no hook");
  }
}
