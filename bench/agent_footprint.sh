#!/usr/bin/env bash
# The agent's footprint: two balctl-agent processes heartbeat to a real
# balctld for SECONDS, one over UDP, one over TLS, both reading this host's
# real /proc and stacks (detection every 30 s, status every 60 s, the
# default 2 s interval). Prints each agent's CPU time (user + system),
# its share of one core, peak and final RSS, and the TLS/UDP ratios (the
# same run is the baseline: the TLS transport's extra cost).
# ROOT (default /) is what detection reads: tests/fixtures/agent/mariadb_galera
# makes it run its (fake) mysqld and mysql commands on every detection.
# Usage: bench/agent_footprint.sh [BUILD_DIR] [SECONDS] [ROOT]
set -euo pipefail
build="${1:-build}"
secs="${2:-60}"
root="${3:-/}"
source "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || { echo "openssl is missing: bash deploy/install-deps.sh" >&2; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$tmp/tls.key" -out "$tmp/tls.pem" 2>/dev/null
token="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
hash=$(printf '%s' "$token" | "$build/balctld" --hash-token)
cat >"$tmp/balctld.json" <<JSON
{"udp_listen": "127.0.0.1:0", "store_path": "$tmp/store.db",
 "heartbeat_tls": {"listen": "127.0.0.1:0", "cert_file": "$tmp/tls.pem", "key_file": "$tmp/tls.key"},
 "admin": {"listen": "127.0.0.1:0",
           "tokens": [{"name": "bench", "role": "admin", "sha256": "$hash"}]}}
JSON
"$build/balctld" --config "$tmp/balctld.json" --ready-file "$tmp/ready" \
  --admin-port-file "$tmp/admin.port" 2>"$tmp/balctld.log" &
pids+=("$!")
wait_ready "$tmp/ready"
wait_ready "$tmp/admin.port"
api="http://127.0.0.1:$(cat "$tmp/admin.port")"
call() { curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
call -X POST "$api/v1/pools" -d '{"name":"footprint"}' >/dev/null

declare -A agent_pid
for mode in udp tls; do
  secret=$(call -X POST "$api/v1/pools/footprint/members" \
    -d "{\"hostname\":\"$mode.bench.test\",\"linux_family\":\"debian\",\"allowed_ips\":[\"127.0.0.1\"]}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["enrollment"]["secret"])')
  "$build/balctl-agent" --enrol --key "$secret" --hostname "$mode.bench.test" \
    --api-base "$api" --state-file "$tmp/$mode.state" --transport "$mode" \
    --ca-file "$tmp/tls.pem" >/dev/null 2>"$tmp/$mode.enrol.log"
  "$build/balctl-agent" run --state-file "$tmp/$mode.state" --root "$root" 2>"$tmp/$mode.log" &
  agent_pid[$mode]=$!
  pids+=("$!")
done
sleep "$secs"

tck=$(getconf CLK_TCK)
declare -A cpu_ms hwm_kb
for mode in udp tls; do
  pid=${agent_pid[$mode]}
  # schedstat's first field: ns the agent itself ran on a CPU. Fields 16
  # and 17 of stat: ticks of the detection commands it ran and reaped.
  own_ns=$(awk '{print $1}' "/proc/$pid/schedstat")
  child_ticks=$(awk '{print $16 + $17}' "/proc/$pid/stat")
  cpu_ms[$mode]=$(( own_ns / 1000000 + child_ticks * 1000 / tck ))
  hwm_kb[$mode]=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$pid/status")
  rss_kb=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$pid/status")
  anon_kb=$(awk '$1 == "RssAnon:" {print $2}' "/proc/$pid/status")
  echo "agent_cpu_ms{transport=$mode} ${cpu_ms[$mode]} ms over ${secs} s (own $(( own_ns / 1000000 )) ms, commands $(( child_ticks * 1000 / tck )) ms)"
  awk -v c="${cpu_ms[$mode]}" -v s="$secs" -v m="$mode" \
    'BEGIN {printf "agent_cpu_share{transport=%s} %.3f %% of one core\n", m, c / (s * 10)}'
  echo "agent_rss_peak_kib{transport=$mode} ${hwm_kb[$mode]} KiB"
  echo "agent_rss_kib{transport=$mode} ${rss_kb} KiB (private ${anon_kb} KiB, the rest shared libraries)"
done
state=$(call "$api/v1/pools/footprint/members" | python3 -c '
import json, sys
print(" ".join(m["hostname"] + "=" + m["state"] for m in json.load(sys.stdin)["members"]))')
echo "members: $state"
awk -v t="${cpu_ms[tls]}" -v u="${cpu_ms[udp]}" -v ht="${hwm_kb[tls]}" -v hu="${hwm_kb[udp]}" \
  'BEGIN {printf "ratio tls/udp: cpu %.2f, rss peak %.2f\n", (u > 0 ? t / u : 0), ht / hu}'
