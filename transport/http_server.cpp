#include "transport/http_server.hpp"

#include <http_parser.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <uv.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <list>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "engine/log.hpp"
#include "engine/text.hpp"
#include "transport/listen_address.hpp"
#include "transport/loop_thread.hpp"
#include "transport/tls_session.hpp"

namespace balctl::http {

namespace {

// One read buffer for the whole loop: libuv allocates and delivers one read
// at a time and the parser copies what it keeps.
constexpr std::size_t read_buffer_bytes = 64 * 1024;
// Plaintext out of SSL_read, one TLS record at most.
constexpr std::size_t tls_plain_bytes = 16 * 1024;
// Pipelining back-pressure: a client may have this many requests waiting
// for their responses, or this many response bytes not yet taken by the
// kernel, before the connection stops being read.
constexpr std::size_t max_pipelined = 64;
constexpr std::size_t max_write_queue_bytes = 1024 * 1024;
// After the last response of a closing connection: how long its remaining
// input is read and dropped (so the close is a FIN, not a RST that could
// destroy the response in the client's buffer).
constexpr std::int64_t linger_ms = 1000;
// Rejected connections (over max_connections) are answered with a 503; past
// this many at once they are closed without an answer.
constexpr std::size_t max_rejected_open = 256;
// http_parser_parse_url stores offsets in 16 bits.
constexpr std::size_t max_url_bytes = 65535;
// Response bodies above this go to the socket as their own write, moved
// rather than copied behind the headers (a multi-MiB chunk of the embedded
// chunk store).
constexpr std::size_t inline_body_bytes = 64 * 1024;



std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) {
    return {};
  }
  auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// RFC 9110 token characters: what a header name may hold.
bool is_token(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              std::strchr("!#$%&'*+-.^_`|~", ch) != nullptr;
    if (!ok || c == 0) {
      return false;
    }
  }
  return true;
}

// A header value must not end the header early (CR, LF) or carry NUL.
bool is_header_value(std::string_view s) {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '\r' || c == '\n' || c == 0 || (c < 0x20 && c != '\t') || c == 0x7f) {
      return false;
    }
  }
  return true;
}

// Headers the server writes itself; the handler's copies are dropped.
bool is_server_header(std::string_view name) {
  return iequals(name, "content-length") || iequals(name, "connection") ||
         iequals(name, "date") || iequals(name, "transfer-encoding") ||
         iequals(name, "content-type");
}

// Whether the body goes on the wire: not for HEAD, 204 or 304.
bool sends_body(const response& r, bool head) {
  return !head && r.status != 204 && r.status != 304;
}

const char* reason_phrase(int status) {
  const char* r = http_status_str(static_cast<enum http_status>(status));
  return (r == nullptr || r[0] == '<') ? "Unknown" : r;
}

struct ssl_free {
  void operator()(SSL* p) const { SSL_free(p); }
};
struct bio_free {
  void operator()(BIO* p) const { BIO_free(p); }
};
using ssl_ptr = std::unique_ptr<SSL, ssl_free>;
using bio_ptr = std::unique_ptr<BIO, bio_free>;

} // namespace

// ---------------------------------------------------------------------------
// The hand-over from responders (any thread) to the loop.

struct posted_response {
  std::uint64_t conn_id = 0;
  std::uint64_t seq = 0;
  response resp;
};

// Shared by the server and every responder slot, so a responder that
// outlives the server finds `open == false` instead of a dangling loop.
struct response_mailbox {
  std::mutex mu;
  bool open = false;           // guarded by mu; wake is valid only while open
  uv_async_t* wake = nullptr;  // the loop's mail handle
  std::vector<posted_response> items;

  void post(std::uint64_t conn_id, std::uint64_t seq, response r) {
    std::lock_guard<std::mutex> guard(mu);
    if (!open) {
      return;
    }
    items.push_back(posted_response{conn_id, seq, std::move(r)});
    // Holding mu: stop() clears `open` under mu before it closes the handle.
    (void)uv_async_send(wake);
  }
};

struct responder::slot {
  std::shared_ptr<response_mailbox> box;
  std::uint64_t conn_id = 0;
  std::uint64_t seq = 0;
  std::atomic<bool> answered{false};

  ~slot() {
    // Every copy of the responder is gone and none answered: the handler
    // lost the request. Answer for it so the connection does not hang and
    // the responses behind this one can go out.
    if (answered.exchange(true)) {
      return;
    }
    try {
      box->post(conn_id, seq,
                error_response(500, "internal", "",
                               "the request was dropped without an answer"));
    } catch (...) {
      // Nothing to do: the connection closes on its own timers.
    }
  }
};

void responder::operator()(response r) const {
  if (!slot_ || slot_->answered.exchange(true)) {
    return;
  }
  slot_->box->post(slot_->conn_id, slot_->seq, std::move(r));
}

const std::string* request::header(std::string_view lower_name) const {
  for (const auto& h : headers) {
    if (h.first == lower_name) {
      return &h.second;
    }
  }
  return nullptr;
}

response error_response(int status, std::string_view code, std::string_view field,
                        std::string_view message) {
  nlohmann::ordered_json e;
  e["status"] = status;
  e["code"] = std::string(code);
  e["field"] = field.empty() ? nlohmann::ordered_json(nullptr)
                             : nlohmann::ordered_json(std::string(field));
  e["message"] = std::string(message);
  nlohmann::ordered_json body;
  body["error"] = std::move(e);
  response r;
  r.status = status;
  // replace: a message quoting client bytes must not throw on bad UTF-8.
  r.body = body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  return r;
}

// ---------------------------------------------------------------------------
// Connections.

