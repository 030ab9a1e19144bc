#include "transport/tls_listener.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include <algorithm>
#include <list>
#include <optional>
#include <vector>

#include "engine/log.hpp"
#include "engine/registry.hpp" // ip_address, for logs
#include "transport/listen_address.hpp"
#include "transport/loop_thread.hpp"
#include "transport/protocol.hpp"
#include "transport/tls_session.hpp"

namespace balctl {

namespace {

// One read buffer for the whole loop: libuv delivers one read at a time and
// the TLS session copies what it keeps.
constexpr std::size_t read_buffer_bytes = 64 * 1024;
// TCP keepalive: a member that vanished without a FIN (power cut, NAT
// timeout) is found by the kernel long before the idle timeout would
// matter for memory, and NAT mappings stay warm.
constexpr unsigned keepalive_delay_s = 60;
// A connection's reassembly buffer holds less than one frame (at most 1400
// bytes) between reads; past this capacity it is shrunk, so a burst of
// frames in one 16 KiB record does not leave an idle connection holding
// 16 KiB.
constexpr std::size_t keep_input_capacity = 2 * protocol::max_datagram_size;
// Handshake failures are expected (scanners, plaintext clients, agents with
// the wrong CA): each is logged at debug, and at most this many a second as
// warnings.
constexpr double warn_per_s = 1.0;
constexpr double warn_burst = 5.0;

// The peer's address in 28 bytes instead of sockaddr_storage's 128.
union peer_address {
  sockaddr sa;
  sockaddr_in v4;
  sockaddr_in6 v6;
};

struct connection;

// One uv_write in flight: libuv holds the request (and the bytes it points
// at) until on_write, which takes ownership back.
struct write_op {
  uv_write_t req{};
  std::string bytes;
  connection* conn = nullptr;
};

// Memory per idle established connection, measured (mallinfo2 in the
// listener's process, 2000 connections, each after its handshake and one
// frame; OpenSSL 3.0, P-256 certificate, x86-64): about 15.5 KiB with
// TLS 1.3, 14.7 KiB with TLS 1.2. Of that, by heaptrack:
//   OpenSSL's SSL object itself                          7.6 KiB
//   two AES-GCM cipher contexts (read, write)            1.9 KiB
//   the rest of the TLS state (session, keys, small
//   allocations inside OpenSSL)                         ~4.8 KiB
//   memory BIOs (tls::session trims drained big ones)   ~0.5 KiB
//   this struct (uv_tcp_t 248 B, uv_timer_t 152 B,
//   tls::session 104 B, ...) in its std::list node      ~0.65 KiB
//   reassembly buffer: nothing, unless a read ended inside a frame
// The record buffers (2 × 16 KiB) are freed while idle (SSL_MODE_RELEASE_
// BUFFERS, set by tls::context::load_server); the kernel's socket buffers
// come on top, outside the process. 50000 idle connections: about 760 MiB.
struct connection {
  tls_listener::impl* srv = nullptr;
  std::list<connection>::iterator self; // for erasing in the close callback
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  int handles_open = 0;     // freed when the last close callback ran
  bool timer_ready = false;
  bool counted = false;     // counted in connections_open / active_
  bool established = false; // TLS handshake done: the timer counts idle time
  bool closed = false;      // uv_close issued
  std::optional<tls::session> tls;
  std::string in;              // plaintext not yet a complete frame
  std::size_t out_pending = 0; // bytes in uv_writes not yet completed
  std::int64_t last_frame_ms = 0;
  peer_address peer{};

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp); }
  uv_handle_t* tcp_handle() { return reinterpret_cast<uv_handle_t*>(&tcp); }
};

std::string peer_string(const connection& c) {
  if (c.peer.sa.sa_family != AF_INET && c.peer.sa.sa_family != AF_INET6) {
    return "unknown";
  }
  return ip_address::from_sockaddr(&c.peer.sa).to_string();
}

} // namespace

struct tls_listener::impl {
  impl(std::string listen, std::string cert_file, std::string key_file,
       tls_listener_limits limits, frame_fn fn, tls_listener_counters& counters)
    : listen_(std::move(listen)), cert_file_(std::move(cert_file)),
      key_file_(std::move(key_file)), limits_(limits), fn_(std::move(fn)),
      counters_(counters), loop_("tls", listen_) {}

