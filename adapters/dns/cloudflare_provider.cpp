#include "adapters/dns/cloudflare_provider.hpp"

#include <cctype>
#include <cstdlib>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

namespace balctl::dns {
namespace {

using json = nlohmann::json;

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}


bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool parse_int(const std::string& s, long& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtol(s.c_str(), &end, 10);
  return end && *end == '\0';
}

struct shared_state {
  cloudflare_options opt;
  std::map<std::string, std::string> zone_ids; // zone name -> id
};

// Whether one entry of an answer's "errors" (or its error_chain) says the
// credentials were refused. Cloudflare answers a token it cannot read with
// HTTP 400, not 401/403: 9106 (no Authorization header), 6003 "Invalid
// request headers" with 6111 "Invalid format for Authorization header"; an
// unknown, revoked or under-privileged token with 403 10000 "Authentication
// error" or 9109. Counted as permanent, a mistyped token would stop the
// executor instead of alerting and retrying slowly.
bool refuses_credentials(const json& e) {
  if (!e.is_object()) {
    return false;
  }
  if (e.contains("code") && e["code"].is_number_integer()) {
    switch (e["code"].get<long>()) {
      case 6003: case 6111: case 9106: case 9109: case 10000: case 10001:
        return true;
      default:
        break;
    }
  }
  if (e.contains("error_chain") && e["error_chain"].is_array()) {
    for (const auto& x : e["error_chain"]) {
      if (refuses_credentials(x)) {
        return true;
      }
    }
  }
  return false;
}

// Classifies a non-success answer; returns true and sets `out` when it is an
// error.
bool classify_error(const http_response& r, const char* what, step& out) {
  if (!r.transport_error.empty()) {
    out = step::fail(failure::transient, std::string("cloudflare ") + what + ": " + r.transport_error);
    return true;
  }
  std::string cf_msg;
  long cf_code = 0;
  bool cf_auth = false;
  json j = json::parse(r.body, nullptr, false);
  bool ok_json = !j.is_discarded() && j.is_object();
  if (ok_json && j.contains("errors") && j["errors"].is_array() && !j["errors"].empty()) {
    const auto& e = j["errors"][0];
    if (e.is_object()) {
      if (e.contains("code") && e["code"].is_number_integer()) cf_code = e["code"].get<long>();
      if (e.contains("message") && e["message"].is_string()) cf_msg = e["message"].get<std::string>();
    }
    for (const auto& x : j["errors"]) {
      cf_auth = cf_auth || refuses_credentials(x);
    }
  }
  std::string base = std::string("cloudflare ") + what + ": HTTP " + std::to_string(r.status);
  if (!cf_msg.empty()) base += " (" + std::to_string(cf_code) + " " + cf_msg + ")";
  if (r.status == 429) {
    long secs = 0;
    std::int64_t ms = 0;
    if (parse_int(r.header_value("Retry-After"), secs) && secs > 0) ms = secs * 1000;
    out = step::fail(failure::rate_limited, base, ms);
    return true;
  }
  if (r.status == 401 || r.status == 403 || cf_auth) {
    out = step::fail(failure::auth, base);
    return true;
  }
  if (r.status >= 500 || r.status < 200) {
    out = step::fail(failure::transient, base);
    return true;
  }
  if (r.status >= 300) {
    out = step::fail(failure::permanent, base);
    return true;
  }
  if (!ok_json) {
    out = step::fail(failure::transient, std::string("cloudflare ") + what + ": malformed JSON answer");
    return true;
  }
  if (!j.contains("success") || !j["success"].is_boolean() || !j["success"].get<bool>()) {
    out = step::fail(failure::permanent, base + " success=false");
    return true;
  }
  return false;
}

json parse_ok(const http_response& r) { return json::parse(r.body, nullptr, false); }

std::string jstr(const json& o, const char* k) {
  if (o.is_object() && o.contains(k) && o[k].is_string()) return o[k].get<std::string>();
  return {};
}

// Cloudflare record object -> record (content in presentation form).
bool from_cf(const json& o, const std::string& zone, record& out) {
  if (!o.is_object()) return false;
  record_type t;
  if (!from_string(jstr(o, "type"), t)) return false;
  out.zone = zone;
  out.name = canonical_name(jstr(o, "name"));
  out.type = t;
  out.ttl_s = o.contains("ttl") && o["ttl"].is_number_integer() ? o["ttl"].get<int>() : 1;
  if (o.contains("proxied") && o["proxied"].is_boolean()) out.proxied = o["proxied"].get<bool>();
  std::string content = jstr(o, "content");
  if (t == record_type::mx) {
    long prio = o.contains("priority") && o["priority"].is_number_integer() ? o["priority"].get<long>() : 0;
    out.content = std::to_string(prio) + " " + canonical_name(content);
  } else if (t == record_type::srv) {
    if (o.contains("data") && o["data"].is_object()) {
      const auto& d = o["data"];
      auto num = [&](const char* k) {
        return d.contains(k) && d[k].is_number_integer() ? std::to_string(d[k].get<long>()) : std::string("0");
      };
      out.content = num("priority") + " " + num("weight") + " " + num("port") + " " +
                    canonical_name(jstr(d, "target"));
    } else {
      // content "weight port target", priority separate
      long prio = o.contains("priority") && o["priority"].is_number_integer() ? o["priority"].get<long>() : 0;
      out.content = std::to_string(prio) + " " + content;
    }
  } else {
    out.content = content;
  }
  return true;
}

bool to_cf_body(const record& r, json& body, std::string& err) {
  body = json::object();
  body["type"] = to_string(r.type);
  body["name"] = canonical_name(r.name);
  body["ttl"] = r.ttl_s;
  if (r.proxied) body["proxied"] = *r.proxied;
  auto w = content_words(r.content);
  if (r.type == record_type::mx) {
    long prio;
    if (w.size() != 2 || !parse_int(w[0], prio)) {
      err = "bad MX content";
      return false;
    }
    body["content"] = canonical_name(w[1]);
    body["priority"] = prio;
  } else if (r.type == record_type::srv) {
    long p, we, po;
    if (w.size() != 4 || !parse_int(w[0], p) || !parse_int(w[1], we) || !parse_int(w[2], po)) {
      err = "bad SRV content";
      return false;
    }
    body["data"] = {{"priority", p}, {"weight", we}, {"port", po}, {"target", canonical_name(w[3])}};
  } else {
    body["content"] = r.content;
  }
  return true;
}

class cf_op : public operation {
public:
  cf_op(std::shared_ptr<shared_state> st, record key) : st_(std::move(st)), key_(std::move(key)) {
    key_.name = canonical_name(key_.name);
    key_.zone = canonical_name(key_.zone);
  }

