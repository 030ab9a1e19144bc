#include "engine/log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace balctl::log {

namespace {

std::atomic<int> g_level{static_cast<int>(level::info)};
std::mutex g_write_mu;

const char* name(level l) {
  switch (l) {
    case level::debug: return "debug";
    case level::info: return "info";
    case level::warn: return "warn";
    case level::error: return "error";
  }
  return "info";
}

void append_value(std::string& out, const std::string& v) {
  bool quote = v.empty();
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' ||
        static_cast<unsigned char>(c) < 0x20) {
      quote = true;
      break;
    }
  }
  if (!quote) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += '?';
    } else {
      out += c;
    }
  }
  out += '"';
}

} // namespace

void set_level(level l) { g_level.store(static_cast<int>(l)); }

bool parse_level(const std::string& s, level& out) {
  for (auto l : {level::debug, level::info, level::warn, level::error}) {
    if (s == name(l)) {
      out = l;
      return true;
    }
  }
  return false;
}

bool enabled(level l) { return static_cast<int>(l) >= g_level.load(); }

void write(level l, const char* event, std::initializer_list<field> fields) {
  if (!enabled(l)) {
    return;
  }
  using namespace std::chrono;
  auto now = system_clock::now();
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::time_t t = system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[64]; // room for any int the compiler imagines in each field
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  std::string line;
  line.reserve(128);
  line += "ts=";
  line += ts;
  line += " level=";
  line += name(l);
  line += " event=";
  line += event;
  for (const auto& f : fields) {
    line += ' ';
    line += f.first;
    line += '=';
    append_value(line, f.second);
  }
  line += '\n';
  std::lock_guard<std::mutex> guard(g_write_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

bool rate_limiter::allow(std::int64_t now_ms, std::uint64_t* suppressed) {
  std::lock_guard<std::mutex> guard(mu_);
  if (last_ms_ != 0 && now_ms > last_ms_) {
    tokens_ += static_cast<double>(now_ms - last_ms_) * per_ms_;
    if (tokens_ > burst_) {
      tokens_ = burst_;
    }
  }
  last_ms_ = now_ms;
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    if (suppressed) {
      *suppressed = suppressed_;
    }
    suppressed_ = 0;
    return true;
  }
  ++suppressed_;
  return false;
}

} // namespace balctl::log
