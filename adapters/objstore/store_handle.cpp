#include "adapters/objstore/store_handle.hpp"

#include "engine/log.hpp"

namespace balctl::objstore {

store_handle::store_handle(const clock& clk, int url_ttl_s, std::shared_ptr<object_store> store,
                           std::size_t max_queued)
  : clk_(clk),
    url_ttl_s_(url_ttl_s),
    store_(std::move(store)),
    max_queued_(max_queued),
    worker_([this] { run(); }) {}

store_handle::~store_handle() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  worker_.join();
}

std::string store_handle::presign(const std::string& method, const std::string& key) const {
  std::string why = "no object store";
  if (store_) {
    try {
      return store_->presign(method, key, url_ttl_s_, clk_.now_ms());
    } catch (const std::exception& e) {
      why = e.what();
    }
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    ++counters_.presign_failed;
  }
  log::error("chunk_presign_failed", {{"method", method}, {"key", key}, {"error", why}});
  return {};
}

void store_handle::remove(std::vector<std::string> keys) {
  std::size_t dropped = 0;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& k : keys) {
      if (!store_ || queue_.size() >= max_queued_) {
        ++dropped;
        continue;
      }
      queue_.push_back(std::move(k));
    }
    counters_.remove_dropped += dropped;
  }
  if (dropped > 0) {
    log::warn("chunk_remove_dropped", {{"keys", std::to_string(dropped)},
                                       {"store", store_ ? "queue full" : "none"}});
  }
  wake_.notify_all();
}

bool store_handle::drain(std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> g(mu_);
  return idle_.wait_for(g, limit, [&] { return queue_.empty() && !busy_; });
}

store_handle_counters store_handle::counters() const {
  std::lock_guard<std::mutex> g(mu_);
  return counters_;
}

void store_handle::run() {
  std::unique_lock<std::mutex> g(mu_);
  for (;;) {
    wake_.wait(g, [&] { return stop_ || !queue_.empty(); });
    if (stop_) {
      // Shutting down: a removal in progress finished; the rest are left
      // (the next run's cleanup, or the bucket's lifecycle rule).
      if (!queue_.empty()) {
        log::warn("chunk_remove_abandoned", {{"keys", std::to_string(queue_.size())}});
      }
      return;
    }
    auto key = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    g.unlock();
    std::string err;
    try {
      store_->remove(key);
    } catch (const std::exception& e) {
      err = e.what();
    }
    if (!err.empty()) {
      log::warn("chunk_remove_failed", {{"key", key}, {"error", err}});
    }
    g.lock();
    busy_ = false;
    ++(err.empty() ? counters_.removed : counters_.remove_failed);
    idle_.notify_all();
  }
}

} // namespace balctl::objstore
