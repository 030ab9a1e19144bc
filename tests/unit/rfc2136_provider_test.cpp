#include "adapters/dns/rfc2136_provider.hpp"

#include <ldns/ldns.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

// The RFC 2136 provider against scripted answers built with ldns: no
// sockets. Each answer is a real DNS message for the request the provider
// sent (same id, question echoed); UPDATE answers are TSIG-signed with the
// request's MAC, as a server signs them.

using namespace balctl::dns;

namespace {

const char* const key_name = "balctl-key.";
// Base64 of 32 bytes; recognisable so a leak shows in any message.
const char* const secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXh4eHg=";

struct pkt_free {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
using pkt_ptr = std::unique_ptr<ldns_pkt, pkt_free>;

rfc2136_options options() {
  rfc2136_options o;
  o.server = "127.0.0.1:5353";
  o.tsig_name = "balctl-key";
  o.tsig_secret_base64 = secret;
  return o;
}

record desired_a(const std::string& content = "192.0.2.20", int ttl_s = 60) {
  record r;
  r.zone = "example.test";
  r.name = "www.example.test";
  r.type = record_type::a;
  r.content = content;
  r.ttl_s = ttl_s;
  return r;
}

pkt_ptr parse(const std::vector<std::uint8_t>& wire) {
  ldns_pkt* p = nullptr;
  REQUIRE(ldns_wire2pkt(&p, wire.data(), wire.size()) == LDNS_STATUS_OK);
  return pkt_ptr(p);
}

std::string rr_text(const ldns_rr* rr) {
  char* s = ldns_rr2str(rr);
  std::string out = s ? s : "";
  std::free(s);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
    out.pop_back();
  }
  return out;
}

ldns_rr* rr(const std::string& text) {
  ldns_rr* out = nullptr;
  REQUIRE(ldns_rr_new_frm_str(&out, text.c_str(), 0, nullptr, nullptr) == LDNS_STATUS_OK);
  return out;
}

/// An answer to `request`: same id and opcode, its question echoed, rcode,
/// answer and authority RRs in presentation form.
pkt_ptr answer_to(const ldns_pkt* request, ldns_pkt_rcode rcode,
                  const std::vector<std::string>& answer = {},
                  const std::vector<std::string>& authority = {}) {
  pkt_ptr p(ldns_pkt_new());
  ldns_pkt_set_id(p.get(), ldns_pkt_id(request));
  ldns_pkt_set_qr(p.get(), true);
  ldns_pkt_set_aa(p.get(), true);
  ldns_pkt_set_opcode(p.get(), ldns_pkt_get_opcode(request));
  ldns_pkt_set_rcode(p.get(), rcode);
  const ldns_rr_list* q = ldns_pkt_question(request);
  for (std::size_t i = 0; i < ldns_rr_list_rr_count(q); ++i) {
    ldns_pkt_push_rr(p.get(), LDNS_SECTION_QUESTION, ldns_rr_clone(ldns_rr_list_rr(q, i)));
  }
  for (const auto& a : answer) {
    ldns_pkt_push_rr(p.get(), LDNS_SECTION_ANSWER, rr(a));
  }
  for (const auto& a : authority) {
    ldns_pkt_push_rr(p.get(), LDNS_SECTION_AUTHORITY, rr(a));
  }
  return p;
}

std::vector<std::uint8_t> wire_of(const ldns_pkt* p) {
  std::uint8_t* raw = nullptr;
  std::size_t n = 0;
  REQUIRE(ldns_pkt2wire(&raw, p, &n) == LDNS_STATUS_OK);
  std::vector<std::uint8_t> out(raw, raw + n);
  std::free(raw);
  return out;
}

/// Signs an answer as the server does: with the request's MAC.
void sign_answer(ldns_pkt* answer, const ldns_pkt* request, const char* with_secret = secret) {
  const ldns_rr* tsig = ldns_pkt_tsig(request);
  REQUIRE(tsig != nullptr);
  REQUIRE(ldns_pkt_tsig_sign(answer, key_name, with_secret, 300, "hmac-sha256.",
                             ldns_rr_rdf(tsig, 3)) == LDNS_STATUS_OK);
}

/// Sets the TSIG error field of a signed answer (BADSIG = 16, ...).
void set_tsig_error(ldns_pkt* answer, std::uint16_t error) {
  ldns_rr* tsig = ldns_pkt_tsig(answer);
  REQUIRE(tsig != nullptr);
  ldns_rdf* old = ldns_rr_set_rdf(tsig, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, error), 5);
  ldns_rdf_deep_free(old);
}

