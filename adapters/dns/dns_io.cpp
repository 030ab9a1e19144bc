#include "adapters/dns/dns_io.hpp"

#include <curl/curl.h>

#include <cstring>
#include <deque>
#include <mutex>
#include <unordered_set>
#include <variant>

#include "engine/log.hpp"
#include "transport/curl_multi.hpp"
#include "transport/listen_address.hpp"
#include "transport/loop_thread.hpp"

namespace balctl::dns {

namespace {

struct easy_deleter {
  void operator()(CURL* e) const { curl_easy_cleanup(e); }
};
struct slist_deleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

struct http_item {
  http_request req;
  http_options opts;
  transport::http_done cb;
};
struct dns_item {
  dns_request req;
  std::int64_t timeout_ms = 0;
  transport::dns_done cb;
};
using item = std::variant<http_item, dns_item>;

void fail_item(item& it, const std::string& why) {
  if (auto* h = std::get_if<http_item>(&it)) {
    http_response r;
    r.transport_error = why;
    h->cb(std::move(r));
  } else {
    auto& d = std::get<dns_item>(it);
    d.cb(dns_response{why, {}});
  }
}

} // namespace

struct dns_io::impl {
  dns_io_counters counters;
  loop_thread lt{"dns", "-", counters.loop_lag_ms, counters.loop_lag_max_ms};
  uv_async_t wake{};
  curl_multi cm; // the HTTP transfers
  std::mutex mu;
  std::deque<item> queue; // guarded by mu
  bool accepting = false; // guarded by mu
  bool closing = false;   // loop thread: stop began

  // -- HTTP transfers -------------------------------------------------------
  struct transfer {
    impl* owner = nullptr;
    std::unique_ptr<CURL, easy_deleter> easy;
    std::unique_ptr<curl_slist, slist_deleter> headers;
    http_item in;
    http_response out;
    bool overflow = false;
  };
  std::unordered_set<transfer*> transfers;

  // -- DNS exchanges --------------------------------------------------------
  struct exchange {
    impl* owner = nullptr;
    dns_item in;
    sockaddr_storage addr{};
    std::uint16_t id = 0;
    uv_udp_t udp{};
    uv_tcp_t tcp{};
    uv_timer_t timer{};
    uv_connect_t conn{};
    uv_write_t wr{};
    uv_udp_send_t send_req{};
    std::vector<std::uint8_t> out; // what is being sent (TCP: with length)
    std::vector<std::uint8_t> in_buf;
    std::vector<char> rd; // read buffer
    int open = 0;         // handles not yet closed
    bool udp_open = false, tcp_open = false, timer_open = false;
    bool done = false;
  };
  std::unordered_set<exchange*> exchanges;

  // -- loop side ----------------------------------------------------------
  static void on_wake(uv_async_t* a) {
    auto* self = static_cast<impl*>(a->data);
    std::deque<item> batch;
    {
      std::lock_guard<std::mutex> g(self->mu);
      batch.swap(self->queue);
    }
    for (auto& it : batch) {
      if (self->closing) {
        fail_item(it, "stopped");
      } else if (auto* h = std::get_if<http_item>(&it)) {
        self->start_http(std::move(*h));
      } else {
        self->start_dns(std::move(std::get<dns_item>(it)));
      }
    }
  }

  static std::size_t on_body(char* p, std::size_t size, std::size_t n, void* ud) {
    auto* t = static_cast<transfer*>(ud);
    auto len = size * n;
    if (t->out.body.size() + len > t->in.opts.max_response_bytes) {
      t->overflow = true;
      return 0; // aborts the transfer
    }
    t->out.body.append(p, len);
    return len;
  }

