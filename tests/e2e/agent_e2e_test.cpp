// balctl-agent end to end: the real agent binary against the real balctld,
// on loopback ports chosen at run time. Enrolment over the admin API,
// heartbeats over UDP and over TLS, the auto transport falling back when UDP
// is black-holed, sequence numbers across restarts, certificate checks and
// back-off against an engine that is not there.

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "tests/e2e/balctld_node.hpp"
#include "tests/e2e/process.hpp"
#include "tests/support/test_certs.hpp"

using namespace balctl;
using namespace balctl::test;
using json = nlohmann::json;

namespace {

std::string fixture_root(const std::string& name) {
  return std::string(BALCTL_SOURCE_DIR) + "/tests/fixtures/agent/" + name;
}

// A loopback socket of the given type bound to a free port. UDP: held open
// and never read, so datagrams to it vanish without an ICMP error (a
// black hole). TCP: closed at once, so connections are refused.
struct port_holder {
  int fd = -1;
  int port = 0;
  explicit port_holder(int type, bool keep_open) {
    fd = socket(AF_INET, type, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
    if (!keep_open) {
      close(fd);
      fd = -1;
    }
  }
  ~port_holder() {
    if (fd >= 0) {
      close(fd);
    }
  }
};

struct agent_fixture {
  node n;
  test_pki pki;
  std::string pool;
  std::string secret;
  member_id member = 0;
  std::string state_file;

  agent_fixture() {
    pki = make_test_pki(n.dir.file(""));
    REQUIRE(pki.error.empty());
  }

  /// tls_cert: "" = no TLS listener; else the listener's certificate.
  void start_engine(const std::string& tls_cert = "", const std::string& tls_key = "") {
    if (!tls_cert.empty()) {
      n.config_extra["heartbeat_tls"] = {{"listen", "127.0.0.1:0"},
                                         {"cert_file", tls_cert},
                                         {"key_file", tls_key}};
    }
    n.start();
    pool = n.make_pool("Agents");
    auto added = n.add_member(pool, "agent1.e2e.test");
    secret = added["enrollment"]["secret"].get<std::string>();
    member = added["member"]["id"].get<member_id>();
    state_file = n.dir.file("agent-state.json");
  }

  std::string api_base() const { return "http://127.0.0.1:" + std::to_string(n.admin_port); }

