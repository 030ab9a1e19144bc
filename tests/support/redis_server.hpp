#pragma once

// A real redis-server for tests: its own temp dir, no persistence, on a
// loopback port chosen at run time (retried on another when a start fails),
// on 127.0.0.1 and ::1 (when the host has IPv6), optionally with a password
// (the default user's), an ACL user, or TLS only (no plain TCP port; the
// certificates from tests/support/test_certs.hpp). It can be stopped and
// started again on the same port, as a Redis restart in the middle of
// traffic is. SIGTERM in the destructor.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/e2e/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/test_certs.hpp"

namespace balctl::test {

struct redis_server_options {
  std::string password;  // requirepass: the default user's
  std::string acl_user;  // with acl_password: a user allowed everything
  std::string acl_password;
  /// TLS instead of plain TCP when tls_cert_file is set (--port 0
  /// --tls-port P): the certificate and key the server presents, the CA it
  /// checks client certificates against, and whether it requires one
  /// (tls-auth-clients yes). cli() presents the client certificate.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_ca_file;
  bool tls_auth_clients = false;
  std::string tls_client_cert_file; // for cli()
  std::string tls_client_key_file;
};

/// A TLS-only server presenting pki's CA-signed server certificate;
/// requiring a client certificate (the pki's) when auth_clients.
inline redis_server_options tls_server_options(const test_pki& pki, bool auth_clients = false) {
  redis_server_options o;
  o.tls_cert_file = pki.server_cert;
  o.tls_key_file = pki.server_key;
  o.tls_ca_file = pki.ca_cert;
  o.tls_auth_clients = auth_clients;
  o.tls_client_cert_file = pki.client_cert;
  o.tls_client_key_file = pki.client_key;
  return o;
}

/// A loopback TCP port nothing answers on for as long as this lives: bound,
/// never listening, so a connection is refused and no other test's server
/// can take the port meanwhile.
class closed_port {
public:
  closed_port() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("closed_port: cannot bind a loopback port");
    }
    port_ = ntohs(a.sin_port);
  }
  ~closed_port() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  closed_port(const closed_port&) = delete;
  closed_port& operator=(const closed_port&) = delete;
  int port() const { return port_; }

private:
  int fd_ = -1;
  int port_ = 0;
};

class redis_server {
public:
  explicit redis_server(redis_server_options o = {}) : o_(std::move(o)) {
    for (int attempt = 0; attempt < 4; ++attempt) {
      port_ = free_port();
      if (start_on(port_)) {
        return;
      }
    }
    throw std::runtime_error("redis-server did not start: " + read_file(dir_.file("redis.out")));
  }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  int port() const { return port_; }
  bool tls() const { return !o_.tls_cert_file.empty(); }

  /// Stops it (SIGTERM, waited for); start() brings it back on the port.
  void stop() {
    if (proc_) {
      proc_->stop(5000);
      proc_.reset();
    }
  }
  void start() {
    if (!proc_ && !start_on(port_)) {
      throw std::runtime_error("redis-server did not restart on " + std::to_string(port_));
    }
  }
  /// SIGSTOP / SIGCONT: a Redis that is there but does not answer.
  void pause(bool on) {
    if (proc_) {
      ::kill(proc_->pid(), on ? SIGSTOP : SIGCONT);
    }
  }
  ~redis_server() {
    if (proc_) {
      ::kill(proc_->pid(), SIGCONT);
    }
  }

  /// redis-cli against it (as the default user), output trimmed.
  std::string cli(const std::string& args) const {
    std::string cmd = "redis-cli -h 127.0.0.1 -p " + std::to_string(port_) +
                      (o_.password.empty() ? "" : " --no-auth-warning -a '" + o_.password + "'");
    if (tls()) {
      // The tool's own connection: what is tested is the client's check.
      cmd += " --tls --insecure";
      if (!o_.tls_client_cert_file.empty()) {
        cmd += " --cert '" + o_.tls_client_cert_file + "' --key '" + o_.tls_client_key_file + "'";
      }
    }
    cmd += " " + args + " 2>&1";
    std::string out;
    if (FILE* f = ::popen(cmd.c_str(), "r")) {
      char buf[4096];
      for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) {
        out.append(buf, n);
      }
      ::pclose(f);
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) {
      out.pop_back();
    }
    return out;
  }

private:
  bool start_on(int port) {
    // "-::1": Redis 7 skips an address with "-" that the host does not have.
    std::vector<std::string> argv{"/usr/bin/redis-server", "--bind", "127.0.0.1", "-::1",
                                  "--save", "", "--appendonly", "no",
                                  "--dir", dir_.path().string(),
                                  "--enable-debug-command", "local"};
    if (tls()) {
      argv.insert(argv.end(), {"--port", "0", "--tls-port", std::to_string(port),
                               "--tls-cert-file", o_.tls_cert_file, "--tls-key-file",
                               o_.tls_key_file, "--tls-ca-cert-file", o_.tls_ca_file,
                               "--tls-auth-clients", o_.tls_auth_clients ? "yes" : "no"});
    } else {
      argv.insert(argv.end(), {"--port", std::to_string(port)});
    }
    if (!o_.password.empty()) {
      argv.insert(argv.end(), {"--requirepass", o_.password});
    }
    if (!o_.acl_user.empty()) {
      argv.insert(argv.end(), {"--user", o_.acl_user, "on", ">" + o_.acl_password, "~*", "&*",
                               "+@all"});
    }
    proc_ = std::make_unique<process>(argv, dir_.file("redis.out"), dir_.file("redis.err"));
    bool ready = proc_->started() && wait_until([&] {
      return proc_->poll() != -1 ||
             read_file(dir_.file("redis.out")).find("Ready to accept connections") !=
               std::string::npos;
    }, 10'000);
    if (ready && proc_->poll() == -1) {
      return true;
    }
    proc_.reset();
    return false;
  }
  static int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
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

  redis_server_options o_;
  temp_dir dir_{"balctl-redis"};
  int port_ = 0;
  std::unique_ptr<process> proc_;
};

} // namespace balctl::test
