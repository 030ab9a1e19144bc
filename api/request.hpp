#pragma once

// What the admin API's route handlers share (api/admin_api.cpp, the
// Managed DNS routes in api/dns_routes.cpp): the error shape, JSON bodies
// and query strings read field by field, pages, and answering with the
// engine's outcome.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/admin_api.hpp"
#include "api/control.hpp"
#include "transport/http_server.hpp"

namespace balctl::api {

using json = nlohmann::json;

inline bool printable_label(const std::string& s) {
  if (s.empty() || s.size() > 64) {
    return false;
  }
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      return false;
    }
  }
  // Must be valid UTF-8 for the JSON we answer with.
  try {
    (void)json(s).dump();
  } catch (const json::exception&) {
    return false;
  }
  return true;
}

constexpr std::uint64_t default_page = 100;
constexpr std::uint64_t max_page = 1000;

// -- errors -----------------------------------------------------------------

inline http::response error(const failure& f) {
  auto r = http::error_response(status_of(f.code), f.code, f.field, f.message);
  if (r.status == 401) {
    // RFC 9110: a 401 names the scheme that would be accepted.
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
  }
  return r;
}

inline http::response error(const std::string& code, const std::string& field,
                     const std::string& message) {
  return error(failure{code, field, message});
}

inline http::response ok_json(int status, const json& j) {
  http::response r;
  r.status = status;
  // Text a provider sent (a live record, an error) may not be UTF-8: it is
  // replaced, never allowed to make every later answer fail.
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

inline http::response no_content() {
  http::response r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

// -- request helpers ----------------------------------------------------------

inline std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    auto j = path.find('/', i);
    if (j == std::string::npos) {
      j = path.size();
    }
    out.push_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

inline bool percent_decode(const std::string& in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%') {
      if (i + 2 >= in.size()) {
        return false;
      }
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) {
        return false;
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += in[i];
    }
  }
  return true;
}

// The query string, checked against the parameters a route takes.
struct query {
  std::vector<std::pair<std::string, std::string>> params;
  std::optional<failure> error;

  static query parse(const std::string& raw,
                     std::initializer_list<const char*> allowed) {
    query q;
    std::size_t i = 0;
    while (i <= raw.size() && !raw.empty()) {
      auto j = raw.find('&', i);
      if (j == std::string::npos) {
        j = raw.size();
      }
      auto part = raw.substr(i, j - i);
      i = j + 1;
      if (part.empty()) {
        if (j >= raw.size()) break;
        continue;
      }
      auto eq = part.find('=');
      std::string k, v;
      if (!percent_decode(part.substr(0, eq), k) ||
          !percent_decode(eq == std::string::npos ? "" : part.substr(eq + 1), v)) {
        q.error = failure{"invalid_field", "query", "malformed percent-encoding"};
        return q;
      }
      if (std::find_if(allowed.begin(), allowed.end(), [&](const char* a) {
            return k == a;
          }) == allowed.end()) {
        q.error = failure{"unknown_field", "query." + k,
                          "unknown query parameter"};
        return q;
      }
      q.params.emplace_back(std::move(k), std::move(v));
      if (j >= raw.size()) {
        break;
      }
    }
    return q;
  }

  const std::string* get(const char* k) const {
    for (const auto& p : params) {
      if (p.first == k) {
        return &p.second;
      }
    }
    return nullptr;
  }

  /// An unsigned integer parameter in [lo, hi], or def when absent.
  bool number(const char* k, std::uint64_t lo, std::uint64_t hi,
              std::uint64_t def, std::uint64_t& out) {
    out = def;
    auto v = get(k);
    if (v == nullptr) {
      return true;
    }
    if (v->empty() || v->size() > 19 ||
        v->find_first_not_of("0123456789") != std::string::npos ||
        std::stoull(*v) < lo || std::stoull(*v) > hi) {
      error = failure{"invalid_field", std::string("query.") + k,
                      "must be an integer between " + std::to_string(lo) +
                        " and " + std::to_string(hi)};
      return false;
    }
    out = std::stoull(*v);
    return true;
  }