  std::string start(std::uint16_t& port_out);
  void stop();

  // Loop-thread callbacks: none of them throws.
  static void on_connection(uv_stream_t* s, int status);
  static void on_alloc(uv_handle_t* h, std::size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_conn_timer(uv_timer_t* t);
  static void on_conn_closed(uv_handle_t* h);

  void close_all();
  void accept_one();
  void input(connection& c, const char* data, std::size_t len);
  bool take_frames(connection& c, std::string& buf);
  void tls_failed(connection& c);
  void send_output(connection& c);
  void goodbye(connection& c);
  void close_now(connection& c);
  std::int64_t now_ms() { return static_cast<std::int64_t>(uv_now(loop_.loop())); }

  std::string listen_;
  std::string cert_file_;
  std::string key_file_;
  tls_listener_limits limits_;
  frame_fn fn_;
  tls_listener_counters& counters_;

  tls::context ctx_;
  uv_tcp_t listener_{};
  bool listener_ready_ = false;
  bool started_ = false; // guarded by the life lock: a failed start counts too

  // Loop thread only from here on.
  std::vector<char> read_buf_;
  std::string plain_; // decrypted bytes of one read, when no frame was partial
  std::list<connection> conns_; // every connection with a handle open
  std::size_t active_ = 0;      // counted connections (not rejected)
  log::rate_limiter handshake_warn_{warn_per_s, warn_burst};
  log::rate_limiter reject_warn_{warn_per_s, warn_burst};
  log::rate_limiter accept_warn_{warn_per_s, warn_burst};

  // Last: destroyed first, while the members its loop uses still exist.
  loop_thread loop_;
};

// ---------------------------------------------------------------------------
// Start and stop.

std::string tls_listener::impl::start(std::uint16_t& port_out) {
  auto life = loop_.lock_life();
  // A second start, or a start after stop(), would leave a loop thread that
  // nothing stops (stop() is idempotent and would return at once).
  if (started_ || !loop_.startable()) {
    return "tls listen " + listen_ + ": start() after start() or stop()";
  }
  started_ = true;
  if (limits_.handshake_timeout_ms <= 0 || limits_.idle_timeout_ms <= 0) {
    return "tls listen " + listen_ + ": handshake_timeout_ms = " +
           std::to_string(limits_.handshake_timeout_ms) + ", idle_timeout_ms = " +
           std::to_string(limits_.idle_timeout_ms) + ": both must be > 0";
  }
  sockaddr_storage addr{};
  if (auto bad = listen_sockaddr(listen_, addr); !bad.empty()) {
    return "tls listen " + listen_ + ": " + bad;
  }
  int rc = 0;
  // Names the file and OpenSSL's reason.
  std::string err = ctx_.load_server(cert_file_, key_file_);
  if (!err.empty()) {
    return "tls listen " + listen_ + ": " + err;
  }
  err = loop_.init();
  if (!err.empty()) {
    return "tls listen " + listen_ + ": " + err;
  }

  // On a failure the handles opened so far are closed and the loop run dry
  // here, before any thread exists.
  auto fail = [&](const std::string& what, int code) {
    loop_.abandon([this] { close_all(); });
    return "tls listen " + listen_ + ": " + what + ": " + uv_strerror(code);
  };
  if ((rc = uv_tcp_init(loop_.loop(), &listener_)) != 0) {
    return fail("uv_tcp_init", rc);
  }
  listener_ready_ = true;
  listener_.data = this;

  const char* what = "";
  if ((rc = tcp_listen(&listener_, addr, on_connection, port_out, &what)) != 0) {
    return fail(what, rc);
  }
  read_buf_.resize(read_buffer_bytes);
  log::info("tls_listening", {{"listen", listen_},
                              {"port", std::to_string(port_out)},
                              {"cert_file", cert_file_},
                              {"max_connections", std::to_string(limits_.max_connections)}});
  // Acknowledgements go to TCP peers that may have gone: block SIGPIPE.
  err = loop_.start([this] { close_all(); }, true);
  if (!err.empty()) {
    return "tls listen " + listen_ + ": " + err;
  }
  return {};
}

void tls_listener::impl::stop() { loop_.stop(); }

// On the loop thread at stop() (or on the starting thread when start fails):
// the listening socket and every connection.
void tls_listener::impl::close_all() {
  if (listener_ready_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    listener_ready_ = false;
  }
  // Connections leave conns_ in their close callbacks, later in this run,
  // so the list is not changed while it is walked here.
  for (auto& c : conns_) {
    try {
      goodbye(c);
    } catch (...) {
      close_now(c);
    }
  }
}

// ---------------------------------------------------------------------------
// Accept.

void tls_listener::impl::on_connection(uv_stream_t* s, int status) {
  auto* self = static_cast<impl*>(s->data);
  if (status < 0) {
    std::uint64_t suppressed = 0;
    if (self->accept_warn_.allow(self->now_ms(), &suppressed)) {
      log::warn("tls_accept_failed", {{"listen", self->listen_},
                                      {"error", uv_strerror(status)},
                                      {"suppressed", std::to_string(suppressed)}});
    }
    return;
  }
  try {
    self->accept_one();
  } catch (const std::exception& e) {
    log::error("tls_accept_failed", {{"listen", self->listen_}, {"error", e.what()}});
  } catch (...) {
    log::error("tls_accept_failed", {{"listen", self->listen_}, {"error", "unknown"}});
  }
}

void tls_listener::impl::accept_one() {
  conns_.emplace_back();
  auto it = std::prev(conns_.end());
  connection& c = *it;
  c.srv = this;
  c.self = it;
  int rc = uv_tcp_init(loop_.loop(), &c.tcp);
  if (rc != 0) {
    conns_.erase(it);
    log::error("tls_accept_failed", {{"listen", listen_},
                                     {"call", "uv_tcp_init"},
                                     {"error", uv_strerror(rc)}});
    return;
  }
  // From here on the connection is freed only by its close callbacks.
  c.handles_open = 1;
  c.tcp.data = &c;
  if ((rc = uv_accept(reinterpret_cast<uv_stream_t*>(&listener_), c.stream())) != 0) {
    log::warn("tls_accept_failed", {{"listen", listen_},
                                    {"call", "uv_accept"},
                                    {"error", uv_strerror(rc)}});
    close_now(c);
    return;
  }
  if (active_ >= limits_.max_connections) {
    // Accepted and closed at once: left in the backlog it would be retried
    // by the kernel and by the agent alike.
    counters_.connections_rejected.fetch_add(1, std::memory_order_relaxed);
    std::uint64_t suppressed = 0;
    if (reject_warn_.allow(now_ms(), &suppressed)) {
      log::warn("tls_connection_rejected",
                {{"listen", listen_},
                 {"open", std::to_string(active_)},
                 {"max_connections", std::to_string(limits_.max_connections)},
                 {"suppressed", std::to_string(suppressed)}});
    }
    close_now(c);
    return;
  }
  c.counted = true;
  ++active_;
  counters_.connections_open.fetch_add(1, std::memory_order_relaxed);
  counters_.connections_total.fetch_add(1, std::memory_order_relaxed);

  // Frames are small and answered at once: no Nagle delay on the acks.
  if ((rc = uv_tcp_nodelay(&c.tcp, 1)) != 0) {
    log::debug("tls_nodelay_failed", {{"error", uv_strerror(rc)}});
  }
  if ((rc = uv_tcp_keepalive(&c.tcp, 1, keepalive_delay_s)) != 0) {
    log::debug("tls_keepalive_failed", {{"error", uv_strerror(rc)}});
  }
  int len = sizeof c.peer;
  if ((rc = uv_tcp_getpeername(&c.tcp, &c.peer.sa, &len)) != 0) {
    // The peer already left (ENOTCONN): nothing to serve.
    log::debug("tls_getpeername_failed", {{"error", uv_strerror(rc)}});
    close_now(c);
    return;
  }
  if ((rc = uv_timer_init(loop_.loop(), &c.timer)) != 0) {
    log::error("tls_accept_failed", {{"listen", listen_},
                                     {"call", "uv_timer_init"},
                                     {"error", uv_strerror(rc)}});
    close_now(c);
    return;
  }
  c.timer_ready = true;
  c.handles_open = 2;
  c.timer.data = &c;
  c.tls.emplace(ctx_);
  if (!c.tls->valid()) {
    log::error("tls_accept_failed", {{"listen", listen_}, {"error", c.tls->error()}});
    close_now(c);
    return;
  }
  if ((rc = uv_read_start(c.stream(), on_alloc, on_read)) != 0) {
    log::warn("tls_accept_failed", {{"listen", listen_},
                                    {"call", "uv_read_start"},
                                    {"error", uv_strerror(rc)}});
    close_now(c);
    return;
  }
  if ((rc = uv_timer_start(&c.timer, on_conn_timer,
                           static_cast<std::uint64_t>(limits_.handshake_timeout_ms), 0)) != 0) {
    close_now(c);
    return;
  }
}

// ---------------------------------------------------------------------------
// Read, frames, write.

void tls_listener::impl::on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) {
  auto* c = static_cast<connection*>(h->data);
  auto& b = c->srv->read_buf_;
  *buf = uv_buf_init(b.data(), static_cast<unsigned>(b.size()));
}

