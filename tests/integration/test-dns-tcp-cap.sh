#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The TCP connection cap under a flood: 256 connections (the default cap,
# all of it) that each send 4 bytes of a query and then nothing must not lock
# other TCP clients out. At the cap the connection that made the least
# progress goes (the fewest queries answered, then the least recently
# active), so a real client gets in, and a client that is being served keeps
# its connection while the flood churns. The cap still holds: the daemon
# never has more than 256 (+1 while one is being replaced) connections open.
set -euo pipefail
build=$(cd "$1" && pwd)
daemon="$build/src/joyrided"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

setup_tmp
trap 'cleanup_flood' EXIT
cleanup_flood() {
        local rc=$? pid
        for pid in $flood_pids; do
                kill "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        done
        (exit $rc)
        _lib_cleanup
}
mkdir -p "$tmp/hosts" "$tmp/state"
echo "10.88.0.1 real.cap.test" >"$tmp/hosts/a.hosts"
start_local_daemon "$tmp/hosts" real.cap.test 10.88.0.1

# flood NAME N: N connections in the background, each with the first 4
# bytes of a 29-byte query, held open until stop-flood appears; NAME-ready
# once they are all open.
flood_pids=
flood() {
        python3 - "$port" "$2" "$tmp/$1-ready" "$tmp/stop-flood" <<'PY' &
import os, socket, sys, time
port, n, ready, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
held = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(b"\x00\x1d\x12\x34")      # length 29, then the ID: and no more
    except OSError:
        pass                                   # already given way to a newer one
    held.append(s)
open(ready, "w").write("%d\n" % len(held))
while not os.path.exists(stop) and os.path.isdir(os.path.dirname(stop)):
    time.sleep(0.05)
PY
        flood_pids+=" $!"
}

# tcp_clients_get_in WHAT: five TCP clients in a row, each answered, while
# WHAT (the flood) holds the connections.
tcp_clients_get_in() {
        local i got
        for i in 1 2 3 4 5; do
                got=$(dig @127.0.0.1 -p "$port" +tcp +tries=1 +time=2 +short real.cap.test A 2>&1 || true)
                [ "$got" = 10.88.0.1 ] || fail "a TCP client was locked out by $1 (try $i: '$got')"
        done
}

flood first 256
wait_for "256 connections holding a partial query" 20 test -s "$tmp/first-ready"

tcp_clients_get_in "256 stalled connections"
ok "256 connections with 4 bytes each do not lock out TCP clients"

# A client being served: one connection, a query answered. Then another
# 400 stalled connections: each takes the place of an older stalled one (in
# time, of all of them: the client is the oldest left), and the served
# client keeps its connection throughout.
python3 - "$port" "$tmp/served-ready" "$tmp/served-check" "$tmp/served-result" <<'PY' &
import os, socket, struct, sys, time
port, ready, check, result = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def ask(s, qid):
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + b"\x04real\x03cap\x04test\x00" + struct.pack(">HH", 1, 1)
    s.sendall(struct.pack(">H", len(q)) + q)
    n = struct.unpack(">H", s.recv(2))[0]
    reply = b""
    while len(reply) < n:
        reply += s.recv(n - len(reply))
    return reply[:2] == struct.pack(">H", qid)
s = socket.create_connection(("127.0.0.1", port), timeout=5)
ok = ask(s, 1)
open(ready, "w").write("ok\n" if ok else "no\n")
while not os.path.exists(check):
    if not os.path.isdir(os.path.dirname(check)):
        sys.exit(1)
    time.sleep(0.05)
try:
    ok = ask(s, 2)
except Exception:
    ok = False
open(result, "w").write("kept\n" if ok else "lost\n")
PY
holder_pid=$!
wait_for "the served client's first answer" 5 test -s "$tmp/served-ready"
[ "$(cat "$tmp/served-ready")" = ok ] || fail "the served client got no answer"
flood second 400
wait_for "400 more connections" 30 test -s "$tmp/second-ready"

tcp_clients_get_in "the stalled connections"
touch "$tmp/served-check"
wait_for "the served client's second query" 5 test -s "$tmp/served-result"
[ "$(cat "$tmp/served-result")" = kept ] || fail "a client being served lost its connection to the flood"
wait "$holder_pid" 2>/dev/null || true
holder_pid=
ok "a client being served keeps its connection"

open=$(ss -Htn state established "( sport = :$port )" | wc -l)
[ "$open" -le 257 ] || fail "the daemon holds $open TCP connections, above the cap of 256"
ok "the cap holds ($open connections open)"

touch "$tmp/stop-flood"
for pid in $flood_pids; do wait "$pid" || true; done
flood_pids=
