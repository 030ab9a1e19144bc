#include "cli/client.hpp"

#include <cctype>
#include <memory>

#include <curl/curl.h>

namespace balctl::cli {

namespace {

// A reply larger than this is not an admin API answer; stop reading.
constexpr std::size_t max_body_bytes = 64u * 1024 * 1024;

struct easy_deleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct slist_deleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using easy_ptr = std::unique_ptr<CURL, easy_deleter>;
using slist_ptr = std::unique_ptr<curl_slist, slist_deleter>;

struct sink {
  std::string body;
  std::string retry_after;
  bool too_large = false;
};

size_t on_body(char* data, size_t size, size_t nmemb, void* user) {
  auto* s = static_cast<sink*>(user);
  size_t n = size * nmemb;
  if (s->body.size() + n > max_body_bytes) {
    s->too_large = true;
    return 0; // makes curl fail the transfer with CURLE_WRITE_ERROR
  }
  s->body.append(data, n);
  return n;
}

size_t on_header(char* data, size_t size, size_t nmemb, void* user) {
  auto* s = static_cast<sink*>(user);
  size_t n = size * nmemb;
  std::string line(data, n);
  if (line.rfind("HTTP/", 0) == 0) {
    s->retry_after.clear(); // a new response (after 1xx): its own headers
    return n;
  }
  auto colon = line.find(':');
  if (colon == std::string::npos) {
    return n;
  }
  std::string name = line.substr(0, colon);
  for (auto& c : name) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (name == "retry-after") {
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    value.erase(value.find_last_not_of(" \t\r\n") + 1);
    s->retry_after = value;
  }
  return n;
}

// Non-zero stops the transfer (CURLE_ABORTED_BY_CALLBACK).
int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(user)->load() ? 1 : 0;
}

/// Sets an option; on failure records "curl_easy_setopt(NAME): reason" once.
template <typename T>
bool set(CURL* h, CURLoption opt, const char* name, T value, std::string& error) {
  CURLcode rc = curl_easy_setopt(h, opt, value);
  if (rc != CURLE_OK) {
    error = std::string("curl_easy_setopt(") + name + "): " + curl_easy_strerror(rc);
    return false;
  }
  return true;
}

/// Appends a header; curl_slist_append returns NULL (and keeps the old list)
/// when it cannot allocate.
bool append(slist_ptr& list, const std::string& header) {
  curl_slist* grown = curl_slist_append(list.get(), header.c_str());
  if (!grown) {
    return false;
  }
  list.release();
  list.reset(grown);
  return true;
}

} // namespace

curl_global_guard::curl_global_guard() : ok_(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK) {}

curl_global_guard::~curl_global_guard() {
  if (ok_) {
    curl_global_cleanup();
  }
}