namespace {

struct connection;

struct write_op {
  uv_write_t req{};
  std::string bytes;
  connection* conn = nullptr;
  std::list<write_op>::iterator self;
};

// One slot per request, in request order; the front goes out first.
struct pending_response {
  bool ready = false;
  bool head = false;       // HEAD: the body is not written
  bool keep_alive = true;  // false: Connection: close, then close
  response resp;
};

// What the connection's one timer is counting.
//
//   accept ──(tls)──> handshake ──> idle <──────────────┐
//                                    │ first byte         │ last response out
//                                    v                    │
//                                  request ──complete──> none (handler busy)
//   any ──last response out, or an error──> closing (write stall, then linger)
enum class timer_mode { none, handshake, request, idle, closing };

struct connection {
  server::impl* srv = nullptr;
  std::uint64_t id = 0;
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  uv_shutdown_t shutdown_req{};
  bool tcp_ready = false;
  bool timer_ready = false;
  int handles_open = 0;
  bool rejected = false;  // over max_connections: answered 503, then closed
  ip_address peer;
  std::int64_t accepted_ms = 0;

  // TLS (ssl is null on a plain connection). The BIOs belong to ssl.
  ssl_ptr ssl;
  BIO* rbio = nullptr;
  BIO* wbio = nullptr;
  bool handshake_done = false;

  // The request being parsed.
  http_parser parser{};
  request cur;
  std::string url;
  std::string field;
  std::string value;
  bool in_value = false;
  bool headers_done = false;
  std::size_t header_bytes = 0;
  bool in_message = false;
  bool message_done = false;  // set by on_message_complete, taken by dispatch
  bool message_keep_alive = true;
  bool want_continue = false;
  std::optional<response> error;  // a limit broken (or a refusal) inside a parser callback
  std::int64_t message_start_ms = 0;
  // This request's limits: the server's, or its route's (server_limits::routes).
  std::size_t body_limit = 0;
  std::int64_t request_timeout_ms = 0;

  // Responses, in request order. pending.front() has sequence base_seq.
  std::deque<pending_response> pending;
  std::uint64_t base_seq = 0;
  std::uint64_t next_seq = 0;
  std::list<write_op> writes;

  bool input_closed = false;  // no further requests are parsed
  bool eof = false;           // the peer closed its side
  bool reading = false;
  bool shutting = false;      // uv_shutdown issued: the last bytes are out
  bool closed = false;        // uv_close issued
  timer_mode mode = timer_mode::none;
  std::int64_t deadline_ms = 0;

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp); }
};

} // namespace

struct server::impl {
  impl(std::string listen, server_limits limits, handler h, std::optional<tls_files> tls,
       server_counters& counters);
  ~impl();

  std::string start(std::uint16_t& port_out);
  void stop();

  // Set-up.
  std::string load_tls();

