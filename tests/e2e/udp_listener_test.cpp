// The libuv UDP listener on loopback: real sockets, bounded waits.

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "tests/e2e/process.hpp"
#include "transport/protocol.hpp"
#include "transport/udp_listener.hpp"

using namespace balctl;

namespace {

void send_to(std::uint16_t port, const std::vector<std::uint8_t>& data) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sendto(fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
  close(fd);
}

} // namespace

TEST_CASE("the listener delivers every datagram to the callback", "[udp][e2e]") {
  // Catch2 assertions are not thread-safe: the loop thread only records.
  std::atomic<int> got{0};
  std::atomic<int> not_v4{0};
  std::atomic<std::size_t> last_len{0};
  udp_listener l("127.0.0.1:0", [&](const std::uint8_t*, std::size_t len,
                                    const sockaddr* src, std::uint8_t*) {
    not_v4 += src->sa_family == AF_INET ? 0 : 1;
    last_len = len;
    ++got;
    return std::size_t{0};
  });
  REQUIRE(l.start().empty());
  REQUIRE(l.bound_port() != 0);
  const int n = 200;
  for (int i = 0; i < n; ++i) {
    send_to(l.bound_port(), std::vector<std::uint8_t>(48, 0x42));
  }
  CHECK(test::wait_until([&] { return got.load() == n; }, 5000));
  CHECK(last_len == 48);
  CHECK(not_v4 == 0);
  l.stop();
  l.stop(); // idempotent
}

TEST_CASE("an oversized datagram is reported as oversized, not truncated",
          "[udp][e2e]") {
  std::atomic<std::size_t> len_seen{0};
  std::atomic<bool> decoded_oversized{false};
  udp_listener l("127.0.0.1:0", [&](const std::uint8_t* d, std::size_t len,
                                    const sockaddr*, std::uint8_t*) {
    auto r = protocol::decode(d, len);
    decoded_oversized = !r.ok && r.reason == protocol::reject_reason::oversized;
    len_seen = len;
    return std::size_t{0};
  });
  REQUIRE(l.start().empty());
  send_to(l.bound_port(), std::vector<std::uint8_t>(2000, 0x42));
  CHECK(test::wait_until([&] { return len_seen.load() != 0; }, 5000));
  CHECK(len_seen == 2000);
  CHECK(decoded_oversized);
  CHECK(l.oversized() == 1);
}

TEST_CASE("stop from another thread closes the listener", "[udp][e2e]") {
  udp_listener l("127.0.0.1:0", [](const std::uint8_t*, std::size_t, const sockaddr*, std::uint8_t*) {
    return std::size_t{0};
  });
  REQUIRE(l.start().empty());
  std::thread t([&] { l.stop(); });
  t.join();
  SUCCEED("stopped");
}

TEST_CASE("binding a taken port fails with an error naming the address",
          "[udp][e2e]") {
  udp_listener first("127.0.0.1:0", [](const std::uint8_t*, std::size_t, const sockaddr*, std::uint8_t*) {
    return std::size_t{0};
  });
  REQUIRE(first.start().empty());
  auto addr = "127.0.0.1:" + std::to_string(first.bound_port());
  udp_listener second(addr, [](const std::uint8_t*, std::size_t, const sockaddr*, std::uint8_t*) {
    return std::size_t{0};
  });
  auto err = second.start();
  CHECK_FALSE(err.empty());
  CHECK(err.find(addr) != std::string::npos);
  udp_listener bad("nonsense", [](const std::uint8_t*, std::size_t, const sockaddr*, std::uint8_t*) {
    return std::size_t{0};
  });
  CHECK(bad.start().find("nonsense") != std::string::npos);
}

TEST_CASE("concurrent stops both return after the loop thread is gone, and start "
          "after stop is refused", "[udp][e2e]") {
  std::atomic<int> got{0};
  udp_listener l("127.0.0.1:0", [&](const std::uint8_t*, std::size_t, const sockaddr*,
                                    std::uint8_t*) {
    ++got;
    return std::size_t{0};
  });
  REQUIRE(l.start().empty());
  CHECK_FALSE(l.start().empty()); // already started
  std::atomic<int> returned{0};
  std::thread a([&] { l.stop(); ++returned; });
  std::thread b([&] { l.stop(); ++returned; });
  a.join();
  b.join();
  CHECK(returned == 2);
  CHECK_FALSE(l.start().empty()); // a stopped listener stays stopped
}

TEST_CASE("what the callback writes into its reply buffer goes back to the source",
          "[udp][e2e]") {
  udp_listener l("127.0.0.1:0", [](const std::uint8_t* d, std::size_t len,
                                   const sockaddr*, std::uint8_t* reply) {
    // Echo the first byte, ack_size times; nothing for an empty datagram.
    if (len == 0) {
      return std::size_t{0};
    }
    std::memset(reply, d[0], protocol::ack_size);
    return protocol::ack_size;
  });
  REQUIRE(l.start().empty());
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  REQUIRE(fd >= 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(l.bound_port());
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::uint8_t msg[48];
  std::memset(msg, 0x7a, sizeof msg);
  REQUIRE(sendto(fd, msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) == 48);
  std::uint8_t got[256];
  auto n = recv(fd, got, sizeof got, 0);
  close(fd);
  REQUIRE(n == static_cast<ssize_t>(protocol::ack_size));
  CHECK(got[0] == 0x7a);
  CHECK(got[protocol::ack_size - 1] == 0x7a);
  CHECK(test::wait_until([&] { return l.replies_sent() == 1; }, 5000));
  CHECK(l.replies_dropped() == 0);
}
