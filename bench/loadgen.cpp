// balctl-loadgen: the project's own heartbeat sender. Simulates members of a
// pool for the README's failover demo, the end-to-end tests and the
// benchmarks. Sends only to loopback unless told otherwise.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/derive_key.hpp"
#include "transport/protocol.hpp"

using namespace balctl;

namespace {

struct sim_member {
  member_id id = 0;
  protocol::key key{};
  std::string body; // status body sent every body_every beats
  std::int64_t stop_after_ms = -1;
  std::uint64_t seq = 0;
  std::uint64_t beats = 0;
};

struct options {
  std::string target;
  std::uint64_t members = 0;
  std::vector<member_id> ids;
  std::string config_path, pool, derive_seed, key_hex;
  double rate = -1; // datagrams/s; 0 = unthrottled
  std::int64_t interval_ms = 0;
  double duration_s = 0;
  std::uint64_t body_every = 0;
  std::string stacks;                 // comma list put in the status body
  std::string agent_version = "loadgen";
  std::unordered_map<member_id, std::int64_t> stop_after_ms;
  bool allow_non_loopback = false;
};

void usage() {
  std::fputs(
    "usage: balctl-loadgen --target HOST:PORT --duration-s S\n"
    "         (--members N | --ids 1,2,3 | --config FILE [--pool NAME])\n"
    "         [--derive-keys SEED | --key-hex HEX]\n"
    "         [--interval-ms MS | --rate R] [--body-every N]\n"
    "         [--stop-after-s ID:S ...] [--allow-non-loopback]\n"
    "         [--stacks cpanel,mariadb,...] [--agent-version V]\n"
    "Sends authenticated heartbeats (docs/protocol.md). --interval-ms: each\n"
    "member beats every MS; --rate: total datagrams/s (0 = as fast as\n"
    "possible). --stop-after-s ID:S silences member ID after S seconds.\n"
    "--body-every N: a member's first beat and every Nth carry a status body.\n"
    "--key-hex overrides the config's keys (forged-tag tests).\n"
    "--stacks and --agent-version fill the status body (default: no stacks,\n"
    "agent version loadgen).\n",
    stderr);
}

bool fail(const std::string& msg) {
  std::fprintf(stderr, "balctl-loadgen: %s\n", msg.c_str());
  return false;
}

// Whole-string numbers: std::stoull("5x") would quietly read 5.
std::uint64_t to_u64(const std::string& s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) {
    throw std::invalid_argument("not a non-negative integer: " + s);
  }
  return std::stoull(s);
}

double to_double(const std::string& s) {
  std::size_t used = 0;
  double v = std::stod(s, &used);
  if (used != s.size() || !(v >= 0)) {
    throw std::invalid_argument("not a non-negative number: " + s);
  }
  return v;
}

bool parse(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        throw std::invalid_argument(a + " needs a value");
      }
      return argv[++i];
    };
    try {
      if (a == "--target") {
        o.target = next();
      } else if (a == "--members") {
        o.members = to_u64(next());
      } else if (a == "--ids") {
        std::stringstream ss(next());
        std::string part;
        while (std::getline(ss, part, ',')) {
          o.ids.push_back(to_u64(part));
        }
      } else if (a == "--config") {
        o.config_path = next();
      } else if (a == "--pool") {
        o.pool = next();
      } else if (a == "--derive-keys") {
        o.derive_seed = next();
      } else if (a == "--key-hex") {
        o.key_hex = next();
      } else if (a == "--rate") {
        o.rate = to_double(next());
      } else if (a == "--interval-ms") {
        o.interval_ms = static_cast<std::int64_t>(to_u64(next()));
      } else if (a == "--duration-s") {
        o.duration_s = to_double(next());
      } else if (a == "--body-every") {
        o.body_every = to_u64(next());
      } else if (a == "--stacks") {
        o.stacks = next();
      } else if (a == "--agent-version") {
        o.agent_version = next();
      } else if (a == "--stop-after-s") {
        auto v = next();
        auto colon = v.find(':');
        if (colon == std::string::npos) {
          return fail("--stop-after-s " + v + ": must be ID:SECONDS");
        }
        o.stop_after_ms[to_u64(v.substr(0, colon))] =
          static_cast<std::int64_t>(to_double(v.substr(colon + 1)) * 1000);
      } else if (a == "--allow-non-loopback") {
        o.allow_non_loopback = true;
      } else if (a == "--help" || a == "-h") {
        usage();
        std::exit(0);
      } else {
        usage();
        return fail("unknown option " + a);
      }
    } catch (const std::exception& e) {
      return fail(a + ": bad value (" + e.what() + ")");
    }
  }
  if (o.target.empty()) {
    return fail("--target is required");
  }
  if (o.duration_s <= 0) {
    return fail("--duration-s is required and must be > 0");
  }
  if (o.members == 0 && o.ids.empty() && o.config_path.empty()) {
    return fail("one of --members, --ids, --config is required");
  }
  // Conflicting choices are errors, not a silent pick of one of them.
  if (!o.config_path.empty() && (o.members > 0 || !o.ids.empty())) {
    return fail("--config takes its members from the file: drop --members/--ids");
  }
  if (!o.pool.empty() && o.config_path.empty()) {
    return fail("--pool needs --config");
  }
  if (o.interval_ms > 0 && o.rate >= 0) {
    return fail("--interval-ms and --rate are alternatives: pass one");
  }
  if (!o.derive_seed.empty() && !o.key_hex.empty()) {
    return fail("--derive-keys and --key-hex are alternatives: pass one");
  }
  return true;
}

