#include "engine/bootstrap.hpp"

#include <unordered_map>

#include "engine/log.hpp"

namespace balctl {

engine_parts bootstrap(const engine_config& cfg, store& st,
                       std::int64_t now_ms) {
  engine_parts parts;
  parts.reg = std::make_shared<registry>();
  std::unordered_map<member_id, member_state_record> saved;
  for (auto& r : st.load_member_states()) {
    saved[r.id] = r;
  }
  for (const auto& pc : cfg.pools) {
    st.put_pool(pc);
    auto rt = std::make_shared<pool_runtime>();
    rt->config = pc;
    rt->detection =
      std::make_shared<const detection_params>(make_detection_params(cfg, pc));
    rt->policy = make_pool_params(cfg, pc);
    if (auto a = st.active_member(pc.name)) {
      rt->active = *a;
    }
    auto grace_ms = std::int64_t{cfg.restart_grace_s > 0 ? cfg.restart_grace_s
                                                         : pc.failover_delay_s} *
                    1000;
    std::size_t restored = 0;
    rt->members.reserve(pc.members.size());
    for (const auto& mc : pc.members) {
      auto state = member_state::pending;
      std::int64_t since = now_ms;
      const member_state_record* prior = nullptr;
      if (auto i = saved.find(mc.id); i != saved.end()) {
        ++restored;
        prior = &i->second;
        state = prior->state;
        since = prior->state_since_ms;
      }
      auto member = make_member(mc.id, mc.hostname, mc.name,
                                member_fsm(rt->detection, state, since,
                                           now_ms + grace_ms));
      auto& slot = *member.slot;
      slot.key = mc.key;
      for (const auto& ip : mc.allowed_ips) {
        ip_address a;
        if (ip_address::parse(ip, a)) {
          slot.allowed_ips.push_back(a);
        }
      }
      if (prior != nullptr) {
        slot.last_seq.store(prior->last_seq);
        if (state != member_state::pending && state != member_state::down) {
          slot.last_seen_ms.store(now_ms);
        } else {
          slot.last_seen_ms.store(prior->last_seen_ms);
        }
      }
      member.rt->publish_state(now_ms);
      parts.reg->add(member.slot);
      rt->members.push_back(std::move(member.rt));
    }
    log::info("pool_loaded", {{"pool", pc.name},
                              {"members", std::to_string(rt->members.size())},
                              {"restored_states", std::to_string(restored)},
                              {"active", std::to_string(rt->active)},
                              {"grace_ms", std::to_string(grace_ms)}});
    rt->config.members.clear();
    rt->config.members.shrink_to_fit();
    parts.pools.push_back(std::move(rt));
  }
  return parts;
}

} // namespace balctl
