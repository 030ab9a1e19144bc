#!/usr/bin/env bash
# install-agent.sh: installs balctl-agent on a member server, enrols it with
# the engine and starts it under systemd. One command for the RHEL family
# (RHEL, CentOS Stream, Rocky, AlmaLinux, Oracle Linux, Fedora: dnf, else
# yum) and for Debian/Ubuntu (apt-get). The engine serves this script at
# <api-base>/agent/install-agent.sh and the agent binary at
# <api-base>/agent/balctl-agent; the usual way to run it is the command the
# engine prints when a server is added:
#
#   curl -fsSL 'https://engine.example:7947/agent/install-agent.sh' \
#     | sudo bash -s -- --enrol --key 'SECRET' \
#         --hostname 'node9.example.com' --api-base 'https://engine.example:7947'
#
# What it does, each step skipped when already done (re-runs are safe):
#   1. installs the agent's runtime libraries (libuv 1, OpenSSL 3, libcurl,
#      ca-certificates) and curl, only those missing;
#   2. downloads (or copies) the binary, checks that it runs here
#      (--version), installs it atomically as PREFIX/sbin/balctl-agent, 0755;
#   3. writes /etc/systemd/system/balctl-agent.service (generated below,
#      the only copy of the unit) and /etc/default/balctl-agent;
#   4. with --enrol, runs `balctl-agent --enrol`, which writes
#      /var/lib/balctl-agent/state.json (an existing one is kept as
#      state.json.bak, and put back if enrolment fails);
#   5. enables and starts the service (restarts it when something changed).
#
# Needs: RHEL 9+ family or Debian 12+ / Ubuntu 22.04+ (the agent links
# OpenSSL 3). On RHEL-family hosts libuv comes from the AppStream repository
# (EPEL on rebuilds whose mirrors lack it).
#
# The enrolment key is never printed. It is on this script's and the
# agent's command line while they run, as the engine's command puts it there.
#
# Test hook: BALCTL_INSTALL_ROOT=/some/dir prefixes every system path the
# script reads or writes (/etc/os-release, /etc/systemd/system,
# /etc/default, /var/lib/balctl-agent, /var/lib/apt/lists, the prefix,
# /run/systemd/system), skips the root check and the 2-second wait before
# checking that the service stayed up. Package managers and systemctl are
# still taken from PATH. Paths written into the unit stay the real ones.
# tests/deploy/install_agent_test.sh uses it with shims on PATH.
set -euo pipefail

# Everything is inside main, called on the last line: when the script is
# piped into bash, a truncated download runs nothing instead of half a
# script.

readonly PROG=install-agent
readonly UNIT_NAME=balctl-agent.service
readonly STATE_DIR=/var/lib/balctl-agent
readonly STATE_FILE=$STATE_DIR/state.json
readonly DEFAULTS_FILE=/etc/default/balctl-agent
readonly UNIT_FILE=/etc/systemd/system/$UNIT_NAME

