#include "engine/registry.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <mutex>

namespace balctl {

// -- ip_address --------------------------------------------------------------

bool ip_address::parse(const std::string& text, ip_address& out) {
  ip_address a;
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    a.bytes[10] = 0xff;
    a.bytes[11] = 0xff;
    std::memcpy(a.bytes.data() + 12, &v4, 4);
    out = a;
    return true;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    std::memcpy(a.bytes.data(), &v6, 16);
    out = a;
    return true;
  }
  return false;
}

ip_address ip_address::from_sockaddr(const sockaddr* sa) {
  ip_address a;
  if (sa == nullptr) {
    return a;
  }
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    a.bytes[10] = 0xff;
    a.bytes[11] = 0xff;
    std::memcpy(a.bytes.data() + 12, &in->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    std::memcpy(a.bytes.data(), &in6->sin6_addr, 16);
  }
  return a;
}

std::string ip_address::to_string() const {
  static const std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  char buf[INET6_ADDRSTRLEN] = {0};
  if (std::memcmp(bytes.data(), mapped, 12) == 0) {
    inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  }
  return buf;
}

// -- registry ----------------------------------------------------------------

void registry::add(std::shared_ptr<member_slot> slot) {
  std::unique_lock<std::shared_mutex> guard(mu_);
  auto id = slot->id;
  slots_[id] = std::move(slot);
}

void registry::remove(member_id m) {
  std::unique_lock<std::shared_mutex> guard(mu_);
  slots_.erase(m);
}

std::shared_ptr<member_slot> registry::find(member_id m) const {
  std::shared_lock<std::shared_mutex> guard(mu_);
  auto i = slots_.find(m);
  return i == slots_.end() ? nullptr : i->second;
}

std::size_t registry::size() const {
  std::shared_lock<std::shared_mutex> guard(mu_);
  return slots_.size();
}

std::vector<std::shared_ptr<member_slot>> registry::all() const {
  std::shared_lock<std::shared_mutex> guard(mu_);
  std::vector<std::shared_ptr<member_slot>> out;
  out.reserve(slots_.size());
  for (const auto& kv : slots_) {
    out.push_back(kv.second);
  }
  return out;
}

// -- ingest ------------------------------------------------------------------

std::uint64_t ingest_counters::rejected_total() const {
  std::uint64_t n = 0;
  for (const auto& c : rejected) {
    n += c.load(std::memory_order_relaxed);
  }
  return n;
}

namespace {

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h == 0 ? 1 : h; // 0 means "no body seen yet"
}

} // namespace

accept_result ingest::reject(protocol::reject_reason r) {
  counters_.rejected[static_cast<std::size_t>(r)].fetch_add(
    1, std::memory_order_relaxed);
  return accept_result{false, r};
}

namespace {

std::size_t write_ack(std::uint8_t* out, protocol::ack_result result,
                      const protocol::datagram_view& d, const member_slot& slot,
                      std::uint64_t seq, std::int64_t now_ms) {
  if (out == nullptr || (d.hdr.flags & protocol::flag_ack_requested) == 0) {
    return 0;
  }
  protocol::ack a;
  a.result = result;
  a.member = d.hdr.member;
  a.seq = seq;
  a.engine_time_ms = now_ms;
  return protocol::encode_ack(out, a, slot.key());
}

protocol::ack_result ack_result_of(protocol::reject_reason r) {
  using protocol::ack_result;
  using protocol::reject_reason;
  switch (r) {
    case reject_reason::stale_timestamp: return ack_result::stale_timestamp;
    case reject_reason::replayed: return ack_result::replayed;
    case reject_reason::hostname_mismatch: return ack_result::hostname_mismatch;
    default: return ack_result::malformed_body;
  }
}

} // namespace

accept_result ingest::refuse(protocol::reject_reason r,
                             const protocol::datagram_view& d,
                             const member_slot& slot, std::uint64_t seq,
                             std::int64_t now_ms, std::uint8_t* ack_out) {
  auto out = reject(r);
  out.ack_len = write_ack(ack_out, ack_result_of(r), d, slot, seq, now_ms);
  return out;
}

