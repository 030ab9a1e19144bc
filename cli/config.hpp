#pragma once

// Where balctl's server URL and token come from. For each: the flag, else
// the environment (BALCTL_SERVER / BALCTL_TOKEN), else the config file, else
// the default (http://127.0.0.1:7947, no token). An empty value at any level
// counts as unset. The resolution is a pure function: main.cpp reads the
// environment and the file and passes them in.

#include <optional>
#include <string>

#include "cli/args.hpp"

namespace balctl::cli {

inline constexpr const char* default_server = "http://127.0.0.1:7947";
inline constexpr long default_timeout_s = 30;

/// The environment variables balctl reads, as main.cpp found them.
struct environment {
  std::optional<std::string> balctl_server;   // BALCTL_SERVER
  std::optional<std::string> balctl_token;    // BALCTL_TOKEN
  std::optional<std::string> xdg_config_home; // XDG_CONFIG_HOME
  std::optional<std::string> home;            // HOME
};

/// A config file's text as read by main.cpp.
struct config_file {
  std::string path;
  std::string text;
};

/// Everything the client needs to make the call.
struct connection {
  std::string server;       // base URL without trailing '/'
  std::string token;        // "" = send no Authorization header
  std::string server_from;  // "flag", "env", "file", "default"
  std::string token_from;   // "flag", "env", "file", "none"
  long timeout_s = default_timeout_s;
  std::string cacert;       // "" = the system CA store
  bool insecure = false;
  bool verbose = false;
};

struct connection_result {
  connection conn;
  std::string error; // "" when ok; never contains the token
  bool ok() const { return error.empty(); }
};

/// $XDG_CONFIG_HOME/balctl/config.json, else $HOME/.config/balctl/config.json,
/// else "" (no default file).
std::string default_config_path(const environment& env);

/// Flags beat env beat file beat defaults. file may be absent (no file).
connection_result resolve_connection(const global_options& flags, const environment& env,
                                     const std::optional<config_file>& file);

enum class read_status { ok, missing, failed };
struct read_result {
  read_status status = read_status::failed;
  std::string text;
  std::string error; // names the path and the reason
};

/// Reads a whole file (I/O; main.cpp only).
read_result read_text_file(const std::string& path);

} // namespace balctl::cli
