#pragma once

// Cloudflare API v4 provider (Bearer token). Pure state machine; see
// provider.hpp. The token never appears in any step message.

#include <memory>
#include <string>

#include "adapters/dns/provider.hpp"

namespace balctl::dns {

struct cloudflare_options {
  std::string api_base = "https://api.cloudflare.com/client/v4";
  std::string api_token;
  int per_page = 100;
};

std::unique_ptr<provider> make_cloudflare_provider(cloudflare_options o);

} // namespace balctl::dns
