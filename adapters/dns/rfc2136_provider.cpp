#include "adapters/dns/rfc2136_provider.hpp"

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

namespace balctl::dns {

namespace {

// --- owners of ldns' C resources --------------------------------------------

struct pkt_free {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
struct rr_free {
  void operator()(ldns_rr* r) const { ldns_rr_free(r); }
};
struct rr_list_free {
  void operator()(ldns_rr_list* l) const { ldns_rr_list_deep_free(l); }
};
struct rdf_free {
  void operator()(ldns_rdf* r) const { ldns_rdf_deep_free(r); }
};
// ldns allocates strings and wire buffers with malloc (LDNS_XMALLOC).
struct malloc_free {
  void operator()(void* p) const { std::free(p); }
};
using pkt_ptr = std::unique_ptr<ldns_pkt, pkt_free>;
using rr_ptr = std::unique_ptr<ldns_rr, rr_free>;
using rr_list_ptr = std::unique_ptr<ldns_rr_list, rr_list_free>;
using rdf_ptr = std::unique_ptr<ldns_rdf, rdf_free>;
using cstr_ptr = std::unique_ptr<char, malloc_free>;
using bytes_ptr = std::unique_ptr<std::uint8_t, malloc_free>;

// --- small helpers -------------------------------------------------------------

ldns_rr_type to_ldns(record_type t) {
  switch (t) {
    case record_type::a: return LDNS_RR_TYPE_A;
    case record_type::aaaa: return LDNS_RR_TYPE_AAAA;
    case record_type::mx: return LDNS_RR_TYPE_MX;
    case record_type::srv: return LDNS_RR_TYPE_SRV;
  }
  return LDNS_RR_TYPE_A;
}

std::string rdf_text(const ldns_rdf* rdf) {
  if (rdf == nullptr) {
    return {};
  }
  cstr_ptr s(ldns_rdf2str(rdf));
  return s ? std::string(s.get()) : std::string();
}

std::string owner_of(const ldns_rr* rr) { return canonical_name(rdf_text(ldns_rr_owner(rr))); }


bool is_host_name(const std::string& s) {
  if (s.empty() || s.size() > 253) {
    return false;
  }
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '*';
    if (!ok) {
      return false;
    }
  }
  return s.find("..") == std::string::npos && s.front() != '.';
}

bool is_number(const std::string& s, unsigned long max) {
  if (s.empty() || s.size() > 5) {
    return false;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return std::stoul(s) <= max;
}

/// The content in the presentation form ldns parses (host names absolute),
/// or "" when it is not a valid value of type t.
std::string content_for_ldns(record_type t, const std::string& content) {
  auto w = content_words(content);
  unsigned char buf[16];
  switch (t) {
    case record_type::a:
      return w.size() == 1 && inet_pton(AF_INET, w[0].c_str(), buf) == 1 ? w[0] : "";
    case record_type::aaaa:
      return w.size() == 1 && inet_pton(AF_INET6, w[0].c_str(), buf) == 1 ? w[0] : "";
    case record_type::mx:
      if (w.size() != 2 || !is_number(w[0], 65535) || !is_host_name(canonical_name(w[1]))) {
        return "";
      }
      return w[0] + " " + canonical_name(w[1]) + ".";
    case record_type::srv:
      if (w.size() != 4 || !is_number(w[0], 65535) || !is_number(w[1], 65535) ||
          !is_number(w[2], 65535) || !is_host_name(canonical_name(w[3]))) {
        return "";
      }
      return w[0] + " " + w[1] + " " + w[2] + " " + canonical_name(w[3]) + ".";
  }
  return "";
}

/// A live RR's value in our content form (host names without the dot).
std::string content_of(record_type t, const ldns_rr* rr) {
  std::size_t n = ldns_rr_rd_count(rr);
  if (n == 0) {
    return {};
  }
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    std::string part = rdf_text(ldns_rr_rdf(rr, i));
    if (i + 1 == n && (t == record_type::mx || t == record_type::srv)) {
      part = canonical_name(part);
    }
    if (!out.empty()) {
      out += ' ';
    }
    out += part;
  }
  return out;
}

std::uint16_t random_id() {
  std::uint16_t id = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&id), sizeof id) != 1) {
    // RAND_bytes fails only when the CSPRNG cannot seed; a fixed id still
    // works (we check ids on answers), it is merely guessable.
    id = 0x2136;
  }
  return id;
}

