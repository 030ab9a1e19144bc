// The DNS executor on CAF's deterministic scheduler, with a scripted
// provider and an in-memory transport: journal before the first request,
// read-compare-write, the credential's rate window, priorities, retries
// with alerts, and newest-wins per record.

#include <catch2/catch.hpp>

#include <algorithm>
#include <deque>
#include <map>

#include <caf/scheduler/test_coordinator.hpp>

#include "actors/dns_executor.hpp"
#include "actors/dns_router.hpp"
#include "actors/store_actor.hpp"
#include "actors/supervisor.hpp"
#include "engine/bootstrap.hpp"
#include "engine/registry.hpp"
#include "tests/actors/actor_test_support.hpp"

using namespace balctl;
using namespace balctl::test;

namespace {

// The "provider" keeps its records in `live` (name → content) behind the
// transport: a read is GET /name, a write PATCH /name with the content.
struct scripted_dns {
  std::map<std::string, std::string> live;
  std::deque<std::pair<dns::http_request, dns::transport::http_done>> sent;
  std::vector<std::string> log; // "GET www" / "PATCH www=1.2.3.4"
  bool auto_answer = false;      // answer 200 as soon as asked
  // Answers the next request: status (200 = do it), optional Retry-After.
  void answer(int status = 200, std::string retry_after = {}) {
    auto [req, cb] = std::move(sent.front());
    sent.pop_front();
    dns::http_response r;
    r.status = status;
    if (!retry_after.empty()) {
      r.headers.push_back({"Retry-After", retry_after});
    }
    auto name = req.url;
    if (status == 200) {
      if (req.method == "PATCH") {
        live[name] = req.body;
      }
      r.body = live.count(name) ? live[name] : "";
    }
    cb(std::move(r));
  }
};

class fake_transport final : public dns::transport {
public:
  explicit fake_transport(scripted_dns& d) : d_(d) {}
  void submit(dns::http_request r, dns::http_options, http_done cb) override {
    d_.log.push_back(r.method + " " + r.url + (r.method == "PATCH" ? "=" + r.body : ""));
    d_.sent.emplace_back(std::move(r), std::move(cb));
    if (d_.auto_answer) {
      d_.answer();
    }
  }
  void submit(dns::dns_request, std::int64_t, dns_done cb) override {
    cb(dns::dns_response{"no DNS in this test", {}});
  }

private:
  scripted_dns& d_;
};

class scripted_op final : public dns::operation {
public:
  explicit scripted_op(dns::record d) : d_(std::move(d)) {}
  dns::step start() override { return dns::step::send(dns::http_request{"GET", d_.name, {}, {}}); }
  dns::step on_http(const dns::http_response& r) override {
    if (r.status == 429) {
      return dns::step::fail(dns::failure::rate_limited, "slow down", 7000);
    }
    if (r.status == 401) {
      return dns::step::fail(dns::failure::auth, "token refused");
    }
    if (r.status == 400) {
      return dns::step::fail(dns::failure::permanent, "no such zone");
    }
    if (r.status != 200) {
      return dns::step::fail(dns::failure::transient, "HTTP " + std::to_string(r.status));
    }
    if (patched_) {
      // The read after the write confirms it.
      return r.body == d_.content ? dns::step::done_write(true)
                                  : dns::step::fail(dns::failure::transient, "not confirmed");
    }
    if (!wrote_ && r.body == d_.content) {
      return dns::step::done_write(false);
    }
    if (wrote_) {
      patched_ = true;
      return dns::step::send(dns::http_request{"GET", d_.name, {}, {}});
    }
    wrote_ = true;
    return dns::step::send(dns::http_request{"PATCH", d_.name, {}, d_.content});
  }

private:
  dns::record d_;
  bool wrote_ = false;
  bool patched_ = false;
};

class scripted_provider final : public dns::provider {
public:
  const char* kind() const override { return "scripted"; }
  std::unique_ptr<dns::operation> apply(const dns::record& d) override {
    return std::make_unique<scripted_op>(d);
  }
  std::unique_ptr<dns::operation> read(const dns::record& d) override {
    return std::make_unique<scripted_op>(d);
  }
  std::unique_ptr<dns::operation> list(const std::string&) override { return nullptr; }
};

dns_change_record change(const std::string& name, const std::string& content,
                         int priority = 1) {
  dns::record r;
  r.name = name;
  r.content = content;
  return make_dns_change("web", "scripted", 0, priority, r);
}

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  manual_clock clk;
  engine_metrics metrics;
  std::shared_ptr<store> st = open_sqlite_store(":memory:");
  scripted_dns dns;
  caf::actor store_a;
  caf::actor exec;
  // What the submitter got: results and alerts.
  std::vector<dns_change_record> results;
  std::vector<std::string> alerts;
  caf::actor submitter;

