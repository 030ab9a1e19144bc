// The embedded default store: one SQLite file (WAL), prepared statements
// cached, every call checked. Only the store actor calls it.

#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>

#include <algorithm>
#include <cstring>
#include <memory>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "adapters/store/store.hpp"

namespace balctl {

namespace {

struct db_closer {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct stmt_finalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using db_ptr = std::unique_ptr<sqlite3, db_closer>;
using stmt_ptr = std::unique_ptr<sqlite3_stmt, stmt_finalizer>;

constexpr int schema_version = 5;

const char* const schema = R"sql(
CREATE TABLE IF NOT EXISTS pools (
  name TEXT PRIMARY KEY,
  preset TEXT NOT NULL,
  failover_delay_s INTEGER NOT NULL,
  failover_hostname TEXT NOT NULL,
  failback TEXT NOT NULL,
  failback_stable_s INTEGER NOT NULL,
  mass_silence_share REAL NOT NULL,
  mass_silence_min_members INTEGER NOT NULL,
  mass_silence_window_s INTEGER NOT NULL,
  label TEXT NOT NULL DEFAULT '',
  from_api INTEGER NOT NULL DEFAULT 0,
  dns TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS members (
  id INTEGER PRIMARY KEY,
  pool TEXT NOT NULL REFERENCES pools(name) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  name TEXT NOT NULL,
  hostname TEXT NOT NULL,
  allowed_ips TEXT NOT NULL,
  key BLOB NOT NULL,
  linux_family TEXT NOT NULL DEFAULT '',
  enrolled INTEGER NOT NULL DEFAULT 1,
  public_ipv4 TEXT NOT NULL DEFAULT '',
  public_ipv6 TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS members_pool ON members(pool, position);
CREATE TABLE IF NOT EXISTS member_states (
  id INTEGER PRIMARY KEY REFERENCES members(id) ON DELETE CASCADE,
  state TEXT NOT NULL,
  state_since_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  last_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pool_state (
  pool TEXT PRIMARY KEY REFERENCES pools(name) ON DELETE CASCADE,
  active_member INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  pool TEXT NOT NULL,
  kind TEXT NOT NULL,
  from_member INTEGER NOT NULL,
  to_member INTEGER NOT NULL,
  reason TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  status TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS decisions_pool ON decisions(pool, id);
CREATE INDEX IF NOT EXISTS decisions_status ON decisions(status, id);
)sql";

// Version 2 (admin API): tables of its own, created by both paths.
const char* const schema_v2_tables = R"sql(
CREATE TABLE IF NOT EXISTS enrollments (
  member INTEGER PRIMARY KEY REFERENCES members(id) ON DELETE CASCADE,
  secret_sha256 BLOB NOT NULL UNIQUE,
  pool TEXT NOT NULL,
  created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS activity (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  pool TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  kind TEXT NOT NULL,
  member INTEGER NOT NULL,
  message TEXT NOT NULL,
  from_state TEXT NOT NULL,
  to_state TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS activity_pool ON activity(pool, id);
CREATE INDEX IF NOT EXISTS activity_member ON activity(pool, member, id);
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL);
)sql";

// Version 3 (DNS): the journal of DNS changes, written before a provider is
// asked and marked when it confirms (DESIGN.md principle 4).
const char* const schema_v3_tables = R"sql(
CREATE TABLE IF NOT EXISTS dns_changes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  decision INTEGER NOT NULL,
  pool TEXT NOT NULL,
  provider TEXT NOT NULL,
  zone TEXT NOT NULL,
  name TEXT NOT NULL,
  type TEXT NOT NULL,
  content TEXT NOT NULL,
  ttl_s INTEGER NOT NULL,
  proxied INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  status TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS dns_changes_status ON dns_changes(status, id);
CREATE INDEX IF NOT EXISTS dns_changes_record ON dns_changes(provider, name, type, id);
)sql";

// Version 4 (Managed DNS): protected accounts' DNS side and the API's
// provider credentials, each row a JSON body (engine/accounts'
// to_json_text; config's dns_provider_json, which the config rules read).
const char* const schema_v4_tables = R"sql(
CREATE TABLE IF NOT EXISTS accounts (
  pool TEXT NOT NULL REFERENCES pools(name) ON DELETE CASCADE,
  id TEXT NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (pool, id));
CREATE TABLE IF NOT EXISTS dns_providers (
  id TEXT PRIMARY KEY,
  pool TEXT NOT NULL REFERENCES pools(name) ON DELETE CASCADE,
  body TEXT NOT NULL);
)sql";

// Version 5 (Protection): jobs, replication runs and monitoring presets,
// each row a JSON body (store.hpp's stored_record). No foreign key: a
// pool's delete removes them itself.
const char* const schema_v5_tables = R"sql(
CREATE TABLE IF NOT EXISTS records (
  kind TEXT NOT NULL,
  pool TEXT NOT NULL,
  id TEXT NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (kind, pool, id));
)sql";

const char* const migrate_v2_to_v3 = R"sql(
ALTER TABLE pools ADD COLUMN dns TEXT NOT NULL DEFAULT '{}';
ALTER TABLE members ADD COLUMN public_ipv4 TEXT NOT NULL DEFAULT '';
ALTER TABLE members ADD COLUMN public_ipv6 TEXT NOT NULL DEFAULT '';
)sql";

// A version 1 file gets version 2's columns.
const char* const migrate_v1_to_v2 = R"sql(
ALTER TABLE pools ADD COLUMN label TEXT NOT NULL DEFAULT '';
ALTER TABLE pools ADD COLUMN from_api INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN linux_family TEXT NOT NULL DEFAULT '';
ALTER TABLE members ADD COLUMN enrolled INTEGER NOT NULL DEFAULT 1;
)sql";

class sqlite_store final : public store {
public:
  explicit sqlite_store(const std::string& path) {
    sqlite3* raw = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &raw,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                               SQLITE_OPEN_NOMUTEX,
                             nullptr);
    db_.reset(raw);
    if (rc != SQLITE_OK) {
      std::string msg = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
      throw store_error("sqlite: open " + path + ": " + msg);
    }
    sqlite3_busy_timeout(db_.get(), 5000);
    if (path != ":memory:" && !path.empty()) {
      // It holds the API's DNS provider secrets: its owner's alone. SQLite
      // creates -wal and -shm with the file's mode; ones left by an older
      // run keep theirs, so they are set too.
      if (::chmod(path.c_str(), S_IRUSR | S_IWUSR) != 0) {
        throw store_error("sqlite: chmod 0600 " + path + ": " + std::strerror(errno));
      }
      for (const char* suffix : {"-wal", "-shm"}) {
        auto side = path + suffix;
        if (::chmod(side.c_str(), S_IRUSR | S_IWUSR) != 0 && errno != ENOENT) {
          throw store_error("sqlite: chmod 0600 " + side + ": " + std::strerror(errno));
        }
      }
    }
    if (path != ":memory:") {
      exec("PRAGMA journal_mode=WAL", "set WAL mode");
    }
    exec("PRAGMA synchronous=NORMAL", "set synchronous");
    exec("PRAGMA foreign_keys=ON", "enable foreign keys");
    exec("BEGIN", "begin schema");
    int version = 0;
    {
      auto v = prepare("PRAGMA user_version");
      if (step_row(v, "read schema version")) {
        version = sqlite3_column_int(v, 0);
        sqlite3_reset(v);
      }
    }
    if (version > schema_version) {
      throw store_error("sqlite: " + path + ": schema version " +
                        std::to_string(version) + " is newer than this "
                        "balctld (" + std::to_string(schema_version) + ")");
    }
    if (version == 1) {
      exec(migrate_v1_to_v2, "migrate schema 1 to 2");
    }
    if (version >= 1 && version <= 2) {
      exec(migrate_v2_to_v3, "migrate schema 2 to 3");
    }
    exec(schema, "create schema");
    exec(schema_v2_tables, "create schema v2 tables");
    exec(schema_v3_tables, "create schema v3 tables");
    exec(schema_v4_tables, "create schema v4 tables");
    exec(schema_v5_tables, "create schema v5 tables");
    exec("PRAGMA user_version=" + std::to_string(schema_version),
         "set schema version");
    exec("COMMIT", "commit schema");
  }

