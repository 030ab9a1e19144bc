// The store actor against a real Redis that goes away: the engine's writes
// are owed, in order, with provisional ids, and written when Redis answers
// again; what is owed is bounded; operator writes fail at once. The actor
// runs on CAF's test scheduler (its retry timer fired by hand); Redis is a
// real redis-server on a loopback port, stopped with SIGSTOP or SIGTERM.

#include <catch2/catch.hpp>

#include "actors/store_actor.hpp"
#include "adapters/store/redis_store.hpp"
#include "tests/actors/actor_test_support.hpp"
#include "tests/support/redis_server.hpp"

using namespace balctl;
using namespace balctl::test;

namespace {

template <class T>
struct answer {
  bool answered = false;
  std::optional<T> value;
  std::string error;
};

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  redis_server redis;
  std::shared_ptr<store> st;
  engine_metrics metrics;
  caf::actor actor;

  explicit fixture(std::size_t max_owed = 100'000)
    : sys(testing_config(cfg)),
      sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())) {
    redis_store_options o;
    o.client.port = redis.port();
    o.client.command_timeout_ms = 300;
    o.client.connect_timeout_ms = 300;
    o.client.reconnect_min_ms = 20;
    o.client.reconnect_max_ms = 100;
    st = open_redis_store(o);
    st->put_pool(make_pool("web", {1, 2}));
    store_actor_options so;
    so.max_owed = max_owed;
    so.retry_ms = 100;
    actor = sys.spawn(store_actor, st, &metrics, so);
    sched.run();
  }
  ~fixture() {
    redis.pause(false);
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    sched.run();
  }

  template <class T, class... Ts>
  answer<T> ask(Ts... xs) {
    auto out = std::make_shared<answer<T>>();
    sys.spawn(
      [out, xs...](caf::event_based_actor* self, caf::actor to) {
        self->request(to, caf::infinite, xs...)
          .then(
            [=](T& v) {
              out->answered = true;
              out->value = std::move(v);
            },
            [=](caf::error& e) {
              out->answered = true;
              out->error = self->system().render(e);
            });
      },
      actor);
    sched.run();
    REQUIRE(out->answered);
    return *out;
  }

  template <class... Ts>
  void tell(Ts... xs) {
    caf::anon_send(actor, xs...);
    sched.run();
  }

  /// Redis answers again (polled on the wall clock, bounded), then the
  /// actor's retry timer fires.
  void back_and_retry() {
    REQUIRE(wait_until([&] { return st->available(); }, 10'000));
    sched.advance_time(std::chrono::milliseconds(100));
    sched.run();
  }
};

pool_decision failover(member_id from, member_id to, std::int64_t at) {
  pool_decision d;
  d.kind = decision_kind::failover;
  d.pool = "web";
  d.from = from;
  d.to = to;
  d.reason = "member " + std::to_string(from) + " down";
  d.at_ms = at;
  return d;
}

dns_change_record change(const std::string& content) {
  dns_change_record c;
  c.pool = "web";
  c.provider = "cf";
  c.zone = "example.com";
  c.name = "www.example.com";
  c.type = "A";
  c.content = content;
  c.priority = 0;
  return c;
}

} // namespace

TEST_CASE("with Redis not answering, the engine's writes are owed in order and written when it is "
          "back",
          "[actors][store][redis]") {
  fixture f;
  auto first = f.ask<std::int64_t>(record_atom_v, failover(1, 2, 1000));
  REQUIRE(first.value);
  auto first_dns = f.ask<std::vector<std::int64_t>>(journal_dns_atom_v,
                                                    std::vector<dns_change_record>{change("192.0.2.2")});
  REQUIRE(first_dns.value);
  f.tell(mark_dns_atom_v, *first_dns.value, std::string("done"), std::string());
  CHECK(f.metrics.store_degraded.load() == 0);

  f.redis.pause(true);
  // A decision taken while Redis is stopped: answered at once (after the
  // one command that times out) with a provisional id after the last real.
  auto d = f.ask<std::int64_t>(record_atom_v, failover(2, 1, 2000));
  REQUIRE(d.value);
  CHECK(*d.value < 0); // provisional: never a real id
  CHECK(f.metrics.store_degraded.load() == 1);
  auto carried = change("192.0.2.1");
  carried.decision = *d.value; // the pool's change for its decision
  auto ids = f.ask<std::vector<std::int64_t>>(journal_dns_atom_v,
                                              std::vector<dns_change_record>{carried});
  REQUIRE(ids.value);
  REQUIRE(ids.value->size() == 1);
  CHECK(ids.value->front() < 0);
  f.tell(mark_dns_atom_v, *ids.value, std::string("done"), std::string());
  f.tell(mark_atom_v, *d.value, std::string("done"));
  f.tell(active_atom_v, std::string("web"), member_id{1});
  member_state_record down;
  down.id = 2;
  down.state = member_state::down;
  down.last_seen_ms = 1500;
  f.tell(save_atom_v, std::vector<member_state_record>{down});
  down.last_seen_ms = 1600; // the newer checkpoint is the one kept
  f.tell(save_atom_v, std::vector<member_state_record>{down});
  activity_line line;
  line.kind = activity_kind::decision;
  line.at_ms = 2000;
  line.message = "failover: member 2 down";
  f.tell(activity_atom_v, std::string("web"), std::vector<activity_line>{line}, std::uint64_t{100});
  // record, journal, two marks; the active member, one checkpoint, a line.
  CHECK(f.metrics.store_owed.load() == 7);
  // An operator's write is not owed: it fails now, saying why.
  auto refused = f.ask<bool>(create_pool_atom_v, make_pool("api", {7}));
  CHECK_FALSE(refused.value);
  CHECK_THAT(refused.error, Catch::Contains("redis"));

  f.redis.pause(false);
  f.back_and_retry();
  CHECK(f.metrics.store_degraded.load() == 0);
  CHECK(f.metrics.store_owed.load() == 0);

  auto ds = f.st->decisions("web", 10);
  REQUIRE(ds.size() == 2);
  CHECK(ds[0].decision.at_ms == 2000);
  CHECK(ds[0].status == "done");
  CHECK(ds[1].status == "pending");
  auto cs = f.st->dns_changes("web", 10);
  REQUIRE(cs.size() == 2);
  CHECK(cs[0].content == "192.0.2.1");
  CHECK(cs[0].status == "done");
  CHECK(cs[0].decision == ds[0].id); // the provisional decision id, mapped
  CHECK(cs[1].status == "done");
  CHECK(f.st->pending_dns_changes().empty());
  CHECK(f.st->active_member("web") == std::optional<member_id>(1));
  auto states = f.st->load_member_states();
  REQUIRE(states.size() == 1);
  CHECK(states[0].state == member_state::down);
  CHECK(states[0].last_seen_ms == 1600);
  auto act = f.st->activity("web", 0, 10);
  REQUIRE(act.size() == 1);
  CHECK(act[0].message == "failover: member 2 down");
  // And new writes go straight through again, with real ids after those.
  auto next = f.ask<std::int64_t>(record_atom_v, failover(1, 2, 3000));
  REQUIRE(next.value);
  CHECK(*next.value > ds[0].id);
  CHECK(f.st->decisions("web", 1).front().id == *next.value);
}

