#include "adapters/notify/notify_service.hpp"

#include "adapters/notify/message.hpp"

namespace balctl::notify {

/// One message to an alert's recipients, or the alert to one webhook URL.
struct notify_service_impl::delivery {
  std::uint64_t id = 0;
  channel ch = channel::email;
  std::string key;  // the alert's, for logs
  std::string kind;
  std::string target;          // the webhook URL ("" for e-mail)
  std::vector<std::string> to; // e-mail recipients
  // Built once, so every attempt sends the same bytes (and Message-ID).
  std::string payload;
  int attempts = 0;
  std::int64_t first_ms = 0; // the injected clock when the alert reached the loop
  std::unique_ptr<attempt> current; // while in flight
};

namespace {

// A webhook URL may carry its credential in the path or query (Slack's
// do): logs name the scheme and host only.
std::string redact_url(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) {
    return "(not a URL)";
  }
  auto end = url.find_first_of("/?#", scheme + 3);
  auto host = url.substr(0, end);
  if (auto at = host.find('@', scheme + 3); at != std::string::npos) {
    host.erase(scheme + 3, at + 1 - (scheme + 3)); // user:password@
  }
  return host + (end == std::string::npos ? "" : "/...");
}

} // namespace

channel_counters notify_service_impl::atomic_channel::load() const {
  return {sent.load(), failed.load(), retried.load(), gave_up.load()};
}

notify_service_impl::notify_service_impl(notify_config cfg, clock& time)
  : cfg_(std::move(cfg)), clock_(time),
    dedup_(static_cast<std::int64_t>(cfg_.dedup_window_s) * 1000),
    rng_(std::random_device{}()) {
  auto at = cfg_.smtp_from.rfind('@');
  domain_ = at == std::string::npos ? "balctl.invalid" : cfg_.smtp_from.substr(at + 1);
}

notify_service_impl::~notify_service_impl() { stop(); }

std::string notify_service_impl::start() {
  auto life = lt_.lock_life();
  if (!lt_.startable()) {
    return "notify: start() after start() or stop()";
  }
  if (auto e = lt_.init(); !e.empty()) {
    return "notify: " + e;
  }
  auto close = [](auto* h) { uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr); };
  int rc = uv_async_init(lt_.loop(), &wake_, &notify_service_impl::on_wake);
  if (rc != 0) {
    lt_.abandon(nullptr);
    return std::string("notify: uv_async_init: ") + uv_strerror(rc);
  }
  wake_.data = this;
  rc = uv_timer_init(lt_.loop(), &retry_timer_);
  if (rc != 0) {
    lt_.abandon([&] { close(&wake_); });
    return std::string("notify: uv_timer_init: ") + uv_strerror(rc);
  }
  retry_timer_.data = this;
  if (auto e = cm_.open(lt_.loop()); !e.empty()) {
    lt_.abandon([&] {
      close(&wake_);
      close(&retry_timer_);
    });
    return "notify: " + e;
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    if (state_ != state::fresh) {
      lt_.abandon([&] {
        close(&wake_);
        close(&retry_timer_);
        cm_.close();
      });
      return "notify: start() after stop()";
    }
    state_ = state::running;
    if (!queue_.empty()) {
      uv_async_send(&wake_); // alerts posted before start()
    }
  }
  if (auto e = lt_.start([this] { close_all(); }, true); !e.empty()) {
    std::lock_guard<std::mutex> g(mu_);
    state_ = state::stopped;
    return "notify: " + e;
  }
  return {};
}

void notify_service_impl::log_dropped(const alert& a, const char* reason) {
  std::uint64_t skipped = 0;
  if (drop_log_.allow(clock_.now_ms(), &skipped)) {
    log::warn("notify_dropped", {{"key", a.key},
                                 {"kind", a.kind},
                                 {"reason", reason},
                                 {"max_queue", std::to_string(cfg_.max_queue)},
                                 {"unlogged", std::to_string(skipped)}});
  }
}

bool notify_service_impl::post(alert a) {
  posted_.fetch_add(1, std::memory_order_relaxed);
  const auto now = clock_.now_ms();
  const char* refused = nullptr;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (state_ == state::stopped) {
      refused = "stopped";
    } else if (auto d = dedup_.decide(a.key, now); d.suppressed) {
      suppressed_.fetch_add(1, std::memory_order_relaxed);
      return false;
    } else if (queue_.size() >= static_cast<std::size_t>(cfg_.max_queue)) {
      // Not accepted: the key's window does not start, so the next alert
      // of it is not suppressed by one that never went out.
      refused = "queue_full";
    } else {
      a.text = with_suppressed_note(std::move(a.text), d.earlier_suppressed, d.since_ms);
      dedup_.accepted(a.key, now);
      queue_.push_back(std::move(a));
      if (state_ == state::running) {
        uv_async_send(&wake_);
      }
      return true;
    }
  }
  dropped_.fetch_add(1, std::memory_order_relaxed);
  log_dropped(a, refused);
  return false;
}