bool to_wire(const ldns_pkt* p, std::vector<std::uint8_t>& out) {
  std::uint8_t* raw = nullptr;
  std::size_t size = 0;
  if (ldns_pkt2wire(&raw, p, &size) != LDNS_STATUS_OK || raw == nullptr) {
    std::free(raw);
    return false;
  }
  bytes_ptr owned(raw);
  out.assign(raw, raw + size);
  return true;
}

const char* tsig_error_name(std::uint16_t e) {
  switch (e) {
    case 16: return "BADSIG";
    case 17: return "BADKEY";
    case 18: return "BADTIME";
    case 19: return "BADMODE";
    case 20: return "BADNAME";
    case 21: return "BADALG";
    case 22: return "BADTRUNC";
    case 23: return "BADCOOKIE";
  }
  return "TSIG error";
}

std::string rcode_name(ldns_pkt_rcode rc) {
  switch (rc) {
    case LDNS_RCODE_NOERROR: return "NOERROR";
    case LDNS_RCODE_FORMERR: return "FORMERR";
    case LDNS_RCODE_SERVFAIL: return "SERVFAIL";
    case LDNS_RCODE_NXDOMAIN: return "NXDOMAIN";
    case LDNS_RCODE_NOTIMPL: return "NOTIMP";
    case LDNS_RCODE_REFUSED: return "REFUSED";
    case LDNS_RCODE_YXDOMAIN: return "YXDOMAIN";
    case LDNS_RCODE_YXRRSET: return "YXRRSET";
    case LDNS_RCODE_NXRRSET: return "NXRRSET";
    case LDNS_RCODE_NOTAUTH: return "NOTAUTH";
    case LDNS_RCODE_NOTZONE: return "NOTZONE";
  }
  return "rcode " + std::to_string(static_cast<int>(rc));
}

// --- configuration ---------------------------------------------------------------

struct config {
  rfc2136_options o;
  std::string algorithm; // ldns' spelling: "hmac-sha256."
  std::string problem;   // "" when the options are usable

  explicit config(rfc2136_options opts) : o(std::move(opts)) {
    std::string alg = canonical_name(o.tsig_algorithm.empty() ? "hmac-sha256" : o.tsig_algorithm);
    if (alg == "hmac-sha256" || alg == "hmac-sha512" || alg == "hmac-sha1") {
      algorithm = alg + ".";
    } else {
      problem = "rfc2136: tsig_algorithm = \"" + o.tsig_algorithm +
                "\": must be hmac-sha256, hmac-sha512 or hmac-sha1";
    }
    if (problem.empty() && !is_host_name(canonical_name(o.tsig_name))) {
      problem = "rfc2136: tsig_name = \"" + o.tsig_name + "\": must be a key name";
    }
    if (problem.empty() && o.tsig_secret_base64.empty()) {
      problem = "rfc2136: key " + o.tsig_name + ": tsig_secret_base64 is empty: must be the key's base64 secret";
    }
    if (problem.empty() && o.server.empty()) {
      problem = "rfc2136: server is empty: must be host:port";
    }
  }

  /// The key's name as a DNS name (for ldns) and as written (for messages).
  std::string key_name() const { return canonical_name(o.tsig_name) + "."; }
  std::string key_label() const { return canonical_name(o.tsig_name); }
  std::string where() const { return "rfc2136 " + o.server; }
};

// --- the shared machinery of one exchange ----------------------------------------

/// An operation that sends queries and (for apply) one UPDATE, and checks
/// each answer: same id, a response, parseable, TSIG errors spotted first.
class exchange : public operation {
public:
  explicit exchange(std::shared_ptr<const config> c) : c_(std::move(c)) {}

protected:
  std::shared_ptr<const config> c_;
  std::uint16_t id_ = 0;

  /// A query for name/type, RD off; remembers its id.
  step query(const std::string& name, ldns_rr_type type) {
    rdf_ptr owner(ldns_dname_new_frm_str((name + ".").c_str()));
    if (!owner) {
      return step::fail(failure::permanent, c_->where() + ": name \"" + name + "\" is not a domain name");
    }
    // ldns_pkt_query_new takes ownership of the name.
    pkt_ptr q(ldns_pkt_query_new(owner.release(), type, LDNS_RR_CLASS_IN, 0));
    if (!q) {
      return step::fail(failure::permanent, c_->where() + ": ldns_pkt_query_new failed for " + name);
    }
    id_ = random_id();
    ldns_pkt_set_id(q.get(), id_);
    ldns_pkt_set_rd(q.get(), false);
    dns_request r;
    r.server = c_->o.server;
    r.tcp = c_->o.tcp;
    if (!to_wire(q.get(), r.wire)) {
      return step::fail(failure::permanent, c_->where() + ": ldns_pkt2wire failed for the query of " + name);
    }
    return step::send(std::move(r));
  }