  step start() override {
    if (!key_.zone.empty()) {
      // Cloudflare reads a name outside the zone as relative to it: writing
      // www.other.org into example.com would create www.other.org.example.com.
      if (key_.name != key_.zone && !ends_with(key_.name, "." + key_.zone)) {
        return step::fail(failure::permanent,
                          "cloudflare: " + key_.name + " is not in zone " + key_.zone);
      }
      candidates_ = {key_.zone};
    } else {
      // suffixes longest first, stopping before the bare TLD
      std::string n = key_.name;
      while (true) {
        auto dot = n.find('.');
        if (dot == std::string::npos) break;
        candidates_.push_back(n);
        n = n.substr(dot + 1);
      }
    }
    for (const auto& c : candidates_) {
      auto it = st_->zone_ids.find(c);
      if (it != st_->zone_ids.end()) {
        zone_ = c;
        zone_id_ = it->second;
        return after_zone();
      }
    }
    if (candidates_.empty()) return step::fail(failure::permanent, "cloudflare: no zone for " + key_.name);
    stage_ = stage::zone;
    return zone_request();
  }

  step on_http(const http_response& r) override {
    if (stage_ == stage::zone) {
      step e;
      if (classify_error(r, "zone lookup", e)) return e;
      json j = parse_ok(r);
      if (j.contains("result") && j["result"].is_array() && !j["result"].empty() &&
          !jstr(j["result"][0], "id").empty()) {
        zone_ = candidates_[ci_];
        zone_id_ = jstr(j["result"][0], "id");
        st_->zone_ids[zone_] = zone_id_;
        return after_zone();
      }
      ++ci_;
      if (ci_ >= candidates_.size())
        return step::fail(failure::permanent, "cloudflare: no zone found for " + key_.name);
      return zone_request();
    }
    return on_answer(r);
  }

protected:
  enum class stage { zone, work };
  virtual step after_zone() = 0;
  virtual step on_answer(const http_response& r) = 0;

