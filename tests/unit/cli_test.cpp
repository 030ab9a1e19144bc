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
    {"account list p", "GET", "/v1/pools/p/accounts", ""},
    {"account list p --limit 10 --offset 20", "GET", "/v1/pools/p/accounts?offset=20&limit=10",
     ""},
    {"account show p alice", "GET", "/v1/pools/p/accounts/alice", ""},
    {"account add p alice --domain alice.test --source 7 --standby 8", "POST",
     "/v1/pools/p/accounts",
     R"({"id":"alice","domain":"alice.test","source":7,"standby":8})"},
    {"account add p alice --domain alice.test --source 7 --standby 8 --dns-provider whm "
     "--dns-zone alice.test --dns-ttl-s 60 --managed off "
     R"(--records [{"name":"www.alice.test","type":"AAAA","cut":true,"ttl_s":60}])",
     "POST", "/v1/pools/p/accounts",
     R"({"id":"alice","domain":"alice.test","source":7,"standby":8,"dns_provider":"whm",
         "dns_zone":"alice.test","dns_ttl_s":60,"managed":false,
         "records":[{"name":"www.alice.test","type":"AAAA","cut":true,"ttl_s":60}]})"},
    {"account set p alice --standby 9", "PATCH", "/v1/pools/p/accounts/alice",
     R"({"standby":9})"},
    {"account set p alice --managed on --dns-provider cf-main --records []", "PATCH",
     "/v1/pools/p/accounts/alice", R"({"managed":true,"dns_provider":"cf-main","records":[]})"},
    {"account remove p alice", "DELETE", "/v1/pools/p/accounts/alice", ""},
    {"account cut p alice", "POST", "/v1/pools/p/accounts/alice/cut",
     R"({"to":"standby","force":false})"},
    {"account cut p alice --to source --force", "POST", "/v1/pools/p/accounts/alice/cut",
     R"({"to":"source","force":true})"},
    {"dns show p", "GET", "/v1/pools/p/dns", ""},
    {"dns show p --limit 5 --offset 10", "GET", "/v1/pools/p/dns?offset=10&limit=5", ""},
    {"dns refresh p", "POST", "/v1/pools/p/dns/refresh", ""},
    {"dns refresh p --account alice", "POST", "/v1/pools/p/dns/refresh",
     R"({"account":"alice"})"},
    {"dns import p", "POST", "/v1/pools/p/dns/import", ""},
    {"dns sync p --account=bob", "POST", "/v1/pools/p/dns/sync", R"({"account":"bob"})"},
    {"provider list p", "GET", "/v1/pools/p/dns/providers", ""},
    {"provider add p cf-main --type cloudflare --global", "POST", "/v1/pools/p/dns/providers",
     R"({"id":"cf-main","type":"cloudflare","global":true})"},
    {"provider add p whm-7 --type whm --api-base https://n7.test:2087 --user root --member 7 "
     "--rate-limit-requests 60 --rate-limit-window-s 60 --max-in-flight 2 --timeout-ms 5000",
     "POST", "/v1/pools/p/dns/providers",
     R"({"id":"whm-7","type":"whm","api_base":"https://n7.test:2087","user":"root","member":7,
         "rate_limit_requests":60,"rate_limit_window_s":60,"max_in_flight":2,
         "timeout_ms":5000})"},
    {"provider add p ns1 --type rfc2136 --dns-server 10.0.0.53:53 --tsig-name balctl. "
     "--tsig-algorithm hmac-sha512", "POST", "/v1/pools/p/dns/providers",
     R"({"id":"ns1","type":"rfc2136","server":"10.0.0.53:53","tsig_name":"balctl.",
         "tsig_algorithm":"hmac-sha512"})"},
    {"provider add p pdns --type powerdns --api-base http://pdns:8081 --server-id localhost "
     "--ca-file /etc/ssl/pdns.pem", "POST", "/v1/pools/p/dns/providers",
     R"({"id":"pdns","type":"powerdns","api_base":"http://pdns:8081","server_id":"localhost",
         "ca_file":"/etc/ssl/pdns.pem"})"},
    {"provider set p cf-main --rate-limit-requests 0", "PATCH",
     "/v1/pools/p/dns/providers/cf-main", R"({"rate_limit_requests":0})"},
    {"provider set p cf-main", "PATCH", "/v1/pools/p/dns/providers/cf-main", "{}"},
    {"provider remove p cf-main", "DELETE", "/v1/pools/p/dns/providers/cf-main", ""},
    {"account add p alice --domain alice.test --source 7 --standby 8 --replicate-every-s 3600 "
     "--replicate-overlap wait",
     "POST", "/v1/pools/p/accounts",
     R"({"id":"alice","domain":"alice.test","source":7,"standby":8,
         "replication_every_s":3600,"replication_overlap":"wait"})"},
    {"account set p alice --replicate-every-s 0", "PATCH", "/v1/pools/p/accounts/alice",
     R"({"replication_every_s":0})"},
    {"account replicate p alice", "POST", "/v1/pools/p/accounts/alice/replicate", ""},
    {"account replication p alice", "GET", "/v1/pools/p/accounts/alice/replication", ""},
    {"protection p", "GET", "/v1/pools/p/protection", ""},
    {"log p --replication", "GET", "/v1/pools/p/activity?kind=replication", ""},
    {"log p --jobs --limit 5 --before 12", "GET",
     "/v1/pools/p/activity?limit=5&before=12&kind=jobs", ""},
    {"job run p 1 --command uptime", "POST", "/v1/pools/p/members/1/jobs",
     R"({"command":"uptime"})"},
    {"job run p 1 --command=true --timeout-s 60", "POST", "/v1/pools/p/members/1/jobs",
     R"({"command":"true","timeout_s":60})"},
    {"job list p", "GET", "/v1/pools/p/jobs", ""},
    {"job list p 3", "GET", "/v1/pools/p/members/3/jobs", ""},
    {"job show p j-4", "GET", "/v1/pools/p/jobs/j-4", ""},
    {"job cancel p j-4", "POST", "/v1/pools/p/jobs/j-4/cancel", ""},
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
    {"account", "missing account subcommand"},
    {"account show p", "missing argument ID"},
    {"account add p alice --source 7 --standby 8", "missing --domain"},
    {"account add p alice --domain a.test --standby 8", "missing --source"},
    {"account add p alice --domain a.test --source 7", "missing --standby"},
    {"account add p alice --domain a.test --source seven --standby 8",
     "--source = seven: must be an integer"},
    {"account add p alice --domain a.test --source 7 --standby 0",
     "--standby = 0: must be a positive member id"},
    {"account add p alice --domain a.test --source 7 --standby 8 --managed maybe",
     "--managed = maybe: must be on or off"},
    {"account set p alice", "nothing to change"},
    {R"(account set p alice --records {"name":"a.test"})",
     "--records must be a JSON array of records, not object"},
    {"account set p alice --records [{\"name\":", "--records is not JSON: parse error"},
    {"account set p alice --records alice.test", "--records is not JSON"},
    {"account set p alice --dns-provider=", "--dns-provider must not be empty"},
    {"account cut p alice --to primary", "--to = primary: must be standby or source"},
    {"account list p --force", "unknown flag --force for 'account list'"},
    {"dns", "missing dns subcommand"},
    {"dns show", "missing argument POOL"},
    {"dns refresh p --account=", "--account must not be empty"},
    {"dns show p --account alice", "unknown flag --account for 'dns show'"},
    {"provider add p cf", "missing --type"},
    {"provider add p cf --type route53", "must be cloudflare or whm or powerdns or rfc2136"},
    {"provider add p ns1 --type rfc2136 --tsig-algorithm md5",
     "--tsig-algorithm = md5: must be hmac-sha256 or hmac-sha512 or hmac-sha1"},
    {"provider add p w --type whm --member x", "--member = x: must be an integer"},
    {"provider set p cf --global=yes", "--global takes no value"},
    {"provider set p cf --secret-file=", "--secret-file must not be empty"},
    {"provider remove p cf --secret-file s.txt", "unknown flag --secret-file"},
    {"provider add p cf --type cloudflare --secret s3cr3t", "unknown flag --secret"},
    {"account set p alice --replicate-every-s hourly",
     "--replicate-every-s = hourly: must be an integer"},
    {"account set p alice --replicate-overlap later",
     "--replicate-overlap = later: must be skip or wait"},
    {"account replicate p", "missing argument ID"},
    {"account replication p alice --force", "unknown flag --force for 'account replication'"},
    {"protection", "missing argument POOL"},
    {"log p --replication --jobs", "--replication and --jobs: give one of them"},
    {"log p --jobs=yes", "--jobs takes no value"},
    {"job", "missing job subcommand"},
    {"job start p 1", "unknown command 'job start'"},
    {"job run p 1", "missing --command"},
    {"job run p 1 --command", "--command needs a value CMD"},
    {"job run p 1 --command=", "--command must not be empty"},
    {"job run p one --command true", "ID = one: must be an integer"},
    {"job run p 1 --command true --timeout-s soon", "--timeout-s = soon: must be an integer"},
    {"job list p 0", "ID = 0: must be a positive member id"},
    {"job show p", "missing argument ID"},
    {"job cancel p j-1 --force", "unknown flag --force for 'job cancel'"},
    {"job list --command true p", "unknown flag --command for 'job list'"},
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
  parse_result accounts = parse("account --help");
  REQUIRE(accounts.what == parse_result::kind::help);
  CHECK_THAT(accounts.message, Catch::Contains("account cut POOL ID [--to standby|source]"));
  parse_result provider = parse("provider add --help");
  REQUIRE(provider.what == parse_result::kind::help);
  CHECK_THAT(provider.message, Catch::Contains("--secret-file FILE"));
  CHECK_THAT(provider.message, Catch::Contains("BALCTL_DNS_SECRET"));
  CHECK_THAT(parse("--help").message, Catch::Contains("balctl dns refresh POOL [--account ID]"));
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

