#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# DNS keeps answering while the daemon does something heavy: with 100,000
# names from a hosts file, bench/stall-probe.py sends one A query every 2 ms
# and every one must be answered (a query without an answer within 1 s, when
# a resolver would retry, counts as lost) while
#   - three clients fetch GET /dns/records (about 20 MB each) at once,
#   - the hosts file is replaced by one whose 100,000 lines all changed.
# Meanwhile the live feed gets one "resync" for the reload rather than
# 200,000 events, and once the file is deleted the memory it took goes back
# to the system. No latency is asserted here: bench/stall-bench.sh measures.
# Usage: test-stall.sh BUILDDIR
set -euo pipefail
build=$(cd "${1:?usage: test-stall.sh BUILDDIR}" && pwd)
daemon="$build/src/joyrided"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

need_commands curl dig
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
probe="$here/../../bench/stall-probe.py"

setup_tmp
sse_pid=
trap '[ -n "$sse_pid" ] && kill "$sse_pid" 2>/dev/null; _lib_cleanup' EXIT
N=100000
last=$((N - 1))
mkdir -p "$tmp/hosts" "$tmp/state"
awk -v n="$N" -v base=10 'BEGIN { for (i = 0; i < n; i++)
        printf "%d.%d.%d.%d host%d.stall.test\n", base, int(i / 65536) % 256, int(i / 256) % 256, i % 256, i }' \
        >"$tmp/hosts/big.hosts"
awk -v n="$N" -v base=11 'BEGIN { for (i = 0; i < n; i++)
        printf "%d.%d.%d.%d host%d.stall.test\n", base, int(i / 65536) % 256, int(i / 256) % 256, i % 256, i }' \
        >"$tmp/changed.hosts"
want_old="10.$((last / 65536 % 256)).$((last / 256 % 256)).$((last % 256))"
want_new="11.$((last / 65536 % 256)).$((last / 256 % 256)).$((last % 256))"

port=$(free_port)
http_port=$(free_port)
base="http://127.0.0.1:$http_port"
"$daemon" --dns-bind-address=127.0.0.1 --dns-port="$port" --hosts-directory="$tmp/hosts" \
        --state-directory="$tmp/state" --http-host=127.0.0.1 --http-port="$http_port" --no-docker --bus=none \
        --no-cluster 2>"$tmp/daemon.log" &
daemon_pid=$!
wait_for "the HTTP API" 30 curl -sf "$base/health"
[ "$(dig_short "$port" "host$last.stall.test")" = "$want_old" ] || fail "the big file is not served"

# run_probe LABEL: starts the probe; stop_probe: ends it and checks that nothing was lost.
run_probe() {
        rm -f "$tmp/started" "$tmp/stop"
        "$PY" "$probe" --port "$port" --names "host{}.stall.test" --count "$N" --seconds 1 \
                --lost-after-ms 1000 --start-file "$tmp/started" --stop-file "$tmp/stop" --label "$1" \
                >"$tmp/probe.out" &
        probe_pid=$!
        wait_for "the probe" 10 test -e "$tmp/started"
        sleep 0.2
}
stop_probe() {
        sleep 0.2
        touch "$tmp/stop"
        wait "$probe_pid" || fail "the probe failed"
        cat "$tmp/probe.out"
        grep -q ' lost=0 errors=0 ' "$tmp/probe.out" || fail "queries lost or failed: $(cat "$tmp/probe.out")"
}

# --- three large GET /dns/records at once ---------------------------------------------
run_probe records
curls=()
for i in 1 2 3; do
        curl -sf -o "$tmp/records$i.json" "$base/dns/records" &
        curls+=($!)
done
for p in "${curls[@]}"; do
        wait "$p" || fail "a GET /dns/records failed"
done
stop_probe
for i in 1 2 3; do
        "$PY" -c 'import json,sys; d = json.load(open(sys.argv[1])); assert d["total_records"] == len(d["records"]) == int(sys.argv[2])' \
                "$tmp/records$i.json" "$N" || fail "GET /dns/records $i: not $N records"
done
ok "no query lost while three clients fetched /dns/records ($(stat -c %s "$tmp/records1.json") bytes each) at once"

# --- a 100,000-line hosts file replaced ---------------------------------------------
curl -sN --max-time 120 "$base/api/events" >"$tmp/sse.out" 2>/dev/null &
sse_pid=$!
wait_for "the feed" 5 grep -q '^event: hello' "$tmp/sse.out"
run_probe reload
cp "$tmp/changed.hosts" "$tmp/hosts/.big.hosts.tmp"
mv "$tmp/hosts/.big.hosts.tmp" "$tmp/hosts/big.hosts"
wait_for "the changed file" 60 bash -c "[ \"\$(dig @127.0.0.1 -p $port +short +tries=1 +time=1 host$last.stall.test)\" = $want_new ] &&
        [ \"\$(dig @127.0.0.1 -p $port +short +tries=1 +time=1 host0.stall.test)\" = 11.0.0.0 ]"
stop_probe
sleep 0.2
kill "$sse_pid" 2>/dev/null || true
wait "$sse_pid" 2>/dev/null || true
sse_pid=
events=$(grep -c '^event: record' "$tmp/sse.out" || true)
grep -q '^event: resync' "$tmp/sse.out" || fail "the live feed got no resync for 200,000 changes ($events record events)"
[ "$events" -lt 20000 ] || fail "the live feed got $events record events for one reload"
ok "no query lost while a 100,000-line hosts file was replaced; the feed got a resync ($events record events)"

# --- memory goes back once the file is gone ------------------------------------------------
# A sanitizer's allocator keeps freed memory on purpose (quarantine): nothing to see there.
if sanitizer_build "$daemon"; then
        echo "memory check skipped: $daemon is built with a sanitizer"
        exit 0
fi
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$daemon_pid/status"; }
loaded=$(rss)
rm "$tmp/hosts/big.hosts"
wait_for "the records to go" 60 bash -c "[ -z \"\$(dig @127.0.0.1 -p $port +short +tries=1 +time=1 host$last.stall.test)\" ]"
wait_for "an empty store" 30 bash -c "curl -sf $base/status | $PY -c 'import json,sys; sys.exit(json.load(sys.stdin)[\"dns_server\"][\"records\"] != 0)'"
sleep 1
after=$(rss)
echo "RSS with 100,000 records: $loaded kB; after the file was deleted: $after kB"
[ "$after" -lt $((loaded / 2)) ] || fail "memory not returned after the file was deleted: $loaded kB -> $after kB"
ok "memory returned once the file was deleted ($loaded kB -> $after kB)"
