// Webhook alerts: an HTTP POST of the alert as JSON, signed with
// X-Balctl-Signature: sha256=<HMAC-SHA256(secret, body)> when a secret is
// configured.

#include "adapters/notify/channel.hpp"
#include "adapters/notify/message.hpp"

namespace balctl::notify {

namespace {

// The receiver's answer is not used: read and thrown away.
std::size_t discard(char*, std::size_t size, std::size_t n, void*) { return size * n; }

} // namespace

std::string setup_webhook(attempt& a, const notify_config& cfg, const std::string& url,
                          const std::string& body) {
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    return "not an http(s) URL";
  }
  curl_slist* list = nullptr;
  std::string lines[] = {"Content-Type: application/json", "Expect:",
                         cfg.webhook_secret.empty()
                           ? std::string()
                           : "X-Balctl-Signature: " + webhook_signature(cfg.webhook_secret, body)};
  for (const auto& l : lines) {
    if (l.empty()) {
      continue;
    }
    if (auto* n = curl_slist_append(list, l.c_str())) {
      list = n;
    }
  }
  a.list.reset(list);
  CURL* e = a.easy.get();
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(cfg.webhook_timeout_ms));
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data()); // body outlives the attempt
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &discard);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, a.error);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "balctl-notify");
  return {};
}

verdict webhook_verdict(CURLcode rc, long status, const char* error, std::string* why) {
  if (rc != CURLE_OK) {
    *why = curl_easy_strerror(rc);
    if (error != nullptr && *error != '\0') {
      *why += std::string(": ") + error;
    }
    return verdict::retry;
  }
  *why = "HTTP " + std::to_string(status);
  if (status >= 200 && status < 300) {
    return verdict::sent;
  }
  if (status == 429 || status >= 500) {
    return verdict::retry;
  }
  return verdict::failed; // 1xx/3xx/4xx: asking again will not change it
}

} // namespace balctl::notify
