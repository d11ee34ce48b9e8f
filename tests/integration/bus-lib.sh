# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Helpers for the D-Bus integration test (sourced after lib.sh, not run):
# a private dbus-daemon configured like the system bus, with the project's
# own policy file, and joyrided started and stopped on it.

# bus_allow_resolve1 DIR: root may own and be called as
# org.freedesktop.resolve1 on the system bus of DIR (start_system_bus DIR
# after this), so that tools/fake-resolved can stand in for systemd-resolved.
bus_allow_resolve1() {
        mkdir -p "$1/system.d"
        cat >"$1/system.d/resolve1.conf" <<'CONF'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="root">
    <allow own="org.freedesktop.resolve1"/>
    <allow send_destination="org.freedesktop.resolve1"/>
  </policy>
</busconfig>
CONF
}

# bus_show_logs DIR: the last 30 lines of DIR/*.log and of the bus's log
# (DIR/bus/bus.log), for a failed test's cleanup.
bus_show_logs() {
        local f
        for f in "$1"/*.log "$1"/bus/bus.log; do
                [ -f "$f" ] && {
                        echo "--- $f" >&2
                        tail -n 30 "$f" >&2
                }
        done
}

# _bus_lib_launch DIR: dbus-daemon with DIR/bus.conf in the background ($! is
# its PID), listening on DIR/bus.sock, logging to DIR/bus.log.
_bus_lib_launch() {
        dbus-daemon --config-file="$1/bus.conf" --address="unix:path=$1/bus.sock" \
                --nofork --nopidfile --print-address=3 3>"$1/addr" >"$1/bus.log" 2>&1 </dev/null &
}

# start_system_bus DIR SRCDIR: writes DIR/bus.conf (type system, EXTERNAL auth,
# the default policy of /usr/share/dbus-1/system.conf), includes the project's
# data/dbus/org.joyride.DNS.conf through DIR/system.d, activates services from
# DIR/services, and starts dbus-daemon on DIR/bus.sock. Sets BUS_PID and
# exports DBUS_SYSTEM_BUS_ADDRESS.
start_system_bus() {
        local dir=$1 src=$2
        mkdir -p "$dir/system.d" "$dir/services"
        chmod 755 "$dir"
        cp "$src/data/dbus/org.joyride.DNS.conf" "$dir/system.d/"
        cat >"$dir/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=$dir/bus.sock</listen>
  <servicedir>$dir/services</servicedir>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <includedir>system.d</includedir>
</busconfig>
CONF
        _bus_lib_launch "$dir"
        # shellcheck disable=SC2034 # read by the test that sources this
        BUS_PID=$!
        export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$dir/bus.sock"
        wait_for "the private bus" 10 busctl --system call org.freedesktop.DBus /org/freedesktop/DBus \
                org.freedesktop.DBus GetId
}

# start_open_bus DIR: a bus whose policy lets everyone call everything, so
# that what the daemon itself enforces can be seen (the system bus policy
# stops unprivileged writes before they reach it). Sets OPEN_BUS_PID and
# exports DBUS_SESSION_BUS_ADDRESS.
start_open_bus() {
        local dir=$1
        mkdir -p "$dir"
        chmod 755 "$dir"
        cat >"$dir/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=$dir/bus.sock</listen>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
</busconfig>
CONF
        _bus_lib_launch "$dir"
        # shellcheck disable=SC2034 # read by the test that sources this
        OPEN_BUS_PID=$!
        export DBUS_SESSION_BUS_ADDRESS="unix:path=$dir/bus.sock"
        wait_for "the open bus" 10 busctl --user call org.freedesktop.DBus /org/freedesktop/DBus \
                org.freedesktop.DBus GetId
}

# name_owned [--user]: true when org.joyride.DNS has an owner.
name_owned() {
        local bus=--system
        [ "${1:-}" = --user ] && bus=--user
        busctl $bus call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
                NameHasOwner s org.joyride.DNS 2>/dev/null | grep -qx 'b true'
}

# start_daemon LOG [ARGS...]: starts joyrided with the test's standard
# arguments plus ARGS, waits until it owns its bus name. Sets DAEMON_PID.
start_daemon() {
        local log=$1
        shift
        "$BUILD/src/joyrided" --dns-bind-address=127.0.0.1 --dns-port="$PORT" \
                --state-directory="$STATE" --no-docker --no-http --no-cluster --bus=system \
                "$@" >"$log" 2>&1 </dev/null &
        DAEMON_PID=$!
        local bus=--system
        case " $* " in *" --bus=user "*) bus=--user ;; esac
        local deadline=$(($(date +%s%N) + 10000000000))
        until name_owned $bus; do
                if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
                        cat "$log" >&2
                        fail "joyrided exited while starting"
                fi
                [ "$(date +%s%N)" -lt "$deadline" ] || {
                        cat "$log" >&2
                        fail "joyrided did not take its bus name"
                }
                sleep 0.05
        done
}

# stop_daemon: SIGTERM and wait for the exit.
stop_daemon() {
        if [ -n "${DAEMON_PID:-}" ]; then
                kill "$DAEMON_PID" 2>/dev/null || true
                wait_pid_timeout "$DAEMON_PID" 10 || true
                DAEMON_PID=
        fi
}