  explicit fixture(int limit = 0, std::int64_t window_ms = 1000, int in_flight = 8)
    : sys(testing_config(cfg)),
      sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())) {
    store_a = sys.spawn(store_actor, st, &metrics, store_actor_options{});
    dns_executor_deps d;
    d.provider_id = "scripted";
    d.provider = std::make_shared<scripted_provider>();
    d.io = std::make_shared<fake_transport>(dns);
    d.rate_limit = limit;
    d.rate_window_ms = window_ms;
    d.max_in_flight = in_flight;
    d.store = store_a;
    d.clk = &clk;
    d.metrics = &metrics;
    exec = sys.spawn(dns_executor, std::move(d));
    // Arguments, not captures: a spawn with none trips UBSan inside CAF.
    submitter = sys.spawn(
      [](caf::event_based_actor*, fixture* f) -> caf::behavior {
        return {
          [f](dns_alert_atom, const std::string&, const std::string& m) {
            f->alerts.push_back(m);
          },
          [f](const std::vector<dns_change_record>& rs) {
            f->results.insert(f->results.end(), rs.begin(), rs.end());
          },
        };
      },
      this);
    sched.run();
  }
  ~fixture() {
    caf::anon_send_exit(exec, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store_a, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(submitter, caf::exit_reason::user_shutdown);
    sched.run();
  }

  void submit(std::vector<dns_change_record> cs) {
    sys.spawn(
      [](caf::event_based_actor* self, caf::actor s, caf::actor e,
         std::vector<dns_change_record> cs) {
        self->request(e, caf::infinite, submit_atom_v, std::move(cs))
          .then([self, s](const std::vector<dns_change_record>& rs) { self->send(s, rs); });
      },
      submitter, exec, std::move(cs));
    sched.run();
  }
  void submit_from_submitter(std::vector<dns_change_record> cs) {
    caf::send_as(submitter, exec, submit_atom_v, std::move(cs));
    sched.run();
  }
  void answer_all(int status = 200) {
    while (!dns.sent.empty()) {
      dns.answer(status);
      sched.run();
    }
  }
  std::string journal_status(std::int64_t id) {
    for (const auto& c : st->dns_changes("", 1000)) {
      if (c.id == id) {
        return c.status;
      }
    }
    return "missing";
  }
};

} // namespace

TEST_CASE("a DNS change is journaled before its provider hears of it, and done when it confirms",
          "[dns_executor][actors]") {
  fixture f;
  f.submit({change("www.example.test", "192.0.2.2", 0)});
  REQUIRE(f.dns.sent.size() == 1);
  // The provider has the read; the journal has the change, pending.
  auto rows = f.st->dns_changes("", 10);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].status == "pending");
  CHECK(rows[0].name == "www.example.test");
  f.answer_all();
  CHECK(f.dns.live["www.example.test"] == "192.0.2.2");
  CHECK(f.dns.log == std::vector<std::string>{"GET www.example.test",
                                              "PATCH www.example.test=192.0.2.2",
                                              "GET www.example.test"});
  f.sched.run();
  CHECK(f.journal_status(rows[0].id) == "done");
  REQUIRE(f.results.size() == 1);
  CHECK(f.results[0].status == "done");
  CHECK(f.metrics.dns_writes == 1);
}

TEST_CASE("a record already in place costs a read and no write", "[dns_executor][actors]") {
  fixture f;
  f.dns.live["www.example.test"] = "192.0.2.2";
  f.submit({change("www.example.test", "192.0.2.2")});
  f.answer_all();
  CHECK(f.dns.log == std::vector<std::string>{"GET www.example.test"});
  CHECK(f.metrics.dns_writes == 0);
  CHECK(f.metrics.dns_writes_saved == 1);
  REQUIRE(f.results.size() == 1);
  CHECK(f.results[0].error == "in place");
}

