#include "cli/config.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace balctl::cli {

namespace {

using json = nlohmann::json;

std::optional<std::string> non_empty(const std::optional<std::string>& v) {
  if (v && !v->empty()) {
    return v;
  }
  return std::nullopt;
}

struct file_values {
  std::optional<std::string> server;
  std::optional<std::string> token;
};

/// Parses {"server":"...","token":"..."}. Unknown keys are errors: a typo
/// ("sever") must not silently fall back to the default server.
std::string parse_file(const config_file& file, file_values& out) {
  json j = json::parse(file.text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return "config " + file.path + ": not a JSON object";
  }
  for (const auto& [key, value] : j.items()) {
    if (key != "server" && key != "token") {
      return "config " + file.path + ": unknown key \"" + key +
             "\" (expected \"server\" and \"token\")";
    }
    if (!value.is_string()) {
      return "config " + file.path + ": \"" + key + "\" must be a string";
    }
    (key == "server" ? out.server : out.token) = value.get<std::string>();
  }
  return "";
}

/// Tokens go into an HTTP header: a control character or space would let
/// the value end the header early. Says where it came from, never the value.
std::string check_token(const std::string& token, const std::string& from) {
  for (unsigned char c : token) {
    if (c <= 0x20 || c == 0x7F) {
      return "token from " + from + " contains a space or control character";
    }
  }
  return "";
}

std::string check_server(std::string& server, const std::string& from) {
  while (!server.empty() && server.back() == '/') {
    server.pop_back();
  }
  if (server.rfind("http://", 0) != 0 && server.rfind("https://", 0) != 0) {
    return "server from " + from + " = " + server + ": must start with http:// or https://";
  }
  if (server.find_first_of("?# \t\r\n") != std::string::npos) {
    return "server from " + from + " = " + server +
           ": must be a base URL without query, fragment or spaces";
  }
  return "";
}

} // namespace

std::string default_config_path(const environment& env) {
  if (auto xdg = non_empty(env.xdg_config_home)) {
    return *xdg + "/balctl/config.json";
  }
  if (auto home = non_empty(env.home)) {
    return *home + "/.config/balctl/config.json";
  }
  return "";
}

connection_result resolve_connection(const global_options& flags, const environment& env,
                                     const std::optional<config_file>& file) {
  connection_result r;
  file_values fv;
  if (file) {
    r.error = parse_file(*file, fv);
    if (!r.error.empty()) {
      return r;
    }
  }
  connection& c = r.conn;
  if (auto v = non_empty(flags.server)) {
    c.server = *v, c.server_from = "flag";
  } else if (auto v = non_empty(env.balctl_server)) {
    c.server = *v, c.server_from = "env";
  } else if (auto v = non_empty(fv.server)) {
    c.server = *v, c.server_from = "file";
  } else {
    c.server = default_server, c.server_from = "default";
  }
  if (auto v = non_empty(flags.token)) {
    c.token = *v, c.token_from = "flag";
  } else if (auto v = non_empty(env.balctl_token)) {
    c.token = *v, c.token_from = "env";
  } else if (auto v = non_empty(fv.token)) {
    c.token = *v, c.token_from = "file";
  } else {
    c.token_from = "none";
  }
  auto where = [&](const std::string& from, const char* flag) {
    return from == "flag" ? std::string(flag)
         : from == "env"  ? std::string("environment")
         : from == "file" ? "config " + file->path
                          : std::string("default");
  };
  r.error = check_server(c.server, where(c.server_from, "--server"));
  if (r.error.empty()) {
    r.error = check_token(c.token, where(c.token_from, "--token"));
  }
  c.timeout_s = flags.timeout_s.value_or(default_timeout_s);
  c.cacert = flags.cacert.value_or("");
  c.insecure = flags.insecure;
  c.verbose = flags.verbose;
  return r;
}

read_result read_text_file(const std::string& path) {
  read_result r;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    r.status = err == ENOENT ? read_status::missing : read_status::failed;
    r.error = "config " + path + ": " + std::strerror(err);
    return r;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    r.error = "config " + path + ": read failed";
    return r;
  }
  r.status = read_status::ok;
  r.text = ss.str();
  return r;
}

} // namespace balctl::cli
