#include "adapters/store/redis_store.hpp"
#include "adapters/store/store.hpp"
#include "config/config.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "tests/support/temp_dir.hpp"
#include "tests/support/test_certs.hpp"

using namespace balctl;

namespace {

const std::string key1(64, '1');

std::string member_json(const std::string& fields) { return "{" + fields + "}"; }

std::string good_member(int id = 1) {
  return member_json("\"id\":" + std::to_string(id) + ",\"hostname\":\"h" +
                     std::to_string(id) + ".test\",\"key\":\"" + key1 + "\"");
}

/// One pool named "p" with extra pool keys and the given members.
std::string cfg_pool(const std::string& extra,
                     const std::string& members = good_member()) {
  return "{\"pools\":[{\"name\":\"p\"," + extra + (extra.empty() ? "" : ",") +
         "\"members\":[" + members + "]}]}";
}

/// Top-level keys plus one valid pool.
std::string cfg_top(const std::string& top) {
  return "{" + top + ",\"pools\":[{\"name\":\"p\",\"members\":[" +
         good_member() + "]}]}";
}

/// One valid pool whose single member has exactly these fields.
std::string cfg_member(const std::string& fields) {
  return cfg_pool("", member_json(fields));
}

std::string example_path() {
  std::string here = __FILE__;
  return here.substr(0, here.rfind("tests/")) + "config/example.json";
}

std::string joined(const std::vector<std::string>& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += e + "\n";
  }
  return out;
}

bool has_error(const config_result& r, const std::string& needle) {
  return std::any_of(r.errors.begin(), r.errors.end(), [&](const std::string& e) {
    return e.find(needle) != std::string::npos;
  });
}

} // namespace

TEST_CASE("config/example.json parses into pool example with three members",
          "[config][unit]") {
  auto r = load_config_file(example_path());
  INFO(joined(r.errors));
  REQUIRE(r.ok());
  REQUIRE(r.config.pools.size() == 1);
  const auto& p = r.config.pools[0];
  CHECK(p.name == "example");
  CHECK(p.failover_delay_s == 10);
  CHECK(p.failover_hostname == "www.example.test");
  REQUIRE(p.members.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(p.members[i].id == i + 1);
    CHECK(p.members[i].name == "node" + std::to_string(i + 1));
    CHECK(p.members[i].allowed_ips == std::vector<std::string>{"127.0.0.1"});
    CHECK(std::all_of(p.members[i].key.begin(), p.members[i].key.end(),
                      [&](std::uint8_t b) { return b == i + 1; }));
  }
}

TEST_CASE("absent keys get their defaults", "[config][unit]") {
  SECTION("empty object") {
    auto r = parse_config("{}");
    INFO(joined(r.errors));
    REQUIRE(r.ok());
    const auto& c = r.config;
    CHECK(c.udp_listen == "127.0.0.1:7946");
    CHECK(c.store_path == "balctld.db");
    CHECK(c.store.empty()); // SQLite
    CHECK(c.store_prefix == "balctl:");
    CHECK(c.store_timeout_ms == 2000);
    CHECK(c.log_level == "info");
    CHECK(c.max_clock_skew_s == 30);
    CHECK(c.restart_grace_s == 0);
    CHECK(c.suspect_after_pct == 50);
    CHECK(c.recovery_stable_s == 10);
    CHECK(c.flap_threshold == 3);
    CHECK(c.flap_window_s == 600);
    CHECK(c.flap_hold_s == 300);
    CHECK(c.fleet_silence_share == Approx(0.3));
    CHECK(c.fleet_silence_min_members == 10);
    CHECK(c.fleet_silence_window_s == 30);
    CHECK(c.silence_release_settle_s == 5);
    CHECK(c.snapshot_interval_s == 30);
    CHECK(c.pools.empty());
  }
  SECTION("minimal pool and member") {
    auto r = parse_config(cfg_member("\"id\":7,\"hostname\":\"web7.test\","
                                     "\"key\":\"" + std::string(64, 'A') + "\""));
    INFO(joined(r.errors));
    REQUIRE(r.ok());
    REQUIRE(r.config.pools.size() == 1);
    const auto& p = r.config.pools[0];
    CHECK(p.name == "p");
    CHECK(p.preset == pool_preset::generic_linux);
    CHECK(p.failover_delay_s == 30);
    CHECK(p.failover_hostname.empty());
    CHECK(p.failback == failback_policy::manual);
    CHECK(p.failback_stable_s == 300);
    CHECK(p.mass_silence_share == Approx(0.5));
    CHECK(p.mass_silence_min_members == 3);
    CHECK(p.mass_silence_window_s == 0);
    REQUIRE(p.members.size() == 1);
    const auto& m = p.members[0];
    CHECK(m.id == 7);
    CHECK(m.hostname == "web7.test");
    CHECK(m.name == "web7.test"); // name defaults to the hostname
    CHECK(m.allowed_ips.empty());
    CHECK(std::all_of(m.key.begin(), m.key.end(),
                      [](std::uint8_t b) { return b == 0xAA; }));
  }
  SECTION("explicit valid values are taken") {
    auto r = parse_config(
      "{\"udp_listen\":\"[::1]:9000\",\"log_level\":\"debug\","
      "\"restart_grace_s\":60,\"pools\":[{\"name\":\"web.eu-1_a\","
      "\"preset\":\"haproxy\",\"failover_delay_s\":120,\"failback\":"
      "\"automatic\",\"mass_silence_share\":1,\"members\":[" +
      good_member() + "]}]}");
    INFO(joined(r.errors));
    REQUIRE(r.ok());
    CHECK(r.config.udp_listen == "[::1]:9000");
    CHECK(r.config.log_level == "debug");
    CHECK(r.config.restart_grace_s == 60);
    const auto& p = r.config.pools.at(0);
    CHECK(p.name == "web.eu-1_a");
    CHECK(p.preset == pool_preset::haproxy);
    CHECK(p.failover_delay_s == 120);
    CHECK(p.failback == failback_policy::automatic);
    CHECK(p.mass_silence_share == Approx(1.0));
  }
}

