// The Redis store: the store interface (store.hpp) over redis::client. The
// store actor calls it from its own (detached) thread; each call sends its
// commands, pipelined, and waits for the answers within the client's
// timeout. Several keys written together go in one MULTI/EXEC, as the
// SQLite store uses one transaction. Every key starts with the prefix, so
// several engines (or tests) can share one Redis database.
//
// Keys (P = prefix):
//   P pools                  set of pool names
//   P pool:{name}            the pool's row (JSON)
//   P members:{pool}         sorted set: member ids by position
//   P member:{id}            the member's row (JSON, with its pool)
//   P member_pool            hash id -> pool (a member moving between pools)
//   P states                 hash id -> member state (JSON)
//   P active                 hash pool -> active member
//   P enrollments            hash member -> enrollment (JSON)
//   P next_member_id         the next id allocate_member_id hands out
//   P activity:{pool}        list of events (JSON), newest first
//   P activity_id            event ids
//   P decisions              hash id -> decision (JSON); P decision_id
//   P decisions:all|pending, P decisions:pool:{pool}   sorted sets of ids
//   P dns                    hash id -> DNS change (JSON); P dns_id
//   P dns:all|pending, P dns:pool:{pool}               sorted sets of ids
//   P accounts:{pool}        hash id -> protected account (to_json_text)
//   P providers              hash id -> credential (dns_provider_json)
//   P records:{kind}         hash "{pool}\n{id}" -> Protection's record (JSON)
//   P record_kinds           set of the kinds written (a pool's delete looks in each)

#include "adapters/store/redis_store.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <future>
#include <map>
#include <set>
#include <thread>
#include <tuple>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "adapters/store/redis_client.hpp"
#include "engine/secrets.hpp"

namespace balctl {

namespace {

using json = nlohmann::json;
using argv = std::vector<std::string>;

std::string num(std::int64_t v) { return std::to_string(v); }

// A row as an object: anything else (a hand edit, a corrupt value) reads as
// an empty one, so fields take their defaults instead of throwing.
json parse_obj(const std::string& text) {
  auto j = json::parse(text, nullptr, false);
  return j.is_object() ? j : json::object();
}

// A field of a row, or def when it is missing or of another type: a row
// edited by hand never throws out of the store.
template <class T>
T field(const json& j, const char* key, T def) {
  auto it = j.find(key);
  if (it == j.end()) {
    return def;
  }
  try {
    return it->template get<T>();
  } catch (const json::exception&) {
    return def;
  }
}
std::string field(const json& j, const char* key, const char* def) {
  return field<std::string>(j, key, std::string(def));
}

// An id field or member name; 0 when it is not a number.
std::uint64_t to_u64(const std::string& text) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && end == text.data() + text.size() ? v : 0;
}

member_state_record state_from(member_id id, const json& j) {
  member_state_record r;
  r.id = id;
  if (!from_string(field(j, "state", "pending"), r.state)) {
    r.state = member_state::pending;
  }
  r.state_since_ms = field(j, "since", std::int64_t{0});
  r.last_seen_ms = field(j, "seen", std::int64_t{0});
  r.last_seq = field(j, "seq", std::uint64_t{0});
  return r;
}

json pool_json(const pool_config& p) {
  return {{"name", p.name},
          {"preset", to_string(p.preset)},
          {"failover_delay_s", p.failover_delay_s},
          {"failover_hostname", p.failover_hostname},
          {"failback", to_string(p.failback)},
          {"failback_stable_s", p.failback_stable_s},
          {"mass_silence_share", p.mass_silence_share},
          {"mass_silence_min_members", p.mass_silence_min_members},
          {"mass_silence_window_s", p.mass_silence_window_s},
          {"label", p.label},
          {"from_api", p.from_api},
          {"dns_provider", p.dns_provider},
          {"dns_zone", p.dns_zone},
          {"dns_ttl_s", p.dns_ttl_s},
          {"dns_sync", p.dns_sync},
          {"dns_only", p.dns_only}};
}

pool_config pool_from(const json& j) {
  pool_config p;
  p.name = field(j, "name", "");
  from_string(field(j, "preset", "generic-linux"), p.preset);
  p.failover_delay_s = field(j, "failover_delay_s", 30);
  p.failover_hostname = field(j, "failover_hostname", "");
  from_string(field(j, "failback", "manual"), p.failback);
  p.failback_stable_s = field(j, "failback_stable_s", 300);
  p.mass_silence_share = field(j, "mass_silence_share", 0.5);
  p.mass_silence_min_members = field(j, "mass_silence_min_members", 3);
  p.mass_silence_window_s = field(j, "mass_silence_window_s", 0);
  p.label = field(j, "label", "");
  p.from_api = field(j, "from_api", false);
  p.dns_provider = field(j, "dns_provider", "");
  p.dns_zone = field(j, "dns_zone", "");
  p.dns_ttl_s = field(j, "dns_ttl_s", 60);
  p.dns_sync = field(j, "dns_sync", true);
  p.dns_only = field(j, "dns_only", false);
  return p;
}

json member_json(const std::string& pool, const member_config& m) {
  return {{"id", m.id},
          {"pool", pool},
          {"name", m.name},
          {"hostname", m.hostname},
          {"allowed_ips", m.allowed_ips},
          {"key", protocol::key_to_hex(m.key)},
          {"linux_family", m.linux_family},
          {"enrolled", m.enrolled},
          {"public_ipv4", m.public_ipv4},
          {"public_ipv6", m.public_ipv6}};
}

member_config member_from(const json& j) {
  member_config m;
  m.id = field(j, "id", member_id{0});
  m.name = field(j, "name", "");
  m.hostname = field(j, "hostname", "");
  m.allowed_ips = field(j, "allowed_ips", std::vector<std::string>{});
  protocol::key_from_hex(field(j, "key", ""), m.key);
  m.linux_family = field(j, "linux_family", "");
  m.enrolled = field(j, "enrolled", true);
  m.public_ipv4 = field(j, "public_ipv4", "");
  m.public_ipv6 = field(j, "public_ipv6", "");
  return m;
}

json decision_json(std::int64_t id, const pool_decision& d, const std::string& status) {
  return {{"id", id},           {"pool", d.pool},   {"kind", to_string(d.kind)},
          {"from", d.from},     {"to", d.to},       {"reason", d.reason},
          {"at_ms", d.at_ms},   {"status", status}};
}

decision_record decision_from(const json& j) {
  decision_record r;
  r.id = field(j, "id", std::int64_t{0});
  r.decision.pool = field(j, "pool", "");
  from_string(field(j, "kind", "failover"), r.decision.kind);
  r.decision.from = field(j, "from", member_id{0});
  r.decision.to = field(j, "to", member_id{0});
  r.decision.reason = field(j, "reason", "");
  r.decision.at_ms = field(j, "at_ms", std::int64_t{0});
  r.status = field(j, "status", "pending");
  return r;
}

json change_json(const dns_change_record& c) {
  return {{"id", c.id},           {"decision", c.decision}, {"pool", c.pool},
          {"provider", c.provider}, {"zone", c.zone},       {"name", c.name},
          {"type", c.type},       {"content", c.content},   {"ttl_s", c.ttl_s},
          {"proxied", c.proxied}, {"priority", c.priority}, {"status", c.status},
          {"created_ms", c.created_ms}, {"error", c.error}};
}

dns_change_record change_from(const json& j) {
  dns_change_record c;
  c.id = field(j, "id", std::int64_t{0});
  c.decision = field(j, "decision", std::int64_t{0});
  c.pool = field(j, "pool", "");
  c.provider = field(j, "provider", "");
  c.zone = field(j, "zone", "");
  c.name = field(j, "name", "");
  c.type = field(j, "type", "");
  c.content = field(j, "content", "");
  c.ttl_s = field(j, "ttl_s", 60);
  c.proxied = field(j, "proxied", -1);
  c.priority = field(j, "priority", 1);
  c.status = field(j, "status", "pending");
  c.created_ms = field(j, "created_ms", std::int64_t{0});
  c.error = field(j, "error", "");
  return c;
}

json activity_json(const activity_record& r) {
  return {{"id", r.id},         {"pool", r.pool},       {"at_ms", r.at_ms},
          {"kind", r.kind},     {"member", r.member},   {"message", r.message},
          {"from", r.from_state}, {"to", r.to_state}};
}

activity_record activity_from(const json& j) {
  activity_record r;
  r.id = field(j, "id", std::int64_t{0});
  r.pool = field(j, "pool", "");
  r.at_ms = field(j, "at_ms", std::int64_t{0});
  r.kind = field(j, "kind", "");
  r.member = field(j, "member", member_id{0});
  r.message = field(j, "message", "");
  r.from_state = field(j, "from", "");
  r.to_state = field(j, "to", "");
  return r;
}

// allocate_member_id: max(stored next, at_least), and the next one after.
// Member ids are 64-bit: Lua's numbers (doubles) are exact only to 2^53, so
// the counter is compared and incremented as a decimal string.
#define BALCTL_LUA_DECIMAL                                                     \
  "local function gt(a, b) if #a ~= #b then return #a > #b end return a > b end\n" \
  "local function inc(s)\n"                                                     \
  "  local tail = ''\n"                                                         \
  "  for i = #s, 1, -1 do\n"                                                    \
  "    local d = string.byte(s, i) - 48\n"                                      \
  "    if d < 9 then return string.sub(s, 1, i - 1) .. string.char(d + 49) .. tail end\n" \
  "    tail = '0' .. tail\n"                                                    \
  "  end\n"                                                                     \
  "  return '1' .. tail\n"                                                      \
  "end\n"

const char* const allocate_script = BALCTL_LUA_DECIMAL R"lua(
local n = redis.call('GET', KEYS[1]) or '1'
if gt(ARGV[1], n) then n = ARGV[1] end
redis.call('SET', KEYS[1], inc(n))
return n
)lua";

