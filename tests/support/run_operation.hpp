#pragma once

// Drives one provider operation to its end through a real dns_io, blocking
// the test's thread (tests only; the engine drives operations from
// actors/dns_executor without blocking).

#include <future>

#include "adapters/dns/dns_io.hpp"
#include "adapters/dns/provider.hpp"

namespace balctl::test {

inline dns::step run_operation(dns::operation& op, dns::dns_io& io,
                               dns::http_options o = {},
                               std::int64_t dns_timeout_ms = 5'000) {
  auto s = op.start();
  while (s.k == dns::step::kind::http || s.k == dns::step::kind::dns) {
    if (s.k == dns::step::kind::http) {
      std::promise<dns::http_response> p;
      auto f = p.get_future();
      io.submit(std::move(s.http), o, [&p](dns::http_response r) { p.set_value(std::move(r)); });
      s = op.on_http(f.get());
    } else {
      std::promise<dns::dns_response> p;
      auto f = p.get_future();
      io.submit(std::move(s.dns), dns_timeout_ms,
                [&p](dns::dns_response r) { p.set_value(std::move(r)); });
      s = op.on_dns(f.get());
    }
  }
  return s;
}

} // namespace balctl::test
