#pragma once

// Cluster actor: this node's part in a cluster of balctld nodes sharing one
// Redis (docs/design/redis-and-cluster.md). Every lease_ttl/3 (at most 1 s) it renews
// its node registration and the leases of the pools it owns, takes free or
// expired pools up to its fair share (pools / live nodes, rendezvous-hashed
// so nodes prefer different pools), gives up pools beyond it when nodes
// join, and tells the supervisor which pools it owns (own_atom, with the
// lease's fencing token, which the store then requires) and which node
// owns the others (owners_atom: the owner's supervisor, through CAF's
// middleman, for forwarding). A lease it fails to renew, or cannot renew
// before it would expire, is given up at once. Runs detached: its Redis
// and middleman calls block.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "actors/messages.hpp"
#include "adapters/store/redis_leases.hpp"
#include "config/config.hpp"
#include "engine/clock.hpp"
#include "engine/metrics.hpp"

namespace balctl {

struct cluster_deps {
  caf::actor supervisor;
  caf::actor store;
  std::shared_ptr<lease_table> leases;
  std::string node;      // this node's id
  std::string forward;   // host:port other nodes reach its supervisor at ("" = none)
  std::string admin;     // its admin API address, for `balctl cluster status`
  std::int64_t ttl_ms = 10'000;
  const clock* clk = nullptr; // the engine's: the pools compare lease_atom's times with it
  std::vector<std::string> pools; // every pool the cluster serves
};

caf::behavior cluster_actor(caf::event_based_actor* self, cluster_deps d);

struct engine_handles;

/// CAF's middleman, which carries messages between nodes; with
/// cluster.tls_* (c.tls()) also CAF's OpenSSL module, set to show this
/// node's certificate and to require from every peer, in both directions,
/// a certificate that chains to the CA file. Before the actor system is
/// built; the files were checked when the config was read.
void load_cluster_modules(caf::actor_system_config& sys_cfg, const cluster_config& c);

/// Publishes the supervisor on cluster.listen (TCP, or TLS when the OpenSSL
/// module is loaded, for the other nodes' forwarding) and spawns the
/// cluster actor. Null and *error when it cannot (Redis, the listen
/// address).
caf::actor start_cluster(caf::actor_system& sys, const engine_config& cfg,
                         const engine_handles& h, const clock* clk,
                         std::vector<std::string> pools,
                         const std::string& admin, std::string* error);

/// Gives this node's pools up (the others take them at once) and stops
/// the cluster actor; bounded by a few seconds.
void stop_cluster(caf::actor_system& sys, const caf::actor& cluster);

} // namespace balctl
