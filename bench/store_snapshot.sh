#!/usr/bin/env bash
# Snapshot cost of the Redis store against the SQLite baseline, same run:
# MEMBERS member states (default 1,000,000) checkpointed, updated and read
# back (bench/store_snapshot.cpp). Starts its own redis-server on loopback.
# Usage: bench/store_snapshot.sh [BUILD_DIR] [MEMBERS]
set -euo pipefail
build="${1:-build}"
members="${2:-1000000}"
source "$(dirname "$0")/lib.sh"
start_redis
port=$redis_port
"$build/balctl-store-snapshot" --redis-port "$port" --members "$members" --dir "$tmp"
echo "redis used_memory: $(redis-cli -p "$port" info memory | grep '^used_memory_human' | cut -d: -f2 | tr -d '\r')"
