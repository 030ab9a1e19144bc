// The TLS heartbeat listener on 127.0.0.1 (port 0), driven by a small
// blocking client: tls::session over a TCP socket, every wait bounded by
// poll() with a deadline.

#include "transport/tls_listener.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tests/e2e/process.hpp"
#include "tests/support/test_certs.hpp"
#include "transport/protocol.hpp"
#include "transport/tls_session.hpp"

using balctl::tls_listener;
using balctl::tls_listener_limits;
using balctl::test::wait_until;
namespace protocol = balctl::protocol;
namespace tls = balctl::tls;
using status = tls::session::status;
using clock_type = std::chrono::steady_clock;

namespace {

const protocol::key test_key = [] {
  protocol::key k{};
  for (std::size_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<std::uint8_t>(i);
  }
  return k;
}();

/// A heartbeat frame as an agent sends it; body makes it longer.
std::string frame(std::uint64_t seq, std::string_view body = {}, bool want_ack = false) {
  protocol::header h;
  h.member = 42;
  h.seq = seq;
  h.timestamp_ms = 1700000000000;
  h.flags = static_cast<std::uint8_t>((body.empty() ? 0 : protocol::flag_body) |
                                      (want_ack ? protocol::flag_ack_requested : 0));
  h.body_len = static_cast<std::uint16_t>(body.size());
  std::string out(protocol::max_datagram_size, '\0');
  std::size_t n =
    protocol::encode(reinterpret_cast<std::uint8_t*>(out.data()), out.size(), h, body, test_key);
  REQUIRE(n > 0);
  out.resize(n);
  return out;
}

/// What the listener's callback saw, read from the test thread.
struct received {
  std::mutex mu;
  std::vector<std::string> frames;
  std::vector<std::string> peers; // "127.0.0.1"

  std::size_t count() {
    std::lock_guard<std::mutex> g(mu);
    return frames.size();
  }
  std::vector<std::string> take_frames() {
    std::lock_guard<std::mutex> g(mu);
    return frames;
  }
};

/// Records every frame; answers frames that ask for it with an ack.
tls_listener::frame_fn recorder(std::shared_ptr<received> r) {
  return [r](const std::uint8_t* data, std::size_t len, const sockaddr* src,
             std::uint8_t* reply) -> std::size_t {
    char ip[INET6_ADDRSTRLEN] = "?";
    if (src->sa_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(src)->sin_addr, ip, sizeof ip);
    } else if (src->sa_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(src)->sin6_addr, ip, sizeof ip);
    }
    {
      std::lock_guard<std::mutex> g(r->mu);
      r->frames.emplace_back(reinterpret_cast<const char*>(data), len);
      r->peers.emplace_back(ip);
    }
    auto d = protocol::decode(data, len);
    if (!d.ok || (d.view.hdr.flags & protocol::flag_ack_requested) == 0) {
      return 0;
    }
    protocol::ack a;
    a.member = d.view.hdr.member;
    a.seq = d.view.hdr.seq;
    a.engine_time_ms = 1700000000123;
    return protocol::encode_ack(reply, a, test_key);
  };
}

/// A blocking TCP client on 127.0.0.1 that speaks TLS through tls::session
/// (or raw bytes). Every wait is a poll() with a deadline.
class client {
public:
  explicit client(std::uint16_t port, int rcvbuf_bytes = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) {
      return;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (rcvbuf_bytes > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof rcvbuf_bytes);
    }
    timeval tv{5, 0}; // a blocked send never hangs the test
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~client() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  bool connected() const { return fd_ >= 0; }
  bool closed() const { return closed_; }
  /// ok, or closed after the server's close_notify, or error.
  status tls_status() const { return tls_status_; }
  tls::session* session() { return tls_.get(); }

