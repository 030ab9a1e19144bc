#include "agent/runner.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include <uv.h>

#include "agent/agent_api.hpp"
#include "agent/backoff.hpp"
#include "agent/job_loop.hpp"
#include "agent/version.hpp"
#include "engine/log.hpp"
#include "transport/listen_address.hpp"
#include "transport/protocol.hpp"
#include "transport/tls_session.hpp"

namespace balctl::agent {

namespace {

// How often the UDP endpoint is looked up again.
constexpr std::int64_t udp_resolve_interval_ms = 300'000;

std::int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

template <class T>
uv_handle_t* as_handle(T* h) {
  return reinterpret_cast<uv_handle_t*>(h);
}

// host:port → host and port text for getaddrinfo ("[v6]:p" allowed).
bool split_endpoint(const std::string& ep, std::string& host, std::string& port) {
  int p = 0;
  if (!split_listen(ep, host, p) || host.empty() || p == 0) {
    return false;
  }
  port = std::to_string(p);
  return true;
}

class runner;

// One TLS stream to the engine. Owns two handles (the socket and its
// connect/handshake timer); freed when both have closed.
struct tls_conn {
  runner* owner = nullptr;
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  uv_connect_t connect_req{};
  std::unique_ptr<tls::session> session;
  std::string plain; // decrypted bytes not yet a whole ack
  bool up = false;   // handshake done
  bool closing = false;
  int open_handles = 0;
  std::string peer;
};

struct write_req {
  uv_write_t req{};
  std::string data;
};

struct detect_job {
  uv_work_t req{};
  runner* owner = nullptr;
  detected_stacks stacks;
  host_metrics metrics;
  jobs_info jobs;
};

struct resolve_job {
  uv_getaddrinfo_t req{};
  runner* owner = nullptr;
  bool for_tls = false;
};

// Everything public: the C callbacks above and below call in, and the
// class lives in this file only.
class runner {
public:
  runner(const runner_options& o, agent_state s)
    : opts_(o),
      state_(std::move(s)),
      // 65,536 numbers a reservation: one state-file write (with its
      // fsync, on this loop) every ~36 h at the 2 s interval.
      seqs_(o.state_file, state_, 65'536),
      policy_(pick_mode(o, state_), ack_timeout_ms(o, state_), 2,
              std::int64_t{o.udp_reprobe_s} * 1000),
      tls_backoff_(o.backoff_base_ms, o.backoff_max_ms),
      resolve_backoff_(o.backoff_base_ms, o.backoff_max_ms),
      metrics_(o.detect),
      rng_(std::random_device{}()) {}

  int run();

  // libuv callbacks (the trampolines call these).
  void beat();
  void on_udp(const std::uint8_t* data, std::size_t len);
  void detect_done(detect_job* job, int status);
  void resolved(resolve_job* job, int status, addrinfo* res);
  void tls_connected(tls_conn* c, int status);
  void tls_read(tls_conn* c, const char* data, std::size_t len);
  void tls_timeout(tls_conn* c);
  void tls_retry();
  void stop(const char* why);

  static transport_mode pick_mode(const runner_options& o, const agent_state& s) {
    if (o.transport) {
      return *o.transport;
    }
    transport_mode m = transport_mode::auto_;
    parse_transport_mode(s.transport, m);
    return m;
  }
  std::int64_t interval_ms() const {
    return std::int64_t{opts_.interval_s > 0 ? opts_.interval_s : state_.interval_s} * 1000;
  }
  // An ack comes back in a round trip; one not there by the next beat
  // (interval ± 10 % jitter) is missed.
  static std::int64_t ack_timeout_ms(const runner_options& o, const agent_state& s) {
    auto iv = std::int64_t{o.interval_s > 0 ? o.interval_s : s.interval_s} * 1000;
    return iv * 3 / 4;
  }
  /// The random source for jitter and back-off: [0, n).
  const std::function<std::uint64_t(std::uint64_t)> uniform_ = [this](std::uint64_t n) {
    return n == 0 ? 0 : rng_() % n;
  };
  std::string hostname() const {
    return opts_.hostname_override.empty() ? state_.hostname : opts_.hostname_override;
  }

  void schedule_beat();
  void start_detect();
  void resolve(bool for_tls);
  void send_frame(path via, bool ask_ack, const std::string& body,
                  std::uint64_t* seq_out, bool* sent_out);
  bool send_udp(const std::uint8_t* data, std::size_t len);
  bool send_tls(const std::uint8_t* data, std::size_t len);
  void handle_ack(path via, const protocol::ack& a);
  void manage_tls();
  void tls_connect_to(const sockaddr_storage& addr);
  void tls_retry_in(std::int64_t delay_ms);
  void tls_fail(tls_conn* c, const std::string& why);
  void tls_flush(tls_conn* c);
  /// Queues what the session has for the peer; the uv_write error or 0.
  int write_output(tls_conn* c);
  void tls_close(tls_conn* c);
  bool tls_up() const { return conn_ != nullptr && conn_->up; }
  void log_switch();
  bool rate_ok(std::int64_t now) {
    std::uint64_t suppressed = 0;
    return warn_limit_.allow(now, &suppressed);
  }

  runner_options opts_;
  agent_state state_;
  seq_source seqs_;
  transport_policy policy_;
  backoff tls_backoff_;
  backoff resolve_backoff_;
  metrics_reader metrics_;
  std::mt19937_64 rng_;
  log::rate_limiter warn_limit_{0.2, 5};

  uv_loop_t loop_{};
  uv_udp_t udp_{};
  uv_timer_t beat_timer_{};
  uv_timer_t detect_timer_{};
  uv_timer_t retry_timer_{};     // TLS reconnect
  uv_timer_t udp_retry_timer_{}; // UDP address lookup retry
  uv_signal_t sigterm_{};
  uv_signal_t sigint_{};
  bool stopping_ = false;

  sockaddr_storage udp_target_{};
  bool udp_target_ok_ = false;
  std::int64_t last_udp_resolve_ms_ = 0;
  // Every address the TLS endpoint resolved to, tried in order before
  // backing off (an unreachable AAAA first must not block the A).
  std::vector<sockaddr_storage> tls_addrs_;
  std::size_t tls_addr_next_ = 0;
  // In flight, so stop() can cancel what has not started.
  detect_job* detect_job_ = nullptr;
  resolve_job* udp_job_ = nullptr;
  resolve_job* tls_job_ = nullptr;
  tls::context tls_ctx_;
  bool tls_ctx_ok_ = false;
  tls_conn* conn_ = nullptr;

  bool have_detection_ = false;
  detected_stacks last_stacks_;
  host_metrics last_metrics_;
  jobs_info last_jobs_;
  bool status_sent_ever_ = false;
  detected_stacks sent_stacks_;
  std::int64_t last_status_ms_ = 0;
  bool acked_ever_ = false;

  // Jobs run on threads of their own; the loop only starts and stops them.
  cli::curl_transport_impl http_;
  std::unique_ptr<agent_api> api_;
  std::unique_ptr<job_loop> jobs_;
  void start_jobs();
};

// -- trampolines ---------------------------------------------------------------

void on_beat_timer(uv_timer_t* t) { static_cast<runner*>(t->data)->beat(); }

void on_detect_timer(uv_timer_t* t) { static_cast<runner*>(t->data)->start_detect(); }

void on_signal(uv_signal_t* s, int signum) {
  static_cast<runner*>(s->data)->stop(signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

void on_udp_alloc(uv_handle_t*, std::size_t, uv_buf_t* buf) {
  static thread_local char slab[2048];
  *buf = uv_buf_init(slab, sizeof slab);
}

void on_udp_recv(uv_udp_t* h, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr,
                 unsigned) {
  if (nread <= 0 || addr == nullptr) {
    return;
  }
  static_cast<runner*>(h->data)->on_udp(reinterpret_cast<const std::uint8_t*>(buf->base),
                                        static_cast<std::size_t>(nread));
}

void on_tls_alloc(uv_handle_t*, std::size_t, uv_buf_t* buf) {
  static thread_local char slab[16384];
  *buf = uv_buf_init(slab, sizeof slab);
}

void on_tls_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<tls_conn*>(s->data);
  if (nread == 0) {
    return;
  }
  if (nread < 0) {
    c->owner->tls_read(c, nullptr, 0);
    return;
  }
  c->owner->tls_read(c, buf->base, static_cast<std::size_t>(nread));
}

void on_tls_connect(uv_connect_t* req, int status) {
  auto* c = static_cast<tls_conn*>(req->data);
  c->owner->tls_connected(c, status);
}

void on_tls_timer(uv_timer_t* t) {
  auto* c = static_cast<tls_conn*>(t->data);
  c->owner->tls_timeout(c);
}

void on_conn_handle_closed(uv_handle_t* h) {
  auto* c = static_cast<tls_conn*>(h->data);
  if (--c->open_handles == 0) {
    delete c;
  }
}

void on_write_done(uv_write_t* req, int) {
  delete reinterpret_cast<write_req*>(req);
}

void on_retry_timer(uv_timer_t* t) { static_cast<runner*>(t->data)->tls_retry(); }
void on_udp_retry_timer(uv_timer_t* t) { static_cast<runner*>(t->data)->resolve(false); }

void on_getaddrinfo(uv_getaddrinfo_t* req, int status, addrinfo* res) {
  auto* job = static_cast<resolve_job*>(req->data);
  job->owner->resolved(job, status, res);
}

void detect_work(uv_work_t* req) {
  // On a libuv pool thread: commands may take up to their timeout, which
  // must never delay a heartbeat.
  auto* job = static_cast<detect_job*>(req->data);
  job->stacks = detect_stacks(job->owner->opts_.detect);
  job->metrics = job->owner->metrics_.sample();
  job->jobs = count_jobs(job->owner->opts_.detect);
}

void detect_after(uv_work_t* req, int status) {
  auto* job = static_cast<detect_job*>(req->data);
  job->owner->detect_done(job, status);
}

// -- runner ----------------------------------------------------------------------

int runner::run() {
  if (int rc = uv_loop_init(&loop_); rc != 0) {
    log::error("agent_start_failed", {{"error", std::string("uv_loop_init: ") + uv_strerror(rc)}});
    return 1;
  }
  auto fail = [&](const std::string& why) {
    log::error("agent_start_failed", {{"error", why}});
    uv_loop_close(&loop_);
    return 1;
  };
  // Reserved and saved before the first heartbeat: a number once sent is
  // never sent again, whatever happens to this process or the clock.
  auto seq_err = seqs_.start(wall_ms());
  if (!seq_err.empty()) {
    return fail(seq_err);
  }
  if (policy_.mode() != transport_mode::udp) {
    if (state_.heartbeat_tls.empty()) {
      if (policy_.mode() == transport_mode::tls) {
        return fail("transport tls: the engine gave no heartbeat_tls endpoint at "
                    "enrolment (its heartbeat_tls.listen is not set)");
      }
      log::warn("agent_no_tls_fallback",
                {{"reason", "the engine gave no heartbeat_tls endpoint at enrolment; "
                            "auto stays on UDP"}});
    } else {
      auto ca = opts_.ca_file.empty() ? state_.ca_file : opts_.ca_file;
      auto err = tls_ctx_.load_client(ca);
      if (!err.empty()) {
        if (policy_.mode() == transport_mode::tls) {
          return fail(err);
        }
        // auto still has UDP: a CA file gone missing must not take the
        // member down with it.
        log::error("agent_no_tls_fallback", {{"reason", err}});
      } else {
        tls_ctx_ok_ = true;
      }
    }
  }
  int rc = 0;
  if ((rc = uv_udp_init(&loop_, &udp_)) != 0 ||
      (rc = uv_timer_init(&loop_, &beat_timer_)) != 0 ||
      (rc = uv_timer_init(&loop_, &detect_timer_)) != 0 ||
      (rc = uv_timer_init(&loop_, &retry_timer_)) != 0 ||
      (rc = uv_timer_init(&loop_, &udp_retry_timer_)) != 0 ||
      (rc = uv_signal_init(&loop_, &sigterm_)) != 0 ||
      (rc = uv_signal_init(&loop_, &sigint_)) != 0) {
    // Only reachable on resource exhaustion at start; the process exits.
    log::error("agent_start_failed", {{"error", std::string("libuv init: ") + uv_strerror(rc)}});
    return 1;
  }
  udp_.data = beat_timer_.data = detect_timer_.data = retry_timer_.data = this;
  udp_retry_timer_.data = this;
  sigterm_.data = sigint_.data = this;
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  uv_signal_start(&sigint_, on_signal, SIGINT);
  if (hostname() != state_.hostname) {
    log::warn("agent_hostname_override",
              {{"enrolled", state_.hostname},
               {"sending", hostname()},
               {"note", "the engine drops status bodies whose hostname is not the enrolled one"}});
  }
  log::info("agent_started", {{"version", version},
                              {"member_id", std::to_string(state_.member)},
                              {"pool", state_.pool},
                              {"heartbeat_udp", state_.heartbeat_udp},
                              {"heartbeat_tls", state_.heartbeat_tls},
                              {"transport", to_string(policy_.mode())},
                              {"interval_ms", std::to_string(interval_ms())},
                              {"seq", std::to_string(seqs_.peek())}});
  resolve(false);
  manage_tls();
  start_detect();
  start_jobs();
  uv_timer_start(&detect_timer_, on_detect_timer,
                 static_cast<std::uint64_t>(opts_.detect_interval_s) * 1000,
                 static_cast<std::uint64_t>(opts_.detect_interval_s) * 1000);
  // The first beat goes as soon as the UDP address is known (resolved()
  // fires it; bodyless, the status follows detection), at the latest one
  // interval from now.
  uv_timer_start(&beat_timer_, on_beat_timer, static_cast<std::uint64_t>(interval_ms()), 0);
  uv_run(&loop_, UV_RUN_DEFAULT);
  if (jobs_) {
    jobs_->join();
  }
  if ((rc = uv_loop_close(&loop_)) != 0) {
    log::warn("agent_loop_close_failed", {{"error", uv_strerror(rc)}});
  }
  log::info("agent_stopped", {{"next_seq", std::to_string(seqs_.peek())}});
  return 0;
}

void runner::stop(const char* why) {
  if (stopping_) {
    return;
  }
  stopping_ = true;
  log::info("agent_stopping", {{"signal", why}});
  uv_close(as_handle(&udp_), nullptr);
  uv_close(as_handle(&beat_timer_), nullptr);
  uv_close(as_handle(&detect_timer_), nullptr);
  uv_close(as_handle(&retry_timer_), nullptr);
  uv_close(as_handle(&udp_retry_timer_), nullptr);
  uv_close(as_handle(&sigterm_), nullptr);
  uv_close(as_handle(&sigint_), nullptr);
  if (conn_ != nullptr) {
    tls_close(conn_);
  }
  if (jobs_) {
    jobs_->request_stop();
  }
  // Work not yet started is cancelled; a detection already running
  // finishes (its commands are bounded by their timeout). Callbacks see
  // stopping_ and only free their job.
  if (detect_job_ != nullptr) {
    (void)uv_cancel(reinterpret_cast<uv_req_t*>(&detect_job_->req));
  }
  for (auto* job : {udp_job_, tls_job_}) {
    if (job != nullptr) {
      (void)uv_cancel(reinterpret_cast<uv_req_t*>(&job->req));
    }
  }
}

void runner::schedule_beat() {
  if (stopping_) {
    return;
  }
  auto delay = jittered(interval_ms(), uniform_);
  uv_timer_start(&beat_timer_, on_beat_timer, static_cast<std::uint64_t>(delay), 0);
}

void runner::beat() {
  auto now = static_cast<std::int64_t>(uv_now(&loop_));
  // The engine's address may move (DNS failover, a new VIP): look the UDP
  // endpoint up again now and then.
  if (now - last_udp_resolve_ms_ >= udp_resolve_interval_ms) {
    resolve(false);
  }
  auto plan = policy_.plan(now, tls_up());
  if (policy_.current() == path::tls && policy_.misses() >= 3 && conn_ != nullptr) {
    // A stream that stopped acknowledging is half-open or stuck: replace it.
    tls_fail(conn_, "no acknowledgement for 3 heartbeats");
    plan = policy_.plan(now, tls_up());
  }
  log_switch();
  manage_tls();
  std::string body;
  bool status_due =
    have_detection_ && (!status_sent_ever_ || last_stacks_ != sent_stacks_ ||
                        now - last_status_ms_ >= std::int64_t{opts_.status_interval_s} * 1000);
  if (status_due) {
    member_status st;
    st.hostname = hostname();
    st.agent_version = version;
    fill_status(st, last_stacks_, last_metrics_, last_jobs_);
    body = protocol::status_to_json(st);
  }
  bool skip = plan.via == path::tls && !tls_up();
  if (!skip) {
    std::uint64_t seq = 0;
    bool sent = false;
    send_frame(plan.via, plan.ask_ack, body, &seq, &sent);
    if (plan.ask_ack) {
      if (sent) {
        policy_.asked(plan.via, seq, now);
      } else {
        policy_.unsent(plan.via, now);
        log_switch();
        manage_tls();
      }
    }
    if (sent && !body.empty()) {
      status_sent_ever_ = true;
      sent_stacks_ = last_stacks_;
      last_status_ms_ = now;
    }
    if (plan.udp_probe) {
      std::uint64_t probe_seq = 0;
      bool probe_sent = false;
      send_frame(path::udp, true, {}, &probe_seq, &probe_sent);
      if (probe_sent) {
        policy_.asked(path::udp, probe_seq, now);
      }
    }
  } else if (rate_ok(wall_ms())) {
    log::warn("agent_heartbeat_skipped", {{"reason", "transport tls and the TLS stream is not up"}});
  }
  schedule_beat();
}

void runner::send_frame(path via, bool ask_ack, const std::string& body,
                        std::uint64_t* seq_out, bool* sent_out) {
  *sent_out = false;
  if (via == path::udp && !udp_target_ok_) {
    return; // still resolving; the next beat tries again
  }
  std::string err;
  auto seq = seqs_.next(&err);
  if (!seq) {
    if (rate_ok(wall_ms())) {
      log::error("agent_seq_reserve_failed", {{"error", err}});
    }
    return;
  }
  protocol::header h;
  h.flags = ask_ack ? protocol::flag_ack_requested : 0;
  h.member = state_.member;
  h.seq = *seq;
  h.timestamp_ms = wall_ms();
  std::uint8_t buf[protocol::max_datagram_size];
  auto n = protocol::encode(buf, sizeof buf, h, body, state_.key);
  if (n == 0) {
    // Only a body over max_body_size gets here: send the beat without it.
    log::error("agent_status_too_large", {{"bytes", std::to_string(body.size())}});
    n = protocol::encode(buf, sizeof buf, h, {}, state_.key);
  }
  *seq_out = *seq;
  *sent_out = via == path::udp ? send_udp(buf, n) : send_tls(buf, n);
}

bool runner::send_udp(const std::uint8_t* data, std::size_t len) {
  auto b = uv_buf_init(reinterpret_cast<char*>(const_cast<std::uint8_t*>(data)),
                       static_cast<unsigned>(len));
  int rc = uv_udp_try_send(&udp_, &b, 1, reinterpret_cast<const sockaddr*>(&udp_target_));
  if (rc < 0) {
    if (rate_ok(wall_ms())) {
      log::warn("agent_udp_send_failed", {{"target", state_.heartbeat_udp},
                                          {"error", uv_strerror(rc)}});
    }
    return false;
  }
  // The first send binds the socket; acks come back to it.
  if (!uv_is_active(as_handle(&udp_))) {
    int r = uv_udp_recv_start(&udp_, on_udp_alloc, on_udp_recv);
    if (r != 0) {
      log::warn("agent_udp_recv_failed", {{"error", uv_strerror(r)}});
    }
  }
  return true;
}

void runner::on_udp(const std::uint8_t* data, std::size_t len) {
  auto a = protocol::decode_ack(data, len, state_.key);
  if (!a || a->member != state_.member) {
    return; // not ours, or forged: only a verified ack means anything
  }
  handle_ack(path::udp, *a);
}

void runner::handle_ack(path via, const protocol::ack& a) {
  auto now = static_cast<std::int64_t>(uv_now(&loop_));
  if (!acked_ever_) {
    acked_ever_ = true;
    log::info("agent_acknowledged", {{"via", to_string(via)}});
  }
  if (via == path::tls) {
    // The stream carries frames both ways: only now is it worth keeping,
    // so only now does the reconnect back-off start over.
    tls_backoff_.reset();
  }
  switch (a.result) {
    case protocol::ack_result::accepted:
      break;
    case protocol::ack_result::replayed: {
      // The engine has seen a higher number (a state file restored from a
      // backup, say): continue above it instead of being dropped forever.
      // Not proof that the path works: anyone holding an old heartbeat
      // can replay it and make the engine answer.
      bool behind = seqs_.peek() <= a.seq;
      auto err = seqs_.skip_past(a.seq);
      if (behind && rate_ok(wall_ms())) {
        log::warn("agent_seq_behind", {{"engine_last_seq", std::to_string(a.seq)},
                                       {"next_seq", std::to_string(seqs_.peek())},
                                       {"error", err}});
      }
      return;
    }
    case protocol::ack_result::stale_timestamp:
      if (rate_ok(wall_ms())) {
        log::error("agent_clock_skew",
                   {{"skew_ms", std::to_string(wall_ms() - a.engine_time_ms)},
                    {"hint", "the engine drops heartbeats with timestamps outside its "
                             "max_clock_skew_s; fix this host's time (NTP)"}});
      }
      break;
    case protocol::ack_result::malformed_body:
    case protocol::ack_result::hostname_mismatch:
      if (rate_ok(wall_ms())) {
        log::error("agent_status_refused",
                   {{"reason", protocol::to_string(a.result)},
                    {"hostname", hostname()},
                    {"hint", "the status body must carry the enrolled hostname "
                             "(BALCTL_HOSTNAME overrides the OS hostname)"}});
      }
      break;
  }
  // A verified answer to our own current frame proves the path works both
  // ways.
  policy_.acked(via, a.seq, now);
  log_switch();
  manage_tls();
}

void runner::log_switch() {
  path to = path::udp;
  if (policy_.take_switched(&to)) {
    log::warn("agent_transport_switched",
              {{"to", to_string(to)},
               {"reason", to == path::tls ? "UDP heartbeats are not acknowledged"
                                          : "UDP is acknowledged again"}});
  }
}

// -- address lookup ---------------------------------------------------------------

void runner::resolve(bool for_tls) {
  if ((for_tls ? tls_job_ : udp_job_) != nullptr || stopping_) {
    return;
  }
  std::string host, port;
  const auto& ep = for_tls ? state_.heartbeat_tls : state_.heartbeat_udp;
  if (!split_endpoint(ep, host, port)) {
    log::error("agent_bad_endpoint", {{"endpoint", ep},
                                      {"hint", "re-enrol; the state file's endpoint is not host:port"}});
    return;
  }
  auto* job = new resolve_job;
  job->owner = this;
  job->for_tls = for_tls;
  job->req.data = job;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = for_tls ? SOCK_STREAM : SOCK_DGRAM;
  int rc = uv_getaddrinfo(&loop_, &job->req, on_getaddrinfo, host.c_str(), port.c_str(), &hints);
  if (rc != 0) {
    delete job;
    log::warn("agent_resolve_failed", {{"endpoint", ep}, {"error", uv_strerror(rc)}});
    return;
  }
  (for_tls ? tls_job_ : udp_job_) = job;
  if (!for_tls) {
    last_udp_resolve_ms_ = static_cast<std::int64_t>(uv_now(&loop_));
  }
}

void runner::resolved(resolve_job* job, int status, addrinfo* res) {
  std::unique_ptr<resolve_job> owned(job);
  bool for_tls = job->for_tls;
  (for_tls ? tls_job_ : udp_job_) = nullptr;
  if (stopping_ || status == UV_ECANCELED) {
    uv_freeaddrinfo(res);
    return;
  }
  const auto& ep = for_tls ? state_.heartbeat_tls : state_.heartbeat_udp;
  if (status != 0 || res == nullptr) {
    uv_freeaddrinfo(res);
    auto& b = for_tls ? tls_backoff_ : resolve_backoff_;
    auto delay = b.next(uniform_);
    log::warn("agent_resolve_failed", {{"endpoint", ep},
                                       {"error", uv_strerror(status)},
                                       {"retry_in_ms", std::to_string(delay)}});
    if (for_tls) {
      tls_retry_in(delay);
    } else if (!stopping_) {
      uv_timer_start(&udp_retry_timer_, on_udp_retry_timer, static_cast<std::uint64_t>(delay), 0);
    }
    return;
  }
  std::vector<sockaddr_storage> addrs;
  for (auto* p = res; p != nullptr; p = p->ai_next) {
    sockaddr_storage a{};
    std::memcpy(&a, p->ai_addr, std::min<std::size_t>(p->ai_addrlen, sizeof a));
    addrs.push_back(a);
  }
  uv_freeaddrinfo(res);
  if (!for_tls) {
    resolve_backoff_.reset();
    bool first = !udp_target_ok_;
    bool moved = !first && std::memcmp(&udp_target_, &addrs[0], sizeof udp_target_) != 0;
    udp_target_ = addrs[0];
    udp_target_ok_ = true;
    if (moved) {
      log::info("agent_engine_address_changed", {{"endpoint", ep}});
    }
    if (first && !stopping_) {
      // The beat that found no address yet goes now, not an interval late.
      uv_timer_start(&beat_timer_, on_beat_timer, 0, 0);
    }
    return;
  }
  tls_addrs_ = std::move(addrs);
  tls_addr_next_ = 0;
  tls_connect_to(tls_addrs_[0]);
}

// -- TLS stream --------------------------------------------------------------------

void runner::manage_tls() {
  if (stopping_ || !tls_ctx_ok_) {
    return;
  }
  if (policy_.wants_tls()) {
    if (conn_ == nullptr && tls_job_ == nullptr &&
        !uv_is_active(as_handle(&retry_timer_))) {
      resolve(true);
    }
  } else if (conn_ != nullptr) {
    log::info("agent_tls_closed", {{"reason", "back on UDP"}});
    tls_close(conn_);
  }
}

void runner::tls_retry_in(std::int64_t delay_ms) {
  if (stopping_) {
    return;
  }
  uv_timer_start(&retry_timer_, on_retry_timer, static_cast<std::uint64_t>(delay_ms), 0);
}

void runner::tls_retry() {
  // A one-shot timer is inactive by the time its callback runs, so
  // manage_tls() sees no retry pending.
  manage_tls();
}

void runner::tls_connect_to(const sockaddr_storage& addr) {
  if (stopping_ || conn_ != nullptr || !policy_.wants_tls()) {
    return;
  }
  auto* c = new tls_conn;
  c->owner = this;
  c->tcp.data = c;
  c->timer.data = c;
  c->connect_req.data = c;
  c->peer = state_.heartbeat_tls;
  std::string name = !opts_.tls_server_name.empty() ? opts_.tls_server_name
                     : !state_.tls_server_name.empty() ? state_.tls_server_name
                                                       : std::string();
  if (name.empty()) {
    std::string port;
    split_endpoint(state_.heartbeat_tls, name, port);
  }
  c->session = std::make_unique<tls::session>(tls_ctx_, name);
  int rc = uv_tcp_init(&loop_, &c->tcp);
  if (rc != 0) {
    delete c;
    log::error("agent_tls_failed", {{"error", std::string("uv_tcp_init: ") + uv_strerror(rc)}});
    tls_retry_in(tls_backoff_.next(uniform_));
    return;
  }
  c->open_handles = 1;
  if ((rc = uv_timer_init(&loop_, &c->timer)) != 0) {
    conn_ = c;
    tls_fail(c, std::string("uv_timer_init: ") + uv_strerror(rc));
    return;
  }
  c->open_handles = 2;
  conn_ = c;
  if (!c->session->valid()) {
    tls_fail(c, c->session->error());
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_tcp_keepalive(&c->tcp, 1, 60);
  uv_timer_start(&c->timer, on_tls_timer, static_cast<std::uint64_t>(opts_.connect_timeout_ms), 0);
  rc = uv_tcp_connect(&c->connect_req, &c->tcp, reinterpret_cast<const sockaddr*>(&addr),
                      on_tls_connect);
  if (rc != 0) {
    tls_fail(c, std::string("connect: ") + uv_strerror(rc));
  }
}

void runner::tls_connected(tls_conn* c, int status) {
  if (c->closing) {
    return;
  }
  if (status != 0) {
    tls_fail(c, std::string("connect: ") + uv_strerror(status));
    return;
  }
  int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), on_tls_alloc, on_tls_read);
  if (rc != 0) {
    tls_fail(c, std::string("read: ") + uv_strerror(rc));
    return;
  }
  if (c->session->start() == tls::session::status::error) {
    tls_fail(c, c->session->error());
    return;
  }
  tls_flush(c);
}

void runner::tls_read(tls_conn* c, const char* data, std::size_t len) {
  if (c->closing) {
    return;
  }
  if (data == nullptr) {
    tls_fail(c, c->up ? "the engine closed the connection" : "connection closed during the handshake");
    return;
  }
  bool was_up = c->up;
  auto st = c->session->feed(data, len, c->plain);
  tls_flush(c);
  if (c->closing) {
    return;
  }
  if (st == tls::session::status::error) {
    tls_fail(c, c->session->error());
    return;
  }
  if (st == tls::session::status::closed) {
    tls_fail(c, "the engine closed the TLS session");
    return;
  }
  if (!was_up && c->session->established()) {
    c->up = true;
    uv_timer_stop(&c->timer);
    log::info("agent_tls_connected", {{"engine", c->peer}});
    // Beats were going nowhere (or over the UDP that failed): send one now
    // instead of an interval late.
    if (!stopping_) {
      uv_timer_start(&beat_timer_, on_beat_timer, 0, 0);
    }
  }
  // The engine only ever sends acknowledgements, each ack_size bytes.
  std::size_t off = 0;
  while (c->plain.size() - off >= protocol::ack_size) {
    auto a = protocol::decode_ack(reinterpret_cast<const std::uint8_t*>(c->plain.data() + off),
                                  protocol::ack_size, state_.key);
    off += protocol::ack_size;
    if (a && a->member == state_.member) {
      handle_ack(path::tls, *a);
      if (conn_ != c || c->closing) {
        return;
      }
    }
  }
  c->plain.erase(0, off);
}

void runner::tls_timeout(tls_conn* c) {
  if (!c->closing && !c->up) {
    tls_fail(c, "no TLS session within " + std::to_string(opts_.connect_timeout_ms) + " ms");
  }
}

bool runner::send_tls(const std::uint8_t* data, std::size_t len) {
  auto* c = conn_;
  if (c == nullptr || !c->up || c->closing) {
    return false;
  }
  if (c->session->write(std::string_view(reinterpret_cast<const char*>(data), len)) ==
      tls::session::status::error) {
    tls_fail(c, c->session->error());
    return false;
  }
  tls_flush(c);
  return conn_ == c && !c->closing;
}

int runner::write_output(tls_conn* c) {
  auto out = c->session->take_output();
  if (out.empty()) {
    return 0;
  }
  auto* w = new write_req;
  w->data = std::move(out);
  auto b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c->tcp), &b, 1, on_write_done);
  if (rc != 0) {
    delete w;
  }
  return rc;
}

void runner::tls_flush(tls_conn* c) {
  if (c->closing) {
    return;
  }
  if (int rc = write_output(c); rc != 0) {
    tls_fail(c, std::string("write: ") + uv_strerror(rc));
  }
}

void runner::tls_fail(tls_conn* c, const std::string& why) {
  if (c->closing) {
    return;
  }
  bool was_up = c->up;
  tls_close(c);
  policy_.tls_lost();
  if (stopping_) {
    return;
  }
  if (!was_up && tls_addr_next_ + 1 < tls_addrs_.size()) {
    // Another address of the same endpoint first; back off only once every
    // address has failed.
    log::warn("agent_tls_connect_failed", {{"engine", c->peer}, {"error", why},
                                           {"next_address", std::to_string(tls_addr_next_ + 1)}});
    tls_connect_to(tls_addrs_[++tls_addr_next_]);
    return;
  }
  auto delay = tls_backoff_.next(uniform_);
  log::warn(was_up ? "agent_tls_lost" : "agent_tls_connect_failed",
            {{"engine", c->peer}, {"error", why}, {"retry_in_ms", std::to_string(delay)}});
  tls_retry_in(delay);
}

void runner::tls_close(tls_conn* c) {
  if (c->closing) {
    return;
  }
  c->closing = true;
  if (c->up) {
    c->session->shutdown();
    // close_notify, best effort: queued before uv_close, libuv cancels it
    // if the socket closes first.
    (void)write_output(c);
  }
  if (conn_ == c) {
    conn_ = nullptr;
  }
  if (c->open_handles >= 1) {
    uv_close(as_handle(&c->tcp), on_conn_handle_closed);
  }
  if (c->open_handles >= 2) {
    uv_close(as_handle(&c->timer), on_conn_handle_closed);
  }
  if (c->open_handles == 0) {
    delete c;
  }
}

// -- jobs ------------------------------------------------------------------------------

void runner::start_jobs() {
  if (opts_.jobs_interval_s == 0) {
    log::info("agent_jobs_off", {{"reason", "--jobs-interval-s 0"}});
    return;
  }
  if (state_.api_base.empty()) {
    log::warn("agent_jobs_off", {{"reason", "the state file has no api_base; re-enrol"}});
    return;
  }
  job_loop_options jo;
  jo.root = opts_.detect.root;
  // The work directory sits next to the state file (root's own, like it).
  auto slash = opts_.state_file.rfind('/');
  jo.work_dir = slash == std::string::npos ? std::string(".")
                : slash == 0                 ? std::string("/")
                                             : opts_.state_file.substr(0, slash);
  jo.interval_s = opts_.jobs_interval_s;
  jo.max_running = std::max(opts_.jobs_max_running, 1);
  api_ = std::make_unique<agent_api>(state_.api_base, state_.member, state_.key,
                                     opts_.ca_file.empty() ? state_.ca_file : opts_.ca_file,
                                     http_);
  jobs_ = std::make_unique<job_loop>(jo, *api_);
  jobs_->start();
}

// -- detection -----------------------------------------------------------------------

void runner::start_detect() {
  if (detect_job_ != nullptr || stopping_) {
    return;
  }
  auto* job = new detect_job;
  job->owner = this;
  job->req.data = job;
  int rc = uv_queue_work(&loop_, &job->req, detect_work, detect_after);
  if (rc != 0) {
    delete job;
    log::warn("agent_detect_failed", {{"error", uv_strerror(rc)}});
    return;
  }
  detect_job_ = job;
}

void runner::detect_done(detect_job* job, int status) {
  std::unique_ptr<detect_job> owned(job);
  detect_job_ = nullptr;
  if (status != 0 || stopping_) {
    return;
  }
  if (!have_detection_ || job->stacks != last_stacks_) {
    log::info("agent_stacks_detected",
              {{"openlitespeed", job->stacks.openlitespeed.present ? job->stacks.openlitespeed.version : "-"},
               {"mariadb", job->stacks.mariadb.present ? job->stacks.mariadb.version : "-"},
               {"galera", job->stacks.galera.present ? job->stacks.galera.state : "-"},
               {"cpanel", job->stacks.cpanel.present ? job->stacks.cpanel.version : "-"}});
  }
  last_stacks_ = job->stacks;
  last_metrics_ = job->metrics;
  last_jobs_ = job->jobs;
  have_detection_ = true;
}

} // namespace

int run_agent(const runner_options& opts) {
  std::string err;
  auto state = load_state(opts.state_file, &err);
  if (!state) {
    log::error("agent_start_failed", {{"error", err}});
    return 1;
  }
  runner r(opts, std::move(*state));
  return r.run();
}

} // namespace balctl::agent