  // Loop-thread callbacks (never throw).
  static void on_connection(uv_stream_t* s, int status);
  static void on_alloc(uv_handle_t* h, std::size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_shutdown(uv_shutdown_t* req, int status);
  static void on_conn_timer(uv_timer_t* t);
  static void on_conn_handle_closed(uv_handle_t* h);
  static void on_mail(uv_async_t* a);

  // http_parser callbacks.
  static int on_message_begin(http_parser* p);
  static int on_url(http_parser* p, const char* at, std::size_t len);
  static int on_header_field(http_parser* p, const char* at, std::size_t len);
  static int on_header_value(http_parser* p, const char* at, std::size_t len);
  static int on_headers_complete(http_parser* p);
  static int on_body(http_parser* p, const char* at, std::size_t len);
  static int on_message_complete(http_parser* p);

  // Life cycle.
  void close_all();
  void close_mailbox();

  // Connection work, on the loop thread.
  void accept_one();
  void input(connection& c, const char* data, std::size_t len);
  void tls_input(connection& c, const char* data, std::size_t len);
  void feed(connection& c, const char* data, std::size_t len);
  void dispatch(connection& c);
  void peer_closed(connection& c);
  void fail(connection& c, int status, std::string_view code, const std::string& message);
  void refuse(connection& c, response r);
  void flush(connection& c);
  void send(connection& c, std::string bytes);
  void send_tls_output(connection& c);
  void queue_write(connection& c, std::string bytes);
  void begin_close(connection& c);
  void close_now(connection& c);
  void update_timer(connection& c);
  void adjust_reading(connection& c);
  void drain_mail();
  std::string serialize(response& r, bool head, bool keep_alive);
  const std::string& http_date();
  int add_header_bytes(connection& c, std::size_t n);
  int commit_header(connection& c);

  std::string listen_;
  server_limits limits_;
  handler handler_;
  std::optional<tls_files> tls_;
  server_counters& counters_;

  uv_tcp_t listener_{};
  uv_async_t mail_async_{};
  bool listener_ready_ = false;
  bool mail_ready_ = false;

  std::shared_ptr<response_mailbox> box_ = std::make_shared<response_mailbox>();
  tls::context tls_ctx_; // loaded when tls_ is set (start() fails otherwise)
  http_parser_settings settings_{};

  // Loop thread only from here on.
  std::unordered_map<std::uint64_t, std::unique_ptr<connection>> conns_;
  std::uint64_t next_conn_id_ = 1;
  std::size_t active_ = 0;         // open, not rejected
  std::size_t rejected_open_ = 0;  // open, rejected
  std::vector<char> read_buf_;
  std::vector<char> plain_buf_;
  std::string date_;
  std::time_t date_s_ = -1;
  log::rate_limiter error_log_{1.0, 10.0};

  // Last: destroyed first, while the members its loop uses still exist.
  loop_thread loop_;
};

server::impl::impl(std::string listen, server_limits limits, handler h,
                   std::optional<tls_files> tls, server_counters& counters)
  : listen_(std::move(listen)), limits_(limits), handler_(std::move(h)), tls_(std::move(tls)),
    counters_(counters),
    loop_("http", listen_, counters.loop_lag_ms, counters.loop_lag_max_ms) {
  http_parser_settings_init(&settings_);
  settings_.on_message_begin = on_message_begin;
  settings_.on_url = on_url;
  settings_.on_header_field = on_header_field;
  settings_.on_header_value = on_header_value;
  settings_.on_headers_complete = on_headers_complete;
  settings_.on_body = on_body;
  settings_.on_message_complete = on_message_complete;
}

server::impl::~impl() = default;

// ---------------------------------------------------------------------------
// Life cycle.

std::string server::impl::load_tls() {
  auto err = tls_ctx_.load_server(tls_->cert_file, tls_->key_file);
  return err.empty() ? err : "http " + err;
}

std::string server::impl::start(std::uint16_t& port_out) {
  auto life = loop_.lock_life();
  // A second start, or a start after stop(), would leave a loop thread that
  // nothing stops (stop() is idempotent and would return at once).
  if (!loop_.startable()) {
    return "http listen " + listen_ + ": start() after start() or stop()";
  }
  if (limits_.request_timeout_ms <= 0) {
    return "http listen " + listen_ + ": request_timeout_ms = " +
           std::to_string(limits_.request_timeout_ms) + ": must be > 0";
  }
  for (const auto& route : limits_.routes) {
    if (route.request_timeout_ms <= 0 || route.path_prefix.empty()) {
      return "http listen " + listen_ + ": route \"" + route.path_prefix +
             "\": needs a path prefix and request_timeout_ms > 0";
    }
  }
  if (limits_.idle_timeout_ms <= 0) {
    return "http listen " + listen_ + ": idle_timeout_ms = " +
           std::to_string(limits_.idle_timeout_ms) + ": must be > 0";
  }
  sockaddr_storage addr{};
  if (auto bad = listen_sockaddr(listen_, addr); !bad.empty()) {
    return "http listen " + listen_ + ": " + bad;
  }
  int rc = 0;
  if (tls_) {
    std::string err = load_tls();
    if (!err.empty()) {
      return err;
    }
  }
  std::string err = loop_.init();
  if (!err.empty()) {
    return "http listen " + listen_ + ": " + err;
  }

  // On a failure the handles opened so far are closed and the loop run dry
  // here, before any thread exists.
  auto fail = [&](const std::string& what, int code) {
    loop_.abandon([this] { close_all(); });
    return "http listen " + listen_ + ": " + what + ": " + uv_strerror(code);
  };
  if ((rc = uv_tcp_init(loop_.loop(), &listener_)) != 0) {
    return fail("uv_tcp_init", rc);
  }
  listener_ready_ = true;
  listener_.data = this;
  if ((rc = uv_async_init(loop_.loop(), &mail_async_, on_mail)) != 0) {
    return fail("uv_async_init", rc);
  }
  mail_ready_ = true;
  mail_async_.data = this;

  const char* what = "";
  if ((rc = tcp_listen(&listener_, addr, on_connection, port_out, &what)) != 0) {
    return fail(what, rc);
  }
  read_buf_.resize(read_buffer_bytes);
  plain_buf_.resize(tls_plain_bytes);
  {
    // Open before the loop runs: a handler may answer at once.
    std::lock_guard<std::mutex> box_guard(box_->mu);
    box_->wake = &mail_async_;
    box_->open = true;
  }
  log::info("http_listening", {{"listen", listen_},
                               {"port", std::to_string(port_out)},
                               {"tls", tls_ ? "yes" : "no"}});
  // Responses go to TCP peers that may have gone: block SIGPIPE.
  err = loop_.start([this] { close_all(); }, true);
  if (!err.empty()) {
    close_mailbox(); // mail_async_ is closed: no responder exists yet
    return "http listen " + listen_ + ": " + err;
  }
  return {};
}

void server::impl::stop() {
  // From here on responders find the mailbox closed and do nothing, so
  // nobody touches mail_async_ once the loop closes it.
  loop_.stop([this] { close_mailbox(); });
  // Answers posted before the mailbox closed that the loop never sent.
  std::vector<posted_response> dropped;
  {
    std::lock_guard<std::mutex> box_guard(box_->mu);
    dropped.swap(box_->items);
  }
}

void server::impl::close_mailbox() {
  std::lock_guard<std::mutex> box_guard(box_->mu);
  box_->open = false;
  box_->wake = nullptr;
}

// On the loop thread at stop() (or on the starting thread when start fails):
// the listening socket, the mail handle and every connection.
void server::impl::close_all() {
  if (listener_ready_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    listener_ready_ = false;
  }
  if (mail_ready_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&mail_async_), nullptr);
    mail_ready_ = false;
  }
  // Connections leave conns_ in their close callbacks, later in this run.
  for (auto& entry : conns_) {
    close_now(*entry.second);
  }
}

// ---------------------------------------------------------------------------
// Accept, read, close.

void server::impl::on_connection(uv_stream_t* s, int status) {
  auto* self = static_cast<impl*>(s->data);
  if (status < 0) {
    log::warn("http_accept_failed", {{"listen", self->listen_}, {"error", uv_strerror(status)}});
    return;
  }
  try {
    self->accept_one();
  } catch (const std::exception& e) {
    log::error("http_accept_failed", {{"listen", self->listen_}, {"error", e.what()}});
  } catch (...) {
    log::error("http_accept_failed", {{"listen", self->listen_}, {"error", "unknown"}});
  }
}

