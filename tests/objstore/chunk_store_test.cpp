// The embedded chunk store (adapters/objstore/chunk_store) behind its route
// (api/chunk_routes) on a real transport/http_server with the route's own
// body limit, driven with libcurl as an agent drives it. Loopback only;
// time comes from a manual clock, so nothing sleeps.

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "adapters/objstore/chunk_store.hpp"
#include "api/chunk_routes.hpp"
#include "config/config.hpp"
#include "engine/clock.hpp"
#include "transport/http_server.hpp"
#include "tests/support/curl_request.hpp"
#include "tests/support/test_bytes.hpp"
#include "tests/support/temp_dir.hpp"

using namespace balctl;
using namespace balctl::objstore;
using balctl::test::curl_request;
using balctl::test::pattern_bytes;
using balctl::test::wall_ms;

namespace {

constexpr std::int64_t t0_ms = 1'767'225'600'000; // 2026-01-01T00:00:00Z
constexpr std::size_t chunk_limit = 8 * 1024 * 1024;


// A chunk store served the way balctld serves it, on a port of its own.
struct served_store {
  balctl::test::temp_dir dir{"balctl-chunks"};
  manual_clock clk{t0_ms};
  std::shared_ptr<chunk_store> store;
  std::shared_ptr<api::chunk_routes> routes;
  std::unique_ptr<http::server> server;

  served_store() { open(); }
  ~served_store() { close(); }

  std::string chunk_dir() const { return dir.file("store.db.chunks"); }

  void open() {
    // The URL needs the port, the port needs the server: bind first, route
    // once the store exists (as balctld does).
    http::server_limits lim;
    lim.routes.push_back({chunk_store::route_prefix, chunk_limit, 60'000,
                          [this](const http::request& head) -> std::optional<http::response> {
                            if (!routes) {
                              return http::error_response(503, "unavailable", "", "starting");
                            }
                            return routes->admit(head);
                          }});
    server = std::make_unique<http::server>(
      "127.0.0.1:0", lim, [this](http::request&& req, http::responder respond) {
        if (!routes || !routes->handle(req, respond)) {
          respond(http::error_response(404, "not_found", "", "no route " + req.path));
        }
      });
    REQUIRE(server->start().empty());
    store = std::make_shared<chunk_store>(
      chunk_dir(), "http://127.0.0.1:" + std::to_string(server->bound_port()) + "/",
      chunk_limit);
    routes = std::make_shared<api::chunk_routes>(store, clk);
  }
  void close() {
    server->stop();
    routes.reset();
    store.reset();
  }
  std::string url(const char* method, const std::string& key, int ttl_s = 3600) {
    return store->presign(method, key, ttl_s, clk.now_ms());
  }
  std::string base() const {
    return "http://127.0.0.1:" + std::to_string(server->bound_port());
  }
};

} // namespace

TEST_CASE("a multi-MiB chunk goes in with PUT, comes back identical and goes with DELETE",
          "[objstore][chunks]") {
  served_store s;
  const std::string key = "web/r-17/0";
  const std::string chunk = pattern_bytes(chunk_limit, 7); // a whole 8 MiB chunk

  auto put = curl_request("PUT", s.url("PUT", key), &chunk);
  INFO(put.body << put.error);
  REQUIRE(put.status == 200);
  CHECK(s.store->stats().files == 1);
  CHECK(s.store->stats().bytes == chunk.size());

  auto get = curl_request("GET", s.url("GET", key));
  REQUIRE(get.status == 200);
  CHECK(get.body.size() == chunk.size());
  CHECK(get.body == chunk);
  CHECK(curl_request("HEAD", s.url("GET", key)).status == 200); // a GET URL allows HEAD

  // The same chunk again (an upload retried): replaced, counted once.
  REQUIRE(curl_request("PUT", s.url("PUT", key), &chunk).status == 200);
  CHECK(s.store->stats().files == 1);

  auto del = curl_request("DELETE", s.url("DELETE", key));
  CHECK(del.status == 204);
  CHECK(curl_request("DELETE", s.url("DELETE", key)).status == 204); // idempotent
  auto gone = curl_request("GET", s.url("GET", key));
  CHECK(gone.status == 404);
  CHECK(gone.body.find("chunk_not_found") != std::string::npos);
  CHECK(s.store->stats().files == 0);
  CHECK(s.store->stats().bytes == 0);
}

