// tls::session without sockets: a client and a server session pass their
// bytes to each other in memory.

#include "transport/tls_session.hpp"

#include <catch2/catch.hpp>

#include <string>

#include "tests/e2e/process.hpp" // temp_dir
#include "tests/support/test_certs.hpp"

using balctl::tls::context;
using balctl::tls::session;
using status = balctl::tls::session::status;

namespace {

struct pumped {
  status client = status::ok;
  status server = status::ok;
  std::string at_client; // plaintext the client received
  std::string at_server; // plaintext the server received
};

// Moves each side's output to the other until both are quiet. A side that
// failed or was closed is fed no more. Bounded: a handshake is a handful of
// rounds.
void pump(session& c, session& s, pumped& r) {
  for (int round = 0; round < 32; ++round) {
    std::string to_server = c.take_output();
    std::string to_client = s.take_output();
    if (to_server.empty() && to_client.empty()) {
      return;
    }
    if (!to_server.empty() && r.server == status::ok) {
      r.server = s.feed(to_server.data(), to_server.size(), r.at_server);
    }
    if (!to_client.empty() && r.client == status::ok) {
      r.client = c.feed(to_client.data(), to_client.size(), r.at_client);
    }
  }
  FAIL("the sessions did not go quiet in 32 rounds");
}

// A CA, a server certificate from it and a self-signed one, per test.
struct pki_fixture {
  balctl::test::temp_dir dir;
  balctl::test::test_pki pki = balctl::test::make_test_pki(dir.file(""));
  context server_ctx;
  context client_ctx;

  void load(const std::string& cert, const std::string& key, const std::string& ca) {
    REQUIRE(pki.error.empty());
    REQUIRE(server_ctx.load_server(cert, key).empty());
    REQUIRE(client_ctx.load_client(ca).empty());
  }
};

} // namespace

TEST_CASE("a client and a server session handshake and carry data both ways", "[tls][unit]") {
  pki_fixture f;
  f.load(f.pki.server_cert, f.pki.server_key, f.pki.ca_cert);
  session server(f.server_ctx);
  session client(f.client_ctx, "localhost");
  REQUIRE(server.valid());
  REQUIRE(client.valid());
  CHECK_FALSE(client.established());
  REQUIRE(client.start() == status::ok);
  pumped r;
  pump(client, server, r);
  REQUIRE(r.client == status::ok);
  REQUIRE(r.server == status::ok);
  CHECK(client.established());
  CHECK(server.established());

  REQUIRE(client.write("heartbeat") == status::ok);
  pump(client, server, r);
  CHECK(r.at_server == "heartbeat");
  REQUIRE(server.write("ack") == status::ok);
  REQUIRE(server.write(std::string(40000, 'x')) == status::ok); // several records
  pump(client, server, r);
  CHECK(r.at_client == "ack" + std::string(40000, 'x'));
  CHECK(r.client == status::ok);
  CHECK(r.server == status::ok);
  CHECK(client.error().empty());
  CHECK(server.error().empty());
}

TEST_CASE("data written before the handshake completes arrives after it", "[tls][unit]") {
  pki_fixture f;
  f.load(f.pki.server_cert, f.pki.server_key, f.pki.ca_cert);
  session server(f.server_ctx);
  session client(f.client_ctx, "localhost");
  REQUIRE(client.write("early from the client") == status::ok);
  REQUIRE(server.write("early from the server") == status::ok);
  // Nothing is sent in the clear before the handshake: the client's first
  // output is its ClientHello, a TLS handshake record (type 22).
  REQUIRE(client.start() == status::ok);
  std::string hello = client.take_output();
  REQUIRE(!hello.empty());
  CHECK(static_cast<unsigned char>(hello[0]) == 22);
  CHECK(hello.find("early from the client") == std::string::npos);
  pumped r;
  r.server = server.feed(hello.data(), hello.size(), r.at_server);
  pump(client, server, r);
  CHECK(client.established());
  CHECK(server.established());
  CHECK(r.at_server == "early from the client");
  CHECK(r.at_client == "early from the server");
}

TEST_CASE("a client rejects a self-signed server certificate it does not trust", "[tls][unit]") {
  pki_fixture f;
  std::string trust = GENERATE(std::string("ca"), std::string("system"));
  CAPTURE(trust);
  // Verification is on by default: with the test CA or the system store,
  // nothing vouches for the self-signed certificate.
  f.load(f.pki.self_signed_cert, f.pki.self_signed_key, trust == "ca" ? f.pki.ca_cert : "");
  session server(f.server_ctx);
  session client(f.client_ctx, "localhost");
  REQUIRE(client.start() == status::ok);
  pumped r;
  pump(client, server, r);
  CHECK(r.client == status::error);
  CHECK_FALSE(client.established());
  CHECK_THAT(client.error(), Catch::Contains("certificate verify failed"));
  CHECK_THAT(client.error(), Catch::Contains("self-signed certificate"));
  // The client's alert ends the handshake on the server too.
  CHECK(r.server == status::error);
  CHECK_FALSE(server.error().empty());
}

TEST_CASE("a client trusting the certificate or its CA completes the handshake", "[tls][unit]") {
  pki_fixture f;
  REQUIRE(f.pki.error.empty());
  SECTION("CA-signed certificate, CA file") {
    f.load(f.pki.server_cert, f.pki.server_key, f.pki.ca_cert);
  }
  SECTION("self-signed certificate, the certificate itself as the CA file") {
    f.load(f.pki.self_signed_cert, f.pki.self_signed_key, f.pki.self_signed_cert);
  }
  session server(f.server_ctx);
  session client(f.client_ctx, "localhost");
  REQUIRE(client.start() == status::ok);
  pumped r;
  pump(client, server, r);
  CHECK(r.client == status::ok);
  CHECK(r.server == status::ok);
  CHECK(client.established());
  CHECK(client.error().empty());
}

