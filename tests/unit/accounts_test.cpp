#include "engine/accounts.hpp"

#include <catch2/catch.hpp>

using namespace balctl;

namespace {

constexpr std::int64_t t0 = 1'700'000'000'000;
using ms = member_state;

pool_params params(failback_policy fb = failback_policy::manual) {
  pool_params p;
  p.failback = fb;
  p.failback_stable_ms = 300'000;
  p.mass_silence.share = 0.5;
  p.mass_silence.min_members = 3;
  p.mass_silence.window_ms = 30'000;
  p.mass_silence.release_settle_ms = 5'000;
  return p;
}

void set(pool_policy& pool, member_id m, ms to, std::int64_t now) {
  pool.on_member_state(m, pool.state_of(m), to, now);
}

// Members 1..6 heard and healthy since t0.
pool_policy healthy_pool(failback_policy fb = failback_policy::manual) {
  pool_policy pool("web", params(fb), {1, 2, 3, 4, 5, 6});
  for (member_id m = 1; m <= 6; ++m) {
    set(pool, m, ms::healthy, t0);
  }
  return pool;
}

protected_account account(std::string id, member_id source, member_id standby) {
  protected_account a;
  a.id = id;
  a.domain = id + ".example.com";
  a.source = source;
  a.standby = standby;
  REQUIRE_FALSE(validate_account(a));
  return a;
}

std::vector<std::string> cut_ids(const account_book::result& r) {
  std::vector<std::string> out;
  for (const auto& c : r.cuts) {
    out.push_back(c.account);
  }
  return out;
}

// Feeds a member's transition to the policy, then to the book, and applies
// the cuts as the pool actor does.
account_book::result transition(account_book& book, pool_policy& pool, member_id m,
                                 ms to, std::int64_t now) {
  set(pool, m, to, now);
  auto r = book.on_member_state(m, pool, now);
  for (const auto& c : r.cuts) {
    book.apply(c, pool, now);
  }
  return r;
}

} // namespace

TEST_CASE("a down source cuts its accounts to their healthy standby, once", "[accounts][unit]") {
  auto pool = healthy_pool();
  account_book book;
  book.put(account("alice", 1, 2));
  book.put(account("bob", 1, 3));
  book.put(account("carol", 4, 5));

  CHECK(transition(book, pool, 1, ms::suspect, t0 + 1000).cuts.empty());
  auto r = transition(book, pool, 1, ms::down, t0 + 2000);
  CHECK(cut_ids(r) == std::vector<std::string>{"alice", "bob"});
  REQUIRE(r.cuts.size() == 2);
  CHECK(r.cuts[0].to == account_side::standby);
  CHECK(r.cuts[0].from_member == 1);
  CHECK(r.cuts[0].to_member == 2);
  CHECK_FALSE(r.cuts[0].failback);
  CHECK(book.find("alice")->on == account_side::standby);
  CHECK(book.find("alice")->on_since_ms == t0 + 2000);
  CHECK(book.find("carol")->on == account_side::source);
  // Evaluated again (another transition of a member they touch): no
  // second cut.
  CHECK(transition(book, pool, 2, ms::healthy, t0 + 3000).cuts.empty());
  CHECK(book.evaluate_all(pool, t0 + 4000).cuts.empty());
}

TEST_CASE("with the standby not healthy an account is not cut, alerted once, and cut when it is",
          "[accounts][unit]") {
  auto pool = healthy_pool();
  account_book book;
  book.put(account("alice", 1, 2));
  transition(book, pool, 2, ms::suspect, t0 + 500);
  auto r = transition(book, pool, 1, ms::down, t0 + 1000);
  CHECK(r.cuts.empty());
  REQUIRE(r.alerts.size() == 1);
  CHECK_THAT(r.alerts[0], Catch::Contains("alice") && Catch::Contains("standby member 2 is suspect"));
  CHECK(book.evaluate_all(pool, t0 + 1500).alerts.empty());
  r = transition(book, pool, 2, ms::healthy, t0 + 2000);
  CHECK(cut_ids(r) == std::vector<std::string>{"alice"});
}