// put_member: the next id stays above every member id stored.
const char* const bump_script = BALCTL_LUA_DECIMAL R"lua(
local m = inc(ARGV[1])
if gt(m, redis.call('GET', KEYS[1]) or '1') then redis.call('SET', KEYS[1], m) end
return 1
)lua";

#undef BALCTL_LUA_DECIMAL

// The states of members still stored (KEYS[1] the hash, ARGV[1] the
// member keys' prefix, then id/state pairs); the number written.
const char* const save_states_script = R"lua(
local n = 0
for i = 2, #ARGV, 2 do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 1 then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    n = n + 1
  end
end
return n
)lua";

// The writes in ARGV, made only while every fence holds: ARGV = now (0 =
// Redis's clock), the number of fences, (lease key, token) per fence, then
// each command as its argument count and its arguments.
const char* const fenced_script = R"lua(
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local i = 3
for f = 1, tonumber(ARGV[2]) do
  local cur = redis.call('HMGET', ARGV[i], 'token', 'expires')
  if cur[1] ~= ARGV[i + 1] or not cur[2] or tonumber(cur[2]) <= now then
    return redis.error_reply('FENCED ' .. ARGV[i] .. ': token ' .. ARGV[i + 1] ..
                             ' is not the live lease (current ' .. tostring(cur[1]) .. ')')
  end
  i = i + 2
end
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local cmd = {}
  for j = 1, n do cmd[j] = ARGV[i + j] end
  redis.call(unpack(cmd))
  i = i + n + 1
end
return 1
)lua";

// HSET of ARGV's field/value pairs into KEYS[1], only while every other key
// exists (the pool or member the rows belong to), as SQLite's foreign keys.
const char* const hset_if_script = R"lua(
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    return redis.error_reply('NOREF ' .. KEYS[i] .. ' is not stored')
  end
end
return redis.call('HSET', KEYS[1], unpack(ARGV))
)lua";

class redis_store final : public store {
public:
  explicit redis_store(const redis_store_options& o) : o_(o), c_(o.client) {
    if (auto e = c_.start(); !e.empty()) {
      throw store_error(e); // "redis: ..." already (a TLS file, the loop)
    }
    // Up within the connect timeout, or the start fails with the reason.
    auto until = std::chrono::steady_clock::now() +
                 std::chrono::milliseconds(o.client.connect_timeout_ms + 500);
    while (!c_.ready() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!c_.ready()) {
      auto why = c_.last_error();
      throw store_error("redis: " + o.client.host + ":" + std::to_string(o.client.port) + ": " +
                        (why.empty() ? "not ready" : why));
    }
  }