  /// Parses an answer to the request with id_; a failure step when there is
  /// no usable answer.
  std::optional<step> parse(const dns_response& r, const std::string& what, pkt_ptr& out) {
    if (!r.transport_error.empty()) {
      return step::fail(failure::transient, c_->where() + ": " + what + ": " + r.transport_error);
    }
    ldns_pkt* raw = nullptr;
    if (r.wire.empty() ||
        ldns_wire2pkt(&raw, r.wire.data(), r.wire.size()) != LDNS_STATUS_OK || raw == nullptr) {
      if (raw != nullptr) {
        ldns_pkt_free(raw);
      }
      return step::fail(failure::transient, c_->where() + ": " + what + ": malformed answer (" +
                                                std::to_string(r.wire.size()) + " bytes)");
    }
    out.reset(raw);
    if (!ldns_pkt_qr(raw) || ldns_pkt_id(raw) != id_) {
      return step::fail(failure::transient,
                        c_->where() + ": " + what + ": answer id " + std::to_string(ldns_pkt_id(raw)) +
                          " does not answer request id " + std::to_string(id_));
    }
    if (ldns_pkt_tc(raw)) {
      return step::fail(failure::transient, c_->where() + ": " + what + ": answer truncated");
    }
    // A TSIG error (the server refuses our key) is reported in the TSIG RR
    // of the answer, with rcode NOTAUTH: name it rather than the rcode.
    if (const ldns_rr* tsig = ldns_pkt_tsig(raw)) {
      const ldns_rdf* err = ldns_rr_rd_count(tsig) > 5 ? ldns_rr_rdf(tsig, 5) : nullptr;
      if (err != nullptr && ldns_rdf_size(err) == 2) {
        std::uint16_t e = ldns_rdf2native_int16(err);
        if (e != 0) {
          return step::fail(failure::auth, c_->where() + ": " + what + ": the server rejected TSIG key " +
                                             c_->key_label() + " (" + tsig_error_name(e) +
                                             (e == 18 ? ": clocks differ by more than the fudge" : "") +
                                             ")");
        }
      }
    }
    return std::nullopt;
  }

  /// The failure an rcode other than NOERROR (and NXDOMAIN, when allowed)
  /// means; signed says whether the request carried the key.
  std::optional<step> check_rcode(const ldns_pkt* p, const std::string& what, bool nxdomain_ok,
                                  bool signed_request = false) {
    ldns_pkt_rcode rc = ldns_pkt_get_rcode(p);
    if (rc == LDNS_RCODE_NOERROR || (nxdomain_ok && rc == LDNS_RCODE_NXDOMAIN)) {
      return std::nullopt;
    }
    std::string m = c_->where() + ": " + what + ": " + rcode_name(rc);
    switch (rc) {
      case LDNS_RCODE_SERVFAIL:
        return step::fail(failure::transient, m + " (the server could not answer; retry)");
      case LDNS_RCODE_REFUSED:
      case LDNS_RCODE_NOTAUTH:
        // Unsigned queries: the server serves no zone holding the name or
        // does not answer us; the UPDATE: it also refuses the key.
        return step::fail(failure::auth,
                          m + (signed_request ? " (the server is not authoritative for the zone, or does not "
                                                "allow updates with key " + c_->key_label() + " from this address)"
                                              : " (the server serves no zone holding the name, or does not answer "
                                                "queries from this address; key " + c_->key_label() + ")"));
      default:
        return step::fail(failure::permanent, m);
    }
  }

  /// The RRs of the answer section owned by name with the given type.
  static std::vector<const ldns_rr*> rrset(const ldns_pkt* p, const std::string& name, ldns_rr_type type) {
    std::vector<const ldns_rr*> out;
    const ldns_rr_list* an = ldns_pkt_answer(p);
    for (std::size_t i = 0; an != nullptr && i < ldns_rr_list_rr_count(an); ++i) {
      const ldns_rr* rr = ldns_rr_list_rr(an, i);
      if (ldns_rr_get_type(rr) == type && ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN &&
          owner_of(rr) == name) {
        out.push_back(rr);
      }
    }
    return out;
  }
};

