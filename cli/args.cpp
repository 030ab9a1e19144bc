#include "cli/args.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <map>

namespace balctl::cli {

namespace {

using json = nlohmann::json;

struct option_spec {
  std::string name;  // "--preset"
  bool takes_value;
  bool repeatable;
  std::string value_name; // for help: "URL", "N"
  std::string help;
};

// Global options first; every command accepts them.
const std::vector<option_spec>& global_option_specs() {
  static const std::vector<option_spec> specs = {
    {"--server", true, false, "URL",
     "admin API base URL (env BALCTL_SERVER; default http://127.0.0.1:7947)"},
    {"--token", true, false, "T", "bearer token (env BALCTL_TOKEN)"},
    {"--config", true, false, "FILE",
     "config file {\"server\":..,\"token\":..} (default "
     "$XDG_CONFIG_HOME/balctl/config.json or ~/.config/balctl/config.json)"},
    {"--json", false, false, "", "print the server's JSON body (pretty) instead of tables"},
    {"--timeout-s", true, false, "N", "give up on a request after N seconds (default 30)"},
    {"--cacert", true, false, "FILE", "CA bundle to verify an https server with"},
    {"--insecure", false, false, "", "do not verify the https server's certificate"},
    {"--verbose", false, false, "", "print the request line and status to stderr"},
    {"--help", false, false, "", "show help for the command"},
  };
  return specs;
}

const std::vector<option_spec>& command_option_specs() {
  static const std::vector<option_spec> specs = {
    {"--preset", true, false, "P", "generic-linux | haproxy (default generic-linux)"},
    {"--id", true, false, "ID", "pool id (default: derived from NAME)"},
    {"--force", false, false, "",
     "pool delete: even while a fail-over is in flight; member remove: even "
     "the active member with no healthy standby; account cut: even to a member "
     "that is not healthy"},
    {"--failover-delay-s", true, false, "N", "seconds of silence before fail-over (10..120)"},
    {"--failover-hostname", true, false, "H", "FQDN whose A record follows the active member"},
    {"--failback", true, false, "P", "manual | automatic"},
    {"--failback-stable-s", true, false, "N",
     "seconds the primary must stay healthy before automatic fail-back (10..86400)"},
    {"--mass-silence-share", true, false, "X",
     "share of members silent at once that holds fail-over ((0,1])"},
    {"--mass-silence-min-members", true, false, "N",
     "members that must be silent at once before the share applies (>= 1)"},
    {"--mass-silence-window-s", true, false, "N",
     "window for \"at once\" (0 = the failover delay; else 1..3600)"},
    {"--dns-provider", true, false, "ID",
     "pool settings: the dns_providers[] id the failover record is moved at "
     "(\"\" = none); account: cloudflare (the pool's Global key), whm (the WHM "
     "key of the member the records move to) or a provider id (default cloudflare)"},
    {"--dns-zone", true, false, "Z",
     "the zone holding the failover hostname / the account's domain (\"\" = found)"},
    {"--dns-ttl-s", true, false, "N",
     "the TTL of the failover record / the account's records (1..86400)"},
    {"--dns-sync", true, false, "B", "on | off: move the failover record with the active member"},
    {"--dns-only", true, false, "B", "on | off: Cloudflare proxying off on cut-over"},
    {"--hostname", true, false, "H", "the member's hostname (must match at enrollment)"},
    {"--linux-family", true, false, "F", "rhel | debian (selects the install command)"},
    {"--allowed-ip", true, true, "IP",
     "IPv4 address enrollment and heartbeats may come from; repeat or comma-separate"},
    {"--name", true, false, "N", "friendly name (default: the hostname)"},
    {"--limit", true, false, "N", "at most N rows (1..1000)"},
    {"--offset", true, false, "N", "skip the first N rows"},
    {"--before", true, false, "ID", "only events older than event ID"},
    {"--tiles-limit", true, false, "N", "at most N member tiles (1..1000, default 100)"},
    {"--tiles-offset", true, false, "N", "skip the first N member tiles"},
    // Protected accounts.
    {"--domain", true, false, "D", "the account's domain (e.g. example.com)"},
    {"--source", true, false, "M", "the member id the account lives on"},
    {"--standby", true, false, "M", "the member id that takes the account over"},
    {"--managed", true, false, "B",
     "on | off: balctl moves the account's records (off = \"Disable Managed DNS\")"},
    {"--records", true, false, "JSON",
     "the cut-over list as the API's JSON array of {name,type,cut,managed,dns_only,"
     "source_content,standby_content,content,ttl_s}; replaces the list. From a file: "
     "--records \"$(cat records.json)\""},
    {"--to", true, false, "SIDE",
     "standby | source: where the records move (default standby; source = fail-back)"},
    {"--account", true, false, "ID", "only this protected account (default: all)"},
    {"--replicate-every-s", true, false, "N",
     "replicate the account to its standby every N seconds (0 = on demand only, else "
     "300..2592000)"},
    {"--replicate-overlap", true, false, "O",
     "skip | wait: a scheduled start while a run goes is skipped, or waits for it"},
    // Jobs and the replication log.
    {"--command", true, false, "CMD",
     "the shell text the member's agent runs with /bin/sh -c (quote it)"},
    // The global --timeout-s, read by "job run" as the job's own limit.
    {"--timeout-s", true, false, "N",
     "the job's time limit on the member, 1..86400 s (default 3600); the request itself "
     "keeps the default timeout"},
    {"--replication", false, false, "",
     "only the replication log (sync, transfer, failure, account cut events)"},
    {"--jobs", false, false, "", "only job events (queued, finished, cancelled)"},
    // DNS provider credentials.
    {"--type", true, false, "T", "cloudflare | whm | powerdns | rfc2136"},
    {"--api-base", true, false, "URL",
     "the provider's API base URL (cloudflare: default the public API)"},
    {"--user", true, false, "U", "whm: the WHM user the API token belongs to"},
    {"--server-id", true, false, "ID", "powerdns: the server id in the API's paths"},
    {"--dns-server", true, false, "HOST:PORT",
     "rfc2136: the primary name server updates go to"},
    {"--tsig-name", true, false, "N", "rfc2136: the TSIG key's name"},
    {"--tsig-algorithm", true, false, "A", "rfc2136: hmac-sha256 | hmac-sha512 | hmac-sha1"},
    {"--member", true, false, "M", "whm: the member id whose WHM the key is for"},
    {"--global", false, false, "",
     "cloudflare: the pool's Global key (marking one unmarks the others)"},
    {"--ca-file", true, false, "FILE",
     "CA bundle on the balctld host to verify the provider's https with"},
    {"--rate-limit-requests", true, false, "N", "at most N requests a window (0 = no limit)"},
    {"--rate-limit-window-s", true, false, "N", "the rate limit's window (1..86400)"},
    {"--max-in-flight", true, false, "N", "requests at the provider at once (1..256)"},
    {"--timeout-ms", true, false, "N", "give up on one provider request after N ms (100..600000)"},
    {"--secret-file", true, false, "FILE",
     "the API token / TSIG secret: the file's first line (provider add: else env "
     "BALCTL_DNS_SECRET; never on the command line)"},
  };
  return specs;
}

const option_spec* find_option(const std::string& name) {
  for (const auto* list : {&global_option_specs(), &command_option_specs()}) {
    for (const auto& o : *list) {
      if (o.name == name) {
        return &o;
      }
    }
  }
  return nullptr;
}

/// For help: a command's own description of an option ("job run"'s
/// --timeout-s) before the global one.
const option_spec* find_command_option(const std::string& name) {
  for (const auto& o : command_option_specs()) {
    if (o.name == name) {
      return &o;
    }
  }
  return find_option(name);
}

// The options "account add"/"account set" and "provider add"/"provider set"
// share, in help order.
std::vector<std::string> account_options() {
  return {"--domain",  "--source",  "--standby", "--dns-provider",
          "--dns-zone", "--dns-ttl-s", "--managed", "--records",
          "--replicate-every-s", "--replicate-overlap"};
}

std::vector<std::string> provider_options() {
  return {"--type",       "--api-base", "--user",   "--server-id",
          "--dns-server", "--tsig-name", "--tsig-algorithm", "--member",
          "--global",     "--ca-file",  "--rate-limit-requests",
          "--rate-limit-window-s", "--max-in-flight", "--timeout-ms", "--secret-file"};
}

struct command_spec {
  std::string name;                    // "pool create"
  std::vector<std::string> args;       // positional names, in order
  std::size_t required_args;           // the first required_args are required
  std::vector<std::string> options;    // command options it accepts
  std::string usage;                   // without the leading "balctl "
  std::string summary;
};

const std::vector<command_spec>& command_specs() {
  static const std::vector<command_spec> specs = {
    {"status", {"POOL"}, 0, {"--tiles-limit", "--tiles-offset"},
     "status [POOL] [--tiles-limit N] [--tiles-offset N]",
     "fleet overview; with POOL the pool's KPIs, member tiles and visible tabs"},
    {"cluster status", {}, 0, {}, "cluster status",
     "nodes of the cluster, pools per node, and each pool's lease (owner, age, expiry)"},
    {"pool create", {"NAME"}, 1, {"--preset", "--id"},
     "pool create NAME [--preset generic-linux|haproxy] [--id ID]",
     "create a pool"},
    {"pool list", {}, 0, {}, "pool list", "list pools"},
    {"pool show", {"POOL"}, 1, {}, "pool show POOL", "show a pool and its settings"},
    {"pool cut", {"POOL", "MEMBER"}, 2, {"--force"}, "pool cut POOL MEMBER [--force]",
     "Cut pool: make MEMBER the active member and move the failover record to it"},
    {"pool rename", {"POOL", "NEWNAME"}, 2, {}, "pool rename POOL NEWNAME",
     "change a pool's name (its id stays)"},
    {"pool delete", {"POOL"}, 1, {"--force"}, "pool delete POOL [--force]",
     "delete a pool"},
    {"pool settings", {"POOL"}, 1,
     {"--failover-delay-s", "--failover-hostname", "--failback", "--failback-stable-s",
      "--mass-silence-share", "--mass-silence-min-members", "--mass-silence-window-s",
      "--dns-provider", "--dns-zone", "--dns-ttl-s", "--dns-sync", "--dns-only"},
     "pool settings POOL [--failover-delay-s N] [--failover-hostname H]\n"
     "[--failback manual|automatic] [--failback-stable-s N]\n"
     "[--mass-silence-share X] [--mass-silence-min-members N]\n"
     "[--mass-silence-window-s N] [--dns-provider ID] [--dns-zone Z]\n"
     "[--dns-ttl-s N] [--dns-sync on|off] [--dns-only on|off]",
     "show a pool's settings; with options, change them (applied without restart)"},
    {"member add", {"POOL"}, 1, {"--hostname", "--linux-family", "--allowed-ip", "--name"},
     "member add POOL --hostname H --linux-family rhel|debian --allowed-ip IP[,IP...]\n"
     "[--allowed-ip IP]... [--name N]",
     "add a member; prints its install command and enrollment secret (shown once)"},
    {"member list", {"POOL"}, 1, {"--limit", "--offset"},
     "member list POOL [--limit N] [--offset N]", "list a pool's members"},
    {"member show", {"POOL", "ID"}, 2, {}, "member show POOL ID",
     "show a member: state, stacks, metrics, state history"},
    {"member remove", {"POOL", "ID"}, 2, {"--force"}, "member remove POOL ID [--force]",
     "remove a member"},
    {"member reenrol", {"POOL", "ID"}, 2, {}, "member reenrol POOL ID",
     "issue a new enrollment secret (the old key stops working once the agent enrols with it)"},
    {"log", {"POOL"}, 1, {"--limit", "--before", "--replication", "--jobs"},
     "log POOL [--limit N] [--before ID] [--replication | --jobs]",
     "a pool's activity log, newest first; the replication log or job events only"},
    {"account list", {"POOL"}, 1, {"--limit", "--offset"},
     "account list POOL [--limit N] [--offset N]",
     "list a pool's protected accounts: where their records point, drift"},
    {"account show", {"POOL", "ID"}, 2, {}, "account show POOL ID",
     "show a protected account and its records, expected against live"},
    {"account add", {"POOL", "ID"}, 2, account_options(),
     "account add POOL ID --domain D --source M --standby M [--dns-provider P]\n"
     "[--dns-zone Z] [--dns-ttl-s N] [--managed on|off] [--records JSON]\n"
     "[--replicate-every-s N] [--replicate-overlap skip|wait]",
     "protect a cPanel account (ID = its user): its records follow it to the standby"},
    {"account set", {"POOL", "ID"}, 2, account_options(),
     "account set POOL ID [--domain D] [--source M] [--standby M] [--dns-provider P]\n"
     "[--dns-zone Z] [--dns-ttl-s N] [--managed on|off] [--records JSON]\n"
     "[--replicate-every-s N] [--replicate-overlap skip|wait]",
     "change a protected account (--records replaces the whole list)"},
    {"account remove", {"POOL", "ID"}, 2, {}, "account remove POOL ID",
     "stop protecting an account (its DNS records stay as they are)"},
    {"account cut", {"POOL", "ID"}, 2, {"--to", "--force"},
     "account cut POOL ID [--to standby|source] [--force]",
     "Account Cut DNS: move the account's records to its standby, or back to its "
     "source (fail-back)"},
    {"account replicate", {"POOL", "ID"}, 2, {}, "account replicate POOL ID",
     "Replicate now: copy the account from its source to its standby (cPanel on both)"},
    {"account replication", {"POOL", "ID"}, 2, {}, "account replication POOL ID",
     "an account's replication: health, phase, last sync, next run, last error"},
    {"protection", {"POOL"}, 1, {}, "protection POOL",
     "the Protection dashboard: replication health, last sync, each account's run"},
    {"job run", {"POOL", "MEMBER"}, 2, {"--command", "--timeout-s"},
     "job run POOL MEMBER --command CMD [--timeout-s N]",
     "queue a shell command for the member's agent to run"},
    {"job list", {"POOL", "MEMBER"}, 1, {}, "job list POOL [MEMBER]",
     "a pool's jobs, or one member's, newest first"},
    {"job show", {"POOL", "ID"}, 2, {}, "job show POOL ID",
     "a job's status, exit code, times and output"},
    {"job cancel", {"POOL", "ID"}, 2, {}, "job cancel POOL ID",
     "cancel a job that has not finished (a running one is no longer waited for)"},
    {"dns show", {"POOL"}, 1, {"--limit", "--offset"}, "dns show POOL [--limit N] [--offset N]",
     "the Managed DNS catalogue: DNS health, the failover record, providers, records"},
    {"dns refresh", {"POOL"}, 1, {"--account"}, "dns refresh POOL [--account ID]",
     "Refresh DNS: read the live records back from the providers"},
    {"dns import", {"POOL"}, 1, {"--account"}, "dns import POOL [--account ID]",
     "import the accounts' zones from their providers into the catalogue"},
    {"dns sync", {"POOL"}, 1, {"--account"}, "dns sync POOL [--account ID]",
     "Sync WHM to Cloudflare: write the WHM zones' records to Cloudflare"},
    {"provider list", {"POOL"}, 1, {}, "provider list POOL",
     "list a pool's DNS provider credentials (secrets are never shown)"},
    {"provider add", {"POOL", "ID"}, 2, provider_options(),
     "provider add POOL ID --type cloudflare|whm|powerdns|rfc2136 [--api-base URL]\n"
     "[--user U] [--server-id ID] [--dns-server HOST:PORT] [--tsig-name N]\n"
     "[--tsig-algorithm A] [--member M] [--global] [--ca-file FILE]\n"
     "[--rate-limit-requests N] [--rate-limit-window-s N] [--max-in-flight N]\n"
     "[--timeout-ms N] [--secret-file FILE]",
     "add a DNS provider credential; its secret from --secret-file FILE or env "
     "BALCTL_DNS_SECRET"},
    {"provider set", {"POOL", "ID"}, 2, provider_options(),
     "provider set POOL ID [--type T] [--api-base URL] [--user U] [--server-id ID]\n"
     "[--dns-server HOST:PORT] [--tsig-name N] [--tsig-algorithm A] [--member M]\n"
     "[--global] [--ca-file FILE] [--rate-limit-requests N]\n"
     "[--rate-limit-window-s N] [--max-in-flight N] [--timeout-ms N]\n"
     "[--secret-file FILE]",
     "change a DNS provider credential; a new secret only from --secret-file FILE"},
    {"provider remove", {"POOL", "ID"}, 2, {}, "provider remove POOL ID",
     "remove a DNS provider credential"},
  };
  return specs;
}

const command_spec* find_command(const std::string& name) {
  for (const auto& c : command_specs()) {
    if (c.name == name) {
      return &c;
    }
  }
  return nullptr;
}

bool is_group(const std::string& word) {
  return word == "pool" || word == "member" || word == "account" || word == "dns" ||
         word == "provider" || word == "cluster" || word == "job";
}

/// A command's usage after "usage: balctl ", continuation lines indented
/// under the command.
std::string usage_text(const command_spec& c) {
  std::string out;
  for (char ch : c.usage) {
    out += ch;
    if (ch == '\n') {
      out += std::string(16, ' ');
    }
  }
  return out;
}

std::string group_usage(const std::string& group) {
  std::string out;
  for (const auto& c : command_specs()) {
    if (c.name.rfind(group + " ", 0) == 0) {
      out += (out.empty() ? "usage: balctl " : "       balctl ") + usage_text(c) + "\n";
    }
  }
  return out;
}

std::string command_usage(const command_spec& c) { return "usage: balctl " + usage_text(c) + "\n"; }

std::string all_usage() {
  std::string out;
  for (const auto& c : command_specs()) {
    out += (out.empty() ? "usage: balctl " : "       balctl ") + usage_text(c) + "\n";
  }
  return out;
}

std::string option_lines(const std::vector<const option_spec*>& opts) {
  std::size_t width = 0;
  std::vector<std::string> lefts;
  for (const auto* o : opts) {
    std::string left = o->name + (o->takes_value ? " " + o->value_name : "");
    if (o->name == "--help") {
      left = "-h, --help";
    }
    width = std::max(width, left.size());
    lefts.push_back(left);
  }
  std::string out;
  for (std::size_t i = 0; i < opts.size(); ++i) {
    out += "  " + lefts[i] + std::string(width - lefts[i].size() + 2, ' ') +
           opts[i]->help + "\n";
  }
  return out;
}

std::vector<const option_spec*> global_option_ptrs() {
  std::vector<const option_spec*> out;
  for (const auto& o : global_option_specs()) {
    out.push_back(&o);
  }
  return out;
}

std::string command_help(const command_spec& c) {
  std::string out = command_usage(c) + "\n" + c.summary + "\n";
  if (!c.options.empty()) {
    std::vector<const option_spec*> opts;
    for (const auto& name : c.options) {
      opts.push_back(find_command_option(name));
    }
    out += "\nOptions:\n" + option_lines(opts);
  }
  out += "\nGlobal options:\n" + option_lines(global_option_ptrs());
  return out;
}

std::string group_help(const std::string& group) {
  std::string out = group_usage(group) + "\nCommands:\n";
  std::size_t width = 0;
  for (const auto& c : command_specs()) {
    if (c.name.rfind(group + " ", 0) == 0) {
      width = std::max(width, c.name.size());
    }
  }
  for (const auto& c : command_specs()) {
    if (c.name.rfind(group + " ", 0) == 0) {
      out += "  " + c.name + std::string(width - c.name.size() + 2, ' ') + c.summary + "\n";
    }
  }
  out += "\nRun 'balctl " + group + " SUBCOMMAND --help' for its options.\n";
  return out;
}

// ---- value checks ------------------------------------------------------

struct usage_error {
  std::string message;
};

std::int64_t parse_int(const std::string& what, const std::string& v) {
  std::int64_t out = 0;
  const char* end = v.data() + v.size();
  auto [ptr, ec] = std::from_chars(v.data(), end, out);
  if (v.empty() || ec != std::errc() || ptr != end) {
    throw usage_error{what + " = " + v + ": must be an integer"};
  }
  return out;
}

double parse_number(const std::string& what, const std::string& v) {
  double out = 0;
  const char* end = v.data() + v.size();
  auto [ptr, ec] = std::from_chars(v.data(), end, out);
  if (v.empty() || ec != std::errc() || ptr != end) {
    throw usage_error{what + " = " + v + ": must be a number"};
  }
  return out;
}

std::string one_of(const std::string& what, const std::string& v,
                   const std::vector<std::string>& allowed) {
  if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) {
    return v;
  }
  std::string list;
  for (const auto& a : allowed) {
    list += (list.empty() ? "" : " or ") + a;
  }
  throw usage_error{what + " = " + v + ": must be " + list};
}

std::string member_id_arg(const std::string& v) {
  std::int64_t id = parse_int("ID", v);
  if (id <= 0) {
    throw usage_error{"ID = " + v + ": must be a positive member id"};
  }
  return std::to_string(id);
}

std::string non_empty(const std::string& what, const std::string& v) {
  if (v.empty()) {
    throw usage_error{what + " must not be empty"};
  }
  return v;
}

std::uint64_t positive_member(const std::string& what, const std::string& v) {
  std::int64_t id = parse_int(what, v);
  if (id <= 0) {
    throw usage_error{what + " = " + v + ": must be a positive member id"};
  }
  return static_cast<std::uint64_t>(id);
}

bool on_off(const std::string& what, const std::string& v) {
  return one_of(what, v, {"on", "off"}) == "on";
}

/// --records: the API's JSON array, passed through as it is (the server
/// judges the rows). Only its syntax is ours: a typo in a file read with
/// "$(cat records.json)" is better caught before the request.
nlohmann::json records_array(const std::string& v) {
  json j;
  try {
    j = json::parse(v);
  } catch (const json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
    std::string why = e.what();
    if (auto close = why.find("] "); why.rfind("[json.exception", 0) == 0 &&
                                     close != std::string::npos) {
      why = why.substr(close + 2);
    }
    throw usage_error{"--records is not JSON: " + why};
  }
  if (!j.is_array()) {
    throw usage_error{std::string("--records must be a JSON array of records, not ") +
                      j.type_name()};
  }
  return j;
}

using option_values = std::map<std::string, std::vector<std::string>>;

const std::string* last(const option_values& given, const std::string& name) {
  auto it = given.find(name);
  return it == given.end() || it->second.empty() ? nullptr : &it->second.back();
}

std::string pool_path(const std::string& pool) {
  return "/v1/pools/" + url_encode(non_empty("POOL", pool));
}

/// Appends "name=value" query parameters in the given order.
std::string with_query(std::string path,
                       const std::vector<std::pair<std::string, std::string>>& q) {
  char sep = '?';
  for (const auto& [k, v] : q) {
    path += sep + k + "=" + url_encode(v);
    sep = '&';
  }
  return path;
}

/// The body of "account add" / "account set": the options given, by API key.
json account_body(const option_values& given) {
  json body = json::object();
  if (const auto* v = last(given, "--domain")) {
    body["domain"] = non_empty("--domain", *v);
  }
  if (const auto* v = last(given, "--source")) {
    body["source"] = positive_member("--source", *v);
  }
  if (const auto* v = last(given, "--standby")) {
    body["standby"] = positive_member("--standby", *v);
  }
  if (const auto* v = last(given, "--dns-provider")) {
    body["dns_provider"] = non_empty("--dns-provider", *v);
  }
  if (const auto* v = last(given, "--dns-zone")) {
    body["dns_zone"] = *v; // "" = the provider finds the zone
  }
  if (const auto* v = last(given, "--dns-ttl-s")) {
    body["dns_ttl_s"] = parse_int("--dns-ttl-s", *v);
  }
  if (const auto* v = last(given, "--managed")) {
    body["managed"] = on_off("--managed", *v);
  }
  if (const auto* v = last(given, "--records")) {
    body["records"] = records_array(*v);
  }
  if (const auto* v = last(given, "--replicate-every-s")) {
    body["replication_every_s"] = parse_int("--replicate-every-s", *v);
  }
  if (const auto* v = last(given, "--replicate-overlap")) {
    body["replication_overlap"] = one_of("--replicate-overlap", *v, {"skip", "wait"});
  }
  return body;
}

/// The body of "provider add" / "provider set" without the secret (run()
/// adds it; see secret_source).
json provider_body(const option_values& given) {
  json body = json::object();
  if (const auto* v = last(given, "--type")) {
    body["type"] = one_of("--type", *v, {"cloudflare", "whm", "powerdns", "rfc2136"});
  }
  for (const auto& [opt, key] : std::vector<std::pair<std::string, std::string>>{
         {"--api-base", "api_base"},
         {"--user", "user"},
         {"--server-id", "server_id"},
         {"--dns-server", "server"},
         {"--tsig-name", "tsig_name"},
         {"--ca-file", "ca_file"}}) {
    if (const auto* v = last(given, opt)) {
      body[key] = non_empty(opt, *v);
    }
  }
  if (const auto* v = last(given, "--tsig-algorithm")) {
    body["tsig_algorithm"] =
      one_of("--tsig-algorithm", *v, {"hmac-sha256", "hmac-sha512", "hmac-sha1"});
  }
  if (const auto* v = last(given, "--member")) {
    body["member"] = positive_member("--member", *v);
  }
  if (given.count("--global")) {
    body["global"] = true;
  }
  for (const auto& [opt, key] : std::vector<std::pair<std::string, std::string>>{
         {"--rate-limit-requests", "rate_limit_requests"},
         {"--rate-limit-window-s", "rate_limit_window_s"},
         {"--max-in-flight", "max_in_flight"},
         {"--timeout-ms", "timeout_ms"}}) {
    if (const auto* v = last(given, opt)) {
      body[key] = parse_int(opt, *v);
    }
  }
  return body;
}

/// Integer query parameters taken from options, in option order.
std::vector<std::pair<std::string, std::string>>
int_query(const option_values& given,
          const std::vector<std::pair<std::string, std::string>>& option_to_param) {
  std::vector<std::pair<std::string, std::string>> q;
  for (const auto& [opt, param] : option_to_param) {
    if (const auto* v = last(given, opt)) {
      q.emplace_back(param, std::to_string(parse_int(opt, *v)));
    }
  }
  return q;
}

void build_request(invocation& inv, const std::vector<std::string>& args,
                   const option_values& given) {
  const std::string& cmd = inv.command;
  api_request& r = inv.request;
  if (cmd == "status") {
    if (args.empty()) {
      if (last(given, "--tiles-limit") || last(given, "--tiles-offset")) {
        throw usage_error{"--tiles-limit and --tiles-offset need a POOL"};
      }
      r = {"GET", "/v1/status", std::nullopt};
      inv.output = output_kind::fleet_status;
    } else {
      inv.pool = args[0];
      r = {"GET",
           with_query(pool_path(args[0]) + "/overview",
                      int_query(given, {{"--tiles-offset", "tiles_offset"},
                                        {"--tiles-limit", "tiles_limit"}})),
           std::nullopt};
      inv.output = output_kind::pool_overview;
    }
  } else if (cmd == "cluster status") {
    r = {"GET", "/v1/cluster", std::nullopt};
    inv.output = output_kind::cluster_status;
  } else if (cmd == "pool create") {
    json body = {{"name", non_empty("NAME", args[0])}};
    if (const auto* v = last(given, "--preset")) {
      body["preset"] = one_of("--preset", *v, {"generic-linux", "haproxy"});
    }
    if (const auto* v = last(given, "--id")) {
      body["id"] = non_empty("--id", *v);
    }
    r = {"POST", "/v1/pools", body};
    inv.output = output_kind::pool_created;
  } else if (cmd == "pool list") {
    r = {"GET", "/v1/pools", std::nullopt};
    inv.output = output_kind::pool_list;
  } else if (cmd == "pool show") {
    inv.pool = args[0];
    r = {"GET", pool_path(args[0]), std::nullopt};
    inv.output = output_kind::pool_detail;
  } else if (cmd == "pool cut") {
    inv.pool = args[0];
    inv.member_id = member_id_arg(args[1]);
    r = {"POST", pool_path(args[0]) + "/cut",
         json{{"member", std::stoull(inv.member_id)}, {"force", given.count("--force") > 0}}};
    inv.output = output_kind::pool_cut;
  } else if (cmd == "pool rename") {
    inv.pool = args[0];
    r = {"PATCH", pool_path(args[0]), json{{"name", non_empty("NEWNAME", args[1])}}};
    inv.output = output_kind::pool_renamed;
  } else if (cmd == "pool delete") {
    inv.pool = args[0];
    std::string path = pool_path(args[0]);
    if (given.count("--force")) {
      path += "?force=true";
    }
    r = {"DELETE", path, std::nullopt};
    inv.output = output_kind::pool_deleted;
  } else if (cmd == "pool settings") {
    inv.pool = args[0];
    json body = json::object();
    if (const auto* v = last(given, "--failover-delay-s")) {
      body["failover_delay_s"] = parse_int("--failover-delay-s", *v);
    }
    if (const auto* v = last(given, "--failover-hostname")) {
      body["failover_hostname"] = *v;
    }
    if (const auto* v = last(given, "--failback")) {
      body["failback"] = one_of("--failback", *v, {"manual", "automatic"});
    }
    if (const auto* v = last(given, "--failback-stable-s")) {
      body["failback_stable_s"] = parse_int("--failback-stable-s", *v);
    }
    if (const auto* v = last(given, "--mass-silence-share")) {
      body["mass_silence_share"] = parse_number("--mass-silence-share", *v);
    }
    if (const auto* v = last(given, "--mass-silence-min-members")) {
      body["mass_silence_min_members"] = parse_int("--mass-silence-min-members", *v);
    }
    if (const auto* v = last(given, "--mass-silence-window-s")) {
      body["mass_silence_window_s"] = parse_int("--mass-silence-window-s", *v);
    }
    if (const auto* v = last(given, "--dns-provider")) {
      body["dns_provider"] = *v;
    }
    if (const auto* v = last(given, "--dns-zone")) {
      body["dns_zone"] = *v;
    }
    if (const auto* v = last(given, "--dns-ttl-s")) {
      body["dns_ttl_s"] = parse_int("--dns-ttl-s", *v);
    }
    if (const auto* v = last(given, "--dns-sync")) {
      body["dns_sync"] = one_of("--dns-sync", *v, {"on", "off"}) == "on";
    }
    if (const auto* v = last(given, "--dns-only")) {
      body["dns_only"] = one_of("--dns-only", *v, {"on", "off"}) == "on";
    }
    if (body.empty()) {
      r = {"GET", pool_path(args[0]) + "/settings", std::nullopt};
      inv.output = output_kind::settings;
    } else {
      r = {"PATCH", pool_path(args[0]) + "/settings", body};
      inv.output = output_kind::settings_updated;
    }
  } else if (cmd == "member add") {
    inv.pool = args[0];
    const auto* hostname = last(given, "--hostname");
    const auto* family = last(given, "--linux-family");
    if (!hostname) {
      throw usage_error{"missing --hostname"};
    }
    if (!family) {
      throw usage_error{"missing --linux-family"};
    }
    json ips = json::array();
    if (auto it = given.find("--allowed-ip"); it != given.end()) {
      for (const auto& v : it->second) {
        // "1.2.3.4,5.6.7.8" and "1.2.3.4, 5.6.7.8" both split into two.
        std::size_t start = 0;
        while (start <= v.size()) {
          std::size_t comma = v.find(',', start);
          std::string item = v.substr(start, comma == std::string::npos ? std::string::npos
                                                                        : comma - start);
          item.erase(0, item.find_first_not_of(" \t"));
          item.erase(item.find_last_not_of(" \t") + 1);
          if (item.empty()) {
            throw usage_error{"--allowed-ip = " + v + ": empty address in the list"};
          }
          ips.push_back(item);
          if (comma == std::string::npos) {
            break;
          }
          start = comma + 1;
        }
      }
    }
    if (ips.empty()) {
      throw usage_error{"missing --allowed-ip (at least one IPv4 address)"};
    }
    json body = {{"hostname", non_empty("--hostname", *hostname)},
                 {"linux_family", one_of("--linux-family", *family, {"rhel", "debian"})},
                 {"allowed_ips", ips}};
    if (const auto* v = last(given, "--name")) {
      body["name"] = non_empty("--name", *v);
    }
    r = {"POST", pool_path(args[0]) + "/members", body};
    inv.output = output_kind::member_added;
  } else if (cmd == "member list") {
    inv.pool = args[0];
    r = {"GET",
         with_query(pool_path(args[0]) + "/members",
                    int_query(given, {{"--offset", "offset"}, {"--limit", "limit"}})),
         std::nullopt};
    inv.output = output_kind::member_list;
  } else if (cmd == "member show" || cmd == "member remove" || cmd == "member reenrol") {
    inv.pool = args[0];
    inv.member_id = member_id_arg(args[1]);
    std::string path = pool_path(args[0]) + "/members/" + inv.member_id;
    if (cmd == "member show") {
      r = {"GET", path, std::nullopt};
      inv.output = output_kind::member_detail;
    } else if (cmd == "member remove") {
      r = {"DELETE", given.count("--force") ? path + "?force=true" : path, std::nullopt};
      inv.output = output_kind::member_removed;
    } else {
      r = {"POST", path + "/enrollment", std::nullopt};
      inv.output = output_kind::member_reenrolled;
    }
  } else if (cmd == "log") {
    inv.pool = args[0];
    auto q = int_query(given, {{"--limit", "limit"}, {"--before", "before"}});
    if (given.count("--replication") && given.count("--jobs")) {
      throw usage_error{"--replication and --jobs: give one of them (or neither for all)"};
    }
    if (given.count("--replication") || given.count("--jobs")) {
      inv.log_kind = given.count("--replication") ? "replication" : "jobs";
      q.emplace_back("kind", inv.log_kind);
    }
    r = {"GET", with_query(pool_path(args[0]) + "/activity", q), std::nullopt};
    inv.output = output_kind::activity;
  } else if (cmd == "protection") {
    inv.pool = args[0];
    r = {"GET", pool_path(args[0]) + "/protection", std::nullopt};
    inv.output = output_kind::protection;
  } else if (cmd == "job run") {
    inv.pool = args[0];
    inv.member_id = member_id_arg(args[1]);
    const auto* command = last(given, "--command");
    if (!command) {
      throw usage_error{"missing --command (the shell text the member runs)"};
    }
    json body = {{"command", non_empty("--command", *command)}};
    // The server judges the range (1..86400), as for every other number.
    if (const auto* v = last(given, "--timeout-s")) {
      body["timeout_s"] = parse_int("--timeout-s", *v);
    }
    r = {"POST", pool_path(args[0]) + "/members/" + inv.member_id + "/jobs", body};
    inv.output = output_kind::job_queued;
  } else if (cmd == "job list") {
    inv.pool = args[0];
    std::string path = pool_path(args[0]);
    if (args.size() > 1) {
      inv.member_id = member_id_arg(args[1]);
      path += "/members/" + inv.member_id;
    }
    r = {"GET", path + "/jobs", std::nullopt};
    inv.output = output_kind::job_list;
  } else if (cmd == "job show" || cmd == "job cancel") {
    inv.pool = args[0];
    inv.job_id = non_empty("ID", args[1]);
    std::string path = pool_path(args[0]) + "/jobs/" + url_encode(inv.job_id);
    if (cmd == "job show") {
      r = {"GET", path, std::nullopt};
      inv.output = output_kind::job_detail;
    } else {
      r = {"POST", path + "/cancel", std::nullopt};
      inv.output = output_kind::job_cancelled;
    }
  } else if (cmd == "account list") {
    inv.pool = args[0];
    r = {"GET",
         with_query(pool_path(args[0]) + "/accounts",
                    int_query(given, {{"--offset", "offset"}, {"--limit", "limit"}})),
         std::nullopt};
    inv.output = output_kind::account_list;
  } else if (cmd.rfind("account ", 0) == 0) {
    inv.pool = args[0];
    inv.account_id = non_empty("ID", args[1]);
    std::string path = pool_path(args[0]) + "/accounts/" + url_encode(inv.account_id);
    if (cmd == "account show") {
      r = {"GET", path, std::nullopt};
      inv.output = output_kind::account_detail;
    } else if (cmd == "account add") {
      for (const char* required : {"--domain", "--source", "--standby"}) {
        if (!last(given, required)) {
          throw usage_error{std::string("missing ") + required};
        }
      }
      json body = account_body(given);
      body["id"] = inv.account_id;
      r = {"POST", pool_path(args[0]) + "/accounts", body};
      inv.output = output_kind::account_added;
    } else if (cmd == "account set") {
      json body = account_body(given);
      if (body.empty()) {
        throw usage_error{"nothing to change: give at least one option"};
      }
      r = {"PATCH", path, body};
      inv.output = output_kind::account_updated;
    } else if (cmd == "account remove") {
      r = {"DELETE", path, std::nullopt};
      inv.output = output_kind::account_removed;
    } else if (cmd == "account replicate") {
      r = {"POST", path + "/replicate", std::nullopt};
      inv.output = output_kind::replication_started;
    } else if (cmd == "account replication") {
      r = {"GET", path + "/replication", std::nullopt};
      inv.output = output_kind::replication;
    } else if (cmd == "account cut") {
      // Standby is the cut-over an operator makes ahead of trouble; source
      // is the fail-back, so it has to be asked for.
      const auto* to = last(given, "--to");
      r = {"POST", path + "/cut",
           json{{"to", to ? one_of("--to", *to, {"standby", "source"}) : "standby"},
                {"force", given.count("--force") > 0}}};
      inv.output = output_kind::account_cut;
    }
  } else if (cmd == "dns show") {
    inv.pool = args[0];
    r = {"GET",
         with_query(pool_path(args[0]) + "/dns",
                    int_query(given, {{"--offset", "offset"}, {"--limit", "limit"}})),
         std::nullopt};
    inv.output = output_kind::dns_catalogue;
  } else if (cmd == "dns refresh" || cmd == "dns import" || cmd == "dns sync") {
    inv.pool = args[0];
    std::optional<json> body;
    if (const auto* v = last(given, "--account")) {
      inv.account_id = non_empty("--account", *v);
      body = json{{"account", inv.account_id}};
    }
    r = {"POST", pool_path(args[0]) + "/dns/" + cmd.substr(4), body};
    inv.output = output_kind::dns_queued;
  } else if (cmd == "provider list") {
    inv.pool = args[0];
    r = {"GET", pool_path(args[0]) + "/dns/providers", std::nullopt};
    inv.output = output_kind::provider_list;
  } else if (cmd.rfind("provider ", 0) == 0) {
    inv.pool = args[0];
    inv.provider_id = non_empty("ID", args[1]);
    std::string path = pool_path(args[0]) + "/dns/providers";
    if (const auto* v = last(given, "--secret-file")) {
      inv.secret.file = non_empty("--secret-file", *v);
    }
    if (cmd == "provider add") {
      if (!last(given, "--type")) {
        throw usage_error{"missing --type (cloudflare, whm, powerdns or rfc2136)"};
      }
      json body = provider_body(given);
      body["id"] = inv.provider_id;
      inv.secret.wanted = true;
      inv.secret.required = true; // the server refuses a credential without one
      r = {"POST", path, body};
      inv.output = output_kind::provider_added;
    } else if (cmd == "provider set") {
      json body = provider_body(given);
      inv.secret.wanted = true;
      // With no option, a new secret is the change (checked once it is read).
      inv.secret.required = body.empty();
      r = {"PATCH", path + "/" + url_encode(inv.provider_id), body};
      inv.output = output_kind::provider_updated;
    } else if (cmd == "provider remove") {
      r = {"DELETE", path + "/" + url_encode(inv.provider_id), std::nullopt};
      inv.output = output_kind::provider_removed;
    }
  }
}

parse_result usage_failure(std::string message, std::string usage) {
  parse_result r;
  r.what = parse_result::kind::usage_error;
  r.message = std::move(message);
  r.usage = std::move(usage);
  return r;
}

parse_result help_result(std::string text) {
  parse_result r;
  r.what = parse_result::kind::help;
  r.message = std::move(text);
  return r;
}

} // namespace

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0xF];
    }
  }
  return out;
}

