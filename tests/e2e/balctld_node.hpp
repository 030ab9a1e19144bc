#pragma once

// A real balctld for end-to-end tests: its own temp dir, store and config,
// the admin API on a loopback port chosen at run time, two tokens (admin and
// read-only), and helpers to call the API, read /metrics and beat with
// balctl-loadgen. Used by the admin API and agent tests.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/client.hpp"
#include "engine/secrets.hpp"
#include "engine/types.hpp"
#include "transport/protocol.hpp"
#include "tests/e2e/process.hpp"

namespace balctl::test {

using json = nlohmann::json;

inline const std::string admin_token = "admin-token-e2e-0123456789";
inline const std::string viewer_token = "viewer-token-e2e-0123456789";

inline cli::curl_global_guard curl_guard;

inline std::string key_hex(int id) {
  protocol::key k{};
  k.fill(static_cast<std::uint8_t>(id));
  return protocol::key_to_hex(k);
}

struct reply {
  long status = 0;
  json body;
  std::string raw;
  std::string retry_after;
  std::string code() const {
    return body.is_object() && body.contains("error")
             ? body["error"].value("code", std::string())
             : std::string();
  }
  std::string field() const {
    if (!body.is_object() || !body.contains("error") ||
        body["error"]["field"].is_null()) {
      return {};
    }
    return body["error"]["field"].get<std::string>();
  }
};

struct cli_result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

/// A balctld with the admin API on, its own store and config.
struct node {
  temp_dir dir;
  std::unique_ptr<process> daemon;
  int admin_port = 0;
  int udp_port = 0;
  json admin_extra = json::object();
  json config_extra = json::object(); // top-level keys (heartbeat_tls, ...)
  std::vector<int> config_ids{1, 2}; // members of the config pool "example"
  std::string cli_transcript;        // everything balctl printed (run_cli)

  void write_config() {
    json admin = {{"listen", "127.0.0.1:0"},
                  {"tokens",
                   {{{"name", "ops"},
                     {"role", "admin"},
                     {"sha256", secrets::to_hex(secrets::sha256(admin_token))}},
                    {{"name", "viewer"},
                     {"role", "read-only"},
                     {"sha256", secrets::to_hex(secrets::sha256(viewer_token))}}}},
                  {"agent_version_latest", "1.2.0"}};
    for (auto it = admin_extra.begin(); it != admin_extra.end(); ++it) {
      admin[it.key()] = it.value();
    }
    json members = json::array();
    for (int id : config_ids) {
      members.push_back({{"id", id},
                         {"hostname", "cfg" + std::to_string(id) + ".e2e.test"},
                         {"key", key_hex(id)}});
    }
    json cfg = {{"udp_listen", "127.0.0.1:0"},
                {"store_path", dir.file("store.db")},
                {"admin", admin},
                {"pools",
                 {{{"name", "example"}, {"failover_delay_s", 10}, {"members", members}}}}};
    for (auto it = config_extra.begin(); it != config_extra.end(); ++it) {
      cfg[it.key()] = it.value();
    }
    std::ofstream(dir.file("balctld.json")) << cfg.dump(2);
  }

