#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Answering threads as an operator sees them: Threads=3 gives three threads
# named dns-0..dns-2; queries spread over their sockets are all counted in
# /metrics and /status (the threads' counters summed); a reload publishes
# the new answer configuration to every thread; a frozen answering thread
# stops the watchdog pings (and they resume when it thaws); SIGTERM while a
# TCP client still waits for answers to pipelined queries: it gets them all,
# and the daemon exits 0.
set -euo pipefail
build=$(cd "$1" && pwd)
daemon="$build/src/joyrided"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

setup_tmp
notify_pid=
trap '_lib_cleanup_threads' EXIT
_lib_cleanup_threads() {
        local rc=$?
        [ -z "$notify_pid" ] || {
                kill "$notify_pid" 2>/dev/null || true
                wait "$notify_pid" 2>/dev/null || true
        }
        (exit $rc)
        _lib_cleanup
}

mkdir -p "$tmp/hosts" "$tmp/state"
echo "10.77.0.1 one.threads.test" >"$tmp/hosts/a.hosts"
echo "10.77.0.2 other.example.org" >>"$tmp/hosts/a.hosts"
for i in $(seq 1 60); do echo "10.78.0.$i many.threads.test"; done >"$tmp/hosts/many.hosts"
printf '[DNS]\nThreads=3\n' >"$tmp/joyride.conf"

notify_listen "$tmp/notify.sock" "$tmp/notify.log"

# The config file asks for 3 threads; the environment must not override it.
unset DNS_THREADS
port=$(free_port)
http_port=$(free_port)
JOYRIDE_CONFIG="$tmp/joyride.conf" NOTIFY_SOCKET="$tmp/notify.sock" WATCHDOG_USEC=1000000 \
        "$daemon" --dns-bind-address=127.0.0.1 --dns-port="$port" --hosts-directory="$tmp/hosts" \
        --state-directory="$tmp/state" --http-host=127.0.0.1 --http-port="$http_port" \
        --no-docker --bus=none --no-cluster 2>"$tmp/daemon.log" &
daemon_pid=$!
wait_for "the daemon to answer" 5 bash -c "[ \"\$(dig @127.0.0.1 -p $port +short +tries=1 +time=1 one.threads.test)\" = 10.77.0.1 ]"
wait_for "the HTTP API" 5 curl -sf "http://127.0.0.1:$http_port/status"

threads=$(cat /proc/"$daemon_pid"/task/*/comm | grep -c '^dns-' || true)
[ "$threads" = 3 ] || fail "expected 3 threads named dns-N, found $threads: $(cat /proc/"$daemon_pid"/task/*/comm | tr '\n' ' ')"
grep -q '(3 threads)' "$tmp/daemon.log" || fail "the start line does not say 3 threads"
ok "Threads=3: three answering threads, dns-0 to dns-2"

# The answering threads ask for the shortest time slice, so that a woken one
# does not wait for the loop's or a worker's slice to end (EEVDF, Linux 6.12+,
# which shows se.slice in /proc/PID/task/TID/sched).
if grep -q '^se.slice' /proc/self/sched 2>/dev/null; then
        slices=$(for t in /proc/"$daemon_pid"/task/*; do
                printf '%s %s\n' "$(cat "$t/comm")" "$(awk '$1 == "se.slice" { print $3 }' "$t/sched")"
        done)
        [ "$(grep -c '^dns-[0-9]* 100000$' <<<"$slices")" = 3 ] ||
                fail "the answering threads do not run with a 0.1 ms slice: $(tr '\n' ',' <<<"$slices")"
        grep -q '^joyrided 100000$' <<<"$slices" && fail "the control loop asked for the answering threads' slice"
        ok "answering threads with a 0.1 ms time slice: $(grep '^dns-' <<<"$slices" | tr '\n' ',')"
else
        echo "# this kernel shows no se.slice: the time slice check is left out"
fi

# 300 UDP queries, each from its own socket (so SO_REUSEPORT spreads them
# over the threads), and 20 over one TCP connection.
python3 - "$port" <<'PY' || fail "queries over UDP and TCP were not all answered"
import socket, struct, sys
port = int(sys.argv[1])
def query(qid, name):
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)
for i in range(300):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(query(i, "one.threads.test"), ("127.0.0.1", port))
    reply = s.recv(4096)
    assert reply[:2] == struct.pack(">H", i) and reply[3] & 0xf == 0, reply
    s.close()
t = socket.create_connection(("127.0.0.1", port), timeout=5)
for i in range(20):
    q = query(1000 + i, "one.threads.test")
    t.sendall(struct.pack(">H", len(q)) + q)
got, buf = 0, b""
while got < 20:
    buf += t.recv(65536)
    while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
        buf = buf[2 + struct.unpack(">H", buf[:2])[0]:]
        got += 1
t.close()
PY
metrics=$(curl -sf --max-time 5 "http://127.0.0.1:$http_port/metrics")
udp=$(sed -n 's/^joyride_dns_transport_queries_total{transport="udp"} //p' <<<"$metrics")
tcp=$(sed -n 's/^joyride_dns_transport_queries_total{transport="tcp"} //p' <<<"$metrics")
# start_local_daemon's probe asked once over UDP, maybe more.
[ "$tcp" = 20 ] && [ "$udp" -ge 301 ] && [ "$udp" -le 340 ] ||
        fail "/metrics counts udp=$udp tcp=$tcp, expected 301+ and 20"
status_udp=$(curl -sf --max-time 5 "http://127.0.0.1:$http_port/status" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["dns_server"]["queries_udp"])')
[ "$status_udp" = "$udp" ] || fail "/status says $status_udp UDP queries, /metrics $udp"
ok "queries on every thread counted: /metrics and /status agree (udp $udp, tcp $tcp)"

# A reload reaches every thread: with Domains= only threads.test answers.
printf '[DNS]\nThreads=3\nDomains=threads.test\n' >"$tmp/joyride.conf"
kill -HUP "$daemon_pid"
refused() {
        for i in $(seq 1 20); do
                dig @127.0.0.1 -p "$port" +tries=1 +time=1 other.example.org A | grep -q 'status: REFUSED' || return 1
        done
}
wait_for "REFUSED for names outside Domains= on every thread" 5 refused
[ "$(dig_short "$port" one.threads.test)" = 10.77.0.1 ] || fail "threads.test no longer answers after the reload"
ok "SIGHUP: the new Domains= applies on every thread"

# The watchdog: stop one answering thread (ptrace stops just that thread)
# and the pings to the service manager stop; let it go and they resume.
grep -q 'WATCHDOG=1' "$tmp/notify.log" || fail "no watchdog ping with WATCHDOG_USEC set"
tid=$(grep -l '^dns-1$' /proc/"$daemon_pid"/task/*/comm | sed 's|.*/task/\([0-9]*\)/comm|\1|')
python3 - "$tid" "$tmp/frozen" "$tmp/thaw" <<'PY' &
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH = 0x4206, 0x4207, 17
tid = int(sys.argv[1])
if libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0 or libc.ptrace(PTRACE_INTERRUPT, tid, None, None) != 0:
    open(sys.argv[2], "w").write("unsupported %d\n" % ctypes.get_errno())
    sys.exit(0)
