#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "agent/options.hpp"

using namespace balctl::agent;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

using args = std::vector<std::string>;

agent_options parse_ok(const args& a) {
  auto r = parse_args(a);
  INFO("error: " << r.error);
  REQUIRE(r.ok);
  CHECK(r.error.empty());
  return r.opts;
}

std::string parse_error(const args& a) {
  auto r = parse_args(a);
  CHECK_FALSE(r.ok);
  CHECK_FALSE(r.error.empty());
  return r.error;
}

} // namespace

TEST_CASE("the seed's enrol command line parses", "[agent][options][unit]") {
  auto o = parse_ok({"--enrol", "--key", "K", "--hostname", "H", "--api-base",
                     "https://engine.example:7947"});
  CHECK(o.cmd == command::enrol);
  CHECK(o.enrol.secret == "K");
  CHECK(o.enrol.hostname == "H");
  CHECK(o.enrol.api_base == "https://engine.example:7947");
  // The defaults for everything else.
  CHECK(o.state_file == default_state_file);
  CHECK(o.enrol.transport == "auto");
  CHECK(o.enrol.ca_file.empty());
  CHECK(o.enrol.tls_server_name.empty());
  CHECK(o.enrol.give_up_after_ms == 300'000);
  CHECK(o.log_level == "info");
}

TEST_CASE("the enrol flag may come anywhere and may be spelled --enroll", "[agent][options][unit]") {
  auto spelling = GENERATE(as<std::string>{}, "--enrol", "--enroll");
  auto o = parse_ok({"--key", "K", "--api-base", "http://10.0.0.1:7947", spelling});
  CHECK(o.cmd == command::enrol);
  CHECK(o.enrol.secret == "K");
  CHECK(o.enrol.hostname.empty()); // main.cpp fills it in
}

TEST_CASE("options take --flag=value as well as --flag value", "[agent][options][unit]") {
  auto o = parse_ok({"--enrol", "--key=K=with=equals", "--hostname=H", "--api-base=https://e/",
                     "--state-file=/tmp/s.json", "--ca-file=/etc/ca.pem", "--transport=udp",
                     "--tls-server-name=hb.e", "--enrol-timeout-s=60", "--log-level=debug"});
  CHECK(o.enrol.secret == "K=with=equals");
  CHECK(o.enrol.hostname == "H");
  CHECK(o.enrol.api_base == "https://e/");
  CHECK(o.state_file == "/tmp/s.json");
  CHECK(o.enrol.ca_file == "/etc/ca.pem");
  CHECK(o.enrol.transport == "udp");
  CHECK(o.enrol.tls_server_name == "hb.e");
  CHECK(o.enrol.give_up_after_ms == 60'000);
  CHECK(o.log_level == "debug");
}

TEST_CASE("enrol takes each of its options", "[agent][options][unit]") {
  auto o = parse_ok({"--enrol", "--key", "K", "--api-base", "https://e:7947", "--state-file",
                     "/srv/state.json", "--ca-file", "/ca.pem", "--transport", "tls",
                     "--tls-server-name", "hb", "--enrol-timeout-s", "0"});
  CHECK(o.state_file == "/srv/state.json");
  CHECK(o.enrol.ca_file == "/ca.pem");
  CHECK(o.enrol.transport == "tls");
  CHECK(o.enrol.tls_server_name == "hb");
  CHECK(o.enrol.give_up_after_ms == 0);
}

TEST_CASE("run takes each of its options", "[agent][options][unit]") {
  auto o = parse_ok({"run", "--state-file", "/s.json", "--transport", "tls", "--ca-file", "/ca.pem",
                     "--tls-server-name", "hb.e", "--interval-s", "5", "--detect-interval-s", "15",
                     "--status-interval-s", "120", "--udp-reprobe-s", "600", "--backoff-base-ms",
                     "500", "--backoff-max-ms", "20000", "--connect-timeout-ms", "3000", "--root",
                     "/srv/root", "--mysql-defaults-file", "/root/.my.cnf",
                     "--command-timeout-ms", "1500", "--log-level", "warn"});
  CHECK(o.cmd == command::run);
  CHECK(o.state_file == "/s.json");
  CHECK(o.run.state_file == "/s.json");
  REQUIRE(o.run.transport);
  CHECK(*o.run.transport == transport_mode::tls);
  CHECK(o.run.ca_file == "/ca.pem");
  CHECK(o.run.tls_server_name == "hb.e");
  CHECK(o.run.interval_s == 5);
  CHECK(o.run.detect_interval_s == 15);
  CHECK(o.run.status_interval_s == 120);
  CHECK(o.run.udp_reprobe_s == 600);
  CHECK(o.run.backoff_base_ms == 500);
  CHECK(o.run.backoff_max_ms == 20'000);
  CHECK(o.run.connect_timeout_ms == 3000);
  CHECK(o.run.detect.root == "/srv/root");
  CHECK(o.run.detect.mysql_defaults_file == "/root/.my.cnf");
  CHECK(o.run.detect.command_timeout_ms == 1500);
  CHECK(o.log_level == "warn");
}

TEST_CASE("run without options keeps the defaults", "[agent][options][unit]") {
  auto o = parse_ok({"run"});
  CHECK(o.cmd == command::run);
  CHECK(o.run.state_file == default_state_file);
  CHECK_FALSE(o.run.transport);
  CHECK(o.run.interval_s == 0);
  CHECK(o.run.backoff_base_ms == 1000);
  CHECK(o.run.backoff_max_ms == 60'000);
  CHECK(o.run.detect.root == "/");
  CHECK(o.run.jobs_interval_s == -1); // the engine's poll_s
  CHECK(o.run.jobs_max_running == 2);
}

TEST_CASE("run takes the job loop's options, and 0 turns jobs off", "[agent][options][unit]") {
  auto o = parse_ok({"run", "--jobs-interval-s", "0", "--jobs-max", "4"});
  CHECK(o.run.jobs_interval_s == 0);
  CHECK(o.run.jobs_max_running == 4);
  CHECK(parse_ok({"run", "--jobs-interval-s=30"}).run.jobs_interval_s == 30);
  CHECK(parse_error({"run", "--jobs-max", "0"}) == "--jobs-max: must be an integer 1..16 (got '0')");
  CHECK(parse_error({"detect", "--jobs-interval-s", "5"}).find("--jobs-interval-s") == 0);
}

TEST_CASE("run accepts the edges of each integer range", "[agent][options][unit]") {
  auto [flag, value] = GENERATE(table<std::string, std::string>({
    {"--interval-s", "1"}, {"--interval-s", "60"}, {"--detect-interval-s", "3600"},
    {"--status-interval-s", "86400"}, {"--udp-reprobe-s", "1"}, {"--backoff-base-ms", "10"},
    {"--backoff-max-ms", "3600000"}, {"--connect-timeout-ms", "100"},
    {"--connect-timeout-ms", "600000"}, {"--command-timeout-ms", "10"}}));
  CAPTURE(flag, value);
  parse_ok({"run", flag, value});
}

TEST_CASE("an empty --root means the real root", "[agent][options][unit]") {
  auto o = parse_ok({"run", "--root="});
  CHECK(o.run.detect.root == "/");
}

TEST_CASE("detect takes --root, --mysql-defaults-file and --command-timeout-ms", "[agent][options][unit]") {
  auto o = parse_ok({"detect", "--root", "/fixture", "--mysql-defaults-file", "/my.cnf",
                     "--command-timeout-ms", "200"});
  CHECK(o.cmd == command::detect);
  CHECK(o.run.detect.root == "/fixture");
  CHECK(o.run.detect.mysql_defaults_file == "/my.cnf");
  CHECK(o.run.detect.command_timeout_ms == 200);
}

TEST_CASE("the version and help flags win over the command", "[agent][options][unit]") {
  auto [argv, want] = GENERATE(table<args, command>({
    {{"--version"}, command::version},
    {{"run", "--version"}, command::version},
    {{"--enrol", "--version"}, command::version},
    {{"--help"}, command::help},
    {{"-h"}, command::help},
    {{"detect", "--help"}, command::help},
  }));
  auto o = parse_ok(argv);
  CHECK(o.cmd == want);
}

TEST_CASE("the usage text names every command and the enrol form", "[agent][options][unit]") {
  auto u = usage();
  CHECK_THAT(u, Contains("--enrol --key SECRET"));
  CHECK_THAT(u, Contains("--api-base URL"));
  CHECK_THAT(u, Contains("balctl-agent run"));
  CHECK_THAT(u, Contains("balctl-agent detect"));
  CHECK_THAT(u, Contains("--version"));
}

TEST_CASE("command-line errors name the option and what it needs", "[agent][options][unit]") {
  auto [argv, says] = GENERATE(table<args, std::string>({
    {args{}, "no command"},
    {{"start"}, "unknown command 'start'"},
    {{"run", "detect"}, "unexpected argument 'detect'"},
    {{"run", "--bogus"}, "unknown option --bogus"},
    {{"run", "--bogus=1"}, "unknown option --bogus"},
    {{"run", "-x"}, "unknown option -x"},
    {{"run", "--interval-s"}, "--interval-s: needs a value"},
    {{"--enrol", "--api-base", "https://e", "--key"}, "--key: needs a value"},
    {{"run", "--version=yes"}, "--version: takes no value"},
    {{"--enrol=1", "--key", "K", "--api-base", "https://e"}, "--enrol: takes no value"},
    {{"run", "--interval-s", "0"}, "--interval-s: must be an integer 1..60 (got '0')"},
    {{"run", "--interval-s", "61"}, "--interval-s: must be an integer 1..60 (got '61')"},
    {{"run", "--interval-s", "-1"}, "--interval-s: must be an integer 1..60 (got '-1')"},
    {{"run", "--interval-s", "2s"}, "--interval-s: must be an integer 1..60 (got '2s')"},
    {{"run", "--interval-s="}, "--interval-s: must be an integer 1..60 (got '')"},
    {{"run", "--interval-s", "99999999999999999999"}, "--interval-s: must be an integer"},
    {{"run", "--detect-interval-s", "3601"}, "--detect-interval-s: must be an integer 1..3600"},
    {{"run", "--status-interval-s", "0"}, "--status-interval-s: must be an integer 1..86400"},
    {{"run", "--udp-reprobe-s", "86401"}, "--udp-reprobe-s: must be an integer 1..86400"},
    {{"run", "--backoff-base-ms", "9"}, "--backoff-base-ms: must be an integer 10..3600000"},
    {{"run", "--backoff-max-ms", "3600001"}, "--backoff-max-ms: must be an integer 10..3600000"},
    {{"run", "--connect-timeout-ms", "99"}, "--connect-timeout-ms: must be an integer 100..600000"},
    {{"run", "--command-timeout-ms", "9"}, "--command-timeout-ms: must be an integer 10..600000"},
    {{"--enrol", "--key", "K", "--api-base", "https://e", "--enrol-timeout-s", "86401"},
     "--enrol-timeout-s: must be an integer 0..86400"},
    {{"run", "--transport", "quic"}, "--transport: must be udp, tls or auto (got 'quic')"},
    {{"--enrol", "--key", "K", "--api-base", "https://e", "--transport", "TLS"},
     "--transport: must be udp, tls or auto (got 'TLS')"},
    {{"run", "--log-level", "loud"}, "--log-level: must be debug, info, warn or error (got 'loud')"},
    {{"run", "--state-file="}, "--state-file: must not be empty"},
    {{"--enrol", "--key", "K", "--api-base", "ftp://e"}, "--api-base: must be an http:// or https:// URL (got 'ftp://e')"},
    {{"--enrol", "--key", "K", "--api-base", "engine.example:7947"}, "--api-base: must be an http:// or https:// URL"},
    {{"--enrol", "--api-base", "https://e"}, "--enrol needs --key"},
    {{"--enrol", "--key=", "--api-base", "https://e"}, "--enrol needs --key"},
    {{"--enrol", "--key", "K"}, "--enrol needs --api-base"},
    {{"run", "--enrol", "--key", "K", "--api-base", "https://e"}, "--enrol is a command of its own"},
    {{"run", "--key", "K"}, "--key: not an option of this command"},
    {{"run", "--hostname", "H"}, "--hostname: not an option of this command"},
    {{"run", "--api-base", "https://e"}, "--api-base: not an option of this command"},
    {{"run", "--enrol-timeout-s", "5"}, "--enrol-timeout-s: not an option of this command"},
    {{"--enrol", "--key", "K", "--api-base", "https://e", "--interval-s", "3"},
     "--interval-s: not an option of this command"},
    {{"--enrol", "--key", "K", "--api-base", "https://e", "--root", "/"},
     "--root: not an option of this command"},
    {{"detect", "--state-file", "/s"}, "--state-file: not an option of this command"},
    {{"detect", "--transport", "udp"}, "--transport: not an option of this command"},
    {{"detect", "--interval-s", "2"}, "--interval-s: not an option of this command"},
    {{"run", "--backoff-base-ms", "5000", "--backoff-max-ms", "1000"},
     "--backoff-max-ms: must be at least --backoff-base-ms"},
    {{"run", "--backoff-max-ms", "500"}, "--backoff-max-ms: must be at least --backoff-base-ms"},
  }));
  CAPTURE(argv);
  CHECK_THAT(parse_error(argv), Contains(says));
}

TEST_CASE("an option missing its value before another option is reported as missing its value",
          "[agent][options][unit]") {
  // Regression: "--state-file --transport udp" took "--transport" as the
  // file and then blamed "udp" as an unknown command.
  auto [argv, says] = GENERATE(table<args, std::string>({
    {{"run", "--state-file", "--transport", "udp"}, "--state-file: needs a value"},
    {{"--enrol", "--key", "--hostname", "H", "--api-base", "https://e"}, "--key: needs a value"},
    {{"--enrol", "--key", "K", "--api-base", "--ca-file=/ca.pem"}, "--api-base: needs a value"},
    {{"run", "--interval-s", "--help"}, "--interval-s: needs a value"},
  }));
  CAPTURE(argv);
  auto err = parse_error(argv);
  CHECK_THAT(err, StartsWith(says));
}

TEST_CASE("a value that merely starts with dashes is still taken as a value", "[agent][options][unit]") {
  auto o = parse_ok({"--enrol", "--key", "--not-an-option-secret", "--api-base", "https://e"});
  CHECK(o.enrol.secret == "--not-an-option-secret");
  auto r = parse_ok({"run", "--mysql-defaults-file", "-"});
  CHECK(r.run.detect.mysql_defaults_file == "-");
}
