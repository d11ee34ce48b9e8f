#!/bin/bash
# SPDX-License-Identifier: MIT
# Registration with systemd-resolved across bus and resolved restarts, on a
# private dbus-daemon configured like the system bus, with a stand-in for
# resolved's link API (tools/fake-resolved: the real one needs systemd as
# PID 1; test-systemd.sh runs it under nspawn). Checks what resolved is told:
#   - joyrided started before the bus exists waits for it, takes its name and
#     registers the link once the bus and resolved are there;
#   - resolved restarting gets the link again (NameOwnerChanged);
#   - the bus restarting (and resolved with it) gets the link again, on the
#     new connection, and the D-Bus API comes back;
#   - stopping joyrided reverts the link (RevertLink);
#   - the same with --bus=none, where the registration has its own system bus
#     connection.
# Needs root (the bus policy lets root own org.freedesktop.resolve1).
#
# Usage: test-resolved.sh BUILDDIR
set -euo pipefail

BUILD=$(cd "${1:?usage: test-resolved.sh BUILDDIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
. "$SRC/tests/integration/lib.sh"
. "$SRC/tests/integration/bus-lib.sh"

[ "$(id -u)" = 0 ] || skip "needs root"
need_commands dbus-daemon busctl dig python3

T=$(mktemp -d /tmp/joyride-resolved.XXXXXX)
STATE=$T/state
PORT=$(free_port)
CONF=$T/joyride.conf
FAKE=$BUILD/tools/fake-resolved
DAEMON_PID=
BUS_PID=
FAKE_PID=
LO=$(cat /sys/class/net/lo/ifindex)

cleanup() {
        local rc=$?
        [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null
        [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null
        [ -n "$BUS_PID" ] && kill "$BUS_PID" 2>/dev/null
        wait 2>/dev/null
        [ $rc -eq 0 ] || bus_show_logs "$T"
        rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 143' INT TERM # so that the EXIT trap cleans up on a timeout too

printf '[DNS]\nDomains=example.internal\n[Resolved]\nLink=lo\n' >"$CONF"
bus_allow_resolve1 "$T/bus"
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/bus/bus.sock"

resolve1_owned() {
        busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
                NameHasOwner s org.freedesktop.resolve1 2>/dev/null | grep -qx 'b true'
}
# start_fake LOG: fake-resolved on the bus, its calls in LOG.
start_fake() {
        "$FAKE" >"$1" 2>>"$T/fake.log" </dev/null &
        FAKE_PID=$!
        wait_for "fake-resolved on the bus" 10 resolve1_owned
}
stop_fake() {
        kill "$FAKE_PID" 2>/dev/null || true
        wait "$FAKE_PID" 2>/dev/null || true
        FAKE_PID=
}
stop_bus() {
        kill "$BUS_PID"
        wait "$BUS_PID" 2>/dev/null || true
        BUS_PID=
        rm -f "$T/bus/bus.sock"
        # fake-resolved exits with its bus.
        [ -z "$FAKE_PID" ] || wait_pid_timeout "$FAKE_PID" 5 || fail "fake-resolved outlived its bus"
        FAKE_PID=
}
# registered LOG: resolved was told the link's DNS server, routing domain and
# default-route setting, in that order, and nothing else.
registered() {
        [ "$(cat "$1")" = "SetLinkDNSEx $LO 127.0.0.1:$PORT
SetLinkDomains $LO ~example.internal
SetLinkDefaultRoute $LO no" ]
}
# start_joyrided LOG ARGS...
start_joyrided() {
        local log=$1
        shift
        "$BUILD/src/joyrided" --config="$CONF" --dns-bind-address=127.0.0.1 --dns-port="$PORT" \
                --state-directory="$STATE" --no-docker --no-http --no-cluster "$@" >"$log" 2>&1 </dev/null &
        DAEMON_PID=$!
        wait_for "joyrided to answer DNS" 10 sh -c "dig @127.0.0.1 -p $PORT +tries=1 +time=1 example.internal SOA | grep -q NOERROR"
}
stop_joyrided() {
        kill "$DAEMON_PID"
        wait_pid_timeout "$DAEMON_PID" 10 || fail "joyrided did not stop"
        DAEMON_PID=
}
count() {
        grep -c "$1" "$2" || true
}

# --- the bus is not there yet --------------------------------------------------
start_joyrided "$T/daemon.log" --bus=system
grep -q 'Cannot connect to the system bus' "$T/daemon.log" || fail "no warning about the missing bus"
start_system_bus "$T/bus" "$SRC"
wait_for "joyrided to take its name once the bus appears" 10 name_owned
start_fake "$T/calls1.log"
wait_for "the link registered" 10 registered "$T/calls1.log"
wait_for "joyrided to say so" 5 grep -q "Registered with systemd-resolved on link lo" "$T/daemon.log"
ok "started before the bus: takes its name and registers the link once the bus and resolved are there"

# --- resolved restarts ----------------------------------------------------------
stop_fake
start_fake "$T/calls2.log"
wait_for "the link registered again" 10 registered "$T/calls2.log"
ok "resolved restarted: the link is registered again"

# --- the bus restarts, resolved with it ----------------------------------------
stop_bus
start_system_bus "$T/bus" "$SRC"
start_fake "$T/calls3.log"
wait_for "the link registered on the new bus" 10 registered "$T/calls3.log"
wait_for "joyrided to take its name on the new bus" 10 name_owned
grep -q 'Lost the connection to the system bus' "$T/daemon.log" || fail "the lost bus is not reported"
[ "$(count 'Registered with systemd-resolved on link lo' "$T/daemon.log")" -ge 3 ] ||
        fail "joyrided does not say it registered again: $(grep -i resolved "$T/daemon.log")"
[ "$(busctl --system get-property org.joyride.DNS /org/joyride/DNS org.joyride.DNS DNSPort)" = "q $PORT" ] ||
        fail "the D-Bus API does not answer on the new bus"
ok "the bus restarted: the link is registered again on the new connection, and the API is back"

# --- stop: RevertLink -------------------------------------------------------------
stop_joyrided
grep -qx "RevertLink $LO" "$T/calls3.log" || fail "no RevertLink on stop: $(cat "$T/calls3.log")"
grep -q "Reverted the systemd-resolved settings of link lo" "$T/daemon.log" || fail "the revert is not logged"
ok "stopping reverts the link"

# --- --bus=none: the registration's own connection ---------------------------------
stop_fake
start_fake "$T/calls4.log"
start_joyrided "$T/daemon-nobus.log" --bus=none
wait_for "the link registered without the D-Bus API" 10 registered "$T/calls4.log"
name_owned && fail "--bus=none took the name org.joyride.DNS"
stop_bus
start_system_bus "$T/bus" "$SRC"
start_fake "$T/calls5.log"
wait_for "the link registered again on the new bus (--bus=none)" 10 registered "$T/calls5.log"
stop_joyrided
grep -qx "RevertLink $LO" "$T/calls5.log" || fail "no RevertLink on stop (--bus=none): $(cat "$T/calls5.log")"
ok "--bus=none: registers on a system bus connection of its own, again after the bus restarts, reverts on stop"

echo "all resolved checks passed"
