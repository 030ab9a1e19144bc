#include "agent/detect.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/log.hpp"
#include "engine/text.hpp"

extern char** environ;

namespace balctl::agent {

namespace {

// ---------------------------------------------------------------------------
// Small owners for the C resources of run_command.

class fd_owner {
 public:
  explicit fd_owner(int fd = -1) : fd_(fd) {}
  fd_owner(const fd_owner&) = delete;
  fd_owner& operator=(const fd_owner&) = delete;
  ~fd_owner() { reset(); }
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = fd;
  }

 private:
  int fd_;
};

pid_t waitpid_eintr(pid_t pid, int* status, int options) {
  for (;;) {
    pid_t w = ::waitpid(pid, status, options);
    if (w >= 0 || errno != EINTR) {
      return w;
    }
  }
}

/// A started child that must be reaped. If anything goes wrong before
/// run_command reaps it, the destructor kills its process group and waits:
/// never a zombie, never an orphan left running.
class child_owner {
 public:
  explicit child_owner(pid_t pid) : pid_(pid) {}
  child_owner(const child_owner&) = delete;
  child_owner& operator=(const child_owner&) = delete;
  ~child_owner() {
    if (!reaped_) {
      kill_and_reap();
    }
  }
  pid_t pid() const { return pid_; }
  /// Non-blocking. True when the child has exited (and is now reaped).
  bool try_reap() {
    int status = 0;
    pid_t w = waitpid_eintr(pid_, &status, WNOHANG);
    if (w == pid_) {
      reaped_ = true;
      status_ = status;
      return true;
    }
    if (w < 0) {
      // ECHILD: someone else reaped it (SIGCHLD ignored by the process).
      // The status is lost; report it as failed.
      reaped_ = true;
      status_ = -1;
      return true;
    }
    return false;
  }
  void kill_and_reap() {
    // The child is not reaped yet, so its pid (and the process group id it
    // leads) cannot have been reused: signalling the group is safe. The
    // group also takes down grandchildren (a shell script's `sleep`).
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    int status = 0;
    pid_t w = waitpid_eintr(pid_, &status, 0);
    reaped_ = true;
    status_ = w == pid_ ? status : -1;
  }
  int status() const { return status_; }

 private:
  pid_t pid_;
  bool reaped_ = false;
  int status_ = -1;
};

class spawn_actions {
 public:
  spawn_actions() { ok_ = ::posix_spawn_file_actions_init(&fa_) == 0; }
  ~spawn_actions() {
    if (ok_) {
      ::posix_spawn_file_actions_destroy(&fa_);
    }
  }
  spawn_actions(const spawn_actions&) = delete;
  spawn_actions& operator=(const spawn_actions&) = delete;
  bool ok() const { return ok_; }
  posix_spawn_file_actions_t* get() { return &fa_; }

 private:
  posix_spawn_file_actions_t fa_;
  bool ok_ = false;
};

class spawn_attr {
 public:
  spawn_attr() { ok_ = ::posix_spawnattr_init(&a_) == 0; }
  ~spawn_attr() {
    if (ok_) {
      ::posix_spawnattr_destroy(&a_);
    }
  }
  spawn_attr(const spawn_attr&) = delete;
  spawn_attr& operator=(const spawn_attr&) = delete;
  bool ok() const { return ok_; }
  posix_spawnattr_t* get() { return &a_; }

 private:
  posix_spawnattr_t a_;
  bool ok_ = false;
};

/// A pidfd becomes readable when the process exits (Linux >= 5.3). -1 when
/// unavailable (older kernel, seccomp): run_command then polls in slices.
int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) {
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    return static_cast<int>(fd);
  }
#else
  (void)pid;
#endif
  return -1;
}

/// How long to sleep in poll when no pidfd tells us about the exit.
constexpr int exit_poll_slice_ms = 10;

