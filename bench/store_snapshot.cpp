// Snapshot cost: one checkpoint of N member states (default 1,000,000) into
// the Redis store (a redis-server on loopback, --redis-port) and into the
// SQLite store (a temp file: the baseline, same run), then reading them
// back, as a node's checkpoint and a takeover's restore do. Prints each
// time and the Redis/SQLite ratios.
//
// Usage: balctl-store-snapshot --redis-port P [--members N] [--dir D]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "adapters/store/redis_store.hpp"
#include "adapters/store/store.hpp"

using namespace balctl;
using steady = std::chrono::steady_clock;

namespace {

double ms_since(steady::time_point t0) {
  return std::chrono::duration<double, std::milli>(steady::now() - t0).count();
}

struct figures {
  double put_pools = 0, first = 0, again = 0, load_all = 0, load_one_pool = 0;
};

figures run(store& st, std::size_t n) {
  constexpr std::size_t pools = 1000;
  figures f;
  std::vector<pool_config> ps(pools);
  for (std::size_t p = 0; p < pools; ++p) {
    ps[p].name = "p" + std::to_string(p);
  }
  for (std::size_t i = 0; i < n; ++i) {
    member_config m;
    m.id = i + 1;
    m.hostname = "m" + std::to_string(i + 1) + ".bench.test";
    ps[i % pools].members.push_back(std::move(m));
  }
  auto t = steady::now();
  for (const auto& p : ps) {
    st.put_pool(p);
  }
  f.put_pools = ms_since(t);
  std::vector<member_state_record> rs(n);
  for (std::size_t i = 0; i < n; ++i) {
    rs[i] = member_state_record{i + 1, member_state::healthy, 1'700'000'000'000,
                                1'700'000'100'000 + static_cast<std::int64_t>(i), i};
  }
  t = steady::now();
  st.save_member_states(rs);
  f.first = ms_since(t);
  for (auto& r : rs) {
    r.last_seen_ms += 1000;
    ++r.last_seq;
  }
  t = steady::now();
  st.save_member_states(rs); // a checkpoint of a running fleet: all updates
  f.again = ms_since(t);
  t = steady::now();
  auto all = st.load_member_states();
  f.load_all = ms_since(t);
  std::vector<member_id> one;
  for (const auto& m : ps[0].members) {
    one.push_back(m.id);
  }
  t = steady::now();
  auto some = st.load_member_states_of(one);
  f.load_one_pool = ms_since(t);
  if (all.size() != n || some.size() != one.size()) {
    std::fprintf(stderr, "read back %zu of %zu states, %zu of %zu for one pool\n", all.size(), n,
                 some.size(), one.size());
    std::exit(1);
  }
  return f;
}

} // namespace

int main(int argc, char** argv) {
  int port = 0;
  std::size_t n = 1'000'000;
  std::string dir = "/tmp";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--redis-port") == 0) {
      port = std::atoi(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--members") == 0) {
      n = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (std::strcmp(argv[i], "--dir") == 0) {
      dir = argv[i + 1];
    }
  }
  if (port == 0 || n == 0) {
    std::fprintf(stderr, "usage: balctl-store-snapshot --redis-port P [--members N] [--dir D]\n");
    return 2;
  }
  auto path = dir + "/snapshot-bench.db";
  std::remove(path.c_str());
  auto sqlite = open_sqlite_store(path);
  auto base = run(*sqlite, n);
  redis_store_options o;
  o.client.port = port;
  o.client.command_timeout_ms = 60'000;
  o.prefix = "snapbench:";
  auto redis = open_redis_store(o);
  auto r = run(*redis, n);
  std::printf("members %zu in 1000 pools\n", n);
  std::printf("%-34s %10s %10s %8s\n", "", "sqlite ms", "redis ms", "ratio");
  auto line = [](const char* what, double a, double b) {
    std::printf("%-34s %10.0f %10.0f %8.2f\n", what, a, b, b / a);
  };
  line("put 1000 pools (members)", base.put_pools, r.put_pools);
  line("checkpoint, first", base.first, r.first);
  line("checkpoint, every member updated", base.again, r.again);
  line("load every state (restart)", base.load_all, r.load_all);
  std::printf("%-34s %10.1f %10.1f %8.2f\n", "load one pool's states (takeover)",
              base.load_one_pool, r.load_one_pool, r.load_one_pool / base.load_one_pool);
  std::remove(path.c_str());
  return 0;
}
