#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# joyrided as a system service under real systemd.
#
#   test-systemd.sh BUILDDIR
#
# Builds the Debian package from the tree (tools/make-deb; or takes the one
# named by JOYRIDE_DEB), boots a Debian bookworm tree (tests/systemd/
# make-tree.sh: debootstrap from apt's mirror, cached outside the build tree)
# with systemd-nspawn --volatile=overlay, so the cached tree is never
# written, installs the package there with `apt install ./joyride_*.deb` and
# checks what an admin would see:
#   - the package's scripts made the user joyride (in group docker), enabled
#     and started joyride.socket and joyride-http.socket, and left the
#     service to socket activation; the package, `joyrided --version`,
#     /health and D-Bus show the version of meson.build;
#   - systemd-analyze verify is clean and security --offline rates the
#     service 2.0 or lower;
#   - after `systemctl start joyride.socket joyride-http.socket` the service
#     is not running, and the first dig starts it and gets the answer;
#   - DNS over TCP and the HTTP API work on their socket-activated sockets
#     (the HTTP socket is not mistaken for DNS over TCP);
#   - the daemon runs as the user joyride, in group docker, with no
#     capabilities and no new privileges;
#   - journalctl -u joyride has the structured fields and MESSAGE_ID, and
#     journalctl -x the catalog text; a query at debug level carries
#     JOYRIDE_NAME, _TYPE, _RCODE and _CLIENT, a bad hosts line JOYRIDE_FILE
#     and _LINE, and a busctl AddRecord the caller's uid and pid;
#   - busctl introspect org.joyride.DNS works on the container's system bus;
#   - `systemctl restart joyride` under 200 queries/s loses none;
#   - systemd-resolved: without permission the registration fails with a
#     warning and DNS goes on; with the example polkit rule, resolvectl shows
#     the link's DNS server and domain and resolves joyride's names, again
#     after resolved restarts; stopping reverts the link;
#   - `systemctl stop` is clean: result success, exit status 0, no errors;
#   - an upgrade (`apt install --reinstall`, which runs the same scripts)
#     under 200 queries/s moves the running daemon to the new binary and
#     leaves the sockets open (the same invocation), enabled and listening;
#     no query is lost;
#   - `apt remove` stops the sockets and the running service and removes
#     them, and keeps the configuration, the state and the user;
#   - `apt purge` removes the configuration, the state and the units'
#     enablement, and keeps the user (Debian policy) and an admin's own
#     hosts file;
#   - then `make install` from the build folder (tools/install-system, bound
#     into the container) on this live system: it makes the user, the
#     folders, the D-Bus policy link and the catalog, reloads systemd, and
#     the service it names starts and answers; `make uninstall` stops it and
#     removes what it installed.
# The container has only loopback (--private-network) and runs commands
# through nsenter into its PID 1. Exit 77 (skip) only when this machine
# cannot run nspawn or the mirror cannot be reached, saying why.
set -euo pipefail

BUILD=$(realpath "${1:?usage: test-systemd.sh BUILDDIR}")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
. "$HERE/lib.sh"

skip() {
        echo "SKIP: $*"
        exit 77
}

[ "$(id -u)" -eq 0 ] || skip "systemd-nspawn needs root"
for tool in systemd-nspawn debootstrap nsenter dig curl python3; do
        command -v "$tool" >/dev/null || skip "$tool is missing (tools/install-deps installs it)"
