#pragma once

// Structured logs: one event a line on stderr, logfmt
// (ts=… level=… event=… key=value …). Values with spaces or quotes are
// quoted. Never pass secrets (keys, tokens) as fields.

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <string>
#include <utility>

namespace balctl::log {

enum class level : int { debug = 0, info = 1, warn = 2, error = 3 };

void set_level(level l);
bool parse_level(const std::string& s, level& out);
bool enabled(level l);

using field = std::pair<const char*, std::string>;

/// Writes one line: ts=<iso8601> level=<l> event=<event> k=v ...
void write(level l, const char* event, std::initializer_list<field> fields);

inline void info(const char* e, std::initializer_list<field> f = {}) { write(level::info, e, f); }
inline void warn(const char* e, std::initializer_list<field> f = {}) { write(level::warn, e, f); }
inline void error(const char* e, std::initializer_list<field> f = {}) { write(level::error, e, f); }
inline void debug(const char* e, std::initializer_list<field> f = {}) {
  if (enabled(level::debug)) write(level::debug, e, f);
}

/// Token bucket for noisy events (rejected datagrams): allows `burst` lines,
/// refilled at `per_s` lines per second; counts what it suppressed so the
/// next allowed line can say how many were dropped.
class rate_limiter {
public:
  rate_limiter(double per_s, double burst) : per_ms_(per_s / 1000.0), burst_(burst), tokens_(burst) {}
  /// True when a line may be written at now_ms; *suppressed receives the
  /// number of lines dropped since the last allowed one.
  bool allow(std::int64_t now_ms, std::uint64_t* suppressed);

private:
  std::mutex mu_;
  double per_ms_;
  double burst_;
  double tokens_;
  std::int64_t last_ms_ = 0;
  std::uint64_t suppressed_ = 0;
};

} // namespace balctl::log