void server::impl::accept_one() {
  auto owned = std::make_unique<connection>();
  connection& c = *owned;
  c.srv = this;
  c.id = next_conn_id_++;
  int rc = uv_tcp_init(loop_.loop(), &c.tcp);
  if (rc != 0) {
    log::error("http_accept_failed", {{"listen", listen_}, {"error", uv_strerror(rc)}});
    return;
  }
  c.tcp_ready = true;
  c.handles_open = 1;
  c.tcp.data = &c;
  // From here on the connection is freed only by its close callbacks.
  conns_.emplace(c.id, std::move(owned));
  c.rejected = active_ >= limits_.max_connections;
  if (c.rejected) {
    ++rejected_open_;
    counters_.connections_rejected.fetch_add(1, std::memory_order_relaxed);
  } else {
    ++active_;
    counters_.connections_accepted.fetch_add(1, std::memory_order_relaxed);
    counters_.connections_open.fetch_add(1, std::memory_order_relaxed);
  }
  if ((rc = uv_timer_init(loop_.loop(), &c.timer)) != 0) {
    close_now(c);
    return;
  }
  c.timer_ready = true;
  c.handles_open = 2;
  c.timer.data = &c;
  if ((rc = uv_accept(reinterpret_cast<uv_stream_t*>(&listener_), c.stream())) != 0) {
    log::warn("http_accept_failed", {{"listen", listen_}, {"error", uv_strerror(rc)}});
    close_now(c);
    return;
  }
  if (c.rejected && rejected_open_ > max_rejected_open) {
    close_now(c);
    return;
  }
  (void)uv_tcp_nodelay(&c.tcp, 1);
  sockaddr_storage peer{};
  int len = sizeof peer;
  if (uv_tcp_getpeername(&c.tcp, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    c.peer = ip_address::from_sockaddr(reinterpret_cast<const sockaddr*>(&peer));
  }
  c.accepted_ms = static_cast<std::int64_t>(uv_now(loop_.loop()));
  http_parser_init(&c.parser, HTTP_REQUEST);
  c.parser.data = &c;
  c.shutdown_req.data = &c;
  if (tls_) {
    ERR_clear_error();
    ssl_ptr ssl(SSL_new(tls_ctx_.get()));
    bio_ptr rbio(BIO_new(BIO_s_mem()));
    bio_ptr wbio(BIO_new(BIO_s_mem()));
    if (!ssl || !rbio || !wbio) {
      log::error("http_tls_setup_failed", {{"error", tls::openssl_error()}});
      close_now(c);
      return;
    }
    c.rbio = rbio.get();
    c.wbio = wbio.get();
    SSL_set_bio(ssl.get(), rbio.release(), wbio.release());  // ssl owns both now
    SSL_set_accept_state(ssl.get());
    c.ssl = std::move(ssl);
  }
  if ((rc = uv_read_start(c.stream(), on_alloc, on_read)) != 0) {
    close_now(c);
    return;
  }
  c.reading = true;
  if (c.rejected && !c.ssl) {
    fail(c, 503, "too_many_connections",
         "the server already has " + std::to_string(limits_.max_connections) +
           " open connections (max_connections)");
    return;
  }
  update_timer(c);
}

void server::impl::on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) {
  auto* c = static_cast<connection*>(h->data);
  auto& b = c->srv->read_buf_;
  *buf = uv_buf_init(b.data(), static_cast<unsigned>(b.size()));
}

void server::impl::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<connection*>(s->data);
  impl* self = c->srv;
  try {
    if (!c->closed && nread != 0) {
      if (nread < 0) {
        c->reading = false;
        if (nread == UV_EOF) {
          c->eof = true;
          self->peer_closed(*c);
        } else {
          self->close_now(*c);
        }
      } else {
        self->input(*c, buf->base, static_cast<std::size_t>(nread));
      }
    }
  } catch (const std::exception& e) {
    log::error("http_connection_failed", {{"error", e.what()}});
    self->close_now(*c);
  } catch (...) {
    log::error("http_connection_failed", {{"error", "unknown"}});
    self->close_now(*c);
  }
  // Handlers that answered at once have posted their responses: send them
  // now rather than one loop iteration later.
  try {
    self->drain_mail();
  } catch (...) {
    log::error("http_mail_failed", {{"error", "exception while sending responses"}});
  }
}

void server::impl::input(connection& c, const char* data, std::size_t len) {
  if (c.shutting) {
    return;  // lingering: read and drop until the peer closes
  }
  if (c.ssl) {
    tls_input(c, data, len);
  } else if (!c.input_closed) {
    feed(c, data, len);
  }
  if (c.closed) {
    return;
  }
  // Expect: 100-continue, and the body has not come yet: tell the client to
  // send it, unless an earlier response is still owed (an interim answer
  // must not overtake it; the client then sends the body after its wait).
  if (c.want_continue && c.in_message && c.pending.empty() && !c.input_closed) {
    send(c, "HTTP/1.1 100 Continue\r\n\r\n");
  }
  c.want_continue = false;
  if (c.closed) {
    return;
  }
  adjust_reading(c);
  update_timer(c);
}

void server::impl::tls_input(connection& c, const char* data, std::size_t len) {
  ERR_clear_error();
  if (c.handshake_done && c.input_closed) {
    return;
  }
  if (BIO_write(c.rbio, data, static_cast<int>(len)) != static_cast<int>(len)) {
    close_now(c);
    return;
  }
  if (!c.handshake_done) {
    int rc = SSL_do_handshake(c.ssl.get());
    if (rc != 1) {
      int e = SSL_get_error(c.ssl.get(), rc);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        send_tls_output(c);
        return;
      }
      counters_.tls_handshake_errors.fetch_add(1, std::memory_order_relaxed);
      log::debug("http_tls_handshake_failed",
                 {{"peer", c.peer.to_string()}, {"error", tls::openssl_error()}});
      send_tls_output(c);  // the alert, if any
      c.input_closed = true;
      begin_close(c);
      return;
    }
    c.handshake_done = true;
    send_tls_output(c);  // the server's last flight, session tickets
    if (c.closed) {
      return;
    }
    if (c.rejected) {
      fail(c, 503, "too_many_connections",
           "the server already has " + std::to_string(limits_.max_connections) +
             " open connections (max_connections)");
      return;
    }
  }
  while (!c.input_closed && !c.closed) {
    int n = SSL_read(c.ssl.get(), plain_buf_.data(), static_cast<int>(plain_buf_.size()));
    if (n > 0) {
      feed(c, plain_buf_.data(), static_cast<std::size_t>(n));
      continue;
    }
    int e = SSL_get_error(c.ssl.get(), n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      break;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
      peer_closed(c);  // close_notify: no more requests
      break;
    }
    log::debug("http_tls_read_failed", {{"peer", c.peer.to_string()}, {"error", tls::openssl_error()}});
    close_now(c);
    return;
  }
  if (!c.closed) {
    send_tls_output(c);
  }
}

// The peer will send no more (EOF or TLS close_notify). Responses still owed
// are sent; a half-received request is dropped.
void server::impl::peer_closed(connection& c) {
  if (c.closed) {
    return;
  }
  if (c.shutting || (c.ssl && !c.handshake_done)) {
    close_now(c);
    return;
  }
  c.input_closed = true;
  c.in_message = false;
  if (c.pending.empty()) {
    begin_close(c);
  } else {
    update_timer(c);
  }
}

