// Pool leases with fencing tokens and node registrations in Redis. Every
// decision is one Lua script, so it is atomic against every other node's.
//
// Keys (P = prefix):
//   P nodes          hash node -> {"info":..., "expires_ms":...}
//   P lease:{pool}   hash node, token, since, expires
//   P fence:{pool}   the pool's last token (INCR; outlives its leases)
//   P leases         set of pools that ever had a lease

#include "adapters/store/redis_leases.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

namespace balctl {

namespace {

using argv = std::vector<std::string>;

// Every script starts with the time: the caller's, or Redis's own.
#define BALCTL_LUA_NOW                                                    \
  "local now = tonumber(ARGV[1])\n"                                       \
  "if now == 0 then local t = redis.call('TIME') "                        \
  "now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) end\n"

// KEYS: lease, fence, leases-set, handoff. ARGV: now, node, ttl, pool. The
// fifth answer: 1 when the last owner handed the pool over (released it
// after its final checkpoint) rather than letting its lease run out.
const char* const acquire_script = BALCTL_LUA_NOW R"lua(
local node, ttl = ARGV[2], tonumber(ARGV[3])
local cur = redis.call('HMGET', KEYS[1], 'node', 'token', 'expires')
local live = cur[1] and tonumber(cur[3]) > now
if live and cur[1] ~= node then
  return {0, cur[1], tonumber(cur[3]), now, 0}
end
if live then
  redis.call('HSET', KEYS[1], 'expires', now + ttl)
  return {tonumber(cur[2]), node, now + ttl, now, 0}
end
local token = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'node', node, 'token', token, 'since', now, 'expires', now + ttl)
redis.call('SADD', KEYS[3], ARGV[4])
local handed = redis.call('DEL', KEYS[4])
return {token, node, now + ttl, now, handed}
)lua";

// KEYS: lease. ARGV: now, node, token, ttl.
const char* const renew_script = BALCTL_LUA_NOW R"lua(
local cur = redis.call('HMGET', KEYS[1], 'node', 'token', 'expires')
if cur[1] ~= ARGV[2] or cur[2] ~= ARGV[3] or tonumber(cur[3]) <= now then
  return 0
end
redis.call('HSET', KEYS[1], 'expires', now + tonumber(ARGV[4]))
return 1
)lua";

// KEYS: lease, handoff. ARGV: node, token, handoff marker's life in ms (0 =
// none: a plain release).
const char* const release_script = R"lua(
local cur = redis.call('HMGET', KEYS[1], 'node', 'token')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then
  redis.call('DEL', KEYS[1])
  if tonumber(ARGV[3]) > 0 then
    redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  end
  return 1
end
return 0
)lua";

// KEYS: nodes. ARGV: now, node, info, ttl.
const char* const register_script = BALCTL_LUA_NOW R"lua(
redis.call('HSET', KEYS[1], ARGV[2],
           cjson.encode({info = ARGV[3], expires_ms = now + tonumber(ARGV[4])}))
return now
)lua";

// KEYS: nodes. ARGV: now. The live ones (id, body, ...); expired go.
const char* const live_nodes_script = BALCTL_LUA_NOW R"lua(
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local ok, body = pcall(cjson.decode, all[i + 1])
  if ok and type(body) == 'table' and tonumber(body.expires_ms) and
     tonumber(body.expires_ms) > now then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out
)lua";

#undef BALCTL_LUA_NOW

std::int64_t to_int(const redis::reply& r) {
  if (r.k == redis::reply::kind::integer) {
    return r.integer;
  }
  if (r.k == redis::reply::kind::string) {
    try {
      return std::stoll(r.str);
    } catch (const std::exception&) {
      return 0;
    }
  }
  return 0;
}

} // namespace

struct lease_table::impl {
  redis::client_options o;
  std::string prefix;
  redis::client c;

  impl(redis::client_options opts, std::string p)
    : o(std::move(opts)), prefix(std::move(p)), c(o) {}

  std::string k(const std::string& key) const { return prefix + key; }

  redis::reply run(argv a) {
    auto rs = redis::run_sync(c, {std::move(a)});
    auto& r = rs.front();
    if (!r.transport_error.empty()) {
      throw store_unavailable("redis: " + r.transport_error);
    }
    if (r.value.k == redis::reply::kind::error) {
      throw store_error("redis: " + r.value.str);
    }
    return std::move(r.value);
  }
};

lease_table::lease_table(redis::client_options o, std::string prefix)
  : impl_(std::make_unique<impl>(std::move(o), std::move(prefix))) {}

lease_table::~lease_table() { impl_->c.stop(); }