// ---- Protection and Managed DNS -------------------------------------------

namespace {

// A secret with the characters JSON escapes, so redaction must catch both
// its raw and its escaped form.
const std::string dns_secret = "cf-7Rq\"x\\9bT2mZ4wK";

read_result file_text(std::string text) {
  read_result r;
  r.status = read_status::ok;
  r.text = std::move(text);
  return r;
}

read_result file_missing(const std::string& path) {
  read_result r;
  r.status = read_status::missing;
  r.error = "config " + path + ": No such file or directory";
  return r;
}

/// An account as GET /accounts/{id} answers it: on its standby, one record
/// drifted (the live value is still the source's address).
json sample_account() {
  return R"({"id":"alice","domain":"alice.test","source":7,"standby":8,"on":"standby",
    "on_member":8,"on_since_ms":1699999700000,"source_state":"down","standby_state":"healthy",
    "dns_provider":"cloudflare","dns_zone":null,"dns_ttl_s":300,"managed":true,
    "records":[
      {"name":"alice.test","type":"A","cut":true,"managed":true,"dns_only":false,
       "origin":"protection","provider":"cf-main","provider_error":null,
       "expected":"203.0.113.8","effective_ttl_s":300,
       "live":{"status":"found","content":"203.0.113.7","ttl_s":300,"proxied":true,
               "checked_ms":1699999880000,"error":null},
       "drift":true,"source_content":null,"standby_content":null,"content":null,
       "ttl_s":0},
      {"name":"alice.test","type":"MX","cut":true,"managed":true,"dns_only":false,
       "origin":"protection","provider":null,"provider_error":"no Global Cloudflare key",
       "expected":"10 mx2.alice.test","effective_ttl_s":60,"live":null,"drift":false,
       "source_content":"10 mx1.alice.test","standby_content":"10 mx2.alice.test",
       "content":null,"ttl_s":60},
      {"name":"old.alice.test","type":"A","cut":false,"managed":false,"dns_only":false,
       "origin":"whm","provider":"cf-main","provider_error":null,"expected":null,"effective_ttl_s":300,
       "live":{"status":"failed","content":null,"ttl_s":null,"proxied":null,
               "checked_ms":1699999880000,"error":"HTTP 500 from api.cloudflare.com"},
       "drift":false,"source_content":null,"standby_content":null,"content":null,
       "ttl_s":0}],
    "drift":1})"_json;
}

