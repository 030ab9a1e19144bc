#include "adapters/store/redis_client.hpp"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <deque>
#include <future>
#include <mutex>

#include "engine/log.hpp"
#include "transport/loop_thread.hpp"

namespace balctl::redis {

namespace {

reply convert(const redisReply* r) {
  reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.k = reply::kind::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.k = reply::kind::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.k = reply::kind::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.k = reply::kind::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.k = reply::kind::array;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) {
        out.elements.push_back(convert(r->element[i]));
      }
      break;
    default:
      out.k = reply::kind::nil;
      break;
  }
  return out;
}

struct queued {
  std::vector<std::string> argv;
  client::done cb;
};

} // namespace

struct client::impl {
  client& owner;
  client_options o;
  loop_thread lt;
  uv_async_t wake{};
  uv_timer_t sweep{};     // command and connect timeouts
  uv_timer_t reconnect{}; // back-off
  std::mutex mu;
  std::deque<queued> inbox; // guarded by mu
  bool accepting = false;   // guarded by mu
  std::string last_error;   // guarded by mu

  // Loop thread only.
  enum class state : std::uint8_t { down, connecting, handshake, ready };
  state st = state::down;
  redisAsyncContext* ac = nullptr;
  std::int64_t connect_deadline_ms = 0;
  std::int64_t backoff_ms = 0;
  int handshake_left = 0;
  bool closing = false;

  // One command on the wire. Replies come in order, so the oldest is at
  // the front of in_flight.
  struct pending {
    impl* owner = nullptr;
    done cb;
    std::int64_t deadline_ms = 0;
    std::string fail_reason; // set when we drop the connection
    bool handshake = false;
  };
  std::deque<pending*> in_flight;

  impl(client& c, client_options opt)
    : owner(c), o(std::move(opt)), lt("redis", o.host + ":" + std::to_string(o.port)) {}

  std::int64_t now() { return static_cast<std::int64_t>(uv_now(lt.loop())); }

  void set_error(std::string e) {
    std::lock_guard<std::mutex> g(mu);
    last_error = std::move(e);
  }

  void answer(done& cb, result r) {
    if (!r.transport_error.empty()) {
      owner.counters_.transport_errors.fetch_add(1, std::memory_order_relaxed);
    }
    cb(std::move(r));
  }

  void fail(done& cb, const std::string& why) {
    result r;
    r.transport_error = why;
    answer(cb, std::move(r));
  }

  // -- connection ------------------------------------------------------------

  void schedule_reconnect() {
    if (closing) {
      return;
    }
    backoff_ms = backoff_ms == 0 ? o.reconnect_min_ms
                                 : std::min(o.reconnect_max_ms, backoff_ms * 2);
    uv_timer_start(&reconnect, &impl::on_reconnect, static_cast<std::uint64_t>(backoff_ms), 0);
  }

  void connect() {
    if (closing || ac != nullptr) {
      return;
    }
    auto* c = redisAsyncConnect(o.host.c_str(), o.port);
    if (c == nullptr || c->err != 0) {
      set_error(std::string("connect: ") + (c != nullptr ? c->errstr : "out of memory"));
      if (c != nullptr) {
        redisAsyncFree(c);
      }
      schedule_reconnect();
      return;
    }
    if (redisLibuvAttach(c, lt.loop()) != REDIS_OK) {
      set_error("connect: cannot attach to the loop");
      redisAsyncFree(c);
      schedule_reconnect();
      return;
    }
    c->data = this;
    redisAsyncSetConnectCallback(c, &impl::on_connect);
    redisAsyncSetDisconnectCallback(c, &impl::on_disconnect);
    ac = c;
    st = state::connecting;
    connect_deadline_ms = now() + o.connect_timeout_ms;
  }

  // We end the connection: everything in flight is answered with why.
  void drop(const std::string& why) {
    for (auto* p : in_flight) {
      p->fail_reason = why;
    }
    auto* c = ac;
    ac = nullptr;
    bool was_ready = st == state::ready;
    st = state::down;
    owner.ready_.store(false, std::memory_order_release);
    if (was_ready) {
      owner.counters_.disconnects.fetch_add(1, std::memory_order_relaxed);
    }
    set_error(why);
    if (c != nullptr) {
      // Answers every pending callback (NULL reply), then on_disconnect,
      // which finds ac already cleared.
      redisAsyncFree(c);
    }
    in_flight.clear();
    schedule_reconnect();
  }

