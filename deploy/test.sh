#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite:
#   1. every test (unit, actor, end-to-end) through ctest;
#   2. the unit, actor and Redis store tests again under AddressSanitizer + UBSan;
#   3. a bounded libFuzzer run of the datagram decoder;
#   4. the agent alone (-DBALCTL_AGENT_ONLY=ON), as a member host builds it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh

echo "== build and test"
bash deploy/build.sh build
(cd build && ctest --output-on-failure -j2 --timeout 300) | tee build/ctest.log
summary=$(grep -E '^[0-9]+% tests passed' build/ctest.log | tail -1)

echo "== AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DBALCTL_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)" --target balctl_unit_tests balctl_actor_tests \
  balctl_store_tests
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
./build-asan/balctl_unit_tests
./build-asan/balctl_actor_tests
./build-asan/balctl_store_tests   # the Redis connection, against a real redis-server

echo "== libFuzzer: datagram decoder"
CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBALCTL_FUZZ=ON -DBALCTL_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_decode
mkdir -p build-fuzz/corpus
# The fuzzer's progress lines go to a file; its final stats are printed.
if ! ./build-fuzz/fuzz_decode -max_total_time=60 -print_final_stats=1 \
     build-fuzz/corpus >build-fuzz/fuzz.log 2>&1; then
  tail -40 build-fuzz/fuzz.log
  echo "fuzz_decode found a crash (see above)"
  exit 1
fi
grep -E '^(Done|stat::)' build-fuzz/fuzz.log

echo "== the agent alone (BALCTL_AGENT_ONLY: no CAF, SQLite or http-parser)"
cmake -S . -B build-agent-only -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBALCTL_AGENT_ONLY=ON -DBALCTL_TESTS=OFF >/dev/null
cmake --build build-agent-only -j"$(nproc)" --target balctl-agent
./build-agent-only/balctl-agent --version

# One closing line with ctest's counts (the sanitizer and fuzz stages have
# already stopped the script with an error if anything failed in them).
total=$(echo "$summary" | sed -E 's/.* out of ([0-9]+).*/\1/')
failed=$(echo "$summary" | sed -E 's/.* ([0-9]+) tests failed.*/\1/')
echo "all test stages passed"
echo "ctest: $(( total - failed )) passed, ${failed} failed"