notify_counters notify_service_impl::counters() const {
  notify_counters c;
  c.posted = posted_.load();
  c.suppressed = suppressed_.load();
  c.dropped = dropped_.load();
  c.abandoned = abandoned_.load();
  c.email = email_.load();
  c.webhook = webhook_.load();
  return c;
}

void notify_service_impl::stop() {
  lt_.stop([this] {
    std::lock_guard<std::mutex> g(mu_);
    state_ = state::stopped;
  });
  // Alerts queued after the loop drained, before the door closed (or
  // before a start() that never came).
  std::lock_guard<std::mutex> g(mu_);
  state_ = state::stopped;
  abandoned_.fetch_add(queue_.size(), std::memory_order_relaxed);
  queue_.clear();
}

// -- loop thread ------------------------------------------------------------

void notify_service_impl::on_wake(uv_async_t* h) {
  auto* self = static_cast<notify_service_impl*>(h->data);
  std::deque<alert> batch;
  {
    std::lock_guard<std::mutex> g(self->mu_);
    batch.swap(self->queue_);
  }
  for (auto& a : batch) {
    self->add_deliveries(std::move(a));
  }
}

void notify_service_impl::log_delivery(log::level l, const char* event, const delivery& d,
                                const std::string& why, const std::string& retry_in_ms) const {
  log::write(l, event,
             {{"channel", to_string(d.ch)},
              {"key", d.key},
              {"kind", d.kind},
              {"to", d.ch == channel::webhook ? redact_url(d.target)
                                              : std::to_string(d.to.size()) + " recipients"},
              {"attempts", std::to_string(d.attempts)},
              {"reason", why},
              {"retry_in_ms", retry_in_ms}});
}

void notify_service_impl::add_deliveries(alert a) {
  auto make = [&](channel ch) {
    auto d = std::make_unique<delivery>();
    d->id = next_id_++;
    d->ch = ch;
    d->key = a.key;
    d->kind = a.kind;
    d->first_ms = clock_.now_ms();
    return d;
  };
  std::vector<std::unique_ptr<delivery>> fresh;
  if (!a.emails.empty()) {
    auto d = make(channel::email);
    for (const auto& r : a.emails) {
      if (valid_address(r)) {
        d->to.push_back(r);
      } else {
        // Not echoed: an address with CR/LF in it is someone's injection attempt.
        log::warn("notify_bad_address", {{"key", a.key}, {"reason", "not a bare address"}});
      }
    }
    auto id = std::to_string(a.at_ms) + "." + std::to_string(d->id) + "." +
              std::to_string(rng_()) + "@" + domain_;
    d->payload = email_message(a, cfg_.smtp_from, d->to, id);
    fresh.push_back(std::move(d));
  }
  if (!a.webhooks.empty()) {
    auto body = webhook_body(a);
    for (const auto& url : a.webhooks) {
      auto d = make(channel::webhook);
      d->target = url;
      d->payload = body;
      fresh.push_back(std::move(d));
    }
  }
  for (auto& d : fresh) {
    auto& ref = *d;
    deliveries_.emplace(ref.id, std::move(d));
    if (ref.ch == channel::email && ref.to.empty()) {
      outcome(ref, verdict::failed, "no valid recipient address");
      continue;
    }
    start_attempt(ref);
  }
}

void notify_service_impl::start_attempt(delivery& d) {
  auto at = std::make_unique<attempt>();
  at->easy.reset(curl_easy_init());
  if (!at->easy) {
    outcome(d, verdict::retry, "curl_easy_init failed");
    return;
  }
  auto bad = d.ch == channel::email ? setup_email(*at, cfg_, d.to, d.payload)
                                    : setup_webhook(*at, cfg_, d.target, d.payload);
  if (!bad.empty()) {
    outcome(d, verdict::failed, bad);
    return;
  }
  if (d.attempts++ > 0) {
    count(d.ch).retried.fetch_add(1, std::memory_order_relaxed);
  }
  CURL* e = at->easy.get();
  d.current = std::move(at);
  auto err = cm_.add(e, [this, id = d.id](CURLcode rc) { on_done(id, rc); });
  if (!err.empty()) {
    d.current.reset();
    outcome(d, verdict::retry, err);
  }
}

