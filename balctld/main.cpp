// balctld: the balctl engine. Loads the config, restores state from the
// store, spawns the actor tree, listens for heartbeats, and runs until
// SIGTERM/SIGINT.

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "actors/cluster.hpp"
#include "actors/control_impl.hpp"
#include "actors/engine.hpp"
#include "actors/supervisor.hpp"
#include "adapters/notify/notifier.hpp"
#include "adapters/objstore/chunk_store.hpp"
#include "adapters/objstore/store_handle.hpp"
#include "adapters/store/redis_store.hpp"
#include "api/admin_api.hpp"
#include "api/chunk_routes.hpp"
#include "bench/derive_key.hpp"
#include "config/config.hpp"
#include "engine/log.hpp"
#include "engine/secrets.hpp"
#include "transport/http_server.hpp"
#include "transport/listen_address.hpp"
#include "transport/tls_listener.hpp"
#include "transport/udp_listener.hpp"

using namespace balctl;

namespace {

struct options {
  std::string config_path;
  std::string listen; // overrides udp_listen
  std::string store_path; // overrides store_path
  std::string ready_file; // written with the bound UDP port once listening
  std::string metrics_file; // JSON counters written at exit
  std::string admin_listen; // overrides admin.listen
  std::string admin_port_file; // written with the bound admin port
  std::string admin_token_file; // a file holding an admin token (first line)
  bool check_config = false;
  bool hash_token = false;
  // Benchmark mode: synthetic pools instead of a config file.
  std::uint64_t bench_members = 0;
  std::string bench_seed = "balctl-bench";
  std::uint64_t bench_pools = 1;
  int bench_delay_s = 10;
};

void usage() {
  std::fputs(
    "usage: balctld --config FILE [--listen HOST:PORT] [--store PATH|redis://...|rediss://...]\n"
    "               [--ready-file PATH] [--metrics-file PATH] [--check-config]\n"
    "               [--admin-listen HOST:PORT] [--admin-port-file PATH]\n"
    "               [--admin-token-file PATH]\n"
    "       balctld --hash-token < token   (prints the SHA-256 to configure)\n"
    "       balctld --bench-members N [--bench-pools P] [--bench-seed S]\n"
    "               [--bench-delay-s D] --listen HOST:PORT [--metrics-file PATH]\n"
    "Runs the balctl heartbeat and failover engine. Logs go to stderr, one\n"
    "event a line. Stop with SIGTERM or SIGINT.\n",
    stderr);
}

bool parse_args(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "balctld: %s needs a value\n", a.c_str());
        return false;
      }
      out = argv[++i];
      return true;
    };
    auto number = [&](std::uint64_t& out) {
      std::string v;
      if (!value(v)) {
        return false;
      }
      try {
        std::size_t used = 0;
        out = std::stoull(v, &used);
        if (used != v.size()) {
          throw std::invalid_argument(v);
        }
      } catch (const std::exception&) {
        std::fprintf(stderr, "balctld: %s = %s: must be a number\n", a.c_str(),
                     v.c_str());
        return false;
      }
      return true;
    };
    std::uint64_t n = 0;
    if (a == "--config") {
      if (!value(o.config_path)) return false;
    } else if (a == "--listen") {
      if (!value(o.listen)) return false;
    } else if (a == "--store") {
      if (!value(o.store_path)) return false;
    } else if (a == "--ready-file") {
      if (!value(o.ready_file)) return false;
    } else if (a == "--metrics-file") {
      if (!value(o.metrics_file)) return false;
    } else if (a == "--check-config") {
      o.check_config = true;
    } else if (a == "--hash-token") {
      o.hash_token = true;
    } else if (a == "--admin-listen") {
      if (!value(o.admin_listen)) return false;
    } else if (a == "--admin-port-file") {
      if (!value(o.admin_port_file)) return false;
    } else if (a == "--admin-token-file") {
      if (!value(o.admin_token_file)) return false;
    } else if (a == "--bench-members") {
      if (!number(o.bench_members)) return false;
    } else if (a == "--bench-pools") {
      if (!number(o.bench_pools) || o.bench_pools == 0) return false;
    } else if (a == "--bench-seed") {
      if (!value(o.bench_seed)) return false;
    } else if (a == "--bench-delay-s") {
      if (!number(n)) return false;
      o.bench_delay_s = static_cast<int>(n);
    } else if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    } else {
      std::fprintf(stderr, "balctld: unknown option %s\n", a.c_str());
      usage();
      return false;
    }
  }
  if (o.config_path.empty() && o.bench_members == 0 && !o.hash_token) {
    std::fputs("balctld: --config is required\n", stderr);
    usage();
    return false;
  }
  return true;
}

