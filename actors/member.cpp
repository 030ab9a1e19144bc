#include "actors/member.hpp"

#include <string>

#include "actors/crash.hpp"
#include "engine/log.hpp"

namespace balctl {

void live_member_token::adopt(pool_runtime* pool) {
  if (pool_ == nullptr) {
    pool_ = pool;
  }
}

live_member_token::~live_member_token() {
  if (pool_ != nullptr) {
    pool_->live_members.fetch_sub(1);
    if (pool_->node_live_members != nullptr) {
      pool_->node_live_members->fetch_sub(1);
    }
  }
}

namespace {

using self_ptr = caf::stateful_actor<member_actor_state>*;

void evaluate(self_ptr self) {
  auto& st = self->state;
  auto& slot = *st.rt->slot;
  auto& fsm = st.rt->fsm;
  auto now = st.clk->now_ms();
  auto last_seen = slot.last_seen_ms.load(std::memory_order_acquire);
  member_report_msg report;
  report.member = slot.id;
  if (auto t = fsm.evaluate(last_seen, now)) {
    st.rt->publish_state(now);
    if (t->to == member_state::down) {
      // How long after its deadline the silence was noticed: the figure the
      // detection benchmark reports.
      st.metrics->record_down_lateness(
        now - (last_seen + fsm.params().failover_delay_ms));
    }
    log::info("member_state", {{"pool", st.pool_rt->config.name},
                               {"member", std::to_string(slot.id)},
                               {"from", to_string(t->from)},
                               {"to", to_string(t->to)},
                               {"last_seen_ms", std::to_string(last_seen)}});
    report.from = t->from;
    report.to = t->to;
    report.at_ms = t->at_ms;
  } else {
    // The current state rides along, so the pool can catch up with a
    // transition that a crashed predecessor took but never reported.
    report.from = report.to = fsm.state();
    report.at_ms = fsm.state_since_ms();
  }
  if (auto next = fsm.next_deadline_ms(last_seen)) {
    report.has_next = true;
    report.next_ms = *next;
  }
  // Always sent, even with nothing new: the pool dropped this member's timer
  // when it woke it, and only this report arms it again.
  self->send(st.pool, report_atom_v, report);
}

} // namespace

caf::behavior member_actor(self_ptr self, std::shared_ptr<member_runtime> rt,
                           caf::actor pool, const clock* clk,
                           engine_metrics* metrics,
                           std::shared_ptr<pool_runtime> pool_rt) {
  auto& st = self->state;
  st.rt = std::move(rt);
  st.pool_rt = std::move(pool_rt);
  st.live.adopt(st.pool_rt.get());
  st.pool = std::move(pool);
  st.clk = clk;
  st.metrics = metrics;
  // A notification sent to a crashed predecessor (or its pool) is lost:
  // clear the flag so the next heartbeat notifies this actor again.
  st.rt->slot->heard_pending.store(false);
  // The pool's settings as they are now: a settings change sent to a
  // crashed predecessor is not lost with it.
  st.rt->fsm.set_params(st.pool_rt->load_detection());
  // A predecessor that crashed between its state machine's step and the
  // slot's update left the slot behind: the state machine is the truth.
  st.rt->publish_state(clk->now_ms());
  self->set_exception_handler([=](std::exception_ptr& e) {
    return crash_to_error("member", std::to_string(self->state.rt->slot->id), e);
  });
  evaluate(self);
  return {
    [=](heard_atom) {
      // Clear first: a heartbeat arriving after this point notifies again.
      self->state.rt->slot->heard_pending.store(false);
      evaluate(self);
    },
    [=](deadline_atom) { evaluate(self); },
    [=](settings_atom) {
      // The pool's settings changed: evaluate under the new failover delay
      // at once and report the new deadline.
      self->state.rt->fsm.set_params(self->state.pool_rt->load_detection());
      evaluate(self);
    },
  };
}

} // namespace balctl
