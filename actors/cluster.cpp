#include "actors/cluster.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <set>

#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/openssl/remote_actor.hpp>
#include <nlohmann/json.hpp>

#include "actors/engine.hpp"
#include "actors/openssl_error_queue.hpp"
#include "adapters/store/redis_store.hpp"
#include "engine/log.hpp"

namespace balctl {

namespace {

using json = nlohmann::json;
using steady = std::chrono::steady_clock;

struct held_lease {
  std::int64_t token = 0;
  steady::time_point renewed; // when Redis last confirmed it (local clock)
};

struct remote_node {
  std::string forward;
  caf::actor supervisor;
};

struct cluster_state {
  cluster_deps d;
  std::map<std::string, held_lease> held;
  std::map<std::string, remote_node> remotes;  // by node id
  std::map<std::string, std::string> told;     // pool -> owner node told to the supervisor
  std::string status = "{}";                   // the last tick's view, as JSON
  bool redis_ok = true;
  std::int64_t catalog_seen = -1; // the store's catalog version last loaded
  bool catalog_asked = false;     // a reload is under way
};

std::size_t rank(const std::string& node, const std::string& pool) {
  return std::hash<std::string>{}(node + "\n" + pool);
}

void give_up(caf::event_based_actor* self, cluster_state& s, const std::string& pool,
             const char* why) {
  auto h = s.held.find(pool);
  if (h == s.held.end()) {
    return;
  }
  log::warn("lease_given_up", {{"pool", pool}, {"token", std::to_string(h->second.token)},
                               {"reason", why}});
  self->send(s.d.supervisor, disown_atom_v, pool);
  s.held.erase(h);
}

// Fair share: the pool goes to another node with its latest state. The
// supervisor stops it and stores its final checkpoint; then the lease is
// released with a handoff marker, so the next owner restores that state
// with a short grace instead of the failover delay. Should any of it fail,
// the lease runs out as a dead node's would.
void hand_off(caf::event_based_actor* self, cluster_state& s, const std::string& pool) {
  auto h = s.held.find(pool);
  if (h == s.held.end()) {
    return;
  }
  auto token = h->second.token;
  log::info("lease_handed_off", {{"pool", pool}, {"token", std::to_string(token)},
                                 {"reason", "fair share: another node takes it"}});
  s.held.erase(h);
  auto leases = s.d.leases;
  auto node = s.d.node;
  auto marker_ms = s.d.ttl_ms;
  self->request(s.d.supervisor, std::chrono::seconds(10), handoff_atom_v, pool)
    .then(
      [=](bool) {
        try {
          leases->release(pool, node, token, marker_ms);
        } catch (const std::exception& e) {
          log::warn("lease_release_failed", {{"pool", pool}, {"error", e.what()}});
        }
      },
      [=](caf::error& e) {
        log::warn("lease_handoff_failed", {{"pool", pool}, {"error", self->system().render(e)}});
      });
}

// The owner's supervisor of another node, connected once and kept.
caf::actor remote_supervisor(caf::event_based_actor* self, cluster_state& s,
                             const std::string& node, const std::string& info) {
  auto j = json::parse(info, nullptr, false);
  auto forward = j.is_object() ? j.value("forward", "") : std::string();
  auto& r = s.remotes[node];
  if (r.forward == forward && r.supervisor) {
    return r.supervisor;
  }
  r.forward = forward;
  r.supervisor = nullptr;
  auto colon = forward.rfind(':');
  if (forward.empty() || colon == std::string::npos) {
    return nullptr;
  }
  auto host = forward.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') {
    host = host.substr(1, host.size() - 2);
  }
  auto port = static_cast<std::uint16_t>(std::atoi(forward.c_str() + colon + 1));
  auto& sys = self->system();
  // TLS when the OpenSSL module is loaded (cluster.tls_*): the peer must
  // show a certificate from our CA and accept ours, or the handshake fails
  // (CAF reports disconnect_during_handshake, whichever side refused).
  const bool tls = sys.has_openssl_manager();
  auto a = tls ? caf::openssl::remote_actor(sys, host, port)
               : sys.middleman().remote_actor(host, port);
  if (!a) {
    log::warn("cluster_node_unreachable", {{"node", node},
                                           {"forward", forward},
                                           {"tls", tls ? "on" : "off"},
                                           {"error", sys.render(a.error())}});
    return nullptr;
  }
  log::info("cluster_node_connected", {{"node", node}, {"forward", forward},
                                       {"tls", tls ? "on" : "off"}});
  r.supervisor = *a;
  return r.supervisor;
}

void tick(caf::event_based_actor* self, cluster_state& s) {
  auto& d = s.d;
  auto ttl = d.ttl_ms;
  // A lease not confirmed for this long may be another node's by now:
  // stop acting for it before that can be (a margin for clock drift).
  auto deadline = std::chrono::milliseconds(ttl - std::max<std::int64_t>(ttl / 5, 200));
  // The pools' side of the same rule: what Redis confirms in this round
  // holds until then, counted from before asking (engine clock).
  auto confirmed_until = d.clk->now_ms() + deadline.count();
  std::vector<std::string> confirmed;
  auto tell_confirmed = [&] {
    if (!confirmed.empty()) {
      self->send(d.supervisor, lease_atom_v, confirmed,
                 std::vector<std::int64_t>(confirmed.size(), confirmed_until));
    }
  };
  try {
    json info = {{"forward", d.forward}, {"admin", d.admin}};
    auto now = d.leases->register_node(d.node, info.dump(), ttl);
    // Pools or members changed through another node (or this one): the
    // supervisor reloads them and answers with every pool it knows.
    if (auto v = d.leases->catalog_version(); v != s.catalog_seen && !s.catalog_asked) {
      s.catalog_asked = true;
      auto* sp = &s;
      self->request(d.supervisor, caf::infinite, catalog_atom_v)
        .then(
          [sp, v](std::vector<std::string>& names) {
            sp->catalog_asked = false;
            sp->catalog_seen = v;
            sp->d.pools = std::move(names);
          },
          [sp, self](caf::error& e) {
            sp->catalog_asked = false;
            log::warn("cluster_catalog_failed", {{"error", self->system().render(e)}});
          });
    }
    std::set<std::string> serving(d.pools.begin(), d.pools.end());
    for (auto it = s.held.begin(); it != s.held.end();) {
      auto pool = it->first;
      ++it;
      if (serving.count(pool) == 0) { // deleted
        auto token = s.held[pool].token;
        give_up(self, s, pool, "the pool was deleted");
        d.leases->release(pool, d.node, token);
        continue;
      }
      if (d.leases->renew(pool, d.node, s.held[pool].token, ttl)) {
        s.held[pool].renewed = steady::now();
        confirmed.push_back(pool);
      } else {
        give_up(self, s, pool, "its lease was taken or expired");
      }
    }
    auto nodes = d.leases->live_nodes();
    auto leases = d.leases->leases();
    std::set<std::string> live;
    for (const auto& n : nodes) {
      live.insert(n.id);
    }
    std::map<std::string, lease_record> lease_of;
    for (const auto& l : leases) {
      lease_of[l.pool] = l;
    }
    auto n = std::max<std::size_t>(1, live.size());
    auto share = (d.pools.size() + n - 1) / n;

    // Beyond the share (a node joined): give up the pools it prefers least.
    if (s.held.size() > share) {
      std::vector<std::string> mine;
      for (const auto& [pool, h] : s.held) {
        mine.push_back(pool);
      }
      std::sort(mine.begin(), mine.end(), [&](const auto& a, const auto& b) {
        return rank(d.node, a) < rank(d.node, b);
      });
      for (std::size_t i = 0; s.held.size() > share && i < mine.size(); ++i) {
        hand_off(self, s, mine[i]);
      }
    }
    // Below it: free or expired pools, the ones this node ranks first.
    if (s.held.size() < share) {
      std::vector<std::string> free;
      for (const auto& pool : d.pools) {
        auto l = lease_of.find(pool);
        if (s.held.count(pool) == 0 && (l == lease_of.end() || l->second.expires_ms <= now)) {
          free.push_back(pool);
        }
      }
      std::sort(free.begin(), free.end(), [&](const auto& a, const auto& b) {
        return rank(d.node, a) > rank(d.node, b);
      });
      for (const auto& pool : free) {
        if (s.held.size() >= share) {
          break;
        }
        auto got = d.leases->acquire(pool, d.node, ttl);
        if (got.token > 0) {
          s.held[pool] = held_lease{got.token, steady::now()};
          lease_of[pool] = lease_record{pool, d.node, got.token, got.now_ms, got.expires_ms};
          log::info("lease_taken", {{"pool", pool}, {"token", std::to_string(got.token)}});
          // The store first: the pool's first write already carries it.
          self->send(d.store, fence_atom_v, pool, got.token);
          self->send(d.supervisor, own_atom_v, pool, got.token, got.handed_off);
          confirmed.push_back(pool);
        }
      }
    }
    // Who owns the others: their supervisors, for forwarding.
    std::map<std::string, std::string> info_of;
    for (const auto& nd : nodes) {
      info_of[nd.id] = nd.info;
    }
    for (const auto& pool : d.pools) {
      if (s.held.count(pool) != 0) {
        s.told.erase(pool);
        continue;
      }
      auto l = lease_of.find(pool);
      if (l == lease_of.end() || l->second.expires_ms <= now || live.count(l->second.node) == 0) {
        if (s.told.erase(pool) != 0) {
          self->send(d.supervisor, owners_atom_v, pool, caf::actor{}); // between owners
        }
        continue;
      }
      const auto& owner = l->second.node;
      if (owner == d.node) {
        continue; // released a moment ago, still in Redis's answer
      }
      auto t = s.told.find(pool);
      if (t != s.told.end() && t->second == owner && s.remotes[owner].supervisor) {
        continue;
      }
      if (auto sup = remote_supervisor(self, s, owner, info_of[owner])) {
        self->send(d.supervisor, owners_atom_v, pool, sup);
        s.told[pool] = owner;
      }
    }
    // The view `balctl cluster status` shows.
    json js = {{"node", d.node}, {"lease_ttl_ms", ttl}, {"pools", d.pools.size()}};
    json jn = json::array();
    for (const auto& nd : nodes) {
      std::size_t count = 0;
      for (const auto& l : leases) {
        count += l.node == nd.id && l.expires_ms > now ? 1 : 0;
      }
      auto ij = json::parse(nd.info, nullptr, false);
      jn.push_back({{"id", nd.id},
                    {"admin", ij.is_object() ? ij.value("admin", "") : ""},
                    {"forward", ij.is_object() ? ij.value("forward", "") : ""},
                    {"expires_in_ms", nd.expires_ms - now},
                    {"pools", count}});
    }
    js["nodes"] = jn;
    json jl = json::array();
    for (const auto& l : leases) {
      jl.push_back({{"pool", l.pool},
                    {"node", l.node},
                    {"token", l.token},
                    {"age_ms", now - l.since_ms},
                    {"expires_in_ms", l.expires_ms - now},
                    {"live", l.expires_ms > now}});
    }
    js["leases"] = jl;
    s.status = js.dump();
    tell_confirmed();
    if (!s.redis_ok) {
      log::info("cluster_redis_back", {});
    }
    s.redis_ok = true;
  } catch (const std::exception& e) {
    tell_confirmed(); // renewed before Redis failed
    if (s.redis_ok) {
      log::error("cluster_redis_failed", {{"error", e.what()}});
    }
    s.redis_ok = false;
    // Without Redis no lease can be confirmed: hold on only while it
    // cannot have expired.
    for (auto it = s.held.begin(); it != s.held.end();) {
      auto pool = it->first;
      auto renewed = it->second.renewed;
      ++it;
      if (steady::now() - renewed >= deadline) {
        give_up(self, s, pool, "Redis unreachable: its lease cannot be renewed");
      }
    }
  }
}

} // namespace