TEST_CASE("accounts are not cut while the pool's network hold is in force", "[accounts][unit]") {
  auto pool = healthy_pool();
  account_book book;
  book.put(account("alice", 1, 2));
  // Three of six members silent within the window trips the guard.
  transition(book, pool, 3, ms::suspect, t0 + 100);
  transition(book, pool, 4, ms::suspect, t0 + 200);
  transition(book, pool, 1, ms::suspect, t0 + 300);
  REQUIRE(pool.network_hold());
  CHECK(transition(book, pool, 1, ms::down, t0 + 400).cuts.empty());
  // Released: the members came back; a re-evaluation cuts the account
  // whose source is still down.
  transition(book, pool, 3, ms::healthy, t0 + 10'000);
  transition(book, pool, 4, ms::healthy, t0 + 10'000);
  pool.on_tick(t0 + 20'000);
  REQUIRE_FALSE(pool.network_hold());
  CHECK(cut_ids(book.evaluate_all(pool, t0 + 20'000)) == std::vector<std::string>{"alice"});
}

TEST_CASE("an account on its standby goes back when the standby goes down and the source is healthy",
          "[accounts][unit]") {
  auto pool = healthy_pool();
  account_book book;
  book.put(account("alice", 1, 2));
  transition(book, pool, 1, ms::down, t0 + 1000);
  REQUIRE(book.find("alice")->on == account_side::standby);
  transition(book, pool, 1, ms::healthy, t0 + 5000);
  // Manual fail-back: the healthy source alone moves nothing.
  CHECK(book.next_deadline_ms() == std::nullopt);
  auto r = transition(book, pool, 2, ms::down, t0 + 6000);
  REQUIRE(r.cuts.size() == 1);
  CHECK(r.cuts[0].to == account_side::source);
  CHECK(r.cuts[0].failback);
}

TEST_CASE("automatic fail-back waits for the source's stable time", "[accounts][unit]") {
  auto pool = healthy_pool(failback_policy::automatic);
  account_book book;
  book.put(account("alice", 1, 2));
  transition(book, pool, 1, ms::down, t0 + 1000);
  auto healthy_at = t0 + 50'000;
  CHECK(transition(book, pool, 1, ms::healthy, healthy_at).cuts.empty());
  REQUIRE(book.next_deadline_ms() == healthy_at + 300'000);
  CHECK(book.on_tick(pool, healthy_at + 299'999).cuts.empty());
  auto r = book.on_tick(pool, healthy_at + 300'000);
  REQUIRE(r.cuts.size() == 1);
  CHECK(r.cuts[0].failback);
  CHECK(r.cuts[0].to_member == 1);
  book.apply(r.cuts[0], pool, healthy_at + 300'000);
  CHECK(book.next_deadline_ms() == std::nullopt);
}

TEST_CASE("a source that leaves healthy restarts the fail-back clock", "[accounts][unit]") {
  auto pool = healthy_pool(failback_policy::automatic);
  account_book book;
  book.put(account("alice", 1, 2));
  transition(book, pool, 1, ms::down, t0 + 1000);
  transition(book, pool, 1, ms::healthy, t0 + 10'000);
  transition(book, pool, 1, ms::suspect, t0 + 20'000);
  CHECK(book.next_deadline_ms() == std::nullopt);
  transition(book, pool, 1, ms::healthy, t0 + 30'000);
  CHECK(book.next_deadline_ms() == t0 + 330'000);
}

TEST_CASE("an operator cut goes only to a healthy member unless forced, never when unmanaged",
          "[accounts][unit]") {
  auto pool = healthy_pool();
  account_book book;
  book.put(account("alice", 1, 2));
  std::string why;
  auto c = book.request_cut("alice", account_side::standby, false, pool, &why);
  REQUIRE(c);
  CHECK(c->to_member == 2);
  CHECK_FALSE(c->failback);
  set(pool, 2, ms::down, t0 + 100);
  CHECK_FALSE(book.request_cut("alice", account_side::standby, false, pool, &why));
  CHECK_THAT(why, Catch::Contains("standby member 2 is down"));
  CHECK(book.request_cut("alice", account_side::standby, true, pool, &why));
  CHECK_FALSE(book.request_cut("nobody", account_side::standby, true, pool, &why));
  CHECK_THAT(why, Catch::Contains("no protected account 'nobody'"));
  auto a = *book.find("alice");
  a.managed = false;
  book.put(a);
  CHECK_FALSE(book.request_cut("alice", account_side::standby, true, pool, &why));
  CHECK_THAT(why, Catch::Contains("managed DNS is off"));
  // Nor cut automatically.
  CHECK(transition(book, pool, 1, ms::down, t0 + 200).cuts.empty());
}

TEST_CASE("removing an account forgets its index and timers", "[accounts][unit]") {
  auto pool = healthy_pool(failback_policy::automatic);
  account_book book;
  book.put(account("alice", 1, 2));
  transition(book, pool, 1, ms::down, t0 + 1000);
  transition(book, pool, 1, ms::healthy, t0 + 2000);
  REQUIRE(book.next_deadline_ms());
  CHECK(book.remove("alice"));
  CHECK_FALSE(book.remove("alice"));
  CHECK(book.next_deadline_ms() == std::nullopt);
  CHECK(book.of_member(1).empty());
  CHECK(transition(book, pool, 2, ms::down, t0 + 3000).cuts.empty());
}

TEST_CASE("account validation names the field and the reason", "[accounts][unit]") {
  auto base = [] {
    protected_account a;
    a.id = "alice";
    a.domain = "Example.COM.";
    a.source = 1;
    a.standby = 2;
    return a;
  };
  {
    auto a = base();
    REQUIRE_FALSE(validate_account(a));
    CHECK(a.domain == "example.com");
    REQUIRE(a.records.size() == 1);
    CHECK(a.records[0].name == "example.com");
    CHECK(a.records[0].type == dns::record_type::a);
    CHECK(a.records[0].cut);
  }
  struct bad {
    const char* field;
    std::function<void(protected_account&)> change;
  };
  std::vector<bad> cases = {
    {"id", [](protected_account& a) { a.id = "has space"; }},
    {"domain", [](protected_account& a) { a.domain = "localhost"; }},
    {"source", [](protected_account& a) { a.source = 0; }},
    {"standby", [](protected_account& a) { a.standby = a.source; }},
    {"dns_provider", [](protected_account& a) { a.dns_provider = "no such/thing"; }},
    {"dns_zone", [](protected_account& a) { a.dns_zone = "other.com"; }},
    {"dns_ttl_s", [](protected_account& a) { a.dns_ttl_s = 0; }},
    {"records[0].name", [](protected_account& a) {
       a.records = {account_record{}};
       a.records[0].name = "www.other.com";
     }},
    {"records[1].name", [](protected_account& a) {
       a.records = {account_record{}, account_record{}};
       a.records[0].name = a.records[1].name = "www.example.com";
     }},
    {"records[0].source_content", [](protected_account& a) {
       a.records = {account_record{}};
       a.records[0].name = "example.com";
       a.records[0].type = dns::record_type::mx;
     }},
    {"records[0].standby_content", [](protected_account& a) {
       a.records = {account_record{}};
       a.records[0].name = "example.com";
       a.records[0].type = dns::record_type::aaaa;
       a.records[0].standby_content = "192.0.2.1";
     }},
    {"records[0].ttl_s", [](protected_account& a) {
       a.records = {account_record{}};
       a.records[0].name = "example.com";
       a.records[0].ttl_s = -1;
     }},
  };
  for (const auto& c : cases) {
    CAPTURE(c.field);
    auto a = base();
    c.change(a);
    auto p = validate_account(a);
    REQUIRE(p);
    CHECK(p->field == c.field);
    CHECK_FALSE(p->message.empty());
  }
}

TEST_CASE("a cut row takes the member's address or the content the operator gave", "[accounts][unit]") {
  protected_account a;
  a.id = "alice";
  a.domain = "example.com";
  a.source = 1;
  a.standby = 2;
  account_record a4;
  a4.name = "example.com";
  account_record a6 = a4;
  a6.type = dns::record_type::aaaa;
  account_record mx = a4;
  mx.type = dns::record_type::mx;
  mx.source_content = "10 mail1.example.com";
  mx.standby_content = "10 mail2.example.com";
  a.records = {a4, a6, mx};
  REQUIRE_FALSE(validate_account(a));
  auto address = [](member_id m, bool v6) -> std::string {
    if (m == 2 && v6) {
      return ""; // the standby has no IPv6
    }
    return v6 ? "2001:db8::" + std::to_string(m) : "192.0.2." + std::to_string(m);
  };
  CHECK(content_on(a.records[0], a, account_side::source, address) == "192.0.2.1");
  CHECK(content_on(a.records[0], a, account_side::standby, address) == "192.0.2.2");
  CHECK(content_on(a.records[1], a, account_side::source, address) == "2001:db8::1");
  CHECK(content_on(a.records[1], a, account_side::standby, address).empty());
  CHECK(content_on(a.records[2], a, account_side::standby, address) == "10 mail2.example.com");
}

TEST_CASE("an account's provider resolves to the pool's Global Cloudflare key or the target's WHM key",
          "[accounts][unit]") {
  auto cf = [](std::string id, bool global) {
    dns_provider_config p;
    p.id = std::move(id);
    p.kind = dns_provider_kind::cloudflare;
    p.global = global;
    return p;
  };
  dns_provider_config whm2;
  whm2.id = "whm-node2";
  whm2.kind = dns_provider_kind::whm;
  whm2.member = 2;
  std::string why;
  CHECK(resolve_provider("cloudflare", 2, {cf("cf-a", false)}, {}, &why) == "cf-a");
  CHECK(resolve_provider("cloudflare", 2, {cf("cf-a", false), cf("cf-b", true)}, {}, &why) == "cf-b");
  CHECK(resolve_provider("cloudflare", 2, {cf("cf-a", false), cf("cf-b", false)}, {}, &why).empty());
  CHECK_THAT(why, Catch::Contains("none is marked Global"));
  CHECK(resolve_provider("cloudflare", 2, {}, {cf("cfg", true)}, &why) == "cfg");
  CHECK(resolve_provider("whm", 2, {whm2}, {}, &why) == "whm-node2");
  CHECK(resolve_provider("whm", 1, {whm2}, {}, &why).empty());
  CHECK_THAT(why, Catch::Contains("member 1 has no WHM DNS key"));
  CHECK(resolve_provider("cfg", 1, {}, {cf("cfg", false)}, &why) == "cfg");
  CHECK(resolve_provider("gone", 1, {}, {}, &why).empty());
}

TEST_CASE("an account survives its text form with its side", "[accounts][unit]") {
  protected_account a;
  a.id = "alice";
  a.domain = "example.com";
  a.source = 7;
  a.standby = 9;
  a.dns_provider = "whm";
  a.dns_ttl_s = 120;
  a.managed = false;
  account_record mx;
  mx.name = "example.com";
  mx.type = dns::record_type::mx;
  mx.source_content = "10 a.example.com";
  mx.standby_content = "10 b.example.com";
  mx.dns_only = true;
  a.records = {mx};
  REQUIRE_FALSE(validate_account(a));
  a.on = account_side::standby;
  a.on_since_ms = t0;
  std::string err;
  auto b = account_from_json_text(to_json_text(a), &err);
  REQUIRE(b);
  CHECK(to_json_text(*b) == to_json_text(a));
  CHECK(b->on == account_side::standby);
  CHECK(b->records.at(0).type == dns::record_type::mx);
  CHECK_FALSE(account_from_json_text("{\"records\": 3}", &err));
  CHECK_FALSE(err.empty());
}

TEST_CASE("an account added while its source is down is cut when evaluated alone", "[accounts][unit]") {
  auto pool = healthy_pool();
  account_book book;
  book.put(account("alice", 1, 2));
  set(pool, 3, ms::down, t0 + 1000);
  book.put(account("late", 3, 4));
  auto r = book.evaluate_one("late", pool, t0 + 2000);
  REQUIRE(r.cuts.size() == 1);
  CHECK(r.cuts[0].account == "late");
  CHECK(book.evaluate_one("nobody", pool, t0 + 2000).cuts.empty());
}

TEST_CASE("an account's API body: only what an operator sets, a GET sent back reads as a PATCH",
          "[accounts][unit]") {
  protected_account a;
  REQUIRE_FALSE(read_account_json(
    R"({"id":"alice","domain":"example.com","source":1,"standby":2,
        "records":[{"name":"example.com","type":"MX","source_content":"10 a.example.com",
                    "standby_content":"10 b.example.com"}]})",
    a, true));
  CHECK(a.records.at(0).type == dns::record_type::mx);
  // What GET answers for it, with one change: view keys and nulls are
  // ignored, the settings applied.
  auto patch = R"({"id":"alice","domain":"example.com","source":1,"standby":2,"on":"source",
                   "on_member":1,"on_since_ms":null,"source_state":"healthy",
                   "standby_state":"healthy","drift":0,"dns_ttl_s":120,
                   "records":[{"name":"example.com","type":"MX","cut":true,"managed":true,
                               "dns_only":false,"origin":"protection","provider":"cf",
                               "provider_error":null,"expected":"10 a.example.com",
                               "effective_ttl_s":300,"live":null,"drift":false,
                               "source_content":"10 a.example.com",
                               "standby_content":"10 c.example.com","content":null,
                               "ttl_s":0}]})";
  auto p = read_account_json(patch, a, false);
  INFO((p ? p->field + ": " + p->message : std::string()));
  REQUIRE_FALSE(p);
  CHECK(a.dns_ttl_s == 120);
  CHECK(a.records.at(0).standby_content == "10 c.example.com");
  // The side is a cut's to change, not a PATCH's.
  p = read_account_json(R"({"on":"standby"})", a, false);
  REQUIRE(p);
  CHECK(p->field == "on");
  p = read_account_json(R"({"colour":"blue"})", a, false);
  REQUIRE(p);
  CHECK(p->code == "unknown_field");
  p = read_account_json(R"({"records":[{"name":"example.com","shade":1}]})", a, false);
  REQUIRE(p);
  CHECK(p->field == "records[0].shade");
  p = read_account_json(R"({"id":"bob"})", a, false);
  REQUIRE(p);
  CHECK(p->field == "id");
}

TEST_CASE("account numbers never wrap: TTLs past an int are refused, member ids take 64 bits",
          "[accounts][unit]") {
  protected_account a;
  auto p = read_account_json(
    R"({"id":"a","domain":"a.test","source":1,"standby":2,"dns_ttl_s":4294967596})", a, true);
  REQUIRE(p);
  CHECK(p->field == "dns_ttl_s");
  protected_account b;
  REQUIRE_FALSE(read_account_json(
    R"({"id":"b","domain":"b.test","source":18446744073709551615,"standby":2})", b, true));
  CHECK(b.source == 18446744073709551615ULL);
  protected_account c;
  p = read_account_json(R"({"id":"c","domain":"c.test","source":-1,"standby":2})", c, true);
  REQUIRE(p);
  CHECK(p->field == "source");
}

TEST_CASE("a record belongs to one account: the book knows its owner until it is removed",
          "[accounts][unit]") {
  account_book book;
  auto a = account("alice", 1, 2);
  book.put(a);
  REQUIRE(book.owner_of("Alice.Example.com.", dns::record_type::a));
  CHECK(*book.owner_of("alice.example.com", dns::record_type::a) == "alice");
  CHECK_FALSE(book.owner_of("alice.example.com", dns::record_type::mx));
  // A changed list moves the ownership with it.
  a.records[0].name = "www.alice.example.com";
  book.put(a);
  CHECK_FALSE(book.owner_of("alice.example.com", dns::record_type::a));
  CHECK(book.owner_of("www.alice.example.com", dns::record_type::a));
  book.remove("alice");
  CHECK_FALSE(book.owner_of("www.alice.example.com", dns::record_type::a));
}
