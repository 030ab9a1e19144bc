#include <catch2/catch.hpp>

#include "engine/jobs.hpp"

using namespace balctl;

namespace {

job command(member_id m, const std::string& cmd = "true") {
  job j;
  j.member = m;
  j.kind = "command";
  j.params = R"({"command":")" + cmd + R"("})";
  j.timeout_s = 60;
  return j;
}

} // namespace

TEST_CASE("jobs are fetched by their own member only, oldest first, and become dispatched",
          "[jobs]") {
  job_book b;
  auto a = b.queue(command(1, "a"), 1000).id;
  b.queue(command(2, "other"), 1001);
  auto c = b.queue(command(1, "c"), 1002).id;
  auto got = b.fetch(1, 2000);
  REQUIRE(got.size() == 2);
  CHECK(got[0]->id == a);
  CHECK(got[1]->id == c);
  CHECK(got[0]->status == job_status::dispatched);
  // Asked again at once: nothing new.
  CHECK(b.fetch(1, 2001).empty());
  CHECK(b.count(1).running == 2);
  CHECK(b.count(2).queued == 1);
}

TEST_CASE("a dispatched job never reported running is offered again after a minute",
          "[jobs]") {
  job_book b;
  auto id = b.queue(command(1), 0).id;
  REQUIRE(b.fetch(1, 0).size() == 1);
  CHECK(b.fetch(1, job_book::redispatch_ms - 1).empty());
  auto again = b.fetch(1, job_book::redispatch_ms);
  REQUIRE(again.size() == 1);
  CHECK(again[0]->id == id);
  // Once running it is not offered again.
  const job* changed = nullptr;
  REQUIRE(b.report(1, id, job_status::running, 0, "", "", 70'000, &changed) ==
          job_book::report_result::accepted);
  CHECK(b.fetch(1, 10 * job_book::redispatch_ms).empty());
}

TEST_CASE("reports: another member's job is not found, a finished one is refused, output keeps "
          "its tail",
          "[jobs]") {
  job_book b;
  auto id = b.queue(command(1), 0).id;
  b.fetch(1, 0);
  const job* changed = nullptr;
  CHECK(b.report(2, id, job_status::succeeded, 0, "", "", 10, &changed) ==
        job_book::report_result::not_found);
  CHECK(b.report(1, "j-999", job_status::succeeded, 0, "", "", 10, &changed) ==
        job_book::report_result::not_found);
  std::string big(job_book::max_output + 100, 'x');
  big += "END";
  REQUIRE(b.report(1, id, job_status::failed, 3, big, "exit 3", 20, &changed) ==
          job_book::report_result::accepted);
  REQUIRE(changed != nullptr);
  CHECK(changed->status == job_status::failed);
  CHECK(changed->exit_code == 3);
  CHECK(changed->output.size() == job_book::max_output);
  CHECK(changed->output.substr(changed->output.size() - 3) == "END");
  CHECK(changed->finished_ms == 20);
  CHECK(b.report(1, id, job_status::succeeded, 0, "", "", 30, &changed) ==
        job_book::report_result::finished);
  CHECK(b.count(1).failed == 1);
}

TEST_CASE("a job out with an agent past its timeout and grace fails, and the deadline says when",
          "[jobs]") {
  job_book b;
  auto id = b.queue(command(1), 0).id;
  CHECK_FALSE(b.next_deadline_ms());
  b.fetch(1, 1000);
  auto due = 1000 + 60'000 + job_book::report_grace_ms;
  REQUIRE(b.next_deadline_ms() == due);
  CHECK(b.expire(due - 1).empty());
  auto failed = b.expire(due);
  REQUIRE(failed.size() == 1);
  CHECK(failed[0]->id == id);
  CHECK(failed[0]->status == job_status::failed);
  CHECK_FALSE(b.next_deadline_ms());
}

TEST_CASE("cancel, prune to the newest finished per member, forget a member, restore ids",
          "[jobs]") {
  job_book b(2);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(b.queue(command(1), i).id);
  }
  const job* changed = nullptr;
  for (int i = 0; i < 4; ++i) {
    REQUIRE(b.cancel(ids[i], 100 + i, &changed));
  }
  CHECK_FALSE(b.cancel(ids[0], 200, &changed));
  auto gone = b.prune();
  REQUIRE(gone.size() == 2);
  CHECK(gone[0] == ids[0]);
  CHECK(gone[1] == ids[1]);
  REQUIRE(b.list(1).size() == 2);
  CHECK(b.list(1)[0]->id == ids[3]); // newest first

  // Restored jobs keep their ids; new ones never reuse one.
  job_book r;
  std::string error;
  auto back = job_from_json_text(to_json_text(*b.find(ids[3])), &error);
  REQUIRE(back);
  CHECK(back->status == job_status::cancelled);
  r.restore(*back);
  CHECK(r.queue(command(1), 500).id == "j-5");
  CHECK(r.forget_member(1).size() == 2);
  CHECK(r.list(0).empty());
  CHECK_FALSE(job_from_json_text("{\"id\":\"x\"}", &error));
}

TEST_CASE("output_tail never starts inside a UTF-8 character", "[jobs]") {
  std::string s = "ab\xC3\xA9" "cd"; // "abécd"
  CHECK(output_tail(s, 3) == "cd");
  CHECK(output_tail(s, 4) == "\xC3\xA9" "cd");
  CHECK(output_tail(s, 100) == s);
}
