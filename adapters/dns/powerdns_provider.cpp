#include "adapters/dns/powerdns_provider.hpp"

#include <algorithm>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace balctl::dns {

namespace {

using json = nlohmann::json;

// What the provider keeps across operations: zones found (name → zone).
struct shared {
  powerdns_options o;
  std::unordered_map<std::string, std::string> zone_of;
};

std::string with_dot(const std::string& n) { return n.empty() || n.back() == '.' ? n : n + "."; }

// Content as PowerDNS stores it: host names absolute, with their dot.
std::string to_pdns(record_type t, const std::string& c) {
  if (t == record_type::mx || t == record_type::srv) {
    auto sp = c.find_last_of(' ');
    if (sp != std::string::npos) {
      return c.substr(0, sp + 1) + with_dot(c.substr(sp + 1));
    }
  }
  return c;
}

std::string from_pdns(record_type t, const std::string& c) {
  if (t == record_type::mx || t == record_type::srv) {
    auto out = c;
    while (!out.empty() && out.back() == '.') {
      out.pop_back();
    }
    return out;
  }
  return c;
}

// An answer that is not what was hoped for: the failure it means.
step failure_of(const http_response& r, const std::string& what) {
  if (!r.transport_error.empty()) {
    return step::fail(failure::transient, "powerdns " + what + ": " + r.transport_error);
  }
  std::string msg;
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) {
    msg = j["error"].get<std::string>();
  } else {
    msg = "HTTP " + std::to_string(r.status);
  }
  auto text = "powerdns " + what + ": " + msg;
  if (r.status == 401 || r.status == 403) {
    return step::fail(failure::auth, "powerdns " + what + ": the API key was refused (HTTP " +
                                       std::to_string(r.status) + ")");
  }
  if (r.status == 429) {
    std::int64_t after = 0;
    try {
      after = std::stoll(r.header_value("Retry-After")) * 1000;
    } catch (...) {
      after = 0;
    }
    return step::fail(failure::rate_limited, text, after);
  }
  if (r.status >= 500 || r.status == 0) {
    return step::fail(failure::transient, text);
  }
  return step::fail(failure::permanent, text);
}

class pdns_op final : public operation {
public:
  enum class mode { apply, read, list };
  pdns_op(std::shared_ptr<shared> sh, record want, mode m)
    : sh_(std::move(sh)), want_(std::move(want)), mode_(m) {
    want_.name = canonical_name(want_.name);
    want_.zone = canonical_name(want_.zone);
  }

  step start() override {
    if (mode_ != mode::list) {
      if (want_.name.empty()) {
        return step::fail(failure::permanent, "powerdns: a record needs a name");
      }
      if (!want_.zone.empty()) {
        candidates_ = {want_.zone};
      } else if (auto z = sh_->zone_of.find(want_.name); z != sh_->zone_of.end()) {
        candidates_ = {z->second};
      } else {
        // www.a.example.com → itself, a.example.com, example.com.
        std::string n = want_.name;
        while (n.find('.') != std::string::npos) {
          candidates_.push_back(n);
          n = n.substr(n.find('.') + 1);
        }
      }
    } else {
      candidates_ = {want_.zone};
    }
    if (candidates_.empty()) {
      return step::fail(failure::permanent, "powerdns: no zone can hold " + want_.name);
    }
    return get_zone();
  }

  step on_http(const http_response& r) override {
    switch (stage_) {
      case stage::find_zone:
        if (r.transport_error.empty() && (r.status == 404 || r.status == 422) &&
            next_ + 1 < candidates_.size()) {
          ++next_;
          return get_zone();
        }
        if (!r.transport_error.empty() || r.status != 200) {
          if (r.status == 404 || r.status == 422) {
            return step::fail(failure::permanent,
                              "powerdns: no zone on the server holds " + want_.name);
          }
          return failure_of(r, "zone " + candidates_[next_]);
        }
        zone_ = candidates_[next_];
        if (mode_ != mode::list) {
          sh_->zone_of[want_.name] = *zone_;
        }
        return compare(r);
      case stage::patch:
        if (r.transport_error.empty() && (r.status == 204 || r.status == 200)) {
          stage_ = stage::confirm;
          return get_zone();
        }
        return failure_of(r, "PATCH zone " + *zone_);
      case stage::confirm: {
        if (!r.transport_error.empty() || r.status != 200) {
          return failure_of(r, "zone " + *zone_);
        }
        auto live = live_set(r);
        if (!live) {
          return step::fail(failure::transient, "powerdns: zone " + *zone_ + " is not JSON");
        }
        if (matches(*live)) {
          return step::done_write(true);
        }
        return step::fail(failure::transient, "powerdns: " + want_.name + " " +
                                                to_string(want_.type) +
                                                " does not hold the new value after the PATCH");
      }
    }
    return step::fail(failure::permanent, "powerdns: unexpected answer");
  }

private:
  enum class stage { find_zone, patch, confirm };
  struct live_record {
    bool present = false;
    int ttl = 0;
    std::vector<std::string> contents;
  };

