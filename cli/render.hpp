#pragma once

// What balctl prints: aligned plain-text tables, "key  value" blocks,
// relative ages, API error lines, and the exit code for an HTTP status.
// Pure functions; the current time is a parameter.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/args.hpp"

namespace balctl::cli {

// Exit codes (docs/api-spec-draft.md, "CLI exit codes").
inline constexpr int exit_ok = 0;
inline constexpr int exit_unexpected = 1;  // 5xx or anything unexpected
inline constexpr int exit_usage = 2;
inline constexpr int exit_unreachable = 3; // no HTTP answer
inline constexpr int exit_auth = 4;        // 401, 403
inline constexpr int exit_not_found = 5;   // 404
inline constexpr int exit_rejected = 6;    // 400, 409, 413, 422, 429

/// 2xx → 0; 401/403 → 4; 404 → 5; 400/409/413/422/429 → 6; everything
/// else (5xx, 3xx, 405, 408, 431, ...) → 1.
int exit_code_for_status(long status);

struct text_table {
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> right_aligned; // per column; missing = left
};

/// Columns as wide as their widest cell (UTF-8 code points), two spaces
/// apart, no trailing spaces. Control characters in cells become '?', so a
/// name from the server cannot move the terminal's cursor.
std::string render_table(const text_table& t);

/// "label  value" lines with the values aligned.
std::string render_fields(const std::vector<std::pair<std::string, std::string>>& fields);

/// "9s ago", "5m ago", "3h ago", "2d ago"; "in 4s" for a time ahead of
/// now_ms (clock skew); "never" for nullopt.
std::string relative_age(std::optional<std::int64_t> at_ms, std::int64_t now_ms);

/// "12s", "5m", "3h", "2d": a length of time, rounded down (the sign ignored).
std::string short_duration(std::int64_t ms);

/// "balctl: <message> (<code>[, field <field>])" from an API error body; a
/// body that is not the API's error shape gives "balctl: HTTP <status>...".
/// For 429 a Retry-After value adds a second line. Ends with '\n'.
std::string render_api_error(long status, const std::string& body,
                             const std::string& retry_after);

/// The human rendering of a successful answer. body is null for 204.
std::string render_success(const invocation& inv, const nlohmann::json& body,
                           std::int64_t now_ms);

/// text with every occurrence of secret replaced by "***" (secret "" = as is).
std::string redact(std::string text, const std::string& secret);

} // namespace balctl::cli