os.waitpid(tid, 0x40000000)     # __WALL: the thread is stopped now
open(sys.argv[2], "w").write("frozen\n")
while not os.path.exists(sys.argv[3]) and os.path.isdir(os.path.dirname(sys.argv[3])):
    time.sleep(0.05)
libc.ptrace(PTRACE_DETACH, tid, None, None)
PY
holder_pid=$!
wait_for "thread dns-1 frozen" 5 test -s "$tmp/frozen"
if grep -q unsupported "$tmp/frozen"; then
        echo "# skipping the watchdog check: ptrace is not allowed here ($(cat "$tmp/frozen"))"
        touch "$tmp/thaw"
else
        wait_for "the wedged thread reported" 5 grep -q 'DNS answering thread 1 has not responded' "$tmp/daemon.log"
        before=$(grep -c 'WATCHDOG=1' "$tmp/notify.log")
        sleep 1.5
        after=$(grep -c 'WATCHDOG=1' "$tmp/notify.log")
        [ "$before" = "$after" ] || fail "watchdog pings went on ($before, then $after) with a thread wedged"
        ok "a wedged answering thread stops the watchdog pings"
        touch "$tmp/thaw"
        wait_for "the thread recovered" 5 grep -q 'DNS answering thread 1 responds again' "$tmp/daemon.log"
        wait_for "watchdog pings again" 5 bash -c "[ \$(grep -c 'WATCHDOG=1' '$tmp/notify.log') -gt $after ]"
        ok "pings resume when the thread answers again"
fi
wait "$holder_pid" 2>/dev/null || true
holder_pid=

# SIGTERM while a client waits: 300 pipelined queries with large answers
# over TCP, read slowly; the daemon is told to stop right after they are
# sent. Every answer still arrives, then the connection closes, and the
# daemon exits 0.
python3 - "$port" "$tmp/sent" "$tmp/answers" <<'PY' &
import socket, struct, sys, time
port, sent, answers = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def query(qid, name):
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
t.connect(("127.0.0.1", port))
# All at once: pipelined, they reach the server before it is told to stop.
data = b""
for i in range(300):
    q = query(i, "many.threads.test")
    data += struct.pack(">H", len(q)) + q
t.sendall(data)
open(sent, "w").write("sent\n")
time.sleep(0.3)
t.settimeout(5)
got, buf = 0, b""
while True:
    data = t.recv(4096)
    if not data:
        break
    buf += data
    while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
        n = struct.unpack(">H", buf[:2])[0]
        assert struct.unpack(">H", buf[8:10])[0] == 60, "an answer without its 60 addresses"
        buf = buf[2 + n:]
        got += 1
    time.sleep(0.001)
open(answers, "w").write("%d\n" % got)
PY
holder_pid=$!
wait_for "queries sent" 5 test -s "$tmp/sent"
kill -TERM "$daemon_pid"
rc=0
wait_pid_timeout "$daemon_pid" 5 || rc=$?
daemon_pid=
[ "$rc" = 0 ] || fail "joyrided exited with $rc after SIGTERM"
wait "$holder_pid" || fail "the TCP client failed"
holder_pid=
[ "$(cat "$tmp/answers")" = 300 ] || fail "the client got $(cat "$tmp/answers") of 300 answers"
ok "SIGTERM: all 300 answers in flight sent, exit 0"
