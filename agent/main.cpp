// balctl-agent: enrols a member and heartbeats to balctld (agent/options.hpp
// for the command line, docs/protocol.md for what goes on the wire).

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "agent/detect.hpp"
#include "agent/enroll.hpp"
#include "agent/options.hpp"
#include "agent/runner.hpp"
#include "agent/version.hpp"
#include "engine/log.hpp"
#include "transport/protocol.hpp"

using namespace balctl;
using namespace balctl::agent;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

std::string os_hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) {
    return {};
  }
  return buf;
}

int do_enrol(agent_options& o) {
  auto& req = o.enrol;
  if (req.hostname.empty()) {
    req.hostname = env("BALCTL_HOSTNAME");
  }
  if (req.hostname.empty()) {
    req.hostname = os_hostname();
  }
  if (req.hostname.empty()) {
    std::fprintf(stderr, "balctl-agent: --enrol: no hostname (pass --hostname or set BALCTL_HOSTNAME)\n");
    return 2;
  }
  cli::curl_global_guard curl;
  if (!curl.ok()) {
    std::fprintf(stderr, "balctl-agent: curl_global_init failed\n");
    return 1;
  }
  cli::curl_transport_impl http;
  auto r = enroll(req, http, [](std::int64_t ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  });
  if (!r.ok) {
    std::fprintf(stderr, "balctl-agent: enrolment failed: %s\n", r.error.c_str());
    return 1;
  }
  // Keep the sequence reservation of an earlier enrolment of this file: the
  // engine's member may be the same one (re-enrolment keeps its id).
  std::string ignored;
  if (auto old = load_state(o.state_file, &ignored); old && old->member == r.state.member) {
    r.state.seq_reserved = old->seq_reserved;
  }
  auto err = save_state(o.state_file, r.state);
  if (!err.empty()) {
    std::fprintf(stderr, "balctl-agent: enrolled, but %s\n", err.c_str());
    return 1;
  }
  log::info("agent_enrolled", {{"member_id", std::to_string(r.state.member)},
                               {"pool", r.state.pool},
                               {"hostname", r.state.hostname},
                               {"heartbeat_udp", r.state.heartbeat_udp},
                               {"heartbeat_tls", r.state.heartbeat_tls},
                               {"state_file", o.state_file}});
  std::printf("enrolled as member %llu in pool %s; start it with: balctl-agent run --state-file %s\n",
              static_cast<unsigned long long>(r.state.member), r.state.pool.c_str(),
              o.state_file.c_str());
  return 0;
}

int do_detect(const agent_options& o) {
  metrics_reader m(o.run.detect);
  m.sample();
  auto stacks = detect_stacks(o.run.detect);
  member_status s;
  s.hostname = env("BALCTL_HOSTNAME").empty() ? os_hostname() : env("BALCTL_HOSTNAME");
  s.agent_version = version;
  fill_status(s, stacks, m.sample(), count_jobs(o.run.detect));
  std::printf("%s\n", protocol::status_to_json(s).c_str());
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto p = parse_args(args);
  if (!p.ok) {
    std::fprintf(stderr, "balctl-agent: %s\n\n%s", p.error.c_str(), usage().c_str());
    return 2;
  }
  auto& o = p.opts;
  log::level lvl = log::level::info;
  log::parse_level(o.log_level, lvl);
  log::set_level(lvl);
  switch (o.cmd) {
    case command::version:
      std::printf("balctl-agent %s\n", version);
      return 0;
    case command::help:
      std::printf("%s", usage().c_str());
      return 0;
    case command::enrol:
      return do_enrol(o);
    case command::detect:
      return do_detect(o);
    case command::run: {
      o.run.hostname_override = env("BALCTL_HOSTNAME");
      // Before any thread: the job loop's threads use libcurl.
      cli::curl_global_guard curl;
      if (!curl.ok()) {
        std::fprintf(stderr, "balctl-agent: curl_global_init failed\n");
        return 1;
      }
      return run_agent(o.run);
    }
  }
  return 2;
}
