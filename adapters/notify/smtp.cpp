// E-mail alerts over SMTP with libcurl: smtp:// (optionally requiring
// STARTTLS) or smtps://, optional AUTH, one message to all recipients.

#include <cstring>

#include "adapters/notify/channel.hpp"

namespace balctl::notify {

namespace {

// SMTP and an SMTP server that does not answer at all may each take a
// while; libcurl's own default is no limit, which would hold a delivery.
constexpr long smtp_connect_timeout_ms = 15'000;
constexpr long smtp_timeout_ms = 60'000;

std::size_t on_read(char* buf, std::size_t size, std::size_t n, void* ud) {
  auto* a = static_cast<attempt*>(ud);
  std::size_t left = a->payload->size() - a->read_off;
  std::size_t len = std::min(left, size * n);
  std::memcpy(buf, a->payload->data() + a->read_off, len);
  a->read_off += len;
  return len;
}

} // namespace

const char* to_string(channel c) { return c == channel::email ? "email" : "webhook"; }

std::string setup_email(attempt& a, const notify_config& cfg,
                        const std::vector<std::string>& to, const std::string& message) {
  if (cfg.smtp_url.empty()) {
    return "notify.smtp_url is not configured";
  }
  curl_slist* rcpt = nullptr;
  for (const auto& r : to) {
    auto line = "<" + r + ">";
    if (auto* n = curl_slist_append(rcpt, line.c_str())) {
      rcpt = n;
    }
  }
  a.list.reset(rcpt);
  a.payload = &message;
  a.read_off = 0;
  CURL* e = a.easy.get();
  auto from = "<" + cfg.smtp_from + ">";
  curl_easy_setopt(e, CURLOPT_URL, cfg.smtp_url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, smtp_connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, smtp_timeout_ms);
  curl_easy_setopt(e, CURLOPT_MAIL_FROM, from.c_str()); // curl copies strings
  curl_easy_setopt(e, CURLOPT_MAIL_RCPT, rcpt);
  curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(e, CURLOPT_READFUNCTION, &on_read);
  curl_easy_setopt(e, CURLOPT_READDATA, &a);
  curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(message.size()));
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, a.error);
  if (cfg.smtp_starttls) {
    // Required, not opportunistic: a server that does not offer STARTTLS
    // fails the attempt rather than getting the alert in clear text.
    curl_easy_setopt(e, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
  }
  if (!cfg.smtp_ca_file.empty()) {
    curl_easy_setopt(e, CURLOPT_CAINFO, cfg.smtp_ca_file.c_str());
  }
  if (!cfg.smtp_username.empty()) {
    curl_easy_setopt(e, CURLOPT_USERNAME, cfg.smtp_username.c_str());
    curl_easy_setopt(e, CURLOPT_PASSWORD, cfg.smtp_password.c_str());
  }
  return {};
}

verdict email_verdict(CURLcode rc, long smtp_code, const char* error, std::string* why) {
  if (rc == CURLE_OK) {
    *why = "sent";
    return verdict::sent;
  }
  *why = curl_easy_strerror(rc);
  if (error != nullptr && *error != '\0') {
    *why += std::string(": ") + error;
  }
  if (smtp_code != 0) {
    *why += " (SMTP " + std::to_string(smtp_code) + ")";
  }
  // 5xx is the server's permanent answer (unknown recipient, refused
  // sender, failed AUTH); so are a URL or a login curl cannot use.
  // Everything else (4xx, no connection, timeouts, TLS) may pass.
  if ((smtp_code >= 500 && smtp_code < 600) || rc == CURLE_LOGIN_DENIED ||
      rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
    return verdict::failed;
  }
  return verdict::retry;
}

} // namespace balctl::notify
