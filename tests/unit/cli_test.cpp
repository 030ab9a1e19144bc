#include "cli/args.hpp"
#include "cli/client.hpp"
#include "cli/config.hpp"
#include "cli/render.hpp"
#include "cli/run.hpp"

#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

using namespace balctl::cli;
using json = nlohmann::json;

namespace {

/// Splits on single spaces; good enough for these argument lines.
std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string w;
  while (in >> w) {
    out.push_back(w);
  }
  return out;
}

parse_result parse(const std::string& line) { return parse_args(words(line)); }

/// Answers every call with one canned reply and remembers the call.
class fake_transport final : public http_transport {
public:
  explicit fake_transport(http_reply reply) : reply_(std::move(reply)) {}
  http_reply perform(const http_call& call) override {
    calls.push_back(call);
    return reply_;
  }
  std::vector<http_call> calls;

private:
  http_reply reply_;
};

http_reply answered(long status, std::string body, std::string retry_after = "") {
  http_reply r;
  r.what = http_reply::kind::answered;
  r.status = status;
  r.body = std::move(body);
  r.retry_after = std::move(retry_after);
  return r;
}

http_reply unreachable(std::string message) {
  http_reply r;
  r.what = http_reply::kind::unreachable;
  r.error = std::move(message);
  return r;
}

std::string api_error(int status, const std::string& code, const std::string& field,
                      const std::string& message) {
  json f = field.empty() ? json(nullptr) : json(field);
  return json{{"error", {{"status", status}, {"code", code}, {"field", f}, {"message", message}}}}
    .dump();
}

const std::string token = "tok-9f2c41d7e0b3a6";

connection test_connection(bool verbose = false) {
  connection c;
  c.server = "http://127.0.0.1:7947";
  c.token = token;
  c.server_from = "flag";
  c.token_from = "env";
  c.verbose = verbose;
  return c;
}

invocation parsed(const std::string& line) {
  parse_result r = parse(line);
  REQUIRE(r.what == parse_result::kind::run);
  return r.inv;
}

const std::int64_t now = 1'700'000'000'000;

} // namespace

TEST_CASE("each command parses to its method, path and body", "[cli][unit]") {
  auto [line, method, path, body] = GENERATE(table<std::string, std::string, std::string,
                                                   std::string>({
    {"status", "GET", "/v1/status", ""},
    {"status linux-fleet", "GET", "/v1/pools/linux-fleet/overview", ""},
    {"status linux-fleet --tiles-limit 20 --tiles-offset 40", "GET",
     "/v1/pools/linux-fleet/overview?tiles_offset=40&tiles_limit=20", ""},
    {"pool create Fleet", "POST", "/v1/pools", R"({"name":"Fleet"})"},
    {"pool create Fleet --preset haproxy --id fl-1", "POST", "/v1/pools",
     R"({"name":"Fleet","preset":"haproxy","id":"fl-1"})"},
    {"pool list", "GET", "/v1/pools", ""},
    {"pool show linux-fleet", "GET", "/v1/pools/linux-fleet", ""},
    {"pool rename linux-fleet Renamed", "PATCH", "/v1/pools/linux-fleet",
     R"({"name":"Renamed"})"},
    {"pool delete linux-fleet", "DELETE", "/v1/pools/linux-fleet", ""},
    {"pool delete linux-fleet --force", "DELETE", "/v1/pools/linux-fleet?force=true", ""},
    {"pool settings linux-fleet", "GET", "/v1/pools/linux-fleet/settings", ""},
    {"pool settings linux-fleet --failover-delay-s 45 --failback automatic", "PATCH",
     "/v1/pools/linux-fleet/settings", R"({"failover_delay_s":45,"failback":"automatic"})"},
    {"pool settings p --failover-hostname www.example.test --failback-stable-s 600 "
     "--mass-silence-share 0.25 --mass-silence-min-members 4 --mass-silence-window-s 60",
     "PATCH", "/v1/pools/p/settings",
     R"({"failover_hostname":"www.example.test","failback_stable_s":600,
         "mass_silence_share":0.25,"mass_silence_min_members":4,"mass_silence_window_s":60})"},
    {"member add p --hostname n9.test --linux-family rhel --allowed-ip 51.245.11.2", "POST",
     "/v1/pools/p/members",
     R"({"hostname":"n9.test","linux_family":"rhel","allowed_ips":["51.245.11.2"]})"},
    {"member add p --hostname n9.test --linux-family debian --allowed-ip 10.0.0.1 --name Node9",
     "POST", "/v1/pools/p/members",
     R"({"hostname":"n9.test","linux_family":"debian","allowed_ips":["10.0.0.1"],
         "name":"Node9"})"},
    {"member list p", "GET", "/v1/pools/p/members", ""},
    {"member list p --limit 10 --offset 20", "GET", "/v1/pools/p/members?offset=20&limit=10", ""},
    {"member show p 7", "GET", "/v1/pools/p/members/7", ""},
    {"member remove p 7", "DELETE", "/v1/pools/p/members/7", ""},
    {"member reenrol p 7", "POST", "/v1/pools/p/members/7/enrollment", ""},
    {"member remove p 7 --force", "DELETE", "/v1/pools/p/members/7?force=true", ""},
    {"log p", "GET", "/v1/pools/p/activity", ""},
    {"log p --limit 5 --before 12", "GET", "/v1/pools/p/activity?limit=5&before=12", ""},
  }));
  CAPTURE(line);
  invocation inv = parsed(line);
  CHECK(inv.request.method == method);
  CHECK(inv.request.path == path);
  if (body.empty()) {
    CHECK_FALSE(inv.request.body.has_value());
  } else {
    REQUIRE(inv.request.body.has_value());
    CHECK(*inv.request.body == json::parse(body));
  }
}

