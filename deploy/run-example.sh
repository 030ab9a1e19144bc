#!/usr/bin/env bash
# Installs what is missing, builds, and starts balctld on the embedded SQLite
# store with the example pool (config/example.json): no Redis, no DNS account.
# Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
bash deploy/build.sh build
exec ./build/balctld --config config/example.json "$@"
