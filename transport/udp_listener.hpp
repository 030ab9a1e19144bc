#pragma once

// The UDP heartbeat listener: one libuv loop on its own thread, batched
// receive (recvmmsg through UV_UDP_RECVMMSG). It only moves bytes: each
// datagram goes to the callback (balctld passes it to ingest::accept), on
// the loop thread, and whatever the callback writes into its reply buffer
// (an acknowledgement) goes back to the source.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <uv.h>

#include "transport/loop_thread.hpp"

struct sockaddr;

namespace balctl {

class udp_listener {
public:
  /// reply points at protocol::ack_size writable bytes; the callback
  /// returns how many to send back to src (0: none).
  using datagram_fn = std::function<std::size_t(
    const std::uint8_t* data, std::size_t len, const sockaddr* src,
    std::uint8_t* reply)>;

  /// listen: "host:port" or "[v6]:port"; port 0 picks a free port.
  udp_listener(std::string listen, datagram_fn fn);
  ~udp_listener();
  udp_listener(const udp_listener&) = delete;
  udp_listener& operator=(const udp_listener&) = delete;

  /// Binds and starts the loop thread. Returns "" on success, else an error
  /// naming the address. The socket is bound when start() returns.
  std::string start();
  /// The bound port (after a successful start).
  std::uint16_t bound_port() const { return port_; }
  /// Thread-safe and idempotent: closes every handle, runs the loop dry and
  /// joins the thread. Not from inside the datagram callback (it would join
  /// its own thread).
  void stop();
  /// Datagrams longer than protocol::max_datagram_size (also passed on).
  std::uint64_t oversized() const { return oversized_.load(); }
  std::uint64_t received() const { return received_.load(); }
  /// Acknowledgements sent, and those dropped because the socket's send
  /// buffer was full (never waited for: ingest comes first).
  std::uint64_t replies_sent() const { return replies_sent_.load(); }
  std::uint64_t replies_dropped() const { return replies_dropped_.load(); }
  /// How late the loop's 100 ms timer fired, in ms: latest and largest.
  const std::atomic<std::int64_t>& loop_lag_ms() const { return loop_.lag_ms(); }
  const std::atomic<std::int64_t>& loop_lag_max_ms() const { return loop_.lag_max_ms(); }

private:
  static void on_alloc(uv_handle_t* h, std::size_t suggested, uv_buf_t* buf);
  static void on_recv(uv_udp_t* h, ssize_t nread, const uv_buf_t* buf,
                      const sockaddr* addr, unsigned flags);
  void close_handles();

  std::string listen_;
  datagram_fn fn_;
  uv_udp_t udp_{};
  std::vector<char> buffer_; // reused for every batch
  std::uint16_t port_ = 0;
  std::atomic<std::uint64_t> oversized_{0};
  std::atomic<std::uint64_t> received_{0};
  std::atomic<std::uint64_t> replies_sent_{0};
  std::atomic<std::uint64_t> replies_dropped_{0};
  // Last: destroyed first, while the members its loop uses still exist.
  loop_thread loop_;
};

} // namespace balctl