TEST_CASE("chunk URLs are refused when tampered with or expired", "[objstore][chunks]") {
  served_store s;
  const std::string chunk = pattern_bytes(4096, 1);
  auto url = s.url("PUT", "web/r-1/0", 60);

  SECTION("another key") {
    auto pos = url.find("/r-1/0");
    auto r = curl_request("PUT", url.substr(0, pos) + "/r-1/1" + url.substr(pos + 6), &chunk);
    CHECK(r.status == 403);
    CHECK(r.body.find("chunk_signature_invalid") != std::string::npos);
  }
  SECTION("a later expiry") {
    auto pos = url.find("expires=") + 8;
    auto forged = url;
    forged[pos + 9] = forged[pos + 9] == '9' ? '8' : '9';
    CHECK(curl_request("PUT", forged, &chunk).status == 403);
  }
  SECTION("a GET URL used to PUT") {
    CHECK(curl_request("PUT", s.url("GET", "web/r-1/0"), &chunk).status == 403);
  }
  SECTION("no signature at all") {
    CHECK(curl_request("PUT", s.base() + "/v1/chunks/web/r-1/0", &chunk).status == 403);
  }
  SECTION("past its expiry") {
    s.clk.advance(61'000);
    auto r = curl_request("PUT", url, &chunk);
    CHECK(r.status == 403);
    CHECK(r.body.find("chunk_url_expired") != std::string::npos);
  }
  SECTION("at the last second of its lifetime") {
    s.clk.advance(60'999);
    CHECK(curl_request("PUT", url, &chunk).status == 200);
  }
  SECTION("a store with another secret") {
    balctl::test::temp_dir other("balctl-chunks-other");
    chunk_store stranger(other.file("c"), s.base(), chunk_limit);
    CHECK(curl_request("PUT", stranger.presign("PUT", "web/r-1/0", 60, s.clk.now_ms()), &chunk)
            .status == 403);
  }
  if (s.store->stats().files == 0) {
    CHECK_FALSE(std::filesystem::exists(s.chunk_dir() + "/web/r-1/0"));
  }
}

TEST_CASE("the route refuses a URL that does not allow the request from its head alone, "
          "before any body",
          "[objstore][chunks]") {
  served_store s;
  auto head = [&](const std::string& method, const std::string& url) {
    http::request h;
    h.method = method;
    auto path = url.find("/v1/chunks/");
    auto q = url.find('?');
    h.path = url.substr(path, q == std::string::npos ? std::string::npos : q - path);
    h.query = q == std::string::npos ? "" : url.substr(q + 1);
    return h;
  };
  auto url = s.url("PUT", "web/r-1/0", 60);
  CHECK_FALSE(s.routes->admit(head("PUT", url)));
  auto forged = s.routes->admit(head("PUT", url.substr(0, url.size() - 1) +
                                              (url.back() == '0' ? "1" : "0")));
  REQUIRE(forged);
  CHECK(forged->status == 403);
  CHECK(forged->body.find("chunk_signature_invalid") != std::string::npos);
  CHECK(s.routes->admit(head("GET", url))); // a PUT URL does not allow GET
  s.clk.advance(61'000);
  auto expired = s.routes->admit(head("PUT", url));
  REQUIRE(expired);
  CHECK(expired->body.find("chunk_url_expired") != std::string::npos);
  // Not the route's: not its business.
  http::request other;
  other.method = "PUT";
  other.path = "/v1/pools";
  CHECK_FALSE(s.routes->admit(other));
}

TEST_CASE("keys that leave the chunk directory are refused", "[objstore][chunks]") {
  served_store s;
  std::ofstream(s.dir.file("outside")) << "not a chunk";
  const std::string body = "x";
  // Signed by the store's own secret, so only the key check stands in the
  // way: "..", an absolute path, the secret file, encoded dots.
  for (std::string key : {"../outside", "web/../../outside", ".secret", "web/%2e%2e/x",
                          "/etc/passwd", "web//0"}) {
    CAPTURE(key);
    auto r = curl_request("GET", s.base() + "/v1/chunks/" + key + "?expires=9999999999&sig=" +
                                   std::string(64, '0'));
    CHECK(r.status == 400);
    CHECK(r.body.find("invalid_key") != std::string::npos);
    CHECK(curl_request("PUT", s.base() + "/v1/chunks/" + key + "?expires=1&sig=0", &body)
            .status == 400);
  }
  CHECK(s.store->stats().files == 0);
}

TEST_CASE("a chunk over the size limit is refused before it is read", "[objstore][chunks]") {
  served_store s;
  const std::string big = pattern_bytes(chunk_limit + 1, 3);
  auto r = curl_request("PUT", s.url("PUT", "web/r/0"), &big);
  CHECK(r.status == 413);
  CHECK(s.store->stats().files == 0);
}

TEST_CASE("chunks and their URLs survive a restart of the store", "[objstore][chunks]") {
  served_store s;
  const std::string chunk = pattern_bytes(2 * 1024 * 1024 + 5, 9);
  REQUIRE(curl_request("PUT", s.url("PUT", "web/r-2/3"), &chunk).status == 200);
  auto get_url = s.store->presign("GET", "web/r-2/3", 3600, s.clk.now_ms());
  auto port = s.server->bound_port();

  // Restart: same directory, a new server (another port: the old URL's
  // path and query still verify, only the port moved).
  s.close();
  s.open();
  CHECK(s.store->stats().files == 1);
  CHECK(s.store->stats().bytes == chunk.size());
  auto moved = get_url;
  auto old_base = "http://127.0.0.1:" + std::to_string(port);
  moved.replace(0, old_base.size(), s.base());
  auto r = curl_request("GET", moved);
  REQUIRE(r.status == 200);
  CHECK(r.body == chunk);

  struct stat st {};
  REQUIRE(::stat(s.chunk_dir().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(::stat((s.chunk_dir() + "/.secret").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("remove and remove_prefix clear a run and keep the counts", "[objstore][chunks]") {
  served_store s;
  for (std::string key : {"web/r-1/0", "web/r-1/1", "web/r-10/0"}) {
    const std::string chunk = pattern_bytes(1000, 1);
    REQUIRE(curl_request("PUT", s.url("PUT", key), &chunk).status == 200);
  }
  s.store->remove("web/r-1/0");
  s.store->remove("web/r-1/0"); // absent: fine
  CHECK(s.store->stats().files == 2);
  s.store->remove_prefix("web/r-1"); // whole segments: r-10 stays
  CHECK(s.store->stats().files == 1);
  CHECK(s.store->stats().bytes == 1000);
  CHECK(std::filesystem::exists(s.chunk_dir() + "/web/r-10/0"));
  CHECK_FALSE(std::filesystem::exists(s.chunk_dir() + "/web/r-1"));
  CHECK_THROWS_AS(s.store->remove_prefix("../x"), store_error);
}

TEST_CASE("a stale temporary file of a crash is removed when the store opens",
          "[objstore][chunks]") {
  balctl::test::temp_dir dir("balctl-chunks-crash");
  std::string d = dir.file("c");
  { chunk_store first(d, "http://127.0.0.1:1", 1024); }
  std::filesystem::create_directories(d + "/web/r");
  std::ofstream(d + "/web/r/.tmp-deadbeef") << "half a chunk";
  std::ofstream(d + "/web/r/0") << "whole";
  chunk_store again(d, "http://127.0.0.1:1", 1024);
  CHECK_FALSE(std::filesystem::exists(d + "/web/r/.tmp-deadbeef"));
  CHECK(again.stats().files == 1);
  CHECK(again.stats().bytes == 5);
}

TEST_CASE("make_object_store puts the embedded store next to the store file",
          "[objstore][chunks]") {
  balctl::test::temp_dir dir("balctl-chunks-cfg");
  auto res = parse_config(R"({"store_path":")" + dir.file("engine.db") +
                          R"(","admin":{"listen":"127.0.0.1:7947"}})");
  REQUIRE(res.errors.empty());
  auto store = make_object_store(res.config);
  CHECK(store->describe() == "embedded " + dir.file("engine.db.chunks") +
                               " at http://127.0.0.1:7947/v1/chunks/");
  CHECK(std::filesystem::is_directory(dir.file("engine.db.chunks")));
  auto url = store->presign("PUT", "p/r/0", 3600, t0_ms);
  CHECK(url.rfind("http://127.0.0.1:7947/v1/chunks/p/r/0?expires=1767229200&sig=", 0) == 0);

  res.config.protection.chunk_dir = "/proc/no-such-dir/chunks";
  try {
    make_object_store(res.config);
    FAIL("an unusable chunk_dir must throw");
  } catch (const store_error& e) {
    CHECK(std::string(e.what()).rfind("protection.chunk_dir = \"/proc/no-such-dir/chunks\"", 0) ==
          0);
  }
}

TEST_CASE("an in-memory engine's chunks go with it", "[objstore][chunks]") {
  auto res = parse_config(R"({"store_path":":memory:","admin":{"listen":"127.0.0.1:7947"}})");
  REQUIRE(res.errors.empty());
  std::string dir;
  {
    auto store = make_object_store(res.config);
    auto* embedded = dynamic_cast<chunk_store*>(store.get());
    REQUIRE(embedded != nullptr);
    dir = embedded->dir();
    CHECK(std::filesystem::is_directory(dir));
  }
  CHECK_FALSE(std::filesystem::exists(dir));
}