/// Reads what the pipe has now. Returns false at end of file or on error.
/// Keeps the first max_bytes, or with keep_tail the last ones (trimmed in
/// steps so a flood costs amortised O(1) per byte).
bool drain_pipe(int fd, std::string& out, std::size_t max_bytes, bool keep_tail,
                bool& truncated) {
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      auto got = static_cast<std::size_t>(n);
      if (keep_tail) {
        out.append(buf, got);
        if (out.size() > 2 * max_bytes) {
          out.erase(0, out.size() - max_bytes);
          truncated = true;
        }
        continue;
      }
      std::size_t room = max_bytes > out.size() ? max_bytes - out.size() : 0;
      truncated = truncated || got > room;
      out.append(buf, std::min(room, got));
      continue;
    }
    if (n == 0) {
      return false;
    }
    if (errno == EINTR) {
      continue;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

/// How often a command with a cancel flag looks at it.
constexpr int cancel_poll_slice_ms = 100;

command_result run_command_impl(const command_spec& spec) {
  const auto& argv = spec.argv;
  const auto timeout_ms = spec.timeout_ms;
  const auto max_bytes = spec.max_bytes;
  command_result r;
  if (argv.empty() || argv[0].empty()) {
    return r;
  }
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);

  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    return r;
  }
  fd_owner rd(p[0]);
  fd_owner wr(p[1]);

  spawn_actions fa;
  spawn_attr attr;
  if (!fa.ok() || !attr.ok()) {
    return r;
  }
  // dup2 clears close-on-exec on the target; every other descriptor of the
  // agent is either close-on-exec or closed by closefrom.
  if (::posix_spawn_file_actions_addopen(fa.get(), 0, "/dev/null", O_RDONLY, 0) != 0 ||
      ::posix_spawn_file_actions_adddup2(fa.get(), wr.get(), 1) != 0 ||
      (spec.with_stderr
         ? ::posix_spawn_file_actions_adddup2(fa.get(), wr.get(), 2)
         : ::posix_spawn_file_actions_addopen(fa.get(), 2, "/dev/null", O_WRONLY, 0)) != 0) {
    return r;
  }
  // The agent's environment with spec.env laid over it (same name: replaced).
  std::vector<std::string> env_storage;
  std::vector<char*> envp;
  char** env = environ;
  if (!spec.env.empty()) {
    auto name_of = [](const std::string& kv) { return kv.substr(0, kv.find('=')); };
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      std::string kv(*e);
      bool replaced = false;
      for (const auto& extra : spec.env) {
        replaced = replaced || name_of(extra) == name_of(kv);
      }
      if (!replaced) {
        env_storage.push_back(std::move(kv));
      }
    }
    env_storage.insert(env_storage.end(), spec.env.begin(), spec.env.end());
    for (auto& kv : env_storage) {
      envp.push_back(kv.data());
    }
    envp.push_back(nullptr);
    env = envp.data();
  }
#if defined(__GLIBC__) && defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 34)
  ::posix_spawn_file_actions_addclosefrom_np(fa.get(), 3);
#endif
#endif
  // Own process group, so a timeout kills the whole command; default signal
  // dispositions (the agent may ignore SIGPIPE) and an empty mask.
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  if (::posix_spawnattr_setflags(attr.get(), POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                                 POSIX_SPAWN_SETSIGMASK) != 0 ||
      ::posix_spawnattr_setpgroup(attr.get(), 0) != 0 ||
      ::posix_spawnattr_setsigdefault(attr.get(), &all) != 0 ||
      ::posix_spawnattr_setsigmask(attr.get(), &none) != 0) {
    return r;
  }

  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, args[0], fa.get(), attr.get(), args.data(), env);
  if (rc != 0) {
    // Missing or not executable: glibc reports the exec failure here and has
    // already reaped the short-lived child.
    return r;
  }
  r.ran = true;
  child_owner child(pid);
  wr.reset(); // our copy of the write end: EOF once the child closes its own

  fd_owner pidfd(open_pidfd(pid));
  ::fcntl(rd.get(), F_SETFL, ::fcntl(rd.get(), F_GETFL) | O_NONBLOCK);

  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
  bool pipe_open = true;
  for (;;) {
    if (child.try_reap()) {
      // Whatever is in the pipe now was written before the exit (or by a
      // grandchild still holding it: not waited for).
      if (pipe_open) {
        drain_pipe(rd.get(), r.out, max_bytes, spec.keep_tail, r.truncated);
      }
      break;
    }
    if (spec.cancel != nullptr && spec.cancel->load()) {
      r.cancelled = true;
      child.kill_and_reap();
      break;
    }
    const auto now = clock::now();
    if (now >= deadline) {
      r.timed_out = true;
      child.kill_and_reap();
      break;
    }
    auto left_ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
    int wait_ms = static_cast<int>(std::min<long long>(left_ms, INT_MAX));
    pollfd fds[2];
    nfds_t n = 0;
    if (pipe_open) {
      fds[n++] = pollfd{rd.get(), POLLIN, 0};
    }
    if (pidfd.get() >= 0) {
      fds[n++] = pollfd{pidfd.get(), POLLIN, 0};
    } else {
      wait_ms = std::min(wait_ms, exit_poll_slice_ms);
    }
    if (spec.cancel != nullptr) {
      wait_ms = std::min(wait_ms, cancel_poll_slice_ms);
    }
    int pr = ::poll(fds, n, wait_ms);
    if (pr < 0 && errno != EINTR) {
      // Cannot wait properly: give up on the command rather than spin.
      child.kill_and_reap();
      r.timed_out = true;
      break;
    }
    if (pr > 0 && pipe_open && fds[0].revents != 0) {
      if (!drain_pipe(rd.get(), r.out, max_bytes, spec.keep_tail, r.truncated)) {
        pipe_open = false;
      }
    }
  }
  const int status = child.status();
  if (!r.timed_out && !r.cancelled && status != -1 && WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  }
  if (spec.keep_tail && r.out.size() > max_bytes) {
    r.out.erase(0, r.out.size() - max_bytes);
    r.truncated = true;
  }
  return r;
}

