#!/usr/bin/env bash
# Cluster takeover: two balctld nodes share one redis-server (loopback) and
# POOLS pools (default 1,000) of MEMBERS members in all (default 100,000);
# every member heartbeats to node a (balctl-loadgen), so node b's pools hear
# them by forwarding. Once the pools are spread and the members healthy,
# node b is killed with SIGKILL.
#
# Prints: the lease TTL (the baseline, same run), the time from the kill
# until node a holds every lease, until node a has restored every pool
# (pool_taken_over logged), and both as ratios of the TTL (target: restored
# within TTL + 2 s), plus any failover (target 0).
# Usage: bench/cluster_takeover.sh [BUILD_DIR] [POOLS] [MEMBERS] [TTL_MS]
set -euo pipefail
build="${1:-build}"
pools="${2:-1000}"
members="${3:-100000}"
ttl_ms="${4:-10000}"
source "$(dirname "$0")/lib.sh"

start_redis
port=$redis_port

python3 - "$tmp" "$pools" "$members" "$port" "$ttl_ms" <<'PY'
import json, sys
tmp, pools, members, port, ttl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
ps = [{"name": "p%d" % p, "failover_delay_s": 30, "members": []} for p in range(pools)]
for m in range(1, members + 1):
    ps[(m - 1) % pools]["members"].append(
        {"id": m, "hostname": "m%d.bench.test" % m, "key": ("%064x" % m), "allowed_ips": ["127.0.0.1"]})
json.dump({"pools": ps}, open(tmp + "/beats.json", "w"))
for n in "ab":
    json.dump({"udp_listen": "127.0.0.1:0", "store": "redis://127.0.0.1:%s/0" % port,
               "store_prefix": "bench:", "snapshot_interval_s": 5, "log_level": "info",
               "admin": {"listen": "127.0.0.1:0", "tokens": []},
               "cluster": {"node_id": "node-" + n, "listen": "127.0.0.1:0", "lease_ttl_ms": ttl},
               "pools": ps}, open("%s/%s.json" % (tmp, n), "w"))
PY

for n in a b; do
  "$build/balctld" --config "$tmp/$n.json" --ready-file "$tmp/$n.ready" 2> "$tmp/$n.log" &
  pids+=($!)
  [ "$n" = b ] && bpid=$!
  wait_ready "$tmp/$n.ready"
done
"$build/balctl-loadgen" --target "127.0.0.1:$(cat "$tmp/a.ready")" --config "$tmp/beats.json" \
  --interval-ms 1000 --duration-s 600 > "$tmp/loadgen.out" 2>&1 &
pids+=($!)

# Live leases held by a node (Redis's clock).
held() {
  redis-cli -p "$port" --no-raw EVAL "
    local t = redis.call('TIME'); local now = t[1] * 1000 + math.floor(t[2] / 1000)
    local n = 0
    for _, p in ipairs(redis.call('SMEMBERS', 'bench:leases')) do
      local l = redis.call('HMGET', 'bench:lease:' .. p, 'node', 'expires')
      if l[1] == ARGV[1] and tonumber(l[2]) > now then n = n + 1 end
    end
    return n" 0 "$1" | tr -dc '0-9'
}
healthy() { grep -c "to=healthy" "$tmp/a.log" "$tmp/b.log" | awk -F: '{s+=$2} END {print s}'; }

for _ in $(seq 1 600); do
  [ "$(held node-b)" -gt 0 ] && [ "$(( $(held node-a) + $(held node-b) ))" -eq "$pools" ] && \
    [ "$(healthy)" -ge "$members" ] && break
  sleep 0.5
done
b_pools=$(held node-b)
echo "spread: node-a $(held node-a), node-b $b_pools pools; healthy members $(healthy)"
before=$(grep -c "event=pool_taken_over" "$tmp/a.log" || true)

t0=$(date +%s%N)
kill -9 "$bpid"
t_leases=""
for _ in $(seq 1 $(( ttl_ms / 50 + 400 ))); do
  if [ -z "$t_leases" ] && [ "$(held node-a)" -eq "$pools" ]; then t_leases=$(date +%s%N); fi
  now_taken=$(grep -c "event=pool_taken_over" "$tmp/a.log" || true)
  if [ -n "$t_leases" ] && [ $(( now_taken - before )) -ge "$b_pools" ]; then break; fi
  sleep 0.05
done
t_restored=$(date +%s%N)
lease_ms=$(( (t_leases - t0) / 1000000 ))
restored_ms=$(( (t_restored - t0) / 1000000 ))
echo "pools $pools, members $members, lease ttl $ttl_ms ms (baseline)"
echo "node b killed: node a holds every lease after $lease_ms ms (ratio $(python3 -c "print(round($lease_ms/$ttl_ms, 3))") of the TTL)"
echo "node a restored node b's $b_pools pools after $restored_ms ms (target <= $(( ttl_ms + 2000 )) ms; ratio $(python3 -c "print(round($restored_ms/$ttl_ms, 3))") of the TTL)"
echo "failovers: $(grep -c "kind=failover" "$tmp/a.log" || true) (target 0)"
