#include "transport/udp_listener.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "engine/log.hpp"
#include "transport/protocol.hpp"
#include "transport/listen_address.hpp"

namespace balctl {

namespace {

// libuv's recvmmsg path hands each datagram a 64 KiB slice of the buffer
// (UV__UDP_DGRAM_MAXSIZE), so the buffer size sets the batch size; it uses
// at most UV__MMSG_MAXWIDTH (20) slices, so a larger buffer is never read.
constexpr std::size_t dgram_slice = 64 * 1024;
constexpr std::size_t batch = 20;
constexpr int rcvbuf_bytes = 8 * 1024 * 1024;


} // namespace

udp_listener::udp_listener(std::string listen, datagram_fn fn)
  : listen_(std::move(listen)), fn_(std::move(fn)), loop_("udp", listen_) {}

udp_listener::~udp_listener() { stop(); }

std::string udp_listener::start() {
  auto life = loop_.lock_life();
  // A second start, or a start after stop(), would leave a loop thread that
  // nothing stops (stop() is idempotent and would return at once).
  if (!loop_.startable()) {
    return "udp listen " + listen_ + ": start() after start() or stop()";
  }
  sockaddr_storage addr{};
  if (auto bad = listen_sockaddr(listen_, addr); !bad.empty()) {
    return "udp listen " + listen_ + ": " + bad;
  }
  int rc = 0;
  bool v6 = addr.ss_family == AF_INET6;
  std::string err = loop_.init();
  if (!err.empty()) {
    return "udp listen " + listen_ + ": " + err;
  }
  auto fail = [&](const std::string& what, int code) {
    // Close what was opened and run the loop dry on this thread.
    loop_.abandon([this] { close_handles(); });
    return "udp listen " + listen_ + ": " + what + ": " + uv_strerror(code);
  };
  rc = uv_udp_init_ex(loop_.loop(), &udp_,
                      static_cast<unsigned>(v6 ? AF_INET6 : AF_INET) |
                        UV_UDP_RECVMMSG);
  if (rc != 0) {
    loop_.abandon(nullptr);
    return "udp listen " + listen_ + ": uv_udp_init_ex: " + uv_strerror(rc);
  }
  udp_.data = this;
  if ((rc = uv_udp_bind(&udp_, reinterpret_cast<const sockaddr*>(&addr), 0)) != 0) {
    return fail("bind", rc);
  }
  sockaddr_storage bound{};
  int len = sizeof bound;
  if ((rc = uv_udp_getsockname(&udp_, reinterpret_cast<sockaddr*>(&bound), &len)) != 0) {
    return fail("getsockname", rc);
  }
  port_ = port_of(bound);
  // The kernel caps SO_RCVBUF at net.core.rmem_max (and reports double what
  // it grants): log what we got, warn when it is less than asked for.
  int want = rcvbuf_bytes;
  if ((rc = uv_recv_buffer_size(reinterpret_cast<uv_handle_t*>(&udp_), &want)) != 0) {
    log::warn("udp_rcvbuf_set_failed", {{"listen", listen_}, {"error", uv_strerror(rc)}});
  }
  int got = 0;
  if ((rc = uv_recv_buffer_size(reinterpret_cast<uv_handle_t*>(&udp_), &got)) != 0) {
    log::warn("udp_rcvbuf_get_failed", {{"listen", listen_}, {"error", uv_strerror(rc)}});
  } else if (got < rcvbuf_bytes) {
    log::warn("udp_rcvbuf_capped", {{"listen", listen_},
                                    {"wanted_bytes", std::to_string(rcvbuf_bytes)},
                                    {"rcvbuf_bytes", std::to_string(got)},
                                    {"hint", "raise net.core.rmem_max"}});
  }
  buffer_.resize(dgram_slice * batch);
  if ((rc = uv_udp_recv_start(&udp_, on_alloc, on_recv)) != 0) {
    return fail("recv_start", rc);
  }
  log::info("udp_listening", {{"listen", listen_},
                              {"port", std::to_string(port_)},
                              {"recvmmsg", uv_udp_using_recvmmsg(&udp_) ? "yes" : "no"},
                              {"rcvbuf_bytes", std::to_string(got)}});
  // The listener only sends datagrams: no SIGPIPE to block.
  err = loop_.start([this] { close_handles(); }, false);
  if (!err.empty()) {
    return "udp listen " + listen_ + ": " + err;
  }
  return {};
}

void udp_listener::stop() { loop_.stop(); }

// On the loop thread at stop(), or on the starting thread when start fails.
void udp_listener::close_handles() {
  // recv_stop cannot fail on a started handle; uv_close stops it anyway.
  (void)uv_udp_recv_stop(&udp_);
  uv_close(reinterpret_cast<uv_handle_t*>(&udp_), nullptr);
}

void udp_listener::on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) {
  auto* self = static_cast<udp_listener*>(h->data);
  *buf = uv_buf_init(self->buffer_.data(),
                     static_cast<unsigned>(self->buffer_.size()));
}

void udp_listener::on_recv(uv_udp_t* h, ssize_t nread, const uv_buf_t* buf,
                           const sockaddr* addr, unsigned flags) {
  auto* self = static_cast<udp_listener*>(h->data);
  // UV_UDP_MMSG_FREE: the shared buffer is ours and reused, nothing to free.
  if ((flags & UV_UDP_MMSG_FREE) != 0 || addr == nullptr) {
    return;
  }
  if (nread < 0) {
    log::warn("udp_recv_error", {{"error", uv_strerror(static_cast<int>(nread))}});
    return;
  }
  self->received_.fetch_add(1, std::memory_order_relaxed);
  auto len = static_cast<std::size_t>(nread);
  if ((flags & UV_UDP_PARTIAL) != 0 || len > protocol::max_datagram_size) {
    self->oversized_.fetch_add(1, std::memory_order_relaxed);
    // Passed on with a length the decoder rejects as oversized, never as a
    // truncated datagram that might look valid.
    if (len <= protocol::max_datagram_size) {
      len = protocol::max_datagram_size + 1;
    }
  }
  std::uint8_t reply[protocol::ack_size];
  auto n = self->fn_(reinterpret_cast<const std::uint8_t*>(buf->base), len, addr, reply);
  if (n > 0 && n <= sizeof reply) {
    auto out = uv_buf_init(reinterpret_cast<char*>(reply), static_cast<unsigned>(n));
    if (uv_udp_try_send(&self->udp_, &out, 1, addr) == static_cast<int>(n)) {
      self->replies_sent_.fetch_add(1, std::memory_order_relaxed);
    } else {
      self->replies_dropped_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

} // namespace balctl
