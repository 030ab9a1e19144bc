#include "api/dns_routes.hpp"

#include "api/request.hpp"

namespace balctl::api {

namespace {

json or_null(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }
json ms_or_null(std::int64_t ms) { return ms == 0 ? json(nullptr) : json(ms); }

json provider_json(const dns_provider_config& p) {
  json j = {{"id", p.id},
            {"type", to_string(p.kind)},
            {"global", p.global},
            {"member", p.member == 0 ? json(nullptr) : json(p.member)},
            {"rate_limit_requests", p.rate_limit_requests},
            {"rate_limit_window_s", p.rate_limit_window_s},
            {"max_in_flight", p.max_in_flight},
            {"timeout_ms", p.timeout_ms},
            // Write-only: an operator sees that one is set, never what.
            {"secret_set", true}};
  switch (p.kind) {
    case dns_provider_kind::cloudflare:
      j["api_base"] = p.api_base;
      break;
    case dns_provider_kind::whm:
      j["api_base"] = p.api_base;
      j["user"] = p.user;
      break;
    case dns_provider_kind::powerdns:
      j["api_base"] = p.api_base;
      j["server_id"] = p.server_id;
      break;
    case dns_provider_kind::rfc2136:
      j["server"] = p.server;
      j["tsig_name"] = p.tsig_name;
      j["tsig_algorithm"] = p.tsig_algorithm;
      break;
  }
  if (!p.ca_file.empty()) {
    j["ca_file"] = p.ca_file;
  }
  return j;
}

json providers_json(const std::vector<dns_provider_config>& ps) {
  auto list = json::array();
  for (const auto& p : ps) {
    list.push_back(provider_json(p));
  }
  return {{"providers", std::move(list)}};
}

json record_json(const dns_record_view& v, const account_record* spec) {
  json live = nullptr;
  if (v.checked_ms != 0) {
    live = {{"status", v.live_status},
            {"content", or_null(v.live)},
            {"ttl_s", v.live_status == "found" ? json(v.live_ttl_s) : json(nullptr)},
            {"proxied", v.live_proxied < 0 ? json(nullptr) : json(v.live_proxied == 1)},
            {"checked_ms", v.checked_ms},
            {"error", or_null(v.error)}};
  }
  json j = {{"name", v.name},
            {"type", v.type},
            {"cut", v.cut},
            {"managed", v.managed},
            {"dns_only", v.dns_only},
            {"origin", v.origin},
            {"provider", or_null(v.provider)},
            {"provider_error", or_null(v.provider_error)},
            {"expected", or_null(v.expected)},
            {"effective_ttl_s", v.ttl_s},
            {"live", std::move(live)},
            {"drift", v.drift}};
  if (spec != nullptr) {
    // What the operator set: an account's GET, changed, is a valid PATCH
    // (the engine ignores the keys above that only describe the row).
    j["managed"] = spec->managed;
    j["source_content"] = or_null(spec->source_content);
    j["standby_content"] = or_null(spec->standby_content);
    j["content"] = or_null(spec->content);
    j["ttl_s"] = spec->ttl_s;
  }
  return j;
}

json account_json(const account_view& v) {
  const auto& a = v.account;
  auto records = json::array();
  std::uint64_t drift = 0;
  for (std::size_t i = 0; i < v.records.size(); ++i) {
    records.push_back(record_json(v.records[i], i < a.records.size() ? &a.records[i] : nullptr));
    drift += v.records[i].drift ? 1 : 0;
  }
  return {{"id", a.id},
          {"domain", a.domain},
          {"source", a.source},
          {"standby", a.standby},
          {"on", to_string(a.on)},
          {"on_member", v.on_member},
          {"on_since_ms", ms_or_null(a.on_since_ms)},
          {"source_state", to_string(v.source_state)},
          {"standby_state", to_string(v.standby_state)},
          {"dns_provider", a.dns_provider},
          {"dns_zone", or_null(a.dns_zone)},
          {"dns_ttl_s", a.dns_ttl_s},
          {"managed", a.managed},
          {"replication_every_s", a.replication_every_s},
          {"replication_overlap", a.replication_overlap},
          {"records", std::move(records)},
          {"drift", drift}};
}

json catalogue_json(const dns_catalogue& c) {
  auto accounts = json::array();
  for (const auto& a : c.accounts.accounts) {
    accounts.push_back(account_json(a));
  }
  return {{"pool", c.pool},
          {"managed_dns", c.managed_dns},
          {"health",
           {{"accounts", c.accounts.total},
            {"on_standby", c.on_standby},
            {"records", c.records},
            {"checked", c.checked},
            {"drift", c.drift},
            {"refreshed_ms", ms_or_null(c.refreshed_ms)},
            {"reads_pending", c.reads_pending}}},
          {"failover", c.failover.empty() ? json(nullptr) : record_json(c.failover[0], nullptr)},
          {"providers", providers_json(c.providers)["providers"]},
          {"config_providers", c.config_providers},
          {"accounts", std::move(accounts)},
          {"total", c.accounts.total}};
}

// An optional {"account": "..."} body of the catalogue actions.
std::optional<failure> read_account_choice(const http::request& req, std::string& account) {
  if (req.body.empty()) {
    return std::nullopt;
  }
  auto b = body::parse(req, {"account"});
  b.string("account", false, account);
  return b.error;
}

bool valid_id(const std::string& s) { return valid_pool_name(s); }

// The keys each body may have (their rules are the engine's).
constexpr std::initializer_list<const char*> provider_keys = {
  "id", "type", "api_base", "server", "user", "server_id", "tsig_name", "tsig_algorithm",
  "secret", "ca_file", "global", "member", "rate_limit_requests", "rate_limit_window_s",
  "max_in_flight", "timeout_ms",
  // Not accepted, but the engine says why (send the secret itself).
  "secret_file"};
constexpr std::initializer_list<const char*> account_keys = {
  "id", "domain", "source", "standby", "dns_provider", "dns_zone", "dns_ttl_s", "managed",
  "records", "replication_every_s", "replication_overlap",
  // What GET shows besides: a GET sent back as a PATCH is read as one.
  "on", "on_member", "on_since_ms", "source_state", "standby_state", "drift"};

} // namespace

bool route_dns(const route_context& ctx, http::request& req, http::responder& respond,
               const std::vector<std::string>& seg) {
  if (seg.size() < 4 || (seg[3] != "dns" && seg[3] != "accounts")) {
    return false;
  }
  const auto& pool = seg[2];
  auto& engine = ctx.engine;

  // -- /dns ----------------------------------------------------------------------
  if (seg[3] == "dns") {
    if (seg.size() == 4) {
      if (!ctx.allow({"GET"})) {
        return true;
      }
      std::uint64_t offset = 0, limit = default_page;
      if (auto e = read_page(req.query, "offset", "limit", offset, limit)) {
        respond(error(*e));
        return true;
      }
      engine.dns_catalogue(pool, offset, limit,
                           answer<dns_catalogue>(respond, [](const dns_catalogue& c) {
                             return ok_json(200, catalogue_json(c));
                           }));
      return true;
    }
    const auto& what = seg[4];
    if (seg.size() == 5 && (what == "refresh" || what == "import" || what == "sync")) {
      if (!ctx.allow({"POST"}) || !ctx.need_admin()) {
        return true;
      }
      std::string account;
      if (auto e = read_account_choice(req, account)) {
        respond(error(*e));
        return true;
      }
      if (!account.empty() && !valid_id(account)) {
        respond(error("account_not_found", "account", "no protected account '" + account + "'"));
        return true;
      }
      auto key = what == "refresh" ? "reads_queued" : "zones_queued";
      engine.dns_action(pool, what, account,
                        answer<std::uint64_t>(respond, [key](std::uint64_t n) {
                          // Accepted: the reads run at the providers' pace;
                          // GET dns shows the results as they land.
                          return ok_json(202, {{key, n}});
                        }));
      return true;
    }
    if (what != "providers" || seg.size() > 6) {
      respond(error("not_found", "", "no route " + req.path));
      return true;
    }
    auto list = answer<std::vector<dns_provider_config>>(
      respond, [](const std::vector<dns_provider_config>& ps) {
        return ok_json(200, providers_json(ps));
      });
    if (seg.size() == 5) {
      if (!ctx.allow({"GET", "POST"})) {
        return true;
      }
      if (ctx.reading) {
        engine.list_providers(pool, std::move(list));
        return true;
      }
      if (!ctx.need_admin()) {
        return true;
      }
      // Fields are checked by the engine with the config file's rules.
      auto b = body::parse(req, provider_keys);
      if (b.error) {
        respond(error(*b.error));
        return true;
      }
      engine.put_provider(pool, "", req.body,
                          answer<std::vector<dns_provider_config>>(
                            respond, [](const std::vector<dns_provider_config>& ps) {
                              return ok_json(201, providers_json(ps));
                            }));
      return true;
    }
    const auto& id = seg[5];
    if (!valid_id(id)) {
      respond(error("provider_not_found", "", "no DNS provider '" + id + "'"));
      return true;
    }
    if (!ctx.allow({"PATCH", "DELETE"}) || !ctx.need_admin()) {
      return true;
    }
    if (req.method == "DELETE") {
      engine.delete_provider(pool, id, std::move(list));
      return true;
    }
    auto b = body::parse(req, provider_keys);
    if (b.error) {
      respond(error(*b.error));
      return true;
    }
    engine.put_provider(pool, id, req.body, std::move(list));
    return true;
  }

  // -- /accounts -------------------------------------------------------------------
  auto one = answer<account_view>(respond, [](const account_view& v) {
    return ok_json(200, account_json(v));
  });
  if (seg.size() == 4) {
    if (!ctx.allow({"GET", "POST"})) {
      return true;
    }
    if (ctx.reading) {
      std::uint64_t offset = 0, limit = default_page;
      if (auto e = read_page(req.query, "offset", "limit", offset, limit)) {
        respond(error(*e));
        return true;
      }
      engine.list_accounts(pool, offset, limit,
                           answer<account_page>(respond, [](const account_page& p) {
                             auto list = json::array();
                             for (const auto& a : p.accounts) {
                               list.push_back(account_json(a));
                             }
                             return ok_json(200, {{"accounts", std::move(list)},
                                                  {"total", p.total}});
                           }));
      return true;
    }
    if (!ctx.need_admin()) {
      return true;
    }
    // Syntax here; fields and their rules in engine/accounts.
    auto b = body::parse(req, account_keys);
    if (b.error) {
      respond(error(*b.error));
      return true;
    }
    engine.put_account(pool, "", req.body, answer<account_view>(respond, [](const account_view& v) {
                         return ok_json(201, account_json(v));
                       }));
    return true;
  }
  const auto& id = seg[4];
  if (!valid_id(id) || seg.size() > 6) {
    respond(error(valid_id(id) ? "not_found" : "account_not_found", "",
                  valid_id(id) ? "no route " + req.path : "no protected account '" + id + "'"));
    return true;
  }
  if (seg.size() == 6) {
    if (seg[5] != "cut") {
      respond(error("not_found", "", "no route " + req.path));
      return true;
    }
    if (!ctx.allow({"POST"}) || !ctx.need_admin()) {
      return true;
    }
    auto b = body::parse(req, {"to", "force"});
    std::string to;
    bool force = false;
    if (b.string("to", true, to) && to != "standby" && to != "source") {
      b.invalid("to", "must be standby or source (fail-back)");
    }
    if (!b.error && b.has("force")) {
      if (!b.j["force"].is_boolean()) {
        b.invalid("force", "must be true or false");
      } else {
        force = b.j["force"].get<bool>();
      }
    }
    if (b.error) {
      respond(error(*b.error));
      return true;
    }
    engine.cut_account(pool, id, to, force, std::move(one));
    return true;
  }
  if (!ctx.allow({"GET", "PATCH", "DELETE"})) {
    return true;
  }
  if (ctx.reading) {
    engine.get_account(pool, id, std::move(one));
    return true;
  }
  if (!ctx.need_admin()) {
    return true;
  }
  if (req.method == "DELETE") {
    engine.delete_account(pool, id, answer<bool>(respond, [](bool) { return no_content(); }));
    return true;
  }
  auto b = body::parse(req, account_keys);
  if (b.error) {
    respond(error(*b.error));
    return true;
  }
  engine.put_account(pool, id, req.body, std::move(one));
  return true;
}

} // namespace balctl::api