  void send(std::vector<std::string> argv, done cb, bool handshake = false) {
    std::vector<const char*> ptrs;
    std::vector<std::size_t> lens;
    for (const auto& a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* p = new pending{this, std::move(cb), now() + o.command_timeout_ms, {}, handshake};
    if (redisAsyncCommandArgv(ac, &impl::on_reply, p, static_cast<int>(ptrs.size()), ptrs.data(),
                              lens.data()) != REDIS_OK) {
      fail(p->cb, "not connected");
      delete p;
      return;
    }
    in_flight.push_back(p);
    if (!handshake) {
      owner.counters_.commands.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void handshake_done() {
    st = state::ready;
    backoff_ms = 0;
    owner.counters_.connects.fetch_add(1, std::memory_order_relaxed);
    set_error("");
    owner.ready_.store(true, std::memory_order_release);
    log::info("redis_connected", {{"server", o.host + ":" + std::to_string(o.port)},
                                  {"db", std::to_string(o.db)}});
  }

  void on_handshake_reply(const result& r) {
    if (!r.ok()) {
      // Redis's reason (WRONGPASS, NOAUTH, ...), never the password.
      auto why = "handshake: " + (r.transport_error.empty() ? r.value.str : r.transport_error);
      log::error("redis_handshake_failed", {{"server", o.host + ":" + std::to_string(o.port)},
                                            {"error", why}});
      if (ac != nullptr && st == state::handshake) {
        drop(why);
      }
      return;
    }
    if (--handshake_left == 0 && st == state::handshake) {
      handshake_done();
    }
  }

  void start_handshake() {
    st = state::handshake;
    handshake_left = 0;
    auto step = [this](std::vector<std::string> argv) {
      ++handshake_left;
      send(std::move(argv), [this](result r) { on_handshake_reply(r); }, true);
    };
    if (!o.password.empty()) {
      if (o.user.empty()) {
        step({"AUTH", o.password});
      } else {
        step({"AUTH", o.user, o.password});
      }
    }
    if (o.db != 0) {
      step({"SELECT", std::to_string(o.db)});
    }
    // Ready means Redis answered a command, not only that the kernel took
    // the connection (a stopped Redis's backlog does), nor that it took
    // AUTH while still loading its data (PING answers LOADING then).
    step({"PING"});
  }

  // -- hiredis callbacks --------------------------------------------------------

  static void on_connect(const redisAsyncContext* c, int status) {
    auto* self = static_cast<impl*>(c->data);
    if (self == nullptr || self->ac != c) {
      return;
    }
    if (status != REDIS_OK) {
      // hiredis frees the context after this callback.
      self->set_error(std::string("connect: ") + c->errstr);
      self->ac = nullptr;
      self->st = state::down;
      self->schedule_reconnect();
      return;
    }
    self->start_handshake();
  }

  static void on_disconnect(const redisAsyncContext* c, int status) {
    auto* self = static_cast<impl*>(c->data);
    if (self == nullptr || self->ac != c) {
      return; // we dropped it ourselves (drop() cleared ac first)
    }
    // hiredis frees the context after this callback; the pending ones
    // were answered (NULL reply) before it.
    bool was_ready = self->st == state::ready;
    self->ac = nullptr;
    self->st = state::down;
    self->owner.ready_.store(false, std::memory_order_release);
    if (was_ready) {
      self->owner.counters_.disconnects.fetch_add(1, std::memory_order_relaxed);
    }
    auto why = std::string("connection lost: ") +
               (status == REDIS_OK ? "closed" : (c->errstr[0] != '\0' ? c->errstr : "error"));
    self->set_error(why);
    log::warn("redis_disconnected", {{"server", self->o.host + ":" + std::to_string(self->o.port)},
                                     {"error", why}});
    self->in_flight.clear();
    self->schedule_reconnect();
  }

  static void on_reply(redisAsyncContext* c, void* r, void* privdata) {
    auto* p = static_cast<pending*>(privdata);
    auto* self = p->owner;
    auto& q = self->in_flight;
    if (!q.empty() && q.front() == p) {
      q.pop_front();
    } else {
      q.erase(std::remove(q.begin(), q.end(), p), q.end());
    }
    result out;
    if (r == nullptr) {
      out.transport_error = !p->fail_reason.empty()
                              ? p->fail_reason
                              : std::string("connection lost: ") +
                                  (c != nullptr && c->errstr[0] != '\0' ? c->errstr : "closed");
    } else {
      out.value = convert(static_cast<redisReply*>(r));
    }
    if (p->handshake) {
      self->on_handshake_reply(out);
    } else {
      self->answer(p->cb, std::move(out));
    }
    delete p;
  }

  // -- libuv callbacks -------------------------------------------------------------

  static void on_reconnect(uv_timer_t* t) { static_cast<impl*>(t->data)->connect(); }

  static void on_sweep(uv_timer_t* t) {
    auto* self = static_cast<impl*>(t->data);
    auto now = self->now();
    if (self->st == state::connecting && now >= self->connect_deadline_ms) {
      self->drop("connect: timeout after " + std::to_string(self->o.connect_timeout_ms) + " ms");
      return;
    }
    if (!self->in_flight.empty() && now >= self->in_flight.front()->deadline_ms) {
      self->owner.counters_.timeouts.fetch_add(1, std::memory_order_relaxed);
      self->drop("timeout after " + std::to_string(self->o.command_timeout_ms) + " ms");
    }
  }

  static void on_wake(uv_async_t* a) {
    auto* self = static_cast<impl*>(a->data);
    std::deque<queued> batch;
    {
      std::lock_guard<std::mutex> g(self->mu);
      batch.swap(self->inbox);
    }
    for (auto& q : batch) {
      if (self->closing) {
        self->fail(q.cb, "stopped");
      } else if (self->st != state::ready) {
        self->fail(q.cb, "not connected");
      } else if (self->in_flight.size() >= self->o.max_in_flight) {
        self->fail(q.cb, "queue full");
      } else {
        self->send(std::move(q.argv), std::move(q.cb));
      }
    }
  }

  void close_all() {
    closing = true;
    {
      std::lock_guard<std::mutex> g(mu);
      accepting = false;
    }
    on_wake(&wake); // what was queued is answered
    for (auto* p : in_flight) {
      p->fail_reason = "stopped";
    }
    if (ac != nullptr) {
      auto* c = ac;
      ac = nullptr;
      redisAsyncFree(c);
    }
    in_flight.clear();
    st = state::down;
    owner.ready_.store(false, std::memory_order_release);
    uv_close(reinterpret_cast<uv_handle_t*>(&sweep), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&reconnect), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&wake), nullptr);
  }
};

client::client(client_options o) : impl_(std::make_unique<impl>(*this, std::move(o))) {}

client::~client() { stop(); }

std::string client::start() {
  auto& m = *impl_;
  auto life = m.lt.lock_life();
  if (!m.lt.startable()) {
    return "redis: start() after start() or stop()";
  }
  if (auto e = m.lt.init(); !e.empty()) {
    return "redis: " + e;
  }
  int rc = uv_async_init(m.lt.loop(), &m.wake, &impl::on_wake);
  if (rc != 0) {
    m.lt.abandon(nullptr);
    return std::string("redis: uv_async_init: ") + uv_strerror(rc);
  }
  m.wake.data = &m;
  auto close = [](std::initializer_list<uv_handle_t*> hs) {
    for (auto* h : hs) {
      uv_close(h, nullptr);
    }
  };
  rc = uv_timer_init(m.lt.loop(), &m.sweep);
  if (rc != 0) {
    m.lt.abandon([&] { close({reinterpret_cast<uv_handle_t*>(&m.wake)}); });
    return std::string("redis: uv_timer_init: ") + uv_strerror(rc);
  }
  m.sweep.data = &m;
  rc = uv_timer_init(m.lt.loop(), &m.reconnect);
  if (rc != 0) {
    m.lt.abandon([&] {
      close({reinterpret_cast<uv_handle_t*>(&m.wake), reinterpret_cast<uv_handle_t*>(&m.sweep)});
    });
    return std::string("redis: uv_timer_init: ") + uv_strerror(rc);
  }
  m.reconnect.data = &m;
  // Timeouts are checked ten times a second at most (finer when the
  // timeout is shorter).
  auto tick = static_cast<std::uint64_t>(
    std::clamp<std::int64_t>(std::min(m.o.command_timeout_ms, m.o.connect_timeout_ms) / 4, 5, 100));
  uv_timer_start(&m.sweep, &impl::on_sweep, tick, tick);
  // The first attempt at once, on the loop.
  uv_timer_start(&m.reconnect, &impl::on_reconnect, 0, 0);
  {
    std::lock_guard<std::mutex> g(m.mu);
    m.accepting = true;
  }
  auto e = m.lt.start([&m] { m.close_all(); }, true);
  if (!e.empty()) {
    std::lock_guard<std::mutex> g(m.mu);
    m.accepting = false;
    return "redis: " + e;
  }
  return {};
}

void client::stop() {
  auto& m = *impl_;
  m.lt.stop([&m] {
    std::lock_guard<std::mutex> g(m.mu);
    m.accepting = false;
  });
  std::deque<queued> left;
  {
    std::lock_guard<std::mutex> g(m.mu);
    m.accepting = false;
    left.swap(m.inbox);
  }
  for (auto& q : left) {
    m.fail(q.cb, "stopped");
  }
}

void client::command(std::vector<std::string> argv, done cb) {
  auto& m = *impl_;
  {
    std::lock_guard<std::mutex> g(m.mu);
    if (m.accepting) {
      m.inbox.push_back(queued{std::move(argv), std::move(cb)});
      uv_async_send(&m.wake);
      return;
    }
  }
  m.fail(cb, "stopped");
}

std::string client::last_error() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->last_error;
}

std::vector<result> run_sync(client& c, std::vector<std::vector<std::string>> cmds) {
  std::vector<std::promise<result>> ps(cmds.size());
  std::vector<std::future<result>> fs;
  fs.reserve(cmds.size());
  for (auto& p : ps) {
    fs.push_back(p.get_future());
  }
  for (std::size_t i = 0; i < cmds.size(); ++i) {
    auto* p = &ps[i];
    c.command(std::move(cmds[i]), [p](result r) { p->set_value(std::move(r)); });
  }
  std::vector<result> out;
  out.reserve(fs.size());
  for (auto& f : fs) {
    out.push_back(f.get());
  }
  return out;
}

} // namespace balctl::redis
