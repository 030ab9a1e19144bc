#pragma once

// balctl-agent's command line (no I/O: main.cpp acts on the result).
//
//   balctl-agent --enrol --key SECRET [--hostname HOST] --api-base URL
//                [--state-file F] [--ca-file F] [--transport udp|tls|auto]
//                [--tls-server-name N] [--enrol-timeout-s N]
//   balctl-agent run [--state-file F] [--transport M] [--ca-file F]
//                [--interval-s N] [--root DIR] ... (see usage())
//   balctl-agent detect [--root DIR] [--mysql-defaults-file F]
//   balctl-agent --version | --help
//
// "--flag value" and "--flag=value" both work. The hostname for --enrol is
// --hostname, else BALCTL_HOSTNAME, else the OS hostname (main.cpp fills
// it in); for run, BALCTL_HOSTNAME overrides the enrolled one.

#include <string>
#include <vector>

#include "agent/enroll.hpp"
#include "agent/runner.hpp"

namespace balctl::agent {

enum class command { run, enrol, detect, version, help };

struct agent_options {
  command cmd = command::help;
  enroll_request enrol;
  std::string state_file = default_state_file;
  runner_options run;
  std::string log_level = "info";
};

struct parse_outcome {
  bool ok = false;
  agent_options opts;
  std::string error; // names the option and what it needs
};

parse_outcome parse_args(const std::vector<std::string>& args);
std::string usage();

} // namespace balctl::agent
