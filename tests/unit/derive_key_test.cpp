// Bench key derivation: loadgen --derive-keys and balctld --bench-seed must
// agree byte for byte, so pin it to SHA-256(seed || id big-endian).

#include <catch2/catch.hpp>

#include "bench/derive_key.hpp"

using namespace balctl;

TEST_CASE("bench keys are SHA-256 of the seed and the big-endian id",
          "[ingest][unit]") {
  // Expected values from Python: hashlib.sha256(seed + struct.pack(">Q", id)).
  CHECK(protocol::key_to_hex(bench::derive_member_key("balctl-bench", 1)) ==
        "47797fe50a00617e257b4770234ea939229d7194f497f7b7fd0cce4102399bc9");
  CHECK(protocol::key_to_hex(bench::derive_member_key("balctl-bench",
                                                      0x0102030405060708ull)) ==
        "086c06d074740d50965bd16da19e0dd1556285326655c56db60a7ca15dc14af2");
  CHECK(bench::derive_member_key("balctl-bench", 1) !=
        bench::derive_member_key("balctl-bench", 2));
}
