#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The cluster at scale: N joyrided nodes (default 50), each in its own
# network namespace on one bridge (tests/integration/cluster-lib.sh), with a
# cluster key and the default protocol timings (memberlist's LAN profile:
# probe 1 s, suspicion multiplier 4, retransmit multiplier 4, dead grace
# 5 s). It measures, in this order:
#   formation   every node sees every other alive, and serves its record
#   rest        cluster packets and bytes per node per second, CPU and RSS,
#               with nothing happening (--rest seconds)
#   churn       --changes hosts-file changes on random nodes, each timed
#               until every other node answers it (p50/p99/max), and the
#               traffic meanwhile
#   kill        SIGKILL of one node: first suspicion, dead on all, its
#               record gone from every other node; then it restarts
#   loss        10% of the cluster packets every node sends are dropped
#               (nftables numgen, as tests/integration/test-cluster.sh;
#               the kernel here has no netem), for --duration seconds:
#               changes every 2 s, DNS samples, false deaths, flaps
#   starve      --starve nodes (default 10) stopped with SIGSTOP for 2 s at
#               random times (every 4-12 s each), for --duration seconds
# Figures from the daemons' logs (millisecond timestamps), DNS asked from
# the bridge's namespace, nftables counters on each node's eth0, /proc. It
# prints a summary and writes the figures as JSON (--json). Needs root and
# network namespaces; everything goes away on exit. Each node is light (a
# few probes a second), but 50 of them and the prober share the machine:
# the load average is printed beside the traffic figures.
#
#   bench/cluster-scale.sh [--build DIR] [-n N] [--changes N] [--rest SEC]
#                          [--duration SEC] [--starve N] [--no-loss]
#                          [--no-starve] [--json FILE] [--keep]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build
n=50
changes=100
rest=30
duration=120
starve=10
do_loss=1
do_starve=1
json=
keep=
while [ $# -gt 0 ]; do
        case $1 in
                --build)
                        build=$2
                        shift
                        ;;
                -n | --nodes)
                        n=$2
                        shift
                        ;;
                --changes)
                        changes=$2
                        shift
                        ;;
                --rest)
                        rest=$2
                        shift
                        ;;
                --duration)
                        duration=$2
                        shift
                        ;;
                --starve)
                        starve=$2
                        shift
                        ;;
                --no-loss) do_loss= ;;
                --no-starve) do_starve= ;;
                --json)
                        json=$2
                        shift
                        ;;
                --keep) keep=1 ;;
                -h | --help)
                        sed -n '3,30p' "$0" | sed 's/^# \{0,1\}//'
                        exit 0
                        ;;
                *)
                        echo "unknown option $1 (see --help)" >&2
                        exit 2
                        ;;
        esac
        shift
done
build=$(cd "$build" && pwd)
JOYRIDED=$build/src/joyrided
[ -x "$JOYRIDED" ] || {
        echo "no joyrided in $build" >&2
        exit 2
}
[ "$n" -ge 3 ] && [ "$n" -le 200 ] || {
        echo "-n must be 3-200" >&2
        exit 2
}
[ "$starve" -le $((n - 2)) ] || starve=$((n - 2))

. "$top/tests/integration/lib.sh"
. "$top/tests/integration/cluster-lib.sh"
for tool in nft python3 dig; do
        command -v "$tool" >/dev/null || {
                echo "SKIP: $tool is not installed"
                exit 77
        }
done
cluster_require_netns

CL_DIR=$(mktemp -d /tmp/jr-cluster-scale.XXXXXX)
CL_DNS_PORT=5353
CL_HTTP_PORT=5354
# The default protocol timings, not the shortened ones of the tests.
CL_PROBE_MS=1000 CL_PROBE_TIMEOUT_MS=500 CL_GRACE_MS=5000 CL_PUSH_PULL_MS=30000 CL_DISCOVERY_MS=10000
CL_HTTP_NODES=$(seq -s ' ' 1 "$n")
json=${json:-$build/cluster-scale.json}
# Stopped nodes are woken first, so that they die of the cleanup's SIGKILL.
wake_nodes() {
        local k
        for k in "${!CL_PID[@]}"; do
                kill -CONT "${CL_PID[$k]}" 2>/dev/null || true
        done
}
CL_BEFORE_CLEANUP=wake_nodes CL_LOG_TAIL=15 CL_KEEP=$keep
CL_EXIT_LOGS=("$CL_DIR"/log.1 "$CL_DIR"/log."$n")
cluster_trap_exit

KEY=$(head -c 32 /dev/urandom | base64)
NODES=$(seq -s , 1 "$n")
self_value() { echo "10.9.$(($1 / 250)).$(($1 % 250 + 1))"; }
epoch() { date +%s.%N; }
# The prober runs in the switch namespace, where br0 is on the nodes' segment.
probe() {
        ip netns exec "$CL_SWITCH" python3 "$top/bench/cluster-scale.py" --dir "$CL_DIR" --subnet "$CL_SUBNET" \
                --prefix "$CL_PREFIX" --dns-port "$CL_DNS_PORT" --http-port "$CL_HTTP_PORT" --nodes "$NODES" "$@"
}
pids() {
        local k out=
        for k in "${!CL_PID[@]}"; do out+="$k:${CL_PID[$k]},"; done
        echo "$out"
}
snapshot() { probe snapshot --pids "$(pids)" "${@:2}" >"$CL_DIR/snap-$1.json"; }
say() { echo "[$(date +%T)] $*"; }

