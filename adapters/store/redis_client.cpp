#include "adapters/store/redis_client.hpp"

#include <hiredis/hiredis.h>
#include <netdb.h>
#include <sys/socket.h>
#include <uv.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>

#include "engine/log.hpp"
#include "transport/loop_thread.hpp"
#include "transport/tls_session.hpp"

namespace balctl::redis {

namespace {

reply convert(const redisReply* r) {
  reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.k = reply::kind::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.k = reply::kind::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.k = reply::kind::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.k = reply::kind::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.k = reply::kind::array;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) {
        out.elements.push_back(convert(r->element[i]));
      }
      break;
    default:
      out.k = reply::kind::nil;
      break;
  }
  return out;
}

struct queued {
  std::vector<std::string> argv;
  client::done cb;
};

struct reader_free {
  void operator()(redisReader* r) const { redisReaderFree(r); }
};
struct reply_free {
  void operator()(void* r) const { freeReplyObject(r); }
};
struct command_free {
  void operator()(char* c) const { redisFreeCommand(c); }
};
struct addrinfo_free {
  void operator()(addrinfo* a) const { uv_freeaddrinfo(a); }
};

template <typename T>
uv_handle_t* as_handle(T* h) {
  return reinterpret_cast<uv_handle_t*>(h);
}
template <typename T>
uv_stream_t* as_stream(T* h) {
  return reinterpret_cast<uv_stream_t*>(h);
}

/// Appends argv in Redis's protocol (RESP arrays of bulk strings: binary
/// safe) to out. False when hiredis could not allocate.
bool encode(const std::vector<std::string>& argv, std::string& out) {
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  char* raw = nullptr;
  int n = redisFormatCommandArgv(&raw, static_cast<int>(ptrs.size()), ptrs.data(), lens.data());
  std::unique_ptr<char, command_free> cmd(raw);
  if (n < 0 || !cmd) {
    return false;
  }
  out.append(cmd.get(), static_cast<std::size_t>(n));
  return true;
}

/// A session error as last_error shows it: "tls..." once.
std::string tls_reason(const std::string& e) {
  return e.rfind("tls", 0) == 0 ? e : "tls: " + e;
}

// One write on the socket: libuv holds the buffer until the callback.
struct write_req {
  uv_write_t req{};
  std::string data;
};

// Read from the socket per callback; replies larger than this arrive in
// several reads (the reader keeps what it has not parsed yet).
constexpr std::size_t read_chunk_bytes = 64 * 1024;

// One connection attempt to one address: its TCP socket, the TLS session
// over it when configured, and the reply reader. A new one for every
// attempt (and every address tried), so a callback of a connection being
// closed can never act on its successor. Freed in its socket's close
// callback, after libuv has answered its connect and write requests.
struct connection {
  client::impl* owner = nullptr;
  uv_tcp_t tcp{};
  uv_connect_t connect_req{};
  std::unique_ptr<tls::session> tls; // null for plain TCP
  std::unique_ptr<redisReader, reader_free> reader;
  std::string out;   // commands encoded since the last flush
  std::string plain; // what TLS decrypted, for the reader
  std::vector<char> read_buf = std::vector<char>(read_chunk_bytes);
  bool closing = false;
};

// An address lookup (uv_getaddrinfo runs on libuv's thread pool): owned by
// libuv while it runs, freed in its callback.
struct resolve_job {
  uv_getaddrinfo_t req{};
  client::impl* owner = nullptr;
  std::uint64_t attempt = 0;
};

/// Whether a TLS handshake failure looks like a server that does not speak
/// TLS on this port: a plain Redis may answer a ClientHello with an error
/// line (most often it waits for a newline until the connect timeout).
bool plain_server_likely(const std::string& tls_error) {
  return tls_error.find("wrong version number") != std::string::npos ||
         tls_error.find("packet length too long") != std::string::npos ||
         tls_error.find("record layer failure") != std::string::npos;
}

} // namespace

