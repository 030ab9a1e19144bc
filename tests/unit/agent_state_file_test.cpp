#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "agent/state_file.hpp"
#include "transport/protocol.hpp"
#include "tests/support/temp_dir.hpp"

using namespace balctl;
using namespace balctl::agent;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using json = nlohmann::json;

namespace {

/// A scratch directory with a listing of its entries.
class temp_dir : public test::temp_dir {
 public:
  temp_dir() : test::temp_dir("balctl-agent-state") {}
  /// Names of the entries in the directory.
  std::set<std::string> entries() const {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(path())) {
      out.insert(e.path().filename().string());
    }
    return out;
  }
};

/// Every field different from its default.
agent_state sample_state() {
  agent_state s;
  s.member = 4711;
  s.pool = "web-eu";
  s.hostname = "db-1.example";
  for (std::size_t i = 0; i < s.key.size(); ++i) {
    s.key[i] = static_cast<std::uint8_t>(0xA0 + i);
  }
  s.api_base = "https://engine.example:7947";
  s.heartbeat_udp = "engine.example:7946";
  s.heartbeat_tls = "engine.example:7948";
  s.interval_s = 5;
  s.transport = "tls";
  s.ca_file = "/etc/balctl/ca.pem";
  s.tls_server_name = "hb.engine.example";
  s.seq_reserved = 1'700'000'123'456;
  return s;
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<unsigned>(st.st_mode & 07777);
}

void write_text(const std::string& path, const std::string& text, mode_t mode = 0600) {
  {
    std::ofstream out(path, std::ios::trunc);
    REQUIRE(out);
    out << text;
  }
  REQUIRE(::chmod(path.c_str(), mode) == 0);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Why the file at path does not load (fails the test if it does load).
std::string refusal(const std::string& path) {
  std::string err;
  CHECK_FALSE(load_state(path, &err));
  return err;
}

/// The state as the file holds it now (fails the test if it does not load).
agent_state reload(const std::string& path) {
  std::string err;
  auto s = load_state(path, &err);
  INFO(err);
  REQUIRE(s);
  return *s;
}

/// Sets the process umask for a scope.
class umask_guard {
 public:
  explicit umask_guard(mode_t m) : old_(::umask(m)) {}
  ~umask_guard() { ::umask(old_); }
  umask_guard(const umask_guard&) = delete;
  umask_guard& operator=(const umask_guard&) = delete;

 private:
  mode_t old_;
};

constexpr std::int64_t now_2023_ms = 1'700'000'000'000;

} // namespace

// ---- load_state / save_state ----------------------------------------------

TEST_CASE("a saved state file is created with mode 0600 whatever the umask", "[agent][state][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto mask = GENERATE(as<mode_t>{}, 0000, 0022, 0077);
  CAPTURE(mask);
  umask_guard guard(mask);
  REQUIRE(save_state(path, sample_state()).empty());
  CHECK(mode_of(path) == 0600);
}

TEST_CASE("saving over a world-readable state file leaves it 0600", "[agent][state][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  write_text(path, "{}", 0644);
  REQUIRE(save_state(path, sample_state()).empty());
  CHECK(mode_of(path) == 0600);
  CHECK(reload(path).member == 4711);
}

TEST_CASE("a saved state loads back with every field intact", "[agent][state][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto s = sample_state();
  REQUIRE(save_state(path, s).empty());
  auto back = reload(path);
  CHECK(back.member == s.member);
  CHECK(back.pool == s.pool);
  CHECK(back.hostname == s.hostname);
  CHECK(back.key == s.key);
  CHECK(back.api_base == s.api_base);
  CHECK(back.heartbeat_udp == s.heartbeat_udp);
  CHECK(back.heartbeat_tls == s.heartbeat_tls);
  CHECK(back.interval_s == s.interval_s);
  CHECK(back.transport == s.transport);
  CHECK(back.ca_file == s.ca_file);
  CHECK(back.tls_server_name == s.tls_server_name);
  CHECK(back.seq_reserved == s.seq_reserved);
}

TEST_CASE("a state with the optional fields empty loads back with them empty", "[agent][state][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto s = sample_state();
  s.pool.clear();
  s.api_base.clear();
  s.heartbeat_tls.clear();
  s.ca_file.clear();
  s.tls_server_name.clear();
  s.seq_reserved = 0;
  s.transport = "auto";
  REQUIRE(save_state(path, s).empty());
  auto back = reload(path);
  CHECK(back.pool.empty());
  CHECK(back.api_base.empty());
  CHECK(back.heartbeat_tls.empty());
  CHECK(back.ca_file.empty());
  CHECK(back.tls_server_name.empty());
  CHECK(back.seq_reserved == 0);
  CHECK(back.transport == "auto");
}

