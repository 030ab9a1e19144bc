#!/usr/bin/env bash
# Installs what is missing, builds, and starts balctld on the embedded SQLite
# store with the example pool (config/example.json): no Redis, no DNS account.
# The admin API listens on 127.0.0.1:7947 with an admin token kept in
# .balctl-example-token (made on the first run, mode 600; balctld keeps
# only its hash). Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
bash deploy/build.sh build
token_file=.balctl-example-token
if [ ! -s "$token_file" ]; then
  (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token_file")
fi
echo "admin API: http://127.0.0.1:7947  token: $token_file"
echo "try: BALCTL_TOKEN=\$(cat $token_file) ./build/balctl status"
exec ./build/balctld --config config/example.json --admin-token-file "$token_file" "$@"
