#include "transport/listen_address.hpp"

#include <netinet/in.h>

#include <uv.h>

namespace balctl {

bool split_listen(const std::string& s, std::string& host, int& port) {
  std::string p;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 2 > s.size() || s[close + 1] != ':') {
      return false;
    }
    host = s.substr(1, close - 1);
    p = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos) {
      return false;
    }
    host = s.substr(0, colon);
    p = s.substr(colon + 1);
  }
  if (host == "localhost") {
    host = "127.0.0.1";
  }
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  port = std::stoi(p);
  return port <= 65535;
}

std::string listen_sockaddr(const std::string& listen, sockaddr_storage& out) {
  std::string host;
  int port = 0;
  if (!split_listen(listen, host, port)) {
    return "must be host:port or [v6]:port";
  }
  out = sockaddr_storage{};
  int rc = host.find(':') != std::string::npos
             ? uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&out))
             : uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&out));
  if (rc != 0) {
    return std::string("bad address: ") + uv_strerror(rc);
  }
  return {};
}

std::uint16_t port_of(const sockaddr_storage& a) {
  return ntohs(a.ss_family == AF_INET6
                 ? reinterpret_cast<const sockaddr_in6*>(&a)->sin6_port
                 : reinterpret_cast<const sockaddr_in*>(&a)->sin_port);
}

int tcp_listen(uv_tcp_t* h, const sockaddr_storage& addr, uv_connection_cb cb,
               std::uint16_t& port, const char** what) {
  int rc = uv_tcp_bind(h, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc != 0) {
    *what = "bind";
    return rc;
  }
  // libuv reports some bind errors (EADDRINUSE) only at listen.
  if ((rc = uv_listen(reinterpret_cast<uv_stream_t*>(h), SOMAXCONN, cb)) != 0) {
    *what = "listen";
    return rc;
  }
  sockaddr_storage bound{};
  int len = sizeof bound;
  if ((rc = uv_tcp_getsockname(h, reinterpret_cast<sockaddr*>(&bound), &len)) != 0) {
    *what = "getsockname";
    return rc;
  }
  port = port_of(bound);
  return 0;
}

} // namespace balctl