  static std::size_t on_header(char* p, std::size_t size, std::size_t n, void* ud) {
    auto* t = static_cast<transfer*>(ud);
    auto len = size * n;
    std::string line(p, len);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
      line.pop_back();
    }
    if (line.rfind("HTTP/", 0) == 0) {
      // A new response (after 100 Continue): keep only the final one's.
      t->out.headers.clear();
    } else if (auto colon = line.find(':'); colon != std::string::npos) {
      auto value = line.substr(colon + 1);
      auto first = value.find_first_not_of(" \t");
      value = first == std::string::npos ? std::string() : value.substr(first);
      t->out.headers.push_back({line.substr(0, colon), value});
    }
    return len;
  }

  void start_http(http_item h) {
    auto t = std::make_unique<transfer>();
    t->owner = this;
    t->in = std::move(h);
    counters.http_requests.fetch_add(1, std::memory_order_relaxed);
    CURL* e = curl_easy_init();
    if (e == nullptr) {
      counters.http_transport_errors.fetch_add(1, std::memory_order_relaxed);
      http_response r;
      r.transport_error = "curl_easy_init failed";
      t->in.cb(std::move(r));
      return;
    }
    t->easy.reset(e);
    const auto& rq = t->in.req;
    curl_easy_setopt(e, CURLOPT_URL, rq.url.c_str());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(t->in.opts.connect_timeout_ms));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(t->in.opts.timeout_ms));
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, t->in.opts.verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, t->in.opts.verify_tls ? 2L : 0L);
    if (!t->in.opts.ca_file.empty()) {
      curl_easy_setopt(e, CURLOPT_CAINFO, t->in.opts.ca_file.c_str());
    }
    if (rq.method == "GET") {
      curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
      if (rq.method != "POST") {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, rq.method.c_str());
      }
      if (rq.method != "DELETE" || !rq.body.empty()) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, rq.body.data());
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(rq.body.size()));
      }
    }
    curl_slist* list = nullptr;
    // No "Expect: 100-continue" round trip for small bodies.
    list = curl_slist_append(list, "Expect:");
    for (const auto& hd : rq.headers) {
      auto line = hd.name + ": " + hd.value;
      if (auto* n = curl_slist_append(list, line.c_str())) {
        list = n;
      }
    }
    t->headers.reset(list);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &impl::on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &impl::on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    if (auto err = cm.add(e, [this, raw = t.get()](CURLcode rc) { finish_transfer(raw, rc); });
        !err.empty()) {
      counters.http_transport_errors.fetch_add(1, std::memory_order_relaxed);
      http_response r;
      r.transport_error = err;
      t->in.cb(std::move(r));
      return;
    }
    transfers.insert(t.release());
  }

  void finish_transfer(transfer* t, CURLcode rc) {
    transfers.erase(t);
    std::unique_ptr<transfer> own(t);
    http_response r = std::move(t->out);
    if (t->overflow) {
      r.transport_error = "response larger than " +
                          std::to_string(t->in.opts.max_response_bytes) + " bytes";
    } else if (rc != CURLE_OK) {
      r.transport_error = curl_easy_strerror(rc);
    } else {
      long status = 0;
      curl_easy_getinfo(t->easy.get(), CURLINFO_RESPONSE_CODE, &status);
      r.status = status;
    }
    if (!r.transport_error.empty()) {
      r.status = 0;
      r.headers.clear();
      r.body.clear();
      counters.http_transport_errors.fetch_add(1, std::memory_order_relaxed);
    }
    auto cb = std::move(t->in.cb);
    own.reset();
    cb(std::move(r));
  }

  // -- DNS exchanges ------------------------------------------------------
  static void on_exchange_closed(uv_handle_t* h) {
    auto* x = static_cast<exchange*>(h->data);
    if (--x->open == 0) {
      x->owner->exchanges.erase(x);
      delete x;
    }
  }

  void close_exchange(exchange* x) {
    auto close = [&](uv_handle_t* h, bool& flag) {
      if (flag) {
        flag = false;
        uv_close(h, &impl::on_exchange_closed);
      }
    };
    close(reinterpret_cast<uv_handle_t*>(&x->udp), x->udp_open);
    close(reinterpret_cast<uv_handle_t*>(&x->tcp), x->tcp_open);
    close(reinterpret_cast<uv_handle_t*>(&x->timer), x->timer_open);
  }

  void end_exchange(exchange* x, dns_response r) {
    if (x->done) {
      return;
    }
    x->done = true;
    if (!r.transport_error.empty()) {
      counters.dns_transport_errors.fetch_add(1, std::memory_order_relaxed);
    }
    auto cb = std::move(x->in.cb);
    close_exchange(x);
    cb(std::move(r));
  }

  void start_dns(dns_item d) {
    counters.dns_requests.fetch_add(1, std::memory_order_relaxed);
    auto x = std::make_unique<exchange>();
    x->owner = this;
    x->in = std::move(d);
    if (auto bad = listen_sockaddr(x->in.req.server, x->addr); !bad.empty()) {
      counters.dns_transport_errors.fetch_add(1, std::memory_order_relaxed);
      x->in.cb(dns_response{"server " + x->in.req.server + ": " + bad, {}});
      return;
    }
    if (x->in.req.wire.size() < 12 || x->in.req.wire.size() > 65535) {
      counters.dns_transport_errors.fetch_add(1, std::memory_order_relaxed);
      x->in.cb(dns_response{"not a DNS message (" +
                              std::to_string(x->in.req.wire.size()) + " bytes)",
                            {}});
      return;
    }
    x->id = static_cast<std::uint16_t>((x->in.req.wire[0] << 8) | x->in.req.wire[1]);
    auto* raw = x.release();
    exchanges.insert(raw);
    raw->udp.data = raw->tcp.data = raw->timer.data = raw;
    uv_timer_init(lt.loop(), &raw->timer);
    raw->timer_open = true;
    ++raw->open;
    uv_timer_start(&raw->timer, [](uv_timer_t* t) {
      auto* x = static_cast<exchange*>(t->data);
      x->owner->end_exchange(x, dns_response{"timeout after " +
                                               std::to_string(x->in.timeout_ms) + " ms",
                                             {}});
    }, static_cast<std::uint64_t>(std::max<std::int64_t>(1, raw->in.timeout_ms)), 0);
    if (raw->in.req.tcp) {
      start_tcp(raw);
    } else {
      start_udp(raw);
    }
  }

  void start_udp(exchange* x) {
    int rc = uv_udp_init(lt.loop(), &x->udp);
    if (rc != 0) {
      end_exchange(x, dns_response{std::string("uv_udp_init: ") + uv_strerror(rc), {}});
      return;
    }
    x->udp_open = true;
    ++x->open;
    x->out = x->in.req.wire;
    auto buf = uv_buf_init(reinterpret_cast<char*>(x->out.data()),
                           static_cast<unsigned>(x->out.size()));
    rc = uv_udp_send(&x->send_req, &x->udp, &buf, 1,
                     reinterpret_cast<const sockaddr*>(&x->addr),
                     [](uv_udp_send_t* s, int status) {
                       auto* x = static_cast<exchange*>(s->handle->data);
                       if (status != 0 && !x->done) {
                         x->owner->end_exchange(
                           x, dns_response{std::string("send: ") + uv_strerror(status), {}});
                       }
                     });
    if (rc != 0) {
      end_exchange(x, dns_response{std::string("send: ") + uv_strerror(rc), {}});
      return;
    }
    rc = uv_udp_recv_start(
      &x->udp,
      [](uv_handle_t* h, std::size_t, uv_buf_t* b) {
        auto* x = static_cast<exchange*>(h->data);
        x->rd.resize(65536);
        *b = uv_buf_init(x->rd.data(), static_cast<unsigned>(x->rd.size()));
      },
      [](uv_udp_t* u, ssize_t n, const uv_buf_t* b, const sockaddr* from, unsigned) {
        auto* x = static_cast<exchange*>(u->data);
        if (x->done || n <= 0 || from == nullptr) {
          if (n < 0 && !x->done) {
            x->owner->end_exchange(
              x, dns_response{std::string("recv: ") + uv_strerror(static_cast<int>(n)), {}});
          }
          return;
        }
        if (n < 12) {
          return; // not an answer; keep waiting until the timeout
        }
        auto* p = reinterpret_cast<const std::uint8_t*>(b->base);
        std::uint16_t id = static_cast<std::uint16_t>((p[0] << 8) | p[1]);
        if (id != x->id) {
          return; // someone else's answer
        }
        if (p[2] & 0x02) {
          // Truncated: the same question over TCP, once.
          uv_udp_recv_stop(u);
          x->owner->start_tcp(x);
          return;
        }
        x->owner->end_exchange(x, dns_response{"", std::vector<std::uint8_t>(p, p + n)});
      });
    if (rc != 0) {
      end_exchange(x, dns_response{std::string("uv_udp_recv_start: ") + uv_strerror(rc), {}});
    }
  }

  void start_tcp(exchange* x) {
    int rc = uv_tcp_init(lt.loop(), &x->tcp);
    if (rc != 0) {
      end_exchange(x, dns_response{std::string("uv_tcp_init: ") + uv_strerror(rc), {}});
      return;
    }
    x->tcp_open = true;
    ++x->open;
    x->conn.data = x;
    rc = uv_tcp_connect(&x->conn, &x->tcp, reinterpret_cast<const sockaddr*>(&x->addr),
                        [](uv_connect_t* c, int status) {
                          auto* x = static_cast<exchange*>(c->data);
                          if (x->done) {
                            return;
                          }
                          if (status != 0) {
                            x->owner->end_exchange(
                              x, dns_response{std::string("connect: ") + uv_strerror(status),
                                              {}});
                            return;
                          }
                          x->owner->tcp_connected(x);
                        });
    if (rc != 0) {
      end_exchange(x, dns_response{std::string("connect: ") + uv_strerror(rc), {}});
    }
  }

  void tcp_connected(exchange* x) {
    const auto& w = x->in.req.wire;
    x->out.clear();
    x->out.push_back(static_cast<std::uint8_t>(w.size() >> 8));
    x->out.push_back(static_cast<std::uint8_t>(w.size() & 0xff));
    x->out.insert(x->out.end(), w.begin(), w.end());
    auto buf = uv_buf_init(reinterpret_cast<char*>(x->out.data()),
                           static_cast<unsigned>(x->out.size()));
    x->wr.data = x;
    int rc = uv_write(&x->wr, reinterpret_cast<uv_stream_t*>(&x->tcp), &buf, 1,
                      [](uv_write_t* w, int status) {
                        auto* x = static_cast<exchange*>(w->data);
                        if (status != 0 && !x->done) {
                          x->owner->end_exchange(
                            x, dns_response{std::string("write: ") + uv_strerror(status), {}});
                        }
                      });
    if (rc != 0) {
      end_exchange(x, dns_response{std::string("write: ") + uv_strerror(rc), {}});
      return;
    }
    rc = uv_read_start(
      reinterpret_cast<uv_stream_t*>(&x->tcp),
      [](uv_handle_t* h, std::size_t, uv_buf_t* b) {
        auto* x = static_cast<exchange*>(h->data);
        x->rd.resize(65536);
        *b = uv_buf_init(x->rd.data(), static_cast<unsigned>(x->rd.size()));
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
        auto* x = static_cast<exchange*>(s->data);
        if (x->done) {
          return;
        }
        if (n < 0) {
          x->owner->end_exchange(
            x, dns_response{n == UV_EOF ? std::string("connection closed before the answer")
                                        : std::string("read: ") +
                                            uv_strerror(static_cast<int>(n)),
                            {}});
          return;
        }
        auto* p = reinterpret_cast<const std::uint8_t*>(b->base);
        x->in_buf.insert(x->in_buf.end(), p, p + n);
        if (x->in_buf.size() < 2) {
          return;
        }
        std::size_t len = (static_cast<std::size_t>(x->in_buf[0]) << 8) | x->in_buf[1];
        if (x->in_buf.size() < 2 + len) {
          return;
        }
        std::vector<std::uint8_t> msg(x->in_buf.begin() + 2, x->in_buf.begin() + 2 +
                                                               static_cast<std::ptrdiff_t>(len));
        x->owner->end_exchange(x, dns_response{"", std::move(msg)});
      });
    if (rc != 0) {
      end_exchange(x, dns_response{std::string("uv_read_start: ") + uv_strerror(rc), {}});
    }
  }

  // Loop thread, once: every request ends with "stopped", every handle closes.
  void close_all() {
    closing = true;
    std::deque<item> batch;
    {
      std::lock_guard<std::mutex> g(mu);
      accepting = false;
      batch.swap(queue);
    }
    for (auto& it : batch) {
      fail_item(it, "stopped");
    }
    auto ts = transfers;
    for (auto* t : ts) {
      transfers.erase(t);
      cm.remove(t->easy.get());
      std::unique_ptr<transfer> own(t);
      auto cb = std::move(t->in.cb);
      own.reset();
      http_response r;
      r.transport_error = "stopped";
      cb(std::move(r));
    }
    auto xs = exchanges;
    for (auto* x : xs) {
      end_exchange(x, dns_response{"stopped", {}});
    }
    cm.close();
    uv_close(reinterpret_cast<uv_handle_t*>(&wake), nullptr);
  }
};

