#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The control loop's longest turns while a 100,000-name peer joins, and what
# the loop did in them.
#
#   bench/loop-turns.sh [BUILD_DIR [REFERENCE_BUILD_DIR]]
#
# joyrided ("a") serves N = 100,000 names from a hosts file, clustered on
# 127.0.0.1 with HTTP on; a second joyrided with N names of its own joins it,
# and the push-pull brings them over (a's loop merges 100,000 records and
# sends its own). Meanwhile `perf record` follows a's loop thread with a
# uprobe on libsystemd's sd_event_dispatch() (entry and return: one loop
# turn each; the loop dispatches one sd-event source per turn) and samples
# its stack at 4 kHz; bench/loop-probe.py asks GET /health every 10 ms.
# Printed per build: the turns' count, the p99 and the max of their length,
# how many took over 5 ms, the CPU time sampled in the five longest and the
# functions most seen in each, and the /health p99 and max. With a second
# build directory the same run is made against it too.
#
# `bench/stall-bench.sh` measures what a client sees (DNS and /health); this
# says which step of the loop a long /health wait came from. A turn's length
# includes waits for a core (2 cores, and the joining peer's process works
# too); the sampled CPU time does not.
# Needs root (uprobes). Everything listens on 127.0.0.1 on random high
# ports; every process started here is stopped by PID; the probes it adds
# are removed at exit.
#
# Environment: BENCH_N (names, default 100000), BENCH_RUNS (default 1).
set -euo pipefail
BENCH_NAME=loop-turns
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
RUNS=${BENCH_RUNS:-1}

bench_need dig perf python3
[ "$(id -u)" = 0 ] || die "uprobes need root"
LIBSYSTEMD=$(ldd "$BUILD/src/joyrided" | awk '/libsystemd\.so/ { print $3 }')
[ -n "$LIBSYSTEMD" ] || die "joyrided is not linked with libsystemd"

T=$(mktemp -d /tmp/loop-turns.XXXXXX)
A_PID=
PEER_PID=
PERF_PID=
PROBE_PID=
PROBES_ADDED=
cleanup() {
        local pid
        for pid in $PERF_PID $PROBE_PID $PEER_PID $A_PID; do
                kill "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        done
        [ -z "$PROBES_ADDED" ] || perf probe -q -d 'probe_libsystemd:jr_turn*' >/dev/null 2>&1 || true
        rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

perf probe -q -x "$LIBSYSTEMD" -a 'jr_turn=sd_event_dispatch' -a 'jr_turn=sd_event_dispatch%return' ||
        die "cannot add uprobes on $LIBSYSTEMD"
PROBES_ADDED=1

awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++)
        printf "10.%d.%d.%d host%d.bench.test\n", int(i / 65536) % 256, int(i / 256) % 256, i % 256, i }' >"$T/a.hosts"
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++)
        printf "172.%d.%d.%d peer%d.bench.test\n", 16 + int(i / 65536) % 16, int(i / 256) % 256, i % 256, i }' \
        >"$T/peer.hosts"
LAST=$((N - 1))

# measure LABEL BUILD: one run; appends a JSON line to $T/results.jsonl.
measure() {
        local label=$1 build=$2 dns http swim1 swim2
        rm -rf "$T/a" "$T/peer" "$T/perf.data"
        mkdir -p "$T/a/hosts" "$T/a/state" "$T/peer/hosts" "$T/peer/state"
        cp "$T/a.hosts" "$T/a/hosts/bench.hosts"
        cp "$T/peer.hosts" "$T/peer/hosts/bench.hosts"
        dns=$(free_port)
        http=$(free_port)
        swim1=$(free_port)
        swim2=$(free_port)
        "$build/src/joyrided" --node-id=a --cluster --cluster-bind-address=127.0.0.1 --swim-port="$swim1" \
                --dns-bind-address=127.0.0.1 --dns-port="$dns" --http-host=127.0.0.1 --http-port="$http" \
                --hosts-directory="$T/a/hosts" --state-directory="$T/a/state" --no-docker --bus=none \
                >"$T/a.log" 2>&1 </dev/null &
        A_PID=$!
        wait_for "joyrided ($label)" 60 bash -c "[ -n \"\$(dig @127.0.0.1 -p $dns +short +tries=1 +time=1 host$LAST.bench.test)\" ]"
        sleep 1

        # The loop thread is the process's first: its TID is the PID.
        perf record -q -o "$T/perf.data" -g -F 4000 -e probe_libsystemd:jr_turn -e probe_libsystemd:jr_turn__return \
                -e cpu-clock -t "$A_PID" >"$T/perf.log" 2>&1 &
        PERF_PID=$!
        rm -f "$T/stop"
        python3 "$ROOT/bench/loop-probe.py" --port "$http" --seconds 1 --stop-file "$T/stop" --json \
                --label "$label" >"$T/loop.json" &
        PROBE_PID=$!
        sleep 1
        "$build/src/joyrided" --node-id=peer --cluster --cluster-bind-address=127.0.0.1 --swim-port="$swim2" \
                --join="127.0.0.1:$swim1" --dns-bind-address=127.0.0.1 --dns-port="$(free_port)" \
                --hosts-directory="$T/peer/hosts" --state-directory="$T/peer/state" --no-docker --no-http \
                --bus=none >"$T/peer.log" 2>&1 </dev/null &
        PEER_PID=$!
        wait_for "the peer's records at a" 120 bash -c "[ -n \"\$(dig @127.0.0.1 -p $dns +short +tries=1 +time=1 peer$LAST.bench.test)\" ]"
        sleep 1
        touch "$T/stop"
        wait "$PROBE_PID"
        PROBE_PID=
        kill -INT "$PERF_PID" 2>/dev/null || die "perf record ended early: $(cat "$T/perf.log")"
        wait "$PERF_PID" || true
        PERF_PID=
        kill "$PEER_PID" "$A_PID"
        wait_pid_timeout "$PEER_PID" 20 || die "the peer did not stop"
        wait_pid_timeout "$A_PID" 20 || die "joyrided did not stop"
        PEER_PID=
        A_PID=
        perf script -i "$T/perf.data" -F tid,time,event,ip,sym 2>/dev/null |
                python3 "$ROOT/bench/loop-turns.py" --label "$label" \
                        --loop-json "$T/loop.json" >>"$T/results.jsonl"
}

for run in $(seq 1 "$RUNS"); do
        measure "this/$run" "$BUILD"
        [ -z "$REFERENCE" ] || measure "reference/$run" "$REFERENCE"
done

echo "$N names at a, $N joining with the peer; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$ROOT/bench/loop-turns.py" --table "$T/results.jsonl"