TEST_CASE("a redis store is configured by URL, its password is never repeated in an error",
          "[config][unit]") {
  auto r = parse_config(cfg_top("\"store\":\"redis://balctl:pw@10.1.2.3:6380/2\","
                                "\"store_prefix\":\"edge1:\",\"store_timeout_ms\":500"));
  INFO(joined(r.errors));
  REQUIRE(r.ok());
  CHECK(r.config.store == "redis://balctl:pw@10.1.2.3:6380/2");
  CHECK(describe_store(r.config) == "redis://10.1.2.3:6380/2");
  CHECK(r.config.store_prefix == "edge1:");
  CHECK(r.config.store_timeout_ms == 500);
  auto bad = parse_config(cfg_top("\"store\":\"redis://balctl:hunter2@h:0/x\""));
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(joined(bad.errors), Catch::Contains("store:") && !Catch::Contains("hunter2"));
}

TEST_CASE("a rediss store takes a CA file and a client certificate, and is shown as rediss",
          "[config][unit]") {
  // Any readable file passes the config check; the TLS client reads them as PEM.
  auto r = parse_config(cfg_top("\"store\":\"rediss://balctl:pw@redis.internal/1\","
                                "\"store_tls_ca_file\":\"/etc/hostname\","
                                "\"store_tls_cert_file\":\"/etc/hostname\","
                                "\"store_tls_key_file\":\"/etc/hostname\""));
  INFO(joined(r.errors));
  REQUIRE(r.ok());
  CHECK(r.config.store_tls_ca_file == "/etc/hostname");
  CHECK(describe_store(r.config) == "rediss://redis.internal:6379/1");
  auto o = redis_options_for(r.config);
  CHECK(o.client.tls);
  CHECK(o.client.tls_ca_file == "/etc/hostname");
  CHECK(o.client.tls_cert_file == "/etc/hostname");
  CHECK(o.client.tls_key_file == "/etc/hostname");
  CHECK(o.client.password == "pw");

  // Without them: the system trust store, no client certificate.
  auto plain = parse_config(cfg_top("\"store\":\"rediss://redis.internal\""));
  INFO(joined(plain.errors));
  REQUIRE(plain.ok());
  auto po = redis_options_for(plain.config);
  CHECK(po.client.tls);
  CHECK(po.client.tls_ca_file.empty());
  CHECK(po.client.tls_cert_file.empty());
}