TEST_CASE("the credential never gets more requests than its window allows", "[dns_executor][actors]") {
  // 10 requests per second; one of them kept for pool failover records.
  fixture f(10, 1000, 64);
  std::vector<dns_change_record> cs;
  for (int i = 0; i < 30; ++i) {
    cs.push_back(change("a" + std::to_string(i) + ".example.test", "192.0.2.9"));
  }
  f.submit(cs);
  // Account records are paced (9 a window, one every 1050 / 9 ms), not
  // sent in a burst: one goes now.
  CHECK(f.dns.sent.size() == 1);
  // A pool failover record arriving now gets a request at once.
  f.submit({change("pool.example.test", "192.0.2.1", 0)});
  CHECK(f.dns.log.back() == "GET pool.example.test");
  std::vector<std::int64_t> at(f.dns.log.size(), f.clk.now_ms());
  int steps = 0;
  while (f.results.size() < 31 && steps++ < 2000) {
    f.answer_all();
    f.sched.run();
    while (at.size() < f.dns.log.size()) {
      at.push_back(f.clk.now_ms());
    }
    f.clk.advance(10);
    f.sched.advance_time(std::chrono::milliseconds(10));
    f.sched.run();
  }
  CHECK(f.results.size() == 31);
  CHECK(f.metrics.dns_rate_limited == 0);
  // 31 changes × (read, write, confirming read).
  CHECK(f.metrics.dns_requests == 93);
  REQUIRE(at.size() == 93);
  // No 1000 ms (plus the margin) ever saw more than 10.
  for (std::size_t i = 0; i + 10 < at.size(); ++i) {
    CHECK(at[i + 10] - at[i] >= 1000);
  }
  // Paced: 92 account requests at 9 a window take about ten windows.
  CHECK(at.back() - at.front() >= 9000);
}

TEST_CASE("pool failover records go before queued account records, past a full in-flight limit",
          "[dns_executor][actors]") {
  fixture f(0, 1000, 1);
  std::vector<dns_change_record> cs;
  for (int i = 0; i < 5; ++i) {
    cs.push_back(change("a" + std::to_string(i) + ".example.test", "192.0.2.9"));
  }
  f.submit(cs);
  f.submit({change("pool.example.test", "192.0.2.1", 0)});
  // a0 holds the one in-flight slot; the pool record starts anyway, and
  // a1 waits for a0.
  REQUIRE(f.dns.log.size() == 2);
  CHECK(f.dns.log[0] == "GET a0.example.test");
  CHECK(f.dns.log[1] == "GET pool.example.test");
  for (int i = 0; i < 4; ++i) {
    f.dns.answer();
    f.sched.run();
  }
  CHECK(std::count(f.dns.log.begin(), f.dns.log.end(), "GET a1.example.test") == 0);
}

