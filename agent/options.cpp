#include "agent/options.hpp"

#include <cstdlib>
#include <functional>
#include <map>

namespace balctl::agent {

namespace {

bool to_int(const std::string& v, long lo, long hi, long& out) {
  if (v.empty() || v.size() > 12 || v.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  out = std::strtol(v.c_str(), nullptr, 10);
  return out >= lo && out <= hi;
}

} // namespace

std::string usage() {
  return R"(usage:
  balctl-agent --enrol --key SECRET [--hostname HOST] --api-base URL [options]
      Trade the enrolment secret for this member's heartbeat key and save it.
      --state-file F        where to keep it (default /var/lib/balctl-agent/state.json, mode 0600)
      --ca-file F           CA bundle (PEM) that signed the engine's certificate (default: system store)
      --transport M         udp | tls | auto (default auto), kept for `run`
      --tls-server-name N   name the engine's TLS certificate must carry (default: the endpoint's host)
      --enrol-timeout-s N   keep retrying an unreachable engine this long (default 300)
      The hostname is --hostname, else $BALCTL_HOSTNAME, else the OS hostname.
  balctl-agent run [options]
      Heartbeat until SIGTERM.
      --state-file F  --transport M  --ca-file F  --tls-server-name N
      --interval-s N          heartbeat interval (default: what the engine said at enrolment)
      --detect-interval-s N   read stacks and metrics this often (default 30)
      --status-interval-s N   send the full status at least this often (default 60)
      --udp-reprobe-s N       auto on TLS: try UDP again this often (default 300)
      --backoff-base-ms N --backoff-max-ms N   reconnect spacing (default 1000 .. 60000)
      --connect-timeout-ms N  TCP connect + TLS handshake (default 10000)
      --root DIR              read /proc, /usr, ... under DIR (tests; default /)
      --mysql-defaults-file F credentials for the Galera status query (e.g. /root/.my.cnf)
      --command-timeout-ms N  kill a detection command after this long (default 3000)
      --jobs-interval-s N     ask the engine for jobs this often (default: its poll_s; 0 = no jobs)
      --jobs-max N            jobs running at once (default 2; replication one at a time)
      --log-level L           debug | info | warn | error
      $BALCTL_HOSTNAME overrides the enrolled hostname in the status body.
  balctl-agent detect [--root DIR] [--mysql-defaults-file F]
      Print the status body this host would send, and exit.
  balctl-agent --version
)";
}

