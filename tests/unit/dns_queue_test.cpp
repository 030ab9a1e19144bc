#include <catch2/catch.hpp>

#include "engine/dns_queue.hpp"

using namespace balctl;

namespace {

dns_job job(std::int64_t id, std::string name, std::string content, int priority = 1) {
  dns_job j;
  j.id = id;
  j.priority = priority;
  j.desired.name = std::move(name);
  j.desired.content = std::move(content);
  return j;
}

} // namespace

TEST_CASE("a newer change of a queued record supersedes the older one", "[dns_queue][unit]") {
  dns_queue q;
  CHECK(q.add(job(1, "www.example.com", "192.0.2.1")).empty());
  auto sup = q.add(job(2, "WWW.example.com.", "192.0.2.2"));
  REQUIRE(sup == std::vector<std::int64_t>{1});
  auto j = q.pop(0);
  REQUIRE(j);
  CHECK(j->id == 2);
  CHECK(j->desired.content == "192.0.2.2");
  CHECK_FALSE(q.pop(0));
}

TEST_CASE("a change older than one already taken for its record never runs", "[dns_queue][unit]") {
  dns_queue q;
  q.add(job(5, "www.example.com", "192.0.2.5"));
  auto j = q.pop(0);
  REQUIRE(j);
  q.finish(*j);
  // A resumed journal entry from before the restart, older than 5.
  CHECK(q.add(job(3, "www.example.com", "192.0.2.3")) == std::vector<std::int64_t>{3});
  CHECK_FALSE(q.pop(0));
  // Another record is not affected.
  CHECK(q.add(job(3, "mail.example.com", "192.0.2.3")).empty());
  CHECK(q.pop(0));
}

TEST_CASE("one change of a record runs at a time, the next waits for it", "[dns_queue][unit]") {
  dns_queue q;
  q.add(job(1, "www.example.com", "a"));
  auto first = q.pop(0);
  REQUIRE(first);
  q.add(job(2, "www.example.com", "b"));
  CHECK_FALSE(q.pop(0));
  q.add(job(3, "other.example.com", "c"));
  auto other = q.pop(0);
  REQUIRE(other);
  CHECK(other->id == 3);
  q.finish(*first);
  auto second = q.pop(0);
  REQUIRE(second);
  CHECK(second->id == 2);
}

TEST_CASE("pool failover records run before account records, then by age", "[dns_queue][unit]") {
  dns_queue q;
  q.add(job(1, "a1.example.com", "x", 1));
  q.add(job(2, "a2.example.com", "x", 1));
  q.add(job(3, "pool.example.com", "x", 0));
  q.add(job(4, "refresh.example.com", "x", 2));
  std::vector<std::int64_t> order;
  while (auto j = q.pop(0)) {
    order.push_back(j->id);
  }
  CHECK(order == std::vector<std::int64_t>{3, 1, 2, 4});
}

TEST_CASE("a retried change waits until its not_before, a newer one replaces it", "[dns_queue][unit]") {
  dns_queue q;
  q.add(job(1, "www.example.com", "a"));
  auto j = q.pop(0);
  REQUIRE(j);
  j->attempts = 1;
  j->not_before_ms = 1000;
  CHECK_FALSE(q.retry(*j));
  CHECK(q.next_wake_ms() == 1000);
  CHECK_FALSE(q.pop(999));
  auto again = q.pop(1000);
  REQUIRE(again);
  CHECK(again->attempts == 1);

  SECTION("a newer change arriving while it runs supersedes it at retry") {
    q.add(job(2, "www.example.com", "b"));
    again->not_before_ms = 5000;
    CHECK(q.retry(*again) == std::optional<std::int64_t>(1));
    auto next = q.pop(1001);
    REQUIRE(next);
    CHECK(next->id == 2);
  }
}

TEST_CASE("the rate window never allows more than limit requests in any window", "[rate_window][unit]") {
  rate_window w(10, 1000, 2);
  // Urgent requests (pool failover records) may use the whole window at
  // once: 10, then none until the first leaves it at 1000 plus the margin
  // (a twentieth of the window, at least 50 ms).
  for (int i = 0; i < 10; ++i) {
    CHECK(w.try_acquire(0, true));
  }
  CHECK_FALSE(w.try_acquire(100, true));
  CHECK(w.next_free_ms(500, true) == 1050);
  CHECK_FALSE(w.try_acquire(1049, true));
  CHECK(w.try_acquire(1050, true));

  SECTION("the rest are paced: limit - reserve spread over the window, never a burst") {
    rate_window p(10, 1000, 2);
    std::vector<std::int64_t> at;
    for (std::int64_t t = 0; t < 3150; ++t) {
      if (p.try_acquire(t, false)) {
        at.push_back(t);
      }
    }
    // One every 1050 / 8 = 131.25 ms: 8 a window, 24 in three.
    CHECK(at.size() == 24);
    for (std::size_t i = 1; i < at.size(); ++i) {
      CHECK(at[i] - at[i - 1] >= 131);
      CHECK(at[i] - at[i - 1] <= 132);
    }
    // While paced, the reserve stays free for urgent requests.
    CHECK(p.next_free_ms(3150, true) == 3150);
    CHECK(p.next_free_ms(at.back() + 1, false) > at.back() + 1);
  }

  SECTION("sliding: no window of 1000 ms ever holds more than 10") {
    rate_window s(10, 1000, 0);
    std::vector<std::int64_t> at;
    for (std::int64_t t = 0; t < 5000; t += 7) {
      if (s.try_acquire(t, false)) {
        at.push_back(t);
      }
    }
    // A request that arrives up to the margin late still finds no more
    // than 10 in any 1000 ms before it.
    for (std::size_t i = 0; i + 10 < at.size(); ++i) {
      CHECK(at[i + 10] - at[i] >= 1050);
    }
    CHECK(at.size() >= 45);
  }
}