json sample_providers() {
  return R"({"providers":[
    {"id":"cf-main","type":"cloudflare","global":true,"member":null,
     "rate_limit_requests":1200,"rate_limit_window_s":300,"max_in_flight":4,
     "timeout_ms":10000,"secret_set":true,"api_base":"https://api.cloudflare.com/client/v4"},
    {"id":"ns1","type":"rfc2136","global":false,"member":null,"rate_limit_requests":0,
     "rate_limit_window_s":60,"max_in_flight":4,"timeout_ms":10000,"secret_set":true,
     "server":"10.0.0.53:53","tsig_name":"balctl.","tsig_algorithm":"hmac-sha256"}]})"_json;
}

} // namespace

TEST_CASE("account cut moves the records to the standby unless --to source asks for the "
          "fail-back",
          "[cli][unit]") {
  invocation plain = parsed("account cut p alice");
  REQUIRE(plain.request.body.has_value());
  CHECK((*plain.request.body)["to"] == "standby");
  CHECK((*plain.request.body)["force"] == false);
  CHECK(plain.account_id == "alice");
  invocation back = parsed("account cut p alice --to=source");
  CHECK((*back.request.body)["to"] == "source");
}

TEST_CASE("account and provider ids are percent-encoded as one path segment", "[cli][unit]") {
  CHECK(parse_args({"account", "show", "p", "a b/c"}).inv.request.path ==
        "/v1/pools/p/accounts/a%20b%2Fc");
  CHECK(parse_args({"provider", "remove", "p", "x/y"}).inv.request.path ==
        "/v1/pools/p/dns/providers/x%2Fy");
}

TEST_CASE("account add --records passes the JSON array through as the API takes it", "[cli][unit]") {
  // As an operator passes it: --records "$(cat records.json)", spaces and
  // newlines included.
  std::string file = "[\n  {\"name\": \"alice.test\", \"type\": \"MX\",\n"
                     "   \"source_content\": \"10 mx1.alice.test\", "
                     "\"standby_content\": \"10 mx2.alice.test\"}\n]\n";
  parse_result r = parse_args({"account", "set", "p", "alice", "--records", file});
  REQUIRE(r.what == parse_result::kind::run);
  CHECK((*r.inv.request.body)["records"] == json::parse(file));
  CHECK(r.inv.request.body->size() == 1);
}

TEST_CASE("only provider add and provider set take a secret, and parsing reads nothing",
          "[cli][unit]") {
  invocation add = parsed("provider add p cf --type cloudflare --secret-file /run/cf.key");
  CHECK(add.secret.wanted);
  CHECK(add.secret.required);
  CHECK(add.secret.file == std::optional<std::string>("/run/cf.key"));
  // The path is recorded, the body has no secret yet.
  CHECK_FALSE(add.request.body->contains("secret"));
  CHECK_FALSE(add.request.body->contains("secret_file"));
  invocation set = parsed("provider set p cf --timeout-ms 5000");
  CHECK(set.secret.wanted);
  CHECK_FALSE(set.secret.required);
  CHECK_FALSE(set.secret.file.has_value());
  CHECK(parsed("provider set p cf").secret.required); // the secret is the only change
  CHECK_FALSE(parsed("provider list p").secret.wanted);
  CHECK_FALSE(parsed("account add p a --domain a.test --source 1 --standby 2").secret.wanted);
}

TEST_CASE("the DNS secret comes from --secret-file, else BALCTL_DNS_SECRET", "[cli][unit]") {
  invocation with_file = parsed("provider add p cf --type cloudflare --secret-file /run/cf.key");
  invocation without = parsed("provider add p cf --type cloudflare");

  SECTION("the file's first line, trailing CR, LF and spaces trimmed") {
    auto r = resolve_secret(with_file, file_text(dns_secret + " \r\nsecond line\n"),
                            std::nullopt);
    REQUIRE(r.ok());
    CHECK(r.secret == std::optional<std::string>(dns_secret));
  }
  SECTION("a file without a final newline is read as it is") {
    auto r = resolve_secret(with_file, file_text(dns_secret), std::nullopt);
    CHECK(r.secret == std::optional<std::string>(dns_secret));
  }
  SECTION("the file beats the environment") {
    auto r = resolve_secret(with_file, file_text(dns_secret + "\n"), std::string("env-secret"));
    CHECK(r.secret == std::optional<std::string>(dns_secret));
  }
  SECTION("without --secret-file the environment gives it") {
    auto r = resolve_secret(without, std::nullopt, std::string(dns_secret));
    REQUIRE(r.ok());
    CHECK(r.secret == std::optional<std::string>(dns_secret));
  }
  SECTION("commands that send no secret ignore the environment") {
    auto r = resolve_secret(parsed("provider list p"), std::nullopt, std::string(dns_secret));
    CHECK(r.ok());
    CHECK_FALSE(r.secret.has_value());
  }
  SECTION("provider set with an option and no secret keeps the stored one") {
    auto r = resolve_secret(parsed("provider set p cf --global"), std::nullopt, std::nullopt);
    CHECK(r.ok());
    CHECK_FALSE(r.secret.has_value());
  }
  SECTION("provider set never takes the environment: a variable left over for another "
          "credential must not replace this one's secret") {
    auto r = resolve_secret(parsed("provider set p cf --global"), std::nullopt,
                            std::string(dns_secret));
    CHECK(r.ok());
    CHECK_FALSE(r.secret.has_value());
    auto bare = resolve_secret(parsed("provider set p cf"), std::nullopt, std::string(dns_secret));
    CHECK_FALSE(bare.ok());
    CHECK_THAT(bare.error, Catch::Contains("--secret-file FILE"));
  }
}

