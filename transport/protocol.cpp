#include "transport/protocol.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

namespace balctl::protocol {

namespace {

std::uint16_t get_u16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

std::uint32_t get_u32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
         (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

std::uint64_t get_u64(const std::uint8_t* p) {
  return (std::uint64_t{get_u32(p)} << 32) | get_u32(p + 4);
}

void put_u16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

void put_u64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<std::uint8_t>(v);
    v >>= 8;
  }
}

// One HMAC context per thread, fetched once: EVP_MAC_fetch per datagram
// would dominate the cost of a steady-state heartbeat.
class hmac_ctx {
public:
  hmac_ctx() {
    mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (mac_ != nullptr) {
      ctx_ = EVP_MAC_CTX_new(mac_);
    }
    // The digest is set once; each datagram only re-keys the context.
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end()};
    if (ctx_ != nullptr && EVP_MAC_CTX_set_params(ctx_, params) != 1) {
      EVP_MAC_CTX_free(ctx_);
      ctx_ = nullptr;
    }
  }
  ~hmac_ctx() {
    EVP_MAC_CTX_free(ctx_);
    EVP_MAC_free(mac_);
  }
  hmac_ctx(const hmac_ctx&) = delete;
  hmac_ctx& operator=(const hmac_ctx&) = delete;

  /// Full 32-byte HMAC-SHA256 of data; false when OpenSSL fails.
  bool compute(const key& k, const std::uint8_t* data, std::size_t len,
               std::uint8_t out[32]) {
    if (ctx_ == nullptr) {
      return false;
    }
    std::size_t out_len = 0;
    return EVP_MAC_init(ctx_, k.data(), k.size(), nullptr) == 1 &&
           EVP_MAC_update(ctx_, data, len) == 1 &&
           EVP_MAC_final(ctx_, out, &out_len, 32) == 1 && out_len == 32;
  }

private:
  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* ctx_ = nullptr;
};

hmac_ctx& thread_hmac() {
  thread_local hmac_ctx ctx;
  return ctx;
}

constexpr std::uint8_t known_flags = flag_body | flag_ack_requested;

} // namespace

const char* to_string(reject_reason r) {
  switch (r) {
    case reject_reason::truncated: return "truncated";
    case reject_reason::oversized: return "oversized";
    case reject_reason::bad_magic: return "bad_magic";
    case reject_reason::bad_version: return "bad_version";
    case reject_reason::length_mismatch: return "length_mismatch";
    case reject_reason::bad_flags: return "bad_flags";
    case reject_reason::bad_tag: return "bad_tag";
    case reject_reason::unknown_member: return "unknown_member";
    case reject_reason::replayed: return "replayed";
    case reject_reason::stale_timestamp: return "stale_timestamp";
    case reject_reason::source_not_allowed: return "source_not_allowed";
    case reject_reason::hostname_mismatch: return "hostname_mismatch";
    case reject_reason::malformed_body: return "malformed_body";
  }
  return "unknown";
}

decode_result decode(const std::uint8_t* data, std::size_t len) {
  decode_result r;
  auto fail = [&](reject_reason why) {
    r.ok = false;
    r.reason = why;
    return r;
  };
  if (len > max_datagram_size) {
    return fail(reject_reason::oversized);
  }
  if (data == nullptr || len < header_size + tag_size) {
    return fail(reject_reason::truncated);
  }
  if (get_u32(data) != magic) {
    return fail(reject_reason::bad_magic);
  }
  if (data[4] != version) {
    return fail(reject_reason::bad_version);
  }
  auto flags = data[5];
  auto body_len = get_u16(data + 6);
  bool has_body = (flags & flag_body) != 0;
  if ((flags & ~known_flags) != 0 || has_body != (body_len > 0)) {
    return fail(reject_reason::bad_flags);
  }
  std::size_t expected = header_size + std::size_t{body_len} + tag_size;
  if (len < expected) {
    return fail(reject_reason::truncated);
  }
  if (len > expected) {
    return fail(reject_reason::length_mismatch);
  }
  r.ok = true;
  r.view.hdr.version = data[4];
  r.view.hdr.flags = flags;
  r.view.hdr.body_len = body_len;
  r.view.hdr.member = get_u64(data + 8);
  r.view.hdr.seq = get_u64(data + 16);
  r.view.hdr.timestamp_ms = static_cast<std::int64_t>(get_u64(data + 24));
  r.view.body = std::string_view(
    reinterpret_cast<const char*>(data + header_size), body_len);
  r.view.data = data;
  r.view.size = len;
  return r;
}

