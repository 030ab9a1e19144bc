// balctl-cf-standin: the Cloudflare API v4 stand-in (cloudflare_standin.hpp)
// as a process of its own, for the cut-over storm benchmark.
//
//   balctl-cf-standin --token T [--token T2 ...] [--zone example.com ...]
//                     [--listen 127.0.0.1:0] [--rate-limit 1200] [--window-ms 300000]
//                     [--seed records.json ...] [--max-per-page N]
//
// Prints exactly one line, "listening <port>", on stdout once it serves,
// and runs until SIGINT or SIGTERM (then exits 0 and writes its final stats
// to stderr). Outside the API, without authentication:
//   GET  /__standin/stats  counters as JSON (see cloudflare_standin::stats())
//   POST /__standin/seed   a JSON array of records, as --seed takes
// A seed file is a JSON array of
//   {"zone":"example.com","name":"www.example.com","type":"A",
//    "content":"192.0.2.1","ttl":300,"proxied":false}
// (MX: "priority", or content "10 mail.example.com"; SRV: "data", or
// content "10 5 5060 sip.example.com"); it bypasses the rate limit and the
// counters. Zone ids are derived from the names, so they are the same in
// every run. Shrink the window to compress Cloudflare's 5 minutes:
// --rate-limit 1200 --window-ms 3000.
//
// Exit codes: 0 stopped by a signal, 1 could not start, 2 bad arguments.

#include <pthread.h>
#include <signal.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/standins/cloudflare_standin.hpp"

namespace {

const char* usage =
  "usage: balctl-cf-standin --token T [--token T ...] [--zone NAME ...]\n"
  "         [--listen 127.0.0.1:0] [--rate-limit N] [--window-ms MS]\n"
  "         [--seed FILE ...] [--max-per-page N]\n"
  "  --listen ADDR      loopback host:port to serve on (default 127.0.0.1:0)\n"
  "  --token T          an API token that authenticates (repeatable; letters,\n"
  "                     digits, '-' and '_', as Cloudflare's tokens)\n"
  "  --zone NAME        a zone to serve (repeatable; its id is derived from NAME)\n"
  "  --rate-limit N     requests per window, 0 = no limit (default 1200)\n"
  "  --window-ms MS     the sliding window in ms (default 300000, Cloudflare's 5 min)\n"
  "  --seed FILE        a JSON array of records to load first (repeatable)\n"
  "  --max-per-page N   largest per_page of a dns_records list (default 5000000)\n"
  "Prints \"listening <port>\"; runs until SIGINT/SIGTERM.\n"
  "GET /__standin/stats, POST /__standin/seed: counters and seeding, no auth.\n";

bool parse_count(const std::string& s, long long min, long long max, long long& out) {
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  out = std::stoll(s);
  return out >= min && out <= max;
}

int bad(const std::string& msg) {
  std::cerr << "balctl-cf-standin: " << msg << "\n" << usage;
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  balctl::test::cloudflare_standin_options opt;
  opt.control_endpoints = true;
  std::vector<std::string> zones;
  std::vector<std::string> seeds;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::cout << usage;
      return 0;
    }
    if (i + 1 >= args.size()) {
      return bad(a + ": unknown option or missing value");
    }
    const std::string& v = args[++i];
    long long n = 0;
    if (a == "--listen") {
      opt.listen = v;
    } else if (a == "--token") {
      bool ok = !v.empty();
      for (unsigned char c : v) {
        ok = ok && (std::isalnum(c) || c == '-' || c == '_');
      }
      if (!ok) {
        return bad("--token: must be letters, digits, '-' or '_' (Cloudflare refuses others "
                   "with 400 6003)");
      }
      opt.tokens.push_back(v);
    } else if (a == "--zone") {
      zones.push_back(v);
    } else if (a == "--rate-limit") {
      if (!parse_count(v, 0, 1'000'000'000, n)) {
        return bad("--rate-limit = " + v + ": must be an integer 0..1000000000 (0 = no limit)");
      }
      opt.rate_limit_requests = static_cast<std::uint64_t>(n);
    } else if (a == "--window-ms") {
      if (!parse_count(v, 1, 86'400'000, n)) {
        return bad("--window-ms = " + v + ": must be an integer 1..86400000");
      }
      opt.rate_limit_window_ms = n;
    } else if (a == "--seed") {
      seeds.push_back(v);
    } else if (a == "--max-per-page") {
      if (!parse_count(v, 1, 1'000'000'000, n)) {
        return bad("--max-per-page = " + v + ": must be an integer 1..1000000000");
      }
      opt.max_per_page = n;
    } else {
      return bad(a + ": unknown option");
    }
  }
  if (opt.tokens.empty()) {
    return bad("at least one --token is needed");
  }

  balctl::test::cloudflare_standin cf(opt);
  for (const auto& z : zones) {
    auto id = cf.add_zone(z);
    std::cerr << "zone " << z << " id " << id << "\n";
  }
  for (const auto& file : seeds) {
    std::ifstream in(file);
    if (!in) {
      return bad("--seed " + file + ": cannot be read");
    }
    std::stringstream ss;
    ss << in.rdbuf();
    auto j = nlohmann::json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.is_array()) {
      return bad("--seed " + file + ": must be a JSON array of records");
    }
    try {
      auto n = cf.seed_json(j);
      std::cerr << "seeded " << n << " records from " << file << "\n";
    } catch (const std::exception& e) {
      return bad("--seed " + file + ": " + e.what());
    }
  }

  // Signals are taken by sigwait below: block them before the server's
  // thread starts so that it inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto err = cf.start();
  if (!err.empty()) {
    std::cerr << "balctl-cf-standin: " << err << "\n";
    return 1;
  }
  std::cout << "listening " << cf.port() << std::endl; // endl flushes
  int sig = 0;
  sigwait(&set, &sig);
  cf.stop();
  std::cerr << cf.stats().dump() << "\n";
  return 0;
}