TEST_CASE("member add joins repeated and comma-separated --allowed-ip into one list",
          "[cli][unit]") {
  invocation inv = parsed("member add p --hostname h.test --linux-family rhel "
                          "--allowed-ip 1.1.1.1,2.2.2.2 --allowed-ip=3.3.3.3");
  CHECK((*inv.request.body)["allowed_ips"] == json({"1.1.1.1", "2.2.2.2", "3.3.3.3"}));
}

TEST_CASE("a pool argument is percent-encoded as one path segment", "[cli][unit]") {
  invocation inv = parse_args({"pool", "show", "a b/c"}).inv;
  CHECK(inv.request.path == "/v1/pools/a%20b%2Fc");
  CHECK(url_encode("A-z.0_9~") == "A-z.0_9~");
}

TEST_CASE("global options are accepted before and after the command", "[cli][unit]") {
  invocation a = parsed("--server http://h:1 --json pool list");
  invocation b = parsed("pool list --json --server=http://h:1");
  for (const auto& inv : {a, b}) {
    CHECK(inv.global.server == std::optional<std::string>("http://h:1"));
    CHECK(inv.global.json);
    CHECK(inv.request.path == "/v1/pools");
  }
  invocation c = parsed("--token T --config /tmp/c.json --timeout-s 5 --cacert ca.pem "
                        "--insecure --verbose status");
  CHECK(c.global.token == std::optional<std::string>("T"));
  CHECK(c.global.config_path == std::optional<std::string>("/tmp/c.json"));
  CHECK(c.global.timeout_s == std::optional<long>(5));
  CHECK(c.global.cacert == std::optional<std::string>("ca.pem"));
  CHECK(c.global.insecure);
  CHECK(c.global.verbose);
}

TEST_CASE("missing arguments, unknown commands and bad flags are usage errors",
          "[cli][unit]") {
  auto [line, needle] = GENERATE(table<std::string, std::string>({
    {"", "missing command"},
    {"frobnicate", "unknown command 'frobnicate'"},
    {"pool", "missing pool subcommand"},
    {"pool explode", "unknown command 'pool explode'"},
    {"pool create", "missing argument NAME"},
    {"pool rename p", "missing argument NEWNAME"},
    {"pool show p extra", "unexpected argument 'extra'"},
    {"pool list --bogus", "unknown flag --bogus"},
    {"pool list --force", "unknown flag --force for 'pool list'"},
    {"pool create F --preset nginx", "--preset = nginx: must be generic-linux or haproxy"},
    {"pool create F --preset", "--preset needs a value"},
    {"pool create F --preset a --preset b", "--preset given more than once"},
    {"pool delete p --force=yes", "--force takes no value"},
    {"pool settings p --failover-delay-s soon", "--failover-delay-s = soon: must be an integer"},
    {"pool settings p --failback sometimes", "must be manual or automatic"},
    {"pool settings p --mass-silence-share half", "must be a number"},
    {"member add p --linux-family rhel --allowed-ip 1.1.1.1", "missing --hostname"},
    {"member add p --hostname h --allowed-ip 1.1.1.1", "missing --linux-family"},
    {"member add p --hostname h --linux-family rhel", "missing --allowed-ip"},
    {"member add p --hostname h --linux-family arch --allowed-ip 1.1.1.1",
     "must be rhel or debian"},
    {"member add p --hostname h --linux-family rhel --allowed-ip 1.1.1.1,,2.2.2.2",
     "empty address"},
    {"member show p", "missing argument ID"},
    {"member show p seven", "ID = seven: must be an integer"},
    {"member remove p 0", "must be a positive member id"},
    {"log p --limit many", "--limit = many: must be an integer"},
    {"status --tiles-limit 5", "need a POOL"},
    {"status --timeout-s 0", "--timeout-s = 0: must be between 1 and 86400"},
  }));
  CAPTURE(line);
  parse_result r = parse(line);
  REQUIRE(r.what == parse_result::kind::usage_error);
  CHECK_THAT(r.message, Catch::Contains(needle));
  CHECK_THAT(r.usage, Catch::StartsWith("usage: balctl "));
  CHECK_THAT(render_usage_error(r), Catch::StartsWith("balctl: " + r.message + "\nusage: "));
}