bool verify_tag(const datagram_view& d, const key& k) {
  if (d.data == nullptr || d.size < header_size + tag_size) {
    return false;
  }
  std::size_t signed_len = d.size - tag_size;
  std::uint8_t mac[32];
  if (!thread_hmac().compute(k, d.data, signed_len, mac)) {
    return false;
  }
  return CRYPTO_memcmp(mac, d.data + signed_len, tag_size) == 0;
}

std::size_t encode(std::uint8_t* out, std::size_t cap, const header& h,
                   std::string_view body, const key& k) {
  if (body.size() > max_body_size) {
    return 0;
  }
  std::size_t total = header_size + body.size() + tag_size;
  if (out == nullptr || cap < total) {
    return 0;
  }
  out[0] = 'B';
  out[1] = 'L';
  out[2] = 'H';
  out[3] = 'B';
  out[4] = h.version;
  auto flags = static_cast<std::uint8_t>(h.flags & ~flag_body);
  if (!body.empty()) {
    flags |= flag_body;
  }
  out[5] = flags;
  put_u16(out + 6, static_cast<std::uint16_t>(body.size()));
  put_u64(out + 8, h.member);
  put_u64(out + 16, h.seq);
  put_u64(out + 24, static_cast<std::uint64_t>(h.timestamp_ms));
  if (!body.empty()) {
    std::memcpy(out + header_size, body.data(), body.size());
  }
  std::uint8_t mac[32];
  if (!thread_hmac().compute(k, out, header_size + body.size(), mac)) {
    return 0;
  }
  std::memcpy(out + header_size + body.size(), mac, tag_size);
  return total;
}

std::size_t frame_size(const std::uint8_t* p, std::size_t have) {
  if (have < 8) {
    // Reject garbage as early as its first byte allows.
    static constexpr std::uint8_t m[] = {'B', 'L', 'H', 'B'};
    for (std::size_t i = 0; i < have && i < 4; ++i) {
      if (p[i] != m[i]) {
        return frame_garbage;
      }
    }
    return 0;
  }
  if (get_u32(p) != magic || p[4] != version) {
    return frame_garbage;
  }
  std::size_t total = header_size + get_u16(p + 6) + tag_size;
  return total > max_datagram_size ? frame_garbage : total;
}

const char* to_string(ack_result r) {
  switch (r) {
    case ack_result::accepted: return "accepted";
    case ack_result::stale_timestamp: return "stale_timestamp";
    case ack_result::replayed: return "replayed";
    case ack_result::malformed_body: return "malformed_body";
    case ack_result::hostname_mismatch: return "hostname_mismatch";
  }
  return "unknown";
}

std::size_t encode_ack(std::uint8_t* out, const ack& a, const key& k) {
  out[0] = 'B';
  out[1] = 'L';
  out[2] = 'A';
  out[3] = 'K';
  out[4] = version;
  out[5] = static_cast<std::uint8_t>(a.result);
  out[6] = 0;
  out[7] = 0;
  put_u64(out + 8, a.member);
  put_u64(out + 16, a.seq);
  put_u64(out + 24, static_cast<std::uint64_t>(a.engine_time_ms));
  // The same shape as a bodyless heartbeat: 32 bytes, then the tag.
  std::uint8_t mac[32];
  if (!thread_hmac().compute(k, out, header_size, mac)) {
    return 0;
  }
  std::memcpy(out + header_size, mac, tag_size);
  return ack_size;
}