  void put_pool(const pool_config& p) override {
    transaction tx(*this, "put_pool");
    auto s = prepare(
      "INSERT INTO pools VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12) "
      "ON CONFLICT(name) DO UPDATE SET preset=?2, failover_delay_s=?3, "
      "failover_hostname=?4, failback=?5, failback_stable_s=?6, "
      "mass_silence_share=?7, mass_silence_min_members=?8, "
      "mass_silence_window_s=?9, label=?10, from_api=?11, dns=?12");
    bind_pool(s, p);
    step_done(s, "put_pool");
    // Members no longer in the pool go, with their states (cascade); members
    // still present keep their runtime state.
    auto keep = nlohmann::json::array();
    for (const auto& m : p.members) {
      keep.push_back(m.id);
    }
    auto del = prepare(
      "DELETE FROM members WHERE pool=?1 AND id NOT IN "
      "(SELECT value FROM json_each(?2))");
    bind(del, 1, p.name);
    bind(del, 2, keep.dump());
    step_done(del, "put_pool: remove members");
    for (std::size_t i = 0; i < p.members.size(); ++i) {
      upsert_member(p.name, p.members[i], static_cast<std::int64_t>(i));
    }
    tx.commit();
  }

  void update_pool(const pool_config& p) override {
    auto s = prepare(
      "UPDATE pools SET preset=?2, failover_delay_s=?3, failover_hostname=?4, "
      "failback=?5, failback_stable_s=?6, mass_silence_share=?7, "
      "mass_silence_min_members=?8, mass_silence_window_s=?9, label=?10, "
      "from_api=?11, dns=?12 WHERE name=?1");
    bind_pool(s, p);
    step_done(s, "update_pool");
  }