void server::impl::on_conn_handle_closed(uv_handle_t* h) {
  auto* c = static_cast<connection*>(h->data);
  if (--c->handles_open == 0) {
    // The last handle is closed: libuv is done with the connection's memory.
    c->srv->conns_.erase(c->id);
  }
}

void server::impl::close_now(connection& c) {
  if (c.closed) {
    return;
  }
  c.closed = true;
  c.reading = false;
  if (c.rejected) {
    --rejected_open_;
  } else {
    --active_;
    counters_.connections_open.fetch_sub(1, std::memory_order_relaxed);
  }
  if (c.tcp_ready) {
    uv_close(reinterpret_cast<uv_handle_t*>(&c.tcp), on_conn_handle_closed);
  }
  if (c.timer_ready) {
    uv_close(reinterpret_cast<uv_handle_t*>(&c.timer), on_conn_handle_closed);
  }
}

// The last response is queued: send close_notify (TLS), then FIN once the
// queued bytes are out (uv_shutdown waits for them), then read and drop
// until the peer closes or linger_ms passes.
void server::impl::begin_close(connection& c) {
  if (c.closed || c.shutting) {
    return;
  }
  c.shutting = true;
  if (c.ssl && c.handshake_done) {
    ERR_clear_error();
    (void)SSL_shutdown(c.ssl.get());
    send_tls_output(c);
    if (c.closed) {
      return;
    }
  }
  int rc = uv_shutdown(&c.shutdown_req, c.stream(), on_shutdown);
  if (rc != 0) {
    close_now(c);
    return;
  }
  // A client that does not read would hold the queued bytes (and us) forever.
  c.mode = timer_mode::closing;
  (void)uv_timer_start(&c.timer, on_conn_timer,
                       static_cast<std::uint64_t>(std::max(limits_.idle_timeout_ms, linger_ms)), 0);
  adjust_reading(c);
}

void server::impl::on_shutdown(uv_shutdown_t* req, int status) {
  auto* c = static_cast<connection*>(req->data);
  impl* self = c->srv;
  if (c->closed) {
    return;
  }
  if (status < 0 || c->eof) {
    self->close_now(*c);
    return;
  }
  c->mode = timer_mode::closing;
  (void)uv_timer_start(&c->timer, on_conn_timer, static_cast<std::uint64_t>(linger_ms), 0);
}

void server::impl::on_conn_timer(uv_timer_t* t) {
  auto* c = static_cast<connection*>(t->data);
  impl* self = c->srv;
  if (c->closed) {
    return;
  }
  try {
    switch (c->mode) {
    case timer_mode::handshake:
      // No TLS yet, so no way to say 408.
      self->counters_.timeouts.fetch_add(1, std::memory_order_relaxed);
      self->close_now(*c);
      break;
    case timer_mode::request:
      self->fail(*c, 408, "request_timeout",
                 "the request did not arrive completely within " +
                   std::to_string(c->request_timeout_ms) +
                   " ms (request_timeout_ms) of its first byte");
      break;
    case timer_mode::idle:
    case timer_mode::closing:
      self->close_now(*c);
      break;
    case timer_mode::none:
      break;
    }
  } catch (...) {
    self->close_now(*c);
  }
}

void server::impl::update_timer(connection& c) {
  if (c.closed || c.shutting) {
    return;  // begin_close and on_shutdown own the timer now
  }
  auto now = static_cast<std::int64_t>(uv_now(loop_.loop()));
  timer_mode want = timer_mode::none;
  std::int64_t deadline = 0;
  if (c.ssl && !c.handshake_done) {
    want = timer_mode::handshake;
    deadline = c.accepted_ms + limits_.request_timeout_ms;
  } else if (c.in_message) {
    want = timer_mode::request;
    deadline = c.message_start_ms + c.request_timeout_ms;
  } else if (!c.pending.empty() || c.input_closed) {
    // The handler has the request: it takes the time it takes.
    want = timer_mode::none;
  } else {
    want = timer_mode::idle;
    deadline = c.mode == timer_mode::idle ? c.deadline_ms : now + limits_.idle_timeout_ms;
  }
  if (want == c.mode && deadline == c.deadline_ms) {
    return;
  }
  c.mode = want;
  c.deadline_ms = deadline;
  if (want == timer_mode::none) {
    (void)uv_timer_stop(&c.timer);
  } else {
    (void)uv_timer_start(&c.timer, on_conn_timer,
                         static_cast<std::uint64_t>(std::max<std::int64_t>(0, deadline - now)), 0);
  }
}

void server::impl::adjust_reading(connection& c) {
  if (c.closed || c.eof) {
    return;
  }
  // Once no more requests are parsed, input is read and dropped; before,
  // reading pauses while too many responses are owed or unsent.
  bool want = c.shutting || c.input_closed ||
              (c.pending.size() < max_pipelined &&
               uv_stream_get_write_queue_size(c.stream()) < max_write_queue_bytes);
  if (want && !c.reading) {
    if (uv_read_start(c.stream(), on_alloc, on_read) != 0) {
      close_now(c);
      return;
    }
    c.reading = true;
  } else if (!want && c.reading) {
    (void)uv_read_stop(c.stream());
    c.reading = false;
  }
}

// ---------------------------------------------------------------------------
// Parsing.

