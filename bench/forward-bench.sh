#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Forwarding benchmark: cached forwarded answers from joyrided beside
# dnsmasq, both forwarding to the same upstream (NSD serving upstream.test).
#
#   bench/forward-bench.sh [BUILD_DIR]
#
# NSD serves N names (fwdK.upstream.test); joyrided (--forward) and dnsmasq
# (--server) both forward to it with a cache of 10,000 answers and hold none
# of those names themselves. Each is warmed with every name once, so that the
# runs measure answers from the cache; NSD's own counter shows that it was not
# asked again during them. dnsperf (core 1) then loads each server (core 0)
# for BENCH_SECONDS, three runs each, alternating, so that load from elsewhere
# on the machine falls on both alike. CPU per query is the server process's
# own CPU time (every thread: joyrided answers on its DNS thread and its
# forwarder thread) divided by the queries answered: that figure still means
# something when dnsperf's one core, not the server, caps queries/s. A third
# server, "joyrided-own", answers the same names from a hosts file
# (authoritatively, on the answering thread): the difference to joyrided is
# what handing a question to the forwarder thread costs.
# Everything listens on 127.0.0.1 on random high ports; every process started
# here is stopped by PID on exit.
#
# Environment: BENCH_SECONDS (default 10), BENCH_NAMES (default 1000),
# BENCH_CLIENTS (dnsperf -c, default 4), BENCH_OUTSTANDING (dnsperf -q,
# default 500: dnsmasq drops some of such a burst, each drop costs a
# dnsperf slot its 5 s timeout; 50 keeps it loss-free). The table also goes to
# BUILD_DIR/forward-bench.md.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
SECS=${BENCH_SECONDS:-10}
N=${BENCH_NAMES:-1000}
CLIENTS=${BENCH_CLIENTS:-4}
OUTSTANDING=${BENCH_OUTSTANDING:-500}
RUNS=3

die() {
        echo "forward-bench: $*" >&2
        exit 1
}

"$ROOT/tools/install-deps"
JOYRIDED=$BUILD/src/joyrided
[ -x "$JOYRIDED" ] || die "$JOYRIDED not found: build first (make build, or meson compile -C $BUILD)"
for tool in nsd nsd-control dnsmasq dnsperf dig taskset; do
        command -v "$tool" >/dev/null || die "$tool is not installed"
done
[ "$(nproc)" -ge 2 ] || die "needs two cores (servers on core 0, dnsperf on core 1)"