  /// Runs the TLS handshake to completion (or failure, or the deadline).
  bool handshake(const tls::context& ctx, const std::string& server_name = "localhost",
                 int timeout_ms = 5000) {
    if (!begin_handshake(ctx, server_name)) {
      return false;
    }
    auto deadline = clock_type::now() + std::chrono::milliseconds(timeout_ms);
    while (!tls_->established()) {
      if (tls_status_ != status::ok || !read_some(remaining(deadline)) || !flush()) {
        return false;
      }
    }
    return true;
  }
  /// Sends the ClientHello only.
  bool begin_handshake(const tls::context& ctx, const std::string& server_name = "localhost") {
    tls_ = std::make_unique<tls::session>(ctx, server_name);
    return connected() && tls_->valid() && tls_->start() == status::ok && flush();
  }
  /// Application data through TLS, sent at once.
  bool send(std::string_view plain) { return tls_->write(plain) == status::ok && flush(); }
  /// Bytes on the socket as they are.
  bool send_raw(std::string_view bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        return false;
      }
      off += static_cast<std::size_t>(n);
    }
    return true;
  }
  /// Waits for at least n bytes of plaintext; returns (and consumes) them, or
  /// what came before the deadline.
  std::string receive(std::size_t n, int timeout_ms = 5000) {
    auto deadline = clock_type::now() + std::chrono::milliseconds(timeout_ms);
    while (plain_.size() < n && read_some(remaining(deadline))) {
    }
    std::string out = plain_.substr(0, std::min(n, plain_.size()));
    plain_.erase(0, out.size());
    return out;
  }
  /// Reads (and drops) until the server closes the connection: true, or
  /// the deadline passes: false.
  bool wait_closed(int timeout_ms = 5000) {
    auto deadline = clock_type::now() + std::chrono::milliseconds(timeout_ms);
    while (!closed_ && remaining(deadline) > 0) {
      read_some(remaining(deadline));
    }
    return closed_;
  }
  /// Reads for ms and reports whether the connection is still open.
  bool stays_open(int ms) {
    auto deadline = clock_type::now() + std::chrono::milliseconds(ms);
    while (!closed_ && remaining(deadline) > 0) {
      read_some(remaining(deadline));
    }
    return !closed_;
  }

private:
  static int remaining(clock_type::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    return left.count() > 0 ? static_cast<int>(left.count()) : 0;
  }

  // One read, waiting at most timeout_ms. False on timeout or close.
  bool read_some(int timeout_ms) {
    if (closed_ || fd_ < 0) {
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) {
      return false;
    }
    char buf[16384];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      closed_ = true; // EOF, or ECONNRESET
      return false;
    }
    if (tls_ && tls_status_ == status::ok) {
      tls_status_ = tls_->feed(buf, static_cast<std::size_t>(n), plain_);
    }
    return true;
  }
  bool flush() { return send_raw(tls_->take_output()); }

  int fd_ = -1;
  bool closed_ = false;
  std::unique_ptr<tls::session> tls_;
  status tls_status_ = status::ok;
  std::string plain_;
};

/// A listener with the test PKI, started on 127.0.0.1:0, and a client
/// context that trusts the test CA.
struct fixture {
  balctl::test::temp_dir dir;
  balctl::test::test_pki pki = balctl::test::make_test_pki(dir.file(""));
  std::shared_ptr<received> got = std::make_shared<received>();
  tls::context client_ctx;
  std::unique_ptr<tls_listener> listener;

  explicit fixture(tls_listener_limits limits = {}) {
    REQUIRE(pki.error.empty());
    REQUIRE(client_ctx.load_client(pki.ca_cert).empty());
    listener = std::make_unique<tls_listener>("127.0.0.1:0", pki.server_cert, pki.server_key,
                                              limits, recorder(got));
    REQUIRE(listener->start().empty());
    REQUIRE(listener->bound_port() != 0);
  }
  ~fixture() {
    listener->stop();
    // Every connection was closed and its memory released on the loop.
    CHECK(listener->counters().connections_open.load() == 0);
  }
  std::uint16_t port() const { return listener->bound_port(); }
  const balctl::tls_listener_counters& counters() const { return listener->counters(); }
};

} // namespace

TEST_CASE("frames over TLS reach the callback with the peer's address", "[tls][e2e]") {
  fixture f;
  client c(f.port());
  REQUIRE(c.handshake(f.client_ctx));
  std::vector<std::string> sent = {frame(1), frame(2, R"({"hostname":"a.example"})"),
                                   frame(3)};
  for (const auto& s : sent) {
    REQUIRE(c.send(s));
  }
  REQUIRE(wait_until([&] { return f.got->count() == 3; }, 5000));
  CHECK(f.got->take_frames() == sent);
  {
    std::lock_guard<std::mutex> g(f.got->mu);
    CHECK(f.got->peers == std::vector<std::string>(3, "127.0.0.1"));
  }
  CHECK(f.counters().frames == 3);
  CHECK(f.counters().connections_open == 1);
  CHECK(f.counters().connections_total == 1);
  CHECK(f.counters().handshake_errors == 0);
  // Nothing was asked for, nothing came back.
  CHECK(c.receive(1, 100).empty());
}

