#include "engine/bootstrap.hpp"

#include <unordered_map>
#include <unordered_set>

#include "engine/log.hpp"

namespace balctl {

std::shared_ptr<pool_runtime> make_pool_runtime(const engine_config& cfg,
                                                const pool_config& pc) {
  auto rt = std::make_shared<pool_runtime>();
  // Everything but the members (their facts go to slots and runtimes):
  // copying a large pool's member list only to drop it would double the
  // start-up peak.
  auto& c = rt->config;
  c.name = pc.name;
  c.label = pc.label;
  c.from_api = pc.from_api;
  c.preset = pc.preset;
  copy_settings(c, pc);
  rt->detection =
    std::make_shared<const detection_params>(make_detection_params(cfg, pc));
  rt->policy = make_pool_params(cfg, pc);
  return rt;
}

engine_parts bootstrap(const engine_config& cfg, store& st,
                       std::int64_t now_ms) {
  engine_parts parts;
  parts.reg = std::make_shared<registry>();
  std::unordered_map<member_id, member_state_record> saved;
  // A cluster node restores a pool's states when it takes the pool's lease
  // (the supervisor's take_over), from the owner's latest checkpoint: the
  // states read here would be older, and would stamp every member as
  // heard at this node's start.
  if (cfg.cluster.node_id.empty()) {
    for (auto& r : st.load_member_states()) {
      saved[r.id] = r;
    }
  }
  // The config file owns its pools; the store owns the ones the admin API
  // created. Read the stored ones first: a config pool replaces a stored
  // API pool of the same name (said loudly), and a config member may not
  // take an id an API member already has.
  std::unordered_set<std::string> declared;
  for (const auto& pc : cfg.pools) {
    declared.insert(pc.name);
  }
  std::vector<pool_config> api_pools;
  std::unordered_map<member_id, std::string> api_ids;
  for (auto& pc : st.load_pools(/*api_only=*/true)) {
    if (declared.count(pc.name) != 0) {
      log::warn("pool_shadowed", {{"pool", pc.name},
                                  {"members", std::to_string(pc.members.size())},
                                  {"reason", "declared in the config file, "
                                             "which replaces the pool the "
                                             "admin API had created"}});
      continue;
    }
    for (const auto& m : pc.members) {
      api_ids[m.id] = pc.name;
    }
    api_pools.push_back(std::move(pc));
  }
  for (std::size_t i = 0; i < cfg.pools.size(); ++i) {
    const auto& pc = cfg.pools[i];
    for (std::size_t k = 0; k < pc.members.size(); ++k) {
      auto id = pc.members[k].id;
      if (auto j = api_ids.find(id); j != api_ids.end()) {
        throw bootstrap_conflict(
          "pools[" + std::to_string(i) + "].members[" + std::to_string(k) +
          "].id = " + std::to_string(id) + ": already member " +
          std::to_string(id) + " of pool '" + j->second +
          "', created through the admin API; choose another id");
      }
    }
  }
  // Written only once every conflict is known to be absent.
  for (const auto& pc : cfg.pools) {
    st.put_pool(pc);
  }
  // Protected accounts and API credentials, by pool. A credential whose
  // id the config file now has too is dropped (said loudly): the file wins.
  std::unordered_map<std::string, std::vector<protected_account>> accounts;
  for (auto& [pool, a] : st.load_accounts()) {
    accounts[pool].push_back(std::move(a));
  }
  std::unordered_set<std::string> config_provider_ids;
  for (const auto& p : cfg.dns_providers) {
    config_provider_ids.insert(p.id);
  }
  std::unordered_map<std::string, std::vector<dns_provider_config>> providers;
  for (auto& p : st.load_dns_providers()) {
    if (config_provider_ids.count(p.id) != 0) {
      log::warn("dns_provider_shadowed", {{"id", p.id},
                                          {"pool", p.pool},
                                          {"reason", "the config file declares this id"}});
      continue;
    }
    auto blank = p;
    blank.secret.clear();
    providers[p.pool].push_back(std::move(blank));
    parts.dns_providers.push_back(std::move(p));
  }
  for (const auto& row : st.take_skipped_rows()) {
    log::error("store_row_skipped", {{"row", row},
                                     {"action", "left out; fix or remove it through the API"}});
  }
  auto load = [&](const pool_config& pc) {
    auto rt = make_pool_runtime(cfg, pc);
    for (auto& a : accounts[pc.name]) {
      rt->accounts.put(std::move(a));
    }
    rt->providers = std::move(providers[pc.name]);
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
      auto member = make_member(mc, member_fsm(rt->detection, state, since,
                                               now_ms + grace_ms));
      auto& slot = *member.slot;
      slot.pool = rt->shared_name();
      if (prior != nullptr) {
        slot.last_seq.store(prior->last_seq);
        if (state != member_state::pending && state != member_state::down) {
          slot.last_seen_ms.store(now_ms);
        } else {
          slot.last_seen_ms.store(prior->last_seen_ms);
        }
      }
      member.rt->publish_state(now_ms);
      if (!mc.public_ipv4.empty()) {
        rt->public_ipv4[mc.id] = mc.public_ipv4;
      }
      if (!mc.public_ipv6.empty()) {
        rt->public_ipv6[mc.id] = mc.public_ipv6;
      }
      parts.reg->add(member.slot);
      rt->members.push_back(std::move(member.rt));
    }
    log::info("pool_loaded", {{"pool", pc.name},
                              {"members", std::to_string(rt->members.size())},
                              {"restored_states", std::to_string(restored)},
                              {"active", std::to_string(rt->active)},
                              {"protected_accounts", std::to_string(rt->accounts.size())},
                              {"grace_ms", std::to_string(grace_ms)}});
    parts.pools.push_back(std::move(rt));
  };
  for (const auto& pc : cfg.pools) {
    load(pc);
  }
  for (const auto& pc : api_pools) {
    load(pc);
  }
  return parts;
}

} // namespace balctl