T=$(mktemp -d /tmp/forward-bench.XXXXXX)
declare -A PID=() PORT=()
cleanup() {
        local rc=$? name
        trap - EXIT INT TERM
        for name in "${!PID[@]}"; do
                kill "${PID[$name]}" 2>/dev/null || true
                wait "${PID[$name]}" 2>/dev/null || true
        done
        [ -n "${BENCH_KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
        exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
        /usr/bin/python3 - <<'PY'
import random, socket
for _ in range(200):
    p = random.randint(20000, 60000)
    try:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", p))
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.bind(("127.0.0.1", p))
        u.close(); t.close()
        print(p); break
    except OSError:
        pass
PY
}

# CPU ticks (user + system, every thread) of a process.
cpu_ticks() {
        local st
        st=$(cat "/proc/$1/stat") || die "process $1 is gone"
        st=${st##*) }
        awk '{print $12 + $13}' <<<"$st"
}

wait_answer() { # wait_answer PORT: until fwd1.upstream.test answers
        local i
        for ((i = 0; i < 100; i++)); do
                [ "$(dig @127.0.0.1 -p "$1" +tries=1 +time=1 +short fwd1.upstream.test 2>/dev/null)" = 10.99.0.1 ] &&
                        return 0
                sleep 0.1
        done
        return 1
}

# --- the upstream -------------------------------------------------------------

mkdir -p "$T/nsd" "$T/joyrided/state" "$T/own/state" "$T/own/hosts"
{
        # shellcheck disable=SC2016 # zone file syntax, not shell expansions
        echo '$ORIGIN upstream.test.'
        # shellcheck disable=SC2016 # zone file syntax
        echo '$TTL 3600'
        echo '@ IN SOA ns.upstream.test. admin.upstream.test. 1 3600 600 86400 60'
        echo '@ IN NS ns'
        echo 'ns IN A 127.0.0.1'
        for ((i = 1; i <= N; i++)); do
                echo "fwd$i IN A 10.99.$((i / 250)).$((i % 250))"
        done
} >"$T/nsd/upstream.test.zone"
for ((i = 1; i <= N; i++)); do echo "fwd$i.upstream.test A"; done >"$T/queries.txt"
for ((i = 1; i <= N; i++)); do echo "10.99.$((i / 250)).$((i % 250)) fwd$i.upstream.test"; done >"$T/own/hosts/own.hosts"

PORT[nsd]=$(free_port)
cat >"$T/nsd/nsd.conf" <<EOF
server:
        server-count: 1
        ip-address: 127.0.0.1
        port: ${PORT[nsd]}
        do-ip6: no
        username: ""
        chroot: ""
        zonesdir: "$T/nsd"
        database: ""
        zonelistfile: "$T/nsd/zone.list"
        xfrdfile: "$T/nsd/xfrd.state"
        pidfile: "$T/nsd/nsd.pid"
        logfile: "$T/nsd/nsd.log"
        verbosity: 0
        rrl-ratelimit: 0
remote-control:
        control-enable: yes
        control-interface: $T/nsd/nsd.ctl
zone:
        name: upstream.test
        zonefile: upstream.test.zone
EOF
taskset -c 1 nsd -d -c "$T/nsd/nsd.conf" >"$T/nsd/out" 2>&1 &
PID[nsd]=$!
wait_answer "${PORT[nsd]}" || die "NSD did not start: $(cat "$T/nsd/out")"
nsd_queries() { nsd-control -c "$T/nsd/nsd.conf" stats_noreset | sed -n 's/^num.queries=//p'; }

# --- the two forwarders ---------------------------------------------------------

PORT[joyrided]=$(free_port)
taskset -c 0 "$JOYRIDED" --dns-bind-address=127.0.0.1 --dns-port="${PORT[joyrided]}" \
        --state-directory="$T/joyrided/state" --no-docker --no-http --bus=none --no-cluster \
        --log-level=warning --forward="127.0.0.1:${PORT[nsd]}" --forward-cache-size=10000 \
        >"$T/joyrided.log" 2>&1 </dev/null &
PID[joyrided]=$!
wait_answer "${PORT[joyrided]}" || die "joyrided did not start: $(cat "$T/joyrided.log")"

PORT[own]=$(free_port)
taskset -c 0 "$JOYRIDED" --dns-bind-address=127.0.0.1 --dns-port="${PORT[own]}" \
        --state-directory="$T/own/state" --hosts-directory="$T/own/hosts" --no-docker --no-http --bus=none \
        --no-cluster --log-level=warning >"$T/own.log" 2>&1 </dev/null &
PID[own]=$!
wait_answer "${PORT[own]}" || die "joyrided (own names) did not start: $(cat "$T/own.log")"

PORT[dnsmasq]=$(free_port)
taskset -c 0 dnsmasq -k --port="${PORT[dnsmasq]}" --listen-address=127.0.0.1 --bind-interfaces \
        --no-resolv --no-hosts --server="127.0.0.1#${PORT[nsd]}" --cache-size=10000 \
        --user=root --pid-file= >"$T/dnsmasq.log" 2>&1 </dev/null &
PID[dnsmasq]=$!
wait_answer "${PORT[dnsmasq]}" || die "dnsmasq did not start: $(cat "$T/dnsmasq.log")"

echo "joyrided: $JOYRIDED ($(sed -n 's/^buildtype *= *//p' "$BUILD/meson-private/cmd_line.txt" 2>/dev/null || echo default) build)"
echo "dnsmasq: $(dnsmasq --version | head -1)"
echo "upstream: $(nsd -v 2>&1 | head -1), $N names; $(dnsperf -h 2>&1 | grep -m1 -i version || echo dnsperf)"
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# Warm both caches with every name, then check they answer right.
for name in joyrided dnsmasq own; do
        taskset -c 1 dnsperf -s 127.0.0.1 -p "${PORT[$name]}" -d "$T/queries.txt" -n 1 -c 1 -q 100 >/dev/null 2>&1 ||
                die "warming $name failed"
        got=$(dig @127.0.0.1 -p "${PORT[$name]}" +tries=1 +time=2 +short "fwd$N.upstream.test")
        [ "$got" = "10.99.$((N / 250)).$((N % 250))" ] || die "$name answers fwd$N.upstream.test with '$got'"
done
before_runs=$(nsd_queries)

# --- the runs -----------------------------------------------------------------

results=$T/results.txt
: >"$results"
for ((run = 1; run <= RUNS; run++)); do
        for name in joyrided dnsmasq own; do
                c0=$(cpu_ticks "${PID[$name]}")
                out=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "${PORT[$name]}" -d "$T/queries.txt" -l "$SECS" \
                        -c "$CLIENTS" -T 1 -q "$OUTSTANDING" 2>&1) || die "dnsperf against $name failed: $out"
                c1=$(cpu_ticks "${PID[$name]}")
                completed=$(sed -n 's/^ *Queries completed: *\([0-9]*\).*/\1/p' <<<"$out")
                qps=$(sed -n 's/^ *Queries per second: *\([0-9.]*\).*/\1/p' <<<"$out")
                lost=$(sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p' <<<"$out")
                noerror=$(sed -n 's/.*NOERROR \([0-9]*\).*/\1/p' <<<"$out" | head -1)
                [ -n "$completed" ] && [ "$completed" -gt 0 ] || die "no queries completed against $name: $out"
                [ "${noerror:-0}" = "$completed" ] || die "$name: $noerror NOERROR of $completed: $out"
                usec=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v q="$completed" \
                        'BEGIN {printf "%.2f", t * 1e6 / hz / q}')
                [ "$name" = own ] && name=joyrided-own
                echo "$name $run $qps $usec $lost" >>"$results"
                printf '%-12s run %d: %9.0f queries/s, %6s us CPU/query, %s lost\n' "$name" "$run" "$qps" "$usec" "$lost"
        done
done
after_runs=$(nsd_queries)
echo "NSD was asked $((after_runs - before_runs)) times during the runs (every answer came from a cache)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on core 0 lowers queries/s, dnsmasq's most:"
echo "it takes one query per wakeup, joyrided a batch)"
[ "$((after_runs - before_runs))" -le $((2 * RUNS)) ] ||
        echo "WARNING: the caches did not answer everything: the runs measured forwarding, not the cache"

# Best queries/s and lowest CPU/query of each, then the ratios.
awk -v secs="$SECS" -v n="$N" -v clients="$CLIENTS" -v outstanding="$OUTSTANDING" '
        { q[$1] = ($3 > q[$1]) ? $3 : q[$1]; if (!($1 in c) || $4 < c[$1]) c[$1] = $4 }
        END {
                printf "\n| server | queries/s (best of 3) | CPU µs/query (best of 3) |\n|---|---|---|\n"
                printf "| joyrided | %.0f | %.2f |\n", q["joyrided"], c["joyrided"]
                printf "| dnsmasq | %.0f | %.2f |\n", q["dnsmasq"], c["dnsmasq"]
                printf "| joyrided / dnsmasq | %.2f | %.2f |\n", q["joyrided"] / q["dnsmasq"], c["joyrided"] / c["dnsmasq"]
                printf "| joyrided-own (same names, authoritative) | %.0f | %.2f |\n", q["joyrided-own"], c["joyrided-own"]
                printf "\n(%d names cached, dnsperf -c %d -T 1 -q %d -l %d on core 1, servers on core 0)\n", n, clients, outstanding, secs
        }' "$results" | tee "$T/report.md"
if [ -d "$BUILD" ]; then
        cp "$T/report.md" "$BUILD/forward-bench.md"
        echo "(table in markdown: $BUILD/forward-bench.md)"
fi
