#pragma once

// One plain HTTP request with libcurl, as an agent makes it to a presigned
// URL: any method, raw bytes as the body, no extra headers, the URL's path
// sent as it is (no "..", "." folding), so a test can send what a hostile
// client would. No Catch here; a setup failure is status 0 with the error.

#include <curl/curl.h>

#include <memory>
#include <string>

namespace balctl::test {

struct curl_reply {
  long status = 0;   // 0: no answer (error says why)
  std::string body;
  std::string error;
};

inline curl_reply curl_request(const std::string& method, const std::string& url,
                               const std::string* body = nullptr, long timeout_s = 30) {
  struct easy_free {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
  };
  curl_reply out;
  std::unique_ptr<CURL, easy_free> c(curl_easy_init());
  if (!c) {
    out.error = "curl_easy_init failed";
    return out;
  }
  char errbuf[CURL_ERROR_SIZE] = {0};
  auto write = +[](char* data, std::size_t size, std::size_t n, void* to) {
    static_cast<std::string*>(to)->append(data, size * n);
    return size * n;
  };
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, write);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(c.get(), CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT, timeout_s);
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  struct slist_free {
    void operator()(curl_slist* l) const { curl_slist_free_all(l); }
  };
  // No "Expect: 100-continue" round trip, and no form content type.
  std::unique_ptr<curl_slist, slist_free> headers(
    curl_slist_append(curl_slist_append(nullptr, "Expect:"), "Content-Type:"));
  curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers.get());
  if (method == "HEAD") {
    curl_easy_setopt(c.get(), CURLOPT_NOBODY, 1L);
  } else if (method != "GET") {
    curl_easy_setopt(c.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  if (body != nullptr) {
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(body->size()));
  }
  CURLcode rc = curl_easy_perform(c.get());
  if (rc != CURLE_OK) {
    out.error = errbuf[0] != 0 ? errbuf : curl_easy_strerror(rc);
    return out;
  }
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &out.status);
  return out;
}

} // namespace balctl::test
