#include "engine/deadline_queue.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

using namespace balctl;

namespace {

std::vector<deadline_queue::position> due(deadline_queue& q, std::int64_t now) {
  std::vector<deadline_queue::position> out;
  q.pop_due(now, out);
  return out;
}

} // namespace

TEST_CASE("a deadline fires at its time, not before, and only once",
          "[deadline_queue][unit]") {
  deadline_queue q;
  q.resize(3);
  CHECK_FALSE(q.next_ms());
  CHECK(q.arm(1, 5'000));
  CHECK(q.next_ms() == 5'000);
  CHECK(due(q, 4'999).empty());
  CHECK(due(q, 5'000) == std::vector<deadline_queue::position>{1});
  CHECK(due(q, 10'000).empty());
  CHECK_FALSE(q.next_ms());
  CHECK_FALSE(q.armed_ms(1));
}

TEST_CASE("arming a member later than its live deadline keeps the earlier one",
          "[deadline_queue][unit]") {
  deadline_queue q;
  q.resize(1);
  CHECK(q.arm(0, 5'000));
  CHECK_FALSE(q.arm(0, 9'000));
  CHECK_FALSE(q.arm(0, 5'000));
  CHECK(q.armed_ms(0) == 5'000);
  CHECK(q.heap_size() == 1);
}

TEST_CASE("arming a member earlier supersedes its live deadline",
          "[deadline_queue][unit]") {
  deadline_queue q;
  q.resize(1);
  q.arm(0, 9'000);
  CHECK(q.arm(0, 5'000));
  CHECK(q.armed_ms(0) == 5'000);
  CHECK(due(q, 5'000) == std::vector<deadline_queue::position>{0});
  // The superseded entry at 9 s is stale: it never fires.
  CHECK(due(q, 9'000).empty());
  CHECK(q.heap_size() == 0);
}

TEST_CASE("a disarmed member does not fire and the next deadline moves on",
          "[deadline_queue][unit]") {
  deadline_queue q;
  q.resize(2);
  q.arm(0, 1'000);
  q.arm(1, 2'000);
  q.disarm(0);
  CHECK(q.next_ms() == 2'000);
  CHECK(due(q, 1'500).empty());
  CHECK(due(q, 2'000) == std::vector<deadline_queue::position>{1});
  CHECK(q.live() == 0);
}

TEST_CASE("due members come out earliest first",
          "[deadline_queue][unit]") {
  deadline_queue q;
  q.resize(4);
  q.arm(0, 400);
  q.arm(1, 100);
  q.arm(2, 300);
  q.arm(3, 200);
  CHECK(due(q, 350) == std::vector<deadline_queue::position>{1, 3, 2});
  CHECK(q.next_ms() == 400);
}

TEST_CASE("positions out of range are ignored, shrinking drops their deadlines",
          "[deadline_queue][unit]") {
  deadline_queue q;
  q.resize(2);
  CHECK_FALSE(q.arm(7, 100));
  q.arm(1, 100);
  q.resize(1);
  CHECK(q.live() == 0);
  CHECK(due(q, 1'000).empty());
  q.resize(3);
  CHECK_FALSE(q.armed_ms(2));
}

TEST_CASE("stale entries stay bounded however often members re-arm earlier",
          "[deadline_queue][unit]") {
  deadline_queue q;
  q.resize(10);
  for (std::int64_t round = 0; round < 1'000; ++round) {
    for (deadline_queue::position i = 0; i < 10; ++i) {
      q.arm(i, 1'000'000 - round);
    }
  }
  CHECK(q.live() == 10);
  CHECK(q.heap_size() <= 10 + 10 / 2 + 64 + 1);
  auto out = due(q, 1'000'000);
  CHECK(out.size() == 10);
}

TEST_CASE("the queue agrees with a brute-force model under random operations",
          "[deadline_queue][unit]") {
  // Enough members, and few enough pops, that stale entries pile up past
  // the rebuild bound many times over.
  auto n = GENERATE(std::size_t{50}, std::size_t{400});
  CAPTURE(n);
  std::mt19937 rng(static_cast<unsigned>(n));
  deadline_queue q;
  std::size_t max_heap = 0;
  q.resize(n);
  std::vector<std::int64_t> model(n, -1); // -1 = not armed
  std::int64_t now = 0;
  for (int step = 0; step < 20'000; ++step) {
    auto i = static_cast<deadline_queue::position>(rng() % n);
    switch (rng() % 16) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
      case 5:
      case 6:
      case 7:
      case 8:
      case 9:
      case 10:
      case 11: {
        std::int64_t at = now + static_cast<std::int64_t>(rng() % 100'000);
        q.arm(i, at);
        if (model[i] < 0 || at < model[i]) {
          model[i] = at;
        }
        break;
      }
      case 12:
        q.disarm(i);
        model[i] = -1;
        break;
      default: {
        now += static_cast<std::int64_t>(rng() % 200);
        auto got = due(q, now);
        std::vector<deadline_queue::position> want;
        for (deadline_queue::position k = 0; k < n; ++k) {
          if (model[k] >= 0 && model[k] <= now) {
            want.push_back(k);
            model[k] = -1;
          }
        }
        std::sort(got.begin(), got.end());
        REQUIRE(got == want);
      }
    }
    std::optional<std::int64_t> earliest;
    for (auto m : model) {
      if (m >= 0 && (!earliest || m < *earliest)) {
        earliest = m;
      }
    }
    REQUIRE(q.next_ms() == earliest);
    REQUIRE(q.heap_size() <= n + n / 2 + 64);
    REQUIRE(q.heap_capacity() == n + n / 2 + 64);
    max_heap = std::max(max_heap, q.heap_size());
  }
  // The bound was reached, so rebuilds ran while the model was checked.
  CHECK(q.rebuilds() >= 10);
  CHECK(max_heap > 64);
}

TEST_CASE("the heap never grows past what resize reserved",
          "[deadline_queue][unit]") {
  deadline_queue q;
  const std::size_t n = 1'000;
  q.resize(n);
  // Every member armed, then re-armed earlier again and again: the worst
  // case for stale entries.
  for (std::int64_t round = 0; round < 50; ++round) {
    for (deadline_queue::position i = 0; i < n; ++i) {
      q.arm(i, 1'000'000 - round);
    }
    REQUIRE(q.heap_size() <= n + n / 2 + 64);
    REQUIRE(q.heap_capacity() == n + n / 2 + 64);
  }
}

TEST_CASE("a member re-armed at the time of one of its stale entries keeps "
          "one entry through a rebuild",
          "[deadline_queue][unit]") {
  deadline_queue q;
  q.resize(2);
  // Member 1, armed and never due here, keeps member 0's stale entry
  // buried below the top, where pop_due cannot drop it.
  q.arm(1, 500);
  q.arm(0, 1'000);
  q.arm(0, 10); // the entry at 1,000 goes stale
  std::vector<deadline_queue::position> out;
  q.pop_due(10, out);
  REQUIRE(out == std::vector<deadline_queue::position>{0});
  q.arm(0, 1'000); // the stale entry at 1,000 looks live again
  REQUIRE(q.heap_size() == 3);
  // Re-arming member 1 earlier and earlier piles up stale entries until
  // the heap is rebuilt.
  std::int64_t at = 499;
  while (q.rebuilds() == 0) {
    q.arm(1, at--);
  }
  // Exactly the live deadlines are left: one entry each.
  CHECK(q.heap_size() == q.live());
  CHECK(q.live() == 2);
  out.clear();
  q.pop_due(1'000, out);
  CHECK(out == std::vector<deadline_queue::position>{1, 0});
  CHECK(q.heap_size() == 0);
}

TEST_CASE("erasing a member shifts the later ones down and keeps their deadlines",
          "[deadline_queue][unit]") {
  deadline_queue q;
  q.resize(4);
  q.arm(0, 100);
  q.arm(1, 50);
  q.arm(2, 300);
  q.arm(3, 200);
  q.erase(1);
  CHECK(q.size() == 3);
  CHECK(q.live() == 3);
  CHECK(q.armed_ms(0) == 100);
  CHECK(q.armed_ms(1) == 300); // was 2
  CHECK(q.armed_ms(2) == 200); // was 3
  CHECK(q.next_ms() == 100);
  CHECK(due(q, 1000) == std::vector<deadline_queue::position>{0, 2, 1});
  q.erase(7); // out of range: nothing
  CHECK(q.size() == 3);
}
