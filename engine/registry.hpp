#pragma once

// The member registry and the heartbeat ingest path (DESIGN.md principle 1:
// heartbeats are state, not messages). The UDP/TLS listeners hand every
// datagram to ingest::accept(); a steady-state heartbeat costs a hash lookup,
// a tag check and a store into the member's slot. Only a change (first beat
// while the member is not healthy, or a different status body) becomes a call
// on the member's notifier, which the actor layer turns into one message.
//
// Thread-safety: accept() runs on ingest loop threads; add/remove run on
// actor threads. Slots are shared_ptrs so an in-flight datagram never sees a
// freed slot.

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/types.hpp"
#include "transport/protocol.hpp"

struct sockaddr;

namespace balctl {

/// An IPv4 or IPv6 address in network byte order; IPv4 is stored as an
/// IPv4-mapped IPv6 address so one comparison covers both.
struct ip_address {
  std::array<std::uint8_t, 16> bytes{};
  bool operator==(const ip_address& o) const { return bytes == o.bytes; }
  /// Parses "192.0.2.1" or "2001:db8::1". Returns false on bad input.
  static bool parse(const std::string& text, ip_address& out);
  static ip_address from_sockaddr(const sockaddr* sa);
  std::string to_string() const;
};

/// Receives the few heartbeats that change something. Implemented by the
/// actor layer; called from ingest threads, so it must only enqueue.
class member_notifier {
public:
  virtual ~member_notifier() = default;
  /// The member was heard while not healthy (state carried in the slot).
  virtual void heard(member_id m) = 0;
  /// The member sent a status body different from the last one.
  virtual void status_changed(member_id m, member_status s) = 0;
};

struct member_slot {
  // Immutable after add().
  member_id id = 0;
  std::string hostname;
  std::vector<ip_address> allowed_ips; // empty = any source
  // The pool's id, shared by its slots (the agent API finds a member's
  // pool with it); null in tests of ingest alone.
  std::shared_ptr<const std::string> pool;

  /// Whether source may speak for this member (an empty list admits any).
  bool allows(const ip_address& source) const {
    if (allowed_ips.empty()) {
      return true;
    }
    for (const auto& ip : allowed_ips) {
      if (ip == source) {
        return true;
      }
    }
    return false;
  }

  /// The member's heartbeat key. Replaced at run time by re-enrolment, so
  /// it is held as four atomic words: a datagram verified while the key
  /// changes sees a mix of old and new words, which verifies under neither
  /// and is rejected, exactly as the old key is from then on.
  protocol::key key() const {
    protocol::key k;
    for (std::size_t i = 0; i < key_words_.size(); ++i) {
      auto w = key_words_[i].load(std::memory_order_acquire);
      std::memcpy(k.data() + 8 * i, &w, 8);
    }
    return k;
  }
  void set_key(const protocol::key& k) {
    for (std::size_t i = 0; i < key_words_.size(); ++i) {
      std::uint64_t w;
      std::memcpy(&w, k.data() + 8 * i, 8);
      key_words_[i].store(w, std::memory_order_release);
    }
  }

  // Written by ingest, read by actors.
  std::atomic<std::int64_t> last_seen_ms{0};
  std::atomic<std::uint64_t> last_seq{0};
  std::atomic<std::uint64_t> body_hash{0};
  // Written by the member actor, read by ingest.
  std::atomic<member_state> state{member_state::pending};
  std::atomic<std::int64_t> state_since_ms{0};
  // Set by ingest before heard(), cleared by the member actor: one message
  // per change, however many heartbeats arrive meanwhile.
  std::atomic<bool> heard_pending{false};

  std::shared_ptr<member_notifier> notifier() const {
    return std::atomic_load(&notifier_);
  }
  void set_notifier(std::shared_ptr<member_notifier> n) {
    std::atomic_store(&notifier_, std::move(n));
  }

private:
  static_assert(protocol::key_size == 32, "key_words_ holds 32 bytes");
  std::array<std::atomic<std::uint64_t>, 4> key_words_{};
  std::shared_ptr<member_notifier> notifier_;
};

class registry {
public:
  /// Adds or replaces the slot for slot->id.
  void add(std::shared_ptr<member_slot> slot);
  void remove(member_id m);
  std::shared_ptr<member_slot> find(member_id m) const;
  std::size_t size() const;
  /// Calls f for every slot under the registry's shared lock, without
  /// copying: f must be quick and must not call back into the registry.
  template <class F>
  void for_each(F&& f) const {
    std::shared_lock<std::shared_mutex> guard(mu_);
    for (const auto& kv : slots_) {
      f(*kv.second);
    }
  }
  /// Snapshot of all slots (for periodic state checkpoints).
  std::vector<std::shared_ptr<member_slot>> all() const;
  /// Cluster: another node accepted a heartbeat of m at seen_ms with seq
  /// (it forwards what it heard for pools it does not own). Applied as
  /// ingest applies its own: newer only, the pool told when the member was
  /// not healthy. False when m is not here.
  bool heard_elsewhere(member_id m, std::int64_t seen_ms, std::uint64_t seq) const;

private:
  mutable std::shared_mutex mu_;
  std::unordered_map<member_id, std::shared_ptr<member_slot>> slots_;
};

/// Counters for accepted and rejected datagrams. Relaxed atomics: read by
/// metrics and tests, written by ingest threads.
struct ingest_counters {
  std::atomic<std::uint64_t> accepted{0};
  std::array<std::atomic<std::uint64_t>, protocol::reject_reason_count>
    rejected{};
  std::uint64_t rejected_total() const;
};

struct accept_result {
  bool ok = false;
  protocol::reject_reason reason = protocol::reject_reason::truncated;
  /// Bytes of acknowledgement written to ack_out (0 or protocol::ack_size).
  std::size_t ack_len = 0;
};

class ingest {
public:
  ingest(registry& r, std::int64_t max_skew_ms) : reg_(r), max_skew_ms_(max_skew_ms) {}

  /// Decodes, authenticates and applies one datagram from source at now_ms.
  /// Counts the outcome. Never throws. When the datagram asks for an
  /// acknowledgement and its tag verified, one is written to ack_out
  /// (protocol::ack_size bytes, when not null) and its length returned in
  /// accept_result::ack_len: the transport sends it back to the source.
  accept_result accept(const std::uint8_t* data, std::size_t len,
                       const ip_address& source, std::int64_t now_ms,
                       std::uint8_t* ack_out = nullptr);

  const ingest_counters& counters() const { return counters_; }
  void set_max_skew_ms(std::int64_t v) { max_skew_ms_ = v; }

private:
  accept_result reject(protocol::reject_reason r);
  /// A rejection decided after the tag verified: answered when asked.
  accept_result refuse(protocol::reject_reason r, const protocol::datagram_view& d,
                       const member_slot& slot, std::uint64_t seq,
                       std::int64_t now_ms, std::uint8_t* ack_out);
  registry& reg_;
  std::int64_t max_skew_ms_;
  ingest_counters counters_;
};

} // namespace balctl