// Synthetic pools for benchmarks: ids 1..N spread over P pools, keys derived
// from the seed exactly as balctl-loadgen --derive-keys derives them.
engine_config bench_config(const options& o) {
  engine_config cfg;
  cfg.store_path = ":memory:";
  cfg.snapshot_interval_s = 3600;
  cfg.admin.listen = ""; // only with --admin-listen
  cfg.pools.resize(o.bench_pools);
  for (std::uint64_t p = 0; p < o.bench_pools; ++p) {
    cfg.pools[p].name = "bench-" + std::to_string(p);
    cfg.pools[p].failover_delay_s = o.bench_delay_s;
    cfg.pools[p].members.reserve(o.bench_members / o.bench_pools + 1);
  }
  for (std::uint64_t id = 1; id <= o.bench_members; ++id) {
    member_config m;
    m.id = id;
    m.hostname = "m" + std::to_string(id) + ".bench.test";
    m.name = m.hostname;
    m.key = bench::derive_member_key(o.bench_seed, id);
    cfg.pools[(id - 1) % o.bench_pools].members.push_back(std::move(m));
  }
  return cfg;
}

// The parsed config (for a million members, hundreds of MB of small
// strings and vectors) was freed above, but it lies between the slots that
// bootstrap allocated after it, so glibc cannot shrink the heap from its top
// and keeps the pages resident. malloc_trim returns every whole free page to
// the kernel; without it a node pays for its config twice for its lifetime.
void release_free_memory() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::stol(line.substr(6));
    }
  }
  return -1;
}

void write_metrics_file(const std::string& path, const ingest& in,
                        const engine_metrics& m, std::size_t members) {
  nlohmann::json j;
  j["accepted"] = in.counters().accepted.load();
  auto& rej = j["rejected"];
  rej = nlohmann::json::object();
  for (std::size_t i = 0; i < protocol::reject_reason_count; ++i) {
    rej[protocol::to_string(static_cast<protocol::reject_reason>(i))] =
      in.counters().rejected[i].load();
  }
  j["decisions"] = m.decisions.load();
  j["failovers"] = m.failovers.load();
  j["holds"] = m.holds.load();
  j["actor_restarts"] = m.actor_restarts.load();
  j["store_errors"] = m.store_errors.load();
  j["deadlines_rearmed"] = m.deadlines_rearmed.load();
  j["member_wakes"] = m.member_wakes.load();
  j["down_lateness_ms"] = {{"samples", m.down_samples()},
                           {"p50", m.down_lateness_percentile(50)},
                           {"p99", m.down_lateness_percentile(99)},
                           {"max", m.down_lateness_percentile(100)}};
  j["members"] = members;
  j["rss_kib"] = rss_kib();
  std::ofstream out(path);
  out << j.dump(2) << "\n";
}

// The first line of a token file or of stdin, trimmed the same way for
// --hash-token and --admin-token-file so both give the same hash.
std::string read_token(std::istream& in) {
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  return token;
}

// listen's host with port, as a URL authority ("[::1]:7947" for IPv6).
std::string with_port(const std::string& listen, std::uint16_t port) {
  std::string host;
  int unused = 0;
  split_listen(listen, host, unused);
  if (host.find(':') != std::string::npos) {
    host = "[" + host + "]";
  }
  return host + ":" + std::to_string(port);
}

// The admin endpoint's base URL as agents and install commands see it.
std::string default_public_url(const admin_config& a, std::uint16_t port) {
  return std::string(a.tls_cert_file.empty() ? "http" : "https") + "://" +
         with_port(a.listen, port);
}

} // namespace