bool load_members(const options& o, std::vector<sim_member>& out) {
  protocol::key fixed{};
  bool have_fixed = false;
  if (!o.key_hex.empty()) {
    if (!protocol::key_from_hex(o.key_hex, fixed)) {
      return fail("--key-hex: must be 64 hex characters");
    }
    have_fixed = true;
  }
  auto body_for = [&o](const std::string& hostname) {
    nlohmann::json b = {{"hostname", hostname}, {"agent_version", o.agent_version}};
    if (!o.stacks.empty()) {
      auto& stacks = b["stacks"];
      std::stringstream ss(o.stacks);
      std::string name;
      while (std::getline(ss, name, ',')) {
        stacks[name] = {{"version", "1.0"}};
      }
    }
    return b.dump();
  };
  if (!o.config_path.empty()) {
    std::ifstream in(o.config_path);
    if (!in) {
      return fail("cannot read " + o.config_path);
    }
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.contains("pools")) {
      return fail(o.config_path + ": not a balctld config");
    }
    for (const auto& p : j["pools"]) {
      if (!o.pool.empty() && p.value("name", "") != o.pool) {
        continue;
      }
      for (const auto& m : p.value("members", nlohmann::json::array())) {
        sim_member s;
        s.id = m.value("id", std::uint64_t{0});
        auto hostname = m.value("hostname", std::string());
        if (have_fixed) {
          s.key = fixed;
        } else if (!protocol::key_from_hex(m.value("key", std::string()), s.key)) {
          return fail("member " + std::to_string(s.id) + ": bad key in config");
        }
        if (hostname.empty()) {
          hostname = "m" + std::to_string(s.id) + ".bench.test";
        }
        s.body = body_for(hostname);
        out.push_back(std::move(s));
      }
    }
    return !out.empty() || fail("no members found in " + o.config_path);
  }
  std::vector<member_id> ids = o.ids;
  for (std::uint64_t id = 1; id <= o.members; ++id) {
    ids.push_back(id);
  }
  if (!have_fixed && o.derive_seed.empty()) {
    return fail("--members/--ids need --derive-keys SEED or --key-hex HEX");
  }
  out.reserve(ids.size());
  for (auto id : ids) {
    sim_member s;
    s.id = id;
    s.key = have_fixed ? fixed : bench::derive_member_key(o.derive_seed, id);
    s.body = body_for("m" + std::to_string(id) + ".bench.test");
    out.push_back(std::move(s));
  }
  return true;
}

bool resolve(const std::string& target, bool allow_non_loopback,
             sockaddr_storage& addr, socklen_t& len) {
  std::string host, port;
  if (!target.empty() && target.front() == '[') {
    auto close = target.find(']');
    if (close == std::string::npos || close + 2 > target.size() ||
        target[close + 1] != ':') {
      return fail("--target " + target + ": must be HOST:PORT");
    }
    host = target.substr(1, close - 1);
    port = target.substr(close + 2);
  } else {
    auto colon = target.rfind(':');
    if (colon == std::string::npos) {
      return fail("--target " + target + ": must be HOST:PORT");
    }
    host = target.substr(0, colon);
    port = target.substr(colon + 1);
  }
  if (host == "localhost") {
    host = "127.0.0.1";
  }
  addr = {};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) == 0 || std::stoi(port) > 65535) {
    return fail("--target " + target + ": port must be 1-65535");
  }
  int p = std::stoi(port);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(p));
    len = sizeof(sockaddr_in);
    bool loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
    return loopback || allow_non_loopback ||
           fail("--target " + target + ": not a loopback address (127.0.0.0/8, ::1); "
                "pass --allow-non-loopback to send elsewhere");
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(p));
    len = sizeof(sockaddr_in6);
    return IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr) || allow_non_loopback ||
           fail("--target " + target + ": not a loopback address (127.0.0.0/8, ::1); "
                "pass --allow-non-loopback to send elsewhere");
  }
  return fail("--target " + target + ": not an IP address");
}

