#include "adapters/objstore/sigv4.hpp"

#include <ctime>

#include "engine/secrets.hpp"

namespace balctl::objstore::sigv4 {

namespace {

std::string as_string(const secrets::digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

} // namespace

std::string uri_encode(std::string_view s, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                      (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0xf];
    }
  }
  return out;
}

std::string amz_date(std::int64_t unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string presign_url(const presign_request& req, const credentials& creds) {
  const std::string date_time = amz_date(req.now_s);
  const std::string date = date_time.substr(0, 8);
  const std::string scope = date + "/" + req.region + "/" + req.service + "/aws4_request";
  const std::string uri = uri_encode(req.path.empty() ? "/" : req.path, true);

  // Sorted by parameter name (byte order): Security-Token sorts before
  // SignedHeaders. Names need no encoding; values do.
  std::string query = "X-Amz-Algorithm=AWS4-HMAC-SHA256";
  query += "&X-Amz-Credential=" + uri_encode(creds.access_key_id + "/" + scope, false);
  query += "&X-Amz-Date=" + date_time;
  query += "&X-Amz-Expires=" + std::to_string(req.expires_s);
  if (!creds.session_token.empty()) {
    query += "&X-Amz-Security-Token=" + uri_encode(creds.session_token, false);
  }
  query += "&X-Amz-SignedHeaders=host";

  std::string canonical = req.method + "\n" + uri + "\n" + query + "\nhost:" + req.host +
                          "\n\nhost\nUNSIGNED-PAYLOAD";
  std::string to_sign = "AWS4-HMAC-SHA256\n" + date_time + "\n" + scope + "\n" +
                        secrets::to_hex(secrets::sha256(canonical));

  auto k_date = secrets::hmac_sha256("AWS4" + creds.secret_access_key, date);
  auto k_region = secrets::hmac_sha256(as_string(k_date), req.region);
  auto k_service = secrets::hmac_sha256(as_string(k_region), req.service);
  auto k_signing = secrets::hmac_sha256(as_string(k_service), "aws4_request");
  auto signature = secrets::to_hex(secrets::hmac_sha256(as_string(k_signing), to_sign));

  return req.scheme + "://" + req.host + uri + "?" + query + "&X-Amz-Signature=" + signature;
}

} // namespace balctl::objstore::sigv4
