#!/bin/bash
# SPDX-License-Identifier: MIT
# `make run`'s development instance (tools/run-dev): DNS_PORT and HTTP_PORT
# move it, the banner shows the dashboard URL and a dig line, joyridectl
# --user reaches it on its own session bus, and a taken port is explained.
#
# Usage: test-run-dev.sh BUILDDIR
set -euo pipefail

BUILD=$(cd "${1:?usage: test-run-dev.sh BUILDDIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
. "$SRC/tests/integration/lib.sh"

need_commands dbus-daemon dig python3 curl

T=$(mktemp -d /tmp/joyride-run.XXXXXX)
RUN_PID=
HOLD_PID=
cleanup() {
        [ -n "$RUN_PID" ] && kill "$RUN_PID" 2>/dev/null
        [ -n "$HOLD_PID" ] && kill "$HOLD_PID" 2>/dev/null
        wait 2>/dev/null
        rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

# A copy of the build's binaries so that the instance's state and bus stay in $T.
mkdir -p "$T/build/src"
cp "$BUILD/src/joyrided" "$BUILD/src/joyridectl" "$T/build/src/"
DNS=$(free_port)
HTTP=$(free_port)
cd "$T"
env -u DBUS_SESSION_BUS_ADDRESS DNS_PORT="$DNS" HTTP_PORT="$HTTP" "$SRC/tools/run-dev" build >"$T/run.log" 2>&1 &
RUN_PID=$!
wait_for "the development instance to answer" 10 bash -c "dig @127.0.0.1 -p $DNS +short +tries=1 +time=1 api.internal | grep -q ^192"
grep -q "Dashboard: http://127.0.0.1:$HTTP/" "$T/run.log" || fail "banner lacks the dashboard URL: $(cat "$T/run.log")"
grep -q "dig @127.0.0.1 -p $DNS api.internal" "$T/run.log" || fail "banner lacks the dig line: $(cat "$T/run.log")"
[ "$(dig_short "$DNS" api.internal A)" = 192.168.1.100 ] || fail "api.internal from ./hosts"
curl -sf "http://127.0.0.1:$HTTP/health" | grep -q healthy || fail "dashboard port"
ok "make run: DNS_PORT and HTTP_PORT move the instance; the banner shows the URL and a dig line"

addr=$(grep -o 'DBUS_SESSION_BUS_ADDRESS=[^ ]*' "$T/run.log" | head -n1 | cut -d= -f2-)
[ -n "$addr" ] || fail "no private session bus address printed: $(cat "$T/run.log")"
DBUS_SESSION_BUS_ADDRESS=$addr "$BUILD/src/joyridectl" --user status >"$T/status.txt" ||
        fail "joyridectl --user status: $(cat "$T/status.txt")"
grep -q "udp 127.0.0.1:$DNS" "$T/status.txt" || fail "joyridectl --user status shows another instance: $(cat "$T/status.txt")"
ok "joyridectl --user talks to the development instance"

# The ports are now held by the running instance: a second one explains.
set +e
env -u DBUS_SESSION_BUS_ADDRESS DNS_PORT="$DNS" HTTP_PORT="$HTTP" "$SRC/tools/run-dev" build >"$T/second.log" 2>&1
rc=$?
set -e
[ $rc = 1 ] || fail "a second instance on the same ports: rc $rc"
grep -q "DNS port 127.0.0.1:$DNS (udp/$DNS,tcp/$DNS) is taken" "$T/second.log" || fail "taken DNS port: $(cat "$T/second.log")"
grep -q "make run DNS_PORT=" "$T/second.log" || fail "no hint how to move the DNS port: $(cat "$T/second.log")"
grep -q "make run HTTP_PORT=" "$T/second.log" || fail "no hint how to move the HTTP port: $(cat "$T/second.log")"
ok "a taken port is named, with how to move"

kill "$RUN_PID"
wait "$RUN_PID" 2>/dev/null || true
RUN_PID=

# 5353 is mDNS: held (by us, or already by avahi), the hint names avahi.
python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.bind(("127.0.0.1", 5353))
except OSError:
    pass
print("held", flush=True)
time.sleep(60)
' >"$T/hold.txt" &
HOLD_PID=$!
wait_for "5353 to be held" 5 grep -q held "$T/hold.txt"
set +e
env -u DBUS_SESSION_BUS_ADDRESS DNS_PORT=5353 HTTP_PORT="$HTTP" "$SRC/tools/run-dev" build >"$T/mdns.log" 2>&1
rc=$?
set -e
[ $rc = 1 ] && grep -q "avahi-daemon" "$T/mdns.log" || fail "5353 taken: rc $rc, $(cat "$T/mdns.log")"
ok "5353 taken: the message names mDNS/avahi and DNS_PORT"
