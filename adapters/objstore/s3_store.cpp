#include "adapters/objstore/s3_store.hpp"

#include <curl/curl.h>

#include <memory>
#include <utility>

#include "engine/log.hpp"

namespace balctl::objstore {

namespace {

struct curl_easy_free {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};

std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
  auto* s = static_cast<std::string*>(out);
  // S3 error bodies are small; keep at most 4 KiB of whatever comes.
  std::size_t len = size * n;
  if (s->size() < 4096) {
    s->append(data, std::min(len, 4096 - s->size()));
  }
  return len;
}

// The text of <Code>...</Code> in an S3 XML error body, or "".
std::string s3_error_code(const std::string& body) {
  auto b = body.find("<Code>");
  auto e = body.find("</Code>");
  if (b == std::string::npos || e == std::string::npos || e < b) {
    return {};
  }
  return body.substr(b + 6, e - b - 6);
}

} // namespace

s3_store::s3_store(s3_config cfg, std::string secret_access_key, std::string session_token,
                   long timeout_ms)
  : cfg_(std::move(cfg)), timeout_ms_(timeout_ms) {
  creds_.access_key_id = cfg_.access_key_id;
  creds_.secret_access_key = std::move(secret_access_key);
  creds_.session_token = std::move(session_token);
  if (creds_.access_key_id.empty()) {
    throw store_error("protection.s3.access_key_id: required");
  }
  if (creds_.secret_access_key.empty()) {
    throw store_error("protection.s3.secret_access_key_file: the secret key is empty");
  }
  if (cfg_.region.empty()) {
    throw store_error("protection.s3.region: required");
  }
  if (cfg_.bucket.empty()) {
    throw store_error("protection.s3.bucket: required");
  }
  auto sep = cfg_.endpoint.find("://");
  if (sep == std::string::npos) {
    throw store_error("protection.s3.endpoint = \"" + cfg_.endpoint +
                      "\": must be an http:// or https:// URL");
  }
  scheme_ = cfg_.endpoint.substr(0, sep);
  if (scheme_ != "http" && scheme_ != "https") {
    throw store_error("protection.s3.endpoint = \"" + cfg_.endpoint +
                      "\": must be an http:// or https:// URL");
  }
  auto rest = cfg_.endpoint.substr(sep + 3);
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  base_path_ = slash == std::string::npos ? "" : rest.substr(slash);
  while (!base_path_.empty() && base_path_.back() == '/') {
    base_path_.pop_back();
  }
  if (authority.empty()) {
    throw store_error("protection.s3.endpoint = \"" + cfg_.endpoint + "\": has no host");
  }
  // The Host header (and so the signature) leaves out the scheme's default
  // port, as clients send it.
  std::string default_port = scheme_ == "https" ? ":443" : ":80";
  if (authority.size() > default_port.size() &&
      authority.compare(authority.size() - default_port.size(), default_port.size(),
                        default_port) == 0) {
    authority.resize(authority.size() - default_port.size());
  }
  host_ = cfg_.path_style ? authority : cfg_.bucket + "." + authority;
}

std::string s3_store::presign(const std::string& method, const std::string& key, int ttl_s,
                              std::int64_t now_ms) const {
  if (method != "PUT" && method != "GET" && method != "DELETE" && method != "HEAD") {
    throw store_error("s3 presign: method \"" + method + "\": must be PUT, GET, DELETE or HEAD");
  }
  if (!valid_key(key)) {
    throw store_error("s3 presign: key \"" + key + "\" is not a valid object key");
  }
  if (ttl_s < 1 || ttl_s > max_url_ttl_s) {
    throw store_error("s3 presign: ttl_s = " + std::to_string(ttl_s) + ": must be between 1 and " +
                      std::to_string(max_url_ttl_s));
  }
  sigv4::presign_request req;
  req.method = method;
  req.scheme = scheme_;
  req.host = host_;
  req.path = base_path_ + (cfg_.path_style ? "/" + cfg_.bucket : std::string()) + "/" +
             cfg_.prefix + key;
  req.region = cfg_.region;
  req.expires_s = ttl_s;
  req.now_s = now_ms / 1000;
  return sigv4::presign_url(req, creds_);
}

std::string s3_store::describe() const {
  return "s3 " + cfg_.endpoint + " bucket " + cfg_.bucket + " prefix \"" + cfg_.prefix + "\" (" +
         (cfg_.path_style ? "path-style" : "virtual-hosted") + ")";
}

void s3_store::remove(const std::string& key) {
  auto now_ms = static_cast<std::int64_t>(std::time(nullptr)) * 1000;
  auto url = presign("DELETE", key, 300, now_ms);
  std::unique_ptr<CURL, curl_easy_free> c(curl_easy_init());
  if (!c) {
    throw store_error("s3 DELETE " + key + ": curl_easy_init failed");
  }
  std::string body;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_CUSTOMREQUEST, "DELETE");
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c.get(), CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT_MS, timeout_ms_);
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(c.get());
  if (rc != CURLE_OK) {
    throw store_error("s3 DELETE " + key + " at " + cfg_.endpoint + ": " +
                      (errbuf[0] != 0 ? errbuf : curl_easy_strerror(rc)));
  }
  long status = 0;
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
  if ((status >= 200 && status < 300) || status == 404) {
    return;
  }
  auto code = s3_error_code(body);
  throw store_error("s3 DELETE " + key + " at " + cfg_.endpoint + ": HTTP " +
                    std::to_string(status) + (code.empty() ? "" : " " + code));
}

void s3_store::remove_prefix(const std::string& prefix) {
  log::debug("objstore_remove_prefix_skipped",
             {{"store", "s3"}, {"prefix", prefix},
              {"reason", "S3 removes by key or by the bucket's lifecycle rule"}});
}

} // namespace balctl::objstore