// --- read ----------------------------------------------------------------------------

class read_op final : public exchange {
public:
  read_op(std::shared_ptr<const config> c, record key) : exchange(std::move(c)), key_(std::move(key)) {
    key_.name = canonical_name(key_.name);
  }

  step start() override {
    if (!c_->problem.empty()) {
      return step::fail(failure::permanent, c_->problem);
    }
    if (!is_host_name(key_.name)) {
      return step::fail(failure::permanent, c_->where() + ": name \"" + key_.name + "\" is not a domain name");
    }
    return query(key_.name, to_ldns(key_.type));
  }

  step on_dns(const dns_response& r) override {
    std::string what = std::string("query ") + key_.name + " " + to_string(key_.type);
    pkt_ptr p;
    if (auto f = parse(r, what, p)) {
      return *f;
    }
    if (auto f = check_rcode(p.get(), what, true)) {
      return *f;
    }
    auto set = rrset(p.get(), key_.name, to_ldns(key_.type));
    step s = step::done_write(false);
    if (!set.empty()) {
      record live = key_;
      live.content = content_of(key_.type, set.front());
      live.ttl_s = static_cast<int>(ldns_rr_ttl(set.front()));
      live.proxied = std::nullopt;
      s.live = std::move(live);
    }
    return s;
  }

private:
  record key_;
};

// --- apply ---------------------------------------------------------------------------

class apply_op final : public exchange {
public:
  apply_op(std::shared_ptr<const config> c, record desired)
    : exchange(std::move(c)), want_(std::move(desired)) {
    want_.name = canonical_name(want_.name);
    want_.zone = canonical_name(want_.zone);
  }

  step start() override {
    if (!c_->problem.empty()) {
      return step::fail(failure::permanent, c_->problem);
    }
    if (!is_host_name(want_.name)) {
      return step::fail(failure::permanent, c_->where() + ": name \"" + want_.name + "\" is not a domain name");
    }
    rdata_ = content_for_ldns(want_.type, want_.content);
    if (rdata_.empty()) {
      return step::fail(failure::permanent, c_->where() + ": " + want_.name + " " + to_string(want_.type) +
                                                " content \"" + want_.content + "\" is not a valid " +
                                                to_string(want_.type) + " value");
    }
    if (want_.ttl_s < 0) {
      return step::fail(failure::permanent, c_->where() + ": " + want_.name + " ttl_s = " +
                                                std::to_string(want_.ttl_s) + ": must be >= 0");
    }
    if (want_.zone.empty()) {
      state_ = state::find_zone;
      return query(want_.name, LDNS_RR_TYPE_SOA);
    }
    if (auto f = check_in_zone()) {
      return *f;
    }
    state_ = state::read;
    return query(want_.name, to_ldns(want_.type));
  }

  step on_dns(const dns_response& r) override {
    switch (state_) {
      case state::find_zone: return on_soa(r);
      case state::read: return on_read(r, false);
      case state::update: return on_update(r);
      case state::confirm: return on_read(r, true);
      case state::idle: break;
    }
    return operation::on_dns(r);
  }

private:
  enum class state { idle, find_zone, read, update, confirm };
  record want_;
  std::string rdata_;
  state state_ = state::idle;
  rdf_ptr request_mac_;

  std::optional<step> check_in_zone() {
    const std::string& n = want_.name;
    const std::string& z = want_.zone;
    if (n == z || (n.size() > z.size() && n.compare(n.size() - z.size(), z.size(), z) == 0 &&
                   n[n.size() - z.size() - 1] == '.')) {
      return std::nullopt;
    }
    return step::fail(failure::permanent, c_->where() + ": name " + n + " is not in zone " + z);
  }

