#include "actors/openssl_error_queue.hpp"

#include <dlfcn.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace {

// OpenSSL's own function, found once: the next definition after ours in
// the dynamic linker's search order (libssl).
template <class F>
F next_definition(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

} // namespace

// The C names, with OpenSSL's declarations from <openssl/ssl.h>.
extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  static const auto real = next_definition<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static const auto real = next_definition<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_connect(SSL* ssl) {
  static const auto real = next_definition<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  return real(ssl);
}

int SSL_accept(SSL* ssl) {
  static const auto real = next_definition<int (*)(SSL*)>("SSL_accept");
  ERR_clear_error();
  return real(ssl);
}

} // extern "C"

namespace balctl {

bool openssl_error_queue_guard_active() {
  // What a shared library's call to SSL_read binds to.
  auto bound = dlsym(RTLD_DEFAULT, "SSL_read");
  return bound != nullptr &&
         bound == reinterpret_cast<void*>(static_cast<int (*)(SSL*, void*, int)>(&SSL_read)) &&
         next_definition<void*>("SSL_read") != nullptr;
}

} // namespace balctl