  // -- pools and members ---------------------------------------------------------

  void put_pool(const pool_config& p) override {
    auto old = ids(run({"ZRANGE", k("members:" + p.name), "0", "-1"}));
    std::set<member_id> keep;
    for (const auto& m : p.members) {
      keep.insert(m.id);
    }
    std::vector<argv> tx{{"SADD", k("pools"), p.name},
                         {"SET", k("pool:" + p.name), pool_json(p).dump()}};
    std::vector<member_id> gone;
    for (auto id : old) {
      if (keep.count(id) == 0) {
        gone.push_back(id);
      }
    }
    drop_members(tx, p.name, gone);
    leave_other_pools(tx, p.name, p.members);
    // A few commands with many arguments: a pool of 100,000 members is
    // three commands, not 300,000.
    if (!p.members.empty()) {
      argv zadd{"ZADD", k("members:" + p.name)};
      argv mset{"MSET"};
      argv where{"HSET", k("member_pool")};
      member_id top = 0;
      for (std::size_t i = 0; i < p.members.size(); ++i) {
        const auto& m = p.members[i];
        zadd.push_back(num(static_cast<std::int64_t>(i)));
        zadd.push_back(std::to_string(m.id));
        mset.push_back(k("member:" + std::to_string(m.id)));
        mset.push_back(member_json(p.name, m).dump());
        where.push_back(std::to_string(m.id));
        where.push_back(p.name);
        top = std::max(top, m.id);
      }
      tx.push_back(std::move(zadd));
      tx.push_back(std::move(mset));
      tx.push_back(std::move(where));
      tx.push_back({"EVAL", bump_script, "1", k("next_member_id"), std::to_string(top)});
    }
    tx.push_back(catalog_changed());
    exec(tx, "put_pool");
  }

  void delete_pool(const std::string& name) override {
    auto members = ids(run({"ZRANGE", k("members:" + name), "0", "-1"}));
    std::vector<argv> tx;
    drop_members(tx, name, members);
    tx.push_back({"SREM", k("pools"), name});
    tx.push_back({"DEL", k("pool:" + name), k("members:" + name), k("activity:" + name),
                  k("accounts:" + name)});
    tx.push_back({"HDEL", k("active"), name});
    for (const auto& kind : run({"SMEMBERS", k("record_kinds")}).elements) {
      for (const auto& [field, body] : hash(k("records:" + kind.str))) {
        if (field.compare(0, name.size() + 1, name + "\n") == 0) {
          tx.push_back({"HDEL", k("records:" + kind.str), field});
        }
      }
    }
    for (const auto& [id, body] : hash(k("providers"))) {
      auto j = parse_obj(body);
      if (j.is_object() && field(j, "pool", "") == name) {
        tx.push_back({"HDEL", k("providers"), id});
      }
    }
    // What was pending for the pool must not be resumed at the next start.
    for (const auto& d : decisions(name, SIZE_MAX)) {
      if (d.status == "pending") {
        auto j = decision_json(d.id, d.decision, "cancelled");
        tx.push_back({"HSET", k("decisions"), num(d.id), j.dump()});
        tx.push_back({"ZREM", k("decisions:pending"), num(d.id)});
      }
    }
    for (auto c : dns_changes(name, SIZE_MAX)) {
      if (c.status == "pending") {
        c.status = "cancelled";
        tx.push_back({"HSET", k("dns"), num(c.id), change_json(c).dump()});
        tx.push_back({"ZREM", k("dns:pending"), num(c.id)});
      }
    }
    tx.push_back(catalog_changed());
    exec(tx, "delete_pool");
  }

  std::vector<pool_config> load_pools(bool api_only) override {
    std::vector<pool_config> out;
    auto names = run({"SMEMBERS", k("pools")});
    std::vector<std::string> sorted;
    for (const auto& e : names.elements) {
      sorted.push_back(e.str);
    }
    std::sort(sorted.begin(), sorted.end());
    for (const auto& name : sorted) {
      auto body = run({"GET", k("pool:" + name)});
      if (body.k != redis::reply::kind::string) {
        continue;
      }
      auto p = pool_from(parse_obj(body.str));
      if (api_only && !p.from_api) {
        continue;
      }
      auto member_ids = ids(run({"ZRANGE", k("members:" + name), "0", "-1"}));
      for (std::size_t i = 0; i < member_ids.size(); i += chunk) {
        argv mget{"MGET"};
        for (std::size_t j = i; j < member_ids.size() && j < i + chunk; ++j) {
          mget.push_back(k("member:" + std::to_string(member_ids[j])));
        }
        for (const auto& m : run(std::move(mget)).elements) {
          if (m.k == redis::reply::kind::string) {
            p.members.push_back(member_from(parse_obj(m.str)));
          }
        }
      }
      out.push_back(std::move(p));
    }
    return out;
  }

  void update_pool(const pool_config& p) override {
    if (run({"EXISTS", k("pool:" + p.name)}).integer == 0) {
      return; // as SQLite's UPDATE of no row
    }
    exec({{"SET", k("pool:" + p.name), pool_json(p).dump()}, catalog_changed()}, "update_pool");
  }

  void put_member(const std::string& pool, const member_config& m) override {
    auto key = k("members:" + pool);
    auto at = run({"ZSCORE", key, std::to_string(m.id)});
    std::string position;
    if (at.k == redis::reply::kind::string) {
      position = at.str;
    } else {
      auto last = run({"ZRANGE", key, "-1", "-1", "WITHSCORES"});
      position = last.elements.size() == 2
                   ? num(static_cast<std::int64_t>(to_u64(last.elements[1].str)) + 1)
                   : "0";
    }
    std::vector<argv> tx;
    leave_other_pools(tx, pool, {m});
    tx.push_back({"ZADD", key, position, std::to_string(m.id)});
    tx.push_back({"SET", k("member:" + std::to_string(m.id)), member_json(pool, m).dump()});
    tx.push_back({"HSET", k("member_pool"), std::to_string(m.id), pool});
    tx.push_back({"EVAL", bump_script, "1", k("next_member_id"), std::to_string(m.id)});
    tx.push_back(catalog_changed());
    exec(tx, "put_member");
  }

