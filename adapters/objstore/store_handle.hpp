#pragma once

// What the actors hold of the object store (actors/protection's
// protection_deps): presign, cheap and callable from any thread, and
// remove, handed to a worker thread of its own, because an S3 DELETE is an
// HTTP round trip and an actor must never block on one.
//
// balctld opens the store before it spawns the actors (the embedded
// store's URLs need the admin listener's bound port, so the listener binds
// first). An engine with no store (no admin listener, embedded store)
// presigns nothing and removes nothing; both are counted.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "adapters/objstore/object_store.hpp"
#include "engine/clock.hpp"

namespace balctl::objstore {

struct store_handle_counters {
  std::uint64_t removed = 0;        // keys removed (absent counts: removal is idempotent)
  std::uint64_t remove_failed = 0;  // keys the store refused or could not be reached for
  std::uint64_t remove_dropped = 0; // keys beyond max_queued, or with no store
  std::uint64_t presign_failed = 0; // refused keys, or no store
};

class store_handle {
public:
  /// store: null for an engine without one. url_ttl_s: every presigned
  /// URL's life (protection.url_ttl_s). max_queued: keys waiting for
  /// removal; beyond it they are dropped, counted and logged.
  store_handle(const clock& clk, int url_ttl_s, std::shared_ptr<object_store> store,
               std::size_t max_queued = 100'000);
  /// Waits for the removal in progress (bounded by the store's own
  /// timeout), leaves the rest queued (logged), and joins the worker. Call
  /// drain() first to finish them.
  ~store_handle();
  store_handle(const store_handle&) = delete;
  store_handle& operator=(const store_handle&) = delete;

  /// A URL for method on key valid url_ttl_s from now; "" (counted, logged)
  /// when there is no store or the store refuses the key.
  std::string presign(const std::string& method, const std::string& key) const;

  /// Queues keys for removal on the worker thread; returns at once.
  void remove(std::vector<std::string> keys);

  /// Blocks until every removal queued so far is done, or limit passed;
  /// true when the queue is empty (shutdown, tests).
  bool drain(std::chrono::milliseconds limit = std::chrono::hours(24));

  store_handle_counters counters() const;

private:
  void run();

  const clock& clk_;
  int url_ttl_s_;
  std::shared_ptr<object_store> store_; // set once, before the worker starts
  std::size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<std::string> queue_;
  bool busy_ = false;
  bool stop_ = false;
  mutable store_handle_counters counters_;
  std::thread worker_; // last: started once the rest is built
};

} // namespace balctl::objstore