TEST_CASE("help is returned for the whole CLI, a group and a command without running",
          "[cli][unit]") {
  parse_result all = parse("--help");
  REQUIRE(all.what == parse_result::kind::help);
  CHECK_THAT(all.message, Catch::Contains("Exit codes"));
  parse_result group = parse("member -h");
  REQUIRE(group.what == parse_result::kind::help);
  CHECK_THAT(group.message, Catch::Contains("member reenrol"));
  // Help wins over what else is wrong on the line.
  parse_result cmd = parse("pool create --help --bogus");
  REQUIRE(cmd.what == parse_result::kind::help);
  CHECK_THAT(cmd.message, Catch::StartsWith("usage: balctl pool create NAME"));
  CHECK_THAT(cmd.message, Catch::Contains("--preset"));
}

TEST_CASE("the server comes from the flag, else the environment, else the file, else the "
          "default",
          "[cli][unit]") {
  global_options flags;
  environment env;
  std::optional<config_file> file;
  std::string expect_server = default_server;
  std::string expect_from = "default";

  SECTION("nothing set gives the default") {}
  SECTION("the file beats the default") {
    file = config_file{"/c.json", R"({"server":"http://file:1"})"};
    expect_server = "http://file:1", expect_from = "file";
  }
  SECTION("the environment beats the file") {
    file = config_file{"/c.json", R"({"server":"http://file:1"})"};
    env.balctl_server = "http://env:2";
    expect_server = "http://env:2", expect_from = "env";
  }
  SECTION("the flag beats the environment and the file") {
    file = config_file{"/c.json", R"({"server":"http://file:1"})"};
    env.balctl_server = "http://env:2";
    flags.server = "https://flag:3/";
    expect_server = "https://flag:3", expect_from = "flag"; // trailing '/' dropped
  }
  SECTION("an empty environment value counts as unset") {
    file = config_file{"/c.json", R"({"server":"http://file:1"})"};
    env.balctl_server = "";
    expect_server = "http://file:1", expect_from = "file";
  }
  connection_result r = resolve_connection(flags, env, file);
  REQUIRE(r.ok());
  CHECK(r.conn.server == expect_server);
  CHECK(r.conn.server_from == expect_from);
}

TEST_CASE("the token comes from the flag, else the environment, else the file, else none",
          "[cli][unit]") {
  global_options flags;
  environment env;
  std::optional<config_file> file;
  std::string expect_token;
  std::string expect_from = "none";

  SECTION("nothing set sends no token") {}
  SECTION("the file gives the token") {
    file = config_file{"/c.json", R"({"token":"file-tok"})"};
    expect_token = "file-tok", expect_from = "file";
  }
  SECTION("the environment beats the file") {
    file = config_file{"/c.json", R"({"token":"file-tok"})"};
    env.balctl_token = "env-tok";
    expect_token = "env-tok", expect_from = "env";
  }
  SECTION("the flag beats the environment and the file") {
    file = config_file{"/c.json", R"({"token":"file-tok"})"};
    env.balctl_token = "env-tok";
    flags.token = "flag-tok";
    expect_token = "flag-tok", expect_from = "flag";
  }
  connection_result r = resolve_connection(flags, env, file);
  REQUIRE(r.ok());
  CHECK(r.conn.token == expect_token);
  CHECK(r.conn.token_from == expect_from);
}

TEST_CASE("a bad config file, server or token is rejected without echoing the token",
          "[cli][unit]") {
  global_options flags;
  environment env;
  SECTION("a config file that is not JSON names the file") {
    auto r = resolve_connection(flags, env, config_file{"/etc/c.json", "server=x"});
    CHECK_THAT(r.error, Catch::Contains("/etc/c.json") && Catch::Contains("not a JSON object"));
  }
  SECTION("an unknown key in the config file is an error, not ignored") {
    auto r = resolve_connection(flags, env, config_file{"/c.json", R"({"sever":"http://x"})"});
    CHECK_THAT(r.error, Catch::Contains("unknown key \"sever\""));
  }
  SECTION("a server without http:// or https:// is rejected") {
    flags.server = "127.0.0.1:7947";
    auto r = resolve_connection(flags, env, std::nullopt);
    CHECK_THAT(r.error, Catch::Contains("must start with http:// or https://"));
  }
  SECTION("a token with a line break is rejected and not echoed") {
    env.balctl_token = "abc\r\nX-Evil: 1";
    auto r = resolve_connection(flags, env, std::nullopt);
    CHECK_THAT(r.error, Catch::Contains("token from environment"));
    CHECK_THAT(r.error, !Catch::Contains("abc"));
  }
}

TEST_CASE("the default config path follows XDG_CONFIG_HOME, then HOME", "[cli][unit]") {
  environment env;
  CHECK(default_config_path(env).empty());
  env.home = "/home/op";
  CHECK(default_config_path(env) == "/home/op/.config/balctl/config.json");
  env.xdg_config_home = "/xdg";
  CHECK(default_config_path(env) == "/xdg/balctl/config.json");
}

TEST_CASE("each HTTP status maps to the exit code in the spec", "[cli][unit]") {
  auto [status, code] = GENERATE(table<long, int>({
    {200, 0}, {201, 0}, {204, 0}, {400, 6}, {401, 4}, {403, 4}, {404, 5}, {409, 6},
    {413, 6}, {422, 6}, {429, 6}, {500, 1}, {503, 1}, {405, 1}, {302, 1},
  }));
  CAPTURE(status);
  CHECK(exit_code_for_status(status) == code);

  // And the same through run(), with the API's error body on non-2xx
  // ("pool delete" is the command whose success may have no body).
  std::string body =
    status == 204 ? "" : status < 300 ? "{}" : api_error(int(status), "x", "", "m");
  fake_transport t(answered(status, body));
  outcome o = run(parsed("pool delete p"), test_connection(), t, now);
  CHECK(o.exit_code == code);
}

TEST_CASE("a server that cannot be reached exits 3 with curl's message", "[cli][unit]") {
  fake_transport t(unreachable("Failed to connect to 127.0.0.1 port 7947: Connection refused"));
  outcome o = run(parsed("pool list"), test_connection(), t, now);
  CHECK(o.exit_code == exit_unreachable);
  CHECK(o.out.empty());
  CHECK(o.err ==
        "balctl: cannot reach http://127.0.0.1:7947: Failed to connect to 127.0.0.1 port "
        "7947: Connection refused\n");
}

TEST_CASE("the call carries method, URL, JSON body and the token", "[cli][unit]") {
  fake_transport t(answered(201, R"({"id":"fl","name":"Fleet"})"));
  outcome o = run(parsed("pool create Fleet --preset haproxy"), test_connection(), t, now);
  REQUIRE(t.calls.size() == 1);
  const http_call& c = t.calls[0];
  CHECK(c.method == "POST");
  CHECK(c.url == "http://127.0.0.1:7947/v1/pools");
  REQUIRE(c.body.has_value());
  CHECK(json::parse(*c.body) == json({{"name", "Fleet"}, {"preset", "haproxy"}}));
  CHECK(c.token == token);
  CHECK(o.exit_code == 0);
  CHECK_THAT(o.out, Catch::StartsWith("created pool fl\n"));
}

TEST_CASE("table columns are as wide as their widest cell and aligned", "[cli][unit]") {
  text_table t{{"ID", "NAME", "STATE"},
          {{"1", "Node9", "healthy"}, {"12", "a-much-longer-name", "down"}, {"3", "Nöde", ""}},
          {true}};
  CHECK(render_table(t) == "ID  NAME                STATE\n"
                           " 1  Node9               healthy\n"
                           "12  a-much-longer-name  down\n"
                           " 3  Nöde\n");
}

TEST_CASE("control characters from the server cannot reach the terminal", "[cli][unit]") {
  text_table t{{"NAME"}, {{"evil\x1b[2Jname"}}, {}};
  CHECK(render_table(t) == "NAME\nevil?[2Jname\n");
}

TEST_CASE("relative ages read as seconds, minutes, hours or days ago", "[cli][unit]") {
  CHECK(relative_age(now - 9'000, now) == "9s ago");
  CHECK(relative_age(now, now) == "0s ago");
  CHECK(relative_age(now - 125'000, now) == "2m ago");
  CHECK(relative_age(now - 3 * 3'600'000, now) == "3h ago");
  CHECK(relative_age(now - 2 * 86'400'000LL, now) == "2d ago");
  CHECK(relative_age(now + 4'000, now) == "in 4s");
  CHECK(relative_age(std::nullopt, now) == "never");
}

TEST_CASE("an API error body renders as message, code and field", "[cli][unit]") {
  CHECK(render_api_error(422,
                         api_error(422, "invalid_field", "failover_delay_s",
                                   "failover_delay_s = 5: must be between 10 and 120"),
                         "") ==
        "balctl: failover_delay_s = 5: must be between 10 and 120 (invalid_field, field "
        "failover_delay_s)\n");
  CHECK(render_api_error(404, api_error(404, "pool_not_found", "", "no pool p"), "") ==
        "balctl: no pool p (pool_not_found)\n");
  CHECK(render_api_error(429, api_error(429, "rate_limited", "", "slow down"), "5") ==
        "balctl: slow down (rate_limited)\nbalctl: retry after 5 s\n");
  CHECK(render_api_error(502, "<html>Bad Gateway</html>", "") ==
        "balctl: HTTP 502 without an API error body: <html>Bad Gateway</html>\n");
}

TEST_CASE("an error answer goes to stderr, and with --json its body to stdout too",
          "[cli][unit]") {
  std::string body = api_error(409, "failover_in_flight", "", "a fail-over is running");
  fake_transport t(answered(409, body));
  outcome human = run(parsed("pool delete p"), test_connection(), t, now);
  CHECK(human.exit_code == exit_rejected);
  CHECK(human.out.empty());
  CHECK(human.err == "balctl: a fail-over is running (failover_in_flight)\n");
  outcome scripted = run(parsed("pool delete p --json"), test_connection(), t, now);
  CHECK(scripted.exit_code == exit_rejected);
  CHECK(json::parse(scripted.out) == json::parse(body));
}

TEST_CASE("with --json the server's body is printed pretty in its key order", "[cli][unit]") {
  fake_transport t(answered(200, R"({"pools":[{"name":"B","id":"b"}]})"));
  outcome o = run(parsed("pool list --json"), test_connection(), t, now);
  CHECK(o.exit_code == 0);
  CHECK(o.out == "{\n  \"pools\": [\n    {\n      \"name\": \"B\",\n      \"id\": \"b\"\n"
                 "    }\n  ]\n}\n");
}

TEST_CASE("a success answer whose body is not JSON exits 1", "[cli][unit]") {
  fake_transport t(answered(200, "<html>hello</html>"));
  outcome o = run(parsed("pool list"), test_connection(), t, now);
  CHECK(o.exit_code == exit_unexpected);
  CHECK_THAT(o.err, Catch::Contains("not JSON"));
}

TEST_CASE("pool list renders one aligned row per pool", "[cli][unit]") {
  fake_transport t(answered(200, R"({"pools":[
    {"id":"linux-fleet","name":"Linux Fleet","preset":"generic-linux","members":5,
     "agents_healthy":5,"active_member":1,"holding":false},
    {"id":"h","name":"H","preset":"haproxy","members":12,"agents_healthy":11,
     "active_member":null,"holding":true}]})"));
  outcome o = run(parsed("pool list"), test_connection(), t, now);
  CHECK(o.out == "ID           NAME         PRESET         MEMBERS  HEALTHY  ACTIVE  HOLDING\n"
                 "linux-fleet  Linux Fleet  generic-linux        5        5       1  no\n"
                 "h            H            haproxy             12       11       -  yes\n");
}

TEST_CASE("member add prints the install command and says the secret is shown once",
          "[cli][unit]") {
  std::string secret(48, 'a');
  json body = {{"member", {{"id", 7}, {"name", "Node9"}, {"hostname", "n9.test"}}},
               {"enrollment",
                {{"secret", secret},
                 {"install_command", "curl -fsS http://x/install | sh -s -- " + secret},
                 {"hostname", "n9.test"},
                 {"allowed_ips", {"51.245.11.2"}},
                 {"api_base", "http://127.0.0.1:7947"}}}};
  fake_transport t(answered(201, body.dump()));
  outcome o = run(parsed("member add p --hostname n9.test --linux-family rhel "
                         "--allowed-ip 51.245.11.2"),
                  test_connection(), t, now);
  CHECK(o.exit_code == 0);
  CHECK_THAT(o.out, Catch::Contains("curl -fsS http://x/install | sh -s -- " + secret));
  CHECK_THAT(o.out, Catch::Contains("enrollment secret  " + secret));
  CHECK_THAT(o.out, Catch::Contains("shown only this once"));
  CHECK_THAT(o.out, Catch::Contains("balctl member reenrol p 7"));
}

TEST_CASE("pool status shows KPIs, visible tabs and the member tiles", "[cli][unit]") {
  json body = R"({"pool":{"id":"lf","name":"Linux Fleet","preset":"generic-linux"},
    "kpis":{"members":2,"agents_healthy":1,"agents_total":2,"last_check_in_ms":null,
            "last_check_in_age_s":9,"running_jobs":0,"backups":0,"cron_jobs":0,
            "fleet_health_pct":50.0,"outdated_agents":1,"agent_version_latest":"1.0.0"},
    "tabs":{"overview":true,"protection":false,"managed_dns":false,"monitoring":true,
            "settings":true},
    "active_member":1,"holding":false,
    "tiles":[{"id":1,"name":"Node9","hostname":"n9.test","state":"healthy",
              "stacks":["openlitespeed","mariadb"],"agent_version":"1.0.0","active":true}],
    "tiles_total":2})"_json;
  fake_transport t(answered(200, body.dump()));
  outcome o = run(parsed("status lf"), test_connection(), t, now);
  CHECK(o.exit_code == 0);
  CHECK_THAT(o.out, Catch::StartsWith("pool lf (Linux Fleet, generic-linux)\n"));
  CHECK_THAT(o.out, Catch::Contains("agents healthy   1 / 2\n"));
  CHECK_THAT(o.out, Catch::Contains("last check-in    9s ago\n"));
  CHECK_THAT(o.out, Catch::Contains("fleet health     50.0%\n"));
  CHECK_THAT(o.out, Catch::Contains("tabs             overview, monitoring, settings\n"));
  CHECK_THAT(o.out, Catch::Contains("ID  NAME   HOSTNAME  STATE    STACKS                 "
                                    "AGENT  ACTIVE\n"
                                    " 1  Node9  n9.test   healthy  openlitespeed,mariadb  "
                                    "1.0.0  yes\n"));
  CHECK_THAT(o.out, Catch::Contains("1 of 2 members shown"));
}

TEST_CASE("the activity log shows ages and how to page to older events", "[cli][unit]") {
  fake_transport t(answered(200, R"({"events":[
    {"id":12,"at_ms":1699999991000,"kind":"state_change","member":7,"message":"down"}],
    "next_before":11})"));
  outcome o = run(parsed("log p --limit 1"), test_connection(), t, now);
  CHECK(o.out == "ID  AGE     KIND          MEMBER  MESSAGE\n"
                 "12  9s ago  state_change  7       down\n"
                 "older events: balctl log p --before 11\n");
}

TEST_CASE("the token never appears in any output, verbose or error", "[cli][unit]") {
  // A server that echoes the token back must not get it printed either.
  auto [line, reply] = GENERATE(table<std::string, http_reply>({
    {"pool list", answered(200, R"({"pools":[]})")},
    {"pool list --json", answered(200, R"({"echo":")" + token + R"("})")},
    {"pool show p", answered(401, api_error(401, "unauthorized", "", "bad token " + token))},
    {"pool show p --json", answered(403, api_error(403, "forbidden", "", token))},
    {"member show p 7", answered(200, R"({"id":7,"name":")" + token + R"("})")},
    {"status", unreachable("could not connect with " + token)},
    {"status", answered(502, "proxy says " + token)},
  }));
  for (bool verbose : {false, true}) {
    CAPTURE(line, verbose);
    fake_transport t(reply);
    outcome o = run(parsed(line), test_connection(verbose), t, now);
    REQUIRE(t.calls.size() == 1);
    CHECK(t.calls[0].token == token); // it is sent, only never shown
    CHECK_THAT(o.out, !Catch::Contains(token));
    CHECK_THAT(o.err, !Catch::Contains(token));
    if (verbose) {
      CHECK_THAT(o.err, Catch::Contains("Authorization: Bearer ***"));
    }
  }
}