  http_request req(const std::string& method, const std::string& path, std::string body = {}) {
    http_request h;
    h.method = method;
    h.url = st_->opt.api_base + path;
    h.headers.push_back({"Authorization", "Bearer " + st_->opt.api_token});
    if (!body.empty() || method == "POST" || method == "PATCH") {
      h.headers.push_back({"Content-Type", "application/json"});
    }
    h.body = std::move(body);
    return h;
  }

  std::shared_ptr<shared_state> st_;
  record key_;
  std::string zone_, zone_id_;
  stage stage_ = stage::work;

private:
  step zone_request() {
    return step::send(req("GET", "/zones?name=" + url_encode(candidates_[ci_])));
  }
  std::vector<std::string> candidates_;
  std::size_t ci_ = 0;
};

class read_op : public cf_op {
public:
  using cf_op::cf_op;

protected:
  step after_zone() override {
    stage_ = stage::work;
    return step::send(req("GET", "/zones/" + zone_id_ + "/dns_records?type=" + to_string(key_.type) +
                                     "&name=" + url_encode(key_.name)));
  }
  step on_answer(const http_response& r) override {
    step e;
    if (classify_error(r, "read", e)) return e;
    json j = parse_ok(r);
    step s = step::done_write(false);
    if (j.contains("result") && j["result"].is_array()) {
      for (const auto& o : j["result"]) {
        record rec;
        if (from_cf(o, zone_, rec)) {
          s.live = rec;
          break;
        }
      }
    } else {
      return step::fail(failure::transient, "cloudflare read: answer without result");
    }
    return s;
  }
};

class apply_op : public cf_op {
public:
  using cf_op::cf_op;

protected:
  enum class phase { read, del, write };
  step after_zone() override {
    stage_ = stage::work;
    ph_ = phase::read;
    return step::send(req("GET", "/zones/" + zone_id_ + "/dns_records?type=" + to_string(key_.type) +
                                     "&name=" + url_encode(key_.name)));
  }

  step on_answer(const http_response& r) override {
    step e;
    switch (ph_) {
      case phase::read: {
        if (classify_error(r, "read", e)) return e;
        json j = parse_ok(r);
        if (!j.contains("result") || !j["result"].is_array())
          return step::fail(failure::transient, "cloudflare read: answer without result");
        std::vector<std::pair<std::string, record>> existing;
        for (const auto& o : j["result"]) {
          record rec;
          std::string id = jstr(o, "id");
          if (!id.empty() && from_cf(o, zone_, rec)) existing.emplace_back(id, rec);
        }
        std::string err;
        if (!to_cf_body(key_, body_, err)) return step::fail(failure::permanent, "cloudflare: " + err);
        if (existing.empty()) {
          ph_ = phase::write;
          return step::send(req("POST", "/zones/" + zone_id_ + "/dns_records", body_.dump()));
        }
        // Pick the best match to keep (one that already matches, else the first).
        std::size_t keep = 0;
        bool match = false;
        for (std::size_t i = 0; i < existing.size(); ++i) {
          if (matches(existing[i].second)) {
            keep = i;
            match = true;
            break;
          }
        }
        keep_id_ = existing[keep].first;
        for (std::size_t i = 0; i < existing.size(); ++i)
          if (i != keep) to_delete_.push_back(existing[i].first);
        need_write_ = !match;
        return next_after_read();
      }
      case phase::del: {
        if (r.transport_error.empty() && r.status == 404) {
          // already gone
        } else if (classify_error(r, "delete", e)) {
          return e;
        }
        wrote_ = true;
        return next_after_read();
      }
      case phase::write: {
        if (classify_error(r, "write", e)) return e;
        json j = parse_ok(r);
        record got;
        if (!j.contains("result") || !from_cf(j["result"], zone_, got) || got.name != key_.name ||
            !same_content(key_.type, got.content, key_.content) ||
            (key_.proxied && got.proxied != key_.proxied))
          return step::fail(failure::transient, "cloudflare write: not confirmed");
        return step::done_write(true);
      }
    }
    return step::fail(failure::permanent, "cloudflare: bad state");
  }

private:
  bool matches(const record& r) const {
    if (!same_content(key_.type, r.content, key_.content)) return false;
    if (key_.proxied && (!r.proxied || *r.proxied != *key_.proxied)) return false;
    // A proxied record's TTL is Auto (1) whatever is written, so comparing
    // it with ttl_s would rewrite a proxied record on every check.
    bool stays_proxied = key_.proxied ? *key_.proxied : r.proxied.value_or(false);
    if (!stays_proxied && r.ttl_s != key_.ttl_s) {
      return false;
    }
    return true;
  }
  step next_after_read() {
    if (!to_delete_.empty()) {
      std::string id = to_delete_.back();
      to_delete_.pop_back();
      ph_ = phase::del;
      return step::send(req("DELETE", "/zones/" + zone_id_ + "/dns_records/" + id));
    }
    if (need_write_) {
      ph_ = phase::write;
      return step::send(req("PATCH", "/zones/" + zone_id_ + "/dns_records/" + keep_id_, body_.dump()));
    }
    return step::done_write(wrote_);
  }

