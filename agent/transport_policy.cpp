#include "agent/transport_policy.hpp"

#include <string_view>

namespace balctl::agent {

const char* to_string(transport_mode m) {
  switch (m) {
    case transport_mode::udp: return "udp";
    case transport_mode::tls: return "tls";
    case transport_mode::auto_: return "auto";
  }
  return "auto";
}

const char* to_string(path p) { return p == path::udp ? "udp" : "tls"; }

bool parse_transport_mode(const std::string_view s, transport_mode& out) {
  if (s == "udp") {
    out = transport_mode::udp;
  } else if (s == "tls") {
    out = transport_mode::tls;
  } else if (s == "auto") {
    out = transport_mode::auto_;
  } else {
    return false;
  }
  return true;
}

transport_policy::transport_policy(transport_mode m, std::int64_t ack_timeout_ms,
                                   int miss_limit, std::int64_t reprobe_ms)
  : mode_(m),
    ack_timeout_ms_(ack_timeout_ms < 1 ? 1 : ack_timeout_ms),
    miss_limit_(miss_limit < 1 ? 1 : miss_limit),
    reprobe_ms_(reprobe_ms < 1000 ? 1000 : reprobe_ms),
    current_(m == transport_mode::tls ? path::tls : path::udp) {}

void transport_policy::expire(std::int64_t now_ms) {
  if (pending_seq_ != 0 && now_ms - pending_since_ms_ >= ack_timeout_ms_) {
    pending_seq_ = 0;
    ++misses_;
    // Auto gives up on UDP after miss_limit silent requests in a row.
    if (mode_ == transport_mode::auto_ && current_ == path::udp &&
        misses_ >= miss_limit_) {
      switch_to(path::tls, now_ms);
    }
  }
}

void transport_policy::switch_to(path p, std::int64_t now_ms) {
  if (current_ == p) {
    return;
  }
  current_ = p;
  misses_ = 0;
  pending_seq_ = 0;
  probe_seq_ = 0;
  switched_ = true;
  if (p == path::tls) {
    last_probe_ms_ = now_ms;
  }
}

beat_plan transport_policy::plan(std::int64_t now_ms, bool tls_up) {
  expire(now_ms);
  beat_plan b;
  switch (mode_) {
    case transport_mode::udp:
      b.via = path::udp;
      return b;
    case transport_mode::tls:
      b.via = path::tls;
      b.ask_ack = pending_seq_ == 0;
      return b;
    case transport_mode::auto_:
      break;
  }
  if (current_ == path::udp) {
    b.via = path::udp;
    b.ask_ack = pending_seq_ == 0;
    return b;
  }
  // On TLS. Without a connection the beat still tries UDP, and asks: an
  // ack there brings the agent back to UDP at once.
  if (probe_seq_ != 0 && now_ms - last_probe_ms_ >= ack_timeout_ms_) {
    probe_seq_ = 0; // the last probe went unanswered
  }
  if (!tls_up) {
    b.via = path::udp;
    b.ask_ack = probe_seq_ == 0;
    return b;
  }
  b.via = path::tls;
  b.ask_ack = pending_seq_ == 0;
  if (probe_seq_ == 0 && now_ms - last_probe_ms_ >= reprobe_ms_) {
    b.udp_probe = true;
  }
  return b;
}

void transport_policy::asked(path via, std::uint64_t seq, std::int64_t now_ms) {
  if (mode_ == transport_mode::auto_ && current_ == path::tls && via == path::udp) {
    probe_seq_ = seq;
    last_probe_ms_ = now_ms;
    return;
  }
  if (via == current_) {
    pending_seq_ = seq;
    pending_since_ms_ = now_ms;
  }
}

bool transport_policy::acked(path via, std::uint64_t seq, std::int64_t now_ms) {
  if (mode_ == transport_mode::auto_ && current_ == path::tls && via == path::udp) {
    // Only the answer to the probe now outstanding proves UDP works again:
    // a late ack for a beat from before the switch proves nothing.
    if (probe_seq_ == 0 || seq != probe_seq_) {
      return false;
    }
    switch_to(path::udp, now_ms);
    return true;
  }
  if (via != current_) {
    return false;
  }
  // An ack for an older request still proves the path works.
  if (pending_seq_ != 0 && seq >= pending_seq_) {
    pending_seq_ = 0;
  }
  misses_ = 0;
  return false;
}

void transport_policy::tls_lost() {
  if (current_ == path::tls) {
    // A new stream starts with a clean count: misses of the old one must
    // not condemn the new one before it carried a frame.
    pending_seq_ = 0;
    misses_ = 0;
  }
}

void transport_policy::unsent(path via, std::int64_t now_ms) {
  // An ack request that could not even be sent (a local firewall refusing
  // UDP, no route, no address yet) is as unanswered as a lost one.
  if (via != current_ || mode_ == transport_mode::udp) {
    return;
  }
  ++misses_;
  if (mode_ == transport_mode::auto_ && current_ == path::udp && misses_ >= miss_limit_) {
    switch_to(path::tls, now_ms);
  }
}

bool transport_policy::take_switched(path* to) {
  if (!switched_) {
    return false;
  }
  switched_ = false;
  if (to != nullptr) {
    *to = current_;
  }
  return true;
}

} // namespace balctl::agent
