#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Stall benchmark: how long DNS waits while the daemon does something heavy.
#
#   bench/stall-bench.sh [BUILD_DIR]
#
# joyrided serves N = 100,000 names from a hosts file (HTTP on, D-Bus on a
# private bus, clustered on loopback). bench/stall-probe.py sends one A query
# every 2 ms over UDP and reports the delay of the replies (p50, p99, max) and
# the queries lost (no reply within 1 s) while, one after the other:
#   idle       nothing else
#   records    3 x GET /dns/records (all 100,000 records, ~20 MB), one after the other
#   reload     the hosts file replaced (atomic rename) by one whose 100,000
#              lines all have a new address
#   dbus       1,000 AddRecord calls, 100 in flight
#   push-pull  a peer with 100,000 names of its own joins (push-pull brings them)
# Targets: p99 under 1 ms and max under 5 ms for each. Everything listens on
# 127.0.0.1 on random high ports; every process started here is stopped by PID.
#
# Environment: BENCH_N (names, default 100000), STALL_SKIP (space-separated
# scenario names to leave out). The table also goes to BUILD_DIR/stall-bench.md.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
N=${BENCH_N:-100000}
SKIP=" ${STALL_SKIP:-} "

die() { echo "stall-bench: $*" >&2; exit 1; }

"$ROOT/tools/install-deps"
for tool in curl dig dbus-daemon busctl; do
        command -v "$tool" >/dev/null || die "$tool not installed"
done
[ -x "$BUILD/src/joyrided" ] || die "$BUILD/src/joyrided not found: build first"
[ -x "$BUILD/tools/bus-burst" ] || die "$BUILD/tools/bus-burst not found: build first"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

. "$ROOT/tests/integration/lib.sh"
. "$ROOT/tests/integration/bus-lib.sh"

T=$(mktemp -d /tmp/stall-bench.XXXXXX)
chmod 755 "$T"
DAEMON_PID=
PEER_PID=
BUS_PID=
PROBE_PID=
LOAD_PID=
cleanup() {
        local rc=$? p
        trap - EXIT INT TERM
        for p in $LOAD_PID $PROBE_PID $PEER_PID $DAEMON_PID $BUS_PID; do
                kill "$p" 2>/dev/null || true
                wait "$p" 2>/dev/null || true
        done
        if [ $rc -ne 0 ] && [ -f "$T/daemon.log" ]; then
                tail -n 20 "$T/daemon.log" >&2
        fi
        rm -rf "$T"
        exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# hosts files: hostK.bench.test at 10.x.y.z, then every address moved by one /8.
mkdir -p "$T/hosts" "$T/state" "$T/peer-hosts"
awk -v n="$N" -v base=10 'BEGIN { for (i = 0; i < n; i++)
        printf "%d.%d.%d.%d host%d.bench.test\n", base, int(i / 65536) % 256, int(i / 256) % 256, i % 256, i }' \
        >"$T/hosts/bench.hosts"
awk -v n="$N" -v base=11 'BEGIN { for (i = 0; i < n; i++)
        printf "%d.%d.%d.%d host%d.bench.test\n", base, int(i / 65536) % 256, int(i / 256) % 256, i % 256, i }' \
        >"$T/changed.hosts"
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++)
        printf "172.%d.%d.%d peer%d.bench.test\n", 16 + int(i / 65536) % 16, int(i / 256) % 256, i % 256, i }' \
        >"$T/peer-hosts/peer.hosts"

start_system_bus "$T/bus" "$ROOT"
PORT=$(free_port)
HTTP_PORT=$(free_port)
SWIM1=$(free_port)
SWIM2=$(free_port)
"$BUILD/src/joyrided" --node-id=bench --dns-bind-address=127.0.0.1 --dns-port="$PORT" \
        --hosts-directory="$T/hosts" --state-directory="$T/state" --no-docker \
        --http-host=127.0.0.1 --http-port="$HTTP_PORT" --bus=system \
        --cluster --cluster-bind-address=127.0.0.1 --swim-port="$SWIM1" \
        >"$T/daemon.log" 2>&1 </dev/null &
DAEMON_PID=$!
wait_for "joyrided" 60 bash -c "[ \"\$(dig @127.0.0.1 -p $PORT +short +tries=1 +time=1 host$((N - 1)).bench.test)\" = 10.$(((N - 1) / 65536 % 256)).$(((N - 1) / 256 % 256)).$(((N - 1) % 256)) ]"
wait_for "the bus name" 10 name_owned