std::optional<ack> decode_ack(const std::uint8_t* data, std::size_t len,
                              const key& k) {
  if (data == nullptr || len != ack_size || get_u32(data) != ack_magic ||
      data[4] != version || data[5] > static_cast<std::uint8_t>(ack_result::hostname_mismatch) ||
      data[6] != 0 || data[7] != 0) {
    return std::nullopt;
  }
  std::uint8_t mac[32];
  if (!thread_hmac().compute(k, data, header_size, mac) ||
      CRYPTO_memcmp(mac, data + header_size, tag_size) != 0) {
    return std::nullopt;
  }
  ack a;
  a.result = static_cast<ack_result>(data[5]);
  a.member = get_u64(data + 8);
  a.seq = get_u64(data + 16);
  a.engine_time_ms = static_cast<std::int64_t>(get_u64(data + 24));
  return a;
}

namespace {

using json = nlohmann::json;

bool read_string(const json& obj, const char* field, const std::string& path,
                 std::string& out, std::string* error) {
  auto i = obj.find(field);
  if (i == obj.end() || i->is_null()) {
    return true;
  }
  if (!i->is_string()) {
    *error = path + field + ": must be a string";
    return false;
  }
  out = i->get<std::string>();
  return true;
}

template <class T>
bool read_number(const json& obj, const char* field, const std::string& path,
                 T& out, std::string* error) {
  auto i = obj.find(field);
  if (i == obj.end() || i->is_null()) {
    return true;
  }
  if (!i->is_number()) {
    *error = path + field + ": must be a number";
    return false;
  }
  auto v = i->get<double>();
  if (!std::isfinite(v) || v < 0) {
    *error = path + field + ": must be a finite number >= 0";
    return false;
  }
  if constexpr (std::is_integral_v<T>) {
    if (v >= static_cast<double>(std::numeric_limits<T>::max())) {
      *error = path + field + ": out of range";
      return false;
    }
    out = i->is_number_unsigned() ? i->get<T>() : static_cast<T>(v);
  } else {
    out = v;
  }
  return true;
}

bool read_stack(const json& stacks, const char* name, stack_info& out,
                std::string* error) {
  auto i = stacks.find(name);
  if (i == stacks.end() || i->is_null()) {
    return true;
  }
  std::string path = std::string("stacks.") + name;
  if (!i->is_object()) {
    *error = path + ": must be an object";
    return false;
  }
  out.present = true;
  return read_string(*i, "version", path + ".", out.version, error);
}

} // namespace