dns_response response(const ldns_pkt* p) {
  dns_response r;
  r.wire = wire_of(p);
  return r;
}

/// Every message a run produced, to look for the secret in.
struct transcript {
  std::vector<std::string> texts;
  void saw(const step& s) {
    texts.push_back(s.message);
    if (s.k == step::kind::dns) {
      texts.emplace_back(s.dns.wire.begin(), s.dns.wire.end());
    }
  }
  void check_no_secret() const {
    const std::string raw_secret = "secret-secret-secret-secret-xxxx";
    for (const auto& t : texts) {
      CHECK(t.find(secret) == std::string::npos);
      CHECK(t.find(raw_secret) == std::string::npos);
    }
  }
};

void check_question(const step& s, const std::string& name, ldns_rr_type type) {
  REQUIRE(s.k == step::kind::dns);
  CHECK(s.dns.server == "127.0.0.1:5353");
  auto p = parse(s.dns.wire);
  CHECK(ldns_pkt_get_opcode(p.get()) == LDNS_PACKET_QUERY);
  CHECK_FALSE(ldns_pkt_rd(p.get()));
  REQUIRE(ldns_pkt_qdcount(p.get()) == 1);
  const ldns_rr* q = ldns_rr_list_rr(ldns_pkt_question(p.get()), 0);
  char* owner = ldns_rdf2str(ldns_rr_owner(q));
  CHECK(std::string(owner) == name + ".");
  std::free(owner);
  CHECK(ldns_rr_get_type(q) == type);
  CHECK(ldns_rr_get_class(q) == LDNS_RR_CLASS_IN);
}

/// Drives an apply to its UPDATE step (the live set differs).
step to_update(operation& op, transcript& t, std::vector<std::string> live) {
  step s = op.start();
  t.saw(s);
  REQUIRE(s.k == step::kind::dns);
  auto q = parse(s.dns.wire);
  s = op.on_dns(response(answer_to(q.get(), LDNS_RCODE_NOERROR, live).get()));
  t.saw(s);
  REQUIRE(s.k == step::kind::dns);
  return s;
}

} // namespace

TEST_CASE("the rfc2136 query step is a question for the record's name and type", "[rfc2136][unit]") {
  auto p = make_rfc2136_provider(options());
  CHECK(std::string(p->kind()) == "rfc2136");
  auto op = p->apply(desired_a());
  auto s = op->start();
  check_question(s, "www.example.test", LDNS_RR_TYPE_A);

  record mx;
  mx.zone = "example.test";
  mx.name = "Example.Test.";
  mx.type = record_type::mx;
  mx.content = "10 mail.example.test";
  auto op2 = p->apply(mx);
  check_question(op2->start(), "example.test", LDNS_RR_TYPE_MX);
}

TEST_CASE("an rfc2136 record already in place sends no UPDATE", "[rfc2136][unit]") {
  auto p = make_rfc2136_provider(options());
  transcript t;
  auto op = p->apply(desired_a("192.0.2.20", 60));
  auto s = op->start();
  t.saw(s);
  auto q = parse(s.dns.wire);
  s = op->on_dns(response(answer_to(q.get(), LDNS_RCODE_NOERROR, {"www.example.test. 60 IN A 192.0.2.20"}).get()));
  t.saw(s);
  REQUIRE(s.k == step::kind::done);
  CHECK_FALSE(s.wrote);
  t.check_no_secret();
}