TEST_CASE("a server name the certificate does not carry fails as a hostname mismatch",
          "[tls][unit]") {
  pki_fixture f;
  f.load(f.pki.server_cert, f.pki.server_key, f.pki.ca_cert);
  session server(f.server_ctx);
  session client(f.client_ctx, "engine.example.com");
  REQUIRE(client.start() == status::ok);
  pumped r;
  pump(client, server, r);
  CHECK(r.client == status::error);
  CHECK(client.error() == "certificate verify failed: hostname mismatch");
}

TEST_CASE("an IP literal server name is matched against the certificate's IP SANs",
          "[tls][unit]") {
  pki_fixture f;
  f.load(f.pki.server_cert, f.pki.server_key, f.pki.ca_cert);
  auto row = GENERATE(table<std::string, bool>({
    {"127.0.0.1", true},
    {"::1", true},
    {"127.0.0.2", false},
    {"2001:db8::1", false},
  }));
  const std::string& name = std::get<0>(row);
  bool matches = std::get<1>(row);
  CAPTURE(name);
  session server(f.server_ctx);
  session client(f.client_ctx, name);
  REQUIRE(client.valid());
  REQUIRE(client.start() == status::ok);
  pumped r;
  pump(client, server, r);
  if (matches) {
    CHECK(r.client == status::ok);
    CHECK(client.established());
  } else {
    CHECK(r.client == status::error);
    CHECK(client.error() == "certificate verify failed: IP address mismatch");
  }
}

TEST_CASE("close_notify from the peer gives status closed", "[tls][unit]") {
  pki_fixture f;
  f.load(f.pki.server_cert, f.pki.server_key, f.pki.ca_cert);
  session server(f.server_ctx);
  session client(f.client_ctx, "localhost");
  REQUIRE(client.start() == status::ok);
  pumped r;
  pump(client, server, r);
  REQUIRE(client.established());
  SECTION("client closes") {
    REQUIRE(client.write("last words") == status::ok);
    client.shutdown();
    pump(client, server, r);
    CHECK(r.at_server == "last words");
    CHECK(r.server == status::closed);
  }
  SECTION("server closes") {
    server.shutdown();
    pump(client, server, r);
    CHECK(r.client == status::closed);
  }
}

TEST_CASE("a server session fed bytes that are not TLS fails the handshake", "[tls][unit]") {
  pki_fixture f;
  f.load(f.pki.server_cert, f.pki.server_key, f.pki.ca_cert);
  session server(f.server_ctx);
  std::string plain;
  const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  CHECK(server.feed(http.data(), http.size(), plain) == status::error);
  CHECK(plain.empty());
  CHECK_FALSE(server.established());
  CHECK_THAT(server.error(), Catch::StartsWith("tls handshake: "));
}

TEST_CASE("certificate, key and CA files that cannot be loaded are named in the error",
          "[tls][unit]") {
  pki_fixture f;
  REQUIRE(f.pki.error.empty());
  const std::string missing = f.dir.file("missing.pem");
  context ctx;
  SECTION("missing certificate") {
    CHECK_THAT(ctx.load_server(missing, f.pki.server_key),
               Catch::StartsWith("tls: certificate " + missing + ": "));
  }
  SECTION("missing key") {
    CHECK_THAT(ctx.load_server(f.pki.server_cert, missing),
               Catch::StartsWith("tls: private key " + missing + ": "));
  }
  SECTION("a certificate given as the key") {
    CHECK_THAT(ctx.load_server(f.pki.server_cert, f.pki.server_cert),
               Catch::StartsWith("tls: private key " + f.pki.server_cert + ": "));
  }
  SECTION("a key that does not belong to the certificate") {
    auto err = ctx.load_server(f.pki.server_cert, f.pki.self_signed_key);
    CHECK_THAT(err, Catch::StartsWith("tls: private key " + f.pki.self_signed_key + ": "));
    CHECK_THAT(err, Catch::Contains("mismatch"));
  }
  SECTION("missing CA file") {
    CHECK_THAT(ctx.load_client(missing), Catch::StartsWith("tls: CA file " + missing + ": "));
  }
  SECTION("a client certificate without its key, or a key without its certificate") {
    CHECK(ctx.load_client(f.pki.ca_cert, f.pki.client_cert, "") ==
          "tls: certificate " + f.pki.client_cert + " given without its private key");
    CHECK(ctx.load_client(f.pki.ca_cert, "", f.pki.client_key) ==
          "tls: private key " + f.pki.client_key + " given without its certificate");
  }
  SECTION("a missing client certificate") {
    CHECK_THAT(ctx.load_client(f.pki.ca_cert, missing, f.pki.client_key),
               Catch::StartsWith("tls: certificate " + missing + ": "));
  }
  SECTION("a client key that does not belong to the client certificate") {
    auto err = ctx.load_client(f.pki.ca_cert, f.pki.client_cert, f.pki.server_key);
    CHECK_THAT(err, Catch::StartsWith("tls: private key " + f.pki.server_key));
    CHECK_THAT(err, Catch::Contains("mismatch"));
  }
  SECTION("a client certificate and its key") {
    CHECK(ctx.load_client(f.pki.ca_cert, f.pki.client_cert, f.pki.client_key).empty());
  }
}

TEST_CASE("a session on a context that failed to load is not valid", "[tls][unit]") {
  context empty;
  session s(empty);
  CHECK_FALSE(s.valid());
  CHECK(s.error() == "tls: no context");
  std::string plain;
  CHECK(s.feed("x", 1, plain) == status::error);
  CHECK(s.write("x") == status::error);
  CHECK(s.take_output().empty());
}