  void put_member(const std::string& pool, const member_config& m) override {
    auto pos = prepare(
      "SELECT COALESCE((SELECT position FROM members WHERE id=?2), "
      "(SELECT COALESCE(MAX(position), -1) + 1 FROM members WHERE pool=?1))");
    bind(pos, 1, pool);
    sqlite3_bind_int64(pos, 2, static_cast<sqlite3_int64>(m.id));
    std::int64_t position = 0;
    if (step_row(pos, "put_member: position")) {
      position = sqlite3_column_int64(pos, 0);
      sqlite3_reset(pos);
    }
    upsert_member(pool, m, position);
  }

  void delete_member(member_id m) override {
    auto s = prepare("DELETE FROM members WHERE id=?1");
    sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(m));
    step_done(s, "delete_member");
  }

  member_id allocate_member_id(member_id at_least) override {
    transaction tx(*this, "allocate_member_id");
    auto s = prepare(
      "SELECT MAX(COALESCE((SELECT value FROM meta WHERE key='next_member_id'), 1), "
      "COALESCE((SELECT MAX(id) + 1 FROM members), 1), ?1)");
    sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(at_least));
    std::int64_t id = 1;
    if (step_row(s, "allocate_member_id")) {
      id = sqlite3_column_int64(s, 0);
      sqlite3_reset(s);
    }
    auto u = prepare(
      "INSERT INTO meta VALUES ('next_member_id', ?1) "
      "ON CONFLICT(key) DO UPDATE SET value=?1");
    sqlite3_bind_int64(u, 1, id + 1);
    step_done(u, "allocate_member_id: save");
    tx.commit();
    return static_cast<member_id>(id);
  }

  void put_enrollment(const enrollment_record& e) override {
    auto s = prepare(
      "INSERT INTO enrollments VALUES (?1,?2,?3,?4) ON CONFLICT(member) DO "
      "UPDATE SET secret_sha256=?2, pool=?3, created_ms=?4");
    sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(e.member));
    sqlite3_bind_blob(s, 2, e.secret_sha256.data(),
                      static_cast<int>(e.secret_sha256.size()), SQLITE_TRANSIENT);
    bind(s, 3, e.pool);
    sqlite3_bind_int64(s, 4, e.created_ms);
    step_done(s, "put_enrollment");
  }

  void complete_enrollment(member_id m, const protocol::key& k) override {
    transaction tx(*this, "complete_enrollment");
    auto d = prepare("DELETE FROM enrollments WHERE member=?1");
    sqlite3_bind_int64(d, 1, static_cast<sqlite3_int64>(m));
    step_done(d, "complete_enrollment: enrollment");
    auto u = prepare("UPDATE members SET key=?2, enrolled=1 WHERE id=?1");
    sqlite3_bind_int64(u, 1, static_cast<sqlite3_int64>(m));
    sqlite3_bind_blob(u, 2, k.data(), static_cast<int>(k.size()), SQLITE_TRANSIENT);
    step_done(u, "complete_enrollment: key");
    if (sqlite3_changes(db_.get()) != 1) {
      throw store_error("sqlite: complete_enrollment: member " +
                        std::to_string(m) + " is not stored");
    }
    tx.commit();
  }

  std::vector<enrollment_record> load_enrollments() override {
    std::vector<enrollment_record> out;
    auto s = prepare(
      "SELECT member, secret_sha256, pool, created_ms FROM enrollments");
    while (step_row(s, "load_enrollments")) {
      enrollment_record e;
      e.member = static_cast<member_id>(sqlite3_column_int64(s, 0));
      if (sqlite3_column_bytes(s, 1) == static_cast<int>(e.secret_sha256.size())) {
        std::memcpy(e.secret_sha256.data(), sqlite3_column_blob(s, 1),
                    e.secret_sha256.size());
      }
      e.pool = text(s, 2);
      e.created_ms = sqlite3_column_int64(s, 3);
      out.push_back(std::move(e));
    }
    return out;
  }

  void append_activity(const std::vector<activity_record>& rs,
                       std::size_t keep_per_pool) override {
    if (rs.empty()) {
      return;
    }
    transaction tx(*this, "append_activity");
    auto s = prepare(
      "INSERT INTO activity (pool, at_ms, kind, member, message, from_state, "
      "to_state) VALUES (?1,?2,?3,?4,?5,?6,?7)");
    std::vector<const std::string*> pools;
    for (const auto& r : rs) {
      bind(s, 1, r.pool);
      sqlite3_bind_int64(s, 2, r.at_ms);
      bind(s, 3, r.kind);
      sqlite3_bind_int64(s, 4, static_cast<sqlite3_int64>(r.member));
      bind(s, 5, r.message);
      bind(s, 6, r.from_state);
      bind(s, 7, r.to_state);
      step_done(s, "append_activity");
      if (pools.empty() || *pools.back() != r.pool) {
        pools.push_back(&r.pool);
      }
    }
    // Retention: the newest keep_per_pool events of each pool written to.
    auto prune = prepare(
      "DELETE FROM activity WHERE pool=?1 AND id <= (SELECT id FROM activity "
      "WHERE pool=?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)");
    std::sort(pools.begin(), pools.end(),
              [](const std::string* a, const std::string* b) { return *a < *b; });
    pools.erase(std::unique(pools.begin(), pools.end(),
                            [](const std::string* a, const std::string* b) {
                              return *a == *b;
                            }),
                pools.end());
    for (const auto* p : pools) {
      bind(prune, 1, *p);
      sqlite3_bind_int64(prune, 2, static_cast<sqlite3_int64>(keep_per_pool));
      step_done(prune, "append_activity: retention");
    }
    tx.commit();
  }

  std::vector<activity_record> activity(const std::string& pool,
                                        std::int64_t before_id,
                                        std::size_t limit,
                                        member_id member) override {
    auto s = prepare(
      "SELECT id, pool, at_ms, kind, member, message, from_state, to_state "
      "FROM activity WHERE pool=?1 AND (?2 = 0 OR id < ?2) AND "
      "(?3 = 0 OR member = ?3) ORDER BY id DESC LIMIT ?4");
    bind(s, 1, pool);
    sqlite3_bind_int64(s, 2, before_id);
    sqlite3_bind_int64(s, 3, static_cast<sqlite3_int64>(member));
    sqlite3_bind_int64(s, 4, static_cast<sqlite3_int64>(limit));
    std::vector<activity_record> out;
    while (step_row(s, "activity")) {
      activity_record r;
      r.id = sqlite3_column_int64(s, 0);
      r.pool = text(s, 1);
      r.at_ms = sqlite3_column_int64(s, 2);
      r.kind = text(s, 3);
      r.member = static_cast<member_id>(sqlite3_column_int64(s, 4));
      r.message = text(s, 5);
      r.from_state = text(s, 6);
      r.to_state = text(s, 7);
      out.push_back(std::move(r));
    }
    return out;
  }

  void delete_pool(const std::string& name) override {
    transaction tx(*this, "delete_pool");
    auto s = prepare("DELETE FROM pools WHERE name=?1");
    bind(s, 1, name);
    step_done(s, "delete_pool");
    auto a = prepare("DELETE FROM activity WHERE pool=?1");
    bind(a, 1, name);
    step_done(a, "delete_pool: activity");
    auto r = prepare("DELETE FROM records WHERE pool=?1");
    bind(r, 1, name);
    step_done(r, "delete_pool: records");
    // A DNS change still pending for a pool that is gone must not be
    // resumed at the next start.
    auto d = prepare(
      "UPDATE decisions SET status='cancelled' WHERE pool=?1 AND status='pending'");
    bind(d, 1, name);
    step_done(d, "delete_pool: decisions");
    auto c = prepare(
      "UPDATE dns_changes SET status='cancelled' WHERE pool=?1 AND status='pending'");
    bind(c, 1, name);
    step_done(c, "delete_pool: dns changes");
    tx.commit();
  }

  std::vector<pool_config> load_pools(bool api_only) override {
    std::vector<pool_config> out;
    std::unordered_map<std::string, std::size_t> index;
    auto s = prepare(
      "SELECT name, preset, failover_delay_s, failover_hostname, failback, "
      "failback_stable_s, mass_silence_share, mass_silence_min_members, "
      "mass_silence_window_s, label, from_api, dns FROM pools "
      "WHERE ?1 = 0 OR from_api = 1 ORDER BY name");
    sqlite3_bind_int(s, 1, api_only ? 1 : 0);
    while (step_row(s, "load_pools")) {
      pool_config p;
      p.name = text(s, 0);
      from_string(text(s, 1), p.preset);
      p.failover_delay_s = sqlite3_column_int(s, 2);
      p.failover_hostname = text(s, 3);
      from_string(text(s, 4), p.failback);
      p.failback_stable_s = sqlite3_column_int(s, 5);
      p.mass_silence_share = sqlite3_column_double(s, 6);
      p.mass_silence_min_members = sqlite3_column_int(s, 7);
      p.mass_silence_window_s = sqlite3_column_int(s, 8);
      p.label = text(s, 9);
      p.from_api = sqlite3_column_int(s, 10) != 0;
      auto dns = nlohmann::json::parse(text(s, 11), nullptr, false);
      if (dns.is_object()) {
        p.dns_provider = dns.value("provider", "");
        p.dns_zone = dns.value("zone", "");
        p.dns_ttl_s = dns.value("ttl_s", 60);
        p.dns_sync = dns.value("sync", true);
        p.dns_only = dns.value("dns_only", false);
      }
      index[p.name] = out.size();
      out.push_back(std::move(p));
    }
    auto m = prepare(
      "SELECT id, pool, name, hostname, allowed_ips, key, linux_family, "
      "enrolled, public_ipv4, public_ipv6 FROM members WHERE ?1 = 0 OR pool IN "
      "(SELECT name FROM pools WHERE from_api = 1) ORDER BY pool, position");
    sqlite3_bind_int(m, 1, api_only ? 1 : 0);
    while (step_row(m, "load_pools: members")) {
      member_config mc;
      mc.id = static_cast<member_id>(sqlite3_column_int64(m, 0));
      mc.name = text(m, 2);
      mc.hostname = text(m, 3);
      auto ips = nlohmann::json::parse(text(m, 4), nullptr, false);
      if (ips.is_array()) {
        for (const auto& ip : ips) {
          if (ip.is_string()) {
            mc.allowed_ips.push_back(ip.get<std::string>());
          }
        }
      }
      auto n = sqlite3_column_bytes(m, 5);
      if (n == static_cast<int>(mc.key.size())) {
        std::memcpy(mc.key.data(), sqlite3_column_blob(m, 5), mc.key.size());
      }
      mc.linux_family = text(m, 6);
      mc.enrolled = sqlite3_column_int(m, 7) != 0;
      mc.public_ipv4 = text(m, 8);
      mc.public_ipv6 = text(m, 9);
      auto i = index.find(text(m, 1));
      if (i != index.end()) {
        out[i->second].members.push_back(std::move(mc));
      }
    }
    return out;
  }

  void save_member_state(const member_state_record& r) override {
    save_one(r);
  }

  void save_member_states(const std::vector<member_state_record>& rs) override {
    transaction tx(*this, "save_member_states");
    for (const auto& r : rs) {
      save_one(r);
    }
    tx.commit();
  }

  std::vector<member_state_record> load_member_states() override {
    std::vector<member_state_record> out;
    auto s = prepare(
      "SELECT id, state, state_since_ms, last_seen_ms, last_seq "
      "FROM member_states");
    while (step_row(s, "load_member_states")) {
      member_state_record r;
      r.id = static_cast<member_id>(sqlite3_column_int64(s, 0));
      if (!from_string(text(s, 1), r.state)) {
        r.state = member_state::pending;
      }
      r.state_since_ms = sqlite3_column_int64(s, 2);
      r.last_seen_ms = sqlite3_column_int64(s, 3);
      r.last_seq = static_cast<std::uint64_t>(sqlite3_column_int64(s, 4));
      out.push_back(r);
    }
    return out;
  }

  void set_active_member(const std::string& pool, member_id m) override {
    auto s = prepare(
      "INSERT INTO pool_state VALUES (?1, ?2) "
      "ON CONFLICT(pool) DO UPDATE SET active_member=?2");
    bind(s, 1, pool);
    sqlite3_bind_int64(s, 2, static_cast<sqlite3_int64>(m));
    step_done(s, "set_active_member");
  }

  std::optional<member_id> active_member(const std::string& pool) override {
    auto s = prepare("SELECT active_member FROM pool_state WHERE pool=?1");
    bind(s, 1, pool);
    if (!step_row(s, "active_member")) {
      return std::nullopt;
    }
    auto m = static_cast<member_id>(sqlite3_column_int64(s, 0));
    sqlite3_reset(s);
    return m;
  }

  std::int64_t record_decision(const pool_decision& d) override {
    auto s = prepare(
      "INSERT INTO decisions (pool, kind, from_member, to_member, reason, "
      "at_ms, status) VALUES (?1,?2,?3,?4,?5,?6,'pending')");
    bind(s, 1, d.pool);
    bind(s, 2, std::string(to_string(d.kind)));
    sqlite3_bind_int64(s, 3, static_cast<sqlite3_int64>(d.from));
    sqlite3_bind_int64(s, 4, static_cast<sqlite3_int64>(d.to));
    bind(s, 5, d.reason);
    sqlite3_bind_int64(s, 6, d.at_ms);
    step_done(s, "record_decision");
    return sqlite3_last_insert_rowid(db_.get());
  }

  void mark_decision(std::int64_t id, const std::string& status) override {
    auto s = prepare("UPDATE decisions SET status=?2 WHERE id=?1");
    sqlite3_bind_int64(s, 1, id);
    bind(s, 2, status);
    step_done(s, "mark_decision");
  }

  std::vector<decision_record> decisions(const std::string& pool,
                                         std::size_t limit) override {
    auto s = prepare(
      "SELECT id, pool, kind, from_member, to_member, reason, at_ms, status "
      "FROM decisions WHERE (?1 = '' OR pool = ?1) ORDER BY id DESC LIMIT ?2");
    bind(s, 1, pool);
    sqlite3_bind_int64(s, 2, static_cast<sqlite3_int64>(limit));
    return read_decisions(s, "decisions");
  }

  std::vector<decision_record> pending_decisions() override {
    auto s = prepare(
      "SELECT id, pool, kind, from_member, to_member, reason, at_ms, status "
      "FROM decisions WHERE status = 'pending' ORDER BY id");
    return read_decisions(s, "pending_decisions");
  }

  std::vector<std::int64_t> journal_dns_changes(
    const std::vector<dns_change_record>& cs) override {
    std::vector<std::int64_t> ids;
    if (cs.empty()) {
      return ids;
    }
    transaction tx(*this, "journal_dns_changes");
    auto s = prepare(
      "INSERT INTO dns_changes (decision, pool, provider, zone, name, type, "
      "content, ttl_s, proxied, priority, status, created_ms) VALUES "
      "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,'pending',?11)");
    for (const auto& c : cs) {
      sqlite3_bind_int64(s, 1, c.decision);
      bind(s, 2, c.pool);
      bind(s, 3, c.provider);
      bind(s, 4, c.zone);
      bind(s, 5, c.name);
      bind(s, 6, c.type);
      bind(s, 7, c.content);
      sqlite3_bind_int(s, 8, c.ttl_s);
      sqlite3_bind_int(s, 9, c.proxied);
      sqlite3_bind_int(s, 10, c.priority);
      sqlite3_bind_int64(s, 11, c.created_ms);
      step_done(s, "journal_dns_changes");
      ids.push_back(sqlite3_last_insert_rowid(db_.get()));
    }
    tx.commit();
    return ids;
  }

  void mark_dns_changes(const std::vector<std::int64_t>& ids,
                        const std::string& status,
                        const std::string& error) override {
    if (ids.empty()) {
      return;
    }
    transaction tx(*this, "mark_dns_changes");
    auto s = prepare("UPDATE dns_changes SET status=?2, error=?3 WHERE id=?1");
    for (auto id : ids) {
      sqlite3_bind_int64(s, 1, id);
      bind(s, 2, status);
      bind(s, 3, error);
      step_done(s, "mark_dns_changes");
    }
    tx.commit();
  }

  std::vector<dns_change_record> pending_dns_changes() override {
    // A pending change older than another change of the same record, done
    // or pending, is superseded: resuming it could move the record back.
    transaction tx(*this, "pending_dns_changes");
    auto sup = prepare(
      "UPDATE dns_changes SET status='superseded' WHERE status='pending' AND "
      "EXISTS (SELECT 1 FROM dns_changes n WHERE n.provider=dns_changes.provider "
      "AND n.name=dns_changes.name AND n.type=dns_changes.type AND "
      "n.id > dns_changes.id AND n.status IN ('pending','done'))");
    step_done(sup, "pending_dns_changes: supersede");
    auto s = prepare(
      "SELECT id, decision, pool, provider, zone, name, type, content, ttl_s, "
      "proxied, priority, status, created_ms, error FROM dns_changes "
      "WHERE status='pending' ORDER BY id");
    auto out = read_dns_changes(s, "pending_dns_changes");
    tx.commit();
    return out;
  }

  std::vector<dns_change_record> dns_changes(const std::string& pool,
                                             std::size_t limit) override {
    auto s = prepare(
      "SELECT id, decision, pool, provider, zone, name, type, content, ttl_s, "
      "proxied, priority, status, created_ms, error FROM dns_changes "
      "WHERE (?1 = '' OR pool = ?1) ORDER BY id DESC LIMIT ?2");
    bind(s, 1, pool);
    sqlite3_bind_int64(s, 2, static_cast<sqlite3_int64>(limit));
    return read_dns_changes(s, "dns_changes");
  }

  void put_accounts(const std::string& pool,
                    const std::vector<protected_account>& as) override {
    if (as.empty()) {
      return;
    }
    transaction tx(*this, "put_accounts");
    auto s = prepare(
      "INSERT INTO accounts VALUES (?1,?2,?3) "
      "ON CONFLICT(pool, id) DO UPDATE SET body=?3");
    for (const auto& a : as) {
      bind(s, 1, pool);
      bind(s, 2, a.id);
      bind(s, 3, to_json_text(a));
      step_done(s, "put_accounts");
    }
    tx.commit();
  }

  std::vector<std::int64_t> journal_account_cuts(
    const std::string& pool, const std::vector<protected_account>& as,
    const std::vector<dns_change_record>& cs) override {
    transaction tx(*this, "journal_account_cuts");
    // An update, never an insert: an account removed meanwhile stays gone.
    auto u = prepare("UPDATE accounts SET body=?3 WHERE pool=?1 AND id=?2");
    for (const auto& a : as) {
      bind(u, 1, pool);
      bind(u, 2, a.id);
      bind(u, 3, to_json_text(a));
      step_done(u, "journal_account_cuts: side");
    }
    auto ids = journal_dns_changes(cs);
    tx.commit();
    return ids;
  }

  void delete_account(const std::string& pool, const std::string& id) override {
    auto s = prepare("DELETE FROM accounts WHERE pool=?1 AND id=?2");
    bind(s, 1, pool);
    bind(s, 2, id);
    step_done(s, "delete_account");
  }

  std::vector<std::pair<std::string, protected_account>> load_accounts() override {
    std::vector<std::pair<std::string, protected_account>> out;
    auto s = prepare("SELECT pool, id, body FROM accounts ORDER BY pool, id");
    while (step_row(s, "load_accounts")) {
      std::string error;
      auto a = account_from_json_text(text(s, 2), &error);
      if (!a) {
        // One unreadable row must not keep every pool from starting.
        skipped_.push_back("account " + text(s, 0) + "/" + text(s, 1) + ": " + error);
        continue;
      }
      out.emplace_back(text(s, 0), std::move(*a));
    }
    return out;
  }

  void put_records(const std::vector<stored_record>& rs) override {
    if (rs.empty()) {
      return;
    }
    transaction tx(*this, "put_records");
    auto s = prepare("INSERT INTO records VALUES (?1,?2,?3,?4) "
                     "ON CONFLICT(kind, pool, id) DO UPDATE SET body=excluded.body");
    for (const auto& r : rs) {
      bind(s, 1, r.kind);
      bind(s, 2, r.pool);
      bind(s, 3, r.id);
      bind(s, 4, r.body);
      step_done(s, "put_records");
    }
    tx.commit();
  }

  void delete_records(const std::string& kind, const std::string& pool,
                      const std::vector<std::string>& ids) override {
    if (ids.empty()) {
      return;
    }
    transaction tx(*this, "delete_records");
    auto s = prepare("DELETE FROM records WHERE kind=?1 AND pool=?2 AND id=?3");
    for (const auto& id : ids) {
      bind(s, 1, kind);
      bind(s, 2, pool);
      bind(s, 3, id);
      step_done(s, "delete_records");
    }
    tx.commit();
  }

  std::vector<stored_record> load_records(const std::string& kind,
                                          const std::string& pool) override {
    std::vector<stored_record> out;
    auto s = prepare("SELECT pool, id, body FROM records WHERE kind=?1 "
                     "AND (?2 = '' OR pool = ?2) ORDER BY pool, id");
    bind(s, 1, kind);
    bind(s, 2, pool);
    while (step_row(s, "load_records")) {
      out.push_back({kind, text(s, 0), text(s, 1), text(s, 2)});
    }
    return out;
  }

  std::vector<std::string> take_skipped_rows() override { return std::move(skipped_); }

  void put_dns_providers(const std::vector<dns_provider_config>& ps) override {
    transaction tx(*this, "put_dns_providers");
    for (const auto& p : ps) {
      put_dns_provider(p);
    }
    tx.commit();
  }

  void put_dns_provider(const dns_provider_config& p) override {
    auto s = prepare(
      "INSERT INTO dns_providers VALUES (?1,?2,?3) "
      "ON CONFLICT(id) DO UPDATE SET pool=?2, body=?3");
    bind(s, 1, p.id);
    bind(s, 2, p.pool);
    bind(s, 3, dns_provider_json(p));
    step_done(s, "put_dns_provider");
  }

  void delete_dns_provider(const std::string& id) override {
    auto s = prepare("DELETE FROM dns_providers WHERE id=?1");
    bind(s, 1, id);
    step_done(s, "delete_dns_provider");
  }

  std::vector<dns_provider_config> load_dns_providers() override {
    std::vector<dns_provider_config> out;
    auto s = prepare("SELECT id, body FROM dns_providers ORDER BY id");
    while (step_row(s, "load_dns_providers")) {
      dns_provider_config p;
      auto errors = read_dns_provider_json(text(s, 1), p);
      if (!errors.empty()) {
        // The message names the key, never the secret's value.
        skipped_.push_back("DNS provider " + text(s, 0) + ": " + errors.front().field + ": " +
                           errors.front().message);
        continue;
      }
      out.push_back(std::move(p));
    }
    return out;
  }

