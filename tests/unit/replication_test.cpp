#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "engine/replication.hpp"

using namespace balctl;

namespace {

protected_account account(int every_s = 3600, const std::string& overlap = "skip") {
  protected_account a;
  a.id = "alice";
  a.domain = "alice.example.com";
  a.source = 1;
  a.standby = 2;
  a.replication_every_s = every_s;
  a.replication_overlap = overlap;
  return a;
}

replication_state fresh() {
  replication_state s;
  s.account = "alice";
  return s;
}

std::string sha(char c) { return std::string(64, c); }

replication::manifest three_chunks(char first = 'a') {
  replication::manifest m;
  m.chunk_size = 100;
  m.size = 250;
  m.sha256 = sha(first == 'a' ? 'f' : 'e');
  m.chunks = {{100, sha(first), false}, {100, sha('b'), false}, {50, sha('c'), false}};
  return m;
}

// Queues what the effects ask for in the book and tells the replication.
std::string take_job(job_book& book, replication& r, replication_effects& fx, std::int64_t now) {
  REQUIRE(fx.queue);
  auto id = book.queue(*fx.queue, now).id;
  r.set_job(id);
  return id;
}

const job& finish(job_book& book, const std::string& id, member_id m, job_status st,
                  std::int64_t now) {
  book.fetch(m, now);
  const job* j = nullptr;
  REQUIRE(book.report(m, id, st, st == job_status::succeeded ? 0 : 1, "", "", now, &j) ==
          job_book::report_result::accepted);
  return *j;
}

} // namespace

TEST_CASE("a run packages on the source, uploads every chunk, restores on the standby, then "
          "deletes the chunks",
          "[replication]") {
  auto a = account();
  job_book book;
  replication r("web", fresh(), 100);
  auto fx = r.start(a, "manual", 1000);
  auto pkg = take_job(book, r, fx, 1000);
  CHECK(fx.queue->member == 1);
  CHECK(fx.queue->kind == "replicate_package");
  CHECK(nlohmann::json::parse(fx.queue->params)["chunk_size"] == 100);
  auto run = r.state().run;
  CHECK(run == "alice-1");

  replication_effects m;
  std::string why;
  auto want = r.on_manifest(run, three_chunks(), &why, m);
  REQUIRE(want);
  CHECK(want->size() == 3);
  CHECK_FALSE(r.on_chunk(run, 7, sha('a'), &why, m));
  CHECK_FALSE(r.on_chunk(run, 0, sha('x'), &why, m));
  CHECK_FALSE(r.on_chunk("other", 0, sha('a'), &why, m));
  for (std::size_t i = 0; i < 3; ++i) {
    REQUIRE(r.on_chunk(run, i, three_chunks().chunks[i].sha256, &why, m));
  }
  auto done = r.on_job(finish(book, pkg, 1, job_status::succeeded, 5000), a, 5000);
  REQUIRE(done.queue);
  CHECK(done.queue->member == 2);
  CHECK(done.queue->kind == "replicate_restore");
  auto params = nlohmann::json::parse(done.queue->params);
  CHECK(params["chunks"].size() == 3);
  CHECK(params["chunks"][2]["key"] == "web/alice-1/2");
  CHECK(params["sha256"] == sha('f'));
  auto restore = take_job(book, r, done, 5000);
  CHECK(r.health(a, 6000) == "running");

  auto end = r.on_job(finish(book, restore, 2, job_status::succeeded, 9000), a, 9000);
  CHECK(end.delete_keys.size() == 3);
  CHECK(r.state().phase == replication_phase::idle);
  CHECK(r.state().last_sync_ms == 9000);
  CHECK(r.state().last_duration_ms == 8000);
  CHECK(r.state().runs_ok == 1);
  CHECK(r.health(a, 10000) == "healthy");
  CHECK(r.health(a, 9000 + 2 * 3600 * 1000 + 1) == "stale");
}