TEST_CASE("a frame sent one byte per TLS record arrives whole", "[tls][e2e]") {
  fixture f;
  client c(f.port());
  REQUIRE(c.handshake(f.client_ctx));
  const std::string one = frame(7, R"({"hostname":"split.example","agent_version":"1.0"})");
  for (char ch : one) {
    REQUIRE(c.send(std::string_view(&ch, 1)));
  }
  REQUIRE(wait_until([&] { return f.got->count() == 1; }, 5000));
  CHECK(f.got->take_frames().front() == one);
  // A second frame after the split one is not confused by it.
  REQUIRE(c.send(frame(8)));
  REQUIRE(wait_until([&] { return f.got->count() == 2; }, 5000));
  CHECK(f.got->take_frames().back() == frame(8));
}

TEST_CASE("many frames in one write are split apart in order", "[tls][e2e]") {
  fixture f;
  client c(f.port());
  REQUIRE(c.handshake(f.client_ctx));
  std::vector<std::string> sent;
  std::string all;
  for (std::uint64_t i = 1; i <= 60; ++i) {
    // Lengths from 48 bytes to the 1400 maximum, so frames straddle the
    // 16 KiB TLS records in every way.
    std::string body = i % 3 == 0 ? std::string() : std::string(((i * 97) % 1352) + 1, 'b');
    sent.push_back(frame(i, body));
    all += sent.back();
  }
  REQUIRE(c.send(all));
  REQUIRE(wait_until([&] { return f.got->count() == sent.size(); }, 5000));
  CHECK(f.got->take_frames() == sent);
  CHECK(f.counters().frames == sent.size());
}

TEST_CASE("replies from the callback come back on the same connection", "[tls][e2e]") {
  fixture f;
  client c(f.port());
  REQUIRE(c.handshake(f.client_ctx));
  // Two frames asking for an ack, one not, in one record.
  REQUIRE(c.send(frame(10, {}, true) + frame(11) + frame(12, {}, true)));
  std::string acks = c.receive(2 * protocol::ack_size);
  REQUIRE(acks.size() == 2 * protocol::ack_size);
  for (std::size_t i = 0; i < 2; ++i) {
    auto a = protocol::decode_ack(
      reinterpret_cast<const std::uint8_t*>(acks.data()) + i * protocol::ack_size,
      protocol::ack_size, test_key);
    REQUIRE(a.has_value());
    CHECK(a->result == protocol::ack_result::accepted);
    CHECK(a->member == 42);
    CHECK(a->seq == (i == 0 ? 10u : 12u));
  }
  CHECK(c.receive(1, 100).empty());
  CHECK(f.got->count() == 3);
}

TEST_CASE("bytes that cannot start a frame close the connection and are counted",
          "[tls][e2e]") {
  fixture f;
  client c(f.port());
  REQUIRE(c.handshake(f.client_ctx));
  std::string bad;
  SECTION("bad magic") { bad = "XLHB" + std::string(60, '\0'); }
  SECTION("bad version") {
    bad = frame(2);
    bad[4] = 9;
  }
  SECTION("a length past the maximum") {
    bad = frame(2);
    bad[6] = '\xff'; // body_len 0xff00
  }
  // The good frame before the garbage is delivered; the stream then ends.
  REQUIRE(c.send(frame(1) + bad));
  CHECK(c.wait_closed());
  CHECK(f.got->count() == 1);
  CHECK(wait_until([&] { return f.counters().garbage_closed == 1; }, 5000));
  CHECK(wait_until([&] { return f.counters().connections_open == 0; }, 5000));
  // The listener serves the next connection as before.
  client next(f.port());
  REQUIRE(next.handshake(f.client_ctx));
  REQUIRE(next.send(frame(3)));
  CHECK(wait_until([&] { return f.got->count() == 2; }, 5000));
}

TEST_CASE("a client that never finishes the handshake is closed after handshake_timeout_ms",
          "[tls][e2e]") {
  tls_listener_limits limits;
  limits.handshake_timeout_ms = 200;
  fixture f(limits);
  auto t0 = clock_type::now();
  client c(f.port());
  REQUIRE(c.connected());
  SECTION("silent") {}
  SECTION("half a ClientHello") {
    tls::session s(f.client_ctx, "localhost");
    REQUIRE(s.start() == status::ok);
    std::string hello = s.take_output();
    REQUIRE(c.send_raw(std::string_view(hello).substr(0, hello.size() / 2)));
  }
  REQUIRE(c.wait_closed(5000));
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0);
  CHECK(waited.count() >= 150);
  CHECK(wait_until([&] { return f.counters().timeouts == 1; }, 5000));
  CHECK(f.counters().handshake_timeouts == 1);
  CHECK(f.counters().handshake_errors == 0);
}

