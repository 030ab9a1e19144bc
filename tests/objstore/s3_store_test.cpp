// s3_store's presigned URLs used as an agent uses them (libcurl PUT, GET,
// DELETE) against the S3 stand-in (tests/standins/s3_standin), which checks
// SigV4 with its own canonical request. Loopback only; time is injected.

#include <catch2/catch.hpp>

#include <atomic>
#include <fstream>

#include "adapters/objstore/object_store.hpp"
#include "adapters/objstore/s3_store.hpp"
#include "config/config.hpp"
#include "tests/standins/s3_standin.hpp"
#include "tests/support/curl_request.hpp"
#include "tests/support/test_bytes.hpp"
#include "tests/support/temp_dir.hpp"

using namespace balctl;
using namespace balctl::objstore;
using balctl::test::curl_request;
using balctl::test::pattern_bytes;
using balctl::test::wall_ms;

namespace {



struct s3_fixture {
  std::atomic<std::int64_t> now_ms{wall_ms()};
  balctl::test::s3_standin server;
  s3_config cfg;

  explicit s3_fixture(std::string token = "")
    : server([&] {
        balctl::test::s3_standin_options o;
        o.region = "eu-west-3";
        o.buckets = {"chunks"};
        o.access_key_id = "AKIDTEST";
        o.secret_access_key = "test/secret+key";
        o.session_token = token;
        o.now_ms = [this] { return now_ms.load(); };
        return o;
      }()) {
    REQUIRE(server.start().empty());
    cfg.endpoint = server.endpoint();
    cfg.region = "eu-west-3";
    cfg.bucket = "chunks";
    cfg.path_style = true;
    cfg.prefix = "balctl/";
    cfg.access_key_id = "AKIDTEST";
  }
};

} // namespace

TEST_CASE("presigned PUT, GET and DELETE work against an S3-compatible server",
          "[objstore][s3]") {
  s3_fixture f;
  s3_store store(f.cfg, "test/secret+key");
  const std::string key = "web/r-17/0";
  const std::string chunk = pattern_bytes(3 * 1024 * 1024 + 17, 1);

  auto put = curl_request("PUT", store.presign("PUT", key, 900, f.now_ms), &chunk);
  INFO(put.body << put.error);
  REQUIRE(put.status == 200);
  CHECK(f.server.object("chunks", "balctl/" + key) == chunk);

  auto get = curl_request("GET", store.presign("GET", key, 900, f.now_ms));
  REQUIRE(get.status == 200);
  CHECK(get.body == chunk);

  auto head = curl_request("HEAD", store.presign("HEAD", key, 900, f.now_ms));
  CHECK(head.status == 200);

  auto del = curl_request("DELETE", store.presign("DELETE", key, 900, f.now_ms));
  CHECK(del.status == 204);
  CHECK(f.server.object_count() == 0);
  auto gone = curl_request("GET", store.presign("GET", key, 900, f.now_ms));
  CHECK(gone.status == 404);
  CHECK(gone.body.find("<Code>NoSuchKey</Code>") != std::string::npos);

  CHECK(f.server.requests("PUT") == 1);
  CHECK(f.server.requests("GET") == 2);
  CHECK(f.server.requests("DELETE") == 1);
}

