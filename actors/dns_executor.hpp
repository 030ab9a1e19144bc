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
//   (get_atom) -> dns_executor_stats
//
// To the submitter, while a change keeps failing:
//   (dns_alert_atom, pool, message)   on the first failure and every 5th.
// With no provider (provider null), changes are journaled and marked done
// at once: the pool has no DNS account configured, decisions are recorded.

#include <memory>
#include <random>
#include <string>
#include <unordered_map>

#include "actors/messages.hpp"
#include "adapters/dns/dns_io.hpp"
#include "engine/clock.hpp"
#include "engine/dns_queue.hpp"
#include "engine/metrics.hpp"

namespace balctl {

struct dns_executor_deps {
  std::string provider_id;
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
  };
  dns_executor_deps deps;
  dns_queue queue;
  rate_window window;
  std::unordered_map<std::int64_t, running> runs;   // by change id
  std::unordered_map<std::int64_t, batch> batches;  // by batch id
  std::unordered_map<std::int64_t, std::pair<std::int64_t, std::size_t>> slot_of; // change → (batch, index)
  std::int64_t next_batch = 1;
  std::uint64_t next_token = 1;
  std::int64_t armed_ms = 0;
  std::mt19937_64 rng{std::random_device{}()};
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

} // namespace balctl
