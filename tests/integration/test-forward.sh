#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Forwarding of names that are not ours, with real upstreams on loopback: NSD
# serving upstream.test, and a misbehaving fake upstream (fake-upstream.py)
# for the cases NSD will not play. Through joyrided as dig sees it: its own
# names as before; upstream names with RA and the upstream's data; NXDOMAIN
# with the upstream's SOA; answers cached (NSD's own counters show one
# query); in-flight questions sent upstream once; TC retried over TCP; UDP
# replies sized to the client's payload (TC beyond it); TCP clients forwarded
# over TCP; SERVFAIL within 2 s when the upstream is stopped or silent, and
# answers again when it is back; forged replies (wrong ID, wrong port, wrong
# name) ignored; every upstream query from a source port of its own; a second
# upstream asked when the first is silent or answers SERVFAIL, and first from
# then on; TTLs capped at ForwardMaxTTL; REFUSED outside ForwardAllow;
# REFUSED without AA or SOA when forwarding is off; SIGHUP turning it off and
# on; Forward=resolv.conf, leaving out joyrided's own address, and through
# systemd-resolved's D-Bus API when resolv.conf points at its stub
# (tools/fake-resolved on a private bus, which lists joyrided itself too);
# /status, /metrics (upstream failures, latency) and D-Bus.
set -euo pipefail
build=$(cd "$1" && pwd)
daemon="$build/src/joyrided"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
source "$here/bus-lib.sh"

command -v nsd >/dev/null || {
        echo "SKIP: nsd is not installed (tools/install-deps)"
        exit 77
}
need_commands nsd-control dig

setup_tmp
extra_pids=""
forward_cleanup() {
        local rc=$? pid
        for pid in $extra_pids; do
                kill "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        done
        set +e # errexit would end the handler at the next line
        (exit "$rc")
        _lib_cleanup
}
trap forward_cleanup EXIT

expect_no_match() {
        if grep -Eq -- "$2" <<<"$3"; then
                echo "$3" >&2
                fail "$1: a line matches /$2/"
        fi
        ok "$1"
}

# --- the upstream: NSD serving upstream.test ---------------------------------

mkdir -p "$tmp/nsd" "$tmp/hosts" "$tmp/state"
cat >"$tmp/nsd/upstream.test.zone" <<'EOF'
$ORIGIN upstream.test.
$TTL 300
@       IN SOA ns.upstream.test. admin.upstream.test. 1 3600 600 86400 60
@       IN NS ns
ns      IN A 127.0.0.1
www     IN A 192.0.2.80
www     IN AAAA 2001:db8::80
cached  IN A 192.0.2.81
tcp     IN A 192.0.2.82
back    IN A 192.0.2.83
EOF
# 8 TXT records: about 800 bytes, more than 512, less than 1232.
for i in $(seq 1 8); do
        echo "mid IN TXT \"record $i of a middle-sized rrset that fits in 1232 bytes but not in 512\""
done >>"$tmp/nsd/upstream.test.zone"
# 100 TXT records: about 9 kB, more than any UDP answer may carry.
for i in $(seq 1 100); do
        echo "big IN TXT \"record $i of a big rrset that does not fit in one UDP datagram of 1232 bytes\""
done >>"$tmp/nsd/upstream.test.zone"

# start_nsd NAME ADDRESS PORT: NSD with its control socket in $tmp/NAME.ctl.
start_nsd() {
        local name=$1 address=$2 nport=$3
        cat >"$tmp/nsd/$name.conf" <<EOF
server:
  ip-address: $address
  port: $nport
  username: ""
  database: ""
  zonesdir: "$tmp/nsd"
  pidfile: "$tmp/nsd/$name.pid"
  xfrdfile: "$tmp/nsd/$name.xfrd"
  zonelistfile: "$tmp/nsd/$name.zonelist"
  rrl-ratelimit: 0
  server-count: 1
  verbosity: 1
  logfile: "$tmp/nsd/$name.log"
remote-control:
  control-enable: yes
  control-interface: $tmp/nsd/$name.ctl
zone:
  name: upstream.test
  zonefile: upstream.test.zone
EOF
        nsd -d -c "$tmp/nsd/$name.conf" >"$tmp/nsd/$name.out" 2>&1 &
        nsd_pid=$!
        extra_pids="$extra_pids $nsd_pid"
        wait_for "NSD ($name) on $address:$nport" 10 dig @"$address" -p "$nport" +tries=1 +time=1 +short www.upstream.test
}
nsd_stat() { # nsd_stat NAME KEY: a counter since the last reset
        nsd-control -c "$tmp/nsd/$1.conf" stats_noreset | sed -n "s/^$2=//p"
}
nsd_reset() {
        nsd-control -c "$tmp/nsd/$1.conf" stats >/dev/null
}

