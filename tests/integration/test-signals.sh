#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The daemon as a service manager sees it: sd_notify READY=1, STATUS=,
# watchdog pings, STOPPING=1; SIGHUP re-reads the config file and rescans the
# hosts directory; SIGTERM and SIGINT exit 0.
set -euo pipefail
build=$(cd "$1" && pwd)
daemon="$build/src/joyrided"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

tmp=$(mktemp -d)
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' INT TERM # so that the EXIT trap cleans up on a timeout too

notify_listen "$tmp/notify.sock" "$tmp/notify.log"
pids+=("$notify_pid")

port=$(free_port)
mkdir -p "$tmp/hosts" "$tmp/state"
echo "10.9.0.1 one.sig.test" >"$tmp/hosts/a.hosts"
cat >"$tmp/joyride.conf" <<EOF
[DNS]
NegativeTTL=3
EOF

start() {
        # shellcheck disable=SC2086 # extra: zero or more options without spaces
        NOTIFY_SOCKET="$tmp/notify.sock" WATCHDOG_USEC=400000 JOYRIDE_CONFIG="$tmp/joyride.conf" \
                "$daemon" --dns-bind-address=127.0.0.1 --dns-port="$port" --hosts-directory="$tmp/hosts" \
                --state-directory="$tmp/state" --no-docker --no-http --bus=none --no-cluster ${extra:-} \
                >"$tmp/daemon.log" 2>&1 &
        daemon_pid=$!
        pids+=("$daemon_pid")
}

start
wait_for "READY=1" 5 grep -q 'READY=1' "$tmp/notify.log"
ok "READY=1 sent"
grep -q 'STATUS=Serving 1 records' "$tmp/notify.log" || fail "no STATUS= line with the record count: $(cat "$tmp/notify.log")"
ok "STATUS= says what it serves"
wait_for "watchdog ping" 3 grep -q 'WATCHDOG=1' "$tmp/notify.log"
ok "watchdog pings with WATCHDOG_USEC set"

[ "$(dig_short "$port" one.sig.test)" = "10.9.0.1" ] || fail "one.sig.test did not resolve"
soa_ttl=$(dig @127.0.0.1 -p "$port" +noall +authority nothere.sig.test | awk '$4 == "SOA" {print $2; exit}')
[ "$soa_ttl" = 3 ] || fail "negative TTL from the config file should be 3, got '$soa_ttl'"
ok "config file read (negative TTL 3)"

# SIGHUP: config change applies, and the hosts directory is rescanned.
sed -i 's/NegativeTTL=3/NegativeTTL=9/' "$tmp/joyride.conf"
kill -HUP "$daemon_pid"
wait_for "new negative TTL" 3 bash -c "dig @127.0.0.1 -p $port +noall +authority nothere.sig.test | awk '\$4 == \"SOA\" {print \$2}' | grep -qx 9"
ok "SIGHUP re-read the config file"
grep -q 'RELOADING=1' "$tmp/notify.log" || fail "no RELOADING=1 on SIGHUP"

# A bad config on SIGHUP keeps the running configuration.
printf '[DNS]\nNegativeTTL=soon\n' >"$tmp/joyride.conf"
kill -HUP "$daemon_pid"
wait_for "reload error logged" 3 grep -q 'NegativeTTL' "$tmp/daemon.log"
kill -0 "$daemon_pid" || fail "a bad config on SIGHUP killed the daemon"
soa_ttl=$(dig @127.0.0.1 -p "$port" +noall +authority nothere.sig.test | awk '$4 == "SOA" {print $2; exit}')
[ "$soa_ttl" = 9 ] || fail "running configuration lost after a bad reload (TTL '$soa_ttl')"
ok "a bad config on SIGHUP is reported and the old one kept"

# SIGTERM: clean exit 0, STOPPING=1.
kill -TERM "$daemon_pid"
rc=0
wait_pid_timeout "$daemon_pid" 3 || rc=$?
[ "$rc" = 0 ] || fail "SIGTERM exit status $rc, expected 0"
grep -q 'STOPPING=1' "$tmp/notify.log" || fail "no STOPPING=1"
ok "SIGTERM exits 0 and says STOPPING=1"

