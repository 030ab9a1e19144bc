#!/usr/bin/env bash
# Tests deploy/install-agent.sh without touching the system and without the
# network: every run gets its own fake root (BALCTL_INSTALL_ROOT), a PATH of
# shims (apt-get, dpkg-query, dnf, yum, rpm, systemctl record their argv)
# plus links to the few real tools the script needs, and a stand-in agent
# (a shell script answering --version and --enrol, recording its argv).
# The one download case serves the stand-in from python3's http.server on
# 127.0.0.1, on a port the kernel picks.
#
# Usage: bash tests/deploy/install_agent_test.sh PATH-TO-BUILT-balctl-agent [PATH-TO-balctld]
# The built agent is asked for --version (skipped, with a message, when it
# is missing or does not answer it yet). With balctld too, the last case
# runs the engine's own install command end to end: balctld on loopback
# serves the script and the real agent, which enrols with it.
# Prints one line per passed case; stops at the first failed check.
#
# Shim bodies and expected unit lines are single-quoted on purpose:
# shellcheck disable=SC2016
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script=$(cd "$here/../../deploy" && pwd)/install-agent.sh
real_agent=${1:-}
real_engine=${2:-}
engine_pid=""

work=$(mktemp -d "${TMPDIR:-/tmp}/install-agent-test.XXXXXX")
server_pid=""
cleanup() {
  if [[ -n $engine_pid ]]; then
    kill "$engine_pid" 2>/dev/null || true
    wait "$engine_pid" 2>/dev/null || true
  fi
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The enrolment secret; it must never show in the script's output.
readonly KEY=s3cr3t-Enrol-7f9c2d41b8e6
readonly HOST=node9.example.test
readonly UNIT=etc/systemd/system/balctl-agent.service
readonly EXEC_START='ExecStart=/usr/local/sbin/balctl-agent run --state-file /var/lib/balctl-agent/state.json $BALCTL_AGENT_ARGS'
readonly DEB_PACKAGES="libuv1 libssl3 libcurl4 ca-certificates curl"
readonly RPM_PACKAGES="libuv openssl-libs libcurl ca-certificates curl"

current="setup"
out=""
# begin NAME: starts a case.
begin() {
  current=$1
  out=""
}
fail() {
  printf 'FAIL [%s]: %s\n' "$current" "$*" >&2
  if [[ -n ${out:-} ]]; then
    printf -- '--- script output:\n%s\n---\n' "$out" >&2
  fi
  exit 1
}
pass() { printf 'ok   %s\n' "$current"; }
skip() { printf 'skip %s: %s\n' "$current" "$*"; }

# --- tools: real ones the script needs, then the shims ---------------------
sysbin=$work/sysbin
mkdir -p "$sysbin"
for tool in bash env cat cp mv rm mkdir chmod mktemp cmp grep timeout uname \
  id dirname basename install sleep curl; do
  path=$(command -v "$tool") || fail "the test needs '$tool' on PATH"
  ln -s "$path" "$sysbin/$tool"
done
bash_path=$(command -v bash)

shims=$work/shims
mkdir -p "$shims"
# Each shim appends "name arg arg ..." to $SHIM_LOG; installed packages are
# kept, one a line, in $SHIM_STATE/deb and $SHIM_STATE/rpm.
make_shim() {
  local name=$1 body=$2
  cat >"$shims/$name" <<EOF
#!$bash_path
set -u
echo "$name \$*" >>"\$SHIM_LOG"
$body
EOF
  chmod 0755 "$shims/$name"
}
make_shim apt-get '
echo "apt-get env DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-}" >>"$SHIM_LOG"
seen=0
for a in "$@"; do
  if [ "$seen" = 1 ] && [ "${a#-}" = "$a" ]; then echo "$a" >>"$SHIM_STATE/deb"; fi
  if [ "$a" = install ]; then seen=1; fi
done
exit 0'
make_shim dpkg-query '
p=${!#}
if grep -qx "$p" "$SHIM_STATE/deb" 2>/dev/null; then printf "install ok installed"; exit 0; fi
echo "dpkg-query: no packages found matching $p" >&2
exit 1'
rpm_install='
seen=0
for a in "$@"; do
  if [ "$seen" = 1 ] && [ "${a#-}" = "$a" ]; then echo "$a" >>"$SHIM_STATE/rpm"; fi
  if [ "$a" = install ]; then seen=1; fi
done
exit 0'
make_shim dnf "$rpm_install"
make_shim yum "$rpm_install"
make_shim rpm '
p=${!#}
if grep -qx "$p" "$SHIM_STATE/rpm" 2>/dev/null; then echo "$p-1.0-1.el9"; exit 0; fi
echo "no package provides $p"
exit 1'
make_shim systemctl '
case " $* " in
  *" is-active "*) [ -e "$SHIM_STATE/active" ] && exit 0; exit 3 ;;
  *" --now "* | *" start "* | *" restart "*) : >"$SHIM_STATE/active" ;;
esac
exit 0'
# The same shims without dnf: a RHEL host that only has yum.
shims_yum=$work/shims-yum
mkdir -p "$shims_yum"
for f in "$shims"/*; do
  if [[ ${f##*/} != dnf ]]; then
    cp -p "$f" "$shims_yum/"
  fi