void notify_service_impl::on_done(std::uint64_t id, CURLcode rc) {
  auto it = deliveries_.find(id);
  if (it == deliveries_.end() || !it->second->current) {
    return;
  }
  auto& d = *it->second;
  long code = 0;
  curl_easy_getinfo(d.current->easy.get(), CURLINFO_RESPONSE_CODE, &code);
  std::string why;
  auto v = d.ch == channel::email ? email_verdict(rc, code, d.current->error, &why)
                                  : webhook_verdict(rc, code, d.current->error, &why);
  d.current.reset(); // curl_multi removed it from the multi before calling us
  outcome(d, v, why);
}

void notify_service_impl::outcome(delivery& d, verdict v, const std::string& why) {
  auto& c = count(d.ch);
  if (v == verdict::retry) {
    auto age_ms = clock_.now_ms() - d.first_ms;
    if (age_ms < static_cast<std::int64_t>(cfg_.retry_give_up_s) * 1000) {
      auto wait = backoff_ms(std::max(1, d.attempts), cfg_.retry_initial_ms, cfg_.retry_max_ms,
                             static_cast<std::uint32_t>(rng_()));
      log_delivery(log::level::info, "notify_retry", d, why, std::to_string(wait));
      waiting_.emplace(uv_now(lt_.loop()) + static_cast<std::uint64_t>(wait), d.id);
      arm_retry_timer();
      return;
    }
    c.gave_up.fetch_add(1, std::memory_order_relaxed);
    c.failed.fetch_add(1, std::memory_order_relaxed);
    log_delivery(log::level::error, "notify_gave_up", d, why);
  } else if (v == verdict::sent) {
    c.sent.fetch_add(1, std::memory_order_relaxed);
    log_delivery(log::level::info, "notify_sent", d, why);
  } else {
    c.failed.fetch_add(1, std::memory_order_relaxed);
    log_delivery(log::level::warn, "notify_failed", d, why);
  }
  deliveries_.erase(d.id); // d is gone from here on
}

void notify_service_impl::arm_retry_timer() {
  if (waiting_.empty()) {
    uv_timer_stop(&retry_timer_);
    return;
  }
  auto now = uv_now(lt_.loop());
  auto due = waiting_.begin()->first;
  uv_timer_start(&retry_timer_, &notify_service_impl::on_retry_timer, due > now ? due - now : 0, 0);
}

void notify_service_impl::on_retry_timer(uv_timer_t* t) {
  auto* self = static_cast<notify_service_impl*>(t->data);
  auto now = uv_now(self->lt_.loop());
  std::vector<std::uint64_t> due;
  while (!self->waiting_.empty() && self->waiting_.begin()->first <= now) {
    due.push_back(self->waiting_.begin()->second);
    self->waiting_.erase(self->waiting_.begin());
  }
  for (auto id : due) {
    if (auto it = self->deliveries_.find(id); it != self->deliveries_.end()) {
      self->start_attempt(*it->second);
    }
  }
  self->arm_retry_timer();
}

// Once, on the loop thread, when stop() is called: nothing is sent after
// this; what was not finished is counted and logged, every handle closes.
void notify_service_impl::close_all() {
  std::deque<alert> queued;
  {
    std::lock_guard<std::mutex> g(mu_);
    state_ = state::stopped;
    queued.swap(queue_);
  }
  std::uint64_t left = queued.size() + deliveries_.size();
  for (auto& [id, d] : deliveries_) {
    if (d->current) {
      cm_.remove(d->current->easy.get());
    }
  }
  deliveries_.clear();
  waiting_.clear();
  cm_.close();
  uv_close(reinterpret_cast<uv_handle_t*>(&retry_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&wake_), nullptr);
  abandoned_.fetch_add(left, std::memory_order_relaxed);
  if (left != 0) {
    log::warn("notify_stopped", {{"abandoned", std::to_string(left)}});
  }
}

std::unique_ptr<notify_service> make_notify_service(const notify_config& config, clock& time,
                                                    std::string* error) {
  auto s = std::make_unique<notify_service_impl>(config, time);
  if (auto e = s->start(); !e.empty()) {
    log::error("notify_start_failed", {{"reason", e}});
    if (error != nullptr) {
      *error = e;
    }
    return nullptr;
  }
  return s;
}

} // namespace balctl::notify
