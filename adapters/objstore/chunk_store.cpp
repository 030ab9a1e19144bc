#include "adapters/objstore/chunk_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace balctl {

namespace {

std::string hex(const unsigned char* p, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  return out;
}

std::string json_error(int status, const std::string& code, const std::string& message) {
  return "{\"error\":{\"status\":" + std::to_string(status) + ",\"code\":\"" + code +
         "\",\"field\":null,\"message\":\"" + message + "\"}}";
}

chunk_store::answer refused(int status, const std::string& code, const std::string& message) {
  return {status, json_error(status, code, message), true};
}

bool mkdirs(const std::string& path) {
  std::string cur;
  std::stringstream in(path);
  std::string part;
  if (!path.empty() && path[0] == '/') {
    cur = "/";
  }
  while (std::getline(in, part, '/')) {
    if (part.empty()) {
      continue;
    }
    cur += (cur.empty() || cur.back() == '/' ? "" : "/") + part;
    if (::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST) {
      return false;
    }
  }
  return true;
}

// The query's expires and sig, "" when absent.
void read_query(const std::string& q, std::string& expires, std::string& sig) {
  std::stringstream in(q);
  std::string part;
  while (std::getline(in, part, '&')) {
    auto eq = part.find('=');
    auto k = part.substr(0, eq);
    auto v = eq == std::string::npos ? std::string() : part.substr(eq + 1);
    if (k == "expires") {
      expires = v;
    } else if (k == "sig") {
      sig = v;
    }
  }
}

} // namespace

bool chunk_store::valid_key(const std::string& key) {
  if (key.empty() || key.size() > 256) {
    return false;
  }
  int segments = 0;
  std::stringstream in(key);
  std::string seg;
  while (std::getline(in, seg, '/')) {
    ++segments;
    if (seg.empty() || seg == "." || seg == ".." || seg[0] == '.' ||
        seg.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
          std::string::npos) {
      return false;
    }
  }
  return segments >= 1 && segments <= 4 && key.back() != '/';
}

std::unique_ptr<chunk_store> chunk_store::open(const std::string& dir,
                                               const std::string& public_url,
                                               std::int64_t max_chunk_bytes,
                                               std::string* error) {
  if (!mkdirs(dir)) {
    *error = "cannot create " + dir + ": " + std::strerror(errno);
    return nullptr;
  }
  ::chmod(dir.c_str(), 0700);
  auto secret_path = dir + "/.secret";
  std::string secret;
  {
    std::ifstream in(secret_path);
    std::getline(in, secret);
  }
  if (secret.size() != 64) {
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) {
      *error = "no random bytes for the chunk store's secret";
      return nullptr;
    }
    secret = hex(raw, sizeof raw);
    auto tmp = secret_path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ::write(fd, secret.data(), secret.size()) != static_cast<ssize_t>(secret.size()) ||
        ::fsync(fd) != 0 || ::close(fd) != 0 || ::rename(tmp.c_str(), secret_path.c_str()) != 0) {
      *error = "cannot write " + secret_path + ": " + std::strerror(errno);
      return nullptr;
    }
  }
  std::unique_ptr<chunk_store> out(new chunk_store(dir, "", secret, max_chunk_bytes));
  out->set_public_url(public_url);
  return out;
}

void chunk_store::set_public_url(std::string url) {
  while (!url.empty() && url.back() == '/') {
    url.pop_back();
  }
  std::lock_guard<std::mutex> g(mu_);
  public_url_ = std::move(url);
}

std::string chunk_store::sign(const std::string& method, const std::string& key,
                              const std::string& expires) const {
  auto text = method + "\n" + key + "\n" + expires;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac, &len);
  return hex(mac, len);
}

std::string chunk_store::presign(const std::string& method, const std::string& key, int ttl_s,
                                 std::int64_t now_ms) const {
  auto expires = std::to_string(now_ms / 1000 + ttl_s);
  std::string base;
  {
    std::lock_guard<std::mutex> g(mu_);
    base = public_url_;
  }
  return base + "/v1/chunks/" + key + "?expires=" + expires +
         "&sig=" + sign(method, key, expires);
}

std::string chunk_store::path_of(const std::string& key) const { return dir_ + "/" + key; }

void chunk_store::remove(const std::string& key) {
  if (valid_key(key)) {
    ::unlink(path_of(key).c_str());
  }
}

chunk_store::answer chunk_store::handle(const std::string& method, const std::string& key,
                                        const std::string& query, const std::string& body,
                                        std::int64_t now_ms) {
  if (!valid_key(key)) {
    return refused(404, "not_found", "no such chunk key");
  }
  if (method != "PUT" && method != "GET" && method != "HEAD" && method != "DELETE") {
    return refused(405, "method_not_allowed", "PUT, GET, HEAD or DELETE");
  }
  std::string expires, sig;
  read_query(query, expires, sig);
  // HEAD is GET's signature (as S3 does it).
  auto want = sign(method == "HEAD" ? "GET" : method, key, expires);
  if (expires.empty() || sig.size() != want.size() ||
      CRYPTO_memcmp(sig.data(), want.data(), want.size()) != 0) {
    return refused(403, "forbidden", "the URL's signature does not match");
  }
  std::int64_t until = 0;
  try {
    until = std::stoll(expires);
  } catch (const std::exception&) {
    return refused(403, "forbidden", "the URL's expiry is not a number");
  }
  if (now_ms / 1000 > until) {
    return refused(403, "forbidden", "the URL has expired");
  }
  auto path = path_of(key);
  if (method == "PUT") {
    if (static_cast<std::int64_t>(body.size()) > max_chunk_bytes_) {
      return refused(413, "payload_too_large", "a chunk is at most the configured chunk size");
    }
    auto slash = path.rfind('/');
    if (!mkdirs(path.substr(0, slash))) {
      return refused(500, "internal", "cannot create the chunk's directory");
    }
    auto tmp = path + ".part";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    bool ok = fd >= 0;
    std::size_t done = 0;
    while (ok && done < body.size()) {
      auto n = ::write(fd, body.data() + done, body.size() - done);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      ok = n > 0;
      done += ok ? static_cast<std::size_t>(n) : 0;
    }
    ok = ok && ::fsync(fd) == 0;
    if (fd >= 0 && ::close(fd) != 0) {
      ok = false;
    }
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
      ::unlink(tmp.c_str());
      return refused(500, "internal", "the chunk could not be written");
    }
    return {200, "{}", true};
  }
  if (method == "DELETE") {
    ::unlink(path.c_str());
    return {204, "", false};
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return refused(404, "not_found", "no such chunk");
  }
  std::ostringstream data;
  data << in.rdbuf();
  return {200, method == "HEAD" ? std::string() : data.str(), false};
}

} // namespace balctl