  void delete_member(member_id m) override {
    auto body = run({"GET", k("member:" + std::to_string(m))});
    if (body.k != redis::reply::kind::string) {
      return;
    }
    auto pool = field(parse_obj(body.str), "pool", "");
    std::vector<argv> tx;
    drop_members(tx, pool, {m});
    tx.push_back(catalog_changed());
    exec(tx, "delete_member");
  }

  member_id allocate_member_id(member_id at_least) override {
    auto r = run({"EVAL", allocate_script, "1", k("next_member_id"), std::to_string(at_least)});
    return static_cast<member_id>(to_u64(r.str));
  }

  // -- enrollments -----------------------------------------------------------------

  void put_enrollment(const enrollment_record& e) override {
    json j = {{"member", e.member},
              {"secret_sha256", secrets::to_hex(e.secret_sha256)},
              {"pool", e.pool},
              {"created_ms", e.created_ms}};
    hset_if(k("enrollments"), {k("member:" + std::to_string(e.member))},
            {std::to_string(e.member), j.dump()});
  }

  void complete_enrollment(member_id m, const protocol::key& key) override {
    auto body = run({"GET", k("member:" + std::to_string(m))});
    if (body.k != redis::reply::kind::string) {
      throw store_error("redis: complete_enrollment: member " + std::to_string(m) +
                        " is not stored");
    }
    auto j = parse_obj(body.str);
    j["key"] = protocol::key_to_hex(key);
    j["enrolled"] = true;
    exec({{"HDEL", k("enrollments"), std::to_string(m)},
          {"SET", k("member:" + std::to_string(m)), j.dump()},
          catalog_changed()},
         "complete_enrollment");
  }

  std::vector<enrollment_record> load_enrollments() override {
    std::vector<enrollment_record> out;
    for (const auto& [id, body] : hash(k("enrollments"))) {
      auto j = parse_obj(body);
      if (!j.is_object()) {
        continue;
      }
      enrollment_record e;
      e.member = field(j, "member", member_id{0});
      protocol::key_from_hex(field(j, "secret_sha256", ""), e.secret_sha256); // 32 bytes, as a key
      e.pool = field(j, "pool", "");
      e.created_ms = field(j, "created_ms", std::int64_t{0});
      out.push_back(std::move(e));
    }
    return out;
  }

  // -- activity ----------------------------------------------------------------------

  void append_activity(const std::vector<activity_record>& rs,
                       std::size_t keep_per_pool) override {
    if (rs.empty()) {
      return;
    }
    auto last = run({"INCRBY", k("activity_id"), num(static_cast<std::int64_t>(rs.size()))});
    auto id = last.integer - static_cast<std::int64_t>(rs.size());
    std::vector<argv> tx;
    std::set<std::string> pools;
    for (auto r : rs) {
      r.id = ++id;
      tx.push_back({"LPUSH", k("activity:" + r.pool), activity_json(r).dump()});
      pools.insert(r.pool);
    }
    for (const auto& p : pools) {
      tx.push_back({"LTRIM", k("activity:" + p), "0",
                    num(static_cast<std::int64_t>(keep_per_pool) - 1)});
    }
    exec(tx, "append_activity");
  }

  std::vector<activity_record> activity(const std::string& pool, std::int64_t before_id,
                                        std::size_t limit, member_id member) override {
    // Newest first, a page at a time until the limit is met (the list is
    // trimmed to keep_per_pool, but a page is usually all it takes).
    std::vector<activity_record> out;
    auto page = static_cast<std::int64_t>(std::clamp<std::size_t>(limit * 2, 64, 4096));
    for (std::int64_t at = 0; out.size() < limit; at += page) {
      auto some = run({"LRANGE", k("activity:" + pool), num(at), num(at + page - 1)});
      for (const auto& e : some.elements) {
        if (out.size() >= limit) {
          break;
        }
        auto r = activity_from(parse_obj(e.str));
        if ((before_id == 0 || r.id < before_id) && (member == 0 || r.member == member)) {
          out.push_back(std::move(r));
        }
      }
      if (static_cast<std::int64_t>(some.elements.size()) < page) {
        break;
      }
    }
    return out;
  }

  // -- member states, active members ----------------------------------------------------

  void save_member_state(const member_state_record& r) override { save_member_states({r}); }

  void save_member_states(const std::vector<member_state_record>& rs) override {
    // In batches, each one script (atomic); a state for a member no
    // longer stored is skipped, as SQLite's foreign key skips it.
    std::vector<argv> batches;
    for (std::size_t i = 0; i < rs.size(); i += chunk) {
      argv hset{"EVAL", save_states_script, "1", k("states"), o_.prefix + "member:"};
      for (std::size_t j = i; j < rs.size() && j < i + chunk; ++j) {
        const auto& r = rs[j];
        hset.push_back(std::to_string(r.id));
        hset.push_back(json{{"state", to_string(r.state)},
                            {"since", r.state_since_ms},
                            {"seen", r.last_seen_ms},
                            {"seq", r.last_seq}}
                         .dump());
      }
      batches.push_back(std::move(hset));
    }
    send(std::move(batches));
  }

  std::vector<member_state_record> load_member_states() override {
    // Written only for stored members and removed with them (the script
    // above, drop_members), so every field is a member's.
    std::vector<member_state_record> out;
    for (const auto& [id, body] : hash(k("states"))) {
      out.push_back(state_from(static_cast<member_id>(to_u64(id)), parse_obj(body)));
    }
    return out;
  }

  std::vector<member_state_record> load_member_states_of(
    const std::vector<member_id>& ids) override {
    std::vector<member_state_record> out;
    for (std::size_t i = 0; i < ids.size(); i += chunk) {
      argv hmget{"HMGET", k("states")};
      for (std::size_t j = i; j < ids.size() && j < i + chunk; ++j) {
        hmget.push_back(std::to_string(ids[j]));
      }
      auto r = run(std::move(hmget));
      for (std::size_t j = 0; j < r.elements.size(); ++j) {
        if (r.elements[j].k == redis::reply::kind::string) {
          out.push_back(state_from(ids[i + j], parse_obj(r.elements[j].str)));
        }
      }
    }
    return out;
  }

