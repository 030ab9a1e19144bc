#pragma once

// The engine's side of the admin API (api/control.hpp): each call becomes
// requests to the supervisor or a pool actor, made by a
// short-lived helper actor that hands the answer to the callback (on a CAF
// worker thread; the HTTP server takes responses from any thread).

#include <atomic>
#include <memory>

#include "actors/messages.hpp"
#include "api/control.hpp"
#include "engine/registry.hpp"

namespace balctl {

class control_impl final : public api::control {
public:
  control_impl(caf::actor_system& sys, caf::actor supervisor,
               std::shared_ptr<registry> reg,
               std::string agent_version_latest);

  void list_pools(api::done<std::vector<pool_summary>> cb) override;
  void create_pool(pool_config pc, api::done<pool_summary> cb) override;
  void get_pool(const std::string& pool, api::done<pool_summary> cb) override;
  void rename_pool(const std::string& pool, const std::string& label,
                   api::done<pool_summary> cb) override;
  void delete_pool(const std::string& pool, bool force,
                   api::done<bool> cb) override;
  void update_settings(const std::string& pool, const std::string& patch,
                       api::done<pool_summary> cb) override;
  void overview(const std::string& pool, std::uint64_t offset,
                std::uint64_t limit, api::done<pool_overview> cb) override;
  void add_member(const std::string& pool, new_member m,
                  api::done<enrollment_ticket> cb) override;
  void list_members(const std::string& pool, std::uint64_t offset,
                    std::uint64_t limit, api::done<member_page> cb) override;
  void get_member(const std::string& pool, member_id m,
                  api::done<member_info> cb) override;
  void get_member_detail(const std::string& pool, member_id m,
                         api::done<api::member_detail> cb) override;
  void remove_member(const std::string& pool, member_id m, bool force,
                     api::done<bool> cb) override;
  void cut_pool(const std::string& pool, member_id m, bool force,
                api::done<pool_summary> cb) override;
  void reenrol(const std::string& pool, member_id m,
               api::done<enrollment_ticket> cb) override;
  void dns_catalogue(const std::string& pool, std::uint64_t offset, std::uint64_t limit,
                     api::done<balctl::dns_catalogue> cb) override;
  void list_accounts(const std::string& pool, std::uint64_t offset, std::uint64_t limit,
                     api::done<account_page> cb) override;
  void get_account(const std::string& pool, const std::string& id,
                   api::done<account_view> cb) override;
  void put_account(const std::string& pool, const std::string& id, const std::string& body,
                   api::done<account_view> cb) override;
  void delete_account(const std::string& pool, const std::string& id,
                      api::done<bool> cb) override;
  void cut_account(const std::string& pool, const std::string& id, const std::string& side,
                   bool force, api::done<account_view> cb) override;
  void dns_action(const std::string& pool, const std::string& what, const std::string& account,
                  api::done<std::uint64_t> cb) override;
  void list_providers(const std::string& pool,
                      api::done<std::vector<dns_provider_config>> cb) override;
  void put_provider(const std::string& pool, const std::string& id, const std::string& body,
                    api::done<std::vector<dns_provider_config>> cb) override;
  void delete_provider(const std::string& pool, const std::string& id,
                       api::done<std::vector<dns_provider_config>> cb) override;
  void activity(const std::string& pool, std::int64_t before,
                std::uint64_t limit, member_id member,
                api::done<std::vector<activity_record>> cb) override;
  void enroll(const std::string& hostname, const std::string& secret,
              const std::string& source_ip,
              api::done<enrollment_grant> cb) override;
  api::state_counts count_states() const override;
  bool ready() const override { return ready_.load(); }
  void ping(api::done<bool> cb) override;

  void set_ready(bool r) { ready_.store(r); }
  /// Cluster: the node's cluster actor (before the API answers).
  void set_cluster(caf::actor c) { cluster_ = std::move(c); }
  void cluster_status(api::done<std::string> cb) override;

  // -- Protection --------------------------------------------------------
  void queue_job(const std::string& pool, const std::string& body,
                 api::done<std::string> cb) override;
  void list_jobs(const std::string& pool, member_id m, api::done<std::string> cb) override;
  void get_job(const std::string& pool, const std::string& id,
               api::done<std::string> cb) override;
  void cancel_job(const std::string& pool, const std::string& id,
                  api::done<std::string> cb) override;
  void replicate(const std::string& pool, const std::string& account,
                 api::done<std::string> cb) override;
  void replication(const std::string& pool, const std::string& account,
                   api::done<std::string> cb) override;
  void agent_call(member_id m, const std::string& method, const std::string& path,
                  const std::string& body, api::done<std::string> cb) override;
  void monitoring(const std::string& pool, member_id m, const std::string& body,
                  api::done<std::string> cb) override;
  std::optional<protocol::key> agent_key(member_id m) const override;

  /// A CAF error as the API's failure (refuse() context, timeouts).
  static api::failure to_failure(caf::actor_system& sys, const caf::error& e);

private:
  caf::actor_system& sys_;
  caf::actor supervisor_;
  caf::actor cluster_;
  std::shared_ptr<registry> reg_;
  std::string agent_version_latest_; // older agents count as outdated
  std::atomic<bool> ready_{false};
};

} // namespace balctl