// ---------------------------------------------------------------------------
// Files under the root prefix.

std::string under_root(const std::string& root, const std::string& path) {
  std::string r = root;
  while (!r.empty() && r.back() == '/') {
    r.pop_back();
  }
  if (path.empty() || path.front() != '/') {
    r += '/';
  }
  return r + path;
}

/// True when something that is not a directory is there (a dangling
/// symlink counts: in a fake tree an absolute link points outside it).
bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
}

/// Reads up to max_bytes of a regular file. nullopt when it is missing, not
/// a regular file (a FIFO or device would block or never end) or unreadable.
std::optional<std::string> read_file(const std::string& path, std::size_t max_bytes = 65536) {
  fd_owner fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) {
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return std::nullopt;
  }
  std::string out;
  char buf[8192];
  while (out.size() < max_bytes) {
    ssize_t n = ::read(fd.get(), buf, std::min(sizeof buf, max_bytes - out.size()));
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      return std::nullopt;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Text helpers. ASCII only: the JSON encoder refuses invalid UTF-8, and
// nothing we report needs more.

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_space(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

std::string_view first_line(std::string_view s) {
  auto nl = s.find('\n');
  return nl == std::string_view::npos ? s : s.substr(0, nl);
}

bool icontains(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) {
    return false;
  }
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    if (iequals(hay.substr(i, needle.size()), needle)) {
      return true;
    }
  }
  return false;
}

/// Printable ASCII only, at most max_size characters.
std::string printable(std::string_view s, std::size_t max_size = max_version_size) {
  std::string out;
  for (char c : s) {
    if (out.size() >= max_size) {
      break;
    }
    if (c >= 0x20 && c <= 0x7e) {
      out += c;
    }
  }
  return std::string(trim(out));
}

/// The leading "N.N[.N...]" of s, "" when s does not start with one.
std::string_view dotted_prefix(std::string_view s) {
  std::size_t i = 0;
  int groups = 0;
  for (;;) {
    std::size_t start = i;
    while (i < s.size() && is_digit(s[i])) {
      ++i;
    }
    if (i == start) {
      break; // only at the start: a dot is consumed only before a digit
    }
    ++groups;
    if (i < s.size() && s[i] == '.' && i + 1 < s.size() && is_digit(s[i + 1])) {
      ++i;
      continue;
    }
    break;
  }
  return groups >= 2 ? s.substr(0, std::min(i, max_version_size)) : std::string_view{};
}

/// A version read from a file: its first line, trimmed, starting with a
/// digit and made of version characters only; "" otherwise.
std::string version_from_file(std::string_view contents) {
  auto v = trim(first_line(contents));
  if (v.empty() || v.size() > max_version_size || !is_digit(v.front())) {
    return {};
  }
  for (char c : v) {
    if (!is_alnum(c) && c != '.' && c != '-' && c != '+' && c != '_' && c != '~') {
      return {};
    }
  }
  return std::string(v);
}

template <class T>
bool parse_uint(std::string_view s, T& out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

/// Whitespace-separated fields.
std::vector<std::string_view> split_ws(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) {
      ++i;
    }
    std::size_t start = i;
    while (i < s.size() && !is_space(s[i])) {
      ++i;
    }
    if (i > start) {
      out.push_back(s.substr(start, i - start));
    }
  }
  return out;
}

