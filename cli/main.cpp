// balctl: the operator CLI of balctld's admin API. Only wiring: argv, the
// environment and the config file go in; cli/run.cpp does the command.

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "cli/client.hpp"
#include "cli/config.hpp"
#include "cli/render.hpp"
#include "cli/run.hpp"

namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::optional<std::string>(v) : std::nullopt;
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace

int main(int argc, char** argv) {
  using namespace balctl::cli;
  std::vector<std::string> args(argv + 1, argv + argc);
  parse_result parsed = parse_args(args);
  if (parsed.what == parse_result::kind::help) {
    std::cout << parsed.message;
    return exit_ok;
  }
  if (parsed.what == parse_result::kind::usage_error) {
    std::cerr << render_usage_error(parsed);
    return exit_usage;
  }
  const invocation& inv = parsed.inv;

  // A DNS provider's secret: from a file or the environment, never argv.
  std::optional<read_result> secret_file;
  if (inv.secret.wanted && inv.secret.file) {
    secret_file = read_text_file(*inv.secret.file);
  }
  secret_result secret = resolve_secret(inv, secret_file, env(dns_secret_env));
  if (!secret.ok()) {
    parse_result usage = parsed;
    usage.message = secret.error;
    std::cerr << render_usage_error(usage);
    return exit_usage;
  }

  environment e{env("BALCTL_SERVER"), env("BALCTL_TOKEN"), env("XDG_CONFIG_HOME"), env("HOME")};
  // An explicit --config must exist; the default file is optional.
  std::string path = inv.global.config_path ? *inv.global.config_path : default_config_path(e);
  std::optional<config_file> file;
  if (!path.empty()) {
    read_result rr = read_text_file(path);
    if (rr.status == read_status::ok) {
      file = config_file{path, std::move(rr.text)};
    } else if (rr.status == read_status::failed || inv.global.config_path) {
      std::cerr << "balctl: " << rr.error << "\n";
      return exit_usage;
    }
  }
  connection_result conn = resolve_connection(inv.global, e, file);
  if (!conn.ok()) {
    std::cerr << "balctl: " << conn.error << "\n";
    return exit_usage;
  }

  curl_global_guard curl;
  if (!curl.ok()) {
    std::cerr << "balctl: curl_global_init failed\n";
    return exit_unexpected;
  }
  curl_transport_impl transport;
  outcome o = run(inv, conn.conn, transport, now_ms(), secret.secret);
  // stderr first: --verbose request lines belong before the answer.
  std::cerr << o.err << std::flush;
  std::cout << o.out << std::flush;
  if (!std::cout) {
    return exit_unexpected; // e.g. stdout closed: the output was lost
  }
  return o.exit_code;
}
