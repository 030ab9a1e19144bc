#pragma once

// The TLS heartbeat listener, for networks that drop UDP: the same frames as
// the UDP listener (docs/protocol.md) over TLS on TCP. One libuv loop on its
// own thread; other threads reach it only through a uv_async_t (stop).
//
// A frame is self-delimiting (protocol::frame_size), so each connection only
// reassembles frames across TLS records and splits several frames out of
// one record. Like the UDP listener it only moves bytes: every complete
// frame goes to the callback (balctld passes it to ingest), which may answer
// with an acknowledgement written back on the same connection.
//
// Per connection, one state and one timer:
//
//   accept ──> handshake ──established──> open <──┐ complete frame
//                 │                        │  └────┘ (re-arms idle lazily)
//                 │ handshake_timeout_ms    │ idle_timeout_ms without a frame,
//                 │ TLS error               │ garbage, TLS error, close_notify,
//                 v                         v EOF, max_pending_output
//               closed <───────────────── closed
//
// Connections past max_connections are accepted and closed at once. The
// server does not ask for client certificates: members authenticate every
// frame with their heartbeat key.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

struct sockaddr;

namespace balctl {

struct tls_listener_limits {
  /// Open connections (handshaking or established); more are accepted and
  /// closed at once, counted in connections_rejected.
  std::size_t max_connections = 50000;
  /// Accept → TLS established, in ms.
  std::int64_t handshake_timeout_ms = 10000;
  /// Established with no complete frame for this long (ms) → closed. A
  /// member beating every 2 s sends dozens of frames in the default 120 s.
  std::int64_t idle_timeout_ms = 120000;
  /// Reply bytes (TLS records) the kernel has not taken yet: a peer that
  /// does not read its acknowledgements is closed past this many.
  std::size_t max_pending_output = 64 * 1024;
};

/// Relaxed atomics, written on the loop thread, read by anyone.
struct tls_listener_counters {
  std::atomic<std::uint64_t> connections_open{0};
  std::atomic<std::uint64_t> connections_total{0};    // accepted within the limit
  std::atomic<std::uint64_t> connections_rejected{0}; // over max_connections
  std::atomic<std::uint64_t> handshake_errors{0};     // failed TLS handshakes (not timeouts)
  std::atomic<std::uint64_t> tls_errors{0};           // fatal TLS errors after the handshake
  std::atomic<std::uint64_t> frames{0};               // complete frames passed to the callback
  std::atomic<std::uint64_t> garbage_closed{0};       // closed: bytes that cannot start a frame
  std::atomic<std::uint64_t> timeouts{0};             // closed: handshake or idle timeout
  std::atomic<std::uint64_t> handshake_timeouts{0};   // the handshake part of timeouts
  std::atomic<std::uint64_t> slow_readers_closed{0};  // closed: over max_pending_output
};

class tls_listener {
public:
  /// Called on the loop thread for every complete frame (len <=
  /// protocol::max_datagram_size, structure not yet checked beyond magic,
  /// version and length), with the peer's address. reply points at
  /// protocol::ack_size writable bytes; return how many of them to send back
  /// on the same connection (0 = nothing; more than ack_size is cut to
  /// ack_size). Must not call stop().
  using frame_fn = std::function<std::size_t(const std::uint8_t* data, std::size_t len,
                                             const sockaddr* src, std::uint8_t* reply)>;

  /// listen: "host:port" or "[v6]:port"; port 0 picks a free port.
  /// cert_file: PEM certificate chain; key_file: its PEM private key.
  tls_listener(std::string listen, std::string cert_file, std::string key_file,
               tls_listener_limits limits, frame_fn fn);
  ~tls_listener();
  tls_listener(const tls_listener&) = delete;
  tls_listener& operator=(const tls_listener&) = delete;

  /// Loads the certificate and key, binds, listens and starts the loop
  /// thread. Returns "" on success, else an error naming the address or
  /// file. The socket is listening when start() returns. Once only.
  std::string start();
  /// The bound port (after a successful start).
  std::uint16_t bound_port() const { return port_; }
  /// Thread-safe and idempotent: closes every connection and handle, runs
  /// the loop dry and joins the thread. Not from inside the frame callback.
  void stop();

  const tls_listener_counters& counters() const { return counters_; }
  /// How late the loop's 100 ms timer fired, in ms: latest and largest.
  const std::atomic<std::int64_t>& loop_lag_ms() const;
  const std::atomic<std::int64_t>& loop_lag_max_ms() const;

  struct impl;

private:
  // Declared before impl_, which refers to it: constructed before it and
  // destroyed after it.
  tls_listener_counters counters_;
  std::uint16_t port_ = 0;
  std::unique_ptr<impl> impl_;
};

} // namespace balctl
