#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Socket activation: tools/sd-launch binds the DNS sockets and passes them to
# joyrided as systemd would (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID). The
# daemon must answer on exactly those sockets and bind nothing itself: its
# own --dns-port is held by another process here, so a bind would fail. The
# fds are passed named in order, named in reverse order, and without names
# (matched by socket type). A query sent before the daemon runs waits in the
# socket and is answered.
set -euo pipefail
build=$(cd "$1" && pwd)
daemon="$build/src/joyrided"
launch="$build/tools/sd-launch"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

setup_tmp

[ -x "$launch" ] || fail "$launch not built"

hosts="$tmp/hosts.d"
log="$tmp/daemon.log"
mkdir -p "$hosts" "$tmp/state"
cat >"$hosts/main.hosts" <<'EOF'
10.66.0.1   activated.example.com
EOF

# Another process of ours holds UDP and TCP on the port the daemon is told to
# use: if the daemon tried to bind instead of using the passed fds, it
# would fail with "Address already in use".
occupied=$(free_port)
python3 - "$occupied" "$tmp/holder.ready" <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", port))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.bind(("127.0.0.1", port)); t.listen(1)
open(sys.argv[2], "w").close()
time.sleep(3600)
PY
holder_pid=$!
wait_for "the port holder" 5 test -e "$tmp/holder.ready"

answer() {
        local name=$1
        shift
        { dig @127.0.0.1 -p "$port" +short +tries=1 +time=2 "$name" A "$@" 2>&1 || true; } | tr '\n' ' ' | sed 's/ $//'
}

# launch CASE [sd-launch socket options...]: starts the daemon under sd-launch
# (sockets on $port) and waits until it answers.
launch() {
        local what=$1
        shift
        : >"$log"
        "$launch" "$@" -- "$daemon" --dns-bind-address=127.0.0.1 --dns-port="$occupied" \
                --hosts-directory="$hosts" --state-directory="$tmp/state" \
                --no-docker --no-http --bus=none --no-cluster 2>"$log" &
        daemon_pid=$!
        local deadline=$(($(date +%s%N) + 5000000000))
        while [ "$(answer activated.example.com)" != 10.66.0.1 ]; do
                kill -0 "$daemon_pid" 2>/dev/null || fail "$what: joyrided exited: $(tail -n 3 "$log")"
                [ "$(date +%s%N)" -lt "$deadline" ] || fail "$what: joyrided did not answer within 5 s"
                sleep 0.05
        done
}

stop() {
        kill -TERM "$daemon_pid"
        local rc=0
        wait_pid_timeout "$daemon_pid" 2 || rc=$?
        daemon_pid=
        [ "$rc" -eq 0 ] || fail "$1: joyrided exited with $rc after SIGTERM (124: still running)"
}

# The sockets the daemon holds, as "fd:inode" for fds 3 and up.
daemon_sockets() {
        local fd target
        for fd in /proc/"$daemon_pid"/fd/*; do
                target=$(readlink "$fd" 2>/dev/null) || continue
                case "$target" in
                        socket:*) echo "${fd##*/}:${target#socket:}" ;;
                esac
        done | sort -n | tr '\n' ' ' | sed 's/ $//'
}

