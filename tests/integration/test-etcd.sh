#!/bin/bash
# SPDX-License-Identifier: MIT
# Records shared through etcd, against Debian's etcd on loopback ports:
#   1. one member, nodes A and B (B on a private system bus, and reaching
#      etcd through a relay that can be cut): a hosts file on A resolves on
#      B and back, several values per name, removal; the keys etcdctl reads
#      back have the documented layout; keys put with etcdctl (external-dns
#      style, TXT, a wildcard) resolve on both, bad JSON is skipped with a
#      warning naming the key; SIGKILL leaves A's names until the lease TTL,
#      not less; a restart brings them back; SIGTERM removes them at once;
#      B cut off from etcd keeps serving and says so (/status, /dns/cluster,
#      /metrics, D-Bus, joyridectl, the log's MESSAGE_ID), and after changes
#      and a compaction meanwhile comes back with no stale record; etcd
#      restarted from its data directory: both resync.
#   2. three members: the leader killed while A's records change: both nodes
#      keep answering, publishing resumes, nothing is lost or left stale.
#   3. TLS with client certificates made here with openssl, and a user with
#      a password; a wrong password is said clearly and local names still
#      resolve.
#
# Usage: test-etcd.sh BUILDDIR
set -euo pipefail

BUILD=$(cd "${1:?usage: test-etcd.sh BUILDDIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
. "$SRC/tests/integration/lib.sh"
. "$SRC/tests/integration/bus-lib.sh"
. "$SRC/tests/integration/etcd-lib.sh"

if [ "$(id -u)" != 0 ]; then
        echo "SKIP: needs root (a private system bus for the D-Bus checks)"
        exit 77
fi
for tool in etcd etcdctl dig curl openssl python3 dbus-daemon busctl; do
        command -v "$tool" >/dev/null || {
                echo "SKIP: $tool not installed (etcd-server, etcd-client, ...)"
                exit 77
        }
done

T=$(mktemp -d /tmp/joyride-etcd.XXXXXX)
chmod 755 "$T"
BUS_PID=

cleanup() {
        local rc=$? pid
        for pid in $started $BUS_PID; do
                kill "$pid" 2>/dev/null || true
        done
        for pid in $started $BUS_PID; do
                wait "$pid" 2>/dev/null || true
        done
        if [ $rc -ne 0 ]; then
                for f in "$T"/node-*.log "$T"/etcd-*.log; do
                        [ -f "$f" ] && {
                                echo "--- $f" >&2
                                grep -v DEBUG "$f" | tail -n 25 >&2
                        }
                done
        fi
        [ -n "${KEEP_TMP:-}" ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 143' INT TERM # so that the EXIT trap cleans up on a timeout too

LOST_ID=a9a9e2818a8f475c845869907f937d47
CONNECTED_ID=d092d9a8f9d94178854dd71f75ce1b41
grep -q "^-- $LOST_ID" "$SRC/data/systemd/joyride.catalog" || fail "no catalog entry for $LOST_ID"
grep -q "^-- $CONNECTED_ID" "$SRC/data/systemd/joyride.catalog" || fail "no catalog entry for $CONNECTED_ID"

ports() {
        local p
        for _ in $(seq "$1"); do
                p=$(free_port)
                while [[ " $used " == *" $p "* ]]; do p=$(free_port); done
                used="$used $p"
                echo "$p"
        done
}
used=""
read -r E1C E1P RELAY ADNS AHTTP BDNS BHTTP <<<"$(ports 7 | tr '\n' ' ')"
E1=http://127.0.0.1:$E1C
ctl() { etcdctl --endpoints="$E1" "$@"; }

# --- 1. one member ---------------------------------------------------------------
etcd_start e1 "$E1C" "$E1P" "e1=http://127.0.0.1:$E1P"
etcd_wait "$E1"
relay_start b "$RELAY" "$E1C"
start_system_bus "$T/bus" "$SRC"

mkdir -p "$T/hosts-node-a" "$T/hosts-node-b"
printf '10.13.0.1 a1.etcd.test\n10.13.0.5 a2.etcd.test\n' >"$T/hosts-node-a/a.hosts"
printf '10.13.0.2 b1.etcd.test\n' >"$T/hosts-node-b/b.hosts"
node_start node-a "$ADNS" "$AHTTP" "$E1" --etcd-lease-ttl=3
# B reads the prefix 3 keys a page, so that every resync of B goes through many pages.
JOYRIDE_ETCD_RANGE_PAGE_KEYS=3 node_start node-b "$BDNS" "$BHTTP" "http://127.0.0.1:$RELAY" --etcd-lease-ttl=3 --bus=system
wait_for "B's bus name" 10 busctl --system status org.joyride.DNS

wait_for "a1 from A on B" 5 is "$BDNS" a1.etcd.test 10.13.0.1
wait_for "b1 from B on A" 5 is "$ADNS" b1.etcd.test 10.13.0.2
ok "a hosts-file record on A resolves on B through etcd, and B's on A"

# The keys, as etcdctl reads them back: the documented layout.
ctl get --prefix /skydns/test/etcd/a1/ >"$T/a1.txt"
[ "$(wc -l <"$T/a1.txt")" = 2 ] || fail "keys of a1: $(cat "$T/a1.txt")"
grep -qE '^/skydns/test/etcd/a1/node-a-[0-9a-f]{16}$' "$T/a1.txt" || fail "key of a1: $(head -n1 "$T/a1.txt")"
[ "$(sed -n 2p "$T/a1.txt")" = '{"host":"10.13.0.1","ttl":30,"targetstrip":1}' ] || fail "value of a1: $(sed -n 2p "$T/a1.txt")"
ctl get --prefix /skydns --keys-only | grep -v '^$' | sort >"$T/keys.txt"
[ "$(grep -c 'node-a-' "$T/keys.txt")" = 2 ] && [ "$(grep -c 'node-b-' "$T/keys.txt")" = 1 ] ||
        fail "keys in etcd: $(cat "$T/keys.txt")"
lease=$(ctl get /skydns/test/etcd/b1/ --prefix -w json | python3 -c 'import json,sys; print("%x" % json.load(sys.stdin)["kvs"][0]["lease"])')
[ "$lease" = "$(etcd_status "$BHTTP" lease)" ] || fail "b1's key is not on B's lease ($lease)"
ok "etcdctl get: /skydns/test/etcd/a1/node-a-<16 hex> = {\"host\":\"10.13.0.1\",\"ttl\":30,\"targetstrip\":1}, on the node's lease"

# Several values of one name, from both nodes; then removal on A.
printf '10.13.0.1 a1.etcd.test\n10.13.0.3 a1.etcd.test\n10.13.0.5 a2.etcd.test\n' >"$T/hosts-node-a/a.hosts"
printf '10.13.0.2 b1.etcd.test\n10.13.0.4 a1.etcd.test\n' >"$T/hosts-node-b/b.hosts"
wait_for "three values of a1 on B" 5 is "$BDNS" a1.etcd.test "10.13.0.1 10.13.0.3 10.13.0.4"
wait_for "three values of a1 on A" 5 is "$ADNS" a1.etcd.test "10.13.0.1 10.13.0.3 10.13.0.4"
printf '10.13.0.5 a2.etcd.test\n' >"$T/hosts-node-a/a.hosts"
wait_for "A's values of a1 gone from B" 5 is "$BDNS" a1.etcd.test "10.13.0.4"
is "$ADNS" a1.etcd.test "10.13.0.4" || fail "A answers a1 with $(answers "$ADNS" a1.etcd.test)"
[ "$(ctl get --prefix /skydns/test/etcd/a1/ --keys-only | grep -c node-a || true)" = 0 ] || fail "A's a1 keys left in etcd"
ok "several values of one name from two nodes; removed on A, gone on B and from etcd"

# Keys other tools write in the SkyDNS layout.
ctl put /skydns/test/etcd/ext/0a1b2c3d '{"host":"10.13.9.1","ttl":60,"targetstrip":1}' >/dev/null
ctl put /skydns/test/etcd/ext/0a1b2c3e '{"host":"10.13.9.2","ttl":60,"targetstrip":1}' >/dev/null
ctl put /skydns/test/etcd/note '{"text":"hello from etcdctl"}' >/dev/null
ctl put /skydns/test/etcd/alias '{"host":"a2.etcd.test."}' >/dev/null
ctl put '/skydns/test/etcd/wild/*' '{"host":"10.13.9.9"}' >/dev/null
ctl put /skydns/test/etcd/broken '{"host":' >/dev/null
for port in "$ADNS" "$BDNS"; do
        wait_for "ext on $port" 5 is "$port" ext.etcd.test "10.13.9.1 10.13.9.2"
        wait_for "the TXT on $port" 5 is "$port" note.etcd.test '"hello from etcdctl"' TXT
        wait_for "the CNAME on $port" 5 is "$port" alias.etcd.test "10.13.0.5 a2.etcd.test."
        wait_for "the wildcard on $port" 5 is "$port" anything.wild.etcd.test 10.13.9.9
done
ttl=$(dig @127.0.0.1 -p "$BDNS" +noall +answer ext.etcd.test A | awk '{print $2}' | sort -u)
[ "$ttl" = 60 ] || fail "ext's TTL on B: $ttl"
for n in node-a node-b; do
        wait_for "the warning about the broken key on $n" 5 \
                grep -q 'etcd key /skydns/test/etcd/broken: skipped: value is not JSON' "$T/node-$n.log"
done
curl -sf "http://127.0.0.1:$BHTTP/dns/records?source=etcd:/skydns/test/etcd/ext/" >"$T/ext.json"
grep -q '"source":"etcd:/skydns/test/etcd/ext/0a1b2c3d"' "$T/ext.json" || fail "ext's source: $(cat "$T/ext.json")"
ok "keys put with etcdctl (external-dns style, TXT, CNAME, a wildcard) resolve on both; bad JSON skipped with a warning naming the key"
ctl del /skydns/test/etcd/ext/0a1b2c3e >/dev/null
wait_for "a deleted key gone from B" 5 is "$BDNS" ext.etcd.test 10.13.9.1
ok "etcdctl del: gone on B"

# SIGKILL: A's names stay until its lease expires, then go.
node_stop node-a KILL
killed=$(date +%s%N)
sleep 1
is "$BDNS" a2.etcd.test 10.13.0.5 || fail "a2 left B before A's lease (3 s) expired"
wait_for "a2 gone from B after A's lease expired" 8 is "$BDNS" a2.etcd.test ""
gone=$((($(date +%s%N) - killed) / 1000000))
[ "$gone" -ge 1500 ] || fail "a2 left B ${gone} ms after SIGKILL, before the lease TTL"
ok "A killed with SIGKILL: its names stay on B for a while (lease TTL 3 s), gone after ${gone} ms"

node_start node-a "$ADNS" "$AHTTP" "$E1" --etcd-lease-ttl=3
wait_for "a2 back on B" 5 is "$BDNS" a2.etcd.test 10.13.0.5
ok "A restarted: its names are back on B"

node_stop node-a TERM
stopped=$(date +%s%N)
wait_for "a2 gone from B after SIGTERM" 2 is "$BDNS" a2.etcd.test ""
gone=$((($(date +%s%N) - stopped) / 1000000))
grep -q "Revoked etcd lease" "$T/node-node-a.log" || fail "A did not revoke its lease"
[ "$(ctl get --prefix /skydns --keys-only | grep -c node-a- || true)" = 0 ] || fail "A's keys still in etcd after SIGTERM"
ok "A stopped with SIGTERM: lease revoked, its names gone from B after ${gone} ms and from etcd"
node_start node-a "$ADNS" "$AHTTP" "$E1" --etcd-lease-ttl=3
wait_for "a2 back on B" 5 is "$BDNS" a2.etcd.test 10.13.0.5

# B cut off from etcd: it keeps serving, and says so everywhere.
relay_stop b
# One /status document: disconnected, with the reason and the next try.
disconnected_with_reason() {
        curl -sf "http://127.0.0.1:$BHTTP/status" | python3 -c '
import json, sys
e = json.load(sys.stdin)["etcd"]
sys.exit(0 if e["state"] == "disconnected" and e["last_error"] and e["next_retry"] and not e["connected"] else 1)'
}
wait_for "B's /status to say etcd is out of reach, why, and when it retries" 10 disconnected_with_reason
is "$BDNS" a2.etcd.test 10.13.0.5 || fail "B stopped serving A's name without etcd"
is "$BDNS" b1.etcd.test 10.13.0.2 || fail "B stopped serving its own name without etcd"
# (The state goes from disconnected to connecting at each retry: wait for the former.)
cluster_says_disconnected() {
        curl -sf "http://127.0.0.1:$BHTTP/dns/cluster" >"$T/cluster.json" &&
                grep -q '"etcd":{"enabled":true,"state":"disconnected","connected":false' "$T/cluster.json"
}
wait_for "/dns/cluster to say etcd is out of reach" 5 cluster_says_disconnected
curl -sf "http://127.0.0.1:$BHTTP/metrics" >"$T/metrics.txt"
grep -qx 'joyride_etcd_connected 0' "$T/metrics.txt" || fail "/metrics: etcd still connected"
bus_etcd_state_is() {
        [ "$(busctl --system get-property org.joyride.DNS /org/joyride/DNS org.joyride.DNS EtcdState)" = "s \"$1\"" ]
}
wait_for "EtcdState on D-Bus" 5 bus_etcd_state_is disconnected
# The first error is the stream closing, the retries' are "Connection refused".
bus_etcd_error_says() {
        busctl --system get-property org.joyride.DNS /org/joyride/DNS org.joyride.DNS EtcdError >"$T/error.txt" &&
                grep -q "$1" "$T/error.txt"
}
wait_for "EtcdError on D-Bus" 5 bus_etcd_error_says 'Connection refused'
ctl_says_disconnected() {
        "$BUILD/src/joyridectl" status >"$T/ctl.txt" && grep -qE '^ *etcd: disconnected \(.*Connection refused' "$T/ctl.txt"
}
wait_for "joyridectl status to say etcd is out of reach" 5 ctl_says_disconnected
grep -q "etcd at http://127.0.0.1:$RELAY not available: .*MESSAGE_ID=$LOST_ID" "$T/node-node-b.log" ||
        fail "no log line with MESSAGE_ID=$LOST_ID"
ok "B cut off from etcd: keeps serving; /status, /dns/cluster, /metrics, D-Bus EtcdState/EtcdError, joyridectl and the log (MESSAGE_ID) say so"

# Meanwhile: A and etcdctl change things, B changes its own, etcd compacts.
printf '10.13.0.6 a3.etcd.test\n' >"$T/hosts-node-a/a.hosts"
for i in $(seq 1 20); do
        ctl put "/skydns/test/etcd/page/p$i" "{\"host\":\"10.13.8.$i\"}" >/dev/null
done
ctl del /skydns/test/etcd/note >/dev/null
ctl put /skydns/test/etcd/ext2/1 '{"host":"10.13.9.3","targetstrip":1}' >/dev/null
printf '10.13.0.2 b1.etcd.test\n10.13.0.7 b2.etcd.test\n' >"$T/hosts-node-b/b.hosts"
wait_for "a3 in etcd" 5 sh -c "etcdctl --endpoints=$E1 get --prefix /skydns/test/etcd/a3/ --keys-only | grep -q node-a"
rev=$(ctl endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
ctl compact "$rev" >/dev/null
is "$BDNS" a2.etcd.test 10.13.0.5 || fail "B dropped a2 while cut off"
relay_start b "$RELAY" "$E1C"
wait_for "B back on etcd" 15 etcd_state_is "$BHTTP" connected
wait_for "a2 gone from B (no stale record)" 5 is "$BDNS" a2.etcd.test ""
is "$BDNS" note.etcd.test "" TXT || fail "the deleted TXT is stale on B"
is "$BDNS" a3.etcd.test 10.13.0.6 || fail "a3 missing on B"
is "$BDNS" ext2.etcd.test 10.13.9.3 || fail "ext2 missing on B"
for i in $(seq 1 20); do
        is "$BDNS" "p$i.page.etcd.test" "10.13.8.$i" || fail "p$i missing on B"
done
# The resync read every page: B's log says how many.
pages=$(grep -o 'Read /skydns/ at revision [0-9]* over gRPC: [0-9]* key(s) in [0-9]* page(s)' "$T/node-node-b.log" |
        tail -n1 | sed 's/.* in \([0-9]*\) page(s)/\1/')
[ "${pages:-0}" -ge 8 ] || fail "B's resync read ${pages:-no} page(s) of 3 keys"
wait_for "B's change made while cut off, on A" 5 is "$ADNS" b2.etcd.test 10.13.0.7
grep -q "Reconnected to etcd at http://127.0.0.1:$RELAY .*MESSAGE_ID=$CONNECTED_ID" "$T/node-node-b.log" ||
        fail "no log line with MESSAGE_ID=$CONNECTED_ID"
curl -sf "http://127.0.0.1:$BHTTP/metrics" >"$T/metrics.txt"
grep -qx 'joyride_etcd_connected 1' "$T/metrics.txt" || fail "/metrics: etcd not connected"
ok "B back after changes and a compaction (revision $rev): resynced over gRPC in $pages pages of 3 keys, no stale record, none missing, its own change written"

# Behind an HTTP/1.1 proxy gRPC cannot pass: E reads the prefix through the JSON gateway.
read -r PROXY EDNS EHTTP <<<"$(ports 3 | tr '\n' ' ')"
http1_proxy_start e "$PROXY" "$E1C"
JOYRIDE_ETCD_RANGE_PAGE_KEYS=3 node_start node-e "$EDNS" "$EHTTP" "http://127.0.0.1:$PROXY"
wait_for "E connected through the proxy" 15 etcd_state_is "$EHTTP" connected
for i in $(seq 1 20); do
        is "$EDNS" "p$i.page.etcd.test" "10.13.8.$i" || fail "p$i missing on E"
done
is "$EDNS" a3.etcd.test 10.13.0.6 && is "$EDNS" b2.etcd.test 10.13.0.7 || fail "A's or B's names missing on E"
grep -q "etcd at http://127.0.0.1:$PROXY: no gRPC (.*); reading /skydns/ through the JSON gateway" "$T/node-node-e.log" ||
        fail "E does not say why it reads through the JSON gateway"
grep -qE "Read /skydns/ at revision [0-9]+ through the JSON gateway: [0-9]+ key\(s\) in ([2-9]|[1-9][0-9]+) page\(s\)" \
        "$T/node-node-e.log" || fail "E's read through the gateway: $(grep 'Read /skydns' "$T/node-node-e.log")"
node_stop node-e
http1_proxy_stop e
ok "behind an HTTP/1.1-only proxy: no gRPC, and the log says why; the prefix read through the JSON gateway, in pages, nothing missing"

# etcd restarted from its data directory.
etcd_stop e1
wait_for "A to see etcd gone" 10 etcd_state_is "$AHTTP" disconnected
printf '10.13.0.6 a3.etcd.test\n10.13.0.8 a4.etcd.test\n' >"$T/hosts-node-a/a.hosts"
is "$BDNS" a3.etcd.test 10.13.0.6 || fail "B dropped a3 while etcd was down"
is "$ADNS" b2.etcd.test 10.13.0.7 || fail "A dropped b2 while etcd was down"
etcd_start e1 "$E1C" "$E1P" "e1=http://127.0.0.1:$E1P"
etcd_wait "$E1"
wait_for "a4 on B after etcd's restart" 15 is "$BDNS" a4.etcd.test 10.13.0.8
both_connected() {
        [ "$(etcd_status "$AHTTP" state)" = connected ] && [ "$(etcd_status "$BHTTP" state)" = connected ]
}
wait_for "both back on etcd" 10 both_connected
is "$ADNS" b2.etcd.test 10.13.0.7 && is "$BDNS" ext2.etcd.test 10.13.9.3 || fail "lost records after etcd's restart"
ok "etcd restarted from its data directory: both nodes resync, A's change made meanwhile is on B"
node_stop node-a
node_stop node-b
etcd_stop e1
relay_stop b

# --- 2. three members: the leader killed while records change -------------------------
read -r F1C F1P F2C F2P F3C F3P <<<"$(ports 6 | tr '\n' ' ')"
cluster="f1=http://127.0.0.1:$F1P,f2=http://127.0.0.1:$F2P,f3=http://127.0.0.1:$F3P"
etcd_start f1 "$F1C" "$F1P" "$cluster"
etcd_start f2 "$F2C" "$F2P" "$cluster"
etcd_start f3 "$F3C" "$F3P" "$cluster"
FALL="http://127.0.0.1:$F1C,http://127.0.0.1:$F2C,http://127.0.0.1:$F3C"
etcd_wait "$FALL"
rm -f "$T"/hosts-node-a/* "$T"/hosts-node-b/*
printf '10.14.0.250 stable-a.etcd.test\n' >"$T/hosts-node-a/stable.hosts"
printf '10.14.0.251 stable-b.etcd.test\n' >"$T/hosts-node-b/stable.hosts"
node_start node-a "$ADNS" "$AHTTP" "$FALL" --etcd-lease-ttl=5
node_start node-b "$BDNS" "$BHTTP" "http://127.0.0.1:$F3C,http://127.0.0.1:$F2C,http://127.0.0.1:$F1C" --etcd-lease-ttl=5
wait_for "stable-a on B" 10 is "$BDNS" stable-a.etcd.test 10.14.0.250
wait_for "stable-b on A" 10 is "$ADNS" stable-b.etcd.test 10.14.0.251

leader=$(etcd_leader "$FALL")
case "$leader" in
        *":$F1C") victim=f1 ;;
        *":$F2C") victim=f2 ;;
        *":$F3C") victim=f3 ;;
        *) fail "no leader: $leader" ;;
esac

# Both nodes answer for each other's name all along.
(
        misses=0
        while [ ! -e "$T/probe.stop" ]; do
                is "$BDNS" stable-a.etcd.test 10.14.0.250 || misses=$((misses + 1))
                is "$ADNS" stable-b.etcd.test 10.14.0.251 || misses=$((misses + 1))
                sleep 0.05
        done
        echo "$misses" >"$T/probe.misses"
) &
probe=$!
started="$started $probe"

for i in $(seq 1 30); do
        printf '10.14.0.%d c%d.etcd.test\n' "$i" "$i" >"$T/hosts-node-a/c$i.hosts"
        [ $((i % 3)) = 0 ] && rm -f "$T/hosts-node-a/c$((i - 2)).hosts"
        [ "$i" = 10 ] && etcd_stop "$victim" KILL
        sleep 0.1
done
expected=$(for i in $(seq 1 30); do [ -e "$T/hosts-node-a/c$i.hosts" ] && echo "c$i"; done | sort | tr '\n' ' ')
converged() {
        local got="" i
        for i in $(seq 1 30); do
                case "$(answers "$BDNS" "c$i.etcd.test")" in
                        "10.14.0.$i") got="$got c$i" ;;
                        "") ;;
                        *) return 1 ;;
                esac
        done
        [ "$(tr ' ' '\n' <<<"${got# }" | sort | tr '\n' ' ')" = "$expected" ]
}
wait_for "B to hold exactly A's names after the leader died" 20 converged
in_etcd=$(etcdctl --endpoints="$FALL" get --prefix /skydns/test/etcd/ --keys-only 2>/dev/null |
        sed -n 's|^/skydns/test/etcd/\(c[0-9]*\)/node-a-.*|\1|p' | sort | tr '\n' ' ')
[ "$in_etcd" = "$expected" ] || fail "etcd holds [$in_etcd], A has [$expected]"
touch "$T/probe.stop"
wait "$probe" || true
[ "$(cat "$T/probe.misses")" = 0 ] || fail "$(cat "$T/probe.misses") queries unanswered while the leader changed"
ok "leader $victim killed while A's records changed: both nodes answered throughout, publishing resumed, B and etcd hold exactly A's $(wc -w <<<"$expected") names"
node_stop node-a
node_stop node-b
for m in f1 f2 f3; do [ "$m" = "$victim" ] || etcd_stop "$m"; done

# --- 3. TLS with client certificates, and a user with a password ------------------------
P=$T/pki
mkdir -p "$P"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/ca.key" -out "$P/ca.pem" \
        -days 2 -subj "/CN=joyride test CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/server.key" -out "$P/server.csr" \
        -subj "/CN=etcd" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$P/server.ext"
openssl x509 -req -in "$P/server.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 2 \
        -extfile "$P/server.ext" -out "$P/server.pem" 2>/dev/null
# etcd's gateway refuses client certificates with a Common Name: none here.
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/client.key" -out "$P/client.csr" \
        -subj "/O=joyride" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' >"$P/client.ext"
openssl x509 -req -in "$P/client.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 2 \
        -extfile "$P/client.ext" -out "$P/client.pem" 2>/dev/null

read -r G1C G1P CDNS CHTTP DDNS DHTTP <<<"$(ports 6 | tr '\n' ' ')"
G1=https://127.0.0.1:$G1C
etcd_start g1 "$G1C" "$G1P" "g1=http://127.0.0.1:$G1P" --cert-file "$P/server.pem" --key-file "$P/server.key" \
        --trusted-ca-file "$P/ca.pem" --client-cert-auth
tls=(--cacert "$P/ca.pem" --cert "$P/client.pem" --key "$P/client.key")
etcd_wait "$G1" "${tls[@]}"
gctl() { etcdctl --endpoints="$G1" "${tls[@]}" "$@"; }
gctl user add root:rootpw >/dev/null
gctl user add joyride:s3cret >/dev/null
gctl role add dns >/dev/null
gctl role grant-permission dns --prefix=true readwrite /skydns/ >/dev/null
gctl user grant-role joyride dns >/dev/null
gctl user add stranger:pw >/dev/null # may log in, may not read /skydns/
gctl auth enable >/dev/null 2>&1
printf 's3cret\n' >"$P/password"
printf 'wrong\n' >"$P/wrong"
printf 'pw\n' >"$P/stranger"
chmod 600 "$P/password" "$P/wrong" "$P/stranger"

etcd_tls=(--etcd-ca-file="$P/ca.pem" --etcd-cert-file="$P/client.pem" --etcd-key-file="$P/client.key" --etcd-user=joyride)
mkdir -p "$T/hosts-node-c" "$T/hosts-node-d"
printf '10.15.0.1 tls.etcd.test\n' >"$T/hosts-node-c/c.hosts"
printf '10.15.0.2 local-d.etcd.test\n' >"$T/hosts-node-d/d.hosts"
node_start node-c "$CDNS" "$CHTTP" "$G1" "${etcd_tls[@]}" --etcd-password-file="$P/password"
node_start node-d "$DDNS" "$DHTTP" "$G1" "${etcd_tls[@]}" --etcd-password-file="$P/wrong"
wait_for "C connected over TLS" 10 etcd_state_is "$CHTTP" connected
wait_for "C's key in etcd" 5 sh -c "etcdctl --endpoints=$G1 --cacert $P/ca.pem --cert $P/client.pem --key $P/client.key \
        --user root:rootpw get --prefix /skydns/test/etcd/tls/ | grep -q '\"host\":\"10.15.0.1\"'"
gctl --user root:rootpw put /skydns/test/etcd/secure '{"host":"10.15.9.1"}' >/dev/null
wait_for "a key put over TLS on C" 5 is "$CDNS" secure.etcd.test 10.15.9.1
grep -q "Read /skydns/ at revision [0-9]* over gRPC" "$T/node-node-c.log" || fail "C did not read the prefix over gRPC"
ok "TLS with a client certificate and user/password: C publishes and serves, reads the prefix over gRPC"

wait_for "D's authentication error" 10 grep -q \
        "user 'joyride' could not authenticate: etcdserver: authentication failed, invalid user ID or password (check \[Etcd\] User= and PasswordFile=)" \
        "$T/node-node-d.log"
[[ "$(etcd_status "$DHTTP" last_error)" == *"authentication failed"* ]] || fail "/status: $(etcd_status "$DHTTP" last_error)"
[ "$(etcd_status "$DHTTP" state)" != connected ] || fail "D connected with a wrong password"
is "$DDNS" local-d.etcd.test 10.15.0.2 || fail "D does not serve its local name"
is "$CDNS" local-d.etcd.test "" || fail "D's name got into etcd"
ok "a wrong password: a clear error in the log and /status, local names still served"

# A user that may not read the prefix: etcd's gRPC error, said as clearly.
read -r FDNS FHTTP <<<"$(ports 2 | tr '\n' ' ')"
node_start node-f "$FDNS" "$FHTTP" "$G1" --etcd-ca-file="$P/ca.pem" --etcd-cert-file="$P/client.pem" \
        --etcd-key-file="$P/client.key" --etcd-user=stranger --etcd-password-file="$P/stranger"
wait_for "F's permission error" 10 grep -q \
        "/etcdserverpb.KV/Range: etcdserver: permission denied (the user needs read and write access to /skydns/)" \
        "$T/node-node-f.log"
[ "$(etcd_status "$FHTTP" state)" != connected ] || fail "F connected without read access"
ok "a user without access to the prefix: etcd's gRPC error in the log, with what the user needs"
