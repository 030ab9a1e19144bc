#include "adapters/objstore/object_store.hpp"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "adapters/objstore/chunk_store.hpp"
#include "adapters/objstore/s3_store.hpp"
#include "config/config.hpp"

namespace balctl::objstore {

namespace {

bool segment_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-';
}

// The first line of a secret file, without its line end. Throws naming the
// key, never quoting the content.
std::string read_secret_line(const std::string& key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw store_error(key + " = \"" + path + "\": cannot read");
  }
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
    line.pop_back();
  }
  if (line.empty()) {
    throw store_error(key + " = \"" + path + "\": the first line is empty");
  }
  return line;
}

} // namespace

bool valid_key(const std::string& key) {
  if (key.empty() || key.size() > 512) {
    return false;
  }
  std::size_t seg_len = 0;
  for (std::size_t i = 0; i < key.size(); ++i) {
    char c = key[i];
    if (c == '/') {
      if (seg_len == 0) {
        return false; // leading '/' or "//"
      }
      seg_len = 0;
      continue;
    }
    // '.' never first: no ".", "..", ".secret" or ".tmp-*" segment.
    if (!segment_char(c) || (seg_len == 0 && c == '.') || ++seg_len > 128) {
      return false;
    }
  }
  return seg_len > 0; // no trailing '/'
}

std::unique_ptr<object_store> make_object_store(const engine_config& cfg) {
  const auto& p = cfg.protection;
  if (p.object_store == "s3") {
    const auto& s = p.s3;
    std::string secret =
      read_secret_line("protection.s3.secret_access_key_file", s.secret_access_key_file);
    std::string token;
    if (!s.session_token_file.empty()) {
      token = read_secret_line("protection.s3.session_token_file", s.session_token_file);
    }
    return std::make_unique<s3_store>(s, std::move(secret), std::move(token));
  }
  if (p.object_store != "embedded") {
    throw store_error("protection.object_store = \"" + p.object_store +
                      "\": must be embedded or s3");
  }
  std::string dir = p.chunk_dir;
  bool temporary = false;
  if (dir.empty()) {
    if (cfg.store_path == ":memory:") {
      // The store keeps nothing across restarts, so neither do its chunks:
      // a directory of this run's own.
      std::string tmpl =
        (std::filesystem::temp_directory_path() / "balctld-chunks-XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr) {
        throw store_error("protection.chunk_dir: cannot make a temporary directory " + tmpl);
      }
      dir = tmpl;
      temporary = true;
    } else {
      dir = cfg.store_path + ".chunks";
    }
  }
  std::string url = p.public_url;
  if (url.empty()) {
    url = cfg.admin.public_url;
  }
  if (url.empty()) {
    if (cfg.admin.listen.empty()) {
      throw store_error("protection.public_url: required when admin.listen is empty (the "
                        "embedded chunk store is served by the admin listener)");
    }
    url = std::string(cfg.admin.tls_cert_file.empty() ? "http" : "https") + "://" +
          cfg.admin.listen;
  }
  try {
    return std::make_unique<chunk_store>(
      dir, url, static_cast<std::size_t>(p.chunk_size_bytes), temporary);
  } catch (const store_error& e) {
    throw store_error(std::string("protection.chunk_dir = \"") + dir + "\": " + e.what());
  }
}

} // namespace balctl::objstore
