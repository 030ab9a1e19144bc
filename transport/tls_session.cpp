#include "transport/tls_session.hpp"

#include <arpa/inet.h>

#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace balctl::tls {

namespace {

bool is_ip_literal(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

} // namespace

std::string openssl_error() {
  std::string out;
  unsigned long e = 0;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

// A memory BIO keeps the capacity of the largest burst it ever held: the
// handshake flight (about 1.1 KiB), a 16 KiB record. Once drained, one that
// grew past this is swapped for a new one, so an idle connection holds no
// buffer beyond its last small record.
constexpr std::size_t bio_keep_bytes = 512;

// Returns the BIO in use afterwards: b, or its replacement (b is then freed
// by OpenSSL).
BIO* trim_bio(SSL* ssl, BIO* b, bool read_side) {
  if (BIO_ctrl_pending(b) != 0) {
    return b;
  }
  BUF_MEM* mem = nullptr;
  if (BIO_get_mem_ptr(b, &mem) <= 0 || mem == nullptr || mem->max <= bio_keep_bytes) {
    return b;
  }
  BIO* fresh = BIO_new(BIO_s_mem());
  if (fresh == nullptr) {
    ERR_clear_error(); // keep the big one: it still works
    return b;
  }
  if (read_side) {
    SSL_set0_rbio(ssl, fresh);
  } else {
    SSL_set0_wbio(ssl, fresh);
  }
  return fresh;
}

void ctx_free::operator()(SSL_CTX* p) const { SSL_CTX_free(p); }

identity_file check_identity(const std::string& cert_file, const std::string& key_file,
                             const std::string& ca_file, std::string* reason) {
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, ctx_free> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) {
    *reason = "SSL_CTX_new: " + openssl_error();
    return identity_file::certificate;
  }
  // An encrypted key fails here instead of prompting on a terminal.
  SSL_CTX_set_default_passwd_cb(ctx.get(), [](char*, int, int, void*) { return 0; });
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1) {
    *reason = "not a PEM certificate (chain): " + openssl_error();
    return identity_file::certificate;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    *reason = "not an unencrypted PEM private key for the certificate: " + openssl_error();
    return identity_file::key;
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    *reason = "does not match the certificate " + cert_file + ": " + openssl_error();
    return identity_file::key;
  }
  if (SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr) != 1) {
    *reason = "not a PEM CA certificate file: " + openssl_error();
    return identity_file::ca;
  }
  return identity_file::none;
}
void ssl_free::operator()(SSL* p) const { SSL_free(p); }

std::string context::load_server(const std::string& cert_file,
                                 const std::string& key_file) {
  ERR_clear_error();
  ctx_.reset(SSL_CTX_new(TLS_server_method()));
  server_ = true;
  if (!ctx_) {
    return "tls: SSL_CTX_new: " + openssl_error();
  }
  SSL_CTX* ctx = ctx_.get();
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    return "tls: SSL_CTX_set_min_proto_version(TLS 1.2): " + openssl_error();
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // A server holds many mostly idle connections: give each SSL's 16 KiB
  // read and write record buffers back while nothing is in flight (about
  // 34 KiB per idle connection otherwise).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    return "tls: certificate " + cert_file + ": " + openssl_error();
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return "tls: private key " + key_file + ": " + openssl_error();
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return "tls: private key " + key_file + " does not match certificate " +
           cert_file + ": " + openssl_error();
  }
  return {};
}

std::string context::load_client(const std::string& ca_file, const std::string& cert_file,
                                 const std::string& key_file) {
  ERR_clear_error();
  if (cert_file.empty() != key_file.empty()) {
    return cert_file.empty() ? "tls: private key " + key_file + " given without its certificate"
                             : "tls: certificate " + cert_file + " given without its private key";
  }
  ctx_.reset(SSL_CTX_new(TLS_client_method()));
  server_ = false;
  if (!ctx_) {
    return "tls: SSL_CTX_new: " + openssl_error();
  }
  SSL_CTX* ctx = ctx_.get();
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    return "tls: SSL_CTX_set_min_proto_version(TLS 1.2): " + openssl_error();
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (!ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
      return "tls: CA file " + ca_file + ": " + openssl_error();
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return "tls: the system trust store: " + openssl_error();
  }
  if (!cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
      return "tls: certificate " + cert_file + ": " + openssl_error();
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return "tls: private key " + key_file + ": " + openssl_error();
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      return "tls: private key " + key_file + " does not match certificate " + cert_file + ": " +
             openssl_error();
    }
  }
  return {};
}

