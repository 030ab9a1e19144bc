// SigV4 presigning (adapters/objstore/sigv4, s3_store::presign) against
// AWS's documented example and against boto3 (Debian's python3-boto3).

#include <catch2/catch.hpp>

#include <cstdio>
#include <map>
#include <string>

#include "adapters/objstore/object_store.hpp"
#include "adapters/objstore/s3_store.hpp"
#include "adapters/objstore/sigv4.hpp"
#include "tests/support/temp_dir.hpp"

using namespace balctl;
using namespace balctl::objstore;

namespace {

// 2013-05-24T00:00:00Z, the time of AWS's examples.
constexpr std::int64_t aws_example_s = 1369353600;

std::map<std::string, std::string> query_of(const std::string& url) {
  std::map<std::string, std::string> out;
  auto q = url.find('?');
  std::string rest = q == std::string::npos ? "" : url.substr(q + 1);
  std::size_t i = 0;
  while (i < rest.size()) {
    auto j = rest.find('&', i);
    if (j == std::string::npos) {
      j = rest.size();
    }
    auto part = rest.substr(i, j - i);
    auto eq = part.find('=');
    out[part.substr(0, eq)] = eq == std::string::npos ? "" : part.substr(eq + 1);
    i = j + 1;
  }
  return out;
}

s3_config make_config(const std::string& endpoint, const std::string& region,
                      const std::string& bucket, bool path_style, const std::string& prefix,
                      const std::string& access_key_id) {
  s3_config c;
  c.endpoint = endpoint;
  c.region = region;
  c.bucket = bucket;
  c.path_style = path_style;
  c.prefix = prefix;
  c.access_key_id = access_key_id;
  return c;
}

s3_config example_config() {
  return make_config("https://s3.amazonaws.com", "us-east-1", "examplebucket", false, "",
                     "AKIAIOSFODNN7EXAMPLE");
}

} // namespace