# --- the segment: N nodes and the prober on one bridge ------------------------
say "making $n namespaces (load $(cut -d' ' -f1-3 /proc/loadavg))"
cluster_make_switch
# A fixed address: a bridge takes the lowest of its ports' otherwise.
ip -n "$CL_SWITCH" link set br0 address 02:6a:72:00:00:fe
ip -n "$CL_SWITCH" addr add "$CL_SUBNET.254/24" dev br0
for k in $(seq 1 "$n"); do
        cluster_make_host "$k"
        # Counters of the cluster traffic on eth0, and an empty chain where
        # the loss phase puts its drop rule (DNS to the prober is not dropped).
        ip netns exec "$(cl_ns "$k")" nft -f - <<'EOF'
table inet jrbench {
        counter udp_out { }
        counter tcp_out { }
        counter udp_in { }
        counter tcp_in { }
        chain loss { }
        chain output {
                type filter hook output priority 0; policy accept;
                oifname "eth0" udp dport { 8889, 8890 } counter name "udp_out" jump loss
                oifname "eth0" tcp dport 8890 counter name "tcp_out" jump loss
                oifname "eth0" tcp sport 8890 counter name "tcp_out" jump loss
        }
        chain input {
                type filter hook input priority 0; policy accept;
                iifname "eth0" udp dport { 8889, 8890 } counter name "udp_in"
                iifname "eth0" tcp dport 8890 counter name "tcp_in"
                iifname "eth0" tcp sport 8890 counter name "tcp_in"
        }
}
EOF
        mkdir -p "$CL_DIR/h$k"
        echo "$(self_value "$k") n$k.scale.test" >"$CL_DIR/h$k/self"
done
cluster_static_neighbours $(seq 1 "$n")
printf '{"n": %s, "changes": %s, "rest_s": %s, "duration_s": %s, "starve": %s, "cpus": %s}\n' \
        "$n" "$changes" "$rest" "$duration" "$starve" "$(nproc)" >"$CL_DIR/config.json"

# --- formation ------------------------------------------------------------------
say "starting $n nodes"
t0=$(epoch)
for k in $(seq 1 "$n"); do
        cluster_start "$k" "$KEY" --log-level=info
done
probe formation --t0 "$t0" --timeout 90 >"$CL_DIR/formation.json"
say "formation: $(cat "$CL_DIR/formation.json")"

# --- at rest ----------------------------------------------------------------------
sleep 5 # the join traffic (push-pulls with each new member) settles
t=$(epoch)
snapshot rest-0
sleep "$rest"
snapshot rest-1
probe events --since "$t" >"$CL_DIR/events-rest.json"

# --- churn: hosts-file changes ----------------------------------------------------
say "$changes changes"
t=$(epoch)
snapshot churn-0
probe changes --count "$changes" >"$CL_DIR/changes.json"
snapshot churn-1
probe events --since "$t" >"$CL_DIR/events-churn.json"
say "changes: $(head -c 300 "$CL_DIR/changes.json")"

# --- kill -9 ----------------------------------------------------------------------
victim=$n
say "SIGKILL of n$victim"
# The shell reports a killed job on its stderr: not here.
exec 3>&2 2>/dev/null
t=$(epoch)
kill -KILL "${CL_PID[$victim]}"
wait "${CL_PID[$victim]}" || true
exec 2>&3 3>&-
probe kill --victim "$victim" --t0 "$t" >"$CL_DIR/kill.json"
unset "CL_PID[$victim]"
probe events --since "$t" --expect-dead "$victim" >"$CL_DIR/events-kill.json"
say "kill: $(cat "$CL_DIR/kill.json")"
t=$(epoch)
cluster_start "$victim" "$KEY" --log-level=info
probe formation --t0 "$t" --timeout 60 --victim "$victim" >"$CL_DIR/rejoin.json"
say "rejoin: $(cat "$CL_DIR/rejoin.json")"
sleep 5

# --- 10% loss ---------------------------------------------------------------------
if [ -n "$do_loss" ]; then
        say "10% loss on every node for $duration s"
        for k in $(seq 1 "$n"); do
                ip netns exec "$(cl_ns "$k")" nft add rule inet jrbench loss numgen random mod 100 '<' 10 drop
        done
        t=$(epoch)
        snapshot loss-0
        probe soak --duration "$duration" --first 20000 >"$CL_DIR/loss.json"
        snapshot loss-1
        probe events --since "$t" >"$CL_DIR/events-loss.json"
        for k in $(seq 1 "$n"); do
                ip netns exec "$(cl_ns "$k")" nft flush chain inet jrbench loss
        done
        sleep 5
fi

# --- CPU-starved nodes (SIGSTOP for 2 s at random times) ----------------------------
if [ -n "$do_starve" ] && [ "$starve" -gt 0 ]; then
        list=
        for k in $(seq 2 $((starve + 1))); do list+="$k:${CL_PID[$k]},"; done
        say "$starve nodes stopped for 2 s at random times, for $duration s"
        t=$(epoch)
        snapshot starve-0
        probe soak --duration "$duration" --first 40000 --starve "$list" >"$CL_DIR/starve.json"
        snapshot starve-1
        probe events --since "$t" >"$CL_DIR/events-starve.json"
fi

snapshot end --metrics
ip netns exec "$CL_SWITCH" python3 "$top/bench/cluster-scale.py" --dir "$CL_DIR" report --n "$n" --json "$json"
echo "figures: $json"