std::int64_t unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace

int main(int argc, char** argv) {
  options o;
  if (!parse(argc, argv, o)) {
    return 2;
  }
  std::vector<sim_member> members;
  if (!load_members(o, members)) {
    return 2;
  }
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  if (!resolve(o.target, o.allow_non_loopback, addr, addr_len)) {
    return 2;
  }
  int fd = socket(addr.ss_family, SOCK_DGRAM, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0) {
    std::perror("balctl-loadgen: socket");
    return 1;
  }
  int sndbuf = 8 * 1024 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  for (auto& m : members) {
    auto i = o.stop_after_ms.find(m.id);
    if (i != o.stop_after_ms.end()) {
      m.stop_after_ms = i->second;
    }
  }
  // Sequence numbers start at the Unix time in ms: a restarted sender never
  // replays a number the engine already accepted.
  auto seq0 = static_cast<std::uint64_t>(unix_ms());
  for (auto& m : members) {
    m.seq = seq0;
  }
  double rate = o.rate;
  if (o.interval_ms > 0) {
    rate = static_cast<double>(members.size()) * 1000.0 /
           static_cast<double>(o.interval_ms);
  } else if (rate < 0) {
    rate = static_cast<double>(members.size()); // one beat per member per second
  }

  constexpr std::size_t batch = 64;
  std::vector<std::array<std::uint8_t, protocol::max_datagram_size>> bufs(batch);
  std::vector<iovec> iov(batch);
  std::vector<mmsghdr> msgs(batch);
  using clk = std::chrono::steady_clock;
  auto start = clk::now();
  auto duration = std::chrono::duration<double>(o.duration_s);
  std::uint64_t slots = 0, sent = 0, errors = 0;
  std::size_t next_member = 0;
  while (true) {
    auto now = clk::now();
    auto elapsed = std::chrono::duration<double>(now - start);
    if (elapsed >= duration) {
      break;
    }
    std::uint64_t due = batch;
    if (rate > 0) {
      auto target = static_cast<std::uint64_t>(elapsed.count() * rate);
      if (target <= slots) {
        // Sleep until the next datagram is due (bounded by the end).
        auto wait = std::chrono::duration<double>((slots + 1) / rate) - elapsed;
        std::this_thread::sleep_for(std::min(
          std::chrono::duration_cast<std::chrono::microseconds>(wait),
          std::chrono::microseconds(20'000)));
        continue;
      }
      due = std::min<std::uint64_t>(batch, target - slots);
    }
    auto elapsed_ms = static_cast<std::int64_t>(elapsed.count() * 1000);
    auto ts = unix_ms();
    std::size_t n = 0;
    for (std::uint64_t k = 0; k < due; ++k) {
      auto& m = members[next_member];
      next_member = (next_member + 1) % members.size();
      ++slots;
      if (m.stop_after_ms >= 0 && elapsed_ms >= m.stop_after_ms) {
        continue; // this member has gone silent
      }
      protocol::header h;
      h.member = m.id;
      h.seq = ++m.seq;
      h.timestamp_ms = ts;
      ++m.beats;
      std::string_view body;
      if (o.body_every > 0 && (m.beats == 1 || m.beats % o.body_every == 0)) {
        body = m.body;
      }
      auto len = protocol::encode(bufs[n].data(), bufs[n].size(), h, body, m.key);
      iov[n] = {bufs[n].data(), len};
      msgs[n] = {};
      msgs[n].msg_hdr.msg_iov = &iov[n];
      msgs[n].msg_hdr.msg_iovlen = 1;
      ++n;
    }
    std::size_t off = 0;
    while (off < n) {
      int r = sendmmsg(fd, msgs.data() + off, static_cast<unsigned>(n - off), 0);
      if (r <= 0) {
        // The engine may be down (ECONNREFUSED) or the buffer full: count
        // it, drop the rest of this batch and keep going.
        errors += n - off;
        break;
      }
      sent += static_cast<std::uint64_t>(r);
      off += static_cast<std::size_t>(r);
    }
  }
  close(fd);
  auto secs = std::chrono::duration<double>(clk::now() - start).count();
  std::printf("loadgen sent=%llu errors=%llu rate=%.0f/s\n",
              static_cast<unsigned long long>(sent),
              static_cast<unsigned long long>(errors), sent / secs);
  return 0;
}