TEST_CASE("each invalid value is one error naming the key path and the reason",
          "[config][unit]") {
  auto [text, expected] = GENERATE(table<std::string, std::string>({
    // ranges
    {cfg_pool("\"failover_delay_s\":5"),
     "pools[0].failover_delay_s = 5: must be between 10 and 120"},
    {cfg_pool("\"failover_delay_s\":121"),
     "pools[0].failover_delay_s = 121: must be between 10 and 120"},
    {cfg_pool("\"failback_stable_s\":9"),
     "pools[0].failback_stable_s = 9: must be between 10 and 86400"},
    {cfg_pool("\"mass_silence_min_members\":0"),
     "pools[0].mass_silence_min_members = 0: must be between 1 and 1000000"},
    {cfg_pool("\"mass_silence_window_s\":3601"),
     "pools[0].mass_silence_window_s = 3601: must be between 0 and 3600"},
    {cfg_top("\"suspect_after_pct\":95"),
     "suspect_after_pct = 95: must be between 10 and 90"},
    {cfg_top("\"max_clock_skew_s\":0"),
     "max_clock_skew_s = 0: must be between 1 and 600"},
    {cfg_top("\"flap_threshold\":101"),
     "flap_threshold = 101: must be between 1 and 100"},
    {cfg_top("\"restart_grace_s\":-1"),
     "restart_grace_s = -1: must be between 0 and 3600"},
    {cfg_top("\"silence_release_settle_s\":601"),
     "silence_release_settle_s = 601: must be between 0 and 600"},
    // enumerations
    {cfg_pool("\"preset\":\"nginx\""),
     "pools[0].preset = \"nginx\": must be generic-linux or haproxy"},
    {cfg_pool("\"failback\":\"sometimes\""),
     "pools[0].failback = \"sometimes\": must be manual or automatic"},
    {cfg_top("\"log_level\":\"verbose\""),
     "log_level = \"verbose\": must be debug, info, warn or error"},
    // shares
    {cfg_pool("\"mass_silence_share\":0"),
     "pools[0].mass_silence_share = 0: must be greater than 0 and at most 1"},
    {cfg_pool("\"mass_silence_share\":1.5"),
     "pools[0].mass_silence_share = 1.5: must be greater than 0 and at most 1"},
    {cfg_top("\"fleet_silence_share\":-0.5"),
     "fleet_silence_share = -0.5: must be greater than 0 and at most 1"},
    // addresses and names
    {cfg_top("\"udp_listen\":\"localhost\""),
     "udp_listen = \"localhost\": must be host:port or [v6]:port with port 0..65535"},
    {cfg_top("\"udp_listen\":\"127.0.0.1:65536\""),
     "udp_listen = \"127.0.0.1:65536\": must be host:port"},
    {cfg_top("\"udp_listen\":\"[::1]7946\""),
     "udp_listen = \"[::1]7946\": must be host:port"},
    {cfg_top("\"udp_listen\":\"example.com:7946\""),
     "udp_listen = \"example.com:7946\": must be host:port"},
    {cfg_top("\"store_path\":\"\""), "store_path: must not be empty"},
    {cfg_top("\"store\":\"redis://u:hunter2@h:70000\""),
     "store: the port must be 1..65535 (got \"70000\")"},
    {cfg_top("\"store\":\"mysql://db\""), "store: must start with redis:// or rediss://"},
    {cfg_top("\"store\":\"rediss://u:hunter2@h:0\""),
     "store: the port must be 1..65535 (got \"0\")"},
    {cfg_top("\"store_tls_ca_file\":\"/etc/hostname\""),
     "store_tls_ca_file: only with a rediss:// store"},
    {cfg_top("\"store\":\"redis://h\",\"store_tls_key_file\":\"/etc/hostname\""),
     "store_tls_key_file: only with a rediss:// store"},
    {cfg_top("\"store\":\"rediss://h\",\"store_tls_ca_file\":\"/nonexistent/ca.pem\""),
     "store_tls_ca_file = \"/nonexistent/ca.pem\": cannot read: No such file or directory"},
    {cfg_top("\"store\":\"rediss://h\",\"store_tls_cert_file\":\"/etc/hostname\""),
     "store_tls_key_file: required with store_tls_cert_file"},
    {cfg_top("\"store\":\"rediss://h\",\"store_tls_key_file\":\"/etc/hostname\""),
     "store_tls_cert_file: required with store_tls_key_file"},
    {cfg_top("\"store\":\"rediss://h\",\"store_tls_cert_file\":\"/nonexistent/c.pem\","
             "\"store_tls_key_file\":\"/etc/hostname\""),
     "store_tls_cert_file = \"/nonexistent/c.pem\": cannot read"},
    {cfg_top("\"store\":\"rediss://h\",\"store_tls_ca_file\":7"),
     "store_tls_ca_file: must be a string"},
    {cfg_top("\"store_password_file\":\"/etc/hostname\""),
     "store_password_file: only with a redis:// store"},
    {cfg_top("\"store\":\"redis://h\",\"store_password_file\":\"/nonexistent/pw\""),
     "store_password_file = \"/nonexistent/pw\": cannot read: No such file or directory"},
    {cfg_top("\"store_timeout_ms\":50"), "store_timeout_ms = 50: must be between 100 and 60000"},
    {cfg_top("\"cluster\":{\"node_id\":\"a\"}"),
     "cluster: needs a redis:// store (\"store\")"},
    {cfg_top("\"store\":\"redis://h\",\"cluster\":{}"), "cluster.node_id: required"},
    {cfg_top("\"store\":\"redis://h\",\"cluster\":{\"node_id\":\"a b\"}"),
     "cluster.node_id = \"a b\": must be 1 to 64 characters"},
    {cfg_top("\"store\":\"redis://h\",\"cluster\":{\"node_id\":\"a\",\"lease_ttl_ms\":500}"),
     "cluster.lease_ttl_ms = 500: must be between 1000 and 120000"},
    {cfg_top("\"store\":\"redis://h\",\"cluster\":{\"node_id\":\"a\",\"listen\":\"x\"}"),
     "cluster.listen = \"x\": must be host:port"},
    {cfg_top("\"store_prefix\":\"a b\""), "store_prefix = \"a b\": must be 1..64 characters"},
    {cfg_member("\"id\":1,\"hostname\":\"bad host\",\"key\":\"" + key1 + "\""),
     "pools[0].members[0].hostname = \"bad host\": must be a DNS name"},
    {cfg_member("\"id\":1,\"hostname\":\"a..b\",\"key\":\"" + key1 + "\""),
     "pools[0].members[0].hostname = \"a..b\": must be a DNS name"},
    {cfg_member("\"id\":1,\"hostname\":\"-a.test\",\"key\":\"" + key1 + "\""),
     "pools[0].members[0].hostname = \"-a.test\": must be a DNS name"},
    {cfg_member("\"id\":1,\"hostname\":\"h.test\",\"name\":\"\",\"key\":\"" +
                key1 + "\""),
     "pools[0].members[0].name = \"\": must be 1 to 64 characters"},
    {cfg_pool("\"failover_hostname\":\"www..test\""),
     "pools[0].failover_hostname = \"www..test\": must be empty or a DNS name"},
    {"{\"pools\":[{\"name\":\"bad name!\",\"members\":[]}]}",
     "pools[0].name = \"bad name!\": must be 1 to 64 characters of A-Z a-z 0-9 . _ -"},
    {"{\"pools\":[{\"name\":\"" + std::string(65, 'p') + "\"}]}",
     "pools[0].name = \"" + std::string(65, 'p') + "\": must be 1 to 64"},
    {cfg_member("\"id\":1,\"hostname\":\"h.test\",\"allowed_ips\":"
                "[\"10.0.0.1\",\"not-an-ip\"],\"key\":\"" + key1 + "\""),
     "pools[0].members[0].allowed_ips[1] = \"not-an-ip\": must be an IPv4 or IPv6 address"},
    {cfg_member("\"id\":1,\"hostname\":\"h.test\",\"allowed_ips\":"
                "[\"::1\",\"10.0.0.256\"],\"key\":\"" + key1 + "\""),
     "pools[0].members[0].allowed_ips[1] = \"10.0.0.256\": must be an IPv4 or IPv6 address"},
    {cfg_member("\"id\":1,\"hostname\":\"h.test\",\"allowed_ips\":[42],"
                "\"key\":\"" + key1 + "\""),
     "pools[0].members[0].allowed_ips[0] = 42: must be an IPv4 or IPv6 address"},
    {cfg_member("\"id\":1,\"hostname\":\"h.test\",\"allowed_ips\":\"10.0.0.1\","
                "\"key\":\"" + key1 + "\""),
     "pools[0].members[0].allowed_ips: must be an array of IP addresses"},
    // keys
    {cfg_member("\"id\":1,\"hostname\":\"h.test\",\"key\":\"" +
                std::string(63, 'a') + "\""),
     "pools[0].members[0].key: must be 64 hex characters"},
    {cfg_member("\"id\":1,\"hostname\":\"h.test\",\"key\":\"" +
                std::string(66, 'a') + "\""),
     "pools[0].members[0].key: must be 64 hex characters"},
    {cfg_member("\"id\":1,\"hostname\":\"h.test\",\"key\":\"" +
                std::string(64, 'g') + "\""),
     "pools[0].members[0].key: must be 64 hex characters"},
    {cfg_member("\"id\":1,\"hostname\":\"h.test\",\"key\":123"),
     "pools[0].members[0].key: must be 64 hex characters"},
    // required
    {cfg_member("\"id\":1,\"key\":\"" + key1 + "\""),
     "pools[0].members[0].hostname: required"},
    {cfg_member("\"id\":1,\"hostname\":\"h.test\""),
     "pools[0].members[0].key: required"},
    {cfg_member("\"hostname\":\"h.test\",\"key\":\"" + key1 + "\""),
     "pools[0].members[0].id: required"},
    {"{\"pools\":[{\"members\":[" + good_member() + "]}]}", "pools[0].name: required"},
    // ids
    {cfg_member("\"id\":0,\"hostname\":\"h.test\",\"key\":\"" + key1 + "\""),
     "pools[0].members[0].id = 0: must be greater than 0"},
    {cfg_member("\"id\":-3,\"hostname\":\"h.test\",\"key\":\"" + key1 + "\""),
     "pools[0].members[0].id = -3: must be greater than 0"},
    // types
    {cfg_member("\"id\":\"1\",\"hostname\":\"h.test\",\"key\":\"" + key1 + "\""),
     "pools[0].members[0].id: must be an integer"},
    {cfg_member("\"id\":1.5,\"hostname\":\"h.test\",\"key\":\"" + key1 + "\""),
     "pools[0].members[0].id: must be an integer"},
    {cfg_pool("\"failover_delay_s\":\"30\""),
     "pools[0].failover_delay_s: must be an integer"},
    {cfg_pool("\"failover_delay_s\":30.5"),
     "pools[0].failover_delay_s: must be an integer"},
    {cfg_top("\"max_clock_skew_s\":true"), "max_clock_skew_s: must be an integer"},
    {cfg_pool("\"mass_silence_share\":\"half\""),
     "pools[0].mass_silence_share: must be a number"},
    {cfg_top("\"log_level\":3"), "log_level: must be a string"},
    {cfg_member("\"id\":1,\"hostname\":7,\"key\":\"" + key1 + "\""),
     "pools[0].members[0].hostname: must be a string"},
    {"{\"pools\":{}}", "pools: must be an array"},
    {"{\"pools\":[{\"name\":\"p\",\"members\":{}}]}", "pools[0].members: must be an array"},
    {"{\"pools\":[7]}", "pools[0]: must be an object"},
    {"{\"pools\":[{\"name\":\"p\",\"members\":[\"m\"]}]}",
     "pools[0].members[0]: must be an object"},
    // unknown keys
    {cfg_pool("\"failover_dealy_s\":30"), "pools[0].failover_dealy_s: unknown key"},
    {cfg_top("\"pool\":[]"), "pool: unknown key"},
    {cfg_member("\"id\":1,\"hostname\":\"h.test\",\"ip\":\"10.0.0.1\",\"key\":\"" +
                key1 + "\""),
     "pools[0].members[0].ip: unknown key"},
    // document level
    {"[]", "config: the top level must be a JSON object"},
    {"\"pools\"", "config: the top level must be a JSON object"},
    {"{\"pools\": [", "config: not valid JSON at byte"},
    {"{\"log_level\": \"info\",}", "config: not valid JSON at byte"},
    {"", "config: not valid JSON at byte"},
  }));
  CAPTURE(text, expected);
  auto r = parse_config(text);
  CAPTURE(r.errors);
  REQUIRE(r.errors.size() == 1);
  CHECK_THAT(r.errors[0], Catch::Matchers::Contains(expected));
}

