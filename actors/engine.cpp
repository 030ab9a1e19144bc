#include "actors/engine.hpp"

#include <chrono>
#include <thread>

#include "actors/dns_executor.hpp"
#include "actors/store_actor.hpp"
#include "actors/supervisor.hpp"
#include "engine/log.hpp"

namespace balctl {

void configure_actor_system(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::balctl>();
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
                            std::vector<enrollment_record> enrollments) {
  engine_handles h;
  h.store = store_detached
              ? sys.spawn<caf::detached>(store_actor, st, metrics)
              : sys.spawn(store_actor, st, metrics);
  // Until the DNS issue adds providers, one executor that records only.
  h.dns = sys.spawn(dns_executor, std::string("none (recorded only)"));
  auto deps = make_supervisor_deps(cfg, parts, h.store, h.dns, clk, metrics);
  deps.enrollments = std::move(enrollments);
  h.supervisor = sys.spawn(supervisor_actor, parts.pools, deps);
  return h;
}

void resume_pending_decisions(caf::actor_system& sys, const engine_handles& h,
                              const std::vector<decision_record>& pending) {
  caf::scoped_actor self{sys};
  for (const auto& r : pending) {
    if (!moves_dns(r.decision.kind)) {
      self->send(h.store, mark_atom_v, r.id, std::string("done"));
      continue;
    }
    log::warn("decision_resumed", {{"decision", std::to_string(r.id)},
                                   {"pool", r.decision.pool},
                                   {"kind", to_string(r.decision.kind)},
                                   {"to", std::to_string(r.decision.to)}});
    // The executor is idempotent (read-compare-write with the DNS issue), so
    // re-sending a decision that did reach the provider moves nothing back.
    self->request(h.dns, caf::infinite, execute_atom_v, r.id, r.decision)
      .receive(
        [&](bool done) {
          self->send(h.store, mark_atom_v, r.id,
                     std::string(done ? "done" : "failed"));
        },
        [&](caf::error& err) {
          log::error("decision_resume_failed",
                     {{"decision", std::to_string(r.id)},
                      {"error", sys.render(err)}});
        });
  }
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
  stop_and_wait(h.dns);
  self->monitor(h.store);
  self->send(h.store, caf::close_atom_v);
  self->receive([](const caf::down_msg&) {});
}

} // namespace balctl