parse_outcome parse_args(const std::vector<std::string>& args) {
  parse_outcome out;
  auto& o = out.opts;
  bool have_cmd = false;
  bool saw_enrol = false;
  std::vector<std::pair<std::string, std::string>> flags;
  // Split into the command word and --flag value pairs.
  static const std::map<std::string, bool> takes_value = {
    {"--key", true}, {"--hostname", true}, {"--api-base", true},
    {"--state-file", true}, {"--ca-file", true}, {"--transport", true},
    {"--tls-server-name", true}, {"--enrol-timeout-s", true},
    {"--interval-s", true}, {"--detect-interval-s", true},
    {"--status-interval-s", true}, {"--udp-reprobe-s", true},
    {"--backoff-base-ms", true}, {"--backoff-max-ms", true},
    {"--connect-timeout-ms", true}, {"--root", true},
    {"--jobs-interval-s", true}, {"--jobs-max", true},
    {"--mysql-defaults-file", true}, {"--command-timeout-ms", true},
    {"--log-level", true}, {"--enrol", false}, {"--enroll", false},
    {"--version", false}, {"--help", false}, {"-h", false}};
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a.rfind("-", 0) != 0) {
      if (have_cmd) {
        out.error = "unexpected argument '" + a + "'";
        return out;
      }
      if (a == "run") {
        o.cmd = command::run;
      } else if (a == "detect") {
        o.cmd = command::detect;
      } else {
        out.error = "unknown command '" + a + "' (run, detect, --enrol, --version)";
        return out;
      }
      have_cmd = true;
      continue;
    }
    std::string name = a;
    std::string value;
    bool inline_value = false;
    if (auto eq = a.find('='); eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      inline_value = true;
    }
    auto it = takes_value.find(name);
    if (it == takes_value.end()) {
      out.error = "unknown option " + name;
      return out;
    }
    if (it->second && !inline_value) {
      // "--state-file --transport udp" lacks a value: taking "--transport"
      // as the file would blame "udp" (an unknown command) instead.
      auto next_is_option = [&] {
        const auto& n = args[i + 1];
        return takes_value.count(n.substr(0, n.find('='))) != 0;
      };
      if (i + 1 >= args.size() || next_is_option()) {
        out.error = name + ": needs a value";
        return out;
      }
      value = args[++i];
    } else if (!it->second && inline_value) {
      out.error = name + ": takes no value";
      return out;
    }
    flags.emplace_back(name, value);
  }
  for (const auto& [name, value] : flags) {
    if (name == "--enrol" || name == "--enroll") {
      saw_enrol = true;
    } else if (name == "--version") {
      o.cmd = command::version;
      out.ok = true;
      return out;
    } else if (name == "--help" || name == "-h") {
      o.cmd = command::help;
      out.ok = true;
      return out;
    }
  }
  if (saw_enrol) {
    if (have_cmd) {
      out.error = "--enrol is a command of its own; run `balctl-agent run` after it";
      return out;
    }
    o.cmd = command::enrol;
  } else if (!have_cmd) {
    out.error = "no command (run, detect, --enrol, --version)";
    return out;
  }
  auto number = [&](const std::string& name, const std::string& v, long lo, long hi,
                    long& n) {
    if (!to_int(v, lo, hi, n)) {
      out.error = name + ": must be an integer " + std::to_string(lo) + ".." +
                  std::to_string(hi) + " (got '" + v + "')";
      return false;
    }
    return true;
  };
  auto only = [&](const std::string& name, std::initializer_list<command> cmds) {
    for (auto c : cmds) {
      if (o.cmd == c) {
        return true;
      }
    }
    out.error = name + ": not an option of this command";
    return false;
  };
  using c = command;
  for (const auto& [name, value] : flags) {
    long n = 0;
    if (name == "--enrol" || name == "--enroll") {
      continue;
    } else if (name == "--key") {
      if (!only(name, {c::enrol})) return out;
      o.enrol.secret = value;
    } else if (name == "--hostname") {
      if (!only(name, {c::enrol})) return out;
      o.enrol.hostname = value;
    } else if (name == "--api-base") {
      if (!only(name, {c::enrol})) return out;
      if (value.rfind("http://", 0) != 0 && value.rfind("https://", 0) != 0) {
        out.error = "--api-base: must be an http:// or https:// URL (got '" + value + "')";
        return out;
      }
      o.enrol.api_base = value;
    } else if (name == "--state-file") {
      if (!only(name, {c::enrol, c::run})) return out;
      if (value.empty()) {
        out.error = "--state-file: must not be empty";
        return out;
      }
      o.state_file = value;
      o.run.state_file = value;
    } else if (name == "--ca-file") {
      if (!only(name, {c::enrol, c::run})) return out;
      o.enrol.ca_file = value;
      o.run.ca_file = value;
    } else if (name == "--transport") {
      if (!only(name, {c::enrol, c::run})) return out;
      transport_mode m{};
      if (!parse_transport_mode(value, m)) {
        out.error = "--transport: must be udp, tls or auto (got '" + value + "')";
        return out;
      }
      o.enrol.transport = value;
      o.run.transport = m;
    } else if (name == "--tls-server-name") {
      if (!only(name, {c::enrol, c::run})) return out;
      o.enrol.tls_server_name = value;
      o.run.tls_server_name = value;
    } else if (name == "--enrol-timeout-s") {
      if (!only(name, {c::enrol}) || !number(name, value, 0, 86400, n)) return out;
      o.enrol.give_up_after_ms = n * 1000;
    } else if (name == "--interval-s") {
      if (!only(name, {c::run}) || !number(name, value, 1, 60, n)) return out;
      o.run.interval_s = static_cast<int>(n);
    } else if (name == "--detect-interval-s") {
      if (!only(name, {c::run}) || !number(name, value, 1, 3600, n)) return out;
      o.run.detect_interval_s = static_cast<int>(n);
    } else if (name == "--status-interval-s") {
      if (!only(name, {c::run}) || !number(name, value, 1, 86400, n)) return out;
      o.run.status_interval_s = static_cast<int>(n);
    } else if (name == "--udp-reprobe-s") {
      if (!only(name, {c::run}) || !number(name, value, 1, 86400, n)) return out;
      o.run.udp_reprobe_s = static_cast<int>(n);
    } else if (name == "--backoff-base-ms") {
      if (!only(name, {c::run}) || !number(name, value, 10, 3'600'000, n)) return out;
      o.run.backoff_base_ms = n;
    } else if (name == "--backoff-max-ms") {
      if (!only(name, {c::run}) || !number(name, value, 10, 3'600'000, n)) return out;
      o.run.backoff_max_ms = n;
    } else if (name == "--connect-timeout-ms") {
      if (!only(name, {c::run}) || !number(name, value, 100, 600'000, n)) return out;
      o.run.connect_timeout_ms = n;
    } else if (name == "--jobs-interval-s") {
      if (!only(name, {c::run}) || !number(name, value, 0, 3600, n)) return out;
      o.run.jobs_interval_s = static_cast<int>(n);
    } else if (name == "--jobs-max") {
      if (!only(name, {c::run}) || !number(name, value, 1, 16, n)) return out;
      o.run.jobs_max_running = static_cast<int>(n);
    } else if (name == "--root") {
      if (!only(name, {c::run, c::detect})) return out;
      o.run.detect.root = value.empty() ? "/" : value;
    } else if (name == "--mysql-defaults-file") {
      if (!only(name, {c::run, c::detect})) return out;
      o.run.detect.mysql_defaults_file = value;
    } else if (name == "--command-timeout-ms") {
      if (!only(name, {c::run, c::detect}) || !number(name, value, 10, 600'000, n)) return out;
      o.run.detect.command_timeout_ms = static_cast<int>(n);
    } else if (name == "--log-level") {
      if (value != "debug" && value != "info" && value != "warn" && value != "error") {
        out.error = "--log-level: must be debug, info, warn or error (got '" + value + "')";
        return out;
      }
      o.log_level = value;
    }
  }
  if (o.cmd == command::enrol) {
    if (o.enrol.secret.empty()) {
      out.error = "--enrol needs --key SECRET (from the install command)";
      return out;
    }
    if (o.enrol.api_base.empty()) {
      out.error = "--enrol needs --api-base URL";
      return out;
    }
  }
  if (o.run.backoff_max_ms < o.run.backoff_base_ms) {
    out.error = "--backoff-max-ms: must be at least --backoff-base-ms";
    return out;
  }
  out.ok = true;
  return out;
}

} // namespace balctl::agent
