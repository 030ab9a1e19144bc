#include "actors/dns_executor.hpp"

#include "engine/log.hpp"

namespace balctl {

caf::behavior dns_executor(caf::stateful_actor<dns_executor_state>* self,
                           std::string provider) {
  self->state.provider = std::move(provider);
  return {
    [=](execute_atom, std::int64_t id, const pool_decision& d) -> bool {
      log::info("dns_change", {{"decision", std::to_string(id)},
                               {"pool", d.pool},
                               {"kind", to_string(d.kind)},
                               {"from", std::to_string(d.from)},
                               {"to", std::to_string(d.to)},
                               {"provider", self->state.provider}});
      self->state.executed.push_back(d);
      return true;
    },
    [=](caf::get_atom) { return self->state.executed; },
  };
}

} // namespace balctl
