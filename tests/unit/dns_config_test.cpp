#include <catch2/catch.hpp>

#include <algorithm>

#include "config/config.hpp"

using namespace balctl;

namespace {

const char* const key64 = "0101010101010101010101010101010101010101010101010101010101010101";

std::string with(const std::string& providers, const std::string& pool_extra,
                 const std::string& member_extra = "") {
  return std::string(R"({"dns_providers": )") + providers +
         R"(, "pools": [{"name": "web", "failover_hostname": "www.example.com")" +
         pool_extra + R"(, "members": [{"id": 1, "hostname": "n1.example.com", "key": ")" +
         key64 + R"(", "allowed_ips": ["2001:db8::1", "192.0.2.1"])" + member_extra + "}]}]}";
}

bool has_error(const config_result& r, const std::string& needle) {
  return std::any_of(r.errors.begin(), r.errors.end(), [&](const std::string& e) {
    return e.find(needle) != std::string::npos;
  });
}

} // namespace

TEST_CASE("DNS providers and a pool's Dynamic DNS settings are read", "[config][dns][unit]") {
  auto r = parse_config(with(
    R"([{"id": "cf", "type": "powerdns", "api_base": "http://127.0.0.1:8081",
         "secret": "tok-123", "global": true, "rate_limit_requests": 1200},
        {"id": "ns1", "type": "rfc2136", "server": "127.0.0.1:5300",
         "tsig_name": "balctl", "secret": "c2VjcmV0", "rate_limit_requests": 50,
         "rate_limit_window_s": 10}])",
    R"(, "dns_provider": "cf", "dns_zone": "example.com", "dns_ttl_s": 120, "dns_only": true)",
    R"(, "public_ipv4": "198.51.100.1")"));
  INFO(r.errors.size());
  REQUIRE(r.ok());
  const auto& c = r.config;
  REQUIRE(c.dns_providers.size() == 2);
  CHECK(c.dns_providers[0].kind == dns_provider_kind::powerdns);
  CHECK(c.dns_providers[0].api_base == "http://127.0.0.1:8081");
  CHECK(c.dns_providers[0].rate_limit_requests == 1200);
  CHECK(c.dns_providers[0].rate_limit_window_s == 300);
  CHECK(c.dns_providers[0].global);
  CHECK(c.dns_providers[1].rate_limit_requests == 50);
  const auto& p = c.pools[0];
  CHECK(p.dns_provider == "cf");
  CHECK(p.dns_zone == "example.com");
  CHECK(p.dns_ttl_s == 120);
  CHECK(p.dns_sync);
  CHECK(p.dns_only);
  CHECK(member_address(p.members[0]) == "198.51.100.1");
  CHECK(member_address(p.members[0], true) == "2001:db8::1");
}

TEST_CASE("a member's failover address defaults to its first allowed IP of the family",
          "[config][dns][unit]") {
  member_config m;
  m.allowed_ips = {"2001:db8::1", "192.0.2.1", "192.0.2.2"};
  CHECK(member_address(m) == "192.0.2.1");
  CHECK(member_address(m, true) == "2001:db8::1");
  m.allowed_ips.clear();
  CHECK(member_address(m).empty());
}

TEST_CASE("bad DNS provider config names the key and never echoes the secret",
          "[config][dns][unit]") {
  using row = std::pair<std::string, std::string>;
  auto [providers, expected] = GENERATE(table<std::string, std::string>({
    row{R"([{"type": "cloudflare", "secret": "s3cr3t-value"}])", "dns_providers[0].id: required"},
    row{R"([{"id": "x", "type": "route53", "secret": "s3cr3t-value"}])", "dns_providers[0].type"},
    row{R"([{"id": "x", "type": "powerdns", "secret": "s3cr3t-value"}])",
        "dns_providers[0].api_base: required for type powerdns"},
    row{R"([{"id": "x", "type": "rfc2136", "tsig_name": "k", "secret": "s3cr3t-value"}])",
        "dns_providers[0].server: required for type rfc2136"},
    row{R"([{"id": "x", "type": "cloudflare"}])", "dns_providers[0].secret: required"},
    row{R"([{"id": "x", "type": "cloudflare", "secret": 12345678}])",
        "dns_providers[0].secret: must be a string"},
    row{R"([{"id": "x", "type": "cloudflare", "secret": "s3cr3t-value", "rate_limit_requests": -1}])",
        "dns_providers[0].rate_limit_requests"},
    row{R"([{"id": "x", "type": "cloudflare", "secret": "s3cr3t-value", "colour": 1}])",
        "dns_providers[0].colour: unknown key"},
    row{R"([{"id": "cf", "type": "cloudflare", "secret": "s3cr3t-value"},
            {"id": "cf", "type": "cloudflare", "secret": "s3cr3t-value"}])",
        "duplicate provider id"},
  }));
  CAPTURE(providers);
  auto r = parse_config(with(providers, ""));
  REQUIRE_FALSE(r.ok());
  CHECK(has_error(r, expected));
  CHECK_FALSE(has_error(r, "s3cr3t-value"));
  CHECK_FALSE(has_error(r, "12345678"));
}