  /// Runs `balctl-agent --enrol ...`; returns its exit status.
  int enrol(std::vector<std::string> extra = {}, const std::string& tag = "enrol") {
    std::vector<std::string> argv{BALCTL_AGENT_PATH, "--enrol", "--key", secret,
                                  "--hostname", "agent1.e2e.test", "--api-base",
                                  api_base(), "--state-file", state_file};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process p(argv, n.dir.file(tag + ".out"), n.dir.file(tag + ".log"));
    REQUIRE(p.started());
    return p.wait_exit(30'000);
  }

  std::unique_ptr<process> run(const std::string& tag, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{BALCTL_AGENT_PATH, "run", "--state-file", state_file,
                                  "--interval-s", "1", "--detect-interval-s", "1",
                                  "--root", fixture_root("mariadb_galera")};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = std::make_unique<process>(argv, n.dir.file(tag + ".out"),
                                       n.dir.file(tag + ".log"));
    REQUIRE(p->started());
    return p;
  }

  std::string agent_log(const std::string& tag) { return read_file(n.dir.file(tag + ".log")); }

  json member_view() {
    auto r = n.get("/v1/pools/" + pool + "/members/" + std::to_string(member));
    REQUIRE(r.status == 200);
    return r.body;
  }

  bool healthy() { return member_view()["state"] == "healthy"; }
};

// Every retry_in_ms=N in a log, in order.
std::vector<long long> retry_delays(const std::string& log, const std::string& event) {
  std::vector<long long> out;
  std::istringstream in(log);
  std::string line;
  std::regex re("retry_in_ms=([0-9]+)");
  while (std::getline(in, line)) {
    std::smatch m;
    if (line.find("event=" + event) != std::string::npos && std::regex_search(line, m, re)) {
      out.push_back(std::stoll(m[1]));
    }
  }
  return out;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) {
    ++n;
  }
  return n;
}

} // namespace

TEST_CASE("the agent enrols with a real balctld and its UDP heartbeats make the member "
          "healthy with its stacks",
          "[agent][e2e]") {
  agent_fixture f;
  f.start_engine();
  REQUIRE(f.enrol() == 0);

  // The state file holds the key: the agent's alone.
  struct stat st {};
  REQUIRE(stat(f.state_file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto state = json::parse(read_file(f.state_file));
  CHECK(state["member_id"] == f.member);
  CHECK(state["pool"] == f.pool);
  CHECK(state["hostname"] == "agent1.e2e.test");
  CHECK(state["heartbeat_udp"] == "127.0.0.1:" + std::to_string(f.n.udp_port));
  CHECK(state["key"].get<std::string>().size() == 64);
  CHECK(state["interval_s"] == 2); // the engine's default: failover_delay / 5
  // Neither the secret nor the key is ever printed.
  auto enrol_output = read_file(f.n.dir.file("enrol.out")) + f.agent_log("enrol");
  CHECK(enrol_output.find(f.secret) == std::string::npos);
  CHECK(enrol_output.find(state["key"].get<std::string>()) == std::string::npos);

  auto agent = f.run("udp", {"--transport", "udp"});
  REQUIRE(wait_until([&] {
    auto m = f.member_view();
    return m["state"] == "healthy" && m["stacks"]["galera"]["present"] == true;
  }, 20'000));
  auto m = f.member_view();
  CHECK(m["agent_version"] == "1.0.0");
  CHECK(m["stacks"]["mariadb"]["version"] == "10.11.6");
  CHECK(m["stacks"]["galera"]["cluster_size"] == 3);
  CHECK(m["stacks"]["galera"]["state"] == "Synced");
  CHECK(m["metrics"]["mem_total_bytes"].get<double>() > 0);
  CHECK(agent->stop() == 0);
  CHECK(f.agent_log("udp").find("event=agent_stopped") != std::string::npos);

  SECTION("enrolling again within the engine's retry window gives the same key, never a "
          "second one") {
    auto key = state["key"].get<std::string>();
    CHECK(f.enrol({}, "again") == 0);
    CHECK(json::parse(read_file(f.state_file))["key"] == key);
  }
  SECTION("without --hostname, BALCTL_HOSTNAME names the host (the OS hostname differs)") {
    ::setenv("BALCTL_HOSTNAME", "agent1.e2e.test", 1);
    process p({BALCTL_AGENT_PATH, "--enrol", "--key", f.secret, "--api-base", f.api_base(),
               "--state-file", f.n.dir.file("env-state.json")},
              f.n.dir.file("env.out"), f.n.dir.file("env.log"));
    ::unsetenv("BALCTL_HOSTNAME");
    CHECK(p.wait_exit(30'000) == 0);
    CHECK(json::parse(read_file(f.n.dir.file("env-state.json")))["hostname"] ==
          "agent1.e2e.test");
  }
  SECTION("a wrong secret is refused at once, with the engine's reason") {
    f.secret = std::string(48, '0');
    CHECK(f.enrol({}, "wrong") == 1);
    auto log = read_file(f.n.dir.file("wrong.log"));
    CHECK(log.find("enrolment refused (HTTP 401)") != std::string::npos);
    CHECK(log.find("agent_enrol_retry") == std::string::npos);
  }
}

TEST_CASE("an agent restarted keeps its sequence numbers above every one it sent",
          "[agent][e2e]") {
  agent_fixture f;
  f.start_engine();
  REQUIRE(f.enrol() == 0);
  auto replayed = [&] { return f.n.metric("balctl_heartbeats_rejected_total{reason=\"replayed\"}"); };
  auto accepted = [&] { return f.n.metric("balctl_heartbeats_accepted_total"); };
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    auto before = accepted();
    auto agent = f.run("run" + std::to_string(round), {"--transport", "udp"});
    REQUIRE(wait_until([&] { return accepted() >= before + 2; }, 20'000));
    CHECK(agent->stop() == 0);
  }
  CHECK(replayed() == 0);
  // Each run's first number is above the last run's reservation.
  auto state = json::parse(read_file(f.state_file));
  CHECK(state["seq_reserved"].get<std::uint64_t>() > 0);
}

TEST_CASE("heartbeats reach the engine over TLS with the certificate checked against "
          "the CA file",
          "[agent][e2e][tls]") {
  agent_fixture f;
  const auto& pki = f.pki;
  f.start_engine(pki.server_cert, pki.server_key);
  REQUIRE(f.enrol({"--ca-file", pki.ca_cert, "--transport", "tls"}) == 0);
  auto state = json::parse(read_file(f.state_file));
  REQUIRE(state.contains("heartbeat_tls"));
  CHECK(state["transport"] == "tls");
  CHECK(state["ca_file"] == pki.ca_cert);

  auto agent = f.run("tls");
  REQUIRE(wait_until([&] { return f.healthy(); }, 20'000));
  REQUIRE(wait_until([&] {
    return f.n.metric("balctl_heartbeat_tls_frames_total") >= 3;
  }, 20'000));
  CHECK(f.agent_log("tls").find("event=agent_tls_connected") != std::string::npos);
  CHECK(f.n.metric("balctl_heartbeat_tls_connections_open") == 1);
  CHECK(agent->stop() == 0);
}

TEST_CASE("a TLS stream that stopped acknowledging is replaced once, and heartbeats flow "
          "again when the engine answers",
          "[agent][e2e][tls]") {
  // Regression: the old stream's misses condemned every new one at its
  // first beat, so TLS heartbeats stopped until the agent restarted.
  agent_fixture f;
  const auto& pki = f.pki;
  f.start_engine(pki.server_cert, pki.server_key);
  REQUIRE(f.enrol({"--ca-file", pki.ca_cert, "--transport", "tls"}) == 0);
  auto agent = f.run("stall", {"--backoff-base-ms", "200", "--backoff-max-ms", "400"});
  REQUIRE(wait_until([&] { return f.healthy(); }, 20'000));
  // The engine stalls (its TCP stays open, nothing is answered) for long
  // enough that three acknowledgements go missing.
  REQUIRE(kill(f.n.daemon->pid(), SIGSTOP) == 0);
  REQUIRE(wait_until([&] {
    return f.agent_log("stall").find("event=agent_tls_lost") != std::string::npos;
  }, 20'000));
  REQUIRE(kill(f.n.daemon->pid(), SIGCONT) == 0);
  auto frames = f.n.metric("balctl_heartbeat_tls_frames_total");
  REQUIRE(wait_until([&] {
    return f.n.metric("balctl_heartbeat_tls_frames_total") >= frames + 5;
  }, 30'000));
  auto log = f.agent_log("stall");
  // One stream at the start, one after the stall: no churn.
  CHECK(count_of(log, "event=agent_tls_connected") == 2);
  CHECK(count_of(log, "event=agent_tls_lost") == 1);
  CHECK(wait_until([&] { return f.healthy(); }, 20'000));
  CHECK(agent->stop() == 0);
}

TEST_CASE("auto moves to TLS when UDP is black-holed, and the member stays healthy",
          "[agent][e2e][tls]") {
  agent_fixture f;
  const auto& pki = f.pki;
  // The engine tells agents a UDP endpoint that swallows everything.
  port_holder hole(SOCK_DGRAM, true);
  f.n.admin_extra["heartbeat_endpoint"] = "127.0.0.1:" + std::to_string(hole.port);
  f.start_engine(pki.server_cert, pki.server_key);
  REQUIRE(f.enrol({"--ca-file", pki.ca_cert}) == 0);
  auto agent = f.run("auto");
  REQUIRE(wait_until([&] { return f.healthy(); }, 20'000));
  auto log = f.agent_log("auto");
  CHECK(log.find("event=agent_transport_switched to=tls") != std::string::npos);
  CHECK(log.find("event=agent_tls_connected") != std::string::npos);
  CHECK(f.n.metric("balctl_heartbeat_tls_frames_total") > 0);
  CHECK(agent->stop() == 0);
}

TEST_CASE("a server certificate the agent does not trust is refused with a clear error",
          "[agent][e2e][tls]") {
  agent_fixture f;
  const auto& pki = f.pki;
  f.start_engine(pki.self_signed_cert, pki.self_signed_key);
  REQUIRE(f.enrol({"--ca-file", pki.ca_cert, "--transport", "tls"}) == 0);
  auto agent = f.run("badcert", {"--backoff-base-ms", "100", "--backoff-max-ms", "400"});
  REQUIRE(wait_until([&] {
    return count_of(f.agent_log("badcert"), "event=agent_tls_connect_failed") >= 3;
  }, 20'000));
  auto log = f.agent_log("badcert");
  CHECK(log.find("certificate verify failed") != std::string::npos);
  CHECK(log.find("event=agent_tls_connected") == std::string::npos);
  CHECK(f.member_view()["state"] == "pending");
  CHECK(f.n.metric("balctl_heartbeats_accepted_total") == 0);
  CHECK(agent->stop() == 0);
}

TEST_CASE("an unreachable engine gets retries spaced by back-off, logged, never a spin",
          "[agent][e2e]") {
  temp_dir dir;
  port_holder refused(SOCK_STREAM, false);
  port_holder hole(SOCK_DGRAM, true);
  test_pki pki = make_test_pki(dir.file(""));
  REQUIRE(pki.error.empty());
  // A state file as enrolment would write it, pointing at nothing.
  protocol::key k{};
  k.fill(7);
  json state = {{"member_id", 7},
                {"pool", "p"},
                {"hostname", "agent7.e2e.test"},
                {"key", protocol::key_to_hex(k)},
                {"heartbeat_udp", "127.0.0.1:" + std::to_string(hole.port)},
                {"heartbeat_tls", "127.0.0.1:" + std::to_string(refused.port)},
                {"interval_s", 1},
                {"transport", "tls"},
                {"ca_file", pki.ca_cert}};
  auto path = dir.file("state.json");
  {
    std::ofstream(path) << state.dump();
  }
  REQUIRE(chmod(path.c_str(), 0600) == 0);

  SECTION("the TLS stream reconnects with growing, capped delays") {
    process agent({BALCTL_AGENT_PATH, "run", "--state-file", path, "--backoff-base-ms",
                   "100", "--backoff-max-ms", "800", "--root", fixture_root("none")},
                  dir.file("agent.out"), dir.file("agent.log"));
    REQUIRE(agent.started());
    REQUIRE(wait_until([&] {
      return retry_delays(read_file(dir.file("agent.log")), "agent_tls_connect_failed").size() >= 6;
    }, 30'000));
    auto delays = retry_delays(read_file(dir.file("agent.log")), "agent_tls_connect_failed");
    // Ceilings 100, 200, 400, 800, 800, ...; each delay in [ceiling/2, ceiling].
    long long ceiling = 100;
    for (std::size_t i = 0; i < delays.size(); ++i) {
      CAPTURE(i, delays[i], ceiling);
      CHECK(delays[i] >= ceiling / 2);
      CHECK(delays[i] <= ceiling);
      ceiling = std::min<long long>(ceiling * 2, 800);
    }
    CHECK(read_file(dir.file("agent.log")).find("connection refused") != std::string::npos);
    CHECK(agent.stop() == 0);
  }

  SECTION("the state file must not be readable by others") {
    REQUIRE(chmod(path.c_str(), 0644) == 0);
    process agent({BALCTL_AGENT_PATH, "run", "--state-file", path}, dir.file("agent.out"),
                  dir.file("agent.log"));
    CHECK(agent.wait_exit(10'000) == 1);
    CHECK(read_file(dir.file("agent.log")).find("chmod 600") != std::string::npos);
  }

  SECTION("enrolment against an engine that is not there retries, then gives up") {
    process enrol({BALCTL_AGENT_PATH, "--enrol", "--key", "0123456789abcdef", "--hostname",
                   "agent7.e2e.test", "--api-base",
                   "http://127.0.0.1:" + std::to_string(refused.port), "--state-file",
                   dir.file("new-state.json"), "--enrol-timeout-s", "3"},
                  dir.file("enrol.out"), dir.file("enrol.log"));
    CHECK(enrol.wait_exit(30'000) == 1);
    auto log = read_file(dir.file("enrol.log"));
    CHECK(retry_delays(log, "agent_enrol_retry").size() >= 1);
    CHECK(log.find("gave up") != std::string::npos);
    CHECK(log.find("0123456789abcdef") == std::string::npos);
    struct stat st {};
    CHECK(stat(dir.file("new-state.json").c_str(), &st) != 0);
  }
}

TEST_CASE("the engine serves the installer and the agent binary without a token, and "
          "install commands point at it",
          "[agent][e2e]") {
  node n;
  auto dist = n.dir.file("dist");
  REQUIRE(mkdir(dist.c_str(), 0755) == 0);
  auto installer = read_file(std::string(BALCTL_SOURCE_DIR) + "/deploy/install-agent.sh");
  REQUIRE(!installer.empty());
  std::ofstream(dist + "/install-agent.sh") << installer;
  std::ofstream(dist + "/balctl-agent", std::ios::binary) << read_file(BALCTL_AGENT_PATH);
  n.admin_extra["agent_dist_dir"] = dist;
  n.start();
  auto script = n.get("/agent/install-agent.sh", "");
  CHECK(script.status == 200);
  CHECK(script.raw == installer);
  auto binary = n.get("/agent/balctl-agent", "");
  CHECK(binary.status == 200);
  CHECK(binary.raw.size() == read_file(BALCTL_AGENT_PATH).size());
  CHECK(binary.raw.substr(0, 4) == "\x7f" "ELF");
  // Two names only: nothing else under (or above) the directory.
  CHECK(n.get("/agent/state.json", "").status == 404);
  CHECK(n.get("/agent/..%2Fbalctld.json", "").status == 404);
  CHECK(n.call("POST", "/agent/balctl-agent", "{}", "").status == 405);

  auto pool = n.make_pool("Dist");
  auto added = n.add_member(pool, "dist1.e2e.test");
  auto cmd = added["enrollment"]["install_command"].get<std::string>();
  CHECK(cmd.find("curl -fsSL 'http://127.0.0.1:" + std::to_string(n.admin_port) +
                 "/agent/install-agent.sh' | sudo bash -s -- --enrol --key '") !=
        std::string::npos);
}

TEST_CASE("with agent_binary_url set, install commands fetch the agent from there",
          "[agent][e2e]") {
  node n;
  n.admin_extra["agent_binary_url"] = "https://cdn.example.test/balctl-agent-rhel9";
  n.start();
  auto pool = n.make_pool("Cdn");
  auto added = n.add_member(pool, "cdn1.e2e.test");
  auto cmd = added["enrollment"]["install_command"].get<std::string>();
  CHECK(cmd.find("--binary 'https://cdn.example.test/balctl-agent-rhel9'") != std::string::npos);
}

TEST_CASE("without agent_dist_dir the agent files are not served", "[agent][e2e]") {
  node n;
  n.start();
  auto r = n.get("/agent/install-agent.sh", "");
  CHECK(r.status == 404);
  CHECK(r.raw.find("agent_dist_dir") != std::string::npos);
}

TEST_CASE("steady-state heartbeats are bare 48-byte frames, the status body goes when a "
          "stack appears",
          "[agent][e2e]") {
  namespace fs = std::filesystem;
  temp_dir dir;
  // A fake host whose stacks the test changes while the agent runs.
  auto root = dir.file("root");
  fs::copy(fixture_root("none"), root, fs::copy_options::recursive);
  // The "engine" is a UDP socket the test reads.
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t alen = sizeof a;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &alen) == 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  protocol::key k{};
  k.fill(9);
  json state = {{"member_id", 9},
                {"hostname", "wire.e2e.test"},
                {"key", protocol::key_to_hex(k)},
                {"heartbeat_udp", "127.0.0.1:" + std::to_string(ntohs(a.sin_port))},
                {"interval_s", 1},
                {"transport", "udp"}};
  auto path = dir.file("state.json");
  std::ofstream(path) << state.dump();
  REQUIRE(chmod(path.c_str(), 0600) == 0);
  process agent({BALCTL_AGENT_PATH, "run", "--state-file", path, "--root", root,
                 "--detect-interval-s", "1", "--status-interval-s", "3600"},
                dir.file("agent.out"), dir.file("agent.log"));
  REQUIRE(agent.started());

  std::uint64_t last_seq = 0;
  // Reads one heartbeat; checks it is authentic and in order.
  auto next = [&]() -> std::string {
    std::uint8_t buf[2048];
    auto n = recv(fd, buf, sizeof buf, 0);
    REQUIRE(n > 0);
    auto d = protocol::decode(buf, static_cast<std::size_t>(n));
    REQUIRE(d.ok);
    CHECK(protocol::verify_tag(d.view, k));
    CHECK(d.view.hdr.member == 9);
    CHECK(d.view.hdr.seq > last_seq);
    CHECK((d.view.hdr.flags & protocol::flag_ack_requested) == 0); // udp never asks
    last_seq = d.view.hdr.seq;
    if (d.view.body.empty()) {
      CHECK(n == 48);
    }
    return std::string(d.view.body);
  };
  // The status goes once detection has run, then only bare beats.
  std::string body;
  for (int i = 0; i < 10 && body.empty(); ++i) {
    body = next();
  }
  REQUIRE_FALSE(body.empty());
  auto status = json::parse(body);
  CHECK(status["hostname"] == "wire.e2e.test");
  CHECK(status["agent_version"] == "1.0.0");
  CHECK_FALSE(status.contains("stacks"));
  for (int i = 0; i < 3; ++i) {
    CHECK(next().empty());
  }
  // cPanel appears: the next detection sends the status again, with it.
  fs::create_directories(root + "/usr/local/cpanel");
  std::ofstream(root + "/usr/local/cpanel/version") << "11.118.0.5\n";
  std::string changed;
  for (int i = 0; i < 10 && changed.empty(); ++i) {
    changed = next();
  }
  REQUIRE_FALSE(changed.empty());
  CHECK(json::parse(changed)["stacks"]["cpanel"]["version"] == "118.0.5");
  CHECK(next().empty());
  CHECK(agent.stop() == 0);
  close(fd);
}