std::string global_help() {
  std::string out = all_usage();
  out += "\nbalctl talks to balctld's admin API.\n\nCommands:\n";
  std::size_t width = 0;
  for (const auto& c : command_specs()) {
    width = std::max(width, c.name.size());
  }
  for (const auto& c : command_specs()) {
    out += "  " + c.name + std::string(width - c.name.size() + 2, ' ') + c.summary + "\n";
  }
  out += "\nGlobal options (anywhere on the line):\n" + option_lines(global_option_ptrs());
  out +=
    "\nServer and token come from the flag, else BALCTL_SERVER / BALCTL_TOKEN,\n"
    "else the config file, else http://127.0.0.1:7947 and no token.\n"
    "\nExit codes: 0 ok, 1 server error (5xx) or unexpected, 2 usage error,\n"
    "3 cannot reach the server, 4 auth (401/403), 5 not found (404),\n"
    "6 rejected request (400/409/413/422/429).\n";
  return out;
}

parse_result parse_args(const std::vector<std::string>& args) {
  std::vector<std::string> positional;
  option_values given;
  bool help = false;
  std::string option_error; // reported after help had its chance

  // Pass 1: split options from positionals. Values are bound to their option
  // by the option table, so "--before -5" reads -5 as the value.
  bool options_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (options_done || a == "-" || a.empty() || a[0] != '-') {
      positional.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    if (a == "-h" || a == "--help") {
      help = true;
      continue;
    }
    std::string name = a;
    std::optional<std::string> inline_value;
    if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
      name = a.substr(0, eq);
      inline_value = a.substr(eq + 1);
    }
    const option_spec* spec = a.rfind("--", 0) == 0 ? find_option(name) : nullptr;
    if (!spec) {
      if (option_error.empty()) {
        option_error = "unknown flag " + name;
      }
      continue;
    }
    std::string value;
    if (spec->takes_value) {
      if (inline_value) {
        value = *inline_value;
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        if (option_error.empty()) {
          option_error = name + " needs a value " + spec->value_name;
        }
        continue;
      }
    } else if (inline_value) {
      if (option_error.empty()) {
        option_error = name + " takes no value";
      }
      continue;
    }
    auto& slot = given[name];
    if (!slot.empty() && !spec->repeatable && option_error.empty()) {
      option_error = name + " given more than once";
    }
    slot.push_back(value);
  }

  // Pass 2: which command.
  const command_spec* cmd = nullptr;
  std::size_t words = 0;
  if (!positional.empty()) {
    const std::string& first = positional[0];
    if (is_group(first)) {
      if (positional.size() < 2) {
        if (help) {
          return help_result(group_help(first));
        }
        return usage_failure("missing " + first + " subcommand", group_usage(first));
      }
      cmd = find_command(first + " " + positional[1]);
      if (!cmd) {
        if (help) {
          return help_result(group_help(first));
        }
        return usage_failure("unknown command '" + first + " " + positional[1] + "'",
                             group_usage(first));
      }
      words = 2;
    } else {
      cmd = find_command(first);
      if (!cmd) {
        if (help) {
          return help_result(global_help());
        }
        return usage_failure("unknown command '" + first + "'", all_usage());
      }
      words = 1;
    }
  }
  if (help) {
    return help_result(cmd ? command_help(*cmd) : global_help());
  }
  if (!cmd) {
    return usage_failure("missing command", all_usage());
  }
  const std::string usage = command_usage(*cmd);
  if (!option_error.empty()) {
    return usage_failure(option_error, usage);
  }
  for (const auto& [name, values] : given) {
    bool global = std::any_of(global_option_specs().begin(), global_option_specs().end(),
                              [&](const option_spec& o) { return o.name == name; });
    if (!global &&
        std::find(cmd->options.begin(), cmd->options.end(), name) == cmd->options.end()) {
      return usage_failure("unknown flag " + name + " for '" + cmd->name + "'", usage);
    }
  }
  std::vector<std::string> cmd_args(positional.begin() + static_cast<std::ptrdiff_t>(words),
                                    positional.end());
  if (cmd_args.size() < cmd->required_args) {
    return usage_failure("missing argument " + cmd->args[cmd_args.size()], usage);
  }
  if (cmd_args.size() > cmd->args.size()) {
    return usage_failure("unexpected argument '" + cmd_args[cmd->args.size()] + "'", usage);
  }

  parse_result out;
  out.what = parse_result::kind::run;
  out.usage = usage;
  invocation& inv = out.inv;
  inv.command = cmd->name;
  try {
    global_options& g = inv.global;
    if (const auto* v = last(given, "--server")) {
      g.server = *v;
    }
    if (const auto* v = last(given, "--token")) {
      g.token = *v;
    }
    if (const auto* v = last(given, "--config")) {
      g.config_path = non_empty("--config", *v);
    }
    // "job run" reads --timeout-s as the job's own limit (build_request).
    if (const auto* v = last(given, "--timeout-s"); v && cmd->name != "job run") {
      // The value itself (a number) is safe to echo.
      std::int64_t t = parse_int("--timeout-s", *v);
      if (t < 1 || t > 86400) {
        throw usage_error{"--timeout-s = " + *v + ": must be between 1 and 86400"};
      }
      g.timeout_s = static_cast<long>(t);
    }
    if (const auto* v = last(given, "--cacert")) {
      g.cacert = non_empty("--cacert", *v);
    }
    g.insecure = given.count("--insecure") > 0;
    g.json = given.count("--json") > 0;
    g.verbose = given.count("--verbose") > 0;
    build_request(inv, cmd_args, given);
    if (inv.request.body) {
      try {
        (void)inv.request.body->dump(); // strict: throws on invalid UTF-8
      } catch (const json::type_error&) {
        throw usage_error{"arguments must be valid UTF-8"};
      }
    }
  } catch (const usage_error& e) {
    return usage_failure(e.message, usage);
  }
  return out;
}

} // namespace balctl::cli