struct client::impl {
  client& owner;
  client_options o;
  std::string server; // host:port ([v6]:port), for logs
  loop_thread lt;
  uv_async_t wake{};
  uv_timer_t sweep{};     // command and connect timeouts
  uv_timer_t reconnect{}; // back-off
  std::mutex mu;
  std::deque<queued> inbox; // guarded by mu
  bool accepting = false;   // guarded by mu
  std::string last_error;   // guarded by mu
  std::unique_ptr<tls::context> tls_ctx; // set by start() when o.tls; read-only after

  // Loop thread only.
  enum class state : std::uint8_t { down, connecting, handshake, ready };
  // Where a connecting attempt is, for the reason it failed.
  enum class step : std::uint8_t { resolve, tcp, tls };
  state st = state::down;
  step at = step::resolve;
  connection* conn = nullptr;      // the current attempt's; owned by its socket
  resolve_job* resolving = nullptr; // the current lookup, to cancel at stop
  std::uint64_t attempt = 0;       // a lookup answering an older attempt is ignored
  std::vector<sockaddr_storage> addrs;
  std::size_t next_addr = 0;
  std::int64_t connect_deadline_ms = 0;
  std::int64_t backoff_ms = 0;
  int handshake_left = 0;
  bool handshake_answered = false; // Redis answered a handshake command
  bool closing = false;

  // One command on the wire. Replies come in order, so the oldest is at
  // the front of in_flight and owns the next reply.
  struct pending {
    done cb;
    std::int64_t deadline_ms = 0;
    bool handshake = false; // ours (AUTH, SELECT, PING): never answered outside
  };
  std::deque<pending> in_flight;

  impl(client& c, client_options opt)
    : owner(c), o(std::move(opt)),
      server((o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host) + ":" +
             std::to_string(o.port)),
      lt("redis", server) {}

  std::int64_t now() { return static_cast<std::int64_t>(uv_now(lt.loop())); }

  void set_error(std::string e) {
    std::lock_guard<std::mutex> g(mu);
    last_error = std::move(e);
  }

  void answer(done& cb, result r) {
    if (!r.transport_error.empty()) {
      owner.counters_.transport_errors.fetch_add(1, std::memory_order_relaxed);
    }
    cb(std::move(r));
  }

  void fail(done& cb, const std::string& why) {
    result r;
    r.transport_error = why;
    answer(cb, std::move(r));
  }

  // -- connection ------------------------------------------------------------

  void schedule_reconnect() {
    if (closing) {
      return;
    }
    backoff_ms = backoff_ms == 0 ? o.reconnect_min_ms
                                 : std::min(o.reconnect_max_ms, backoff_ms * 2);
    uv_timer_start(&reconnect, &impl::on_reconnect, static_cast<std::uint64_t>(backoff_ms), 0);
  }

  void connect() {
    if (closing || st != state::down) {
      return;
    }
    ++attempt;
    st = state::connecting;
    connect_deadline_ms = now() + o.connect_timeout_ms;
    addrs.clear();
    next_addr = 0;
    // An address literal needs no lookup ("::1" as well as "127.0.0.1").
    sockaddr_storage a{};
    if (uv_ip4_addr(o.host.c_str(), o.port, reinterpret_cast<sockaddr_in*>(&a)) == 0 ||
        uv_ip6_addr(o.host.c_str(), o.port, reinterpret_cast<sockaddr_in6*>(&a)) == 0) {
      addrs.push_back(a);
      try_next_address("");
      return;
    }
    at = step::resolve;
    auto job = std::make_unique<resolve_job>();
    job->owner = this;
    job->attempt = attempt;
    job->req.data = job.get();
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    auto port = std::to_string(o.port);
    int rc = uv_getaddrinfo(lt.loop(), &job->req, &impl::on_resolved, o.host.c_str(),
                            port.c_str(), &hints);
    if (rc != 0) {
      drop("connect: resolving " + o.host + ": " + uv_strerror(rc));
      return;
    }
    resolving = job.release(); // on_resolved takes it back
  }