# probe LABEL CMD...: the probe runs from before CMD starts until after it ends.
RESULTS=$T/results.jsonl
probe() {
        local label=$1
        shift
        case $SKIP in *" $label "*) return 0 ;; esac
        rm -f "$T/started" "$T/stop"
        "$PY" "$ROOT/bench/stall-probe.py" --port "$PORT" --names "host{}.bench.test" --count "$N" \
                --seconds 1 --start-file "$T/started" --stop-file "$T/stop" --json --label "$label" \
                >>"$RESULTS" &
        PROBE_PID=$!
        wait_for "the probe" 10 test -e "$T/started"
        sleep 0.3
        local t0=$EPOCHREALTIME
        "$@" >"$T/load.out" 2>&1 || { cat "$T/load.out" >&2; die "$label: the load failed"; }
        local t1=$EPOCHREALTIME
        sleep 0.3
        touch "$T/stop"
        wait "$PROBE_PID"
        PROBE_PID=
        printf '%s\t%.2f\n' "$label" "$(echo "$t1 - $t0" | bc -l 2>/dev/null || echo 0)" >>"$T/durations"
        tail -n 1 "$RESULTS" >&2
}

load_idle() { sleep 3; }
load_records() {
        for _ in 1 2 3; do
                curl -sf -o "$T/records.json" "http://127.0.0.1:$HTTP_PORT/dns/records"
        done
        [ "$(stat -c %s "$T/records.json")" -gt 1000000 ]
}
load_reload() {
        local last=$((N - 1))
        cp "$T/changed.hosts" "$T/hosts/.bench.hosts.tmp"
        mv "$T/hosts/.bench.hosts.tmp" "$T/hosts/bench.hosts"
        # Done when the last name has only its new address (additions come first).
        local want="11.$((last / 65536 % 256)).$((last / 256 % 256)).$((last % 256))"
        wait_for "the reload" 120 bash -c "[ \"\$(dig @127.0.0.1 -p $PORT +short +tries=1 +time=1 host$last.bench.test)\" = $want ] && [ \"\$(dig @127.0.0.1 -p $PORT +short +tries=1 +time=1 host0.bench.test)\" = 11.0.0.0 ]"
}
load_dbus() {
        "$BUILD/tools/bus-burst" --count 1000 --window 100 --suffix bench.test
}
load_push_pull() {
        "$BUILD/src/joyrided" --node-id=peer --cluster --cluster-bind-address=127.0.0.1 --swim-port="$SWIM2" \
                --join="127.0.0.1:$SWIM1" --dns-bind-address=127.0.0.1 --dns-port="$(free_port)" \
                --hosts-directory="$T/peer-hosts" --state-directory="$T/peer-state" --no-docker --no-http \
                --bus=none >"$T/peer.log" 2>&1 </dev/null &
        PEER_PID=$!
        local last=$((N - 1))
        wait_for "the peer's records" 120 bash -c "[ -n \"\$(dig @127.0.0.1 -p $PORT +short +tries=1 +time=1 peer$last.bench.test)\" ]"
}

probe idle load_idle
probe records load_records
probe reload load_reload
probe dbus load_dbus
probe push-pull load_push_pull

"$PY" - "$RESULTS" "$T/durations" "$N" <<'PY' | tee "$BUILD/stall-bench.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
dur = dict(l.rstrip("\n").split("\t") for l in open(sys.argv[2]) if l.strip())
n = int(sys.argv[3])
print(f"| while the daemon is… ({n:,} names) | load took | queries | lost | p50 | p99 | max |")
print("| --- | --- | --- | --- | --- | --- | --- |")
what = {
    "idle": "idle",
    "records": "serving 3× `GET /dns/records`",
    "reload": "reloading a changed hosts file (every line)",
    "dbus": "taking 1,000 D-Bus AddRecord calls (100 in flight)",
    "push-pull": f"taking {n:,} records from a joining peer (push-pull)",
}
for r in rows:
    print(f"| {what.get(r['label'], r['label'])} | {float(dur.get(r['label'], 0)):.2f} s | {r['sent']} | {r['lost']} "
          f"| {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['max_ms']:.1f} ms |")
PY
