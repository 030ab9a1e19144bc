#pragma once

// Certificates for tests, made at run time with OpenSSL's API (no openssl
// CLI, no files in the repository): a small PKI — a CA and a server
// certificate it signed, a client certificate it signed (for servers that
// ask for one, as Redis's tls-auth-clients does) — and a self-signed
// certificate that no CA vouches for. P-256 keys, valid from an hour ago
// for a day.
//
//   auto pki = balctl::test::make_test_pki(dir.file(""));   // writes into dir
//   REQUIRE(pki.error.empty());
//   server: pki.server_cert, pki.server_key   client trusts: pki.ca_cert
//   client presents: pki.client_cert, pki.client_key
//
// For mutual TLS (the cluster link), make_node_cert signs certificates good
// for both ends of a connection (serverAuth and clientAuth); a second
// make_test_pki with a prefix is a CA that the first one's holders do not
// trust.

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>
#include <string>

namespace balctl::test {

/// Paths of what make_test_pki wrote.
struct test_pki {
  std::string ca_cert;          // ca.pem: CN=balctl test CA, CA:TRUE
  std::string ca_key;           // ca.key (to sign more certificates)
  std::string server_cert;      // server.pem: signed by the CA, CN=localhost,
                                // SAN DNS:localhost, IP:127.0.0.1, IP:::1
  std::string server_key;       // server.key
  std::string client_cert;      // client.pem: signed by the CA, CN=balctl test client,
                                // extended key usage clientAuth
  std::string client_key;       // client.key
  std::string self_signed_cert; // self_signed.pem: the same names, self-signed
  std::string self_signed_key;  // self_signed.key
  std::string error;            // "" when every file was written
};

/// The SAN every test server certificate carries.
inline constexpr const char* test_server_san = "DNS:localhost,IP:127.0.0.1,IP:::1";

namespace detail {

struct pkey_free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct x509_free {
  void operator()(X509* p) const { X509_free(p); }
};
struct ext_free {
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
struct file_close {
  void operator()(FILE* f) const { std::fclose(f); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;

inline bool add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, ext_free> ext(
    X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

inline bool set_cn(X509_NAME* name, const char* cn) {
  return X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                    reinterpret_cast<const unsigned char*>(cn), -1, -1,
                                    0) == 1;
}

/// A certificate for key, named cn, issued by issuer (signed with
/// issuer_key); issuer == nullptr makes it self-signed. san may be empty.
/// A leaf is for a server (extended key usage serverAuth) unless eku says
/// otherwise ("clientAuth").
inline x509_ptr make_cert(EVP_PKEY* key, const char* cn, bool ca, const std::string& san,
                          X509* issuer, EVP_PKEY* issuer_key,
                          const char* eku = "serverAuth") {
  x509_ptr cert(X509_new());
  if (!cert) {
    return nullptr;
  }
  // A random serial: two certificates from one issuer must not share one.
  std::unique_ptr<BIGNUM, decltype(&BN_free)> serial(BN_new(), BN_free);
  if (!serial || BN_rand(serial.get(), 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return nullptr;
  }
  bool ok = X509_set_version(cert.get(), 2) == 1 &&
            X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) != nullptr &&
            X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600) != nullptr &&
            X509_set_pubkey(cert.get(), key) == 1 &&
            set_cn(X509_get_subject_name(cert.get()), cn);
  if (!ok) {
    return nullptr;
  }
  X509* iss = issuer != nullptr ? issuer : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(iss)) != 1) {
    return nullptr;
  }
  // What `openssl req -x509` and a small CA would write.
  ok = add_ext(cert.get(), iss, NID_subject_key_identifier, "hash") &&
       add_ext(cert.get(), iss, NID_authority_key_identifier, "keyid:always");
  if (ca) {
    ok = ok && add_ext(cert.get(), iss, NID_basic_constraints, "critical,CA:TRUE") &&
         add_ext(cert.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    ok = ok && add_ext(cert.get(), iss, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(cert.get(), iss, NID_key_usage, "critical,digitalSignature") &&
         add_ext(cert.get(), iss, NID_ext_key_usage, eku);
  }
  if (ok && !san.empty()) {
    ok = add_ext(cert.get(), iss, NID_subject_alt_name, san.c_str());
  }
  EVP_PKEY* signer = issuer_key != nullptr ? issuer_key : key;
  if (!ok || X509_sign(cert.get(), signer, EVP_sha256()) <= 0) {
    return nullptr;
  }
  return cert;
}

inline bool write_pem(const std::string& cert_path, X509* cert, const std::string& key_path,
                      EVP_PKEY* key) {
  std::unique_ptr<FILE, file_close> cf(std::fopen(cert_path.c_str(), "w"));
  std::unique_ptr<FILE, file_close> kf(std::fopen(key_path.c_str(), "w"));
  if (!cf || !kf) {
    return false;
  }
  return PEM_write_X509(cf.get(), cert) == 1 &&
         PEM_write_PrivateKey(kf.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
}

} // namespace detail

/// A self-signed server certificate (CN=localhost, the given SAN) and its
/// key, written as PEM. False when anything failed.
inline bool make_self_signed(const std::string& cert_path, const std::string& key_path,
                             const std::string& san = test_server_san) {
  detail::pkey_ptr key(EVP_EC_gen("P-256"));
  if (!key) {
    return false;
  }
  auto cert = detail::make_cert(key.get(), "localhost", false, san, nullptr, nullptr);
  return cert && detail::write_pem(cert_path, cert.get(), key_path, key.get());
}

/// Writes ca.pem/ca.key, server.pem/server.key, client.pem/client.key and
/// self_signed.pem/.key into dir (which must exist). Check .error. A prefix
/// goes before every file name and into the CA's name ("balctl test CA
/// other-"): another CA, whose certificates the first one's holders do not
/// trust.
inline test_pki make_test_pki(const std::string& dir, const std::string& prefix = "") {
  std::string base = dir;
  if (!base.empty() && base.back() != '/') {
    base += '/';
  }
  base += prefix;
  test_pki out;
  out.ca_cert = base + "ca.pem";
  out.ca_key = base + "ca.key";
  out.server_cert = base + "server.pem";
  out.server_key = base + "server.key";
  out.client_cert = base + "client.pem";
  out.client_key = base + "client.key";
  out.self_signed_cert = base + "self_signed.pem";
  out.self_signed_key = base + "self_signed.key";

  detail::pkey_ptr ca_key(EVP_EC_gen("P-256"));
  detail::pkey_ptr server_key(EVP_EC_gen("P-256"));
  detail::pkey_ptr client_key(EVP_EC_gen("P-256"));
  if (!ca_key || !server_key || !client_key) {
    out.error = "test pki: EVP_EC_gen(P-256) failed";
    return out;
  }
  auto ca_name = "balctl test CA" + (prefix.empty() ? "" : " " + prefix);
  auto ca = detail::make_cert(ca_key.get(), ca_name.c_str(), true, "", nullptr, nullptr);
  if (!ca) {
    out.error = "test pki: could not make the CA certificate";
    return out;
  }
  auto server = detail::make_cert(server_key.get(), "localhost", false, test_server_san,
                                  ca.get(), ca_key.get());
  if (!server) {
    out.error = "test pki: could not make the server certificate";
    return out;
  }
  auto client = detail::make_cert(client_key.get(), "balctl test client", false, "", ca.get(),
                                  ca_key.get(), "clientAuth");
  if (!client) {
    out.error = "test pki: could not make the client certificate";
    return out;
  }
  if (!detail::write_pem(out.ca_cert, ca.get(), out.ca_key, ca_key.get()) ||
      !detail::write_pem(out.server_cert, server.get(), out.server_key, server_key.get()) ||
      !detail::write_pem(out.client_cert, client.get(), out.client_key, client_key.get())) {
    out.error = "test pki: could not write into " + dir;
    return out;
  }
  if (!make_self_signed(out.self_signed_cert, out.self_signed_key)) {
    out.error = "test pki: could not make or write " + out.self_signed_cert;
  }
  return out;
}

/// A certificate for both ends of a mutual TLS connection (extendedKeyUsage
/// serverAuth and clientAuth; OpenSSL refuses a serverAuth-only certificate
/// from a client), named like the server's, signed by the CA of pki. False
/// when anything failed.
inline bool make_node_cert(const test_pki& pki, const std::string& cert_path,
                           const std::string& key_path) {
  std::unique_ptr<FILE, detail::file_close> cf(std::fopen(pki.ca_cert.c_str(), "r"));
  std::unique_ptr<FILE, detail::file_close> kf(std::fopen(pki.ca_key.c_str(), "r"));
  if (!cf || !kf) {
    return false;
  }
  detail::x509_ptr ca(PEM_read_X509(cf.get(), nullptr, nullptr, nullptr));
  detail::pkey_ptr ca_key(PEM_read_PrivateKey(kf.get(), nullptr, nullptr, nullptr));
  detail::pkey_ptr key(EVP_EC_gen("P-256"));
  if (!ca || !ca_key || !key) {
    return false;
  }
  auto cert = detail::make_cert(key.get(), "localhost", false, test_server_san, ca.get(),
                                ca_key.get(), "serverAuth,clientAuth");
  return cert && detail::write_pem(cert_path, cert.get(), key_path, key.get());
}

} // namespace balctl::test
