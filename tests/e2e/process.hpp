#pragma once

// Child processes for end-to-end tests: started with posix_spawn, output
// captured to files, always stopped (SIGTERM, then SIGKILL) by the
// destructor. Waits are bounded polls on a condition, never fixed sleeps.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/temp_dir.hpp"

extern char** environ;

namespace balctl::test {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Polls cond every 20 ms until it holds or timeout_ms passes.
inline bool wait_until(const std::function<bool()>& cond, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

class process {
public:
  process(std::vector<std::string> argv, const std::string& out_path,
          const std::string& err_path) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> args;
    for (auto& a : argv) {
      args.push_back(a.data());
    }
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&fa);
  }
  process(const process&) = delete;
  process& operator=(const process&) = delete;
  ~process() { stop(); }

  bool started() const { return pid_ > 0; }
  /// The child's pid while it runs (for SIGSTOP/SIGCONT), else -1.
  pid_t pid() const { return pid_; }

  /// Exit status if it has exited (-1 while running).
  int poll() {
    if (pid_ <= 0) {
      return status_;
    }
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    return status_;
  }

  /// SIGTERM, bounded wait, then SIGKILL. Returns the exit status.
  int stop(int timeout_ms = 5000) {
    if (pid_ <= 0) {
      return status_;
    }
    kill(pid_, SIGTERM);
    if (!wait_until([&] { return poll() != -1; }, timeout_ms)) {
      kill(pid_, SIGKILL);
      wait_until([&] { return poll() != -1; }, timeout_ms);
    }
    return status_;
  }

  int wait_exit(int timeout_ms) {
    wait_until([&] { return poll() != -1; }, timeout_ms);
    return status_;
  }

private:
  pid_t pid_ = -1;
  int status_ = -1;
};

} // namespace balctl::test
