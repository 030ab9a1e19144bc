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
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--listen" && i + 1 < argc) {
      listen = argv[++i];
    } else if (a == "--duration-s" && i + 1 < argc) {
      duration_s = std::atoi(argv[++i]);
    } else if (a == "--ready-file" && i + 1 < argc) {
      ready_file = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: balctl-sink --listen HOST:PORT --duration-s S "
                   "[--ready-file PATH]\n");
      return 2;
    }
  }
  std::uint64_t count = 0; // only the loop thread writes it
  balctl::udp_listener l(listen, [&](const std::uint8_t*, std::size_t,
                                     const sockaddr*) { ++count; });
  auto err = l.start();
  if (!err.empty()) {
    std::fprintf(stderr, "balctl-sink: %s\n", err.c_str());
    return 1;
  }
  if (!ready_file.empty()) {
    std::ofstream(ready_file) << l.bound_port() << "\n";
  }
  std::this_thread::sleep_for(std::chrono::seconds(duration_s));
  l.stop();
  std::printf("sink received=%llu rate=%.0f/s\n",
              static_cast<unsigned long long>(count),
              static_cast<double>(count) / duration_s);
  return 0;
}