session::session(const context& ctx, const std::string& server_name) {
  ERR_clear_error();
  if (ctx.get() == nullptr) {
    error_ = "tls: no context";
    return;
  }
  std::unique_ptr<SSL, ssl_free> ssl(SSL_new(ctx.get()));
  if (!ssl) {
    error_ = "tls: SSL_new: " + openssl_error();
    return;
  }
  BIO* r = BIO_new(BIO_s_mem());
  BIO* w = BIO_new(BIO_s_mem());
  if (r == nullptr || w == nullptr) {
    BIO_free(r);
    BIO_free(w);
    error_ = "tls: BIO_new: " + openssl_error();
    return;
  }
  SSL_set_bio(ssl.get(), r, w); // ssl owns both now
  if (ctx.server()) {
    SSL_set_accept_state(ssl.get());
  } else {
    SSL_set_connect_state(ssl.get());
    if (!server_name.empty()) {
      bool ip = is_ip_literal(server_name);
      // SNI carries DNS names only (RFC 6066); an IP literal is matched
      // against the certificate's IP SANs instead.
      if (!ip && SSL_set_tlsext_host_name(ssl.get(), server_name.c_str()) != 1) {
        error_ = "tls: SNI " + server_name + ": " + openssl_error();
        return;
      }
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
      int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, server_name.c_str())
                  : X509_VERIFY_PARAM_set1_host(param, server_name.c_str(), 0);
      if (ok != 1) {
        error_ = "tls: server name " + server_name + ": " + openssl_error();
        return;
      }
    }
  }
  rbio_ = r;
  wbio_ = w;
  ssl_ = std::move(ssl);
}

session::~session() = default;

session::status session::fail(const char* what, int rc) {
  int e = SSL_get_error(ssl_.get(), rc);
  long verify = SSL_get_verify_result(ssl_.get());
  if (verify != X509_V_OK) {
    error_ = std::string("certificate verify failed: ") +
             X509_verify_cert_error_string(verify);
  } else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL) {
    error_ = std::string(what) + ": " + openssl_error();
  } else {
    error_ = std::string(what) + ": SSL error " + std::to_string(e);
  }
  // Whatever is left in the queue belongs to this failure; left there it
  // would be blamed on the next OpenSSL call on this thread (another
  // connection's).
  ERR_clear_error();
  return status::error;
}

session::status session::start() {
  if (!ssl_) {
    return status::error;
  }
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_.get());
  if (rc == 1) {
    established_ = true;
    return flush_pending();
  }
  int e = SSL_get_error(ssl_.get(), rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    return status::ok;
  }
  return fail("tls handshake", rc);
}

session::status session::feed(const char* data, std::size_t len, std::string& plain) {
  if (!ssl_) {
    return status::error;
  }
  ERR_clear_error();
  if (len > 0 && BIO_write(rbio_, data, static_cast<int>(len)) != static_cast<int>(len)) {
    error_ = "tls: BIO_write: " + openssl_error();
    return status::error;
  }
  if (!established_) {
    int rc = SSL_do_handshake(ssl_.get());
    if (rc != 1) {
      int e = SSL_get_error(ssl_.get(), rc);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        rbio_ = trim_bio(ssl_.get(), rbio_, true);
        return status::ok;
      }
      return fail("tls handshake", rc);
    }
    established_ = true;
    if (flush_pending() == status::error) {
      return status::error;
    }
  }
  char buf[16384];
  for (;;) {
    int n = SSL_read(ssl_.get(), buf, static_cast<int>(sizeof buf));
    if (n > 0) {
      plain.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    int e = SSL_get_error(ssl_.get(), n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      rbio_ = trim_bio(ssl_.get(), rbio_, true);
      return status::ok;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
      return status::closed;
    }
    return fail("tls read", n);
  }
}

session::status session::flush_pending() {
  if (pending_.empty()) {
    return status::ok;
  }
  std::string data;
  data.swap(pending_);
  return write(data);
}

session::status session::write(std::string_view plain) {
  if (!ssl_) {
    return status::error;
  }
  if (!established_) {
    pending_.append(plain.data(), plain.size());
    return status::ok;
  }
  ERR_clear_error();
  std::size_t off = 0;
  while (off < plain.size()) {
    // Memory BIOs never push back: each SSL_write takes the whole piece.
    int n = static_cast<int>(std::min<std::size_t>(plain.size() - off, 1 << 20));
    int rc = SSL_write(ssl_.get(), plain.data() + off, n);
    if (rc <= 0) {
      return fail("tls write", rc);
    }
    off += static_cast<std::size_t>(rc);
  }
  return status::ok;
}

std::string session::take_output() {
  std::string out;
  if (wbio_ == nullptr) {
    return out;
  }
  std::size_t n = BIO_ctrl_pending(wbio_);
  if (n == 0) {
    return out;
  }
  out.resize(n);
  int got = BIO_read(wbio_, out.data(), static_cast<int>(n));
  out.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
  wbio_ = trim_bio(ssl_.get(), wbio_, false);
  return out;
}

void session::shutdown() {
  if (ssl_ && established_) {
    ERR_clear_error();
    (void)SSL_shutdown(ssl_.get());
  }
}

} // namespace balctl::tls
