#!/bin/bash
# SPDX-License-Identifier: MIT
# How cluster nodes find and reach each other on networks other than one
# IPv4 segment, with real nodes in network namespaces (cluster-lib.sh):
#   - a segment without IPv4: discovery by IPv6 link-local multicast alone;
#   - a host with two interfaces: AdvertiseAddress= names the one the others
#     reach it at;
#   - a seed given by name (JOIN=): looked up off the event loop, so a DNS
#     server that never answers does not stall the node, and looked up again
#     until it resolves.
# Needs root (exits 77 when ip netns is not permitted). Everything made here
# goes away on exit, also on failure.
set -euo pipefail

BUILD=${1:?usage: test-cluster-net.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
. "$HERE/cluster-lib.sh"

cluster_test_begin "$BUILD" cluster-net unshare
CL_HTTP_PORT=5354
CL_HTTP_NODES="1 4 7"

KEY=$(head -c 32 /dev/urandom | base64)
GRACE_MS=${CL_GRACE_MS:-1000}

# What nK's daemon answers, asked on its own loopback (IPv6-only hosts have
# no IPv4 address on eth0).
lo_dig() {
        local k=$1
        shift
        ip netns exec "$(cl_ns "$k")" dig @127.0.0.1 -p "$CL_DNS_PORT" +short +tries=1 +time=1 "$@" 2>/dev/null
}
lo_has() { lo_dig "$1" "$2" A | grep -qx "$3"; }
api() {
        local k=$1
        shift
        ip netns exec "$(cl_ns "$k")" curl -s --max-time 5 "$@"
}
self_record() {
        mkdir -p "$CL_DIR/h$1"
        echo "10.9.0.$1 n$1.cluster.test" >"$CL_DIR/h$1/self"
}
# members K: "id state address" per member that nK's /dns/cluster lists.
members() {
        api "$1" "http://127.0.0.1:$CL_HTTP_PORT/dns/cluster" | python3 -c '
import json, sys
for m in json.load(sys.stdin)["cluster"]:
    print(m["node_id"], m["state"], m["address"])'
}

cluster_make_switch

# --- IPv6 only: multicast discovery ------------------------------------------
for k in 1 2 3; do
        cluster_make_host6 "$k"
        self_record "$k"
done
ip -n "$(cl_ns 1)" -4 addr show dev eth0 | grep -q inet && fail "n1 has an IPv4 address on eth0"
start=$(now_ms)
for k in 1 2 3; do
        cluster_start "$k" "$KEY" --cluster-bind-address=::
done
for k in 1 2 3; do
        for j in 1 2 3; do
                wait_since "$start" "n$j's record served by IPv6-only n$k" 15000 lo_has "$k" "n$j.cluster.test" "10.9.0.$j"
        done
done
grep -q "discovery by multicast to ff02::6a72 port 8889" "$CL_DIR/log.1" || fail "n1 does not say it discovers by multicast"
list=$(members 1)
for j in 2 3; do
        grep -qx "n$j alive \[$(cl_ip6 "$j")\]:8890" <<<"$list" || fail "n1 does not list n$j alive at [$(cl_ip6 "$j")]:8890: $list"
done
ok "3 IPv6-only nodes found each other by multicast alone and serve each other's records ($ELAPSED ms after start)"

# --- AdvertiseAddress: a host whose first interface others cannot reach -------
# n4's first interface (one end of a veth pair that goes nowhere, made
# before eth0) has 10.232.0.4, which no other node has a route to; by itself
# n4 would advertise that address.
ns4=$(cl_ns 4)
ip netns add "$ns4"
CL_NAMESPACES+=("$ns4")
ip -n "$ns4" link set lo up
ip -n "$ns4" link add d0 type veth peer name d1
ip -n "$ns4" addr add 10.232.0.4/24 broadcast 10.232.0.255 dev d0
ip -n "$ns4" link set d1 up
ip -n "$ns4" link set d0 up
ip -n "$CL_SWITCH" link add s4 type veth peer name eth0 netns "$ns4"
ip -n "$CL_SWITCH" link set s4 master br0 up
ip -n "$ns4" addr add "$(cl_ip 4)/24" broadcast "$CL_SUBNET.255" dev eth0
ip -n "$ns4" link set eth0 up
cluster_make_host 5
for k in 4 5; do
        self_record "$k"
done
cluster_start 4 "$KEY" --cluster-advertise-address="$(cl_ip 4)"
cluster_start 5 "$KEY"
wait_since "$(now_ms)" "n4's record on n5" 15000 cl_has 5 n4.cluster.test 10.9.0.4
grep -q "Cluster node n4 on $(cl_ip 4):8890" "$CL_DIR/log.4" || fail "n4 does not say it advertises $(cl_ip 4)"
# Long enough for n5 to probe n4 several times and for a suspicion to end.
sleep $(((GRACE_MS + 4 * 200 * 4) / 1000 + 2))
grep -q "member n4 .*suspected" "$CL_DIR/log.5" && fail "n5 suspected n4: it does not reach n4 at the advertised address"
grep -qx "n5 alive $(cl_ip 5):8890" <<<"$(members 4)" || fail "n4 does not list n5 alive: $(members 4)"
cl_has 5 n4.cluster.test 10.9.0.4 || fail "n5 lost n4's record"
ok "AdvertiseAddress=$(cl_ip 4) on a host whose first interface is unreachable: n5 reaches n4 there, no suspicion"

# --- seeds by name: looked up off the loop, and again until they resolve -----
# n6 and n7 do not discover (only Join=). Each runs in a mount namespace of
# its own where /etc/hosts and /etc/resolv.conf are files of this test.
cluster_make_host 6
cluster_make_host 7
for k in 6 7; do
        self_record "$k"
        printf '127.0.0.1 localhost\n' >"$CL_DIR/hosts.$k"
done
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$CL_DIR/resolv.6"
# n7's DNS server is an address on its segment that nobody has: every
# look-up of a name not in its hosts file waits for the resolver's timeout.
printf 'nameserver %s\noptions timeout:5 attempts:2\n' "$CL_SUBNET.99" >"$CL_DIR/resolv.7"
cat >"$CL_DIR/in-etc.sh" <<'EOF'
#!/bin/sh
# in-etc.sh HOSTS RESOLV COMMAND...: COMMAND with those files as /etc/hosts
# and /etc/resolv.conf, in a private mount namespace.
hosts=$1 resolv=$2
shift 2
exec unshare --mount --propagation private sh -c \
        'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"' \
        in-etc "$hosts" "$resolv" "$@"
EOF
chmod +x "$CL_DIR/in-etc.sh"
start_via_etc() {
        local k=$1
        shift
        local real=$JOYRIDED
        JOYRIDED="$CL_DIR/joyrided.$k"
        printf '#!/bin/sh\nexec %q %q %q %q "$@"\n' "$CL_DIR/in-etc.sh" "$CL_DIR/hosts.$k" "$CL_DIR/resolv.$k" "$real" \
                >"$JOYRIDED"
        chmod +x "$JOYRIDED"
        cluster_start "$k" "$KEY" --no-discovery "$@"
        JOYRIDED=$real
}

start_via_etc 6 --join=seed.cluster.test:8890
wait_for "n6 warning that its seed does not resolve" 10 grep -q "Cannot resolve cluster seed seed.cluster.test:8890" "$CL_DIR/log.6"
sleep 3
cl_lacks 6 n5.cluster.test 10.9.0.5 || fail "n6 serves n5's record although its seed does not resolve"
[ "$(grep -c "Cannot resolve cluster seed" "$CL_DIR/log.6")" = 1 ] || fail "n6 warned more than once about the same seed"
start=$(now_ms)
echo "$(cl_ip 5) seed.cluster.test" >>"$CL_DIR/hosts.6"
wait_since "$start" "n5's record on n6 once the seed resolves" 10000 cl_has 6 n5.cluster.test 10.9.0.5
FIG_SEED=$ELAPSED
wait_since "$start" "n6's record on n5" 10000 cl_has 5 n6.cluster.test 10.9.0.6
grep -q "Cluster seed seed.cluster.test:8890 resolves again" "$CL_DIR/log.6" || fail "n6 did not log that its seed resolves again"
ok "a seed name that did not resolve was looked up again: n6 joined through it $FIG_SEED ms after it appeared in /etc/hosts"

start_via_etc 7 --join=hang.cluster.test:8890
wait_for "n7 serving HTTP" 10 api 7 -f "http://127.0.0.1:$CL_HTTP_PORT/health"
# For 12 s (several join attempts, each look-up waiting 10 s for a DNS server
# that is not there), the node's event loop answers HTTP at once.
worst=0
end=$(($(now_ms) + 12000))
while [ "$(now_ms)" -lt "$end" ]; do
        t0=$(now_ms)
        api 7 -f -o /dev/null "http://127.0.0.1:$CL_HTTP_PORT/health" || fail "n7's HTTP API did not answer within 5 s"
        t=$(($(now_ms) - t0))
        [ "$t" -gt "$worst" ] && worst=$t
        sleep 0.2
done
[ "$worst" -lt 3000 ] || fail "n7's event loop stalled for $worst ms while its seed name was being looked up"
wait_for "n7 reporting the seed that does not resolve" 15 grep -q "Cannot resolve cluster seed hang.cluster.test:8890" "$CL_DIR/log.7"
ok "a seed whose DNS server never answers does not stall the loop (slowest HTTP answer ${worst} ms over 12 s)"

for k in 7 6 5 4 3 2 1; do
        cluster_stop "$k" TERM
done

# --- a first exchange that fails is tried again ---------------------------------
# n9 holds 1,500 names (a burst: not gossiped, only push-pull carries it), and
# at first no push-pull reaches it or leaves it (resets and drops on its TCP
# port). n8 < n9, so n8 starts the first exchange when they meet, and it
# fails; with a periodic push-pull every 10 minutes, only the retry of that
# first exchange brings n9's names to n8 (and n8's to n9) soon after.
for k in 8 9; do
        cluster_make_host "$k"
        self_record "$k"
done
for i in $(seq 1 1500); do echo "10.8.$((i / 250)).$((i % 250 + 1)) b$i.burst.test"; done >"$CL_DIR/h9/burst"
ip netns exec "$(cl_ns 9)" nft -f - <<EOF2
table inet jrsync {
        chain input {
                type filter hook input priority 0;
                tcp dport 8890 reject with tcp reset
                tcp sport 8890 drop
        }
}
EOF2
CL_PUSH_PULL_MS=600000 cluster_start 8 "$KEY" --log-level=debug
CL_PUSH_PULL_MS=600000 cluster_start 9 "$KEY"
wait_for "n8 seeing n9 alive" 10 grep -q "Cluster member n9 .* is alive" "$CL_DIR/log.8"
wait_for "n8's first exchange with n9 failing" 10 grep -q "n9: the first exchange of records failed; trying again" "$CL_DIR/log.8"
cl_lacks 8 b1500.burst.test 10.8.6.1 || fail "n8 has n9's names although no push-pull got through"
start=$(now_ms)
ip netns exec "$(cl_ns 9)" nft delete table inet jrsync
wait_since "$start" "n9's 1,500 names on n8 once push-pull gets through" 20000 cl_has 8 b1500.burst.test 10.8.6.1
FIG_SYNC=$ELAPSED
wait_since "$start" "n8's record on n9" 20000 cl_has 9 n8.cluster.test 10.9.0.8
ok "a failed first exchange was tried again: n9's 1,500 names reached n8 $FIG_SYNC ms after push-pull got through (periodic push-pull: 10 min)"
for k in 9 8; do
        cluster_stop "$k" TERM
done
