#include "api/auth.hpp"

#include "engine/secrets.hpp"

namespace balctl::api {

role token_auth::check(std::string_view authorization, std::string* who) const {
  constexpr std::string_view scheme = "Bearer ";
  if (authorization.size() <= scheme.size()) {
    return role::none;
  }
  // The scheme is case-insensitive (RFC 7235).
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    auto c = authorization[i];
    if ((c | 0x20) != (scheme[i] | 0x20)) {
      return role::none;
    }
  }
  auto token = authorization.substr(scheme.size());
  while (!token.empty() && token.front() == ' ') {
    token.remove_prefix(1);
  }
  if (token.empty()) {
    return role::none;
  }
  auto digest = secrets::sha256(token);
  // Every configured hash is compared, match or not.
  const admin_token* found = nullptr;
  for (const auto& t : tokens_) {
    if (secrets::equal(digest, t.sha256) && found == nullptr) {
      found = &t;
    }
  }
  if (found == nullptr) {
    return role::none;
  }
  if (who != nullptr) {
    *who = found->name;
  }
  return found->admin ? role::admin : role::read_only;
}

} // namespace balctl::api
