#include "tests/standins/s3_standin.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>

#include "engine/secrets.hpp"
#include "transport/http_server.hpp"

namespace balctl::test {

namespace {

// -- the stand-in's own SigV4 pieces (not the presigner under test) ---------

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding of a URL component; false on a broken escape. '+' stays
// '+' (S3 reads paths and SigV4 values as RFC 3986, not forms).
bool unescape(const std::string& in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) {
      return false;
    }
    int hi = hex_digit(in[i + 1]), lo = hex_digit(in[i + 2]);
    if (hi < 0 || lo < 0) {
      return false;
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

// RFC 3986 escaping as AWS's canonical request spells it.
std::string aws_escape(const std::string& in, bool path) {
  std::string out;
  char buf[4];
  for (unsigned char c : in) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (path && c == '/')) {
      out += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string raw(const secrets::digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

std::string md5_hex(const std::string& data) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), d, &n, EVP_md5(), nullptr);
  return secrets::to_hex(d, n);
}

// "20130524T000000Z" → Unix seconds; -1 when malformed.
std::int64_t parse_amz_date(const std::string& s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') {
    return -1;
  }
  std::tm tm{};
  if (std::sscanf(s.c_str(), "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
    return -1;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<std::int64_t>(timegm(&tm));
}

struct s3_error {
  int status;
  std::string code;
  std::string message;
};

} // namespace

struct s3_standin::impl {
  s3_standin_options opt;
  std::unique_ptr<http::server> server;
  mutable std::mutex mu;
  std::map<std::string, std::string> objects; // "bucket/key" → bytes
  std::map<std::string, std::uint64_t> by_method;
  std::map<std::string, std::uint64_t> by_error;
  std::map<std::string, std::uint64_t> stored; // "bucket/key" → PUTs that stored it
  std::uint64_t next_request_id = 1;

  std::int64_t now_ms() const {
    if (opt.now_ms) {
      return opt.now_ms();
    }
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  }

  http::response error(const s3_error& e) {
    std::lock_guard<std::mutex> guard(mu);
    ++by_error[e.code];
    http::response r;
    r.status = e.status;
    r.content_type = "application/xml";
    r.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + e.code +
             "</Code><Message>" + e.message + "</Message><RequestId>" +
             std::to_string(next_request_id++) + "</RequestId></Error>";
    return r;
  }