TEST_CASE("an established connection without a frame for idle_timeout_ms is closed",
          "[tls][e2e]") {
  tls_listener_limits limits;
  limits.idle_timeout_ms = 300;
  fixture f(limits);
  client c(f.port());
  REQUIRE(c.handshake(f.client_ctx));
  SECTION("frames keep it open; silence closes it") {
    // A frame every ~100 ms for 900 ms: three idle timeouts long, yet open,
    // because each frame moves the deadline.
    for (int i = 0; i < 9; ++i) {
      REQUIRE(c.send(frame(static_cast<std::uint64_t>(i + 1))));
      REQUIRE(c.stays_open(100));
    }
    CHECK(f.counters().timeouts == 0);
  }
  SECTION("a trickle of bytes that never completes a frame does not keep it open") {
    const std::string one = frame(1);
    for (std::size_t i = 0; i < 5 && !c.closed(); ++i) {
      REQUIRE(c.send(std::string_view(one).substr(i, 1)));
      c.stays_open(100);
    }
  }
  auto t0 = clock_type::now();
  REQUIRE(c.wait_closed(5000));
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0);
  CHECK(waited.count() < 5000);
  CHECK(wait_until([&] { return f.counters().timeouts == 1; }, 5000));
  CHECK(f.counters().handshake_timeouts == 0);
  // The idle close says goodbye with close_notify.
  CHECK(c.tls_status() == status::closed);
}

TEST_CASE("connections past max_connections are accepted and closed at once", "[tls][e2e]") {
  tls_listener_limits limits;
  limits.max_connections = 2;
  fixture f(limits);
  client a(f.port());
  auto b = std::make_unique<client>(f.port());
  REQUIRE(a.handshake(f.client_ctx));
  REQUIRE(b->handshake(f.client_ctx));
  client over(f.port());
  REQUIRE(over.connected());
  CHECK(over.wait_closed());
  CHECK(wait_until([&] { return f.counters().connections_rejected == 1; }, 5000));
  CHECK(f.counters().connections_open == 2);
  CHECK(f.counters().connections_total == 2);
  // The two within the limit still work.
  REQUIRE(a.send(frame(1)));
  REQUIRE(b->send(frame(2)));
  CHECK(wait_until([&] { return f.got->count() == 2; }, 5000));
  // A closed connection frees its place.
  b.reset();
  REQUIRE(wait_until([&] { return f.counters().connections_open == 1; }, 5000));
  client again(f.port());
  REQUIRE(again.handshake(f.client_ctx));
  CHECK(f.counters().connections_total == 3);
  CHECK(f.counters().connections_rejected == 1);
}

TEST_CASE("a client the server knows nothing about completes the handshake", "[tls][e2e]") {
  fixture f;
  // The client presents a certificate nobody issued it (self-signed) and
  // does not ask the server for one either: the server requires no client
  // certificate, members are known by their heartbeat key.
  tls::context ctx;
  REQUIRE(ctx.load_client(f.pki.ca_cert).empty());
  REQUIRE(SSL_CTX_use_certificate_file(ctx.get(), f.pki.self_signed_cert.c_str(),
                                       SSL_FILETYPE_PEM) == 1);
  REQUIRE(SSL_CTX_use_PrivateKey_file(ctx.get(), f.pki.self_signed_key.c_str(),
                                      SSL_FILETYPE_PEM) == 1);
  client c(f.port());
  REQUIRE(c.handshake(ctx));
  REQUIRE(c.send(frame(1, {}, true)));
  CHECK(c.receive(protocol::ack_size).size() == protocol::ack_size);
  CHECK(f.counters().handshake_errors == 0);
}

TEST_CASE("a plaintext client is counted as a handshake error and closed", "[tls][e2e]") {
  fixture f;
  client plain(f.port());
  REQUIRE(plain.connected());
  // A UDP-style heartbeat sent in the clear to the TLS port.
  REQUIRE(plain.send_raw(frame(1)));
  CHECK(plain.wait_closed());
  CHECK(wait_until([&] { return f.counters().handshake_errors == 1; }, 5000));
  CHECK(f.got->count() == 0);
  CHECK(f.counters().frames == 0);
  // The next client speaks TLS as usual.
  client good(f.port());
  REQUIRE(good.handshake(f.client_ctx));
  REQUIRE(good.send(frame(2)));
  CHECK(wait_until([&] { return f.got->count() == 1; }, 5000));
}

