// What only the SQLite store has: its file (mode, reopening, migration from
// older versions, an unwritable path). The behaviour every store shares is
// in tests/store/store_conformance_test.cpp, run against SQLite and Redis.

#include "adapters/store/store.hpp"

#include <catch2/catch.hpp>

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>

using namespace balctl;

namespace {

/// A store file under /tmp, removed (with its -wal and -shm) before and after.
class temp_db {
public:
  temp_db() {
    static int counter = 0;
    path_ = "/tmp/balctl_store_test_" + std::to_string(::getpid()) + "_" +
            std::to_string(++counter) + ".db";
    remove_files();
  }
  ~temp_db() { remove_files(); }
  temp_db(const temp_db&) = delete;
  temp_db& operator=(const temp_db&) = delete;
  const std::string& path() const { return path_; }

private:
  void remove_files() {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::remove((path_ + suffix).c_str());
    }
  }
  std::string path_;
};

protocol::key make_key(std::uint8_t seed) {
  protocol::key k{};
  for (std::size_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<std::uint8_t>(seed * 31 + i);
  }
  return k;
}

member_config make_member(member_id id) {
  member_config m;
  m.id = id;
  m.name = "node" + std::to_string(id);
  m.key = make_key(static_cast<std::uint8_t>(id));
  return m;
}

} // namespace

TEST_CASE("opening an unwritable path throws a store_error prefixed sqlite:",
          "[store][unit]") {
  const std::string path = "/proc/nonexistent/x.db";
  try {
    open_sqlite_store(path);
    FAIL("open_sqlite_store did not throw");
  } catch (const store_error& e) {
    std::string msg = e.what();
    CAPTURE(msg);
    CHECK(msg.rfind("sqlite:", 0) == 0);
  }
}

TEST_CASE("a version 1 store file is migrated and keeps its pools", "[store][unit]") {
  temp_db db;
  {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(db.path().c_str(), &raw) == SQLITE_OK);
    const char* v1 =
      "CREATE TABLE pools (name TEXT PRIMARY KEY, preset TEXT NOT NULL, "
      "failover_delay_s INTEGER NOT NULL, failover_hostname TEXT NOT NULL, "
      "failback TEXT NOT NULL, failback_stable_s INTEGER NOT NULL, "
      "mass_silence_share REAL NOT NULL, mass_silence_min_members INTEGER NOT NULL, "
      "mass_silence_window_s INTEGER NOT NULL);"
      "CREATE TABLE members (id INTEGER PRIMARY KEY, pool TEXT NOT NULL REFERENCES "
      "pools(name) ON DELETE CASCADE, position INTEGER NOT NULL, name TEXT NOT NULL, "
      "hostname TEXT NOT NULL, allowed_ips TEXT NOT NULL, key BLOB NOT NULL);"
      "INSERT INTO pools VALUES ('old','generic-linux',30,'','manual',300,0.5,3,0);"
      "INSERT INTO members VALUES (1,'old',0,'n1','n1.test','[]',zeroblob(32));"
      "PRAGMA user_version=1;";
    REQUIRE(sqlite3_exec(raw, v1, nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(raw);
  }
  auto st = open_sqlite_store(db.path());
  auto pools = st->load_pools();
  REQUIRE(pools.size() == 1);
  CHECK(pools[0].name == "old");
  CHECK_FALSE(pools[0].from_api);
  REQUIRE(pools[0].members.size() == 1);
  CHECK(pools[0].members[0].enrolled);
  st->append_activity({activity_record{0, "old", 1, "pool_created", 0, "x", "", ""}}, 10);
  CHECK(st->activity("old", 0, 10).size() == 1);
}

TEST_CASE("the store file and its journal files are readable by their owner only",
          "[store][unit]") {
  temp_db db;
  {
    auto s = open_sqlite_store(db.path());
    pool_config p;
    p.name = "web";
    p.members.push_back(make_member(1));
    s->put_pool(p);
    dns_provider_config c;
    REQUIRE(read_dns_provider_json(R"({"id":"cf-main","type":"cloudflare","secret":"tok-123"})", c)
              .empty());
    c.pool = "web";
    s->put_dns_provider(c);
  }
  struct stat sb {};
  REQUIRE(::stat(db.path().c_str(), &sb) == 0);
  CHECK((sb.st_mode & 0777) == 0600);
  auto s = open_sqlite_store(db.path());
  REQUIRE(s->load_dns_providers().size() == 1);
  CHECK(s->load_dns_providers()[0].secret == "tok-123");
}
