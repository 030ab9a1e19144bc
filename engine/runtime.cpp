#include "engine/runtime.hpp"

#include <string>

namespace balctl {

namespace {

struct member_block {
  member_block(member_id id, const std::string& hostname,
               const std::string& name, member_fsm fsm)
    : rt(&slot, name == hostname ? std::string() : name, std::move(fsm)) {
    slot.id = id;
    slot.hostname = hostname;
  }
  member_slot slot; // first: rt points at it
  member_runtime rt;
};

} // namespace

void member_runtime::publish_state(std::int64_t now_ms) {
  slot->state_since_ms.store(fsm.state_since_ms(), std::memory_order_relaxed);
  slot->state.store(fsm.state(), std::memory_order_release);
  damped.store(fsm.damped(now_ms), std::memory_order_relaxed);
}

member_handles make_member(member_id id, const std::string& hostname,
                           const std::string& name, member_fsm fsm) {
  auto block = std::make_shared<member_block>(id, hostname, name, std::move(fsm));
  return member_handles{std::shared_ptr<member_slot>(block, &block->slot),
                        std::shared_ptr<member_runtime>(block, &block->rt)};
}

member_handles make_member(const member_config& mc, member_fsm fsm) {
  auto m = make_member(mc.id, mc.hostname, mc.name, std::move(fsm));
  m.slot->set_key(mc.key);
  for (const auto& ip : mc.allowed_ips) {
    ip_address a;
    if (ip_address::parse(ip, a)) {
      m.slot->allowed_ips.push_back(a);
    }
  }
  from_string(mc.linux_family, m.rt->family);
  m.rt->enrolled = mc.enrolled;
  return m;
}

detection_params make_detection_params(const engine_config& e,
                                       const pool_config& p) {
  detection_params d;
  d.failover_delay_ms = std::int64_t{p.failover_delay_s} * 1000;
  d.suspect_after_ms = d.failover_delay_ms * e.suspect_after_pct / 100;
  d.recovery_stable_ms = std::int64_t{e.recovery_stable_s} * 1000;
  d.flap_threshold = e.flap_threshold;
  d.flap_window_ms = std::int64_t{e.flap_window_s} * 1000;
  d.flap_hold_ms = std::int64_t{e.flap_hold_s} * 1000;
  return d;
}

pool_params make_pool_params(const engine_config& e, const pool_config& p) {
  pool_params pp;
  pp.failback = p.failback;
  pp.failback_stable_ms = std::int64_t{p.failback_stable_s} * 1000;
  pp.mass_silence.share = p.mass_silence_share;
  pp.mass_silence.min_members =
    static_cast<std::size_t>(p.mass_silence_min_members);
  pp.mass_silence.window_ms =
    std::int64_t{p.mass_silence_window_s > 0 ? p.mass_silence_window_s
                                             : p.failover_delay_s} * 1000;
  pp.mass_silence.release_settle_ms = std::int64_t{e.silence_release_settle_s} * 1000;
  return pp;
}

} // namespace balctl
