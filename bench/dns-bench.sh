#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# DNS benchmark: joyrided against NSD, the same names, the same queries.
#
#   bench/dns-bench.sh [BUILD_DIR]        (`make bench` runs it on build/)
#
# For N = 100000 and N = 10 names it serves hostK.bench.test from a hosts
# file (joyrided) and from a zone file (NSD), measures the time from process
# start to the first correct answer, then loads each server with dnsperf
# (90% present names, 10% absent), twice over UDP and, at N = 100000, twice
# over TCP. Two cases:
#
#   1 thread:  joyrided --dns-threads=1 against NSD server-count: 1. The
#              servers are pinned to core 0 and dnsperf to core 1, so core
#              0's busy time divided by the queries answered is the server's
#              CPU cost per query: that figure still means something when
#              dnsperf's one core, not the server, is what caps queries/s.
#   2 threads: --dns-threads=2 against server-count: 2 (with reuseport, as
#              joyrided's threads have a socket each), at N = 100000. On a
#              2-core machine dnsperf shares both cores with the server: the
#              CPU per query to read is the server processes' own.
#
# Everything listens on 127.0.0.1 on random high ports, and every process
# started here is stopped by PID on exit.
#
# A third kind of run measures capacity, where the server and not the client
# is the limit: with 1 thread at the large N over UDP, two more runs per
# server (alternating again) with bench/udp-load.c on core 1 instead of
# dnsperf, a client lean enough to keep core 0 busy. The report uses them for
# the queries/s target only if, in all of them, core 0 was >= 97% busy and
# queries were waiting in the server's socket in >= 90% of 20 ms samples.
# The window of 512 queries in flight (dnsperf's -q is 500) rides out short
# pauses of the client and stays within NSD's 2 MiB socket buffer; two
# threads (-T 2, both on core 1) keep the client's turn when other work
# shares core 1, as dnsperf's sender and receiver threads do.
#
# Environment: BENCH_SECONDS (run length, default 10), BENCH_WINDOW
# (udp-load's queries in flight, default 512), BENCH_LOAD_ARGS (more
# udp-load options, default "-T 2"; "" for one thread),
# BENCH_N (large N, default 100000), BENCH_THREADS ("1 2" by default; "1"
# for the single-thread case only). The table also goes to
# BUILD_DIR/dns-bench.md and the raw figures to BUILD_DIR/dns-bench.jsonl.
set -euo pipefail
export LC_ALL=C # $EPOCHREALTIME with a '.', and dnsperf's numbers

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
BIG_N=${BENCH_N:-100000}
SMALL_N=10
THREAD_CASES=${BENCH_THREADS:-1 2}
LOAD_WINDOW=${BENCH_WINDOW:-512}
LOAD_ARGS=${BENCH_LOAD_ARGS--T 2}
# Set per case by bench_case: where the servers and dnsperf run.
THREADS=1
SERVER_CORES=0
CLIENT_CORES=1

die() {
        echo "dns-bench: $*" >&2
        exit 1
}

"$ROOT/tools/install-deps"

JOYRIDED=$BUILD/src/joyrided
[ -x "$JOYRIDED" ] || die "$JOYRIDED not found: build first (make build, or meson compile -C $BUILD)"
command -v nsd >/dev/null || die "nsd not installed"
command -v dnsperf >/dev/null || die "dnsperf not installed"
[ "$(nproc)" -ge 2 ] || die "needs two cores (servers on core 0, dnsperf on core 1)"
# Debian's interpreter, not a version manager's shim: the helper uses only the
# standard library, and a shim's start-up would only slow things down.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
HELPER="$PY $ROOT/bench/dnsbench.py"

T=$(mktemp -d /tmp/dns-bench.XXXXXX)
RESULTS=$T/results.jsonl
declare -A PID=() KIDS=() PORT=() # by server name: nsd, joyrided
POLL_PID=
CHILD_PID=

# Runs a long step in the background and waits for it, so that a signal to
# the bench is handled at once (bash runs traps only between commands).
bg_wait() {
        "$@" &
        CHILD_PID=$!
        local rc=0
        wait "$CHILD_PID" || rc=$?
        CHILD_PID=
        return $rc
}

# Field N (as in proc(5)) of /proc/PID/stat; the command name may hold spaces
# ("nsd: main"), so count from the ')' that closes it.
stat_field() {
        local st
        st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
        st=${st##*) }
        awk -v n="$(($2 - 2))" '{print $n}' <<<"$st"
}

# Stops one server: TERM to the process we started, then KILL to it and to
# anything it forked (NSD's main and server child) that is still there. Only
# these PIDs, each checked to still be one of ours.
stop_server() {
        local name=$1 pid=${PID[$1]:-} kids=${KIDS[$1]:-} k i
        [ -n "$pid" ] || return 0
        unset "PID[$name]" "KIDS[$name]"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 300; i++)); do
                # Our own child: a zombie until waited for.
                [ "$(stat_field "$pid" 3)" = Z ] && break
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.01
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        # Each kid as "PID/start time": a PID reused since then is not ours.
        for k in $kids; do
                if [ "$(stat_field "${k%/*}" 22)" = "${k#*/}" ]; then
                        kill -KILL "${k%/*}" 2>/dev/null || true
                fi
        done
}