TEST_CASE("an rfc2136 record that differs is replaced by one signed UPDATE and confirmed", "[rfc2136][unit]") {
  auto p = make_rfc2136_provider(options());
  transcript t;
  auto op = p->apply(desired_a("192.0.2.20", 60));
  std::vector<std::string> live;
  SECTION("other address") { live = {"www.example.test. 60 IN A 192.0.2.10"}; }
  SECTION("same address, other ttl") { live = {"www.example.test. 300 IN A 192.0.2.20"}; }
  SECTION("two addresses") { live = {"www.example.test. 60 IN A 192.0.2.20", "www.example.test. 60 IN A 192.0.2.21"}; }
  SECTION("missing") { live = {}; }
  CAPTURE(live);
  step s = to_update(*op, t, live);

  auto u = parse(s.dns.wire);
  CHECK(ldns_pkt_get_opcode(u.get()) == LDNS_PACKET_UPDATE);
  // Zone section: example.test SOA.
  REQUIRE(ldns_update_zocount(u.get()) == 1);
  const ldns_rr* zone = ldns_rr_list_rr(ldns_pkt_question(u.get()), 0);
  CHECK(ldns_rr_get_type(zone) == LDNS_RR_TYPE_SOA);
  char* zname = ldns_rdf2str(ldns_rr_owner(zone));
  CHECK(std::string(zname) == "example.test.");
  std::free(zname);
  CHECK(ldns_update_prcount(u.get()) == 0);
  // Update section: delete the set (class ANY, no rdata), add the RR.
  REQUIRE(ldns_update_upcount(u.get()) == 2);
  const ldns_rr_list* up = ldns_pkt_authority(u.get());
  const ldns_rr* del = ldns_rr_list_rr(up, 0);
  CHECK(ldns_rr_get_class(del) == LDNS_RR_CLASS_ANY);
  CHECK(ldns_rr_get_type(del) == LDNS_RR_TYPE_A);
  CHECK(ldns_rr_ttl(del) == 0);
  CHECK(ldns_rr_rd_count(del) == 0);
  CHECK(rr_text(ldns_rr_list_rr(up, 1)) == "www.example.test.\t60\tIN\tA\t192.0.2.20");
  // And a TSIG RR with our key name and algorithm.
  const ldns_rr* tsig = ldns_pkt_tsig(u.get());
  REQUIRE(tsig != nullptr);
  char* kname = ldns_rdf2str(ldns_rr_owner(tsig));
  CHECK(std::string(kname) == key_name);
  std::free(kname);
  char* alg = ldns_rdf2str(ldns_rr_rdf(tsig, 0));
  CHECK(std::string(alg) == "hmac-sha256.");
  std::free(alg);

  auto ans = answer_to(u.get(), LDNS_RCODE_NOERROR);
  sign_answer(ans.get(), u.get());
  s = op->on_dns(response(ans.get()));
  t.saw(s);
  check_question(s, "www.example.test", LDNS_RR_TYPE_A);
  auto c = parse(s.dns.wire);
  s = op->on_dns(response(answer_to(c.get(), LDNS_RCODE_NOERROR, {"www.example.test. 60 IN A 192.0.2.20"}).get()));
  t.saw(s);
  REQUIRE(s.k == step::kind::done);
  CHECK(s.wrote);
  t.check_no_secret();
}

TEST_CASE("an rfc2136 UPDATE answer whose TSIG does not verify is an auth failure", "[rfc2136][unit]") {
  auto p = make_rfc2136_provider(options());
  transcript t;
  auto op = p->apply(desired_a());
  step s = to_update(*op, t, {});
  auto u = parse(s.dns.wire);
  auto ans = answer_to(u.get(), LDNS_RCODE_NOERROR);
  SECTION("signed with another secret") {
    sign_answer(ans.get(), u.get(), "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldC1vdGhlcg==");
  }
  SECTION("not signed") {}
  s = op->on_dns(response(ans.get()));
  t.saw(s);
  REQUIRE(s.k == step::kind::failed);
  CHECK(s.why == failure::auth);
  CHECK(s.message.find("balctl-key") != std::string::npos);
  t.check_no_secret();
}