  // The next address of this attempt, or the attempt fails with why (the
  // last address's reason).
  void try_next_address(const std::string& why) {
    if (next_addr >= addrs.size()) {
      drop("connect: " + why);
      return;
    }
    const auto& addr = addrs[next_addr++];
    at = step::tcp;
    auto c = std::make_unique<connection>();
    c->owner = this;
    c->tcp.data = c.get();
    c->connect_req.data = c.get();
    int rc = uv_tcp_init(lt.loop(), &c->tcp);
    if (rc != 0) {
      drop(std::string("connect: uv_tcp_init: ") + uv_strerror(rc));
      return; // never initialised: nothing to close, c goes here
    }
    conn = c.release(); // from here freed in on_closed
    uv_tcp_nodelay(&conn->tcp, 1);
    rc = uv_tcp_connect(&conn->connect_req, &conn->tcp, reinterpret_cast<const sockaddr*>(&addr),
                        &impl::on_connected);
    if (rc != 0) {
      close_connection();
      try_next_address(uv_strerror(rc));
    }
  }

  // Closes the current connection (if any); its callbacks see closing and
  // do nothing more; it is freed once libuv has closed the socket.
  void close_connection() {
    auto* c = conn;
    conn = nullptr;
    if (c == nullptr) {
      return;
    }
    c->closing = true;
    uv_close(as_handle(&c->tcp), &impl::on_closed);
  }

  // We end the connection (or the attempt): everything in flight is
  // answered with why, and a reconnect is scheduled.
  void drop(const std::string& why) {
    close_connection();
    bool was_ready = st == state::ready;
    st = state::down;
    owner.ready_.store(false, std::memory_order_release);
    if (was_ready) {
      owner.counters_.disconnects.fetch_add(1, std::memory_order_relaxed);
    }
    set_error(why);
    auto failed = std::move(in_flight);
    in_flight.clear();
    schedule_reconnect();
    // Last: a callback sees the client already down.
    for (auto& p : failed) {
      if (!p.handshake) {
        fail(p.cb, why);
      }
    }
  }

  // The connection ended under us (EOF, a socket or TLS error, a protocol
  // error): what tells the operator most, for the state it was in.
  void lost(const std::string& what, bool tls_error = false) {
    std::string why;
    if (st == state::connecting) {
      // Only TLS reads before the Redis handshake.
      why = tls_error ? tls_reason(what) : "tls handshake: " + what;
      if (!tls_error || plain_server_likely(what)) {
        why += " (does the server speak TLS on this port?)";
      }
      log::error("redis_tls_failed", {{"server", server}, {"error", why}});
    } else if (st == state::handshake) {
      why = "handshake: connection lost: " + what;
      if (!o.tls && !handshake_answered) {
        // A plain client on a TLS port: Redis closes without a word.
        why += " (a TLS port? use rediss://)";
      }
      log::error("redis_handshake_failed", {{"server", server}, {"error", why}});
    } else {
      why = "connection lost: " + what;
      log::warn("redis_disconnected", {{"server", server}, {"error", why}});
    }
    drop(why);
  }

