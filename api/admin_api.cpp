#include "api/admin_api.hpp"

#include "api/chunk_routes.hpp"
#include "api/dns_routes.hpp"
#include "api/protection_routes.hpp"
#include "api/request.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

#include <nlohmann/json.hpp>

#include "adapters/notify/notifier.hpp"
#include "adapters/objstore/store_handle.hpp"
#include "engine/log.hpp"
#include "transport/protocol.hpp"

namespace balctl::api {

namespace {

using json = nlohmann::json;

bool parse_member_id(const std::string& s, member_id& out) {
  // Member ids use the full 64-bit range (as in the config file).
  if (s.empty() || s.size() > 20 ||
      s.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  try {
    out = std::stoull(s);
  } catch (const std::out_of_range&) {
    return false;
  }
  return out > 0;
}

// "Linux Fleet" -> "linux-fleet": the id a pool gets when none is given.
std::string slug(const std::string& name) {
  std::string out;
  bool dash = false;
  for (unsigned char c : name) {
    if (std::isalnum(c)) {
      out += static_cast<char>(std::tolower(c));
      dash = false;
    } else if ((c == '.' || c == '_') && !out.empty()) {
      out += static_cast<char>(c);
      dash = false;
    } else if (!out.empty() && !dash) {
      out += '-';
      dash = true;
    }
    if (out.size() >= 64) {
      break;
    }
  }
  while (!out.empty() && (out.back() == '-' || out.back() == '.')) {
    out.pop_back();
  }
  return out;
}

// -- rendering --------------------------------------------------------------

json id_or_null(member_id m) { return m == 0 ? json(nullptr) : json(m); }
json ms_or_null(std::int64_t ms) { return ms == 0 ? json(nullptr) : json(ms); }

json settings_json(const pool_summary& s) {
  return {{"failover_delay_s", s.failover_delay_s},
          {"failover_hostname", s.failover_hostname},
          {"failback", s.failback},
          {"failback_stable_s", s.failback_stable_s},
          {"mass_silence_share", s.mass_silence_share},
          {"mass_silence_min_members", s.mass_silence_min_members},
          {"mass_silence_window_s", s.mass_silence_window_s},
          {"dns_provider", s.dns_provider},
          {"dns_zone", s.dns_zone},
          {"dns_ttl_s", s.dns_ttl_s},
          {"dns_sync", s.dns_sync},
          {"dns_only", s.dns_only}};
}

json pool_json(const pool_summary& s, bool with_settings) {
  json j = {{"id", s.id},
            {"name", s.name},
            {"preset", s.preset},
            {"managed_by", s.from_api ? "api" : "config"},
            {"members", s.members},
            {"agents_enrolled", s.enrolled},
            {"agents_healthy", s.agents_healthy},
            {"active_member", id_or_null(s.active)},
            {"holding", s.holding}};
  if (with_settings) {
    j["settings"] = settings_json(s);
  }
  return j;
}

std::vector<std::string> stack_names(const member_info& m) {
  std::vector<std::string> out;
  if (!m.has_status) {
    return out;
  }
  const auto& s = m.status;
  if (s.openlitespeed.present) out.push_back("openlitespeed");
  if (s.mariadb.present) out.push_back("mariadb");
  if (s.galera.present) out.push_back("galera");
  if (s.cpanel.present) out.push_back("cpanel");
  return out;
}

json member_json(const member_info& m) {
  return {{"id", m.id},
          {"name", m.name},
          {"hostname", m.hostname},
          {"linux_family", m.linux_family.empty() ? json(nullptr) : json(m.linux_family)},
          {"allowed_ips", m.allowed_ips},
          {"state", to_string(m.state)},
          {"state_since_ms", m.state_since_ms},
          {"last_heartbeat_ms", ms_or_null(m.last_seen_ms)},
          {"agent_version", m.has_status && !m.status.agent_version.empty()
                              ? json(m.status.agent_version)
                              : json(nullptr)},
          {"enrolled", m.enrolled},
          {"damped", m.damped},
          {"active", m.active}};
}

json stack_json(const stack_info& s) {
  return {{"present", s.present}, {"version", s.version}};
}

json member_detail_json(const member_info& m,
                        const std::vector<activity_record>& history) {
  auto j = member_json(m);
  const auto& s = m.status;
  j["stacks"] = {{"openlitespeed", stack_json(s.openlitespeed)},
                 {"mariadb", stack_json(s.mariadb)},
                 {"galera",
                  {{"present", s.galera.present},
                   {"cluster_size", s.galera.cluster_size},
                   {"state", s.galera.state},
                   {"ready", s.galera.ready}}},
                 {"cpanel", stack_json(s.cpanel)}};
  j["tabs"] = stack_names(m);
  if (m.has_status) {
    j["metrics"] = {{"load1", s.load1},
                    {"load5", s.load5},
                    {"load15", s.load15},
                    {"cpu_pct", s.cpu_pct},
                    {"mem_used_bytes", s.mem_used_bytes},
                    {"mem_total_bytes", s.mem_total_bytes},
                    {"disk_used_bytes", s.disk_used_bytes},
                    {"disk_total_bytes", s.disk_total_bytes}};
  } else {
    j["metrics"] = nullptr;
  }
  auto h = json::array();
  for (const auto& r : history) {
    if (r.kind == "state_change") {
      h.push_back({{"at_ms", r.at_ms}, {"from", r.from_state}, {"to", r.to_state}});
    }
  }
  j["history"] = std::move(h);
  return j;
}

json tile_json(const member_info& m) {
  return {{"id", m.id},
          {"name", m.name},
          {"hostname", m.hostname},
          {"state", to_string(m.state)},
          {"stacks", stack_names(m)},
          {"agent_version", m.has_status && !m.status.agent_version.empty()
                              ? json(m.status.agent_version)
                              : json(nullptr)},
          {"active", m.active},
          {"enrolled", m.enrolled}};
}

double health_pct(std::uint64_t healthy, std::uint64_t members) {
  if (members == 0) {
    return 100.0;
  }
  return std::round(1000.0 * static_cast<double>(healthy) /
                    static_cast<double>(members)) /
         10.0;
}

json overview_json(const pool_overview& o, std::int64_t now_ms,
                   const std::string& latest) {
  json kpis = {
    {"members", o.pool.members},
    {"agents_healthy", o.pool.agents_healthy},
    {"agents_total", o.pool.enrolled},
    {"last_check_in_ms", ms_or_null(o.last_check_in_ms)},
    {"last_check_in_age_s",
     o.last_check_in_ms == 0
       ? json(nullptr)
       : json(std::max<std::int64_t>(0, now_ms - o.last_check_in_ms) / 1000)},
    // Running jobs: the members' remote jobs out with their agents.
    {"running_jobs", o.running_jobs},
    {"queued_jobs", o.queued_jobs},
    {"backups", o.backups},
    {"cron_jobs", o.cron_jobs},
    {"fleet_health_pct", health_pct(o.pool.agents_healthy, o.pool.members)},
    {"outdated_agents", o.outdated_agents},
    {"agent_version_latest", latest},
    {"cpanel_members", o.cpanel_members}};
  auto tiles = json::array();
  for (const auto& m : o.tiles.members) {
    tiles.push_back(tile_json(m));
  }
  return {{"pool", pool_json(o.pool, false)},
          {"kpis", std::move(kpis)},
          {"tabs",
           {{"overview", true},
            {"protection", o.protection},
            {"managed_dns", o.managed_dns},
            {"monitoring", true},
            {"settings", true}}},
          {"active_member", id_or_null(o.pool.active)},
          {"holding", o.pool.holding},
          {"tiles", std::move(tiles)},
          {"tiles_total", o.tiles.total}};
}

// The activity kinds of the Protection tab's replication log, and of the
// members' job history.
bool in_log(const std::string& log, const std::string& kind) {
  if (log == "jobs") {
    return kind == "job";
  }
  return kind == "replication_sync" || kind == "replication_transfer" ||
         kind == "replication_failed" || kind == "account_cut";
}

json event_json(const activity_record& r) {
  auto message = r.message;
  if (message.empty() && r.kind == "state_change") {
    message = "member " + std::to_string(r.member) + " " + r.from_state +
              " -> " + r.to_state;
  }
  json j = {{"id", r.id},
            {"at_ms", r.at_ms},
            {"kind", r.kind},
            {"member", id_or_null(r.member)},
            {"message", message}};
  if (r.kind == "state_change") {
    j["from"] = r.from_state;
    j["to"] = r.to_state;
  }
  return j;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// A member just added or re-enrolled with its one-time secret and the
// install command for its Linux family.
json ticket_json(const admin_options& opts, const enrollment_ticket& t) {
  return {{"member", member_json(t.member)},
          {"enrollment",
           {{"secret", t.secret},
            {"install_command",
             install_command(t.member.linux_family, agent_install_url(opts),
                             t.secret, t.member.hostname, opts.public_url,
                             opts.agent_binary_url)},
            {"hostname", t.member.hostname},
            {"allowed_ips", t.member.allowed_ips},
            {"api_base", opts.public_url}}}};
}

} // namespace

const char* to_string(enroll_outcome o) {
  switch (o) {
    case enroll_outcome::accepted: return "accepted";
    case enroll_outcome::invalid_secret: return "invalid_secret";
    case enroll_outcome::hostname_mismatch: return "hostname_mismatch";
    case enroll_outcome::source_not_allowed: return "source_not_allowed";
    case enroll_outcome::rate_limited: return "rate_limited";
    case enroll_outcome::malformed: return "malformed";
    case enroll_outcome::error: return "error";
    case enroll_outcome::count_: break;
  }
  return "unknown";
}

int status_of(const std::string& code) {
  static const std::pair<const char*, int> table[] = {
    {"bad_request", 400},
    {"invalid_json", 400},
    {"unauthorized", 401},
    {"enrollment_invalid", 401},
    {"forbidden", 403},
    {"enrollment_hostname_mismatch", 403},
    {"enrollment_source_not_allowed", 403},
    {"not_found", 404},
    {"pool_not_found", 404},
    {"member_not_found", 404},
    {"account_not_found", 404},
    {"provider_not_found", 404},
    {"method_not_allowed", 405},
    {"request_timeout", 408},
    {"pool_exists", 409},
    {"hostname_exists", 409},
    {"failover_in_flight", 409},
    {"pool_managed_by_config", 409},
    {"active_member_no_standby", 409},
    {"pool_busy", 409},
    {"member_not_healthy", 409},
    {"account_exists", 409},
    {"account_not_managed", 409},
    {"provider_exists", 409},
    {"provider_in_use", 409},
    {"member_in_use", 409},
    {"not_applicable", 409},
    {"payload_too_large", 413},
    {"invalid_field", 422},
    {"unknown_field", 422},
    {"missing_field", 422},
    {"rate_limited", 429},
    {"headers_too_large", 431},
    {"internal", 500},
    {"dns_provider_failed", 502},
    {"unavailable", 503},
    {"too_many_connections", 503},
    {"not_clustered", 404},
    {"agent_unknown", 401},
    {"agent_signature_invalid", 401},
    {"agent_signature_stale", 401},
    {"invalid_body", 400},
    {"job_not_found", 404},
    {"run_not_found", 404},
    {"job_finished", 409},
    {"run_conflict", 409},
    {"replication_running", 409},
  };
  for (const auto& [c, s] : table) {
    if (code == c) {
      return s;
    }
  }
  return 500;
}

std::string install_command(const std::string& family,
                            const std::string& install_url,
                            const std::string& secret,
                            const std::string& hostname,
                            const std::string& api_base,
                            const std::string& binary_url) {
  // curl fetches deploy/install-agent.sh, which picks the package manager
  // itself; only curl's own install differs per family.
  std::string prerequisites =
    family == "debian"
      ? "command -v curl >/dev/null 2>&1 || (sudo apt-get update -qq && sudo "
        "apt-get install -y curl)"
      : "command -v curl >/dev/null 2>&1 || sudo dnf install -y curl "
        "2>/dev/null || sudo yum install -y curl";
  auto command = prerequisites + " && curl -fsSL " + shell_quote(install_url) +
                 " | sudo bash -s -- --enrol --key " + shell_quote(secret) +
                 " --hostname " + shell_quote(hostname) + " --api-base " +
                 shell_quote(api_base);
  if (!binary_url.empty()) {
    command += " --binary " + shell_quote(binary_url);
  }
  return command;
}

std::string agent_install_url(const admin_options& opts) {
  if (!opts.agent_install_url.empty()) {
    return opts.agent_install_url;
  }
  auto base = opts.public_url;
  while (!base.empty() && base.back() == '/') {
    base.pop_back();
  }
  return base + "/agent/install-agent.sh";
}

admin_api::admin_api(admin_options opts, control& engine, const clock& clk,
                     metrics_sources metrics)
  : opts_(std::move(opts)),
    engine_(engine),
    clk_(clk),
    metrics_(metrics),
    auth_(opts_.tokens),
    limiter_(std::make_shared<failure_limiter>(opts_.enroll_failures_per_minute)),
    enroll_counts_(std::make_shared<counts>()),
    agent_files_(opts_.agent_dist_dir, clk_) {}

void admin_api::handle(http::request&& req, http::responder respond) {
  try {
    route(req, respond);
  } catch (const std::exception& e) {
    log::error("admin_api_error", {{"method", req.method},
                                   {"path", req.path},
                                   {"error", e.what()}});
    respond(error("internal", "", "internal error"));
  }
}

void admin_api::route(http::request& req, http::responder& respond) {
  auto seg = split_path(req.path);
  const auto& m = req.method;
  auto allow = [&](std::initializer_list<const char*> methods) {
    for (const char* x : methods) {
      if (m == x) {
        return true;
      }
    }
    std::string list;
    for (const char* x : methods) {
      list += (list.empty() ? "" : ", ") + std::string(x);
    }
    auto r = error("method_not_allowed", "", m + " is not allowed here; use " + list);
    r.headers.emplace_back("Allow", list);
    respond(std::move(r));
    return false;
  };

  // -- no token -------------------------------------------------------------
  if (seg.size() == 1 && seg[0] == "healthz") {
    if (allow({"GET", "HEAD"})) {
      respond(ok_json(200, {{"status", "ok"}}));
    }
    return;
  }
  if (seg.size() == 1 && seg[0] == "readyz") {
    if (!allow({"GET", "HEAD"})) {
      return;
    }
    if (!engine_.ready()) {
      respond(ok_json(503, {{"status", "starting"}}));
      return;
    }
    // Ready means the engine answers now, not only that it once started.
    // Degraded still serves (detection and decisions go on, the store's
    // writes are owed): 200, with what is degraded.
    const auto* m = metrics_.engine;
    bool store_degraded = m != nullptr && m->store_degraded.load() != 0;
    std::uint64_t owed = m != nullptr ? m->store_owed.load() : 0;
    engine_.ping([respond, store_degraded, owed](outcome<bool> o) {
      if (!o.ok()) {
        respond(ok_json(503, {{"status", "unavailable"}, {"reason", o.error.message}}));
      } else if (store_degraded) {
        respond(ok_json(200, {{"status", "degraded"},
                              {"degraded", {"store"}},
                              {"reason", "the store is unavailable; " + std::to_string(owed) +
                                           " writes owed, replayed when it is back"}}));
      } else {
        respond(ok_json(200, {{"status", "ready"}}));
      }
    });
    return;
  }
  if (seg.size() == 2 && seg[0] == "v1" && seg[1] == "enroll") {
    if (allow({"POST"})) {
      enroll(req, respond);
    }
    return;
  }
  if (seg.size() >= 3 && seg[0] == "v1" && seg[1] == "agent") {
    // The agents' own API: signed with the member's key, no token.
    route_agent(engine_, clk_, req, respond);
    return;
  }
  if (seg.size() == 2 && seg[0] == "agent") {
    if (allow({"GET", "HEAD"})) {
      respond(agent_files_.get(seg[1]));
    }
    return;
  }

  if (chunks_ && chunks_->handle(req, respond)) {
    return; // /v1/chunks/: the URL's signature is its authorisation
  }

  // -- everything else needs a token ------------------------------------------
  std::string who;
  auto authz = req.header("authorization");
  auto r = authz ? auth_.check(*authz, &who) : role::none;
  if (r == role::none) {
    respond(error("unauthorized", "",
                  authz ? "unknown bearer token"
                        : "an Authorization: Bearer <token> header is required"));
    return;
  }
  bool reading = m == "GET" || m == "HEAD";
  auto need_admin = [&] {
    if (r == role::admin) {
      return true;
    }
    respond(error("forbidden", "",
                  "token '" + who + "' is read-only; " + m + " needs an admin token"));
    return false;
  };
  auto now = clk_.now_ms();

  if (seg.size() == 1 && seg[0] == "metrics") {
    if (allow({"GET"})) {
      http::response res;
      res.content_type = "text/plain; version=0.0.4";
      res.body = metrics_text();
      respond(std::move(res));
    }
    return;
  }
  if (seg.empty() || seg[0] != "v1") {
    respond(error("not_found", "", "no route " + req.path));
    return;
  }
  if (seg.size() == 2 && seg[1] == "cluster") {
    if (allow({"GET"})) {
      engine_.cluster_status(answer<std::string>(respond, [](const std::string& j) {
        auto body = json::parse(j, nullptr, false);
        return ok_json(200, body.is_discarded() ? json::object() : body);
      }));
    }
    return;
  }
  if (seg.size() == 2 && seg[1] == "status") {
    if (!allow({"GET"})) {
      return;
    }
    auto counts = engine_.count_states();
    engine_.list_pools(answer<std::vector<pool_summary>>(
      respond, [counts](const std::vector<pool_summary>& pools) {
        std::uint64_t holding = 0, enrolled = 0;
        for (const auto& p : pools) {
          holding += p.holding ? 1 : 0;
          enrolled += p.enrolled;
        }
        return ok_json(
          200, {{"pools", pools.size()},
                {"members", counts.total()},
                {"agents_healthy", counts.healthy},
                {"agents_total", enrolled},
                {"fleet_health_pct", health_pct(counts.healthy, counts.total())},
                {"by_state",
                 {{"pending", counts.pending},
                  {"healthy", counts.healthy},
                  {"suspect", counts.suspect},
                  {"down", counts.down},
                  {"recovering", counts.recovering}}},
                {"holding_pools", holding}});
      }));
    return;
  }
  if (seg.size() < 2 || seg[1] != "pools") {
    respond(error("not_found", "", "no route " + req.path));
    return;
  }

  // /v1/pools
  if (seg.size() == 2) {
    if (!allow({"GET", "POST"})) {
      return;
    }
    if (reading) {
      engine_.list_pools(answer<std::vector<pool_summary>>(
        respond, [](const std::vector<pool_summary>& pools) {
          auto list = json::array();
          for (const auto& p : pools) {
            list.push_back(pool_json(p, false));
          }
          return ok_json(200, {{"pools", std::move(list)}});
        }));
      return;
    }
    if (!need_admin()) {
      return;
    }
    auto b = body::parse(req, {"name", "preset", "id"});
    std::string name, id, preset = "generic-linux";
    b.label("name", true, name);
    b.string("preset", false, preset);
    pool_config pc;
    if (!b.error && !from_string(preset, pc.preset)) {
      b.invalid("preset", "must be generic-linux or haproxy (got \"" + preset + "\")");
    }
    if (b.string("id", false, id)) {
      if (!valid_pool_name(id)) {
        b.invalid("id", "must be 1 to 64 characters of A-Z a-z 0-9 . _ -");
      }
    } else if (!b.error) {
      id = slug(name);
      if (!valid_pool_name(id)) {
        b.invalid("name", "gives no usable id (letters or digits needed); "
                          "send an id");
      }
    }
    if (b.error) {
      respond(error(*b.error));
      return;
    }
    pc.name = id;
    pc.label = name;
    engine_.create_pool(std::move(pc),
                        answer<pool_summary>(respond, [](const pool_summary& s) {
                          return ok_json(201, pool_json(s, true));
                        }));
    return;
  }

  const auto& pool = seg[2];
  if (!valid_pool_name(pool)) {
    respond(error("pool_not_found", "", "no pool '" + pool + "'"));
    return;
  }

  // /v1/pools/{id}
  if (seg.size() == 3) {
    if (!allow({"GET", "PATCH", "DELETE"})) {
      return;
    }
    if (reading) {
      engine_.get_pool(pool, answer<pool_summary>(respond, [](const pool_summary& s) {
                         return ok_json(200, pool_json(s, true));
                       }));
      return;
    }
    if (!need_admin()) {
      return;
    }
    if (m == "DELETE") {
      bool force = false;
      if (auto e = read_force(req.query, force)) {
        respond(error(*e));
        return;
      }
      engine_.delete_pool(pool, force, answer<bool>(respond, [](bool) {
                            return no_content();
                          }));
      return;
    }
    auto b = body::parse(req, {"name"});
    std::string name;
    b.label("name", true, name);
    if (b.error) {
      respond(error(*b.error));
      return;
    }
    engine_.rename_pool(pool, name,
                        answer<pool_summary>(respond, [](const pool_summary& s) {
                          return ok_json(200, pool_json(s, true));
                        }));
    return;
  }

  const auto& what = seg[3];
  if (seg.size() == 4 && what == "settings") {
    if (!allow({"GET", "PATCH"})) {
      return;
    }
    if (reading) {
      engine_.get_pool(pool, answer<pool_summary>(respond, [](const pool_summary& s) {
                         return ok_json(200, settings_json(s));
                       }));
      return;
    }
    if (!need_admin()) {
      return;
    }
    // Syntax and field names here; ranges against the pool's own settings
    // in the engine (config's rules, read_pool_settings).
    auto b = body::parse(req, {"failover_delay_s", "failover_hostname", "failback",
                               "failback_stable_s", "mass_silence_share",
                               "mass_silence_min_members", "mass_silence_window_s",
                               "dns_provider", "dns_zone", "dns_ttl_s", "dns_sync",
                               "dns_only"});
    if (b.error) {
      respond(error(*b.error));
      return;
    }
    engine_.update_settings(pool, req.body,
                            answer<pool_summary>(respond, [](const pool_summary& s) {
                              return ok_json(200, settings_json(s));
                            }));
    return;
  }
  // POST /v1/pools/{id}/cut {"member": N, "force": false}: Cut pool.
  if (seg.size() == 4 && what == "cut") {
    if (!allow({"POST"}) || !need_admin()) {
      return;
    }
    auto b = body::parse(req, {"member", "force"});
    member_id target = 0;
    bool force = false;
    if (!b.error) {
      auto mi = b.j.find("member");
      if (mi == b.j.end()) {
        b.error = failure{"missing_field", "member", "required"};
      } else if (!mi->is_number_unsigned() || mi->get<std::uint64_t>() == 0) {
        b.invalid("member", "must be a member id (a positive integer)");
      } else {
        target = mi->get<std::uint64_t>();
      }
      auto fi = b.j.find("force");
      if (fi != b.j.end() && !fi->is_boolean()) {
        b.invalid("force", "must be true or false");
      } else if (fi != b.j.end()) {
        force = fi->get<bool>();
      }
    }
    if (b.error) {
      respond(error(*b.error));
      return;
    }
    engine_.cut_pool(pool, target, force,
                     answer<pool_summary>(respond, [](const pool_summary& s) {
                       return ok_json(200, pool_json(s, true));
                     }));
    return;
  }
  if (seg.size() == 4 && what == "overview") {
    if (!allow({"GET"})) {
      return;
    }
    std::uint64_t offset = 0, limit = default_page;
    if (auto e = read_page(req.query, "tiles_offset", "tiles_limit", offset, limit)) {
      respond(error(*e));
      return;
    }
    engine_.overview(pool, offset, limit,
                     answer<pool_overview>(respond, [now, latest = opts_.agent_version_latest](
                                                      const pool_overview& o) {
                       return ok_json(200, overview_json(o, now, latest));
                     }));
    return;
  }
  if (seg.size() == 4 && what == "activity") {
    if (!allow({"GET"})) {
      return;
    }
    auto q = query::parse(req.query, {"limit", "before", "kind"});
    std::uint64_t limit = 50, before = 0;
    if (q.error || !q.number("limit", 1, max_page, 50, limit) ||
        !q.number("before", 1, INT64_MAX, 0, before)) {
      respond(error(*q.error));
      return;
    }
    // ?kind=replication: the Protection tab's replication log (sync, DNS
    // cut, transfer and failure events) out of the page read.
    std::string kind;
    if (const auto* k = q.get("kind")) {
      kind = *k;
      if (kind != "replication" && kind != "jobs") {
        respond(error("invalid_field", "query.kind", "must be replication or jobs"));
        return;
      }
    }
    engine_.activity(
      pool, static_cast<std::int64_t>(before), limit, 0,
      answer<std::vector<activity_record>>(
        respond, [limit, kind](const std::vector<activity_record>& rs) {
          auto events = json::array();
          for (const auto& r : rs) {
            if (!kind.empty() && !in_log(kind, r.kind)) {
              continue;
            }
            events.push_back(event_json(r));
          }
          json next = rs.size() == limit && !rs.empty() ? json(rs.back().id)
                                                        : json(nullptr);
          return ok_json(200, {{"events", std::move(events)}, {"next_before", next}});
        }));
    return;
  }
  // Managed DNS and Protection: dns..., accounts... (api/dns_routes);
  // jobs and replication (api/protection_routes).
  route_context dns_ctx{engine_, reading, need_admin, allow, who};
  if (route_protection(dns_ctx, req, respond, seg)) {
    return;
  }
  if (route_dns(dns_ctx, req, respond, seg)) {
    return;
  }
  if (what != "members" || seg.size() > 6) {
    respond(error("not_found", "", "no route " + req.path));
    return;
  }

  // /v1/pools/{id}/members
  if (seg.size() == 4) {
    if (!allow({"GET", "POST"})) {
      return;
    }
    if (reading) {
      std::uint64_t offset = 0, limit = default_page;
      if (auto e = read_page(req.query, "offset", "limit", offset, limit)) {
        respond(error(*e));
        return;
      }
      engine_.list_members(pool, offset, limit,
                           answer<member_page>(respond, [](const member_page& p) {
                             auto list = json::array();
                             for (const auto& m : p.members) {
                               list.push_back(member_json(m));
                             }
                             return ok_json(200, {{"members", std::move(list)},
                                                  {"total", p.total}});
                           }));
      return;
    }
    if (!need_admin()) {
      return;
    }
    auto b = body::parse(req, {"name", "hostname", "linux_family", "allowed_ips"});
    new_member nm;
    b.label("name", false, nm.name);
    if (b.string("hostname", true, nm.hostname) && !valid_dns_name(nm.hostname)) {
      b.invalid("hostname",
                "must be a DNS name (letters, digits, hyphens, dots; at most 253)");
    }
    linux_family fam;
    if (b.string("linux_family", true, nm.linux_family) &&
        !from_string(nm.linux_family, fam)) {
      b.invalid("linux_family", "must be rhel (RHEL, Alma, Rocky, CentOS) or "
                                "debian (Ubuntu, Debian)");
    }
    if (!b.error) {
      auto ips = b.j.find("allowed_ips");
      if (ips == b.j.end()) {
        b.error = failure{"missing_field", "allowed_ips",
                          "required: the server's egress IPv4 addresses"};
      } else if (!ips->is_array() || ips->empty() || ips->size() > 64) {
        b.invalid("allowed_ips", "must be an array of 1 to 64 IPv4 addresses");
      } else {
        for (std::size_t i = 0; i < ips->size() && !b.error; ++i) {
          const auto& v = (*ips)[i];
          auto field = "allowed_ips[" + std::to_string(i) + "]";
          ip_address a;
          if (!v.is_string() || !ip_address::parse(v.get<std::string>(), a) ||
              v.get<std::string>().find(':') != std::string::npos) {
            b.error = failure{"invalid_field", field, "must be an IPv4 address"};
          } else {
            nm.allowed_ips.push_back(v.get<std::string>());
          }
        }
      }
    }
    if (b.error) {
      respond(error(*b.error));
      return;
    }
    engine_.add_member(pool, std::move(nm),
                       answer<enrollment_ticket>(respond, [opts = opts_](
                                                            const enrollment_ticket& t) {
                         return ok_json(201, ticket_json(opts, t));
                       }));
    return;
  }

  member_id id = 0;
  if (!parse_member_id(seg[4], id)) {
    respond(error("member_not_found", "", "no member '" + seg[4] + "'"));
    return;
  }
  // /v1/pools/{id}/members/{member}/enrollment
  if (seg.size() == 6) {
    if (seg[5] != "enrollment") {
      respond(error("not_found", "", "no route " + req.path));
      return;
    }
    if (!allow({"POST"}) || !need_admin()) {
      return;
    }
    engine_.reenrol(pool, id,
                    answer<enrollment_ticket>(respond, [opts = opts_](
                                                         const enrollment_ticket& t) {
                      return ok_json(201, ticket_json(opts, t));
                    }));
    return;
  }
  // /v1/pools/{id}/members/{member}
  if (!allow({"GET", "DELETE"})) {
    return;
  }
  if (reading) {
    engine_.get_member_detail(pool, id,
                              answer<member_detail>(respond, [](const member_detail& d) {
                                return ok_json(200, member_detail_json(d.member, d.history));
                              }));
    return;
  }
  if (!need_admin()) {
    return;
  }
  bool force = false;
  if (auto e = read_force(req.query, force)) {
    respond(error(*e));
    return;
  }
  engine_.remove_member(pool, id, force, answer<bool>(respond, [](bool) {
                          return no_content();
                        }));
}

void admin_api::enroll(http::request& req, http::responder& respond) {
  auto now = clk_.now_ms();
  auto counts = enroll_counts_;
  auto count = [counts](enroll_outcome o) {
    (*counts)[static_cast<std::size_t>(o)].fetch_add(1, std::memory_order_relaxed);
  };
  if (auto wait_ms = limiter_->blocked_for_ms(req.peer, now); wait_ms > 0) {
    count(enroll_outcome::rate_limited);
    auto r = error("rate_limited", "",
                   "too many failed enrollments from " + req.peer.to_string() +
                     "; try again later");
    r.headers.emplace_back("Retry-After", std::to_string((wait_ms + 999) / 1000));
    respond(std::move(r));
    return;
  }
  auto limiter = limiter_;
  auto source = req.peer;
  auto b = body::parse(req, {"hostname", "secret"});
  std::string hostname, secret;
  b.string("hostname", true, hostname);
  b.string("secret", true, secret);
  if (!b.error && (secret.empty() || secret.size() > 256)) {
    b.invalid("secret", "must be the enrollment secret from the install command");
  }
  if (b.error) {
    count(enroll_outcome::malformed);
    limiter->record_failure(source, now);
    respond(error(*b.error));
    return;
  }
  auto endpoint = opts_.heartbeat_endpoint;
  auto tls_endpoint = opts_.heartbeat_tls_endpoint;
  auto interval = opts_.heartbeat_interval_s;
  const clock* clk = &clk_;
  engine_.enroll(
    hostname, secret, source.to_string(),
    [=](outcome<enrollment_grant> o) {
      if (!o.ok()) {
        const auto& code = o.error.code;
        auto why = code == "enrollment_invalid"             ? enroll_outcome::invalid_secret
                   : code == "enrollment_hostname_mismatch" ? enroll_outcome::hostname_mismatch
                   : code == "enrollment_source_not_allowed"
                     ? enroll_outcome::source_not_allowed
                     : enroll_outcome::error;
        count(why);
        if (why != enroll_outcome::error) {
          limiter->record_failure(source, clk->now_ms());
        }
        log::warn("enrollment_refused", {{"source", source.to_string()},
                                         {"hostname", hostname},
                                         {"reason", code}});
        respond(error(o.error));
        return;
      }
      count(enroll_outcome::accepted);
      const auto& g = *o.value;
      json answer = {{"member_id", g.member},
                     {"pool", g.pool},
                     {"key", g.key_hex},
                     {"heartbeat_udp", endpoint},
                     {"interval_s", interval}};
      if (!tls_endpoint.empty()) {
        answer["heartbeat_tls"] = tls_endpoint;
      }
      respond(ok_json(200, answer));
    });
}

agent_files::agent_files(std::string dist_dir, const clock& clk, int binary_burst,
                         std::int64_t binary_refill_ms)
  : dist_dir_(std::move(dist_dir)),
    clk_(clk),
    binary_burst_(binary_burst),
    binary_refill_ms_(binary_refill_ms),
    binary_bucket_(binary_burst, binary_refill_ms) {}

http::response agent_files::get(const std::string& name) {
  // Two fixed names, never a path: nothing else under the directory (or
  // outside it) can be fetched without a token.
  bool is_binary = name == "balctl-agent";
  const char* type = name == "install-agent.sh" ? "text/x-shellscript"
                     : is_binary                ? "application/octet-stream"
                                                : nullptr;
  if (type == nullptr || dist_dir_.empty()) {
    return error("not_found", "",
                 type == nullptr ? "no such agent file: " + name
                                 : "this engine does not serve the agent "
                                   "(admin.agent_dist_dir is not set)");
  }
  std::shared_ptr<const std::string> body;
  {
    std::lock_guard<std::mutex> g(mu_);
    body = load(name, is_binary ? binary_ : script_);
  }
  if (!body) {
    return error("not_found", "", "agent file " + name + " is not available");
  }
  if (is_binary) {
    if (auto wait_ms = binary_bucket_.take(clk_.now_ms()); wait_ms > 0) {
      auto wait_s = std::max<std::int64_t>(1, (wait_ms + 999) / 1000);
      auto r = error("rate_limited", "",
                     "too many downloads of the agent binary: this engine serves " +
                       std::to_string(binary_burst_) + " at once, then one every " +
                       std::to_string(binary_refill_ms_) +
                       " ms, for all clients together, to bound the memory "
                       "unauthenticated downloads hold; retry after " +
                       std::to_string(wait_s) +
                       " s, or serve the binary from elsewhere (admin.agent_binary_url)");
      r.headers.emplace_back("Retry-After", std::to_string(wait_s));
      return r;
    }
  }
  http::response r;
  r.content_type = type;
  // The one copy this response holds; the cached bytes stay shared.
  r.body = *body;
  return r;
}

std::shared_ptr<const std::string> agent_files::load(const std::string& name,
                                                     cached& c) {
  auto path = dist_dir_ + "/" + name;
  auto unavailable = [&](const std::string& why) -> std::shared_ptr<const std::string> {
    c.body.reset();
    // Logged when it becomes unavailable, not on every (unauthenticated)
    // request while it stays so.
    if (!c.unavailable_logged) {
      log::error("agent_file_unreadable", {{"path", path}, {"error", why}});
      c.unavailable_logged = true;
    }
    return nullptr;
  };
  auto stamp_of = [](const struct stat& st) {
    file_stamp s;
    s.dev = static_cast<std::uint64_t>(st.st_dev);
    s.ino = static_cast<std::uint64_t>(st.st_ino);
    s.size = static_cast<std::uint64_t>(st.st_size);
    s.mtime_ns = std::int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
    s.ctime_ns = std::int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec;
    return s;
  };
  // One stat() per request; the file is read only when it changed.
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    return unavailable(std::string("stat: ") + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return unavailable("not a regular file");
  }
  if (c.body && c.stamp == stamp_of(st)) {
    return c.body;
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return unavailable(std::string("open: ") + std::strerror(errno));
  }
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  // The stamp of what is read (fstat, not the stat above): a file replaced
  // in between is read and stamped as the new one.
  if (::fstat(fd, &st) != 0) {
    return unavailable(std::string("fstat: ") + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return unavailable("not a regular file");
  }
  auto bytes = std::make_shared<std::string>();
  bytes->reserve(static_cast<std::size_t>(st.st_size));
  char buf[64 * 1024];
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n == 0) {
      break;
    }
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return unavailable(std::string("read: ") + std::strerror(errno));
    }
    bytes->append(buf, static_cast<std::size_t>(n));
  }
  // A file written while it was read has a newer stamp than the one taken
  // above, so the next request reads it again.
  c.body = std::move(bytes);
  c.stamp = stamp_of(st);
  c.unavailable_logged = false;
  log::info("agent_file_loaded", {{"path", path}, {"bytes", std::to_string(c.body->size())}});
  return c.body;
}

std::string admin_api::metrics_text() const {
  std::ostringstream out;
  auto family = [&](const char* name, const char* type, const char* help) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type
        << '\n';
  };
  // One line per label value: name{label="value"} count.
  using labelled = std::initializer_list<std::pair<const char*, std::uint64_t>>;
  auto by = [&](const char* name, const char* label, labelled values) {
    for (const auto& [value, count] : values) {
      out << name << '{' << label << "=\"" << value << "\"} " << count << '\n';
    }
  };
  if (const auto* in = metrics_.ingest) {
    family("balctl_heartbeats_accepted_total", "counter",
           "Heartbeat datagrams accepted (authentic, fresh, in order).");
    out << "balctl_heartbeats_accepted_total " << in->accepted.load() << '\n';
    family("balctl_heartbeats_rejected_total", "counter",
           "Heartbeat datagrams dropped, by reason.");
    for (std::size_t i = 0; i < protocol::reject_reason_count; ++i) {
      out << "balctl_heartbeats_rejected_total{reason=\""
          << protocol::to_string(static_cast<protocol::reject_reason>(i))
          << "\"} " << in->rejected[i].load() << '\n';
    }
  }
  auto c = engine_.count_states();
  family("balctl_members", "gauge", "Members by state.");
  by("balctl_members", "state",
     {{"pending", c.pending}, {"healthy", c.healthy}, {"suspect", c.suspect}, {"down", c.down},
      {"recovering", c.recovering}});
  if (const auto* e = metrics_.engine) {
    family("balctl_pool_decisions_total", "counter",
           "Pool decisions, by kind: DNS moves (failover, fail-back) and holds.");
    out << "balctl_pool_decisions_total{kind=\"dns_move\"} " << e->failovers.load()
        << '\n'
        << "balctl_pool_decisions_total{kind=\"hold\"} " << e->holds.load() << '\n'
        << "balctl_pool_decisions_total{kind=\"hold_released\"} "
        << e->decisions.load() - e->failovers.load() - e->holds.load() << '\n';
    family("balctl_actor_restarts_total", "counter",
           "Pool and member actors restarted after a crash.");
    out << "balctl_actor_restarts_total " << e->actor_restarts.load() << '\n';
    family("balctl_store_errors_total", "counter", "Failed store operations.");
    out << "balctl_store_errors_total " << e->store_errors.load() << '\n';
    family("balctl_store_degraded", "gauge",
           "1 while the store is unavailable and writes are owed to it.");
    out << "balctl_store_degraded " << e->store_degraded.load() << '\n';
    family("balctl_store_owed", "gauge",
           "Writes kept for the store while it is unavailable (checkpoints: one a member).");
    out << "balctl_store_owed " << e->store_owed.load() << '\n';
    family("balctl_store_owed_dropped_total", "counter",
           "Owed writes dropped beyond store_max_owed (oldest activity lines first).");
    out << "balctl_store_owed_dropped_total " << e->store_owed_dropped.load() << '\n';
    family("balctl_dns_requests_total", "counter",
           "Requests sent to DNS providers, every credential together.");
    out << "balctl_dns_requests_total " << e->dns_requests.load() << '\n';
    family("balctl_dns_responses_total", "counter",
           "DNS provider answers that were not an answer or said slow down.");
    out << "balctl_dns_responses_total{kind=\"transport_error\"} "
        << e->dns_transport_errors.load() << '\n'
        << "balctl_dns_responses_total{kind=\"rate_limited\"} "
        << e->dns_rate_limited.load() << '\n';
    family("balctl_dns_changes_total", "counter",
           "DNS changes ended, by result: written, already in place (no write), "
           "superseded by a newer change, failed for good.");
    out << "balctl_dns_changes_total{result=\"written\"} " << e->dns_writes.load() << '\n'
        << "balctl_dns_changes_total{result=\"in_place\"} " << e->dns_writes_saved.load()
        << '\n'
        << "balctl_dns_changes_total{result=\"superseded\"} "
        << e->dns_changes_superseded.load() << '\n'
        << "balctl_dns_changes_total{result=\"failed\"} " << e->dns_changes_failed.load()
        << '\n';
    family("balctl_dns_retries_total", "counter", "DNS change attempts that failed and wait for a retry.");
    out << "balctl_dns_retries_total " << e->dns_retries.load() << '\n';
    family("balctl_account_cuts_total", "counter",
           "Protected accounts whose DNS was cut to their standby or back.");
    out << "balctl_account_cuts_total " << e->account_cuts.load() << '\n';
    family("balctl_replication_runs_total", "counter",
           "Replication attempts that restored the account on its standby, or failed.");
    by("balctl_replication_runs_total", "result",
       {{"ok", e->replication_runs_ok.load()}, {"failed", e->replication_runs_failed.load()}});
    family("balctl_replication_starts_skipped_total", "counter",
           "Replication starts skipped: a run still going (overlap), or members that cannot "
           "replicate.");
    out << "balctl_replication_starts_skipped_total " << e->replication_starts_skipped.load()
        << '\n';
    family("balctl_replication_chunks_stored_total", "counter",
           "Replication chunks the source's agent reported stored in the object store.");
    out << "balctl_replication_chunks_stored_total " << e->replication_chunks_stored.load()
        << '\n';
    family("balctl_dns_first_request_ms", "summary",
           "From a decision to the first provider request of its changes at a credential.");
    for (bool pool_records : {true, false}) {
      for (double q : {0.5, 0.99}) {
        auto v = e->dns_first_request_percentile(pool_records, q * 100);
        if (v >= 0) {
          out << "balctl_dns_first_request_ms{records=\"" << (pool_records ? "pool" : "account")
              << "\",quantile=\"" << q << "\"} " << v << '\n';
        }
      }
    }
  }
  family("balctl_enrollments_total", "counter", "Agent enrollment attempts, by result.");
  for (std::size_t i = 0; i < static_cast<std::size_t>(enroll_outcome::count_); ++i) {
    out << "balctl_enrollments_total{result=\""
        << to_string(static_cast<enroll_outcome>(i)) << "\"} "
        << (*enroll_counts_)[i].load() << '\n';
  }
  if (const auto* h = metrics_.http) {
    family("balctl_http_requests_total", "counter",
           "Admin API responses, by status code.");
    for (std::size_t code = 100; code < h->responses.size(); ++code) {
      auto n = h->responses[code].load(std::memory_order_relaxed);
      if (n != 0) {
        out << "balctl_http_requests_total{code=\"" << code << "\"} " << n << '\n';
      }
    }
    family("balctl_http_connections_open", "gauge", "Open admin API connections.");
    out << "balctl_http_connections_open " << h->connections_open.load() << '\n';
    family("balctl_http_connections_rejected_total", "counter",
           "Connections refused over the connection limit.");
    out << "balctl_http_connections_rejected_total "
        << h->connections_rejected.load() << '\n';
    family("balctl_http_parse_errors_total", "counter", "Malformed HTTP requests.");
    out << "balctl_http_parse_errors_total " << h->parse_errors.load() << '\n';
  }
  if (const auto* u = metrics_.udp) {
    family("balctl_heartbeat_acks_total", "counter",
           "Acknowledgements sent for heartbeats that asked, and those dropped "
           "because the socket's send buffer was full (UDP).");
    out << "balctl_heartbeat_acks_total{transport=\"udp\",result=\"sent\"} "
        << u->replies_sent() << '\n'
        << "balctl_heartbeat_acks_total{transport=\"udp\",result=\"dropped\"} "
        << u->replies_dropped() << '\n';
  }
  if (const auto* t = metrics_.tls) {
    const auto& tc = t->counters();
    family("balctl_heartbeat_tls_connections_open", "gauge",
           "Open heartbeat TLS connections (handshaking or established).");
    out << "balctl_heartbeat_tls_connections_open " << tc.connections_open.load() << '\n';
    family("balctl_heartbeat_tls_connections_total", "counter",
           "Heartbeat TLS connections, by outcome.");
    out << "balctl_heartbeat_tls_connections_total{outcome=\"accepted\"} "
        << tc.connections_total.load() << '\n'
        << "balctl_heartbeat_tls_connections_total{outcome=\"over_limit\"} "
        << tc.connections_rejected.load() << '\n'
        << "balctl_heartbeat_tls_connections_total{outcome=\"handshake_error\"} "
        << tc.handshake_errors.load() << '\n'
        << "balctl_heartbeat_tls_connections_total{outcome=\"tls_error\"} "
        << tc.tls_errors.load() << '\n'
        << "balctl_heartbeat_tls_connections_total{outcome=\"garbage\"} "
        << tc.garbage_closed.load() << '\n'
        << "balctl_heartbeat_tls_connections_total{outcome=\"timeout\"} "
        << tc.timeouts.load() << '\n'
        << "balctl_heartbeat_tls_connections_total{outcome=\"slow_reader\"} "
        << tc.slow_readers_closed.load() << '\n';
    family("balctl_heartbeat_tls_frames_total", "counter",
           "Frames received over TLS (each then counted as accepted or rejected).");
    out << "balctl_heartbeat_tls_frames_total " << tc.frames.load() << '\n';
  }
  if (const auto* c = metrics_.chunks) {
    auto cc = c->counters();
    family("balctl_chunk_removals_total", "counter",
           "Replication chunks the engine removed from the object store, failed to (the "
           "store refused or was unreachable), or dropped (removal queue full).");
    by("balctl_chunk_removals_total", "result",
       {{"removed", cc.removed}, {"failed", cc.remove_failed}, {"dropped", cc.remove_dropped}});
    family("balctl_chunk_presign_failures_total", "counter",
           "Chunk URLs the engine could not presign (a refused key, or no object store).");
    out << "balctl_chunk_presign_failures_total " << cc.presign_failed << '\n';
  }
  if (const auto* n = metrics_.notify) {
    auto nc = n->counters();
    family("balctl_alerts_total", "counter",
           "Alerts posted, suppressed as repeats within notify.dedup_window_s, dropped "
           "(queue full or stopped) and abandoned at shutdown.");
    by("balctl_alerts_total", "result",
       {{"posted", nc.posted}, {"suppressed", nc.suppressed}, {"dropped", nc.dropped},
        {"abandoned", nc.abandoned}});
    family("balctl_alert_deliveries_total", "counter",
           "Alert deliveries by channel and outcome (gave_up is part of failed; retried "
           "counts attempts after the first).");
    for (auto [name, ch] : {std::pair{"email", &nc.email}, std::pair{"webhook", &nc.webhook}}) {
      for (auto [result, v] : {std::pair{"sent", ch->sent}, std::pair{"failed", ch->failed},
                               std::pair{"retried", ch->retried},
                               std::pair{"gave_up", ch->gave_up}}) {
        out << "balctl_alert_deliveries_total{channel=\"" << name << "\",result=\"" << result
            << "\"} " << v << '\n';
      }
    }
  }
  family("balctl_event_loop_lag_ms", "gauge",
         "How late a loop's 100 ms timer fired (admin HTTP, heartbeat "
         "ingest, heartbeat TLS): latest and largest since start.");
  if (const auto* h = metrics_.http) {
    out << "balctl_event_loop_lag_ms{loop=\"admin\",stat=\"last\"} "
        << h->loop_lag_ms.load() << '\n'
        << "balctl_event_loop_lag_ms{loop=\"admin\",stat=\"max\"} "
        << h->loop_lag_max_ms.load() << '\n';
  }
  if (metrics_.ingest_lag_ms != nullptr && metrics_.ingest_lag_max_ms != nullptr) {
    out << "balctl_event_loop_lag_ms{loop=\"ingest\",stat=\"last\"} "
        << metrics_.ingest_lag_ms->load() << '\n'
        << "balctl_event_loop_lag_ms{loop=\"ingest\",stat=\"max\"} "
        << metrics_.ingest_lag_max_ms->load() << '\n';
  }
  if (const auto* t = metrics_.tls) {
    out << "balctl_event_loop_lag_ms{loop=\"tls\",stat=\"last\"} "
        << t->loop_lag_ms().load() << '\n'
        << "balctl_event_loop_lag_ms{loop=\"tls\",stat=\"max\"} "
        << t->loop_lag_max_ms().load() << '\n';
  }
  return out.str();
}

} // namespace balctl::api