void lease_table::start() {
  if (auto e = impl_->c.start(); !e.empty()) {
    throw store_error(e); // "redis: ..." already (a TLS file, the loop)
  }
  auto until = std::chrono::steady_clock::now() +
               std::chrono::milliseconds(impl_->o.connect_timeout_ms + 500);
  while (!impl_->c.ready() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!impl_->c.ready()) {
    auto why = impl_->c.last_error();
    throw store_error("redis: " + impl_->o.host + ":" + std::to_string(impl_->o.port) + ": " +
                      (why.empty() ? "not ready" : why));
  }
}

bool lease_table::available() const { return impl_->c.ready(); }

std::int64_t lease_table::register_node(const std::string& node, const std::string& info,
                                         std::int64_t ttl_ms, std::int64_t now_ms) {
  return impl_->run({"EVAL", register_script, "1", impl_->k("nodes"), std::to_string(now_ms), node, info,
              std::to_string(ttl_ms)})
    .integer;
}

void lease_table::unregister_node(const std::string& node) {
  impl_->run({"HDEL", impl_->k("nodes"), node});
}

std::vector<node_record> lease_table::live_nodes(std::int64_t now_ms) {
  auto r = impl_->run({"EVAL", live_nodes_script, "1", impl_->k("nodes"), std::to_string(now_ms)});
  std::vector<node_record> out;
  for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    auto j = nlohmann::json::parse(r.elements[i + 1].str, nullptr, false);
    node_record n;
    n.id = r.elements[i].str;
    if (j.is_object()) {
      n.info = j.value("info", "");
      n.expires_ms = j.value("expires_ms", std::int64_t{0});
    }
    out.push_back(std::move(n));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

lease_answer lease_table::acquire(const std::string& pool, const std::string& node,
                                  std::int64_t ttl_ms, std::int64_t now_ms) {
  auto r = impl_->run({"EVAL", acquire_script, "4", impl_->k("lease:" + pool),
                       impl_->k("fence:" + pool), impl_->k("leases"), impl_->k("handoff:" + pool),
                       std::to_string(now_ms), node, std::to_string(ttl_ms), pool});
  lease_answer a;
  if (r.elements.size() == 5) {
    a.token = to_int(r.elements[0]);
    a.holder = r.elements[1].str;
    a.expires_ms = to_int(r.elements[2]);
    a.now_ms = to_int(r.elements[3]);
    a.handed_off = to_int(r.elements[4]) == 1;
  }
  return a;
}

bool lease_table::renew(const std::string& pool, const std::string& node, std::int64_t token,
                        std::int64_t ttl_ms, std::int64_t now_ms) {
  auto r = impl_->run({"EVAL", renew_script, "1", impl_->k("lease:" + pool),
                       std::to_string(now_ms), node, std::to_string(token),
                       std::to_string(ttl_ms)});
  return r.integer == 1;
}

void lease_table::release(const std::string& pool, const std::string& node, std::int64_t token,
                          std::int64_t handoff_ms) {
  impl_->run({"EVAL", release_script, "2", impl_->k("lease:" + pool),
              impl_->k("handoff:" + pool), node, std::to_string(token),
              std::to_string(handoff_ms)});
}

std::vector<lease_record> lease_table::leases() {
  auto pools = impl_->run({"SMEMBERS", impl_->k("leases")});
  std::vector<std::string> names;
  for (const auto& e : pools.elements) {
    names.push_back(e.str);
  }
  std::sort(names.begin(), names.end());
  std::vector<argv> cmds;
  for (const auto& p : names) {
    cmds.push_back({"HMGET", impl_->k("lease:" + p), "node", "token", "since", "expires"});
  }
  std::vector<lease_record> out;
  auto rs = redis::run_sync(impl_->c, std::move(cmds));
  for (std::size_t i = 0; i < rs.size(); ++i) {
    if (!rs[i].transport_error.empty()) {
      throw store_unavailable("redis: " + rs[i].transport_error);
    }
    const auto& v = rs[i].value.elements;
    if (v.size() != 4 || v[0].k != redis::reply::kind::string) {
      continue; // released
    }
    lease_record l;
    l.pool = names[i];
    l.node = v[0].str;
    l.token = to_int(v[1]);
    l.since_ms = to_int(v[2]);
    l.expires_ms = to_int(v[3]);
    out.push_back(std::move(l));
  }
  return out;
}

std::int64_t lease_table::token(const std::string& pool) {
  return to_int(impl_->run({"GET", impl_->k("fence:" + pool)}));
}

std::int64_t lease_table::catalog_version() {
  return to_int(impl_->run({"GET", impl_->k("catalog")}));
}

} // namespace balctl
