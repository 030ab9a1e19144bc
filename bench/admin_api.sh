#!/usr/bin/env bash
# The admin API under load, against its own baseline in one run. balctld
# holds MEMBERS members in pools of 10,000 (bench mode, derived keys) and
# balctl-loadgen sends RATE heartbeats/s to it throughout:
#   (a) SECONDS of heartbeats alone: the ingest rate without API load;
#   (b) SECONDS of heartbeats while wrk requests GET /v1/pools/bench-0/overview
#       (a 10,000-member pool: KPIs over every member, the first page of
#       tiles) as fast as it can.
# Prints wrk's requests/s and p99 latency, both ingest rates and their
# ratio. Target: ratio >= 0.9.
# Usage: bench/admin_api.sh [BUILD_DIR] [MEMBERS] [RATE] [SECONDS]
set -euo pipefail
build="${1:-build}"
members="${2:-100000}"
rate="${3:-100000}"
secs="${4:-10}"
pools=$(( members >= 10000 ? members / 10000 : 1 ))
seed="balctl-bench"
source "$(dirname "$0")/lib.sh"
command -v wrk >/dev/null || { echo "wrk is missing: bash deploy/install-deps.sh" >&2; exit 1; }

token="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "$token" >"$tmp/token"
"$build/balctld" --bench-members "$members" --bench-pools "$pools" --bench-seed "$seed" \
  --bench-delay-s 120 --listen 127.0.0.1:0 --ready-file "$tmp/engine.port" \
  --admin-listen 127.0.0.1:0 --admin-port-file "$tmp/admin.port" \
  --admin-token-file "$tmp/token" 2>"$tmp/balctld.log" &
pids+=("$!")
wait_ready "$tmp/engine.port"
wait_ready "$tmp/admin.port"
udp="127.0.0.1:$(cat "$tmp/engine.port")"
api="http://127.0.0.1:$(cat "$tmp/admin.port")"

accepted() {
  curl -sf -H "Authorization: Bearer $token" "$api/metrics" |
    awk '$1 == "balctl_heartbeats_accepted_total" {print $2}'
}

# Heartbeats for the whole run: warm-up, (a), a gap, (b).
total=$(( 2 + secs + 1 + secs + 2 ))
"$build/balctl-loadgen" --target "$udp" --members "$members" --derive-keys "$seed" \
  --rate "$rate" --body-every 50 --duration-s "$total" >"$tmp/loadgen.out" &
loadgen_pid=$!; pids+=("$loadgen_pid")
sleep 2

# (a) heartbeats alone
a0=$(accepted); t0=$(date +%s.%N)
sleep "$secs"
a1=$(accepted); t1=$(date +%s.%N)
sleep 1

# (b) heartbeats + wrk on the overview
b0=$(accepted); t2=$(date +%s.%N)
wrk -t1 -c8 -d"${secs}s" --latency -H "Authorization: Bearer $token" \
  "$api/v1/pools/bench-0/overview" >"$tmp/wrk.out"
b1=$(accepted); t3=$(date +%s.%N)
wait "$loadgen_pid" || true

# The page wrk fetched, to say what was measured.
curl -sf -H "Authorization: Bearer $token" "$api/v1/pools/bench-0/overview" >"$tmp/overview.json"

python3 - "$a0" "$a1" "$t0" "$t1" "$b0" "$b1" "$t2" "$t3" "$tmp/wrk.out" \
  "$tmp/overview.json" "$rate" <<'PY'
import json, re, sys
a0, a1, t0, t1, b0, b1, t2, t3 = map(float, sys.argv[1:9])
wrk = open(sys.argv[9]).read()
ov = json.load(open(sys.argv[10]))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1))
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", wrk)
p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s)", wrk)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)
base = (a1 - a0) / (t1 - t0)
loaded = (b1 - b0) / (t3 - t2)
print(f"bench admin_overview_members {ov['kpis']['members']} (tiles on the page: {len(ov['tiles'])})")
print(f"bench admin_overview_rps {rps:.0f} requests/s (wrk -t1 -c8)")
print(f"bench admin_overview_p50 {ms(*p50.groups()):.2f} ms")
print(f"bench admin_overview_p99 {ms(*p99.groups()):.2f} ms")
print(f"bench admin_overview_errors {int(non2xx.group(1)) if non2xx else 0} non-2xx")
print(f"bench admin_ingest_alone {base:.0f} heartbeats/s (sent at {sys.argv[11]}/s)")
print(f"bench admin_ingest_with_api {loaded:.0f} heartbeats/s")
print(f"bench admin_ingest_ratio {loaded / base:.3f} (target >= 0.9)")
PY
