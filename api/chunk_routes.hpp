#pragma once

// The embedded chunk store's route on the admin listener (docs/openapi.yaml):
//   PUT | GET | HEAD | DELETE /v1/chunks/<key>?expires=<unix s>&sig=<hex>
// No bearer token: the URL's signature is its authorisation
// (adapters/objstore/chunk_store.hpp). Chunks are files of up to
// protection.chunk_size_bytes, so the work runs on a thread of its own,
// never on the HTTP loop: the loop hands the request over (moved, body
// included) and the worker answers through the responder. balctld gives
// the route its own body limit and checks the URL's signature before the
// body is read (http::server_limits::routes, admit).

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "adapters/objstore/chunk_store.hpp"
#include "engine/clock.hpp"
#include "transport/http_server.hpp"

namespace balctl::api {

class chunk_routes {
public:
  /// Starts the worker. max_queued: requests waiting for it beyond which
  /// the route answers 503 (Retry-After: 1) rather than hold more chunks in
  /// memory.
  chunk_routes(std::shared_ptr<objstore::chunk_store> store, const clock& clk,
               std::size_t max_queued = 32);
  /// Answers what is still queued with 503 and joins the worker.
  ~chunk_routes();
  chunk_routes(const chunk_routes&) = delete;
  chunk_routes& operator=(const chunk_routes&) = delete;

  /// True when req.path is under /v1/chunks/: the request is taken (its
  /// body moved out) and answered from the worker. False otherwise, req
  /// untouched. Call from the HTTP loop.
  bool handle(http::request& req, const http::responder& respond);

  /// For the route's server_limits::route_limit::admit: the refusal of a
  /// request under /v1/chunks/ whose URL does not allow it (a bad or
  /// expired signature, another method or key), asked before its body is
  /// read. Call from the HTTP loop.
  std::optional<http::response> admit(const http::request& head) const;

  const objstore::chunk_store& store() const { return *store_; }

private:
  struct job {
    http::request req;
    http::responder respond;
  };
  void run();

  std::shared_ptr<objstore::chunk_store> store_;
  const clock& clk_;
  std::size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<job> queue_; // guarded by mu_
  bool stopping_ = false; // guarded by mu_
  std::thread worker_;    // last: started once the rest exists
};

} // namespace balctl::api
