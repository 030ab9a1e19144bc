#include "actors/dns_executor.hpp"

#include <algorithm>
#include <atomic>
#include <climits>

#include "adapters/dns/make_provider.hpp"
#include "engine/log.hpp"

namespace balctl {

namespace {

using self_ptr = caf::stateful_actor<dns_executor_state>*;

void pump(self_ptr self);
void take(self_ptr self, std::int64_t batch_id, std::vector<dns_change_record>& cs,
          dns_op op);

// A share of the window (a tenth by default) is kept for pool failover
// records: at least one request, never all of them.
rate_window make_window(const dns_executor_deps& d) {
  int reserve = d.rate_limit > 0 ? std::max(1, d.rate_limit * d.priority_reserve_pct / 100) : 0;
  return rate_window(d.rate_limit, d.rate_window_ms, reserve);
}

// Reads and lists: an answer per key once each has ended.
caf::result<std::vector<dns_change_record>> start_reads(self_ptr self,
                                                       std::vector<dns_change_record> keys,
                                                       dns_op op) {
  auto& st = self->state;
  if (keys.empty()) {
    return std::vector<dns_change_record>{};
  }
  auto rp = self->make_response_promise();
  auto bid = st.next_batch++;
  auto& b = st.batches[bid];
  b.rp = rp;
  b.left = keys.size();
  b.list = op == dns_op::list;
  for (auto& k : keys) {
    k.id = st.next_read_id--;
    k.provider = st.deps.provider_id;
    k.priority = 2;
  }
  b.results = keys;
  take(self, bid, keys, op);
  return rp;
}

void arm(self_ptr self) {
  auto& st = self->state;
  auto now = st.deps.clk->now_ms();
  std::optional<std::int64_t> next = st.queue.next_wake_ms();
  for (auto& [id, r] : st.runs) {
    if (r.waiting_rate) {
      auto t = st.window.next_free_ms(now, r.job.priority == 0);
      if (!next || t < *next) {
        next = t;
      }
    }
  }
  if (!next || (st.armed_ms != 0 && st.armed_ms <= *next)) {
    return;
  }
  st.armed_ms = *next;
  auto delay = std::max<std::int64_t>(0, *next - now);
  self->delayed_send(self, std::chrono::milliseconds(delay), deadline_atom_v, *next);
}

// A job has ended: journal (changes), answer, and the next change of its
// record. live: a read's record; listed: a list's records.
void end(self_ptr self, const dns_job& j, const std::string& status,
         const std::string& error, const dns::step* s = nullptr, bool journal = true) {
  auto& st = self->state;
  if (j.op == dns_op::apply && journal) {
    self->send(st.deps.store, mark_dns_atom_v, std::vector<std::int64_t>{j.id}, status, error);
    auto& m = *st.deps.metrics;
    if (status == "done") {
      m.dns_changes_done.fetch_add(1, std::memory_order_relaxed);
    } else if (status == "superseded") {
      m.dns_changes_superseded.fetch_add(1, std::memory_order_relaxed);
    } else {
      m.dns_changes_failed.fetch_add(1, std::memory_order_relaxed);
    }
  }
  auto slot = st.slot_of.find(j.id);
  if (slot == st.slot_of.end()) {
    return;
  }
  auto [bid, idx] = slot->second;
  st.slot_of.erase(slot);
  auto b = st.batches.find(bid);
  if (b == st.batches.end()) {
    return;
  }
  auto& res = b->second.results;
  if (j.op == dns_op::list) {
    res.clear();
    if (s != nullptr) {
      for (const auto& r : s->records) {
        res.push_back(change_of(r));
      }
    }
  } else {
    res[idx].status = status;
    res[idx].error = error;
    if (s != nullptr && s->live) {
      auto live = change_of(*s->live);
      res[idx].content = live.content;
      res[idx].ttl_s = live.ttl_s;
      res[idx].proxied = live.proxied;
      res[idx].zone = live.zone;
    }
  }
  if (--b->second.left == 0) {
    if (b->second.list && status != "done") {
      b->second.rp.deliver(refuse("dns_provider_failed", "",
                                  "listing zone " + j.desired.zone + " at " +
                                    st.deps.provider_id + " failed: " + error));
    } else {
      b->second.rp.deliver(std::move(res));
    }
    st.batches.erase(b);
  }
}

// A batch none of whose changes will be made (its journal write was
// fenced): every change answered failed with why.
void fail_batch(self_ptr self, std::int64_t bid, const std::string& why) {
  auto& st = self->state;
  auto b = st.batches.find(bid);
  if (b == st.batches.end()) {
    return;
  }
  for (auto& r : b->second.results) {
    r.status = "failed";
    r.error = why;
  }
  b->second.rp.deliver(std::move(b->second.results));
  st.batches.erase(b);
}

void supersede(self_ptr self, const std::vector<std::int64_t>& ids,
               const std::unordered_map<std::int64_t, dns_job>& known) {
  for (auto id : ids) {
    auto k = known.find(id);
    dns_job j;
    if (k != known.end()) {
      j = k->second;
    }
    j.id = id;
    log::info("dns_change_superseded", {{"change", std::to_string(id)},
                                        {"provider", self->state.deps.provider_id}});
    end(self, j, "superseded", "a newer change of this record replaced it");
  }
}

void alert(self_ptr self, const dns_job& j, const std::string& message) {
  auto& st = self->state;
  auto b = st.slot_of.find(j.id);
  if (b == st.slot_of.end()) {
    return;
  }
  auto bi = st.batches.find(b->second.first);
  if (bi != st.batches.end() && bi->second.submitter) {
    self->send(bi->second.submitter, dns_alert_atom_v, j.pool, message);
  }
}

void send_request(self_ptr self, dns_executor_state::running& r) {
  auto& st = self->state;
  r.waiting_rate = false;
  r.token = st.next_token++;
  auto id = r.job.id;
  auto token = r.token;
  caf::actor me{self};
  auto& m = *st.deps.metrics;
  m.dns_requests.fetch_add(1, std::memory_order_relaxed);
  if (!r.sent_any) {
    r.sent_any = true;
    // Per batch: the first request of a decision's changes here.
    if (auto slot = st.slot_of.find(id); slot != st.slot_of.end()) {
      auto b = st.batches.find(slot->second.first);
      if (b != st.batches.end() && !b->second.sent_any) {
        b->second.sent_any = true;
        if (b->second.decided_ms > 0) {
          m.record_dns_first_request(r.job.priority,
                                     st.deps.clk->now_ms() - b->second.decided_ms);
        }
      }
    }
  }
  if (r.pending.k == dns::step::kind::http) {
    st.deps.io->submit(std::move(r.pending.http), st.deps.http,
                       [me, id, token](dns::http_response resp) {
                         caf::anon_send(me, dns_http_atom_v, id, token, std::move(resp));
                       });
  } else {
    st.deps.io->submit(std::move(r.pending.dns), st.deps.dns_timeout_ms,
                       [me, id, token](dns::dns_response resp) {
                         caf::anon_send(me, dns_wire_atom_v, id, token, std::move(resp));
                       });
  }
}

// Acts on the step an operation returned.
void handle(self_ptr self, std::int64_t id, dns::step s) {
  auto& st = self->state;
  auto it = st.runs.find(id);
  if (it == st.runs.end()) {
    return;
  }
  auto& r = it->second;
  auto now = st.deps.clk->now_ms();
  switch (s.k) {
    case dns::step::kind::http:
    case dns::step::kind::dns:
      r.pending = std::move(s);
      if (st.window.try_acquire(now, r.job.priority == 0)) {
        send_request(self, r);
      } else {
        r.waiting_rate = true;
      }
      return;
    case dns::step::kind::done: {
      auto j = std::move(r.job);
      st.runs.erase(it);
      st.queue.finish(j);
      if (j.op == dns_op::read) {
        end(self, j, s.live ? "found" : "missing", "", &s);
        return;
      }
      if (j.op == dns_op::list) {
        end(self, j, "done", "", &s);
        return;
      }
      auto& m = *st.deps.metrics;
      (s.wrote ? m.dns_writes : m.dns_writes_saved).fetch_add(1, std::memory_order_relaxed);
      log::info("dns_change", {{"change", std::to_string(j.id)},
                               {"decision", std::to_string(j.decision)},
                               {"pool", j.pool},
                               {"provider", st.deps.provider_id},
                               {"name", j.desired.name},
                               {"type", dns::to_string(j.desired.type)},
                               {"content", j.desired.content},
                               {"result", s.wrote ? "written" : "in place"},
                               {"attempts", std::to_string(j.attempts + 1)}});
      end(self, j, "done", s.wrote ? "" : "in place");
      return;
    }
    case dns::step::kind::failed: {
      auto j = std::move(r.job);
      st.runs.erase(it);
      ++j.attempts;
      auto& m = *st.deps.metrics;
      if (s.why == dns::failure::rate_limited) {
        m.dns_rate_limited.fetch_add(1, std::memory_order_relaxed);
      }
      auto msg = "DNS change of " + j.desired.name + " " +
                 dns::to_string(j.desired.type) + " at " + st.deps.provider_id +
                 " failed (" + dns::to_string(s.why) + ", attempt " +
                 std::to_string(j.attempts) + "): " + s.message;
      log::warn("dns_change_failed", {{"change", std::to_string(j.id)},
                                      {"pool", j.pool},
                                      {"provider", st.deps.provider_id},
                                      {"name", j.desired.name},
                                      {"failure", dns::to_string(s.why)},
                                      {"attempt", std::to_string(j.attempts)},
                                      {"error", s.message}});
      if (j.op == dns_op::apply &&
          (j.attempts == 1 || j.attempts % 5 == 0 || s.why == dns::failure::permanent)) {
        alert(self, j, msg);
      }
      if (s.why == dns::failure::permanent ||
          (j.op != dns_op::apply && s.why != dns::failure::rate_limited)) {
        // A read or list answers with its failure at once (the operator
        // asked and waits); only a 429 is waited out like a change's.
        st.queue.finish(j);
        end(self, j, "failed", s.message);
        return;
      }
      std::uniform_real_distribution<double> u(0.0, 1.0);
      auto delay = dns_retry_delay_ms(j.attempts, s.why, s.retry_after_ms, u(st.rng));
      if (s.why == dns::failure::rate_limited) {
        // The whole credential waits, not only this change.
        st.window.pause_until(now + delay);
      }
      j.not_before_ms = now + delay;
      m.dns_retries.fetch_add(1, std::memory_order_relaxed);
      std::unordered_map<std::int64_t, dns_job> known{{j.id, j}};
      if (auto sup = st.queue.retry(j)) {
        supersede(self, {*sup}, known);
      }
      return;
    }
  }
}

void start_job(self_ptr self, dns_job j) {
  auto& st = self->state;
  auto id = j.id;
  if (j.op == dns_op::apply && st.given_up.count(j.pool) != 0) {
    // Cluster: another node owns the pool now and resumes this change
    // from the journal, which stays pending; retrying it here could
    // undo a later change of the new owner's.
    st.queue.finish(j);
    log::info("dns_change_left_to_owner", {{"change", std::to_string(id)},
                                           {"pool", j.pool},
                                           {"provider", st.deps.provider_id}});
    end(self, j, "failed", "another node owns pool '" + j.pool + "' now", nullptr, false);
    return;
  }
  std::unique_ptr<dns::operation> op;
  switch (j.op) {
    case dns_op::apply: op = st.deps.provider->apply(j.desired); break;
    case dns_op::read: op = st.deps.provider->read(j.desired); break;
    case dns_op::list: op = st.deps.provider->list(j.desired.zone); break;
  }
  if (!op) {
    st.queue.finish(j);
    end(self, j, "failed", std::string(st.deps.provider->kind()) + " cannot do this");
    return;
  }
  auto& r = st.runs[id];
  r.job = std::move(j);
  r.op = std::move(op);
  handle(self, id, r.op->start());
}

void pump(self_ptr self) {
  auto& st = self->state;
  auto now = st.deps.clk->now_ms();
  // Requests waiting for a slot, most urgent first.
  std::vector<std::pair<std::pair<int, std::int64_t>, std::int64_t>> parked;
  for (auto& [id, r] : st.runs) {
    if (r.waiting_rate) {
      parked.push_back({{r.job.priority, id}, id});
    }
  }
  std::sort(parked.begin(), parked.end());
  for (auto& p : parked) {
    auto& r = st.runs.at(p.second);
    if (st.window.try_acquire(now, r.job.priority == 0)) {
      send_request(self, r);
    }
  }
  while (st.runs.size() < static_cast<std::size_t>(std::max(1, st.deps.max_in_flight))) {
    auto j = st.queue.pop(now);
    if (!j) {
      break;
    }
    start_job(self, std::move(*j));
  }
  // Pool failover records do not wait for a slot held by account changes
  // that wait for rate budget: they start beyond max_in_flight (they are
  // few, one per pool decision) and use the window's reserve.
  while (auto j = st.queue.pop(now, 0)) {
    start_job(self, std::move(*j));
  }
  arm(self);
}

void take(self_ptr self, std::int64_t batch_id, std::vector<dns_change_record>& cs,
          dns_op op) {
  auto& st = self->state;
  auto now = st.deps.clk->now_ms();
  for (std::size_t i = 0; i < cs.size(); ++i) {
    st.slot_of[cs[i].id] = {batch_id, i};
  }
  for (std::size_t i = 0; i < cs.size(); ++i) {
    const auto& c = cs[i];
    dns_job j;
    j.op = op;
    j.round = static_cast<int>(std::min<std::size_t>(i, INT_MAX));
    j.id = c.id;
    j.decision = c.decision;
    j.pool = c.pool;
    j.priority = c.priority;
    j.desired = record_of(c);
    j.queued_ms = now;
    if (!st.deps.provider && op != dns_op::apply) {
      end(self, j, "failed", "no DNS provider to ask (" + st.deps.provider_id + ")");
      continue;
    }
    if (!st.deps.provider) {
      log::info("dns_change", {{"change", std::to_string(j.id)},
                               {"decision", std::to_string(j.decision)},
                               {"pool", j.pool},
                               {"provider", st.deps.provider_id},
                               {"name", j.desired.name},
                               {"content", j.desired.content},
                               {"result", "recorded only (no DNS provider)"}});
      end(self, j, "done", "recorded only");
      continue;
    }
    std::unordered_map<std::int64_t, dns_job> known{{j.id, j}};
    auto sup = st.queue.add(std::move(j));
    supersede(self, sup, known);
  }
  if (st.deps.provider) {
    pump(self);
  }
}

} // namespace

dns::record record_of(const dns_change_record& c) {
  dns::record r;
  r.zone = c.zone;
  r.name = c.name;
  dns::from_string(c.type, r.type);
  r.content = c.content;
  r.ttl_s = c.ttl_s;
  if (c.proxied >= 0) {
    r.proxied = c.proxied == 1;
  }
  return r;
}

dns_change_record change_of(const dns::record& r) {
  dns_change_record c;
  c.zone = r.zone;
  c.name = dns::canonical_name(r.name);
  c.type = dns::to_string(r.type);
  c.content = r.content;
  c.ttl_s = r.ttl_s;
  c.proxied = r.proxied ? (*r.proxied ? 1 : 0) : -1;
  return c;
}

dns_change_record make_dns_change(const std::string& pool,
                                  const std::string& provider,
                                  std::int64_t decision, int priority,
                                  const dns::record& d) {
  auto c = change_of(d);
  c.decision = decision;
  c.pool = pool;
  c.provider = provider;
  c.priority = priority;
  return c;
}

caf::behavior dns_executor(caf::stateful_actor<dns_executor_state>* self,
                           dns_executor_deps deps) {
  auto& st = self->state;
  st.window = make_window(deps);
  st.deps = std::move(deps);
  st.started_ms = st.deps.clk->now_ms();
  return {
    [=](submit_atom, std::vector<dns_change_record>& cs)
      -> caf::result<std::vector<dns_change_record>> {
      auto& st = self->state;
      if (cs.empty()) {
        // Before any promise: a handler that made one answers only through it.
        return std::vector<dns_change_record>{};
      }
      // Before make_response_promise, which takes the sender over.
      auto submitter = caf::actor_cast<caf::actor>(self->current_sender());
      auto rp = self->make_response_promise();
      auto bid = st.next_batch++;
      auto& b = st.batches[bid];
      b.rp = rp;
      b.submitter = std::move(submitter);
      b.left = cs.size();
      auto now = st.deps.clk->now_ms();
      bool journaled = std::all_of(cs.begin(), cs.end(),
                                   [](const dns_change_record& c) { return c.id != 0; });
      for (auto& c : cs) {
        c.provider = st.deps.provider_id;
        if (c.created_ms == 0) {
          c.created_ms = now;
        }
        b.decided_ms = b.decided_ms == 0 ? c.created_ms : std::min(b.decided_ms, c.created_ms);
      }
      if (b.decided_ms < st.started_ms) {
        // Resumed from before this start: no latency figure.
        b.decided_ms = 0;
      }
      b.results = cs;
      if (journaled) {
        take(self, bid, cs, dns_op::apply);
        return rp;
      }
      // Journaled first, in one transaction: a provider hears of a change
      // only once it survives a crash.
      auto journaled_ok = [=](std::vector<std::int64_t>& ids) mutable {
        auto& st = self->state;
        auto bi = st.batches.find(bid);
        if (bi == st.batches.end()) {
          return;
        }
        for (std::size_t i = 0; i < cs.size() && i < ids.size(); ++i) {
          cs[i].id = ids[i];
          bi->second.results[i].id = ids[i];
        }
        take(self, bid, cs, dns_op::apply);
      };
      auto journal_failed = [=](caf::error& e) mutable {
        if (is_fenced(e)) {
          // The pool was taken over: its new owner carries the change out.
          log::warn("dns_change_fenced", {{"provider", self->state.deps.provider_id},
                                          {"changes", std::to_string(cs.size())}});
          fail_batch(self, bid, "fenced: another node owns the pool now");
          return;
        }
        // Not durable; act anyway (an outage is worse than a change a
        // crash could lose), under ids no journal row has.
        log::error("dns_journal_failed", {{"provider", self->state.deps.provider_id},
                                          {"error", self->system().render(e)}});
        auto& st = self->state;
        auto bi = st.batches.find(bid);
        if (bi == st.batches.end()) {
          return;
        }
        static std::atomic<std::int64_t> unjournaled{unjournaled_id_base};
        for (std::size_t i = 0; i < cs.size(); ++i) {
          cs[i].id = ++unjournaled;
          bi->second.results[i].id = cs[i].id;
        }
        take(self, bid, cs, dns_op::apply);
      };
      // Pool failover records jump the store's queue (a storm of account
      // cuts may be waiting to be written): they go first here too.
      bool urgent = std::any_of(cs.begin(), cs.end(),
                                [](const dns_change_record& c) { return c.priority == 0; });
      if (urgent) {
        self->request<caf::message_priority::high>(st.deps.store, caf::infinite,
                                                   journal_dns_atom_v, cs)
          .then(journaled_ok, journal_failed);
      } else {
        self->request(st.deps.store, caf::infinite, journal_dns_atom_v, cs)
          .then(journaled_ok, journal_failed);
      }
      return rp;
    },
    // Cluster: this node gave the pool up (or took it again): its changes
    // not yet started are left to the owner.
    [=](disown_atom, const std::string& pool) { self->state.given_up.insert(pool); },
    [=](own_atom, const std::string& pool) { self->state.given_up.erase(pool); },
    [=](dns_http_atom, std::int64_t id, std::uint64_t token, dns::http_response& resp) {
      auto& st = self->state;
      auto it = st.runs.find(id);
      if (it == st.runs.end() || it->second.token != token) {
        return;
      }
      if (!resp.transport_error.empty()) {
        st.deps.metrics->dns_transport_errors.fetch_add(1, std::memory_order_relaxed);
      }
      handle(self, id, it->second.op->on_http(resp));
      pump(self);
    },
    [=](dns_wire_atom, std::int64_t id, std::uint64_t token, dns::dns_response& resp) {
      auto& st = self->state;
      auto it = st.runs.find(id);
      if (it == st.runs.end() || it->second.token != token) {
        return;
      }
      handle(self, id, it->second.op->on_dns(resp));
      pump(self);
    },
    [=](deadline_atom, std::int64_t at) {
      auto& st = self->state;
      if (at != st.armed_ms) {
        return;
      }
      st.armed_ms = 0;
      pump(self);
    },
    [=](read_atom, std::vector<dns_change_record>& keys)
      -> caf::result<std::vector<dns_change_record>> {
      return start_reads(self, std::move(keys), dns_op::read);
    },
    [=](list_atom, const std::string& zone) -> caf::result<std::vector<dns_change_record>> {
      dns_change_record k;
      k.zone = dns::canonical_name(zone);
      k.name = k.zone;
      return start_reads(self, {k}, dns_op::list);
    },
    [=](settings_atom, const dns_provider_config& cfg) {
      auto& st = self->state;
      st.deps.provider = dns::make_provider(cfg);
      st.deps.http = dns::http_options_of(cfg);
      st.deps.dns_timeout_ms = cfg.timeout_ms;
      st.deps.max_in_flight = cfg.max_in_flight;
      auto window_ms = std::int64_t{cfg.rate_limit_window_s} * 1000;
      if (cfg.rate_limit_requests != st.deps.rate_limit || window_ms != st.deps.rate_window_ms) {
        // A new window forgets what was sent: only when the limit changed.
        st.deps.rate_limit = cfg.rate_limit_requests;
        st.deps.rate_window_ms = window_ms;
        st.window = make_window(st.deps);
      }
      log::info("dns_provider_updated", {{"id", st.deps.provider_id},
                                         {"type", to_string(cfg.kind)}});
      pump(self);
    },
    [=](caf::get_atom) -> std::vector<std::uint64_t> {
      auto& st = self->state;
      return {st.queue.queued(), st.runs.size(), st.window.in_window(st.deps.clk->now_ms())};
    },
  };
}

} // namespace balctl