TEST_CASE("all errors of a file are reported at once", "[config][unit]") {
  auto r = parse_config(
    "{\"log_level\":\"loud\",\"flap_window_s\":5,\"typo\":1,"
    "\"pools\":[{\"name\":\"p\",\"failover_delay_s\":5,\"members\":["
    "{\"id\":0,\"hostname\":\"h.test\"},"
    "{\"id\":2,\"hostname\":\"bad host\",\"key\":\"" + key1 + "\"}]}]}");
  CAPTURE(r.errors);
  CHECK(r.errors.size() == 7);
  CHECK(has_error(r, "log_level = \"loud\""));
  CHECK(has_error(r, "flap_window_s = 5: must be between 10 and 86400"));
  CHECK(has_error(r, "typo: unknown key"));
  CHECK(has_error(r, "pools[0].failover_delay_s = 5"));
  CHECK(has_error(r, "pools[0].members[0].id = 0"));
  CHECK(has_error(r, "pools[0].members[0].key: required"));
  CHECK(has_error(r, "pools[0].members[1].hostname = \"bad host\""));
  CHECK_FALSE(r.ok());
}

TEST_CASE("duplicate pool names and member ids name both places",
          "[config][unit]") {
  SECTION("across pools") {
    auto r = parse_config(
      "{\"pools\":[{\"name\":\"a\",\"members\":[" + good_member(1) + "," +
      good_member(5) + "]},{\"name\":\"b\",\"members\":[" + good_member(2) +
      "]},{\"name\":\"a\",\"members\":[" + good_member(5) + "]}]}");
    CAPTURE(r.errors);
    REQUIRE(r.errors.size() == 2);
    CHECK(has_error(r, "pools[2].name = \"a\": duplicate pool name (also pools[0])"));
    CHECK(has_error(r, "pools[2].members[0].id = 5: duplicate member id "
                       "(also pools[0].members[1])"));
  }
  SECTION("within one pool") {
    auto r = parse_config(cfg_pool("", good_member(4) + "," + good_member(4)));
    CAPTURE(r.errors);
    REQUIRE(r.errors.size() == 1);
    CHECK(has_error(r, "pools[0].members[1].id = 4: duplicate member id "
                       "(also pools[0].members[0])"));
  }
}

TEST_CASE("a key's value never appears in an error message", "[config][unit]") {
  const std::string secret = std::string(63, 'c') + "z";
  const std::string fragment(16, 'c');
  auto text = GENERATE_COPY(
    // invalid key, alone and among other errors
    cfg_member("\"id\":1,\"hostname\":\"h.test\",\"key\":\"" + secret + "\""),
    cfg_member("\"id\":0,\"hostname\":\"bad host\",\"name\":\"\",\"key\":\"" +
               secret + "\""),
    // a key under a misspelt name is an unknown key
    cfg_member("\"id\":1,\"hostname\":\"h.test\",\"Key\":\"" + secret + "\""),
    // a valid key next to other errors
    cfg_member("\"id\":-1,\"hostname\":\"h.test\",\"key\":\"" +
               std::string(64, 'c') + "\""),
    // syntax errors inside or right after the key string
    "{\"pools\":[{\"name\":\"p\",\"members\":[{\"id\":1,\"key\":\"" + secret,
    "{\"pools\":[{\"name\":\"p\",\"members\":[{\"id\":1,\"key\":\"" +
      std::string(32, 'c') + "\n" + std::string(32, 'c') + "\"}]}]}",
    "{\"pools\":[{\"name\":\"p\",\"members\":[{\"id\":1,\"key\":\"" + secret +
      "\\q\"}]}]}",
    "{\"pools\":[{\"name\":\"p\",\"members\":[{\"id\":1,\"key\":\"" + secret +
      "\" \"hostname\":\"h.test\"}]}]}");
  CAPTURE(text);
  auto r = parse_config(text);
  CAPTURE(r.errors);
  REQUIRE_FALSE(r.ok());
  for (const auto& e : r.errors) {
    CHECK(e.find(fragment) == std::string::npos);
  }
}