TEST_CASE("Cloudflare and WHM credentials are read with their defaults", "[config][dns][unit]") {
  auto r = parse_config(with(R"([{"id": "cf", "type": "cloudflare", "secret": "s3cr3t-value"},
                                 {"id": "whm1", "type": "whm", "api_base": "https://n1.example.com:2087",
                                  "user": "dnsclusteruser", "secret": "k3y"}])",
                             ""));
  INFO(r.errors.size());
  REQUIRE(r.ok());
  const auto& cf = r.config.dns_providers[0];
  CHECK(cf.kind == dns_provider_kind::cloudflare);
  CHECK(cf.api_base == "https://api.cloudflare.com/client/v4");
  CHECK(cf.rate_limit_requests == 1200);
  CHECK(cf.rate_limit_window_s == 300);
  const auto& whm = r.config.dns_providers[1];
  CHECK(whm.kind == dns_provider_kind::whm);
  CHECK(whm.user == "dnsclusteruser");
  CHECK(whm.rate_limit_requests == 0);
  auto missing = parse_config(with(R"([{"id": "w", "type": "whm", "secret": "k3y"}])", ""));
  CHECK(has_error(missing, "dns_providers[0].api_base: required for type whm"));
}

TEST_CASE("an API provider body is read with the config file's rules, and a partial one updates",
          "[config][dns][unit]") {
  dns_provider_config p;
  auto errors = read_dns_provider_json(
    R"({"id": "whm-n2", "type": "whm", "api_base": "https://n2.example.com:2087",
        "secret": "k3y-one", "member": 2})", p);
  REQUIRE(errors.empty());
  CHECK(p.member == 2);
  CHECK(p.user == "root");
  // Rotate the secret and mark nothing else: the rest stays.
  errors = read_dns_provider_json(R"({"secret": "k3y-two", "timeout_ms": 5000})", p);
  REQUIRE(errors.empty());
  CHECK(p.secret == "k3y-two");
  CHECK(p.api_base == "https://n2.example.com:2087");
  CHECK(p.timeout_ms == 5000);
  CHECK(p.member == 2);
  CHECK(p.id == "whm-n2");

  using row = std::pair<std::string, std::string>;
  auto [body, field] = GENERATE(table<std::string, std::string>({
    row{R"([1])", ""},
    row{R"({"id": "x", "secret": "s3cr3t-value"})", "type"},
    row{R"({"id": "x", "type": "cloudflare", "secret_file": "/etc/shadow"})", "secret_file"},
    row{R"({"id": "x", "type": "whm", "secret": "s3cr3t-value", "api_base": "ftp://x"})", "api_base"},
    row{R"({"id": "x", "type": "cloudflare", "secret": "s3cr3t-value", "member": "two"})", "member"},
    row{R"({"id": "x y", "type": "cloudflare", "secret": "s3cr3t-value"})", "id"},
  }));
  CAPTURE(body);
  dns_provider_config fresh;
  auto es = read_dns_provider_json(body, fresh);
  REQUIRE_FALSE(es.empty());
  CHECK(es.front().field == field);
  for (const auto& e : es) {
    CHECK(e.value.find("s3cr3t-value") == std::string::npos);
  }
}

TEST_CASE("a pool's dns_provider must name a configured provider", "[config][dns][unit]") {
  auto r = parse_config(with("[]", R"(, "dns_provider": "nope")"));
  REQUIRE_FALSE(r.ok());
  CHECK(has_error(r, "pools[0].dns_provider = \"nope\": no dns_providers[] entry has this id"));
  auto bad = parse_config(with("[]", R"(, "dns_ttl_s": 0, "dns_sync": "yes")",
                               R"(, "public_ipv4": "2001:db8::1")"));
  CHECK(has_error(bad, "pools[0].dns_ttl_s"));
  CHECK(has_error(bad, "pools[0].dns_sync: must be true or false"));
  CHECK(has_error(bad, "pools[0].members[0].public_ipv4"));
}

TEST_CASE("run-time settings accept the Dynamic DNS keys", "[config][dns][unit]") {
  pool_config pc;
  auto errors = read_pool_settings(R"({"dns_provider": "cf", "dns_ttl_s": 30, "dns_sync": false})", pc);
  CHECK(errors.empty());
  CHECK(pc.dns_provider == "cf");
  CHECK(pc.dns_ttl_s == 30);
  CHECK_FALSE(pc.dns_sync);
}
