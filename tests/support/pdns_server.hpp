#pragma once

// A real PowerDNS Authoritative for tests: pdns_server with the SQLite
// backend in a temp dir, DNS and its HTTP API on loopback ports chosen at
// run time (retried on another port when a start fails), one Native zone
// e2e.test created through the API. SIGTERM in the destructor.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/e2e/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace balctl::test {

class pdns_server {
public:
  pdns_server() {
    for (int attempt = 0; attempt < 4; ++attempt) {
      dns_port_ = free_port(SOCK_DGRAM);
      api_port_ = free_port(SOCK_STREAM);
      auto db = dir_.file("pdns.db");
      std::remove(db.c_str());
      auto schema = "sqlite3 " + db + " < /usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql";
      if (std::system(schema.c_str()) != 0) {
        throw std::runtime_error("pdns_server: cannot create " + db);
      }
      proc_ = std::make_unique<process>(
        std::vector<std::string>{
          "/usr/sbin/pdns_server", "--launch=gsqlite3", "--gsqlite3-database=" + db,
          "--local-address=127.0.0.1", "--local-port=" + std::to_string(dns_port_),
          "--api=yes", "--api-key=" + key_, "--webserver=yes",
          "--webserver-address=127.0.0.1",
          "--webserver-port=" + std::to_string(api_port_),
          "--webserver-allow-from=127.0.0.0/8", "--config-dir=" + dir_.path().string(),
          "--socket-dir=" + dir_.path().string(), "--daemon=no", "--guardian=no",
          "--disable-syslog", "--write-pid=no"},
        dir_.file("pdns.out"), dir_.file("pdns.err"));
      bool ready = proc_->started() && wait_until([&] {
        return proc_->poll() != -1 || curl("POST", "/api/v1/servers/localhost/zones",
                                           R"({"name":"e2e.test.","kind":"Native","nameservers":["ns1.e2e.test."]})")
                                          .find("\"e2e.test.\"") != std::string::npos;
      }, 10'000);
      if (ready && proc_->poll() == -1) {
        return;
      }
      proc_.reset();
    }
    throw std::runtime_error("pdns_server did not start: " + read_file(dir_.file("pdns.err")));
  }
  pdns_server(const pdns_server&) = delete;
  pdns_server& operator=(const pdns_server&) = delete;

  std::string api_base() const { return "http://127.0.0.1:" + std::to_string(api_port_); }
  const std::string& api_key() const { return key_; }
  int dns_port() const { return dns_port_; }

  /// Puts one A record into e2e.test through the API.
  void put_a(const std::string& name, const std::string& ip, int ttl = 60) {
    curl("PATCH", "/api/v1/servers/localhost/zones/e2e.test.",
         R"({"rrsets":[{"name":")" + name + R"(.","type":"A","ttl":)" + std::to_string(ttl) +
           R"(,"changetype":"REPLACE","records":[{"content":")" + ip +
           R"(","disabled":false}]}]})");
  }

  /// kdig +short NAME TYPE against the server's DNS port.
  std::vector<std::string> dig(const std::string& name, const std::string& type) const {
    auto out = run("kdig @127.0.0.1 -p " + std::to_string(dns_port_) + " +short +time=2 " +
                   name + " " + type);
    std::vector<std::string> lines;
    std::size_t start = 0;
    while (start < out.size()) {
      auto end = out.find('\n', start);
      auto line = out.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (!line.empty()) {
        lines.push_back(line);
      }
      if (end == std::string::npos) {
        break;
      }
      start = end + 1;
    }
    return lines;
  }

private:
  static std::string run(const std::string& cmd) {
    std::string out;
    if (FILE* f = ::popen(cmd.c_str(), "r")) {
      char buf[4096];
      for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) {
        out.append(buf, n);
      }
      ::pclose(f);
    }
    return out;
  }
  std::string curl(const std::string& method, const std::string& path,
                   const std::string& body) const {
    auto file = dir_.file("body.json");
    if (FILE* f = std::fopen(file.c_str(), "w")) {
      std::fwrite(body.data(), 1, body.size(), f);
      std::fclose(f);
    }
    return run("curl -s -m 2 -X " + method + " -H 'X-API-Key: " + key_ + "' --data-binary @" +
               file + " " + api_base() + path);
  }
  static int free_port(int type) {
    int fd = ::socket(AF_INET, type, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int port = -1;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      socklen_t len = sizeof a;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
      port = ntohs(a.sin_port);
    }
    ::close(fd);
    return port;
  }

  temp_dir dir_{"pdns"};
  std::string key_ = "pdns-test-key-0123456789";
  int dns_port_ = 0;
  int api_port_ = 0;
  std::unique_ptr<process> proc_;
};

} // namespace balctl::test