nsd_port=$(free_port)
start_nsd main 127.0.0.1 "$nsd_port"
main_nsd_pid=$nsd_pid

echo "10.77.0.1 api.internal" >"$tmp/hosts/a.hosts"

# q PORT [dig options]: never fails on its own; the checks do.
q() {
        local p=$1
        shift
        dig @127.0.0.1 -p "$p" +tries=1 +time=4 "$@" 2>&1 || true
}

# start_forwarder [options]: another joyrided on a free port, answering its
# own name; prints nothing, sets $fport and adds its PID to the cleanup.
start_forwarder() {
        local attempt
        for attempt in 1 2 3; do
                fport=$(free_port)
                "$daemon" --dns-bind-address=127.0.0.1 --dns-port="$fport" --hosts-directory="$tmp/hosts" \
                        --state-directory="$tmp/state" --no-docker --no-http --bus=none --no-cluster \
                        --log-level=debug "$@" >>"$tmp/forwarder.log" 2>&1 &
                local pid=$!
                extra_pids="$extra_pids $pid"
                if wait_for_answer "$fport"; then
                        return 0
                fi
                kill "$pid" 2>/dev/null || true
        done
        fail "joyrided with $* never answered"
}
wait_for_answer() {
        local deadline=$(($(date +%s%N) + 5000000000))
        while [ "$(date +%s%N)" -lt "$deadline" ]; do
                [ "$(dig_short "$1" api.internal 2>/dev/null)" = "10.77.0.1" ] && return 0
                sleep 0.05
        done
        return 1
}

# --- 1. the main forwarder --------------------------------------------------

start_local_daemon "$tmp/hosts" api.internal 10.77.0.1 --forward="127.0.0.1:$nsd_port" --log-level=debug
echo "# joyrided pid $daemon_pid on 127.0.0.1:$port, forwarding to NSD on 127.0.0.1:$nsd_port"

out=$(q "$port" api.internal A)
expect_match "own name answered as before" '^api\.internal\.[[:space:]].*[[:space:]]A[[:space:]]+10\.77\.0\.1$' "$out"
expect_match "... authoritatively, without RA" ';; flags: qr aa rd;' "$out"

out=$(q "$port" www.upstream.test A)
expect_match "upstream name answered with the upstream's data" '^www\.upstream\.test\.[[:space:]].*[[:space:]]A[[:space:]]+192\.0\.2\.80$' "$out"
expect_match "... with RA set and AA clear" ';; flags: qr rd ra;' "$out"
expect "AAAA and other types too" "2001:db8::80" "$(q "$port" +short www.upstream.test AAAA)"
out=$(q "$port" +noedns www.upstream.test A)
expect_no_match "a client without EDNS gets no OPT record" 'OPT PSEUDOSECTION' "$out"
out=$(q "$port" +norecurse www.upstream.test A)
expect_match "a query without RD is forwarded too" 'status: NOERROR' "$out"

out=$(q "$port" nothere.upstream.test A)
expect_match "NXDOMAIN relayed" 'status: NXDOMAIN' "$out"
expect_match "... with the upstream's SOA, its TTL the SOA minimum (60)" \
        '^upstream\.test\.[[:space:]]+60[[:space:]]+IN[[:space:]]+SOA[[:space:]]+ns\.upstream\.test\. admin\.upstream\.test\.' "$out"

