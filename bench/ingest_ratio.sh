#!/usr/bin/env bash
# Ingest throughput against a baseline, in one run: the same sender
# (balctl-loadgen, unthrottled, M members with derived keys) first against
# balctl-sink (the same libuv recvmmsg listener, a callback that only
# counts), then against balctld (decode, HMAC, registry, replay checks).
# Prints both rates and their ratio. Target: ratio >= 0.8 at 100,000 members.
# Usage: bench/ingest_ratio.sh [BUILD_DIR] [MEMBERS] [SECONDS]
set -euo pipefail
build="${1:-build}"
members="${2:-100000}"
secs="${3:-10}"
pools=$(( members >= 1000 ? members / 1000 : 1 ))
seed="balctl-bench"
source "$(dirname "$0")/lib.sh"

# (a) bare sink
"$build/balctl-sink" --listen 127.0.0.1:0 --duration-s $(( secs + 3 )) \
  --ready-file "$tmp/sink.port" >"$tmp/sink.out" 2>/dev/null &
sink_pid=$!; pids+=("$sink_pid")
wait_ready "$tmp/sink.port"
"$build/balctl-loadgen" --target "127.0.0.1:$(cat "$tmp/sink.port")" --members "$members" \
  --derive-keys "$seed" --rate 0 --duration-s "$secs" >"$tmp/loadgen-sink.out"
wait "$sink_pid"
sink_received=$(sed -n 's/.*received=\([0-9]*\).*/\1/p' "$tmp/sink.out")

# (b) balctld
"$build/balctld" --bench-members "$members" --bench-pools "$pools" --bench-seed "$seed" \
  --listen 127.0.0.1:0 --ready-file "$tmp/engine.port" \
  --metrics-file "$tmp/metrics.json" 2>"$tmp/balctld.log" &
engine_pid=$!; pids+=("$engine_pid")
wait_ready "$tmp/engine.port"
"$build/balctl-loadgen" --target "127.0.0.1:$(cat "$tmp/engine.port")" --members "$members" \
  --derive-keys "$seed" --rate 0 --duration-s "$secs" >"$tmp/loadgen-engine.out"
# SIGTERM writes the metrics file; bounded: a balctld that hangs on shutdown
# is killed after 30 s and the run fails instead of waiting forever.
if ! kill -TERM "$engine_pid" 2>/dev/null; then
  echo "balctld exited during the run; log:" >&2; tail -20 "$tmp/balctld.log" >&2; exit 1
fi
for _ in $(seq 1 300); do kill -0 "$engine_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$engine_pid" 2>/dev/null; then
  kill -KILL "$engine_pid" 2>/dev/null || true
  echo "balctld did not stop within 30 s of SIGTERM" >&2; exit 1
fi
wait "$engine_pid" || true
if [ ! -s "$tmp/metrics.json" ]; then
  echo "balctld wrote no metrics file; log:" >&2; tail -20 "$tmp/balctld.log" >&2; exit 1
fi
accepted=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accepted"])' "$tmp/metrics.json")

python3 - "$sink_received" "$accepted" "$secs" "$members" \
  "$(cat "$tmp/loadgen-sink.out")" "$(cat "$tmp/loadgen-engine.out")" <<'PY'
import re, sys
sink, eng, secs, members = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
sent = lambda line: int(re.search(r"sent=(\d+)", line).group(1))
sink_sent, eng_sent = sent(sys.argv[5]), sent(sys.argv[6])
print(f"bench ingest_members {members}")
print(f"bench ingest_sink_rate {sink/secs:.0f} datagrams/s ({sys.argv[5]})")
print(f"bench ingest_balctld_rate {eng/secs:.0f} verified/s ({sys.argv[6]})")
print(f"bench ingest_ratio {eng/sink:.3f} (target >= 0.8)")
# The sender shares the 2 cores: when it, not the receiver, is the limit,
# both sides take in all it sent, and these two say so.
print(f"bench ingest_sink_delivery {sink/sink_sent:.3f} of sent")
print(f"bench ingest_balctld_delivery {eng/eng_sent:.3f} of sent")
PY