  phase ph_ = phase::read;
  json body_;
  std::string keep_id_;
  std::vector<std::string> to_delete_;
  bool need_write_ = false;
  bool wrote_ = false;
};

class list_op : public cf_op {
public:
  using cf_op::cf_op;

protected:
  step after_zone() override {
    stage_ = stage::work;
    return page_request();
  }
  step on_answer(const http_response& r) override {
    step e;
    if (classify_error(r, "list", e)) return e;
    json j = parse_ok(r);
    if (!j.contains("result") || !j["result"].is_array())
      return step::fail(failure::transient, "cloudflare list: answer without result");
    for (const auto& o : j["result"]) {
      record rec;
      if (from_cf(o, zone_, rec)) records_.push_back(std::move(rec));
    }
    long total = 1;
    if (j.contains("result_info") && j["result_info"].is_object() &&
        j["result_info"].contains("total_pages") && j["result_info"]["total_pages"].is_number_integer())
      total = j["result_info"]["total_pages"].get<long>();
    if (page_ < total && page_ < 10000 && !j["result"].empty()) {
      ++page_;
      return page_request();
    }
    step s = step::done_write(false);
    s.records = std::move(records_);
    return s;
  }

private:
  step page_request() {
    return step::send(req("GET", "/zones/" + zone_id_ + "/dns_records?page=" + std::to_string(page_) +
                                     "&per_page=" + std::to_string(st_->opt.per_page)));
  }
  long page_ = 1;
  std::vector<record> records_;
};

class cloudflare_provider final : public provider {
public:
  explicit cloudflare_provider(cloudflare_options o) : st_(std::make_shared<shared_state>()) {
    st_->opt = std::move(o);
    while (!st_->opt.api_base.empty() && st_->opt.api_base.back() == '/') st_->opt.api_base.pop_back();
    if (st_->opt.per_page <= 0) st_->opt.per_page = 100;
  }
  const char* kind() const override { return "cloudflare"; }
  std::unique_ptr<operation> apply(const record& desired) override {
    return std::make_unique<apply_op>(st_, desired);
  }
  std::unique_ptr<operation> read(const record& key) override {
    return std::make_unique<read_op>(st_, key);
  }
  std::unique_ptr<operation> list(const std::string& zone) override {
    record k;
    k.zone = zone;
    k.name = zone;
    return std::make_unique<list_op>(st_, k);
  }

private:
  std::shared_ptr<shared_state> st_;
};

} // namespace

std::unique_ptr<provider> make_cloudflare_provider(cloudflare_options o) {
  return std::make_unique<cloudflare_provider>(std::move(o));
}

} // namespace balctl::dns
