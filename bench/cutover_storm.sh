#!/usr/bin/env bash
# Cut-over storm: ACCOUNTS protected accounts (default 10,000) spread over
# POOLS pools (default 100, two members each) fail over at once, when every
# pool's source member goes silent, against the Cloudflare stand-in
# (balctl-cf-standin) enforcing Cloudflare's 1,200 requests per 5 minutes,
# scaled down in time by SCALE (default 100: 1,200 per 3 s). Each pool's
# failover record moves too (priority 0). A tenth of the accounts' records
# are already at their standby's address, so read-compare-write saves their
# writes.
#
# Prints: time to drain (first decision to last confirmed change) and the
# ideal drain at the allowed rate for the requests made (the baseline, same
# run), requests made, the most the stand-in saw in any window, 429s
# (target 0), writes made and saved, and the latency from decision to first
# provider request per decision: pool failover records (target p99 <= 50 ms)
# and account batches.
# Usage: bench/cutover_storm.sh [BUILD_DIR] [ACCOUNTS] [POOLS] [SCALE]
set -euo pipefail
build="${1:-build}"
accounts="${2:-10000}"
pools="${3:-100}"
scale="${4:-100}"
limit=1200
window_s=$(( 300 / scale ))
[ "$window_s" -ge 1 ] || { echo "SCALE at most 300 (the window is whole seconds)" >&2; exit 2; }
token="storm-bench-token-0123456789"
admin_token="storm-bench-admin-0123456789"
source "$(dirname "$0")/lib.sh"

python3 - "$tmp" "$accounts" "$pools" "$token" "$admin_token" "$limit" "$window_s" <<'PY'
import hashlib, json, sys
tmp, accounts, pools, token, admin_token, limit, window_s = sys.argv[1:]
accounts, pools, limit, window_s = int(accounts), int(pools), int(limit), int(window_s)
def ip(pool, side):  # the address a member's records take
    return f"10.{1 + side}.{pool // 250}.{pool % 250 + 1}"
seed, members, cfg_pools, plan = [], [], [], []
for p in range(pools):
    src, sby = 2 * p + 1, 2 * p + 2
    ms = []
    for side, mid in ((0, src), (1, sby)):
        key = hashlib.sha256(f"storm-{mid}".encode()).hexdigest()
        ms.append({"id": mid, "hostname": f"m{mid}.storm.test", "key": key,
                   "allowed_ips": ["127.0.0.1"], "public_ipv4": ip(p, side)})
        members.append({"id": mid, "hostname": f"m{mid}.storm.test", "key": key})
    cfg_pools.append({"name": f"p{p}", "failover_delay_s": 10,
                      "failover_hostname": f"www.p{p}.storm.test", "dns_provider": "cf",
                      "dns_zone": "storm.test", "members": ms})
    seed.append({"zone": "storm.test", "name": f"www.p{p}.storm.test", "type": "A",
                 "content": ip(p, 0), "ttl": 60, "proxied": False})
for a in range(accounts):
    p = a % pools
    name = f"a{a}.storm.test"
    # Every tenth record already points at the standby: a read, no write.
    at = ip(p, 1) if a % 10 == 0 else ip(p, 0)
    seed.append({"zone": "storm.test", "name": name, "type": "A", "content": at,
                 "ttl": 300, "proxied": False})
    plan.append({"pool": f"p{p}", "id": f"a{a}", "domain": name, "source": 2 * p + 1,
                 "standby": 2 * p + 2, "dns_provider": "cf", "dns_zone": "storm.test"})
json.dump(seed, open(f"{tmp}/seed.json", "w"))
json.dump(plan, open(f"{tmp}/accounts.json", "w"))
json.dump({"pools": [{"name": "load", "members": members}]}, open(f"{tmp}/beat.json", "w"))
sha = hashlib.sha256(admin_token.encode()).hexdigest()
json.dump({
    "udp_listen": "127.0.0.1:0", "store_path": f"{tmp}/storm.db", "log_level": "info",
    # 100 of 200 members go silent together on purpose: no fleet hold.
    "fleet_silence_share": 1.0,
    "admin": {"listen": "127.0.0.1:0",
              "tokens": [{"name": "bench", "role": "admin", "sha256": sha}]},
    "dns_providers": [{"id": "cf", "type": "cloudflare", "api_base": "http://127.0.0.1:0",
                       "secret": token, "rate_limit_requests": limit,
                       "rate_limit_window_s": window_s, "timeout_ms": 10000}],
    "pools": cfg_pools}, open(f"{tmp}/balctld.json", "w"))
PY

# The stand-in, with the scaled-down limit.
"$build/balctl-cf-standin" --listen 127.0.0.1:0 --token "$token" --zone storm.test \
  --rate-limit "$limit" --window-ms $(( window_s * 1000 )) --seed "$tmp/seed.json" \
  >"$tmp/standin.out" 2>"$tmp/standin.log" &
pids+=("$!")
for _ in $(seq 1 300); do grep -q '^listening ' "$tmp/standin.out" 2>/dev/null && break; sleep 0.1; done
cf_port=$(awk '/^listening /{print $2}' "$tmp/standin.out")
[ -n "$cf_port" ] || { echo "the stand-in did not start" >&2; cat "$tmp/standin.log" >&2; exit 1; }
sed -i "s#http://127.0.0.1:0#http://127.0.0.1:$cf_port/client/v4#" "$tmp/balctld.json"

