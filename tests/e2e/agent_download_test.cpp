// GET /agent/{install-agent.sh,balctl-agent} against the real balctld: the
// files come from memory (read once, again only when they change on disk),
// an empty file is an empty 200, and unauthenticated downloads of the
// binary are bounded by a global token bucket (429 with Retry-After) while
// the script is not.

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "tests/e2e/balctld_node.hpp"
#include "tests/e2e/process.hpp"

using namespace balctl;
using namespace balctl::test;

namespace {

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  REQUIRE(out.good());
}

// How often balctld's log says it read this file from disk.
std::size_t loads(node& n, const std::string& path) {
  auto log = n.log();
  auto needle = "event=agent_file_loaded path=" + path + " ";
  std::size_t count = 0;
  for (auto at = log.find(needle); at != std::string::npos;
       at = log.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

// A node serving a dist directory with a small stand-in binary: small, so
// eleven downloads take milliseconds, well inside one 2 s refill.
struct dist_node {
  node n;
  std::string dist;
  std::string script_path;
  std::string binary_path;

  dist_node() {
    dist = n.dir.file("dist");
    REQUIRE(mkdir(dist.c_str(), 0755) == 0);
    script_path = dist + "/install-agent.sh";
    binary_path = dist + "/balctl-agent";
    write_file(script_path, "#!/usr/bin/env bash\necho install v1\n");
    write_file(binary_path, std::string("\x7f" "ELF binary v1\0\xff", 16));
    n.admin_extra["agent_dist_dir"] = dist;
    n.start();
  }
};

} // namespace

TEST_CASE("the agent binary is served from memory and a replaced file is served at once",
          "[agent][e2e]") {
  dist_node d;
  auto& n = d.n;
  auto first = n.get("/agent/balctl-agent", "");
  REQUIRE(first.status == 200);
  CHECK(first.raw == std::string("\x7f" "ELF binary v1\0\xff", 16));
  for (int i = 0; i < 3; ++i) {
    CHECK(n.get("/agent/balctl-agent", "").raw == first.raw);
  }
  // Four downloads, one read from disk.
  REQUIRE(wait_until([&] { return loads(n, d.binary_path) >= 1; }, 5'000));
  CHECK(loads(n, d.binary_path) == 1);

  // A new build written over the old one: the next GET has its bytes.
  write_file(d.binary_path, "a new build of the agent, longer than the first");
  auto second = n.get("/agent/balctl-agent", "");
  CHECK(second.status == 200);
  CHECK(second.raw == "a new build of the agent, longer than the first");

  // Renamed into place (a new inode), as package tools and cp --remove do.
  write_file(d.dist + "/next", "the third build");
  REQUIRE(std::rename((d.dist + "/next").c_str(), d.binary_path.c_str()) == 0);
  auto third = n.get("/agent/balctl-agent", "");
  CHECK(third.status == 200);
  CHECK(third.raw == "the third build");
  CHECK(loads(n, d.binary_path) == 3);
}

TEST_CASE("an empty agent file is served as an empty 200, not a 404", "[agent][e2e]") {
  dist_node d;
  auto& n = d.n;
  CHECK(n.get("/agent/install-agent.sh", "").status == 200);
  write_file(d.script_path, "");
  auto r = n.get("/agent/install-agent.sh", "");
  CHECK(r.status == 200);
  CHECK(r.raw.empty());
  write_file(d.binary_path, "");
  auto b = n.get("/agent/balctl-agent", "");
  CHECK(b.status == 200);
  CHECK(b.raw.empty());
  CHECK(n.log().find("agent_file_unreadable") == std::string::npos);
}

TEST_CASE("the 11th rapid binary download is 429 with Retry-After, the script is still "
          "served",
          "[agent][e2e]") {
  dist_node d;
  auto& n = d.n;
  for (int i = 0; i < 10; ++i) {
    CAPTURE(i);
    auto r = n.get("/agent/balctl-agent", "");
    REQUIRE(r.status == 200);
  }
  auto limited = n.get("/agent/balctl-agent", "");
  CHECK(limited.status == 429);
  CHECK(limited.code() == "rate_limited");
  CHECK((limited.retry_after == "1" || limited.retry_after == "2"));
  CHECK(limited.raw.find("agent binary") != std::string::npos);
  CHECK(limited.raw.find("admin.agent_binary_url") != std::string::npos);
  for (int i = 0; i < 5; ++i) {
    auto script = n.get("/agent/install-agent.sh", "");
    CHECK(script.status == 200);
    CHECK(script.raw == "#!/usr/bin/env bash\necho install v1\n");
  }
  // After its Retry-After, the binary comes again.
  auto wait_s = limited.retry_after.empty() ? 2 : std::stoi(limited.retry_after);
  std::this_thread::sleep_for(std::chrono::seconds(wait_s));
  CHECK(n.get("/agent/balctl-agent", "").status == 200);
}
