#pragma once

// DNS router: the registry of provider credentials and their executors
// (actors/dns_executor, one each), and where pools send what moves DNS. It
// splits a batch of changes by credential, hands each part to its executor
// and answers when all have ended; a decision with no changes (the pool
// has no DNS provider, or sync is off) is recorded and answered at once.
// Alerts from the executors go back to the pool that asked.
//
//   (execute_atom, int64_t decision_id, pool_decision, vector<dns_change_record>)
//       -> bool   true when every change is done (or superseded by a newer one)
//   (submit_atom, vector<dns_change_record>) -> vector<dns_change_record>
//       the changes' results in order; a change for a credential nobody
//       has is failed (and, when journaled, marked cancelled)
//   (read_atom, vector<dns_change_record>) -> vector<dns_change_record>
//   (list_atom, provider, zone) -> vector<dns_change_record>
//       reads and lists through the credential's executor (dns_executor.hpp)
//   (put_provider_atom, pool, id, body, vector<member_id> pool_members)
//       -> vector<dns_provider_config>
//       adds (id "") or updates a pool's credential from an API body, with
//       the config file's rules (config::read_dns_provider_json); stores it,
//       then spawns or updates its executor. A WHM key names a member of
//       the pool; a Cloudflare key marked global unmarks the pool's others.
//       Answers the pool's credentials, secrets blanked.
//   (delete_provider_atom, pool, id) -> vector<dns_provider_config>
//   (delete_pool_atom, pool)   the pool is gone: its credentials too
//   (dns_alert_atom, pool, message)   from executors; forwarded to the pool
//   (caf::close_atom)   stops the executors, then the router (shutdown)
//
// Secrets live here and in the executors only; everything this router
// answers has them blanked.

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/dns_executor.hpp"
#include "actors/messages.hpp"

namespace balctl {

struct dns_router_deps {
  caf::actor store;
  /// Everything but the credential for a new executor (I/O, clock, store,
  /// metrics); the router fills in provider, limits and timeouts.
  dns_executor_deps executor_base;
};

/// One executor's part of a scatter, until it answers (dns_router.cpp).
struct scatter_part;

struct dns_router_state {
  dns_router_deps deps;
  // Parts asked of each executor and not answered yet: an executor that
  // stops (crashes, its credential deleted) would never answer them, so
  // they are failed then, and the asker is not left waiting forever.
  std::unordered_map<std::string, std::vector<std::shared_ptr<scatter_part>>> parts;
  std::map<std::string, dns_provider_config> providers;  // by id, secrets included
  std::unordered_map<std::string, caf::actor> executors; // by provider id
  std::unordered_map<std::string, caf::actor> pools;     // by pool, last sender
  std::vector<pool_decision> executed; // decisions seen (tests, logs)
  std::set<std::string> given_up;      // cluster: pools another node owns now
  std::size_t closing = 0;             // executors still to go at shutdown
  static inline const char* name = "dns_router";
};

/// providers: every credential (config file and stored API ones).
/// executors: executors already spawned (tests); the others are spawned
/// here from deps.executor_base.
caf::behavior dns_router(caf::stateful_actor<dns_router_state>* self,
                         std::vector<dns_provider_config> providers,
                         std::unordered_map<std::string, caf::actor> executors,
                         dns_router_deps deps);

/// The executor's dependencies for credential c on top of base.
dns_executor_deps executor_deps(const dns_provider_config& c, dns_executor_deps base);

/// A copy without its secret (what leaves the router).
dns_provider_config without_secret(dns_provider_config c);

} // namespace balctl
