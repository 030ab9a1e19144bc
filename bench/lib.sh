# Shared by the bench scripts: a temp dir and child processes that are
# always cleaned up, and a bounded wait for a ready file.
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

# wait_ready FILE: up to 120 s for FILE to be non-empty.
wait_ready() {
  for _ in $(seq 1 1200); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "not ready: $1" >&2; exit 1
}

# start_redis: a redis-server on a free loopback port, no persistence, in
# $tmp; sets redis_port once it answers PING.
start_redis() {
  redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
    > "$tmp/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping > /dev/null 2>&1 && return 0; sleep 0.1; done
  echo "redis-server did not start" >&2; exit 1
}
