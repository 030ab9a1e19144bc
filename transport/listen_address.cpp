#include "transport/listen_address.hpp"

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

} // namespace balctl
