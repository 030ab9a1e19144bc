#pragma once

// balctld's configuration: schema, defaults and validation, every key in one
// place. The file is JSON; docs/config.md documents each key with its unit
// and default. Invalid values are rejected at start with the key path and the
// reason (e.g. "pools[2].failover_delay_s = 5: must be between 10 and 120").

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/types.hpp"
#include "transport/protocol.hpp"

namespace balctl {

struct member_config {
  member_id id = 0;               // required, > 0, unique across all pools
  std::string name;               // friendly name; defaults to hostname
  std::string hostname;           // required
  std::vector<std::string> allowed_ips; // IPv4/IPv6 literals; empty = any
  protocol::key key{};            // required: "key": 64 hex chars
  // Members added through the admin API (not config keys): the Linux
  // family chosen for the install command, and whether the agent has
  // enrolled yet (until then key is a random key nobody holds).
  std::string linux_family;       // "rhel" | "debian" | "" (config members)
  bool enrolled = true;
  // The addresses the pool's failover record points at while this member
  // is active: public_ipv4 for A, public_ipv6 for AAAA. "" = the first
  // IPv4 (IPv6) of allowed_ips, the egress address the seed enrols with.
  std::string public_ipv4;
  std::string public_ipv6;
};

/// The address an A (ipv6: AAAA) record takes for member m: its public
/// address, else its first allowed IP of that family; "" when it has none.
std::string member_address(const member_config& m, bool ipv6 = false);

struct pool_config {
  std::string name;               // required, unique, [A-Za-z0-9._-]{1,64}
  // Not config keys: the display name (empty = name; the admin API renames
  // a pool by changing it, name stays its id) and whether the pool was
  // created through the admin API (else the config file owns it).
  std::string label;
  bool from_api = false;
  pool_preset preset = pool_preset::generic_linux; // "generic-linux" | "haproxy"
  int failover_delay_s = 30;      // 10..120
  std::string failover_hostname;  // optional FQDN whose A record follows the active member
  failback_policy failback = failback_policy::manual; // "manual" | "automatic"
  int failback_stable_s = 300;    // 10..86400; primary healthy this long before automatic fail-back
  double mass_silence_share = 0.5;     // (0,1]
  int mass_silence_min_members = 3;    // >= 1
  int mass_silence_window_s = 0;       // 0 = the failover delay; else 1..3600
  // The seed's Dynamic DNS card: the failover record (failover_hostname's
  // A record) follows the active member at this provider while dns_sync.
  std::string dns_provider;       // a dns_providers[].id; "" = DNS not moved
  std::string dns_zone;           // "" = the provider finds the zone
  int dns_ttl_s = 60;             // 1..86400, the record's TTL
  bool dns_sync = true;           // false: decisions are recorded, DNS stays
  bool dns_only = false;          // Cloudflare: proxying off on cut-over
  std::vector<member_config> members;  // first is the primary
};

enum class dns_provider_kind : std::uint8_t { cloudflare, whm, powerdns, rfc2136 };
const char* to_string(dns_provider_kind k);
bool from_string(const std::string& s, dns_provider_kind& out);

/// One DNS provider credential ("dns_providers": [...]); one DNS executor
/// each. The secret is the Cloudflare API token, the WHM DNS cluster
/// token, the PowerDNS API key or the TSIG key (base64): never logged,
/// never echoed in errors.
struct dns_provider_config {
  std::string id;                 // required, unique, [A-Za-z0-9._-]{1,64}
  dns_provider_kind kind = dns_provider_kind::cloudflare; // "type"
  std::string api_base;           // http(s) URL; cloudflare default https://api.cloudflare.com/client/v4
  std::string server;             // rfc2136: host:port of the primary
  std::string user = "root";      // whm
  std::string server_id = "localhost"; // powerdns
  std::string tsig_name;          // rfc2136
  std::string tsig_algorithm = "hmac-sha256"; // rfc2136
  std::string secret;             // "secret", or read from "secret_file"
  std::string ca_file;            // "" = system trust store
  bool global = false;            // the seed's "Global" Cloudflare key
  // Requests allowed per window, across this credential (Cloudflare:
  // 1,200 per 5 minutes per user). 0 = no limit.
  int rate_limit_requests = 0;    // 0..1000000; cloudflare default 1200
  int rate_limit_window_s = 300;  // 1..86400
  int max_in_flight = 8;          // 1..256 changes at once
  int timeout_ms = 15000;         // 100..600000 per request
  // Not config keys: credentials added through the admin API belong to a
  // pool (the seed's API providers in pool Settings / Managed DNS), and a
  // WHM key to one cPanel member of it. "" / 0 for the config file's.
  std::string pool;
  member_id member = 0;
};

/// One admin API bearer token: only its SHA-256 is configured.
struct admin_token {
  std::string name;               // who holds it (logged, never the token)
  bool admin = false;             // role: "admin" (true) | "read-only"
  std::array<std::uint8_t, 32> sha256{}; // "sha256": 64 hex chars
};

/// The admin HTTP endpoint ("admin": {...}).
struct admin_config {
  std::string listen = "127.0.0.1:7947"; // host:port; "" = no admin endpoint
  std::string tls_cert_file;      // PEM; TLS when set (with tls_key_file)
  std::string tls_key_file;
  std::vector<admin_token> tokens;
  int max_header_bytes = 16384;   // 1024..1048576
  int max_body_bytes = 1048576;   // 1024..67108864
  int request_timeout_ms = 10000; // 100..600000
  int idle_timeout_s = 60;        // 1..3600
  int max_connections = 1024;     // 1..100000
  // Enrollment failures a source IP may make per minute before it gets
  // 429 for the rest of the minute.
  int enroll_failures_per_minute = 10; // 1..10000
  std::string public_url;         // api base in install commands; "" = http(s)://listen
  std::string heartbeat_endpoint; // told to agents at enrolment; "" = udp_listen
  std::string heartbeat_tls_endpoint; // told to agents at enrolment; "" = heartbeat_tls.listen
  int heartbeat_interval_s = 2;   // told to agents; 1..60 (failover_delay / 5 for the 10 s minimum)
  std::string agent_install_url;  // install commands fetch it; "" = public_url + /agent/install-agent.sh
  // install-agent.sh downloads the agent binary from it (--binary in the
  // install command); "" = public_url + /agent/balctl-agent, the script's
  // default. For fleets installing faster than the engine's download limit.
  std::string agent_binary_url;
  std::string agent_dist_dir;     // served at /agent/ (install-agent.sh, balctl-agent); "" = not served
  std::string agent_version_latest = "1.0.0"; // older agents count as outdated
  int activity_retention = 10000; // events kept per pool, 100..10000000
};

/// The TLS stream listener for heartbeats ("heartbeat_tls": {...}): the
/// same frames as UDP, for networks that drop UDP. Off unless listen is set.
struct heartbeat_tls_config {
  std::string listen;             // host:port; "" = off
  std::string cert_file;          // PEM chain; required with listen
  std::string key_file;
  int max_connections = 50000;    // 1..1000000
  int handshake_timeout_ms = 10000; // 100..600000
  int idle_timeout_s = 120;       // 5..3600: no frame this long closes the connection
};

// Several balctld nodes sharing one Redis (docs/design/redis-and-cluster.md).
struct cluster_config {
  std::string node_id;          // "" = one node, no cluster
  std::string listen;           // host:port: CAF middleman, forwarding between nodes
  std::string advertise;        // host:port the other nodes use; "" = listen
  int lease_ttl_ms = 10'000;    // 1000..120000: a dead node's pools move after this
  int takeover_grace_s = 0;     // 0 = each pool's failover delay; else 1..3600
  // Mutual TLS on the middleman link: all three or none. Each node shows
  // its certificate (PEM chain, unencrypted key) and accepts only peers
  // whose certificate chains to the CA file; checked when the config is read.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_ca_file;
  bool tls() const { return !tls_cert_file.empty(); }
};

/// An S3-compatible bucket for replication chunks ("protection.s3").
struct s3_config {
  std::string endpoint;           // required: http(s)://host[:port][/base], no query
  std::string region;             // required, e.g. "us-east-1" (signed into every URL)
  std::string bucket;             // required, 3..63 of [a-z0-9.-]
  bool path_style = true;         // endpoint/bucket/key; false: bucket.host/key
  std::string prefix;             // prepended to every key ("balctl/" → balctl/<pool>/<run>/<i>)
  std::string access_key_id;      // required
  std::string secret_access_key_file; // required: the secret key, first line
  std::string session_token_file; // optional: temporary credentials' token, first line
};

/// Protection's replication chunks ("protection": {...}).
struct protection_config {
  std::string object_store = "embedded"; // "embedded" | "s3"
  // The embedded store's directory (0700); "" = <store_path>.chunks, or a
  // fresh temporary directory when store_path is ":memory:".
  std::string chunk_dir;
  // Base URL agents reach the engine at for embedded chunk URLs; "" =
  // admin.public_url, else http(s)://<admin.listen> (with the bound port).
  std::string public_url;
  int chunk_size_bytes = 8 * 1024 * 1024; // 65536..67108864: a package's chunks
  int url_ttl_s = 3600;           // 60..604800: how long a presigned URL is valid
  s3_config s3;
};

/// Alerts to operators ("notify": {...}; adapters/notify): e-mail over SMTP
/// and webhooks. Who gets an alert (addresses, URLs) comes with the alert;
/// these are the channels' settings. Secrets are read from files and never
/// logged.
struct notify_config {
  // "smtp://host[:port]" (STARTTLS with smtp_starttls) or "smtps://host[:port]"
  // (TLS from the start); "" = no e-mail (e-mail alerts fail, counted).
  std::string smtp_url;
  std::string smtp_from;          // envelope sender and From:; required with smtp_url
  std::string smtp_username;      // AUTH; "" = none
  std::string smtp_password_file; // first line; required with smtp_username
  bool smtp_starttls = false;     // smtp://: STARTTLS is required, not just tried
  std::string smtp_ca_file;       // PEM; "" = the system trust store
  std::string webhook_secret_file; // first line: HMAC-SHA256 key; "" = unsigned
  int webhook_timeout_ms = 10000; // 100..600000 per request
  int dedup_window_s = 900;       // 0..86400: same key again within it is suppressed
  int max_queue = 10000;          // 1..1000000 alerts waiting; beyond: dropped
  int retry_initial_ms = 1000;    // 10..3600000 first back-off, doubling
  int retry_max_ms = 300000;      // 10..86400000, >= retry_initial_ms
  int retry_give_up_s = 3600;     // 1..604800 after the first attempt
  // Not config keys: the files' first lines, read when the config is.
  std::string smtp_password;
  std::string webhook_secret;
};

struct engine_config {
  std::string udp_listen = "127.0.0.1:7946"; // host:port ([v6]:port)
  heartbeat_tls_config heartbeat_tls;
  cluster_config cluster;
  protection_config protection;
  std::string store_path = "balctld.db";     // SQLite file; ":memory:" allowed
  // "" = the SQLite file at store_path; "redis://[user[:password]@]host[:port][/db]"
  // = Redis (adapters/store/redis_store), "rediss://..." = Redis over TLS.
  // Never logged as written (password).
  std::string store;
  std::string store_password_file;           // Redis password from a file (first line)
  // rediss:// only (PEM files): the CA the server's certificate must chain to
  // ("" = the system trust store), and a client certificate with its key
  // (both or neither) for a Redis that requires one (tls-auth-clients).
  std::string store_tls_ca_file;
  std::string store_tls_cert_file;
  std::string store_tls_key_file;
  std::string store_prefix = "balctl:";      // every Redis key starts with it
  int store_timeout_ms = 2000;               // 100..60000: Redis connect and command timeout
  int store_max_owed = 100'000;             // 1000..10,000,000: writes kept while the store is down
  std::string log_level = "info";            // debug|info|warn|error
  int max_clock_skew_s = 30;                 // 1..600: timestamp window ±
  int restart_grace_s = 0;                   // 0 = each pool's failover delay; else 1..3600
  int suspect_after_pct = 50;                // 10..90: suspect after this % of the failover delay
  int recovery_stable_s = 10;                // 0..3600: recovering → healthy
  int flap_threshold = 3;                    // 1..100 downs within flap_window_s → damped
  int flap_window_s = 600;                   // 10..86400
  int flap_hold_s = 300;                     // 0..86400 stability a damped member needs
  double fleet_silence_share = 0.3;          // (0,1]
  int fleet_silence_min_members = 10;        // >= 1
  int fleet_silence_window_s = 30;           // 1..3600
  int silence_release_settle_s = 5;          // 0..600: pool and fleet holds release after the silent count stays below threshold this long
  int snapshot_interval_s = 30;              // 1..3600: member last_seen/seq checkpoints
  admin_config admin;
  notify_config notify;
  std::vector<dns_provider_config> dns_providers;
  std::vector<pool_config> pools;
};

/// One invalid key: its path ("pools[2].failover_delay_s"), why, and the
/// offending value as JSON ("" when not worth echoing, or secret).
struct field_error {
  std::string field;
  std::string message;
  std::string value;
  /// "field = value: message" (config files, logs).
  std::string to_string() const;
};

struct config_result {
  engine_config config;
  std::vector<std::string> errors; // empty when valid
  bool ok() const { return errors.empty(); }
};

/// Reads the run-time pool settings present in the JSON object text
/// (failover_delay_s, failover_hostname, failback, failback_stable_s,
/// mass_silence_*) into pc with the config file's rules; any other key is
/// an "unknown key" error, so is a body that is not an object. Used by the
/// admin API for PATCH settings. Paths have no prefix ("failover_delay_s").
std::vector<field_error> read_pool_settings(const std::string& json_text,
                                            pool_config& pc);

/// One DNS provider credential from a JSON object with the config file's
/// rules for dns_providers[] entries (the admin API's provider bodies, the
/// store's rows). Also takes "member" (a WHM key's member id) and "pool";
/// refuses "secret_file" unless allow_secret_file. Read onto `out`, so a
/// partial object updates an existing credential (PATCH). Paths have no
/// prefix ("api_base").
std::vector<field_error> read_dns_provider_json(const std::string& json_text,
                                                dns_provider_config& out,
                                                bool allow_secret_file = false);
/// The credential as read_dns_provider_json reads it, secret included (the
/// store's row; never logged, never sent back through the API).
std::string dns_provider_json(const dns_provider_config& p);

/// The run-time settings (those read_pool_settings reads) of src into dst.
void copy_settings(pool_config& dst, const pool_config& src);

/// Pool ids and DNS names as the config file accepts them.
bool valid_pool_name(const std::string& s);
bool valid_dns_name(const std::string& s);

/// Parses and validates JSON text. Unknown keys are errors (typos must not
/// silently fall back to defaults).
config_result parse_config(const std::string& json_text);
/// Reads the file and parses it; a read failure is an error naming the path.
config_result load_config_file(const std::string& path);

} // namespace balctl
