#pragma once

// Cluster membership and pool ownership in Redis (docs/design/
// redis-and-cluster.md). Each node registers itself with an expiry and
// renews it; each pool has at most one owner at a time, through a lease
// with a fencing token: taking a pool (free, or its lease expired) bumps
// the pool's token, so a write carrying an older token can be told from the
// new owner's (redis_store refuses it). Times are Redis's own clock (TIME),
// so the nodes' clocks need not agree; tests pass their own.
//
// Synchronous calls over a connection of their own (a renewal must not
// wait behind a large store write), bounded by the client's timeout;
// transport failures throw store_unavailable.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/store/redis_client.hpp"
#include "adapters/store/store.hpp"

namespace balctl {

struct node_record {
  std::string id;
  std::string info;          // what the node says about itself (JSON text)
  std::int64_t expires_ms = 0;
};

struct lease_record {
  std::string pool;
  std::string node;
  std::int64_t token = 0;    // the pool's fencing token under this lease
  std::int64_t since_ms = 0; // when this node took it
  std::int64_t expires_ms = 0;
};

/// What acquire answers: token > 0 when the caller holds the lease (taken
/// or renewed); else who does, until when.
struct lease_answer {
  std::int64_t token = 0;
  std::string holder;
  std::int64_t expires_ms = 0;
  std::int64_t now_ms = 0; // Redis's clock (or the caller's) when it answered
  /// A new token, and the last owner handed the pool over (release with
  /// handoff_ms) within handoff_ms: its final checkpoint is in the store.
  bool handed_off = false;
};

class lease_table {
public:
  /// prefix: the store's (keys "<prefix>lease:<pool>", "<prefix>fence:<pool>",
  /// "<prefix>nodes").
  lease_table(redis::client_options o, std::string prefix);
  ~lease_table();
  lease_table(const lease_table&) = delete;
  lease_table& operator=(const lease_table&) = delete;

  /// Connects within the connect timeout or throws store_error.
  void start();
  bool available() const;

  // now_ms = 0: Redis's clock. Tests pass theirs.

  /// Registers or renews this node until now + ttl; the now it used.
  std::int64_t register_node(const std::string& node, const std::string& info, std::int64_t ttl_ms,
                     std::int64_t now_ms = 0);
  /// Removes it (a clean stop).
  void unregister_node(const std::string& node);
  /// Nodes registered and not expired, by id; expired ones are removed.
  std::vector<node_record> live_nodes(std::int64_t now_ms = 0);

  /// Takes the pool when it is free or its lease expired (a new token), or
  /// renews it when node holds it (same token).
  lease_answer acquire(const std::string& pool, const std::string& node, std::int64_t ttl_ms,
                       std::int64_t now_ms = 0);
  /// Renews only the lease node holds under token and that has not
  /// expired; false means it was lost (stop acting for the pool).
  bool renew(const std::string& pool, const std::string& node, std::int64_t token,
             std::int64_t ttl_ms, std::int64_t now_ms = 0);
  /// Gives the pool up (another node may take it at once). handoff_ms > 0:
  /// the pool's final checkpoint is stored; the next node to take it within
  /// that time hears so (lease_answer::handed_off).
  void release(const std::string& pool, const std::string& node, std::int64_t token,
               std::int64_t handoff_ms = 0);
  /// Every pool's lease, expired or not, by pool.
  std::vector<lease_record> leases();
  /// The pool's current token (0 = never taken).
  std::int64_t token(const std::string& pool);
  /// A counter the Redis store moves with every change of pools, members
  /// or member keys (0 = none yet): a node that sees it move reloads them.
  std::int64_t catalog_version();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace balctl
