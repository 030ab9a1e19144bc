#include "adapters/store/store.hpp"

namespace balctl {

const char* to_string(activity_kind k) {
  switch (k) {
    case activity_kind::enrolled: return "enrolled";
    case activity_kind::member_added: return "member_added";
    case activity_kind::member_removed: return "member_removed";
    case activity_kind::state_change: return "state_change";
    case activity_kind::decision: return "decision";
    case activity_kind::pool_created: return "pool_created";
    case activity_kind::pool_renamed: return "pool_renamed";
    case activity_kind::settings_changed: return "settings_changed";
    case activity_kind::dns_change: return "dns_change";
    case activity_kind::dns_alert: return "dns_alert";
    case activity_kind::account_changed: return "account_changed";
    case activity_kind::account_cut: return "account_cut";
    case activity_kind::dns_provider_changed: return "dns_provider_changed";
    case activity_kind::replication_sync: return "replication_sync";
    case activity_kind::replication_transfer: return "replication_transfer";
    case activity_kind::replication_failed: return "replication_failed";
    case activity_kind::job: return "job";
  }
  return "unknown";
}

activity_record to_record(const std::string& pool, const activity_line& l) {
  activity_record r;
  r.pool = pool;
  r.at_ms = l.at_ms;
  r.kind = to_string(l.kind);
  r.member = l.member;
  r.message = l.message;
  if (l.kind == activity_kind::state_change) {
    r.from_state = to_string(l.from);
    r.to_state = to_string(l.to);
  }
  return r;
}

} // namespace balctl