caf::behavior cluster_actor(caf::event_based_actor* self, cluster_deps d) {
  auto s = std::make_shared<cluster_state>();
  s->d = std::move(d);
  // At least every second: a dead node's pools are taken within a second
  // of their leases' expiry (TTL + 1 s at most), not a third of the TTL.
  auto every = std::chrono::milliseconds(
    std::clamp<std::int64_t>(s->d.ttl_ms / 3, 100, 1000));
  self->send(self, deadline_atom_v, std::int64_t{0});
  return {
    [=](deadline_atom, std::int64_t) {
      tick(self, *s);
      self->delayed_send(self, every, deadline_atom_v, std::int64_t{0});
    },
    [=](cluster_atom) -> std::string { return s->status; },
    // A clean stop: the pools go to the other nodes at once.
    [=](caf::close_atom) {
      for (const auto& [pool, h] : s->held) {
        try {
          s->d.leases->release(pool, s->d.node, h.token);
        } catch (const std::exception&) {
          break; // they expire on their own
        }
      }
      try {
        s->d.leases->unregister_node(s->d.node);
      } catch (const std::exception&) {
      }
      s->held.clear();
      self->quit();
    },
  };
}

void load_cluster_modules(caf::actor_system_config& sys_cfg, const cluster_config& c) {
  sys_cfg.load<caf::io::middleman>(); // first: the OpenSSL module needs it
  if (!c.tls()) {
    return;
  }
  // CAF 0.17 reads these actor_system_config fields (the "openssl.*"
  // options) when it makes each connection's context: any of them set turns
  // on SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT on both sides, and
  // only the CA file is trusted (not the system's store). It checks no host
  // name: any certificate that chains to the CA is a cluster node. No
  // passphrase: the key is unencrypted (config checks it loads without).
  sys_cfg.load<caf::openssl::manager>();
  sys_cfg.openssl_certificate = c.tls_cert_file;
  sys_cfg.openssl_key = c.tls_key_file;
  sys_cfg.openssl_cafile = c.tls_ca_file;
}

