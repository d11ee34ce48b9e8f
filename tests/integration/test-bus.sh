#!/bin/bash
# SPDX-License-Identifier: MIT
# org.joyride.DNS and joyridectl against the real joyrided on a private
# dbus-daemon configured like the system bus, with the project's own policy
# (data/dbus/org.joyride.DNS.conf). Needs root (to run things as nobody).
#
# Usage: test-bus.sh BUILDDIR
set -euo pipefail

BUILD=$(cd "${1:?usage: test-bus.sh BUILDDIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
. "$SRC/tests/integration/lib.sh"
. "$SRC/tests/integration/bus-lib.sh"

[ "$(id -u)" = 0 ] || skip "needs root"
need_commands dbus-daemon dbus-send busctl dig python3 runuser script

T=$(mktemp -d /tmp/joyride-bus.XXXXXX)
chmod 755 "$T" # nobody must reach the bus socket below it
STATE=$T/state
HOSTS=$T/hosts
CONF=$T/joyride.conf
PORT=$(free_port)
NODE=testnode
DAEMON_PID=
ACTIVATED_PID=
MONITOR_PID=
CTL_MONITOR_PID=
BUS_PID=
OPEN_BUS_PID=
OPEN_DAEMON_PID=
PEER_PID=

cleanup() {
        local rc=$?
        [ -n "$MONITOR_PID" ] && kill "$MONITOR_PID" 2>/dev/null
        [ -n "$CTL_MONITOR_PID" ] && kill "$CTL_MONITOR_PID" 2>/dev/null
        [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null
        [ -n "$OPEN_DAEMON_PID" ] && kill "$OPEN_DAEMON_PID" 2>/dev/null
        [ -n "$PEER_PID" ] && kill "$PEER_PID" 2>/dev/null
        [ -n "$ACTIVATED_PID" ] && kill "$ACTIVATED_PID" 2>/dev/null
        [ -n "$BUS_PID" ] && kill "$BUS_PID" 2>/dev/null
        [ -n "$OPEN_BUS_PID" ] && kill "$OPEN_BUS_PID" 2>/dev/null
        wait 2>/dev/null
        [ $rc -eq 0 ] || bus_show_logs "$T"
        rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 143' INT TERM # so that the EXIT trap cleans up on a timeout too

# Everything nobody runs must be reachable by nobody.
mkdir -p "$T/bin" "$HOSTS"
cp "$BUILD/src/joyridectl" "$T/bin/"
CTL=$T/bin/joyridectl
chmod 755 "$T/bin" "$CTL"

printf '# joyride test config\n[DNS]\nDomains=example.com,in-addr.arpa\n' >"$CONF"
printf '10.9.0.1 base.example.com\n10.9.0.2 other.example.com\n' >"$HOSTS/base.hosts"

DAEMON_ARGS="--config=$CONF --node-id=$NODE --hosts-directory=$HOSTS"
start_system_bus "$T/bus" "$SRC"
# shellcheck disable=SC2086
start_daemon "$T/daemon.log" $DAEMON_ARGS
ok "joyrided owns org.joyride.DNS on a private system bus"

call() {
        busctl --system call org.joyride.DNS /org/joyride/DNS org.joyride.DNS "$@"
}
prop() {
        busctl --system get-property org.joyride.DNS /org/joyride/DNS org.joyride.DNS "$1"
}
# dig_is NAME TYPE VALUE: the DNS port answers NAME TYPE with exactly VALUE.
dig_is() {
        [ "$(dig_short "$PORT" "$1" "$2")" = "$3" ]
}
# expect_error ERRORNAME TEXT METHOD ARGS...: dbus-send the call, expect that
# D-Bus error with TEXT in its message.
expect_error() {
        local name=$1 text=$2 method=$3 out
        shift 3
        if out=$(dbus-send --system --print-reply --dest=org.joyride.DNS /org/joyride/DNS \
                "org.joyride.DNS.$method" "$@" 2>&1); then
                fail "$method $* succeeded, expected $name"
        fi
        grep -q "^Error $name: " <<<"$out" || fail "$method $*: expected $name, got: $out"
        grep -qF -- "$text" <<<"$out" || fail "$method $*: message lacks '$text': $out"
}

# --- introspection --------------------------------------------------------

busctl --system introspect org.joyride.DNS /org/joyride/DNS >"$T/introspect.txt"
grep -q '^org\.joyride\.DNS  *interface' "$T/introspect.txt" || fail "busctl introspect shows no org.joyride.DNS"
for member in $(
        python3 - "$SRC/data/dbus/org.joyride.DNS.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
for i in ET.parse(sys.argv[1]).getroot().iter('interface'):
    for e in i:
        print(e.get('name'))
PY
); do
        grep -q "^\.$member " "$T/introspect.txt" || fail "busctl introspect lacks .$member"
done
ok "busctl introspect shows the interface and every documented member"

busctl --system introspect --xml-interface org.joyride.DNS /org/joyride/DNS >"$T/exported.xml"
python3 - "$SRC/data/dbus/org.joyride.DNS.xml" "$T/exported.xml" <<'PY' || fail "data/dbus/org.joyride.DNS.xml differs from the exported interface"
import sys, xml.etree.ElementTree as ET

def describe(path):
    root = ET.parse(path).getroot()
    ifaces = [i for i in root.iter('interface') if i.get('name') == 'org.joyride.DNS']
    assert len(ifaces) == 1, f"{path}: no org.joyride.DNS interface"
    out = {}
    for e in ifaces[0]:
        if e.tag == 'property':
            emits = {a.get('name'): a.get('value') for a in e.findall('annotation')}.get(
                'org.freedesktop.DBus.Property.EmitsChangedSignal', 'true')
            out[('property', e.get('name'))] = (e.get('type'), e.get('access'), emits)
        elif e.tag in ('method', 'signal'):
            args = tuple((a.get('type'), a.get('name'), a.get('direction', 'in' if e.tag == 'method' else 'out'))
                         for a in e.findall('arg'))
            out[(e.tag, e.get('name'))] = args
    return out

doc, live = describe(sys.argv[1]), describe(sys.argv[2])
bad = False
for k in sorted(set(doc) | set(live)):
    if doc.get(k) != live.get(k):
        print(f"{k[0]} {k[1]}: documented {doc.get(k)}, exported {live.get(k)}", file=sys.stderr)
        bad = True
sys.exit(1 if bad else 0)
PY
ok "data/dbus/org.joyride.DNS.xml matches the exported methods, properties and signals"

# --- properties -------------------------------------------------------------

[ "$(prop NodeId)" = "s \"$NODE\"" ] || fail "NodeId: $(prop NodeId)"
[ "$(prop DNSPort)" = "q $PORT" ] || fail "DNSPort: $(prop DNSPort)"
prop ListenAddresses | grep -qF "\"udp 127.0.0.1:$PORT\"" || fail "ListenAddresses: $(prop ListenAddresses)"
prop ListenAddresses | grep -qF "\"tcp 127.0.0.1:$PORT\"" || fail "ListenAddresses: $(prop ListenAddresses)"
[ "$(prop DockerState)" = 's "disabled"' ] || fail "DockerState: $(prop DockerState)"
[ "$(prop DockerError)" = 's ""' ] || fail "DockerError: $(prop DockerError)"
[ "$(prop HostsDirectory)" = "s \"$HOSTS\"" ] || fail "HostsDirectory: $(prop HostsDirectory)"
[ "$(prop Domains)" = 'as 2 "example.com" "in-addr.arpa"' ] || fail "Domains: $(prop Domains)"
[ "$(prop ClusterEnabled)" = "b false" ] || fail "ClusterEnabled: $(prop ClusterEnabled)"
[ "$(prop MemberCount)" = "u 0" ] || fail "MemberCount: $(prop MemberCount)"
[ "$(prop RecordCount)" = "u 2" ] || fail "RecordCount (the two hosts entries): $(prop RecordCount)"
[ "$(prop StateDirectory)" = "s \"$STATE\"" ] || fail "StateDirectory: $(prop StateDirectory)"
version=$("$BUILD/src/joyrided" --version | grep -o '[0-9][0-9.]*' | head -n1)
[ "$(prop DaemonVersion)" = "s \"$version\"" ] || fail "DaemonVersion: $(prop DaemonVersion), joyrided --version: $version"
v0=$(prop Version | cut -d' ' -f2)
[ "$v0" -ge 2 ] || fail "Version $v0 after loading two records"
start=$(prop StartTimestamp | cut -d' ' -f2)
now=$(date +%s%6N)
[ $((now - start)) -ge 0 ] && [ $((now - start)) -lt 60000000 ] || fail "StartTimestamp $start is not the recent start"
u1=$(prop Uptime | cut -d' ' -f2)
sleep 0.1
u2=$(prop Uptime | cut -d' ' -f2)
[ "$u2" -gt "$u1" ] || fail "Uptime does not grow: $u1, $u2"
ok "every property reads right through busctl"

# --- methods through busctl -----------------------------------------------

call AddRecord sssu web.example.com "" 10.0.0.1 60
call AddRecord sssu web.example.com "" 2001:db8::1 0
call AddRecord sssu alias.example.com CNAME web.example.com. 120
call AddRecord sssu txt.example.com TXT "hello world" 45
[ "$(dig_short "$PORT" web.example.com A)" = 10.0.0.1 ] || fail "dig does not see the A record added over D-Bus"
[ "$(dig_short "$PORT" web.example.com AAAA)" = 2001:db8::1 ] || fail "dig does not see the AAAA record"
dig @127.0.0.1 -p "$PORT" +noall +answer +tries=1 +time=1 web.example.com AAAA | grep -q '^web\.example\.com\.[[:space:]]*30[[:space:]]' ||
        fail "TTL 0 did not give the default TTL (30)"
[ "$(dig_short "$PORT" txt.example.com TXT)" = '"hello world"' ] || fail "dig does not see the TXT record"
ok "AddRecord (type inferred from addresses, default TTL) answers in dig at once"

out=$(call ListRecords ss "" dbus)
[ "$out" = 'a(sssus) 4 "alias.example.com" "CNAME" "web.example.com" 120 "dbus" "txt.example.com" "TXT" "hello world" 45 "dbus" "web.example.com" "A" "10.0.0.1" 60 "dbus" "web.example.com" "AAAA" "2001:db8::1" 30 "dbus"' ] ||
        fail "ListRecords '' dbus: $out"
out=$(call ListRecords ss WEB.example.com. "")
[ "$(echo "$out" | cut -d' ' -f1-2)" = "a(sssus) 2" ] || fail "ListRecords by name: $out"
out=$(call ListRecords ss "" hosts:)
echo "$out" | grep -qF "\"base.example.com\" \"A\" \"10.9.0.1\" 30 \"hosts:$HOSTS/base.hosts:1\"" || fail "ListRecords hosts: $out"
[ "$(echo "$out" | cut -d' ' -f1-2)" = "a(sssus) 2" ] || fail "ListRecords hosts: $out"
[ "$(prop RecordCount)" = "u 6" ] || fail "RecordCount: $(prop RecordCount)"
ok "ListRecords lists, filters by name and by source, with TTL and source"

out=$(call Resolve ss alias.example.com A)
[ "$out" = 'sa(sssu) "NOERROR" 2 "alias.example.com" "CNAME" "web.example.com" 120 "web.example.com" "A" "10.0.0.1" 60' ] ||
        fail "Resolve alias A: $out"
[ "$(call Resolve ss nothing.example.com A)" = 'sa(sssu) "NXDOMAIN" 0' ] || fail "Resolve NXDOMAIN"
[ "$(call Resolve ss web.example.org A)" = 'sa(sssu) "REFUSED" 0' ] || fail "Resolve outside Domains is not REFUSED"
[ "$(call Resolve ss web.example.com TXT)" = 'sa(sssu) "NOERROR" 0' ] || fail "Resolve NODATA"
[ "$(call Resolve ss 1.0.0.10.in-addr.arpa PTR)" = 'sa(sssu) "NOERROR" 1 "1.0.0.10.in-addr.arpa" "PTR" "web.example.com" 60' ] ||
        fail "Resolve PTR: $(call Resolve ss 1.0.0.10.in-addr.arpa PTR)"
[ "$(call Resolve ss txt.example.com "")" = 'sa(sssu) "NOERROR" 0' ] || fail "Resolve with empty type is not A"
# The same answer as the DNS port gives, record for record.
for q in "alias.example.com A" "web.example.com AAAA" "txt.example.com TXT" "base.example.com A"; do
        # shellcheck disable=SC2086 # split "NAME TYPE" into $1 and $2
        set -- $q
        via_bus=$(call Resolve ss "$1" "$2" | python3 -c '
import shlex, sys
w = shlex.split(sys.stdin.read())
n = int(w[2]); items = w[3:]
for i in range(n):
    name, typ, value, ttl = items[4*i:4*i+4]
    if typ == "TXT": value = "\"%s\"" % value
    if typ in ("CNAME", "PTR"): value += "."
    print(name + ".", ttl, "IN", typ, value)')
        via_dig=$(dig @127.0.0.1 -p "$PORT" +noall +answer +tries=1 +time=1 "$1" "$2" | awk '{ $1=$1; print }')
        [ "$via_bus" = "$via_dig" ] || fail "Resolve $q differs from dig: '$via_bus' vs '$via_dig'"
done
ok "Resolve answers with rcode and records exactly as the DNS server does"

[ "$(call RemoveRecord sss web.example.com AAAA 2001:db8:0::1)" = "u 1" ] || fail "RemoveRecord AAAA (non-canonical value)"
[ -z "$(dig_short "$PORT" web.example.com AAAA)" ] || fail "dig still sees the removed AAAA"
[ "$(dig_short "$PORT" web.example.com A)" = 10.0.0.1 ] || fail "RemoveRecord AAAA removed the A record too"
[ "$(call RemoveRecord sss base.example.com "" "")" = "u 0" ] || fail "RemoveRecord removed a hosts-file record"
[ "$(dig_short "$PORT" base.example.com A)" = 10.9.0.1 ] || fail "hosts record gone after RemoveRecord"
[ "$(call RemoveRecord sss nothing.example.com "" "")" = "u 0" ] || fail "RemoveRecord of nothing"
[ "$(call ListMembers)" = "a(sssut) 0" ] || fail "ListMembers without a cluster: $(call ListMembers)"
expect_error org.joyride.DNS.Error.NoCluster "Clustering is not enabled" Sync
printf '[DNS]\nDomains=example.com,example.net,in-addr.arpa\n' >"$CONF"
printf '10.9.0.3 late.example.net\n' >"$HOSTS/late.hosts"
call Reload
[ "$(prop Domains)" = 'as 3 "example.com" "example.net" "in-addr.arpa"' ] || fail "Reload did not apply the new Domains"
[ "$(dig_short "$PORT" late.example.net A)" = 10.9.0.3 ] || fail "Reload did not rescan the hosts directory"
echo 'not = [valid' >"$CONF"
expect_error org.joyride.DNS.Error.ReloadFailed "Reload failed" Reload
[ "$(prop Domains)" = 'as 3 "example.com" "example.net" "in-addr.arpa"' ] || fail "a failed Reload changed Domains"
printf '[DNS]\nDomains=example.com,example.net,in-addr.arpa\n' >"$CONF"
ok "RemoveRecord, ListMembers, Sync and Reload work through busctl"

# Who changed what: one line per write call on stderr, naming the method, its
# arguments (strings quoted, control characters escaped, long ones cut) and
# the caller's uid and pid. A call refused before it changes anything (Sync
# without a cluster, bad arguments) has none.
bash -c 'echo $$ >"$1"; exec busctl --system call org.joyride.DNS /org/joyride/DNS org.joyride.DNS AddRecord sssu Who.Example.com. "" 10.0.0.7 0' \
        _ "$T/caller.pid"
caller=$(cat "$T/caller.pid")
line=$(grep -F 'AddRecord("Who.Example.com.", "", "10.0.0.7", 0) over D-Bus by ' "$T/daemon.log") ||
        fail "AddRecord is not logged: $(grep -F 'over D-Bus' "$T/daemon.log")"
grep -q "INFO: AddRecord(.*) over D-Bus by uid 0, pid $caller\.$" <<<"$line" ||
        fail "the AddRecord line does not name uid 0 and the caller's pid $caller: $line"
grep -q 'INFO: RemoveRecord("web.example.com", "AAAA", "2001:db8:0::1") over D-Bus by uid 0, pid [0-9][0-9]*\.$' "$T/daemon.log" ||
        fail "RemoveRecord is not logged with its arguments and caller: $(grep -F 'over D-Bus' "$T/daemon.log")"
grep -q 'INFO: Reload() over D-Bus by uid 0, pid [0-9][0-9]*\.$' "$T/daemon.log" || fail "Reload is not logged with its caller"
grep -qF 'Sync()' "$T/daemon.log" && fail "a Sync refused for want of a cluster is logged as done"
call RemoveRecord sss who.example.com "" $'10.0.0.7\nFAKE: forged line' >/dev/null
call RemoveRecord sss who.example.com "" "$(printf 'v%.0s' {1..100})" >/dev/null
grep -qF 'RemoveRecord("who.example.com", "", "10.0.0.7\x0aFAKE: forged line") over D-Bus by uid 0' "$T/daemon.log" ||
        fail "a control character in an argument is not escaped: $(grep -F 'FAKE' "$T/daemon.log")"
grep -q '^FAKE' "$T/daemon.log" && fail "an argument forged a line of the log"
grep -qF "RemoveRecord(\"who.example.com\", \"\", \"$(printf 'v%.0s' {1..64})\"...) over D-Bus by uid 0" "$T/daemon.log" ||
        fail "a long argument is not cut short: $(grep -F 'RemoveRecord("who' "$T/daemon.log")"
call RemoveRecord sss who.example.com "" "" >/dev/null
ok "every write over D-Bus is logged once: method, arguments in short (escaped, cut), the caller's uid and pid"

# --- invalid input ----------------------------------------------------------

count=$(prop RecordCount)
sum=$(md5sum <"$STATE/records.json")
expect_error org.freedesktop.DBus.Error.InvalidArgs "Invalid name 'bad..example.com'" \
        AddRecord string:bad..example.com string: string:10.0.0.5 uint32:60
expect_error org.freedesktop.DBus.Error.InvalidArgs "not an IPv4 address" \
        AddRecord string:x.example.com string:A string:10.0.0.300 uint32:60
expect_error org.freedesktop.DBus.Error.InvalidArgs "not an IP address" \
        AddRecord string:x.example.com string: string:10.0.0.300 uint32:60
expect_error org.freedesktop.DBus.Error.InvalidArgs "Unknown record type 'MX'" \
        AddRecord string:x.example.com string:MX string:"10 mail.example.com" uint32:60
expect_error org.freedesktop.DBus.Error.InvalidArgs "TTL 604801 is out of range" \
        AddRecord string:x.example.com string: string:10.0.0.5 uint32:604801
expect_error org.freedesktop.DBus.Error.InvalidArgs "not an IPv6 address" \
        AddRecord string:x.example.com string:AAAA string:10.0.0.5 uint32:60
expect_error org.freedesktop.DBus.Error.InvalidArgs "Missing record name" \
        AddRecord string: string: string:10.0.0.5 uint32:60
expect_error org.freedesktop.DBus.Error.InvalidArgs "Unknown record type 'BOGUS'" \
        RemoveRecord string:web.example.com string:BOGUS string:
expect_error org.freedesktop.DBus.Error.InvalidArgs "Unknown DNS type 'BOGUS'" \
        Resolve string:web.example.com string:BOGUS
expect_error org.freedesktop.DBus.Error.InvalidArgs "Invalid name" \
        ListRecords string:a..b string:
[ "$(prop RecordCount)" = "$count" ] || fail "refused input changed the records"
[ "$(md5sum <"$STATE/records.json")" = "$sum" ] || fail "refused input changed the state file"
[ -z "$(dig_short "$PORT" x.example.com A)" ] || fail "a refused record is served"
grep -qF 'AddRecord("x.example.com"' "$T/daemon.log" && fail "a refused AddRecord is logged as done"
ok "invalid input gets InvalidArgs saying what is wrong, and changes nothing"

# --- coalesced signals ------------------------------------------------------

start_monitor() {
        busctl --system monitor --json=short --match "type='signal',sender='org.joyride.DNS'" \
                >"$T/monitor.json" 2>"$T/monitor.err" &
        MONITOR_PID=$!
        wait_for "busctl monitor" 5 grep -q Monitoring "$T/monitor.err"
}
stop_monitor() {
        sleep 0.5 # let the last signals arrive
        kill "$MONITOR_PID"
        wait "$MONITOR_PID" 2>/dev/null || true
        MONITOR_PID=
}

call AddRecord sssu many.example.com "" 10.2.0.1 60
call AddRecord sssu many.example.com "" 10.2.0.2 60
call AddRecord sssu many.example.com TXT "three" 60
start_monitor
[ "$(call RemoveRecord sss many.example.com "" "")" = "u 3" ] || fail "RemoveRecord of three records"
printf '10.3.0.1 h1.example.com\n10.3.0.2 h2.example.com\n10.3.0.3 h3.example.com\n10.3.0.4 h4.example.com\n' >"$T/five.tmp"
echo '10.3.0.5 h5.example.com' >>"$T/five.tmp"
mv "$T/five.tmp" "$HOSTS/five.hosts"
wait_for "the new hosts file" 5 dig_is h5.example.com A 10.3.0.5
stop_monitor
python3 - "$T/monitor.json" "$HOSTS" <<'PY' || fail "signals were not coalesced as expected"
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
changed = [m['payload']['data'] for m in msgs if m.get('member') == 'RecordsChanged']
props = [m['payload']['data'][1] for m in msgs if m.get('member') == 'PropertiesChanged']
# One signal for the three removals of one call, one for the five lines of one file.
removals = [c for c in changed if c[1]]
additions = [c for c in changed if c[0]]
assert len(changed) == 2, f"expected 2 RecordsChanged, got {len(changed)}: {changed}"
assert len(removals) == 1 and not removals[0][0], removals
assert sorted((r[0], r[1], r[2], r[3], r[4]) for r in removals[0][1]) == [
    ('many.example.com', 'A', '10.2.0.1', 60, 'dbus'), ('many.example.com', 'A', '10.2.0.2', 60, 'dbus'),
    ('many.example.com', 'TXT', 'three', 60, 'dbus')], removals[0][1]
assert len(additions) == 1 and len(additions[0][0]) == 5, additions
assert all(r[4].startswith('hosts:' + sys.argv[2] + '/five.hosts:') for r in additions[0][0]), additions
# The counters follow, in one PropertiesChanged per turn.
counts = [p['RecordCount']['data'] for p in props if 'RecordCount' in p]
assert len(counts) == 2 and counts[1] - counts[0] == 5, counts
assert all('Version' in p for p in props if 'RecordCount' in p), props
PY
ok "one RecordsChanged per turn carries every change (3 removals; 5 hosts lines), PropertiesChanged follows"

# 1,200 changes at once (a hosts file): several signals of at most 500, all of them.
start_monitor
awk 'BEGIN { for (i = 0; i < 1200; i++) printf "10.8.%d.%d bulk%d.example.com\n", int(i / 250), i % 250, i }' >"$T/bulk.tmp"
mv "$T/bulk.tmp" "$HOSTS/bulk.hosts"
wait_for "the bulk hosts file" 10 dig_is bulk1199.example.com A 10.8.4.199
stop_monitor
python3 - "$T/monitor.json" <<'PY' || fail "1,200 changes were not announced in signals of at most 500"
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
changed = [m['payload']['data'] for m in msgs if m.get('member') == 'RecordsChanged']
names = [r[0] for c in changed for r in c[0]]
assert len(changed) >= 3 and all(len(c[0]) + len(c[1]) <= 500 for c in changed), [len(c[0]) for c in changed]
assert sorted(names) == sorted(f'bulk{i}.example.com' for i in range(1200)), len(names)
PY
rm "$HOSTS/bulk.hosts"
wait_for "the bulk hosts file gone" 10 bash -c "[ -z \"\$(dig @127.0.0.1 -p $PORT +short +tries=1 +time=1 bulk0.example.com)\" ]"
ok "1,200 changes at once come as several RecordsChanged of at most 500, none left out"

# --- joyridectl -------------------------------------------------------------

"$CTL" status >"$T/status.txt"
grep -Eq "^ *Node: $NODE\$" "$T/status.txt" || fail "joyridectl status: $(cat "$T/status.txt")"
grep -Eq "^ *DNS: udp 127.0.0.1:$PORT, tcp 127.0.0.1:$PORT\$" "$T/status.txt" || fail "status DNS line"
grep -Eq "^ *Docker: disabled\$" "$T/status.txt" || fail "status Docker line"
grep -Eq "^ *Cluster: disabled\$" "$T/status.txt" || fail "status Cluster line"
grep -Eq "^ *Hosts directory: $HOSTS\$" "$T/status.txt" || fail "status hosts line"
grep -Eq "^ *Records: $(prop RecordCount | cut -d' ' -f2)\$" "$T/status.txt" || fail "status Records line"
"$CTL" status --json=short >"$T/status.json"
[ "$(wc -l <"$T/status.json")" = 1 ] || fail "--json=short is not one line"
python3 - "$T/status.json" "$NODE" "$PORT" <<'PY' || fail "joyridectl status --json"
import json, sys
s = json.load(open(sys.argv[1]))
assert s['node_id'] == sys.argv[2] and s['dns_port'] == int(sys.argv[3]), s
assert s['docker_state'] == 'disabled' and s['cluster_enabled'] is False and s['member_count'] == 0, s
assert s['domains'] == ['example.com', 'example.net', 'in-addr.arpa'], s
assert s['uptime'] >= 0 and s['store_version'] > 0, s
assert all(k == k.lower() for k in s), s
import re
assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', s['started']), s
PY
ok "joyridectl status, as a table and as JSON"

# The hosts directory's warnings: a property with the list, another with the
# count, and in joyridectl status; they follow the file.
[ "$(prop HostsWarningCount)" = "u 0" ] || fail "HostsWarningCount with clean files: $(prop HostsWarningCount)"
[ "$(prop HostsWarnings)" = "a(sus) 0" ] || fail "HostsWarnings with clean files: $(prop HostsWarnings)"
! grep -q "Hosts warnings" "$T/status.txt" || fail "joyridectl status shows warnings for clean files"
printf '10.9.0.3 fine.example.com\n10.9.0.300 bad.example.com\n' >"$HOSTS/bad.hosts"
wait_for "HostsWarningCount 1" 5 sh -c "busctl --system get-property org.joyride.DNS /org/joyride/DNS org.joyride.DNS HostsWarningCount | grep -qx 'u 1'"
busctl --system --json=short get-property org.joyride.DNS /org/joyride/DNS org.joyride.DNS HostsWarnings >"$T/warnings.json"
python3 - "$T/warnings.json" "$HOSTS/bad.hosts" <<'PY' || fail "HostsWarnings: $(cat "$T/warnings.json")"
import json, sys
p = json.load(open(sys.argv[1]))
assert p['type'] == 'a(sus)' and p['data'] == [[sys.argv[2], 2, "not an IP address: '10.9.0.300'"]], p
PY
"$CTL" status >"$T/status.txt"
grep -Eq "^ *Hosts warnings: $HOSTS/bad.hosts:2: not an IP address: '10.9.0.300'\$" "$T/status.txt" ||
        fail "joyridectl status lacks the warning: $(cat "$T/status.txt")"
"$CTL" status --json=short >"$T/status.json"
python3 - "$T/status.json" "$HOSTS/bad.hosts" <<'PY' || fail "joyridectl status --json: hosts warnings: $(cat "$T/status.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s['hosts_warnings'] == 1, s
assert s['hosts_warning_list'] == [{'file': sys.argv[2], 'line': 2, 'message': "not an IP address: '10.9.0.300'"}], s
PY
printf '10.9.0.3 fine.example.com\n' >"$HOSTS/bad.hosts"
wait_for "HostsWarningCount 0" 5 sh -c "busctl --system get-property org.joyride.DNS /org/joyride/DNS org.joyride.DNS HostsWarningCount | grep -qx 'u 0'"
[ "$(prop HostsWarnings)" = "a(sus) 0" ] || fail "HostsWarnings after the fix: $(prop HostsWarnings)"
rm "$HOSTS/bad.hosts"
wait_for "fine.example.com gone" 5 sh -c "! dig @127.0.0.1 -p $PORT +short +tries=1 +time=1 fine.example.com | grep -q ."
ok "HostsWarnings, HostsWarningCount and joyridectl status list a bad line, and drop it once fixed"

"$CTL" monitor >"$T/ctl-monitor.txt" 2>"$T/ctl-monitor.err" &
CTL_MONITOR_PID=$!
wait_for "joyridectl monitor to subscribe" 10 grep -q Monitoring "$T/ctl-monitor.err"
"$CTL" add web.example.com 10.0.0.2 --ttl=90
"$CTL" add --type=CNAME www.example.com web.example.com
"$CTL" records web.example.com >"$T/records.txt"
head -n1 "$T/records.txt" | grep -Eq '^NAME +TYPE +VALUE +TTL SOURCE$' || fail "records header: $(head -n1 "$T/records.txt")"
grep -Eq '^web\.example\.com +A +10\.0\.0\.2 +90 dbus$' "$T/records.txt" || fail "records row: $(cat "$T/records.txt")"
grep -q '^2 records listed\.$' "$T/records.txt" || fail "records footer: $(cat "$T/records.txt")"
"$CTL" records --no-legend --source=hosts: >"$T/records.txt"
grep -q NAME "$T/records.txt" && fail "--no-legend still prints the header"
grep -q listed "$T/records.txt" && fail "--no-legend still prints the footer"
[ "$(wc -l <"$T/records.txt")" = "$(call ListRecords ss "" hosts: | cut -d' ' -f2)" ] || fail "--source=hosts: rows"
"$CTL" records --json=pretty --source=dbus >"$T/records.json"
python3 - "$T/records.json" <<'PY' || fail "joyridectl records --json=pretty"
import json, sys
r = json.load(open(sys.argv[1]))
assert {'name': 'www.example.com', 'type': 'CNAME', 'value': 'web.example.com', 'ttl': 30, 'source': 'dbus'} in r, r
assert all(x['source'] == 'dbus' for x in r), r
PY
[ "$(wc -l <"$T/records.json")" -gt 3 ] || fail "--json=pretty is not indented"
"$CTL" query www.example.com >"$T/query.txt"
grep -Eq '^www\.example\.com +CNAME +30 web\.example\.com$' "$T/query.txt" || fail "query: $(cat "$T/query.txt")"
grep -q '^NOERROR, 3 answers\.$' "$T/query.txt" || fail "query footer: $(cat "$T/query.txt")"
"$CTL" query --json=short web.example.com A >"$T/query.json"
python3 - "$T/query.json" <<'PY' || fail "joyridectl query --json"
import json, sys
q = json.load(open(sys.argv[1]))
assert q['rcode'] == 'NOERROR' and sorted(a['value'] for a in q['answers']) == ['10.0.0.1', '10.0.0.2'], q
PY
set +e
"$CTL" query nothing.example.com 2>"$T/err.txt"
rc=$?
set -e
[ $rc = 1 ] && grep -q 'NXDOMAIN' "$T/err.txt" || fail "query of a missing name: rc $rc, $(cat "$T/err.txt")"
"$CTL" remove web.example.com 10.0.0.2
[ "$(dig_short "$PORT" web.example.com A)" = 10.0.0.1 ] || fail "joyridectl remove NAME VALUE"
wait_for "monitor to show the removal" 10 grep -q -- '- web.example.com A 10.0.0.2' "$T/ctl-monitor.txt"
kill "$CTL_MONITOR_PID"
wait "$CTL_MONITOR_PID" || fail "joyridectl monitor did not exit 0 on SIGTERM"
CTL_MONITOR_PID=
grep -Eq '^[0-9]{2}:[0-9]{2}:[0-9]{2} \+ web\.example\.com A 10\.0\.0\.2 90 dbus$' "$T/ctl-monitor.txt" ||
        fail "joyridectl monitor lacks the added record: $(cat "$T/ctl-monitor.txt")"
grep -Eq '^[0-9:]{8} \+ www\.example\.com CNAME web\.example\.com 30 dbus$' "$T/ctl-monitor.txt" ||
        fail "joyridectl monitor lacks the added CNAME: $(cat "$T/ctl-monitor.txt")"
grep -Eq '^[0-9:]{8} - web\.example\.com A 10\.0\.0\.2 90 dbus$' "$T/ctl-monitor.txt" ||
        fail "joyridectl monitor lacks the removal: $(cat "$T/ctl-monitor.txt")"
"$CTL" query 10.9.0.1 >"$T/query.txt"
grep -Eq '^1\.0\.9\.10\.in-addr\.arpa +PTR +[0-9]+ base\.example\.com$' "$T/query.txt" ||
        fail "joyridectl query ADDRESS (reverse): $(cat "$T/query.txt")"
set +e
"$CTL" remove base.example.com 2>"$T/err.txt"
rc=$?
set -e
[ $rc = 1 ] && grep -q 'other source' "$T/err.txt" || fail "remove of a hosts record: rc $rc, $(cat "$T/err.txt")"
"$CTL" members >"$T/members.txt"
grep -q '^Clustering is disabled on this node' "$T/members.txt" || fail "members without a cluster: $(cat "$T/members.txt")"
[ "$("$CTL" members --json=short)" = "[]" ] || fail "members --json"
set +e
"$CTL" sync 2>"$T/err.txt"
rc=$?
set -e
[ $rc = 1 ] && grep -q 'Clustering is not enabled' "$T/err.txt" || fail "sync without a cluster: rc $rc"
"$CTL" reload || fail "joyridectl reload"
ok "joyridectl records, query, add, remove, members, sync, reload (tables, --no-legend, --json)"

# statistics: the daemon's query counters, moved by one by a dig
"$CTL" statistics --json=short >"$T/stats1.json"
dig_short "$PORT" web.example.com A >/dev/null
dig_short "$PORT" nothing.example.com AAAA >/dev/null
"$CTL" statistics --json=short >"$T/stats2.json"
python3 - "$T/stats1.json" "$T/stats2.json" <<'PY' || fail "joyridectl statistics --json: $(cat "$T/stats2.json")"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
assert b['queries'] == b['queries_udp'] + b['queries_tcp'], b
assert b['queries_udp'] == a['queries_udp'] + 2, (a, b)
assert b['queries_by_type']['A'] == a['queries_by_type']['A'] + 1, (a, b)
assert b['queries_by_type']['AAAA'] == a['queries_by_type']['AAAA'] + 1, (a, b)
assert b['responses_by_rcode']['NXDOMAIN'] == a['responses_by_rcode']['NXDOMAIN'] + 1, (a, b)
assert all(k == k.lower() for k in b), b
PY
"$CTL" statistics >"$T/stats.txt"
grep -Eq '^ *Queries: [0-9]+ \(UDP [0-9]+, TCP [0-9]+\)$' "$T/stats.txt" || fail "statistics: $(cat "$T/stats.txt")"
grep -Eq '^ *By type: A [0-9]+, AAAA [0-9]+' "$T/stats.txt" || fail "statistics by type: $(cat "$T/stats.txt")"
grep -Eq '^ *Responses: NOERROR [0-9]+' "$T/stats.txt" || fail "statistics responses: $(cat "$T/stats.txt")"
ok "joyridectl statistics: the query counters as a table and as JSON"

# log-level: read, set (logged with the caller), refused when bad
[ "$("$CTL" log-level)" = info ] || fail "log-level: $("$CTL" log-level)"
"$CTL" log-level debug || fail "log-level debug"
[ "$("$CTL" log-level)" = debug ] || fail "log-level after setting debug: $("$CTL" log-level)"
[ "$(prop LogLevel)" = 's "debug"' ] || fail "LogLevel property: $(prop LogLevel)"
grep -q 'NOTICE: SetLogLevel("debug") over D-Bus by uid 0, pid [0-9][0-9]*\.$' "$T/daemon.log" ||
        fail "the change is not logged with the caller: $(grep -F SetLogLevel "$T/daemon.log")"
dig_short "$PORT" web.example.com A >/dev/null
wait_for "a per-query debug line" 5 grep -q 'web.example.com' "$T/daemon.log"
set +e
"$CTL" log-level loud 2>"$T/err.txt"
rc=$?
set -e
[ $rc = 2 ] && grep -q "Invalid log level 'loud'" "$T/err.txt" || fail "log-level loud: rc $rc, $(cat "$T/err.txt")"
"$CTL" log-level info
[ "$("$CTL" log-level --json=short)" = '{"log_level":"info"}' ] || fail "log-level --json"
ok "joyridectl log-level shows and sets the level at run time, logged with the caller's uid and pid"

set +e
"$CTL" add bad..example.com 10.0.0.1 2>"$T/err.txt"
rc=$?
set -e
[ $rc = 2 ] && grep -q "Invalid name 'bad..example.com'" "$T/err.txt" || fail "add bad name: rc $rc, $(cat "$T/err.txt")"
set +e
"$CTL" add x.example.com 10.0.0.1 --ttl=forever 2>"$T/err.txt"
rc=$?
set -e
[ $rc = 2 ] && grep -q "Invalid TTL 'forever'" "$T/err.txt" || fail "add bad TTL: rc $rc"
set +e
"$CTL" frobnicate 2>"$T/err.txt"
rc=$?
set -e
[ $rc = 2 ] && grep -q "Unknown command 'frobnicate'" "$T/err.txt" || fail "unknown verb: rc $rc"
ok "joyridectl exits 2 with the daemon's reason on bad input"

# The pager: only on a terminal, never with --no-pager.
script -qec "PAGER='sed s/^/PAGED:/' $CTL records" /dev/null >"$T/tty.txt"
grep -q '^PAGED:NAME' "$T/tty.txt" || fail "no pager on a terminal: $(head -n3 "$T/tty.txt")"
script -qec "PAGER='sed s/^/PAGED:/' $CTL --no-pager records" /dev/null >"$T/tty.txt"
grep -q 'PAGED:' "$T/tty.txt" && fail "--no-pager still pages"
PAGER='sed s/^/PAGED:/' "$CTL" records | grep -q 'PAGED:' && fail "paged although stdout is a pipe"
ok "joyridectl pages only on a terminal, and not with --no-pager"

LANGUAGE=de LC_ALL=C.UTF-8 JOYRIDE_LOCALEDIR="$BUILD/po" "$CTL" records >"$T/de.txt"
head -n1 "$T/de.txt" | grep -Eq '^NAME +TYP +WERT +TTL QUELLE$' || fail "German header: $(head -n1 "$T/de.txt")"
grep -q 'Einträge aufgelistet' "$T/de.txt" || fail "German footer"
ok "joyridectl speaks German with LANGUAGE=de"

# --- access -----------------------------------------------------------------

as_nobody() {
        runuser -u nobody -- env DBUS_SYSTEM_BUS_ADDRESS="$DBUS_SYSTEM_BUS_ADDRESS" "$@"
}
count=$(prop RecordCount)
as_nobody busctl --system get-property org.joyride.DNS /org/joyride/DNS org.joyride.DNS RecordCount >/dev/null ||
        fail "nobody cannot read a property"
as_nobody busctl --system call org.joyride.DNS /org/joyride/DNS org.freedesktop.DBus.Properties GetAll s org.joyride.DNS >/dev/null ||
        fail "nobody cannot GetAll"
as_nobody busctl --system introspect org.joyride.DNS /org/joyride/DNS >/dev/null || fail "nobody cannot introspect"
as_nobody busctl --system call org.joyride.DNS /org/joyride/DNS org.joyride.DNS ListRecords ss "" "" >/dev/null ||
        fail "nobody cannot ListRecords"
as_nobody busctl --system call org.joyride.DNS /org/joyride/DNS org.joyride.DNS Resolve ss web.example.com A >/dev/null ||
        fail "nobody cannot Resolve"
as_nobody busctl --system call org.joyride.DNS /org/joyride/DNS org.joyride.DNS ListMembers >/dev/null ||
        fail "nobody cannot ListMembers"
as_nobody "$CTL" status >/dev/null || fail "nobody: joyridectl status"
as_nobody "$CTL" records >/dev/null || fail "nobody: joyridectl records"
as_nobody "$CTL" query web.example.com >/dev/null || fail "nobody: joyridectl query"
as_nobody "$CTL" statistics >/dev/null || fail "nobody: joyridectl statistics"
as_nobody "$CTL" log-level >/dev/null || fail "nobody: joyridectl log-level"
for m in "AddRecord sssu n.example.com A 10.0.0.9 60" "RemoveRecord sss web.example.com A 10.0.0.1" "Sync" "Reload" "SetLogLevel s debug"; do
        # shellcheck disable=SC2086
        if as_nobody busctl --system call org.joyride.DNS /org/joyride/DNS org.joyride.DNS $m 2>"$T/err.txt"; then
                fail "nobody may call $m"
        fi
        grep -qi 'access denied' "$T/err.txt" || fail "nobody, $m: $(cat "$T/err.txt")"
done
for v in "add n.example.com 10.0.0.9" "remove web.example.com" "sync" "reload" "log-level debug"; do
        set +e
        # shellcheck disable=SC2086
        as_nobody "$CTL" $v 2>"$T/err.txt"
        rc=$?
        set -e
        [ $rc = 4 ] && grep -q 'Permission denied' "$T/err.txt" || fail "nobody: joyridectl $v: rc $rc, $(cat "$T/err.txt")"
done
if as_nobody busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
        RequestName su org.joyride.DNS 4 2>/dev/null; then
        fail "nobody may own org.joyride.DNS"
fi
[ "$(prop RecordCount)" = "$count" ] || fail "nobody changed the records"
[ "$(dig_short "$PORT" web.example.com A)" = 10.0.0.1 ] || fail "nobody removed a record"
ok "nobody can read everything, gets AccessDenied on every write, and cannot own the name (bus policy)"

# The daemon's own check, on a bus whose policy lets everyone call everything.
start_open_bus "$T/openbus"
OPEN_PORT=$(free_port)
"$BUILD/src/joyrided" --config=/dev/null --dns-bind-address=127.0.0.1 --dns-port="$OPEN_PORT" \
        --state-directory="$T/openstate" --no-docker --no-http --no-cluster --bus=user >"$T/open-daemon.log" 2>&1 </dev/null &
OPEN_DAEMON_PID=$!
wait_for "joyrided on the open bus" 10 name_owned --user
as_nobody_user() {
        runuser -u nobody -- env DBUS_SESSION_BUS_ADDRESS="$DBUS_SESSION_BUS_ADDRESS" "$@"
}
as_nobody_user busctl --user call org.joyride.DNS /org/joyride/DNS org.joyride.DNS ListRecords ss "" "" >/dev/null ||
        fail "nobody cannot read on the open bus"
# dbus-send, because busctl replaces every AccessDenied message with "Access denied".
for m in "AddRecord string:n.example.com string:A string:10.0.0.9 uint32:60" \
        "RemoveRecord string:n.example.com string:A string:10.0.0.9" "Sync" "Reload"; do
        # shellcheck disable=SC2086
        if as_nobody_user dbus-send --session --print-reply --dest=org.joyride.DNS /org/joyride/DNS \
                org.joyride.DNS.$m >/dev/null 2>"$T/err.txt"; then
                fail "the daemon lets nobody call $m"
        fi
        grep -q '^Error org.freedesktop.DBus.Error.AccessDenied: .*need root or CAP_NET_ADMIN' "$T/err.txt" ||
                fail "daemon check, $m: $(cat "$T/err.txt")"
done
set +e
as_nobody_user "$CTL" --user add n.example.com 10.0.0.9 2>"$T/err.txt"
rc=$?
set -e
[ $rc = 4 ] || fail "joyridectl --user add as nobody: rc $rc"
busctl --user call org.joyride.DNS /org/joyride/DNS org.joyride.DNS AddRecord sssu n.example.com "" 10.0.0.9 60 ||
        fail "root cannot add on the open bus"
[ "$(dig_short "$OPEN_PORT" n.example.com A)" = 10.0.0.9 ] || fail "the --bus=user daemon does not serve its record"
grep -q "over D-Bus by uid $(id -u nobody)," "$T/open-daemon.log" && fail "a write refused to nobody is logged as done"
grep -qF 'AddRecord("n.example.com", "", "10.0.0.9", 60) over D-Bus by uid 0, pid' "$T/open-daemon.log" ||
        fail "root's AddRecord on the open bus is not logged with its caller"
[ "$("$CTL" --user records --no-legend | wc -l)" = 1 ] || fail "joyridectl --user"
kill "$OPEN_DAEMON_PID"
wait "$OPEN_DAEMON_PID" 2>/dev/null || true
OPEN_DAEMON_PID=
ok "the daemon itself refuses writes from nobody (AccessDenied), root may write; --bus=user and joyridectl --user work"

# --- persistence ------------------------------------------------------------

python3 - "$STATE/records.json" <<'PY' || fail "state file content"
import json, sys
s = json.load(open(sys.argv[1]))
assert s['version'] == 1, s
recs = {(r['name'], r['type'], r['value'], r['ttl']) for r in s['records']}
assert ('web.example.com', 'A', '10.0.0.1', 60) in recs and ('www.example.com', 'CNAME', 'web.example.com', 30) in recs, recs
assert not any(r[0] == 'base.example.com' for r in recs), 'hosts records do not belong in the state'
PY
[ -z "$(find "$STATE" -name 'records.json.*')" ] || fail "temporary files left in the state directory"
before=$(call ListRecords ss "" dbus)
stop_daemon
# shellcheck disable=SC2086
start_daemon "$T/daemon2.log" $DAEMON_ARGS
[ "$(call ListRecords ss "" dbus)" = "$before" ] || fail "D-Bus records changed across a restart"
[ "$(dig_short "$PORT" web.example.com A)" = 10.0.0.1 ] || fail "record added over D-Bus not served after a restart"
[ "$(dig_short "$PORT" www.example.com CNAME)" = web.example.com. ] || fail "CNAME not served after a restart"
[ "$(call RemoveRecord sss www.example.com "" "")" = "u 1" ] || fail "RemoveRecord after restart"
grep -q www.example.com "$STATE/records.json" && fail "the state file still holds the removed record"
stop_daemon
# shellcheck disable=SC2086
start_daemon "$T/daemon3.log" $DAEMON_ARGS
[ -z "$(dig_short "$PORT" www.example.com CNAME)" ] || fail "a removed record came back after a restart"
ok "records added over D-Bus survive restarts (state file), removal too"

# The bus restarts under a running daemon: it reconnects and takes its name again.
kill "$BUS_PID"
wait "$BUS_PID" 2>/dev/null || true
rm -f "$T/bus/bus.sock"
start_system_bus "$T/bus" "$SRC"
wait_for "joyrided to come back to the new bus" 15 name_owned
grep -q 'Lost the connection to the system bus' "$T/daemon3.log" || fail "the lost bus is not reported"
[ "$(call ListRecords ss web.example.com dbus | cut -d' ' -f1-2)" = "a(sssus) 1" ] || fail "API after reconnecting"
ok "after the bus restarts, joyrided reconnects and owns its name again"

# A daemon that cannot reach the bus keeps serving DNS.
stop_daemon
# shellcheck disable=SC2086 # DAEMON_ARGS is a list of options without spaces
DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T/no-such-bus "$BUILD/src/joyrided" $DAEMON_ARGS --dns-bind-address=127.0.0.1 \
        --dns-port="$PORT" --state-directory="$STATE" --no-docker --no-http --no-cluster --bus=system \
        >"$T/nobus.log" 2>&1 </dev/null &
DAEMON_PID=$!
wait_for "DNS without a bus" 10 dig_is web.example.com A 10.0.0.1
grep -q 'Cannot connect to the system bus' "$T/nobus.log" || fail "no warning about the missing bus: $(cat "$T/nobus.log")"
kill -0 "$DAEMON_PID" || fail "joyrided died without a bus"
stop_daemon
ok "without a reachable bus joyrided warns and serves DNS, with its saved records"

# --- coalesced saves ----------------------------------------------------------
# 400 adds with up to 100 in flight (the bus allows 128 pending replies per
# connection): each reply must come only once the state file holds its record
# (bus-burst reads the file as each reply arrives), and the writes must be far
# fewer than the adds (counted by the daemon's debug line per write).
MAIN_STATE=$STATE
STATE=$T/burst-state
# shellcheck disable=SC2086
start_daemon "$T/burst.log" $DAEMON_ARGS --log-level=debug
"$BUILD/tools/bus-burst" --suffix burst.example.com --count 400 --window 100 --check-file "$STATE/records.json" >"$T/burst.out" ||
        fail "burst of adds: $(cat "$T/burst.out")"
writes=$(grep -c 'Saved [0-9]* record(s) to' "$T/burst.log" || true)
[ "$writes" -ge 1 ] && [ "$writes" -le 100 ] || fail "400 adds took $writes writes of the state file"
[ "$(dig_short "$PORT" b399.burst.example.com A)" = 10.0.1.143 ] || fail "the last record of the burst is not served"
python3 -c 'import json,sys; assert len(json.load(open(sys.argv[1]))["records"]) == 400' "$STATE/records.json" ||
        fail "the state file does not hold the 400 records"
"$BUILD/tools/bus-burst" --suffix burst.example.com --count 400 --window 100 --remove --check-file "$STATE/records.json" >"$T/burst.out" ||
        fail "burst of removals: $(cat "$T/burst.out")"
[ -z "$(dig_short "$PORT" b399.burst.example.com A)" ] || fail "a removed record of the burst is still served"
ok "a burst of 400 adds and 400 removals: each reply once the file holds it, $writes writes for the adds"

# A save that fails undoes the change and says so (rename over a directory fails, even for root).
rm -f "$STATE/records.json"
mkdir -p "$STATE/records.json/blocker"
expect_error org.freedesktop.DBus.Error.Failed "(Is a directory); nothing was changed." \
        AddRecord string:unsaved.example.com string: string:10.5.0.1 uint32:60
"$BUILD/tools/bus-burst" --suffix burst.example.com --count 50 --window 50 --prefix unsaved >"$T/burst.out" && fail "a burst that cannot be saved succeeded"
grep -q 'ok=0 failed=50' "$T/burst.out" || fail "failed burst: $(cat "$T/burst.out")"
[ -z "$(dig_short "$PORT" unsaved.example.com A)" ] || fail "a record whose save failed is served"
[ -z "$(dig_short "$PORT" unsaved7.burst.example.com A)" ] || fail "a burst record whose save failed is served"
[ "$(call ListRecords ss "" dbus)" = "a(sssus) 0" ] || fail "records whose save failed are listed"
stop_daemon
STATE=$MAIN_STATE
ok "a failed save undoes the change and the caller gets Failed saying so"

# A corrupt state file is moved aside; the daemon starts anyway.
echo '{ "version": 1, "records": [ { "name": ' >"$STATE/records.json"
# shellcheck disable=SC2086
start_daemon "$T/daemon4.log" $DAEMON_ARGS
aside=$(find "$STATE" -name 'records.json.corrupt-*')
[ -n "$aside" ] || fail "the corrupt state file was not moved aside: $(ls "$STATE")"
grep -q '"name": $' "$aside" || fail "the moved file is not the corrupt one"
grep -q "unusable" "$T/daemon4.log" || fail "no report of the corrupt state file"
[ "$(call ListRecords ss "" dbus)" = "a(sssus) 0" ] || fail "records from a corrupt file"
call AddRecord sssu fresh.example.com "" 10.4.0.1 60
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["records"][0]["name"] == "fresh.example.com"' \
        "$STATE/records.json" || fail "no new state file after a corrupt one"
stop_daemon
rm -f "$STATE"/records.json.corrupt-*
cat >"$STATE/records.json" <<'JSON'
{ "version": 1, "records": [
  { "name": "kept.example.com", "type": "A", "value": "10.4.0.2", "ttl": 60 },
  { "name": "bad..example.com", "type": "A", "value": "10.4.0.3", "ttl": 60 },
  { "name": "worse.example.com", "type": "MX", "value": "10 mx.example.com", "ttl": 60 } ] }
JSON
# shellcheck disable=SC2086
start_daemon "$T/daemon5.log" $DAEMON_ARGS
[ "$(call ListRecords ss "" dbus)" = 'a(sssus) 1 "kept.example.com" "A" "10.4.0.2" 60 "dbus"' ] ||
        fail "valid entries of a partly bad state file: $(call ListRecords ss "" dbus)"
grep -q 'record 2: empty label' "$T/daemon5.log" || fail "the bad name in the state file is not reported"
grep -q 'record 3: unknown record type' "$T/daemon5.log" || fail "the bad type in the state file is not reported"
grep -q bad..example.com "$STATE"/records.json.corrupt-* || fail "the partly bad state file was not kept aside"
grep -q bad..example.com "$STATE/records.json" && fail "the rewritten state file still has the bad entry"
call AddRecord sssu fresh.example.com "" 10.4.0.1 60
ok "a corrupt state file is reported and moved aside, and the daemon starts; bad entries are skipped"

# --- the cluster over D-Bus ---------------------------------------------------
# Two nodes on loopback only (a loopback bind turns broadcast discovery off):
# ours on the bus, a peer without one that joins it.
stop_daemon
SWIM1=$(free_port)
SWIM2=$(free_port)
# shellcheck disable=SC2086
start_daemon "$T/daemon-cluster.log" $DAEMON_ARGS --cluster --cluster-bind-address=127.0.0.1 --swim-port="$SWIM1"
[ "$(prop ClusterEnabled)" = "b true" ] || fail "ClusterEnabled: $(prop ClusterEnabled)"
[ "$(prop MemberCount)" = "u 1" ] || fail "MemberCount alone: $(prop MemberCount)"
start_monitor
"$CTL" monitor --json=short >"$T/ctl-monitor.json" 2>"$T/ctl-monitor.err" &
CTL_MONITOR_PID=$!
wait_for "joyridectl monitor to subscribe" 10 grep -q Monitoring "$T/ctl-monitor.err"
"$BUILD/src/joyrided" --node-id=peer --cluster --cluster-bind-address=127.0.0.1 --swim-port="$SWIM2" \
        --join="127.0.0.1:$SWIM1" --dns-bind-address=127.0.0.1 --dns-port="$(free_port)" \
        --state-directory="$T/peer-state" --no-docker --no-http --bus=none >"$T/peer.log" 2>&1 </dev/null &
PEER_PID=$!
wait_for "the peer as a member" 10 bash -c "busctl --system call org.joyride.DNS /org/joyride/DNS org.joyride.DNS ListMembers | grep -q '\"peer\" \"127.0.0.1:$SWIM2\" \"alive\"'"
[ "$(prop MemberCount)" = "u 2" ] || fail "MemberCount with a peer: $(prop MemberCount)"
call Sync >/dev/null || fail "Sync with a cluster failed"
"$CTL" --no-pager members | grep -q "peer" || fail "joyridectl members does not list the peer: $("$CTL" --no-pager members)"
"$CTL" members --json=short >"$T/members.json"
python3 - "$T/members.json" "$SWIM2" <<'PY' || fail "joyridectl members --json: $(cat "$T/members.json")"
import json, re, sys
members = {m['node_id']: m for m in json.load(open(sys.argv[1]))}
assert members['peer']['address'] == '127.0.0.1:' + sys.argv[2] and members['peer']['state'] == 'alive', members
assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', members['peer']['last_change']), members
PY
kill "$PEER_PID"
wait "$PEER_PID" 2>/dev/null || true
PEER_PID=
wait_for "the peer leaving" 10 bash -c "busctl --system call org.joyride.DNS /org/joyride/DNS org.joyride.DNS ListMembers | grep -q '\"peer\" \"127.0.0.1:$SWIM2\" \"left\"'"
# ForgetMember: the peer's pinned key, records and (gone now) membership.
wait_for "the peer's signing key pinned in $STATE/cluster-pins" 5 grep -q '^peer ' "$STATE/cluster-pins"
out=$(as_nobody busctl --system call org.joyride.DNS /org/joyride/DNS org.joyride.DNS ForgetMember s peer 2>&1) &&
        fail "nobody could call ForgetMember"
grep -q "Access denied" <<<"$out" || fail "ForgetMember as nobody: $out"
expect_error org.freedesktop.DBus.Error.InvalidArgs "is this node" ForgetMember string:"$NODE"
expect_error org.freedesktop.DBus.Error.InvalidArgs "Invalid node id" ForgetMember string:"no such/node"
"$CTL" members forget peer | grep -q "Forgot peer" || fail "joyridectl members forget peer"
call ListMembers | grep -q '"peer"' && fail "the peer is still listed after ForgetMember: $(call ListMembers)"
wait_for "the peer's key gone from cluster-pins" 5 bash -c "! grep -q '^peer ' '$STATE/cluster-pins'"
expect_error org.freedesktop.DBus.Error.InvalidArgs "Nothing is known of cluster node 'peer'" ForgetMember string:peer
grep -q 'NOTICE: ForgetMember("peer") over D-Bus by uid 0, pid [0-9][0-9]*\.$' "$T/daemon-cluster.log" ||
        fail "ForgetMember is not logged with the caller"
grep -q 'INFO: Sync() over D-Bus by uid 0, pid [0-9][0-9]*\.$' "$T/daemon-cluster.log" ||
        fail "Sync is not logged with the caller"
stop_monitor
kill -INT "$CTL_MONITOR_PID"
wait "$CTL_MONITOR_PID" || fail "joyridectl monitor did not exit 0 on SIGINT"
CTL_MONITOR_PID=
python3 - "$T/ctl-monitor.json" <<'PY' || fail "joyridectl monitor --json: $(cat "$T/ctl-monitor.json")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
states = [l['state'] for l in lines if l.get('change') == 'member' and l['node_id'] == 'peer']
assert 'alive' in states and 'left' in states, lines
assert all(l['timestamp'].endswith('Z') for l in lines), lines
PY
python3 - "$T/monitor.json" <<'PY' || fail "MemberChanged signals: $(grep -o '"member":"[A-Za-z]*"' "$T/monitor.json" | sort | uniq -c)"
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
changes = [m['payload']['data'] for m in msgs if m.get('member') == 'MemberChanged']
states = [c[2] for c in changes if c[0] == 'peer']
assert 'alive' in states and 'left' in states, changes
PY
ok "cluster over D-Bus: MemberCount, ListMembers, Sync, joyridectl members, MemberChanged (alive, left), ForgetMember"

# A node set up anew (another signing key, same id) is refused until the
# operator forgets the key pinned for it; then its records are served.
# start_peer STATE_DIR: the peer again, with a hosts file of its own.
start_peer() {
        "$BUILD/src/joyrided" --node-id=peer --cluster --cluster-bind-address=127.0.0.1 --swim-port="$SWIM2" \
                --join="127.0.0.1:$SWIM1" --dns-bind-address=127.0.0.1 --dns-port="$(free_port)" \
                --state-directory="$1" --hosts-directory="$T/peer-hosts" --no-docker --no-http --bus=none \
                >>"$T/peer.log" 2>&1 </dev/null &
        PEER_PID=$!
}
stop_peer() {
        kill "$PEER_PID"
        wait "$PEER_PID" 2>/dev/null || true
        PEER_PID=
}
peer_serves() { [ "$(dig_short "$PORT" peer.example.com A)" = "$1" ]; }
mkdir -p "$T/peer-hosts"
echo "10.77.0.1 peer.example.com" >"$T/peer-hosts/peer"
start_peer "$T/peer-state"
wait_for "peer.example.com from the peer, its key pinned again" 15 peer_serves 10.77.0.1
stop_peer
wait_for "the peer's records withdrawn once it left" 15 peer_serves ""
echo "10.77.0.2 peer.example.com" >"$T/peer-hosts/peer"
start_peer "$T/peer-state-new"
wait_for "a warning that the peer's key changed" 15 grep -q \
        "Cluster node peer (at 127.0.0.1:[0-9]*) shows a signing key other than the one pinned for it: refusing it. .*joyridectl members forget peer" \
        "$T/daemon-cluster.log"
# What it published under its old key stays withdrawn (SWIM says the node
# is alive, but SWIM's messages are not signed by the node), and what it
# publishes under the new one is not taken.
wait_for "the peer's old records to stay withdrawn while its new key is refused" 10 peer_serves ""
sleep 1
peer_serves "" || fail "peer.example.com answered while the peer is refused: $(dig_short "$PORT" peer.example.com A)"
# Its old state put back (the pinned key again): served without an operator.
stop_peer
start_peer "$T/peer-state"
wait_for "the peer served again under its pinned key" 15 peer_serves 10.77.0.2
stop_peer
start_peer "$T/peer-state-new"
"$CTL" members forget peer | grep -q "Forgot peer" || fail "joyridectl members forget peer (alive, with a new key)"
wait_for "peer.example.com from the peer under its new key" 15 peer_serves 10.77.0.2
new_key=$(cat "$T/peer-state-new/cluster-node.pub")
wait_for "the peer's new key in cluster-pins" 5 grep -qF "peer $new_key" "$STATE/cluster-pins"
stop_peer
ok "a node with a new signing key: refused with a warning until 'joyridectl members forget', then served and pinned"
stop_daemon
# shellcheck disable=SC2086
start_daemon "$T/daemon-after-cluster.log" $DAEMON_ARGS

# --- not running; bus activation -------------------------------------------

stop_daemon
set +e
"$CTL" status 2>"$T/err.txt"
rc=$?
set -e
[ $rc = 3 ] && grep -q 'joyrided is not running' "$T/err.txt" || fail "status without daemon: rc $rc, $(cat "$T/err.txt")"
ok "joyridectl says the daemon is not running (exit 3)"

grep -qx "Exec=$(meson introspect --buildoptions "$BUILD" 2>/dev/null | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(o["prefix"] + "/" + o["sbindir"])')/joyrided" "$BUILD/data/dbus/org.joyride.DNS.service" ||
        fail "the built activation file has no Exec= of the installed joyrided: $(cat "$BUILD/data/dbus/org.joyride.DNS.service")"
grep -qx 'SystemdService=joyride.service' "$BUILD/data/dbus/org.joyride.DNS.service" || fail "no SystemdService="
grep -qx 'Name=org.joyride.DNS' "$BUILD/data/dbus/org.joyride.DNS.service" || fail "no Name="
# The same file, pointed at this build and the test's arguments.
sed -e "s|^Exec=.*|Exec=$BUILD/src/joyrided $DAEMON_ARGS --dns-bind-address=127.0.0.1 --dns-port=$PORT --state-directory=$STATE --no-docker --no-http --no-cluster --bus=system|" \
        -e '/^User=/d' "$BUILD/data/dbus/org.joyride.DNS.service" >"$T/bus/services/org.joyride.DNS.service"
busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig
name_owned && fail "the daemon runs before activation"
[ "$(prop NodeId)" = "s \"$NODE\"" ] || fail "the first call did not activate the daemon"
ACTIVATED_PID=$(busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
        GetConnectionUnixProcessID s org.joyride.DNS | cut -d' ' -f2)
[ "$(readlink "/proc/$ACTIVATED_PID/exe")" = "$(readlink -f "$BUILD/src/joyrided")" ] || fail "the name's owner is not joyrided"
[ "$(dig_short "$PORT" fresh.example.com A)" = 10.4.0.1 ] || fail "the activated daemon does not serve the saved records"
kill "$ACTIVATED_PID"
for _ in $(seq 100); do
        [ -e "/proc/$ACTIVATED_PID" ] || break
        sleep 0.05
done
[ -e "/proc/$ACTIVATED_PID" ] && fail "the activated daemon did not stop"
ACTIVATED_PID=
"$CTL" status >/dev/null || fail "joyridectl status did not activate the daemon"
ACTIVATED_PID=$(busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
        GetConnectionUnixProcessID s org.joyride.DNS | cut -d' ' -f2)
kill "$ACTIVATED_PID"
ok "bus activation starts joyrided on the first call (busctl and joyridectl)"

# --- man page, completion ---------------------------------------------------

[ -f "$BUILD/src/joyridectl.1" ] || fail "joyridectl.1 was not built"
if command -v groff >/dev/null; then
        groff -man -Tutf8 -ww -z "$BUILD/src/joyridectl.1" 2>"$T/groff.txt" || fail "groff failed"
        [ ! -s "$T/groff.txt" ] || fail "groff warnings: $(cat "$T/groff.txt")"
        MANWIDTH=80 man -l "$BUILD/src/joyridectl.1" 2>/dev/null | grep -q 'joyridectl - query and change' ||
                fail "man page does not render"
fi
bash -n "$SRC/shell-completion/joyridectl" || fail "bash completion has syntax errors"
words=$(bash -c '
_init_completion() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }
compopt() { :; }
. "$1"
COMP_WORDS=(joyridectl re); COMP_CWORD=1; _joyridectl; echo "${COMPREPLY[*]}"
COMP_WORDS=(joyridectl --no-pager add x.example.com --type ""); COMP_CWORD=5; _joyridectl; echo "${COMPREPLY[*]}"
' _ "$SRC/shell-completion/joyridectl")
[ "$words" = "records remove reload
A AAAA CNAME TXT PTR" ] || fail "bash completion: '$words'"
ok "man page builds and renders; bash completion completes verbs"

echo "all bus tests passed"