// Byte counts beyond this are garbage; it also keeps them exact as JSON
// doubles and well inside what the engine accepts.
constexpr std::uint64_t max_sane_bytes = std::uint64_t{1} << 62;

bool mul_sane(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  return !__builtin_mul_overflow(a, b, &out) && out <= max_sane_bytes;
}

// ---------------------------------------------------------------------------
// Stacks.

struct server_version {
  std::string version;
  std::string flavor; // "mariadb" | "mysql" | ""
};

/// `mysqld --version`: "<path>  Ver 10.11.6-MariaDB-0+deb12u1 for ... (Debian 12)".
server_version parse_server_version_output(std::string_view out) {
  while (!out.empty()) {
    auto line = first_line(out);
    out.remove_prefix(std::min(out.size(), line.size() + 1));
    auto words = split_ws(line);
    for (std::size_t i = 0; i + 1 < words.size(); ++i) {
      if (words[i] != "Ver") {
        continue;
      }
      auto v = dotted_prefix(words[i + 1]);
      if (v.empty()) {
        continue;
      }
      server_version r;
      r.version = std::string(v);
      r.flavor = icontains(line, "mariadb") ? "mariadb" : "mysql";
      return r;
    }
  }
  return {};
}

stack_info detect_openlitespeed(const detect_options& o) {
  stack_info s;
  // Only OpenLiteSpeed installs bin/openlitespeed; LiteSpeed Enterprise
  // shares /usr/local/lsws and bin/lshttpd but is another product.
  s.present = exists(under_root(o.root, "/usr/local/lsws/bin/openlitespeed"));
  if (s.present) {
    if (auto v = read_file(under_root(o.root, "/usr/local/lsws/VERSION"), 4096)) {
      s.version = version_from_file(*v);
    }
  }
  return s;
}

void detect_mariadb(const detect_options& o, detected_stacks& d) {
  // MariaDB >= 10.5 installs mariadbd (mysqld is a link to it); MySQL and
  // older MariaDB install mysqld; RHEL's own packages put it in libexec.
  static const char* const binaries[] = {"/usr/sbin/mariadbd", "/usr/sbin/mysqld",
                                         "/usr/libexec/mariadbd", "/usr/libexec/mysqld"};
  std::string binary;
  for (const char* b : binaries) {
    auto p = under_root(o.root, b);
    if (exists(p)) {
      binary = p;
      break;
    }
  }
  if (binary.empty()) {
    return;
  }
  d.mariadb.present = true;
  auto r = run_command({binary, "--version"}, o.command_timeout_ms, 4096);
  if (r.ok()) {
    auto v = parse_server_version_output(r.out);
    d.mariadb.version = v.version;
    d.mariadb_flavor = v.flavor;
  } else {
    log::debug("agent_detect_command_failed",
               {{"path", binary}, {"timed_out", r.timed_out ? "true" : "false"},
                {"exit_code", std::to_string(r.exit_code)}});
  }
  if (d.mariadb_flavor.empty() && binary.size() >= 8 &&
      binary.compare(binary.size() - 8, 8, "mariadbd") == 0) {
    d.mariadb_flavor = "mariadb";
  }
}

galera_info detect_galera(const detect_options& o) {
  std::string client = under_root(o.root, "/usr/bin/mariadb");
  if (!exists(client)) {
    client = under_root(o.root, "/usr/bin/mysql");
    if (!exists(client)) {
      return {};
    }
  }
  std::vector<std::string> argv{client};
  if (!o.mysql_defaults_file.empty()) {
    // Must be the first option: the client ignores it anywhere else.
    argv.push_back("--defaults-extra-file=" + under_root(o.root, o.mysql_defaults_file));
  }
  argv.insert(argv.end(), {"-N", "-B", "-e", "SHOW GLOBAL STATUS LIKE 'wsrep_%'"});
  auto r = run_command(argv, o.command_timeout_ms);
  if (!r.ok()) {
    log::debug("agent_detect_command_failed",
               {{"path", client}, {"timed_out", r.timed_out ? "true" : "false"},
                {"exit_code", std::to_string(r.exit_code)}});
    return {};
  }
  return parse_wsrep_status(r.out);
}

