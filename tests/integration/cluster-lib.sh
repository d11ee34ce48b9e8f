# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Several hosts on one machine for the cluster tests (sourced, not run):
# one network namespace per node, joined by veth pairs to a bridge that lives
# in a "switch" namespace of its own. Nothing is created in the caller's
# namespace (each veth is made inside the switch namespace with its peer
# placed straight into the node's), so no broadcast or cluster packet can
# leave the namespaces made here. cluster_cleanup removes them all, and with
# them every veth and the bridge; call it from an EXIT trap.

CL_PREFIX="jr-$$"
CL_SWITCH="$CL_PREFIX-sw"
CL_SUBNET=10.231.0
CL_SUBNET6=fd6a:7269:0:1
CL_NAMESPACES=()
declare -A CL_PID=()
CL_EXIT_LOGS=()

cl_ns() { echo "$CL_PREFIX-n$1"; }
cl_ip() { echo "$CL_SUBNET.$1"; }
cl_ip6() { echo "$CL_SUBNET6::$1"; }

# Exits 77 (skip) when this environment cannot make network namespaces.
cluster_require_netns() {
        local probe="$CL_PREFIX-probe"
        [ "$(id -u)" = 0 ] || skip "needs root for ip netns"
        command -v ip >/dev/null || skip "iproute2 (ip) is not installed"
        ip netns add "$probe" 2>/dev/null || skip "ip netns add is not permitted here"
        ip netns del "$probe"
}

# cluster_test_begin BUILD NAME [COMMAND...]: how a cluster test starts.
# JOYRIDED is BUILD's joyrided (the test fails without one); the test is
# skipped (77) when dig or a COMMAND is not installed or network namespaces
# cannot be made; CL_DIR is a new /tmp/jr-NAME.XXXXXX, the nodes' DNS port
# 5353, and cluster_trap_exit is set (CL_BEFORE_CLEANUP and the like are
# read at exit, so they may be set after this).
cluster_test_begin() {
        local build=$1 name=$2
        shift 2
        JOYRIDED=$build/src/joyrided
        [ -x "$JOYRIDED" ] || fail "no joyrided in $build"
        need_commands dig "$@"
        cluster_require_netns
        CL_DIR=$(mktemp -d "/tmp/jr-$name.XXXXXX")
        CL_DNS_PORT=5353
        cluster_trap_exit
}

cluster_make_switch() {
        ip netns add "$CL_SWITCH"
        CL_NAMESPACES+=("$CL_SWITCH")
        ip -n "$CL_SWITCH" link set lo up
        ip -n "$CL_SWITCH" link add br0 type bridge
        ip -n "$CL_SWITCH" link set br0 up
}

# cluster_make_host K: namespace nK with eth0 = 10.231.0.K/24 on the switch.
cluster_make_host() {
        local k=$1 ns
        ns=$(cl_ns "$k")
        ip netns add "$ns"
        CL_NAMESPACES+=("$ns")
        ip -n "$ns" link set lo up
        ip -n "$CL_SWITCH" link add "s$k" type veth peer name eth0 netns "$ns"
        ip -n "$CL_SWITCH" link set "s$k" master br0 up
        ip -n "$ns" addr add "$(cl_ip "$k")/24" broadcast "$CL_SUBNET.255" dev eth0
        ip -n "$ns" link set eth0 up
}