TEST_CASE("what is owed is bounded: the oldest activity lines go first, then the oldest writes",
          "[actors][store][redis]") {
  fixture f(5);
  f.redis.stop();
  activity_line line;
  line.kind = activity_kind::state_change;
  for (int i = 0; i < 3; ++i) {
    f.tell(activity_atom_v, std::string("web"), std::vector<activity_line>{line, line},
           std::uint64_t{100});
  }
  for (int i = 0; i < 4; ++i) {
    f.tell(mark_atom_v, std::int64_t{100 + i}, std::string("done"));
  }
  CHECK(f.metrics.store_degraded.load() == 1);
  // 6 lines and 4 writes, 5 kept: the three batches of lines went.
  CHECK(f.metrics.store_owed.load() == 4);
  CHECK(f.metrics.store_owed_dropped.load() == 6);
  for (int i = 0; i < 2; ++i) {
    f.tell(mark_atom_v, std::int64_t{200 + i}, std::string("done"));
  }
  CHECK(f.metrics.store_owed.load() == 5);
  CHECK(f.metrics.store_owed_dropped.load() == 7);
  // Checkpoints are one a member, whatever their number: not counted
  // against the bound, never dropped.
  std::vector<member_state_record> rs(2);
  rs[0].id = 1;
  rs[1].id = 2;
  for (int i = 0; i < 10; ++i) {
    f.tell(save_atom_v, rs);
  }
  CHECK(f.metrics.store_owed.load() == 7);
  CHECK(f.metrics.store_owed_dropped.load() == 7);
}

TEST_CASE("a pool deleted while Redis is away stays deleted: nothing owed for it comes back",
          "[actors][store][redis]") {
  fixture f;
  f.redis.pause(true);
  f.tell(active_atom_v, std::string("web"), member_id{2});
  activity_line line;
  line.kind = activity_kind::decision;
  f.tell(activity_atom_v, std::string("web"), std::vector<activity_line>{line}, std::uint64_t{100});
  CHECK(f.metrics.store_degraded.load() == 1);
  f.tell(delete_pool_atom_v, std::string("web"));
  f.redis.pause(false);
  f.back_and_retry();
  CHECK(f.metrics.store_degraded.load() == 0);
  CHECK(f.st->load_pools().empty());
  CHECK_FALSE(f.st->active_member("web"));
  CHECK(f.st->activity("web", 0, 10).empty());
}

TEST_CASE("the mark of a decision whose write was dropped marks nothing else", "[actors][store][redis]") {
  fixture f(2);
  f.redis.pause(true);
  auto a = f.ask<std::int64_t>(record_atom_v, failover(1, 2, 1000));
  f.ask<std::int64_t>(record_atom_v, failover(2, 1, 2000));
  f.ask<std::int64_t>(record_atom_v, failover(1, 2, 3000)); // drops a's write
  REQUIRE(a.value);
  CHECK(f.metrics.store_owed_dropped.load() == 1);
  f.redis.pause(false);
  f.back_and_retry();
  CHECK(f.metrics.store_degraded.load() == 0);
  f.tell(mark_atom_v, *a.value, std::string("failed"));
  auto ds = f.st->decisions("web", 10);
  REQUIRE(ds.size() == 2);
  CHECK(ds[0].decision.at_ms == 3000);
  CHECK(ds[1].decision.at_ms == 2000);
  CHECK(ds[0].status == "pending"); // neither row marked by a's mark
  CHECK(ds[1].status == "pending");
}
