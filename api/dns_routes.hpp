#pragma once

// The admin API's Managed DNS and Protection routes (docs/openapi.yaml),
// under /v1/pools/{pool}/:
//   GET    dns                          the Managed DNS catalogue
//   POST   dns/refresh | dns/import | dns/sync   {"account": optional}
//   GET    dns/providers                POST dns/providers
//   PATCH  dns/providers/{id}           DELETE dns/providers/{id}
//   GET    accounts                     POST accounts
//   GET    accounts/{id}  PATCH accounts/{id}  DELETE accounts/{id}
//   POST   accounts/{id}/cut            {"to": "standby"|"source", "force": false}
// Provider secrets are write-only: no answer carries one.

#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "api/control.hpp"
#include "transport/http_server.hpp"

namespace balctl::api {

struct route_context {
  control& engine;
  bool reading = false;                 // GET or HEAD
  std::function<bool()> need_admin;     // answers 403 and returns false for read-only tokens
  std::function<bool(std::initializer_list<const char*>)> allow; // answers 405
  std::string who;                      // the token's name
};

/// Answers the request when seg (the path's segments: v1, pools, {pool},
/// ...) is one of these routes; false when it is not.
bool route_dns(const route_context& ctx, http::request& req, http::responder& respond,
               const std::vector<std::string>& seg);

} // namespace balctl::api
