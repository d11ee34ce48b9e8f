#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A hosts directory that is not there, or that the daemon may not read, as
# the person who runs it sees it: a warning (journal priority 4) that says
# what is missing and that the daemon watches for it to appear; a permission
# problem that names the user the daemon runs as; the same in /status; DNS
# served all along; and the names loaded, the warning gone, as soon as the
# directory is there or readable. Needs root for the part run as nobody.
# Usage: test-hosts-errors.sh BUILDDIR
set -euo pipefail
build=$(cd "${1:?usage: test-hosts-errors.sh BUILDDIR}" && pwd)
daemon="$build/src/joyrided"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

need_commands curl dig python3

setup_tmp
chmod 755 "$tmp" # nobody must reach what is below it
log="$tmp/daemon.log"

# start HOSTS_DIR [runner...]: joyrided on free loopback ports with HTTP,
# logging to $log; waits for /health. Sets $port, $base and $daemon_pid.
start() {
        local hosts=$1 http
        shift
        port=$(free_port)
        http=$(free_port)
        while [ "$http" = "$port" ]; do http=$(free_port); done
        base="http://127.0.0.1:$http"
        "$@" "$daemon" --dns-bind-address=127.0.0.1 --dns-port="$port" --http-host=127.0.0.1 \
                --http-port="$http" --hosts-directory="$hosts" --state-directory="$tmp/state" \
                --no-docker --bus=none --no-cluster 2>"$log" &
        daemon_pid=$!
        wait_for "joyrided's HTTP API" 10 curl -sf "$base/health"
}

stop() {
        kill "$daemon_pid"
        wait_pid_timeout "$daemon_pid" 10 || fail "joyrided did not stop on SIGTERM"
        daemon_pid=
}

# status_is 'python expression over h (/status hosts_monitor)' WHAT
status_is() {
        python3 - "$base/status" "$1" <<'PY' || fail "/status: $2: $(curl -s "$base/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["hosts_monitor"])')"
import json, sys, urllib.request
h = json.load(urllib.request.urlopen(sys.argv[1]))["hosts_monitor"]
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
}

alive() {
        kill -0 "$daemon_pid" 2>/dev/null || fail "joyrided died"
        # Answers: a name of nobody's is REFUSED, not a timeout.
        dig @127.0.0.1 -p "$port" +tries=1 +time=1 nothing.example | grep -q "status: REFUSED" ||
                fail "joyrided does not answer DNS"
}

# lines TEXT: how many log lines have TEXT.
lines() {
        grep -cF -- "$1" "$log" || true
}

mkdir -p "$tmp/state"

# --- 1. missing, two levels deep --------------------------------------------
hosts="$tmp/etc/joyride/hosts.d"
start "$hosts"
missing="Hosts directory $hosts does not exist ($tmp/etc is missing); watching $tmp for it to appear."
wait_for "the warning" 3 grep -qF "WARN: $missing" "$log"
ok "missing directory: 'WARN: $missing'"
status_is "h['exists'] is False and h['warnings'] == 1 and h['warning_list'] == [{'file': '$hosts', 'line': None, 'message': '${missing#"Hosts directory $hosts "}'.rstrip('.')}]" "the missing directory listed"
ok "missing directory: listed in /status (line null)"
alive
ok "missing directory: joyrided runs on and answers DNS"

mkdir "$tmp/etc"
wait_for "the next step" 3 grep -qF "INFO: Hosts directory $hosts does not exist ($tmp/etc/joyride is missing); watching $tmp/etc for it to appear." "$log"
mkdir "$tmp/stage"
echo "10.78.0.1 late.errors.test" >"$tmp/stage/late.hosts"
mkdir "$tmp/etc/joyride"
mv "$tmp/stage" "$hosts"
wait_for "late.errors.test" 3 sh -c "dig @127.0.0.1 -p $port +short +tries=1 +time=1 late.errors.test | grep -qx 10.78.0.1"
[ "$(lines "WARN: Hosts directory $hosts")" = 1 ] || fail "warned more than once while the path was made: $(grep "Hosts directory" "$log")"
status_is "h['exists'] is True and h['warnings'] == 0 and h['warning_list'] == []" "no warning once there"
ok "made step by step: loaded, warned once (the steps are info lines), the warning gone from /status"

rm -rf "${tmp:?}/etc"
wait_for "the warning again" 3 sh -c "[ \$(grep -cF 'WARN: Hosts directory $hosts does not exist' '$log') = 2 ]"
# The status follows to where it ends: $tmp/etc is gone too.
wait_for "/status to follow" 3 sh -c "curl -sf $base/status | grep -qF '($tmp/etc is missing)'"
alive
ok "removed again: warned again, /status says what is missing now, still running"
stop

# --- 2. not readable: run as nobody -----------------------------------------
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
        echo "ok - SKIP unreadable directory: needs root and setpriv"