cleanup() {
        local rc=$? name
        trap - EXIT INT TERM
        if [ -n "$CHILD_PID" ]; then
                kill "$CHILD_PID" 2>/dev/null || true
                wait "$CHILD_PID" 2>/dev/null || true
        fi
        if [ -n "$POLL_PID" ]; then
                kill "$POLL_PID" 2>/dev/null || true
                wait "$POLL_PID" 2>/dev/null || true
        fi
        for name in "${!PID[@]}"; do stop_server "$name"; done
        rm -rf "$T"
        exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The load generator of the capacity case, built here with -O2 so that the
# client is the same whatever the options of the build being measured.
LOADGEN=$T/udp-load
command -v cc >/dev/null || die "cc not installed (needed for bench/udp-load.c)"
cc -O2 -pthread -o "$LOADGEN" "$ROOT/bench/udp-load.c" || die "cannot build bench/udp-load.c"

# Every process below PID (recursively), for stop_server.
descendants() {
        local p=$1 c
        # shellcheck disable=SC2013 # the children files hold space-separated PIDs
        for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do
                echo "$c"
                descendants "$c"
        done
}

# start_server NAME N CMD...: starts CMD pinned to core 0 and records how long
# it takes to answer host(N-1) — the last line of the file — correctly. The
# poller starts first and is already probing when the server is forked, so its
# own start-up is not counted.
start_server() {
        local name=$1 n=$2 i k started answered
        shift 2
        rm -f "$T/ready" "$T/server.pid"
        $HELPER poll --port "${PORT[$name]}" --name "host$((n - 1)).bench.test" \
                --addr "$($HELPER addr "$((n - 1))")" \
                --ready "$T/ready" --pidfile "$T/server.pid" >"$T/answered" &
        POLL_PID=$!
        for ((i = 0; i < 500; i++)); do
                [ -e "$T/ready" ] && break
                sleep 0.01
        done
        [ -e "$T/ready" ] || die "the poller did not start"
        started=$EPOCHREALTIME
        taskset -c "$SERVER_CORES" "$@" >"$T/$name.log" 2>&1 </dev/null &
        PID[$name]=$!
        echo "${PID[$name]}" >"$T/server.pid"
        if ! wait "$POLL_PID"; then
                POLL_PID=
                echo "--- $name output:" >&2
                cat "$T/$name.log" >&2
                die "$name (N=$n) never answered correctly"
        fi
        POLL_PID=
        answered=$(cat "$T/answered")
        # NSD forks its main and server processes as it starts; remember them.
        KIDS[$name]=
        for k in $(descendants "${PID[$name]}"); do
                KIDS[$name]+="$k/$(stat_field "$k" 22) "
        done
        $HELPER start --server "$name" --n "$n" --threads "$THREADS" --started "$started" --answered "$answered" \
                --out "$RESULTS"
        $HELPER verify --port "${PORT[$name]}" --n "$n" || die "$name (N=$n) gives wrong answers"
}

start_nsd() {
        local n=$1 d=$T/nsd-$1
        mkdir -p "$d"
        cp "$T/data-$n/bench.test.zone" "$d/"
        # THREADS server processes (with reuseport when several: a socket
        # each, as joyrided's threads) and no rate limiting (Debian's build
        # limits by default), so NSD is a fair reference. No database file:
        # NSD reads the zone file as joyrided reads the hosts file, and the
        # manual says this uses less memory. Minimal responses: joyrided puts
        # no NS records in the authority section of a positive answer either.
        cat >"$d/nsd.conf" <<EOF
server:
        server-count: $THREADS
        reuseport: $([ "$THREADS" -gt 1 ] && echo yes || echo no)
        ip-address: 127.0.0.1
        port: ${PORT[nsd]}
        do-ip6: no
        username: ""
        chroot: ""
        zonesdir: "$d"
        database: ""
        zonelistfile: "$d/zone.list"
        xfrdfile: "$d/xfrd.state"
        xfrdir: "$d"
        pidfile: "$d/nsd.pid"
        logfile: "$d/nsd.log"
        verbosity: 0
        hide-version: yes
        minimal-responses: yes
        rrl-ratelimit: 0
        rrl-whitelist-ratelimit: 0
remote-control:
        control-enable: no
zone:
        name: bench.test
        zonefile: bench.test.zone
EOF
        nsd-checkconf "$d/nsd.conf" || die "bad NSD configuration"
        start_server nsd "$n" nsd -d -c "$d/nsd.conf"
}

start_joyrided() {
        local n=$1 d=$T/joyrided-$1
        mkdir -p "$d/state"
        start_server joyrided "$n" "$JOYRIDED" \
                --dns-bind-address=127.0.0.1 --dns-port="${PORT[joyrided]}" \
                --hosts-directory="$T/data-$n/hosts" --state-directory="$d/state" \
                --no-docker --no-http --bus=none --no-cluster --log-level=warning --dns-threads="$THREADS"
}

# load_run CLIENT SERVER N TRANSPORT RUN: one run of CLIENT (dnsperf or
# udp-load) against SERVER, with the cores' busy time around it.
load_run() {
        local client=$1 name=$2 n=$3 tr=$4 run=$5
        # shellcheck disable=SC2086 # HELPER is "python3 script.py"
        bg_wait $HELPER run --client "$client" --loadgen "$LOADGEN" --window "$LOAD_WINDOW" --loadgen-args "$LOAD_ARGS" \
                --server "$name" --n "$n" --port "${PORT[$name]}" \
                --pid "${PID[$name]}" --transport "$tr" --run "$run" \
                --threads "$THREADS" --server-cores "$(cores_list "$SERVER_CORES")" \
                --client-cores "$(cores_list "$CLIENT_CORES")" \
                --seconds "$SECONDS_PER_RUN" --queries "$T/data-$n/queries.txt" \
                --out "$RESULTS" || die "$client failed against $name"
}

# bench_case N TRANSPORTS THREADS: both servers up (each started alone, so
# its time to first answer is its own; an idle server costs the other
# nothing), then for each transport two dnsperf runs per server, alternating
# NSD and joyrided, so that load from elsewhere on the machine falls on both
# alike.
bench_case() {
        local n=$1 transports=$2 tr run name
        THREADS=$3
        if [ "$THREADS" -gt 1 ]; then
                SERVER_CORES=0-$(($(nproc) - 1))
                CLIENT_CORES=$SERVER_CORES
        else
                SERVER_CORES=0
                CLIENT_CORES=1
        fi
        PORT[nsd]=$($HELPER port)
        start_nsd "$n"
        PORT[joyrided]=$($HELPER port) # NSD holds its own port by now
        start_joyrided "$n"
        for tr in $transports; do
                for run in 1 2; do
                        for name in nsd joyrided; do
                                load_run dnsperf "$name" "$n" "$tr" "$run"
                        done
                done
                # The capacity case: one dnsperf thread cannot keep one
                # server thread busy, udp-load can; the same pinning.
                if [ "$THREADS" = 1 ] && [ "$tr" = udp ] && [ "$n" = "$BIG_N" ]; then
                        for run in 1 2; do
                                for name in nsd joyrided; do
                                        load_run udp-load "$name" "$n" "$tr" "$run"
                                done
                        done
                fi
                for name in nsd joyrided; do
                        $HELPER mem --server "$name" --n "$n" --transport "$tr" --threads "$THREADS" \
                                --pid "${PID[$name]}" --out "$RESULTS"
                done
        done
        stop_server joyrided
        stop_server nsd
}

# "0-1" -> "0,1": taskset takes ranges, /proc/stat is read core by core.
cores_list() {
        local a=${1%-*} b=${1#*-} i out=
        for ((i = a; i <= b; i++)); do out+="${out:+,}$i"; done
        echo "$out"
}

# Core 0 should be idle apart from the server: other work there inflates the
# CPU/query column and lowers queries/s. Measured before and after the bench.
core0_idle_check() {
        local a b pct load
        a=$(awk '$1 == "cpu0" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat)
        sleep 1
        b=$(awk '$1 == "cpu0" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat)
        pct=$(((b - a) * 100 / $(getconf CLK_TCK)))
        # The 2-thread case uses every core: the load average says how busy
        # the machine is besides.
        load=$(cut -d' ' -f1 /proc/loadavg)
        echo "{\"kind\": \"noise\", \"when\": \"$1\", \"busy_percent\": $pct, \"loadavg\": $load}" >>"$RESULTS"
        echo "core 0 busy $1 the bench, with no server running: $pct% over 1 s; load average $load"
}

buildtype=$(sed -n 's/^buildtype *= *//p' "$BUILD/meson-private/cmd_line.txt" 2>/dev/null || true)
echo "joyrided: $JOYRIDED (buildtype ${buildtype:-from meson.build defaults})"
echo "nsd: $(nsd -v 2>&1 | head -1); $(dnsperf -h 2>&1 | grep -m1 -i 'version' || echo dnsperf)"
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
core0_idle_check before
echo

for n in "$BIG_N" "$SMALL_N"; do
        $HELPER gen "$T/data-$n" "$n"
done

for threads in $THREAD_CASES; do
        if [ "$threads" = 1 ]; then
                echo "== 1 thread, N=$BIG_N: UDP then TCP"
                bench_case "$BIG_N" "udp tcp" 1
                echo "== 1 thread, N=$SMALL_N: UDP"
                bench_case "$SMALL_N" udp 1
        else
                echo "== $threads threads, N=$BIG_N: UDP then TCP (dnsperf shares the cores)"
                bench_case "$BIG_N" "udp tcp" "$threads"
        fi
done

core0_idle_check after
rc=0
$HELPER report "$RESULTS" "$T/report.md" || rc=$?
if [ -d "$BUILD" ]; then
        cp "$RESULTS" "$BUILD/dns-bench.jsonl"
        cp "$T/report.md" "$BUILD/dns-bench.md"
        echo "(table in markdown: $BUILD/dns-bench.md; raw figures: $BUILD/dns-bench.jsonl)"
fi
exit $rc