TEST_CASE("a failing change is retried with back-off and alerts its submitter", "[dns_executor][actors]") {
  fixture f;
  f.submit_from_submitter({change("www.example.test", "192.0.2.2")});
  REQUIRE(f.dns.sent.size() == 1);
  f.dns.answer(500);
  f.sched.run();
  CHECK(f.dns.sent.empty());
  REQUIRE(f.alerts.size() == 1);
  CHECK(f.alerts[0].find("transient") != std::string::npos);
  // Retried after at most 1 s.
  f.clk.advance(1000);
  f.sched.trigger_timeouts();
  f.sched.run();
  REQUIRE(f.dns.sent.size() == 1);

  SECTION("credentials refused: retried later, not given up") {
    f.dns.answer(401);
    f.sched.run();
    f.clk.advance(2000);
    f.sched.trigger_timeouts();
    f.sched.run();
    CHECK(f.dns.sent.empty()); // auth waits at least 30 s
    f.clk.advance(60'000);
    f.sched.trigger_timeouts();
    f.sched.run();
    CHECK(f.dns.sent.size() == 1);
    f.answer_all();
    CHECK(f.dns.live["www.example.test"] == "192.0.2.2");
  }
  SECTION("429: the whole credential pauses for Retry-After") {
    f.dns.answer(429);
    f.sched.run();
    CHECK(f.metrics.dns_rate_limited == 1);
    f.submit({change("other.example.test", "192.0.2.3")});
    CHECK(f.dns.sent.empty());
    f.clk.advance(7000);
    f.sched.trigger_timeouts();
    f.sched.run();
    CHECK(f.dns.sent.size() == 2);
  }
  SECTION("a permanent refusal ends the change as failed") {
    f.dns.answer(400);
    f.sched.run();
    CHECK(f.alerts.size() == 2);
    CHECK(f.metrics.dns_changes_failed == 1);
  }
}

TEST_CASE("a newer change of a record supersedes a queued older one", "[dns_executor][actors]") {
  fixture f(0, 1000, 1);
  f.submit({change("busy.example.test", "192.0.2.1")});
  f.submit({change("www.example.test", "192.0.2.2")});
  f.submit({change("www.example.test", "192.0.2.3")});
  f.answer_all();
  CHECK(f.dns.live["www.example.test"] == "192.0.2.3");
  for (const auto& l : f.dns.log) {
    CHECK(l.find("192.0.2.2") == std::string::npos);
  }
  REQUIRE(f.results.size() == 3);
  int superseded = 0;
  for (const auto& r : f.results) {
    superseded += r.status == "superseded";
  }
  CHECK(superseded == 1);
}

namespace {

// A pool whose failover record lives at the scripted provider: the real
// pool, router and executor; heartbeats through the real ingest.
struct pool_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  manual_clock clk;
  engine_metrics metrics;
  engine_config ecfg;
  std::shared_ptr<store> st = open_sqlite_store(":memory:");
  engine_parts parts;
  std::unique_ptr<ingest> in;
  scripted_dns dns;
  engine_handles h;
  std::unordered_map<member_id, std::uint64_t> seq;

  explicit pool_fixture(std::function<void(store&)> seed = {},
                        std::string live_www = "192.0.2.1")
    : sys(testing_config(cfg)),
      sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())) {
    dns.live["www.web.test"] = live_www;
    auto p = make_pool("web", {1, 2});
    p.failover_hostname = "www.web.test";
    p.dns_provider = "scripted";
    p.members[0].public_ipv4 = "192.0.2.1";
    p.members[1].public_ipv4 = "192.0.2.2";
    ecfg.pools = {p};
    ecfg.snapshot_interval_s = 3600;
    dns_provider_config pc;
    pc.id = "scripted";
    ecfg.dns_providers = {pc};
    if (seed) {
      st->put_pool(p);
      seed(*st);
    }
    dns.auto_answer = true;
    parts = bootstrap(ecfg, *st, clk.now_ms());
    in = std::make_unique<ingest>(*parts.reg, 30'000);
    h.store = sys.spawn(store_actor, st, &metrics, store_actor_options{});
    dns_executor_deps d;
    d.provider_id = "scripted";
    d.provider = std::make_shared<scripted_provider>();
    d.io = std::make_shared<fake_transport>(dns);
    d.store = h.store;
    d.clk = &clk;
    d.metrics = &metrics;
    std::unordered_map<std::string, caf::actor> execs{
      {"scripted", sys.spawn(dns_executor, std::move(d))}};
    dns_router_deps rd;
    rd.store = h.store;
    h.dns = sys.spawn(dns_router, std::vector<dns_provider_config>{pc}, execs, rd);
    auto deps = make_supervisor_deps(ecfg, parts, h.store, h.dns, &clk, &metrics);
    h.supervisor = sys.spawn(supervisor_actor, parts.pools, deps);
    sched.run();
  }
  ~pool_fixture() {
    caf::anon_send_exit(h.supervisor, caf::exit_reason::user_shutdown);
    caf::anon_send(h.dns, caf::close_atom_v); // it stops its executors
    caf::anon_send_exit(h.store, caf::exit_reason::user_shutdown);
    sched.run();
  }
  void run_for(std::int64_t ms, std::vector<member_id> beating) {
    for (std::int64_t t = 0; t < ms; t += 250) {
      clk.advance(250);
      sched.advance_time(std::chrono::milliseconds(250));
      sched.run();
      for (auto id : beating) {
        if ((t / 250) % 4 != 0) {
          continue;
        }
        std::uint8_t buf[protocol::max_datagram_size];
        protocol::header hdr;
        hdr.member = id;
        hdr.seq = ++seq[id];
        hdr.timestamp_ms = clk.now_ms();
        auto n = protocol::encode(buf, sizeof buf, hdr, {}, key_for(id));
        ip_address src;
        ip_address::parse("127.0.0.1", src);
        REQUIRE(in->accept(buf, n, src, clk.now_ms()).ok);
        sched.run();
      }
    }
  }
};

} // namespace

