// The actors' handle on the object store (adapters/objstore/store_handle):
// removals leave the caller at once and run on the handle's thread, in
// order, counted; an engine without a store presigns and removes nothing;
// a full queue drops and counts; shutdown waits a bounded time. A real embedded chunk store for the file side,
// a recording store for what the handle asks of a backend.

#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>

#include "adapters/objstore/chunk_store.hpp"
#include "adapters/objstore/store_handle.hpp"
#include "engine/clock.hpp"
#include "tests/e2e/process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace balctl;
using namespace balctl::objstore;

namespace {

// Records what it is asked; remove() can be held until released (and
// counts the calls that entered), and refuses keys starting with "bad".
class recording_store final : public object_store {
public:
  std::string presign(const std::string& method, const std::string& key, int ttl_s,
                      std::int64_t now_ms) const override {
    if (!valid_key(key)) {
      throw store_error("invalid key");
    }
    return "https://bucket.test/" + key + "?m=" + method + "&exp=" +
           std::to_string(now_ms / 1000 + ttl_s);
  }
  std::string describe() const override { return "recording"; }
  void remove(const std::string& key) override {
    ++entered;
    held.wait();
    std::lock_guard<std::mutex> g(mu);
    if (key.rfind("bad", 0) == 0) {
      throw store_error("403 AccessDenied");
    }
    removed.push_back(key);
  }
  void remove_prefix(const std::string&) override {}

  /// Lets held removals go.
  void release() {
    if (!released.exchange(true)) {
      gate.set_value();
    }
  }

  std::promise<void> gate;
  std::shared_future<void> held = gate.get_future().share();
  std::atomic<bool> released{false};
  std::atomic<int> entered{0};
  std::mutex mu;
  std::vector<std::string> removed;
};

// Releases the store's held removals when the test leaves, failed or not,
// before the handle (declared earlier) joins its worker.
struct release_on_exit {
  std::shared_ptr<recording_store> s;
  ~release_on_exit() { s->release(); }
};

// A store that does not hold its removals.
std::shared_ptr<recording_store> open_store() {
  auto s = std::make_shared<recording_store>();
  s->release();
  return s;
}

} // namespace

TEST_CASE("the store handle signs with the configured lifetime, and refused keys or no store "
          "give no URL",
          "[objstore][adapters]") {
  manual_clock clk{1'767'225'600'000};
  store_handle h(clk, 900, open_store());
  CHECK(h.presign("GET", "web/acc-1/0") ==
        "https://bucket.test/web/acc-1/0?m=GET&exp=" + std::to_string(1'767'225'600 + 900));
  CHECK(h.presign("PUT", "../etc/passwd").empty()); // refused by the store, not thrown
  CHECK(h.counters().presign_failed == 1);
  store_handle none(clk, 900, nullptr);
  CHECK(none.presign("GET", "web/acc-1/0").empty());
  CHECK(none.counters().presign_failed == 1);
}

TEST_CASE("removals run in order, refusals are counted, not thrown, and without a store "
          "they are dropped and counted",
          "[objstore][adapters]") {
  manual_clock clk;
  auto s = open_store();
  store_handle h(clk, 3600, s);
  h.remove({"p/r/0", "bad/r/1", "p/r/2"});
  CHECK(h.drain());
  auto c = h.counters();
  CHECK(c.removed == 2);
  CHECK(c.remove_failed == 1);
  {
    std::lock_guard<std::mutex> g(s->mu);
    CHECK(s->removed == std::vector<std::string>{"p/r/0", "p/r/2"});
  }
  store_handle none(clk, 3600, nullptr);
  none.remove({"p/r/0", "p/r/1"});
  CHECK(none.drain());
  CHECK(none.counters().remove_dropped == 2);
  CHECK(none.counters().removed == 0);
}

TEST_CASE("a removal the backend is slow to answer does not hold the caller, and a bounded "
          "drain gives up on it",
          "[objstore][adapters]") {
  manual_clock clk;
  auto s = std::make_shared<recording_store>();
  store_handle h(clk, 3600, s);
  release_on_exit guard{s};
  h.remove({"p/r/0", "p/r/1"}); // returns although the worker is stuck on p/r/0
  h.remove({"p/r/2"});
  CHECK(h.counters().removed == 0);
  CHECK_FALSE(h.drain(std::chrono::milliseconds(50)));
  s->release();
  CHECK(h.drain());
  CHECK(h.counters().removed == 3);
}

TEST_CASE("beyond its bound the removal queue drops keys and counts them", "[objstore][adapters]") {
  manual_clock clk;
  auto s = std::make_shared<recording_store>();
  store_handle h(clk, 3600, s, 2);
  release_on_exit guard{s};
  h.remove({"p/r/0"});
  // The worker holds p/r/0: the queue is empty again, with room for two.
  REQUIRE(test::wait_until([&] { return s->entered == 1; }, 10'000));
  h.remove({"p/r/1", "p/r/2", "p/r/3", "p/r/4"});
  CHECK(h.counters().remove_dropped == 2);
  s->release();
  CHECK(h.drain());
  CHECK(h.counters().removed == 3);
}

TEST_CASE("through the handle, the embedded chunk store's files go and absent keys are fine",
          "[objstore][adapters]") {
  test::temp_dir dir{"balctl-handle"};
  auto chunks = std::make_shared<chunk_store>(dir.file("chunks"), "http://127.0.0.1:1", 65536);
  std::filesystem::create_directories(dir.file("chunks/web/acc-1-1"));
  std::ofstream(dir.file("chunks/web/acc-1-1/0")) << "zero";
  std::ofstream(dir.file("chunks/web/acc-1-1/1")) << "one";
  manual_clock clk;
  store_handle h(clk, 3600, chunks);
  h.remove({"web/acc-1-1/0", "web/acc-1-1/1", "web/acc-1-1/7"});
  CHECK(h.drain());
  CHECK_FALSE(std::filesystem::exists(dir.file("chunks/web/acc-1-1/0")));
  CHECK_FALSE(std::filesystem::exists(dir.file("chunks/web/acc-1-1/1")));
  CHECK(h.counters().removed == 3);
  CHECK(h.counters().remove_failed == 0);
}
