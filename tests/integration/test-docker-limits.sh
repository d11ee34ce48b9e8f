#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A Docker engine that never stops talking (fake-docker.py on a unix
# socket): a reply or an event without end, an announced 10 GB body, a
# flood of events while the list is read. For each, joyrided must log a
# clear error, show the Docker monitor as disconnected with that error in
# /status, keep serving the names it had, keep its memory bounded, and
# connect again once the engine behaves.
# Usage: test-docker-limits.sh BUILDDIR
set -euo pipefail
build=$(cd "${1:?usage: test-docker-limits.sh BUILDDIR}" && pwd)
daemon="$build/src/joyrided"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

need_commands curl dig

setup_tmp
mkdir -p "$tmp/engine" "$tmp/state"
echo good >"$tmp/engine/mode"
python3 "$here/fake-docker.py" "$tmp/engine/docker.sock" "$tmp/engine" 2>"$tmp/engine.log" &
holder_pid=$!
wait_for "the fake engine" 10 test -S "$tmp/engine/docker.sock"

dns_port=$(free_port)
http_port=$(free_port)
while [ "$http_port" = "$dns_port" ]; do http_port=$(free_port); done
"$daemon" --dns-bind-address=127.0.0.1 --dns-port="$dns_port" --http-host=127.0.0.1 --http-port="$http_port" \
        --docker-host="unix://$tmp/engine/docker.sock" --hostip=192.0.2.10 --state-directory="$tmp/state" \
        --bus=none --no-cluster 2>"$tmp/daemon.log" &
daemon_pid=$!

# docker FIELD: a field of /status's docker_monitor.
docker() {
        curl -sf "http://127.0.0.1:$http_port/status" |
                python3 -c 'import json, sys; v = json.load(sys.stdin)["docker_monitor"][sys.argv[1]]; print("" if v is None else v)' "$1"
}
connected() { [ "$(docker state)" = connected ]; }
resolves() { [ "$(dig_short "$dns_port" "$1")" = "$2" ]; }
failed_with() { [ "$(docker state)" = disconnected ] && docker last_error | grep -qF -- "$1"; }

wait_for "the Docker monitor to connect" 15 connected
wait_for "fake.test from the fake engine" 5 resolves fake.test 192.0.2.10
ok "connected to the fake engine; fake.test resolves"

# broken MODE ERROR: the engine turns MODE; joyrided must give up on it with
# ERROR (in /status and the log), keep fake.test, and come back when the
# engine is good again.
broken() {
        local mode=$1 error=$2
        echo "$mode" >"$tmp/engine/mode"
        wait_for "the $mode engine to be given up with \"$error\"" 30 failed_with "$error"
        grep -qF -- "$error" "$tmp/daemon.log" || fail "$mode: the log does not say \"$error\""
        resolves fake.test 192.0.2.10 || fail "$mode: fake.test no longer resolves while the engine is broken"
        kill -0 "$daemon_pid" || fail "$mode: joyrided died"
        # It tries again with backoff, and meets the same engine.
        local tries
        tries=$(grep -c "^$mode GET /_ping" "$tmp/engine/requests.log" || true)
        wait_for "a second attempt at the $mode engine" 10 \
                sh -c "[ \$(grep -c '^$mode GET /_ping' '$tmp/engine/requests.log') -gt $tries ]"
        echo good >"$tmp/engine/mode"
        wait_for "the Docker monitor to connect again after $mode" 40 connected
        ok "$mode: given up on with \"$error\" ($(grep -c "^$mode " "$tmp/engine/requests.log") requests), connected again"
}

broken list-endless "GET /containers/json: the reply is longer than 16 MiB, the most joyrided reads"
broken event-endless "event stream: an event longer than 1 MiB, the most joyrided reads"
broken ping-endless "GET /_ping: the reply is longer than 64 KiB"
broken ping-length "GET /_ping: the reply announces 10737418240 bytes, more than 64 KiB"
broken version-endless "GET /version: the reply is longer than 256 KiB"
broken inspect-endless "GET /containers/$(printf 'e%.0s' $(seq 64))/json: the reply is longer than 4 MiB"
broken events-flood "event stream: more than 10000 events while the container list was read"

# Memory: the most it ever held, with every endless reply behind it. The
# largest limit is 16 MiB (the list); unbounded reading reaches gigabytes in
# seconds. AddressSanitizer holds freed memory back (256 MiB by default), so
# an ASan build gets more room.
peak_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$daemon_pid/status")
bound_mb=160
if sanitizer_build "$daemon"; then bound_mb=640; fi
[ "$peak_kb" -lt $((bound_mb * 1024)) ] || fail "peak resident memory $((peak_kb / 1024)) MiB, more than $bound_mb MiB"
ok "peak resident memory $((peak_kb / 1024)) MiB (bound: $bound_mb MiB)"

resolves fake.test 192.0.2.10 || fail "fake.test does not resolve at the end"
kill "$daemon_pid"
wait_pid_timeout "$daemon_pid" 10 || fail "joyrided did not exit on SIGTERM"
daemon_pid=
ok "all done"
