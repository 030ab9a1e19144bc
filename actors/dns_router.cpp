#include "actors/dns_router.hpp"

#include "engine/log.hpp"

namespace balctl {

caf::behavior dns_router(caf::stateful_actor<dns_router_state>* self,
                         std::unordered_map<std::string, caf::actor> executors) {
  self->state.executors = std::move(executors);
  return {
    [=](execute_atom, std::int64_t id, const pool_decision& d,
        std::vector<dns_change_record>& changes) -> caf::result<bool> {
      auto& st = self->state;
      st.executed.push_back(d);
      if (auto sender = caf::actor_cast<caf::actor>(self->current_sender())) {
        st.pools[d.pool] = sender;
      }
      if (changes.empty()) {
        log::info("dns_change", {{"decision", std::to_string(id)},
                                 {"pool", d.pool},
                                 {"kind", to_string(d.kind)},
                                 {"from", std::to_string(d.from)},
                                 {"to", std::to_string(d.to)},
                                 {"provider", "none (recorded only)"}});
        return true;
      }
      // One decision's changes share a provider (the pool's).
      auto e = st.executors.find(changes.front().provider);
      if (e == st.executors.end()) {
        log::error("dns_provider_unknown", {{"decision", std::to_string(id)},
                                            {"pool", d.pool},
                                            {"provider", changes.front().provider}});
        return false;
      }
      auto rp = self->make_response_promise<bool>();
      self->request(e->second, caf::infinite, submit_atom_v, std::move(changes))
        .then(
          [=](const std::vector<dns_change_record>& rs) mutable {
            bool ok = true;
            for (const auto& r : rs) {
              ok = ok && (r.status == "done" || r.status == "superseded");
            }
            rp.deliver(ok);
          },
          [=](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [=](dns_alert_atom, const std::string& pool, const std::string& message) {
      auto& st = self->state;
      if (auto p = st.pools.find(pool); p != st.pools.end()) {
        self->send(p->second, dns_alert_atom_v, pool, message);
      }
    },
  };
}

} // namespace balctl
