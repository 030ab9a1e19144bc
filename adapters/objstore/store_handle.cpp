#include "adapters/objstore/store_handle.hpp"

#include "engine/log.hpp"

namespace balctl::objstore {

store_handle::store_handle(const clock& clk, int url_ttl_s, std::size_t max_queued)
  : clk_(clk), url_ttl_s_(url_ttl_s), max_queued_(max_queued), worker_([this] { run(); }) {}

store_handle::~store_handle() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  worker_.join();
}

void store_handle::attach(std::shared_ptr<object_store> store) {
  {
    std::lock_guard<std::mutex> g(mu_);
    store_ = std::move(store);
  }
  wake_.notify_all();
}

std::string store_handle::presign(const std::string& method, const std::string& key) const {
  std::shared_ptr<object_store> s;
  {
    std::lock_guard<std::mutex> g(mu_);
    s = store_;
  }
  std::string why = "no object store yet";
  if (s) {
    try {
      return s->presign(method, key, url_ttl_s_, clk_.now_ms());
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
      if (queue_.size() >= max_queued_) {
        ++dropped;
        continue;
      }
      queue_.push_back(std::move(k));
    }
    counters_.remove_dropped += dropped;
  }
  if (dropped > 0) {
    log::warn("chunk_remove_dropped", {{"keys", std::to_string(dropped)},
                                       {"queued", std::to_string(max_queued_)}});
  }
  wake_.notify_all();
}

void store_handle::drain() {
  std::unique_lock<std::mutex> g(mu_);
  idle_.wait(g, [&] { return (queue_.empty() || !store_) && !busy_; });
}

store_handle_counters store_handle::counters() const {
  std::lock_guard<std::mutex> g(mu_);
  return counters_;
}

void store_handle::run() {
  std::unique_lock<std::mutex> g(mu_);
  for (;;) {
    wake_.wait(g, [&] { return stop_ || (store_ && !queue_.empty()); });
    if (stop_) {
      // Shutting down: a removal in progress finished; the rest are left
      // (the next run's cleanup, or the bucket's lifecycle rule).
      if (!queue_.empty()) {
        log::info("chunk_remove_abandoned", {{"keys", std::to_string(queue_.size())}});
      }
      return;
    }
    auto key = std::move(queue_.front());
    queue_.pop_front();
    auto s = store_;
    busy_ = true;
    g.unlock();
    std::string err;
    try {
      s->remove(key);
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