void tls_listener::impl::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<connection*>(s->data);
  impl* self = c->srv;
  if (c->closed || nread == 0) {
    return;
  }
  if (nread < 0) {
    // EOF or a reset: the peer is gone, there is nobody to say goodbye to.
    if (nread != UV_EOF) {
      log::debug("tls_read_failed", {{"peer", peer_string(*c)},
                                     {"error", uv_strerror(static_cast<int>(nread))}});
    }
    self->close_now(*c);
    return;
  }
  try {
    self->input(*c, buf->base, static_cast<std::size_t>(nread));
  } catch (const std::exception& e) {
    log::error("tls_connection_failed", {{"peer", peer_string(*c)}, {"error", e.what()}});
    self->close_now(*c);
  } catch (...) {
    log::error("tls_connection_failed", {{"peer", peer_string(*c)}, {"error", "unknown"}});
    self->close_now(*c);
  }
}

void tls_listener::impl::input(connection& c, const char* data, std::size_t len) {
  // Usually a read holds whole frames: they are decrypted into the loop's
  // buffer and the connection keeps nothing. Only a frame cut by the end of
  // a read is kept in c.in, and then the next plaintext goes after it.
  std::string& buf = c.in.empty() ? plain_ : c.in;
  plain_.clear();
  tls::session::status st = c.tls->feed(data, len, buf);
  if (st == tls::session::status::error) {
    tls_failed(c);
    return;
  }
  if (!c.established && c.tls->established()) {
    // The handshake timer becomes the idle timer; the handshake counts as
    // the first sign of life.
    c.established = true;
    c.last_frame_ms = now_ms();
    int rc = uv_timer_start(&c.timer, on_conn_timer,
                            static_cast<std::uint64_t>(limits_.idle_timeout_ms), 0);
    if (rc != 0) {
      close_now(c);
      return;
    }
  }
  if (!take_frames(c, buf)) {
    return; // closed
  }
  if (st == tls::session::status::closed) {
    // close_notify: answer with ours (after any replies) and close.
    goodbye(c);
    return;
  }
  send_output(c);
}