void server::impl::feed(connection& c, const char* data, std::size_t len) {
  int stalled = 0;
  while (len > 0 && !c.input_closed && !c.closed) {
    std::size_t used = http_parser_execute(&c.parser, &settings_, data, len);
    auto err = HTTP_PARSER_ERRNO(&c.parser);
    if (err == HPE_PAUSED) {
      // on_message_complete paused the parser: one whole request.
      http_parser_pause(&c.parser, 0);
      used = std::min(used, len);
      data += used;
      len -= used;
      stalled = used == 0 ? stalled + 1 : 0;
      if (c.message_done) {
        dispatch(c);
      }
      if (stalled > 1) {
        fail(c, 400, "bad_request",
             "malformed HTTP request: HPE_UNKNOWN: the parser made no progress");
        return;
      }
      continue;
    }
    if (err != HPE_OK) {
      if (c.error) {
        response e = std::move(*c.error);
        c.error.reset();
        refuse(c, std::move(e));
      } else if (err == HPE_HEADER_OVERFLOW) {
        fail(c, 431, "headers_too_large",
             "the request line and headers exceed the parser's limit");
      } else {
        fail(c, 400, "bad_request",
             std::string("malformed HTTP request: ") +
               http_errno_name(err) + ": " + http_errno_description(err));
      }
      return;
    }
    if (used < len) {
      // Only an upgrade stops the parser without an error; we do not
      // switch protocols, so nothing after it is read.
      c.input_closed = true;
    }
    return;
  }
}

int server::impl::add_header_bytes(connection& c, std::size_t n) {
  c.header_bytes += n;
  if (c.header_bytes > limits_.max_header_bytes) {
    c.error = error_response(431, "headers_too_large", "",
                          "the request line and headers exceed " +
                            std::to_string(limits_.max_header_bytes) +
                            " bytes (max_header_bytes)");
    return 1;
  }
  return 0;
}

int server::impl::commit_header(connection& c) {
  // http_parser 2.9 lets a space through inside a header name ("Bad Name:");
  // such a name is not a token, and a name that only looks like a known one
  // is how requests get smuggled. Refused as the parser refuses other bytes.
  if (!is_token(c.field)) {
    c.error = error_response(400, "bad_request", "",
                          "malformed HTTP request: HPE_INVALID_HEADER_TOKEN: header name \"" +
                            c.field.substr(0, 64) + "\" is not a token");
    return 1;
  }
  // Trailers (after a chunked body) count against the limit but are not
  // kept: the handler sees the headers it could have seen up front.
  if (!c.headers_done) {
    std::string name = std::move(c.field);
    std::transform(name.begin(), name.end(), name.begin(), ascii_lower);
    c.cur.headers.emplace_back(std::move(name), trim(c.value));
  }
  c.field.clear();
  c.value.clear();
  c.in_value = false;
  return 0;
}

// Parser callbacks return non-zero to stop the parser; a limit they break is
// left in c.error for feed() to answer. Nothing may throw through the parser.
template <class F>
int parser_guard(connection& c, F&& body) {
  try {
    return body();
  } catch (...) {
    c.error = error_response(500, "internal", "", "the server failed to read the request");
    return 1;
  }
}

int server::impl::on_message_begin(http_parser* p) {
  auto& c = *static_cast<connection*>(p->data);
  return parser_guard(c, [&] {
    c.in_message = true;
    c.message_start_ms = static_cast<std::int64_t>(uv_now(c.srv->loop_.loop()));
    c.cur = request{};
    c.url.clear();
    c.field.clear();
    c.value.clear();
    c.in_value = false;
    c.headers_done = false;
    c.header_bytes = 0;
    c.want_continue = false;
    c.error.reset();
    c.body_limit = c.srv->limits_.max_body_bytes;
    c.request_timeout_ms = c.srv->limits_.request_timeout_ms;
    return 0;
  });
}

int server::impl::on_url(http_parser* p, const char* at, std::size_t len) {
  auto& c = *static_cast<connection*>(p->data);
  return parser_guard(c, [&] {
    if (c.header_bytes == 0) {
      // METHOD SP ... SP HTTP/x.y CRLF
      c.header_bytes =
        std::strlen(http_method_str(static_cast<enum http_method>(p->method))) + 12;
    }
    c.url.append(at, len);
    return c.srv->add_header_bytes(c, len);
  });
}

int server::impl::on_header_field(http_parser* p, const char* at, std::size_t len) {
  auto& c = *static_cast<connection*>(p->data);
  return parser_guard(c, [&] {
    if (c.in_value && c.srv->commit_header(c) != 0) {
      return 1;
    }
    std::size_t n = len;
    if (c.field.empty()) {
      n += 4;  // ": " and CRLF
    }
    c.field.append(at, len);
    return c.srv->add_header_bytes(c, n);
  });
}

int server::impl::on_header_value(http_parser* p, const char* at, std::size_t len) {
  auto& c = *static_cast<connection*>(p->data);
  return parser_guard(c, [&] {
    c.in_value = true;
    c.value.append(at, len);
    return c.srv->add_header_bytes(c, len);
  });
}

namespace {

// The request target's path and query into req; false when it is not a
// valid URL (or longer than max_url_bytes).
bool split_target(const std::string& url, bool is_connect, request& req) {
  http_parser_url u;
  http_parser_url_init(&u);
  if (url.size() > max_url_bytes ||
      http_parser_parse_url(url.data(), url.size(), is_connect ? 1 : 0, &u) != 0) {
    return false;
  }
  auto field = [&](int f) -> std::string {
    if ((u.field_set & (1u << f)) == 0) {
      return {};
    }
    std::size_t off = u.field_data[f].off;
    std::size_t len = u.field_data[f].len;
    if (off > url.size() || len > url.size() - off) {
      return {};
    }
    return url.substr(off, len);
  };
  req.path = field(UF_PATH);
  if (req.path.empty() && !is_connect) {
    req.path = "/";  // absolute-form without a path
  }
  req.query = field(UF_QUERY);
  return true;
}

} // namespace

