#pragma once

// Bearer-token authentication for the admin API. Only SHA-256 hashes of
// the tokens are configured (DESIGN.md, Security); a presented token is
// hashed and compared with every configured hash in constant time, so the
// answer's timing tells nothing about which bytes matched.

#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace balctl::api {

enum class role { none, read_only, admin };

class token_auth {
public:
  explicit token_auth(std::vector<admin_token> tokens) : tokens_(std::move(tokens)) {}

  /// The role of the token in an Authorization header value
  /// ("Bearer <token>"), or none. The token's holder name goes to *who.
  role check(std::string_view authorization, std::string* who = nullptr) const;

private:
  std::vector<admin_token> tokens_;
};

} // namespace balctl::api