http_reply curl_transport_impl::perform(const http_call& call) {
  http_reply reply;
  easy_ptr h(curl_easy_init());
  if (!h) {
    reply.error = "curl_easy_init failed";
    return reply;
  }
  // Setup failures are ours, not the network's.
  auto setup_failed = [&](std::string message) {
    reply.what = http_reply::kind::failed;
    reply.error = std::move(message);
    return reply;
  };

  slist_ptr headers;
  if (!append(headers, "Accept: application/json") || !append(headers, "Expect:")) {
    return setup_failed("curl_slist_append failed");
  }
  // A bodiless POST gets "Content-Type:" (remove curl's form type).
  std::string content_type = call.body ? "Content-Type: " + call.content_type : "Content-Type:";
  if (call.method != "GET" && !append(headers, content_type)) {
    return setup_failed("curl_slist_append failed");
  }
  if (!call.token.empty() && !append(headers, "Authorization: Bearer " + call.token)) {
    return setup_failed("curl_slist_append failed");
  }
  for (const auto& h : call.headers) {
    if (!append(headers, h)) {
      return setup_failed("curl_slist_append failed");
    }
  }

  sink s;
  char errbuf[CURL_ERROR_SIZE] = {0};
  std::string err;
  CURL* e = h.get();
  bool ok = set(e, CURLOPT_ERRORBUFFER, "CURLOPT_ERRORBUFFER", errbuf, err) &&
            set(e, CURLOPT_URL, "CURLOPT_URL", call.url.c_str(), err) &&
            set(e, CURLOPT_PROTOCOLS_STR, "CURLOPT_PROTOCOLS_STR", "http,https", err) &&
            set(e, CURLOPT_FOLLOWLOCATION, "CURLOPT_FOLLOWLOCATION", 0L, err) &&
            set(e, CURLOPT_NOSIGNAL, "CURLOPT_NOSIGNAL", 1L, err) &&
            set(e, CURLOPT_TIMEOUT, "CURLOPT_TIMEOUT", call.timeout_s, err) &&
            set(e, CURLOPT_USERAGENT, "CURLOPT_USERAGENT", "balctl/0.1", err) &&
            set(e, CURLOPT_HTTPHEADER, "CURLOPT_HTTPHEADER", headers.get(), err) &&
            set(e, CURLOPT_WRITEFUNCTION, "CURLOPT_WRITEFUNCTION", &on_body, err) &&
            set(e, CURLOPT_WRITEDATA, "CURLOPT_WRITEDATA", static_cast<void*>(&s), err) &&
            set(e, CURLOPT_HEADERFUNCTION, "CURLOPT_HEADERFUNCTION", &on_header, err) &&
            set(e, CURLOPT_HEADERDATA, "CURLOPT_HEADERDATA", static_cast<void*>(&s), err);
  if (ok && call.abort != nullptr) {
    ok = set(e, CURLOPT_XFERINFOFUNCTION, "CURLOPT_XFERINFOFUNCTION", &on_progress, err) &&
         set(e, CURLOPT_XFERINFODATA, "CURLOPT_XFERINFODATA",
             const_cast<void*>(static_cast<const void*>(call.abort)), err) &&
         set(e, CURLOPT_NOPROGRESS, "CURLOPT_NOPROGRESS", 0L, err);
  }
  if (ok && !call.cacert.empty()) {
    ok = set(e, CURLOPT_CAINFO, "CURLOPT_CAINFO", call.cacert.c_str(), err);
  }
  if (ok && call.insecure) {
    ok = set(e, CURLOPT_SSL_VERIFYPEER, "CURLOPT_SSL_VERIFYPEER", 0L, err) &&
         set(e, CURLOPT_SSL_VERIFYHOST, "CURLOPT_SSL_VERIFYHOST", 0L, err);
  }
  if (ok && (call.body || call.method == "POST")) {
    // A POST without a body still needs POSTFIELDS: without it curl would
    // read the body from stdin. curl does not copy POSTFIELDS: the pointer
    // must outlive curl_easy_perform (call.body does; "" is static).
    const char* data = call.body ? call.body->c_str() : "";
    curl_off_t size = call.body ? static_cast<curl_off_t>(call.body->size()) : 0;
    ok = set(e, CURLOPT_POST, "CURLOPT_POST", 1L, err) &&
         set(e, CURLOPT_POSTFIELDSIZE_LARGE, "CURLOPT_POSTFIELDSIZE_LARGE", size, err) &&
         set(e, CURLOPT_POSTFIELDS, "CURLOPT_POSTFIELDS", data, err);
  }
  if (ok && call.method != "GET" && call.method != "POST") {
    ok = set(e, CURLOPT_CUSTOMREQUEST, "CURLOPT_CUSTOMREQUEST", call.method.c_str(), err);
  }
  if (!ok) {
    return setup_failed(err);
  }

  CURLcode rc = curl_easy_perform(e);
  if (rc != CURLE_OK) {
    if (s.too_large) {
      return setup_failed("response body larger than " +
                          std::to_string(max_body_bytes / (1024 * 1024)) + " MiB");
    }
    reply.what = http_reply::kind::unreachable;
    reply.error = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
    reply.tls_verify_failed = rc == CURLE_PEER_FAILED_VERIFICATION;
    return reply;
  }
  long status = 0;
  rc = curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK) {
    return setup_failed(std::string("curl_easy_getinfo(CURLINFO_RESPONSE_CODE): ") +
                        curl_easy_strerror(rc));
  }
  reply.what = http_reply::kind::answered;
  reply.status = status;
  reply.body = std::move(s.body);
  reply.retry_after = std::move(s.retry_after);
  return reply;
}

} // namespace balctl::cli
