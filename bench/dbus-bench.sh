#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# D-Bus record writes: how long AddRecord takes when every change must be on
# disk before its reply.
#
#   bench/dbus-bench.sh [BUILD_DIR]
#
# joyrided on a private bus configured like the system bus (as the tests run
# it), a state directory on the same file system as /tmp. Three runs against
# one daemon:
#   sequential  1,000 adds, one at a time (each waits for its own write)
#   burst       10,000 adds, 100 in flight (the bus allows 128 pending
#               replies per connection): saves coalesce
#   removals    the 10,000 removed again, 100 in flight
# Each run prints its time, calls per second and the writes of the state
# file it took (the daemon's debug line per write); the last column is the
# ratio against the sequential run's time per call. The table also goes to
# BUILD_DIR/dbus-bench.md. It fails when the burst or the removals take a
# minute or more, or write the state file once per ten calls or more often.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac

die() {
        echo "dbus-bench: $*" >&2
        exit 1
}
"$ROOT/tools/install-deps"
[ -x "$BUILD/src/joyrided" ] && [ -x "$BUILD/tools/bus-burst" ] || die "build first: $BUILD/src/joyrided, $BUILD/tools/bus-burst"

. "$ROOT/tests/integration/lib.sh"
. "$ROOT/tests/integration/bus-lib.sh"

T=$(mktemp -d /tmp/dbus-bench.XXXXXX)
chmod 755 "$T"
DAEMON_PID=
BUS_PID=
cleanup() {
        local rc=$? p
        trap - EXIT INT TERM
        for p in $DAEMON_PID $BUS_PID; do
                kill "$p" 2>/dev/null || true
                wait "$p" 2>/dev/null || true
        done
        rm -rf "$T"
        exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_system_bus "$T/bus" "$ROOT"
PORT=$(free_port)
STATE=$T/state
start_daemon "$T/daemon.log" --log-level=debug

writes() { grep -c 'Saved [0-9]* record(s) to' "$T/daemon.log" || true; }

# run LABEL ARGS...: one bus-burst run; appends "label seconds calls writes".
run() {
        local label=$1 before after out
        shift
        before=$(writes)
        out=$("$BUILD/tools/bus-burst" --suffix bench.test "$@") || die "$label: $out"
        after=$(writes)
        echo "$label: $out writes=$((after - before))" >&2
        echo "$label $(sed -n 's/.*calls=\([0-9]*\).*seconds=\([0-9.]*\).*/\2 \1/p' <<<"$out") $((after - before))" \
                >>"$T/results"
}

run sequential --count 1000 --window 1 --prefix s
run burst --count 10000 --window 100 --prefix b
run removals --count 10000 --window 100 --prefix b --remove

/usr/bin/python3 - "$T/results" <<'PY' | tee "$BUILD/dbus-bench.md"
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
ref = None
print("| run | calls | time | calls/s | state file writes | time per call vs sequential |")
print("| --- | --- | --- | --- | --- | --- |")
for label, secs, calls, writes in rows:
    secs, calls, writes = float(secs), int(calls), int(writes)
    per = secs / calls
    ref = ref or per
    print(f"| {label} | {calls:,} | {secs:.2f} s | {calls / secs:,.0f} | {writes:,} | {per / ref:.3f} |")
PY
# The bound: 10,000 adds (or removals) in flight take seconds, not minutes
# (one write and fsync per change took 80 s for 5,000), and their saves
# coalesce (far fewer writes than calls).
/usr/bin/python3 - "$T/results" <<'PY' || die "D-Bus writes slower than the bound"
import sys
bad = False
for label, secs, calls, writes in (l.split() for l in open(sys.argv[1]) if l.strip()):
    if label == "sequential":
        continue
    if float(secs) >= 60:
        print(f"{label}: {int(calls):,} calls took {float(secs):.1f} s, the bound is 60 s", file=sys.stderr)
        bad = True
    if int(writes) * 10 > int(calls):
        print(f"{label}: {int(writes):,} state file writes for {int(calls):,} calls, not coalesced", file=sys.stderr)
        bad = True
sys.exit(bad)
PY
