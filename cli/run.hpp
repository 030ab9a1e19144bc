#pragma once

// One balctl command from parsed invocation to exit code and output text:
// make the call through a transport, map the status, render. main.cpp
// writes out/err; tests pass a fake transport.

#include <cstdint>
#include <string>

#include "cli/args.hpp"
#include "cli/client.hpp"
#include "cli/config.hpp"

namespace balctl::cli {

struct outcome {
  int exit_code = 0;
  std::string out; // for stdout
  std::string err; // for stderr
};

/// Never contains conn.token in out or err (redacted as a last step too).
outcome run(const invocation& inv, const connection& conn, http_transport& transport,
            std::int64_t now_ms);

/// The usage error text: "balctl: <message>\n<usage>Run 'balctl ... --help'...".
std::string render_usage_error(const parse_result& r);

} // namespace balctl::cli
