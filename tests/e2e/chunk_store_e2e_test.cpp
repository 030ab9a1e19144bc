// The embedded chunk store served by a real balctld at /v1/chunks/ (no
// bearer token: the URL's signature), driven with libcurl as an agent
// drives it. URLs are signed in the test by a chunk_store opened on the
// engine's chunk directory: the secret lives there, which is also what
// lets URLs outlive a restart of the engine.

#include <catch2/catch.hpp>


#include "adapters/objstore/chunk_store.hpp"
#include "tests/e2e/balctld_node.hpp"
#include "tests/support/curl_request.hpp"
#include "tests/support/test_bytes.hpp"

using namespace balctl;
using namespace balctl::test;


TEST_CASE("balctld stores, serves and deletes chunks at signed /v1/chunks/ URLs",
          "[e2e][objstore]") {
  node n;
  n.config_extra["protection"] = {{"chunk_dir", n.dir.file("chunks")}};
  n.start();
  CHECK(n.log().find("event=object_store_ready store=\"embedded " + n.dir.file("chunks")) !=
        std::string::npos);
  auto base = [&] { return "http://127.0.0.1:" + std::to_string(n.admin_port); };
  objstore::chunk_store signer(n.dir.file("chunks"), base(), 8 * 1024 * 1024);
  auto url = [&](const char* method, const std::string& key, int ttl_s = 600) {
    return signer.presign(method, key, ttl_s, wall_ms());
  };

  const std::string chunk = pattern_bytes(6 * 1024 * 1024 + 321, 5); // over the 1 MiB API limit
  auto put = curl_request("PUT", url("PUT", "example/r-1/0"), &chunk);
  INFO(put.body << put.error << "\n" << n.log());
  REQUIRE(put.status == 200);
  auto got = curl_request("GET", url("GET", "example/r-1/0"));
  REQUIRE(got.status == 200);
  CHECK(got.body == chunk);

  SECTION("other routes keep their 1 MiB body limit") {
    auto r = n.call("POST", "/v1/pools", std::string(2 * 1024 * 1024, ' '));
    CHECK(r.status == 413);
  }
  SECTION("a chunk above protection.chunk_size_bytes is refused") {
    const std::string big = pattern_bytes(8 * 1024 * 1024 + 1, 6);
    CHECK(curl_request("PUT", url("PUT", "example/r-1/1"), &big).status == 413);
  }
  SECTION("a bad signature and an expired URL are 403, a traversal 400") {
    auto get_url = url("GET", "example/r-1/0");
    auto forged = get_url.substr(0, get_url.size() - 1) + (get_url.back() == '0' ? "1" : "0");
    auto bad = curl_request("GET", forged);
    CHECK(bad.status == 403);
    CHECK(bad.body.find("chunk_signature_invalid") != std::string::npos);
    auto old = signer.presign("GET", "example/r-1/0", 60, wall_ms() - 3'600'000);
    auto expired = curl_request("GET", old);
    CHECK(expired.status == 403);
    CHECK(expired.body.find("chunk_url_expired") != std::string::npos);
    auto trav = curl_request("GET", base() + "/v1/chunks/../../store.db?expires=9999999999&sig=" +
                                      std::string(64, 'a'));
    CHECK(trav.status == 400);
    CHECK(trav.body.find("invalid_key") != std::string::npos);
  }
  SECTION("the bytes and their URLs survive a restart") {
    auto get_url = url("GET", "example/r-1/0");
    auto old_base = base();
    n.stop();
    n.start();
    get_url.replace(0, old_base.size(), base()); // the admin port is chosen anew
    auto again = curl_request("GET", get_url);
    REQUIRE(again.status == 200);
    CHECK(again.body == chunk);
  }
  SECTION("DELETE removes the chunk, and again is still 204") {
    CHECK(curl_request("DELETE", url("DELETE", "example/r-1/0")).status == 204);
    CHECK(curl_request("DELETE", url("DELETE", "example/r-1/0")).status == 204);
    CHECK(curl_request("GET", url("GET", "example/r-1/0")).status == 404);
  }
  n.stop();
}
