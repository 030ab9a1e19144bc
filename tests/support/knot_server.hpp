#pragma once

// A real RFC 2136 server for tests: Knot DNS (/usr/sbin/knotd, Debian's
// knot package) in a temp dir of its own, serving one zone, example.test,
// from a zone file, and accepting dynamic updates signed with one TSIG key
// (hmac-sha256, random secret). It listens on 127.0.0.1 at a port chosen at
// run time (bound to port 0, read, closed, handed to knotd; a start that
// fails, e.g. because the port was taken meanwhile, is retried on another).
// Ready once a kdig SOA query answers (bounded poll); SIGTERM in the
// destructor (tests/e2e/process.hpp). Throws std::runtime_error when knotd
// cannot be started, with its log.

#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/e2e/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace balctl::test {

class knot_server {
public:
  static constexpr const char* knotd_path = "/usr/sbin/knotd";
  static constexpr const char* zone = "example.test";

  knot_server() : secret_(random_secret()) {
    write_zone_file();
    std::string why;
    for (int attempt = 0; attempt < 4; ++attempt) {
      port_ = free_port();
      if (port_ <= 0) {
        why = "no free port";
        continue;
      }
      write_config();
      proc_ = std::make_unique<process>(
        std::vector<std::string>{knotd_path, "-c", dir_.file("knot.conf")}, dir_.file("knotd.out"),
        dir_.file("knotd.err"));
      if (!proc_->started()) {
        why = std::string("posix_spawn ") + knotd_path + " failed";
        proc_.reset();
        continue;
      }
      // knotd answers once the zone is loaded; an exited knotd (port taken,
      // bad config) ends the wait early.
      bool ready = wait_until([&] { return proc_->poll() != -1 || !dig(zone, "SOA").empty(); }, 10'000);
      if (ready && proc_->poll() == -1) {
        return;
      }
      why = "knotd did not become ready on port " + std::to_string(port_) + ": " +
            read_file(dir_.file("knotd.err"));
      proc_.reset();
    }
    throw std::runtime_error("knot_server: " + why);
  }
  knot_server(const knot_server&) = delete;
  knot_server& operator=(const knot_server&) = delete;
  ~knot_server() = default; // proc_ goes first (declared last): SIGTERM, wait

  int port() const { return port_; }
  /// SIGSTOP / SIGCONT: a server that takes messages and answers none.
  void pause(bool paused) const { ::kill(proc_->pid(), paused ? SIGSTOP : SIGCONT); }
  /// For rfc2136_options::server.
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string key_name() const { return "balctl-key"; }
  const std::string& secret() const { return secret_; }
  std::string log() const { return read_file(dir_.file("knotd.err")); }

  /// The zone's SOA serial (-1 when it does not answer): Knot raises it
  /// with every update it applies, so it counts the writes made.
  long serial() const {
    auto soa = dig(zone, "SOA");
    if (soa.empty()) {
      return -1;
    }
    std::istringstream in(soa[0]);
    std::string mname, rname;
    long s = -1;
    in >> mname >> rname >> s;
    return s;
  }

  /// kdig +short NAME TYPE against this server: one line per value ("" on
  /// no answer), host names with their trailing dot as kdig prints them.
  std::vector<std::string> dig(const std::string& name, const std::string& type) const {
    std::string cmd = "kdig @127.0.0.1 -p " + std::to_string(port_) + " +short +retry=0 +time=1 '" +
                      name + "' '" + type + "' 2>/dev/null";
    std::vector<std::string> out;
    FILE* f = ::popen(cmd.c_str(), "r");
    if (f == nullptr) {
      return out;
    }
    std::string all;
    std::array<char, 512> buf{};
    for (std::size_t n; (n = std::fread(buf.data(), 1, buf.size(), f)) > 0;) {
      all.append(buf.data(), n);
    }
    ::pclose(f);
    std::size_t start = 0;
    while (start < all.size()) {
      std::size_t end = all.find('\n', start);
      if (end == std::string::npos) {
        end = all.size();
      }
      std::string line = all.substr(start, end - start);
      // kdig prints ";; ..." diagnostics on failures.
      if (!line.empty() && line[0] != ';') {
        out.push_back(line);
      }
      start = end + 1;
    }
    return out;
  }

private:
  temp_dir dir_{"balctl-knot"};
  std::string secret_;
  int port_ = 0;
  std::unique_ptr<process> proc_;

  static std::string random_secret() {
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) {
      throw std::runtime_error("knot_server: RAND_bytes failed");
    }
    unsigned char b64[64] = {};
    EVP_EncodeBlock(b64, raw, sizeof raw);
    return reinterpret_cast<char*>(b64);
  }

  static int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      return -1;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    int port = -1;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port = ntohs(a.sin_port);
    }
    ::close(fd);
    return port;
  }

  void write_zone_file() const {
    std::ofstream z(dir_.file("example.test.zone"));
    z << "$ORIGIN example.test.\n"
         "$TTL 300\n"
         "@    IN SOA ns1.example.test. admin.example.test. 1 3600 600 86400 300\n"
         "@    IN NS  ns1.example.test.\n"
         "ns1  IN A   127.0.0.1\n"
         "www  IN A   192.0.2.10\n";
  }

  void write_config() const {
    std::string d = dir_.path().string();
    std::ofstream c(dir_.file("knot.conf"));
    c << "server:\n"
         "    rundir: \"" << d << "\"\n"
         "    listen: 127.0.0.1@" << port_ << "\n"
         "    udp-workers: 1\n"
         "    tcp-workers: 1\n"
         "    background-workers: 1\n"
         "log:\n"
         "  - target: stderr\n"
         "    any: info\n"
         "database:\n"
         "    storage: \"" << d << "\"\n"
         "control:\n"
         "    listen: \"" << d << "/knot.sock\"\n"
         "key:\n"
         "  - id: balctl-key\n"
         "    algorithm: hmac-sha256\n"
         "    secret: " << secret_ << "\n"
         "acl:\n"
         "  - id: balctl_update\n"
         "    key: balctl-key\n"
         "    action: update\n"
         "template:\n"
         "  - id: default\n"
         "    storage: \"" << d << "\"\n"
         "    zonefile-sync: -1\n"
         "    zonefile-load: whole\n"
         "    journal-content: changes\n"
         "zone:\n"
         "  - domain: example.test\n"
         "    file: \"" << d << "/example.test.zone\"\n"
         "    acl: balctl_update\n";
  }
};

} // namespace balctl::test