TEST_CASE("a failover moves the pool's failover record to the standby's address",
          "[dns_executor][actors]") {
  pool_fixture f;
  f.run_for(3000, {1, 2});
  CHECK(f.dns.log.empty()); // nothing to move while the primary is active
  f.run_for(12'000, {2});
  CHECK(f.dns.live["www.web.test"] == "192.0.2.2");
  CHECK(f.dns.log == std::vector<std::string>{"GET www.web.test",
                                              "PATCH www.web.test=192.0.2.2",
                                              "GET www.web.test"});
  auto changes = f.st->dns_changes("web", 10);
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].status == "done");
  CHECK(changes[0].priority == 0);
  CHECK(changes[0].decision > 0);
  auto ds = f.st->decisions("web", 10);
  REQUIRE_FALSE(ds.empty());
  CHECK(ds[0].status == "done");
  CHECK(ds[0].decision.to == 2);
  CHECK(f.metrics.dns_writes == 1);
}

TEST_CASE("a restarted pool points its failover record at the active member again",
          "[dns_executor][actors]") {
  // The last run decided for member 2 and stopped before DNS moved.
  pool_fixture f([](store& s) { s.set_active_member("web", 2); }, "192.0.2.1");
  f.run_for(500, {});
  CHECK(f.dns.live["www.web.test"] == "192.0.2.2");
  CHECK(f.metrics.dns_writes == 1);
}

TEST_CASE("a down source cuts its protected account: side and change written together, then moved",
          "[dns_executor][actors][accounts]") {
  pool_fixture f([](store& s) {
    protected_account a;
    a.id = "shop";
    a.domain = "shop.web.test";
    a.source = 1;
    a.standby = 2;
    a.dns_provider = "scripted";
    REQUIRE_FALSE(validate_account(a));
    s.put_accounts("web", {a});
  });
  f.dns.live["shop.web.test"] = "192.0.2.1";
  f.run_for(3000, {1, 2});
  CHECK(f.dns.live["shop.web.test"] == "192.0.2.1");
  f.run_for(12'000, {2});
  CHECK(f.dns.live["shop.web.test"] == "192.0.2.2");
  auto stored = f.st->load_accounts();
  REQUIRE(stored.size() == 1);
  CHECK(stored[0].second.on == account_side::standby);
  auto changes = f.st->dns_changes("web", 10);
  auto shop = std::find_if(changes.begin(), changes.end(),
                           [](const dns_change_record& c) { return c.name == "shop.web.test"; });
  REQUIRE(shop != changes.end());
  CHECK(shop->status == "done");
  CHECK(shop->priority == 1);
  CHECK(shop->content == "192.0.2.2");
  CHECK(f.metrics.account_cuts == 1);
  // Heard again, the source does not take the account back by itself
  // (fail-back is manual by default).
  f.run_for(30'000, {1, 2});
  CHECK(f.dns.live["shop.web.test"] == "192.0.2.2");
}

TEST_CASE("a change of a pool given up to another node is not retried here: the new owner resumes "
          "it from the journal",
          "[dns_executor][actors][cluster]") {
  fixture f;
  f.submit_from_submitter({change("www.example.test", "192.0.2.2")});
  REQUIRE(f.dns.sent.size() == 1);
  f.dns.answer(500); // transient: retried after a back-off
  f.sched.run();
  REQUIRE(f.results.empty());
  auto id = f.st->dns_changes("web", 10).at(0).id;
  caf::anon_send(f.exec, disown_atom_v, std::string("web"));
  f.sched.run();
  f.clk.advance(60'000);
  f.sched.trigger_timeouts();
  f.sched.run();
  CHECK(f.dns.sent.empty()); // never sent again
  REQUIRE(f.results.size() == 1);
  CHECK(f.results[0].status == "failed");
  CHECK(f.results[0].error.find("another node owns pool 'web'") != std::string::npos);
  CHECK(f.journal_status(id) == "pending"); // the new owner's to resume

  // Owned again (the lease came back): its changes go out as before.
  caf::anon_send(f.exec, own_atom_v, std::string("web"));
  f.sched.run();
  f.submit_from_submitter({change("www.example.test", "192.0.2.3")});
  CHECK(f.dns.sent.size() == 1);
}