# At the default level (info) no line is logged per query.
! grep -q 'Query one.sig.test' "$tmp/daemon.log" || fail "a query was logged at info level"
ok "no line per query at info level"

# SIGINT likewise; at debug level every query gets a line.
printf '[DNS]\nNegativeTTL=3\n' >"$tmp/joyride.conf"
extra=--log-level=debug
start
wait_for "answers after restart" 5 bash -c "[ \"\$(dig +short +tries=1 +time=1 @127.0.0.1 -p $port one.sig.test)\" = 10.9.0.1 ]"
grep -q 'Query one.sig.test. A from 127.0.0.1:[0-9]* over UDP: NOERROR, 1 answer' "$tmp/daemon.log" ||
        fail "no debug line for the query: $(grep Query "$tmp/daemon.log" | head -3)"
ok "a line per query at debug level"
kill -INT "$daemon_pid"
rc=0
wait_pid_timeout "$daemon_pid" 3 || rc=$?
[ "$rc" = 0 ] || fail "SIGINT exit status $rc, expected 0"
ok "SIGINT exits 0"
# A reload to a hosts directory that cannot be watched keeps serving the
# old one's records; the next reload that can, switches. The directory is
# set in the config file (the command line would override it), and
# inotify_init1() is made to fail (fs.inotify.max_user_instances used up)
# while $tmp/no-inotify exists.
mkdir -p "$tmp/hosts-a" "$tmp/hosts-b"
echo "10.9.1.1 a.reload.test" >"$tmp/hosts-a/a.hosts"
echo "10.9.1.2 b.reload.test" >"$tmp/hosts-b/b.hosts"
printf '[Hosts]\nDirectory=%s\n' "$tmp/hosts-a" >"$tmp/joyride.conf"
LD_PRELOAD="$build/tools/fault-inject.so" JOYRIDE_FAULT_INOTIFY="$tmp/no-inotify" \
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" JOYRIDE_CONFIG="$tmp/joyride.conf" \
        "$daemon" --dns-bind-address=127.0.0.1 --dns-port="$port" --state-directory="$tmp/state" \
        --no-docker --no-http --bus=none --no-cluster >"$tmp/daemon.log" 2>&1 &
daemon_pid=$!
pids+=("$daemon_pid")
wait_for "a.reload.test" 5 bash -c "[ \"\$(dig +short +tries=1 +time=1 @127.0.0.1 -p $port a.reload.test)\" = 10.9.1.1 ]"
printf '[Hosts]\nDirectory=%s\n' "$tmp/hosts-b" >"$tmp/joyride.conf"
touch "$tmp/no-inotify"
kill -HUP "$daemon_pid"
wait_for "the failed switch logged" 3 grep -q "Failed to watch hosts directory $tmp/hosts-b" "$tmp/daemon.log"
[ "$(dig_short "$port" a.reload.test)" = 10.9.1.1 ] || fail "a reload whose new hosts directory failed dropped the old records"
[ -z "$(dig_short "$port" b.reload.test)" ] || fail "b.reload.test answers though its directory is not watched"
grep -q "Failed to watch hosts directory $tmp/hosts-b, still serving $tmp/hosts-a: Too many open files" "$tmp/daemon.log" ||
        fail "the log does not say which directory is still served: $(grep 'Failed to watch' "$tmp/daemon.log")"
ok "a reload whose new hosts directory fails keeps serving the old one's records"
rm "$tmp/no-inotify"
kill -HUP "$daemon_pid"
wait_for "b.reload.test" 3 bash -c "[ \"\$(dig +short +tries=1 +time=1 @127.0.0.1 -p $port b.reload.test)\" = 10.9.1.2 ]"
[ -z "$(dig_short "$port" a.reload.test)" ] || fail "a.reload.test still answers after switching to $tmp/hosts-b"
ok "the next reload switches to the new directory, and the old records go"
kill -TERM "$daemon_pid"
wait_pid_timeout "$daemon_pid" 3 || fail "the daemon did not stop"

echo "all signal checks passed"
