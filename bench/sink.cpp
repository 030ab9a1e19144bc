// balctl-sink: the bare baseline for the ingest benchmark. The same UDP
// listener as balctld (libuv, recvmmsg), with a callback that only counts.

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "transport/udp_listener.hpp"

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  std::string ready_file;
  int duration_s = 10;
  const char* usage =
    "usage: balctl-sink --listen HOST:PORT --duration-s S [--ready-file PATH]\n"
    "Counts datagrams on the same UDP listener as balctld for S seconds.\n";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(usage, stdout);
      return 0;
    }
    if (a == "--listen" && i + 1 < argc) {
      listen = argv[++i];
    } else if (a == "--duration-s" && i + 1 < argc) {
      std::string v = argv[++i];
      if (v.empty() || v.size() > 6 || v.find_first_not_of("0123456789") != std::string::npos ||
          (duration_s = std::stoi(v)) <= 0) {
        std::fprintf(stderr, "balctl-sink: --duration-s %s: must be a positive integer\n",
                     v.c_str());
        return 2;
      }
    } else if (a == "--ready-file" && i + 1 < argc) {
      ready_file = argv[++i];
    } else {
      std::fprintf(stderr, "balctl-sink: bad option %s\n%s", a.c_str(), usage);
      return 2;
    }
  }
  std::uint64_t count = 0; // only the loop thread writes it
  balctl::udp_listener l(listen, [&](const std::uint8_t*, std::size_t,
                                     const sockaddr*, std::uint8_t*) {
    ++count;
    return std::size_t{0};
  });
  auto err = l.start();
  if (!err.empty()) {
    std::fprintf(stderr, "balctl-sink: %s\n", err.c_str());
    return 1;
  }
  if (!ready_file.empty()) {
    // Written to a temp name and renamed: a waiter never reads a half file.
    std::string part = ready_file + ".part";
    {
      std::ofstream out(part);
      out << l.bound_port() << "\n";
      if (!out.flush()) {
        std::fprintf(stderr, "balctl-sink: cannot write %s\n", part.c_str());
        return 1;
      }
    }
    if (std::rename(part.c_str(), ready_file.c_str()) != 0) {
      std::perror("balctl-sink: rename ready file");
      return 1;
    }
  }
  std::this_thread::sleep_for(std::chrono::seconds(duration_s));
  l.stop();
  std::printf("sink received=%llu rate=%.0f/s\n",
              static_cast<unsigned long long>(count),
              static_cast<double>(count) / duration_s);
  return 0;
}