  bool flag(const char* k, bool& out) {
    out = false;
    auto v = get(k);
    if (v == nullptr) {
      return true;
    }
    if (*v == "true" || *v == "1" || v->empty()) {
      out = true;
    } else if (*v != "false" && *v != "0") {
      error = failure{"invalid_field", std::string("query.") + k,
                      "must be true or false"};
      return false;
    }
    return true;
  }
};


// A JSON object body, read field by field; the first problem wins.
struct body {
  json j;
  std::optional<failure> error;

  static body parse(const http::request& req,
                    std::initializer_list<const char*> allowed) {
    // Read as JSON whatever Content-Type says: `curl -d` sends a form type
    // by default, and the body's syntax is checked right here anyway.
    body b;
    try {
      b.j = json::parse(req.body);
    } catch (const json::parse_error& e) {
      // Not e.what(): it quotes the bytes it choked on, which may be a
      // secret.
      b.error = failure{"invalid_json", "",
                        "the body is not valid JSON (at byte " +
                          std::to_string(e.byte) + ")"};
      return b;
    }
    if (!b.j.is_object()) {
      b.error = failure{"invalid_json", "", "the body must be a JSON object"};
      return b;
    }
    for (auto it = b.j.begin(); it != b.j.end(); ++it) {
      if (std::find_if(allowed.begin(), allowed.end(), [&](const char* a) {
            return it.key() == a;
          }) == allowed.end()) {
        b.error = failure{"unknown_field", it.key(), "unknown field"};
        return b;
      }
    }
    return b;
  }

  bool has(const char* k) const { return j.contains(k); }

  /// A string field; required ones missing are an error.
  bool string(const char* k, bool required, std::string& out) {
    if (error) {
      return false;
    }
    auto i = j.find(k);
    if (i == j.end()) {
      if (required) {
        error = failure{"missing_field", k, "required"};
      }
      return false;
    }
    if (!i->is_string()) {
      error = failure{"invalid_field", k, "must be a string"};
      return false;
    }
    out = i->get<std::string>();
    return true;
  }

  /// A display name: a string of 1 to 64 printable characters.
  bool label(const char* k, bool required, std::string& out) {
    if (!string(k, required, out)) {
      return false;
    }
    if (!printable_label(out)) {
      invalid(k, "must be 1 to 64 printable characters");
      return false;
    }
    return true;
  }

  void invalid(const char* k, std::string message) {
    if (!error) {
      error = failure{"invalid_field", k, std::move(message)};
    }
  }
};

// ?force=... of a DELETE; the failure when it is not a flag.
inline std::optional<failure> read_force(const std::string& raw, bool& force) {
  auto q = query::parse(raw, {"force"});
  if (!q.error) {
    q.flag("force", force);
  }
  return q.error;
}

// A page of a list: its offset and limit under these parameter names.
inline std::optional<failure> read_page(const std::string& raw, const char* offset_key,
                                 const char* limit_key, std::uint64_t& offset,
                                 std::uint64_t& limit) {
  auto q = query::parse(raw, {offset_key, limit_key});
  if (!q.error && q.number(offset_key, 0, UINT32_MAX, 0, offset)) {
    q.number(limit_key, 1, max_page, default_page, limit);
  }
  return q.error;
}

// Answers with the engine's outcome: ok → render, else the failure.
template <class T, class F>
done<T> answer(http::responder respond, F render) {
  return [respond, render](outcome<T> o) {
    if (!o.ok()) {
      respond(error(o.error));
      return;
    }
    try {
      respond(render(*o.value));
    } catch (const std::exception& e) {
      respond(error("internal", "", e.what()));
    }
  };
}


} // namespace balctl::api
