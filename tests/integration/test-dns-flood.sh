#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One answering thread under a UDP flood (dnsperf, 500 queries in flight,
# the daemon on one core and dnsperf on the other) keeps its other duties:
# the thread reads UDP beside its event loop, which must still get its turn
# while the socket never runs dry. During the flood a TCP query is answered,
# the watchdog pings go on (each needs every answering thread to answer the
# control loop), no thread is reported wedged; SIGTERM in the middle of the
# flood ends the daemon with exit status 0 within 2 s. The daemon logs at
# debug level, a line per query, so that dnsperf outpaces it and the socket
# does not run dry (else the thread returns to its loop anyway when it does).
set -euo pipefail
build=$(cd "$1" && pwd)
daemon="$build/src/joyrided"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

command -v dnsperf >/dev/null || {
        echo "1..0 # SKIP dnsperf is not installed (tools/install-deps)"
        exit 77
}
[ "$(nproc)" -ge 2 ] || {
        echo "1..0 # SKIP needs two cores (the daemon on one, dnsperf on the other)"
        exit 77
}

setup_tmp
mkdir -p "$tmp/hosts" "$tmp/state"
echo "10.79.0.1 flood.example.com" >"$tmp/hosts/a.hosts"
printf 'flood.example.com A\n%.0s' {1..1000} >"$tmp/queries.txt"

notify_listen "$tmp/notify.sock" "$tmp/notify.log"
holder_pid=$notify_pid

NOTIFY_SOCKET="$tmp/notify.sock" WATCHDOG_USEC=1000000 \
        start_local_daemon "$tmp/hosts" flood.example.com 10.79.0.1 --dns-threads=1 --log-level=debug
taskset -a -p -c 0 "$daemon_pid" >/dev/null

pings() { grep -c 'WATCHDOG=1' "$tmp/notify.log" || true; }

taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/queries.txt" -c 4 -T 1 -q 500 -l 6 >"$tmp/dnsperf.out" 2>&1 &
holder_pid="$holder_pid $!"
sleep 1
before=$(pings)
tcp=$(dig @127.0.0.1 -p "$port" +tcp +short +tries=1 +time=2 flood.example.com A 2>&1 || true)
[ "$tcp" = 10.79.0.1 ] || fail "during the UDP flood, a TCP query got '$tcp', expected 10.79.0.1"
ok "during the UDP flood, a TCP query is answered"
sleep 2
after=$(pings)
[ "$after" -ge $((before + 2)) ] || fail "watchdog pings during the flood: $before, 2 s later $after"
ok "the watchdog pings go on during the flood ($before, 2 s later $after)"
! grep -q 'has not responded' "$tmp/daemon.log" || fail "a thread was reported wedged: $(grep 'has not responded' "$tmp/daemon.log")"
ok "no answering thread reported wedged"

kill -TERM "$daemon_pid"
rc=0
wait_pid_timeout "$daemon_pid" 2 || rc=$?
daemon_pid=
[ "$rc" = 0 ] || fail "SIGTERM during the flood: exit status $rc (124: still running after 2 s)"
ok "SIGTERM during the flood: exit status 0 within 2 s"