// Hands every complete frame in buf (plain_ or c.in) to the callback and
// queues the replies; a partial frame at the end is left in c.in. False
// when the connection was closed.
bool tls_listener::impl::take_frames(connection& c, std::string& buf) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(buf.data());
  std::size_t off = 0;
  std::size_t taken = 0;
  while (off < buf.size()) {
    std::size_t have = buf.size() - off;
    std::size_t need = protocol::frame_size(p + off, have);
    if (need == protocol::frame_garbage) {
      // No resynchronising a stream: everything after this is suspect.
      counters_.garbage_closed.fetch_add(1, std::memory_order_relaxed);
      log::debug("tls_garbage_closed", {{"peer", peer_string(c)},
                                        {"offset", std::to_string(off)},
                                        {"frames_before", std::to_string(taken)}});
      goodbye(c);
      return false;
    }
    if (need == 0 || need > have) {
      break; // the rest of the frame is in a later record
    }
    std::uint8_t reply[protocol::ack_size];
    std::size_t n = fn_ ? fn_(p + off, need, &c.peer.sa, reply) : 0;
    counters_.frames.fetch_add(1, std::memory_order_relaxed);
    ++taken;
    off += need;
    if (n > 0) {
      n = std::min(n, protocol::ack_size);
      if (c.tls->write(std::string_view(reinterpret_cast<const char*>(reply), n)) ==
          tls::session::status::error) {
        tls_failed(c);
        return false;
      }
    }
  }
  if (taken > 0) {
    // The idle timer is not touched per frame: it reads this when it fires.
    c.last_frame_ms = now_ms();
  }
  if (&buf == &c.in) {
    c.in.erase(0, off);
    if (c.in.empty()) {
      std::string().swap(c.in); // give the memory back between frames
    } else if (c.in.capacity() > keep_input_capacity) {
      c.in.shrink_to_fit();
    }
  } else if (off < buf.size()) {
    c.in.assign(buf, off, std::string::npos);
  }
  return true;
}