int server::impl::on_headers_complete(http_parser* p) {
  auto& c = *static_cast<connection*>(p->data);
  return parser_guard(c, [&] {
    impl* self = c.srv;
    // Non-zero other than 1 and 2: 1 would mean "no body", 2 "upgrade".
    if ((c.in_value || !c.field.empty()) && self->commit_header(c) != 0) {
      return -1;
    }
    c.headers_done = true;
    if (self->add_header_bytes(c, 2) != 0) {
      return -1;
    }
    c.cur.method = http_method_str(static_cast<enum http_method>(p->method));
    if (!split_target(c.url, p->method == HTTP_CONNECT, c.cur)) {
      c.error = error_response(400, "bad_request",
                               "", "malformed HTTP request: HPE_INVALID_URL: the request target (" +
                                 std::to_string(c.url.size()) + " bytes) is not a valid URL");
      return -1;
    }
    for (const auto& route : self->limits_.routes) {
      if (c.cur.path.compare(0, route.path_prefix.size(), route.path_prefix) == 0) {
        c.body_limit = route.max_body_bytes;
        c.request_timeout_ms = route.request_timeout_ms;
        // Before any of the body is read: a refused request costs no
        // buffer of its announced size.
        if (route.admit) {
          if (auto refusal = route.admit(c.cur)) {
            c.error = std::move(*refusal);
            return -1;
          }
        }
        break;
      }
    }
    // Refuse a declared body before reading any of it.
    if ((p->flags & F_CONTENTLENGTH) != 0 && p->content_length > c.body_limit) {
      c.error = error_response(413, "payload_too_large", "",
                            "Content-Length " + std::to_string(p->content_length) +
                              " exceeds " + std::to_string(c.body_limit) +
                              " bytes (max_body_bytes)");
      return -1;
    }
    if ((p->flags & F_CONTENTLENGTH) != 0) {
      // One allocation of the announced size: appending never reallocates
      // (and copies) a big body again.
      c.cur.body.reserve(static_cast<std::size_t>(p->content_length));
    }
    const std::string* expect = c.cur.header("expect");
    bool has_body = (p->flags & F_CHUNKED) != 0 ||
                    ((p->flags & F_CONTENTLENGTH) != 0 && p->content_length > 0);
    c.want_continue = expect != nullptr && iequals(*expect, "100-continue") && has_body &&
                      (p->http_major > 1 || (p->http_major == 1 && p->http_minor >= 1));
    return 0;
  });
}

int server::impl::on_body(http_parser* p, const char* at, std::size_t len) {
  auto& c = *static_cast<connection*>(p->data);
  return parser_guard(c, [&] {
    std::size_t max = c.body_limit;
    if (len > max || c.cur.body.size() > max - len) {
      c.error = error_response(413, "payload_too_large", "",
                            "the body exceeds " + std::to_string(max) +
                              " bytes (max_body_bytes)");
      return 1;
    }
    c.cur.body.append(at, len);
    return 0;
  });
}

int server::impl::on_message_complete(http_parser* p) {
  auto& c = *static_cast<connection*>(p->data);
  return parser_guard(c, [&] {
    if ((c.in_value || !c.field.empty()) && c.srv->commit_header(c) != 0) {
      return 1;  // a bad trailer
    }
    c.in_message = false;
    c.want_continue = false;
    c.message_done = true;
    c.message_keep_alive = http_should_keep_alive(p) != 0;
    // Stop here so feed() hands this request over before parsing the next.
    http_parser_pause(p, 1);
    return 0;
  });
}

void server::impl::dispatch(connection& c) {
  c.message_done = false;
  request req = std::move(c.cur);
  c.cur = request{};
  c.url.clear();
  bool is_connect = c.parser.method == HTTP_CONNECT;
  // An upgrade (or CONNECT) hands the connection to another protocol; we
  // answer the request and close.
  bool keep_alive = c.message_keep_alive && c.parser.upgrade == 0 && !is_connect;

  req.peer = c.peer;
  req.tls = static_cast<bool>(c.ssl);

  std::uint64_t seq = c.next_seq++;
  pending_response slot_entry;
  slot_entry.head = c.parser.method == HTTP_HEAD;
  slot_entry.keep_alive = keep_alive;
  c.pending.push_back(std::move(slot_entry));
  if (!keep_alive) {
    c.input_closed = true;
  }

  responder r;
  r.slot_ = std::make_shared<responder::slot>();
  r.slot_->box = box_;
  r.slot_->conn_id = c.id;
  r.slot_->seq = seq;
  auto report = [&](const char* what) {
    std::uint64_t suppressed = 0;
    if (error_log_.allow(static_cast<std::int64_t>(uv_now(loop_.loop())), &suppressed)) {
      log::error("http_handler_failed", {{"listen", listen_},
                                         {"error", what},
                                         {"suppressed", std::to_string(suppressed)}});
    }
    r(error_response(500, "internal", "", "the request handler failed"));
  };
  try {
    if (handler_) {
      handler_(std::move(req), r);
    } else {
      r(error_response(500, "internal", "", "no request handler is configured"));
    }
  } catch (const std::exception& e) {
    report(e.what());
  } catch (...) {
    report("unknown exception");
  }
}

// An error the server answers itself: queued behind the responses still
// owed, then the connection closes.
void server::impl::fail(connection& c, int status, std::string_view code,
                        const std::string& message) {
  refuse(c, error_response(status, code, "", message));
}

void server::impl::refuse(connection& c, response r) {
  if (c.closed || c.shutting) {
    return;
  }
  if (r.status == 400) {
    counters_.parse_errors.fetch_add(1, std::memory_order_relaxed);
  } else if (r.status == 408) {
    counters_.timeouts.fetch_add(1, std::memory_order_relaxed);
  }
  log::debug("http_request_refused", {{"peer", c.peer.to_string()},
                                      {"status", std::to_string(r.status)},
                                      {"message", r.body}});
  c.input_closed = true;
  c.in_message = false;
  c.want_continue = false;
  pending_response e;
  e.ready = true;
  e.keep_alive = false;
  e.resp = std::move(r);
  c.pending.push_back(std::move(e));
  ++c.next_seq;
  flush(c);
}

// ---------------------------------------------------------------------------
// Responses.

void server::impl::on_mail(uv_async_t* a) {
  auto* self = static_cast<impl*>(a->data);
  try {
    self->drain_mail();
  } catch (...) {
    log::error("http_mail_failed", {{"error", "exception while sending responses"}});
  }
}

