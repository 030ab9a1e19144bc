// libFuzzer target for the datagram decoder: arbitrary bytes through decode,
// verify_tag and parse_status; whatever decodes is re-encoded and must
// decode to the same header.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "transport/protocol.hpp"

using namespace balctl::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  key k{};
  for (std::size_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<std::uint8_t>(i);
  }
  auto r = decode(data, size);
  if (!r.ok) {
    return 0;
  }
  verify_tag(r.view, k);
  std::string err;
  auto status = parse_status(r.view.body, &err);
  if (status) {
    std::string err2;
    auto again = parse_status(status_to_json(*status), &err2);
    if (!again || again->hostname != status->hostname) {
      std::abort();
    }
  }
  std::vector<std::uint8_t> out(max_datagram_size);
  auto n = encode(out.data(), out.size(), r.view.hdr, r.view.body, k);
  auto back = decode(out.data(), n);
  if (!back.ok || !verify_tag(back.view, k) ||
      back.view.hdr.member != r.view.hdr.member ||
      back.view.hdr.seq != r.view.hdr.seq || back.view.body != r.view.body) {
    std::abort();
  }
  return 0;
}
