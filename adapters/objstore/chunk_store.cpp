#include "adapters/objstore/chunk_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>

#include "engine/log.hpp"
#include "engine/secrets.hpp"

namespace balctl::objstore {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t secret_bytes = 32;
constexpr const char* secret_name = ".secret";
constexpr const char* tmp_prefix = ".tmp-";

std::string errno_text(int e) { return std::strerror(e); }

// A file descriptor closed when it goes.
class fd_owner {
public:
  explicit fd_owner(int fd) : fd_(fd) {}
  ~fd_owner() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  fd_owner(const fd_owner&) = delete;
  fd_owner& operator=(const fd_owner&) = delete;
  int get() const { return fd_; }
  /// close(2)'s result; the descriptor is gone either way.
  int close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

private:
  int fd_;
};

bool write_all(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_all(int fd, char* data, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, data, n);
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    if (r == 0) {
      return false; // shorter than fstat said: changed under us
    }
    data += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

void fsync_dir(const std::string& path) {
  fd_owner d(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.get() >= 0) {
    (void)::fsync(d.get()); // best effort: the file itself is already synced
  }
}

// The value of one parameter of a raw query string ("" when absent).
std::string query_param(const std::string& query, std::string_view name) {
  std::size_t i = 0;
  while (i <= query.size()) {
    auto j = query.find('&', i);
    if (j == std::string::npos) {
      j = query.size();
    }
    std::string_view part(query.data() + i, j - i);
    if (part.size() > name.size() && part.substr(0, name.size()) == name &&
        part[name.size()] == '=') {
      return std::string(part.substr(name.size() + 1));
    }
    i = j + 1;
  }
  return {};
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

http::response json_ok(int status, const nlohmann::json& body) {
  http::response r;
  r.status = status;
  r.body = body.dump();
  return r;
}

} // namespace

chunk_store::chunk_store(std::string dir, std::string public_url, std::size_t max_object_bytes,
                         bool remove_on_close)
  : dir_(std::move(dir)), public_url_(std::move(public_url)),
    max_object_bytes_(max_object_bytes), remove_on_close_(remove_on_close) {
  while (dir_.size() > 1 && dir_.back() == '/') {
    dir_.pop_back();
  }
  while (!public_url_.empty() && public_url_.back() == '/') {
    public_url_.pop_back();
  }
  if (dir_.empty()) {
    throw store_error("chunk store: the directory is empty");
  }
  std::error_code ec;
  fs::path p(dir_);
  if (p.has_parent_path()) {
    fs::create_directories(p.parent_path(), ec);
  }
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    throw store_error("chunk store " + dir_ + ": mkdir: " + errno_text(errno));
  }
  struct stat st {};
  if (::stat(dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw store_error("chunk store " + dir_ + ": not a directory");
  }
  // Chunks are whole cPanel accounts: nobody else on the host reads them.
  if ((st.st_mode & 0077) != 0 && ::chmod(dir_.c_str(), 0700) != 0) {
    throw store_error("chunk store " + dir_ + ": chmod 0700: " + errno_text(errno));
  }

  // The secret: made once, kept, so URLs handed out survive a restart.
  std::string secret_path = dir_ + "/" + secret_name;
  fd_owner f(::open(secret_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (f.get() >= 0) {
    auto key = secrets::random_key();
    secret_.assign(reinterpret_cast<const char*>(key.data()), key.size());
    std::string hex = secrets::to_hex(key.data(), key.size()) + "\n";
    OPENSSL_cleanse(key.data(), key.size());
    if (!write_all(f.get(), hex.data(), hex.size()) || ::fsync(f.get()) != 0 ||
        f.close() != 0) {
      int e = errno;
      ::unlink(secret_path.c_str());
      throw store_error("chunk store " + secret_path + ": write: " + errno_text(e));
    }
    fsync_dir(dir_);
  } else if (errno == EEXIST) {
    fd_owner in(::open(secret_path.c_str(), O_RDONLY | O_CLOEXEC));
    char buf[2 * secret_bytes + 2] = {0};
    ssize_t n = in.get() < 0 ? -1 : ::read(in.get(), buf, sizeof buf);
    std::string hex(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r')) {
      hex.pop_back();
    }
    if (hex.size() != 2 * secret_bytes ||
        hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
      throw store_error("chunk store " + secret_path +
                        ": must hold 64 lower-case hex characters (remove it to make a new "
                        "secret; URLs handed out before stop working)");
    }
    for (std::size_t i = 0; i < secret_bytes; ++i) {
      secret_ += static_cast<char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
    }
  } else {
    throw store_error("chunk store " + secret_path + ": open: " + errno_text(errno));
  }

  // Count what is held; drop temporary files a crash left behind.
  for (auto it = fs::recursive_directory_iterator(dir_, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    auto name = it->path().filename().string();
    if (name.rfind(tmp_prefix, 0) == 0) {
      fs::remove(it->path(), ec);
      ec.clear();
      continue;
    }
    if (name.empty() || name[0] == '.' || !it->is_regular_file(ec)) {
      continue;
    }
    ++stats_.files;
    stats_.bytes += it->file_size(ec);
  }
  if (ec) {
    throw store_error("chunk store " + dir_ + ": scan: " + ec.message());
  }
}

chunk_store::~chunk_store() {
  if (remove_on_close_) {
    std::error_code ec;
    fs::remove_all(dir_, ec); // best effort: a temporary directory
  }
}

std::string chunk_store::signature(const std::string& method, const std::string& key,
                                   const std::string& expires) const {
  return secrets::to_hex(secrets::hmac_sha256(secret_, method + "\n" + key + "\n" + expires));
}

std::string chunk_store::presign(const std::string& method, const std::string& key, int ttl_s,
                                 std::int64_t now_ms) const {
  if (method != "PUT" && method != "GET" && method != "DELETE" && method != "HEAD") {
    throw store_error("chunk store presign: method \"" + method +
                      "\": must be PUT, GET, DELETE or HEAD");
  }
  if (!valid_key(key)) {
    throw store_error("chunk store presign: key \"" + key + "\" is not a valid object key");
  }
  if (ttl_s < 1 || ttl_s > max_url_ttl_s) {
    throw store_error("chunk store presign: ttl_s = " + std::to_string(ttl_s) +
                      ": must be between 1 and " + std::to_string(max_url_ttl_s));
  }
  std::string expires = std::to_string(now_ms / 1000 + ttl_s);
  return public_url_ + route_prefix + key + "?expires=" + expires +
         "&sig=" + signature(method, key, expires);
}

std::string chunk_store::describe() const {
  return "embedded " + dir_ + " at " + public_url_ + route_prefix;
}

std::optional<http::response> chunk_store::authorise(const std::string& method,
                                                     const std::string& key,
                                                     const std::string& query,
                                                     std::int64_t now_ms) const {
  if (method != "PUT" && method != "GET" && method != "DELETE" && method != "HEAD") {
    auto r = http::error_response(405, "method_not_allowed", "",
                                  method + " is not allowed here; use PUT, GET, HEAD, DELETE");
    r.headers.emplace_back("Allow", "PUT, GET, HEAD, DELETE");
    return r;
  }
  if (!valid_key(key)) {
    return http::error_response(400, "invalid_key", "key",
                                "a chunk key is segments of A-Z a-z 0-9 . _ - joined by '/' "
                                "(no '.' first in a segment, at most 512 bytes)");
  }
  std::string expires = query_param(query, "expires");
  std::string sig = query_param(query, "sig");
  if (!all_digits(expires) || expires.size() > 12 || sig.size() != 64) {
    return http::error_response(403, "chunk_signature_invalid", "sig",
                                "the URL needs expires=<unix seconds>&sig=<64 hex>; "
                                "ask the engine for a new URL");
  }
  auto matches = [&](const std::string& m) {
    auto want = signature(m, key, expires);
    return CRYPTO_memcmp(want.data(), sig.data(), want.size()) == 0;
  };
  // A GET URL also allows HEAD (a client checking size first).
  if (!matches(method) && !(method == "HEAD" && matches("GET"))) {
    return http::error_response(403, "chunk_signature_invalid", "sig",
                                "the signature does not match this method, key and expiry");
  }
  if (now_ms / 1000 > std::stoll(expires)) {
    return http::error_response(403, "chunk_url_expired", "expires",
                                "the URL expired at " + expires +
                                  " (Unix seconds); ask the engine for a new URL");
  }
  return std::nullopt;
}

http::response chunk_store::handle(const std::string& method, const std::string& key,
                                   const std::string& query, std::string&& body,
                                   std::int64_t now_ms) {
  if (auto refusal = authorise(method, key, query, now_ms)) {
    return std::move(*refusal);
  }
  if (method == "PUT") {
    return put(key, body);
  }
  if (method == "DELETE") {
    return del(key);
  }
  return get(key, method == "HEAD");
}

http::response chunk_store::put(const std::string& key, const std::string& body) {
  if (body.size() > max_object_bytes_) {
    return http::error_response(413, "payload_too_large", "",
                                "a chunk is at most " + std::to_string(max_object_bytes_) +
                                  " bytes (protection.chunk_size_bytes)");
  }
  auto internal = [&](const std::string& what, int e) {
    log::error("chunk_store_failed", {{"key", key}, {"op", what}, {"error", errno_text(e)}});
    return http::error_response(e == ENOSPC ? 507 : 500, "chunk_store_failed", "",
                                "the engine could not store the chunk: " + what + ": " +
                                  errno_text(e));
  };
  // The key's directories, one segment at a time (0700).
  std::string parent = dir_;
  for (std::size_t i = key.find('/'); i != std::string::npos; i = key.find('/', i + 1)) {
    parent = dir_ + "/" + key.substr(0, i);
    if (::mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST) {
      if (errno == ENOTDIR) {
        return http::error_response(409, "chunk_conflict", "key",
                                    "a chunk already holds a part of this key's path");
      }
      return internal("mkdir", errno);
    }
  }
  std::string tmp = parent + "/" + tmp_prefix + secrets::random_hex(8);
  {
    fd_owner f(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (f.get() < 0) {
      if (errno == ENOTDIR || errno == EISDIR) {
        return http::error_response(409, "chunk_conflict", "key",
                                    "a chunk already holds a part of this key's path");
      }
      return internal("open", errno);
    }
    // fsync before the rename: after a crash the key names the whole chunk
    // or the old one, never a file whose blocks never reached the disk.
    if (!write_all(f.get(), body.data(), body.size()) || ::fsync(f.get()) != 0 ||
        f.close() != 0) {
      int e = errno;
      ::unlink(tmp.c_str());
      return internal("write", e);
    }
  }
  std::string target = path_of(key);
  {
    std::lock_guard<std::mutex> guard(mu_);
    struct stat old {};
    bool replaced = ::lstat(target.c_str(), &old) == 0;
    if (replaced && !S_ISREG(old.st_mode)) {
      ::unlink(tmp.c_str());
      return http::error_response(409, "chunk_conflict", "key",
                                  "the key is a prefix of other chunks");
    }
    if (::rename(tmp.c_str(), target.c_str()) != 0) {
      int e = errno;
      ::unlink(tmp.c_str());
      return internal("rename", e);
    }
    if (replaced) {
      stats_.bytes -= static_cast<std::uint64_t>(old.st_size);
    } else {
      ++stats_.files;
    }
    stats_.bytes += body.size();
  }
  fsync_dir(parent);
  return json_ok(200, {{"key", key}, {"size", body.size()}});
}

http::response chunk_store::get(const std::string& key, bool head) {
  fd_owner f(::open(path_of(key).c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (f.get() < 0 || ::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    int e = errno;
    if (f.get() < 0 && e != ENOENT && e != ENOTDIR) {
      log::error("chunk_store_failed", {{"key", key}, {"op", "open"}, {"error", errno_text(e)}});
      return http::error_response(500, "chunk_store_failed", "",
                                  "the engine could not read the chunk: " + errno_text(e));
    }
    return http::error_response(404, "chunk_not_found", "key", "no chunk " + key);
  }
  http::response r;
  r.content_type = "application/octet-stream";
  // HEAD needs the length too, and the server takes it from the body; it
  // never sends it. Sized once and read in place: no copy.
  r.body.resize(static_cast<std::size_t>(st.st_size));
  if (!head && !read_all(f.get(), r.body.data(), r.body.size())) {
    int e = errno;
    log::error("chunk_store_failed", {{"key", key}, {"op", "read"}, {"error", errno_text(e)}});
    return http::error_response(500, "chunk_store_failed", "",
                                "the engine could not read the chunk: " + errno_text(e));
  }
  return r;
}

http::response chunk_store::del(const std::string& key) {
  std::string target = path_of(key);
  std::lock_guard<std::mutex> guard(mu_);
  struct stat st {};
  if (::lstat(target.c_str(), &st) != 0) {
    http::response r;
    r.status = 204; // already gone: DELETE is idempotent
    return r;
  }
  if (!S_ISREG(st.st_mode)) {
    return http::error_response(409, "chunk_conflict", "key",
                                "the key is a prefix of other chunks, not a chunk");
  }
  if (::unlink(target.c_str()) != 0 && errno != ENOENT) {
    int e = errno;
    log::error("chunk_store_failed", {{"key", key}, {"op", "unlink"}, {"error", errno_text(e)}});
    return http::error_response(500, "chunk_store_failed", "",
                                "the engine could not remove the chunk: " + errno_text(e));
  }
  --stats_.files;
  stats_.bytes -= static_cast<std::uint64_t>(st.st_size);
  http::response r;
  r.status = 204;
  return r;
}

void chunk_store::remove(const std::string& key) {
  if (!valid_key(key)) {
    throw store_error("chunk store remove: key \"" + key + "\" is not a valid object key");
  }
  auto r = del(key);
  if (r.status >= 300) {
    throw store_error("chunk store remove " + key + ": " + r.body);
  }
}

void chunk_store::remove_prefix(const std::string& prefix) {
  if (!valid_key(prefix)) {
    throw store_error("chunk store remove_prefix: \"" + prefix +
                      "\" is not a valid object key prefix");
  }
  std::string target = path_of(prefix);
  std::lock_guard<std::mutex> guard(mu_);
  std::error_code ec;
  std::uint64_t files = 0, bytes = 0;
  if (fs::is_regular_file(target, ec)) {
    files = 1;
    bytes = fs::file_size(target, ec);
  } else {
    for (auto it = fs::recursive_directory_iterator(target, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      auto name = it->path().filename().string();
      if (!name.empty() && name[0] != '.' && it->is_regular_file(ec)) {
        ++files;
        bytes += it->file_size(ec);
      }
    }
  }
  ec.clear();
  fs::remove_all(target, ec);
  if (ec) {
    throw store_error("chunk store remove_prefix " + prefix + ": " + ec.message());
  }
  stats_.files -= std::min(stats_.files, files);
  stats_.bytes -= std::min(stats_.bytes, bytes);
}

chunk_store_stats chunk_store::stats() const {
  std::lock_guard<std::mutex> guard(mu_);
  return stats_;
}

} // namespace balctl::objstore