caf::actor start_cluster(caf::actor_system& sys, const engine_config& cfg,
                         const engine_handles& h, const clock* clk,
                         std::vector<std::string> pools, const std::string& admin,
                         std::string* error) {
  const auto& c = cfg.cluster;
  // The link is TLS exactly when the OpenSSL module is loaded; a node that
  // was asked for TLS must never fall back to plain TCP.
  const bool tls = sys.has_openssl_manager();
  if (tls != c.tls()) {
    *error = std::string("cluster: tls_cert_file is ") + (c.tls() ? "set" : "not set") +
             " but CAF's OpenSSL module is " + (tls ? "loaded" : "not loaded") +
             " (load_cluster_modules)";
    return nullptr;
  }
  // Without it one failed TLS connection ends the healthy ones
  // (actors/openssl_error_queue.hpp).
  if (tls && !openssl_error_queue_guard_active()) {
    *error = "cluster: tls_cert_file is set but SSL_read is not balctld's own "
             "(actors/openssl_error_queue): CAF's TLS links would not survive a failed "
             "connection";
    return nullptr;
  }
  cluster_deps d;
  d.supervisor = h.supervisor;
  d.store = h.store;
  d.node = c.node_id;
  d.admin = admin;
  d.ttl_ms = c.lease_ttl_ms;
  d.clk = clk;
  d.pools = std::move(pools);
  try {
    auto o = redis_options_for(cfg);
    d.leases = std::make_shared<lease_table>(o.client, o.prefix);
    d.leases->start();
  } catch (const std::exception& e) {
    *error = std::string("cluster: ") + e.what();
    return nullptr;
  }
  if (!c.listen.empty()) {
    auto colon = c.listen.rfind(':');
    auto host = c.listen.substr(0, colon);
    if (host.size() > 2 && host.front() == '[') {
      host = host.substr(1, host.size() - 2);
    }
    auto port = static_cast<std::uint16_t>(std::atoi(c.listen.c_str() + colon + 1));
    // The OpenSSL module is loaded exactly when cluster.tls_* is set.
    auto bound = tls ? caf::openssl::publish(h.supervisor, port, host.c_str(), true)
                     : sys.middleman().publish(h.supervisor, port, host.c_str(), true);
    if (!bound) {
      *error = "cluster.listen " + c.listen + (tls ? " (tls)" : "") + ": " +
               sys.render(bound.error());
      return nullptr;
    }
    auto advertise = c.advertise.empty() ? c.listen : c.advertise;
    auto acolon = advertise.rfind(':');
    // Port 0 in the address: the one the middleman bound.
    if (advertise.substr(acolon + 1) == "0") {
      advertise = advertise.substr(0, acolon + 1) + std::to_string(*bound);
    }
    d.forward = advertise;
    log::info("cluster_listening", {{"listen", c.listen}, {"port", std::to_string(*bound)},
                                    {"forward", d.forward}, {"tls", tls ? "on" : "off"}});
  }
  log::info("cluster_joining", {{"node", d.node},
                                {"pools", std::to_string(d.pools.size())},
                                {"lease_ttl_ms", std::to_string(d.ttl_ms)},
                                {"tls", tls ? "on" : "off"}});
  return sys.spawn<caf::detached>(cluster_actor, std::move(d));
}

void stop_cluster(caf::actor_system& sys, const caf::actor& cluster) {
  if (!cluster) {
    return;
  }
  caf::scoped_actor self{sys};
  self->request(cluster, std::chrono::seconds(3), caf::close_atom_v)
    .receive([] {}, [](caf::error&) {});
}

} // namespace balctl
