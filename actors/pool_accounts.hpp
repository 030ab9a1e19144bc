#pragma once

// The pool actor's Managed DNS side (the seed's Protection and Managed DNS
// tabs), apart from pool.cpp: protected accounts' cuts, the DNS catalogue,
// Refresh DNS, Import from Cloudflare, Sync WHM→Cloudflare and the pool's
// API provider credentials. The rules are engine/accounts' (account_book);
// this file turns its cuts into journaled DNS changes and answers the
// admin API.
//
// A cut (automatic or an operator's): the accounts' new sides and their DNS
// changes are written in one store transaction, then handed to the router
// with their journal ids, so a crash keeps both or neither and the next
// start resumes the changes from the journal, exactly once.
//
// Messages (besides pool.cpp's):
//   (accounts_atom, offset, limit) -> account_page
//   (account_atom, id) -> account_view
//   (put_account_atom, id ("" = add), body) -> account_view
//   (delete_account_atom, id) -> bool
//   (cut_atom, id, side, force) -> account_view       Account Cut DNS
//   (managed_dns_atom, offset, limit) -> dns_catalogue
//   (refresh_atom, account ("" = all)) -> uint64_t   reads queued
//   (import_atom, account ("" = all)) -> uint64_t    zones queued
//   (sync_atom, account ("" = all)) -> uint64_t      zones queued
//   (providers_atom) -> vector<dns_provider_config>
//   (put_provider_atom, id ("" = add), body) -> vector<dns_provider_config>
//   (delete_provider_atom, id) -> vector<dns_provider_config>

#include <optional>
#include <string>

#include "actors/pool.hpp"

namespace balctl {

using pool_self = caf::stateful_actor<pool_actor_state>*;

// -- from pool.cpp -----------------------------------------------------------
/// One line in the pool's activity log.
void pool_note(pool_self self, activity_kind kind, member_id m, std::string message);
/// The address a record takes while m holds it: its public address of the
/// family, else its first allowed IP of the family; "" when none.
std::string pool_member_address(pool_self self, member_id m, bool ipv6);
/// Arms the pool's one timer at its earliest deadline (members, policy,
/// accounts' automatic fail-backs).
void arm_pool(pool_self self);

// -- pool_accounts.cpp -------------------------------------------------------
/// After the pool's policy saw something change (member `changed`, 0 =
/// none): the accounts it touches are evaluated, all of them when a network
/// hold has just ended, and automatic fail-backs that are due are taken.
void accounts_step(pool_self self, member_id changed, std::int64_t now_ms);
/// Every account evaluated (start, settings changed).
void accounts_evaluate_all(pool_self self, std::int64_t now_ms);
/// Why member m may not be removed (it carries protected accounts).
std::optional<caf::error> accounts_block_removal(pool_self self, member_id m);
/// Why the pool's credential `id` may not be deleted (it is in use).
std::optional<caf::error> provider_in_use(pool_self self, const std::string& id);
/// Whether id names a credential the pool may use (its own or the file's).
bool pool_has_provider(pool_self self, const std::string& id);
caf::message_handler accounts_handlers(pool_self self);
/// Tells the pool's protection actor which accounts it protects now.
void accounts_to_protection(pool_self self);

} // namespace balctl