accept_result ingest::accept(const std::uint8_t* data, std::size_t len,
                             const ip_address& source, std::int64_t now_ms,
                             std::uint8_t* ack_out) {
  using protocol::reject_reason;
  auto d = protocol::decode(data, len);
  if (!d.ok) {
    return reject(d.reason);
  }
  const auto& hdr = d.view.hdr;
  auto slot = reg_.find(hdr.member);
  if (!slot) {
    return reject(reject_reason::unknown_member);
  }
  // Cheap filters first; the HMAC next, before anything else in the
  // datagram (seq, timestamp, body) is trusted.
  if (!slot->allows(source)) {
    return reject(reject_reason::source_not_allowed);
  }
  if (!protocol::verify_tag(d.view, slot->key())) {
    return reject(reject_reason::bad_tag);
  }
  // Compared without subtracting: a forged timestamp near INT64_MIN must
  // not overflow.
  // From here on the datagram is the member's own: a refusal is answered
  // (when asked) so the agent can correct itself: its clock, its sequence
  // number, its status body.
  if (hdr.timestamp_ms > now_ms + max_skew_ms_ ||
      hdr.timestamp_ms < now_ms - max_skew_ms_) {
    return refuse(reject_reason::stale_timestamp, d.view, *slot, hdr.seq,
                  now_ms, ack_out);
  }
  if (hdr.seq <= slot->last_seq.load(std::memory_order_acquire)) {
    return refuse(reject_reason::replayed, d.view, *slot,
                  slot->last_seq.load(std::memory_order_acquire), now_ms, ack_out);
  }
  // A body is parsed only when it differs from the last accepted one: a
  // member repeating its status costs a hash, not a JSON parse. Body checks
  // come before the sequence number is committed, so a bad body does not
  // burn a sequence number.
  std::uint64_t body_hash = 0;
  std::optional<member_status> status;
  if (!d.view.body.empty()) {
    body_hash = fnv1a(d.view.body);
    if (body_hash != slot->body_hash.load(std::memory_order_relaxed)) {
      std::string error;
      status = protocol::parse_status(d.view.body, &error);
      if (!status) {
        return refuse(reject_reason::malformed_body, d.view, *slot, hdr.seq,
                      now_ms, ack_out);
      }
      if (status->hostname != slot->hostname) {
        return refuse(reject_reason::hostname_mismatch, d.view, *slot, hdr.seq,
                      now_ms, ack_out);
      }
    }
  }
  // Two ingest threads may race on one member: only one wins a given seq.
  auto last = slot->last_seq.load(std::memory_order_acquire);
  do {
    if (hdr.seq <= last) {
      return refuse(reject_reason::replayed, d.view, *slot, last, now_ms, ack_out);
    }
  } while (!slot->last_seq.compare_exchange_weak(last, hdr.seq,
                                                 std::memory_order_acq_rel));
  slot->last_seen_ms.store(now_ms, std::memory_order_release);
  counters_.accepted.fetch_add(1, std::memory_order_relaxed);
  // The notifier is read only when there is something to send, and after
  // the heard_pending flag is taken: a pool restarted meanwhile has already
  // installed its new notifier, so the message reaches a live actor.
  if (status) {
    if (auto n = slot->notifier()) {
      n->status_changed(slot->id, std::move(*status));
      // Remembered only once delivered: a body that found no actor to take
      // it is parsed and offered again next time.
      slot->body_hash.store(body_hash, std::memory_order_relaxed);
    }
  }
  if (slot->state.load(std::memory_order_acquire) != member_state::healthy &&
      !slot->heard_pending.exchange(true, std::memory_order_acq_rel)) {
    if (auto n = slot->notifier()) {
      n->heard(slot->id);
    } else {
      slot->heard_pending.store(false, std::memory_order_release);
    }
  }
  return accept_result{true, reject_reason::truncated,
                       write_ack(ack_out, protocol::ack_result::accepted, d.view,
                                 *slot, hdr.seq, now_ms)};
}

bool registry::heard_elsewhere(member_id m, std::int64_t seen_ms, std::uint64_t seq) const {
  auto slot = find(m);
  if (!slot) {
    return false;
  }
  auto last = slot->last_seq.load(std::memory_order_acquire);
  while (seq > last &&
         !slot->last_seq.compare_exchange_weak(last, seq, std::memory_order_acq_rel)) {
  }
  auto seen = slot->last_seen_ms.load(std::memory_order_acquire);
  while (seen_ms > seen &&
         !slot->last_seen_ms.compare_exchange_weak(seen, seen_ms, std::memory_order_acq_rel)) {
  }
  if (slot->state.load(std::memory_order_acquire) != member_state::healthy &&
      !slot->heard_pending.exchange(true, std::memory_order_acq_rel)) {
    if (auto n = slot->notifier()) {
      n->heard(slot->id);
    } else {
      slot->heard_pending.store(false, std::memory_order_release);
    }
  }
  return true;
}

} // namespace balctl