TEST_CASE("a missing or unreadable DNS secret is a usage error naming its source",
          "[cli][unit]") {
  auto [line, file, env_value, needle] =
    GENERATE(table<std::string, std::optional<read_result>, std::optional<std::string>,
                   std::string>({
      {"provider add p cf --type cloudflare", std::nullopt, std::nullopt,
       "missing secret: put it in a file and pass --secret-file FILE, or set env "
       "BALCTL_DNS_SECRET"},
      // An empty variable counts as unset, as BALCTL_TOKEN's does.
      {"provider add p cf --type cloudflare", std::nullopt, std::string(""), "missing secret"},
      {"provider add p cf --type cloudflare --secret-file /run/nope.key",
       file_missing("/run/nope.key"), std::string("env-secret"),
       "--secret-file /run/nope.key: cannot read it (No such file or directory)"},
      {"provider add p cf --type cloudflare --secret-file /run/empty.key", file_text("\n"),
       std::nullopt, "--secret-file /run/empty.key: the first line is empty"},
      {"provider set p cf", std::nullopt, std::nullopt,
       "nothing to change: give at least one option, or a new secret"},
    }));
  CAPTURE(line);
  parse_result p = parse(line);
  REQUIRE(p.what == parse_result::kind::run);
  auto r = resolve_secret(p.inv, file, env_value);
  REQUIRE_FALSE(r.ok());
  CHECK_FALSE(r.secret.has_value());
  CHECK_THAT(r.error, Catch::Contains(needle));
  // main.cpp prints it as a usage error (exit 2) with the command's usage.
  p.message = r.error;
  CHECK_THAT(render_usage_error(p),
             Catch::StartsWith("balctl: " + r.error + "\nusage: balctl provider "));
}

TEST_CASE("the DNS secret is sent in the body and never printed, verbose, --json or error",
          "[cli][unit]") {
  // A server that echoes the secret back must not get it printed either;
  // JSON bodies carry it escaped.
  std::string escaped = json(dns_secret).dump();
  escaped = escaped.substr(1, escaped.size() - 2);
  REQUIRE(escaped != dns_secret);
  auto [line, reply] = GENERATE_COPY(table<std::string, http_reply>({
    {"provider add p cf --type cloudflare --global", answered(201, sample_providers().dump())},
    {"provider add p cf --type cloudflare --json",
     answered(201, R"({"echo":")" + escaped + R"("})")},
    {"provider set p cf", answered(422, api_error(422, "invalid_field", "secret",
                                                  "bad secret " + dns_secret))},
    {"provider set p cf --json --timeout-ms 100",
     answered(422, api_error(422, "invalid_field", "secret", "bad " + dns_secret))},
    {"provider add p cf --type cloudflare", unreachable("could not send " + dns_secret)},
  }));
  for (bool verbose : {false, true}) {
    CAPTURE(line, verbose);
    fake_transport t(reply);
    outcome o = run(parsed(line), test_connection(verbose), t, now, dns_secret);
    REQUIRE(t.calls.size() == 1);
    REQUIRE(t.calls[0].body.has_value());
    CHECK(json::parse(*t.calls[0].body)["secret"] == dns_secret); // sent, never shown
    for (const std::string& printed : {o.out, o.err}) {
      CHECK_THAT(printed, !Catch::Contains(dns_secret));
      CHECK_THAT(printed, !Catch::Contains(escaped));
      CHECK_THAT(printed, !Catch::Contains("7Rq")); // nor a part of it
    }
    if (verbose) {
      CHECK_THAT(o.err, Catch::Contains(R"("secret":"***")"));
    }
  }
}

TEST_CASE("a command that takes no secret does not send one it is given", "[cli][unit]") {
  fake_transport t(answered(200, sample_providers().dump()));
  run(parsed("provider list p"), test_connection(), t, now, dns_secret);
  REQUIRE(t.calls.size() == 1);
  CHECK_FALSE(t.calls[0].body.has_value());
}

TEST_CASE("provider set sends only the new secret when that is the change, and says where "
          "it came from",
          "[cli][unit]") {
  fake_transport t(answered(200, sample_providers().dump()));
  outcome from_env = run(parsed("provider set p cf-main"), test_connection(), t, now, dns_secret);
  REQUIRE(t.calls.size() == 1);
  CHECK(t.calls[0].method == "PATCH");
  CHECK(json::parse(*t.calls[0].body) == json({{"secret", dns_secret}}));
  CHECK_THAT(from_env.out, Catch::StartsWith("updated DNS provider cf-main of pool p\n"));
  CHECK_THAT(from_env.out, Catch::EndsWith("secret sent from env BALCTL_DNS_SECRET (write-only: "
                                           "the server never shows it)\n"));
  outcome from_file = run(parsed("provider set p cf-main --secret-file /run/cf.key"),
                          test_connection(), t, now, dns_secret);
  CHECK_THAT(from_file.out, Catch::Contains("secret sent from --secret-file /run/cf.key"));
  outcome kept = run(parsed("provider set p cf-main --global"), test_connection(), t, now);
  CHECK(json::parse(*t.calls.back().body) == json({{"global", true}}));
  CHECK_THAT(kept.out, !Catch::Contains("secret sent"));
}

TEST_CASE("provider list shows endpoint, rate limit and that a secret is set, never which",
          "[cli][unit]") {
  fake_transport t(answered(200, sample_providers().dump()));
  outcome o = run(parsed("provider list p"), test_connection(), t, now);
  CHECK(o.exit_code == 0);
  CHECK(o.out ==
        "ID       TYPE        ENDPOINT                              GLOBAL  MEMBER  RATE LIMIT   "
        "SECRET  DETAILS\n"
        "cf-main  cloudflare  https://api.cloudflare.com/client/v4  yes     -       1200 / 300s  "
        "set     max_in_flight=4 timeout_ms=10000\n"
        "ns1      rfc2136     10.0.0.53:53                          no      -       none         "
        "set     max_in_flight=4 timeout_ms=10000 tsig_algorithm=hmac-sha256 "
        "tsig_name=balctl.\n");
  fake_transport none(answered(200, R"({"providers":[]})"));
  CHECK(run(parsed("provider remove p ns1"), test_connection(), none, now).out ==
        "removed DNS provider ns1 from pool p\nno DNS providers\n");
}

