#pragma once

// balctl's command line, parsed into a plain description of the one admin
// API request a command makes (method, path with query, JSON body) and how
// its answer is shown. No I/O here: main.cpp and run.cpp do that, so every
// command's request is testable without a server.
//
// Grammar: balctl [global options] GROUP [SUBCOMMAND] ARGS... [options]
// Options may appear anywhere after "balctl"; "--" ends options. Both
// "--flag value" and "--flag=value" are accepted. Enum values and number
// syntax are checked here (usage error, exit 2); ranges are the server's to
// judge (422 invalid_field, exit 6) so the CLI never disagrees with it.

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace balctl::cli {

/// Options every command accepts. Unset optionals fall back to env, then the
/// config file, then defaults (config.hpp).
struct global_options {
  std::optional<std::string> server;      // --server URL
  std::optional<std::string> token;       // --token T (never printed)
  std::optional<std::string> config_path; // --config FILE
  std::optional<long> timeout_s;          // --timeout-s N: whole request
  std::optional<std::string> cacert;      // --cacert FILE: CA bundle for https
  bool insecure = false;                  // --insecure: skip TLS verification
  bool json = false;                      // --json: server body, pretty
  bool verbose = false;                   // --verbose: request line to stderr
};

/// One admin API call. path includes the query string, already encoded.
struct api_request {
  std::string method; // GET, POST, PATCH, DELETE
  std::string path;   // e.g. "/v1/pools/linux-fleet?force=true"
  std::optional<nlohmann::json> body;
};

/// How a successful answer is rendered for humans (render.hpp).
enum class output_kind {
  fleet_status,     // GET /v1/status
  pool_overview,    // GET /v1/pools/{id}/overview
  pool_list,        // GET /v1/pools
  pool_detail,      // GET /v1/pools/{id}
  pool_created,     // POST /v1/pools
  pool_renamed,     // PATCH /v1/pools/{id}
  pool_cut,         // POST /v1/pools/{id}/cut
  pool_deleted,     // DELETE /v1/pools/{id}
  settings,         // GET /v1/pools/{id}/settings
  settings_updated, // PATCH /v1/pools/{id}/settings
  member_added,     // POST /v1/pools/{id}/members
  member_list,      // GET /v1/pools/{id}/members
  member_detail,    // GET /v1/pools/{id}/members/{member_id}
  member_removed,   // DELETE /v1/pools/{id}/members/{member_id}
  member_reenrolled,// POST /v1/pools/{id}/members/{member_id}/enrollment
  activity,         // GET /v1/pools/{id}/activity
  account_list,     // GET /v1/pools/{id}/accounts
  account_detail,   // GET /v1/pools/{id}/accounts/{account_id}
  account_added,    // POST /v1/pools/{id}/accounts
  account_updated,  // PATCH /v1/pools/{id}/accounts/{account_id}
  account_removed,  // DELETE /v1/pools/{id}/accounts/{account_id} (204)
  account_cut,      // POST /v1/pools/{id}/accounts/{account_id}/cut
  dns_catalogue,    // GET /v1/pools/{id}/dns
  dns_queued,       // POST /v1/pools/{id}/dns/refresh|import|sync (202)
  provider_list,    // GET /v1/pools/{id}/dns/providers
  provider_added,   // POST /v1/pools/{id}/dns/providers
  provider_updated, // PATCH /v1/pools/{id}/dns/providers/{provider_id}
  provider_removed, // DELETE /v1/pools/{id}/dns/providers/{provider_id}
  cluster_status,   // GET /v1/cluster
  protection,       // GET /v1/pools/{id}/protection
  replication_started, // POST /v1/pools/{id}/accounts/{account_id}/replicate (202)
  replication,      // GET /v1/pools/{id}/accounts/{account_id}/replication
  job_queued,       // POST /v1/pools/{id}/members/{member_id}/jobs (201)
  job_list,         // GET /v1/pools/{id}/jobs, /v1/pools/{id}/members/{member_id}/jobs
  job_detail,       // GET /v1/pools/{id}/jobs/{job_id}
  job_cancelled,    // POST /v1/pools/{id}/jobs/{job_id}/cancel
};

/// Where a DNS provider's secret comes from ("provider add", "provider
/// set"). A secret never goes on the command line, where ps shows it: it is
/// the first line of --secret-file FILE, else (provider add only) env
/// BALCTL_DNS_SECRET.
/// parse_args does no I/O, so it only records the choice; main.cpp reads
/// the file and the environment (resolve_secret in run.hpp) and run() puts
/// the value in the body as "secret" and redacts it from all it prints.
struct secret_source {
  bool wanted = false;             // the command sends a secret when one is found
  bool required = false;           // none found is a usage error (provider add;
                                   // provider set with nothing else to change)
  std::optional<std::string> file; // --secret-file FILE
};

struct invocation {
  global_options global;
  std::string command; // "pool create", "status", ...
  api_request request;
  output_kind output = output_kind::fleet_status;
  std::string pool;      // the POOL argument, "" when none
  std::string member_id; // the member ID argument, "" when none
  std::string account_id;  // account commands' ID; dns actions' --account; "" when none
  std::string provider_id; // provider commands' ID, "" when none
  std::string job_id;      // job show / job cancel's ID, "" when none
  std::string log_kind;    // log --replication | --jobs: "replication" | "jobs"; "" = all
  secret_source secret;    // provider add / provider set
};

struct parse_result {
  enum class kind { run, help, usage_error };
  kind what = kind::usage_error;
  invocation inv;      // valid when what == run
  std::string message; // usage_error: what is wrong; help: the help text
  std::string usage;   // the usage line(s) of the command or group: for a
                       // usage_error, and for run, for the errors main.cpp finds
                       // later (a missing or unreadable secret)
};

/// Parses argv without argv[0].
parse_result parse_args(const std::vector<std::string>& args);

/// The top-level help (also shown for "balctl" with no command).
std::string global_help();

/// Percent-encodes one path segment or query value (RFC 3986 unreserved
/// characters pass through).
std::string url_encode(const std::string& s);

} // namespace balctl::cli
