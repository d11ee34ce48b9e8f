#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# DNS over UDP and TCP as a user sees it through dig: the real daemon on a
# random loopback port serving a temporary hosts directory. Checks answers,
# header flags, negative answers and their SOA, case, domain restriction,
# EDNS, truncation and the retry over TCP, several queries on one TCP
# connection, malformed input, a silent TCP client, SIGTERM; and, in a
# private network namespace when one can be made, that a daemon bound to all
# addresses (IPv6 and IPv4 wildcard, bound itself or socket-activated)
# replies from the address each query was sent to, and that one bound to a
# single IPv4 or IPv6 address answers without asking for packet info.
set -euo pipefail
build=$(cd "$1" && pwd)
daemon="$build/src/joyrided"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

setup_tmp

hosts="$tmp/hosts.d"
mkdir -p "$hosts" "$tmp/state"
cat >"$hosts/10-main.hosts" <<'EOF'
# several names on one line, an IPv6 address, one half of a two-file name
10.53.0.1       api.example.com www.example.com
fd53::1         api.example.com
10.53.0.21      both.example.com
10.53.0.30      v4only.example.com
EOF
cat >"$hosts/20-more.hosts" <<'EOF'
10.53.0.22      both.example.com
EOF
# 60 addresses for one name: more than fits in 512 bytes.
for i in $(seq 1 60); do
        echo "10.54.0.$i many.example.com"
done >"$hosts/30-many.hosts"

# start_daemon [extra options]: the daemon on a free port, answering.
start_daemon() {
        start_local_daemon "$hosts" api.example.com 10.53.0.1 --negative-ttl=7 "$@"
}

stop_daemon() {
        kill -TERM "$daemon_pid"
        local rc=0
        wait_pid_timeout "$daemon_pid" 2 || rc=$?
        daemon_pid=
        return "$rc"
}

# q [dig options]: dig against the daemon; never ends the script on its own,
# the checks on its output do.
q() {
        dig @127.0.0.1 -p "$port" +tries=1 +time=2 "$@" 2>&1 || true
}
# values NAME TYPE [options]: sorted answer values on one line.
values() {
        local name=$1 type=$2
        shift 2
        q +short "$name" "$type" "$@" | sort -V | tr '\n' ' ' | sed 's/ $//'
}
status_of() {
        q +noall +comments "$@" | sed -n 's/.*status: \([A-Z]*\).*/\1/p'
}

start_daemon

