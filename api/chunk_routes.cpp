#include "api/chunk_routes.hpp"

#include <exception>

#include "engine/log.hpp"

namespace balctl::api {

namespace {
const std::string prefix = objstore::chunk_store::route_prefix;
} // namespace

chunk_routes::chunk_routes(std::shared_ptr<objstore::chunk_store> store, const clock& clk,
                           std::size_t max_queued)
  : store_(std::move(store)), clk_(clk), max_queued_(max_queued),
    worker_([this] { run(); }) {}

chunk_routes::~chunk_routes() {
  std::deque<job> left;
  {
    std::lock_guard<std::mutex> guard(mu_);
    stopping_ = true;
    left.swap(queue_);
  }
  cv_.notify_all();
  worker_.join();
  for (auto& j : left) {
    j.respond(http::error_response(503, "unavailable", "", "balctld is stopping"));
  }
}

std::optional<http::response> chunk_routes::admit(const http::request& head) const {
  if (head.path.compare(0, prefix.size(), prefix) != 0) {
    return std::nullopt;
  }
  return store_->authorise(head.method, head.path.substr(prefix.size()), head.query,
                           clk_.now_ms());
}

bool chunk_routes::handle(http::request& req, const http::responder& respond) {
  if (req.path.compare(0, prefix.size(), prefix) != 0) {
    return false;
  }
  std::unique_lock<std::mutex> guard(mu_);
  if (stopping_ || queue_.size() >= max_queued_) {
    guard.unlock();
    auto r = http::error_response(503, "unavailable", "",
                                  "the chunk store is busy; retry in a moment");
    r.headers.emplace_back("Retry-After", "1");
    respond(std::move(r));
    return true;
  }
  queue_.push_back(job{std::move(req), respond});
  guard.unlock();
  cv_.notify_one();
  return true;
}

void chunk_routes::run() {
  static const std::string prefix = objstore::chunk_store::route_prefix;
  for (;;) {
    job j;
    {
      std::unique_lock<std::mutex> guard(mu_);
      cv_.wait(guard, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) {
        return;
      }
      j = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      auto& req = j.req;
      j.respond(store_->handle(req.method, req.path.substr(prefix.size()), req.query,
                               std::move(req.body), clk_.now_ms()));
    } catch (const std::exception& e) {
      log::error("chunk_route_failed", {{"method", j.req.method},
                                        {"path", j.req.path},
                                        {"error", e.what()}});
      j.respond(http::error_response(500, "internal", "", "internal error"));
    }
  }
}

} // namespace balctl::api
