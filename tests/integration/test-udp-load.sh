#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/udp-load.c, the load generator of bench/dns-bench.sh's capacity case:
# against joyrided it counts the replies by rcode in the file's mix with none
# lost; a reply to another question or with an ID not in flight is not
# counted as an answer (a fake server sends both); it refuses addresses off
# loopback and says what is wrong with a bad query file.
set -euo pipefail
build=$(cd "$1" && pwd)
daemon="$build/src/joyrided"
loadgen="$build/bench/udp-load"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

[ -x "$loadgen" ] || fail "$loadgen not built"
# The refusal checks run in a network namespace of their own (below).
if ! unshare --net true 2>/dev/null; then
        echo "SKIP: cannot create a network namespace (unshare --net needs root)"
        exit 77
fi
setup_tmp
mkdir -p "$tmp/hosts" "$tmp/state"
for i in 1 2 3 4 5 6 7 8 9; do
        echo "10.77.0.$i host$i.load.test"
done >"$tmp/hosts/a.hosts"
# 9 present names and 1 absent one, so 90% NOERROR and 10% NXDOMAIN.
{
        echo "; a comment"
        for i in 1 2 3 4 5 6 7 8 9; do echo "host$i.load.test A"; done
        echo ""
        echo "absent.load.test. A"
} >"$tmp/queries.txt"
start_local_daemon "$tmp/hosts" host1.load.test 10.77.0.1 --dns-threads=1

# field JSON KEY: a number from udp-load's JSON line (rcodes by their name).
field() {
        python3 -c 'import json, sys
j = json.loads(sys.argv[1]); k = sys.argv[2]
print(j["rcodes"][k] if k in j["rcodes"] else j[k])' "$1" "$2"
}

out=$("$loadgen" -p "$port" -d "$tmp/queries.txt" -l 1 -w 16 -b 8)
echo "$out"
completed=$(field "$out" completed)
[ "$completed" -gt 1000 ] || fail "only $completed replies in 1 s"
[ "$(field "$out" lost)" = 0 ] || fail "queries lost against joyrided"
[ "$(field "$out" mismatched)" = 0 ] || fail "replies counted as mismatched"
[ "$(field "$out" sent)" = "$completed" ] || fail "sent and completed differ with nothing lost"
nx=$(field "$out" nxdomain)
noerror=$(field "$out" noerror)
[ $((noerror + nx)) = "$completed" ] || fail "rcodes other than NOERROR and NXDOMAIN"
# The file goes round in order: exactly one in ten is absent, give or take one.
[ $((completed / 10 - nx)) -le 1 ] && [ $((nx - completed / 10)) -le 1 ] ||
        fail "NXDOMAIN $nx of $completed, expected a tenth"
ok "udp-load counts joyrided's replies: $noerror NOERROR, $nx NXDOMAIN, none lost"

# Several sockets share the window.
out=$("$loadgen" -p "$port" -d "$tmp/queries.txt" -l 1 -w 30 -S 3)
[ "$(field "$out" lost)" = 0 ] && [ "$(field "$out" completed)" -gt 1000 ] && [ "$(field "$out" sockets)" = 3 ] ||
        fail "three sockets: $out"
ok "three sockets"

# Two threads with two sockets each: every query counted once.
out=$("$loadgen" -p "$port" -d "$tmp/queries.txt" -l 1 -w 32 -T 2 -S 4)
nx=$(field "$out" nxdomain)
completed=$(field "$out" completed)
[ "$(field "$out" lost)" = 0 ] && [ "$completed" -gt 1000 ] && [ "$(field "$out" threads)" = 2 ] &&
        [ "$(field "$out" sent)" = "$completed" ] && [ $((completed / 10 - nx)) -le 2 ] &&
        [ $((nx - completed / 10)) -le 2 ] || fail "two threads: $out"
ok "two threads"