done
# CAP_SYS_ADMIN (bit 21) for the mounts nspawn makes; missing in an
# unprivileged container.
capeff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
(((16#$capeff >> 21) & 1)) || skip "no CAP_SYS_ADMIN here (an unprivileged container?): nspawn cannot run"
[ -d /sys/fs/cgroup ] || skip "no cgroup file system: nspawn cannot run"

rc=0
TREE=$(bash "$SRC/tests/systemd/make-tree.sh" "$BUILD") || rc=$?
[ "$rc" -eq 77 ] && skip "no Debian tree to boot (see above)"
[ "$rc" -eq 0 ] || fail "could not make the Debian tree (see above)"

T=$(mktemp -d /tmp/joyride-systemd.XXXXXX)
NSPAWN=
cleanup() {
        local status=$?
        if [ "$status" -ne 0 ] && [ "$status" -ne 77 ] && [ -n "${C:-}" ] && kill -0 "$C" 2>/dev/null; then
                echo "--- journalctl -u joyride.service (last 40 lines)" >&2
                nsenter -t "$C" -a -- journalctl --no-pager -q -n 40 -u joyride.service >&2 || true
        fi
        if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
                kill -TERM "$NSPAWN" 2>/dev/null || true
                wait_pid_timeout "$NSPAWN" 20 >/dev/null 2>&1 || {
                        kill -KILL "$NSPAWN" 2>/dev/null || true
                        wait "$NSPAWN" 2>/dev/null || true
                }
        fi
        rm -rf --one-file-system "$T"
        exit "$status"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- the package ---------------------------------------------------------------
mkdir -p "$T/deb"
if [ -n "${JOYRIDE_DEB:-}" ]; then
        cp "$JOYRIDE_DEB" "$T/deb/" || fail "JOYRIDE_DEB=$JOYRIDE_DEB cannot be read"
else
        t0=$(date +%s)
        "$SRC/tools/make-deb" "$T/deb" >"$T/make-deb.log" 2>&1 ||
                {
                        tail -n 30 "$T/make-deb.log" >&2
                        fail "make deb failed"
                }
        ok "make deb: $(basename "$(tail -n1 "$T/make-deb.log")") in $(($(date +%s) - t0)) s, lintian clean"
fi
DEB=$(ls "$T"/deb/joyride_*.deb)
# apt's download user reads the package from the bind mount.
chmod 755 "$T" "$T/deb"
chmod 644 "$DEB"
VERSION=$(meson introspect "$SRC/meson.build" --projectinfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')

# --- boot ---------------------------------------------------------------------
systemd-nspawn -D "$TREE" --volatile=overlay --boot --register=no --keep-unit --private-network \
        --console=read-only -M "joyride-$$" --bind-ro="$T/deb:/srv/deb" \
        --bind-ro="$SRC" --bind="$BUILD" >"$T/console.log" 2>&1 </dev/null &
NSPAWN=$!

C=
find_init() {
        local child
        kill -0 "$NSPAWN" 2>/dev/null || return 2
        # shellcheck disable=SC2013 # the children files hold space-separated PIDs
        for child in $(cat /proc/"$NSPAWN"/task/*/children 2>/dev/null); do
                if [ "$(cat /proc/"$child"/comm 2>/dev/null)" = systemd ]; then
                        C=$child
                        return 0
                fi
        done
        return 1
}
deadline=$(($(date +%s) + 30))
until find_init; do
        [ $? -eq 2 ] && {
                cat "$T/console.log" >&2
                fail "systemd-nspawn exited"
        }
        [ "$(date +%s)" -lt "$deadline" ] || {
                cat "$T/console.log" >&2
                fail "no systemd in the container after 30 s"
        }
        sleep 0.05
done

# ct CMD...: a command inside the container, in all of its namespaces.
ct() { nsenter -t "$C" -a -- "$@"; }
# net CMD...: a host program (dig, curl, python3) in the container's network.
net() { nsenter -t "$C" -n -- "$@"; }
journal() { ct journalctl --no-pager -q "$@"; }
# dpkg's view of the package in the container: "STATUS VERSION", or nothing.
# shellcheck disable=SC2016 # dpkg-query's format, not a shell expansion
pkg_state() { ct dpkg-query -W -f='${Status} ${Version}' joyride 2>/dev/null || true; }

# PID 1 may still be setting up its namespaces when first seen: ask until it
# answers (is-system-running --wait then waits for the boot to finish).
state=
for _ in $(seq 1 100); do
        state=$(ct systemctl is-system-running --wait 2>/dev/null || true)
        [ -n "$state" ] && [ "$state" != offline ] && break
        sleep 0.1
        find_init || true
done
case "$state" in
        running | degraded) ok "container booted ($state)" ;;
        *) fail "container did not finish booting: $state" ;;
esac
[ "$state" = running ] || ct systemctl --failed --no-legend >&2 || true

# --- apt install ./joyride_*.deb ------------------------------------------------
# No network in the container: every dependency is in the tree already
# (make-tree.sh installs the owners of the libraries the build links).
ct env DEBIAN_FRONTEND=noninteractive apt-get install -y "/srv/deb/$(basename "$DEB")" \
        >"$T/apt-install.log" 2>&1 || {
        cat "$T/apt-install.log" >&2
        fail "apt install ./$(basename "$DEB") failed"
}
[ "$(pkg_state)" = "install ok installed $VERSION" ] || fail "dpkg does not show joyride $VERSION installed: $(pkg_state)"
ct getent passwd joyride >/dev/null || fail "the package did not create the user joyride"
ct id -nG joyride | grep -qw docker || fail "joyride is not in the group docker: $(ct id joyride)"
for u in joyride.socket joyride-http.socket; do
        [ "$(ct systemctl is-enabled "$u" || true)" = enabled ] || fail "$u is not enabled after apt install"
        [ "$(ct systemctl is-active "$u" || true)" = active ] || fail "$u is not started after apt install"
done
[ "$(ct systemctl is-active joyride.service || true)" = inactive ] || fail "joyride.service runs before any query"
[ "$(ct systemctl is-enabled joyride.service || true)" = disabled ] ||
        fail "joyride.service is $(ct systemctl is-enabled joyride.service || true), want disabled (socket-activated)"
[ "$(ct stat -c %U:%a /etc/joyride/hosts.d)" = root:755 ] || fail "/etc/joyride/hosts.d: $(ct stat -c %U:%a /etc/joyride/hosts.d)"
ok "apt install ./$(basename "$DEB"): $(ct id joyride); sockets enabled and listening, service waits for a query"

# The admin's configuration: names from a hosts file, no Docker here, and
# registration with resolved on a link of its own. joyride.conf is the
# package's conffile, edited.
ct sh -c 'cat >/etc/joyride/joyride.conf' <<'EOF'
[DNS]
Domains=example.internal

[Hosts]
Directory=/etc/joyride/hosts.d

[Docker]
Enabled=false

[Resolved]
Link=joy0
EOF
printf '10.1.2.3 web.example.internal\n10.1.2.4 db.example.internal\n' | ct sh -c 'cat >/etc/joyride/hosts.d/test.hosts'

# --- systemd-analyze ---------------------------------------------------------
units=(joyride.service joyride.socket joyride-http.socket)
out=$(ct systemd-analyze verify --man=no "${units[@]}" 2>&1) || fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify is not clean: $out"
ok "systemd-analyze verify ${units[*]}: clean"
unitfile=$(ct systemctl show -P FragmentPath joyride.service)
security=$(ct systemd-analyze security --offline=true --no-pager "$unitfile" 2>&1 || true)
exposure=$(sed -n 's/.*Overall exposure level for joyride.service: \([0-9.]*\).*/\1/p' <<<"$security")
[ -n "$exposure" ] || fail "no exposure level from systemd-analyze security: $security"
python3 -c "import sys; sys.exit(0 if float('$exposure') <= 2.0 else 1)" ||
        fail "exposure $exposure is above 2.0: $(grep '✗' <<<"$security")"
ok "systemd-analyze security --offline=true joyride.service: exposure $exposure"

# A link of its own for resolved, with carrier and an address (a veth pair:
# this kernel may have no dummy driver).
have_link=1
if ! ct ip link add joy0 type veth peer name joy0p 2>"$T/link.err" ||
        ! ct ip addr add 10.99.0.1/24 dev joy0 || ! ct ip link set joy0p up || ! ct ip link set joy0 up; then
        echo "# no veth link in the container ($(cat "$T/link.err")): the resolved checks are skipped"
        have_link=0
fi

# --- socket activation -------------------------------------------------------
answer=$(net dig @127.0.0.1 -p 5353 +short +tries=1 +time=10 web.example.internal A) || true
[ "$answer" = 10.1.2.3 ] || fail "the first query (which starts the service) got '$answer', not 10.1.2.3"
[ "$(ct systemctl is-active joyride.service)" = active ] || fail "joyride.service is not active after the first query"
ok "the first dig started joyride.service and got 10.1.2.3"

answer=$(net dig @127.0.0.1 -p 5353 +short +tries=1 +time=2 +tcp db.example.internal A) || true
[ "$answer" = 10.1.2.4 ] || fail "DNS over TCP on the socket-activated port answered '$answer'"
health=$(net curl -sf --max-time 5 http://127.0.0.1:5000/health) || fail "no HTTP answer on the socket-activated port 5000"
grep -q '"joyride-dns"\|healthy\|ok' <<<"$health" || fail "unexpected /health: $health"
journal -u joyride.service | grep -q "Received 3 socket(s) from the service manager" ||
        fail "the daemon did not report 3 passed sockets"
ok "DNS over TCP and HTTP on their passed sockets (3 sockets, HTTP not taken for DNS)"

mainpid=$(ct systemctl show -P MainPID joyride.service)
status=$(ct cat /proc/"$mainpid"/status)
uid=$(awk '/^Uid:/ { print $2 }' <<<"$status")
[ "$uid" = "$(ct id -u joyride)" ] || fail "the daemon runs as uid $uid, not joyride"
docker_gid=$(ct getent group docker | cut -d: -f3)
awk '/^Groups:/' <<<"$status" | grep -qw "$docker_gid" || fail "the daemon is not in the group docker: $(grep Groups <<<"$status")"
grep -q '^CapEff:[[:space:]]*0000000000000000' <<<"$status" || fail "the daemon has capabilities: $(grep Cap <<<"$status")"
grep -q '^NoNewPrivs:[[:space:]]*1' <<<"$status" || fail "NoNewPrivileges is not set"
[ "$(ct stat -c %U:%a /var/lib/joyride)" = joyride:700 ] || fail "state folder: $(ct stat -c %U:%a /var/lib/joyride)"
nofile=$(ct cat /proc/"$mainpid"/limits | awk '/^Max open files/ { print $4 }')
[ "$nofile" = 2048 ] || fail "LimitNOFILE= of the unit is not in force: max open files $nofile"
ct journalctl -u joyride.service --no-pager | grep -q 'file descriptor limit' &&
        fail "the daemon says its caps do not fit in LimitNOFILE="
ok "running as joyride (groups include docker), no capabilities, NoNewPrivs, state folder joyride 0700, 2048 fds"

# Background threads yield to DNS: the unit's system call filter must leave
# setpriority() to the daemon, or every thread runs at the same level.
threads=$(ct sh -c "for t in /proc/$mainpid/task/*; do printf '%s %s\n' \"\$(cat \$t/comm)\" \"\$(sed 's/.*) //' \$t/stat | cut -d' ' -f17)\"; done")
grep -qx 'hosts-reader 10' <<<"$threads" || fail "the hosts worker does not run ten nice levels down: $(tr '\n' ',' <<<"$threads")"
grep -qx 'state-writer 10' <<<"$threads" || fail "the state writer does not run ten nice levels down: $(tr '\n' ',' <<<"$threads")"
grep -qx 'joyrided 0' <<<"$threads" || fail "the control loop does not run at nice 0: $(tr '\n' ',' <<<"$threads")"
ok "threads at their nice levels: $(awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }' <<<"$threads")"
# ... and sched_setattr(): the answering threads ask for a short time slice
# (shown as se.slice on kernels with EEVDF, 6.12 and later).
if grep -q '^se.slice' /proc/self/sched 2>/dev/null; then
        slices=$(ct sh -c "for t in /proc/$mainpid/task/*; do printf '%s %s\n' \"\$(cat \$t/comm)\" \"\$(awk '\$1 == \"se.slice\" { print \$3 }' \$t/sched)\"; done")
        grep -q '^dns-0 100000$' <<<"$slices" ||
                fail "the answering thread has no 0.1 ms time slice under the unit's sandbox: $(tr '\n' ',' <<<"$slices")"
        ok "answering threads with a 0.1 ms time slice under the unit's sandbox"
fi

systemd_status=$(ct systemctl show -P StatusText joyride.service)
grep -q "Serving" <<<"$systemd_status" || fail "no STATUS= from the daemon: '$systemd_status'"
ok "systemctl status says: $systemd_status"

# A hosts file change shows up in the journal as a structured entry.
ct sh -c 'echo "10.1.2.5 new.example.internal" >> /etc/joyride/hosts.d/test.hosts'
wait_for "new.example.internal in DNS" 10 sh -c \
        "[ \"\$(nsenter -t $C -n -- dig @127.0.0.1 -p 5353 +short +tries=1 +time=1 new.example.internal)\" = 10.1.2.5 ]"

# --- journal -----------------------------------------------------------------
wait_for "the journal entry of new.example.internal" 10 sh -c \
        "nsenter -t $C -a -- journalctl -q --no-pager -u joyride.service JOYRIDE_NAME=new.example.internal | grep -q ."
journal -u joyride.service -o verbose JOYRIDE_NAME=web.example.internal >"$T/verbose.txt"
for field in JOYRIDE_NAME=web.example.internal JOYRIDE_TYPE=A JOYRIDE_VALUE=10.1.2.3 JOYRIDE_CHANGE=added \
        "JOYRIDE_SOURCE=.*test.hosts" MESSAGE_ID=f1230bff301e43edbb29e89cd77b2caf SYSLOG_IDENTIFIER=joyrided \
        "_SYSTEMD_UNIT=joyride.service"; do
        grep -q "^ *$field" "$T/verbose.txt" || fail "journalctl -u joyride -o verbose lacks $field: $(cat "$T/verbose.txt")"
done
ok "journalctl -u joyride -o verbose: JOYRIDE_NAME, _TYPE, _VALUE, _SOURCE, _CHANGE and MESSAGE_ID"
journal -u joyride.service -x MESSAGE_ID=f1230bff301e43edbb29e89cd77b2caf JOYRIDE_NAME=new.example.internal >"$T/x.txt"
grep -q "Subject: DNS record added: new.example.internal A 10.1.2.5" "$T/x.txt" ||
        fail "journalctl -x does not show the catalog entry: $(cat "$T/x.txt")"
ok "journalctl -x shows the catalog: $(grep -o 'Subject: .*' "$T/x.txt" | head -n1)"

# journal_has MATCH...: joyride.service has an entry matching all of MATCH.
journal_has() { [ -n "$(journal -u joyride.service "$@")" ]; }
# check_json FILE PYTHON: runs PYTHON with `e`, the entries of FILE
# (journalctl -o json), and `env`, the environment.
check_json() {
        python3 -c 'import json, os, sys
e = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
env = os.environ
exec(sys.argv[2])' "$1" "$2"
}

# A query at debug level: its entry carries the name (as records spell it),
# the type, the rcode and the client's address (IPv4, although the socket is
# dual-stack [::]:5353), and one CODE_FILE, _LINE and _FUNC: the caller's.
ct busctl --system call org.joyride.DNS /org/joyride/DNS org.joyride.DNS SetLogLevel s debug
net dig @127.0.0.1 -p 5353 +tries=1 +time=2 Nope.Example.Internal AAAA >/dev/null || true
wait_for "the journal entry of the query" 10 journal_has JOYRIDE_NAME=nope.example.internal
journal -u joyride.service -o json JOYRIDE_NAME=nope.example.internal >"$T/query.json"
check_json "$T/query.json" '
q = [x for x in e if x["MESSAGE"].startswith("Query ")]
assert len(q) == 1, e
x = q[0]
assert x["MESSAGE"].startswith("Query Nope.Example.Internal. AAAA from "), x
assert (x["JOYRIDE_TYPE"], x["JOYRIDE_RCODE"], x["JOYRIDE_CLIENT"], x["PRIORITY"]) == ("AAAA", "NXDOMAIN", "127.0.0.1", "7"), x
assert x["CODE_FUNC"] == "log_query_debug" and isinstance(x["CODE_FILE"], str), x' ||
        fail "the query's journal entry lacks its fields: $(cat "$T/query.json")"
ct busctl --system call org.joyride.DNS /org/joyride/DNS org.joyride.DNS SetLogLevel s info
ok "a query at debug level: JOYRIDE_NAME, JOYRIDE_TYPE=AAAA, JOYRIDE_RCODE=NXDOMAIN, JOYRIDE_CLIENT=127.0.0.1"

# A bad line in a hosts file: the warning as ever, with the file and line.
hosts=/etc/joyride/hosts.d/test.hosts
ct sh -c "echo '10.1.2.300 bad.example.internal' >>$hosts"
bad_line=$(ct sh -c "wc -l <$hosts")
wait_for "the warning about $hosts:$bad_line" 10 journal_has JOYRIDE_FILE="$hosts" JOYRIDE_LINE="$bad_line"
journal -u joyride.service -o json JOYRIDE_FILE="$hosts" JOYRIDE_LINE="$bad_line" >"$T/hosts.json"
want="$hosts:$bad_line: not an IP address: '10.1.2.300'" check_json "$T/hosts.json" '
assert e and all(x["MESSAGE"] == env["want"] and x["PRIORITY"] == "4" for x in e), e' ||
        fail "the hosts warning's journal entry: $(cat "$T/hosts.json")"
ct sed -i "\$d" "$hosts"
ok "a bad hosts line: $(check_json "$T/hosts.json" 'print(e[0]["MESSAGE"])'), with JOYRIDE_FILE and JOYRIDE_LINE=$bad_line"

# Writes over D-Bus name their caller: the uid, and the pid of busctl itself
# (the shell that prints its pid becomes busctl). JOYRIDE_NAME brings the
# call and the changes it made together.
caller=$(ct sh -c 'echo $$; exec busctl --system call org.joyride.DNS /org/joyride/DNS org.joyride.DNS AddRecord sssu added.example.internal "" 10.1.2.9 0 >/dev/null')
remover=$(ct sh -c 'echo $$; exec busctl --system call org.joyride.DNS /org/joyride/DNS org.joyride.DNS RemoveRecord sss added.example.internal "" "" >/dev/null')
wait_for "the journal entries of added.example.internal" 10 journal_has JOYRIDE_NAME=added.example.internal JOYRIDE_CHANGE=removed
journal -u joyride.service -o json JOYRIDE_NAME=added.example.internal >"$T/calls.json"
caller=$caller remover=$remover check_json "$T/calls.json" '
calls = {x["JOYRIDE_METHOD"]: x for x in e if "JOYRIDE_METHOD" in x}
a, r = calls["AddRecord"], calls["RemoveRecord"]
assert a["MESSAGE"] == "AddRecord(\"added.example.internal\", \"\", \"10.1.2.9\", 0) over D-Bus by uid 0, pid %s." % env["caller"], a
assert (a["JOYRIDE_CALLER_UID"], a["JOYRIDE_CALLER_PID"], a["JOYRIDE_TYPE"], a["PRIORITY"]) == ("0", env["caller"], "A", "6"), a
assert (r["JOYRIDE_CALLER_UID"], r["JOYRIDE_CALLER_PID"]) == ("0", env["remover"]), r
assert a["MESSAGE_ID"] == r["MESSAGE_ID"] == "281883d6d8f64e038a480c80ecc604df", (a, r)
assert [x.get("JOYRIDE_METHOD") or x["JOYRIDE_CHANGE"] for x in e] == ["AddRecord", "added", "RemoveRecord", "removed"], e' ||
        fail "the D-Bus calls' journal entries: $(cat "$T/calls.json")"
journal -u joyride.service -o json JOYRIDE_METHOD=SetLogLevel >"$T/setloglevel.json"
check_json "$T/setloglevel.json" '
assert [(x["MESSAGE"].split(")")[0], x["JOYRIDE_CALLER_UID"], x["PRIORITY"]) for x in e] == [("SetLogLevel(\"debug\"", "0", "5"), ("SetLogLevel(\"info\"", "0", "5")], e' ||
        fail "SetLogLevel's journal entries: $(cat "$T/setloglevel.json")"
journal -u joyride.service -x MESSAGE_ID=281883d6d8f64e038a480c80ecc604df JOYRIDE_METHOD=AddRecord >"$T/x-call.txt"
grep -q "Subject: AddRecord over D-Bus by uid 0" "$T/x-call.txt" ||
        fail "journalctl -x does not explain the D-Bus call: $(cat "$T/x-call.txt")"
ok "busctl AddRecord: '$(check_json "$T/calls.json" 'print(e[0]["MESSAGE"])')' with JOYRIDE_CALLER_UID=0, JOYRIDE_CALLER_PID=$caller"

# --- D-Bus -------------------------------------------------------------------
intro=$(ct busctl --system introspect org.joyride.DNS /org/joyride/DNS) || fail "busctl introspect failed"
grep -q '^org.joyride.DNS ' <<<"$intro" || fail "busctl introspect shows no org.joyride.DNS interface: $intro"
ok "busctl introspect org.joyride.DNS /org/joyride/DNS: $(grep -c '^\.' <<<"$intro") members"
ct joyridectl query web.example.internal | grep -q 10.1.2.3 || fail "joyridectl query does not resolve web.example.internal"
ok "joyridectl query web.example.internal"

# --- one version everywhere ----------------------------------------------------
cli=$(ct joyrided --version)
[ "$cli" = "joyrided $VERSION" ] || fail "joyrided --version says '$cli', meson.build $VERSION"
hv=$(net curl -sf --max-time 5 http://127.0.0.1:5000/health | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
[ "$hv" = "$VERSION" ] || fail "/health says version '$hv', meson.build $VERSION"
bv=$(ct busctl --system get-property org.joyride.DNS /org/joyride/DNS org.joyride.DNS DaemonVersion)
[ "$bv" = "s \"$VERSION\"" ] || fail "D-Bus DaemonVersion is $bv, meson.build $VERSION"
ok "version $VERSION: package, joyrided --version, /health and D-Bus DaemonVersion agree"

# --- resolved, without the permission: a warning, DNS goes on ----------------
if [ "$have_link" = 1 ]; then
        wait_for "the resolved warning" 10 sh -c \
                "nsenter -t $C -a -- journalctl -q --no-pager -u joyride.service -p warning | grep -q 'systemd-resolved refused'"
        ok "without a polkit rule: $(journal -u joyride.service -p warning -o cat | grep -m1 'systemd-resolved refused')"
fi

# --- reload ------------------------------------------------------------------
ct systemctl reload joyride.service || fail "systemctl reload joyride failed"
wait_for "the reload in the journal" 10 sh -c \
        "nsenter -t $C -a -- journalctl -q --no-pager -u joyride.service | grep -q 'Received SIGHUP, reloading'"
[ "$(ct systemctl show -P MainPID joyride.service)" = "$mainpid" ] || fail "reload restarted the daemon"
ok "systemctl reload joyride: SIGHUP, same process"

# --- restart under load --------------------------------------------------------
net python3 "$SRC/tests/systemd/query-stream.py" 5353 web.example.internal 10.1.2.3 200 5 >"$T/stream.json" 2>&1 &
stream=$!
sleep 1.5
ct systemctl restart joyride.service || fail "systemctl restart joyride failed"
restarted_pid=$(ct systemctl show -P MainPID joyride.service)
stream_rc=0
wait "$stream" || stream_rc=$?
[ "$restarted_pid" != "$mainpid" ] && [ "$restarted_pid" != 0 ] || fail "the service did not restart (MainPID $mainpid -> $restarted_pid)"
[ "$stream_rc" -eq 0 ] || fail "queries lost across systemctl restart: $(cat "$T/stream.json")"
ok "systemctl restart joyride under 200 queries/s for 5 s: $(cat "$T/stream.json")"

# --- resolved, with the permission ------------------------------------------
# The installed example polkit rule; polkitd watches its rules folder.
if [ "$have_link" = 1 ]; then
        rules=/usr/share/doc/joyride/examples/joyride-resolved.rules
        ct test -f "$rules" || fail "the package does not ship the example polkit rule $rules"
        ct cp "$rules" /etc/polkit-1/rules.d/50-joyride-resolved.rules
        ct systemctl restart polkit.service
        ct systemctl restart joyride.service
        wait_for "registration with resolved" 10 sh -c \
                "nsenter -t $C -a -- journalctl -q --no-pager -u joyride.service | grep -q 'Registered with systemd-resolved on link joy0'"
        link=$(ct resolvectl status joy0)
        grep -q "DNS Servers: 127.0.0.1:5353" <<<"$link" || fail "resolvectl status joy0 lacks the DNS server: $link"
        grep -q "DNS Domain: ~example.internal" <<<"$link" || fail "resolvectl status joy0 lacks ~example.internal: $link"
        grep -q -- "-DefaultRoute" <<<"$link" || fail "joy0 is a default route for resolved: $link"
        ok "resolvectl status joy0: DNS 127.0.0.1:5353, ~example.internal, not a default route"
        answer=$(ct resolvectl query --cache=no --legend=no web.example.internal 2>&1) || true
        grep -q "10.1.2.3" <<<"$answer" || fail "resolvectl query web.example.internal: $answer"
        ok "resolvectl query web.example.internal: $(head -n1 <<<"$answer")"

        # resolved restarts: joyrided sees the name come back and registers again.
        before=$(journal -u joyride.service | grep -c 'Registered with systemd-resolved' || true)
        ct systemctl restart systemd-resolved
        wait_for "registration after resolved restarted" 10 sh -c \
                "[ \$(nsenter -t $C -a -- journalctl -q --no-pager -u joyride.service | grep -c 'Registered with systemd-resolved') -gt $before ]"
        wait_for "resolved to answer again" 10 sh -c \
                "nsenter -t $C -a -- resolvectl query --cache=no --legend=no web.example.internal | grep -q 10.1.2.3"
        ok "registered again after systemd-resolved restarted"
fi

# --- upgrade: the package again, while it serves ----------------------------------
# dpkg runs an upgrade's scripts for a reinstall too (postinst configure with
# the old version). The daemon must move to the unpacked joyrided; the
# sockets must stay open (PID 1 holds them, so queries wait there), which
# their InvocationID shows: a restarted unit gets a new one.
sock_ids() { ct systemctl show -P InvocationID joyride.socket joyride-http.socket | tr '\n' ' '; }
ids_before=$(sock_ids)
pid_before=$(ct systemctl show -P MainPID joyride.service)
net python3 "$SRC/tests/systemd/query-stream.py" 5353 web.example.internal 10.1.2.3 200 8 >"$T/stream-upgrade.json" 2>&1 &
stream=$!
sleep 1
ct env DEBIAN_FRONTEND=noninteractive apt-get install -y --reinstall "/srv/deb/$(basename "$DEB")" \
        >"$T/apt-reinstall.log" 2>&1 </dev/null || {
        cat "$T/apt-reinstall.log" >&2
        fail "apt install --reinstall ./$(basename "$DEB") failed"
}
pid_after=$(ct systemctl show -P MainPID joyride.service)
stream_rc=0
wait "$stream" || stream_rc=$?
[ "$pid_after" != "$pid_before" ] && [ "$pid_after" != 0 ] ||
        fail "the upgrade did not restart joyride.service onto the new binary (MainPID $pid_before -> $pid_after)"
[ "$(sock_ids)" = "$ids_before" ] ||
        fail "the upgrade restarted the sockets (InvocationID $ids_before-> $(sock_ids)): queries waiting in them were dropped"
for u in joyride.socket joyride-http.socket; do
        [ "$(ct systemctl is-enabled "$u" || true)" = enabled ] || fail "$u is not enabled after the upgrade"
        [ "$(ct systemctl is-active "$u" || true)" = active ] || fail "$u is not listening after the upgrade"
done
[ "$stream_rc" -eq 0 ] || fail "queries lost across the upgrade: $(cat "$T/stream-upgrade.json")"
[ "$(pkg_state)" = "install ok installed $VERSION" ] || fail "dpkg status after the upgrade: $(pkg_state)"
ok "upgrade (apt install --reinstall) under 200 queries/s: service restarted ($pid_before -> $pid_after), sockets untouched and enabled; $(cat "$T/stream-upgrade.json")"

# --- stop ----------------------------------------------------------------------
ct systemctl stop joyride.service joyride.socket joyride-http.socket || fail "systemctl stop failed"
result=$(ct systemctl show -P Result joyride.service)
code=$(ct systemctl show -P ExecMainStatus joyride.service)
[ "$result" = success ] && [ "$code" = 0 ] || fail "stop: Result=$result ExecMainStatus=$code"
journal -u joyride.service >"$T/journal.txt"
grep -q "Received Terminated, shutting down" "$T/journal.txt" || fail "no clean shutdown in the journal"
errors=$(journal -u joyride.service -p err -o cat)
[ -z "$errors" ] || fail "errors in journalctl -u joyride: $errors"
answer=$(net dig @127.0.0.1 -p 5353 +short +tries=1 +time=1 web.example.internal 2>&1) && fail "DNS still answers after stop: $answer"
if [ "$have_link" = 1 ]; then
        # By identifier: journald may no longer tell the unit of a process
        # that is exiting.
        journal -t joyrided | grep -q "Reverted the systemd-resolved settings of link joy0" || fail "no RevertLink on stop"
        link=$(ct resolvectl status joy0)
        ! grep -q "127.0.0.1:5353" <<<"$link" || fail "joy0 keeps joyride's DNS server after stop: $link"
        ok "stop reverted joy0 in resolved"
fi
ok "systemctl stop: Result=success, exit status 0, no errors in the journal, port closed"

# --- apt remove: units stopped and gone, configuration, state and user kept ------
ct systemctl start joyride.socket joyride-http.socket
answer=$(net dig @127.0.0.1 -p 5353 +short +tries=1 +time=10 web.example.internal A) || true
[ "$answer" = 10.1.2.3 ] || fail "after a new start the first query got '$answer'"
[ "$(ct systemctl is-active joyride.service)" = active ] || fail "joyride.service did not start again"
ct env DEBIAN_FRONTEND=noninteractive apt-get remove -y joyride >"$T/apt-remove.log" 2>&1 ||
        {
                cat "$T/apt-remove.log" >&2
                fail "apt remove joyride failed"
        }
for u in joyride.service joyride.socket joyride-http.socket; do
        [ "$(ct systemctl is-active "$u" || true)" = inactive ] || fail "$u is still $(ct systemctl is-active "$u") after apt remove"
        [ "$(ct systemctl show -P LoadState "$u")" = not-found ] || fail "$u is still known to systemd after apt remove"
done
! ct test -e /usr/sbin/joyrided || fail "/usr/sbin/joyrided is still there after apt remove"
answer=$(net dig @127.0.0.1 -p 5353 +short +tries=1 +time=1 web.example.internal 2>&1) && fail "DNS answers after apt remove: $answer"
! net curl -sf --max-time 2 http://127.0.0.1:5000/health >/dev/null || fail "the HTTP port answers after apt remove"
[ "$(pkg_state)" = "deinstall ok config-files $VERSION" ] || fail "dpkg status after remove: $(pkg_state)"
ct grep -q '^Link=joy0' /etc/joyride/joyride.conf || fail "apt remove did not keep the edited joyride.conf"
ct test -d /var/lib/joyride || fail "apt remove did not keep /var/lib/joyride"
ct getent passwd joyride >/dev/null || fail "apt remove removed the user joyride"
ok "apt remove: service and sockets stopped and gone, ports closed; joyride.conf, /var/lib/joyride and the user kept"

# --- apt purge: configuration and state gone, user kept ---------------------------
ct env DEBIAN_FRONTEND=noninteractive apt-get purge -y joyride >"$T/apt-purge.log" 2>&1 ||
        {
                cat "$T/apt-purge.log" >&2
                fail "apt purge joyride failed"
        }
! ct test -e /etc/joyride/joyride.conf || fail "apt purge left /etc/joyride/joyride.conf"
! ct test -e /var/lib/joyride || fail "apt purge left /var/lib/joyride"
! ct test -e /etc/systemd/system/sockets.target.wants/joyride.socket || fail "apt purge left joyride.socket enabled"
state=$(pkg_state)
[ -z "$state" ] || [ "$state" = "unknown ok not-installed " ] || fail "dpkg still knows joyride after purge: $state"
ct getent passwd joyride >/dev/null || fail "apt purge removed the user joyride (Debian policy keeps system users)"
ct test -f /etc/joyride/hosts.d/test.hosts || fail "apt purge removed the admin's own hosts file"
ok "apt purge: joyride.conf, /var/lib/joyride and the enablement gone; the user and the admin's hosts file kept"

# --- make install on the live system (the step make runs after building) -----------
# A system without the user, as before the first install.
ct userdel joyride
ct sh -c 'groupdel joyride 2>/dev/null || true'
ct "$SRC/tools/install-system" install "$BUILD" >"$T/make-install.log" 2>&1 ||
        {
                cat "$T/make-install.log" >&2
                fail "make install (tools/install-system) failed in the container"
        }
ct getent passwd joyride >/dev/null || fail "make install did not create the user joyride: $(cat "$T/make-install.log")"
[ "$(ct stat -c %U:%a /var/lib/joyride)" = joyride:700 ] || fail "make install did not make /var/lib/joyride"
grep -q 'systemctl enable --now joyride.socket joyride-http.socket' "$T/make-install.log" ||
        fail "make install does not say how to start: $(cat "$T/make-install.log")"
ct systemctl cat joyride.service >/dev/null 2>&1 || fail "systemd does not know joyride.service after make install"
printf '[Hosts]\nDirectory=/etc/joyride/hosts.d\n[Docker]\nEnabled=false\n' | ct sh -c 'cat >/etc/joyride/joyride.conf'
ct systemctl enable --now joyride.socket joyride-http.socket 2>/dev/null || fail "systemctl enable --now after make install failed"
answer=$(net dig @127.0.0.1 -p 5353 +short +tries=1 +time=10 web.example.internal A) || true
[ "$answer" = 10.1.2.3 ] || fail "after make install the first query got '$answer'"
ct busctl --system introspect org.joyride.DNS /org/joyride/DNS >/dev/null || fail "org.joyride.DNS not on the bus after make install"
ok "make install on the live system: $(grep -c '^make install:' "$T/make-install.log") steps reported, user, state folder, D-Bus policy; the service starts and answers"

ct "$SRC/tools/install-system" uninstall "$BUILD" >"$T/make-uninstall.log" 2>&1 ||
        {
                cat "$T/make-uninstall.log" >&2
                fail "make uninstall failed in the container"
        }
for u in joyride.service joyride.socket joyride-http.socket; do
        [ "$(ct systemctl is-active "$u" || true)" = inactive ] || fail "$u still runs after make uninstall"
        [ "$(ct systemctl show -P LoadState "$u")" = not-found ] || fail "$u is still known to systemd after make uninstall"
done
answer=$(net dig @127.0.0.1 -p 5353 +short +tries=1 +time=1 web.example.internal 2>&1) && fail "DNS answers after make uninstall: $answer"
! ct test -e /etc/dbus-1/system.d/org.joyride.DNS.conf || fail "make uninstall left the D-Bus policy link"
grep -q 'kept, as apt remove does' "$T/make-uninstall.log" || fail "make uninstall does not say what it kept: $(cat "$T/make-uninstall.log")"
ok "make uninstall: units stopped and gone, port closed, $(grep -o 'removed [0-9]* files' "$T/make-uninstall.log")"
echo "all systemd checks passed"