TEST_CASE("the largest sequence reservation round-trips exactly", "[agent][state][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto s = sample_state();
  s.seq_reserved = std::numeric_limits<std::uint64_t>::max();
  REQUIRE(save_state(path, s).empty());
  CHECK(reload(path).seq_reserved == std::numeric_limits<std::uint64_t>::max());
}

TEST_CASE("a state file without the optional fields takes their defaults", "[agent][state][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  protocol::key k{};
  k[0] = 1;
  write_text(path, json{{"member_id", 9},
                        {"hostname", "h"},
                        {"key", protocol::key_to_hex(k)},
                        {"heartbeat_udp", "e:7946"}}
                     .dump());
  auto s = reload(path);
  CHECK(s.member == 9);
  CHECK(s.key == k);
  CHECK(s.interval_s == 2);
  CHECK(s.transport == "auto");
  CHECK(s.seq_reserved == 0);
  CHECK(s.heartbeat_tls.empty());
  CHECK(s.pool.empty());
}

TEST_CASE("a state file readable or writable by group or others is refused, naming the path and mode",
          "[agent][state][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  REQUIRE(save_state(path, sample_state()).empty());
  auto [mode, shown] = GENERATE(table<mode_t, std::string>({
    {0644, "0644"}, {0640, "0640"}, {0604, "0604"}, {0620, "0620"},
    {0602, "0602"}, {0660, "0660"}, {0666, "0666"}, {0610, "0610"}}));
  CAPTURE(shown);
  REQUIRE(::chmod(path.c_str(), mode) == 0);
  auto err = refusal(path);
  CHECK_THAT(err, Contains(path));
  CHECK_THAT(err, Contains("mode " + shown));
  CHECK_THAT(err, Contains("chmod 600"));
}

TEST_CASE("a state file with mode 0400 is accepted (owner-only)", "[agent][state][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  REQUIRE(save_state(path, sample_state()).empty());
  REQUIRE(::chmod(path.c_str(), 0400) == 0);
  CHECK(reload(path).member == 4711);
}

TEST_CASE("a missing state file is an error that says to enrol first", "[agent][state][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto err = refusal(path);
  CHECK_THAT(err, Contains(path));
  CHECK_THAT(err, Contains("does not exist"));
  CHECK_THAT(err, Contains("--enrol"));
}

TEST_CASE("load_state accepts a null error pointer", "[agent][state][unit]") {
  temp_dir dir;
  CHECK_FALSE(load_state(dir.file("nope.json"), nullptr));
}

TEST_CASE("a directory at the state path is refused as not a regular file", "[agent][state][unit]") {
  // Regression: a 0755 directory was reported as a mode problem and a 0700
  // one as invalid JSON.
  temp_dir dir;
  auto path = dir.file("state.json");
  fs::create_directory(path);
  auto mode = GENERATE(as<mode_t>{}, 0700, 0755);
  REQUIRE(::chmod(path.c_str(), mode) == 0);
  auto err = refusal(path);
  CHECK_THAT(err, Contains(path));
  CHECK_THAT(err, Contains("not a regular file"));
}

TEST_CASE("a state file that is not a JSON object is refused as such", "[agent][state][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto [text, says] = GENERATE(table<std::string, std::string>({
    {"", "not valid JSON"}, {"{", "not valid JSON"}, {"member_id=7", "not valid JSON"},
    {"{\"member_id\": 7,}", "not valid JSON"}, {"[]", "must be a JSON object"},
    {"7", "must be a JSON object"}, {"\"state\"", "must be a JSON object"},
    {"null", "must be a JSON object"}}));
  CAPTURE(text);
  write_text(path, text);
  auto err = refusal(path);
  CHECK_THAT(err, Contains(path));
  CHECK_THAT(err, Contains(says));
}

