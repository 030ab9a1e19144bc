#pragma once

// A Redis connection on a libuv loop of its own thread
// (transport/loop_thread): what the Redis store and the cluster's leases
// are built on (issue 6). Commands come from any thread; each answer comes
// back once, on the loop thread. The client owns its TCP socket (libuv);
// hiredis only encodes commands (redisFormatCommandArgv) and parses replies
// (redisReader), so TLS (rediss://) fits between the two:
// transport/tls_session over memory BIOs, as the heartbeat listener's.
//
//   down ──connect──> connecting ─────────────────> handshake (AUTH, SELECT, PING)
//    ^  (back-off)    resolve; TCP to each             │ refused/fails
//    │                address; TLS handshake           │
//    │                    │ fails/timeout              v
//    └────────────────── down <────────────────────────┘
//                         ^                            │ OK
//    lost, or a command ──┘                            v
//    past its timeout                                ready ── commands flow
//
// - Fail fast: a command while the connection is not ready is answered at
//   once with transport_error "not connected" (what Redis owes is the
//   store's to keep and replay, not the connection's). A command that gets
//   no answer within command_timeout_ms drops the connection (its replies
//   could no longer be matched to commands) and every command in flight is
//   answered with the reason; the client reconnects with back-off.
// - connect_timeout_ms bounds one attempt up to the Redis handshake: name
//   resolution, TCP (every address of the host) and the TLS handshake.
// - Replies are Redis's own: an error reply is a reply (kind error), not a
//   transport error. Replies come in command order: the oldest command in
//   flight owns the next reply.
// - Credentials: AUTH password, or AUTH user password (ACL), then SELECT
//   db, before any command; never logged.
// - TLS (tls = true): the server's certificate must chain to tls_ca_file
//   (else the system trust store) and match tls_server_name (else host; an
//   IP address literal matches the certificate's IP SANs). A client
//   certificate (tls_cert_file + tls_key_file) is presented when the server
//   asks for one (tls-auth-clients). A refused certificate is a connect
//   failure like any other: last_error says why, the client retries.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace balctl::redis {

struct reply {
  enum class kind : std::uint8_t { nil, status, error, integer, string, array };
  kind k = kind::nil;
  std::int64_t integer = 0;
  std::string str;               // status, error, string
  std::vector<reply> elements;   // array
};

struct result {
  /// "" when Redis answered (value holds the reply, maybe an error reply);
  /// else why not: "not connected", "timeout after N ms", "connection
  /// lost: ...", "stopped", "queue full".
  std::string transport_error;
  reply value;
  bool ok() const { return transport_error.empty() && value.k != reply::kind::error; }
};

struct client_options {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string user;     // "" = the default user
  std::string password; // "" = no AUTH
  std::int64_t connect_timeout_ms = 2'000;
  std::int64_t command_timeout_ms = 2'000;
  std::int64_t reconnect_min_ms = 100;
  std::int64_t reconnect_max_ms = 5'000;
  std::size_t max_in_flight = 100'000; // beyond: answered "queue full"
  /// TLS (rediss://). The files are PEM; read by start(), whose error names
  /// the file at fault.
  bool tls = false;
  std::string tls_ca_file;     // "" = the system trust store
  std::string tls_cert_file;   // client certificate, with tls_key_file (both or neither)
  std::string tls_key_file;
  std::string tls_server_name; // checked against the certificate; "" = host
};

struct client_counters {
  std::atomic<std::uint64_t> commands{0};
  std::atomic<std::uint64_t> transport_errors{0};
  std::atomic<std::uint64_t> connects{0};     // handshakes completed
  std::atomic<std::uint64_t> disconnects{0};  // ready connections lost
  std::atomic<std::uint64_t> timeouts{0};
};

class client {
public:
  using done = std::function<void(result)>;

  explicit client(client_options o);
  /// stop().
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Starts the loop thread and the first connection attempt. "" or
  /// "<call>: <reason>" (a Redis that is down is not a start failure; TLS
  /// files that cannot be loaded are).
  std::string start();
  /// Thread-safe, idempotent: commands queued or in flight are answered
  /// "stopped" before it returns.
  void stop();

  /// Thread-safe. cb runs exactly once, on the loop thread (or on the
  /// caller's after stop()).
  void command(std::vector<std::string> argv, done cb);

  /// The connection is up and past its handshake.
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  /// Why it is not ready ("" when it is): the last connect or handshake
  /// failure, without credentials.
  std::string last_error() const;
  const client_counters& counters() const { return counters_; }

  struct impl;

private:
  client_counters counters_;
  std::atomic<bool> ready_{false};
  std::unique_ptr<impl> impl_;
};

/// Sends cmds pipelined from the calling thread and waits for every answer
/// (each comes within the client's timeout). Not from the loop thread.
std::vector<result> run_sync(client& c, std::vector<std::vector<std::string>> cmds);

} // namespace balctl::redis