  // The SigV4 query-string check; nullopt when the request is authentic.
  std::optional<s3_error> authenticate(const http::request& req) {
    // The query's parameters, decoded, in order.
    std::vector<std::pair<std::string, std::string>> params;
    std::size_t i = 0;
    while (!req.query.empty() && i <= req.query.size()) {
      auto j = req.query.find('&', i);
      if (j == std::string::npos) {
        j = req.query.size();
      }
      auto part = req.query.substr(i, j - i);
      i = j + 1;
      if (part.empty()) {
        continue;
      }
      auto eq = part.find('=');
      std::string k, v;
      if (!unescape(part.substr(0, eq), k) ||
          !unescape(eq == std::string::npos ? "" : part.substr(eq + 1), v)) {
        return s3_error{400, "InvalidArgument", "malformed query string"};
      }
      params.emplace_back(k, v);
    }
    auto get = [&](const char* name) -> const std::string* {
      for (const auto& p : params) {
        if (p.first == name) {
          return &p.second;
        }
      }
      return nullptr;
    };
    const auto* algorithm = get("X-Amz-Algorithm");
    if (algorithm == nullptr) {
      return s3_error{403, "AccessDenied", "Access Denied"};
    }
    const auto* credential = get("X-Amz-Credential");
    const auto* date = get("X-Amz-Date");
    const auto* expires = get("X-Amz-Expires");
    const auto* signed_headers = get("X-Amz-SignedHeaders");
    const auto* signature = get("X-Amz-Signature");
    if (*algorithm != "AWS4-HMAC-SHA256" || !credential || !date || !expires ||
        !signed_headers || !signature) {
      return s3_error{400, "AuthorizationQueryParametersError",
                      "Query-string authentication version 4 requires the X-Amz-Algorithm, "
                      "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "
                      "and X-Amz-Expires parameters."};
    }
    // AKID/yyyymmdd/region/s3/aws4_request
    std::vector<std::string> scope;
    for (std::size_t b = 0;;) {
      auto e = credential->find('/', b);
      scope.push_back(credential->substr(b, e == std::string::npos ? e : e - b));
      if (e == std::string::npos) break;
      b = e + 1;
    }
    if (scope.size() != 5 || scope[3] != "s3" || scope[4] != "aws4_request") {
      return s3_error{400, "AuthorizationQueryParametersError",
                      "Error parsing the X-Amz-Credential parameter"};
    }
    if (scope[0] != opt.access_key_id) {
      return s3_error{403, "InvalidAccessKeyId",
                      "The AWS Access Key Id you provided does not exist in our records."};
    }
    if (scope[2] != opt.region) {
      return s3_error{400, "AuthorizationQueryParametersError",
                      "Error parsing the X-Amz-Credential parameter; the region '" + scope[2] +
                        "' is wrong; expecting '" + opt.region + "'"};
    }
    std::int64_t signed_at = parse_amz_date(*date);
    if (signed_at < 0 || date->compare(0, 8, scope[1]) != 0) {
      return s3_error{400, "AuthorizationQueryParametersError",
                      "X-Amz-Date must be in the ISO8601 Long Format and match the "
                      "credential's date"};
    }
    if (expires->empty() || expires->size() > 7 ||
        expires->find_first_not_of("0123456789") != std::string::npos) {
      return s3_error{400, "AuthorizationQueryParametersError",
                      "X-Amz-Expires should be a number"};
    }
    std::int64_t ttl = std::stoll(*expires);
    if (ttl > 604800) {
      return s3_error{400, "AuthorizationQueryParametersError",
                      "X-Amz-Expires must be less than a week (in seconds); that is, the given "
                      "X-Amz-Expires must be less than 604800 seconds"};
    }

    // The canonical request, as S3 builds it from what arrived.
    std::string path;
    if (!unescape(req.path, path)) {
      return s3_error{400, "InvalidURI", "Couldn't parse the specified URI."};
    }
    std::vector<std::pair<std::string, std::string>> canon_params;
    for (const auto& p : params) {
      if (p.first != "X-Amz-Signature") {
        canon_params.emplace_back(aws_escape(p.first, false), aws_escape(p.second, false));
      }
    }
    std::sort(canon_params.begin(), canon_params.end());
    std::string canon_query;
    for (const auto& p : canon_params) {
      canon_query += (canon_query.empty() ? "" : "&") + p.first + "=" + p.second;
    }
    std::string canon_headers;
    for (std::size_t b = 0;;) {
      auto e = signed_headers->find(';', b);
      auto name = signed_headers->substr(b, e == std::string::npos ? e : e - b);
      const auto* value = req.header(name);
      canon_headers += name + ":" + (value ? *value : std::string()) + "\n";
      if (e == std::string::npos) break;
      b = e + 1;
    }
    if (signed_headers->find("host") == std::string::npos) {
      return s3_error{400, "AuthorizationQueryParametersError",
                      "X-Amz-SignedHeaders must include host"};
    }
    std::string canonical = req.method + "\n" + aws_escape(path, true) + "\n" + canon_query +
                            "\n" + canon_headers + "\n" + *signed_headers +
                            "\nUNSIGNED-PAYLOAD";
    std::string scope_text = scope[1] + "/" + scope[2] + "/s3/aws4_request";
    std::string to_sign = "AWS4-HMAC-SHA256\n" + *date + "\n" + scope_text + "\n" +
                          secrets::to_hex(secrets::sha256(canonical));
    auto key = secrets::hmac_sha256("AWS4" + opt.secret_access_key, scope[1]);
    key = secrets::hmac_sha256(raw(key), scope[2]);
    key = secrets::hmac_sha256(raw(key), "s3");
    key = secrets::hmac_sha256(raw(key), "aws4_request");
    auto want = secrets::to_hex(secrets::hmac_sha256(raw(key), to_sign));
    if (signature->size() != want.size() ||
        CRYPTO_memcmp(signature->data(), want.data(), want.size()) != 0) {
      return s3_error{403, "SignatureDoesNotMatch",
                      "The request signature we calculated does not match the signature you "
                      "provided. Check your key and signing method."};
    }
    // S3 checks the time after the signature: a forged URL is not told
    // whether it expired.
    if (now_ms() / 1000 > signed_at + ttl) {
      return s3_error{403, "AccessDenied", "Request has expired"};
    }
    const auto* token = get("X-Amz-Security-Token");
    if (!opt.session_token.empty() && (token == nullptr || *token != opt.session_token)) {
      return s3_error{403, "InvalidToken", "The provided token is malformed or otherwise invalid."};
    }
    return std::nullopt;
  }