TEST_CASE("a missing config file is an error naming the path", "[config][unit]") {
  const std::string path = "/tmp/balctl-no-such-dir/missing-config.json";
  auto r = load_config_file(path);
  REQUIRE(r.errors.size() == 1);
  CHECK_THAT(r.errors[0], Catch::Matchers::Contains(path));
  CHECK_THAT(r.errors[0], Catch::Matchers::Contains("cannot read"));
}

TEST_CASE("member ids use the full 64-bit range", "[config][unit]") {
  auto r = parse_config(cfg_member("\"id\":18446744073709551615,\"hostname\":"
                                   "\"h.test\",\"key\":\"" + key1 + "\""));
  CAPTURE(r.errors);
  REQUIRE(r.ok());
  CHECK(r.config.pools.at(0).members.at(0).id == 18446744073709551615ull);
}

TEST_CASE("the admin section is read with its defaults and tokens", "[config][unit]") {
  auto r = parse_config(cfg_top(
    R"("admin":{"listen":"127.0.0.1:9000","max_connections":10,)"
    R"("tokens":[{"name":"ops","role":"admin","sha256":")" + std::string(64, 'a') +
    R"("},{"name":"view","role":"read-only","sha256":")" + std::string(64, 'b') + R"("}]})"));
  INFO(joined(r.errors));
  REQUIRE(r.ok());
  const auto& a = r.config.admin;
  CHECK(a.listen == "127.0.0.1:9000");
  CHECK(a.max_connections == 10);
  CHECK(a.max_body_bytes == 1048576); // default
  REQUIRE(a.tokens.size() == 2);
  CHECK(a.tokens[0].admin);
  CHECK_FALSE(a.tokens[1].admin);
  CHECK(a.tokens[0].sha256[0] == 0xaa);
  auto d = parse_config(cfg_top(R"("log_level":"info")"));
  CHECK(d.config.admin.listen == "127.0.0.1:7947");
  CHECK(d.config.admin.tokens.empty());
  CHECK(d.config.admin.agent_binary_url.empty()); // the engine's own /agent/balctl-agent
}

TEST_CASE("admin.agent_binary_url takes an http or https URL", "[config][unit]") {
  auto url = GENERATE(as<std::string>{}, "https://cdn.example.com/balctl/balctl-agent",
                      "http://mirror.example:8080/balctl-agent", "");
  CAPTURE(url);
  auto r = parse_config(cfg_top(R"("admin":{"agent_binary_url":")" + url + R"("})"));
  INFO(joined(r.errors));
  REQUIRE(r.ok());
  CHECK(r.config.admin.agent_binary_url == url);
}

TEST_CASE("an admin URL of the wrong type is one error, not one per check",
          "[config][unit]") {
  auto key = GENERATE(as<std::string>{}, "public_url", "agent_install_url",
                      "agent_binary_url");
  CAPTURE(key);
  auto r = parse_config(cfg_top(R"("admin":{")" + key + R"(":7})"));
  INFO(joined(r.errors));
  CHECK(r.errors.size() == 1);
  CHECK(has_error(r, "admin." + key + ": must be a string"));
}

TEST_CASE("each invalid admin value names its key", "[config][unit]") {
  auto [admin, expected] = GENERATE(table<std::string, std::string>({
    {R"({"listen":"nowhere"})", "admin.listen = \"nowhere\": must be empty"},
    {R"({"max_body_bytes":10})", "admin.max_body_bytes = 10: must be between 1024"},
    {R"({"request_timeout_ms":0})", "admin.request_timeout_ms = 0: must be between 100"},
    {R"({"enroll_failures_per_minute":0})", "admin.enroll_failures_per_minute = 0"},
    {R"({"tls_cert_file":"c.pem"})", "admin.tls_key_file: tls_cert_file and tls_key_file go together"},
    {R"({"tokens":{}})", "admin.tokens: must be an array"},
    {R"({"tokens":[{"name":"x","role":"root","sha256":")" + std::string(64, 'a') + "\"}]}",
     "admin.tokens[0].role: must be admin or read-only"},
    {R"({"tokens":[{"name":"x","role":"admin","sha256":"abc"}]})",
     "admin.tokens[0].sha256: must be the token's SHA-256"},
    {R"({"tokens":[{"role":"admin","sha256":")" + std::string(64, 'a') + "\"}]}",
     "admin.tokens[0].name: required"},
    {R"({"colour":1})", "admin.colour: unknown key"},
    {R"("x")", "admin: must be an object"},
    {R"({"agent_install_url":"ftp://x/i.sh"})", "admin.agent_install_url = \"ftp://x/i.sh\": must be an http"},
    {R"({"agent_binary_url":"ftp://x/balctl-agent"})",
     "admin.agent_binary_url = \"ftp://x/balctl-agent\": must be an http:// or https:// URL"},
    {R"({"agent_binary_url":"/srv/balctl-agent"})",
     "admin.agent_binary_url = \"/srv/balctl-agent\": must be an http:// or https:// URL"},
    {R"({"agent_binary_url":7})", "admin.agent_binary_url: must be a string"},
    {R"({"agent_package_url":"https://x/a.zip"})", "admin.agent_package_url: unknown key"},
    {R"({"heartbeat_tls_endpoint":"nohost"})", "admin.heartbeat_tls_endpoint = \"nohost\": must be empty"},
    {R"({"heartbeat_interval_s":0})", "admin.heartbeat_interval_s = 0: must be between 1"},
  }));
  auto r = parse_config(cfg_top("\"admin\":" + admin));
  CAPTURE(admin);
  INFO(joined(r.errors));
  CHECK(has_error(r, expected));
}

TEST_CASE("the heartbeat TLS listener is off by default and needs a certificate and key",
          "[config][unit]") {
  auto d = parse_config(cfg_top(R"("log_level":"info")"));
  CHECK(d.ok());
  CHECK(d.config.heartbeat_tls.listen.empty());
  CHECK(d.config.admin.heartbeat_interval_s == 2);
  auto ok = parse_config(cfg_top(
    R"("heartbeat_tls":{"listen":"0.0.0.0:7948","cert_file":"c.pem","key_file":"k.pem","idle_timeout_s":30})"));
  INFO(joined(ok.errors));
  CHECK(ok.ok());
  CHECK(ok.config.heartbeat_tls.listen == "0.0.0.0:7948");
  CHECK(ok.config.heartbeat_tls.idle_timeout_s == 30);
  auto [tls, expected] = GENERATE(table<std::string, std::string>({
    {R"({"listen":"0.0.0.0:7948"})", "heartbeat_tls.cert_file: required when heartbeat_tls.listen is set"},
    {R"({"listen":"0.0.0.0:7948","cert_file":"c.pem"})", "heartbeat_tls.key_file: required"},
    {R"({"listen":"x"})", "heartbeat_tls.listen = \"x\": must be empty"},
    {R"({"max_connections":0})", "heartbeat_tls.max_connections = 0: must be between 1"},
    {R"({"idle_timeout_s":1})", "heartbeat_tls.idle_timeout_s = 1: must be between 5"},
    {R"({"handshake_timeout_ms":5})", "heartbeat_tls.handshake_timeout_ms = 5"},
    {R"({"port":1})", "heartbeat_tls.port: unknown key"},
    {R"([])", "heartbeat_tls: must be an object"},
  }));
  auto r = parse_config(cfg_top("\"heartbeat_tls\":" + tls));
  CAPTURE(tls);
  INFO(joined(r.errors));
  CHECK(has_error(r, expected));
}