  void send(std::vector<std::string> argv, done cb, bool handshake = false) {
    if (!encode(argv, conn->out)) {
      fail(cb, "out of memory encoding the command");
      return;
    }
    in_flight.push_back(pending{std::move(cb), now() + o.command_timeout_ms, handshake});
    if (!handshake) {
      owner.counters_.commands.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // Writes what was encoded since the last flush (through TLS when on),
  // and whatever the TLS session has to send of its own (handshake,
  // alerts). May drop the connection: callers check conn afterwards.
  void flush() {
    auto* c = conn;
    if (c == nullptr) {
      return;
    }
    std::string data;
    if (c->tls) {
      if (!c->out.empty()) {
        auto st_w = c->tls->write(c->out);
        c->out.clear();
        if (st_w == tls::session::status::error) {
          lost(c->tls->error(), true);
          return;
        }
      }
      data = c->tls->take_output();
    } else {
      data.swap(c->out);
    }
    if (data.empty()) {
      return;
    }
    auto w = std::make_unique<write_req>();
    w->data = std::move(data);
    w->req.data = w.get();
    auto b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    int rc = uv_write(&w->req, as_stream(&c->tcp), &b, 1, &impl::on_written);
    if (rc != 0) {
      lost(std::string("write: ") + uv_strerror(rc));
      return;
    }
    w.release(); // on_written takes it back
  }

  void handshake_done() {
    st = state::ready;
    backoff_ms = 0;
    owner.counters_.connects.fetch_add(1, std::memory_order_relaxed);
    set_error("");
    owner.ready_.store(true, std::memory_order_release);
    log::info("redis_connected", {{"server", server},
                                  {"db", std::to_string(o.db)},
                                  {"tls", o.tls ? "yes" : "no"}});
  }

  void on_handshake_reply(const result& r) {
    handshake_answered = true;
    if (!r.ok()) {
      // Redis's reason (WRONGPASS, NOAUTH, ...), never the password.
      auto why = "handshake: " + (r.transport_error.empty() ? r.value.str : r.transport_error);
      log::error("redis_handshake_failed", {{"server", server}, {"error", why}});
      if (st == state::handshake) {
        drop(why);
      }
      return;
    }
    if (--handshake_left == 0 && st == state::handshake) {
      handshake_done();
    }
  }

  void start_handshake() {
    st = state::handshake;
    handshake_left = 0;
    handshake_answered = false;
    auto ask = [this](std::vector<std::string> argv) {
      ++handshake_left;
      send(std::move(argv), [this](result r) { on_handshake_reply(r); }, true);
    };
    if (!o.password.empty()) {
      if (o.user.empty()) {
        ask({"AUTH", o.password});
      } else {
        ask({"AUTH", o.user, o.password});
      }
    }
    if (o.db != 0) {
      ask({"SELECT", std::to_string(o.db)});
    }
    // Ready means Redis answered a command, not only that the kernel took
    // the connection (a stopped Redis's backlog does), nor that it took
    // AUTH while still loading its data (PING answers LOADING then).
    ask({"PING"});
    flush();
  }

  // Parses what arrived and answers the oldest commands in flight with it.
  void deliver(const char* data, std::size_t len) {
    auto* c = conn;
    if (redisReaderFeed(c->reader.get(), data, len) != REDIS_OK) {
      lost(std::string("protocol error: ") + c->reader->errstr);
      return;
    }
    for (;;) {
      void* raw = nullptr;
      if (redisReaderGetReply(c->reader.get(), &raw) != REDIS_OK) {
        lost(std::string("protocol error: ") + c->reader->errstr);
        return;
      }
      if (raw == nullptr) {
        return; // the rest of a reply is still to come
      }
      std::unique_ptr<void, reply_free> r(raw);
      if (in_flight.empty()) {
        lost("protocol error: a reply to no command");
        return;
      }
      auto p = std::move(in_flight.front());
      in_flight.pop_front();
      result out;
      out.value = convert(static_cast<redisReply*>(raw));
      r.reset();
      if (p.handshake) {
        on_handshake_reply(out);
      } else {
        answer(p.cb, std::move(out));
      }
      if (conn != c) {
        return; // the handshake failed: the connection was dropped
      }
    }
  }

  // -- libuv callbacks -------------------------------------------------------------

  static void on_closed(uv_handle_t* h) {
    std::unique_ptr<connection> gone(static_cast<connection*>(h->data));
  }

  static void on_written(uv_write_t* req, int status) {
    std::unique_ptr<write_req> w(static_cast<write_req*>(req->data));
    // The socket's close callback has not run yet: c is still there.
    auto* c = static_cast<connection*>(req->handle->data);
    if (status == 0 || c->closing) {
      return;
    }
    auto* self = c->owner;
    self->drain(c);
    if (self->conn == c) {
      self->lost(std::string("write: ") + uv_strerror(status));
    }
  }

  // A server that refuses us often says why and closes at once (a TLS
  // alert such as "certificate required", an error reply): our next write
  // then fails with ECONNRESET while the reason still waits to be read.
  // Read it (without blocking) so the connection ends with the reason.
  void drain(connection* c) {
    uv_os_fd_t fd;
    if (uv_fileno(as_handle(&c->tcp), &fd) != 0) {
      return;
    }
    while (conn == c) {
      ssize_t n = ::recv(fd, c->read_buf.data(), c->read_buf.size(), MSG_DONTWAIT);
      if (n <= 0) {
        return; // nothing more, or the socket's own error: the caller's reason stands
      }
      auto b = uv_buf_init(c->read_buf.data(), static_cast<unsigned>(n));
      on_read(as_stream(&c->tcp), n, &b);
    }
  }

  static void on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
    std::unique_ptr<resolve_job> job(static_cast<resolve_job*>(req->data));
    std::unique_ptr<addrinfo, addrinfo_free> list(res);
    auto* self = job->owner;
    if (self->resolving == job.get()) {
      self->resolving = nullptr;
    }
    if (self->closing || job->attempt != self->attempt || self->st != state::connecting) {
      return; // stopped, or that attempt timed out meanwhile
    }
    if (status != 0 || res == nullptr) {
      self->drop("connect: resolving " + self->o.host + ": " +
                 (status != 0 ? uv_strerror(status) : "no address"));
      return;
    }
    for (auto* p = res; p != nullptr; p = p->ai_next) {
      sockaddr_storage a{};
      std::memcpy(&a, p->ai_addr, std::min<std::size_t>(p->ai_addrlen, sizeof a));
      self->addrs.push_back(a);
    }
    self->try_next_address("");
  }

  static void on_connected(uv_connect_t* req, int status) {
    auto* c = static_cast<connection*>(req->data);
    if (c->closing) {
      return; // closed meanwhile (UV_ECANCELED)
    }
    auto* self = c->owner;
    if (status != 0) {
      self->close_connection();
      self->try_next_address(uv_strerror(status));
      return;
    }
    c->reader.reset(redisReaderCreate());
    if (!c->reader) {
      self->drop("connect: out of memory (redisReaderCreate)");
      return;
    }
    int rc = uv_read_start(as_stream(&c->tcp), &impl::on_alloc, &impl::on_read);
    if (rc != 0) {
      self->drop(std::string("connect: uv_read_start: ") + uv_strerror(rc));
      return;
    }
    if (!self->o.tls) {
      self->start_handshake();
      return;
    }
    self->at = step::tls;
    c->tls = std::make_unique<tls::session>(
      *self->tls_ctx, self->o.tls_server_name.empty() ? self->o.host : self->o.tls_server_name);
    if (!c->tls->valid() || c->tls->start() == tls::session::status::error) {
      self->drop(tls_reason(c->tls->error()));
      return;
    }
    self->flush(); // the ClientHello
  }

  static void on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) {
    auto* c = static_cast<connection*>(h->data);
    buf->base = c->read_buf.data();
    buf->len = c->read_buf.size();
  }

  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
    auto* c = static_cast<connection*>(s->data);
    auto* self = c->owner;
    if (c->closing || nread == 0) {
      return;
    }
    if (nread < 0) {
      self->lost(nread == UV_EOF ? "closed by the server" : uv_strerror(static_cast<int>(nread)));
      return;
    }
    auto n = static_cast<std::size_t>(nread);
    if (!c->tls) {
      self->deliver(buf->base, n);
      return;
    }
    bool was_up = c->tls->established();
    auto st_tls = c->tls->feed(buf->base, n, c->plain);
    self->flush(); // the session's own answers (its Finished, alerts)
    if (self->conn != c) {
      return;
    }
    if (st_tls == tls::session::status::error) {
      self->lost(c->tls->error(), true);
      return;
    }
    if (st_tls == tls::session::status::closed) {
      self->lost("closed by the server (TLS close_notify)");
      return;
    }
    if (!was_up && c->tls->established() && self->st == state::connecting) {
      self->start_handshake();
      if (self->conn != c) {
        return;
      }
    }
    if (!c->plain.empty()) {
      std::string data;
      data.swap(c->plain);
      self->deliver(data.data(), data.size());
    }
  }

  static void on_reconnect(uv_timer_t* t) { static_cast<impl*>(t->data)->connect(); }

  static void on_sweep(uv_timer_t* t) {
    auto* self = static_cast<impl*>(t->data);
    auto now = self->now();
    if (self->st == state::connecting && now >= self->connect_deadline_ms) {
      auto ms = std::to_string(self->o.connect_timeout_ms);
      if (self->at == step::tls) {
        auto why = "tls handshake: no answer within " + ms +
                   " ms (does the server speak TLS on this port?)";
        log::error("redis_tls_failed", {{"server", self->server}, {"error", why}});
        self->drop(why);
      } else if (self->at == step::resolve) {
        self->drop("connect: timeout after " + ms + " ms resolving " + self->o.host);
      } else {
        self->drop("connect: timeout after " + ms + " ms");
      }
      return;
    }
    if (!self->in_flight.empty() && now >= self->in_flight.front().deadline_ms) {
      self->owner.counters_.timeouts.fetch_add(1, std::memory_order_relaxed);
      self->drop("timeout after " + std::to_string(self->o.command_timeout_ms) + " ms");
    }
  }

  static void on_wake(uv_async_t* a) {
    auto* self = static_cast<impl*>(a->data);
    std::deque<queued> batch;
    {
      std::lock_guard<std::mutex> g(self->mu);
      batch.swap(self->inbox);
    }
    bool sent = false;
    for (auto& q : batch) {
      if (self->closing) {
        self->fail(q.cb, "stopped");
      } else if (self->st != state::ready) {
        self->fail(q.cb, "not connected");
      } else if (self->in_flight.size() >= self->o.max_in_flight) {
        self->fail(q.cb, "queue full");
      } else {
        self->send(std::move(q.argv), std::move(q.cb));
        sent = true;
      }
    }
    // One write for the whole batch: a pipeline.
    if (sent) {
      self->flush();
    }
  }

  void close_all() {
    closing = true;
    {
      std::lock_guard<std::mutex> g(mu);
      accepting = false;
    }
    on_wake(&wake); // what was queued is answered
    close_connection();
    if (resolving != nullptr) {
      // Its callback still runs (UV_EAI_CANCELED, or the answer if the
      // lookup had begun) before the loop runs dry, and frees the job.
      uv_cancel(reinterpret_cast<uv_req_t*>(&resolving->req));
      resolving = nullptr;
    }
    auto failed = std::move(in_flight);
    in_flight.clear();
    st = state::down;
    owner.ready_.store(false, std::memory_order_release);
    uv_close(as_handle(&sweep), nullptr);
    uv_close(as_handle(&reconnect), nullptr);
    uv_close(as_handle(&wake), nullptr);
    for (auto& p : failed) {
      if (!p.handshake) {
        fail(p.cb, "stopped");
      }
    }
  }
};

