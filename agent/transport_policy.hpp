#pragma once

// Which path the agent's heartbeats take, and when to ask for an
// acknowledgement (docs/protocol.md, "Acknowledgement"). Pure: time is
// passed in, the runner does the I/O.
//
//   mode udp:  every beat over UDP, no acknowledgements asked.
//   mode tls:  every beat over the TLS stream, each asks for an ack; a
//              connection that stops acknowledging is replaced.
//   mode auto:
//
//        start ──▶ UDP ──(miss_limit ack requests in a row unanswered)──▶ TLS
//                   ▲                                                      │
//                   └──────(a UDP probe, sent every reprobe_ms, acked)─────┘
//
//     On UDP every beat asks for an ack: with the 2 s interval of a 10 s
//     failover delay, two unanswered beats in a row (counted at the next
//     beat: about 4 s) move it to TLS before the engine would declare the
//     member down. A beat that could not even be sent counts the same.
//     While the TLS connection is not up, beats still go over UDP (they
//     may get through).

#include <cstdint>
#include <string_view>

namespace balctl::agent {

enum class transport_mode { udp, tls, auto_ };
enum class path { udp, tls };

const char* to_string(transport_mode m);
const char* to_string(path p);
bool parse_transport_mode(const std::string_view s, transport_mode& out);

struct beat_plan {
  path via = path::udp;
  bool ask_ack = false;
  /// auto on TLS: also send this beat's copy over UDP as a probe (asking
  /// for an ack) to find out whether UDP works again.
  bool udp_probe = false;
};

class transport_policy {
public:
  /// ack_timeout_ms: how long an ack may take before the request counts as
  /// missed. reprobe_ms: on TLS (auto), how often UDP is tried again.
  transport_policy(transport_mode m, std::int64_t ack_timeout_ms,
                   int miss_limit = 2, std::int64_t reprobe_ms = 300'000);

  transport_mode mode() const { return mode_; }
  /// Where heartbeats go now (auto: the path it settled on).
  path current() const { return current_; }
  /// Whether the runner should hold a TLS connection open.
  bool wants_tls() const { return mode_ == transport_mode::tls || current_ == path::tls; }

  /// The plan for a beat at now_ms, given whether the TLS connection is up.
  /// Counts an earlier unanswered ack request as missed (and may switch).
  beat_plan plan(std::int64_t now_ms, bool tls_up);
  /// The runner sent a beat with seq asking for an ack over `via`.
  void asked(path via, std::uint64_t seq, std::int64_t now_ms);
  /// A verified ack for seq arrived over `via`. Returns true when this
  /// switched the path. On TLS (auto), only the ack of the outstanding UDP
  /// probe brings the agent back to UDP.
  bool acked(path via, std::uint64_t seq, std::int64_t now_ms);
  /// The TLS connection went down (auto/tls): forget its pending request
  /// and its misses (the next stream starts clean).
  void tls_lost();
  /// A beat that would have asked over `via` could not be sent at all:
  /// counts as a miss on that path (auto may switch).
  void unsent(path via, std::int64_t now_ms);
  /// Unanswered ack requests in a row on the current path.
  int misses() const { return misses_; }
  /// A switch happened since the last call (for logging), and which.
  bool take_switched(path* to);

private:
  void expire(std::int64_t now_ms);
  void switch_to(path p, std::int64_t now_ms);

  transport_mode mode_;
  std::int64_t ack_timeout_ms_;
  int miss_limit_;
  std::int64_t reprobe_ms_;
  path current_;
  int misses_ = 0;
  // The outstanding ack request on the current path (0: none).
  std::uint64_t pending_seq_ = 0;
  std::int64_t pending_since_ms_ = 0;
  // The outstanding UDP probe while on TLS (0: none).
  std::uint64_t probe_seq_ = 0;
  std::int64_t last_probe_ms_ = 0;
  bool switched_ = false;
};

} // namespace balctl::agent
