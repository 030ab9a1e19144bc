#include "actors/member.hpp"

#include <chrono>
#include <string>

#include "actors/crash.hpp"
#include "engine/log.hpp"

namespace balctl {

namespace {

using self_ptr = caf::stateful_actor<member_actor_state>*;

// Arms the timer for deadline_ms unless an earlier one is already pending:
// that one will fire first and re-arm, so at most a couple of timers per
// member are ever queued, never one per heartbeat.
void arm(self_ptr self, std::int64_t deadline_ms) {
  auto& st = self->state;
  if (st.armed_ms != 0 && st.armed_ms <= deadline_ms) {
    return;
  }
  st.armed_ms = deadline_ms;
  auto delay_ms = deadline_ms - st.clk->now_ms();
  if (delay_ms < 0) {
    delay_ms = 0;
  }
  self->delayed_send(self, std::chrono::milliseconds(delay_ms),
                     deadline_atom_v, deadline_ms);
}

void rt_damped_update(self_ptr self, std::int64_t now_ms) {
  auto& rt = *self->state.rt;
  rt.damped.store(rt.fsm.damped(now_ms), std::memory_order_relaxed);
}

void evaluate(self_ptr self) {
  auto& st = self->state;
  auto& slot = *st.rt->slot;
  auto& fsm = st.rt->fsm;
  auto now = st.clk->now_ms();
  auto last_seen = slot.last_seen_ms.load(std::memory_order_acquire);
  if (auto t = fsm.evaluate(last_seen, now)) {
    slot.state.store(t->to, std::memory_order_release);
    slot.state_since_ms.store(t->at_ms, std::memory_order_relaxed);
    if (t->to == member_state::down) {
      // How long after its deadline the silence was noticed: the figure the
      // detection benchmark reports.
      st.metrics->record_down_lateness(
        now - (last_seen + fsm.params().failover_delay_ms));
    }
    rt_damped_update(self, now);
    log::info("member_state", {{"pool", slot.pool},
                               {"member", std::to_string(slot.id)},
                               {"from", to_string(t->from)},
                               {"to", to_string(t->to)},
                               {"last_seen_ms", std::to_string(last_seen)}});
    self->send(st.pool, transition_atom_v,
               member_transition_msg{slot.id, t->from, t->to, t->at_ms});
  }
  if (auto next = fsm.next_deadline_ms(last_seen)) {
    arm(self, *next);
  }
}

} // namespace

caf::behavior member_actor(self_ptr self, std::shared_ptr<member_runtime> rt,
                           caf::actor pool, const clock* clk,
                           engine_metrics* metrics,
                           std::shared_ptr<pool_runtime> pool_rt) {
  pool_rt->live_members.fetch_add(1);
  self->attach_functor([pool_rt] { pool_rt->live_members.fetch_sub(1); });
  self->state.rt = std::move(rt);
  self->state.pool = std::move(pool);
  self->state.clk = clk;
  self->state.metrics = metrics;
  // A notification sent to a crashed predecessor (or its pool) is lost:
  // clear the flag so the next heartbeat notifies this actor again.
  self->state.rt->slot->heard_pending.store(false);
  self->set_exception_handler([=](std::exception_ptr& e) {
    return crash_to_error("member", std::to_string(self->state.rt->slot->id), e);
  });
  self->monitor(self->state.pool);
  self->set_down_handler([=](caf::down_msg& msg) { self->quit(msg.reason); });
  evaluate(self);
  return {
    [=](heard_atom) {
      // Clear first: a heartbeat arriving after this point notifies again.
      self->state.rt->slot->heard_pending.store(false);
      evaluate(self);
    },
    [=](deadline_atom, std::int64_t deadline_ms) {
      if (deadline_ms != self->state.armed_ms) {
        return; // superseded by an earlier timer
      }
      self->state.armed_ms = 0;
      evaluate(self);
    },
  };
}

} // namespace balctl