client::client(client_options o) : impl_(std::make_unique<impl>(*this, std::move(o))) {}

client::~client() { stop(); }

std::string client::start() {
  auto& m = *impl_;
  auto life = m.lt.lock_life();
  if (!m.lt.startable()) {
    return "redis: start() after start() or stop()";
  }
  if (m.o.tls) {
    // Read once, here: a CA or key file that cannot be used is a start
    // failure naming the file, not a reason to retry.
    auto ctx = std::make_unique<tls::context>();
    if (auto e = ctx->load_client(m.o.tls_ca_file, m.o.tls_cert_file, m.o.tls_key_file);
        !e.empty()) {
      return "redis: " + e;
    }
    m.tls_ctx = std::move(ctx);
  }
  if (auto e = m.lt.init(); !e.empty()) {
    return "redis: " + e;
  }
  int rc = uv_async_init(m.lt.loop(), &m.wake, &impl::on_wake);
  if (rc != 0) {
    m.lt.abandon(nullptr);
    return std::string("redis: uv_async_init: ") + uv_strerror(rc);
  }
  m.wake.data = &m;
  auto close = [](std::initializer_list<uv_handle_t*> hs) {
    for (auto* h : hs) {
      uv_close(h, nullptr);
    }
  };
  rc = uv_timer_init(m.lt.loop(), &m.sweep);
  if (rc != 0) {
    m.lt.abandon([&] { close({as_handle(&m.wake)}); });
    return std::string("redis: uv_timer_init: ") + uv_strerror(rc);
  }
  m.sweep.data = &m;
  rc = uv_timer_init(m.lt.loop(), &m.reconnect);
  if (rc != 0) {
    m.lt.abandon([&] { close({as_handle(&m.wake), as_handle(&m.sweep)}); });
    return std::string("redis: uv_timer_init: ") + uv_strerror(rc);
  }
  m.reconnect.data = &m;
  // Timeouts are checked ten times a second at most (finer when the
  // timeout is shorter).
  auto tick = static_cast<std::uint64_t>(
    std::clamp<std::int64_t>(std::min(m.o.command_timeout_ms, m.o.connect_timeout_ms) / 4, 5, 100));
  uv_timer_start(&m.sweep, &impl::on_sweep, tick, tick);
  // The first attempt at once, on the loop.
  uv_timer_start(&m.reconnect, &impl::on_reconnect, 0, 0);
  {
    std::lock_guard<std::mutex> g(m.mu);
    m.accepting = true;
  }
  auto e = m.lt.start([&m] { m.close_all(); }, true);
  if (!e.empty()) {
    std::lock_guard<std::mutex> g(m.mu);
    m.accepting = false;
    return "redis: " + e;
  }
  return {};
}