"$build/balctld" --config "$tmp/balctld.json" --ready-file "$tmp/ready" \
  --admin-port-file "$tmp/admin-port" 2>"$tmp/balctld.log" &
engine_pid=$!
pids+=("$engine_pid")
wait_ready "$tmp/ready"
wait_ready "$tmp/admin-port"
udp_port=$(cat "$tmp/ready")
admin_port=$(cat "$tmp/admin-port")

# Every pool's members beat; at 5 s the sources stop (down 10 s later).
stop_args=()
for p in $(seq 0 $(( pools - 1 ))); do stop_args+=(--stop-after-s "$(( 2 * p + 1 )):5"); done

python3 - "$tmp" "$admin_port" "$admin_token" "$cf_port" "$accounts" "$pools" \
  "$build" "$udp_port" "$limit" "$window_s" "${stop_args[@]}" <<'PY'
import http.client, json, re, subprocess, sys, time
from datetime import datetime
tmp, admin_port, admin_token, cf_port, accounts, pools, build, udp_port, limit, window_s = sys.argv[1:11]
stop_args = sys.argv[11:]
accounts, pools, limit, window_s = int(accounts), int(pools), int(limit), int(window_s)
api = http.client.HTTPConnection("127.0.0.1", int(admin_port), timeout=30)
hdr = {"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"}

def call(method, path, body=None):
    api.request(method, path, json.dumps(body) if body is not None else None, hdr)
    r = api.getresponse()
    return r.status, r.read()

t = time.time()
for a in json.load(open(f"{tmp}/accounts.json")):
    pool = a.pop("pool")
    status, body = call("POST", f"/v1/pools/{pool}/accounts", a)
    if status != 201:
        sys.exit(f"adding account {a['id']}: HTTP {status} {body[:200]!r}")
print(f"bench storm_accounts_added {accounts} in {time.time() - t:.1f} s "
      f"({accounts / (time.time() - t):.0f}/s through the admin API)")

def cf_stats():
    c = http.client.HTTPConnection("127.0.0.1", int(cf_port), timeout=10)
    c.request("GET", "/__standin/stats")
    return json.loads(c.getresponse().read())

def metrics():
    status, body = call("GET", "/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out

before = cf_stats()
beat = subprocess.Popen([f"{build}/balctl-loadgen", "--target", f"127.0.0.1:{udp_port}",
                         "--config", f"{tmp}/beat.json", "--interval-ms", "1000",
                         "--duration-s", "900"] + stop_args,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
expected = pools + accounts  # every record confirmed: written or in place
deadline = time.time() + 900
try:
    while time.time() < deadline:
        m = metrics()
        done = m.get('balctl_dns_changes_total{result="written"}', 0) + \
               m.get('balctl_dns_changes_total{result="in_place"}', 0)
        if done >= expected:
            break
        time.sleep(0.5)
    else:
        sys.exit(f"the storm did not drain in 900 s ({done:.0f} of {expected} confirmed)")
finally:
    beat.terminate()
    beat.wait()
after = cf_stats()
m = metrics()

def ts(line):
    return datetime.strptime(re.search(r"ts=(\S+)Z", line).group(1),
                             "%Y-%m-%dT%H:%M:%S.%f").timestamp()
log = open(f"{tmp}/balctld.log").read().splitlines()
decisions = [ts(l) for l in log if "event=pool_decision" in l and "kind=failover" in l]
confirmed = [ts(l) for l in log if "event=dns_change " in l and "result=" in l and "change=" in l]
drain = max(confirmed) - min(decisions)
requests = after["requests"] - before["requests"]
# The baseline: those requests at the allowed rate (a sliding window lets
# `limit` through at once, then `limit` per window).
ideal = max(0.0, (requests - limit) / limit * window_s)
written = int(m.get('balctl_dns_changes_total{result="written"}', 0))
saved = int(m.get('balctl_dns_changes_total{result="in_place"}', 0))
print(f"bench storm_decisions {len(decisions)} failovers, {accounts} accounts, "
      f"{expected} records")
print(f"bench storm_drain_s {drain:.1f} s (first decision to last confirmed change)")
print(f"bench storm_drain_ideal_s {ideal:.1f} s ({requests} requests at {limit} per "
      f"{window_s} s; ratio {ideal / drain if drain else 0:.3f})")
print(f"bench storm_requests {requests} ({after['by_method'].get('GET', 0) - before['by_method'].get('GET', 0)} GET)")
print(f"bench storm_max_in_window {after['max_requests_in_window']} requests (limit {limit})")
print(f"bench storm_429 {after['rate_limited'] - before['rate_limited']} (target 0)")
print(f"bench storm_writes {written}")
print(f"bench storm_writes_saved {saved} by read-compare-write")
for kind in ("pool", "account"):
    p50 = m.get(f'balctl_dns_first_request_ms{{records="{kind}",quantile="0.5"}}', -1)
    p99 = m.get(f'balctl_dns_first_request_ms{{records="{kind}",quantile="0.99"}}', -1)
    target = " (target p99 <= 50)" if kind == "pool" else ""
    print(f"bench storm_first_request_{kind} p50 {p50:.0f} ms p99 {p99:.0f} ms{target}")
PY
kill -TERM "$engine_pid"; wait "$engine_pid" || true
