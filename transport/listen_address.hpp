#pragma once

// "host:port" and "[v6]:port" as the listeners take them.

#include <string>

namespace balctl {

/// Splits s into host and port; "localhost" becomes 127.0.0.1. False when
/// s is not host:port or [v6]:port with a port 0..65535.
bool split_listen(const std::string& s, std::string& host, int& port);

} // namespace balctl
