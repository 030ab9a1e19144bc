#pragma once

// The store interface (DESIGN.md: adapters behind small interfaces). The
// embedded default is SQLite (sqlite_store); Redis comes with the multi-node
// issue. Calls may block on disk: only the store actor calls them.
// Failures throw store_error with the operation and the backend's message.

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "engine/pool_policy.hpp"
#include "engine/types.hpp"

namespace balctl {

class store_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Runtime state of one member (not its configuration).
struct member_state_record {
  member_id id = 0;
  member_state state = member_state::pending;
  std::int64_t state_since_ms = 0;
  std::int64_t last_seen_ms = 0;
  std::uint64_t last_seq = 0;
};

struct decision_record {
  std::int64_t id = 0; // assigned by record_decision
  pool_decision decision;
  std::string status = "pending"; // pending | done | failed
};

class store {
public:
  virtual ~store() = default;

  // Pools and members (declared in config for now; the admin API issue adds
  // them at run time). put_pool replaces the pool and its member list.
  virtual void put_pool(const pool_config& p) = 0;
  virtual void delete_pool(const std::string& name) = 0;
  virtual std::vector<pool_config> load_pools() = 0;

  // Member runtime state. save_member_states writes a batch in one
  // transaction (checkpoints).
  virtual void save_member_state(const member_state_record& r) = 0;
  virtual void save_member_states(const std::vector<member_state_record>& rs) = 0;
  virtual std::vector<member_state_record> load_member_states() = 0;

  // The active member of each pool.
  virtual void set_active_member(const std::string& pool, member_id m) = 0;
  virtual std::optional<member_id> active_member(const std::string& pool) = 0;

  // Decisions: recorded before they are acted on, then marked.
  virtual std::int64_t record_decision(const pool_decision& d) = 0;
  virtual void mark_decision(std::int64_t id, const std::string& status) = 0;
  /// Newest first; pool "" = all pools.
  virtual std::vector<decision_record> decisions(const std::string& pool,
                                                 std::size_t limit) = 0;
  virtual std::vector<decision_record> pending_decisions() = 0;
};

/// Opens (and creates or migrates) the SQLite store at path.
std::unique_ptr<store> open_sqlite_store(const std::string& path);

} // namespace balctl
