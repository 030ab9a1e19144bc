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
