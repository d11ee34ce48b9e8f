#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A/B benchmark of two joyrided builds: what a change costs per query.
#
#   bench/ab-bench.sh BASE_BUILD_DIR NEW_BUILD_DIR
#
# Serves the same 100,000 names (dnsbench.py gen, as dns-bench.sh) from each
# build in turn, Threads=1 pinned to core 0 and dnsperf pinned to core 1, and
# loads it for BENCH_SECONDS (default 5) over each transport; ROUNDS rounds
# (default 6), the order of the two builds swapped every round, each run in a
# freshly started daemon (so that one build's socket options, such as
# receive timestamps, which the kernel turns on for the whole host, do not
# apply to the other's runs). It prints every run, then per transport the
# median of each build's CPU per query in its own process (utime+stime) and
# on core 0, its queries/s, and the ratios new/base. On a busy machine single
# runs move by 10-20%: read the medians, and the spread of the ratios over the
# rounds. Everything listens on 127.0.0.1, random high ports; every process
# started here is stopped by PID on exit.
#
# Environment: ROUNDS, BENCH_SECONDS, BENCH_N (default 100000),
# BENCH_TRANSPORTS ("udp tcp").
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-6}
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
N=${BENCH_N:-100000}
TRANSPORTS=${BENCH_TRANSPORTS:-udp tcp}

die() {
        echo "ab-bench: $*" >&2
        exit 1
}

[ $# = 2 ] || die "usage: ab-bench.sh BASE_BUILD_DIR NEW_BUILD_DIR"
declare -A BIN=([base]=$(cd "$1" && pwd)/src/joyrided [new]=$(cd "$2" && pwd)/src/joyrided)
for b in base new; do [ -x "${BIN[$b]}" ] || die "${BIN[$b]} not found: build first"; done
command -v dnsperf >/dev/null || die "dnsperf not installed (tools/install-deps)"
[ "$(nproc)" -ge 2 ] || die "needs two cores (the server on core 0, dnsperf on core 1)"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
HELPER="$PY $ROOT/bench/dnsbench.py"

T=$(mktemp -d /tmp/ab-bench.XXXXXX)
SERVER_PID=
CHILD_PID=
cleanup() {
        local rc=$?
        trap - EXIT INT TERM
        for p in $CHILD_PID $SERVER_PID; do
                kill "$p" 2>/dev/null || true
                wait "$p" 2>/dev/null || true
        done
        rm -rf "$T"
        exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start BUILD: a fresh daemon of that build on a new port; sets PORT.
start() {
        local i
        PORT=$($HELPER port)
        rm -rf "$T/state"
        mkdir -p "$T/state"
        taskset -c 0 "${BIN[$1]}" --dns-bind-address=127.0.0.1 --dns-port="$PORT" \
                --hosts-directory="$T/data/hosts" --state-directory="$T/state" --no-docker --no-http \
                --bus=none --no-cluster --log-level=warning --dns-threads=1 >"$T/$1.log" 2>&1 </dev/null &
        SERVER_PID=$!
        for ((i = 0; i < 600; i++)); do
                [ "$(dig @127.0.0.1 -p "$PORT" +short +tries=1 +time=1 "host$((N - 1)).bench.test" 2>/dev/null)" = \
                        "$($HELPER addr $((N - 1)))" ] && return 0
                kill -0 "$SERVER_PID" 2>/dev/null || break
                sleep 0.05
        done
        cat "$T/$1.log" >&2
        die "$1 never answered"
}

stop() {
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
}

echo "base: ${BIN[base]}"
echo "new:  ${BIN[new]}"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
$HELPER gen "$T/data" "$N"
for ((round = 1; round <= ROUNDS; round++)); do
        order="base new"
        [ $((round % 2)) = 0 ] && order="new base"
        for tr in $TRANSPORTS; do
                for b in $order; do
                        start "$b"
                        $HELPER run --server "$b" --n "$N" --port "$PORT" --pid "$SERVER_PID" --transport "$tr" \
                                --run "$round" --seconds "$SECONDS_PER_RUN" --queries "$T/data/queries.txt" \
                                --out "$T/results.jsonl" &
                        CHILD_PID=$!
                        wait "$CHILD_PID" || die "dnsperf failed against $b"
                        CHILD_PID=
                        stop
                done
        done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

$PY - "$T/results.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if '"kind": "run"' in l]
for tr in sorted({r["transport"] for r in runs}):
    by = {b: [r for r in runs if r["transport"] == tr and r["server"] == b] for b in ("base", "new")}
    med = {b: {k: statistics.median(r[k] for r in by[b]) for k in ("proc_us_per_q", "cpu_us_per_q", "qps")}
           for b in by}
    ratios = []
    for rnd in sorted({r["run"] for r in by["new"]}):
        b = [r for r in by["base"] if r["run"] == rnd]
        n = [r for r in by["new"] if r["run"] == rnd]
        if b and n:
            ratios.append(n[0]["proc_us_per_q"] / b[0]["proc_us_per_q"])
    print(f"{tr}: median over {len(by['new'])} rounds")
    for b in ("base", "new"):
        m = med[b]
        print(f"  {b:4}  {m['proc_us_per_q']:.3f} us CPU/query in the process, {m['cpu_us_per_q']:.3f} on core 0, "
              f"{m['qps']:.0f} q/s")
    print(f"  new/base: process CPU/query {med['new']['proc_us_per_q'] / med['base']['proc_us_per_q']:.3f}, "
          f"core 0 {med['new']['cpu_us_per_q'] / med['base']['cpu_us_per_q']:.3f}, "
          f"q/s {med['new']['qps'] / med['base']['qps']:.3f}; per round (process): "
          + ", ".join(f"{x:.3f}" for x in ratios))
PY
