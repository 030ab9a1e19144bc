#!/usr/bin/env bash
# Resident memory per member at N members (default 1,000,000), against a
# baseline balctld with 1 member measured in the same run. Every member is
# heard and has turned healthy (so each has its actor, its state, its slot
# and its armed timer) before RSS is read.  Usage: bench/memory.sh [BUILD_DIR] [MEMBERS]
set -euo pipefail
build="${1:-build}"
members="${2:-1000000}"
pools=$(( members >= 1000 ? members / 1000 : 1 ))
seed="balctl-bench"
port=$(( 20000 + RANDOM % 20000 ))
source "$(dirname "$0")/lib.sh"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

run_engine() { # members port -> sets engine_pid
  "$build/balctld" --bench-members "$1" --bench-pools "$pools" --bench-seed "$seed" \
    --bench-delay-s 120 --listen "127.0.0.1:$2" --ready-file "$tmp/ready-$2" \
    --store "$tmp/store-$2.db" \
    2>"$tmp/balctld-$2.log" &
  engine_pid=$!
  pids+=("$engine_pid")
  wait_ready "$tmp/ready-$2"
}

run_engine 1 "$port"
base_pid=$engine_pid
base_kib=$(rss_kib "$base_pid")
kill "$base_pid"; wait "$base_pid" 2>/dev/null || true

run_engine "$members" "$((port + 1))"
# Every member heard at least once (bounded: the sender stops after 11 s).
"$build/balctl-loadgen" --target "127.0.0.1:$((port + 1))" --members "$members" \
  --derive-keys "$seed" --interval-ms 10000 --duration-s 11 >"$tmp/loadgen.out"
# RSS is read only once every member actor has started and taken in its
# first heartbeat (each logs pending -> healthy): read earlier, pools still
# spawning their members make the figure too low. Bounded: 300 s.
settled=0
for _ in $(seq 1 150); do
  heard=$(grep -c 'from=pending to=healthy' "$tmp/balctld-$((port + 1)).log" || true)
  if [ "$heard" -ge "$members" ]; then settled=1; break; fi
  sleep 2
done
if [ "$settled" -ne 1 ]; then
  echo "memory.sh: only $heard of $members members turned healthy within 300 s" >&2
  exit 1
fi
full_kib=$(rss_kib "$engine_pid")
accepted_line=$(cat "$tmp/loadgen.out")
kill "$engine_pid"; wait "$engine_pid" 2>/dev/null || true

per_member=$(( (full_kib - base_kib) * 1024 / members ))
echo "bench memory_baseline_rss ${base_kib} KiB (1 member)"
echo "bench memory_rss ${full_kib} KiB (${members} members, ${pools} pools)"
echo "bench memory_per_member ${per_member} bytes (target <= 2048)"
echo "bench memory_sender ${accepted_line}"
