# SPDX-License-Identifier: MIT
# Shared helpers for the integration scripts (sourced, not run).

ok() { echo "ok - $*"; }
fail() { echo "FAIL - $*" >&2; exit 1; }

# wait_for WHAT SECONDS COMMAND...: polls every 50 ms until COMMAND succeeds.
wait_for() {
        local what=$1 secs=$2
        shift 2
        local deadline=$(( $(date +%s%N) + secs * 1000000000 ))
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
        local deadline=$(( $(date +%s%N) + secs * 1000000000 ))
        while [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
                [ "$(date +%s%N)" -lt "$deadline" ] || return 124
                sleep 0.05
        done
        wait "$pid"
}
