#pragma once

// A provider for one configured credential (config: dns_providers[]).

#include <memory>

#include "adapters/dns/dns_io.hpp"
#include "adapters/dns/provider.hpp"
#include "config/config.hpp"

namespace balctl::dns {

std::shared_ptr<provider> make_provider(const dns_provider_config& c);
/// The HTTP settings its requests run with.
http_options http_options_of(const dns_provider_config& c);

} // namespace balctl::dns