TEST_CASE("account list shows where each account's records point and its drift",
          "[cli][unit]") {
  json body = {{"accounts", {sample_account()}}, {"total", 3}};
  fake_transport t(answered(200, body.dump()));
  outcome o = run(parsed("account list p --limit 1"), test_connection(), t, now);
  CHECK(o.exit_code == 0);
  CHECK(o.out == "ID     DOMAIN      ON         SOURCE  STANDBY    PROVIDER    MANAGED  "
                 "RECORDS  DRIFT\n"
                 "alice  alice.test  standby 8  7 down  8 healthy  cloudflare  yes            "
                 "3      1\n"
                 "1 of 3 accounts shown (--offset N / --limit N for others)\n");
  fake_transport empty(answered(200, R"({"accounts":[],"total":0})"));
  CHECK(run(parsed("account list p"), test_connection(), empty, now).out ==
        "no protected accounts\n");
}

TEST_CASE("account show lists the records expected against live, with drift and problems",
          "[cli][unit]") {
  fake_transport t(answered(200, sample_account().dump()));
  outcome o = run(parsed("account show p alice"), test_connection(), t, now);
  CHECK(o.exit_code == 0);
  CHECK(o.out ==
        "id            alice\n"
        "domain        alice.test\n"
        "records on    standby 8, since 5m ago\n"
        "source        7 down\n"
        "standby       8 healthy\n"
        "dns provider  cloudflare\n"
        "dns zone      - (found at the provider)\n"
        "dns ttl_s     300\n"
        "managed dns   yes\n"
        "drift         1 of 3 records\n"
        "\nRecords\n"
        "NAME            TYPE  CUT        EXPECTED           LIVE                   TTL  CHECKED  "
        "DRIFT  PROVIDER\n"
        "alice.test      A     yes        203.0.113.8        203.0.113.7 (proxied)  300  2m ago   "
        "yes    cf-main\n"
        "alice.test      MX    yes        10 mx2.alice.test  not read               60   never    "
        "no     -\n"
        "old.alice.test  A     unmanaged  -                  failed                 300  2m ago   "
        "no     cf-main\n"
        "problem: alice.test MX: no DNS provider: no Global Cloudflare key\n"
        "problem: old.alice.test A: read: HTTP 500 from api.cloudflare.com\n");
}

TEST_CASE("account add, set, cut and remove say what happened", "[cli][unit]") {
  json a = sample_account();
  SECTION("add") {
    fake_transport t(answered(201, a.dump()));
    outcome o = run(parsed("account add p alice --domain alice.test --source 7 --standby 8"),
                    test_connection(), t, now);
    CHECK_THAT(o.out, Catch::StartsWith("added protected account alice (alice.test) to pool p\n"
                                        "id "));
  }
  SECTION("set") {
    fake_transport t(answered(200, a.dump()));
    outcome o = run(parsed("account set p alice --dns-ttl-s 60"), test_connection(), t, now);
    CHECK_THAT(o.out, Catch::StartsWith("updated protected account alice of pool p\n"));
  }
  SECTION("cut to the standby") {
    fake_transport t(answered(200, a.dump()));
    outcome o = run(parsed("account cut p alice"), test_connection(), t, now);
    CHECK_THAT(o.out, Catch::StartsWith("cut account alice's DNS to its standby, member 8\n"));
  }
  SECTION("fail-back to the source") {
    a["on"] = "source";
    a["on_member"] = 7;
    fake_transport t(answered(200, a.dump()));
    outcome o = run(parsed("account cut p alice --to source"), test_connection(), t, now);
    CHECK_THAT(o.out,
               Catch::StartsWith("failed back account alice's DNS to its source, member 7\n"));
  }
  SECTION("remove answers 204 with no body") {
    fake_transport t(answered(204, ""));
    outcome o = run(parsed("account remove p alice"), test_connection(), t, now);
    CHECK(o.exit_code == 0);
    CHECK(o.out == "removed protected account alice from pool p\n");
  }
}

TEST_CASE("dns refresh, import and sync say how much was queued and where to look",
          "[cli][unit]") {
  auto [line, body, expected] = GENERATE(table<std::string, std::string, std::string>({
    {"dns refresh p", R"({"reads_queued":12})", "queued 12 reads; see 'balctl dns show p'\n"},
    {"dns refresh p --account alice", R"({"reads_queued":1})",
     "queued 1 read for account alice; see 'balctl dns show p'\n"},
    {"dns import p", R"({"zones_queued":3})",
     "queued 3 zones to import; see 'balctl dns show p'\n"},
    {"dns sync p --account bob", R"({"zones_queued":1})",
     "queued 1 zone to sync from WHM to Cloudflare for account bob; see 'balctl dns show p'\n"},
  }));
  CAPTURE(line);
  fake_transport t(answered(202, body));
  outcome o = run(parsed(line), test_connection(), t, now);
  CHECK(o.exit_code == 0);
  CHECK(o.out == expected);
}