TEST_CASE("each bad field of a state file is named in the error", "[agent][state][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  REQUIRE(save_state(path, sample_state()).empty());
  auto good = json::parse(read_text(path));
  // field, replacement value (null = remove the field), what the error says
  auto [field, value, says] = GENERATE(table<std::string, std::string, std::string>({
    {"member_id", "null", "member_id: missing"},
    {"member_id", "0", "member_id: must be a positive integer"},
    {"member_id", "-3", "member_id: must be a positive integer"},
    {"member_id", "\"7\"", "member_id: must be a positive integer"},
    {"member_id", "1.5", "member_id: must be a positive integer"},
    {"hostname", "null", "hostname: missing"},
    {"hostname", "5", "hostname: must be a string"},
    {"key", "null", "key: missing"},
    {"key", "\"abc\"", "key: must be 64 hex characters"},
    {"key", "\"zz" + std::string(62, '0') + "\"", "key: must be 64 hex characters"},
    {"key", "\"" + std::string(66, 'a') + "\"", "key: must be 64 hex characters"},
    {"heartbeat_udp", "null", "heartbeat_udp: missing"},
    {"heartbeat_udp", "[]", "heartbeat_udp: must be a string"},
    {"pool", "3", "pool: must be a string"},
    {"api_base", "false", "api_base: must be a string"},
    {"heartbeat_tls", "{}", "heartbeat_tls: must be a string"},
    {"transport", "\"quic\"", "transport: must be udp, tls or auto"},
    {"transport", "\"UDP\"", "transport: must be udp, tls or auto"},
    {"ca_file", "true", "ca_file: must be a string"},
    {"tls_server_name", "1", "tls_server_name: must be a string"},
    {"interval_s", "0", "interval_s: must be an integer 1..60"},
    {"interval_s", "61", "interval_s: must be an integer 1..60"},
    {"interval_s", "-2", "interval_s: must be an integer 1..60"},
    {"interval_s", "\"2\"", "interval_s: must be an integer 1..60"},
    {"interval_s", "2.5", "interval_s: must be an integer 1..60"},
    // Regression: get<int>() truncated 2^32 + 2 to 2 and accepted it.
    {"interval_s", "4294967298", "interval_s: must be an integer 1..60"},
    {"interval_s", "18446744073709551615", "interval_s: must be an integer 1..60"},
    {"seq_reserved", "-1", "seq_reserved: must be a non-negative integer"},
    {"seq_reserved", "\"5\"", "seq_reserved: must be a non-negative integer"},
    {"seq_reserved", "1e3", "seq_reserved: must be a non-negative integer"},
  }));
  CAPTURE(field, value);
  auto j = good;
  if (value == "null") {
    j.erase(field);
  } else {
    j[field] = json::parse(value);
  }
  write_text(path, j.dump());
  auto err = refusal(path);
  CHECK_THAT(err, Contains("state file " + path + ": " + says));
}

TEST_CASE("saving twice replaces the file and leaves no temp file behind", "[agent][state][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto s = sample_state();
  REQUIRE(save_state(path, s).empty());
  s.seq_reserved += 4096;
  s.pool = "web-us";
  REQUIRE(save_state(path, s).empty());
  CHECK(dir.entries() == std::set<std::string>{"state.json"});
  auto back = reload(path);
  CHECK(back.seq_reserved == s.seq_reserved);
  CHECK(back.pool == "web-us");
}

TEST_CASE("a stale temp file from a crash is replaced by the next save", "[agent][state][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  REQUIRE(save_state(path, sample_state()).empty());
  // Half a file, world-readable and even read-only: what a crash mid-write
  // (or an older version) may have left.
  auto stale_mode = GENERATE(as<mode_t>{}, 0644, 0400, 0000);
  CAPTURE(stale_mode);
  write_text(path + ".tmp", "{\"member_id\": 1, \"key\": \"00", stale_mode);
  auto s = sample_state();
  s.seq_reserved = 99;
  REQUIRE(save_state(path, s).empty());
  CHECK(dir.entries() == std::set<std::string>{"state.json"});
  CHECK(mode_of(path) == 0600);
  CHECK(reload(path).seq_reserved == 99);
}

TEST_CASE("saving into a missing directory fails, naming the path, and creates nothing",
          "[agent][state][unit]") {
  temp_dir dir;
  auto path = dir.file("missing/state.json");
  auto err = save_state(path, sample_state());
  CHECK_THAT(err, Contains(path));
  CHECK_THAT(err, Contains("create"));
  CHECK(dir.entries().empty());
}

TEST_CASE("saving where the parent directory is a file fails", "[agent][state][unit]") {
  temp_dir dir;
  write_text(dir.file("blocker"), "x");
  auto path = dir.file("blocker/state.json");
  auto err = save_state(path, sample_state());
  CHECK_THAT(err, Contains(path));
  CHECK(dir.entries() == std::set<std::string>{"blocker"});
}