TEST_CASE("run-time pool settings are read with the config file's rules",
          "[config][unit]") {
  pool_config pc;
  pc.failover_delay_s = 30;
  auto errors = read_pool_settings(R"({"failover_delay_s":60,"failback":"automatic"})", pc);
  CHECK(errors.empty());
  CHECK(pc.failover_delay_s == 60);
  CHECK(pc.failback == failback_policy::automatic);
  errors = read_pool_settings(R"({"failover_delay_s":5})", pc);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].field == "failover_delay_s");
  CHECK(errors[0].message == "must be between 10 and 120");
  CHECK(errors[0].value == "5");
  CHECK(pc.failover_delay_s == 60);
  errors = read_pool_settings(R"({"name":"x"})", pc);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].field == "name");
  CHECK(errors[0].message == "unknown key");
  CHECK(read_pool_settings("[1]", pc).size() == 1);
  CHECK(read_pool_settings("{", pc).size() == 1);
}

namespace {

/// A cluster config (with the redis store it needs) and extra cluster keys.
std::string cfg_cluster(const std::string& extra) {
  return cfg_top("\"store\":\"redis://h\",\"cluster\":{\"node_id\":\"a\"" +
                 (extra.empty() ? "" : "," + extra) + "}");
}

std::string in_quotes(const std::string& s) { return "\"" + s + "\""; }

/// The three cluster.tls_* keys.
std::string tls_keys(const std::string& cert, const std::string& key, const std::string& ca) {
  return "\"tls_cert_file\":" + in_quotes(cert) + ",\"tls_key_file\":" + in_quotes(key) +
         ",\"tls_ca_file\":" + in_quotes(ca);
}

// A CA and a node certificate it signed, in a directory of their own.
struct cluster_pki {
  test::temp_dir dir;
  test::test_pki pki = test::make_test_pki(dir.file(""));
  std::string cert = dir.file("node.pem");
  std::string key = dir.file("node.key");
  cluster_pki() {
    REQUIRE(pki.error.empty());
    REQUIRE(test::make_node_cert(pki, cert, key));
  }
};

} // namespace

TEST_CASE("the cluster link is plain without tls keys and TLS with all three",
          "[config][unit][cluster]") {
  auto plain = parse_config(cfg_cluster(""));
  INFO(joined(plain.errors));
  REQUIRE(plain.ok());
  CHECK_FALSE(plain.config.cluster.tls());
  CHECK(plain.config.cluster.tls_ca_file.empty());

  cluster_pki f;
  auto r = parse_config(cfg_cluster(tls_keys(f.cert, f.key, f.pki.ca_cert)));
  INFO(joined(r.errors));
  REQUIRE(r.ok());
  CHECK(r.config.cluster.tls());
  CHECK(r.config.cluster.tls_cert_file == f.cert);
  CHECK(r.config.cluster.tls_key_file == f.key);
  CHECK(r.config.cluster.tls_ca_file == f.pki.ca_cert);
}

TEST_CASE("some but not all of the cluster tls keys name each missing key",
          "[config][unit][cluster]") {
  // Names, not paths: each generated case runs with a new directory.
  auto [present, missing] = GENERATE(table<std::vector<std::string>, std::vector<std::string>>({
    {{"tls_cert_file"}, {"tls_key_file", "tls_ca_file"}},
    {{"tls_key_file"}, {"tls_cert_file", "tls_ca_file"}},
    {{"tls_ca_file"}, {"tls_cert_file", "tls_key_file"}},
    {{"tls_cert_file", "tls_key_file"}, {"tls_ca_file"}},
    {{"tls_cert_file", "tls_ca_file"}, {"tls_key_file"}},
    {{"tls_key_file", "tls_ca_file"}, {"tls_cert_file"}},
  }));
  cluster_pki f;
  std::map<std::string, std::string> file = {
    {"tls_cert_file", f.cert}, {"tls_key_file", f.key}, {"tls_ca_file", f.pki.ca_cert}};
  std::string extra;
  for (const auto& k : present) {
    extra += (extra.empty() ? "" : ",") + in_quotes(k) + ":" + in_quotes(file[k]);
  }
  CAPTURE(extra);
  auto r = parse_config(cfg_cluster(extra));
  INFO(joined(r.errors));
  REQUIRE(r.errors.size() == missing.size());
  for (std::size_t i = 0; i < missing.size(); ++i) {
    CHECK_THAT(r.errors[i], Catch::StartsWith("cluster." + missing[i] + ": required with "
                                              "the other cluster.tls_* keys"));
  }
  CHECK_FALSE(r.config.cluster.tls());
}