# cluster_static_neighbours K...: permanent ARP entries between the given
# nodes, and with the switch's br0 when it has an address. The entries the
# kernel learns by itself count against one neighbour table for the whole
# machine (gc_thresh3, 1024 by default, every namespace together): a full
# mesh of 50 nodes overflows it, and the kernel then drops packets with
# ENOBUFS ("neighbor table overflow"), the cluster's and everyone else's.
# Permanent entries are exempt from that limit.
cluster_static_neighbours() {
        local k j sw_ip sw_mac
        local -A macs=()
        for k in "$@"; do
                macs[$k]=$(ip -n "$(cl_ns "$k")" -o link show eth0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
        done
        sw_mac=$(ip -n "$CL_SWITCH" -o link show br0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
        sw_ip=$(ip -n "$CL_SWITCH" -4 -o addr show br0 | awk '{print $4}' | cut -d/ -f1)
        for k in "$@"; do
                {
                        for j in "$@"; do
                                [ "$j" = "$k" ] || echo "neigh replace $(cl_ip "$j") lladdr ${macs[$j]} dev eth0 nud permanent"
                        done
                        [ -z "$sw_ip" ] || echo "neigh replace $sw_ip lladdr $sw_mac dev eth0 nud permanent"
                } | ip -n "$(cl_ns "$k")" -batch -
        done
        [ -n "$sw_ip" ] || return 0
        for j in "$@"; do
                echo "neigh replace $(cl_ip "$j") lladdr ${macs[$j]} dev br0 nud permanent"
        done | ip -n "$CL_SWITCH" -batch -
}

# cluster_make_host6 K: like cluster_make_host, but IPv6 only: eth0 has
# fd6a:7269:0:1::K/64 and its link-local address, no IPv4 (duplicate address
# detection off, so the addresses are usable at once).
cluster_make_host6() {
        local k=$1 ns
        ns=$(cl_ns "$k")
        ip netns add "$ns"
        CL_NAMESPACES+=("$ns")
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
        ip -n "$ns" link set lo up
        ip -n "$CL_SWITCH" link add "s$k" type veth peer name eth0 netns "$ns"
        ip -n "$CL_SWITCH" link set "s$k" master br0 up
        ip -n "$ns" addr add "$(cl_ip6 "$k")/64" dev eth0 nodad
        ip -n "$ns" link set eth0 up
}

# cluster_start K KEY [extra joyrided options]: starts joyrided in nK. Its
# hosts directory is $CL_DIR/hK, its log $CL_DIR/log.K (appended).
cluster_start() {
        local k=$1 key=$2 http=(--no-http)
        shift 2
        # Node 1 (or each node listed in CL_HTTP_NODES) serves the HTTP API
        # inside its namespace when CL_HTTP_PORT is set.
        case " ${CL_HTTP_NODES:-1} " in
                *" $k "*) [ -n "${CL_HTTP_PORT:-}" ] && http=(--http-host=0.0.0.0 --http-port="$CL_HTTP_PORT") ;;
        esac
        mkdir -p "$CL_DIR/h$k" "$CL_DIR/s$k"
        ip netns exec "$(cl_ns "$k")" env JOYRIDE_CLUSTER_KEY="$key" \
                JOYRIDE_SWIM_PROBE_INTERVAL_MS="${CL_PROBE_MS:-200}" \
                JOYRIDE_SWIM_PROBE_TIMEOUT_MS="${CL_PROBE_TIMEOUT_MS:-100}" \
                JOYRIDE_CLUSTER_DEAD_GRACE_MS="${CL_GRACE_MS:-1000}" \
                JOYRIDE_CLUSTER_PUSH_PULL_INTERVAL_MS="${CL_PUSH_PULL_MS:-5000}" \
                JOYRIDE_CLUSTER_DISCOVERY_INTERVAL_MS="${CL_DISCOVERY_MS:-2000}" \
                "$JOYRIDED" --cluster --node-id="n$k" --hosts-directory="$CL_DIR/h$k" \
                --dns-bind-address=0.0.0.0 --dns-port="$CL_DNS_PORT" --no-docker "${http[@]}" --bus=none \
                --state-directory="$CL_DIR/s$k" "$@" >>"$CL_DIR/log.$k" 2>&1 </dev/null &
        CL_PID[$k]=$!
}

# cluster_stop K SIGNAL: signals nK's daemon and waits for it to exit.
cluster_stop() {
        local k=$1 sig=$2 pid=${CL_PID[$1]:-}
        [ -n "$pid" ] || return 0
        kill "-$sig" "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        unset "CL_PID[$k]"
}

cluster_cleanup() {
        local k ns
        for k in "${!CL_PID[@]}"; do
                kill -9 "${CL_PID[$k]}" 2>/dev/null || true
                wait "${CL_PID[$k]}" 2>/dev/null || true
        done
        CL_PID=()
        # Deleting a namespace destroys its veth ends (and so their peers) and the bridge.
        for ns in "${CL_NAMESPACES[@]}"; do
                ip netns del "$ns" 2>/dev/null || true
        done
        CL_NAMESPACES=()
}

# cluster_trap_exit: on exit (also on failure or a signal) run
# CL_BEFORE_CLEANUP (a function name, if set: a test's own processes),
# cluster_cleanup, show the last CL_LOG_TAIL (25) lines of each log in the
# array CL_EXIT_LOGS (default every $CL_DIR/log.*) when the exit was a
# failure, and remove CL_DIR unless CL_KEEP is set.
cluster_trap_exit() {
        trap _cluster_on_exit EXIT
        trap 'exit 130' INT TERM
}

_cluster_on_exit() {
        local rc=$? f
        if [ -n "${CL_BEFORE_CLEANUP:-}" ]; then "$CL_BEFORE_CLEANUP" || true; fi
        cluster_cleanup
        if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
                [ "${#CL_EXIT_LOGS[@]}" -gt 0 ] || CL_EXIT_LOGS=("$CL_DIR"/log.*)
                for f in "${CL_EXIT_LOGS[@]}"; do
                        [ -e "$f" ] || continue
                        echo "--- $f (last ${CL_LOG_TAIL:-25} lines)" >&2
                        tail -n "${CL_LOG_TAIL:-25}" "$f" >&2
                done
        fi
        if [ -n "${CL_KEEP:-}" ]; then echo "logs kept in $CL_DIR"; else rm -rf "$CL_DIR"; fi
}

# cl_dig K NAME [TYPE]: what nK's own daemon answers, one value per line.
cl_dig() {
        local k=$1
        shift
        ip netns exec "$(cl_ns "$k")" dig @"$(cl_ip "$k")" -p "$CL_DNS_PORT" +short +tries=1 +time=1 "$@" 2>/dev/null
}

# cl_has K NAME VALUE: nK answers NAME (A) with VALUE among its answers.
cl_has() {
        cl_dig "$1" "$2" A | grep -qx "$3"
}

cl_lacks() {
        local out
        out=$(cl_dig "$1" "$2" A) || return 1
        ! grep -qx "$3" <<<"$out"
}

# cl_all WHAT NODES... -- CHECK ARGS: CHECK K ARGS holds on every node.
cl_all() {
        local nodes=() k
        while [ "$1" != -- ]; do
                nodes+=("$1")
                shift
        done
        shift
        for k in "${nodes[@]}"; do
                "$@" "$k" || return 1
        done
}
has_on() { cl_has "$3" "$1" "$2"; }
lacks_on() { cl_lacks "$3" "$1" "$2"; }

# wait_since START_MS WHAT MAX_MS CMD...: polls CMD every 20 ms until it
# holds; sets ELAPSED to the ms since START_MS (taken before the action that
# should cause it); fails the test once MAX_MS have passed.
wait_since() {
        local start=$1 what=$2 max=$3
        shift 3
        until "$@" >/dev/null 2>&1; do
                if [ $(($(now_ms) - start)) -gt "$max" ]; then
                        fail "$what: not within ${max} ms"
                fi
                sleep 0.02
        done
        # shellcheck disable=SC2034 # read by the test that sources this
        ELAPSED=$(($(now_ms) - start))
}