done

# --- the stand-in agent ----------------------------------------------------
# --version answers like the real one; --enrol writes --state-file, or fails
# when $AGENT_FAIL is set. Every call appends its argv, one word a line and
# a "--" line after, to $AGENT_LOG.
standin=$work/standin/balctl-agent
mkdir -p "${standin%/*}"
cat >"$standin" <<EOF
#!$bash_path
set -u
{ printf '%s\n' "\$@"; echo --; } >>"\$AGENT_LOG"
case \${1:-} in
  --version) echo "balctl-agent 9.8.7"; exit 0 ;;
  --enrol)
    state=""
    while [ \$# -gt 0 ]; do
      if [ "\$1" = --state-file ]; then state=\$2; fi
      shift
    done
    if [ -n "\${AGENT_FAIL:-}" ]; then echo "balctl-agent: enrolment refused: invalid_secret" >&2; exit 3; fi
    echo '{"member_id":"m-42","generation":'"\$RANDOM"'}' >"\$state"
    exit 0 ;;
esac
echo "balctl-agent: unexpected arguments: \$*" >&2
exit 2
EOF
chmod 0755 "$standin"

# --- helpers ---------------------------------------------------------------
# new_root NAME ID ID_LIKE VERSION_ID: a fake root with os-release and a
# running systemd; sets root, SHIM_STATE, SHIM_LOG, AGENT_LOG.
new_root() {
  root=$work/$1/root
  mkdir -p "$root/etc" "$root/run/systemd/system" "$work/$1/state"
  printf 'NAME="%s"\nID=%s\nID_LIKE="%s"\nVERSION_ID="%s"\n' "$2" "$2" "$3" "$4" \
    >"$root/etc/os-release"
  SHIM_STATE=$work/$1/state
  SHIM_LOG=$work/$1/shims.log
  AGENT_LOG=$work/$1/agent.log
  : >"$SHIM_LOG"
  : >"$AGENT_LOG"
}

# run_install [VAR=value ...] [PIPE] -- ARGS...: runs the script in the
# fake root with a clean environment (PIPE: fed on stdin to bash -s, as
# the engine's curl | sudo bash command does); sets rc and out (stdout and
# stderr).
run_install() {
  local extra=() path=$shims:$sysbin pipe=0
  while [[ $1 != -- ]]; do
    if [[ $1 == PATH=* ]]; then
      path=${1#PATH=}
    elif [[ $1 == PIPE ]]; then
      pipe=1
    else
      extra+=("$1")
    fi
    shift
  done
  shift
  : >"$SHIM_LOG"
  : >"$AGENT_LOG"
  local cmd=(env -i HOME="$work" PATH="$path" BALCTL_INSTALL_ROOT="$root"
    SHIM_STATE="$SHIM_STATE" SHIM_LOG="$SHIM_LOG" AGENT_LOG="$AGENT_LOG"
    ${extra[@]+"${extra[@]}"} bash)
  rc=0
  if [[ $pipe -eq 1 ]]; then
    out=$("${cmd[@]}" -s -- "$@" <"$script" 2>&1) || rc=$?
  else
    out=$("${cmd[@]}" "$script" "$@" 2>&1) || rc=$?
  fi
}

expect_rc0() { [[ $rc -eq 0 ]] || fail "exit $rc, expected 0"; }
expect_fail_with() {
  [[ $rc -ne 0 ]] || fail "exit 0, expected a failure"
  [[ $out == *"$1"* ]] || fail "the message does not name '$1'"
}
no_key_in_output() {
  [[ $out != *"$KEY"* ]] || fail "the enrolment key appears in the output"
}
shim_called() { grep -qxF -- "$1" "$SHIM_LOG" || fail "expected call '$1'; calls were: $(tr '\n' ';' <"$SHIM_LOG")"; }
shim_not_called() {
  if grep -q -- "^$1" "$SHIM_LOG"; then
    fail "unexpected call '$1': $(grep -- "^$1" "$SHIM_LOG" | tr '\n' ';')"
  fi
}
mode_of() { stat -c %a "$1"; }
# The stand-in's argv for its call whose first word is $1, space-joined.
agent_call() {
  awk -v first="$1" '
    $0 == "--" { if (n > 0 && w[1] == first) { s = w[1]; for (i = 2; i <= n; i++) s = s " " w[i]; print s } n = 0; next }
    { w[++n] = $0 }' "$AGENT_LOG"
}

enrol_args=(--enrol --key "$KEY" --hostname "$HOST" --api-base http://127.0.0.1:9/
  --binary "$standin")

# --- static checks ----------------------------------------------------------
begin "bash -n on the script"
bash -n "$script" || fail "syntax error"
pass
begin "shellcheck on the script and this test"
if command -v shellcheck >/dev/null 2>&1; then
  shellcheck "$script" "${BASH_SOURCE[0]}" || fail "shellcheck findings above"
  pass
else
  skip "shellcheck is not installed"
fi

# --- Debian: a fresh install with enrolment ---------------------------------
begin "debian 12: packages, binary, unit, state dir, enrolment, service"
new_root debian debian "" 12
run_install -- "${enrol_args[@]}"
expect_rc0
no_key_in_output
shim_called "apt-get -qq -o DPkg::Lock::Timeout=300 update"
shim_called "apt-get -qq -o DPkg::Lock::Timeout=300 install -y --no-install-recommends $DEB_PACKAGES"
shim_called "apt-get env DEBIAN_FRONTEND=noninteractive"
shim_not_called dnf
shim_not_called yum
bin=$root/usr/local/sbin/balctl-agent
[[ -x $bin && $(mode_of "$bin") == 755 ]] || fail "binary not installed 0755 at $bin"
cmp -s "$bin" "$standin" || fail "installed binary differs from the source"
[[ -f $root/$UNIT ]] || fail "unit not written"
for line in "$EXEC_START" Type=simple Restart=always RestartSec=5 \
  After=network-online.target Wants=network-online.target \
  EnvironmentFile=-/etc/default/balctl-agent StateDirectory=balctl-agent \
  NoNewPrivileges=yes ProtectSystem=full WantedBy=multi-user.target; do
  grep -qxF -- "$line" "$root/$UNIT" || fail "unit lacks the line '$line'"
done
[[ $(mode_of "$root/var/lib/balctl-agent") == 700 ]] || fail "state dir not 0700"
[[ $(mode_of "$root/var/lib/balctl-agent/state.json") == 600 ]] || fail "state file not 0600"
got=$(agent_call --enrol)
want="--enrol --key $KEY --hostname $HOST --api-base http://127.0.0.1:9 --state-file $root/var/lib/balctl-agent/state.json"
[[ $got == "$want" ]] || fail "agent enrol call was '$got', expected '$want'"
grep -qxF "BALCTL_HOSTNAME=$HOST" "$root/etc/default/balctl-agent" || fail "BALCTL_HOSTNAME not in /etc/default/balctl-agent"
shim_called "systemctl daemon-reload"
shim_called "systemctl enable --now --quiet balctl-agent.service"
pass

begin "the unit passes systemd-analyze verify (no warnings)"
if command -v systemd-analyze >/dev/null 2>&1; then
  # The unit names the real path; point it at the stand-in to verify it.
  mkdir -p "$work/verify"
  sed "s|^ExecStart=/usr/local/sbin/balctl-agent |ExecStart=$standin |" "$root/$UNIT" \
    >"$work/verify/balctl-agent.service"
  verify_out=$(systemd-analyze verify "$work/verify/balctl-agent.service" 2>&1) ||
    fail "systemd-analyze verify failed: $verify_out"
  [[ -z $verify_out ]] || fail "systemd-analyze verify warned: $verify_out"
  pass
else
  skip "systemd-analyze is not installed"
fi

# --- Debian: re-runs ----------------------------------------------------------
begin "debian re-run with --enrol: no package install, state backed up, restart"
old_state=$(cat "$root/var/lib/balctl-agent/state.json")
run_install -- --enrol --key="$KEY" --hostname "$HOST" --api-base http://127.0.0.1:9 \
  --binary "file://$standin"
expect_rc0
no_key_in_output
shim_not_called apt-get
[[ $(cat "$root/var/lib/balctl-agent/state.json.bak") == "$old_state" ]] || fail "state.json.bak is not the previous state"
[[ -s $root/var/lib/balctl-agent/state.json ]] || fail "no new state.json"
[[ $out == *"state.json.bak"* ]] || fail "the re-enrolment is not reported"
shim_called "systemctl restart balctl-agent.service"
[[ $(grep -c '^BALCTL_HOSTNAME=' "$root/etc/default/balctl-agent") -eq 1 ]] || fail "BALCTL_HOSTNAME written twice"
pass

begin "debian re-run without --enrol: nothing installed, enrolled, or restarted"
state_before=$(cat "$root/var/lib/balctl-agent/state.json")
run_install -- --binary "$standin"
expect_rc0
shim_not_called apt-get
[[ -z $(agent_call --enrol) ]] || fail "the agent was asked to enrol"
[[ $(cat "$root/var/lib/balctl-agent/state.json") == "$state_before" ]] || fail "state.json changed"
shim_not_called "systemctl restart"
shim_not_called "systemctl enable --now"
[[ $out == *"nothing changed"* ]] || fail "does not say that nothing changed"
pass

begin "a failed re-enrolment puts the previous state back"
run_install AGENT_FAIL=1 -- "${enrol_args[@]}"
expect_fail_with "enrolment failed"
no_key_in_output
[[ $out == *"invalid_secret"* ]] || fail "the agent's own message is not shown"
[[ $(cat "$root/var/lib/balctl-agent/state.json") == "$state_before" ]] || fail "the previous state was not restored"
shim_not_called "systemctl restart"
pass

# --- RHEL family --------------------------------------------------------------
begin "rocky 9 with dnf: the RHEL packages through dnf; --ca-file, --transport"
new_root rocky rocky "rhel centos fedora" 9.4
printf -- '-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n' >"$work/rocky/ca.pem"
run_install -- "${enrol_args[@]}" --ca-file "$work/rocky/ca.pem" --transport tls
expect_rc0
no_key_in_output
cmp -s "$work/rocky/ca.pem" "$root/var/lib/balctl-agent/ca.pem" || fail "CA not copied to the state dir"
got=$(agent_call --enrol)
[[ $got == *" --state-file $root/var/lib/balctl-agent/state.json --ca-file $root/var/lib/balctl-agent/ca.pem --transport tls" ]] ||
  fail "agent enrol call '$got' lacks --ca-file (the copy) and --transport tls"
shim_called "dnf install -y -q $RPM_PACKAGES"
shim_called "rpm -q --whatprovides libuv"
shim_not_called yum
shim_not_called apt-get
shim_called "systemctl enable --now --quiet balctl-agent.service"
pass

begin "rocky 9 re-run: packages present per rpm, no dnf call"
run_install -- --binary "$standin"
expect_rc0
shim_not_called dnf
pass

begin "rhel 9 with only yum: yum is used (script piped into bash -s)"
new_root rhel rhel "fedora" 9.3
run_install PATH="$shims_yum:$sysbin" PIPE -- "${enrol_args[@]}"
expect_rc0
no_key_in_output
[[ -s $root/var/lib/balctl-agent/state.json ]] || fail "not enrolled"
shim_called "systemctl enable --now --quiet balctl-agent.service"
shim_called "yum install -y -q $RPM_PACKAGES"
shim_not_called dnf
pass

begin "rocky 8 is refused: no OpenSSL 3"
new_root rocky8 rocky "rhel centos fedora" 8.9
run_install -- "${enrol_args[@]}"
expect_fail_with "OpenSSL 3"
shim_not_called dnf
pass

# --- refusals ---------------------------------------------------------------
begin "an unknown distribution fails naming its ID"
new_root suse opensuse-leap "suse opensuse" 15.5
run_install -- "${enrol_args[@]}"
expect_fail_with "opensuse-leap"
no_key_in_output
[[ ! -e $root/usr ]] || fail "files were written"
pass

begin "--enrol without --key fails naming --key"
new_root nokey debian "" 12
run_install -- --enrol --hostname "$HOST" --api-base http://127.0.0.1:9 --binary "$standin"
expect_fail_with "--key"
[[ ! -e $root/usr && ! -s $SHIM_LOG ]] || fail "it installed something before failing"
pass

begin "bad values name their option"
run_install -- --enrol --key "$KEY" --hostname "$HOST" --api-base ftp://x --binary "$standin"
expect_fail_with "--api-base"
run_install -- --enrol --key "$KEY" --hostname "bad host" --api-base http://x --binary "$standin"
expect_fail_with "--hostname"
run_install -- --enrol --key "$KEY" --hostname "$HOST" --api-base http://x --transport quic
expect_fail_with "--transport"
run_install -- --enrol --key --hostname "$HOST" --api-base http://x
expect_fail_with "--key needs a value"
run_install -- --prefix relative/dir --binary "$standin"
expect_fail_with "--prefix"
pass

begin "a stray word (maybe the secret) is refused without echoing it"
run_install -- --enrol "$KEY" --hostname "$HOST" --api-base http://x
[[ $rc -ne 0 ]] || fail "exit 0"
no_key_in_output
pass

begin "a file that is not balctl-agent is refused"
new_root notagent debian "" 12
printf '#!%s\necho hello\n' "$bash_path" >"$work/notagent/hello"
chmod 0755 "$work/notagent/hello"
run_install -- --binary "$work/notagent/hello" --no-start
expect_fail_with "not balctl-agent"
[[ ! -e $root/usr/local/sbin/balctl-agent ]] || fail "it was installed"
[[ -z $(find "$root/usr/local/sbin" -name '.balctl-agent.new.*') ]] || fail "temporary file left behind"
pass

# --- systemd handling ----------------------------------------------------------
begin "--no-start: no systemctl call; the hostname defaults to \$BALCTL_HOSTNAME"
new_root nostart ubuntu debian 24.04
run_install BALCTL_HOSTNAME=from-env.example.test -- --enrol --key "$KEY" \
  --api-base https://127.0.0.1:9 --binary "$standin" --no-start
expect_rc0
shim_not_called systemctl
[[ -s $root/var/lib/balctl-agent/state.json ]] || fail "not enrolled"
[[ $(agent_call --enrol) == *"--hostname from-env.example.test --api-base"* ]] ||
  fail "enrolled as '$(agent_call --enrol)', expected --hostname from \$BALCTL_HOSTNAME"
pass

begin "no systemd running: no systemctl call, the command to run it is printed"
new_root nosystemd debian "" 12
rmdir "$root/run/systemd/system"
run_install -- "${enrol_args[@]}"
expect_rc0
shim_not_called systemctl
[[ $out == *"/usr/local/sbin/balctl-agent run --state-file /var/lib/balctl-agent/state.json"* ]] ||
  fail "the command to start it by hand is not printed"
pass

begin "installed but not enrolled: not started, next step printed"
new_root noenrol debian "" 12
run_install -- --binary "$standin" --prefix /opt/balctl
expect_rc0
[[ -x $root/opt/balctl/sbin/balctl-agent ]] || fail "--prefix not honoured"
grep -q '^ExecStart=/opt/balctl/sbin/balctl-agent run ' "$root/$UNIT" || fail "ExecStart ignores --prefix"
shim_called "systemctl daemon-reload"
shim_not_called "systemctl enable"
[[ $out == *"not enrolled"* ]] || fail "does not say it is not enrolled"
pass

# --- the download path -------------------------------------------------------
begin "download from <api-base>/agent/balctl-agent over http"
if command -v python3 >/dev/null 2>&1; then
  mkdir -p "$work/www/agent"
  cp "$standin" "$work/www/agent/balctl-agent"
  python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$work/www" \
    >"$work/http.log" 2>&1 &
  server_pid=$!
  port=""
  for _ in $(seq 1 100); do
    port=$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$work/http.log" | head -1)
    if [[ -n $port ]]; then
      break
    fi
    sleep 0.1
  done
  [[ -n $port ]] || fail "python3 http.server did not start: $(cat "$work/http.log")"
  new_root download debian "" 12
  run_install -- --enrol --key "$KEY" --hostname "$HOST" --api-base "http://127.0.0.1:$port"
  expect_rc0
  no_key_in_output
  cmp -s "$root/usr/local/sbin/balctl-agent" "$standin" || fail "downloaded binary differs"
  [[ $(agent_call --enrol) == *"--api-base http://127.0.0.1:$port --state-file"* ]] || fail "enrolled with the wrong api-base"
  pass

  begin "a failed download fails naming the URL"
  run_install -- --binary "http://127.0.0.1:$port/agent/missing" --no-start
  expect_fail_with "http://127.0.0.1:$port/agent/missing"
  pass

  begin "a 429 with Retry-After from the engine is waited out and retried"
  # The engine answers binary downloads beyond its limit with 429 and
  # Retry-After; this server does so twice (2 s each), then serves the
  # file. curl's own back-off would wait 1 s, then 2 s: 3 s in all, so
  # 4 s tells that Retry-After was followed.
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  cat >"$work/throttle.py" <<'PY'
import http.server, sys
path, log = sys.argv[1], sys.argv[2]
class Handler(http.server.BaseHTTPRequestHandler):
    count = 0
    def do_GET(self):
        Handler.count += 1
        with open(log, "a") as f:
            f.write("%s\n" % self.path)
        if Handler.count <= 2:
            body = b'{"error":{"status":429,"code":"rate_limited"}}'
            self.send_response(429)
            self.send_header("Retry-After", "2")
        else:
            body = open(path, "rb").read()
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print("port %d" % server.server_address[1], flush=True)
server.serve_forever()
PY
  : >"$work/throttle.log"
  python3 -u "$work/throttle.py" "$standin" "$work/throttle.log" >"$work/throttle.out" 2>&1 &
  server_pid=$!
  port=""
  for _ in $(seq 1 100); do
    port=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$work/throttle.out" | head -1)
    if [[ -n $port ]]; then
      break
    fi
    sleep 0.1
  done
  [[ -n $port ]] || fail "the throttling server did not start: $(cat "$work/throttle.out")"
  new_root throttled debian "" 12
  started_ms=$(($(date +%s%N) / 1000000))
  run_install -- --api-base "http://127.0.0.1:$port" --no-start
  elapsed_ms=$(($(date +%s%N) / 1000000 - started_ms))
  expect_rc0
  cmp -s "$root/usr/local/sbin/balctl-agent" "$standin" || fail "downloaded binary differs"
  [[ $(wc -l <"$work/throttle.log") -eq 3 ]] ||
    fail "expected 3 requests (429, 429, 200), got: $(tr '\n' ' ' <"$work/throttle.log")"
  [[ $elapsed_ms -ge 3900 ]] || fail "retried after ${elapsed_ms} ms in all: Retry-After (2 s, twice) was not followed"
  pass
else
  skip "python3 is not installed"
fi

# --- the real agent -------------------------------------------------------------
begin "the built balctl-agent answers --version"
if [[ -z $real_agent || ! -x $real_agent ]]; then
  skip "no built agent at '${real_agent:-}' (pass its path as the first argument)"
else
  real_out=$(timeout 20 "$real_agent" --version 2>&1) || real_out=""
  if [[ -z $real_out ]]; then
    skip "$real_agent prints nothing for --version yet"
  else
    [[ $real_out =~ ^balctl-agent\ [0-9]+\.[0-9]+\.[0-9]+ ]] ||
      fail "--version printed '$real_out', expected 'balctl-agent X.Y.Z'"
    pass
    begin "the script installs the built balctl-agent"
    new_root real debian "" 12
    run_install -- --binary "$real_agent" --no-start
    expect_rc0
    cmp -s "$root/usr/local/sbin/balctl-agent" "$real_agent" || fail "installed binary differs"
    pass
  fi
fi

# --- the engine's own install command, end to end -------------------------------
begin "the engine's install command fetches the script and the agent from balctld, and the agent enrols"
if [[ -z $real_engine || ! -x $real_engine || -z $real_agent || ! -x $real_agent ]] ||
  ! command -v python3 >/dev/null 2>&1; then
  skip "needs the built balctl-agent and balctld (arguments 1 and 2) and python3"
else
  eng=$work/engine
  mkdir -p "$eng/dist"
  cp "$script" "$eng/dist/install-agent.sh"
  cp "$real_agent" "$eng/dist/balctl-agent"
  token="install-test-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
  hash=$(printf '%s' "$token" | "$real_engine" --hash-token)
  cat >"$eng/balctld.json" <<JSON
{"udp_listen": "127.0.0.1:0", "store_path": "$eng/store.db",
 "admin": {"listen": "127.0.0.1:0", "agent_dist_dir": "$eng/dist",
           "tokens": [{"name": "t", "role": "admin", "sha256": "$hash"}]}}
JSON
  "$real_engine" --config "$eng/balctld.json" --ready-file "$eng/ready" \
    --admin-port-file "$eng/admin.port" 2>"$eng/balctld.log" &
  engine_pid=$!
  for _ in $(seq 1 200); do
    [[ -s $eng/admin.port && -s $eng/ready ]] && break
    sleep 0.1
  done
  [[ -s $eng/admin.port ]] || fail "balctld did not start: $(tail -5 "$eng/balctld.log")"
  api="http://127.0.0.1:$(cat "$eng/admin.port")"
  auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')
  curl -sf "${auth[@]}" -X POST "$api/v1/pools" -d '{"name":"install"}' >/dev/null ||
    fail "could not create a pool"
  curl -sf "${auth[@]}" -X POST "$api/v1/pools/install/members" \
    -d "{\"hostname\":\"$HOST\",\"linux_family\":\"debian\",\"allowed_ips\":[\"127.0.0.1\"]}" \
    >"$eng/member.json" || fail "could not add a member"
  # The command an operator pastes, minus sudo: the fetch URL and the
  # script's arguments come from the engine's own install_command.
  # One word a NUL-terminated record: the URL, then the script's arguments.
  mapfile -d '' -t words < <(python3 -c '
import json, shlex, sys
cmd = json.load(open(sys.argv[1]))["enrollment"]["install_command"]
words = shlex.split(cmd)
url = words[words.index("-fsSL") + 1]
rest = words[words.index("--", words.index("bash")) + 1:]
sys.stdout.write("".join(w + "\0" for w in [url] + rest))' "$eng/member.json")
  url=${words[0]}
  install_args=("${words[@]:1}")
  [[ $url == "$api/agent/install-agent.sh" ]] || fail "install command fetches '$url'"
  new_root engine debian "" 12
  rc=0
  out=$(curl -fsSL "$url" | env -i HOME="$work" PATH="$shims:$sysbin" BALCTL_INSTALL_ROOT="$root" \
    SHIM_STATE="$SHIM_STATE" SHIM_LOG="$SHIM_LOG" AGENT_LOG="$AGENT_LOG" \
    bash -s -- "${install_args[@]}" 2>&1) || rc=$?
  expect_rc0
  cmp -s "$root/usr/local/sbin/balctl-agent" "$real_agent" || fail "the installed agent is not the engine's"
  state="$root/var/lib/balctl-agent/state.json"
  [[ -f $state ]] || fail "no state file after enrolment"
  [[ $(mode_of "$state") == 600 ]] || fail "state file mode $(mode_of "$state")"
  grep -q "\"hostname\": \"$HOST\"" "$state" || fail "state file lacks the hostname"
  secret=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["enrollment"]["secret"])' "$eng/member.json")
  [[ $out != *"$secret"* ]] || fail "the enrolment secret appears in the output"
  enrolled=$(curl -sf "${auth[@]}" "$api/v1/pools/install/members" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["members"][0]["enrolled"])')
  [[ $enrolled == True ]] || fail "the engine does not show the member enrolled"
  shim_called "systemctl daemon-reload"
  pass
fi

echo "install_agent_test: all checks passed"