TEST_CASE("a state file in the current directory (no slash in the path) saves and loads",
          "[agent][state][unit]") {
  temp_dir dir;
  auto old = fs::current_path();
  fs::current_path(dir.path());
  auto err = save_state("state.json", sample_state());
  std::string load_err;
  auto s = load_state("state.json", &load_err);
  fs::current_path(old);
  CHECK(err.empty());
  REQUIRE(s);
  CHECK(s->member == 4711);
}

// ---- seq_source -------------------------------------------------------------

TEST_CASE("sequence numbers start at the clock when it is past the reservation", "[agent][seq][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto s = sample_state();
  s.seq_reserved = 1000;
  seq_source seqs(path, s, 16);
  REQUIRE(seqs.start(now_2023_ms).empty());
  std::string err;
  CHECK(seqs.next(&err) == std::optional<std::uint64_t>(now_2023_ms));
  CHECK(seqs.next(&err) == std::optional<std::uint64_t>(now_2023_ms + 1));
}

TEST_CASE("sequence numbers start at the reservation when it is past the clock", "[agent][seq][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto s = sample_state();
  s.seq_reserved = now_2023_ms + 5'000'000;
  seq_source seqs(path, s, 16);
  REQUIRE(seqs.start(now_2023_ms).empty());
  std::string err;
  CHECK(seqs.next(&err) == std::optional<std::uint64_t>(now_2023_ms + 5'000'000));
}

TEST_CASE("sequence numbers start at 1 with no reservation and a clock at or before the epoch",
          "[agent][seq][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto s = sample_state();
  s.seq_reserved = 0;
  auto now = GENERATE(as<std::int64_t>{}, 0, -5);
  seq_source seqs(path, s, 8);
  REQUIRE(seqs.start(now).empty());
  std::string err;
  CHECK(seqs.next(&err) == std::optional<std::uint64_t>(1));
}

TEST_CASE("start saves the first block's reservation before any number is handed out",
          "[agent][seq][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto s = sample_state();
  s.seq_reserved = 0;
  seq_source seqs(path, s, 4096);
  REQUIRE(seqs.start(now_2023_ms).empty());
  CHECK(s.seq_reserved == now_2023_ms + 4096);
  CHECK(reload(path).seq_reserved == now_2023_ms + 4096);
  CHECK(seqs.peek() == now_2023_ms);
}

TEST_CASE("every number handed out is below the reservation already on disk", "[agent][seq][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto s = sample_state();
  s.seq_reserved = 0;
  seq_source seqs(path, s, 4);
  REQUIRE(seqs.start(now_2023_ms).empty());
  std::uint64_t last = 0;
  int saves_seen = 0;
  std::uint64_t on_disk_before = reload(path).seq_reserved;
  for (int i = 0; i < 25; ++i) {
    std::string err;
    auto n = seqs.next(&err);
    INFO("i=" << i << " err=" << err);
    REQUIRE(n);
    CHECK(*n > last);
    if (i > 0) {
      CHECK(*n == last + 1); // no gaps within one run
    }
    last = *n;
    auto on_disk = reload(path).seq_reserved;
    CHECK(*n < on_disk);
    if (on_disk != on_disk_before) {
      ++saves_seen;
      on_disk_before = on_disk;
    }
  }
  // 25 numbers from blocks of 4: the first block at start, then one save
  // per further block (numbers 4, 8, ..., 24 each start one).
  CHECK(saves_seen == 6);
}

TEST_CASE("a zero block size is treated as one", "[agent][seq][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto s = sample_state();
  s.seq_reserved = 0;
  seq_source seqs(path, s, 0);
  REQUIRE(seqs.start(100).empty());
  std::string err;
  for (std::uint64_t want = 100; want < 105; ++want) {
    auto n = seqs.next(&err);
    REQUIRE(n);
    CHECK(*n == want);
    CHECK(reload(path).seq_reserved == want + 1);
  }
}

