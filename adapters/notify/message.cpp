#include "adapters/notify/message.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <ctime>

#include <nlohmann/json.hpp>

#include "engine/secrets.hpp"

namespace balctl::notify {

namespace {

bool plain_ascii(std::string_view v) {
  for (unsigned char c : v) {
    if (c < 0x20 || c > 0x7e) {
      return false;
    }
  }
  return true;
}

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

std::tm utc(std::int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm;
}

} // namespace

std::string header_safe(std::string_view v) {
  std::string out(v);
  for (auto& c : out) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      c = ' ';
    }
  }
  return out;
}

std::string encode_header(std::string_view v) {
  auto safe = header_safe(v);
  if (plain_ascii(safe)) {
    return safe;
  }
  // Encoded words of at most 75 characters (RFC 2047 section 2): 45 bytes
  // of input each, cut between UTF-8 characters, folded onto new lines.
  std::string out;
  std::size_t i = 0;
  while (i < safe.size()) {
    std::size_t end = std::min(safe.size(), i + 45);
    while (end < safe.size() && end > i + 1 &&
           (static_cast<unsigned char>(safe[end]) & 0xc0) == 0x80) {
      --end; // do not split a multi-byte character
    }
    if (!out.empty()) {
      out += "\r\n ";
    }
    out += "=?UTF-8?B?" + base64(std::string_view(safe).substr(i, end - i)) + "?=";
    i = end;
  }
  return out;
}

bool valid_address(std::string_view a) {
  auto at = a.rfind('@');
  if (a.empty() || a.size() > 254 || at == 0 || at == std::string_view::npos ||
      at + 1 == a.size() || !plain_ascii(a)) {
    return false;
  }
  return a.find_first_of(" \t\"'(),:;<>[\\]") == std::string_view::npos;
}

std::string rfc5322_date(std::int64_t ms) {
  static const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  auto tm = utc(ms);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7],
                tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

std::string iso8601_utc(std::int64_t ms) {
  auto tm = utc(ms);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string email_message(const alert& a, const std::string& from,
                          const std::vector<std::string>& to, const std::string& message_id) {
  std::string to_line;
  for (const auto& r : to) {
    to_line += (to_line.empty() ? "" : ", ") + header_safe(r);
  }
  std::string m;
  m += "Date: " + rfc5322_date(a.at_ms) + "\r\n";
  m += "From: " + header_safe(from) + "\r\n";
  m += "To: " + to_line + "\r\n";
  m += "Subject: " + encode_header(a.subject) + "\r\n";
  m += "Message-ID: <" + header_safe(message_id) + ">\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\n";
  m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "X-Balctl-Kind: " + encode_header(a.kind) + "\r\n";
  m += "X-Balctl-Key: " + encode_header(a.key) + "\r\n";
  m += "\r\n";
  // Line ends as CRLF whatever the text used; a lone CR becomes one too.
  for (std::size_t i = 0; i < a.text.size(); ++i) {
    char c = a.text[i];
    if (c == '\r') {
      if (i + 1 < a.text.size() && a.text[i + 1] == '\n') {
        ++i;
      }
      m += "\r\n";
    } else if (c == '\n') {
      m += "\r\n";
    } else {
      m += c;
    }
  }
  if (m.size() < 2 || m.compare(m.size() - 2, 2, "\r\n") != 0) {
    m += "\r\n";
  }
  return m;
}

std::string webhook_body(const alert& a) {
  nlohmann::json j = {{"kind", a.kind},       {"key", a.key},   {"pool", a.pool},
                      {"member", a.member},   {"subject", a.subject},
                      {"text", a.text},       {"at_ms", a.at_ms}};
  // Invalid UTF-8 is replaced, not thrown: an alert always goes out.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string webhook_signature(const std::string& secret, const std::string& body) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), md, &len);
  return "sha256=" + secrets::to_hex(md, len);
}

std::string with_suppressed_note(std::string text, std::uint64_t n, std::int64_t since_ms) {
  if (n == 0) {
    return text;
  }
  text += "\n\n(" + std::to_string(n) + (n == 1 ? " similar alert" : " similar alerts") +
          " suppressed since " + iso8601_utc(since_ms) + ")";
  return text;
}

} // namespace balctl::notify