  std::string zone_url(const std::string& z) const {
    auto base = sh_->o.api_base;
    while (!base.empty() && base.back() == '/') {
      base.pop_back();
    }
    return base + "/api/v1/servers/" + sh_->o.server_id + "/zones/" + with_dot(z);
  }
  std::vector<header> headers() const {
    return {{"X-API-Key", sh_->o.api_key}, {"Accept", "application/json"},
            {"Content-Type", "application/json"}};
  }
  step get_zone() {
    return step::send(http_request{"GET", zone_url(zone_ ? *zone_ : candidates_[next_]),
                                   headers(), {}});
  }

  // The zone's rrset for the wanted name and type, nullopt when the body
  // is not a zone.
  std::optional<live_record> live_set(const http_response& r) const {
    auto j = json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("rrsets") || !j["rrsets"].is_array()) {
      return std::nullopt;
    }
    live_record out;
    auto name = with_dot(want_.name);
    for (const auto& rs : j["rrsets"]) {
      if (!rs.is_object() || !rs.value("name", json()).is_string() ||
          !rs.value("type", json()).is_string()) {
        continue;
      }
      if (canonical_name(rs["name"].get<std::string>()) != want_.name ||
          rs["type"].get<std::string>() != to_string(want_.type)) {
        continue;
      }
      out.present = true;
      out.ttl = rs.value("ttl", json(0)).is_number_integer() ? rs["ttl"].get<int>() : 0;
      if (rs.contains("records") && rs["records"].is_array()) {
        for (const auto& rec : rs["records"]) {
          if (rec.is_object() && rec.value("content", json()).is_string() &&
              !rec.value("disabled", false)) {
            out.contents.push_back(from_pdns(want_.type, rec["content"].get<std::string>()));
          }
        }
      }
    }
    return out;
  }

  bool matches(const live_record& l) const {
    return l.present && l.ttl == want_.ttl_s && l.contents.size() == 1 &&
           same_content(want_.type, l.contents[0], want_.content);
  }

  step compare(const http_response& r) {
    if (mode_ == mode::list) {
      return list_records(r);
    }
    auto live = live_set(r);
    if (!live) {
      return step::fail(failure::transient, "powerdns: zone " + *zone_ + " is not JSON");
    }
    if (mode_ == mode::read) {
      step s = step::done_write(false);
      if (live->present && !live->contents.empty()) {
        record got = want_;
        got.zone = *zone_;
        got.content = live->contents[0];
        got.ttl_s = live->ttl;
        s.live = got;
      }
      return s;
    }
    if (matches(*live)) {
      return step::done_write(false);
    }
    json body = {{"rrsets",
                  {{{"name", with_dot(want_.name)},
                    {"type", to_string(want_.type)},
                    {"ttl", want_.ttl_s},
                    {"changetype", "REPLACE"},
                    {"records", {{{"content", to_pdns(want_.type, want_.content)},
                                  {"disabled", false}}}}}}}};
    stage_ = stage::patch;
    return step::send(http_request{"PATCH", zone_url(*zone_), headers(), body.dump()});
  }

  step list_records(const http_response& r) const {
    auto j = json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("rrsets") || !j["rrsets"].is_array()) {
      return step::fail(failure::transient, "powerdns: zone " + *zone_ + " is not JSON");
    }
    step s = step::done_write(false);
    for (const auto& rs : j["rrsets"]) {
      record_type t;
      if (!rs.is_object() || !rs.value("type", json()).is_string() ||
          !from_string(rs["type"].get<std::string>(), t) ||
          !rs.value("name", json()).is_string() || !rs.contains("records") ||
          !rs["records"].is_array()) {
        continue;
      }
      for (const auto& rec : rs["records"]) {
        if (!rec.is_object() || !rec.value("content", json()).is_string()) {
          continue;
        }
        record out;
        out.zone = *zone_;
        out.name = canonical_name(rs["name"].get<std::string>());
        out.type = t;
        out.content = from_pdns(t, rec["content"].get<std::string>());
        out.ttl_s = rs.value("ttl", json(0)).is_number_integer() ? rs["ttl"].get<int>() : 0;
        s.records.push_back(std::move(out));
      }
    }
    return s;
  }

  std::shared_ptr<shared> sh_;
  record want_;
  mode mode_;
  std::vector<std::string> candidates_;
  std::size_t next_ = 0;
  std::optional<std::string> zone_;
  stage stage_ = stage::find_zone;

};

class powerdns_provider final : public provider {
public:
  explicit powerdns_provider(powerdns_options o) : sh_(std::make_shared<shared>()) {
    sh_->o = std::move(o);
  }
  const char* kind() const override { return "powerdns"; }
  std::unique_ptr<operation> apply(const record& desired) override {
    return std::make_unique<pdns_op>(sh_, desired, pdns_op::mode::apply);
  }
  std::unique_ptr<operation> read(const record& key) override {
    return std::make_unique<pdns_op>(sh_, key, pdns_op::mode::read);
  }
  std::unique_ptr<operation> list(const std::string& zone) override {
    record r;
    r.zone = zone;
    return std::make_unique<pdns_op>(sh_, r, pdns_op::mode::list);
  }

private:
  std::shared_ptr<shared> sh_;
};

} // namespace

std::unique_ptr<provider> make_powerdns_provider(powerdns_options o) {
  return std::make_unique<powerdns_provider>(std::move(o));
}

} // namespace balctl::dns