  void set_active_member(const std::string& pool, member_id m) override {
    hset_if(k("active"), {k("pool:" + pool)}, {pool, std::to_string(m)});
  }

  std::optional<member_id> active_member(const std::string& pool) override {
    auto r = run({"HGET", k("active"), pool});
    if (r.k != redis::reply::kind::string) {
      return std::nullopt;
    }
    return static_cast<member_id>(to_u64(r.str));
  }

  // -- decisions ------------------------------------------------------------------------

  std::int64_t record_decision(const pool_decision& d) override {
    auto what = "decision\n" + decision_json(0, d, "pending").dump();
    auto ids = ids_for(what, 1, "decision_id");
    auto id = ids.front();
    exec_once(what, ids,
              {{"HSET", k("decisions"), num(id), decision_json(id, d, "pending").dump()},
               {"ZADD", k("decisions:all"), num(id), num(id)},
               {"ZADD", k("decisions:pool:" + d.pool), num(id), num(id)},
               {"ZADD", k("decisions:pending"), num(id), num(id)}},
              "record_decision", {d.pool});
    return id;
  }

  void mark_decision(std::int64_t id, const std::string& status) override {
    auto r = run({"HGET", k("decisions"), num(id)});
    if (r.k != redis::reply::kind::string) {
      return;
    }
    auto j = parse_obj(r.str);
    j["status"] = status;
    std::vector<argv> tx{{"HSET", k("decisions"), num(id), j.dump()}};
    tx.push_back(status == "pending" ? argv{"ZADD", k("decisions:pending"), num(id), num(id)}
                                     : argv{"ZREM", k("decisions:pending"), num(id)});
    exec(tx, "mark_decision");
  }

  std::vector<decision_record> decisions(const std::string& pool, std::size_t limit) override {
    auto key = k(pool.empty() ? "decisions:all" : "decisions:pool:" + pool);
    auto stop = limit == SIZE_MAX ? std::int64_t{-1} : static_cast<std::int64_t>(limit) - 1;
    std::vector<decision_record> out;
    if (limit == 0) {
      return out;
    }
    for (const auto& body : hget_many(k("decisions"), run({"ZREVRANGE", key, "0", num(stop)}))) {
      out.push_back(decision_from(parse_obj(body)));
    }
    return out;
  }

  std::vector<decision_record> pending_decisions() override {
    std::vector<decision_record> out;
    for (const auto& body :
         hget_many(k("decisions"), run({"ZRANGE", k("decisions:pending"), "0", "-1"}))) {
      out.push_back(decision_from(parse_obj(body)));
    }
    return out;
  }

  // -- the DNS journal ------------------------------------------------------------------

  std::vector<std::int64_t> journal_dns_changes(const std::vector<dns_change_record>& cs) override {
    std::vector<argv> tx;
    auto what = "dns\n" + journal_key(cs);
    auto ids = journal_into(tx, cs, what);
    std::vector<std::string> pools;
    for (const auto& c : cs) {
      pools.push_back(c.pool);
    }
    exec_once(what, ids, std::move(tx), "journal_dns_changes", pools);
    return ids;
  }

  void mark_dns_changes(const std::vector<std::int64_t>& ids, const std::string& status,
                        const std::string& error) override {
    if (ids.empty()) {
      return;
    }
    std::vector<argv> tx;
    argv hmget{"HMGET", k("dns")};
    for (auto id : ids) {
      hmget.push_back(num(id));
    }
    for (const auto& r : run(std::move(hmget)).elements) {
      if (r.k != redis::reply::kind::string) {
        continue;
      }
      auto c = change_from(parse_obj(r.str));
      auto id = c.id;
      c.status = status;
      c.error = error;
      tx.push_back({"HSET", k("dns"), num(id), change_json(c).dump()});
      tx.push_back(status == "pending" ? argv{"ZADD", k("dns:pending"), num(id), num(id)}
                                       : argv{"ZREM", k("dns:pending"), num(id)});
    }
    exec(tx, "mark_dns_changes");
  }

  std::vector<dns_change_record> pending_dns_changes() override {
    // A pending change older than another change of the same record, done
    // or pending, is superseded: resuming it could move the record back.
    // Only changes from the oldest pending one on can supersede one: the
    // journal's tail, not all of it.
    auto oldest = run({"ZRANGE", k("dns:pending"), "0", "0"});
    if (oldest.elements.empty()) {
      return {};
    }
    std::map<std::string, std::int64_t> newest; // provider/name/type -> id
    std::vector<dns_change_record> all;
    auto tail = run({"ZRANGEBYSCORE", k("dns:all"), oldest.elements[0].str, "+inf"});
    for (std::size_t i = 0; i < tail.elements.size(); i += chunk) {
      argv hmget{"HMGET", k("dns")};
      for (std::size_t j = i; j < tail.elements.size() && j < i + chunk; ++j) {
        hmget.push_back(tail.elements[j].str);
      }
      for (const auto& body : run(std::move(hmget)).elements) {
        if (body.k != redis::reply::kind::string) {
          continue;
        }
        auto c = change_from(parse_obj(body.str));
        if (c.status == "pending" || c.status == "done") {
          auto key = c.provider + "/" + c.name + "/" + c.type;
          newest[key] = std::max(newest[key], c.id);
        }
        if (c.status == "pending") {
          all.push_back(std::move(c));
        }
      }
    }
    std::sort(all.begin(), all.end(),
              [](const dns_change_record& a, const dns_change_record& b) { return a.id < b.id; });
    std::vector<std::int64_t> superseded;
    std::vector<dns_change_record> out;
    for (auto& c : all) {
      if (newest[c.provider + "/" + c.name + "/" + c.type] > c.id) {
        superseded.push_back(c.id);
      } else {
        out.push_back(std::move(c));
      }
    }
    mark_dns_changes(superseded, "superseded", "");
    return out;
  }