check_case() {
        local what=$1 udp_fd=$2 tcp_fd=$3
        shift 3
        port=$(free_port)
        local spec=("$@")
        spec=("${spec[@]//PORT/$port}")
        launch "$what" "${spec[@]}"

        expect_udp=$(answer activated.example.com)
        [ "$expect_udp" = 10.66.0.1 ] || fail "$what: UDP answer '$expect_udp'"
        ok "$what: answered over UDP"
        out=$(answer activated.example.com +tcp)
        [ "$out" = 10.66.0.1 ] || fail "$what: TCP answer '$out'"
        ok "$what: answered over TCP"

        grep -q "DNS on udp 127.0.0.1:$port, tcp 127.0.0.1:$port" "$log" ||
                fail "$what: the start line does not name the passed sockets: $(grep -o 'DNS on [^,]*, [^,]*' "$log")"
        ok "$what: described as udp 127.0.0.1:$port, tcp 127.0.0.1:$port"

        # Exactly the two passed sockets, each at the fd it was passed on,
        # and nothing bound on the port the daemon was told to use.
        local socks
        socks=$(daemon_sockets)
        [ "$(wc -w <<<"$socks")" -eq 2 ] || fail "$what: expected 2 sockets in the daemon, found: $socks"
        out=$(ss -Hlunp "sport = :$port")
        grep -q "pid=$daemon_pid,fd=$udp_fd)" <<<"$out" || fail "$what: UDP socket not on fd $udp_fd: $out"
        out=$(ss -Hltnp "sport = :$port")
        grep -q "pid=$daemon_pid,fd=$tcp_fd)" <<<"$out" || fail "$what: TCP socket not on fd $tcp_fd: $out"
        out=$(ss -Hlntup "sport = :$occupied")
        if grep -q "pid=$daemon_pid," <<<"$out"; then
                fail "$what: the daemon bound its own --dns-port $occupied: $out"
        fi
        ok "$what: the daemon holds only the passed sockets (UDP on fd $udp_fd, TCP on fd $tcp_fd)"

        kill -0 "$holder_pid" 2>/dev/null || fail "the port holder died"
        stop "$what"
        ok "$what: SIGTERM exits 0"
}

check_case "named, UDP first" 3 4 --udp 127.0.0.1:PORT=dns-udp --tcp 127.0.0.1:PORT=dns-tcp
check_case "named, TCP first" 4 3 --tcp 127.0.0.1:PORT=dns-tcp --udp 127.0.0.1:PORT=dns-udp
check_case "unnamed, TCP first (matched by type)" 4 3 --tcp 127.0.0.1:PORT --udp 127.0.0.1:PORT

# Queries sent before the daemon runs: the sockets exist from the start.
# The daemon is exec'd one second late (the shell's exec keeps the pid, so
# LISTEN_PID still matches), and each dig sends exactly once.
port=$(free_port)
: >"$log"
"$launch" --udp 127.0.0.1:"$port"=dns-udp --tcp 127.0.0.1:"$port"=dns-tcp -- \
        sh -c 'sleep 1; exec "$@"' sh "$daemon" --dns-bind-address=127.0.0.1 --dns-port="$occupied" \
        --hosts-directory="$hosts" --state-directory="$tmp/state" \
        --no-docker --no-http --bus=none --no-cluster 2>"$log" &
daemon_pid=$!
sleep 0.2
start=$(date +%s%N)
dig @127.0.0.1 -p "$port" +short +tries=1 +time=4 activated.example.com A >"$tmp/early-udp" 2>&1 &
udp_dig=$!
dig @127.0.0.1 -p "$port" +tcp +short +tries=1 +time=4 activated.example.com A >"$tmp/early-tcp" 2>&1 &
tcp_dig=$!
wait "$udp_dig" || true
wait "$tcp_dig" || true
took=$((($(date +%s%N) - start) / 1000000))
[ "$(cat "$tmp/early-udp")" = 10.66.0.1 ] || fail "a UDP query sent before the daemon ran got: $(cat "$tmp/early-udp")"
ok "a UDP query sent before the daemon ran is answered (single try)"
[ "$(cat "$tmp/early-tcp")" = 10.66.0.1 ] || fail "a TCP query sent before the daemon ran got: $(cat "$tmp/early-tcp")"
ok "a TCP query sent before the daemon ran is answered"
[ "$took" -ge 500 ] || fail "the early queries were answered after $took ms: the daemon was not late, the check proves nothing"
ok "... they waited ${took} ms for the daemon"
stop "late start"
ok "late start: SIGTERM exits 0"