TEST_CASE("a cluster tls file that cannot be read or loaded is one error naming its key",
          "[config][unit][cluster]") {
  // Files by name (each generated case runs with a new directory): the
  // node's certificate, key and CA, and the ways they go wrong.
  auto [cert, key, ca, expected_key, expected] =
    GENERATE(table<std::string, std::string, std::string, std::string, std::string>({
      {"missing", "key", "ca", "tls_cert_file", "cannot read: No such file or directory"},
      {"cert", "missing", "ca", "tls_key_file", "cannot read: No such file or directory"},
      {"cert", "key", "missing", "tls_ca_file", "cannot read: No such file or directory"},
      {"cert", "key", "dir", "tls_ca_file", "cannot read: is a directory"},
      {"cert", "empty", "ca", "tls_key_file", "cannot read: the file is empty"},
      {"key", "key", "ca", "tls_cert_file", "not a PEM certificate"},
      {"cert", "cert", "ca", "tls_key_file", "not an unencrypted PEM private key"},
      {"cert", "other_key", "ca", "tls_key_file", "not an unencrypted PEM private key"},
      {"cert", "encrypted", "ca", "tls_key_file", "not an unencrypted PEM private key"},
      {"cert", "key", "key", "tls_ca_file", "not a PEM CA certificate file"},
    }));
  cluster_pki f;
  std::map<std::string, std::string> file = {
    {"cert", f.cert},          {"key", f.key},
    {"ca", f.pki.ca_cert},     {"missing", f.dir.file("missing.pem")},
    {"dir", f.dir.file("")},   {"empty", f.dir.file("empty.pem")},
    {"other_key", f.pki.server_key}, {"encrypted", f.dir.file("encrypted.key")}};
  std::ofstream(file["empty"]).close();
  // The node's key, encrypted: nobody is there to type the passphrase.
  {
    std::unique_ptr<FILE, test::detail::file_close> in(std::fopen(f.key.c_str(), "r"));
    REQUIRE(in);
    test::detail::pkey_ptr k(PEM_read_PrivateKey(in.get(), nullptr, nullptr, nullptr));
    std::unique_ptr<FILE, test::detail::file_close> out(
      std::fopen(file["encrypted"].c_str(), "w"));
    REQUIRE((k && out));
    char pass[] = "passphrase";
    REQUIRE(PEM_write_PrivateKey(out.get(), k.get(), EVP_aes_128_cbc(), nullptr, 0, nullptr,
                                 pass) == 1);
  }
  CAPTURE(cert, key, ca);
  auto r = parse_config(cfg_cluster(tls_keys(file[cert], file[key], file[ca])));
  INFO(joined(r.errors));
  REQUIRE(r.errors.size() == 1);
  auto at_fault = expected_key == "tls_cert_file"  ? cert
                  : expected_key == "tls_key_file" ? key
                                                   : ca;
  CHECK_THAT(r.errors[0], Catch::StartsWith("cluster." + expected_key + " = " +
                                            in_quotes(file[at_fault]) + ": " + expected));
  // A file's name, never its content.
  CHECK_THAT(r.errors[0], !Catch::Contains("PRIVATE KEY"));
}

TEST_CASE("an empty or non-string cluster tls key is an error naming it",
          "[config][unit][cluster]") {
  cluster_pki f;
  auto r = parse_config(cfg_cluster("\"tls_cert_file\":\"\",\"tls_key_file\":" + in_quotes(f.key) +
                                    ",\"tls_ca_file\":" + in_quotes(f.pki.ca_cert)));
  INFO(joined(r.errors));
  REQUIRE(r.errors.size() == 1);
  CHECK_THAT(r.errors[0], Catch::StartsWith("cluster.tls_cert_file: must not be empty"));
  auto n = parse_config(cfg_cluster("\"tls_ca_file\":7," + std::string("\"tls_cert_file\":") +
                                    in_quotes(f.cert) + ",\"tls_key_file\":" + in_quotes(f.key)));
  INFO(joined(n.errors));
  REQUIRE(n.errors.size() == 1);
  CHECK_THAT(n.errors[0], Catch::StartsWith("cluster.tls_ca_file: must be a string"));
}

TEST_CASE("the notify section is read with its defaults, secrets from files",
          "[config][unit]") {
  auto d = parse_config(cfg_top(R"("log_level":"info")"));
  REQUIRE(d.ok());
  CHECK(d.config.notify.smtp_url.empty());
  CHECK(d.config.notify.dedup_window_s == 900);
  CHECK(d.config.notify.retry_initial_ms == 1000);
  CHECK(d.config.notify.retry_max_ms == 300000);
  CHECK(d.config.notify.retry_give_up_s == 3600);
  CHECK(d.config.notify.max_queue == 10000);
  CHECK(d.config.notify.webhook_timeout_ms == 10000);
  test::temp_dir dir;
  std::ofstream(dir.file("smtp.pass")) << "p4ss word\n";
  std::ofstream(dir.file("hook.key")) << "hook-secret\r\n";
  auto ok = parse_config(cfg_top(
    R"("notify":{"smtp_url":"smtp://mail.example:587","smtp_from":"balctl@example.com",)"
    R"("smtp_username":"alerts","smtp_password_file":")" + dir.file("smtp.pass") +
    R"(","smtp_starttls":true,"webhook_secret_file":")" + dir.file("hook.key") +
    R"(","dedup_window_s":60,"retry_initial_ms":500,"retry_max_ms":60000,"retry_give_up_s":600})"));
  INFO(joined(ok.errors));
  REQUIRE(ok.ok());
  const auto& n = ok.config.notify;
  CHECK(n.smtp_url == "smtp://mail.example:587");
  CHECK(n.smtp_starttls);
  CHECK(n.smtp_password == "p4ss word");
  CHECK(n.webhook_secret == "hook-secret");
  CHECK(n.dedup_window_s == 60);
  CHECK(n.retry_give_up_s == 600);
}