  std::vector<dns_change_record> dns_changes(const std::string& pool, std::size_t limit) override {
    auto key = k(pool.empty() ? "dns:all" : "dns:pool:" + pool);
    std::vector<dns_change_record> out;
    if (limit == 0) {
      return out;
    }
    auto stop = limit == SIZE_MAX ? std::int64_t{-1} : static_cast<std::int64_t>(limit) - 1;
    for (const auto& body : hget_many(k("dns"), run({"ZREVRANGE", key, "0", num(stop)}))) {
      out.push_back(change_from(parse_obj(body)));
    }
    return out;
  }

  // -- protected accounts, API credentials -------------------------------------------------

  void put_accounts(const std::string& pool, const std::vector<protected_account>& as) override {
    if (as.empty()) {
      return;
    }
    argv fields;
    for (const auto& a : as) {
      fields.push_back(a.id);
      fields.push_back(to_json_text(a));
    }
    hset_if(k("accounts:" + pool), {k("pool:" + pool)}, std::move(fields));
    run(catalog_changed());
  }

  std::vector<std::int64_t> journal_account_cuts(const std::string& pool,
                                                 const std::vector<protected_account>& as,
                                                 const std::vector<dns_change_record>& cs) override {
    // The sides only of accounts still there (never bringing one back),
    // with the changes, in one MULTI/EXEC.
    std::vector<argv> tx;
    std::vector<argv> exists;
    for (const auto& a : as) {
      exists.push_back({"HEXISTS", k("accounts:" + pool), a.id});
    }
    auto there = send(std::move(exists));
    for (std::size_t i = 0; i < as.size(); ++i) {
      if (there[i].integer == 1) {
        tx.push_back({"HSET", k("accounts:" + pool), as[i].id, to_json_text(as[i])});
      }
    }
    std::string what = "cuts\n" + pool + "\n";
    for (const auto& a : as) {
      what += to_json_text(a) + "\n";
    }
    what += journal_key(cs);
    auto ids = journal_into(tx, cs, what);
    tx.push_back(catalog_changed());
    exec_once(what, ids, std::move(tx), "journal_account_cuts", {pool});
    return ids;
  }

  void delete_account(const std::string& pool, const std::string& id) override {
    exec({{"HDEL", k("accounts:" + pool), id}, catalog_changed()}, "delete_account");
  }

  std::vector<std::pair<std::string, protected_account>> load_accounts() override {
    std::vector<std::pair<std::string, protected_account>> out;
    auto names = run({"SMEMBERS", k("pools")});
    std::vector<std::string> pools;
    for (const auto& e : names.elements) {
      pools.push_back(e.str);
    }
    std::sort(pools.begin(), pools.end());
    for (const auto& pool : pools) {
      for (const auto& [id, body] : hash(k("accounts:" + pool))) {
        std::string error;
        auto a = account_from_json_text(body, &error);
        if (!a) {
          skipped_.push_back("account " + pool + "/" + id + ": " + error);
          continue;
        }
        out.emplace_back(pool, std::move(*a));
      }
    }
    return out;
  }

  void put_dns_provider(const dns_provider_config& p) override { put_dns_providers({p}); }

  void put_dns_providers(const std::vector<dns_provider_config>& ps) override {
    if (ps.empty()) {
      return;
    }
    argv fields;
    std::set<std::string> pools;
    for (const auto& p : ps) {
      fields.push_back(p.id);
      fields.push_back(dns_provider_json(p));
      pools.insert(k("pool:" + p.pool));
    }
    hset_if(k("providers"), argv(pools.begin(), pools.end()), std::move(fields));
    run(catalog_changed());
  }

  void delete_dns_provider(const std::string& id) override {
    exec({{"HDEL", k("providers"), id}, catalog_changed()}, "delete_dns_provider");
  }