TEST_CASE("dns show gives DNS health, the failover record, providers and the records",
          "[cli][unit]") {
  json failover = sample_account()["records"][0];
  failover.erase("source_content");
  failover["name"] = "www.fleet.test";
  failover["origin"] = "failover";
  failover["drift"] = false;
  failover["live"]["content"] = "203.0.113.8";
  json body = {{"pool", "p"},
               {"managed_dns", true},
               {"health",
                {{"accounts", 2},
                 {"on_standby", 1},
                 {"records", 4},
                 {"checked", 3},
                 {"drift", 1},
                 {"refreshed_ms", now - 120'000},
                 {"reads_pending", 0}}},
               {"failover", failover},
               {"providers", sample_providers()["providers"]},
               {"config_providers", {"cf-file"}},
               {"accounts", {sample_account()}},
               {"total", 2}};
  fake_transport t(answered(200, body.dump()));
  outcome o = run(parsed("dns show p --limit 1"), test_connection(), t, now);
  CHECK(o.exit_code == 0);
  CHECK_THAT(o.out, Catch::StartsWith(
    "Managed DNS of pool p\n"
    "DNS health: 2 accounts (1 on standby), 4 records, 3 checked, 1 drift; refreshed 2m ago, "
    "0 reads pending\n"
    "\nFailover record\n"
    "NAME            TYPE  CUT  EXPECTED     LIVE                   TTL  CHECKED  DRIFT  "
    "PROVIDER\n"
    "www.fleet.test  A     yes  203.0.113.8  203.0.113.8 (proxied)  300  2m ago   no     "
    "cf-main\n"
    "\nDNS providers\nID  "));
  CHECK_THAT(o.out, Catch::Contains("from the config file: cf-file\n"));
  CHECK_THAT(o.out, Catch::Contains(
    "\nRecords of protected accounts\n"
    "ACCOUNT  NAME            TYPE  CUT        EXPECTED           LIVE                   TTL  "
    "CHECKED  DRIFT  PROVIDER\n"
    "alice    alice.test      A     yes        203.0.113.8        203.0.113.7 (proxied)  300  "
    "2m ago   yes    cf-main\n"));
  CHECK_THAT(o.out, Catch::Contains("problem: alice old.alice.test A: read: HTTP 500"));
  CHECK_THAT(o.out, Catch::EndsWith("1 of 2 accounts shown (--offset N / --limit N for others)\n"));

  SECTION("no failover record and the tab hidden are said so") {
    body["failover"] = nullptr;
    body["managed_dns"] = false;
    body["health"]["refreshed_ms"] = nullptr;
    body["accounts"] = json::array();
    body["total"] = 0;
    fake_transport t2(answered(200, body.dump()));
    outcome o2 = run(parsed("dns show p"), test_connection(), t2, now);
    CHECK_THAT(o2.out, Catch::StartsWith("Managed DNS of pool p (tab hidden: fewer than 2 "
                                         "cPanel members)\n"));
    CHECK_THAT(o2.out, Catch::Contains("refreshed never"));
    CHECK_THAT(o2.out, Catch::Contains("\nFailover record\nnone (the pool has no failover "
                                       "hostname: balctl pool settings p --failover-hostname "
                                       "H)\n"));
    CHECK_THAT(o2.out, Catch::EndsWith("\nRecords of protected accounts\nno protected accounts\n"));
  }
}

TEST_CASE("with --json the new commands print the server's body as it is", "[cli][unit]") {
  auto line = GENERATE(as<std::string>{}, "account show p alice --json", "dns show p --json",
                       "provider list p --json", "dns refresh p --json");
  CAPTURE(line);
  fake_transport t(answered(200, R"({"z":1,"a":{"records":[]}})"));
  outcome o = run(parsed(line), test_connection(), t, now);
  CHECK(o.exit_code == 0);
  CHECK(o.out == "{\n  \"z\": 1,\n  \"a\": {\n    \"records\": []\n  }\n}\n");
}

// ---- Replication and jobs -------------------------------------------------

namespace {

/// A job as GET /jobs/{id} answers it (actors/protection.cpp, job_view):
/// an operator's command that ran 12 s and printed two lines.
json sample_job() {
  return json{{"id", "j-4"},
              {"member", 1},
              {"kind", "command"},
              {"params", {{"command", "uptime"}}},
              {"timeout_s", 60},
              {"owner", ""},
              {"requested_by", "ops"},
              {"status", "succeeded"},
              {"created_ms", now - 300'000},
              {"dispatched_ms", now - 290'000},
              {"started_ms", now - 289'000},
              {"finished_ms", now - 277'000},
              {"exit_code", 0},
              {"output", " 10:00 up 3 days\nload 0.10\n"},
              {"error", ""}};
}

/// One account's replication as GET .../replication answers it
/// (actors/account.cpp, replication_view_json): a scheduled run failed
/// half-way through its upload and waits for its retry.
json sample_replication() {
  return json{{"health", "failing"},
              {"phase", "failed"},
              {"run", "alice-3"},
              {"trigger", "schedule"},
              {"attempts", 2},
              {"chunks", 5},
              {"chunks_stored", 3},
              {"bytes", 12'582'912},
              {"job", nullptr},
              {"run_started_ms", now - 600'000},
              {"last_sync_ms", now - 7'200'000},
              {"last_duration_ms", 300'000},
              {"last_failure_ms", now - 540'000},
              {"last_error", "replicate_package on member 7: exit code 1"},
              {"next_due_ms", now + 3'000'000},
              {"retry_at_ms", now + 60'000},
              {"waiting", false},
              {"runs_ok", 12},
              {"runs_failed", 1},
              {"starts_skipped", 2},
              {"every_s", 3600},
              {"overlap", "skip"}};
}

/// An account replicated on demand only, last synced 5 minutes ago.
json idle_replication() {
  json v = sample_replication();
  v.update(json{{"health", "healthy"},
                {"phase", "idle"},
                {"run", nullptr},
                {"attempts", 0},
                {"chunks", 0},
                {"chunks_stored", 0},
                {"bytes", 0},
                {"last_sync_ms", now - 300'000},
                {"last_duration_ms", 42'000},
                {"last_failure_ms", nullptr},
                {"last_error", ""},
                {"next_due_ms", nullptr},
                {"retry_at_ms", nullptr},
                {"every_s", 0}});
  return v;
}

/// What `line` prints when the server answers `status` with `body`; the
/// command must succeed, printing nothing on stderr.
std::string printed(const std::string& line, const json& body, long status = 200) {
  fake_transport t(answered(status, body.dump()));
  outcome o = run(parsed(line), test_connection(), t, now);
  CHECK(o.exit_code == 0);
  CHECK(o.err.empty());
  return o.out;
}

} // namespace

TEST_CASE("job run takes --timeout-s as the job's own limit, not the request's",
          "[cli][unit]") {
  invocation run_job = parsed("job run p 1 --command uptime --timeout-s 600");
  CHECK((*run_job.request.body)["timeout_s"] == 600);
  CHECK_FALSE(run_job.global.timeout_s.has_value());
  // Any other command keeps the global meaning.
  CHECK(parsed("job list p --timeout-s 5").global.timeout_s == std::optional<long>(5));
  // A command with spaces is one argument, as the shell passes it.
  parse_result r = parse_args({"job", "run", "p", "2", "--command", "df -h / && uptime"});
  REQUIRE(r.what == parse_result::kind::run);
  CHECK((*r.inv.request.body)["command"] == "df -h / && uptime");
  CHECK(r.inv.member_id == "2");
  parse_result help = parse("job run --help");
  REQUIRE(help.what == parse_result::kind::help);
  CHECK_THAT(help.message, Catch::StartsWith("usage: balctl job run POOL MEMBER --command CMD "
                                             "[--timeout-s N]\n"));
  CHECK_THAT(help.message, Catch::Contains("the job's time limit on the member"));
  CHECK_THAT(parse("job --help").message, Catch::Contains("job cancel"));
  CHECK_THAT(parse("--help").message, Catch::Contains("balctl protection POOL"));
}

TEST_CASE("job ids are percent-encoded as one path segment", "[cli][unit]") {
  CHECK(parse_args({"job", "show", "p", "j 1/x"}).inv.request.path == "/v1/pools/p/jobs/j%201%2Fx");
}

TEST_CASE("job run says which job was queued and how to follow it", "[cli][unit]") {
  json queued = sample_job();
  queued.update(json{{"status", "queued"},
                     {"dispatched_ms", nullptr},
                     {"started_ms", nullptr},
                     {"finished_ms", nullptr},
                     {"exit_code", nullptr},
                     {"output", ""}});
  CHECK(printed("job run p 1 --command uptime --timeout-s 60", queued, 201) ==
        "queued job j-4 for member 1 of pool p; follow it with 'balctl job show p j-4'\n"
        "id            j-4\n"
        "member        1\n"
        "kind          command\n"
        "command       uptime\n"
        "status        queued\n"
        "exit code     -\n"
        "requested by  ops\n"
        "timeout       60 s\n"
        "created       5m ago\n"
        "dispatched    -\n"
        "started       -\n"
        "finished      -\n");
}

TEST_CASE("job show prints status, exit code, times and the member's output", "[cli][unit]") {
  CHECK(printed("job show p j-4", sample_job()) ==
        "id            j-4\n"
        "member        1\n"
        "kind          command\n"
        "command       uptime\n"
        "status        succeeded\n"
        "exit code     0\n"
        "requested by  ops\n"
        "timeout       60 s\n"
        "created       5m ago\n"
        "dispatched    4m ago\n"
        "started       4m ago\n"
        "finished      4m ago (took 12s)\n"
        "\nOutput\n"
        " 10:00 up 3 days\n"
        "load 0.10\n");

  SECTION("a failed replication job names its account, its error, and no output") {
    json j = sample_job();
    j.update(json{{"kind", "replicate_package"},
                  {"params", {{"run", "alice-3"}, {"chunk_size", 8'388'608}}},
                  {"owner", "account:alice"},
                  {"requested_by", ""},
                  {"status", "failed"},
                  {"exit_code", 1},
                  {"output", ""},
                  {"error", "pkgacct: \x1b[31mdisk full"}});
    fake_transport t2(answered(200, j.dump()));
    outcome f = run(parsed("job show p j-4"), test_connection(), t2, now);
    CHECK_THAT(f.out, Catch::Contains("kind          replicate_package\n"
                                      "params        {\"chunk_size\":8388608,\"run\":\"alice-3\"}\n"
                                      "status        failed\n"
                                      "exit code     1\n"
                                      "error         pkgacct: ?[31mdisk full\n"
                                      "requested by  account:alice\n"));
    CHECK_THAT(f.out, Catch::EndsWith("\nOutput\n(none)\n"));
  }
}

TEST_CASE("job list shows one row per job and the member's counts", "[cli][unit]") {
  json running = sample_job();
  running.update(json{{"id", "j-5"},
                      {"params", {{"command", std::string(70, 'x') + "\nsecond line"}}},
                      {"status", "running"},
                      {"finished_ms", nullptr},
                      {"exit_code", nullptr},
                      {"created_ms", now - 9'000}});
  json body = {{"jobs", {running, sample_job()}}, {"queued", 0}, {"running", 1}, {"failed", 0}};
  CHECK(printed("job list p 1", body) ==
        "ID   MEMBER  KIND     STATUS     EXIT  CREATED  FINISHED  WHAT\n"
        "j-5       1  command  running       -  9s ago   -         " +
          std::string(57, 'x') + "...\n"
        "j-4       1  command  succeeded     0  5m ago   4m ago    uptime\n"
        "0 queued, 1 running, 0 failed\n");
  fake_transport none(answered(200, R"({"jobs":[],"queued":0,"running":0,"failed":0})"));
  CHECK(run(parsed("job list p"), test_connection(), none, now).out ==
        "no jobs\n0 queued, 0 running, 0 failed\n");
}

TEST_CASE("job cancel says so, and a finished or unknown job is refused with its exit code",
          "[cli][unit]") {
  json cancelled = sample_job();
  cancelled.update(json{{"status", "cancelled"},
                        {"dispatched_ms", nullptr},
                        {"started_ms", nullptr},
                        {"finished_ms", now - 1'000},
                        {"exit_code", nullptr},
                        {"output", ""}});
  fake_transport t(answered(200, cancelled.dump()));
  outcome o = run(parsed("job cancel p j-4"), test_connection(), t, now);
  CHECK(o.exit_code == 0);
  CHECK_THAT(o.out, Catch::StartsWith("cancelled job j-4 of pool p\nid            j-4\n"));
  CHECK_THAT(o.out, Catch::EndsWith("finished      1s ago\n"));
  REQUIRE(t.calls.size() == 1);
  CHECK(t.calls[0].method == "POST");
  CHECK_FALSE(t.calls[0].body.has_value());

  auto [line, status, code, exit_code] = GENERATE(table<std::string, int, std::string, int>({
    {"job cancel p j-4", 409, "job_finished", exit_rejected},
    {"job show p j-999", 404, "job_not_found", exit_not_found},
    {"job run p 77 --command true", 404, "member_not_found", exit_not_found},
    {"job run p 1 --command true --timeout-s 0", 422, "invalid_field", exit_rejected},
    {"account replicate p alice", 409, "replication_running", exit_rejected},
    {"account replicate p alice", 409, "not_applicable", exit_rejected},
  }));
  CAPTURE(line, code);
  fake_transport refused(answered(status, api_error(status, code, "", "refused: " + code)));
  outcome r = run(parsed(line), test_connection(), refused, now);
  CHECK(r.exit_code == exit_code);
  CHECK(r.out.empty());
  CHECK(r.err == "balctl: refused: " + code + " (" + code + ")\n");
}

TEST_CASE("account replication shows health, phase, progress, schedule and the last error",
          "[cli][unit]") {
  CHECK(printed("account replication p alice", sample_replication()) ==
        "account       alice\n"
        "health        failing\n"
        "phase         failed (run alice-3, schedule, attempt 2)\n"
        "package       3 of 5 chunks stored, 12.0 MiB\n"
        "schedule      every 3600 s, overlap skip\n"
        "last sync     2h ago (took 5m)\n"
        "next run      in 50m\n"
        "retry         in 1m\n"
        "last failure  9m ago\n"
        "last error    replicate_package on member 7: exit code 1\n"
        "runs          12 ok, 1 failed, 2 starts skipped\n");
}

TEST_CASE("account replicate starts a run and says how to follow it", "[cli][unit]") {
  json v = sample_replication();
  v.update(json{{"health", "running"},
                {"phase", "packaging"},
                {"run", "alice-4"},
                {"trigger", "manual"},
                {"attempts", 1},
                {"chunks", 0},
                {"job", "j-9"},
                {"last_error", ""},
                {"retry_at_ms", nullptr}});
  CHECK(printed("account replicate p alice", v, 202) ==
        "replication of account alice started (run alice-4); follow it with 'balctl "
        "account replication p alice'\n"
        "account       alice\n"
        "health        running\n"
        "phase         packaging (run alice-4, manual, attempt 1)\n"
        "job           j-9 (balctl job show p j-9)\n"
        "schedule      every 3600 s, overlap skip\n"
        "last sync     2h ago (took 5m)\n"
        "next run      in 50m\n"
        "last failure  9m ago\n"
        "last error    -\n"
        "runs          12 ok, 1 failed, 2 starts skipped\n");
}

TEST_CASE("protection shows the dashboard's KPIs and one line per account", "[cli][unit]") {
  json body = {{"protected_accounts", 2},
               {"health", {{"failing", 1}, {"healthy", 1}}},
               {"last_sync_ms", now - 300'000},
               {"jobs", {{"queued", 0}, {"running", 1}}},
               {"accounts", {{"alice", sample_replication()}, {"bob", idle_replication()}}}};
  CHECK(printed("protection p", body) ==
        "Protection of pool p\n"
        "protected accounts  2\n"
        "replication health  1 healthy, 1 failing\n"
        "last sync           5m ago\n"
        "jobs                1 running, 0 queued\n"
        "\n"
        "ACCOUNT  HEALTH   PHASE   LAST SYNC  NEXT DUE   LAST ERROR\n"
        "alice    failing  failed  2h ago     in 50m     replicate_package on member 7: "
        "exit code 1\n"
        "bob      healthy  idle    5m ago     on demand  -\n");
  fake_transport empty(answered(200, R"({"protected_accounts":0,"health":{},"last_sync_ms":null,
    "jobs":{"queued":0,"running":0},"accounts":{}})"));
  CHECK(run(parsed("protection p"), test_connection(), empty, now).out ==
        "Protection of pool p\n"
        "protected accounts  0\n"
        "replication health  -\n"
        "last sync           never\n"
        "jobs                0 running, 0 queued\n"
        "\nno protected accounts\n");
}

TEST_CASE("log --replication and --jobs page on through the same log", "[cli][unit]") {
  fake_transport t(answered(200, R"({"events":[
    {"id":40,"at_ms":1699999991000,"kind":"replication_sync","member":7,
     "message":"alice: replicated to member 8 in 42s"}],"next_before":39})"));
  outcome o = run(parsed("log p --replication --limit 1"), test_connection(), t, now);
  CHECK(o.out == "ID  AGE     KIND              MEMBER  MESSAGE\n"
                 "40  9s ago  replication_sync  7       alice: replicated to member 8 in 42s\n"
                 "older events: balctl log p --replication --before 39\n");
  outcome jobs = run(parsed("log p --jobs"), test_connection(), t, now);
  CHECK_THAT(jobs.out, Catch::EndsWith("older events: balctl log p --jobs --before 39\n"));
}

TEST_CASE("account show and pool status carry the replication schedule and queued jobs",
          "[cli][unit]") {
  json a = sample_account();
  a["replication_every_s"] = 86400;
  a["replication_overlap"] = "wait";
  fake_transport t(answered(200, a.dump()));
  CHECK_THAT(run(parsed("account show p alice"), test_connection(), t, now).out,
             Catch::Contains("drift         1 of 3 records\n"
                             "replication   every 86400 s, overlap wait\n"));
  a["replication_every_s"] = 0;
  fake_transport manual(answered(200, a.dump()));
  CHECK_THAT(run(parsed("account show p alice"), test_connection(), manual, now).out,
             Catch::Contains("replication   on demand only, overlap wait\n"));

  json overview = {{"pool", {{"id", "p"}, {"name", "P"}, {"preset", "generic-linux"}}},
                   {"kpis", {{"running_jobs", 1}, {"queued_jobs", 2}}},
                   {"tiles", json::array()}};
  fake_transport st(answered(200, overview.dump()));
  CHECK_THAT(run(parsed("status p"), test_connection(), st, now).out,
             Catch::Contains("running jobs     1 (2 queued)\n"));
}

TEST_CASE("with --json the Protection and job commands print the server's body as it is",
          "[cli][unit]") {
  auto line = GENERATE(as<std::string>{}, "protection p --json",
                       "account replication p alice --json", "account replicate p alice --json",
                       "job run p 1 --command true --json", "job list p --json",
                       "job show p j-4 --json", "job cancel p j-4 --json",
                       "log p --replication --json");
  CAPTURE(line);
  fake_transport t(answered(200, R"({"z":1,"a":{"jobs":[]}})"));
  outcome o = run(parsed(line), test_connection(), t, now);
  CHECK(o.exit_code == 0);
  CHECK(o.out == "{\n  \"z\": 1,\n  \"a\": {\n    \"jobs\": []\n  }\n}\n");
}