std::optional<member_status> parse_status(std::string_view body,
                                          std::string* error) {
  std::string scratch;
  if (error == nullptr) {
    error = &scratch;
  }
  auto j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded()) {
    *error = "body: not valid JSON";
    return std::nullopt;
  }
  if (!j.is_object()) {
    *error = "body: must be a JSON object";
    return std::nullopt;
  }
  member_status s;
  auto h = j.find("hostname");
  if (h == j.end() || !h->is_string() || h->get<std::string>().empty()) {
    *error = "hostname: required, a non-empty string";
    return std::nullopt;
  }
  s.hostname = h->get<std::string>();
  if (s.hostname.size() > 253) {
    *error = "hostname: longer than 253 characters";
    return std::nullopt;
  }
  if (!read_string(j, "agent_version", "", s.agent_version, error)) {
    return std::nullopt;
  }
  auto st = j.find("stacks");
  if (st != j.end() && !st->is_null()) {
    if (!st->is_object()) {
      *error = "stacks: must be an object";
      return std::nullopt;
    }
    if (!read_stack(*st, "openlitespeed", s.openlitespeed, error) ||
        !read_stack(*st, "mariadb", s.mariadb, error) ||
        !read_stack(*st, "cpanel", s.cpanel, error)) {
      return std::nullopt;
    }
    auto g = st->find("galera");
    if (g != st->end() && !g->is_null()) {
      if (!g->is_object()) {
        *error = "stacks.galera: must be an object";
        return std::nullopt;
      }
      s.galera.present = true;
      if (!read_number(*g, "cluster_size", "stacks.galera.", s.galera.cluster_size,
                       error) ||
          !read_string(*g, "state", "stacks.galera.", s.galera.state, error)) {
        return std::nullopt;
      }
      auto r = g->find("ready");
      if (r != g->end() && !r->is_null()) {
        if (!r->is_boolean()) {
          *error = "stacks.galera.ready: must be a boolean";
          return std::nullopt;
        }
        s.galera.ready = r->get<bool>();
      }
    }
  }
  auto m = j.find("metrics");
  if (m != j.end() && !m->is_null()) {
    if (!m->is_object()) {
      *error = "metrics: must be an object";
      return std::nullopt;
    }
    const std::string p = "metrics.";
    if (!read_number(*m, "load1", p, s.load1, error) ||
        !read_number(*m, "load5", p, s.load5, error) ||
        !read_number(*m, "load15", p, s.load15, error) ||
        !read_number(*m, "cpu_pct", p, s.cpu_pct, error) ||
        !read_number(*m, "mem_used_bytes", p, s.mem_used_bytes, error) ||
        !read_number(*m, "mem_total_bytes", p, s.mem_total_bytes, error) ||
        !read_number(*m, "disk_used_bytes", p, s.disk_used_bytes, error) ||
        !read_number(*m, "disk_total_bytes", p, s.disk_total_bytes, error)) {
      return std::nullopt;
    }
  }
  auto jb = j.find("jobs");
  if (jb != j.end() && !jb->is_null()) {
    if (!jb->is_object()) {
      *error = "jobs: must be an object";
      return std::nullopt;
    }
    s.jobs.present = true;
    if (!read_number(*jb, "cron", "jobs.", s.jobs.cron, error) ||
        !read_number(*jb, "backups", "jobs.", s.jobs.backups, error) ||
        !read_number(*jb, "last_backup_ms", "jobs.", s.jobs.last_backup_ms, error)) {
      return std::nullopt;
    }
  }
  return s;
}

std::string status_to_json(const member_status& s) {
  json j;
  j["hostname"] = s.hostname;
  if (!s.agent_version.empty()) {
    j["agent_version"] = s.agent_version;
  }
  json stacks = json::object();
  auto put_stack = [&](const char* name, const stack_info& st) {
    if (!st.present) {
      return;
    }
    json o = json::object();
    if (!st.version.empty()) {
      o["version"] = st.version;
    }
    stacks[name] = o;
  };
  put_stack("openlitespeed", s.openlitespeed);
  put_stack("mariadb", s.mariadb);
  put_stack("cpanel", s.cpanel);
  if (s.galera.present) {
    stacks["galera"] = {{"cluster_size", s.galera.cluster_size},
                        {"state", s.galera.state},
                        {"ready", s.galera.ready}};
  }
  if (!stacks.empty()) {
    j["stacks"] = stacks;
  }
  j["metrics"] = {{"load1", s.load1},
                  {"load5", s.load5},
                  {"load15", s.load15},
                  {"cpu_pct", s.cpu_pct},
                  {"mem_used_bytes", s.mem_used_bytes},
                  {"mem_total_bytes", s.mem_total_bytes},
                  {"disk_used_bytes", s.disk_used_bytes},
                  {"disk_total_bytes", s.disk_total_bytes}};
  if (s.jobs.present) {
    j["jobs"] = {{"cron", s.jobs.cron}, {"backups", s.jobs.backups}};
    if (s.jobs.last_backup_ms > 0) {
      j["jobs"]["last_backup_ms"] = s.jobs.last_backup_ms;
    }
  }
  return j.dump();
}

bool key_from_hex(std::string_view hex, key& out) {
  if (hex.size() != key_size * 2) {
    return false;
  }
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  key k{};
  for (std::size_t i = 0; i < key_size; ++i) {
    int hi = nibble(hex[2 * i]);
    int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return false;
    }
    k[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  out = k;
  return true;
}

std::string key_to_hex(const key& k) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(key_size * 2);
  for (auto b : k) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

} // namespace balctl::protocol