TEST_CASE("a restart continues strictly above every number handed out before, even when the clock stepped back",
          "[agent][seq][unit]") {
  // The requirement: sequence numbers survive agent restarts (no
  // self-inflicted replay rejects). Each run hands out some numbers and
  // then "crashes" (nothing is saved on the way out); the next run loads
  // the file afresh with a clock that went backwards.
  temp_dir dir;
  auto path = dir.file("state.json");
  auto block = GENERATE(as<std::uint64_t>{}, 1, 4, 4096);
  auto clock_step_ms = GENERATE(as<std::int64_t>{}, 0, -1, -3'600'000, -now_2023_ms);
  CAPTURE(block, clock_step_ms);
  {
    auto s = sample_state();
    s.seq_reserved = 0;
    REQUIRE(save_state(path, s).empty());
  }
  std::uint64_t highest = 0;
  std::int64_t now = now_2023_ms;
  // Numbers taken per run: none, fewer than a block, exactly a block, more.
  const std::vector<std::uint64_t> per_run = {0, 1, 3, block, block + 1, 0, 2 * block + 1, 2};
  for (std::size_t run = 0; run < per_run.size(); ++run) {
    auto s = reload(path);
    seq_source seqs(path, s, block);
    REQUIRE(seqs.start(now).empty());
    for (std::uint64_t i = 0; i < per_run[run]; ++i) {
      std::string err;
      auto n = seqs.next(&err);
      INFO("run " << run << " number " << i << ": " << err);
      REQUIRE(n);
      REQUIRE(*n > highest);
      highest = *n;
    }
    // Even the first number of a run that took none is above everything.
    CHECK((seqs.peek() > highest || highest == 0));
    now += clock_step_ms;
  }
}

TEST_CASE("a restart with the clock far ahead continues from the clock", "[agent][seq][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto s = sample_state();
  s.seq_reserved = 0;
  seq_source first(path, s, 4096);
  REQUIRE(first.start(now_2023_ms).empty());
  std::string err;
  REQUIRE(first.next(&err));
  auto again = reload(path);
  seq_source second(path, again, 4096);
  REQUIRE(second.start(now_2023_ms + 86'400'000).empty());
  CHECK(second.next(&err) == std::optional<std::uint64_t>(now_2023_ms + 86'400'000));
}

TEST_CASE("next before start hands out nothing and says why", "[agent][seq][unit]") {
  temp_dir dir;
  auto s = sample_state();
  seq_source seqs(dir.file("state.json"), s);
  std::string err;
  CHECK_FALSE(seqs.next(&err));
  CHECK_THAT(err, Contains("not started"));
  CHECK_FALSE(seqs.next(nullptr));
}

TEST_CASE("skip_past continues above the engine's last number and persists it", "[agent][seq][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto s = sample_state();
  s.seq_reserved = 0;
  seq_source seqs(path, s, 16);
  REQUIRE(seqs.start(now_2023_ms).empty());
  std::string err;
  REQUIRE(seqs.next(&err));
  // The engine accepted a far higher number (a state file restored from an
  // old backup while another copy ran on).
  const std::uint64_t engine_last = now_2023_ms + 10'000'000;
  REQUIRE(seqs.skip_past(engine_last).empty());
  CHECK(seqs.next(&err) == std::optional<std::uint64_t>(engine_last + 1));
  CHECK(reload(path).seq_reserved > engine_last + 1);
  // A restart with the old clock still continues above it.
  auto again = reload(path);
  seq_source restarted(path, again, 16);
  REQUIRE(restarted.start(now_2023_ms).empty());
  auto n = restarted.next(&err);
  REQUIRE(n);
  CHECK(*n > engine_last + 1);
}

TEST_CASE("skip_past below the next number changes nothing", "[agent][seq][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto s = sample_state();
  s.seq_reserved = 0;
  seq_source seqs(path, s, 16);
  REQUIRE(seqs.start(now_2023_ms).empty());
  std::string err;
  REQUIRE(seqs.next(&err));
  REQUIRE(seqs.next(&err));
  auto reserved = reload(path).seq_reserved;
  auto engine_last = GENERATE(as<std::uint64_t>{}, 0, 5, now_2023_ms, now_2023_ms + 1);
  CAPTURE(engine_last);
  CHECK(seqs.skip_past(engine_last).empty());
  CHECK(seqs.next(&err) == std::optional<std::uint64_t>(now_2023_ms + 2));
  CHECK(reload(path).seq_reserved == reserved);
}

TEST_CASE("skip_past the number about to be handed out moves just above it", "[agent][seq][unit]") {
  temp_dir dir;
  auto path = dir.file("state.json");
  auto s = sample_state();
  s.seq_reserved = 0;
  seq_source seqs(path, s, 16);
  REQUIRE(seqs.start(now_2023_ms).empty());
  REQUIRE(seqs.skip_past(now_2023_ms).empty());
  std::string err;
  CHECK(seqs.next(&err) == std::optional<std::uint64_t>(now_2023_ms + 1));
}