  void start() {
    write_config();
    std::remove(dir.file("ready").c_str());
    std::remove(dir.file("admin-port").c_str());
    daemon = std::make_unique<process>(
      std::vector<std::string>{BALCTLD_PATH, "--config", dir.file("balctld.json"),
                               "--ready-file", dir.file("ready"),
                               "--admin-port-file", dir.file("admin-port")},
      dir.file("balctld.out"), dir.file("balctld.log"));
    REQUIRE(daemon->started());
    // An engine that exits (a config error) is not waited for.
    bool ready = wait_until([&] {
      return !read_file(dir.file("ready")).empty() || daemon->poll() != -1;
    }, 10'000) && !read_file(dir.file("ready")).empty();
    INFO("balctld did not become ready; its log:\n" << log());
    REQUIRE(ready);
    udp_port = std::stoi(read_file(dir.file("ready")));
    admin_port = std::stoi(read_file(dir.file("admin-port")));
  }

  void stop() {
    REQUIRE(daemon->stop(20'000) == 0);
  }

  std::string log() { return read_file(dir.file("balctld.log")); }

  /// token "" sends no Authorization header; headers are more, each
  /// "Name: value".
  reply call(const std::string& method, const std::string& path,
             std::optional<std::string> body = std::nullopt,
             const std::string& token = admin_token, std::vector<std::string> headers = {}) {
    cli::http_call c;
    c.method = method;
    c.url = "http://127.0.0.1:" + std::to_string(admin_port) + path;
    c.body = std::move(body);
    c.token = token;
    c.headers = std::move(headers);
    c.timeout_s = 15;
    cli::curl_transport_impl t;
    auto r = t.perform(c);
    REQUIRE(r.what == cli::http_reply::kind::answered);
    reply out;
    out.status = r.status;
    out.raw = r.body;
    out.retry_after = r.retry_after;
    out.body = json::parse(r.body, nullptr, false);
    return out;
  }

  reply get(const std::string& path, const std::string& token = admin_token) {
    return call("GET", path, std::nullopt, token);
  }
  reply post(const std::string& path, const json& body,
             const std::string& token = admin_token) {
    return call("POST", path, body.dump(), token);
  }
  reply patch(const std::string& path, const json& body,
              const std::string& token = admin_token) {
    return call("PATCH", path, body.dump(), token);
  }

  /// Creates an API pool and returns its id.
  std::string make_pool(const std::string& name = "Linux Fleet") {
    auto r = post("/v1/pools", {{"name", name}});
    REQUIRE(r.status == 201);
    return r.body["id"].get<std::string>();
  }

  /// Adds a member; returns the whole 201 body.
  json add_member(const std::string& pool, const std::string& hostname,
                  const std::string& ip = "127.0.0.1") {
    auto r = post("/v1/pools/" + pool + "/members",
                  {{"hostname", hostname},
                   {"linux_family", "debian"},
                   {"allowed_ips", {ip}}});
    REQUIRE(r.status == 201);
    return r.body;
  }

  /// Heartbeats for one member with a key, through balctl-loadgen.
  std::unique_ptr<process> beat(member_id id, const std::string& hostname,
                                const std::string& key, int duration_s,
                                const std::string& tag,
                                std::vector<std::string> extra = {}) {
    json cfg = {{"pools",
                 {{{"name", "x"},
                   {"members", {{{"id", id}, {"hostname", hostname}, {"key", key}}}}}}}};
    auto path = dir.file("beat-" + tag + ".json");
    std::ofstream(path) << cfg.dump();
    std::vector<std::string> argv{LOADGEN_PATH, "--target",
                                  "127.0.0.1:" + std::to_string(udp_port), "--config",
                                  path, "--interval-ms", "100", "--body-every", "5",
                                  "--duration-s", std::to_string(duration_s)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = std::make_unique<process>(argv, dir.file("loadgen-" + tag + ".out"),
                                       dir.file("loadgen-" + tag + ".log"));
    REQUIRE(p->started());
    return p;
  }

  /// Runs the balctl binary against this node; the token comes by
  /// environment (BALCTL_TOKEN) as an operator's script would pass it, and
  /// so do env_extra's variables. Everything it printed is kept in
  /// cli_transcript.
  cli_result cli(std::vector<std::string> args, const std::string& token = admin_token,
                 std::vector<std::pair<std::string, std::string>> env_extra = {}) {
    static int seq = 0;
    auto tag = std::to_string(++seq);
    std::vector<std::string> argv{BALCTL_CLI_PATH, "--server",
                                  "http://127.0.0.1:" + std::to_string(admin_port)};
    argv.insert(argv.end(), args.begin(), args.end());
    setenv("BALCTL_TOKEN", token.c_str(), 1);
    setenv("XDG_CONFIG_HOME", dir.file("xdg").c_str(), 1);
    for (const auto& [k, v] : env_extra) {
      setenv(k.c_str(), v.c_str(), 1);
    }
    process p(argv, dir.file("cli-" + tag + ".out"), dir.file("cli-" + tag + ".err"));
    unsetenv("BALCTL_TOKEN");
    for (const auto& [k, v] : env_extra) {
      unsetenv(k.c_str());
    }
    cli_result r;
    r.exit_code = p.wait_exit(20'000);
    r.out = read_file(dir.file("cli-" + tag + ".out"));
    r.err = read_file(dir.file("cli-" + tag + ".err"));
    cli_transcript += r.out + r.err;
    return r;
  }

  /// One value of a /metrics line, -1 when absent.
  long long metric(const std::string& line_prefix) {
    auto r = get("/metrics");
    REQUIRE(r.status == 200);
    std::istringstream in(r.raw);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(line_prefix + " ", 0) == 0) {
        return std::stoll(line.substr(line_prefix.size() + 1));
      }
    }
    return -1;
  }
};

} // namespace balctl::test
