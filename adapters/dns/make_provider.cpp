#include "adapters/dns/make_provider.hpp"

#include "adapters/dns/cloudflare_provider.hpp"
#include "adapters/dns/powerdns_provider.hpp"
#include "adapters/dns/rfc2136_provider.hpp"
#include "adapters/dns/whm_provider.hpp"

namespace balctl::dns {

std::shared_ptr<provider> make_provider(const dns_provider_config& c) {
  switch (c.kind) {
    case dns_provider_kind::cloudflare: {
      cloudflare_options o;
      o.api_base = c.api_base;
      o.api_token = c.secret;
      return make_cloudflare_provider(std::move(o));
    }
    case dns_provider_kind::whm: {
      whm_options o;
      o.api_base = c.api_base;
      o.user = c.user;
      o.api_token = c.secret;
      return make_whm_provider(std::move(o));
    }
    case dns_provider_kind::powerdns: {
      powerdns_options o;
      o.api_base = c.api_base;
      o.server_id = c.server_id;
      o.api_key = c.secret;
      return make_powerdns_provider(std::move(o));
    }
    case dns_provider_kind::rfc2136: {
      rfc2136_options o;
      o.server = c.server;
      o.tsig_name = c.tsig_name;
      o.tsig_algorithm = c.tsig_algorithm;
      o.tsig_secret_base64 = c.secret;
      return make_rfc2136_provider(std::move(o));
    }
  }
  return nullptr;
}

http_options http_options_of(const dns_provider_config& c) {
  http_options o;
  o.timeout_ms = c.timeout_ms;
  o.connect_timeout_ms = std::min<std::int64_t>(5'000, c.timeout_ms);
  o.ca_file = c.ca_file;
  return o;
}

} // namespace balctl::dns