TEST_CASE("each invalid notify value names its key", "[config][unit]") {
  auto [notify, expected] = GENERATE(table<std::string, std::string>({
    {R"({"smtp_host":"x"})", "notify.smtp_host: unknown key"},
    {R"({"smtp_url":"http://mail.example"})", "notify.smtp_url: must start with smtp:// or smtps://"},
    {R"({"smtp_url":"smtp://u:pw@mail.example","smtp_from":"a@b.c"})", "notify.smtp_url: must be smtp[s]://host[:port]"},
    {R"({"smtp_url":"smtp://mail.example"})", "notify.smtp_from: required with smtp_url"},
    {R"({"smtp_from":"Balctl <a@b.c>"})", "notify.smtp_from = \"Balctl <a@b.c>\": must be a bare address"},
    {R"({"smtp_username":"u"})", "notify.smtp_password_file: required with smtp_username"},
    {R"({"smtp_username":"u","smtp_password_file":"/nonexistent/pw"})", "notify.smtp_password_file = \"/nonexistent/pw\": cannot read"},
    {R"({"smtp_starttls":"yes"})", "notify.smtp_starttls: must be true or false"},
    {R"({"smtp_url":"smtps://m.example","smtp_from":"a@b.c","smtp_starttls":true})", "notify.smtp_starttls: only with smtp://"},
    {R"({"smtp_ca_file":"/nonexistent/ca.pem"})", "notify.smtp_ca_file = \"/nonexistent/ca.pem\": cannot read"},
    {R"({"webhook_secret_file":"/nonexistent/key"})", "notify.webhook_secret_file = \"/nonexistent/key\": cannot read"},
    {R"({"webhook_timeout_ms":50})", "notify.webhook_timeout_ms = 50: must be between 100 and 600000"},
    {R"({"dedup_window_s":-1})", "notify.dedup_window_s = -1: must be between 0 and 86400"},
    {R"({"max_queue":0})", "notify.max_queue = 0: must be between 1 and 1000000"},
    {R"({"retry_initial_ms":5})", "notify.retry_initial_ms = 5: must be between 10"},
    {R"({"retry_initial_ms":5000,"retry_max_ms":1000})", "notify.retry_max_ms = 1000: must be at least retry_initial_ms (5000)"},
    {R"({"retry_give_up_s":0})", "notify.retry_give_up_s = 0: must be between 1 and 604800"},
    {R"([])", "notify: must be an object"},
  }));
  auto r = parse_config(cfg_top("\"notify\":" + notify));
  CAPTURE(notify);
  INFO(joined(r.errors));
  CHECK(has_error(r, expected));
}

TEST_CASE("a notify secret never appears in an error", "[config][unit]") {
  auto r = parse_config(cfg_top(
    R"("notify":{"smtp_url":"smtp://user:hunter2@mail.example","smtp_from":"a@b.c"})"));
  REQUIRE_FALSE(r.ok());
  CHECK(joined(r.errors).find("hunter2") == std::string::npos);
}

TEST_CASE("protection keeps chunks in the embedded store by default", "[config][unit]") {
  auto d = parse_config(cfg_top(R"("log_level":"info")"));
  REQUIRE(d.ok());
  const auto& p = d.config.protection;
  CHECK(p.object_store == "embedded");
  CHECK(p.chunk_dir.empty());
  CHECK(p.public_url.empty());
  CHECK(p.chunk_size_bytes == 8 * 1024 * 1024);
  CHECK(p.url_ttl_s == 3600);
  CHECK(p.s3.path_style);

  test::temp_dir dir("balctl-config-s3");
  std::ofstream(dir.file("secret")) << "s3cr3t\n";
  auto ok = parse_config(cfg_top(
    R"("protection":{"object_store":"s3","chunk_size_bytes":65536,"url_ttl_s":604800,)"
    R"("s3":{"endpoint":"https://s3.eu-west-3.amazonaws.com",)"
    R"("region":"eu-west-3","bucket":"balctl-chunks","path_style":false,"prefix":"prod/",)"
    R"("access_key_id":"AKIAEXAMPLE","secret_access_key_file":")" + dir.file("secret") + R"("}})"));
  INFO(joined(ok.errors));
  REQUIRE(ok.ok());
  const auto& s = ok.config.protection.s3;
  CHECK(ok.config.protection.object_store == "s3");
  CHECK(ok.config.protection.chunk_size_bytes == 65536);
  CHECK(s.bucket == "balctl-chunks");
  CHECK_FALSE(s.path_style);
  CHECK(s.prefix == "prod/");
}

TEST_CASE("each invalid protection value is an error naming the key", "[config][unit]") {
  auto [protection, expected] = GENERATE(table<std::string, std::string>({
    {R"({"object_store":"nfs"})", "protection.object_store = \"nfs\": must be embedded or s3"},
    {R"({"chunk_size_bytes":1024})", "protection.chunk_size_bytes = 1024: must be between 65536 and 67108864"},
    {R"({"chunk_size_bytes":134217728})", "protection.chunk_size_bytes = 134217728: must be between"},
    {R"({"url_ttl_s":604801})", "protection.url_ttl_s = 604801: must be between 60 and 604800"},
    {R"({"url_ttl_s":"1h"})", "protection.url_ttl_s: must be an integer"},
    {R"({"chunk_dir":""})", "protection.chunk_dir: must not be empty"},
    {R"({"public_url":"engine:7947"})", "protection.public_url = \"engine:7947\": must be an http"},
    {R"({"public_url":"http://e/?x=1"})", "protection.public_url = \"http://e/?x=1\": must be an http"},
    {R"({"bucket":"x"})", "protection.bucket: unknown key"},
    {R"([])", "protection: must be an object"},
    {R"({"object_store":"s3"})", "protection.s3: required with protection.object_store = \"s3\""},
    {R"({"object_store":"s3","chunk_dir":"/var/lib/balctld/chunks"})",
     "protection.chunk_dir: only with protection.object_store = \"embedded\""},
    {R"({"object_store":"s3","public_url":"https://engine.example:7947"})",
     "protection.public_url: only with protection.object_store = \"embedded\""},
    {R"({"object_store":"s3","s3":{}})", "protection.s3.endpoint: required with"},
    {R"({"object_store":"s3","s3":{}})", "protection.s3.bucket: required with"},
    {R"({"object_store":"s3","s3":{}})", "protection.s3.secret_access_key_file: required with"},
    {R"({"s3":{"endpoint":"s3.example"}})", "protection.s3.endpoint = \"s3.example\": must be an http"},
    {R"({"s3":{"region":"EU West"}})", "protection.s3.region = \"EU West\": must be 1..32"},
    {R"({"s3":{"bucket":"My_Bucket"}})", "protection.s3.bucket = \"My_Bucket\": must be 3..63"},
    {R"({"s3":{"bucket":"-ab"}})", "protection.s3.bucket = \"-ab\": must be 3..63"},
    {R"({"s3":{"prefix":"/abs"}})", "protection.s3.prefix = \"/abs\": must be up to 256"},
    {R"({"s3":{"prefix":"a/../b"}})", "protection.s3.prefix = \"a/../b\": must be up to 256"},
    {R"({"s3":{"path_style":"yes"}})", "protection.s3.path_style: must be true or false"},
    {R"({"s3":{"secret_access_key":"x"}})", "protection.s3.secret_access_key: unknown key"},
    {R"({"object_store":"s3","s3":{"secret_access_key_file":"/nonexistent/s"}})",
     "protection.s3.secret_access_key_file = \"/nonexistent/s\": cannot read"},
  }));
  auto r = parse_config(cfg_top("\"protection\":" + protection));
  CAPTURE(protection);
  INFO(joined(r.errors));
  CHECK(has_error(r, expected));
}