TEST_CASE("a failed transfer is retried later and resumes from the chunks already stored",
          "[replication]") {
  auto a = account();
  job_book book;
  replication r("web", fresh(), 100);
  auto fx = r.start(a, "manual", 0);
  auto pkg = take_job(book, r, fx, 0);
  auto run = r.state().run;
  replication_effects m;
  std::string why;
  REQUIRE(r.on_manifest(run, three_chunks(), &why, m));
  REQUIRE(r.on_chunk(run, 0, sha('a'), &why, m));
  auto failed = r.on_job(finish(book, pkg, 1, job_status::failed, 1000), a, 1000);
  REQUIRE(failed.failures.size() == 1);
  CHECK(failed.delete_keys.empty());
  CHECK(r.health(a, 1000) == "failing");
  REQUIRE(r.next_deadline_ms() == 1000 + replication::first_retry_ms);

  auto retry = r.tick(a, 1000 + replication::first_retry_ms);
  take_job(book, r, retry, 61000);
  CHECK(r.state().run == run); // the same run: the agent's package is reused
  CHECK(r.state().attempts == 2);
  replication_effects m2;
  auto want = r.on_manifest(run, three_chunks(), &why, m2);
  REQUIRE(want);
  CHECK(*want == std::vector<std::size_t>{1, 2});

  // Another package (re-made by the agent): everything starts over.
  replication_effects m3;
  auto again = r.on_manifest(run, three_chunks('9'), &why, m3);
  REQUIRE(again);
  CHECK(again->size() == 3);
  CHECK(m3.delete_keys == std::vector<std::string>{"web/alice-1/0"});
}

TEST_CASE("retries back off and stop after the last attempt", "[replication]") {
  auto a = account(0);
  job_book book;
  replication r("web", fresh(), 100);
  auto fx = r.start(a, "manual", 0);
  std::int64_t now = 0;
  std::vector<std::int64_t> waits;
  for (int i = 0; i < replication::max_attempts; ++i) {
    auto id = take_job(book, r, fx, now);
    auto f = r.on_job(finish(book, id, 1, job_status::failed, now), a, now);
    if (r.state().retry_at_ms == 0) {
      break;
    }
    waits.push_back(r.state().retry_at_ms - now);
    now = r.state().retry_at_ms;
    fx = r.tick(a, now);
  }
  CHECK(waits == std::vector<std::int64_t>{60000, 120000, 240000, 480000});
  CHECK(r.state().retry_at_ms == 0);
  CHECK_FALSE(r.next_deadline_ms());
  CHECK(r.state().runs_failed == replication::max_attempts);
}

TEST_CASE("no overlap: a start while a run goes is skipped, or with overlap wait taken when it "
          "ends",
          "[replication]") {
  job_book book;
  SECTION("skip") {
    auto a = account(3600, "skip");
    replication r("web", fresh(), 100);
    auto fx = r.start(a, "manual", 0);
    take_job(book, r, fx, 0);
    auto again = r.start(a, "manual", 5000);
    CHECK_FALSE(again.queue);
    REQUIRE(again.log.size() == 1);
    CHECK(again.log[0].find("skipped") != std::string::npos);
    CHECK(r.state().starts_skipped == 1);
  }
  SECTION("wait") {
    auto a = account(3600, "wait");
    replication r("web", fresh(), 100);
    r.configure(a, 0);
    REQUIRE(r.next_deadline_ms() == 3600 * 1000);
    auto fx = r.tick(a, 3600 * 1000);
    auto pkg = take_job(book, r, fx, 3600 * 1000);
    // The next scheduled start comes while the run still goes.
    auto due = *r.next_deadline_ms();
    CHECK(due == 2 * 3600 * 1000);
    auto waits = r.tick(a, due);
    CHECK_FALSE(waits.queue);
    CHECK(r.state().waiting);
    auto ended = r.on_job(finish(book, pkg, 1, job_status::failed, due + 10), a, due + 10);
    REQUIRE(ended.queue); // taken at once, resuming the failed run
    CHECK(ended.queue->kind == "replicate_package");
    CHECK_FALSE(r.state().waiting);
  }
}

TEST_CASE("manifests that do not add up are refused, state round trips as text",
          "[replication]") {
  auto a = account();
  replication r("web", fresh(), 100);
  auto fx = r.start(a, "manual", 0);
  r.set_job("j-1");
  auto m = three_chunks();
  m.size = 999;
  std::string why;
  replication_effects e;
  CHECK_FALSE(r.on_manifest(r.state().run, m, &why, e));
  CHECK(why.find("add up") != std::string::npos);
  m = three_chunks();
  m.chunks[0].size = 60;
  m.size = 210;
  CHECK_FALSE(r.on_manifest(r.state().run, m, &why, e));

  auto text = to_json_text(r.state());
  auto back = replication_from_json_text(text, &why);
  REQUIRE(back);
  CHECK(back->run == r.state().run);
  CHECK(back->phase == replication_phase::packaging);
  CHECK(back->job == "j-1");
  CHECK(to_json_text(*back) == text);
  CHECK_FALSE(replication_from_json_text("[]", &why));
}
