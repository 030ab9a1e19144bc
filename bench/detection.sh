#!/usr/bin/env bash
# Detection latency under load: N members (default 100,000) heartbeat once a
# second (N heartbeats/s) while S of them (default 200) stop after 5 s.
# balctld records, for every down transition, how long after the member's
# deadline (last heartbeat + failover delay) it was declared; this prints
# the p50/p99/max of that lateness. Target: p99 <= 100 ms.
# Usage: bench/detection.sh [BUILD_DIR] [MEMBERS] [SILENT]
set -euo pipefail
build="${1:-build}"
members="${2:-100000}"
silent="${3:-200}"
pools=$(( members >= 1000 ? members / 1000 : 1 ))
delay_s=10
seed="balctl-bench"
port=$(( 20000 + RANDOM % 20000 ))
source "$(dirname "$0")/lib.sh"

"$build/balctld" --bench-members "$members" --bench-pools "$pools" --bench-seed "$seed" \
  --bench-delay-s "$delay_s" --listen "127.0.0.1:$port" --ready-file "$tmp/ready" \
  --metrics-file "$tmp/metrics.json" 2>"$tmp/balctld.log" &
engine_pid=$!
pids+=("$engine_pid")
wait_ready "$tmp/ready"

# Silent members spread over the id space (ids 7, 7+step, ...).
stop_args=()
step=$(( members / silent ))
for i in $(seq 0 $(( silent - 1 ))); do
  stop_args+=(--stop-after-s "$(( 7 + i * step )):5")
done
"$build/balctl-loadgen" --target "127.0.0.1:$port" --members "$members" \
  --derive-keys "$seed" --interval-ms 1000 --duration-s $(( 5 + delay_s + 6 )) \
  "${stop_args[@]}" >"$tmp/loadgen.out"
kill -TERM "$engine_pid"; wait "$engine_pid" || true

python3 - "$tmp/metrics.json" "$silent" "$(cat "$tmp/loadgen.out")" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
d = m["down_lateness_ms"]
print(f"bench detection_members {m['members']}")
print(f"bench detection_accepted {m['accepted']} heartbeats ({sys.argv[3]})")
print(f"bench detection_down_declared {d['samples']} of {sys.argv[2]} silent members")
print(f"bench detection_lateness_p50 {d['p50']} ms")
print(f"bench detection_lateness_p99 {d['p99']} ms (target <= 100)")
print(f"bench detection_lateness_max {d['max']} ms")
PY