stack_info detect_cpanel(const detect_options& o) {
  stack_info s;
  auto version_file = under_root(o.root, "/usr/local/cpanel/version");
  s.present = exists(under_root(o.root, "/usr/local/cpanel/cpanel")) || exists(version_file);
  if (s.present) {
    if (auto v = read_file(version_file, 4096)) {
      s.version = parse_cpanel_version(*v);
    }
  }
  return s;
}

// ---------------------------------------------------------------------------
// Metrics.

bool parse_double(std::string_view s, double& out) {
  double v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || !std::isfinite(v) || v < 0) {
    return false;
  }
  out = v;
  return true;
}

/// "0.12 0.20 0.18 1/234 5678": all three or none.
bool parse_loadavg(std::string_view contents, host_metrics& m) {
  auto w = split_ws(first_line(contents));
  double l1 = 0, l5 = 0, l15 = 0;
  if (w.size() < 3 || !parse_double(w[0], l1) || !parse_double(w[1], l5) ||
      !parse_double(w[2], l15)) {
    return false;
  }
  m.load1 = l1;
  m.load5 = l5;
  m.load15 = l15;
  return true;
}

/// MemTotal and MemAvailable (kB); without MemAvailable (kernel < 3.14),
/// MemFree + Buffers + Cached.
bool parse_meminfo(std::string_view contents, host_metrics& m) {
  std::optional<std::uint64_t> total, available, free_kb, buffers, cached;
  while (!contents.empty()) {
    auto line = first_line(contents);
    contents.remove_prefix(std::min(contents.size(), line.size() + 1));
    auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      continue;
    }
    auto name = line.substr(0, colon);
    auto w = split_ws(line.substr(colon + 1));
    std::uint64_t kb = 0;
    if (w.empty() || w.size() > 2 || (w.size() == 2 && w[1] != "kB") || !parse_uint(w[0], kb)) {
      continue;
    }
    std::uint64_t bytes = 0;
    if (!mul_sane(kb, 1024, bytes)) {
      continue;
    }
    if (name == "MemTotal") {
      total = bytes;
    } else if (name == "MemAvailable") {
      available = bytes;
    } else if (name == "MemFree") {
      free_kb = bytes;
    } else if (name == "Buffers") {
      buffers = bytes;
    } else if (name == "Cached") {
      cached = bytes;
    }
  }
  if (!total || *total == 0) {
    return false;
  }
  if (!available) {
    if (!free_kb) {
      return false;
    }
    available = *free_kb + buffers.value_or(0) + cached.value_or(0); // each <= 2^62
  }
  m.mem_total_bytes = *total;
  m.mem_used_bytes = *available >= *total ? 0 : *total - *available;
  return true;
}

bool read_disk(const std::string& path, host_metrics& m) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) {
    return false;
  }
  std::uint64_t unit = st.f_frsize != 0 ? st.f_frsize : st.f_bsize;
  std::uint64_t blocks = st.f_blocks;
  std::uint64_t bfree = std::min<std::uint64_t>(st.f_bfree, blocks);
  std::uint64_t total = 0, used = 0;
  if (!mul_sane(blocks, unit, total) || !mul_sane(blocks - bfree, unit, used)) {
    return false;
  }
  m.disk_total_bytes = total;
  m.disk_used_bytes = used;
  return true;
}

} // namespace

command_result run_command(const std::vector<std::string>& argv, int timeout_ms,
                           std::size_t max_bytes) {
  command_spec spec;
  spec.argv = argv;
  spec.timeout_ms = timeout_ms;
  spec.max_bytes = max_bytes;
  return run_command(spec);
}

command_result run_command(const command_spec& spec) {
  try {
    return run_command_impl(spec);
  } catch (...) {
    // Only allocation can throw here; the child was reaped by child_owner.
    return command_result{};
  }
}

std::string parse_server_version(const std::string& version_output) {
  try {
    return parse_server_version_output(version_output).version;
  } catch (...) {
    return {};
  }
}

std::string parse_cpanel_version(const std::string& file_contents) {
  try {
    auto v = trim(first_line(file_contents));
    auto d = dotted_prefix(v);
    if (d.empty() || d.size() != v.size()) {
      return {};
    }
    // 11.118.0.5 is cPanel 118.0.5: the "11." is a relic of the old scheme.
    if (d.substr(0, 3) == "11." && std::count(d.begin(), d.end(), '.') >= 3) {
      d.remove_prefix(3);
    }
    return std::string(d);
  } catch (...) {
    return {};
  }
}

