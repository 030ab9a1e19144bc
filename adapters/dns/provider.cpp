#include "adapters/dns/provider.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <sstream>

#include "engine/text.hpp"

namespace balctl::dns {

const char* to_string(record_type t) {
  switch (t) {
    case record_type::a: return "A";
    case record_type::aaaa: return "AAAA";
    case record_type::mx: return "MX";
    case record_type::srv: return "SRV";
  }
  return "?";
}

bool from_string(const std::string& s, record_type& out) {
  for (auto t : {record_type::a, record_type::aaaa, record_type::mx, record_type::srv}) {
    if (iequals(s, to_string(t))) {
      out = t;
      return true;
    }
  }
  return false;
}

const char* to_string(failure f) {
  switch (f) {
    case failure::transient: return "transient";
    case failure::rate_limited: return "rate_limited";
    case failure::auth: return "auth";
    case failure::permanent: return "permanent";
  }
  return "?";
}

std::string http_response::header_value(const std::string& name) const {
  for (const auto& h : headers) {
    if (iequals(h.name, name)) {
      return h.value;
    }
  }
  return {};
}

step operation::on_http(const http_response&) {
  return step::fail(failure::permanent, "provider got an HTTP answer it did not ask for");
}

step operation::on_dns(const dns_response&) {
  return step::fail(failure::permanent, "provider got a DNS answer it did not ask for");
}

std::vector<std::string> content_words(const std::string& content) {
  std::istringstream in(content);
  std::vector<std::string> out;
  for (std::string w; in >> w;) {
    out.push_back(w);
  }
  return out;
}

std::string canonical_name(const std::string& name) {
  std::string out = name;
  while (!out.empty() && out.back() == '.') {
    out.pop_back();
  }
  for (auto& c : out) {
    c = static_cast<char>(ascii_lower(c));
  }
  return out;
}

namespace {


} // namespace

bool same_content(record_type t, const std::string& a, const std::string& b) {
  switch (t) {
    case record_type::a:
    case record_type::aaaa: {
      int family = t == record_type::a ? AF_INET : AF_INET6;
      unsigned char x[16] = {}, y[16] = {};
      if (inet_pton(family, content_words(a).empty() ? "" : content_words(a)[0].c_str(), x) != 1 ||
          inet_pton(family, content_words(b).empty() ? "" : content_words(b)[0].c_str(), y) != 1) {
        return false;
      }
      return std::memcmp(x, y, sizeof x) == 0;
    }
    case record_type::mx:
    case record_type::srv: {
      auto wa = content_words(a), wb = content_words(b);
      if (wa.size() != wb.size() || wa.empty()) {
        return false;
      }
      // Numbers compare as written; the last word is a host name.
      for (std::size_t i = 0; i + 1 < wa.size(); ++i) {
        if (wa[i] != wb[i]) {
          return false;
        }
      }
      return canonical_name(wa.back()) == canonical_name(wb.back());
    }
  }
  return false;
}

} // namespace balctl::dns
