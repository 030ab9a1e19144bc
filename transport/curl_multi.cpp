#include "transport/curl_multi.hpp"

#include <memory>
#include <mutex>
#include <vector>

namespace balctl {

namespace {

std::once_flag curl_once;

// One per socket curl watches; freed in its poll handle's close callback.
struct sock_ctx {
  uv_poll_t poll{};
  curl_socket_t fd = 0;
  curl_multi* owner = nullptr;
  CURLM* multi = nullptr;
};

} // namespace

void curl_multi::global_init() {
  std::call_once(curl_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string curl_multi::open(uv_loop_t* loop) {
  global_init();
  loop_ = loop;
  int rc = uv_timer_init(loop, &timer_);
  if (rc != 0) {
    return std::string("uv_timer_init: ") + uv_strerror(rc);
  }
  timer_open_ = true;
  timer_.data = this;
  multi_ = curl_multi_init();
  if (multi_ == nullptr) {
    close();
    return "curl_multi_init failed";
  }
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &curl_multi::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &curl_multi::on_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  return {};
}

std::string curl_multi::add(CURL* easy, done_fn done) {
  if (multi_ == nullptr) {
    return "curl_multi_add_handle: closed";
  }
  auto [it, fresh] = done_.emplace(easy, std::move(done));
  if (!fresh) {
    return "curl_multi_add_handle: already added";
  }
  if (auto rc = curl_multi_add_handle(multi_, easy); rc != CURLM_OK) {
    done_.erase(it);
    return std::string("curl_multi_add_handle: ") + curl_multi_strerror(rc);
  }
  return {};
}

void curl_multi::remove(CURL* easy) {
  if (done_.erase(easy) != 0 && multi_ != nullptr) {
    curl_multi_remove_handle(multi_, easy);
  }
}

void curl_multi::close() {
  if (multi_ != nullptr) {
    std::vector<CURL*> left;
    for (auto& [e, fn] : done_) {
      left.push_back(e);
    }
    for (auto* e : left) {
      remove(e);
    }
    curl_multi_cleanup(multi_);
    multi_ = nullptr;
  }
  done_.clear();
  if (timer_open_) {
    timer_open_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
  }
}

void curl_multi::check_done() {
  int left = 0;
  while (multi_ != nullptr) {
    CURLMsg* m = curl_multi_info_read(multi_, &left);
    if (m == nullptr) {
      break;
    }
    if (m->msg != CURLMSG_DONE) {
      continue;
    }
    CURL* e = m->easy_handle;
    auto rc = m->data.result;
    auto it = done_.find(e);
    if (it == done_.end()) {
      continue;
    }
    // Out of the multi before the callback: it may free or re-add e.
    auto fn = std::move(it->second);
    done_.erase(it);
    curl_multi_remove_handle(multi_, e);
    fn(rc);
  }
}

void curl_multi::on_poll(uv_poll_t* p, int status, int events) {
  auto* ctx = static_cast<sock_ctx*>(p->data);
  auto* self = ctx->owner;
  int flags = 0;
  if (status < 0) {
    flags = CURL_CSELECT_ERR;
  } else {
    flags |= (events & UV_READABLE) ? CURL_CSELECT_IN : 0;
    flags |= (events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0;
  }
  int running = 0;
  curl_multi_socket_action(self->multi_, ctx->fd, flags, &running);
  self->check_done();
}

int curl_multi::on_socket(CURL*, curl_socket_t s, int action, void* userp, void* socketp) {
  auto* self = static_cast<curl_multi*>(userp);
  auto* ctx = static_cast<sock_ctx*>(socketp);
  if (action == CURL_POLL_REMOVE) {
    if (ctx != nullptr) {
      uv_poll_stop(&ctx->poll);
      uv_close(reinterpret_cast<uv_handle_t*>(&ctx->poll), [](uv_handle_t* h) {
        std::unique_ptr<sock_ctx> own(static_cast<sock_ctx*>(h->data));
      });
      curl_multi_assign(self->multi_, s, nullptr);
    }
    return 0;
  }
  if (ctx == nullptr) {
    auto fresh = std::make_unique<sock_ctx>();
    fresh->fd = s;
    fresh->owner = self;
    if (uv_poll_init_socket(self->loop_, &fresh->poll, s) != 0) {
      return -1;
    }
    ctx = fresh.release();
    ctx->poll.data = ctx;
    curl_multi_assign(self->multi_, s, ctx);
  }
  int events = 0;
  events |= (action == CURL_POLL_IN || action == CURL_POLL_INOUT) ? UV_READABLE : 0;
  events |= (action == CURL_POLL_OUT || action == CURL_POLL_INOUT) ? UV_WRITABLE : 0;
  uv_poll_start(&ctx->poll, events, &curl_multi::on_poll);
  return 0;
}

void curl_multi::on_timeout(uv_timer_t* t) {
  auto* self = static_cast<curl_multi*>(t->data);
  int running = 0;
  curl_multi_socket_action(self->multi_, CURL_SOCKET_TIMEOUT, 0, &running);
  self->check_done();
}

int curl_multi::on_timer(CURLM*, long timeout_ms, void* userp) {
  auto* self = static_cast<curl_multi*>(userp);
  if (timeout_ms < 0) {
    uv_timer_stop(&self->timer_);
  } else {
    // Never act from inside this callback (curl forbids it): a 0 ms timer.
    uv_timer_start(&self->timer_, &curl_multi::on_timeout,
                   static_cast<std::uint64_t>(timeout_ms), 0);
  }
  return 0;
}

} // namespace balctl