int main(int argc, char** argv) {
  options opt;
  if (!parse_args(argc, argv, opt)) {
    return 2;
  }
  if (opt.hash_token) {
    // The token comes on stdin, never as an argument (ps would show it).
    auto token = read_token(std::cin);
    if (token.size() < 16) {
      std::fputs("balctld: a token must be at least 16 characters\n", stderr);
      return 2;
    }
    std::printf("%s\n", secrets::to_hex(secrets::sha256(token)).c_str());
    return 0;
  }
  engine_config cfg;
  if (opt.bench_members > 0) {
    cfg = bench_config(opt);
  } else {
    auto res = load_config_file(opt.config_path);
    if (!res.ok()) {
      for (const auto& e : res.errors) {
        std::fprintf(stderr, "config: %s\n", e.c_str());
      }
      std::fprintf(stderr, "balctld: %zu config error(s) in %s\n",
                   res.errors.size(), opt.config_path.c_str());
      return 2;
    }
    cfg = std::move(res.config);
  }
  if (!opt.listen.empty()) {
    cfg.udp_listen = opt.listen;
  }
  if (opt.store_path.rfind("redis://", 0) == 0 || opt.store_path.rfind("rediss://", 0) == 0) {
    // rediss:// takes the config's store_tls_* files when it has them (else
    // the system trust store, no client certificate).
    std::string why;
    if (!parse_redis_url(opt.store_path, &why)) {
      std::fprintf(stderr, "--store: %s\n", why.c_str());
      return 2;
    }
    cfg.store = opt.store_path;
  } else if (!opt.store_path.empty()) {
    cfg.store_path = opt.store_path;
    cfg.store.clear();
  }
  if (!opt.admin_listen.empty()) {
    cfg.admin.listen = opt.admin_listen;
  }
  if (!opt.admin_token_file.empty()) {
    // An admin token kept in a file (a secrets manager's, or the example
    // script's): only its hash stays in memory.
    std::ifstream in(opt.admin_token_file);
    auto token = read_token(in);
    if (token.size() < 16) {
      std::fprintf(stderr,
                   "balctld: --admin-token-file %s: needs a token of at least "
                   "16 characters on its first line\n",
                   opt.admin_token_file.c_str());
      return 2;
    }
    admin_token t;
    t.name = "token-file";
    t.admin = true;
    t.sha256 = secrets::sha256(token);
    cfg.admin.tokens.push_back(t);
  }
  if (opt.check_config) {
    std::printf("config ok: %zu pool(s)\n", cfg.pools.size());
    return 0;
  }
  log::level lvl = log::level::info;
  log::parse_level(cfg.log_level, lvl);
  log::set_level(lvl);

  // Signals are taken by sigwait on the main thread: block them before any
  // other thread starts so none of those threads receives them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  system_clock_impl clk;
  engine_metrics metrics;
  std::shared_ptr<store> st;
  engine_parts parts;
  std::vector<decision_record> pending;
  std::vector<dns_change_record> pending_dns;
  std::vector<enrollment_record> enrollments;
  try {
    st = open_configured_store(cfg);
    // One node finishes what its last run left; in a cluster each pool's
    // owner does, when it takes the pool (actors/supervisor take_over).
    if (cfg.cluster.node_id.empty()) {
      pending = adopt_pending_decisions(*st);
      pending_dns = st->pending_dns_changes();
    }
    parts = bootstrap(cfg, *st, clk.now_ms());
    enrollments = st->load_enrollments();
  } catch (const store_error& e) {
    log::error("store_open_failed", {{"store", describe_store(cfg)}, {"error", e.what()}});
    return 1;
  } catch (const bootstrap_conflict& e) {
    std::fprintf(stderr, "config: %s\n", e.what());
    log::error("config_conflict", {{"error", e.what()}});
    return 2;
  }
  std::size_t member_count = parts.reg->size();
  std::vector<std::string> pool_names;
  for (const auto& rt : parts.pools) {
    pool_names.push_back(rt->config.name);
  }
  const bool clustered = !cfg.cluster.node_id.empty();
  // Each member's facts now live in its slot and runtime; the parsed config
  // would hold a second copy of every member for the life of the process.
  cfg.pools.clear();
  cfg.pools.shrink_to_fit();
  release_free_memory();

  int exit_code = 0;
  ingest in(*parts.reg, std::int64_t{cfg.max_clock_skew_s} * 1000);
  {
    caf::actor_system_config sys_cfg;
    configure_actor_system(sys_cfg);
    if (clustered) {
      load_cluster_modules(sys_cfg, cfg.cluster);
    }
    caf::actor_system sys{sys_cfg};
    // The admin listener binds before anything runs: its URL (with the
    // bound port) is the embedded chunk store's, and the store is opened
    // before the actors that presign with it. It answers 503 until the API
    // is built, below.
    std::atomic<api::admin_api*> api_ptr{nullptr};
    // The embedded chunk store's route, once the store is open (its URLs
    // need the listener's port): it checks a chunk URL's signature before
    // the body is read.
    std::atomic<api::chunk_routes*> chunk_admit{nullptr};
    std::unique_ptr<http::server> admin_http;
    std::string admin_url; // "" = no admin listener
    bool admin_failed = false;
    if (!cfg.admin.listen.empty()) {
      const auto& a = cfg.admin;
      http::server_limits lim;
      lim.max_header_bytes = static_cast<std::size_t>(a.max_header_bytes);
      lim.max_body_bytes = static_cast<std::size_t>(a.max_body_bytes);
      lim.request_timeout_ms = a.request_timeout_ms;
      lim.idle_timeout_ms = std::int64_t{a.idle_timeout_s} * 1000;
      lim.max_connections = static_cast<std::size_t>(a.max_connections);
      // Chunk PUTs are up to protection.chunk_size_bytes (8 MiB by default)
      // where every other body stays under max_body_bytes; an agent on a
      // slow uplink gets 5 minutes (or request_timeout_ms, if longer) to
      // send one. A URL that does not allow the request is refused before
      // room is made for its body.
      if (cfg.protection.object_store == "embedded") {
        lim.routes.push_back(
          {objstore::chunk_store::route_prefix,
           static_cast<std::size_t>(cfg.protection.chunk_size_bytes),
           std::max<std::int64_t>(a.request_timeout_ms, 300'000),
           [&chunk_admit](const http::request& head) -> std::optional<http::response> {
             if (auto* r = chunk_admit.load()) {
               return r->admit(head);
             }
             return http::error_response(503, "unavailable", "", "balctld is starting");
           }});
      }
      std::optional<http::tls_files> tls;
      if (!a.tls_cert_file.empty()) {
        tls = http::tls_files{a.tls_cert_file, a.tls_key_file};
      }
      admin_http = std::make_unique<http::server>(
        a.listen, lim,
        [&api_ptr](http::request&& req, http::responder respond) {
          if (auto* p = api_ptr.load()) {
            p->handle(std::move(req), std::move(respond));
          } else {
            respond(http::error_response(503, "unavailable", "",
                                         "balctld is starting"));
          }
        },
        tls);
      auto herr = admin_http->start();
      if (!herr.empty()) {
        log::error("admin_listen_failed", {{"listen", a.listen}, {"error", herr}});
        admin_failed = true;
      } else {
        admin_url = a.public_url.empty() ? default_public_url(a, admin_http->bound_port())
                                         : a.public_url;
      }
    }
    // Protection's chunks (protection.*): an S3 bucket, or the embedded
    // store served by the admin listener (none without one).
    std::shared_ptr<objstore::object_store> chunk_objects;
    std::shared_ptr<api::chunk_routes> chunk_route;
    if (!admin_url.empty() || cfg.protection.object_store == "s3") {
      if (cfg.protection.public_url.empty()) {
        cfg.protection.public_url = admin_url;
      }
      try {
        chunk_objects = objstore::make_object_store(cfg);
        if (auto embedded = std::dynamic_pointer_cast<objstore::chunk_store>(chunk_objects)) {
          chunk_route = std::make_shared<api::chunk_routes>(embedded, clk);
          chunk_admit.store(chunk_route.get());
        }
        log::info("object_store_ready", {{"store", chunk_objects->describe()}});
      } catch (const std::exception& e) {
        log::error("object_store_failed", {{"error", e.what()}});
        admin_failed = true;
      }
    }
    // The actors presign and remove through a handle: removals run on its
    // own thread (an S3 DELETE is an HTTP round trip).
    auto chunk_handle =
      std::make_shared<objstore::store_handle>(clk, cfg.protection.url_ttl_s, chunk_objects);
    protection_deps pd;
    pd.chunk_size = cfg.protection.chunk_size_bytes;
    pd.presign = [chunk_handle](const std::string& method, const std::string& key) {
      return chunk_handle->presign(method, key);
    };
    pd.remove_chunks = [chunk_handle](std::vector<std::string> keys) {
      chunk_handle->remove(std::move(keys));
    };
    // Alerts (Monitoring): e-mail and webhooks, delivered off the actors.
    std::string notify_err;
    std::shared_ptr<notify::notify_service> notifier =
      notify::make_notify_service(cfg.notify, clk, &notify_err);
    if (!notifier) {
      log::error("notify_unavailable", {{"error", notify_err}});
    } else {
      pd.notify = [notifier](const alert_message& a) {
        notifier->post(notify::alert{a.key, a.pool, a.member, a.kind, a.subject, a.text, a.at_ms,
                                     a.emails, a.webhooks});
      };
    }
    auto handles = spawn_engine(sys, cfg, parts, st, &clk, &metrics, true,
                                std::move(enrollments), pd);
    resume_pending_decisions(sys, handles, pending, pending_dns);
    control_impl control(sys, handles.supervisor, parts.reg,
                         cfg.admin.agent_version_latest);

    // UDP and TLS frames take one path: ingest, then a rate-limited log of
    // what was refused. Called on both loop threads.
    log::rate_limiter reject_log(5, 20); // thread-safe
    auto on_frame = [&](const char* transport, const std::uint8_t* data,
                        std::size_t len, const sockaddr* src, std::uint8_t* reply) {
      auto source = ip_address::from_sockaddr(src);
      auto now = clk.now_ms();
      auto r = in.accept(data, len, source, now, reply);
      std::uint64_t suppressed = 0;
      if (!r.ok && reject_log.allow(now, &suppressed)) {
        log::warn("heartbeat_rejected",
                  {{"reason", protocol::to_string(r.reason)},
                   {"transport", transport},
                   {"source", source.to_string()},
                   {"bytes", std::to_string(len)},
                   {"suppressed_since_last", std::to_string(suppressed)}});
      }
      return r.ack_len;
    };
    udp_listener listener(
      cfg.udp_listen,
      [&](const std::uint8_t* data, std::size_t len, const sockaddr* src,
          std::uint8_t* reply) { return on_frame("udp", data, len, src, reply); });
    caf::actor cluster; // the cluster actor, when clustered
    auto err = listener.start();
    // The TLS stream listener, for networks that drop UDP: same frames,
    // same ingest.
    std::unique_ptr<tls_listener> tls_in;
    if (err.empty() && !cfg.heartbeat_tls.listen.empty()) {
      const auto& t = cfg.heartbeat_tls;
      tls_listener_limits lim;
      lim.max_connections = static_cast<std::size_t>(t.max_connections);
      lim.handshake_timeout_ms = t.handshake_timeout_ms;
      lim.idle_timeout_ms = std::int64_t{t.idle_timeout_s} * 1000;
      tls_in = std::make_unique<tls_listener>(
        t.listen, t.cert_file, t.key_file, lim,
        [&](const std::uint8_t* data, std::size_t len, const sockaddr* src,
            std::uint8_t* reply) { return on_frame("tls", data, len, src, reply); });
      auto terr = tls_in->start();
      if (!terr.empty()) {
        err = terr;
      } else {
        log::info("heartbeat_tls_listening", {{"listen", t.listen},
                                              {"port", std::to_string(tls_in->bound_port())}});
      }
    }
    // The admin API, once heartbeats can land.
    std::unique_ptr<api::admin_api> admin;
    if (err.empty() && !admin_failed && admin_http) {
      api::admin_options ao = cfg.admin; // its "" defaults derived here
      ao.public_url = admin_url;
      if (ao.heartbeat_endpoint.empty()) {
        ao.heartbeat_endpoint = with_port(cfg.udp_listen, listener.bound_port());
      }
      if (ao.heartbeat_tls_endpoint.empty() && tls_in) {
        ao.heartbeat_tls_endpoint = with_port(cfg.heartbeat_tls.listen, tls_in->bound_port());
      }
      api::metrics_sources ms{&in.counters(), &metrics, &admin_http->counters(),
                              &listener.loop_lag_ms(), &listener.loop_lag_max_ms(),
                              &listener, tls_in.get(), notifier.get(),
                              chunk_handle.get()};
      admin = std::make_unique<api::admin_api>(ao, control, clk, ms);
      if (chunk_route) {
        admin->serve_chunks(chunk_route);
      }
      api_ptr.store(admin.get());
      log::info("admin_listening", {{"listen", cfg.admin.listen},
                                    {"port", std::to_string(admin_http->bound_port())},
                                    {"tls", cfg.admin.tls_cert_file.empty() ? "off" : "on"},
                                    {"tokens", std::to_string(cfg.admin.tokens.size())}});
      if (!opt.admin_port_file.empty()) {
        std::ofstream(opt.admin_port_file) << admin_http->bound_port() << "\n";
      }
    }
    if (!err.empty()) {
      log::error("heartbeat_listen_failed", {{"error", err}});
      exit_code = 1;
    } else if (admin_failed) {
      exit_code = 1;
    } else if (clustered &&
               !(cluster = start_cluster(sys, cfg, handles, &clk, pool_names,
                                         admin_http ? with_port(cfg.admin.listen,
                                                                admin_http->bound_port())
                                                    : std::string(),
                                         &err))) {
      log::error("cluster_start_failed", {{"error", err}});
      exit_code = 1;
    } else {
      control.set_cluster(cluster);
      control.set_ready(true);
      log::info("balctld_ready", {{"udp_port", std::to_string(listener.bound_port())},
                                  {"pools", std::to_string(parts.pools.size())},
                                  {"members", std::to_string(member_count)},
                                  {"store", describe_store(cfg)}});
      if (!opt.ready_file.empty()) {
        std::ofstream(opt.ready_file) << listener.bound_port() << "\n";
      }
      int sig = 0;
      sigwait(&sigs, &sig);
      log::info("balctld_stopping", {{"signal", std::to_string(sig)}});
    }
    control.set_ready(false);
    stop_cluster(sys, cluster); // the other nodes take this one's pools now
    if (admin_http) {
      admin_http->stop();
    }
    if (tls_in) {
      tls_in->stop();
    }
    listener.stop();
    shutdown_engine(sys, handles, metrics);
    // Chunks the last runs left to remove: a bounded wait, the rest logged.
    chunk_handle->drain(std::chrono::seconds(10));
    if (notifier) {
      notifier->stop();
    }
    // The slots outlive the actor system; drop their actor handles first.
    for (const auto& slot : parts.reg->all()) {
      slot->set_notifier(nullptr);
    }
  }
  // Final checkpoint, after every actor stopped: the next start restores
  // exactly this.
  // (In a cluster the owners checkpoint their pools: this node's slots of
  // other nodes' pools are not the truth.)
  try {
    if (!clustered) {
      st->save_member_states(snapshot_member_states(*parts.reg));
    }
  } catch (const store_error& e) {
    log::error("checkpoint_failed", {{"error", e.what()}});
    exit_code = 1;
  }
  if (!opt.metrics_file.empty()) {
    write_metrics_file(opt.metrics_file, in, metrics, member_count);
  }
  log::info("balctld_stopped", {{"accepted", std::to_string(in.counters().accepted.load())},
                                {"rejected", std::to_string(in.counters().rejected_total())}});
  return exit_code;
}