else
        nobody_uid=$(id -u nobody)
        nobody_name=$(id -un "$nobody_uid")
        who="permission denied: joyrided runs as user $nobody_name (uid $nobody_uid)"
        closed="$tmp/closed"
        mkdir -p "$closed"
        echo "10.78.1.1 a.errors.test" >"$closed/a.hosts"
        chmod 700 "$closed"
        chown -R nobody "$tmp/state"
        start "$closed" setpriv --reuid="$nobody_uid" --regid="$(id -g nobody)" --clear-groups
        unreadable="Hosts directory $closed cannot be read: $who; watching $tmp for a change of its permissions."
        wait_for "the warning" 3 grep -qF "WARN: $unreadable" "$log"
        ok "unreadable directory: 'WARN: $unreadable'"
        status_is "h['exists'] is True and h['warnings'] == 1 and h['warning_list'][0]['file'] == '$closed' and '$who' in h['warning_list'][0]['message']" "the unreadable directory listed"
        alive
        ok "unreadable directory: listed in /status, joyrided runs on"

        chmod 755 "$closed"
        wait_for "a.errors.test once readable" 3 sh -c "dig @127.0.0.1 -p $port +short +tries=1 +time=1 a.errors.test | grep -qx 10.78.1.1"
        status_is "h['warnings'] == 0" "no warning once readable"
        ok "chmod made it readable: loaded without a reload, the warning gone"

        echo "10.78.1.2 b.errors.test" >"$closed/.b.tmp"
        chmod 600 "$closed/.b.tmp"
        mv "$closed/.b.tmp" "$closed/b.hosts"
        wait_for "the file's warning" 3 grep -qF "WARN: $closed/b.hosts: cannot read it: $who; trying again." "$log"
        status_is "h['warning_list'] == [{'file': '$closed/b.hosts', 'line': None, 'message': 'cannot read it: $who; trying again'}]" "the unreadable file listed"
        ok "unreadable file: 'WARN: $closed/b.hosts: cannot read it: $who; trying again.', listed in /status"
        chmod 644 "$closed/b.hosts"
        wait_for "b.errors.test once readable" 3 sh -c "dig @127.0.0.1 -p $port +short +tries=1 +time=1 b.errors.test | grep -qx 10.78.1.2"
        status_is "h['warnings'] == 0" "no warning once the file is readable"
        alive
        ok "the file made readable: loaded, the warning gone"
        stop
fi

# --- 3. the journal: priority warning ---------------------------------------
# A private journald in a mount namespace of our own (TESTING.md); the daemon
# logs to the journal when its stderr is the journal's stream, as under systemd.
if [ "$(id -u)" != 0 ] || [ ! -x /lib/systemd/systemd-journald ] || ! command -v systemd-cat >/dev/null ||
        ! command -v journalctl >/dev/null || ! unshare --mount --propagation private true 2>/dev/null; then
        echo "ok - SKIP journal priority: needs root, unshare, systemd-journald, systemd-cat, journalctl"
else
        mkdir -p "$tmp/journal/log"
        printf '[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\nRateLimitBurst=0\n' >"$tmp/journal/journald.conf"
        PORT=$(free_port)
        export J="$tmp/journal" DAEMON="$daemon" HOSTS="$tmp/gone/hosts.d" PORT STATE="$tmp/state"
        # shellcheck disable=SC2016 # the inner bash expands them, from the environment
        timeout 60 unshare --mount --propagation private bash -c '
                set -euo pipefail
                mkdir -p /run/systemd /run/log/journal
                mount -t tmpfs tmpfs /run/systemd
                mount --bind "$J/log" /run/log/journal
                mount --bind "$J/journald.conf" /etc/systemd/journald.conf
                /lib/systemd/systemd-journald </dev/null >/dev/null 2>&1 &
                journald=$!
                pid=
                trap "kill \$pid \$journald 2>/dev/null; wait 2>/dev/null" EXIT
                for _ in $(seq 200); do [ -S /run/systemd/journal/stdout ] && break; sleep 0.02; done
                # As systemd starts a service: stderr is the journal stream, and JOURNAL_STREAM says so.
                systemd-cat -t joyrided sh -c "export JOURNAL_STREAM=\$(stat -L -c %d:%i /proc/self/fd/2); exec \"\$DAEMON\" \
                        --dns-bind-address=127.0.0.1 --dns-port=$PORT --no-http --hosts-directory=\"\$HOSTS\" \
                        --state-directory=\"\$STATE\" --no-docker --bus=none --no-cluster" &
                pid=$!
                for _ in $(seq 100); do
                        journalctl -D "$J/log" -o json 2>/dev/null | grep -q "does not exist" && break
                        sleep 0.05
                done
                journalctl -D "$J/log" -o json >"$J/entries.json"
        ' || fail "the journal part failed"
        python3 - "$tmp/journal/entries.json" "$tmp/gone/hosts.d" "$tmp" <<'PY' || fail "journal: $(grep -F 'does not exist' "$tmp/journal/entries.json" || tail -n 3 "$tmp/journal/entries.json")"
import json, sys
want = f"Hosts directory {sys.argv[2]} does not exist ({sys.argv[3]}/gone is missing); watching {sys.argv[3]} for it to appear."
entries = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
hits = [e for e in entries if e.get("MESSAGE") == want]
assert hits, [e.get("MESSAGE") for e in entries]
assert all(e["PRIORITY"] == "4" for e in hits), hits
PY
        ok "journal: the missing directory is an entry of PRIORITY=4 (warning)"
fi

echo "all hosts-errors checks passed"
