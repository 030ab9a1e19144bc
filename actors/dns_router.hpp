#pragma once

// DNS router: where pools send the decisions that move DNS. It hands each
// decision's changes to the executor of their provider credential
// (actors/dns_executor) and answers when they have ended; a decision with
// no changes (the pool has no DNS provider, or sync is off) is recorded
// and answered at once. Alerts from the executors go back to the pool.
//
//   (execute_atom, int64_t decision_id, pool_decision, vector<dns_change_record>)
//       -> bool   true when every change is done (or superseded by a newer one)
//   (dns_alert_atom, pool, message)   from executors; forwarded to the pool

#include <string>
#include <unordered_map>
#include <vector>

#include "actors/messages.hpp"

namespace balctl {

struct dns_router_state {
  std::unordered_map<std::string, caf::actor> executors; // by provider id
  std::unordered_map<std::string, caf::actor> pools;     // by pool, last sender
  std::vector<pool_decision> executed; // decisions seen (tests, logs)
  static inline const char* name = "dns_router";
};

caf::behavior dns_router(caf::stateful_actor<dns_router_state>* self,
                         std::unordered_map<std::string, caf::actor> executors);

} // namespace balctl
