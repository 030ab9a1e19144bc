#include "actors/engine.hpp"

#include <chrono>
#include <thread>

#include "actors/dns_router.hpp"
#include "adapters/dns/make_provider.hpp"
#include "actors/store_actor.hpp"
#include "actors/supervisor.hpp"
#include "engine/log.hpp"

namespace balctl {

void configure_actor_system(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::balctl>();
}

store_actor_options store_options(const engine_config& cfg) {
  store_actor_options o;
  o.max_owed = static_cast<std::size_t>(cfg.store_max_owed);
  return o;
}

supervisor_deps make_supervisor_deps(const engine_config& cfg,
                                     const engine_parts& parts, caf::actor store,
                                     caf::actor dns, const clock* clk,
                                     engine_metrics* metrics) {
  supervisor_deps deps;
  deps.reg = parts.reg;
  deps.store = std::move(store);
  deps.dns = std::move(dns);
  deps.clk = clk;
  deps.metrics = metrics;
  deps.fleet_silence.share = cfg.fleet_silence_share;
  deps.fleet_silence.min_members =
    static_cast<std::size_t>(cfg.fleet_silence_min_members);
  deps.fleet_silence.window_ms = std::int64_t{cfg.fleet_silence_window_s} * 1000;
  deps.fleet_silence.release_settle_ms =
    std::int64_t{cfg.silence_release_settle_s} * 1000;
  deps.checkpoint_interval_ms = std::int64_t{cfg.snapshot_interval_s} * 1000;
  deps.cluster = !cfg.cluster.node_id.empty();
  deps.takeover_grace_ms = std::int64_t{cfg.cluster.takeover_grace_s} * 1000;
  // The engine-wide settings, for pools created and settings changed at run
  // time; the pools themselves live in their runtimes.
  auto engine = std::make_shared<engine_config>(cfg);
  engine->pools.clear();
  deps.engine = std::move(engine);
  return deps;
}

engine_handles spawn_engine(caf::actor_system& sys, const engine_config& cfg,
                            engine_parts& parts, std::shared_ptr<store> st,
                            const clock* clk, engine_metrics* metrics,
                            bool store_detached,
                            std::vector<enrollment_record> enrollments,
                            protection_deps protection) {
  engine_handles h;
  h.store = store_detached
              ? sys.spawn<caf::detached>(store_actor, st, metrics, store_options(cfg))
              : sys.spawn(store_actor, st, metrics, store_options(cfg));
  // One executor per provider credential (the config file's and those the
  // admin API added), all on one I/O loop, behind the router.
  h.dns_io = std::make_shared<dns::dns_io>();
  if (auto e = h.dns_io->start(); !e.empty()) {
    log::error("dns_io_start_failed", {{"error", e}});
  }
  dns_router_deps rd;
  rd.store = h.store;
  rd.executor_base.io = h.dns_io;
  rd.executor_base.store = h.store;
  rd.executor_base.clk = clk;
  rd.executor_base.metrics = metrics;
  auto providers = cfg.dns_providers;
  providers.insert(providers.end(), parts.dns_providers.begin(), parts.dns_providers.end());
  for (const auto& p : providers) {
    if (!dns::make_provider(p)) {
      log::error("dns_provider_unavailable",
                 {{"id", p.id}, {"type", to_string(p.kind)},
                  {"reason", "this build has no adapter for the type; its changes are "
                             "journaled and recorded, DNS is not moved"}});
    }
  }
  h.dns = sys.spawn(dns_router, std::move(providers),
                    std::unordered_map<std::string, caf::actor>{}, rd);
  auto deps = make_supervisor_deps(cfg, parts, h.store, h.dns, clk, metrics);
  deps.enrollments = std::move(enrollments);
  // Protection: the pools' job queues and replication, on the same store
  // and clock; presign/remove come from the object store balctld opened.
  protection.store = h.store;
  protection.clk = clk;
  protection.metrics = metrics;
  protection.activity_keep = static_cast<std::size_t>(cfg.admin.activity_retention);
  deps.protection = std::make_shared<const protection_deps>(std::move(protection));
  h.supervisor = sys.spawn(supervisor_actor, parts.pools, deps);
  return h;
}

void resume_pending_decisions(caf::actor_system& sys, const engine_handles& h,
                              const std::vector<decision_record>& pending,
                              const std::vector<dns_change_record>& changes) {
  for (const auto& r : pending) {
    if (moves_dns(r.decision.kind)) {
      log::warn("decision_resumed", {{"decision", std::to_string(r.id)},
                                     {"pool", r.decision.pool},
                                     {"kind", to_string(r.decision.kind)},
                                     {"to", std::to_string(r.decision.to)}});
    }
    caf::anon_send(h.store, mark_atom_v, r.id, std::string("resumed"));
  }
  if (changes.empty()) {
    return;
  }
  for (const auto& c : changes) {
    log::warn("dns_change_resumed", {{"change", std::to_string(c.id)},
                                     {"pool", c.pool},
                                     {"provider", c.provider},
                                     {"name", c.name},
                                     {"content", c.content}});
  }
  // Journaled already (ids set): the executors resume them as they are; a
  // change for a credential that is gone is marked cancelled by the router.
  // Arguments, not captures: a spawn with none trips UBSan inside CAF.
  sys.spawn(
    [](caf::event_based_actor* self, caf::actor router, std::vector<dns_change_record> cs) {
      self->request(router, caf::infinite, submit_atom_v, std::move(cs))
        .then([](const std::vector<dns_change_record>&) {});
    },
    h.dns, changes);
}

} // namespace balctl

namespace balctl {

std::vector<decision_record> adopt_pending_decisions(store& st) {
  auto pending = st.pending_decisions();
  for (const auto& r : pending) {
    if (moves_dns(r.decision.kind)) {
      st.set_active_member(r.decision.pool, r.decision.to);
    }
  }
  return pending;
}

void shutdown_engine(caf::actor_system& sys, const engine_handles& h,
                     const engine_metrics& metrics) {
  caf::scoped_actor self{sys};
  auto stop_and_wait = [&](const caf::actor& a) {
    self->monitor(a);
    self->send_exit(a, caf::exit_reason::user_shutdown);
    self->receive([](const caf::down_msg&) {});
  };
  stop_and_wait(h.supervisor);
  // Pools quit on the supervisor's down message and stop their members as
  // they go; wait for them so nothing sends to the executor or the store
  // after those are gone.
  // Every pool's members, those created at run time included.
  auto live_members = [&] { return metrics.live_members.load(); };
  auto live = [&] { return metrics.live_pools.load() + live_members(); };
  for (int i = 0; i < 10'000 && live() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (live() > 0) {
    log::warn("shutdown_slow", {{"live_pools", std::to_string(metrics.live_pools.load())},
                                {"live_members", std::to_string(live_members())}});
  }
  // The router stops its executors and goes once they are gone.
  self->monitor(h.dns);
  self->send(h.dns, caf::close_atom_v);
  self->receive([](const caf::down_msg&) {});
  if (h.dns_io) {
    h.dns_io->stop();
  }
  self->monitor(h.store);
  self->send(h.store, caf::close_atom_v);
  self->receive([](const caf::down_msg&) {});
}

} // namespace balctl
