// dns_io against real peers on loopback: the project's HTTP server for
// libcurl's multi interface, and small UDP/TCP DNS responders.

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "adapters/dns/dns_io.hpp"
#include "tests/support/run_operation.hpp"
#include "transport/http_server.hpp"

using namespace balctl;

namespace {

struct http_peer {
  std::mutex mu;
  std::vector<http::request> seen;
  std::vector<http::responder> held; // answered never (timeouts, stop)
  bool hold = false;
  std::size_t body_bytes = 2;
  http::server srv{"127.0.0.1:0", http::server_limits{}, [this](http::request&& r,
                                                               http::responder respond) {
                     std::lock_guard<std::mutex> g(mu);
                     seen.push_back(r);
                     if (hold) {
                       held.push_back(respond);
                       return;
                     }
                     http::response resp;
                     resp.status = r.method == "PATCH" ? 201 : 200;
                     resp.headers.push_back({"X-Seen", r.method + " " + r.path});
                     resp.body = std::string(body_bytes, 'x');
                     respond(std::move(resp));
                   }};
  http_peer() { REQUIRE(srv.start().empty()); }
  std::string url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(srv.bound_port()) + path;
  }
};

dns::http_response call(dns::dns_io& io, dns::http_request r, dns::http_options o = {}) {
  std::promise<dns::http_response> p;
  auto f = p.get_future();
  io.submit(std::move(r), o, [&p](dns::http_response x) { p.set_value(std::move(x)); });
  REQUIRE(f.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  return f.get();
}

dns::dns_response ask(dns::dns_io& io, dns::dns_request r, std::int64_t timeout_ms = 2000) {
  std::promise<dns::dns_response> p;
  auto f = p.get_future();
  io.submit(std::move(r), timeout_ms, [&p](dns::dns_response x) { p.set_value(std::move(x)); });
  REQUIRE(f.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  return f.get();
}

// A DNS responder on 127.0.0.1: answers each query on UDP (and TCP) with
// the query's bytes, QR set; optionally a wrong id first, or TC over UDP.
struct dns_peer {
  int udp = -1, tcp = -1;
  int port = 0;
  bool wrong_id_first = false;
  bool truncate_udp = false;
  bool silent = false;
  std::atomic<int> tcp_queries{0};
  std::atomic<bool> done{false};
  std::thread th;

  dns_peer() {
    udp = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(udp, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    getsockname(udp, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    tcp = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    REQUIRE(bind(tcp, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(tcp, 4) == 0);
  }
  void start() {
    th = std::thread([this] { run(); });
  }
  ~dns_peer() {
    done = true;
    if (th.joinable()) {
      th.join();
    }
    close(udp);
    close(tcp);
  }
  std::string server() const { return "127.0.0.1:" + std::to_string(port); }

  void run() {
    while (!done) {
      pollfd fds[2] = {{udp, POLLIN, 0}, {tcp, POLLIN, 0}};
      if (poll(fds, 2, 50) <= 0) {
        continue;
      }
      if (fds[0].revents & POLLIN) {
        std::uint8_t buf[512];
        sockaddr_in from{};
        socklen_t fl = sizeof from;
        auto n = recvfrom(udp, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl);
        if (n < 12 || silent) {
          continue;
        }
        buf[2] |= 0x80;
        if (wrong_id_first) {
          std::uint8_t other[512];
          std::memcpy(other, buf, static_cast<std::size_t>(n));
          other[0] ^= 0xff;
          sendto(udp, other, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), fl);
        }
        if (truncate_udp) {
          buf[2] |= 0x02;
        }
        sendto(udp, buf, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), fl);
      }
      if (fds[1].revents & POLLIN) {
        int c = accept(tcp, nullptr, nullptr);
        if (c < 0) {
          continue;
        }
        std::vector<std::uint8_t> in;
        std::uint8_t buf[1024];
        for (int i = 0; i < 100; ++i) {
          pollfd p{c, POLLIN, 0};
          if (poll(&p, 1, 50) <= 0) {
            continue;
          }
          auto n = read(c, buf, sizeof buf);
          if (n <= 0) {
            break;
          }
          in.insert(in.end(), buf, buf + n);
          if (in.size() >= 2 && in.size() >= 2u + ((in[0] << 8) | in[1])) {
            break;
          }
        }
        if (in.size() >= 14) {
          ++tcp_queries;
          in[4] |= 0x80; // QR in the message after the length
          write(c, in.data(), in.size());
        }
        close(c);
      }
    }
  }
};

std::vector<std::uint8_t> query(std::uint16_t id) {
  std::vector<std::uint8_t> q(17, 0);
  q[0] = static_cast<std::uint8_t>(id >> 8);
  q[1] = static_cast<std::uint8_t>(id & 0xff);
  q[5] = 1; // one question: the root, type A, class IN
  q[12] = 0;
  q[14] = 1;
  q[16] = 1;
  return q;
}

} // namespace

TEST_CASE("dns_io sends method, headers and body and returns status, headers and body",
          "[dns_io][dns]") {
  http_peer peer;
  dns::dns_io io;
  REQUIRE(io.start().empty());
  auto r = call(io, {"PATCH", peer.url("/zones/z1?x=1"), {{"X-Api-Key", "k1"}}, R"({"a":1})"});
  CHECK(r.transport_error.empty());
  CHECK(r.status == 201);
  CHECK(r.header_value("x-seen") == "PATCH /zones/z1");
  CHECK(r.body == "xx");
  std::lock_guard<std::mutex> g(peer.mu);
  REQUIRE(peer.seen.size() == 1);
  CHECK(peer.seen[0].query == "x=1");
  CHECK(peer.seen[0].body == R"({"a":1})");
  REQUIRE(peer.seen[0].header("x-api-key"));
  CHECK(*peer.seen[0].header("x-api-key") == "k1");
}

TEST_CASE("dns_io runs 100 requests at once on one loop", "[dns_io][dns]") {
  http_peer peer;
  dns::dns_io io;
  REQUIRE(io.start().empty());
  std::mutex mu;
  std::condition_variable cv;
  int ok = 0, done = 0;
  for (int i = 0; i < 100; ++i) {
    io.submit(dns::http_request{"GET", peer.url("/r" + std::to_string(i)), {}, {}}, {},
              [&](dns::http_response r) {
                std::lock_guard<std::mutex> g(mu);
                ok += r.status == 200 ? 1 : 0;
                ++done;
                cv.notify_all();
              });
  }
  std::unique_lock<std::mutex> l(mu);
  REQUIRE(cv.wait_for(l, std::chrono::seconds(20), [&] { return done == 100; }));
  CHECK(ok == 100);
  CHECK(io.counters().http_requests == 100);
}

TEST_CASE("dns_io reports what kept an answer from coming", "[dns_io][dns]") {
  dns::dns_io io;
  REQUIRE(io.start().empty());
  SECTION("connection refused") {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd); // nobody listens there now
    auto r = call(io, {"GET", "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/", {}, {}});
    CHECK_FALSE(r.transport_error.empty());
    CHECK(r.status == 0);
  }
  SECTION("a server that never answers: the timeout") {
    http_peer peer;
    peer.hold = true;
    dns::http_options o;
    o.timeout_ms = 300;
    auto t0 = std::chrono::steady_clock::now();
    auto r = call(io, {"GET", peer.url("/slow"), {}, {}}, o);
    CHECK(r.transport_error.find("imeout") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  }
  SECTION("an answer larger than allowed") {
    http_peer peer;
    peer.body_bytes = 10'000;
    dns::http_options o;
    o.max_response_bytes = 1000;
    auto r = call(io, {"GET", peer.url("/big"), {}, {}}, o);
    CHECK(r.transport_error.find("larger than 1000") != std::string::npos);
  }
  CHECK(io.counters().http_transport_errors == 1);
}

TEST_CASE("stopping dns_io ends every request once, in flight or later", "[dns_io][dns]") {
  http_peer peer;
  peer.hold = true;
  dns::dns_io io;
  REQUIRE(io.start().empty());
  std::atomic<int> stopped{0};
  for (int i = 0; i < 5; ++i) {
    io.submit(dns::http_request{"GET", peer.url("/held"), {}, {}}, {},
              [&](dns::http_response r) { stopped += r.transport_error == "stopped"; });
  }
  dns_peer silent;
  silent.silent = true;
  silent.start();
  io.submit(dns::dns_request{silent.server(), query(7), false}, 10'000,
            [&](dns::dns_response r) { stopped += r.transport_error == "stopped"; });
  // Every request has reached the server before the stop.
  for (int i = 0; i < 500; ++i) {
    std::lock_guard<std::mutex> g(peer.mu);
    if (peer.held.size() == 5) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  io.stop();
  CHECK(stopped == 6);
  bool called = false;
  io.submit(dns::http_request{"GET", peer.url("/late"), {}, {}}, {},
            [&](dns::http_response r) { called = r.transport_error == "stopped"; });
  CHECK(called);
}

TEST_CASE("dns_io exchanges DNS messages over UDP, and TCP when truncated", "[dns_io][dns]") {
  dns::dns_io io;
  REQUIRE(io.start().empty());
  dns_peer peer;
  SECTION("an answer to the query's id; others are ignored") {
    peer.wrong_id_first = true;
    peer.start();
    auto r = ask(io, {peer.server(), query(0x1234), false});
    REQUIRE(r.transport_error.empty());
    REQUIRE(r.wire.size() == 17);
    CHECK(r.wire[0] == 0x12);
    CHECK(r.wire[1] == 0x34);
    CHECK((r.wire[2] & 0x80) != 0);
  }
  SECTION("no answer: the timeout") {
    peer.silent = true;
    peer.start();
    auto r = ask(io, {peer.server(), query(1), false}, 200);
    CHECK(r.transport_error == "timeout after 200 ms");
  }
  SECTION("truncated over UDP: asked again over TCP") {
    peer.truncate_udp = true;
    peer.start();
    auto r = ask(io, {peer.server(), query(0x4321), false});
    REQUIRE(r.transport_error.empty());
    CHECK(peer.tcp_queries == 1);
    REQUIRE(r.wire.size() == 17);
    CHECK((r.wire[2] & 0x02) == 0);
  }
  SECTION("not a DNS message or not an address") {
    peer.start();
    CHECK_FALSE(ask(io, {peer.server(), {1, 2, 3}, false}).transport_error.empty());
    CHECK_FALSE(ask(io, {"not-an-address", query(2), false}).transport_error.empty());
  }
}

namespace {

class two_requests final : public dns::operation {
public:
  explicit two_requests(std::string base) : base_(std::move(base)) {}
  dns::step start() override { return dns::step::send(dns::http_request{"GET", base_ + "/one", {}, {}}); }
  dns::step on_http(const dns::http_response& r) override {
    if (++n_ == 1 && r.status == 200) {
      return dns::step::send(dns::http_request{"PATCH", base_ + "/two", {}, "b"});
    }
    return r.status == 201 ? dns::step::done_write(true)
                           : dns::step::fail(dns::failure::transient, "unexpected");
  }

private:
  std::string base_;
  int n_ = 0;
};

} // namespace

TEST_CASE("an operation's steps run through dns_io to its end", "[dns_io][dns]") {
  http_peer peer;
  dns::dns_io io;
  REQUIRE(io.start().empty());
  two_requests op(peer.url(""));
  auto s = test::run_operation(op, io);
  CHECK(s.k == dns::step::kind::done);
  CHECK(s.wrote);
  std::lock_guard<std::mutex> g(peer.mu);
  CHECK(peer.seen.size() == 2);
}
