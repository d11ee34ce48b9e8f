#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Scheduling delay of the answering threads: how long a dns-N thread waits
# for a core once a query has woken it, while the daemon reloads a large
# hosts file (the load that keeps both cores of a small machine busy).
#
#   bench/sched-delay.sh [BUILD_DIR [REFERENCE_BUILD_DIR]]
#
# joyrided serves N = 100,000 names from a hosts file (HTTP, D-Bus, Docker
# and the cluster off); bench/stall-probe.py sends one A query every 2 ms over
# UDP while the file is replaced four times, each time by one whose every
# line changed. `perf sched record` traces the scheduler on every core
# meanwhile, and `perf sched timehist` gives each switch-in of a dns-N thread
# with its "sch delay" (from wake-up to running). Printed: that delay's p50,
# p99 and max, how many exceeded 0.5 and 1 ms, and the probe's DNS p99 and
# max. With a second build directory the same run is made against it too
# (say, a build without the answering threads' short time slice), and the
# ratio of the p99 delays is printed.
#
# This is the measurement behind "a short time slice" in
# docs/performance.md. Figures mean something only on an otherwise quiet
# machine: other sessions' work shows up as delay (see that section).
# Needs root (perf traces every process). Everything listens on 127.0.0.1 on
# random high ports; every process started here is stopped by PID.
#
# Environment: BENCH_N (names, default 100000), BENCH_RELOADS (default 4).
set -euo pipefail
BENCH_NAME=sched-delay
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
RELOADS=${BENCH_RELOADS:-4}

bench_need dig perf python3
[ "$(id -u)" = 0 ] || die "perf sched record needs root"

T=$(mktemp -d /tmp/sched-delay.XXXXXX)
DAEMON_PID=
PROBE_PID=
cleanup() {
        local pid
        for pid in $PROBE_PID $DAEMON_PID; do
                kill "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        done
        rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

# hostK.bench.test at 10.x.y.z, and the same names one /8 further.
for base in 10 11; do
        awk -v n="$N" -v base="$base" 'BEGIN { for (i = 0; i < n; i++)
                printf "%d.%d.%d.%d host%d.bench.test\n", base, int(i / 65536) % 256, int(i / 256) % 256, i % 256, i }' \
                >"$T/$base.hosts"
done
LAST=$((N - 1))
LAST_ADDR="10.$((LAST / 65536 % 256)).$((LAST / 256 % 256)).$((LAST % 256))"

# measure LABEL BUILD: one run; appends a JSON line to $T/results.jsonl.
measure() {
        local label=$1 build=$2 port pid
        rm -rf "$T/hosts" "$T/state" "$T/perf.data"
        mkdir -p "$T/hosts" "$T/state"
        cp "$T/10.hosts" "$T/hosts/bench.hosts"
        port=$(free_port)
        "$build/src/joyrided" --dns-bind-address=127.0.0.1 --dns-port="$port" --hosts-directory="$T/hosts" \
                --state-directory="$T/state" --no-docker --no-http --bus=none --no-cluster \
                >"$T/daemon.log" 2>&1 </dev/null &
        DAEMON_PID=$!
        wait_for "joyrided ($label)" 60 bash -c "[ \"\$(dig @127.0.0.1 -p $port +short +tries=1 +time=1 host$LAST.bench.test)\" = $LAST_ADDR ]"

        python3 "$ROOT/bench/stall-probe.py" --port "$port" --names "host{}.bench.test" --count "$N" \
                --seconds $((RELOADS * 3 / 2 + 1)) --json --label "$label" >"$T/probe.json" &
        PROBE_PID=$!
        sleep 0.5
        # Each reload has 1.2 s: time for the parse and the 200,000 changes.
        # shellcheck disable=SC2016 # expanded by the inner bash
        perf sched record -q -o "$T/perf.data" -- bash -c '
                for i in $(seq 1 "$1"); do
                        f=11; [ $((i % 2)) = 0 ] && f=10
                        cp "$2/$f.hosts" "$2/hosts/.bench.tmp"
                        mv "$2/hosts/.bench.tmp" "$2/hosts/bench.hosts"
                        sleep 1.2
                done' reloads "$RELOADS" "$T" >/dev/null 2>"$T/perf.err" || {
                cat "$T/perf.err" >&2
                die "perf sched record failed"
        }
        wait "$PROBE_PID"
        PROBE_PID=
        pid=$DAEMON_PID
        stop "$DAEMON_PID"
        DAEMON_PID=

        # Columns: time, cpu, task[tid/pid], wait time, sch delay, run time
        # (ms). Only this daemon's answering threads: dns-N[TID/PID].
        perf sched timehist -i "$T/perf.data" 2>/dev/null |
                awk -v pid="$pid" '$3 ~ "^dns-[0-9]+\\[[0-9]+/" pid "\\]$" { print $5 }' >"$T/delays"
        python3 - "$T/delays" "$T/probe.json" "$label" >>"$T/results.jsonl" <<'PY'
import json, sys
delays = sorted(float(x) for x in open(sys.argv[1]) if x.strip())
probe = json.load(open(sys.argv[2]))
pick = lambda p: delays[min(len(delays) - 1, int(round(p / 100 * (len(delays) - 1))))] if delays else float("nan")
print(json.dumps({
    "label": sys.argv[3], "switch_ins": len(delays),
    "delay_p50_ms": pick(50), "delay_p99_ms": pick(99), "delay_max_ms": delays[-1] if delays else float("nan"),
    "over_0_5_ms": sum(1 for d in delays if d > 0.5), "over_1_ms": sum(1 for d in delays if d > 1),
    "dns_p99_ms": probe["p99_ms"], "dns_max_ms": probe["max_ms"], "lost": probe["lost"],
}))
PY
        tail -n 1 "$T/results.jsonl" >&2
}

# stop PID: SIGTERM, and wait for it.
stop() {
        kill "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
}

measure this "$BUILD"
[ -n "$REFERENCE" ] && measure reference "$REFERENCE"

python3 - "$T/results.jsonl" "$N" "$RELOADS" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys
rows = {r["label"]: r for r in (json.loads(l) for l in open(sys.argv[1]) if l.strip())}
print(f"\n{int(sys.argv[2]):,} names, {sys.argv[3]} reloads; load average at the end: {sys.argv[4]}\n")
print("| build | dns-N switch-ins | sch delay p50 / p99 / max (ms) | > 0.5 ms | > 1 ms | DNS p99 / max (ms), lost |")
print("| --- | --- | --- | --- | --- | --- |")
for label, r in rows.items():
    print(f"| {label} | {r['switch_ins']} | {r['delay_p50_ms']:.3f} / {r['delay_p99_ms']:.3f} / {r['delay_max_ms']:.2f} "
          f"| {r['over_0_5_ms']} | {r['over_1_ms']} | {r['dns_p99_ms']:.2f} / {r['dns_max_ms']:.1f}, {r['lost']} |")
if "this" in rows and "reference" in rows and rows["reference"]["delay_p99_ms"] > 0:
    print(f"\np99 scheduling delay, this / reference: {rows['this']['delay_p99_ms'] / rows['reference']['delay_p99_ms']:.3f}")
PY