# The cache: NSD counts the queries it gets.
nsd_reset main
expect "first query for cached.upstream.test" "192.0.2.81" "$(q "$port" +short cached.upstream.test)"
expect "second query for cached.upstream.test" "192.0.2.81" "$(q "$port" +short CACHED.upstream.test)"
out=$(q "$port" cached.upstream.test)
expect_match "... the cached answer's TTL counts down from 300" '[[:space:]](29[0-9]|300)[[:space:]]+IN[[:space:]]+A[[:space:]]+192\.0\.2\.81$' "$out"
expect "NSD saw one query for three" "1" "$(nsd_stat main num.queries)"
q "$port" nothere.upstream.test A >/dev/null
expect "NXDOMAIN answered from the cache (RFC 2308)" "1" "$(nsd_stat main num.queries)"

# TC from the upstream is retried over TCP.
nsd_reset main
out=$(q "$port" +ignore big.upstream.test TXT)
expect_match "an answer too big for UDP comes back with TC" ';; flags: qr tc rd ra;' "$out"
expect "joyrided asked NSD over UDP once" "1" "$(nsd_stat main num.udp)"
expect "... and, on its TC, over TCP" "1" "$(nsd_stat main num.tcp)"
out=$(q "$port" +tcp big.upstream.test TXT)
expect_match "over TCP the client gets all 100 records" 'ANSWER: 100,' "$out"
expect "... from the cache" "2" "$(nsd_stat main num.queries)"
out=$(q "$port" big.upstream.test TXT)
expect_match "dig's own retry over TCP gets them too" 'ANSWER: 100,' "$out"

# Over UDP, the reply is sized to the client's payload size.
out=$(q "$port" +ignore +bufsize=1232 mid.upstream.test TXT)
expect_match "an 800-byte answer to a client with a 1232-byte payload: whole" ';; flags: qr rd ra;.*ANSWER: 8,' "$out"
out=$(q "$port" +ignore +bufsize=512 mid.upstream.test TXT)
expect_match "... to a client with 512 bytes: TC" ';; flags: qr tc rd ra;' "$out"
out=$(q "$port" +ignore +noedns mid.upstream.test TXT)
expect_match "... to a client without EDNS: TC" ';; flags: qr tc rd ra;' "$out"

# TCP clients are forwarded over TCP.
nsd_reset main
expect "a TCP client's question" "192.0.2.82" "$(q "$port" +tcp +short tcp.upstream.test)"
expect "... went to NSD over TCP" "1/0" "$(nsd_stat main num.tcp)/$(nsd_stat main num.udp)"
out=$(q "$port" +tcp +keepopen +short api.internal www.upstream.test api.internal)
expect "own and forwarded answers on one TCP connection" "10.77.0.1 192.0.2.80 10.77.0.1" \
        "$(tr '\n' ' ' <<<"$out" | sed 's/ $//')"

# The upstream stops: SERVFAIL within 2 s; back: answers again.
kill "$main_nsd_pid"
wait "$main_nsd_pid" 2>/dev/null || true
start=$(now_ms)
out=$(q "$port" +time=5 back.upstream.test A)
elapsed=$(($(now_ms) - start))
expect_match "upstream stopped: SERVFAIL" 'status: SERVFAIL' "$out"
[ "$elapsed" -lt 2000 ] || fail "SERVFAIL took $elapsed ms"
ok "... within 2 s ($elapsed ms)"
expect "own names still answered" "10.77.0.1" "$(q "$port" +short api.internal)"
expect "cached names still answered" "192.0.2.80" "$(q "$port" +short www.upstream.test)"
start_nsd main 127.0.0.1 "$nsd_port"
main_nsd_pid=$nsd_pid
wait_for "back.upstream.test through joyrided again" 5 \
        bash -c "[ \"\$(dig @127.0.0.1 -p $port +tries=1 +time=2 +short back.upstream.test)\" = 192.0.2.83 ]"
ok "upstream back: its names answered again"

# --- 2. misbehaving upstreams (fake-upstream.py) ------------------------------

# start_fake MODE: a fake upstream on a free port; sets $fake_port, $fake_log.
start_fake() {
        fake_port=$(free_port)
        fake_log="$tmp/fake-$1.log"
        : >"$fake_log"
        python3 "$here/fake-upstream.py" "$1" "$fake_port" "$fake_log" >"$tmp/fake-$1.out" 2>&1 &
        extra_pids="$extra_pids $!"
        wait_for "fake upstream ($1)" 5 grep -q ready "$tmp/fake-$1.out"
}