private:
  std::vector<dns_change_record> read_dns_changes(sqlite3_stmt* s, const char* op) {
    std::vector<dns_change_record> out;
    while (step_row(s, op)) {
      dns_change_record c;
      c.id = sqlite3_column_int64(s, 0);
      c.decision = sqlite3_column_int64(s, 1);
      c.pool = text(s, 2);
      c.provider = text(s, 3);
      c.zone = text(s, 4);
      c.name = text(s, 5);
      c.type = text(s, 6);
      c.content = text(s, 7);
      c.ttl_s = sqlite3_column_int(s, 8);
      c.proxied = sqlite3_column_int(s, 9);
      c.priority = sqlite3_column_int(s, 10);
      c.status = text(s, 11);
      c.created_ms = sqlite3_column_int64(s, 12);
      c.error = text(s, 13);
      out.push_back(std::move(c));
    }
    return out;
  }

  int tx_depth_ = 0; // transactions open on this connection (nesting)
  std::vector<std::string> skipped_; // rows load_* could not read

  class transaction {
  public:
    // Inside another transaction it is part of that one (no BEGIN, COMMIT
    // or ROLLBACK of its own): calls compose into one transaction.
    transaction(sqlite_store& st, const char* op)
      : st_(st), op_(op), nested_(st.tx_depth_ > 0) {
      if (!nested_) {
        st_.exec("BEGIN IMMEDIATE", std::string(op_) + ": begin");
      }
      ++st_.tx_depth_;
    }
    void commit() {
      if (!nested_) {
        st_.exec("COMMIT", std::string(op_) + ": commit");
      }
      done_ = true;
    }
    ~transaction() {
      --st_.tx_depth_;
      if (!done_ && !nested_) {
        sqlite3_exec(st_.db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      }
    }

  private:
    sqlite_store& st_;
    const char* op_;
    bool nested_;
    bool done_ = false;
  };

  void bind_pool(sqlite3_stmt* s, const pool_config& p) {
    bind(s, 1, p.name);
    bind(s, 2, std::string(to_string(p.preset)));
    sqlite3_bind_int(s, 3, p.failover_delay_s);
    bind(s, 4, p.failover_hostname);
    bind(s, 5, std::string(to_string(p.failback)));
    sqlite3_bind_int(s, 6, p.failback_stable_s);
    sqlite3_bind_double(s, 7, p.mass_silence_share);
    sqlite3_bind_int(s, 8, p.mass_silence_min_members);
    sqlite3_bind_int(s, 9, p.mass_silence_window_s);
    bind(s, 10, p.label);
    sqlite3_bind_int(s, 11, p.from_api ? 1 : 0);
    bind(s, 12, nlohmann::json{{"provider", p.dns_provider},
                               {"zone", p.dns_zone},
                               {"ttl_s", p.dns_ttl_s},
                               {"sync", p.dns_sync},
                               {"dns_only", p.dns_only}}
                  .dump());
  }

  void upsert_member(const std::string& pool, const member_config& m,
                     std::int64_t position) {
    auto ins = prepare(
      "INSERT INTO members VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11) "
      "ON CONFLICT(id) DO UPDATE SET pool=?2, position=?3, name=?4, "
      "hostname=?5, allowed_ips=?6, key=?7, linux_family=?8, enrolled=?9, "
      "public_ipv4=?10, public_ipv6=?11");
    sqlite3_bind_int64(ins, 1, static_cast<sqlite3_int64>(m.id));
    bind(ins, 2, pool);
    sqlite3_bind_int64(ins, 3, position);
    bind(ins, 4, m.name);
    bind(ins, 5, m.hostname);
    bind(ins, 6, nlohmann::json(m.allowed_ips).dump());
    sqlite3_bind_blob(ins, 7, m.key.data(), static_cast<int>(m.key.size()),
                      SQLITE_TRANSIENT);
    bind(ins, 8, m.linux_family);
    sqlite3_bind_int(ins, 9, m.enrolled ? 1 : 0);
    bind(ins, 10, m.public_ipv4);
    bind(ins, 11, m.public_ipv6);
    step_done(ins, "put_member");
  }

  void save_one(const member_state_record& r) {
    auto s = prepare(
      "INSERT INTO member_states VALUES (?1,?2,?3,?4,?5) "
      "ON CONFLICT(id) DO UPDATE SET state=?2, state_since_ms=?3, "
      "last_seen_ms=?4, last_seq=?5");
    sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(r.id));
    bind(s, 2, std::string(to_string(r.state)));
    sqlite3_bind_int64(s, 3, r.state_since_ms);
    sqlite3_bind_int64(s, 4, r.last_seen_ms);
    sqlite3_bind_int64(s, 5, static_cast<sqlite3_int64>(r.last_seq));
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    // A state for a member that is not (or no longer) stored is skipped:
    // the member was removed while its checkpoint was on the way.
    if (rc != SQLITE_DONE && rc != SQLITE_CONSTRAINT) {
      fail("save_member_state", rc);
    }
  }

  std::vector<decision_record> read_decisions(sqlite3_stmt* s, const char* op) {
    std::vector<decision_record> out;
    while (step_row(s, op)) {
      decision_record r;
      r.id = sqlite3_column_int64(s, 0);
      r.decision.pool = text(s, 1);
      from_string(text(s, 2), r.decision.kind);
      r.decision.from = static_cast<member_id>(sqlite3_column_int64(s, 3));
      r.decision.to = static_cast<member_id>(sqlite3_column_int64(s, 4));
      r.decision.reason = text(s, 5);
      r.decision.at_ms = sqlite3_column_int64(s, 6);
      r.status = text(s, 7);
      out.push_back(std::move(r));
    }
    return out;
  }

  void exec(const std::string& sql, const std::string& op) {
    char* err = nullptr;
    if (sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &err) !=
        SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errmsg(db_.get());
      sqlite3_free(err);
      throw store_error("sqlite: " + op + ": " + msg);
    }
  }

  // Cached by SQL text; reset and cleared before reuse.
  sqlite3_stmt* prepare(const char* sql) {
    auto i = stmts_.find(sql);
    if (i != stmts_.end()) {
      sqlite3_reset(i->second.get());
      sqlite3_clear_bindings(i->second.get());
      return i->second.get();
    }
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db_.get(), sql, -1, &raw, nullptr) != SQLITE_OK) {
      throw store_error(std::string("sqlite: prepare: ") +
                        sqlite3_errmsg(db_.get()));
    }
    stmts_.emplace(sql, stmt_ptr(raw));
    return raw;
  }

  static void bind(sqlite3_stmt* s, int i, const std::string& v) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
  }

  static std::string text(sqlite3_stmt* s, int col) {
    auto p = sqlite3_column_text(s, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<std::size_t>(sqlite3_column_bytes(s, col)))
             : std::string();
  }

  [[noreturn]] void fail(const char* op, int rc) {
    throw store_error(std::string("sqlite: ") + op + ": " +
                      (db_ ? sqlite3_errmsg(db_.get()) : sqlite3_errstr(rc)));
  }

  void step_done(sqlite3_stmt* s, const char* op) {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
      fail(op, rc);
    }
  }

  bool step_row(sqlite3_stmt* s, const char* op) {
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
      return true;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
      fail(op, rc);
    }
    return false;
  }

  db_ptr db_;
  std::unordered_map<const char*, stmt_ptr> stmts_; // keyed by literal address
};

} // namespace

std::unique_ptr<store> open_sqlite_store(const std::string& path) {
  return std::make_unique<sqlite_store>(path);
}

} // namespace balctl
