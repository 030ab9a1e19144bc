#pragma once

// DNS executor: one actor per provider credential (dns_providers[]). It
// takes the DNS changes that decisions and operators ask for, journals them
// in the store before any provider hears of them, and carries them out
// through the provider's operations (adapters/dns), whose requests run on
// the shared dns_io loop; answers come back as messages. Ordering, the
// credential's rate limit and retries are engine/dns_queue's rules.
//
//   (submit_atom, vector<dns_change_record>) -> vector<dns_change_record>
//       id 0: journaled here first; id set: resumed from the journal.
//       The answer comes when every change has ended: status done (wrote:
//       error "" / "in place"), superseded or failed (error says why).
//       A change that keeps failing for a reason that may pass (network,
//       5xx, 429, refused credentials) is retried, never answered failed.
//   (read_atom, vector<dns_change_record> keys) -> vector<dns_change_record>
//       Refresh DNS: each key's live record (zone, name, type) read, not
//       journaled: status "found" with content, ttl_s and proxied as the
//       provider has them, "missing", or "failed" with the error. Reads
//       wait behind changes (priority 2) and a 429 is waited out.
//   (list_atom, std::string zone) -> vector<dns_change_record>
//       Every record of the zone (Import, Sync WHM→Cloudflare); a failure
//       is an error (refuse: dns_provider_failed).
//   (settings_atom, dns_provider_config)
//       New credentials or limits (an operator rotated a key): requests
//       from now on use them; changes in flight carry on.
//   (get_atom) -> vector<uint64_t> {queued, running, requests in window}
//
// To the submitter, while a change keeps failing:
//   (dns_alert_atom, pool, message)   on the first failure and every 5th.
// With no provider (provider null), changes are journaled and marked done
// at once: the pool has no DNS account configured, decisions are recorded.
//
// engine_metrics' decision-to-first-request latency is measured per batch
// (one decision's changes at this credential): from the changes'
// created_ms (the decision) to the first request any of them makes.

#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "actors/messages.hpp"
#include "adapters/dns/dns_io.hpp"
#include "engine/clock.hpp"
#include "engine/dns_queue.hpp"
#include "engine/metrics.hpp"

namespace balctl {

struct dns_executor_deps {
  std::string provider_id;
  int priority_reserve_pct = 10; // share of the rate window kept for priority 0
  std::shared_ptr<dns::provider> provider; // null = record only
  std::shared_ptr<dns::transport> io;
  dns::http_options http;
  std::int64_t dns_timeout_ms = 5'000;
  int rate_limit = 0;              // requests per window, 0 = none
  std::int64_t rate_window_ms = 300'000;
  int max_in_flight = 8;
  caf::actor store;
  const clock* clk = nullptr;
  engine_metrics* metrics = nullptr;
};

struct dns_executor_state {
  struct running {
    dns_job job;
    std::unique_ptr<dns::operation> op;
    dns::step pending;          // the request waiting for a rate slot
    bool waiting_rate = false;
    std::uint64_t token = 0;    // answers to an older request are ignored
    bool sent_any = false;
  };
  struct batch {
    caf::response_promise rp;
    caf::actor submitter;
    std::vector<dns_change_record> results;
    std::size_t left = 0;
    std::int64_t decided_ms = 0; // 0 = resumed, no latency figure
    bool sent_any = false;
    bool list = false;           // results are the zone's records
  };
  dns_executor_deps deps;
  dns_queue queue;
  rate_window window;
  std::unordered_map<std::int64_t, running> runs;   // by change id
  std::unordered_map<std::int64_t, batch> batches;  // by batch id
  std::unordered_map<std::int64_t, std::pair<std::int64_t, std::size_t>> slot_of; // change → (batch, index)
  std::int64_t next_batch = 1;
  std::int64_t next_read_id = -1; // reads and lists: not journaled
  std::uint64_t next_token = 1;
  std::int64_t armed_ms = 0;
  std::int64_t started_ms = 0;
  std::mt19937_64 rng{std::random_device{}()};
  std::unordered_set<std::string> given_up; // cluster: pools another node owns now
  static inline const char* name = "dns_executor";
};

caf::behavior dns_executor(caf::stateful_actor<dns_executor_state>* self,
                           dns_executor_deps deps);

/// The journal form of a change to `desired` for pool (decision 0 = an
/// operator's).
dns_change_record make_dns_change(const std::string& pool,
                                  const std::string& provider,
                                  std::int64_t decision, int priority,
                                  const dns::record& desired);
dns::record record_of(const dns_change_record& c);
/// The journal form of a record a provider reported (zone listed, read).
dns_change_record change_of(const dns::record& r);

} // namespace balctl