galera_info parse_wsrep_status(const std::string& tsv) {
  galera_info g;
  try {
    std::string_view rest = tsv;
    std::string provider;
    while (!rest.empty()) {
      auto line = first_line(rest);
      rest.remove_prefix(std::min(rest.size(), line.size() + 1));
      auto tab = line.find('\t');
      if (tab == std::string_view::npos) {
        continue;
      }
      auto name = trim(line.substr(0, tab));
      auto value = trim(line.substr(tab + 1));
      if (iequals(name, "wsrep_cluster_size")) {
        int n = 0;
        g.cluster_size = parse_uint(value, n) && n >= 0 ? n : 0;
      } else if (iequals(name, "wsrep_local_state_comment")) {
        g.state = printable(value);
      } else if (iequals(name, "wsrep_ready")) {
        g.ready = iequals(value, "ON");
      } else if (iequals(name, "wsrep_provider_name")) {
        provider = printable(value);
      }
    }
    // Without a provider loaded MariaDB still lists wsrep_* with a cluster
    // size of 0 and an empty provider name: that is not Galera. A loaded
    // provider not (yet) in a cluster is, with its state saying why.
    g.present = g.cluster_size > 0 || !provider.empty();
    if (!g.present) {
      return {};
    }
    return g;
  } catch (...) {
    return {};
  }
}

detected_stacks detect_stacks(const detect_options& o) {
  detected_stacks d;
  try {
    d.openlitespeed = detect_openlitespeed(o);
    detect_mariadb(o, d);
    if (d.mariadb.present) {
      d.galera = detect_galera(o);
    }
    d.cpanel = detect_cpanel(o);
  } catch (...) {
    // Only allocation can throw; report what was found so far.
  }
  return d;
}

metrics_reader::metrics_reader(detect_options o) : opts_(std::move(o)) {}

host_metrics metrics_reader::sample() {
  host_metrics m;
  try {
    if (auto s = read_file(under_root(opts_.root, "/proc/loadavg"), 4096)) {
      parse_loadavg(*s, m);
    }
    // The first line is all we need; on a large host the file runs to
    // hundreds of kB (the intr line), so read only its head.
    if (auto s = read_file(under_root(opts_.root, "/proc/stat"), 4096)) {
      auto w = split_ws(first_line(*s));
      // cpu user nice system idle iowait irq softirq steal guest guest_nice:
      // guest and guest_nice are already counted in user and nice.
      cpu_times now;
      bool ok = w.size() >= 5 && w[0] == "cpu";
      std::uint64_t idle = 0, iowait = 0;
      for (std::size_t i = 1; ok && i < w.size() && i <= 8; ++i) {
        std::uint64_t v = 0;
        ok = parse_uint(w[i], v) && !__builtin_add_overflow(now.total, v, &now.total);
        if (i == 4) {
          idle = v;
        } else if (i == 5) {
          iowait = v;
        }
      }
      if (ok) {
        now.busy = now.total - idle - iowait;
        if (prev_cpu_ && now.total > prev_cpu_->total && now.busy >= prev_cpu_->busy) {
          double pct = 100.0 * static_cast<double>(now.busy - prev_cpu_->busy) /
                       static_cast<double>(now.total - prev_cpu_->total);
          // iowait can run backwards on some kernels, so busy can outrun total.
          m.cpu_pct = std::isfinite(pct) ? std::clamp(pct, 0.0, 100.0) : 0.0;
        }
        prev_cpu_ = now;
      }
    }
    if (auto s = read_file(under_root(opts_.root, "/proc/meminfo"))) {
      parse_meminfo(*s, m);
    }
    read_disk(under_root(opts_.root, opts_.disk_path), m);
  } catch (...) {
    return host_metrics{};
  }
  return m;
}

// ---------------------------------------------------------------------------
// Scheduled work: cron lines and backup archives.

namespace {

struct dir_entry {
  std::string name;
  struct stat st {};
};

/// The entries of a directory (lstat: symbolic links are not followed),
/// without "." and "..". Empty when it cannot be read.
std::vector<dir_entry> list_dir(const std::string& dir) {
  std::vector<dir_entry> out;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), &::closedir);
  if (!d) {
    return out;
  }
  while (auto* e = ::readdir(d.get())) {
    std::string name = e->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    dir_entry de;
    de.name = name;
    if (::lstat((dir + "/" + name).c_str(), &de.st) == 0) {
      out.push_back(std::move(de));
    }
  }
  return out;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Backups live in /backup and in directories up to three levels below it:
