#include <catch2/catch.hpp>

#include <fstream>

#include "config/config.hpp"

using namespace balctl;

namespace {

std::string repo_file(const std::string& rel) {
  std::string here = __FILE__;
  return here.substr(0, here.rfind("tests/")) + rel;
}

const std::string key1 = std::string(64, '1');
const std::string key2 = std::string(64, '2');

// A valid config with one pool of two members; `pool_extra` and
// `member_extra` are spliced into the pool and first member objects.
std::string config_with(const std::string& top_extra,
                        const std::string& pool_extra = "",
                        const std::string& member_extra = "") {
  return R"({)" + top_extra + R"("pools":[{"name":"web",)" + pool_extra +
         R"("members":[{"id":1,"hostname":"a.example.test","key":")" + key1 +
         R"(",)" + member_extra + R"("allowed_ips":["192.0.2.1"]},)" +
         R"({"id":2,"hostname":"b.example.test","key":")" + key2 + R"("}]}]})";
}

bool has_error(const config_result& r, const std::string& text) {
  for (const auto& e : r.errors) {
    if (e.find(text) != std::string::npos) {
      return true;
    }
  }
  return false;
}

} // namespace

TEST_CASE("the example config parses", "[config][unit]") {
  auto r = load_config_file(repo_file("config/example.json"));
  CAPTURE(r.errors);
  REQUIRE(r.ok());
  REQUIRE(r.config.pools.size() == 1);
  CHECK(r.config.pools[0].name == "example");
  CHECK(r.config.pools[0].failover_delay_s == 10);
  CHECK(r.config.pools[0].members.size() == 3);
  CHECK(r.config.pools[0].members[1].key[0] == 0x02);
}

TEST_CASE("defaults apply where keys are absent", "[config][unit]") {
  auto r = parse_config(config_with(""));
  REQUIRE(r.ok());
  const auto& c = r.config;
  CHECK(c.udp_listen == "127.0.0.1:7946");
  CHECK(c.max_clock_skew_s == 30);
  CHECK(c.suspect_after_pct == 50);
  CHECK(c.silence_release_settle_s == 5);
  const auto& p = c.pools[0];
  CHECK(p.preset == pool_preset::generic_linux);
  CHECK(p.failover_delay_s == 30);
  CHECK(p.failback == failback_policy::manual);
  CHECK(p.members[1].name == "b.example.test"); // name defaults to hostname
  CHECK(p.members[0].allowed_ips == std::vector<std::string>{"192.0.2.1"});
  CHECK(parse_config("{}").ok()); // no pools is fine: the API adds them
}