  std::vector<dns_provider_config> load_dns_providers() override {
    std::vector<dns_provider_config> out;
    for (const auto& [id, body] : hash(k("providers"))) {
      dns_provider_config p;
      auto errors = read_dns_provider_json(body, p);
      if (!errors.empty()) {
        skipped_.push_back("DNS provider " + id + ": " + errors.front().field + ": " +
                           errors.front().message);
        continue;
      }
      out.push_back(std::move(p));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    return out;
  }

  // -- Protection's records ----------------------------------------------------------------

  void put_records(const std::vector<stored_record>& rs) override {
    if (rs.empty()) {
      return;
    }
    std::vector<argv> tx;
    std::set<std::string> kinds;
    for (const auto& r : rs) {
      kinds.insert(r.kind);
      tx.push_back({"HSET", k("records:" + r.kind), r.pool + "\n" + r.id, r.body});
    }
    for (const auto& kind : kinds) {
      tx.push_back({"SADD", k("record_kinds"), kind});
    }
    exec(std::move(tx), "put_records");
  }

  void delete_records(const std::string& kind, const std::string& pool,
                      const std::vector<std::string>& ids) override {
    if (ids.empty()) {
      return;
    }
    argv del{"HDEL", k("records:" + kind)};
    for (const auto& id : ids) {
      del.push_back(pool + "\n" + id);
    }
    exec({std::move(del)}, "delete_records");
  }

  std::vector<stored_record> load_records(const std::string& kind,
                                          const std::string& pool) override {
    std::vector<stored_record> out;
    for (const auto& [field, body] : hash(k("records:" + kind))) {
      auto nl = field.find('\n');
      if (nl == std::string::npos) {
        skipped_.push_back("record " + kind + " " + field + ": no pool in its field");
        continue;
      }
      if (!pool.empty() && field.compare(0, nl, pool) != 0) {
        continue;
      }
      out.push_back({kind, field.substr(0, nl), field.substr(nl + 1), body});
    }
    std::sort(out.begin(), out.end(), [](const stored_record& a, const stored_record& b) {
      return std::tie(a.pool, a.id) < std::tie(b.pool, b.id);
    });
    return out;
  }

  std::vector<std::string> take_skipped_rows() override { return std::move(skipped_); }

  bool available() override { return c_.ready(); }

  void fence(const std::string& pool, std::int64_t token) override {
    if (token == 0) {
      fences_.erase(pool);
    } else {
      fences_[pool] = token;
    }
  }

private:
  /// Ids a command carries at most (batches of states, MGETs of members).
  static constexpr std::size_t chunk = 1000;

  std::string k(const std::string& key) const { return o_.prefix + key; }

  // One command, waited for; a transport error or an error reply throws.
  redis::reply run(argv a) {
    auto r = send({std::move(a)});
    return std::move(r.front());
  }

  std::vector<redis::reply> send(std::vector<argv> cmds) {
    std::vector<redis::reply> out;
    // The client answers every command, within its timeout.
    for (auto& r : redis::run_sync(c_, std::move(cmds))) {
      if (!r.transport_error.empty()) {
        throw store_unavailable("redis: " + r.transport_error);
      }
      if (r.value.k == redis::reply::kind::error) {
        if (r.value.str.rfind("FENCED", 0) == 0) {
          throw store_fenced("redis: " + r.value.str);
        }
        // Redis there but not taking writes now (loading, a replica, out
        // of memory, a failing save, a busy script): try again later.
        for (const char* busy : {"LOADING", "READONLY", "OOM", "MISCONF", "BUSY", "MASTERDOWN",
                                 "TRYAGAIN", "NOAUTH", "NOPERM", "CLUSTERDOWN"}) {
          if (r.value.str.rfind(busy, 0) == 0) {
            throw store_unavailable("redis: " + r.value.str);
          }
        }
        throw store_error("redis: " + r.value.str);
      }
      out.push_back(std::move(r.value));
    }
    return out;
  }

  // Several writes as one: MULTI, the commands, EXEC; or, when a pool
  // named is fenced (cluster), one script that checks its lease first.
  void exec(std::vector<argv> cmds, const char* op, const std::vector<std::string>& pools = {}) {
    if (cmds.empty()) {
      return;
    }
    if (o_.before_write) {
      o_.before_write(op);
    }
    std::map<std::string, std::int64_t> fenced;
    for (const auto& p : pools) {
      if (auto f = fences_.find(p); f != fences_.end()) {
        fenced.emplace(p, f->second);
      }
    }
    if (!fenced.empty()) {
      argv script{"EVAL", fenced_script, "0", "0", num(static_cast<std::int64_t>(fenced.size()))};
      for (const auto& [p, token] : fenced) {
        script.push_back(k("lease:" + p));
        script.push_back(num(token));
      }
      for (auto& c : cmds) {
        script.push_back(num(static_cast<std::int64_t>(c.size())));
        for (auto& a : c) {
          script.push_back(std::move(a));
        }
      }
      run(std::move(script));
      return;
    }
    std::vector<argv> all;
    all.push_back({"MULTI"});
    for (auto& c : cmds) {
      all.push_back(std::move(c));
    }
    all.push_back({"EXEC"});
    try {
      auto rs = send(std::move(all));
      const auto& done = rs.back();
      if (done.k != redis::reply::kind::array) {
        throw store_error("redis: " + std::string(op) + ": the transaction was not applied");
      }
      for (const auto& e : done.elements) {
        if (e.k == redis::reply::kind::error) {
          throw store_error("redis: " + std::string(op) + ": " + e.str);
        }
      }
    } catch (const store_error&) {
      // A MULTI left open on the connection would swallow later commands.
      c_.command({"DISCARD"}, [](redis::result) {});
      throw;
    }
  }

  // Pools, members and their keys changed: the other nodes of a cluster
  // reload them when they see the counter move (lease_table::
  // catalog_version).
  argv catalog_changed() { return {"INCR", k("catalog")}; }

  void hset_if(const std::string& key, const argv& must_exist, argv fields) {
    argv a{"EVAL", hset_if_script, num(static_cast<std::int64_t>(1 + must_exist.size())), key};
    a.insert(a.end(), must_exist.begin(), must_exist.end());
    a.insert(a.end(), std::make_move_iterator(fields.begin()),
             std::make_move_iterator(fields.end()));
    run(std::move(a));
  }

  std::vector<std::pair<std::string, std::string>> hash(const std::string& key) {
    std::vector<std::pair<std::string, std::string>> out;
    auto r = run({"HGETALL", key});
    for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2) {
      out.emplace_back(r.elements[i].str, r.elements[i + 1].str);
    }
    // Redis keeps no order: by field, as SQLite's primary keys.
    std::sort(out.begin(), out.end());
    return out;
  }

  // The bodies of hash key's fields named by an array reply, in its order.
  std::vector<std::string> hget_many(const std::string& key, const redis::reply& names) {
    std::vector<std::string> out;
    if (names.elements.empty()) {
      return out;
    }
    argv hmget{"HMGET", key};
    for (const auto& n : names.elements) {
      hmget.push_back(n.str);
    }
    for (const auto& v : run(std::move(hmget)).elements) {
      if (v.k == redis::reply::kind::string) {
        out.push_back(v.str);
      }
    }
    return out;
  }

  static std::vector<member_id> ids(const redis::reply& r) {
    std::vector<member_id> out;
    for (const auto& e : r.elements) {
      out.push_back(static_cast<member_id>(to_u64(e.str)));
    }
    return out;
  }

  void drop_members(std::vector<argv>& tx, const std::string& pool,
                    const std::vector<member_id>& gone) {
    if (gone.empty()) {
      return;
    }
    argv zrem{"ZREM", k("members:" + pool)};
    argv del{"DEL"};
    argv hdel_states{"HDEL", k("states")};
    argv hdel_enrollments{"HDEL", k("enrollments")};
    argv hdel_where{"HDEL", k("member_pool")};
    for (auto id : gone) {
      auto s = std::to_string(id);
      zrem.push_back(s);
      del.push_back(k("member:" + s));
      hdel_states.push_back(s);
      hdel_enrollments.push_back(s);
      hdel_where.push_back(s);
    }
    tx.push_back(std::move(zrem));
    tx.push_back(std::move(del));
    tx.push_back(std::move(hdel_states));
    tx.push_back(std::move(hdel_enrollments));
    tx.push_back(std::move(hdel_where));
  }

