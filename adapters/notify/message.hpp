#pragma once

// What the channels send, as pure functions: the RFC 5322 e-mail, the
// webhook's JSON body and its signature. No I/O, so they are tested alone.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/notify/notifier.hpp"

namespace balctl::notify {

/// A header value that cannot start another header: CR, LF and the other
/// control characters but TAB become spaces.
std::string header_safe(std::string_view v);

/// A header value as RFC 2047 encoded words (UTF-8, base64) when it holds
/// anything but printable ASCII; header_safe() applied first.
std::string encode_header(std::string_view v);

/// A bare address an SMTP envelope and a To: header can carry
/// (local@domain, printable ASCII, no spaces, quotes, commas or <>).
bool valid_address(std::string_view a);

/// "Tue, 14 Nov 2023 22:13:20 +0000" (RFC 5322 date-time, UTC).
std::string rfc5322_date(std::int64_t ms);
/// "2023-11-14T22:13:20Z".
std::string iso8601_utc(std::int64_t ms);

/// The message for every address in `to`: Date (the alert's time), From,
/// To, Subject, Message-ID, MIME-Version, Content-Type text/plain UTF-8, 8bit,
/// X-Balctl-Kind and X-Balctl-Key; the body with CRLF line ends.
/// message_id without the angle brackets.
std::string email_message(const alert& a, const std::string& from,
                          const std::vector<std::string>& to, const std::string& message_id);

/// {"kind","key","pool","member","subject","text","at_ms"} as compact JSON.
std::string webhook_body(const alert& a);

/// "sha256=<64 hex>": HMAC-SHA256 of body under secret.
std::string webhook_signature(const std::string& secret, const std::string& body);

/// The text with the de-duplication note appended:
/// "...\n\n(3 similar alerts suppressed since 2023-11-14T22:13:20Z)".
std::string with_suppressed_note(std::string text, std::uint64_t n, std::int64_t since_ms);

} // namespace balctl::notify
