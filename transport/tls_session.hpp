#pragma once

// TLS over memory BIOs: the session never touches a socket. The owner feeds
// it the bytes its libuv stream read (feed), and sends whatever it produces
// (take_output). Used by the engine's heartbeat TLS listener, the agent's
// TLS transport and the Redis client (rediss://); none blocks, each stays on
// one loop thread.

#include <memory>
#include <string>
#include <string_view>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace balctl::tls {

/// OpenSSL's error queue, drained into one line ("unknown OpenSSL error"
/// when it is empty).
std::string openssl_error();

struct ctx_free {
  void operator()(SSL_CTX* p) const;
};
struct ssl_free {
  void operator()(SSL* p) const;
};

/// The file of a TLS identity that could not be used.
enum class identity_file { none, certificate, key, ca };

/// Loads a mutual TLS identity as an endpoint that verifies its peers
/// would (the cluster link's, which CAF's OpenSSL module loads only at its
/// first connection): the PEM certificate chain, its key, which must match
/// it and must not be encrypted (no one is there to type a passphrase), and
/// the PEM CA file that peers' certificates must chain to, which must hold
/// at least one certificate. Returns the first file at fault, with
/// OpenSSL's reason in *reason, or identity_file::none.
identity_file check_identity(const std::string& cert_file, const std::string& key_file,
                             const std::string& ca_file, std::string* reason);

/// An SSL_CTX, TLS 1.2 or newer.
class context {
public:
  /// Server side: a PEM certificate chain and its key. Returns "" or an
  /// error naming the file and OpenSSL's reason.
  std::string load_server(const std::string& cert_file,
                          const std::string& key_file);
  /// Client side with peer verification on: ca_file (PEM) when given, else
  /// the system's default trust store. With cert_file and key_file (PEM,
  /// both or neither) the client presents that certificate when the server
  /// asks for one (Redis's tls-auth-clients). Returns "" or an error naming
  /// the file and OpenSSL's reason.
  std::string load_client(const std::string& ca_file, const std::string& cert_file = "",
                          const std::string& key_file = "");
  SSL_CTX* get() const { return ctx_.get(); }
  bool server() const { return server_; }

private:
  std::unique_ptr<SSL_CTX, ctx_free> ctx_;
  bool server_ = false;
};

/// One TLS connection's state machine.
class session {
public:
  enum class status {
    ok,     // keep going (maybe more input is needed)
    closed, // the peer sent close_notify
    error,  // fatal: see error(); the connection must be closed
  };

  /// ctx must outlive the session. For a client, server_name is sent as SNI
  /// (when it is a DNS name) and the peer certificate must match it (DNS
  /// name or IP address literal).
  explicit session(const context& ctx, const std::string& server_name = "");
  ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  /// Whether construction worked (SSL_new, BIOs, host check set-up).
  bool valid() const { return ssl_ != nullptr; }
  /// Client: begins the handshake (output appears in take_output()).
  status start();
  /// Bytes read from the peer. Decrypted application data is appended to
  /// plain. Drives the handshake as needed.
  status feed(const char* data, std::size_t len, std::string& plain);
  /// Queues application data. Before the handshake completes it is held
  /// and written once the session is established.
  status write(std::string_view plain);
  /// Ciphertext to send to the peer now (may be empty).
  std::string take_output();
  /// Begins a close (close_notify goes into take_output()).
  void shutdown();
  bool established() const { return established_; }
  /// The last fatal error: OpenSSL's reason, and for a failed certificate
  /// check the verification result ("certificate verify failed: self-signed
  /// certificate", "hostname mismatch", ...).
  const std::string& error() const { return error_; }

private:
  status fail(const char* what, int rc);
  status flush_pending();

  std::unique_ptr<SSL, ssl_free> ssl_;
  BIO* rbio_ = nullptr; // owned by ssl_
  BIO* wbio_ = nullptr; // owned by ssl_
  bool established_ = false;
  std::string pending_; // written before the handshake completed
  std::string error_;
};

} // namespace balctl::tls
