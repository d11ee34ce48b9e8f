# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Shared helpers for the integration scripts (sourced, not run).

ok() { echo "ok - $*"; }
fail() {
        echo "FAIL - $*" >&2
        exit 1
}
# skip WHY: the test cannot run here; meson counts exit status 77 as skipped.
skip() {
        echo "SKIP: $*"
        exit 77
}

# need_commands COMMAND...: skips the test when one of them is not installed.
need_commands() {
        local cmd
        for cmd in "$@"; do
                command -v "$cmd" >/dev/null || skip "$cmd not installed"
        done
}

# expect WHAT EXPECTED ACTUAL: ok WHAT when they are the same, else fail.
expect() {
        [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
        ok "$1"
}

# expect_match WHAT REGEX TEXT: ok WHAT when a line of TEXT matches, else
# shows TEXT and fails.
expect_match() {
        grep -Eq -- "$2" <<<"$3" || {
                echo "$3" >&2
                fail "$1: no line matching /$2/"
        }
        ok "$1"
}

# now_ms: the clock in milliseconds, for intervals in a test.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# wait_for WHAT SECONDS COMMAND...: polls every 50 ms until COMMAND succeeds.
wait_for() {
        local what=$1 secs=$2
        shift 2
        local deadline=$(($(date +%s%N) + secs * 1000000000))
        until "$@" >/dev/null 2>&1; do
                [ "$(date +%s%N)" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for $what"
                sleep 0.05
        done
}

# A free high port for both UDP and TCP on loopback, chosen at random.
free_port() {
        python3 - <<'PY'
import random, socket
for _ in range(200):
    p = random.randint(20000, 60000)
    try:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", p))
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.bind(("127.0.0.1", p))
        u.close(); t.close()
        print(p); break
    except OSError:
        pass
PY
}

# dig_short PORT NAME [TYPE] [more dig options]: the answer values, one per line.
dig_short() {
        local port=$1
        shift
        dig @127.0.0.1 -p "$port" +short +tries=1 +time=1 "$@"
}

# wait_pid_timeout PID SECONDS: waits for a child to exit and returns its
# status; returns 124 if it is still running after SECONDS.
wait_pid_timeout() {
        local pid=$1 secs=$2
        local deadline=$(($(date +%s%N) + secs * 1000000000))
        while [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
                [ "$(date +%s%N)" -lt "$deadline" ] || return 124
                sleep 0.05
        done
        wait "$pid"
}

# setup_tmp: a temp dir in $tmp, removed at exit (also on SIGTERM/SIGINT),
# after killing every PID listed in $daemon_pid and $holder_pid; on failure
# the last lines of $tmp/daemon.log are shown first.
setup_tmp() {
        tmp=$(mktemp -d)
        daemon_pid=
        holder_pid=
        trap _lib_cleanup EXIT
        trap 'exit 143' INT TERM
}
_lib_cleanup() {
        local rc=$? pid
        if [ "$rc" -ne 0 ] && [ -s "$tmp/daemon.log" ]; then
                echo "--- last lines of the daemon's log:" >&2
                tail -n 30 "$tmp/daemon.log" >&2
        fi
        for pid in $daemon_pid $holder_pid; do
                kill "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        done
        rm -rf "$tmp"
}

# notify_listen SOCKET LOG: a NOTIFY_SOCKET for the daemon, listening in the
# background; every datagram it gets is appended to LOG as one line (its
# newlines as '|'). Sets $notify_pid (the caller stops it); returns once the
# socket exists.
notify_listen() {
        python3 - "$1" "$2" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        out.write(s.recv(4096).decode(errors="replace").replace("\n", "|") + "\n")
PY
        # shellcheck disable=SC2034 # for the caller, who stops it
        notify_pid=$!
        wait_for "notify socket" 10 test -S "$1"
}

# start_local_daemon HOSTS_DIR NAME VALUE [options]: starts $daemon on a free
# loopback port serving HOSTS_DIR, with Docker, HTTP, D-Bus and the cluster
# off, logging to $tmp/daemon.log; waits (5 s) until NAME answers VALUE.
# Retries with another port if one was taken between free_port and the bind.
# Sets $port and $daemon_pid.
start_local_daemon() {
        local hosts=$1 name=$2 value=$3 attempt deadline
        shift 3
        for attempt in 1 2 3; do
                port=$(free_port)
                # shellcheck disable=SC2154 # $daemon and $tmp are the sourcing test's
                "$daemon" --dns-bind-address=127.0.0.1 --dns-port="$port" --hosts-directory="$hosts" \
                        --state-directory="$tmp/state" --no-docker --no-http --bus=none --no-cluster \
                        "$@" 2>"$tmp/daemon.log" &
                daemon_pid=$!
                deadline=$(($(date +%s%N) + 5000000000))
                while [ "$(date +%s%N)" -lt "$deadline" ] && kill -0 "$daemon_pid" 2>/dev/null; do
                        if [ "$(dig_short "$port" "$name" 2>/dev/null)" = "$value" ]; then
                                return 0
                        fi
                        sleep 0.05
                done
                kill "$daemon_pid" 2>/dev/null || true
                wait "$daemon_pid" 2>/dev/null || true
                daemon_pid=
                echo "daemon did not answer on port $port (attempt $attempt):" >&2
                tail -n 20 "$tmp/daemon.log" >&2 || true
        done
        fail "joyrided never answered"
}

# sanitizer_build BINARY: whether BINARY is built with ASan or TSan, whose
# allocators keep freed memory (quarantine), so memory figures mean little.
# ldd's whole output is read first: `ldd | grep -q` under pipefail fails
# when grep stops early and ldd dies of SIGPIPE.
sanitizer_build() {
        local libs
        libs=$(ldd "$1" 2>/dev/null) || true
        [[ $libs == *libasan* || $libs == *libtsan* ]]
}