for transport in +notcp +tcp; do
        t=${transport#+}
        expect "A over $t" "10.53.0.1" "$(values api.example.com A $transport)"
        expect "AAAA over $t" "fd53::1" "$(values api.example.com AAAA $transport)"
        expect "second name of a line over $t" "10.53.0.1" "$(values www.example.com A $transport)"
        expect "A records of one name from two files over $t" "10.53.0.21 10.53.0.22" \
                "$(values both.example.com A $transport)"
done

out=$(q +norecurse +noall +comments api.example.com A)
expect_match "authoritative answer without recursion: flags qr aa" ';; flags: qr aa;' "$out"
out=$(q +noall +comments api.example.com A)
expect_match "recursion desired is echoed, RA is never set" ';; flags: qr aa rd;' "$out"

expect "PTR of 10.53.0.1 names both hosts of its line" "api.example.com. www.example.com." \
        "$(q +short -x 10.53.0.1 | sort | tr '\n' ' ' | sed 's/ $//')"
expect "PTR of fd53::1" "api.example.com." "$(q +short -x fd53::1)"

out=$(q +noall +comments +authority nosuch.example.com A)
expect_match "unknown name is NXDOMAIN" 'status: NXDOMAIN' "$out"
expect_match "NXDOMAIN carries an SOA with the negative TTL (7)" $'^[^;].*\t7\tIN\tSOA\t' "$out"

out=$(q +noall +comments +authority v4only.example.com AAAA)
expect_match "AAAA of an IPv4-only name is NOERROR" 'status: NOERROR' "$out"
expect_match "... with no answer (NODATA)" 'ANSWER: 0,' "$out"
expect_match "... and an SOA in authority" $'\tIN\tSOA\t' "$out"

out=$(q +noall +question +answer ApI.ExAmPlE.cOm A)
expect_match "mixed-case query is answered" $'\tA\t10\\.53\\.0\\.1$' "$out"
expect_match "... and its question keeps the case it was asked in" '^;ApI\.ExAmPlE\.cOm\.' "$out"

out=$(q +bufsize=1232 +noall +comments api.example.com A)
expect_match "EDNS query gets an OPT record" 'OPT PSEUDOSECTION' "$out"
expect_match "... advertising udp: 1232" 'EDNS: version: 0, flags:; udp: 1232$' "$out"
out=$(q +bufsize=4096 +noall +comments api.example.com A)
expect_match "a client offering 4096 still sees our 1232" 'udp: 1232$' "$out"
out=$(q +noedns +noall +comments api.example.com A)
if grep -q 'OPT PSEUDOSECTION' <<<"$out"; then
        fail "a query without EDNS got an OPT record back"
fi
ok "a query without EDNS gets no OPT record"
out=$(q +dnssec +noall +comments api.example.com A)
expect_match "the DO bit of a query is copied into our OPT" 'EDNS: version: 0, flags: do; udp: 1232$' "$out"
out=$(q +header-only +noall +comments)
expect_match "a query without a question is a FORMERR" 'status: FORMERR' "$out"
expect_match "... and carries an OPT when the query did" 'EDNS: version: 0, flags:; udp: 1232$' "$out"
out=$(q +opcode=status +noall +comments api.example.com A)
expect_match "opcode STATUS is NOTIMP" 'opcode: STATUS, status: NOTIMP' "$out"
expect_match "... without the QUERY-only RD copied" ';; flags: qr;' "$out"
expect_match "... and with an OPT" 'EDNS: version: 0, flags:; udp: 1232$' "$out"
out=$(q -c ANY +noall +comments +answer api.example.com A)
expect_match "QCLASS ANY is answered" $'\tIN\tA\t10\\.53\\.0\\.1$' "$out"
expect_match "... without AA (RFC 1034 3.7.1)" ';; flags: qr rd;' "$out"

out=$(q +ignore +noedns +noall +comments many.example.com A)
expect_match "60 A records over plain UDP set TC" ';; flags: qr aa[a-z ]* tc' "$out"
out=$(q +noedns many.example.com A)
expect_match "dig retries the truncated answer over TCP" 'Truncated, retrying in TCP mode' "$out"
expect_match "... and gets all 60 records" 'ANSWER: 60,' "$out"
expect "... each of them" "60" "$(q +noedns +short many.example.com A | sort -u | grep -c '^10\.54\.0\.')"
expect "60 A records with EDNS (1232 bytes) fit over UDP" "60" \
        "$(q +bufsize=1232 +ignore +short many.example.com A | grep -c '^10\.54\.0\.')"

out=$(q +tcp +keepopen +short api.example.com A api.example.com AAAA www.example.com A v4only.example.com A)
expect "several queries on one kept-open TCP connection" "10.53.0.1 fd53::1 10.53.0.1 10.53.0.30" \
        "$(tr '\n' ' ' <<<"$out" | sed 's/ $//')"

# Pipelining: all queries written before any reply is read, in one write.
out=$(
        python3 - "$port" <<'PY'
import socket, struct, sys
def query(qid, name, qtype):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    q += struct.pack(">HH", qtype, 1)
    return struct.pack(">H", len(q)) + q
def read_exact(s, n):
    d = b""
    while len(d) < n:
        c = s.recv(n - len(d))
        if not c:
            raise SystemExit("connection closed after %d bytes" % len(d))
        d += c
    return d
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
names = [("api.example.com", 1), ("api.example.com", 28), ("both.example.com", 1), ("nosuch.example.com", 1)]
s.sendall(b"".join(query(100 + i, n, t) for i, (n, t) in enumerate(names)))
for i in range(len(names)):
    (n,) = struct.unpack(">H", read_exact(s, 2))
    r = read_exact(s, n)
    qid, flags, _, an = struct.unpack(">HHHH", r[:8])
    print(qid, flags & 0xf, an)
PY
)
expect "pipelined TCP queries answered in order (id, rcode, answers)" \
        "100 0 1 101 0 1 102 0 2 103 3 0" "$(tr '\n' ' ' <<<"$out" | sed 's/ $//')"

# Malformed input must not hurt: garbage, a short packet, a question cut in
# half, a response instead of a query, a name compression loop, and over TCP
# a zero length prefix.
python3 - "$port" <<'PY'
import os, socket, struct, sys
port = int(sys.argv[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
packets = [
    b"\x00",
    b"\x12\x34\x01",
    os.urandom(400),
    struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x07exam",
    struct.pack(">HHHHHH", 2, 0x8100, 1, 0, 0, 0) + b"\x03api\x07example\x03com\x00\x00\x01\x00\x01",
    struct.pack(">HHHHHH", 3, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",
    struct.pack(">HHHHHH", 4, 0x0100, 65535, 65535, 65535, 65535),
]
for p in packets:
    u.sendto(p, ("127.0.0.1", port))
t = socket.create_connection(("127.0.0.1", port), timeout=2)
t.sendall(b"\x00\x00")
try:
    t.recv(1)
except OSError:
    pass
t = socket.create_connection(("127.0.0.1", port), timeout=2)
t.sendall(b"\x00\x05hello")
try:
    t.recv(1)
except OSError:
    pass
PY
kill -0 "$daemon_pid" 2>/dev/null || fail "the daemon died on malformed packets"
expect "malformed packets do not stop the daemon (dig still answered)" "10.53.0.1" "$(values api.example.com A)"

# A TCP client that connects and sends nothing holds its connection while
# others are answered over UDP and TCP.
exec 7<>"/dev/tcp/127.0.0.1/$port"
expect "answered over UDP while a silent TCP client is connected" "10.53.0.1" "$(values api.example.com A)"
expect "answered over TCP while a silent TCP client is connected" "10.53.0.1" "$(values api.example.com A +tcp)"
exec 7>&-

rc=0
stop_daemon || rc=$?
[ "$rc" -ne 124 ] || fail "joyrided still running 2 s after SIGTERM"
expect "SIGTERM: exit status 0 within 2 s" 0 "$rc"

start_daemon --domains=example.com
expect "with --domains=example.com, other.test is REFUSED" "REFUSED" "$(status_of other.test A)"
expect "... and names under example.com are answered" "10.53.0.1" "$(values api.example.com A)"
expect "... also over TCP" "REFUSED" "$(status_of other.test A +tcp)"
rc=0
stop_daemon || rc=$?
expect "SIGTERM after the restart: exit status 0" 0 "$rc"

# Bound to all addresses, replies must leave from the address each query was
# sent to, or clients drop them ("reply from unexpected source"). Only in a
# private network namespace: there "all addresses" is loopback only.
if unshare -rn true 2>/dev/null && command -v ip >/dev/null; then
        out=$(
                unshare -rn bash -s "$daemon" "$hosts" "$tmp" "$build/tools/sd-launch" 2>&1 <<'NS' || true
set -u
daemon=$1 hosts=$2 tmp=$3 launch=$4
ip link set lo up
ip addr add fd00:53::53/128 dev lo
ip addr add 10.99.0.53/32 dev lo
port=5300
"$daemon" --dns-port=$port --hosts-directory="$hosts" --state-directory="$tmp/state" \
        --no-docker --no-http --bus=none --no-cluster 2>"$tmp/daemon-ns.log" &
pid=$!
for i in $(seq 1 100); do
        [ "$(dig @127.0.0.1 -p $port +short +tries=1 +time=1 api.example.com A 2>/dev/null)" = 10.53.0.1 ] && break
        sleep 0.05
done
for server in 127.0.0.1 127.0.0.2 10.99.0.53 ::1 fd00:53::53; do
        echo "$server: $(dig @$server -p $port +tries=1 +time=2 +short api.example.com A 2>&1 | tr '\n' ' ')"
done
echo "tcp: $(dig @fd00:53::53 -p $port +tcp +tries=1 +time=2 +short api.example.com A 2>&1)"
grep -o 'DNS on [^,]*, [^,]*' "$tmp/daemon-ns.log" || true
kill $pid
wait $pid

# serve CASE CHECK_ADDRESS COMMAND...: runs a daemon (debug log in
# $tmp/ns-CASE.log) until it answers at CHECK_ADDRESS, then asks each
# address of $servers, one line "CASE SERVER: ANSWER" each; then its log
# lines about packet info, and stops it.
serve() {
        local case=$1 check=$2 i
        shift 2
        "$@" --hosts-directory="$hosts" --state-directory="$tmp/state" --no-docker --no-http --bus=none \
                --no-cluster --log-level=debug 2>"$tmp/ns-$case.log" &
        pid=$!
        for i in $(seq 1 100); do
                [ "$(dig @$check -p $port +short +tries=1 +time=1 api.example.com A 2>/dev/null)" = 10.53.0.1 ] && break
                sleep 0.05
        done
        for server in $servers; do
                echo "$case $server: $(dig @$server -p $port +tries=1 +time=2 +short api.example.com A 2>&1 | tr '\n' ' ')"
        done
        sed -n "s/^.*DNS UDP socket [^ ]*: /$case socket: /p" "$tmp/ns-$case.log"
        kill $pid
        wait $pid
}
servers="10.99.0.53" serve v4-one 10.99.0.53 "$daemon" --dns-port=$port --dns-bind-address=10.99.0.53
servers="fd00:53::53" serve v6-one fd00:53::53 "$daemon" --dns-port=$port --dns-bind-address=fd00:53::53
servers="127.0.0.1 127.0.0.2 10.99.0.53" serve v4-all 127.0.0.1 "$daemon" --dns-port=$port --dns-bind-address=0.0.0.0
servers="::1 fd00:53::53 10.99.0.53" serve activated-all ::1 "$launch" --udp "[::]:$port" --tcp "[::]:$port" -- \
        "$daemon" --dns-port=1
servers="fd00:53::53" serve activated-one fd00:53::53 "$launch" --udp "[fd00:53::53]:$port" \
        --tcp "[fd00:53::53]:$port" -- "$daemon" --dns-port=1
NS
        )
        for server in 127.0.0.1 127.0.0.2 10.99.0.53 ::1 fd00:53::53; do
                expect_match "bound to all addresses: a query to $server is answered from $server" \
                        "^$server: 10\\.53\\.0\\.1 \$" "$out"
        done
        expect_match "... and over TCP" '^tcp: 10\.53\.0\.1$' "$out"
        expect_match "... on one IPv6 socket that also takes IPv4" 'DNS on udp \[::\]:5300, tcp \[::\]:5300' "$out"
        for c in "v4-one 10.99.0.53" "v6-one fd00:53::53" "v4-all 127.0.0.1" "v4-all 127.0.0.2" \
                "v4-all 10.99.0.53" "activated-all ::1" "activated-all fd00:53::53" "activated-all 10.99.0.53" \
                "activated-one fd00:53::53"; do
                read -r c_case c_server <<<"$c"
                expect_match "$c_case: a query to $c_server is answered (from $c_server)" \
                        "^$c_case $c_server: 10\\.53\\.0\\.1 \$" "$out"
        done
        for c in v4-all activated-all; do
                expect_match "$c: replies from each query's destination address (packet info)" \
                        "^$c socket: bound to all addresses, replies leave from the address each query" "$out"
        done
        for c in v4-one v6-one activated-one; do
                expect_match "$c: bound to one address, no packet info asked for" \
                        "^$c socket: bound to one address, replies leave from it" "$out"
        done
else
        ok "# SKIP all-addresses check: cannot create a private network namespace"
fi