void client::stop() {
  auto& m = *impl_;
  m.lt.stop([&m] {
    std::lock_guard<std::mutex> g(m.mu);
    m.accepting = false;
  });
  std::deque<queued> left;
  {
    std::lock_guard<std::mutex> g(m.mu);
    m.accepting = false;
    left.swap(m.inbox);
  }
  for (auto& q : left) {
    m.fail(q.cb, "stopped");
  }
}

void client::command(std::vector<std::string> argv, done cb) {
  auto& m = *impl_;
  {
    std::lock_guard<std::mutex> g(m.mu);
    if (m.accepting) {
      m.inbox.push_back(queued{std::move(argv), std::move(cb)});
      uv_async_send(&m.wake);
      return;
    }
  }
  m.fail(cb, "stopped");
}

std::string client::last_error() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->last_error;
}

std::vector<result> run_sync(client& c, std::vector<std::vector<std::string>> cmds) {
  std::vector<std::promise<result>> ps(cmds.size());
  std::vector<std::future<result>> fs;
  fs.reserve(cmds.size());
  for (auto& p : ps) {
    fs.push_back(p.get_future());
  }
  for (std::size_t i = 0; i < cmds.size(); ++i) {
    auto* p = &ps[i];
    c.command(std::move(cmds[i]), [p](result r) { p->set_value(std::move(r)); });
  }
  std::vector<result> out;
  out.reserve(fs.size());
  for (auto& f : fs) {
    out.push_back(f.get());
  }
  return out;
}

} // namespace balctl::redis