dns_io::dns_io() : impl_(std::make_unique<impl>()) {}

dns_io::~dns_io() { stop(); }

std::string dns_io::start() {
  auto& m = *impl_;
  auto life = m.lt.lock_life();
  if (!m.lt.startable()) {
    return "dns io: start() after start() or stop()";
  }
  if (auto e = m.lt.init(); !e.empty()) {
    return "dns io: " + e;
  }
  int rc = uv_async_init(m.lt.loop(), &m.wake, &impl::on_wake);
  if (rc != 0) {
    m.lt.abandon(nullptr);
    return std::string("dns io: uv_async_init: ") + uv_strerror(rc);
  }
  m.wake.data = &m;
  if (auto e = m.cm.open(m.lt.loop()); !e.empty()) {
    m.lt.abandon([&] { uv_close(reinterpret_cast<uv_handle_t*>(&m.wake), nullptr); });
    return "dns io: " + e;
  }
  {
    std::lock_guard<std::mutex> g(m.mu);
    m.accepting = true;
  }
  auto e = m.lt.start([&m] { m.close_all(); }, true);
  if (!e.empty()) {
    std::lock_guard<std::mutex> g(m.mu);
    m.accepting = false;
    return "dns io: " + e;
  }
  return {};
}

void dns_io::stop() {
  auto& m = *impl_;
  m.lt.stop([&m] {
    std::lock_guard<std::mutex> g(m.mu);
    m.accepting = false;
  });
  // Items queued after the loop closed its door but before it drained.
  std::deque<item> left;
  {
    std::lock_guard<std::mutex> g(m.mu);
    m.accepting = false;
    left.swap(m.queue);
  }
  for (auto& it : left) {
    fail_item(it, "stopped");
  }
}

void dns_io::submit(http_request r, http_options o, http_done cb) {
  auto& m = *impl_;
  {
    std::lock_guard<std::mutex> g(m.mu);
    if (m.accepting) {
      m.queue.emplace_back(http_item{std::move(r), std::move(o), std::move(cb)});
      uv_async_send(&m.wake);
      return;
    }
  }
  http_response resp;
  resp.transport_error = "stopped";
  cb(std::move(resp));
}

void dns_io::submit(dns_request r, std::int64_t timeout_ms, dns_done cb) {
  auto& m = *impl_;
  {
    std::lock_guard<std::mutex> g(m.mu);
    if (m.accepting) {
      m.queue.emplace_back(dns_item{std::move(r), timeout_ms, std::move(cb)});
      uv_async_send(&m.wake);
      return;
    }
  }
  cb(dns_response{"stopped", {}});
}

const dns_io_counters& dns_io::counters() const { return impl_->counters; }

} // namespace balctl::dns
