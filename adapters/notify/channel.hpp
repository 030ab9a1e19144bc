#pragma once

// One attempt of one delivery over libcurl, per channel (smtp.cpp,
// webhook.cpp): how the easy handle is set up, and what curl's result
// means for the delivery. The service (notify_service.cpp) owns the loop,
// the queue and the retries.

#include <curl/curl.h>

#include <memory>
#include <string>

#include "adapters/notify/notifier.hpp"

namespace balctl::notify {

enum class channel : std::uint8_t { email, webhook };
const char* to_string(channel c);

/// What an attempt's result means.
enum class verdict : std::uint8_t { sent, retry, failed };

struct easy_deleter {
  void operator()(CURL* e) const { curl_easy_cleanup(e); }
};
struct slist_deleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

/// One attempt's curl state; lives until curl is done with it.
struct attempt {
  std::unique_ptr<CURL, easy_deleter> easy;
  std::unique_ptr<curl_slist, slist_deleter> list; // recipients or headers
  const std::string* payload = nullptr;            // the message to upload (SMTP)
  std::size_t read_off = 0;
  char error[CURL_ERROR_SIZE] = {};
};

/// Sets up a.easy (already created) to send `message` from cfg.smtp_from to
/// every address of `to`. Returns "" or why it cannot be sent at all.
std::string setup_email(attempt& a, const notify_config& cfg,
                        const std::vector<std::string>& to, const std::string& message);
/// What the SMTP exchange's result means; *why says it in words.
verdict email_verdict(CURLcode rc, long smtp_code, const char* error, std::string* why);

/// Sets up a.easy to POST body to url (signed when cfg.webhook_secret is set).
std::string setup_webhook(attempt& a, const notify_config& cfg, const std::string& url,
                          const std::string& body);
/// 2xx sent; 429, 5xx and transport errors retry; other statuses fail.
verdict webhook_verdict(CURLcode rc, long status, const char* error, std::string* why);

} // namespace balctl::notify
