// The config's choice of store (engine_config::store): SQLite by default,
// Redis for a redis:// URL, Redis over TLS for rediss://.

#include <cerrno>
#include <cstring>
#include <fstream>

#include "adapters/store/redis_store.hpp"
#include "adapters/store/store.hpp"

namespace balctl {

redis_store_options redis_options_for(const engine_config& cfg) {
  std::string why;
  auto o = parse_redis_url(cfg.store, &why);
  if (!o) {
    throw store_error("redis: store: " + why);
  }
  if (!cfg.store_password_file.empty()) {
    std::ifstream in(cfg.store_password_file);
    if (!in) {
      throw store_error("redis: store_password_file: cannot read: " +
                        std::string(std::strerror(errno)));
    }
    std::getline(in, o->client.password);
    while (!o->client.password.empty() &&
           (o->client.password.back() == '\r' || o->client.password.back() == ' ')) {
      o->client.password.pop_back();
    }
  }
  // rediss:// only (the config refuses them otherwise); the files are read
  // when the client starts, which names the one it cannot use.
  o->client.tls_ca_file = cfg.store_tls_ca_file;
  o->client.tls_cert_file = cfg.store_tls_cert_file;
  o->client.tls_key_file = cfg.store_tls_key_file;
  o->prefix = cfg.store_prefix;
  o->client.connect_timeout_ms = cfg.store_timeout_ms;
  o->client.command_timeout_ms = cfg.store_timeout_ms;
  // Back within a second of Redis: the engine owes writes meanwhile.
  o->client.reconnect_max_ms = 1000;
  return *o;
}

std::unique_ptr<store> open_configured_store(const engine_config& cfg) {
  if (cfg.store.empty()) {
    return open_sqlite_store(cfg.store_path);
  }
  return open_redis_store(redis_options_for(cfg));
}

std::string describe_store(const engine_config& cfg) {
  if (cfg.store.empty()) {
    return cfg.store_path;
  }
  auto o = parse_redis_url(cfg.store, nullptr);
  if (!o) {
    return "redis://(invalid)";
  }
  auto host = o->client.host.find(':') != std::string::npos ? "[" + o->client.host + "]"
                                                            : o->client.host;
  return std::string(o->client.tls ? "rediss://" : "redis://") + host + ":" +
         std::to_string(o->client.port) + "/" + std::to_string(o->client.db);
}

} // namespace balctl