TEST_CASE("rfc2136 UPDATE rcodes and TSIG errors map to failure kinds", "[rfc2136][unit]") {
  struct row {
    ldns_pkt_rcode rcode;
    std::uint16_t tsig_error; // 0 = none; else the answer carries a TSIG RR with it
    failure why;
    const char* says;
  };
  auto r = GENERATE(values<row>({
    {LDNS_RCODE_REFUSED, 0, failure::auth, "REFUSED"},
    {LDNS_RCODE_NOTAUTH, 0, failure::auth, "NOTAUTH"},
    {LDNS_RCODE_NOTAUTH, 16, failure::auth, "BADSIG"},
    {LDNS_RCODE_NOTAUTH, 17, failure::auth, "BADKEY"},
    {LDNS_RCODE_NOTAUTH, 18, failure::auth, "BADTIME"},
    {LDNS_RCODE_SERVFAIL, 0, failure::transient, "SERVFAIL"},
    {LDNS_RCODE_FORMERR, 0, failure::permanent, "FORMERR"},
    {LDNS_RCODE_NOTZONE, 0, failure::permanent, "NOTZONE"},
  }));
  CAPTURE(r.says);
  auto p = make_rfc2136_provider(options());
  transcript t;
  auto op = p->apply(desired_a());
  step s = to_update(*op, t, {"www.example.test. 60 IN A 192.0.2.10"});
  auto u = parse(s.dns.wire);
  auto ans = answer_to(u.get(), r.rcode);
  if (r.tsig_error != 0) {
    sign_answer(ans.get(), u.get());
    set_tsig_error(ans.get(), r.tsig_error);
  }
  s = op->on_dns(response(ans.get()));
  t.saw(s);
  REQUIRE(s.k == step::kind::failed);
  CHECK(s.why == r.why);
  CHECK(s.message.find(r.says) != std::string::npos);
  if (r.why == failure::auth) {
    CHECK(s.message.find("balctl-key") != std::string::npos);
  }
  t.check_no_secret();
}

TEST_CASE("rfc2136 query rcodes map to failure kinds", "[rfc2136][unit]") {
  auto p = make_rfc2136_provider(options());
  auto op = p->apply(desired_a());
  auto s = op->start();
  auto q = parse(s.dns.wire);
  SECTION("REFUSED is auth") {
    s = op->on_dns(response(answer_to(q.get(), LDNS_RCODE_REFUSED).get()));
    REQUIRE(s.k == step::kind::failed);
    CHECK(s.why == failure::auth);
  }
  SECTION("SERVFAIL is transient") {
    s = op->on_dns(response(answer_to(q.get(), LDNS_RCODE_SERVFAIL).get()));
    REQUIRE(s.k == step::kind::failed);
    CHECK(s.why == failure::transient);
  }
  SECTION("a transport error is transient") {
    dns_response r;
    r.transport_error = "timeout after 5000 ms";
    s = op->on_dns(r);
    REQUIRE(s.k == step::kind::failed);
    CHECK(s.why == failure::transient);
    CHECK(s.message.find("timeout after 5000 ms") != std::string::npos);
  }
  SECTION("an answer with another id is transient") {
    auto a = answer_to(q.get(), LDNS_RCODE_NOERROR);
    ldns_pkt_set_id(a.get(), static_cast<std::uint16_t>(ldns_pkt_id(q.get()) + 1));
    s = op->on_dns(response(a.get()));
    REQUIRE(s.k == step::kind::failed);
    CHECK(s.why == failure::transient);
  }
}