void tls_listener::impl::tls_failed(connection& c) {
  if (!c.established) {
    counters_.handshake_errors.fetch_add(1, std::memory_order_relaxed);
    log::debug("tls_handshake_failed", {{"peer", peer_string(c)}, {"error", c.tls->error()}});
    std::uint64_t suppressed = 0;
    if (handshake_warn_.allow(now_ms(), &suppressed)) {
      log::warn("tls_handshake_failed", {{"listen", listen_},
                                         {"peer", peer_string(c)},
                                         {"error", c.tls->error()},
                                         {"suppressed", std::to_string(suppressed)}});
    }
  } else {
    counters_.tls_errors.fetch_add(1, std::memory_order_relaxed);
    log::debug("tls_connection_error", {{"peer", peer_string(c)}, {"error", c.tls->error()}});
  }
  // The alert OpenSSL queued, if any, goes out best effort.
  goodbye(c);
}

void tls_listener::impl::send_output(connection& c) {
  if (c.closed) {
    return;
  }
  std::string out = c.tls->take_output();
  if (out.empty()) {
    return;
  }
  std::size_t off = 0;
  if (c.out_pending == 0) {
    // Usually the kernel takes a whole ack at once: no request, no copy.
    // (uv_try_write refuses while earlier writes are queued, so order holds.)
    uv_buf_t b = uv_buf_init(out.data(), static_cast<unsigned>(out.size()));
    int rc = uv_try_write(c.stream(), &b, 1);
    if (rc >= 0) {
      off = static_cast<std::size_t>(rc);
    } else if (rc != UV_EAGAIN) {
      log::debug("tls_write_failed", {{"peer", peer_string(c)}, {"error", uv_strerror(rc)}});
      close_now(c);
      return;
    }
    if (off == out.size()) {
      return;
    }
  }
  std::size_t rest = out.size() - off;
  if (c.out_pending + rest > limits_.max_pending_output) {
    counters_.slow_readers_closed.fetch_add(1, std::memory_order_relaxed);
    log::debug("tls_slow_reader_closed", {{"peer", peer_string(c)},
                                          {"pending_bytes", std::to_string(c.out_pending + rest)},
                                          {"max_pending_output",
                                           std::to_string(limits_.max_pending_output)}});
    close_now(c);
    return;
  }
  auto op = std::make_unique<write_op>();
  out.erase(0, off);
  op->bytes = std::move(out);
  op->conn = &c;
  op->req.data = op.get();
  uv_buf_t b = uv_buf_init(op->bytes.data(), static_cast<unsigned>(op->bytes.size()));
  int rc = uv_write(&op->req, c.stream(), &b, 1, on_write);
  if (rc != 0) {
    log::debug("tls_write_failed", {{"peer", peer_string(c)}, {"error", uv_strerror(rc)}});
    close_now(c);
    return;
  }
  c.out_pending += rest;
  (void)op.release(); // on_write takes it back
}