# A fake server: in mode "question" its replies carry the query's ID with
# another name, in mode "id" the question asked with another ID. Neither
# may count as an answer.
fake_pid=
fake() {
        python3 - "$1" "$tmp/fake-port" <<'PY' &
import socket, sys
mode, portfile = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(portfile + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(portfile + ".tmp", portfile)
while True:
    q, peer = s.recvfrom(512)
    r = bytearray(q)
    r[2] |= 0x80
    if mode == "question":
        r[13] ^= 0x20            # the first letter of the name, other case
    else:
        r[0] ^= 0x5a             # another ID
    s.sendto(bytes(r), peer)
PY
        fake_pid=$!
        holder_pid="$fake_pid"
        wait_for "the fake server" 5 test -s "$tmp/fake-port"
}
for mode in question id; do
        rm -f "$tmp/fake-port"
        fake "$mode"
        out=$("$loadgen" -p "$(cat "$tmp/fake-port")" -d "$tmp/queries.txt" -l 1 -w 4 -t 100)
        echo "$out"
        kill "$fake_pid"
        wait "$fake_pid" 2>/dev/null || true
        holder_pid=
        [ "$(field "$out" completed)" = 0 ] || fail "fake server ($mode): replies counted as answers"
        if [ "$mode" = question ]; then
                # A wrong reply settles its query (so the run goes on at speed).
                [ "$(field "$out" mismatched)" -gt 0 ] &&
                        [ $(($(field "$out" mismatched) + $(field "$out" lost))) = "$(field "$out" sent)" ] ||
                        fail "replies to another question not counted"
        else
                # Its query stays in flight until the timeout.
                [ "$(field "$out" unexpected)" -gt 0 ] && [ "$(field "$out" lost)" = "$(field "$out" sent)" ] ||
                        fail "replies with an unknown ID not counted"
        fi
done
ok "replies to another question or with another ID are not answers"

# Loopback only: refused before any socket is opened. Tried in a network
# namespace of its own with no interface up, so that a udp-load that failed
# to refuse could not send anything off this machine either.
for addr in 10.0.0.1 192.0.2.1 2001:db8::1 ::ffff:127.0.0.1; do
        rc=0
        err=$(unshare --net "$loadgen" -s "$addr" -p "$port" -d "$tmp/queries.txt" -l 1 -t 100 2>&1 >/dev/null) || rc=$?
        [ "$rc" = 2 ] && [[ $err == *"only loopback"* ]] || fail "$addr not refused (rc $rc): $err"
done
"$loadgen" -s 127.0.0.2 -p "$port" -d "$tmp/queries.txt" -l 1 -t 100 >/dev/null ||
        fail "127.0.0.2 refused"
ok "addresses off loopback refused"

# Bad input says what is wrong.
expect_error() {
        local want=$1 rc=0 err
        shift
        err=$("$loadgen" "$@" 2>&1 >/dev/null) || rc=$?
        [ "$rc" != 0 ] && [[ $err == *"$want"* ]] || fail "udp-load $*: rc $rc, '$err' (wanted '$want')"
}
printf 'host1.load.test A\nhost2.load.test\n' >"$tmp/bad1.txt"
printf 'host1.load.test BOGUS\n' >"$tmp/bad2.txt"
printf 'a..b A\n' >"$tmp/bad3.txt"
printf '; nothing\n' >"$tmp/bad4.txt"
expect_error 'bad1.txt:2: expected "NAME TYPE"' -p "$port" -d "$tmp/bad1.txt"
expect_error 'bad2.txt:1: unknown query type "BOGUS"' -p "$port" -d "$tmp/bad2.txt"
expect_error 'bad3.txt:1: "a..b" is not a valid domain name' -p "$port" -d "$tmp/bad3.txt"
expect_error "holds no queries" -p "$port" -d "$tmp/bad4.txt"
expect_error "cannot open the query file" -p "$port" -d "$tmp/none.txt"
expect_error 'the window (-w) must be a number from 1 to 32768, not "0"' -p "$port" -d "$tmp/queries.txt" -w 0
expect_error "-p PORT and -d QUERY_FILE are required" -d "$tmp/queries.txt"
expect_error "each thread (-T 3) needs a socket of its own (-S 2)" -p "$port" -d "$tmp/queries.txt" -T 3 -S 2
expect_error '"localhost" is not an IPv4 or IPv6 address' -s localhost -p "$port" -d "$tmp/queries.txt"
ok "bad input is refused with a reason"
