// The embedded default store: one SQLite file (WAL), prepared statements
// cached, every call checked. Only the store actor calls it.

#include <sqlite3.h>

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

constexpr int schema_version = 1;

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
  mass_silence_window_s INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS members (
  id INTEGER PRIMARY KEY,
  pool TEXT NOT NULL REFERENCES pools(name) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  name TEXT NOT NULL,
  hostname TEXT NOT NULL,
  allowed_ips TEXT NOT NULL,
  key BLOB NOT NULL);
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
    if (path != ":memory:") {
      exec("PRAGMA journal_mode=WAL", "set WAL mode");
    }
    exec("PRAGMA synchronous=NORMAL", "set synchronous");
    exec("PRAGMA foreign_keys=ON", "enable foreign keys");
    exec("BEGIN", "begin schema");
    exec(schema, "create schema");
    exec("PRAGMA user_version=" + std::to_string(schema_version),
         "set schema version");
    exec("COMMIT", "commit schema");
  }

  void put_pool(const pool_config& p) override {
    transaction tx(*this, "put_pool");
    auto s = prepare(
      "INSERT INTO pools VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9) "
      "ON CONFLICT(name) DO UPDATE SET preset=?2, failover_delay_s=?3, "
      "failover_hostname=?4, failback=?5, failback_stable_s=?6, "
      "mass_silence_share=?7, mass_silence_min_members=?8, "
      "mass_silence_window_s=?9");
    bind(s, 1, p.name);
    bind(s, 2, std::string(to_string(p.preset)));
    sqlite3_bind_int(s, 3, p.failover_delay_s);
    bind(s, 4, p.failover_hostname);
    bind(s, 5, std::string(to_string(p.failback)));
    sqlite3_bind_int(s, 6, p.failback_stable_s);
    sqlite3_bind_double(s, 7, p.mass_silence_share);
    sqlite3_bind_int(s, 8, p.mass_silence_min_members);
    sqlite3_bind_int(s, 9, p.mass_silence_window_s);
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
    auto ins = prepare(
      "INSERT INTO members VALUES (?1,?2,?3,?4,?5,?6,?7) "
      "ON CONFLICT(id) DO UPDATE SET pool=?2, position=?3, name=?4, "
      "hostname=?5, allowed_ips=?6, key=?7");
    for (std::size_t i = 0; i < p.members.size(); ++i) {
      const auto& m = p.members[i];
      sqlite3_bind_int64(ins, 1, static_cast<sqlite3_int64>(m.id));
      bind(ins, 2, p.name);
      sqlite3_bind_int64(ins, 3, static_cast<sqlite3_int64>(i));
      bind(ins, 4, m.name);
      bind(ins, 5, m.hostname);
      bind(ins, 6, nlohmann::json(m.allowed_ips).dump());
      sqlite3_bind_blob(ins, 7, m.key.data(), static_cast<int>(m.key.size()),
                        SQLITE_TRANSIENT);
      step_done(ins, "put_pool: member");
    }
    tx.commit();
  }

  void delete_pool(const std::string& name) override {
    auto s = prepare("DELETE FROM pools WHERE name=?1");
    bind(s, 1, name);
    step_done(s, "delete_pool");
  }

  std::vector<pool_config> load_pools() override {
    std::vector<pool_config> out;
    std::unordered_map<std::string, std::size_t> index;
    auto s = prepare(
      "SELECT name, preset, failover_delay_s, failover_hostname, failback, "
      "failback_stable_s, mass_silence_share, mass_silence_min_members, "
      "mass_silence_window_s FROM pools ORDER BY name");
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
      index[p.name] = out.size();
      out.push_back(std::move(p));
    }
    auto m = prepare(
      "SELECT id, pool, name, hostname, allowed_ips, key FROM members "
      "ORDER BY pool, position");
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

private:
  class transaction {
  public:
    transaction(sqlite_store& st, const char* op) : st_(st), op_(op) {
      st_.exec("BEGIN IMMEDIATE", std::string(op_) + ": begin");
    }
    void commit() {
      st_.exec("COMMIT", std::string(op_) + ": commit");
      done_ = true;
    }
    ~transaction() {
      if (!done_) {
        sqlite3_exec(st_.db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      }
    }

  private:
    sqlite_store& st_;
    const char* op_;
    bool done_ = false;
  };

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