TEST_CASE("a pause stops every request until it ends", "[rate_window][unit]") {
  rate_window w(0, 1000, 0);
  CHECK(w.try_acquire(0, false));
  w.pause_until(3000);
  CHECK_FALSE(w.try_acquire(2999, true));
  CHECK(w.next_free_ms(100, true) == 3000);
  CHECK(w.try_acquire(3000, false));
}

TEST_CASE("retry delays grow, are jittered, cap at 5 minutes and honour Retry-After", "[dns_queue][unit]") {
  using dns::failure;
  CHECK(dns_retry_delay_ms(1, failure::transient, 0, 0.0) == 500);
  CHECK(dns_retry_delay_ms(1, failure::transient, 0, 0.999) <= 1000);
  CHECK(dns_retry_delay_ms(3, failure::transient, 0, 1.0) == 4000);
  CHECK(dns_retry_delay_ms(30, failure::transient, 0, 1.0) == 300'000);
  CHECK(dns_retry_delay_ms(1, failure::auth, 0, 1.0) == 30'000);
  CHECK(dns_retry_delay_ms(1, failure::rate_limited, 7000, 0.0) == 7000);
}

TEST_CASE("reads and lists never supersede nor wait for another job", "[dns_queue][unit]") {
  dns_queue q;
  auto job = [](dns_op op, std::int64_t id) {
    dns_job j;
    j.op = op;
    j.id = id;
    j.priority = op == dns_op::apply ? 1 : 2;
    j.desired.name = "www.example.com";
    j.desired.zone = "example.com";
    j.desired.content = "192.0.2.1";
    return j;
  };
  // Two refreshes of one record (reads get falling negative ids) and a
  // change of it: all three run, none superseded.
  CHECK(q.add(job(dns_op::read, -1)).empty());
  CHECK(q.add(job(dns_op::read, -2)).empty());
  CHECK(q.add(job(dns_op::apply, 7)).empty());
  CHECK(q.add(job(dns_op::list, -3)).empty());
  std::vector<std::int64_t> started;
  while (auto j = q.pop(0)) {
    started.push_back(j->id);
  }
  CHECK(started == std::vector<std::int64_t>{7, -3, -2, -1});
}

TEST_CASE("batches interleave: every batch's first change runs before any batch's second",
          "[dns_queue][unit]") {
  dns_queue q;
  auto job = [](std::int64_t id, int round, int priority = 1) {
    dns_job j;
    j.id = id;
    j.round = round;
    j.priority = priority;
    j.desired.name = "r" + std::to_string(id) + ".example.com";
    return j;
  };
  // Batch A: ids 1..3, batch B: ids 4..6 (journaled later), a pool record.
  for (int i = 0; i < 3; ++i) {
    q.add(job(1 + i, i));
  }
  for (int i = 0; i < 3; ++i) {
    q.add(job(4 + i, i));
  }
  q.add(job(7, 0, 0));
  std::vector<std::int64_t> order;
  while (auto j = q.pop(0)) {
    order.push_back(j->id);
  }
  CHECK(order == std::vector<std::int64_t>{7, 1, 4, 2, 5, 3, 6});
}

TEST_CASE("pop with a priority ceiling takes only jobs that urgent", "[dns_queue][unit]") {
  dns_queue q;
  dns_job a;
  a.id = 1;
  a.priority = 1;
  a.desired.name = "a.example.com";
  dns_job b = a;
  b.id = 2;
  b.priority = 0;
  b.desired.name = "b.example.com";
  q.add(a);
  CHECK_FALSE(q.pop(0, 0));
  q.add(b);
  auto j = q.pop(0, 0);
  REQUIRE(j);
  CHECK(j->id == 2);
  CHECK_FALSE(q.pop(0, 0));
  CHECK(q.pop(0)->id == 1);
}

TEST_CASE("a change the store could not journal never blocks the journaled changes after it",
          "[dns_queue][unit]") {
  dns_queue q;
  auto job = [](std::int64_t id) {
    dns_job j;
    j.id = id;
    j.desired.name = "www.example.com";
    return j;
  };
  // The store failed once: the executor acted under an id of its own.
  CHECK(q.add(job(unjournaled_id_base + 1)).empty());
  auto running = q.pop(0);
  REQUIRE(running);
  q.finish(*running);
  // The store is back: later changes of the record run (journal ids are
  // far below), none is taken for an older one.
  CHECK(q.add(job(41)).empty());
  auto next = q.pop(0);
  REQUIRE(next);
  CHECK(next->id == 41);
  q.finish(*next);
  // Journal order still decides between journaled ones.
  CHECK(q.add(job(40)) == std::vector<std::int64_t>{40});
}
