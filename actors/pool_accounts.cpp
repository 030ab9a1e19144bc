#include "actors/pool_accounts.hpp"

#include <algorithm>
#include <map>
#include <utility>

#include "actors/dns_executor.hpp"
#include "engine/features.hpp"
#include "engine/log.hpp"

namespace balctl {

namespace {

using changes = std::vector<dns_change_record>;

// Catalogue rows and Refresh DNS results are matched by name and type.
std::string obs_key(const std::string& name, const std::string& type) {
  return dns::canonical_name(name) + "/" + type;
}

std::function<std::string(member_id, bool)> addresses(pool_self self) {
  return [self](member_id m, bool v6) { return pool_member_address(self, m, v6); };
}

const std::vector<dns_provider_config>& file_providers(pool_self self) {
  return self->state.deps.engine->dns_providers;
}

std::string resolve(pool_self self, const std::string& spec, member_id to, std::string* why) {
  return resolve_provider(spec, to, self->state.rt->providers, file_providers(self), why);
}

const dns_provider_config* provider_config(pool_self self, const std::string& id) {
  for (const auto* list : {&std::as_const(self->state.rt->providers), &file_providers(self)}) {
    for (const auto& p : *list) {
      if (p.id == id) {
        return &p;
      }
    }
  }
  return nullptr;
}

std::string zone_of(const protected_account& a) {
  return a.dns_zone.empty() ? a.domain : a.dns_zone;
}

// The DNS changes that point account a's records at side `to`; what cannot
// be moved is said in problems.
changes changes_for(pool_self self, const protected_account& a, account_side to,
                    std::int64_t now, std::vector<std::string>& problems) {
  auto& st = self->state;
  changes out;
  if (!a.managed) {
    return out;
  }
  auto target = a.member_on(to);
  std::string why;
  auto provider = resolve(self, a.dns_provider, target, &why);
  if (provider.empty()) {
    problems.push_back("account " + a.id + ": DNS not cut: " + why);
    return out;
  }
  for (const auto& r : a.records) {
    if (!r.cut || !r.managed) {
      continue;
    }
    auto content = content_on(r, a, to, addresses(self));
    if (content.empty()) {
      problems.push_back("account " + a.id + ": " + r.name + " " + dns::to_string(r.type) +
                         " not cut: member " + std::to_string(target) + " has no " +
                         (r.type == dns::record_type::aaaa ? "IPv6" : "IPv4") + " address");
      continue;
    }
    dns::record d;
    d.zone = a.dns_zone;
    d.name = r.name;
    d.type = r.type;
    d.content = content;
    d.ttl_s = r.ttl_s > 0 ? r.ttl_s : a.dns_ttl_s;
    if (r.dns_only) {
      d.proxied = false;
    }
    auto c = make_dns_change(st.rt->config.name, provider, 0, 1, d);
    c.created_ms = now;
    out.push_back(std::move(c));
  }
  return out;
}

// What the provider confirmed (or showed) becomes the catalogue's live value.
void observe(pool_self self, const dns_change_record& r, std::int64_t now) {
  auto o = r;
  o.created_ms = now;
  self->state.observed[obs_key(r.name, r.type)] = std::move(o);
}

// At most this many lines for the failures of one batch; the rest counted.
constexpr std::size_t max_failure_lines = 20;

// Hands journaled (or, when the store failed, unjournaled) changes to the
// router and reports how they ended.
void send_changes(pool_self self, changes cs, std::string what) {
  auto& st = self->state;
  if (cs.empty()) {
    --st.in_flight;
    return;
  }
  self->request(st.deps.dns, caf::infinite, submit_atom_v, std::move(cs))
    .then(
      [=](changes& rs) {
        --self->state.in_flight;
        auto now = self->state.deps.clk->now_ms();
        std::size_t written = 0, in_place = 0, superseded = 0, failed = 0;
        for (const auto& r : rs) {
          if (r.status == "done") {
            (r.error == "in place" ? in_place : written) += 1;
            auto live = r;
            live.status = "found";
            live.error.clear();
            observe(self, live, now);
          } else if (r.status == "superseded") {
            ++superseded;
          } else {
            if (++failed <= max_failure_lines) {
              pool_note(self, activity_kind::dns_alert, 0,
                        what + ": " + r.name + " " + r.type + " at " + r.provider +
                          " failed: " + r.error);
            }
          }
        }
        if (failed > max_failure_lines) {
          pool_note(self, activity_kind::dns_alert, 0,
                    what + ": " + std::to_string(failed - max_failure_lines) +
                      " more record(s) failed");
        }
        pool_note(self, activity_kind::dns_change, 0,
                  what + ": " + std::to_string(rs.size()) + " record change(s): " +
                    std::to_string(written) + " written, " + std::to_string(in_place) +
                    " in place, " + std::to_string(superseded) + " superseded, " +
                    std::to_string(failed) + " failed");
      },
      [=](caf::error& e) {
        --self->state.in_flight;
        // Journaled changes stay pending: the next start resumes them.
        log::error("dns_change_failed", {{"pool", self->state.rt->config.name},
                                         {"what", what},
                                         {"error", self->system().render(e)}});
      });
}

// Writes the accounts' sides and their changes in one transaction, then
// sends the changes with their journal ids.
void submit_cut(pool_self self, std::vector<protected_account> moved, changes cs) {
  auto& st = self->state;
  ++st.in_flight;
  auto n = moved.size();
  auto what = n == 1 ? "account " + moved.front().id + " cut"
                     : std::to_string(n) + " accounts cut";
  self->request(st.deps.store, caf::infinite, cut_atom_v, st.rt->config.name,
                std::move(moved), cs)
    .then(
      [=](std::vector<std::int64_t>& ids) mutable {
        for (std::size_t i = 0; i < cs.size() && i < ids.size(); ++i) {
          cs[i].id = ids[i];
        }
        send_changes(self, std::move(cs), what);
      },
      [=](caf::error& e) mutable {
        if (is_fenced(e)) {
          --self->state.in_flight;
          log::warn("account_cut_fenced", {{"pool", self->state.rt->config.name},
                                           {"accounts", std::to_string(n)}});
          return;
        }
        // Refusing to move DNS because the disk failed would keep the
        // outage: act, unjournaled (the executor journals what it can),
        // and say loudly that the cut is not durable.
        log::error("account_cut_not_persisted", {{"pool", self->state.rt->config.name},
                                                 {"accounts", std::to_string(n)},
                                                 {"error", self->system().render(e)}});
        send_changes(self, std::move(cs), what);
      });
}

void tell_protection(pool_self self) {
  auto& st = self->state;
  if (!st.protection) {
    return;
  }
  std::vector<protected_account> as;
  for (const auto& [id, a] : st.rt->accounts.all()) {
    as.push_back(a);
  }
  self->send(st.protection, accounts_atom_v, std::move(as));
}

void carry_out(pool_self self, account_book::result r, std::int64_t now) {
  auto& st = self->state;
  for (auto& a : r.alerts) {
    log::warn("account_not_cut", {{"pool", st.rt->config.name}, {"reason", a}});
    pool_note(self, activity_kind::dns_alert, 0, std::move(a));
  }
  if (r.cuts.empty()) {
    return;
  }
  // One batch, one transaction, one submission, however many accounts.
  std::vector<protected_account> moved;
  changes cs;
  std::vector<std::string> problems;
  for (const auto& cut : r.cuts) {
    const auto* a = st.rt->accounts.find(cut.account);
    if (a == nullptr || st.accounts_deleting.count(cut.account) != 0) {
      continue;
    }
    std::string why;
    if (a->managed && resolve(self, a->dns_provider, cut.to_member, &why).empty()) {
      // No credential to move its records with: it stays where it is
      // rather than count as moved while DNS is not.
      problems.push_back("account " + a->id + ": DNS not cut to " + to_string(cut.to) +
                         " member " + std::to_string(cut.to_member) + ": " + why);
      continue;
    }
    auto mine = changes_for(self, *a, cut.to, now, problems);
    bool has_rows = std::any_of(a->records.begin(), a->records.end(),
                                [](const account_record& r) { return r.cut && r.managed; });
    if (a->managed && has_rows && mine.empty()) {
      // Not one record could be built (say why above): it stays where it is.
      continue;
    }
    if (a->on != cut.to) {
      st.deps.metrics->account_cuts.fetch_add(1, std::memory_order_relaxed);
    }
    st.rt->accounts.apply(cut, *st.policy, now);
    a = st.rt->accounts.find(cut.account);
    moved.push_back(*a);
    log::info("account_cut", {{"pool", st.rt->config.name},
                              {"account", a->id},
                              {"domain", a->domain},
                              {"to", to_string(cut.to)},
                              {"member", std::to_string(cut.to_member)},
                              {"records", std::to_string(mine.size())},
                              {"reason", cut.reason}});
    pool_note(self, activity_kind::account_cut, cut.to_member,
              "account " + a->id + " (" + a->domain + "): DNS cut to " + to_string(cut.to) +
                " member " + std::to_string(cut.to_member) +
                (cut.failback ? " (fail-back)" : "") + ", " + std::to_string(mine.size()) +
                " record(s): " + cut.reason);
    cs.insert(cs.end(), std::make_move_iterator(mine.begin()),
              std::make_move_iterator(mine.end()));
    if (cut.to == account_side::standby && st.protection) {
      // After the cut: the post-failover hook on the standby.
      self->send(st.protection, cut_atom_v, a->id, cut.to_member);
    }
  }
  if (!moved.empty()) {
    tell_protection(self);
  }
  for (auto& p : problems) {
    log::warn("account_not_cut", {{"pool", st.rt->config.name}, {"reason", p}});
    pool_note(self, activity_kind::dns_alert, 0, std::move(p));
  }
  if (moved.empty()) {
    return;
  }
  submit_cut(self, std::move(moved), std::move(cs));
}

// -- the catalogue -------------------------------------------------------------

void fill_live(pool_self self, dns_record_view& v) {
  auto& obs = self->state.observed;
  auto o = obs.find(obs_key(v.name, v.type));
  if (o == obs.end()) {
    return;
  }
  const auto& r = o->second;
  v.checked_ms = r.created_ms;
  v.live_status = r.status;
  v.live = r.content;
  v.live_ttl_s = r.ttl_s;
  v.live_proxied = r.proxied;
  v.error = r.error;
  dns::record_type t;
  dns::from_string(v.type, t);
  if (r.status == "found") {
    v.drift = !v.expected.empty() && !dns::same_content(t, v.expected, r.content);
  } else if (r.status == "missing") {
    v.drift = !v.expected.empty();
  }
}

dns_record_view record_view(pool_self self, const protected_account& a, const account_record& r) {
  dns_record_view v;
  v.account = a.id;
  v.name = r.name;
  v.type = dns::to_string(r.type);
  v.cut = r.cut;
  v.managed = a.managed && r.managed;
  v.dns_only = r.dns_only;
  v.origin = r.origin;
  v.provider = resolve(self, a.dns_provider, a.current(), &v.provider_error);
  v.expected = r.cut ? content_on(r, a, a.on, addresses(self)) : r.content;
  v.ttl_s = r.ttl_s > 0 ? r.ttl_s : a.dns_ttl_s;
  fill_live(self, v);
  return v;
}

account_view account_view_of(pool_self self, const protected_account& a) {
  auto& st = self->state;
  account_view v;
  v.account = a;
  v.on_member = a.current();
  v.source_state = st.policy->state_of(a.source);
  v.standby_state = st.policy->state_of(a.standby);
  for (const auto& r : a.records) {
    v.records.push_back(record_view(self, a, r));
  }
  return v;
}

std::optional<dns_record_view> failover_view(pool_self self) {
  auto& st = self->state;
  const auto& c = st.rt->config;
  if (c.failover_hostname.empty()) {
    return std::nullopt;
  }
  dns_record_view v;
  v.name = dns::canonical_name(c.failover_hostname);
  v.type = "A";
  v.managed = c.dns_sync;
  v.dns_only = c.dns_only;
  v.origin = "failover";
  v.provider = c.dns_provider;
  if (v.provider.empty()) {
    v.provider_error = "the pool names no DNS provider (settings: dns_provider)";
  }
  v.expected = pool_member_address(self, st.policy->active(), false);
  v.ttl_s = c.dns_ttl_s;
  fill_live(self, v);
  return v;
}

dns_catalogue catalogue_of(pool_self self, std::uint64_t offset, std::uint64_t limit) {
  auto& st = self->state;
  dns_catalogue c;
  c.pool = st.rt->config.name;
  c.managed_dns = compute_features(st.rt->config.preset, st.cpanel_members).managed_dns;
  c.providers = st.rt->providers;
  for (const auto& p : file_providers(self)) {
    c.config_providers.push_back(p.id);
  }
  if (auto f = failover_view(self)) {
    c.failover.push_back(std::move(*f));
  }
  const auto& all = st.rt->accounts.all();
  c.accounts.total = all.size();
  std::uint64_t pos = 0;
  for (const auto& [id, a] : all) {
    auto v = account_view_of(self, a);
    c.on_standby += a.on == account_side::standby ? 1 : 0;
    for (const auto& r : v.records) {
      ++c.records;
      c.checked += r.checked_ms != 0 ? 1 : 0;
      c.drift += r.drift ? 1 : 0;
    }
    if (pos >= offset && pos - offset < limit) {
      c.accounts.accounts.push_back(std::move(v));
    }
    ++pos;
  }
  c.refreshed_ms = st.refreshed_ms;
  c.reads_pending = st.reads_pending;
  return c;
}

// -- Refresh DNS, Import, Sync ----------------------------------------------------

// Accounts named by `account` ("" = all): nullptr entries never.
caf::expected<std::vector<const protected_account*>> accounts_named(pool_self self,
                                                                   const std::string& account) {
  auto& book = self->state.rt->accounts;
  std::vector<const protected_account*> out;
  if (account.empty()) {
    for (const auto& [id, a] : book.all()) {
      out.push_back(&a);
    }
    return out;
  }
  const auto* a = book.find(account);
  if (a == nullptr) {
    return refuse("account_not_found", "", "no protected account '" + account + "' in pool '" +
                                             self->state.rt->config.name + "'");
  }
  out.push_back(a);
  return out;
}

std::uint64_t refresh(pool_self self, const std::vector<const protected_account*>& accounts,
                      bool failover) {
  auto& st = self->state;
  changes keys;
  auto key = [&](const std::string& provider, const std::string& zone, const std::string& name,
                 const std::string& type) {
    dns_change_record k;
    k.pool = st.rt->config.name;
    k.provider = provider;
    k.zone = zone;
    k.name = name;
    k.type = type;
    keys.push_back(std::move(k));
  };
  if (failover) {
    if (auto f = failover_view(self); f && !f->provider.empty()) {
      key(f->provider, st.rt->config.dns_zone, f->name, f->type);
    }
  }
  for (const auto* a : accounts) {
    std::string why;
    auto provider = resolve(self, a->dns_provider, a->current(), &why);
    if (provider.empty()) {
      continue;
    }
    for (const auto& r : a->records) {
      key(provider, a->dns_zone, r.name, dns::to_string(r.type));
    }
  }
  auto n = keys.size();
  if (n == 0) {
    return 0;
  }
  st.reads_pending += n;
  self->request(st.deps.dns, caf::infinite, read_atom_v, std::move(keys))
    .then(
      [=](changes& rs) {
        auto& st = self->state;
        st.reads_pending -= std::min<std::uint64_t>(st.reads_pending, n);
        auto now = st.deps.clk->now_ms();
        std::size_t failed = 0;
        for (const auto& r : rs) {
          observe(self, r, now);
          failed += r.status == "failed" ? 1 : 0;
        }
        st.refreshed_ms = now;
        log::info("dns_refreshed", {{"pool", st.rt->config.name},
                                    {"records", std::to_string(rs.size())},
                                    {"failed", std::to_string(failed)}});
        if (failed > 0) {
          pool_note(self, activity_kind::dns_alert, 0,
                    "Refresh DNS: " + std::to_string(failed) + " of " +
                      std::to_string(rs.size()) + " record(s) could not be read");
        }
      },
      [=](caf::error&) {
        auto& st = self->state;
        st.reads_pending -= std::min<std::uint64_t>(st.reads_pending, n);
      });
  return n;
}

// One zone listed at one credential, for the accounts in it.
struct zone_job {
  std::string provider;
  std::string zone;
  std::vector<std::string> accounts;
  std::string push_to; // Sync: the Cloudflare credential; "" = Import
};

// Merges a zone's records into the catalogue rows of the accounts in it;
// with push_to, also writes the rows WHM holds (not cut, managed) there.
void merge_zone(pool_self self, const zone_job& job, const changes& listed) {
  auto& st = self->state;
  auto now = st.deps.clk->now_ms();
  const bool sync = !job.push_to.empty();
  const std::string origin = sync ? "whm" : "cloudflare";
  std::vector<protected_account> updated;
  changes pushes;
  std::size_t added = 0;
  auto failover_name = dns::canonical_name(st.rt->config.failover_hostname);
  account_book::result due;
  for (const auto& id : job.accounts) {
    const auto* found = st.rt->accounts.find(id);
    if (found == nullptr) {
      continue; // removed meanwhile
    }
    auto a = *found;
    changes mine;
    std::size_t mine_added = 0;
    for (const auto& l : listed) {
      dns::record_type t;
      if (!name_within(l.name, a.domain) || !dns::from_string(l.type, t)) {
        continue;
      }
      if (const auto* owner = st.rt->accounts.owner_of(l.name, t); owner && *owner != a.id) {
        continue; // another account's row (a domain nested in this one's)
      }
      if (t == dns::record_type::a && l.name == failover_name) {
        continue; // the pool's failover record follows the active member
      }
      auto row = std::find_if(a.records.begin(), a.records.end(), [&](const account_record& r) {
        return r.name == l.name && r.type == t;
      });
      if (row == a.records.end()) {
        account_record r;
        r.name = l.name;
        r.type = t;
        r.cut = false;
        r.origin = origin;
        a.records.push_back(std::move(r));
        row = a.records.end() - 1;
        ++mine_added;
      }
      if (!sync) {
        auto live = l;
        live.status = "found";
        observe(self, live, now);
      }
      if (row->cut) {
        // The cut-over list's values are the operator's and the account's
        // side's: a zone read never changes them.
        continue;
      }
      row->content = l.content;
      row->ttl_s = l.ttl_s >= 1 && l.ttl_s <= 86400 ? l.ttl_s : 0;
      if (sync && a.managed && row->managed) {
        dns::record d;
        d.zone = a.dns_zone;
        d.name = row->name;
        d.type = t;
        d.content = row->content;
        d.ttl_s = row->ttl_s > 0 ? row->ttl_s : a.dns_ttl_s;
        if (row->dns_only) {
          d.proxied = false;
        }
        // Behind cut-overs: a sync is never urgent.
        auto c = make_dns_change(st.rt->config.name, job.push_to, 0, 2, d);
        c.created_ms = now;
        mine.push_back(std::move(c));
      }
    }
    if (auto p = validate_account(a)) {
      // What was listed does not fit the catalogue (e.g. too many rows):
      // the account stays as it was and nothing of it is written.
      pool_note(self, activity_kind::dns_alert, 0,
                "account " + a.id + ": zone " + job.zone + " not taken: " + p->field + ": " +
                  p->message);
      continue;
    }
    added += mine_added;
    pushes.insert(pushes.end(), std::make_move_iterator(mine.begin()),
                  std::make_move_iterator(mine.end()));
    st.rt->accounts.put(a);
    // put() forgets its timers: evaluated again, a fail-back it waited for
    // is scheduled anew.
    auto r = st.rt->accounts.evaluate_one(a.id, *st.policy, now);
    due.cuts.insert(due.cuts.end(), r.cuts.begin(), r.cuts.end());
    due.alerts.insert(due.alerts.end(), r.alerts.begin(), r.alerts.end());
    updated.push_back(std::move(a));
  }
  if (!updated.empty()) {
    // Requested, not sent: the store answers, and an answer nobody takes
    // is an unexpected message.
    self->request(st.deps.store, caf::infinite, put_account_atom_v, st.rt->config.name, updated)
      .then([](bool) {},
            [self](caf::error& e) {
              log::error("account_not_stored", {{"pool", self->state.rt->config.name},
                                                {"error", self->system().render(e)}});
            });
  }
  // After the rows' write: a cut's own write of the side must come later.
  carry_out(self, std::move(due), now);
  arm_pool(self);
  auto what = std::string(sync ? "Sync WHM→Cloudflare" : "Import from Cloudflare") + " of zone " +
              job.zone;
  pool_note(self, activity_kind::account_changed, 0,
            what + ": " + std::to_string(listed.size()) + " record(s) read, " +
              std::to_string(added) + " new in the catalogue" +
              (sync ? ", " + std::to_string(pushes.size()) + " to write" : std::string()));
  if (sync) {
    ++st.in_flight;
    send_changes(self, std::move(pushes), what);
  }
}

std::uint64_t list_zones(pool_self self, std::vector<zone_job> jobs) {
  auto& st = self->state;
  for (auto& job : jobs) {
    ++st.reads_pending;
    auto shared = std::make_shared<zone_job>(std::move(job));
    self->request(st.deps.dns, caf::infinite, list_atom_v, shared->provider, shared->zone)
      .then(
        [=](changes& listed) {
          --self->state.reads_pending;
          merge_zone(self, *shared, listed);
        },
        [=](caf::error& e) {
          --self->state.reads_pending;
          pool_note(self, activity_kind::dns_alert, 0,
                    std::string(shared->push_to.empty() ? "Import from Cloudflare"
                                                        : "Sync WHM→Cloudflare") +
                      " of zone " + shared->zone + " at " + shared->provider +
                      " failed: " + self->system().render(e));
        });
  }
  return jobs.size();
}

// Import: each account's zone listed at its Cloudflare credential.
// Sync: listed at the WHM key of the member its records point at, pushed
// to its Cloudflare credential (accounts marked Managed only).
caf::result<std::uint64_t> import_or_sync(pool_self self, const std::string& account, bool sync) {
  auto named = accounts_named(self, account);
  if (!named) {
    return named.error();
  }
  std::map<std::pair<std::string, std::string>, zone_job> jobs;
  std::string skipped;
  for (const auto* a : *named) {
    std::string why;
    auto cf = resolve(self, a->dns_provider, a->current(), &why);
    const auto* pc = cf.empty() ? nullptr : provider_config(self, cf);
    if (pc == nullptr || pc->kind != dns_provider_kind::cloudflare) {
      skipped = "account " + a->id + "'s DNS provider is not a Cloudflare key" +
                (why.empty() ? "" : " (" + why + ")");
      continue;
    }
    std::string from = cf;
    if (sync) {
      if (!a->managed) {
        skipped = "account " + a->id + " is not marked Managed";
        continue;
      }
      from = resolve(self, "whm", a->current(), &why);
      if (from.empty()) {
        skipped = "account " + a->id + ": " + why;
        continue;
      }
    }
    auto& job = jobs[{from, zone_of(*a) + "|" + (sync ? cf : std::string())}];
    job.provider = from;
    job.zone = zone_of(*a);
    job.push_to = sync ? cf : std::string();
    job.accounts.push_back(a->id);
  }
  if (jobs.empty() && !account.empty()) {
    return refuse("not_applicable", "account", skipped);
  }
  std::vector<zone_job> list;
  for (auto& [k, j] : jobs) {
    list.push_back(std::move(j));
  }
  return list_zones(self, std::move(list));
}

} // namespace

void accounts_step(pool_self self, member_id changed, std::int64_t now_ms) {
  auto& st = self->state;
  auto& book = st.rt->accounts;
  bool hold = st.policy->network_hold();
  bool released = st.network_hold && !hold;
  st.network_hold = hold;
  if (book.size() == 0) {
    return;
  }
  if (released) {
    carry_out(self, book.evaluate_all(*st.policy, now_ms), now_ms);
  } else if (changed != 0) {
    carry_out(self, book.on_member_state(changed, *st.policy, now_ms), now_ms);
  }
  if (auto next = book.next_deadline_ms(); next && *next <= now_ms) {
    carry_out(self, book.on_tick(*st.policy, now_ms), now_ms);
  }
}

void accounts_evaluate_all(pool_self self, std::int64_t now_ms) {
  auto& st = self->state;
  st.network_hold = st.policy->network_hold();
  if (st.rt->accounts.size() > 0) {
    carry_out(self, st.rt->accounts.evaluate_all(*st.policy, now_ms), now_ms);
  }
}

std::optional<caf::error> accounts_block_removal(pool_self self, member_id m) {
  auto& st = self->state;
  auto ids = st.rt->accounts.of_member(m);
  std::string keys;
  for (const auto& p : st.rt->providers) {
    if (p.member == m) {
      keys += (keys.empty() ? "" : ", ") + p.id;
    }
  }
  if (ids.empty() && keys.empty()) {
    return std::nullopt;
  }
  std::string list;
  for (std::size_t i = 0; i < ids.size() && i < 5; ++i) {
    list += (i == 0 ? "" : ", ") + ids[i];
  }
  if (ids.size() > 5) {
    list += " and " + std::to_string(ids.size() - 5) + " more";
  }
  std::string msg = "member " + std::to_string(m);
  if (!ids.empty()) {
    msg += " is the source or standby of protected account(s) " + list;
  }
  if (!keys.empty()) {
    msg += std::string(ids.empty() ? "" : " and") + " has WHM DNS key(s) " + keys;
  }
  return refuse("member_in_use", "", msg + "; change or remove them first");
}

std::optional<caf::error> provider_in_use(pool_self self, const std::string& id) {
  auto& st = self->state;
  if (st.rt->config.dns_provider == id) {
    return refuse("provider_in_use", "", "DNS provider '" + id +
                                           "' moves the pool's failover record "
                                           "(settings: dns_provider); change that first");
  }
  // Named, or reached through "cloudflare" (the Global key) or "whm" (a
  // member's key) on either side of an account.
  for (const auto& [aid, a] : st.rt->accounts.all()) {
    for (auto side : {account_side::source, account_side::standby}) {
      std::string why;
      if (resolve(self, a.dns_provider, a.member_on(side), &why) == id) {
        return refuse("provider_in_use", "",
                      "DNS provider '" + id + "' moves protected account " + aid +
                        "'s records (to its " + to_string(side) +
                        "); change its dns_provider first");
      }
    }
  }
  return std::nullopt;
}

bool pool_has_provider(pool_self self, const std::string& id) {
  return provider_config(self, id) != nullptr;
}

void accounts_to_protection(pool_self self) { tell_protection(self); }

caf::message_handler accounts_handlers(pool_self self) {
  return {
    [=](accounts_atom, std::uint64_t offset, std::uint64_t limit) -> account_page {
      account_page p;
      const auto& all = self->state.rt->accounts.all();
      p.total = all.size();
      std::uint64_t pos = 0;
      for (const auto& [id, a] : all) {
        if (pos >= offset && pos - offset < limit) {
          p.accounts.push_back(account_view_of(self, a));
        }
        ++pos;
      }
      return p;
    },
    [=](account_atom, const std::string& id) -> caf::result<account_view> {
      const auto* a = self->state.rt->accounts.find(id);
      if (a == nullptr) {
        return refuse("account_not_found", "", "no protected account '" + id + "' in pool '" +
                                                 self->state.rt->config.name + "'");
      }
      return account_view_of(self, *a);
    },
    [=](put_account_atom, const std::string& id,
        const std::string& body) -> caf::result<account_view> {
      auto& st = self->state;
      bool create = id.empty();
      protected_account a;
      if (!create) {
        const auto* cur = st.rt->accounts.find(id);
        if (cur == nullptr) {
          return refuse("account_not_found", "", "no protected account '" + id +
                                                   "' in pool '" + st.rt->config.name + "'");
        }
        a = *cur;
      }
      if (auto p = read_account_json(body, a, create)) {
        return refuse(p->code, p->field, p->message);
      }
      if (create && st.rt->accounts.find(a.id) != nullptr) {
        return refuse("account_exists", "id", "pool '" + st.rt->config.name +
                                                "' already protects account '" + a.id + "'");
      }
      if (create && st.rt->config.preset == pool_preset::haproxy) {
        // engine/features: an HAProxy pool fails over through its own
        // Balancer failover, never through per-account cut-overs.
        return refuse("not_applicable", "", "pool '" + st.rt->config.name +
                                              "' is an HAProxy pool: Protection and Managed "
                                              "DNS belong to generic-linux pools");
      }
      // A record belongs to one account, and the failover record to the pool.
      auto failover_name = dns::canonical_name(st.rt->config.failover_hostname);
      for (std::size_t i = 0; i < a.records.size(); ++i) {
        const auto& r = a.records[i];
        auto field = "records[" + std::to_string(i) + "].name";
        if (const auto* owner = st.rt->accounts.owner_of(r.name, r.type);
            owner && *owner != a.id) {
          return refuse("invalid_field", field,
                        r.name + " " + dns::to_string(r.type) +
                          " is already protected account " + *owner + "'s");
        }
        if (r.type == dns::record_type::a && r.name == failover_name) {
          return refuse("invalid_field", field,
                        r.name + " is the pool's failover hostname (it follows the "
                                 "active member)");
        }
      }
      for (auto [field, m] : {std::pair<const char*, member_id>{"source", a.source},
                              {"standby", a.standby}}) {
        if (!st.policy->position_of(m)) {
          return refuse("invalid_field", field, "no member " + std::to_string(m) +
                                                  " in pool '" + st.rt->config.name + "'");
        }
      }
      if (a.dns_provider != "cloudflare" && a.dns_provider != "whm" &&
          !pool_has_provider(self, a.dns_provider)) {
        return refuse("invalid_field", "dns_provider",
                      "no DNS provider has id '" + a.dns_provider +
                        "' (cloudflare, whm, or one of the pool's API providers)");
      }
      if (const auto* pc = provider_config(self, a.dns_provider);
          pc && pc->kind == dns_provider_kind::whm) {
        // A WHM key is one member's: named here, a cut away from that
        // member would go to its dead server.
        return refuse("invalid_field", "dns_provider",
                      "'" + a.dns_provider + "' is member " + std::to_string(pc->member) +
                        "'s WHM key; use \"whm\" (the key of the member the records move to)");
      }
      if (st.accounts_changing.count(a.id) != 0) {
        return refuse("pool_busy", "", "account " + a.id + " is being changed; retry in a moment");
      }
      auto now = st.deps.clk->now_ms();
      if (create) {
        a.on = account_side::source;
        a.on_since_ms = now;
      } else if (const auto* before = st.rt->accounts.find(id);
                 before->current() != a.current() &&
                 st.policy->state_of(a.current()) != member_state::healthy) {
        // Its records would move to that member now: never to one that is
        // not healthy (cut the account elsewhere first).
        auto field = a.on == account_side::source ? "source" : "standby";
        return refuse("member_not_healthy", field,
                      "the account's records point at its " + std::string(field) +
                        ", and member " + std::to_string(a.current()) + " is " +
                        to_string(st.policy->state_of(a.current())));
      }
      st.accounts_changing.insert(a.id);
      auto rp = self->make_response_promise<account_view>();
      ++st.pending_writes;
      self->request(st.deps.store, caf::infinite, put_account_atom_v, st.rt->config.name,
                    std::vector<protected_account>{a})
        .then(
          [=](bool) mutable {
            auto& st = self->state;
            --st.pending_writes;
            st.accounts_changing.erase(a.id);
            auto now = st.deps.clk->now_ms();
            // The side is the book's: a cut taken while this was stored
            // stands (its own transaction wrote it after this one). A
            // change of where the records point re-applies them there.
            bool reapply = false;
            if (const auto* cur = st.rt->accounts.find(a.id); cur != nullptr && !create) {
              a.on = cur->on;
              a.on_since_ms = cur->on_since_ms;
              reapply = a.managed && to_json_text(*cur) != to_json_text(a);
            }
            st.rt->accounts.put(a);
            tell_protection(self);
            pool_note(self, activity_kind::account_changed, a.source,
                      "protected account " + a.id + " (" + a.domain + ") " +
                        (create ? "added" : "changed") + ": source " + std::to_string(a.source) +
                        ", standby " + std::to_string(a.standby) + ", DNS " + a.dns_provider +
                        (a.managed ? "" : " (managed DNS off)") + ", " +
                        std::to_string(a.records.size()) + " record(s)");
            rp.deliver(account_view_of(self, a));
            // An account added while its source is already down is cut now.
            auto r = st.rt->accounts.evaluate_one(a.id, *st.policy, now);
            if (r.cuts.empty() && reapply) {
              r.cuts.push_back(account_cut{a.id, a.on, a.current(), a.current(), false,
                                           "account " + a.id + " changed: its records are "
                                           "re-applied on its " + to_string(a.on)});
            }
            carry_out(self, std::move(r), now);
            arm_pool(self);
          },
          [=](caf::error& e) mutable {
            --self->state.pending_writes;
            self->state.accounts_changing.erase(a.id);
            rp.deliver(refuse("unavailable", "",
                              "account not stored: " + self->system().render(e)));
          });
      return rp;
    },
    [=](protection_atom) -> caf::result<caf::actor> {
      if (!self->state.protection) {
        return refuse("not_applicable", "", "pool '" + self->state.rt->config.name +
                                              "' has no protection actor");
      }
      return self->state.protection;
    },
    [=](delete_account_atom, const std::string& id) -> caf::result<bool> {
      auto& st = self->state;
      if (st.rt->accounts.find(id) == nullptr) {
        return refuse("account_not_found", "", "no protected account '" + id + "' in pool '" +
                                                 st.rt->config.name + "'");
      }
      if (st.accounts_changing.count(id) != 0) {
        return refuse("pool_busy", "", "account " + id + " is being changed; retry in a moment");
      }
      st.accounts_changing.insert(id);
      st.accounts_deleting.insert(id);
      auto rp = self->make_response_promise<bool>();
      ++st.pending_writes;
      self->request(st.deps.store, caf::infinite, delete_account_atom_v, st.rt->config.name, id)
        .then(
          [=](bool) mutable {
            auto& st = self->state;
            --st.pending_writes;
            st.accounts_changing.erase(id);
            st.accounts_deleting.erase(id);
            // Its DNS stays where it points now; what was read of it goes.
            if (const auto* a = st.rt->accounts.find(id)) {
              for (const auto& r : a->records) {
                st.observed.erase(obs_key(r.name, dns::to_string(r.type)));
              }
            }
            st.rt->accounts.remove(id);
            tell_protection(self);
            pool_note(self, activity_kind::account_changed, 0,
                      "protected account " + id + " removed (its DNS records stay as they are)");
            rp.deliver(true);
          },
          [=](caf::error& e) mutable {
            --self->state.pending_writes;
            self->state.accounts_changing.erase(id);
            self->state.accounts_deleting.erase(id);
            rp.deliver(refuse("unavailable", "",
                              "account not removed: " + self->system().render(e)));
          });
      return rp;
    },
    [=](cut_atom, const std::string& id, const std::string& side,
        bool force) -> caf::result<account_view> {
      auto& st = self->state;
      account_side to;
      if (!from_string(side, to)) {
        return refuse("invalid_field", "to", "must be standby or source (got \"" + side + "\")");
      }
      std::string why;
      auto cut = st.rt->accounts.request_cut(id, to, force, *st.policy, &why);
      if (!cut) {
        auto code = st.rt->accounts.find(id) == nullptr ? "account_not_found"
                    : why.find("managed DNS") != std::string::npos ? "account_not_managed"
                                                                  : "member_not_healthy";
        return refuse(code, code == std::string("member_not_healthy") ? "to" : "", why);
      }
      const auto* a = st.rt->accounts.find(id);
      if (resolve(self, a->dns_provider, cut->to_member, &why).empty()) {
        return refuse("not_applicable", "", "account " + id + "'s records cannot move to " +
                                              side + " member " +
                                              std::to_string(cut->to_member) + ": " + why);
      }
      auto now = st.deps.clk->now_ms();
      account_book::result r;
      r.cuts.push_back(std::move(*cut));
      carry_out(self, std::move(r), now);
      arm_pool(self);
      return account_view_of(self, *st.rt->accounts.find(id));
    },
    [=](managed_dns_atom, std::uint64_t offset, std::uint64_t limit) -> dns_catalogue {
      return catalogue_of(self, offset, limit);
    },
    [=](refresh_atom, const std::string& account) -> caf::result<std::uint64_t> {
      auto named = accounts_named(self, account);
      if (!named) {
        return named.error();
      }
      return refresh(self, *named, account.empty());
    },
    [=](import_atom, const std::string& account) -> caf::result<std::uint64_t> {
      return import_or_sync(self, account, false);
    },
    [=](sync_atom, const std::string& account) -> caf::result<std::uint64_t> {
      return import_or_sync(self, account, true);
    },
    [=](providers_atom) -> std::vector<dns_provider_config> {
      return self->state.rt->providers;
    },
    [=](put_provider_atom, const std::string& id,
        const std::string& body) -> caf::result<std::vector<dns_provider_config>> {
      auto& st = self->state;
      auto rp = self->make_response_promise<std::vector<dns_provider_config>>();
      ++st.pending_writes;
      self->request(st.deps.dns, caf::infinite, put_provider_atom_v, st.rt->config.name, id,
                    body, st.policy->members())
        .then(
          [=](std::vector<dns_provider_config>& ps) mutable {
            auto& st = self->state;
            --st.pending_writes;
            std::string name = id;
            if (name.empty()) {
              // The new one: in ps, not in the list before.
              for (const auto& p : ps) {
                if (!pool_has_provider(self, p.id)) {
                  name = p.id;
                }
              }
            }
            st.rt->providers = ps;
            const auto* pc = provider_config(self, name);
            pool_note(self, activity_kind::dns_provider_changed, pc ? pc->member : 0,
                      "DNS provider " + name + (pc ? " (" + std::string(to_string(pc->kind)) + ")" : "") +
                        (id.empty() ? " added" : " changed"));
            rp.deliver(std::move(ps));
          },
          [=](caf::error& e) mutable {
            --self->state.pending_writes;
            rp.deliver(std::move(e));
          });
      return rp;
    },
    [=](delete_provider_atom, const std::string& id)
      -> caf::result<std::vector<dns_provider_config>> {
      auto& st = self->state;
      if (std::none_of(st.rt->providers.begin(), st.rt->providers.end(),
                       [&](const dns_provider_config& p) { return p.id == id; })) {
        return refuse("provider_not_found", "",
                      "pool '" + st.rt->config.name + "' has no DNS provider '" + id + "'");
      }
      if (auto e = provider_in_use(self, id)) {
        return *e;
      }
      auto rp = self->make_response_promise<std::vector<dns_provider_config>>();
      ++st.pending_writes;
      self->request(st.deps.dns, caf::infinite, delete_provider_atom_v, st.rt->config.name, id)
        .then(
          [=](std::vector<dns_provider_config>& ps) mutable {
            --self->state.pending_writes;
            self->state.rt->providers = ps;
            pool_note(self, activity_kind::dns_provider_changed, 0,
                      "DNS provider " + id + " removed");
            rp.deliver(std::move(ps));
          },
          [=](caf::error& e) mutable {
            --self->state.pending_writes;
            rp.deliver(std::move(e));
          });
      return rp;
    },
  };
}

} // namespace balctl