// cPanel writes /backup/<date>/accounts/<user>.tar.gz and
// /backup/weekly/<date>/accounts/<user>.tar.gz.
constexpr int backup_max_depth = 3;

void count_backups(const std::string& dir, int depth, jobs_info& j) {
  for (const auto& e : list_dir(dir)) {
    if (S_ISDIR(e.st.st_mode)) {
      if (depth < backup_max_depth) {
        count_backups(dir + "/" + e.name, depth + 1, j);
      }
      continue;
    }
    if (!S_ISREG(e.st.st_mode) || !(ends_with(e.name, ".tar.gz") || ends_with(e.name, ".tar"))) {
      continue;
    }
    ++j.backups;
    auto ms = std::int64_t{e.st.st_mtim.tv_sec} * 1000 + e.st.st_mtim.tv_nsec / 1'000'000;
    j.last_backup_ms = std::max(j.last_backup_ms, std::max<std::int64_t>(ms, 0));
  }
}

} // namespace

std::uint64_t count_cron_lines(const std::string& crontab) {
  std::uint64_t n = 0;
  std::size_t pos = 0;
  while (pos < crontab.size()) {
    auto end = crontab.find('\n', pos);
    if (end == std::string::npos) {
      end = crontab.size();
    }
    std::string_view line(crontab.data() + pos, end - pos);
    pos = end + 1;
    auto first = line.find_first_not_of(" \t\r");
    if (first == std::string_view::npos || line[first] == '#') {
      continue;
    }
    line.remove_prefix(first);
    // NAME=value (MAILTO=root, SHELL=/bin/bash) sets the environment.
    auto c = line.front();
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      auto name_end = line.find_first_not_of(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
      if (name_end != std::string_view::npos) {
        auto eq = line.find_first_not_of(" \t", name_end);
        if (eq != std::string_view::npos && line[eq] == '=') {
          continue;
        }
      }
    }
    ++n;
  }
  return n;
}

jobs_info count_jobs(const detect_options& o) {
  jobs_info j;
  j.present = true;
  // A crontab larger than this is not one; what fits is counted.
  constexpr std::size_t max_crontab_bytes = 1024 * 1024;
  auto count_file = [&](const std::string& path) {
    if (auto text = read_file(path, max_crontab_bytes)) {
      j.cron += count_cron_lines(*text);
    }
  };
  auto count_dir = [&](const std::string& dir) {
    for (const auto& e : list_dir(under_root(o.root, dir))) {
      // cron itself skips dot files (Debian's /etc/cron.d/.placeholder).
      if (S_ISREG(e.st.st_mode) && e.name.front() != '.') {
        count_file(under_root(o.root, dir) + "/" + e.name);
      }
    }
  };
  count_dir("/var/spool/cron");          // RHEL: one file per user
  count_dir("/var/spool/cron/crontabs"); // Debian
  count_file(under_root(o.root, "/etc/crontab"));
  count_dir("/etc/cron.d");
  count_backups(under_root(o.root, "/backup"), 0, j);
  return j;
}

void fill_status(member_status& s, const detected_stacks& d, const host_metrics& m,
                 const jobs_info& jobs) {
  s.jobs = jobs;
  s.openlitespeed = d.openlitespeed;
  s.mariadb = d.mariadb;
  s.galera = d.galera;
  s.cpanel = d.cpanel;
  // The engine rejects anything not finite and >= 0.
  auto clean = [](double v) { return std::isfinite(v) && v >= 0 ? v : 0.0; };
  s.load1 = clean(m.load1);
  s.load5 = clean(m.load5);
  s.load15 = clean(m.load15);
  s.cpu_pct = clean(m.cpu_pct);
  s.mem_used_bytes = m.mem_used_bytes;
  s.mem_total_bytes = m.mem_total_bytes;
  s.disk_used_bytes = m.disk_used_bytes;
  s.disk_total_bytes = m.disk_total_bytes;
}

void fill_status(member_status& s, const detected_stacks& d, const host_metrics& m) {
  fill_status(s, d, m, jobs_info{});
}

} // namespace balctl::agent