void tls_listener::impl::on_write(uv_write_t* req, int status) {
  std::unique_ptr<write_op> op(static_cast<write_op*>(req->data));
  connection* c = op->conn;
  // Write callbacks (UV_ECANCELED after uv_close) run before the close
  // callbacks, so the connection is still there.
  c->out_pending -= op->bytes.size();
  if (c->closed) {
    return;
  }
  if (status < 0) {
    log::debug("tls_write_failed", {{"peer", peer_string(*c)}, {"error", uv_strerror(status)}});
    c->srv->close_now(*c);
  }
}

// ---------------------------------------------------------------------------
// Timers and close.

void tls_listener::impl::on_conn_timer(uv_timer_t* t) {
  auto* c = static_cast<connection*>(t->data);
  impl* self = c->srv;
  if (c->closed) {
    return;
  }
  try {
    if (!c->established) {
      self->counters_.timeouts.fetch_add(1, std::memory_order_relaxed);
      self->counters_.handshake_timeouts.fetch_add(1, std::memory_order_relaxed);
      log::debug("tls_handshake_timeout",
                 {{"peer", peer_string(*c)},
                  {"handshake_timeout_ms", std::to_string(self->limits_.handshake_timeout_ms)}});
      self->close_now(*c);
      return;
    }
    // Frames only move last_frame_ms; the timer catches up here.
    std::int64_t deadline = c->last_frame_ms + self->limits_.idle_timeout_ms;
    std::int64_t now = self->now_ms();
    if (now < deadline) {
      int rc = uv_timer_start(&c->timer, on_conn_timer,
                              static_cast<std::uint64_t>(deadline - now), 0);
      if (rc != 0) {
        self->close_now(*c);
      }
      return;
    }
    self->counters_.timeouts.fetch_add(1, std::memory_order_relaxed);
    log::debug("tls_idle_timeout",
               {{"peer", peer_string(*c)},
                {"idle_timeout_ms", std::to_string(self->limits_.idle_timeout_ms)}});
    self->goodbye(*c);
  } catch (...) {
    self->close_now(*c);
  }
}

// close_notify (when established) and whatever output is queued, best
// effort without waiting, then close. A peer that cannot take these few
// bytes at once is not waited for.
void tls_listener::impl::goodbye(connection& c) {
  if (c.closed) {
    return;
  }
  if (c.tls && c.tls->valid()) {
    c.tls->shutdown();
    std::string out = c.tls->take_output();
    if (!out.empty() && c.out_pending == 0) {
      uv_buf_t b = uv_buf_init(out.data(), static_cast<unsigned>(out.size()));
      (void)uv_try_write(c.stream(), &b, 1);
    }
  }
  close_now(c);
}

void tls_listener::impl::close_now(connection& c) {
  if (c.closed) {
    return;
  }
  c.closed = true;
  if (c.counted) {
    --active_;
    counters_.connections_open.fetch_sub(1, std::memory_order_relaxed);
  }
  uv_close(c.tcp_handle(), on_conn_closed);
  if (c.timer_ready) {
    uv_close(reinterpret_cast<uv_handle_t*>(&c.timer), on_conn_closed);
  }
}

void tls_listener::impl::on_conn_closed(uv_handle_t* h) {
  auto* c = static_cast<connection*>(h->data);
  if (--c->handles_open == 0) {
    // The last handle is closed: libuv is done with the connection's memory.
    c->srv->conns_.erase(c->self);
  }
}

// ---------------------------------------------------------------------------
// tls_listener

tls_listener::tls_listener(std::string listen, std::string cert_file, std::string key_file,
                           tls_listener_limits limits, frame_fn fn)
  : impl_(std::make_unique<impl>(std::move(listen), std::move(cert_file), std::move(key_file),
                                 limits, std::move(fn), counters_)) {}

tls_listener::~tls_listener() { stop(); }

std::string tls_listener::start() { return impl_->start(port_); }

void tls_listener::stop() { impl_->stop(); }

const std::atomic<std::int64_t>& tls_listener::loop_lag_ms() const {
  return impl_->loop_.lag_ms();
}

const std::atomic<std::int64_t>& tls_listener::loop_lag_max_ms() const {
  return impl_->loop_.lag_max_ms();
}

} // namespace balctl