TEST_CASE("every invalid value is reported with its key and the reason",
          "[config][unit]") {
  auto [text, expected] = GENERATE(table<std::string, std::string>({
    {config_with("", R"("failover_delay_s":5,)"),
     "pools[0].failover_delay_s = 5: must be between 10 and 120"},
    {config_with("", R"("failover_delay_s":121,)"),
     "pools[0].failover_delay_s = 121: must be between 10 and 120"},
    {config_with("", R"("failover_delay_s":"30",)"),
     "pools[0].failover_delay_s: must be an integer"},
    {config_with("", R"("preset":"nginx",)"),
     "pools[0].preset = \"nginx\": must be generic-linux or haproxy"},
    {config_with("", R"("failback":"sometimes",)"),
     "pools[0].failback = \"sometimes\": must be manual or automatic"},
    {config_with("", R"("mass_silence_share":0,)"),
     "pools[0].mass_silence_share = 0: must be greater than 0 and at most 1"},
    {config_with("", R"("mass_silence_share":1.5,)"),
     "pools[0].mass_silence_share = 1.5"},
    {config_with("", R"("failover_hostname":"bad host",)"),
     "pools[0].failover_hostname = \"bad host\": must be empty or a DNS name"},
    {config_with("", R"("name2":1,)"), "pools[0].name2: unknown key"},
    {config_with("", R"("failover_dealy_s":30,)"),
     "pools[0].failover_dealy_s: unknown key"},
    {config_with(R"("udp_listen":"abc",)"), "udp_listen = \"abc\": must be host:port"},
    {config_with(R"("udp_listen":"127.0.0.1:70000",)"), "udp_listen = \"127.0.0.1:70000\""},
    {config_with(R"("log_level":"loud",)"), "log_level = \"loud\""},
    {config_with(R"("max_clock_skew_s":0,)"), "max_clock_skew_s = 0: must be between 1 and 600"},
    {config_with(R"("max_clock_skew_s":1.5,)"), "max_clock_skew_s: must be an integer"},
    {config_with(R"("suspect_after_pct":95,)"), "suspect_after_pct = 95"},
    {config_with(R"("fleet_silence_share":-1,)"), "fleet_silence_share = -1"},
    {config_with(R"("store_path":"",)"), "store_path: must not be empty"},
    {config_with(R"("colour":"blue",)"), "colour: unknown key"},
    {config_with("", "", R"("hostname2":"x",)"), "pools[0].members[0].hostname2: unknown key"},
    {config_with("", "", R"("id":0,)"), "pools[0].members[0].id"},
    {R"({"pools":[{"name":"p","members":[{"id":1,"key":")" + key1 + R"("}]}]})",
     "pools[0].members[0].hostname: required"},
    {R"({"pools":[{"name":"p","members":[{"hostname":"h","key":")" + key1 + R"("}]}]})",
     "pools[0].members[0].id: required"},
    {R"({"pools":[{"name":"p","members":[{"id":1,"hostname":"h"}]}]})",
     "pools[0].members[0].key: required"},
    {R"({"pools":[{"name":"p","members":[{"id":1,"hostname":"h","key":"abc"}]}]})",
     "pools[0].members[0].key: must be 64 hex characters"},
    {R"({"pools":[{"name":"p","members":[{"id":1,"hostname":"h_!","key":")" + key1 + R"("}]}]})",
     "pools[0].members[0].hostname = \"h_!\": must be a DNS name"},
    {R"({"pools":[{"name":"p","members":[{"id":1,"hostname":"h","key":")" + key1 +
       R"(","allowed_ips":["10.0.0.300"]}]}]})",
     "pools[0].members[0].allowed_ips[0] = \"10.0.0.300\": must be an IPv4 or IPv6 address"},
    {R"({"pools":[{"name":"bad name"}]})", "pools[0].name = \"bad name\""},
    {R"({"pools":[{"members":[]}]})", "pools[0].name: required"},
    {R"({"pools":{}})", "pools: must be an array"},
    {R"([1,2])", "the top level must be a JSON object"},
    {R"({"pools": [)", "not valid JSON at byte"},
  }));
  CAPTURE(text);
  auto r = parse_config(text);
  CHECK_FALSE(r.ok());
  CAPTURE(r.errors);
  CHECK(has_error(r, expected));
}

TEST_CASE("all errors are reported at once", "[config][unit]") {
  auto r = parse_config(config_with(R"("max_clock_skew_s":0,"log_level":"x",)",
                                    R"("failover_delay_s":1,)"));
  CHECK(r.errors.size() == 3);
}

TEST_CASE("duplicate pool names and member ids name both places", "[config][unit]") {
  auto member = [](int id) {
    return R"({"id":)" + std::to_string(id) + R"(,"hostname":"h.example.test","key":")" +
           key1 + R"("})";
  };
  auto r = parse_config(R"({"pools":[{"name":"a","members":[)" + member(7) + "," +
                        member(8) + R"(]},{"name":"a","members":[)" + member(7) +
                        "]}]}");
  CHECK(has_error(r, R"(pools[1].name = "a": duplicate pool name (also pools[0]))"));
  CHECK(has_error(r, "pools[1].members[0].id = 7: duplicate member id (also pools[0].members[0])"));
}

TEST_CASE("a key's value never appears in an error", "[config][unit]") {
  const std::string secret = std::string(63, 'c') + "z";
  auto r = parse_config(R"({"pools":[{"name":"p","members":[{"id":1,"hostname":"h","key":")" +
                        secret + R"("}]}]})");
  REQUIRE_FALSE(r.ok());
  for (const auto& e : r.errors) {
    CHECK(e.find("cccccccc") == std::string::npos);
  }
}

TEST_CASE("an unreadable config file names the path", "[config][unit]") {
  auto r = load_config_file("/nonexistent/balctld.json");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].find("config file /nonexistent/balctld.json: cannot read") == 0);
}