TEST_CASE("a reservation that cannot be saved stops sequence numbers instead of handing out unreserved ones",
          "[agent][seq][unit]") {
  // Tests may run as root, where a read-only directory is still writable:
  // take the directory away (or put a file in its place) instead.
  temp_dir dir;
  auto state_dir = dir.path() / "state";
  fs::create_directory(state_dir);
  auto path = (state_dir / "state.json").string();
  auto s = sample_state();
  s.seq_reserved = 0;
  seq_source seqs(path, s, 4);
  REQUIRE(seqs.start(now_2023_ms).empty());
  const std::uint64_t reserved = now_2023_ms + 4;
  REQUIRE(s.seq_reserved == reserved);

  auto replace_with_file = GENERATE(false, true);
  CAPTURE(replace_with_file);
  fs::remove_all(state_dir);
  if (replace_with_file) {
    write_text(state_dir.string(), "not a directory");
  }

  // The numbers already reserved are still handed out.
  std::string err;
  for (std::uint64_t want = now_2023_ms; want < reserved; ++want) {
    auto n = seqs.next(&err);
    REQUIRE(n);
    CHECK(*n == want);
  }
  // Beyond them: nothing, with the save error, however often it is asked.
  for (int i = 0; i < 3; ++i) {
    err.clear();
    CHECK_FALSE(seqs.next(&err));
    CHECK_THAT(err, Contains(path));
    CHECK(s.seq_reserved == reserved); // not advanced by the failed save
    CHECK(seqs.peek() == reserved);
  }
  CHECK_FALSE(seqs.next(nullptr));
  // skip_past cannot save either: it reports it and does not move.
  CHECK_THAT(seqs.skip_past(reserved + 100), Contains(path));
  CHECK(seqs.peek() == reserved);
  CHECK(s.seq_reserved == reserved);

  // Once the file can be written again, numbers resume where they stopped,
  // and the new reservation is on disk before the number is used.
  fs::remove_all(state_dir);
  fs::create_directory(state_dir);
  auto n = seqs.next(&err);
  INFO(err);
  REQUIRE(n);
  CHECK(*n == reserved);
  CHECK(reload(path).seq_reserved > reserved);
}

TEST_CASE("start reports a reservation that cannot be saved and hands out nothing", "[agent][seq][unit]") {
  temp_dir dir;
  auto path = dir.file("missing/state.json");
  auto s = sample_state();
  s.seq_reserved = 7;
  seq_source seqs(path, s);
  auto err = seqs.start(now_2023_ms);
  CHECK_THAT(err, Contains(path));
  CHECK(s.seq_reserved == 7);
  std::string next_err;
  CHECK_FALSE(seqs.next(&next_err));
  CHECK_THAT(next_err, Contains("not started"));
}

TEST_CASE("skip_past the largest sequence number reports exhaustion instead of wrapping to 0",
          "[agent][seq][unit]") {
  // Regression: last + 1 wrapped to 0, the reservation 0 + block was saved
  // (lower than every number used) and next() then said "not started".
  temp_dir dir;
  auto path = dir.file("state.json");
  auto s = sample_state();
  s.seq_reserved = 0;
  seq_source seqs(path, s, 16);
  REQUIRE(seqs.start(now_2023_ms).empty());
  auto err = seqs.skip_past(std::numeric_limits<std::uint64_t>::max());
  CHECK_THAT(err, Contains("re-enrol"));
  CHECK(reload(path).seq_reserved == now_2023_ms + 16);
  std::string next_err;
  CHECK(seqs.next(&next_err) == std::optional<std::uint64_t>(now_2023_ms));
}

TEST_CASE("a reservation that would overflow is refused and never saved wrapped", "[agent][seq][unit]") {
  // Regression: from + block wrapped and a tiny seq_reserved was saved, so
  // the next run would restart at the clock, below numbers already used.
  temp_dir dir;
  auto path = dir.file("state.json");
  auto s = sample_state();
  const auto near_end = std::numeric_limits<std::uint64_t>::max() - 2;
  s.seq_reserved = near_end;
  REQUIRE(save_state(path, s).empty());
  seq_source seqs(path, s, 16);
  auto err = seqs.start(now_2023_ms);
  CHECK_THAT(err, Contains("exhausted"));
  CHECK(s.seq_reserved == near_end);
  CHECK(reload(path).seq_reserved == near_end);
}
