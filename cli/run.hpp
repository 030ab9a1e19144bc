#pragma once

// One balctl command from parsed invocation to exit code and output text:
// make the call through a transport, map the status, render. main.cpp
// writes out/err; tests pass a fake transport.

#include <cstdint>
#include <optional>
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

/// The environment variable a DNS provider's secret comes from when there is
/// no --secret-file.
inline constexpr const char* dns_secret_env = "BALCTL_DNS_SECRET";

struct secret_result {
  std::optional<std::string> secret; // nullopt: none to send
  std::string error;                 // "" when ok; a usage error (exit 2), never the secret
  bool ok() const { return error.empty(); }
};

/// The DNS provider secret inv sends (inv.secret): with --secret-file, the
/// first line of file (main.cpp's read_text_file of that path), trailing
/// CR, LF and spaces trimmed; else, for provider add only, env_value
/// (BALCTL_DNS_SECRET) when set and not empty; else none. An unreadable file, an empty first line, or no
/// secret where inv.secret.required are errors naming the file or the
/// variable. Commands that send no secret get none, whatever is set.
secret_result resolve_secret(const invocation& inv, const std::optional<read_result>& file,
                             const std::optional<std::string>& env_value);

/// Never contains conn.token or dns_secret in out or err (redacted as a
/// last step too). dns_secret (resolve_secret's) goes in the body as
/// "secret" for the commands that send one; --verbose shows it as "***".
outcome run(const invocation& inv, const connection& conn, http_transport& transport,
            std::int64_t now_ms, const std::optional<std::string>& dns_secret = std::nullopt);

/// The usage error text: "balctl: <message>\n<usage>Run 'balctl ... --help'...".
std::string render_usage_error(const parse_result& r);

} // namespace balctl::cli