TEST_CASE("a client that does not read its acks is closed past max_pending_output",
          "[tls][e2e]") {
  tls_listener_limits limits;
  limits.max_pending_output = 16 * 1024;
  fixture f(limits);
  // A small receive window on the client: the server's acks pile up in its
  // own socket buffer, then in the listener.
  client c(f.port(), 4096);
  REQUIRE(c.handshake(f.client_ctx));
  std::string batch;
  for (std::uint64_t i = 0; i < 200; ++i) {
    batch += frame(i + 1, {}, true);
  }
  // Never reading; stop sending once the server has closed.
  for (int i = 0; i < 2000 && f.counters().slow_readers_closed == 0; ++i) {
    if (!c.send(batch)) {
      break;
    }
  }
  CHECK(wait_until([&] { return f.counters().slow_readers_closed == 1; }, 10000));
  CHECK(wait_until([&] { return f.counters().connections_open == 0; }, 5000));
}

TEST_CASE("stop() with connections open closes them and is idempotent", "[tls][e2e]") {
  fixture f;
  client a(f.port());
  client b(f.port());
  REQUIRE(a.handshake(f.client_ctx));
  REQUIRE(b.handshake(f.client_ctx));
  REQUIRE(a.send(frame(1)));
  client handshaking(f.port());
  REQUIRE(handshaking.begin_handshake(f.client_ctx));
  client raw(f.port());
  REQUIRE(raw.connected());
  REQUIRE(wait_until([&] { return f.counters().connections_open == 4; }, 5000));
  REQUIRE(wait_until([&] { return f.got->count() == 1; }, 5000));
  f.listener->stop();
  CHECK(f.counters().connections_open == 0);
  CHECK(a.wait_closed());
  CHECK(b.wait_closed());
  CHECK(handshaking.wait_closed());
  CHECK(raw.wait_closed());
  // Established connections got a close_notify.
  CHECK(a.tls_status() == status::closed);
  f.listener->stop();
  // Nothing listens any more.
  client late(f.port());
  CHECK((!late.connected() || late.wait_closed()));
}

TEST_CASE("start() names the address or file it cannot use", "[tls][e2e]") {
  balctl::test::temp_dir dir;
  auto pki = balctl::test::make_test_pki(dir.file(""));
  REQUIRE(pki.error.empty());
  auto fn = recorder(std::make_shared<received>());
  SECTION("missing certificate") {
    tls_listener l("127.0.0.1:0", dir.file("nope.pem"), pki.server_key, {}, fn);
    auto err = l.start();
    CHECK_THAT(err, Catch::StartsWith("tls listen 127.0.0.1:0: tls: certificate " +
                                      dir.file("nope.pem")));
  }
  SECTION("key of another certificate") {
    tls_listener l("127.0.0.1:0", pki.server_cert, pki.self_signed_key, {}, fn);
    CHECK_THAT(l.start(), Catch::Contains("private key " + pki.self_signed_key));
  }
  SECTION("not host:port") {
    tls_listener l("no-port", pki.server_cert, pki.server_key, {}, fn);
    CHECK(l.start() == "tls listen no-port: must be host:port or [v6]:port");
  }
  SECTION("port in use") {
    tls_listener first("127.0.0.1:0", pki.server_cert, pki.server_key, {}, fn);
    REQUIRE(first.start().empty());
    std::string addr = "127.0.0.1:" + std::to_string(first.bound_port());
    tls_listener second(addr, pki.server_cert, pki.server_key, {}, fn);
    auto err = second.start();
    CHECK_THAT(err, Catch::StartsWith("tls listen " + addr + ": "));
    CHECK_THAT(err, Catch::Contains("address already in use"));
  }
  SECTION("a zero timeout") {
    tls_listener_limits limits;
    limits.idle_timeout_ms = 0;
    tls_listener l("127.0.0.1:0", pki.server_cert, pki.server_key, limits, fn);
    CHECK_THAT(l.start(), Catch::Contains("idle_timeout_ms = 0"));
  }
  SECTION("start twice") {
    tls_listener l("127.0.0.1:0", pki.server_cert, pki.server_key, {}, fn);
    REQUIRE(l.start().empty());
    CHECK_THAT(l.start(), Catch::Contains("start() after start() or stop()"));
  }
}

TEST_CASE("a listener on an IPv6 address binds or names the address", "[tls][e2e]") {
  balctl::test::temp_dir dir;
  auto pki = balctl::test::make_test_pki(dir.file(""));
  REQUIRE(pki.error.empty());
  tls_listener l("[::1]:0", pki.server_cert, pki.server_key, {},
                 recorder(std::make_shared<received>()));
  // Loopback v6 may be missing in a container: either it works or it says why.
  auto err = l.start();
  if (err.empty()) {
    CHECK(l.bound_port() != 0);
  } else {
    CHECK_THAT(err, Catch::StartsWith("tls listen [::1]:0: "));
  }
}
