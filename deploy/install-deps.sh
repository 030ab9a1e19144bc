#!/usr/bin/env bash
# Installs the Debian 12 packages balctl needs to build, test and run.
# Idempotent: packages already present are not touched; apt-get update runs
# only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libcaf-dev libuv1-dev nlohmann-json3-dev libssl-dev libsqlite3-dev catch2
                             # (libcaf-dev depends on libcaf-openssl0.17: cluster.tls_*)
  libhttp-parser-dev libcurl4-openssl-dev   # admin HTTP endpoint, balctl CLI
  wrk                        # admin API benchmark
  openssl                    # test certificates for the admin API over TLS
  clang libclang-rt-14-dev   # libFuzzer target and sanitizer runs
  libldns-dev                # RFC 2136 dynamic updates with TSIG
  pdns-server pdns-backend-sqlite3  # DNS tests: a real PowerDNS Authoritative
  knot knot-dnsutils         # DNS tests: a real RFC 2136 server; kdig
  sqlite3                    # DNS tests: creates PowerDNS's zone database
  libhiredis-dev             # the Redis store's protocol (hiredis's reader and formatter)
  redis-server               # store tests: a real Redis on loopback (plain and TLS)
  python3-aiosmtpd           # notify tests: a real SMTP server on loopback (run with /usr/bin/python3)
  python3-boto3              # objstore tests: boto3's SigV4 presigning as a cross-check
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deploy: all ${#packages[@]} packages present"
  exit 0
fi

echo "deploy: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
