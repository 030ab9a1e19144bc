// The actors' handle on the object store (adapters/objstore/store_handle):
// removals leave the caller at once and run on the handle's thread, in
// order, counted; nothing is presigned before a store is attached; a full
// queue drops and counts. A real embedded chunk store for the file side,
// a recording store for what the handle asks of a backend.

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <future>

#include "adapters/objstore/chunk_store.hpp"
#include "adapters/objstore/store_handle.hpp"
#include "engine/clock.hpp"
#include "tests/support/temp_dir.hpp"

using namespace balctl;
using namespace balctl::objstore;

namespace {

// Records what it is asked; remove() can be held until released, and
// refuses keys starting with "bad".
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
    if (hold) {
      hold->wait();
    }
    std::lock_guard<std::mutex> g(mu);
    if (key.rfind("bad", 0) == 0) {
      throw store_error("403 AccessDenied");
    }
    removed.push_back(key);
  }
  void remove_prefix(const std::string&) override {}

  std::shared_future<void> const* hold = nullptr;
  std::mutex mu;
  std::vector<std::string> removed;
};

} // namespace

TEST_CASE("the store handle presigns nothing before its store is attached, then signs "
          "with the configured lifetime",
          "[objstore][adapters]") {
  manual_clock clk{1'767'225'600'000};
  store_handle h(clk, 900);
  CHECK(h.presign("GET", "web/acc-1/0").empty());
  CHECK(h.counters().presign_failed == 1);
  h.attach(std::make_shared<recording_store>());
  CHECK(h.presign("GET", "web/acc-1/0") ==
        "https://bucket.test/web/acc-1/0?m=GET&exp=" + std::to_string(1'767'225'600 + 900));
  CHECK(h.presign("PUT", "../etc/passwd").empty()); // refused by the store, not thrown
  CHECK(h.counters().presign_failed == 2);
}

TEST_CASE("removals queued before the store arrives run once it is attached, in order, "
          "refusals are counted, not thrown",
          "[objstore][adapters]") {
  manual_clock clk;
  store_handle h(clk, 3600);
  h.remove({"p/r/0", "bad/r/1", "p/r/2"});
  h.drain(); // no store: nothing can run, nothing waits
  CHECK(h.counters().removed == 0);
  auto s = std::make_shared<recording_store>();
  h.attach(s);
  h.drain();
  auto c = h.counters();
  CHECK(c.removed == 2);
  CHECK(c.remove_failed == 1);
  std::lock_guard<std::mutex> g(s->mu);
  CHECK(s->removed == std::vector<std::string>{"p/r/0", "p/r/2"});
}

TEST_CASE("a removal the backend is slow to answer does not hold the caller", "[objstore][adapters]") {
  manual_clock clk;
  std::promise<void> release;
  std::shared_future<void> held = release.get_future().share();
  auto s = std::make_shared<recording_store>();
  s->hold = &held;
  store_handle h(clk, 3600);
  h.attach(s);
  h.remove({"p/r/0", "p/r/1"}); // returns although the worker is stuck on p/r/0
  h.remove({"p/r/2"});
  CHECK(h.counters().removed == 0);
  release.set_value();
  h.drain();
  CHECK(h.counters().removed == 3);
}

TEST_CASE("beyond its bound the removal queue drops keys and counts them", "[objstore][adapters]") {
  manual_clock clk;
  store_handle h(clk, 3600, 2);
  h.remove({"p/r/0", "p/r/1", "p/r/2", "p/r/3", "p/r/4"});
  CHECK(h.counters().remove_dropped == 3);
  auto s = std::make_shared<recording_store>();
  h.attach(s);
  h.drain();
  CHECK(h.counters().removed == 2);
}

TEST_CASE("through the handle, the embedded chunk store's files go and absent keys are fine",
          "[objstore][adapters]") {
  test::temp_dir dir{"balctl-handle"};
  auto chunks = std::make_shared<chunk_store>(dir.file("chunks"), "http://127.0.0.1:1", 65536);
  std::filesystem::create_directories(dir.file("chunks/web/acc-1-1"));
  std::ofstream(dir.file("chunks/web/acc-1-1/0")) << "zero";
  std::ofstream(dir.file("chunks/web/acc-1-1/1")) << "one";
  manual_clock clk;
  store_handle h(clk, 3600);
  h.attach(chunks);
  h.remove({"web/acc-1-1/0", "web/acc-1-1/1", "web/acc-1-1/7"});
  h.drain();
  CHECK_FALSE(std::filesystem::exists(dir.file("chunks/web/acc-1-1/0")));
  CHECK_FALSE(std::filesystem::exists(dir.file("chunks/web/acc-1-1/1")));
  CHECK(h.counters().removed == 3);
  CHECK(h.counters().remove_failed == 0);
}