  http::response handle(http::request& req) {
    {
      std::lock_guard<std::mutex> guard(mu);
      ++by_method[req.method];
    }
    if (auto e = authenticate(req)) {
      return error(*e);
    }
    // Path style: /<bucket>/<key>; virtual-hosted: Host <bucket>.<rest>.
    std::string path;
    unescape(req.path, path);
    std::string bucket, key;
    const auto* host = req.header("host");
    std::string host_bucket = host ? host->substr(0, host->find('.')) : std::string();
    bool vhost = host && host->find('.') != std::string::npos &&
                 std::find(opt.buckets.begin(), opt.buckets.end(), host_bucket) !=
                   opt.buckets.end();
    if (vhost) {
      bucket = host_bucket;
      key = path.size() > 1 ? path.substr(1) : "";
    } else {
      auto slash = path.find('/', 1);
      bucket = path.substr(1, slash == std::string::npos ? slash : slash - 1);
      key = slash == std::string::npos ? "" : path.substr(slash + 1);
    }
    if (std::find(opt.buckets.begin(), opt.buckets.end(), bucket) == opt.buckets.end()) {
      return error({404, "NoSuchBucket", "The specified bucket does not exist"});
    }
    if (key.empty()) {
      return error({405, "MethodNotAllowed",
                    "The specified method is not allowed against this resource."});
    }
    std::string name = bucket + "/" + key;
    if (opt.slow_down && opt.slow_down(req.method, name)) {
      return error({503, "SlowDown", "Please reduce your request rate."});
    }
    http::response r;
    if (req.method == "PUT") {
      if (req.body.size() > opt.max_object_bytes) {
        return error({400, "EntityTooLarge",
                      "Your proposed upload exceeds the maximum allowed size"});
      }
      r.headers.emplace_back("ETag", "\"" + md5_hex(req.body) + "\"");
      std::lock_guard<std::mutex> guard(mu);
      ++stored[name];
      objects[name] = std::move(req.body);
      r.body.clear();
      r.content_type.clear();
      return r;
    }
    if (req.method == "GET" || req.method == "HEAD") {
      std::unique_lock<std::mutex> guard(mu);
      auto it = objects.find(name);
      if (it == objects.end()) {
        guard.unlock();
        return error({404, "NoSuchKey", "The specified key does not exist."});
      }
      r.body = it->second;
      guard.unlock();
      r.content_type = "binary/octet-stream";
      r.headers.emplace_back("ETag", "\"" + md5_hex(r.body) + "\"");
      return r;
    }
    if (req.method == "DELETE") {
      std::lock_guard<std::mutex> guard(mu);
      objects.erase(name);
      r.status = 204;
      return r;
    }
    return error({405, "MethodNotAllowed",
                  "The specified method is not allowed against this resource."});
  }
};

s3_standin::s3_standin(s3_standin_options opt) : impl_(std::make_unique<impl>()) {
  impl_->opt = std::move(opt);
}

s3_standin::~s3_standin() { stop(); }

std::string s3_standin::start() {
  if (impl_->opt.listen.rfind("127.", 0) != 0 && impl_->opt.listen.rfind("[::1]", 0) != 0) {
    return "s3 stand-in: listen " + impl_->opt.listen + ": loopback only";
  }
  http::server_limits limits;
  limits.max_body_bytes = impl_->opt.max_object_bytes + 1;
  auto* self = impl_.get();
  impl_->server = std::make_unique<http::server>(
    impl_->opt.listen, limits,
    [self](http::request&& req, http::responder respond) { respond(self->handle(req)); });
  return impl_->server->start();
}

void s3_standin::stop() {
  if (impl_->server) {
    impl_->server->stop();
  }
}

std::string s3_standin::endpoint() const {
  return "http://127.0.0.1:" + std::to_string(impl_->server->bound_port());
}

std::uint64_t s3_standin::requests(const std::string& method) const {
  std::lock_guard<std::mutex> guard(impl_->mu);
  auto it = impl_->by_method.find(method);
  return it == impl_->by_method.end() ? 0 : it->second;
}

std::uint64_t s3_standin::errors(const std::string& code) const {
  std::lock_guard<std::mutex> guard(impl_->mu);
  auto it = impl_->by_error.find(code);
  return it == impl_->by_error.end() ? 0 : it->second;
}

std::optional<std::string> s3_standin::object(const std::string& bucket,
                                              const std::string& key) const {
  std::lock_guard<std::mutex> guard(impl_->mu);
  auto it = impl_->objects.find(bucket + "/" + key);
  if (it == impl_->objects.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::size_t s3_standin::object_count() const {
  std::lock_guard<std::mutex> guard(impl_->mu);
  return impl_->objects.size();
}

std::uint64_t s3_standin::puts_stored(const std::string& name) const {
  std::lock_guard<std::mutex> guard(impl_->mu);
  auto it = impl_->stored.find(name);
  return it == impl_->stored.end() ? 0 : it->second;
}

std::uint64_t s3_standin::puts_stored() const {
  std::lock_guard<std::mutex> guard(impl_->mu);
  std::uint64_t n = 0;
  for (const auto& [name, count] : impl_->stored) {
    n += count;
  }
  return n;
}

} // namespace balctl::test