TEST_CASE("rfc2136 garbage answers are transient failures and never crash", "[rfc2136][unit]") {
  auto p = make_rfc2136_provider(options());
  // Every prefix of a valid answer, a few byte patterns, and header-only
  // messages claiming records they do not hold.
  auto op0 = p->apply(desired_a());
  auto s0 = op0->start();
  auto q0 = parse(s0.dns.wire);
  auto good = wire_of(answer_to(q0.get(), LDNS_RCODE_NOERROR, {"www.example.test. 60 IN A 192.0.2.10"}).get());
  std::vector<std::vector<std::uint8_t>> inputs;
  for (std::size_t n = 0; n < good.size(); ++n) {
    inputs.emplace_back(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
  }
  inputs.push_back(std::vector<std::uint8_t>(600, 0xff));
  inputs.push_back(std::vector<std::uint8_t>(12, 0x00));
  std::vector<std::uint8_t> liar(good.begin(), good.begin() + 12);
  liar[6] = 0xff; // ANCOUNT 0xff.. with no records
  liar[7] = 0xff;
  inputs.push_back(liar);
  std::uint32_t x = 2136;
  for (int i = 0; i < 200; ++i) {
    std::vector<std::uint8_t> b(static_cast<std::size_t>(12 + i % 90));
    for (auto& c : b) {
      x = x * 1103515245u + 12345u;
      c = static_cast<std::uint8_t>(x >> 16);
    }
    inputs.push_back(b);
  }
  for (const auto& in : inputs) {
    for (int stage = 0; stage < 2; ++stage) {
      auto op = p->apply(desired_a());
      auto s = op->start();
      if (stage == 1) {
        // Garbage as the answer to the UPDATE.
        auto q = parse(s.dns.wire);
        s = op->on_dns(response(answer_to(q.get(), LDNS_RCODE_NOERROR).get()));
        REQUIRE(s.k == step::kind::dns);
      }
      dns_response r;
      r.wire = in;
      s = op->on_dns(r);
      REQUIRE(s.k == step::kind::failed);
      CHECK(s.why == failure::transient);
    }
  }
}

TEST_CASE("rfc2136 finds the zone from the SOA when the record names none", "[rfc2136][unit]") {
  auto p = make_rfc2136_provider(options());
  auto want = desired_a();
  want.zone.clear();
  want.name = "a.b.example.test";
  auto op = p->apply(want);
  auto s = op->start();
  check_question(s, "a.b.example.test", LDNS_RR_TYPE_SOA);
  auto q = parse(s.dns.wire);
  SECTION("from the authority section of an NXDOMAIN") {
    s = op->on_dns(response(answer_to(q.get(), LDNS_RCODE_NXDOMAIN, {},
                                      {"example.test. 300 IN SOA ns1.example.test. admin.example.test. 1 3600 600 86400 300"})
                              .get()));
    check_question(s, "a.b.example.test", LDNS_RR_TYPE_A);
    auto r = parse(s.dns.wire);
    s = op->on_dns(response(answer_to(r.get(), LDNS_RCODE_NXDOMAIN).get()));
    REQUIRE(s.k == step::kind::dns);
    auto u = parse(s.dns.wire);
    char* z = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(u.get()), 0)));
    CHECK(std::string(z) == "example.test.");
    std::free(z);
  }
  SECTION("no SOA at all is permanent") {
    s = op->on_dns(response(answer_to(q.get(), LDNS_RCODE_NXDOMAIN).get()));
    REQUIRE(s.k == step::kind::failed);
    CHECK(s.why == failure::permanent);
  }
}

TEST_CASE("rfc2136 read reports the live record or none", "[rfc2136][unit]") {
  auto p = make_rfc2136_provider(options());
  record key;
  key.name = "_sip._tcp.example.test";
  key.type = record_type::srv;
  auto op = p->read(key);
  auto s = op->start();
  check_question(s, "_sip._tcp.example.test", LDNS_RR_TYPE_SRV);
  auto q = parse(s.dns.wire);
  SECTION("present") {
    s = op->on_dns(response(
      answer_to(q.get(), LDNS_RCODE_NOERROR, {"_sip._tcp.example.test. 120 IN SRV 10 5 5060 SIP.example.test."}).get()));
    REQUIRE(s.k == step::kind::done);
    REQUIRE(s.live);
    CHECK(s.live->content == "10 5 5060 sip.example.test");
    CHECK(s.live->ttl_s == 120);
  }
  SECTION("absent") {
    s = op->on_dns(response(answer_to(q.get(), LDNS_RCODE_NXDOMAIN).get()));
    REQUIRE(s.k == step::kind::done);
    CHECK_FALSE(s.live);
  }
}

TEST_CASE("rfc2136 rejects bad options and content before sending anything", "[rfc2136][unit]") {
  SECTION("unknown algorithm") {
    auto o = options();
    o.tsig_algorithm = "hmac-md5";
    auto s = make_rfc2136_provider(o)->apply(desired_a())->start();
    REQUIRE(s.k == step::kind::failed);
    CHECK(s.why == failure::permanent);
    CHECK(s.message.find("hmac-md5") != std::string::npos);
  }
  SECTION("bad content") {
    auto s = make_rfc2136_provider(options())->apply(desired_a("192.0.2.300"))->start();
    REQUIRE(s.k == step::kind::failed);
    CHECK(s.why == failure::permanent);
  }
  SECTION("list is not supported") {
    auto s = make_rfc2136_provider(options())->list("example.test")->start();
    REQUIRE(s.k == step::kind::failed);
    CHECK(s.why == failure::permanent);
    CHECK(s.message == "listing a zone is not supported over RFC 2136");
  }
}
