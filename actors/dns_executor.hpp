#pragma once

// DNS executor interface: receives failover and fail-back decisions that
// move a pool's failover record. The DNS issue gives it providers
// (one executor per provider credential, rate limits, retries); until then
// it logs the change it would make and records it.
//
//   (execute_atom, int64_t decision_id, pool_decision) -> bool done
//   (get_atom) -> std::vector<pool_decision>   executed so far

#include "actors/messages.hpp"

namespace balctl {

struct dns_executor_state {
  std::string provider; // the credential this executor serves
  std::vector<pool_decision> executed;
  static inline const char* name = "dns_executor";
};

caf::behavior dns_executor(caf::stateful_actor<dns_executor_state>* self,
                           std::string provider);

} // namespace balctl
