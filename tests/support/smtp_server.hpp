#pragma once

// A real SMTP server for tests: tests/support/smtp_sink.py on Debian's
// python3-aiosmtpd, on a loopback port it picks itself at the first start
// (bound port 0, reported in its directory, so no port is guessed). Every
// message it accepts is a file the test reads through messages(). It can
// be stopped and started again on the same port, as a mail server that is
// down for a while is. SIGTERM in the destructor.

#include <algorithm>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/e2e/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace balctl::test {

struct smtp_server_options {
  std::string auth;        // "user:password": AUTH required with that user
  std::string refuse_rcpt; // RCPT TO this address is answered 550
  // "starttls" (offered, and required before MAIL) or "smtps" (TLS from the
  // first byte), with this certificate and key; "" = plain.
  std::string tls;
  std::string cert_file, key_file;
};

/// One message as the server received it.
struct smtp_message {
  std::string mail_from;
  std::vector<std::string> rcpt_tos;
  std::string login; // the AUTH user, "" without
  std::string tls;   // the TLS version it came over ("TLSv1.3"), "" without
  std::string data;  // headers and body as sent (CRLF)

  /// The first header of that name (case-insensitive match of the name as
  /// written by the sender is not needed here: exact), "" when absent.
  std::string header(const std::string& name) const {
    auto prefix = name + ": ";
    for (std::size_t pos = 0; pos < data.size();) {
      auto end = data.find("\r\n", pos);
      if (end == std::string::npos || end == pos) {
        break; // the blank line: headers are over
      }
      if (data.compare(pos, prefix.size(), prefix) == 0) {
        return data.substr(pos + prefix.size(), end - pos - prefix.size());
      }
      pos = end + 2;
    }
    return {};
  }
  std::string body() const {
    auto blank = data.find("\r\n\r\n");
    return blank == std::string::npos ? std::string() : data.substr(blank + 4);
  }
};

class smtp_server {
public:
  explicit smtp_server(smtp_server_options o = {}) : o_(std::move(o)) {
    if (!start_on(0)) {
      throw std::runtime_error("smtp_sink.py did not start: " + read_file(dir_.file("smtp.err")));
    }
  }
  smtp_server(const smtp_server&) = delete;
  smtp_server& operator=(const smtp_server&) = delete;

  int port() const { return port_; }
  /// smtps:// when the server speaks TLS from the first byte.
  std::string url() const {
    return (o_.tls == "smtps" ? "smtps://127.0.0.1:" : "smtp://127.0.0.1:") +
           std::to_string(port_);
  }

  /// Stops it (SIGTERM, waited for); start() brings it back on the port.
  void stop() {
    if (proc_) {
      proc_->stop(5000);
      proc_.reset();
    }
  }
  void start() {
    if (!proc_ && !start_on(port_)) {
      throw std::runtime_error("smtp_sink.py did not restart on " + std::to_string(port_) + ": " +
                               read_file(dir_.file("smtp.err")));
    }
  }

  /// Every message received so far, in arrival order.
  std::vector<smtp_message> messages() const {
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(mail_dir())) {
      if (e.path().extension() == ".eml") {
        files.push_back(e.path());
      }
    }
    std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) {
      return std::filesystem::last_write_time(a) < std::filesystem::last_write_time(b) ||
             (std::filesystem::last_write_time(a) == std::filesystem::last_write_time(b) &&
              a < b);
    });
    std::vector<smtp_message> out;
    for (const auto& f : files) {
      auto text = read_file(f.string());
      auto nl = text.find('\n');
      auto meta = nlohmann::json::parse(text.substr(0, nl), nullptr, false);
      smtp_message m;
      if (meta.is_object()) {
        m.mail_from = meta.value("mail_from", "");
        m.rcpt_tos = meta.value("rcpt_tos", std::vector<std::string>{});
        for (auto [key, out] : {std::pair{"login", &m.login}, std::pair{"tls", &m.tls}}) {
          if (meta[key].is_string()) {
            *out = meta[key].get<std::string>();
          }
        }
      }
      m.data = nl == std::string::npos ? std::string() : text.substr(nl + 1);
      out.push_back(std::move(m));
    }
    return out;
  }

private:
  std::string mail_dir() const { return dir_.file("mail"); }

  bool start_on(int port) {
    std::filesystem::create_directories(mail_dir());
    std::filesystem::remove(dir_.file("mail/port"));
    std::vector<std::string> argv{"/usr/bin/python3", "-W", "ignore",
                                  BALCTL_SOURCE_DIR "/tests/support/smtp_sink.py",
                                  "--dir", mail_dir(), "--port", std::to_string(port)};
    if (!o_.auth.empty()) {
      argv.insert(argv.end(), {"--auth", o_.auth});
    }
    if (!o_.refuse_rcpt.empty()) {
      argv.insert(argv.end(), {"--refuse-rcpt", o_.refuse_rcpt});
    }
    if (!o_.tls.empty()) {
      argv.insert(argv.end(), {"--tls", o_.tls, "--cert", o_.cert_file, "--key", o_.key_file});
    }
    proc_ = std::make_unique<process>(argv, dir_.file("smtp.out"), dir_.file("smtp.err"));
    bool ready = proc_->started() && wait_until([&] {
      return proc_->poll() != -1 || std::filesystem::exists(dir_.file("mail/port"));
    }, 10'000);
    if (ready && proc_->poll() == -1) {
      port_ = std::stoi(read_file(dir_.file("mail/port")));
      return true;
    }
    proc_.reset();
    return false;
  }

  smtp_server_options o_;
  temp_dir dir_{"balctl-smtp"};
  int port_ = 0;
  std::unique_ptr<process> proc_;
};

} // namespace balctl::test