start_fake slow
start_forwarder --forward="127.0.0.1:$fake_port"
for i in $(seq 1 10); do
        q "$fport" +short same.fake.test >"$tmp/same-$i.out" &
done
wait_for "ten parallel answers" 5 bash -c "cat $tmp/same-*.out | grep -c '^192.0.2.98\$' | grep -qx 10"
ok "ten clients asking the same name at once all get the answer"
expect "... which went upstream once" "1" "$(grep -c 'query same.fake.test' "$fake_log")"

start_fake spoof
start_forwarder --forward="127.0.0.1:$fake_port"
out=$(q "$fport" +short spoofed.fake.test)
expect "forged replies (wrong ID, wrong port, wrong name) are ignored, the real one is taken" "192.0.2.99" "$out"

start_fake spoof-only
start_forwarder --forward="127.0.0.1:$fake_port"
out=$(q "$fport" +time=5 spoofed.fake.test)
expect_match "only forged replies: SERVFAIL" 'status: SERVFAIL' "$out"
expect_no_match "... and never their data" '6\.6\.6\.' "$out"

start_fake blackhole
start_forwarder --forward="127.0.0.1:$fake_port"
start=$(now_ms)
out=$(q "$fport" +time=5 silent.fake.test)
elapsed=$(($(now_ms) - start))
expect_match "a silent upstream: SERVFAIL" 'status: SERVFAIL' "$out"
[ "$elapsed" -lt 2000 ] || fail "SERVFAIL took $elapsed ms"
ok "... within 2 s ($elapsed ms)"
[ "$(grep -c 'query silent.fake.test' "$fake_log")" -ge 2 ] || fail "the question was not asked again meanwhile"
ok "... after asking again meanwhile ($(grep -c 'query silent.fake.test' "$fake_log") attempts)"

# Every upstream query leaves from a port of its own (a new socket each), so
# that a forger must guess the port as well as the ID.
port_pids=""
for i in 1 2 3; do
        q "$fport" +time=3 "port$i.fake.test" >/dev/null &
        port_pids="$port_pids $!"
done
wait_for "three more questions at the silent upstream" 5 bash -c "[ \$(grep -c 'query port' $fake_log) -ge 3 ]"
ports=$(sed -n 's/^query .* from \([0-9]*\)$/\1/p' "$fake_log")
n_ports=$(wc -l <<<"$ports")
[ "$n_ports" -ge 7 ] || fail "only $n_ports upstream queries logged: $(cat "$fake_log")"
expect "each upstream query from a source port of its own ($n_ports queries)" "$n_ports" "$(sort -u <<<"$ports" | wc -l)"
if grep -qx "$fport" <<<"$ports"; then
        fail "an upstream query left from joyrided's DNS port $fport"
fi
# shellcheck disable=SC2086 # a list of PIDs
wait $port_pids # the three questions above: SERVFAIL

# Upstreams in turn: the first silent or failing, the second answers; the one
# that answered is asked first from then on.
start_fake blackhole
start_forwarder --forward="127.0.0.1:$fake_port,127.0.0.1:$nsd_port"
start=$(now_ms)
expect "first upstream silent: the second one answers" "192.0.2.80" "$(q "$fport" +short www.upstream.test)"
elapsed=$(($(now_ms) - start))
[ "$elapsed" -lt 1500 ] || fail "the second upstream's answer took $elapsed ms"
ok "... within 1.5 s ($elapsed ms)"
expect "... after one try at the silent one" "1" "$(grep -c 'query www.upstream.test' "$fake_log")"
expect "the next question goes to the one that answered" "192.0.2.81" "$(q "$fport" +short cached.upstream.test)"
expect "... not to the silent one" "0" "$(grep -c 'query cached.upstream.test' "$fake_log")"

start_fake servfail
start_forwarder --forward="127.0.0.1:$fake_port,127.0.0.1:$nsd_port"
out=$(q "$fport" www.upstream.test A)
expect_match "first upstream answers SERVFAIL: the second one answers" \
        '^www\.upstream\.test\.[[:space:]]+[0-9]+[[:space:]]+IN[[:space:]]+A[[:space:]]+192\.0\.2\.80$' "$out"
