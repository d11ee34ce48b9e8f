#!/bin/bash
# SPDX-License-Identifier: MIT
# The cluster with real nodes: joyrided in five network namespaces on one
# bridge (cluster-lib.sh), finding each other by broadcast alone, checked
# with dig as a user would. Needs root (exits 77 when ip netns is not
# permitted). Every namespace, veth and process goes away on exit, also on
# failure. Protocol timings are shortened through the environment
# (JOYRIDE_SWIM_PROBE_INTERVAL_MS=200 etc., see cluster-lib.sh).
set -euo pipefail

BUILD=${1:?usage: test-cluster.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
. "$HERE/cluster-lib.sh"

cluster_test_begin "$BUILD" cluster

KEY=$(head -c 32 /dev/urandom | base64)
WRONG_KEY=$(head -c 32 /dev/urandom | base64)
NODES=(1 2 3 4)
PROBE_MS=${CL_PROBE_MS:-200}
GRACE_MS=${CL_GRACE_MS:-1000}

cluster_make_switch
for k in 1 2 3 4 5; do
        cluster_make_host "$k"
done
# Packet loss: tc netem where the kernel has it, else nftables' random
# numbers on the same egress (this machine's kernel lacks sch_netem).
if ip netns exec "$(cl_ns 1)" tc qdisc add dev eth0 root netem loss 0% 2>/dev/null; then
        ip netns exec "$(cl_ns 1)" tc qdisc del dev eth0 root
        LOSS_TOOL=netem
elif command -v nft >/dev/null && ip netns exec "$(cl_ns 1)" nft add table inet jrloss 2>/dev/null; then
        ip netns exec "$(cl_ns 1)" nft delete table inet jrloss
        LOSS_TOOL=nft
else
        echo "SKIP: neither tc netem nor nftables can drop packets here"
        exit 77
fi
# loss_on K PERCENT / loss_off K: drop PERCENT% of the packets nK sends on eth0.
loss_on() {
        local ns
        ns=$(cl_ns "$1")
        if [ "$LOSS_TOOL" = netem ]; then
                ip netns exec "$ns" tc qdisc add dev eth0 root netem loss "$2%"
        else
                ip netns exec "$ns" nft -f - <<EOF2
table inet jrloss {
        chain out {
                type filter hook output priority 0; policy accept;
                oifname "eth0" numgen random mod 100 < $2 drop
        }
}
EOF2
        fi
}
loss_off() {
        if [ "$LOSS_TOOL" = netem ]; then
                ip netns exec "$(cl_ns "$1")" tc qdisc del dev eth0 root
        else
                ip netns exec "$(cl_ns "$1")" nft delete table inet jrloss
        fi
}

for k in "${NODES[@]}"; do
        mkdir -p "$CL_DIR/h$k"
        echo "10.9.0.$k n$k.cluster.test" >"$CL_DIR/h$k/self"
done
CL_HTTP_PORT=$((CL_DNS_PORT + 1))
start=$(now_ms)
for k in "${NODES[@]}"; do
        cluster_start "$k" "$KEY"
done

# --- discovery by broadcast alone: everyone serves everyone's records -------
for k in "${NODES[@]}"; do
        for j in "${NODES[@]}"; do
                wait_since "$start" "n$j's record served by n$k" 15000 cl_has "$k" "n$j.cluster.test" "10.9.0.$j"
        done
done
ok "4 nodes found each other by broadcast alone and serve each other's records ($ELAPSED ms after start)"
grep -q "discovery by broadcast" "$CL_DIR/log.1" || fail "n1 does not say it discovers by broadcast"
grep -q "encrypted, 1 key" "$CL_DIR/log.1" || fail "n1 does not say the cluster is encrypted"
if grep -q "cluster is open" "$CL_DIR/log.1"; then fail "n1 warns about an open cluster although it has a key"; fi

# --- a record added on one node resolves on all within 1 s, and its removal -
start=$(now_ms)
echo "10.9.1.1 added.cluster.test" >"$CL_DIR/h1/added"
wait_since "$start" "a new hosts record of n1 on every node" 1000 cl_all "${NODES[@]}" -- has_on added.cluster.test 10.9.1.1
ok "a hosts record added on n1 resolved on all 4 nodes in $ELAPSED ms"
FIG_ADD=$ELAPSED

start=$(now_ms)
rm "$CL_DIR/h1/added"
wait_since "$start" "removal of n1's record on every node" 1000 cl_all "${NODES[@]}" -- lacks_on added.cluster.test 10.9.1.1
ok "its removal reached all 4 nodes in $ELAPSED ms"
FIG_DEL=$ELAPSED

# --- one name on two nodes answers with both addresses ---------------------
echo "10.9.2.1 both.cluster.test" >"$CL_DIR/h1/both"
echo "10.9.2.2 both.cluster.test" >"$CL_DIR/h2/both"
both_on() { cl_has "$1" both.cluster.test 10.9.2.1 && cl_has "$1" both.cluster.test 10.9.2.2; }
wait_since "$(now_ms)" "both addresses of both.cluster.test on n3" 2000 both_on 3
ok "a name on n1 and n2 answers on n3 with both addresses"

# --- the cluster as the HTTP API shows it (n1, inside its namespace) --------
api() { ip netns exec "$(cl_ns 1)" curl -s --max-time 5 "$@"; }
members=$(api "http://127.0.0.1:$CL_HTTP_PORT/dns/cluster")
python3 - "$members" <<'PY' || fail "/dns/cluster on n1: $members"
import json, sys
o = json.loads(sys.argv[1])
assert o["status"] == "success", o
alive = sorted(m["node_id"] for m in o["cluster"] if m["state"] == "alive")
assert alive == ["n1", "n2", "n3", "n4"], alive
assert all(m["records"] >= 1 for m in o["cluster"] if not m["self"]), o
PY
ok "/dns/cluster on n1 lists n1-n4 alive with their record counts"

# A record learned from a peer says which peer, and where that peer has it
# (its own source, without the line); the source filter takes "peer" and a
# node's own prefix.
for filter in peer:n2 peer; do
        records=$(api "http://127.0.0.1:$CL_HTTP_PORT/dns/records?source=$filter")
        python3 - "$records" "$filter" "$CL_DIR" <<'PY' || fail "/dns/records?source=$filter on n1: $records"
import json, sys
o, filter, d = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
got = {(r["hostname"], r["source"], r["owner"]) for r in o["records"]}
want = {("n2.cluster.test", f"peer:n2 \u00b7 hosts:{d}/h2/self", "peer:n2")}
if filter == "peer":
    want |= {(f"n{k}.cluster.test", f"peer:n{k} \u00b7 hosts:{d}/h{k}/self", f"peer:n{k}") for k in (3, 4)}
assert want <= got, f"missing {want - got}"
assert all(r["owner"].startswith(filter) for r in o["records"]), got
assert not any(r["hostname"] == "n1.cluster.test" for r in o["records"]), got
PY
done
ok "/dns/records on n1: n2's record has the source 'peer:n2 · hosts:$CL_DIR/h2/self'; ?source=peer and ?source=peer:n2 find it"
code=$(api -o "$CL_DIR/sync.json" -w '%{http_code}' -X POST "http://127.0.0.1:$CL_HTTP_PORT/dns/sync")
[ "$code" = 200 ] && grep -q success "$CL_DIR/sync.json" || fail "POST /dns/sync on n1: $code $(cat "$CL_DIR/sync.json")"
metrics=$(api "http://127.0.0.1:$CL_HTTP_PORT/metrics")
grep -q '^joyride_cluster_members{state="alive"} 4$' <<<"$metrics" || fail "metrics: $(grep cluster_members <<<"$metrics")"
sent=$(awk '/^joyride_gossip_packets_total\{direction="sent"\}/ {print $2}' <<<"$metrics")
[ "${sent:-0}" -gt 0 ] || fail "no gossip packets counted as sent: $(grep gossip <<<"$metrics")"
ok "POST /dns/sync answers 200 and /metrics counts 4 alive members and $sent gossip packets sent"

# --- kill -9: withdrawn after suspicion + grace, back when it restarts ------
# Bound: a probe round (4 periods), the longest suspicion timeout
# (6 x 4 x probe period with no confirmations), the grace, and slack.
KILL_BOUND=$((4 * PROBE_MS + 24 * PROBE_MS + GRACE_MS + 1500))
start=$(now_ms)
cluster_stop 4 KILL
wait_since "$start" "n4's records gone after kill -9" "$KILL_BOUND" cl_all 1 2 3 -- lacks_on n4.cluster.test 10.9.0.4
FIG_KILL=$ELAPSED
[ "$ELAPSED" -ge "$GRACE_MS" ] || fail "n4's records went after $ELAPSED ms, before the ${GRACE_MS} ms grace could pass"
grep -q "member n4 .* is dead" "$CL_DIR/log.1" || fail "n1 did not log n4 as dead"
cl_has 1 n1.cluster.test 10.9.0.1 || fail "n1 lost its own record"
ok "kill -9 of n4: its records left n1-n3 after $ELAPSED ms (bound $KILL_BOUND ms, grace $GRACE_MS ms)"

start=$(now_ms)
cluster_start 4 "$KEY"
wait_since "$start" "n4's records back after restart" 10000 cl_all 1 2 3 -- has_on n4.cluster.test 10.9.0.4
wait_since "$start" "n4 serving the others after restart" 10000 cl_all 1 2 3 -- has_on n4.cluster.test 10.9.0.4
for j in 1 2 3; do
        wait_since "$start" "n$j's record on restarted n4" 10000 cl_has 4 "n$j.cluster.test" "10.9.0.$j"
done
ok "n4 restarted: its records are back on n1-n3 and it serves theirs ($ELAPSED ms)"
FIG_RESTART=$ELAPSED

# --- SIGTERM is a graceful leave: records go at once -----------------------
# "At once" means faster than failure detection could: below the shortest
# suspicion timeout plus the grace.
LEAVE_BOUND=$((4 * PROBE_MS + GRACE_MS))
start=$(now_ms)
kill -TERM "${CL_PID[3]}"
wait_since "$start" "n3's records gone after SIGTERM" "$LEAVE_BOUND" cl_all 1 2 4 -- lacks_on n3.cluster.test 10.9.0.3
FIG_LEAVE=$ELAPSED
cluster_stop 3 TERM
grep -q "member n3 .* left" "$CL_DIR/log.1" || fail "n1 did not log n3 as left"
grep -q "Left the cluster" "$CL_DIR/log.3" || fail "n3 did not log its leave"
ok "SIGTERM of n3 is a graceful leave: its records left the others in $ELAPSED ms (< $LEAVE_BOUND ms)"
cluster_start 3 "$KEY"
wait_since "$(now_ms)" "n3 back" 10000 cl_all 1 2 4 -- has_on n3.cluster.test 10.9.0.3

# --- 20% packet loss: converges, and no live node is declared dead ---------
dead_count() { cat "$CL_DIR"/log.[1-4] | grep -c " is dead" || true; }
dead_before=$(dead_count)
for k in "${NODES[@]}"; do
        loss_on "$k" 20
done
loss_start=$(now_ms)
echo "10.9.3.1 lossy.cluster.test" >"$CL_DIR/h2/lossy"
wait_since "$loss_start" "a record of n2 under 20% loss on every node" 10000 cl_all "${NODES[@]}" -- has_on lossy.cluster.test 10.9.3.1
FIG_LOSSY=$ELAPSED
ok "under 20% loss a record of n2 reached all 4 nodes in $ELAPSED ms"
while [ $(($(now_ms) - loss_start)) -lt 20000 ]; do
        sleep 0.5
done
dead_after=$(dead_count)
for k in "${NODES[@]}"; do
        for j in "${NODES[@]}"; do
                cl_has "$k" "n$j.cluster.test" "10.9.0.$j" || fail "n$k lost n$j's record under 20% loss"
        done
done
suspicions=$(cat "$CL_DIR"/log.[1-4] | grep -c "suspected to have failed" || true)
[ "$dead_after" = "$dead_before" ] || fail "$((dead_after - dead_before)) live nodes were declared dead under 20% loss"
ok "20 s of 20% loss ($LOSS_TOOL) on every node: no live node declared dead ($suspicions suspicions in all logs, all refuted), every record still served"
FIG_SUSPICIONS=$suspicions
for k in "${NODES[@]}"; do
        loss_off "$k"
done

# --- a node with the wrong key never joins, and is counted as rejected -----
mkdir -p "$CL_DIR/h5"
echo "10.9.0.5 n5.cluster.test" >"$CL_DIR/h5/self"
cluster_start 5 "$WRONG_KEY"
wait_since "$(now_ms)" "n5 serving its own record" 5000 cl_has 5 n5.cluster.test 10.9.0.5
sleep 5 # several announcement rounds and join attempts
for k in "${NODES[@]}"; do
        cl_lacks "$k" n5.cluster.test 10.9.0.5 || fail "n$k serves the record of n5, which has the wrong key"
        cl_lacks 5 "n$k.cluster.test" "10.9.0.$k" || fail "n5 (wrong key) serves the record of n$k"
done
grep -q "Rejected cluster .* authentication failed" "$CL_DIR/log.5" || fail "n5 did not count the others' packets as rejected"
grep -q "Rejected cluster .* from 10.231.0.5.* authentication failed" "$CL_DIR"/log.[1-4] ||
        fail "no node counted n5's packets as rejected"
if grep -q "Cluster member" "$CL_DIR/log.5"; then fail "n5 (wrong key) saw a cluster member"; fi
if grep -q "member n5" "$CL_DIR"/log.[1-4]; then fail "a node saw n5 (wrong key) as a member"; fi
ok "n5 with the wrong key never joined; both sides logged its packets as rejected"

for k in 5 4 3 2 1; do
        cluster_stop "$k" TERM
done

echo "figures: add ${FIG_ADD} ms, remove ${FIG_DEL} ms, kill -9 withdrawal ${FIG_KILL} ms, restart ${FIG_RESTART} ms," \
        "SIGTERM withdrawal ${FIG_LEAVE} ms, 20% loss convergence ${FIG_LOSSY} ms, suspicions under loss ${FIG_SUSPICIONS}," \
        "probe ${PROBE_MS} ms, grace ${GRACE_MS} ms"
