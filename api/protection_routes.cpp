#include "api/protection_routes.hpp"

#include "api/request.hpp"
#include "engine/log.hpp"
#include "transport/agent_auth.hpp"

namespace balctl::api {

namespace {

constexpr int max_command_bytes = 16 * 1024;

bool parse_id(const std::string& s, member_id& out) {
  if (s.empty() || s.size() > 20 || s.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  try {
    out = std::stoull(s);
  } catch (const std::exception&) {
    return false;
  }
  return out > 0;
}

// The engine answers JSON text: passed on with this status.
done<std::string> pass_on(http::responder respond, int status) {
  return answer<std::string>(respond, [status](const std::string& text) {
    auto j = json::parse(text, nullptr, false);
    return ok_json(status, j.is_discarded() ? json::object() : j);
  });
}

} // namespace

bool route_protection(const route_context& ctx, http::request& req, http::responder& respond,
                      const std::vector<std::string>& seg) {
  if (seg.size() < 4 || seg[1] != "pools") {
    return false;
  }
  const auto& pool = seg[2];
  const auto& what = seg[3];
  // /v1/pools/{pool}/protection
  if (seg.size() == 4 && what == "protection") {
    if (ctx.allow({"GET"})) {
      ctx.engine.replication(pool, "", pass_on(respond, 200));
    }
    return true;
  }
  // /v1/pools/{pool}/monitoring: the Monitoring tab's presets.
  if (seg.size() == 4 && what == "monitoring") {
    if (!ctx.allow({"GET", "PATCH"})) {
      return true;
    }
    if (ctx.reading) {
      ctx.engine.monitoring(pool, 0, "", pass_on(respond, 200));
    } else if (ctx.need_admin()) {
      ctx.engine.monitoring(pool, 0, req.body.empty() ? "{}" : req.body, pass_on(respond, 200));
    }
    return true;
  }
  // /v1/pools/{pool}/members/{m}/alerts: a member's own alert settings.
  if (seg.size() == 6 && what == "members" && seg[5] == "alerts") {
    member_id m = 0;
    if (!parse_id(seg[4], m)) {
      respond(error("member_not_found", "", "no member " + seg[4]));
      return true;
    }
    if (!ctx.allow({"GET", "PATCH"})) {
      return true;
    }
    if (!ctx.reading && !ctx.need_admin()) {
      return true;
    }
    auto patch = ctx.reading ? std::string() : (req.body.empty() ? "{}" : req.body);
    ctx.engine.get_member(pool, m, [&engine = ctx.engine, pool, m, patch,
                                    respond](outcome<member_info> o) {
      if (!o.ok()) {
        respond(error(o.error));
        return;
      }
      engine.monitoring(pool, m, patch, pass_on(respond, 200));
    });
    return true;
  }
  // /v1/pools/{pool}/accounts/{id}/replicate | replication
  if (seg.size() == 6 && what == "accounts" &&
      (seg[5] == "replicate" || seg[5] == "replication")) {
    if (seg[5] == "replication") {
      if (ctx.allow({"GET"})) {
        ctx.engine.replication(pool, seg[4], pass_on(respond, 200));
      }
      return true;
    }
    if (ctx.allow({"POST"}) && ctx.need_admin()) {
      ctx.engine.replicate(pool, seg[4], pass_on(respond, 202));
    }
    return true;
  }
  // /v1/pools/{pool}/jobs[/{id}[/cancel]]
  if (what == "jobs" && seg.size() <= 6) {
    if (seg.size() == 4) {
      if (ctx.allow({"GET"})) {
        ctx.engine.list_jobs(pool, 0, pass_on(respond, 200));
      }
    } else if (seg.size() == 5) {
      if (ctx.allow({"GET"})) {
        ctx.engine.get_job(pool, seg[4], pass_on(respond, 200));
      }
    } else if (seg[5] == "cancel") {
      if (ctx.allow({"POST"}) && ctx.need_admin()) {
        ctx.engine.cancel_job(pool, seg[4], pass_on(respond, 200));
      }
    } else {
      respond(error("not_found", "", "no route " + req.path));
    }
    return true;
  }
  // /v1/pools/{pool}/members/{m}/jobs
  if (seg.size() == 6 && what == "members" && seg[5] == "jobs") {
    member_id m = 0;
    if (!parse_id(seg[4], m)) {
      respond(error("member_not_found", "", "no member " + seg[4]));
      return true;
    }
    if (!ctx.allow({"GET", "POST"})) {
      return true;
    }
    if (ctx.reading) {
      ctx.engine.list_jobs(pool, m, pass_on(respond, 200));
      return true;
    }
    if (!ctx.need_admin()) {
      return true;
    }
    auto b = body::parse(req, {"command", "timeout_s"});
    std::string command;
    b.string("command", true, command);
    std::int64_t timeout_s = 3600;
    if (!b.error && b.has("timeout_s")) {
      const auto& t = b.j["timeout_s"];
      if (!t.is_number_integer() || t.get<std::int64_t>() < 1 ||
          t.get<std::int64_t>() > 86400) {
        b.invalid("timeout_s", "must be an integer between 1 and 86400 seconds");
      } else {
        timeout_s = t.get<std::int64_t>();
      }
    }
    if (!b.error && (command.empty() || command.size() > max_command_bytes ||
                     command.find('\0') != std::string::npos)) {
      b.invalid("command", "must be 1 to 16384 bytes of shell text without NUL");
    }
    if (b.error) {
      respond(error(*b.error));
      return true;
    }
    // Queued for the member's agent, which runs it with /bin/sh -c: only
    // the member's own pool may take it (the engine checks the member).
    json job{{"member", m},
             {"kind", "command"},
             {"params", json{{"command", command}}.dump()},
             {"timeout_s", timeout_s},
             {"requested_by", ctx.who}};
    ctx.engine.get_member(pool, m, [&engine = ctx.engine, pool, job,
                                    respond](outcome<member_info> o) {
      if (!o.ok()) {
        respond(error(o.error));
        return;
      }
      engine.queue_job(pool, job.dump(), pass_on(respond, 201));
    });
    return true;
  }
  return false;
}

void route_agent(control& engine, const clock& clk, http::request& req,
                 http::responder& respond) {
  auto header = [&](const char* name) {
    const auto* v = req.header(name);
    return v != nullptr ? *v : std::string();
  };
  member_id m = 0;
  if (!parse_id(header("x-balctl-member"), m)) {
    respond(error("agent_unknown", "X-Balctl-Member",
                  "X-Balctl-Member, X-Balctl-Timestamp and X-Balctl-Signature are required"));
    return;
  }
  auto key = engine.agent_key(m);
  if (!key) {
    respond(error("agent_unknown", "X-Balctl-Member", "no member " + std::to_string(m)));
    return;
  }
  auto target = req.path + (req.query.empty() ? "" : "?" + req.query);
  auto v = agent_auth::verify(*key, req.method, target, header("x-balctl-timestamp"), req.body,
                              header("x-balctl-signature"), clk.now_ms());
  if (v != agent_auth::verdict::ok) {
    if (v == agent_auth::verdict::signature_invalid) {
      log::warn("agent_signature_invalid",
                {{"member", std::to_string(m)}, {"source", req.peer.to_string()}});
    }
    bool stale = v == agent_auth::verdict::signature_stale;
    respond(error(agent_auth::to_code(v), stale ? "X-Balctl-Timestamp" : "X-Balctl-Signature",
                  stale ? "the timestamp is not Unix ms within 300 s of the engine's clock"
                        : "the signature does not verify with the member's key"));
    return;
  }
  // What follows /v1/agent/.
  auto path = req.path.substr(std::string("/v1/agent/").size());
  engine.agent_call(m, req.method, path, req.body, pass_on(respond, 200));
}

} // namespace balctl::api
