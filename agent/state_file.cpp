#include "agent/state_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

namespace balctl::agent {

namespace {

using json = nlohmann::json;

std::string errno_text(int e) { return std::strerror(e); }

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool write_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    auto n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  return true;
}

} // namespace

std::optional<agent_state> load_state(const std::string& path, std::string* error) {
  auto fail = [&](const std::string& why) {
    if (error != nullptr) {
      *error = "state file " + path + ": " + why;
    }
    return std::nullopt;
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return fail(errno == ENOENT ? std::string("does not exist (enrol first: balctl-agent --enrol ...)")
                                : errno_text(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    // A directory (say) would otherwise be reported as a mode problem or
    // as invalid JSON.
    return fail("is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return fail(std::string("mode ") + mode +
                " lets others read the heartbeat key; chmod 600 it");
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) {
    return fail("cannot be read");
  }
  json j;
  try {
    j = json::parse(text.str());
  } catch (const json::parse_error& e) {
    return fail(std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) {
    return fail("must be a JSON object");
  }
  agent_state s;
  std::string key_hex;
  try {
    auto req = [&](const char* field) -> const json& {
      auto it = j.find(field);
      if (it == j.end()) {
        throw std::runtime_error(std::string(field) + ": missing");
      }
      return *it;
    };
    auto str = [&](const char* field, std::string& out, bool required) {
      auto it = j.find(field);
      if (it == j.end()) {
        if (required) {
          throw std::runtime_error(std::string(field) + ": missing");
        }
        return;
      }
      if (!it->is_string()) {
        throw std::runtime_error(std::string(field) + ": must be a string");
      }
      out = it->get<std::string>();
    };
    const auto& m = req("member_id");
    if (!m.is_number_unsigned() || m.get<std::uint64_t>() == 0) {
      throw std::runtime_error("member_id: must be a positive integer");
    }
    s.member = m.get<std::uint64_t>();
    str("pool", s.pool, false);
    str("hostname", s.hostname, true);
    str("key", key_hex, true);
    if (!protocol::key_from_hex(key_hex, s.key)) {
      throw std::runtime_error("key: must be 64 hex characters");
    }
    str("api_base", s.api_base, false);
    str("heartbeat_udp", s.heartbeat_udp, true);
    str("heartbeat_tls", s.heartbeat_tls, false);
    str("transport", s.transport, false);
    if (s.transport != "udp" && s.transport != "tls" && s.transport != "auto") {
      throw std::runtime_error("transport: must be udp, tls or auto");
    }
    str("ca_file", s.ca_file, false);
    str("tls_server_name", s.tls_server_name, false);
    if (auto it = j.find("interval_s"); it != j.end()) {
      // Range-checked as 64-bit: get<int>() would truncate 4294967298 to 2.
      if (!it->is_number_integer() || it->get<std::int64_t>() < 1 ||
          it->get<std::int64_t>() > 60) {
        throw std::runtime_error("interval_s: must be an integer 1..60");
      }
      s.interval_s = it->get<int>();
    }
    if (auto it = j.find("seq_reserved"); it != j.end()) {
      if (!it->is_number_unsigned()) {
        throw std::runtime_error("seq_reserved: must be a non-negative integer");
      }
      s.seq_reserved = it->get<std::uint64_t>();
    }
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return s;
}

std::string save_state(const std::string& path, const agent_state& s) {
  json j = {{"member_id", s.member},
            {"pool", s.pool},
            {"hostname", s.hostname},
            {"key", protocol::key_to_hex(s.key)},
            {"api_base", s.api_base},
            {"heartbeat_udp", s.heartbeat_udp},
            {"interval_s", s.interval_s},
            {"transport", s.transport},
            {"seq_reserved", s.seq_reserved}};
  if (!s.heartbeat_tls.empty()) {
    j["heartbeat_tls"] = s.heartbeat_tls;
  }
  if (!s.ca_file.empty()) {
    j["ca_file"] = s.ca_file;
  }
  if (!s.tls_server_name.empty()) {
    j["tls_server_name"] = s.tls_server_name;
  }
  auto text = j.dump(2) + "\n";
  auto tmp = path + ".tmp";
  auto fail = [&](const char* what, int e) {
    return "state file " + path + ": " + what + ": " + errno_text(e);
  };
  // O_EXCL after an unlink: a stale temp file from a crash is replaced,
  // and the new file is created 0600 from the start (never briefly 0644).
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return fail("create", errno);
  }
  if (!write_all(fd, text) || ::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail("write", e);
  }
  if (::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return fail("close", e);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return fail("rename", e);
  }
  // The rename is durable once the directory is synced.
  int dir = ::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    (void)::fsync(dir);
    ::close(dir);
  }
  return {};
}

seq_source::seq_source(std::string path, agent_state& state, std::uint64_t block)
  : path_(std::move(path)), state_(state), block_(block == 0 ? 1 : block) {}

std::string seq_source::reserve(std::uint64_t from) {
  // from + block_ must not wrap: a wrapped (small) reservation would be
  // saved and the next run would reuse numbers the engine already took.
  if (from > std::numeric_limits<std::uint64_t>::max() - block_) {
    return "state file " + path_ + ": sequence numbers exhausted (" +
           std::to_string(from) + " + " + std::to_string(block_) +
           " overflows); re-enrol this member";
  }
  auto before = state_.seq_reserved;
  state_.seq_reserved = from + block_;
  auto err = save_state(path_, state_);
  if (!err.empty()) {
    state_.seq_reserved = before;
  }
  return err;
}

std::string seq_source::start(std::int64_t now_ms) {
  auto from = std::max<std::uint64_t>(
    state_.seq_reserved, now_ms > 0 ? static_cast<std::uint64_t>(now_ms) : 0);
  if (from == 0) {
    from = 1;
  }
  auto err = reserve(from);
  if (err.empty()) {
    next_ = from;
  }
  return err;
}

std::optional<std::uint64_t> seq_source::next(std::string* error) {
  if (next_ == 0) {
    if (error != nullptr) {
      *error = "sequence numbers not started";
    }
    return std::nullopt;
  }
  if (next_ >= state_.seq_reserved) {
    auto err = reserve(next_);
    if (!err.empty()) {
      if (error != nullptr) {
        *error = err;
      }
      return std::nullopt;
    }
  }
  return next_++;
}

std::string seq_source::skip_past(std::uint64_t last) {
  if (last < next_) {
    return {};
  }
  if (last == std::numeric_limits<std::uint64_t>::max()) {
    return "state file " + path_ + ": the engine's last sequence number is " +
           std::to_string(last) + ", nothing is left above it; re-enrol this member";
  }
  auto err = reserve(last + 1);
  if (err.empty()) {
    next_ = last + 1;
  }
  return err;
}

} // namespace balctl::agent