void server::impl::drain_mail() {
  std::vector<posted_response> items;
  {
    std::lock_guard<std::mutex> guard(box_->mu);
    items.swap(box_->items);
  }
  for (auto& item : items) {
    auto found = conns_.find(item.conn_id);
    if (found == conns_.end()) {
      continue;  // the connection is gone: nobody to answer
    }
    connection& c = *found->second;
    if (c.closed || item.seq < c.base_seq || item.seq - c.base_seq >= c.pending.size()) {
      continue;
    }
    auto& entry = c.pending[static_cast<std::size_t>(item.seq - c.base_seq)];
    if (entry.ready) {
      continue;
    }
    entry.ready = true;
    entry.resp = std::move(item.resp);
    flush(c);
    if (!c.closed) {
      adjust_reading(c);
      update_timer(c);
    }
  }
}

void server::impl::flush(connection& c) {
  while (!c.closed && !c.shutting && !c.pending.empty() && c.pending.front().ready) {
    pending_response e = std::move(c.pending.front());
    c.pending.pop_front();
    ++c.base_seq;
    // The last response before a close says so.
    bool keep_alive = e.keep_alive && !(c.input_closed && c.pending.empty());
    std::string wire = serialize(e.resp, e.head, keep_alive);
    counters_.responses[static_cast<std::size_t>(e.resp.status)].fetch_add(
      1, std::memory_order_relaxed);
    send(c, std::move(wire));
    if (sends_body(e.resp, e.head) && e.resp.body.size() > inline_body_bytes) {
      send(c, std::move(e.resp.body)); // not copied behind the headers
    }
    if (!keep_alive) {
      c.input_closed = true;
      c.pending.clear();  // nothing behind a close is sent
    }
  }
  if (!c.closed && !c.shutting && c.input_closed && c.pending.empty()) {
    begin_close(c);
  }
}

const std::string& server::impl::http_date() {
  std::time_t now = std::time(nullptr);
  if (now != date_s_) {
    static const char* const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                  days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
                  tm.tm_hour, tm.tm_min, tm.tm_sec);
    date_ = buf;
    date_s_ = now;
  }
  return date_;
}

std::string server::impl::serialize(response& r, bool head, bool keep_alive) {
  if (r.status < 200 || r.status > 599) {
    // Not a final status: a client would wait for the real answer forever.
    r = error_response(500, "internal", "",
                       "the handler answered with status " + std::to_string(r.status) +
                         ": must be 200..599");
  }
  bool no_body = r.status == 204 || r.status == 304;
  std::string out;
  out.reserve(192 + (r.body.size() <= inline_body_bytes ? r.body.size() : 0));
  out += "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  out += reason_phrase(r.status);
  out += "\r\nDate: ";
  out += http_date();
  out += "\r\n";
  if (!no_body && !r.content_type.empty() && is_header_value(r.content_type)) {
    out += "Content-Type: ";
    out += r.content_type;
    out += "\r\n";
  }
  if (!no_body) {
    out += "Content-Length: ";
    out += std::to_string(r.body.size());
    out += "\r\n";
  }
  out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  for (const auto& h : r.headers) {
    // A handler bug must not split the response or duplicate framing.
    if (!is_token(h.first) || !is_header_value(h.second) || is_server_header(h.first)) {
      log::debug("http_header_dropped", {{"name", is_token(h.first) ? h.first : "(invalid)"}});
      continue;
    }
    out += h.first;
    out += ": ";
    out += h.second;
    out += "\r\n";
  }
  out += "\r\n";
  if (sends_body(r, head) && r.body.size() <= inline_body_bytes) {
    out += r.body;
  }
  return out;
}

void server::impl::send(connection& c, std::string bytes) {
  if (c.closed) {
    return;
  }
  if (!c.ssl) {
    queue_write(c, std::move(bytes));
    return;
  }
  ERR_clear_error();
  std::size_t off = 0;
  while (off < bytes.size()) {
    // Memory BIOs never push back: each SSL_write takes the whole piece.
    int n = static_cast<int>(std::min<std::size_t>(bytes.size() - off, 1 << 20));
    int rc = SSL_write(c.ssl.get(), bytes.data() + off, n);
    if (rc <= 0) {
      log::debug("http_tls_write_failed", {{"peer", c.peer.to_string()}, {"error", tls::openssl_error()}});
      close_now(c);
      return;
    }
    off += static_cast<std::size_t>(rc);
  }
  send_tls_output(c);
}

void server::impl::send_tls_output(connection& c) {
  while (!c.closed) {
    std::size_t n = BIO_ctrl_pending(c.wbio);
    if (n == 0) {
      return;
    }
    std::string out(n, '\0');
    int got = BIO_read(c.wbio, out.data(), static_cast<int>(n));
    if (got <= 0) {
      return;
    }
    out.resize(static_cast<std::size_t>(got));
    queue_write(c, std::move(out));
  }
}

void server::impl::queue_write(connection& c, std::string bytes) {
  if (c.closed || bytes.empty()) {
    return;
  }
  c.writes.emplace_back();
  auto it = std::prev(c.writes.end());
  write_op& op = *it;
  op.bytes = std::move(bytes);
  op.conn = &c;
  op.self = it;
  op.req.data = &op;
  uv_buf_t buf = uv_buf_init(op.bytes.data(), static_cast<unsigned>(op.bytes.size()));
  int rc = uv_write(&op.req, c.stream(), &buf, 1, on_write);
  if (rc != 0) {
    c.writes.erase(it);
    close_now(c);
  }
}

void server::impl::on_write(uv_write_t* req, int status) {
  auto* op = static_cast<write_op*>(req->data);
  connection* c = op->conn;
  impl* self = c->srv;
  c->writes.erase(op->self);  // op is gone from here on
  if (c->closed) {
    return;  // UV_ECANCELED from uv_close
  }
  if (status < 0) {
    self->close_now(*c);
    return;
  }
  try {
    self->adjust_reading(*c);
  } catch (...) {
    self->close_now(*c);
  }
}

// ---------------------------------------------------------------------------
// server

server::server(std::string listen, server_limits limits, handler h,
               std::optional<tls_files> tls) {
  impl_ = std::make_unique<impl>(std::move(listen), limits, std::move(h), std::move(tls),
                                 counters_);
}

server::~server() { stop(); }

std::string server::start() { return impl_->start(port_); }

void server::stop() { impl_->stop(); }

} // namespace balctl::http