# dig's own query time (send to reply, without dig's start-up): the next try
# would come 400 ms after the first.
elapsed=$(sed -n 's/^;; Query time: \([0-9]*\) msec$/\1/p' <<<"$out")
[ -n "$elapsed" ] && [ "$elapsed" -lt 350 ] || fail "the second upstream was asked only after ${elapsed:-?} ms"
ok "... at once, without waiting for the next try ($elapsed ms)"
expect "... after one try at the failing one" "1" "$(grep -c 'query www.upstream.test' "$fake_log")"

# ForwardMaxTTL caps what is relayed and cached (NSD's TTL is 300).
start_forwarder --forward="127.0.0.1:$nsd_port" --forward-max-ttl=100
out=$(q "$fport" www.upstream.test A)
expect_match "ForwardMaxTTL=100: the answer's TTL is capped at 100" \
        '^www\.upstream\.test\.[[:space:]]+(9[0-9]|100)[[:space:]]+IN[[:space:]]+A[[:space:]]+192\.0\.2\.80$' "$out"

# --- 3. ForwardAllow ----------------------------------------------------------

start_forwarder --forward="127.0.0.1:$nsd_port" --forward-allow=127.0.0.1
out=$(dig @127.0.0.1 -p "$fport" -b 127.0.0.2 +tries=1 +time=3 www.upstream.test 2>&1 || true)
expect_match "a client outside ForwardAllow (127.0.0.2) gets REFUSED" 'status: REFUSED' "$out"
expect_match "... without RA, AA or SOA" ';; flags: qr rd;.*AUTHORITY: 0' "$out"
expect "... but its own names answered" "10.77.0.1" \
        "$(dig @127.0.0.1 -p "$fport" -b 127.0.0.2 +tries=1 +time=3 +short api.internal)"
expect "a client inside (127.0.0.1) is forwarded" "192.0.2.80" "$(q "$fport" +short www.upstream.test)"

# --- 4. without Forward -----------------------------------------------------

start_forwarder
out=$(q "$fport" example.com A)
expect_match "without Forward: example.com is REFUSED" 'status: REFUSED' "$out"
expect_match "... with AA and RA clear and no SOA" ';; flags: qr rd;.*AUTHORITY: 0' "$out"
out=$(q "$fport" nothere.internal A)
expect_match "... names under its own domains stay NXDOMAIN" 'status: NXDOMAIN' "$out"
expect_match "... with an SOA owned by that domain" '^internal\.[[:space:]].*[[:space:]]IN[[:space:]]+SOA[[:space:]]' "$out"

# --- 4b. a reload turns forwarding off and on again ----------------------------

