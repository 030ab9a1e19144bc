#pragma once

// "host:port" and "[v6]:port" as the listeners take them.

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include <uv.h>

namespace balctl {

/// Splits s into host and port; "localhost" becomes 127.0.0.1. False when
/// s is not host:port or [v6]:port with a port 0..65535.
bool split_listen(const std::string& s, std::string& host, int& port);

/// listen → a socket address (IP literals only: a listener binds an
/// address, not a name). Returns "" or why not: "must be host:port or
/// [v6]:port", "bad address: <reason>".
std::string listen_sockaddr(const std::string& listen, sockaddr_storage& out);

/// The port of an IPv4 or IPv6 socket address, in host byte order.
std::uint16_t port_of(const sockaddr_storage& a);

/// A TCP listener: uv_tcp_bind, uv_listen (SOMAXCONN) and getsockname.
/// Returns 0 with the bound port, or the libuv error with *what naming the
/// call that failed ("bind", "listen", "getsockname").
int tcp_listen(uv_tcp_t* h, const sockaddr_storage& addr, uv_connection_cb cb,
               std::uint16_t& port, const char** what);

} // namespace balctl
