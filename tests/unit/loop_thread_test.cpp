#include "transport/loop_thread.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

using namespace balctl;

namespace {

// An owner with one handle of its own: a timer, never started (no sockets
// in unit tests). Its close callback counts, so "closed exactly once" and
// "closed before the loop was" can be checked.
struct owner {
  uv_timer_t timer{};
  bool timer_ready = false;
  std::atomic<int> closed{0};
  std::atomic<int> stop_calls{0};
  std::thread::id stop_thread;

  bool open(loop_thread& lt) {
    if (uv_timer_init(lt.loop(), &timer) != 0) {
      return false;
    }
    timer.data = this;
    timer_ready = true;
    return true;
  }
  void close() {
    ++stop_calls;
    stop_thread = std::this_thread::get_id();
    if (timer_ready) {
      uv_close(reinterpret_cast<uv_handle_t*>(&timer), [](uv_handle_t* h) {
        ++static_cast<owner*>(h->data)->closed;
      });
      timer_ready = false;
    }
  }
};

} // namespace

TEST_CASE("a loop thread closes the owner's handles on its own thread, once",
          "[loop_thread][unit]") {
  owner o;
  loop_thread lt("test", "nowhere:0");
  {
    auto life = lt.lock_life();
    REQUIRE(lt.startable());
    REQUIRE(lt.init().empty());
    REQUIRE(o.open(lt));
    REQUIRE(lt.start([&o] { o.close(); }, true).empty());
  }
  lt.stop();
  CHECK(o.stop_calls == 1);
  CHECK(o.closed == 1);
  CHECK(o.stop_thread != std::this_thread::get_id());
  SECTION("a second stop() does nothing") {
    lt.stop();
    CHECK(o.stop_calls == 1);
    CHECK(o.closed == 1);
  }
  SECTION("start() after stop() is refused") {
    auto life = lt.lock_life();
    CHECK_FALSE(lt.startable());
  }
}

TEST_CASE("a loop thread refuses a second start", "[loop_thread][unit]") {
  owner o;
  loop_thread lt("test", "nowhere:0");
  auto life = lt.lock_life();
  REQUIRE(lt.init().empty());
  CHECK_FALSE(lt.startable());
  REQUIRE(lt.start([&o] { o.close(); }, false).empty());
  CHECK_FALSE(lt.startable());
  life.unlock();
  lt.stop();
  CHECK(o.stop_calls == 1);
}

TEST_CASE("a loop thread stopped before it started never starts", "[loop_thread][unit]") {
  loop_thread lt("test", "nowhere:0");
  int before_wake = 0;
  lt.stop([&] { ++before_wake; });
  lt.stop([&] { ++before_wake; });
  CHECK(before_wake == 1);
  auto life = lt.lock_life();
  CHECK_FALSE(lt.startable());
}

TEST_CASE("a failed start closes what was opened and runs the loop dry on the caller",
          "[loop_thread][unit]") {
  owner o;
  loop_thread lt("test", "nowhere:0");
  {
    auto life = lt.lock_life();
    REQUIRE(lt.init().empty());
    REQUIRE(o.open(lt));
    lt.abandon([&o] { o.close(); });
    // The close callbacks ran here: nothing is left on the loop.
    CHECK(o.closed == 1);
    CHECK(o.stop_thread == std::this_thread::get_id());
    CHECK(uv_loop_alive(lt.loop()) == 0);
    CHECK_FALSE(lt.startable());
  }
  lt.stop();
  CHECK(o.stop_calls == 1);
  CHECK(o.closed == 1);
}

TEST_CASE("loop lag goes to the owner's atomics when it gives them", "[loop_thread][unit]") {
  std::atomic<std::int64_t> lag_ms{-1};
  std::atomic<std::int64_t> lag_max_ms{-1};
  loop_thread own("test", "nowhere:0");
  loop_thread given("test", "nowhere:0", lag_ms, lag_max_ms);
  CHECK(&given.lag_ms() == &lag_ms);
  CHECK(&given.lag_max_ms() == &lag_max_ms);
  CHECK(own.lag_ms() == 0);
  CHECK(own.lag_max_ms() == 0);
}

TEST_CASE("a loop thread is not started without a successful init()", "[loop_thread][unit]") {
  loop_thread lt("test", "nowhere:0");
  auto life = lt.lock_life();
  CHECK_THAT(lt.start([] {}, false), Catch::Contains("init() must succeed first"));
  CHECK(lt.startable());
}

TEST_CASE("stop() from the loop thread wakes the loop, the next stop() elsewhere joins it",
          "[loop_thread][unit]") {
  // A callback on the loop thread cannot join its own thread: before, the
  // join threw, the thread was never joined and the process ended in
  // std::terminate at exit.
  owner o;
  loop_thread lt("test", "nowhere:0");
  std::atomic<bool> called_inside{false};
  std::pair<loop_thread*, std::atomic<bool>*> ctx{&lt, &called_inside};
  {
    auto life = lt.lock_life();
    REQUIRE(lt.init().empty());
    REQUIRE(o.open(lt));
    uv_timer_start(&o.timer,
                   [](uv_timer_t* t) {
                     auto* self = static_cast<std::pair<loop_thread*, std::atomic<bool>*>*>(
                       t->data);
                     self->first->stop();
                     self->second->store(true);
                   },
                   0, 0);
    o.timer.data = &ctx;
    REQUIRE(lt.start(
              [&o] {
                // The owner's close, with its own data pointer restored.
                o.timer.data = &o;
                o.close();
              },
              false)
              .empty());
  }
  // Bounded: the timer fires at once on the loop thread.
  for (int i = 0; i < 500 && !called_inside.load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(called_inside.load());
  lt.stop(); // joins and closes the loop
  CHECK(o.stop_calls == 1);
  CHECK(o.closed == 1);
}