cat >"$tmp/reload.conf" <<EOF
[DNS]
Forward=127.0.0.1:$nsd_port
EOF
start_forwarder --config="$tmp/reload.conf"
reload_pid=${extra_pids##* }
expect "configured in the file: forwarded" "192.0.2.80" "$(q "$fport" +short www.upstream.test)"
printf '[DNS]\n' >"$tmp/reload.conf"
kill -HUP "$reload_pid"
wait_for "forwarding off after a reload" 5 \
        bash -c "dig @127.0.0.1 -p $fport +tries=1 +time=1 www.upstream.test | grep -q 'status: REFUSED'"
ok "Forward= removed, SIGHUP: REFUSED"
printf '[DNS]\nForward=127.0.0.1:%s\nForwardAllow=127.0.0.2\n' "$nsd_port" >"$tmp/reload.conf"
kill -HUP "$reload_pid"
wait_for "ForwardAllow applied after a reload" 5 \
        bash -c "dig @127.0.0.1 -p $fport +tries=1 +time=1 www.upstream.test | grep -q 'status: REFUSED'"
expect "Forward= back with ForwardAllow=127.0.0.2, SIGHUP: forwarded for 127.0.0.2 only" "192.0.2.80" \
        "$(dig @127.0.0.1 -p "$fport" -b 127.0.0.2 +tries=1 +time=3 +short www.upstream.test 2>&1 || true)"

# --- 5. Forward=resolv.conf ---------------------------------------------------

# resolv.conf has no ports: both sides on port 53, on loopback addresses of
# their own (127.a.b.1 joyrided, 127.a.b.2 NSD).
net="127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1))"
start_nsd rc "$net.2" 53
cat >"$tmp/resolv.conf" <<EOF
# joyrided itself first: it must be left out, or it would ask itself.
nameserver $net.1
nameserver $net.2
options edns0
EOF
JOYRIDE_RESOLV_CONF="$tmp/resolv.conf" "$daemon" --dns-bind-address="$net.1" --dns-port=53 \
        --hosts-directory="$tmp/hosts" --state-directory="$tmp/state" --no-docker --no-http --bus=none \
        --no-cluster --forward=resolv.conf >"$tmp/rc.log" 2>&1 &
rc_pid=$!
extra_pids="$extra_pids $rc_pid"
wait_for "joyrided on $net.1:53" 5 bash -c "[ \"\$(dig @$net.1 +tries=1 +time=1 +short api.internal)\" = 10.77.0.1 ]"
expect "Forward=resolv.conf: forwarded to its nameserver" "192.0.2.80" \
        "$(dig @"$net.1" +tries=1 +time=3 +short www.upstream.test 2>&1 || true)"
grep -q "Forwarding to $net.2:53 (from resolv.conf)" "$tmp/rc.log" || fail "no log line for the upstreams: $(cat "$tmp/rc.log")"
ok "... leaving out joyrided's own address (log: Forwarding to $net.2:53 (from resolv.conf))"

# The systemd-resolved stub: its servers come from resolved's D-Bus API
# (tools/fake-resolved on a private system bus). resolved knows NSD as a
# global server, and joyrided itself as the server of a link: joyrided
# registers itself there ([Resolved] Link=lo), as a setup with both would.
if [ -x "$build/tools/fake-resolved" ] && command -v dbus-daemon >/dev/null && command -v busctl >/dev/null; then
        bus_allow_resolve1 "$tmp/bus"
        start_system_bus "$tmp/bus" "$here/../.."
        extra_pids="$extra_pids $BUS_PID"
        bus_started=1
        "$build/tools/fake-resolved" --dns="$net.2" >"$tmp/resolved.out" 2>&1 </dev/null &
        extra_pids="$extra_pids $!"
        wait_for "fake-resolved on the bus" 10 grep -q "owning org.freedesktop.resolve1" "$tmp/resolved.out"
        printf 'nameserver 127.0.0.53\noptions edns0 trust-ad\n' >"$tmp/resolv-stub.conf"
        # In the place of the first one.
        kill "$rc_pid"
        wait "$rc_pid" 2>/dev/null || true
        JOYRIDE_RESOLV_CONF="$tmp/resolv-stub.conf" "$daemon" --dns-bind-address="$net.1" --dns-port=53 \
                --hosts-directory="$tmp/hosts" --state-directory="$tmp/state" --no-docker --no-http --bus=none \
                --no-cluster --forward=resolv.conf --resolved-link=lo --resolved-dns="$net.1:53" \
                >"$tmp/stub.log" 2>&1 &
        extra_pids="$extra_pids $!"
        wait_for "joyrided registered with resolved" 5 grep -q "SetLinkDNSEx .* $net.1:53" "$tmp/resolved.out"
        wait_for "the upstreams from systemd-resolved" 8 grep -q "from systemd-resolved" "$tmp/stub.log"
        # Its servers are read again every 5 s: the first read may predate the
        # registration, the next one has it.
        sleep 5.5
        busctl --system get-property org.freedesktop.resolve1 /org/freedesktop/resolve1 \
                org.freedesktop.resolve1.Manager DNSEx >"$tmp/dnsex.txt"
        grep -q "$(echo "$net.1" | tr . ' ')" "$tmp/dnsex.txt" || fail "resolved does not list joyrided: $(cat "$tmp/dnsex.txt")"
        if grep "Forwarding to" "$tmp/stub.log" | grep -q "$net.1:53"; then
                fail "joyrided forwards to itself: $(cat "$tmp/stub.log")"
        fi
        grep -q "Forwarding to $net.2:53 (from systemd-resolved)" "$tmp/stub.log" ||
                fail "the upstreams are not resolved's: $(cat "$tmp/stub.log")"
        ok "resolv.conf names resolved's stub: its servers come from D-Bus, without joyrided's own"
        expect "... and its names are answered through them" "192.0.2.80" \
                "$(dig @"$net.1" +tries=1 +time=3 +short www.upstream.test 2>&1 || true)"
else
        echo "# skipping the systemd-resolved case: no tools/fake-resolved, dbus-daemon or busctl"
fi

# --- 6. what /status, /metrics, D-Bus and joyridectl say ---------------------

if command -v curl >/dev/null && command -v busctl >/dev/null && command -v dbus-daemon >/dev/null; then
        if [ -z "${bus_started:-}" ]; then
                start_system_bus "$tmp/bus" "$here/../.."
                extra_pids="$extra_pids $BUS_PID"
        fi
        dead_port=$(free_port)
        http_port=$(free_port)
        sport=$(free_port)
        "$daemon" --dns-bind-address=127.0.0.1 --dns-port="$sport" --hosts-directory="$tmp/hosts" \
                --state-directory="$tmp/state-status" --no-docker --bus=system --no-cluster \
                --http-host=127.0.0.1 --http-port="$http_port" \
                --forward="127.0.0.1:$dead_port,127.0.0.1:$nsd_port" >"$tmp/status.log" 2>&1 &
        extra_pids="$extra_pids $!"
        wait_for "the status daemon's HTTP API" 10 curl -sf "http://127.0.0.1:$http_port/health"
        wait_for "the status daemon's bus name" 10 busctl --system get-property org.joyride.DNS /org/joyride/DNS \
                org.joyride.DNS ForwardEnabled
        # The first goes to the dead upstream first (refused at once), then NSD;
        # the others to NSD, the one that answered.
        q "$sport" +short www.upstream.test >/dev/null
        q "$sport" +short www.upstream.test >/dev/null
        q "$sport" +short status.upstream.test >/dev/null

        curl -sf "http://127.0.0.1:$http_port/status" >"$tmp/status.json"
        python3 - "$tmp/status.json" "$nsd_port" "$dead_port" <<'PY' || fail "/status forwarding: $(cat "$tmp/status.json")"
import json, sys
s = json.load(open(sys.argv[1]))
f = s["dns_server"]["forwarding"]
ups = [u["address"] for u in f["upstreams"]]
assert f["enabled"] is True and f["source"] == "configured", f
assert ups == ["127.0.0.1:%s" % sys.argv[3], "127.0.0.1:%s" % sys.argv[2]], ups
dead, nsd = f["upstreams"]
assert dead["state"] == "failing" and dead["failures"] == 1 and dead["answers"] == 0, dead
assert nsd["state"] == "ok" and nsd["answers"] == 2 and nsd["failures"] == 0, nsd
assert f["cache"]["hits"] >= 1 and f["cache"]["entries"] >= 1 and f["cache"]["size"] == 10000, f["cache"]
assert f["queries"] == 3, f
assert f["allow_default"] is True and "127.0.0.0/8" in f["allow"], f
assert s["dns_server"]["queries_forwarded"] == 3, s["dns_server"]
assert s["dns_server"]["responses_by_rcode"]["NOERROR"] >= 2, s["dns_server"]
PY
        ok "/status: forwarding enabled, its upstreams, cache and counters"

        curl -sf "http://127.0.0.1:$http_port/metrics" >"$tmp/metrics.txt"
        for line in "joyride_forward_enabled 1" "joyride_forward_queries_total 3" \
                'joyride_forward_cache_lookups_total{result="hit"} 1' \
                "joyride_forward_upstream_queries_total{upstream=\"127.0.0.1:$nsd_port\"} 2" \
                "joyride_forward_upstream_up{upstream=\"127.0.0.1:$nsd_port\"} 1" \
                "joyride_forward_upstream_up{upstream=\"127.0.0.1:$dead_port\"} 0" \
                "joyride_forward_upstream_failures_total{upstream=\"127.0.0.1:$dead_port\"} 1" \
                "joyride_forward_upstream_failures_total{upstream=\"127.0.0.1:$nsd_port\"} 0" \
                "joyride_forward_upstream_rtt_seconds_count{upstream=\"127.0.0.1:$nsd_port\"} 2" \
                "joyride_forward_latency_seconds_count 2"; do
                grep -qxF "$line" "$tmp/metrics.txt" || fail "/metrics has no line '$line': $(grep forward "$tmp/metrics.txt")"
        done
        ok "/metrics: joyride_forward_* with the upstreams, their failures and latency"

        prop() { busctl --system get-property org.joyride.DNS /org/joyride/DNS org.joyride.DNS "$1"; }
        expect "D-Bus ForwardEnabled" "b true" "$(prop ForwardEnabled)"
        expect "D-Bus ForwardUpstreams" "as 2 \"127.0.0.1:$dead_port\" \"127.0.0.1:$nsd_port\"" "$(prop ForwardUpstreams)"
        busctl --system call org.joyride.DNS /org/joyride/DNS org.joyride.DNS GetStatistics >"$tmp/stats.txt"
        grep -q '"forwarding.cache.hits" 1' "$tmp/stats.txt" || fail "GetStatistics: $(cat "$tmp/stats.txt")"
        ok "D-Bus GetStatistics has the forwarding counters"
        if [ -x "$build/src/joyridectl" ]; then
                "$build/src/joyridectl" statistics >"$tmp/ctl.txt" 2>&1 || true
                grep -q "Forwarding: 3 questions: 1 from the cache" "$tmp/ctl.txt" ||
                        fail "joyridectl statistics: $(cat "$tmp/ctl.txt")"
                ok "joyridectl statistics shows them"
        fi

        # The request-duration histogram: forwarded questions in their own
        # series, by transport (a TCP client is forwarded over TCP).
        q "$sport" +tcp +short www.upstream.test >/dev/null
        curl -sf "http://127.0.0.1:$http_port/metrics" >"$tmp/metrics.txt"
        for line in 'joyride_dns_request_duration_seconds_count{transport="udp",answer="forwarded"} 3' \
                'joyride_dns_request_duration_seconds_count{transport="tcp",answer="forwarded"} 1' \
                'joyride_dns_request_duration_seconds_count{transport="udp",answer="local"} 0'; do
                grep -qxF "$line" "$tmp/metrics.txt" || fail "/metrics has no line '$line': $(grep _count "$tmp/metrics.txt")"
        done
        ok "/metrics: forwarded questions timed in joyride_dns_request_duration_seconds{answer=\"forwarded\"}"

        # Timed from the query's arrival to the reply: the upstream's wait is
        # in it. The slow upstream answers after 150 ms, so no forwarded reply
        # can be in a bucket of 100 ms or less.
        start_fake slow
        http_port=$(free_port)
        sport=$(free_port)
        "$daemon" --dns-bind-address=127.0.0.1 --dns-port="$sport" --hosts-directory="$tmp/hosts" \
                --state-directory="$tmp/state-slow" --no-docker --bus=none --no-cluster \
                --http-host=127.0.0.1 --http-port="$http_port" --forward="127.0.0.1:$fake_port" >"$tmp/slow.log" 2>&1 &
        extra_pids="$extra_pids $!"
        wait_for "the slow forwarder's HTTP API" 10 curl -sf "http://127.0.0.1:$http_port/health"
        for n in one two; do expect "$n.slow.test through a slow upstream" 192.0.2.98 "$(q "$sport" +short $n.slow.test)"; done
        curl -sf "http://127.0.0.1:$http_port/metrics" >"$tmp/metrics.txt"
        for line in 'joyride_dns_request_duration_seconds_bucket{transport="udp",answer="forwarded",le="0.1"} 0' \
                'joyride_dns_request_duration_seconds_count{transport="udp",answer="forwarded"} 2'; do
                grep -qxF "$line" "$tmp/metrics.txt" ||
                        fail "/metrics has no line '$line': $(grep 'answer="forwarded"' "$tmp/metrics.txt")"
        done
        ok "... from arrival to reply: answers of a 150 ms upstream are above the 100 ms bucket"
else
        echo "# skipping the status checks: curl, busctl or dbus-daemon missing"
fi

echo "# all forwarding checks passed"
