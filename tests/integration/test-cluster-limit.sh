#!/bin/bash
# SPDX-License-Identifier: MIT
# A node that holds exactly as many records as its peer takes from it
# (MaxRecordsPerNode) changes every address at once, as a hosts reload does.
# It applies the additions before the removals, so its updates reach the
# peer in that order too: the peer must hold the additions back until the
# removals make room, not drop them. Checked as a user sees it: the peer
# answers the new addresses, counts nothing dropped in /metrics and logs no
# limit warning. Two daemons on 127.0.0.1 (a node bound to loopback never
# broadcasts); both are stopped by PID on exit.
set -euo pipefail

BUILD=${1:?usage: test-cluster-limit.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
need_commands dig curl python3

daemon=$BUILD/src/joyrided
[ -x "$daemon" ] || fail "no joyrided in $BUILD"
# setup_tmp's cleanup stops both: a as $holder_pid, b as $daemon_pid (whose
# log, $tmp/daemon.log, it shows on failure).
setup_tmp
export -f dig_short

# Fewer changes than make a burst (1,000 a second), so each goes as an update.
N=400
LAST=$((N - 1))
hosts() { awk -v n="$N" -v net="$1" 'BEGIN { for (i = 0; i < n; i++)
        printf "10.%d.%d.%d host%d.limit.test\n", net, int(i / 256), i % 256, i }'; }
mkdir -p "$tmp/a-hosts" "$tmp/b-hosts"
hosts 1 >"$tmp/a-hosts/all"

A_DNS=$(free_port)
A_SWIM=$(free_port)
B_DNS=$(free_port)
B_SWIM=$(free_port)
B_HTTP=$(free_port)
"$daemon" --node-id=a --cluster --cluster-bind-address=127.0.0.1 --swim-port="$A_SWIM" \
        --dns-bind-address=127.0.0.1 --dns-port="$A_DNS" --hosts-directory="$tmp/a-hosts" \
        --state-directory="$tmp/a-state" --no-docker --no-http --bus=none >"$tmp/a.log" 2>&1 </dev/null &
holder_pid=$!
wait_for "a's records" 20 bash -c "[ \"\$(dig_short $A_DNS host$LAST.limit.test)\" = 10.1.1.143 ]"
JOYRIDE_CLUSTER_MAX_RECORDS_PER_NODE=$N "$daemon" --node-id=b --cluster --cluster-bind-address=127.0.0.1 \
        --swim-port="$B_SWIM" --join="127.0.0.1:$A_SWIM" --dns-bind-address=127.0.0.1 --dns-port="$B_DNS" \
        --hosts-directory="$tmp/b-hosts" --state-directory="$tmp/b-state" --no-docker \
        --http-host=127.0.0.1 --http-port="$B_HTTP" --bus=none >"$tmp/daemon.log" 2>&1 </dev/null &
daemon_pid=$!
wait_for "a's records on b" 20 bash -c "[ \"\$(dig_short $B_DNS host$LAST.limit.test)\" = 10.1.1.143 ]"

records_of_a() {
        curl -s --max-time 5 "http://127.0.0.1:$B_HTTP/dns/cluster" | python3 -c '
import json, sys
print(next((m["records"] for m in json.load(sys.stdin)["cluster"] if m["node_id"] == "a"), 0))'
}
dropped() {
        curl -s --max-time 5 "http://127.0.0.1:$B_HTTP/metrics" |
                awk '$1 == "joyride_cluster_dropped_total{what=\"records\"}" { print $2 }'
}
[ "$(records_of_a)" = "$N" ] || fail "b holds $(records_of_a) records of a, expected $N (its limit)"
[ "$(dropped)" = 0 ] || fail "b counts $(dropped) dropped records before the change"
ok "b holds all $N records of a, as many as it takes from one node"

# Every address changes (an atomic rename, as editors and tools do).
start=$(now_ms)
hosts 2 >"$tmp/a-hosts/.all.new"
mv "$tmp/a-hosts/.all.new" "$tmp/a-hosts/all"
changed_on_b() {
        [ "$(dig_short "$B_DNS" host0.limit.test)" = 10.2.0.0 ] &&
                [ "$(dig_short "$B_DNS" host$LAST.limit.test)" = 10.2.1.143 ] &&
                [ "$(records_of_a)" = "$N" ]
}
wait_for "the new addresses on b" 20 changed_on_b
elapsed=$(($(now_ms) - start))
for i in 0 7 200 $LAST; do
        got=$(dig_short "$B_DNS" "host$i.limit.test" | sort | tr '\n' ' ')
        want="10.2.$((i / 256)).$((i % 256)) "
        [ "$got" = "$want" ] || fail "host$i.limit.test on b answers '$got', expected '$want'"
done
[ "$(dropped)" = 0 ] || fail "b dropped $(dropped) of a's records at the limit while a replaced them"
if grep -q "Cluster limit reached" "$tmp/daemon.log"; then
        fail "b warned about a limit a never went past: $(grep "Cluster limit reached" "$tmp/daemon.log")"
fi
ok "a replaced all $N records: b answers the new addresses after $elapsed ms, dropped none, no limit warning"