TEST_CASE("a tampered or expired S3 URL is refused", "[objstore][s3]") {
  s3_fixture f;
  s3_store store(f.cfg, "test/secret+key");
  const std::string chunk = "chunk bytes";
  auto url = store.presign("PUT", "web/r-1/0", 60, f.now_ms);

  SECTION("another key under the same signature") {
    auto pos = url.find("/r-1/0");
    auto forged = url.substr(0, pos) + "/r-1/1" + url.substr(pos + 6);
    auto r = curl_request("PUT", forged, &chunk);
    CHECK(r.status == 403);
    CHECK(r.body.find("<Code>SignatureDoesNotMatch</Code>") != std::string::npos);
  }
  SECTION("a GET URL used for a PUT") {
    auto r = curl_request("PUT", store.presign("GET", "web/r-1/0", 60, f.now_ms), &chunk);
    CHECK(r.status == 403);
    CHECK(f.server.errors("SignatureDoesNotMatch") == 1);
  }
  SECTION("a longer lifetime than was signed") {
    auto pos = url.find("X-Amz-Expires=60");
    auto forged = url.substr(0, pos) + "X-Amz-Expires=6000" + url.substr(pos + 16);
    CHECK(curl_request("PUT", forged, &chunk).status == 403);
  }
  SECTION("the wrong secret") {
    s3_store wrong(f.cfg, "not-the-secret");
    CHECK(curl_request("PUT", wrong.presign("PUT", "web/r-1/0", 60, f.now_ms), &chunk).status ==
          403);
  }
  SECTION("past its lifetime") {
    f.now_ms += 61'000;
    auto r = curl_request("PUT", url, &chunk);
    CHECK(r.status == 403);
    CHECK(r.body.find("<Code>AccessDenied</Code>") != std::string::npos);
    CHECK(r.body.find("Request has expired") != std::string::npos);
  }
  SECTION("still inside its lifetime") {
    f.now_ms += 59'000;
    CHECK(curl_request("PUT", url, &chunk).status == 200);
  }
  CHECK(f.server.requests("PUT") == 1);
}

TEST_CASE("temporary credentials carry their session token", "[objstore][s3]") {
  s3_fixture f("session/token+value=");
  const std::string chunk = "x";
  s3_store with(f.cfg, "test/secret+key", "session/token+value=");
  CHECK(curl_request("PUT", with.presign("PUT", "a/b/0", 60, f.now_ms), &chunk).status == 200);
  s3_store without(f.cfg, "test/secret+key");
  auto r = curl_request("PUT", without.presign("PUT", "a/b/0", 60, f.now_ms), &chunk);
  CHECK(r.status == 403);
  CHECK(r.body.find("InvalidToken") != std::string::npos);
}

TEST_CASE("s3_store::remove deletes with a presigned DELETE and reports refusals",
          "[objstore][s3]") {
  s3_fixture f;
  f.now_ms = wall_ms(); // remove() signs with the wall clock
  s3_store store(f.cfg, "test/secret+key");
  const std::string chunk = "bytes";
  REQUIRE(curl_request("PUT", store.presign("PUT", "p/r/0", 60, f.now_ms), &chunk).status == 200);
  store.remove("p/r/0");
  CHECK(f.server.object_count() == 0);
  CHECK_NOTHROW(store.remove("p/r/0")); // absent: S3 answers 204 anyway
  CHECK_NOTHROW(store.remove_prefix("p/r")); // documented no-op

  s3_store wrong(f.cfg, "not-the-secret");
  try {
    wrong.remove("p/r/1");
    FAIL("a refused DELETE must throw");
  } catch (const store_error& e) {
    CHECK(std::string(e.what()).find("HTTP 403 SignatureDoesNotMatch") != std::string::npos);
  }
}

TEST_CASE("make_object_store builds the S3 store from protection.s3", "[objstore][s3]") {
  s3_fixture f;
  balctl::test::temp_dir dir("balctl-s3cfg");
  std::ofstream(dir.file("secret")) << "test/secret+key\n";
  auto text = std::string(R"({"protection":{"object_store":"s3","s3":{"endpoint":")") +
              f.cfg.endpoint + R"(","region":"eu-west-3","bucket":"chunks",)" +
              R"("prefix":"balctl/","access_key_id":"AKIDTEST","secret_access_key_file":")" +
              dir.file("secret") + R"("}}})";
  auto res = parse_config(text);
  REQUIRE(res.errors.empty());
  auto store = make_object_store(res.config);
  CHECK(store->describe().find("bucket chunks") != std::string::npos);
  CHECK(store->describe().find("test/secret") == std::string::npos);
  const std::string chunk = "via config";
  CHECK(curl_request("PUT", store->presign("PUT", "w/r/0", 60, f.now_ms), &chunk).status == 200);
  CHECK(f.server.object("chunks", "balctl/w/r/0") == chunk);
}