# Temporary files, removed on any exit.
TMP_FILES=()
cleanup() {
  if [[ ${#TMP_FILES[@]} -gt 0 ]]; then
    rm -f "${TMP_FILES[@]}"
  fi
}
trap cleanup EXIT

say() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}

usage() {
  cat <<'EOF'
Usage: install-agent.sh [--enrol --key SECRET --hostname HOST] --api-base URL
                        [--binary FILE|URL] [--ca-file FILE]
                        [--transport udp|tls|auto] [--prefix DIR] [--no-start]

Installs balctl-agent, its systemd unit and its runtime libraries; with
--enrol, enrols this server with the engine; then starts the agent.

  --enrol             enrol with the engine (needs --key, --api-base, and a
                      hostname); re-enrolling keeps the old state.json.bak
  --key SECRET        the one-time enrolment secret from the engine
  --hostname HOST     the hostname the server was added with (default:
                      $BALCTL_HOSTNAME, else the OS hostname); written to
                      /etc/default/balctl-agent as BALCTL_HOSTNAME
  --api-base URL      the engine's API, e.g. https://engine.example:7947
  --binary FILE|URL   where to get the agent (default:
                      <api-base>/agent/balctl-agent; file://, http(s)://
                      or a local path); without it and without --api-base,
                      an installed agent is kept
  --ca-file FILE      CA certificate(s) for the engine: used for the
                      download, and copied to /var/lib/balctl-agent/ca.pem
                      for the agent when enrolling
  --transport MODE    udp, tls or auto (kept in the state file; with --enrol)
  --prefix DIR        install under DIR/sbin (default /usr/local)
  --no-start          do not touch systemd (no reload, enable or start)
  --help              this text

Supported: RHEL/CentOS Stream/Rocky/AlmaLinux/Oracle Linux 9+, Fedora
(dnf, else yum); Debian 12+, Ubuntu 22.04+ (apt-get).
EOF
}

# The systemd unit, the only copy in the project. $1 is the binary's path.
unit_text() {
  cat <<EOF
# Written by balctl's install-agent.sh; a re-run rewrites it. Put local
# changes in a drop-in (systemctl edit balctl-agent), extra arguments and
# BALCTL_HOSTNAME in ${DEFAULTS_FILE}.
[Unit]
Description=balctl agent: heartbeats to the balctl engine
After=network-online.target
Wants=network-online.target
# Never give up restarting (RestartSec keeps it to one start per 5 s).
StartLimitIntervalSec=0

[Service]
Type=simple
EnvironmentFile=-${DEFAULTS_FILE}
ExecStart=$1 run --state-file ${STATE_FILE} \$BALCTL_AGENT_ARGS
Restart=always
RestartSec=5
# Root: detection reads root-only files (MySQL credentials, cPanel data)
# and runs mysql and cPanel commands.
StateDirectory=balctl-agent
StateDirectoryMode=0700
NoNewPrivileges=yes
# /usr, /boot and /etc read-only; cPanel's commands write their logs and
# caches under /usr/local/cpanel, so that stays writable where it exists.
ProtectSystem=full
ReadWritePaths=-/usr/local/cpanel
# No PrivateTmp: the MySQL socket may be /tmp/mysql.sock, and the mysql
# client run by the agent must reach it. No UMask either: it would apply
# to the files cPanel commands create.
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
LockPersonality=yes
RestrictRealtime=yes

[Install]
WantedBy=multi-user.target
EOF
}

defaults_text() {
  cat <<'EOF'
# balctl-agent settings, read by balctl-agent.service.
# After editing: systemctl restart balctl-agent
#
# BALCTL_HOSTNAME: the hostname this server was enrolled with; overrides the
# OS hostname (install-agent.sh --enrol sets it).
# BALCTL_AGENT_ARGS: extra arguments for `balctl-agent run`.
BALCTL_AGENT_ARGS=
EOF
}

main() {
  local root=${BALCTL_INSTALL_ROOT:-}
  local enrol=0 key="" key_set=0 hostname="" api_base="" binary="" ca_file=""
  local transport="" prefix=/usr/local no_start=0

  # --- 1. arguments --------------------------------------------------------
  local opt val
  while [[ $# -gt 0 ]]; do
    opt=$1
    val=""
    case $opt in
      --*=*)
        val=${opt#*=}
        opt=${opt%%=*}
        set -- "$opt" "$val" "${@:2}"
        ;;
    esac
    case $opt in
      --help | -h)
        usage
        exit 0
        ;;
      --enrol | --enroll) enrol=1 ;;
      --no-start) no_start=1 ;;
      --key | --hostname | --api-base | --binary | --ca-file | --transport | --prefix)
        if [[ $# -lt 2 ]]; then
          die "$opt needs a value"
        fi
        val=$2
        if [[ $val == --* ]]; then
          die "$opt needs a value (got the option $val)"
        fi
        shift
        case $opt in
          --key)
            key=$val
            key_set=1
            ;;
          --hostname) hostname=$val ;;
          --api-base) api_base=$val ;;
          --binary) binary=$val ;;
          --ca-file) ca_file=$val ;;
          --transport) transport=$val ;;
          --prefix) prefix=$val ;;
        esac
        ;;
      -*) die "unknown option '$opt' (see --help)" ;;
      # Not echoed: a stray word here may be the secret itself.
      *) die "unexpected argument (not shown, it may be a secret); options take the form --name VALUE (see --help)" ;;
    esac
    shift
  done

  if [[ $enrol -eq 0 ]]; then
    if [[ $key_set -eq 1 ]]; then
      die "--key is only used with --enrol"
    fi
    if [[ -n $hostname ]]; then
      die "--hostname is only used with --enrol"
    fi
    if [[ -n $transport ]]; then
      die "--transport is only used with --enrol (the choice is kept in the state file)"
    fi
  fi
  if [[ -n $api_base ]]; then
    if [[ ! $api_base =~ ^https?://[^/[:space:]]+(/[^[:space:]]*)?$ ]]; then
      die "--api-base '$api_base': must be an http:// or https:// URL"
    fi
    while [[ $api_base == */ ]]; do
      api_base=${api_base%/}
    done
  fi
  if [[ $enrol -eq 1 ]]; then
    if [[ $key_set -eq 0 || -z $key ]]; then
      die "--enrol needs --key SECRET (the enrolment secret the engine showed)"
    fi
    if [[ $key == *[[:space:]]* ]]; then
      die "--key: the secret contains white space; copy it again from the engine"
    fi
    if [[ -z $api_base ]]; then
      die "--enrol needs --api-base URL (the engine's API)"
    fi
    if [[ -z $hostname ]]; then
      hostname=${BALCTL_HOSTNAME:-$(uname -n)}
    fi
    if [[ ${#hostname} -gt 253 || ! $hostname =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
      die "--hostname '$hostname': must be a DNS name (letters, digits, '.', '-'; at most 253)"
    fi
  fi
  case $transport in
    "" | udp | tls | auto) ;;
    *) die "--transport '$transport': must be udp, tls or auto" ;;
  esac
  if [[ $prefix != /* ]]; then
    die "--prefix '$prefix': must be an absolute path"
  fi
  prefix=${prefix%/}
  if [[ -n $ca_file ]]; then
    if [[ ! -f $ca_file || ! -r $ca_file ]]; then
      die "--ca-file '$ca_file': not a readable file"
    fi
    ca_file=$(cd "$(dirname "$ca_file")" && pwd)/$(basename "$ca_file")
  fi

  # --- 2. root -------------------------------------------------------------
  if [[ -n $root ]]; then
    if [[ $root != /* || ! -d $root ]]; then
      die "BALCTL_INSTALL_ROOT '$root': must be an existing absolute directory"
    fi
    root=${root%/}
    say "test root $root (BALCTL_INSTALL_ROOT): no root check, system paths under it"
  elif [[ $(id -u) -ne 0 ]]; then
    die "must run as root: run it with sudo (curl -fsSL URL | sudo bash -s -- ARGS, or sudo bash install-agent.sh ARGS)"
  fi

  local agent=$prefix/sbin/balctl-agent
  local changed=0 # 1 when a running agent must be restarted

  # --- 3. distribution -----------------------------------------------------
  local os_release=$root/etc/os-release
  if [[ ! -r $os_release ]]; then
    die "cannot read $os_release: unknown distribution (supported: RHEL family, Debian, Ubuntu)"
  fi
  local os_id="" os_like="" os_version=""
  # os-release is shell syntax by specification; read it in a subshell.
  {
    IFS= read -r os_id || true
    IFS= read -r os_like || true
    IFS= read -r os_version || true
  } < <(
    # shellcheck source=/dev/null
    . "$os_release" && printf '%s\n%s\n%s\n' "${ID:-}" "${ID_LIKE:-}" "${VERSION_ID:-}"
  )
  os_id=${os_id,,}
  os_like=${os_like,,}

  local family="" word words
  read -r -a words <<<"$os_id $os_like"
  for word in "${words[@]}"; do
    case $word in
      rhel | centos | rocky | almalinux | fedora | ol) family=rhel ;;
      debian | ubuntu) family=debian ;;
    esac
    if [[ -n $family ]]; then
      break
    fi
  done
  if [[ -z $family ]]; then
    die "unsupported distribution ID='$os_id' ID_LIKE='$os_like' in $os_release (supported: RHEL family with dnf/yum, Debian/Ubuntu with apt)"
  fi

  # OpenSSL 3 first shipped in these releases; older ones cannot run the agent.
  local major=${os_version%%.*} need=""
  case $os_id in
    rhel | centos | rocky | almalinux | ol) need=9 ;;
    debian) need=12 ;;
    ubuntu) need=22 ;;
  esac
  if [[ -n $need && $major =~ ^[0-9]+$ && $major -lt $need ]]; then
    die "$os_id $os_version is too old: balctl-agent needs OpenSSL 3 ($os_id $need or later)"
  fi

  # --- 4. runtime packages -------------------------------------------------
  local packages=() missing=() p
  if [[ $family == debian ]]; then
    packages=(libuv1 libssl3 libcurl4 ca-certificates curl)
    for p in "${packages[@]}"; do
      if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) != "install ok installed" ]]; then
        missing+=("$p")
      fi
    done
  else
    packages=(libuv openssl-libs libcurl ca-certificates curl)
    for p in "${packages[@]}"; do
      # --whatprovides: curl-minimal/libcurl-minimal (RHEL 9 default) count.
      if ! rpm -q --whatprovides "$p" >/dev/null 2>&1; then
        missing+=("$p")
      fi
    done
  fi

  if [[ ${#missing[@]} -eq 0 ]]; then
    say "packages: all present (${packages[*]})"
  elif [[ $family == debian ]]; then
    say "packages: installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Wait for a dpkg lock held by unattended-upgrades on fresh hosts.
    local apt=(apt-get -qq -o DPkg::Lock::Timeout=300)
    local updated=0
    if ! compgen -G "$root/var/lib/apt/lists/*Packages*" >/dev/null; then
      "${apt[@]}" update </dev/null || die "apt-get update failed"
      updated=1
    fi
    if ! "${apt[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null; then
      if [[ $updated -eq 1 ]]; then
        die "apt-get install ${missing[*]} failed"
      fi
      say "packages: install failed; refreshing the package lists and trying again"
      "${apt[@]}" update </dev/null || die "apt-get update failed"
      "${apt[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null ||
        die "apt-get install ${missing[*]} failed"
    fi
  else
    local pm
    if command -v dnf >/dev/null 2>&1; then
      pm=dnf
    elif command -v yum >/dev/null 2>&1; then
      pm=yum
    else
      die "neither dnf nor yum found on this $os_id host"
    fi
    say "packages: installing ${missing[*]} with $pm"
    "$pm" install -y -q "${missing[@]}" </dev/null ||
      die "$pm install ${missing[*]} failed (libuv is in the AppStream repository on RHEL 9; on a rebuild whose mirrors lack it, enable EPEL: $pm install epel-release)"
  fi

  # --- 5. the binary -------------------------------------------------------
  local sbin=$root$prefix/sbin
  mkdir -p "$sbin"
  local tmp_bin
  tmp_bin=$(mktemp "$sbin/.balctl-agent.new.XXXXXX")
  TMP_FILES+=("$tmp_bin")

  local source=$binary
  if [[ -z $source && -n $api_base ]]; then
    source=$api_base/agent/balctl-agent
  fi
  if [[ -z $source ]]; then
    if [[ ! -x $root$agent ]]; then
      die "no agent to install: give --api-base URL (the binary comes from URL/agent/balctl-agent) or --binary FILE|URL"
    fi
    say "binary: no --binary or --api-base; keeping $agent"
    cp -p "$root$agent" "$tmp_bin"
  elif [[ $source == http://* || $source == https://* ]]; then
    if [[ $source == http://* ]]; then
      warn "downloading the agent over plain http: nothing authenticates the binary"
    fi
    say "binary: downloading $source"
    # The engine serves the binary to a few installs at a time and answers
    # the rest 429 with Retry-After (seconds); curl 7.66+ waits that long
    # before each retry (else it backs off from 1 s), for up to 5 minutes
    # in all, so a fleet installing at once queues instead of failing.
    # --max-time bounds each attempt.
    local curl_args=(-fsSL --retry 10 --retry-max-time 300 --connect-timeout 15
      --max-time 600 -o "$tmp_bin")
    if [[ -n $ca_file ]]; then
      curl_args+=(--cacert "$ca_file")
    fi
    command -v curl >/dev/null 2>&1 || die "curl not found (it should have been installed above)"
    curl "${curl_args[@]}" "$source" </dev/null ||
      die "download of $source failed (curl exit $?)"
  else
    local path=${source#file://}
    if [[ ! -f $path || ! -r $path ]]; then
      die "--binary '$source': not a readable file"
    fi
    say "binary: copying $path"
    cp "$path" "$tmp_bin"
  fi
  chmod 0755 "$tmp_bin"

  local version_out
  if ! version_out=$(timeout 20 "$tmp_bin" --version 2>&1 </dev/null); then
    die "the agent binary does not run on this host ($(uname -m), $os_id $os_version): ${version_out:-no output}"
  fi
  if [[ ! $version_out =~ ^balctl-agent\ [0-9]+\.[0-9]+\.[0-9]+ ]]; then
    die "the file from '$source' is not balctl-agent: --version printed '${version_out:0:200}'"
  fi
  local version=${version_out%%$'\n'*}

  if [[ -f $root$agent ]] && cmp -s "$tmp_bin" "$root$agent"; then
    say "binary: $agent is already $version"
  else
    # Same directory, so the rename is atomic: a running agent keeps its
    # old file until the restart below.
    mv -f "$tmp_bin" "$root$agent"
    say "binary: installed $agent ($version)"
    changed=1
  fi

  # --- 6. state directory, defaults file, unit -----------------------------
  mkdir -p "$root$STATE_DIR"
  chmod 0700 "$root$STATE_DIR"

  mkdir -p "$root${DEFAULTS_FILE%/*}"
  if [[ ! -f $root$DEFAULTS_FILE ]]; then
    defaults_text >"$root$DEFAULTS_FILE"
    chmod 0644 "$root$DEFAULTS_FILE"
    say "config: wrote $DEFAULTS_FILE"
    changed=1
  fi

  mkdir -p "$root${UNIT_FILE%/*}"
  local tmp_unit
  tmp_unit=$(mktemp "$root${UNIT_FILE%/*}/.$UNIT_NAME.XXXXXX")
  TMP_FILES+=("$tmp_unit")
  unit_text "$agent" >"$tmp_unit"
  chmod 0644 "$tmp_unit"
  if [[ -f $root$UNIT_FILE ]] && cmp -s "$tmp_unit" "$root$UNIT_FILE"; then
    say "unit: $UNIT_FILE unchanged"
  else
    mv -f "$tmp_unit" "$root$UNIT_FILE"
    say "unit: wrote $UNIT_FILE"
    changed=1
  fi

  # --- 7. enrolment --------------------------------------------------------
  local state=$root$STATE_FILE
  if [[ $enrol -eq 1 ]]; then
    local backup=""
    if [[ -e $state ]]; then
      backup=$state.bak
      mv -f "$state" "$backup"
      say "enrol: re-enrolling; the previous state is kept as $STATE_FILE.bak"
    fi
    local enrol_args=(--enrol --key "$key" --hostname "$hostname" --api-base "$api_base"
      --state-file "$state")
    if [[ -n $ca_file ]]; then
      # A stable copy: the agent keeps using the CA after this script's
      # directory (often a temporary one) is gone.
      install -m 0644 "$ca_file" "$root$STATE_DIR/ca.pem"
      enrol_args+=(--ca-file "$root$STATE_DIR/ca.pem")
    fi
    if [[ -n $transport ]]; then
      enrol_args+=(--transport "$transport")
    fi
    say "enrol: enrolling as $hostname with $api_base"
    local rc=0
    "$root$agent" "${enrol_args[@]}" </dev/null || rc=$?
    if [[ $rc -ne 0 ]]; then
      if [[ -n $backup ]]; then
        mv -f "$backup" "$state"
        die "enrolment failed (balctl-agent exit $rc, its message is above); the previous state is back in place"
      fi
      die "enrolment failed (balctl-agent exit $rc, its message is above)"
    fi
    if [[ ! -s $state ]]; then
      die "enrolment reported success but wrote no $STATE_FILE"
    fi
    chmod 0600 "$state"
    say "enrol: enrolled; state in $STATE_FILE"
    changed=1

    # The agent must heartbeat under the enrolled name, whatever the OS
    # hostname says.
    local defaults=$root$DEFAULTS_FILE tmp_defaults
    tmp_defaults=$(mktemp "$defaults.XXXXXX")
    TMP_FILES+=("$tmp_defaults")
    grep -v '^BALCTL_HOSTNAME=' "$defaults" >"$tmp_defaults" || true
    printf 'BALCTL_HOSTNAME=%s\n' "$hostname" >>"$tmp_defaults"
    chmod 0644 "$tmp_defaults"
    mv -f "$tmp_defaults" "$defaults"
    say "config: BALCTL_HOSTNAME=$hostname in $DEFAULTS_FILE"
  elif [[ -s $state ]]; then
    say "enrol: already enrolled ($STATE_FILE present); keeping it"
  fi

  # --- 8. service ----------------------------------------------------------
  local run_cmd="$agent run --state-file $STATE_FILE"
  if [[ $no_start -eq 1 ]]; then
    say "service: not started (--no-start); to start: systemctl daemon-reload && systemctl enable --now balctl-agent"
    say "done: $version"
    return 0
  fi
  if ! command -v systemctl >/dev/null 2>&1 || [[ ! -d $root/run/systemd/system ]]; then
    say "service: systemd is not running here; start the agent by hand: $run_cmd"
    say "done: $version"
    return 0
  fi
  systemctl daemon-reload
  if [[ ! -s $state ]]; then
    say "service: not started, this server is not enrolled yet; run the engine's install command (with --enrol), or: $agent --enrol --key SECRET --hostname HOST --api-base URL, then: systemctl enable --now balctl-agent"
    say "done: $version"
    return 0
  fi

  local started=0
  if systemctl is-active --quiet "$UNIT_NAME"; then
    systemctl enable --quiet "$UNIT_NAME"
    if [[ $changed -eq 1 ]]; then
      systemctl restart "$UNIT_NAME"
      say "service: restarted $UNIT_NAME"
      started=1
    else
      say "service: $UNIT_NAME running, nothing changed"
    fi
  else
    systemctl enable --now --quiet "$UNIT_NAME"
    say "service: enabled and started $UNIT_NAME"
    started=1
  fi
  if [[ $started -eq 1 ]]; then
    # Type=simple: start returns once forked; a crash on start shows a
    # moment later as "activating (auto-restart)".
    if [[ -z $root ]]; then
      sleep 2
    fi
    if ! systemctl is-active --quiet "$UNIT_NAME"; then
      die "$UNIT_NAME did not stay up; see: journalctl -u balctl-agent -n 50"
    fi
  fi
  say "done: $version; logs: journalctl -u balctl-agent -f"
}

main "$@"
