#pragma once

// What the actors hold of the object store (actors/protection's
// protection_deps): presign, cheap and callable from any thread, and
// remove, handed to a worker thread of its own, because an S3 DELETE is an
// HTTP round trip and an actor must never block on one.
//
// The store itself arrives later than the actors: the embedded store's URLs
// need the admin listener's bound port. Until attach(), presign answers ""
// (no URL is handed out before the admin API answers agents anyway) and
// removals wait in the queue.

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
  std::uint64_t remove_dropped = 0; // keys beyond max_queued, left to the bucket's lifecycle
  std::uint64_t presign_failed = 0; // refused keys, or no store attached yet
};

class store_handle {
public:
  /// url_ttl_s: every presigned URL's life (protection.url_ttl_s).
  /// max_queued: keys waiting for removal; beyond it they are dropped,
  /// counted and logged.
  store_handle(const clock& clk, int url_ttl_s, std::size_t max_queued = 100'000);
  /// Waits for the removal in progress (bounded by the store's own
  /// timeout), leaves the rest queued (logged), and joins the worker.
  ~store_handle();
  store_handle(const store_handle&) = delete;
  store_handle& operator=(const store_handle&) = delete;

  /// The store, once. Removals queued before it run now.
  void attach(std::shared_ptr<object_store> store);

  /// A URL for method on key valid url_ttl_s from now; "" (counted, logged)
  /// when no store is attached or the store refuses the key.
  std::string presign(const std::string& method, const std::string& key) const;

  /// Queues keys for removal on the worker thread; returns at once.
  void remove(std::vector<std::string> keys);

  /// Blocks until every removal queued so far is done (tests, shutdown).
  void drain();

  store_handle_counters counters() const;

private:
  void run();

  const clock& clk_;
  int url_ttl_s_;
  std::size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::shared_ptr<object_store> store_;
  std::deque<std::string> queue_;
  bool busy_ = false;
  bool stop_ = false;
  mutable store_handle_counters counters_;
  std::thread worker_; // last: started once the rest is built
};

} // namespace balctl::objstore