  step on_soa(const dns_response& r) {
    std::string what = "SOA query for " + want_.name;
    pkt_ptr p;
    if (auto f = parse(r, what, p)) {
      return *f;
    }
    // NXDOMAIN is fine (the name is new; the authority SOA names the zone).
    if (auto f = check_rcode(p.get(), what, true)) {
      return *f;
    }
    // The apex is the owner of the SOA: in the answer when the name is the
    // apex, else in the authority section of the NODATA/NXDOMAIN answer.
    std::string apex;
    for (const ldns_rr_list* sec : {ldns_pkt_answer(p.get()), ldns_pkt_authority(p.get())}) {
      for (std::size_t i = 0; sec != nullptr && apex.empty() && i < ldns_rr_list_rr_count(sec); ++i) {
        const ldns_rr* rr = ldns_rr_list_rr(sec, i);
        if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA) {
          apex = owner_of(rr);
        }
      }
    }
    if (apex.empty()) {
      return step::fail(failure::permanent,
                        c_->where() + ": " + what + ": " + rcode_name(ldns_pkt_get_rcode(p.get())) +
                          " without an SOA: the server serves no zone containing " + want_.name);
    }
    want_.zone = apex;
    if (auto f = check_in_zone()) {
      return *f;
    }
    state_ = state::read;
    return query(want_.name, to_ldns(want_.type));
  }

  step on_read(const dns_response& r, bool confirming) {
    std::string what = std::string(confirming ? "confirming query " : "query ") + want_.name + " " +
                       to_string(want_.type);
    pkt_ptr p;
    if (auto f = parse(r, what, p)) {
      return *f;
    }
    if (auto f = check_rcode(p.get(), what, true)) {
      return *f;
    }
    auto set = rrset(p.get(), want_.name, to_ldns(want_.type));
    bool in_place = set.size() == 1 &&
                    same_content(want_.type, content_of(want_.type, set.front()), want_.content) &&
                    ldns_rr_ttl(set.front()) == static_cast<std::uint32_t>(want_.ttl_s);
    if (confirming) {
      if (in_place) {
        return step::done_write(true);
      }
      std::string live = set.empty() ? "nothing" : "\"" + content_of(want_.type, set.front()) + "\"";
      return step::fail(failure::transient, c_->where() + ": the update of " + want_.name + " " +
                                              to_string(want_.type) + " was accepted but the server answers " +
                                              live + ", not \"" + want_.content + "\" ttl " +
                                              std::to_string(want_.ttl_s));
    }
    if (in_place) {
      return step::done_write(false);
    }
    state_ = state::update;
    return update();
  }

  /// One UPDATE: delete the RRset (name, type, class ANY), add the desired
  /// RR, TSIG-signed.
  step update() {
    std::string where = c_->where() + ": update of " + want_.name + " " + to_string(want_.type);
    rr_list_ptr up(ldns_rr_list_new());
    rr_ptr del(ldns_rr_new());
    rdf_ptr owner(ldns_dname_new_frm_str((want_.name + ".").c_str()));
    if (!up || !del || !owner) {
      return step::fail(failure::permanent, where + ": out of memory building the update");
    }
    ldns_rr_set_owner(del.get(), owner.release());
    ldns_rr_set_type(del.get(), to_ldns(want_.type));
    ldns_rr_set_class(del.get(), LDNS_RR_CLASS_ANY);
    ldns_rr_set_ttl(del.get(), 0);

    std::string text = want_.name + ". " + std::to_string(want_.ttl_s) + " IN " + to_string(want_.type) +
                       " " + rdata_;
    ldns_rr* add_raw = nullptr;
    if (ldns_rr_new_frm_str(&add_raw, text.c_str(), 0, nullptr, nullptr) != LDNS_STATUS_OK ||
        add_raw == nullptr) {
      if (add_raw != nullptr) {
        ldns_rr_free(add_raw);
      }
      return step::fail(failure::permanent, where + ": content \"" + want_.content + "\" does not parse");
    }
    rr_ptr add(add_raw);
    // The list takes the RRs; from here up frees them.
    if (!ldns_rr_list_push_rr(up.get(), del.get())) {
      return step::fail(failure::permanent, where + ": out of memory building the update");
    }
    del.release();
    if (!ldns_rr_list_push_rr(up.get(), add.get())) {
      return step::fail(failure::permanent, where + ": out of memory building the update");
    }
    add.release();

    rdf_ptr zone(ldns_dname_new_frm_str((want_.zone + ".").c_str()));
    if (!zone) {
      return step::fail(failure::permanent, where + ": zone \"" + want_.zone + "\" is not a domain name");
    }
    // ldns_update_pkt_new takes the zone name and copies the lists.
    pkt_ptr u(ldns_update_pkt_new(zone.release(), LDNS_RR_CLASS_IN, nullptr, up.get(), nullptr));
    if (!u) {
      return step::fail(failure::permanent, where + ": ldns_update_pkt_new failed");
    }
    id_ = random_id();
    ldns_pkt_set_id(u.get(), id_);
    ldns_pkt_set_rd(u.get(), false);
    ldns_status st = ldns_pkt_tsig_sign(u.get(), c_->key_name().c_str(), c_->o.tsig_secret_base64.c_str(),
                                        300, c_->algorithm.c_str(), nullptr);
    const ldns_rr* tsig = ldns_pkt_tsig(u.get());
    if (st != LDNS_STATUS_OK || tsig == nullptr || ldns_rr_rd_count(tsig) < 4) {
      // The status text names the reason (bad base64, unknown algorithm),
      // never the secret.
      return step::fail(failure::permanent, where + ": signing with TSIG key " + c_->key_label() + " (" +
                                              c_->algorithm + ") failed: " + ldns_get_errorstr_by_id(st));
    }
    request_mac_.reset(ldns_rdf_clone(ldns_rr_rdf(tsig, 3)));
    dns_request r;
    r.server = c_->o.server;
    r.tcp = c_->o.tcp;
    if (!request_mac_ || !to_wire(u.get(), r.wire)) {
      return step::fail(failure::permanent, where + ": ldns_pkt2wire failed");
    }
    return step::send(std::move(r));
  }

  step on_update(const dns_response& r) {
    std::string what = "update of " + want_.name + " " + to_string(want_.type) + " in zone " + want_.zone +
                       " with key " + c_->key_label();
    pkt_ptr p;
    if (auto f = parse(r, what, p)) {
      return *f;
    }
    if (ldns_pkt_get_opcode(p.get()) != LDNS_PACKET_UPDATE) {
      return step::fail(failure::transient, c_->where() + ": " + what + ": the answer is not an UPDATE answer");
    }
    ldns_pkt_rcode rc = ldns_pkt_get_rcode(p.get());
    if (rc == LDNS_RCODE_NOTZONE || rc == LDNS_RCODE_NXDOMAIN) {
      return step::fail(failure::permanent,
                        c_->where() + ": " + what + ": " + rcode_name(rc) + " (no such zone on the server)");
    }
    if (auto f = check_rcode(p.get(), what, false, true)) {
      return *f;
    }
    // Only an answer signed with our key counts as the server's word.
    if (ldns_pkt_tsig(p.get()) == nullptr) {
      return step::fail(failure::auth, c_->where() + ": " + what + ": the answer carries no TSIG");
    }
    // ldns 1.8.3 takes the TSIG RR out of the packet while it verifies and,
    // on some error paths (an algorithm it does not know), does not put it
    // back: put it back ourselves, or pkt_free would leak it.
    ldns_rr* answer_tsig = ldns_pkt_tsig(p.get());
    bool verified = ldns_pkt_tsig_verify(p.get(), r.wire.data(), r.wire.size(), c_->key_name().c_str(),
                                         c_->o.tsig_secret_base64.c_str(), request_mac_.get());
    if (ldns_pkt_tsig(p.get()) == nullptr) {
      ldns_pkt_set_tsig(p.get(), answer_tsig);
    }
    if (!verified) {
      return step::fail(failure::auth, c_->where() + ": " + what + ": the answer's TSIG does not verify");
    }
    state_ = state::confirm;
    return query(want_.name, to_ldns(want_.type));
  }
};

// --- list: not supported -------------------------------------------------------------

class list_op final : public operation {
public:
  step start() override {
    return step::fail(failure::permanent, "listing a zone is not supported over RFC 2136");
  }
};

class rfc2136_provider final : public provider {
public:
  explicit rfc2136_provider(rfc2136_options o) : c_(std::make_shared<const config>(std::move(o))) {}

  const char* kind() const override { return "rfc2136"; }
  std::unique_ptr<operation> apply(const record& desired) override {
    return std::make_unique<apply_op>(c_, desired);
  }
  std::unique_ptr<operation> read(const record& key) override {
    return std::make_unique<read_op>(c_, key);
  }
  std::unique_ptr<operation> list(const std::string&) override { return std::make_unique<list_op>(); }

private:
  std::shared_ptr<const config> c_;
};

} // namespace

std::unique_ptr<provider> make_rfc2136_provider(rfc2136_options o) {
  return std::make_unique<rfc2136_provider>(std::move(o));
}

} // namespace balctl::dns