  // A member stored in another pool moves here (as SQLite's row does): out
  // of that pool's list, keeping its state.
  void leave_other_pools(std::vector<argv>& tx, const std::string& pool,
                         const std::vector<member_config>& ms) {
    for (std::size_t i = 0; i < ms.size(); i += chunk) {
      argv hmget{"HMGET", k("member_pool")};
      for (std::size_t j = i; j < ms.size() && j < i + chunk; ++j) {
        hmget.push_back(std::to_string(ms[j].id));
      }
      auto where = run(std::move(hmget));
      for (std::size_t j = 0; j < where.elements.size(); ++j) {
        const auto& w = where.elements[j];
        if (w.k == redis::reply::kind::string && w.str != pool) {
          tx.push_back({"ZREM", k("members:" + w.str), std::to_string(ms[i + j].id)});
        }
      }
    }
  }

  // What identifies a batch of journal entries but their ids.
  static std::string journal_key(const std::vector<dns_change_record>& cs) {
    std::string out;
    for (auto c : cs) {
      c.id = 0;
      c.status = "pending";
      c.error.clear();
      out += change_json(c).dump() + "\n";
    }
    return out;
  }

  // The ids a new row (or rows) takes: the ones a failed attempt at the
  // same write took, else new ones from the counter.
  std::vector<std::int64_t> ids_for(const std::string& what, std::size_t n, const char* counter) {
    if (auto r = retry_ids_.find(what); r != retry_ids_.end() && r->second.size() == n) {
      return r->second;
    }
    std::vector<std::int64_t> ids;
    if (n == 0) {
      return ids;
    }
    auto last = run({"INCRBY", k(counter), num(static_cast<std::int64_t>(n))}).integer;
    for (auto id = last - static_cast<std::int64_t>(n); id < last;) {
      ids.push_back(++id);
    }
    return ids;
  }

  // A write of rows under ids of their own, made once however often it is
  // tried: Redis may have applied a transaction whose answer never came
  // (a timeout, a lost connection). The ids it took are kept until the
  // same write is tried again, which writes the same rows under the same
  // ids (HSET and ZADD of the same values change nothing) instead of
  // adding copies under new ones.
  void exec_once(const std::string& what, const std::vector<std::int64_t>& ids,
                 std::vector<argv> cmds, const char* op, const std::vector<std::string>& pools) {
    try {
      exec(std::move(cmds), op, pools);
    } catch (const store_unavailable&) {
      if (retry_ids_.size() >= max_retry_ids) {
        retry_ids_.clear(); // an outage this long: the owed writes were dropped too
      }
      retry_ids_[what] = ids;
      throw;
    }
    retry_ids_.erase(what);
  }

  std::vector<std::int64_t> journal_into(std::vector<argv>& tx,
                                         const std::vector<dns_change_record>& cs,
                                         const std::string& what) {
    auto ids = ids_for(what, cs.size(), "dns_id");
    std::size_t i = 0;
    for (auto c : cs) {
      c.id = ids[i++];
      c.status = "pending";
      c.error.clear();
      tx.push_back({"HSET", k("dns"), num(c.id), change_json(c).dump()});
      tx.push_back({"ZADD", k("dns:all"), num(c.id), num(c.id)});
      tx.push_back({"ZADD", k("dns:pool:" + c.pool), num(c.id), num(c.id)});
      tx.push_back({"ZADD", k("dns:pending"), num(c.id), num(c.id)});
    }
    return ids;
  }

  redis_store_options o_;
  redis::client c_;
  std::vector<std::string> skipped_;
  std::unordered_map<std::string, std::int64_t> fences_; // pool -> token
  // exec_once: the ids of writes whose answer never came, by what they
  // wrote; bounded (as the store actor's owed writes are).
  static constexpr std::size_t max_retry_ids = 100'000;
  std::unordered_map<std::string, std::vector<std::int64_t>> retry_ids_;
};

} // namespace

std::optional<redis_store_options> parse_redis_url(const std::string& url, std::string* error) {
  auto say = [&](std::string e) -> std::optional<redis_store_options> {
    if (error != nullptr) {
      *error = std::move(e);
    }
    return std::nullopt;
  };
  redis_store_options o;
  std::string rest;
  if (url.rfind("redis://", 0) == 0) {
    rest = url.substr(std::strlen("redis://"));
  } else if (url.rfind("rediss://", 0) == 0) {
    // TLS; the CA and a client certificate come from the config's
    // store_tls_* keys (redis_options_for).
    o.client.tls = true;
    rest = url.substr(std::strlen("rediss://"));
  } else {
    return say("must start with redis:// or rediss://");
  }
  if (auto at = rest.rfind('@'); at != std::string::npos) {
    auto cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = cred.find(':');
    o.client.user = cred.substr(0, colon);
    if (colon != std::string::npos) {
      o.client.password = cred.substr(colon + 1);
    }
    if (o.client.password.empty()) {
      // redis://password@host is the old form: a password, default user.
      o.client.password = o.client.user;
      o.client.user.clear();
    }
  }
  auto slash = rest.find('/');
  auto hostport = rest.substr(0, slash);
  if (slash != std::string::npos) {
    auto db = rest.substr(slash + 1);
    if (!db.empty()) {
      if (db.size() > 5 || db.find_first_not_of("0123456789") != std::string::npos) {
        return say("the database after / must be a number (got \"" + db + "\")");
      }
      o.client.db = std::stoi(db);
    }
  }
  auto colon = hostport.rfind(':');
  if (!hostport.empty() && hostport.front() == '[') { // [::1]:6379
    auto close = hostport.find(']');
    if (close == std::string::npos) {
      return say("an IPv6 address needs its closing ]");
    }
    colon = close + 1 < hostport.size() && hostport[close + 1] == ':' ? close + 1
                                                                      : std::string::npos;
    if (colon == std::string::npos && close + 1 != hostport.size()) {
      return say("expected :port after the IPv6 address");
    }
    o.client.host = hostport.substr(1, close - 1);
  } else {
    o.client.host = hostport.substr(0, colon);
  }
  if (colon != std::string::npos) {
    auto port = hostport.substr(colon + 1);
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(port) < 1 || std::stoi(port) > 65535) {
      return say("the port must be 1..65535 (got \"" + port + "\")");
    }
    o.client.port = std::stoi(port);
  }
  if (o.client.host.empty()) {
    return say("a host is required");
  }
  return o;
}

std::unique_ptr<store> open_redis_store(const redis_store_options& o) {
  return std::make_unique<redis_store>(o);
}

} // namespace balctl