TEST_CASE("a presigned GET matches AWS's documented query-string example", "[objstore][sigv4]") {
  // S3 API reference, "Authenticating Requests: Using Query Parameters (AWS
  // Signature Version 4)", example: GET /test.txt, 86400 s.
  sigv4::presign_request req;
  req.method = "GET";
  req.scheme = "https";
  req.host = "examplebucket.s3.amazonaws.com";
  req.path = "/test.txt";
  req.region = "us-east-1";
  req.expires_s = 86400;
  req.now_s = aws_example_s;
  sigv4::credentials creds{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
  CHECK(sigv4::presign_url(req, creds) ==
        "https://examplebucket.s3.amazonaws.com/test.txt"
        "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");

  SECTION("and so does s3_store, virtual-hosted, from its config") {
    s3_store store(example_config(), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    auto url = store.presign("GET", "test.txt", 86400, aws_example_s * 1000 + 999);
    CHECK(url.rfind("https://examplebucket.s3.amazonaws.com/test.txt?", 0) == 0);
    CHECK(query_of(url)["X-Amz-Signature"] ==
          "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  }
}

TEST_CASE("keys are URI-encoded as RFC 3986 with '/' kept in the path", "[objstore][sigv4]") {
  CHECK(sigv4::uri_encode("a/b c~d_e.f-g", true) == "a/b%20c~d_e.f-g");
  CHECK(sigv4::uri_encode("a/b", false) == "a%2Fb");
  CHECK(sigv4::uri_encode("x+y=z&\xc3\xa9", true) == "x%2By%3Dz%26%C3%A9");
  CHECK(sigv4::amz_date(aws_example_s) == "20130524T000000Z");
}

TEST_CASE("s3_store refuses bad methods, keys and lifetimes", "[objstore][sigv4]") {
  s3_store store(example_config(), "secret");
  CHECK_THROWS_AS(store.presign("POST", "a/b", 60, 0), store_error);
  CHECK_THROWS_AS(store.presign("GET", "../etc/passwd", 60, 0), store_error);
  CHECK_THROWS_AS(store.presign("GET", "a/b", 0, 0), store_error);
  CHECK_THROWS_AS(store.presign("GET", "a/b", max_url_ttl_s + 1, 0), store_error);
  CHECK_NOTHROW(store.presign("GET", "a/b", max_url_ttl_s, 0));
  CHECK(store.describe().find("secret") == std::string::npos);
}

TEST_CASE("object keys: safe segments only", "[objstore][keys]") {
  auto [key, ok] = GENERATE(table<std::string, bool>({
    {"web/r-17/0", true},
    {"pool.a/run_1/12", true},
    {"a", true},
    {"", false},
    {"/abs/path", false},
    {"a//b", false},
    {"a/b/", false},
    {"a/../b", false},
    {"..", false},
    {"a/./b", false},
    {"a/.secret", false},
    {".tmp-x", false},
    {"a/b c", false},
    {"a/%2e%2e/b", false},
    {"a\\b", false},
    {std::string(129, 'x'), false},
    {std::string(128, 'x'), true},
  }));
  CAPTURE(key);
  CHECK(valid_key(key) == ok);
}

TEST_CASE("boto3's presigned PUT to a path-style endpoint is ours", "[objstore][sigv4][boto3]") {
  // Debian's python3-boto3 (deploy/install-deps.sh), not a pyenv python.
  balctl::test::temp_dir dir("balctl-boto3");
  std::string script = dir.file("presign.py");
  {
    std::FILE* f = std::fopen(script.c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs(
      "import boto3\n"
      "from botocore.config import Config\n"
      "c = boto3.session.Session().client('s3', endpoint_url='http://127.0.0.1:9000',\n"
      "    region_name='eu-central-1', aws_access_key_id='AKIDBOTO',\n"
      "    aws_secret_access_key='boto/secret+key', aws_session_token='tok/en+1=',\n"
      "    config=Config(signature_version='s3v4', s3={'addressing_style': 'path'}))\n"
      "print(c.generate_presigned_url('put_object', Params={'Bucket': 'chunks',\n"
      "    'Key': 'balctl/web/r-17/3'}, ExpiresIn=900))\n",
      f);
    std::fclose(f);
  }
  std::string cmd = "env -i HOME=" + dir.path().string() + " /usr/bin/python3 " + script + " 2>&1";
  std::string boto_url;
  {
    std::FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[4096];
    while (std::fgets(buf, sizeof buf, p) != nullptr) {
      boto_url += buf;
    }
    int rc = ::pclose(p);
    INFO("boto3 output: " << boto_url << " (run deploy/install-deps.sh for python3-boto3)");
    REQUIRE(rc == 0);
  }
  while (!boto_url.empty() && (boto_url.back() == '\n' || boto_url.back() == '\r')) {
    boto_url.pop_back();
  }
  auto boto = query_of(boto_url);
  REQUIRE(boto.count("X-Amz-Date") == 1);
  // boto3 signs "now": sign at the same second.
  std::tm tm{};
  REQUIRE(::strptime(boto["X-Amz-Date"].c_str(), "%Y%m%dT%H%M%SZ", &tm) != nullptr);
  std::int64_t at_s = ::timegm(&tm);

  auto c = make_config("http://127.0.0.1:9000", "eu-central-1", "chunks", true, "balctl/",
                       "AKIDBOTO");
  s3_store store(c, "boto/secret+key", "tok/en+1=");
  auto ours_url = store.presign("PUT", "web/r-17/3", 900, at_s * 1000);
  auto ours = query_of(ours_url);
  CAPTURE(boto_url, ours_url);
  CHECK(ours_url.substr(0, ours_url.find('?')) == boto_url.substr(0, boto_url.find('?')));
  CHECK(ours == boto);
  CHECK(ours["X-Amz-Signature"] == boto["X-Amz-Signature"]);
}
