#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make install` and `make uninstall`, staged with DESTDIR (this machine's
# own / is never installed into; the live-system steps run in the systemd
# test's container).
#
#   test-install.sh BUILDDIR
#
#   - make install DESTDIR=D: the daemon, the client, the units, sysusers and
#     tmpfiles entries, the D-Bus files, the catalog, man pages, completion
#     and translations land under D; the message says that nothing on this
#     system was changed, and nothing was (no user, no D-Bus link);
#   - PREFIX=/opt/joyride (a build folder of its own, configured for the
#     default prefix first): the files go under /opt/joyride and the unit and
#     the D-Bus activation file start /opt/joyride/sbin/joyrided;
#   - make uninstall DESTDIR=D removes every file it installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
source "$here/lib.sh"

build=$(realpath "${1:?usage: test-install.sh BUILDDIR}")
tmp=$(mktemp -d /tmp/joyride-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

prefix=$(meson introspect "$build" --buildoptions |
        python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
had_user=0
getent passwd joyride >/dev/null && had_user=1
had_link=0
[ -e /etc/dbus-1/system.d/org.joyride.DNS.conf ] && had_link=1

# --- DESTDIR ----------------------------------------------------------------------
d=$tmp/stage
make -s -C "$src" install BUILD="$build" DESTDIR="$d" >"$tmp/install.log" 2>&1 ||
        {
                cat "$tmp/install.log" >&2
                fail "make install DESTDIR=$d failed"
        }
want=(
        "$prefix/sbin/joyrided" "$prefix/bin/joyridectl"
        "$prefix/lib/sysusers.d/joyride.conf" "$prefix/lib/tmpfiles.d/joyride.conf"
        "$prefix/lib/systemd/catalog/joyride.catalog"
        "$prefix/share/dbus-1/system.d/org.joyride.DNS.conf"
        "$prefix/share/dbus-1/system-services/org.joyride.DNS.service"
        "$prefix/share/dbus-1/interfaces/org.joyride.DNS.xml"
        "$prefix/share/man/man8/joyrided.8" "$prefix/share/man/man5/joyride.conf.5" "$prefix/share/man/man1/joyridectl.1"
        "$prefix/share/bash-completion/completions/joyridectl"
)
for f in "${want[@]}"; do
        [ -f "$d$f" ] || fail "make install DESTDIR: $f is missing under $d"
done
units=$(find "$d" -path '*/systemd/system/*' -type f -printf '%f\n' | sort | tr '\n' ' ')
[ "$units" = "joyride-http.socket joyride.service joyride.socket " ] || fail "units installed: '$units'"
[ -x "$d$prefix/sbin/joyrided" ] && "$d$prefix/sbin/joyrided" --version | grep -q '^joyrided ' ||
        fail "the installed joyrided does not run"
grep -q "into $d" "$tmp/install.log" && grep -q 'nothing was changed on this system' "$tmp/install.log" ||
        fail "make install DESTDIR did not say what it did: $(cat "$tmp/install.log")"
[ "$had_user" = 1 ] || ! getent passwd joyride >/dev/null || fail "make install DESTDIR created the user joyride on this system"
[ "$had_link" = 1 ] || [ ! -e /etc/dbus-1/system.d/org.joyride.DNS.conf ] || fail "make install DESTDIR linked a D-Bus policy on this system"
ok "make install DESTDIR: $(find "$d" -type f | wc -l) files under $d$prefix and /lib/systemd/system; this system untouched"

make -s -C "$src" uninstall BUILD="$build" DESTDIR="$d" >"$tmp/uninstall.log" 2>&1 ||
        {
                cat "$tmp/uninstall.log" >&2
                fail "make uninstall DESTDIR=$d failed"
        }
left=$({ find "$d" -type f 2>/dev/null || true; } | head -n 5)
[ -z "$left" ] || fail "make uninstall left files: $left"
ok "make uninstall DESTDIR: $(grep -o 'removed [0-9]* files' "$tmp/uninstall.log"), none left"

# --- PREFIX -----------------------------------------------------------------------
b=$tmp/build
meson setup "$b" "$src" >"$tmp/setup.log" 2>&1 || {
        cat "$tmp/setup.log" >&2
        fail "meson setup $b failed"
}
p=$tmp/prefix-stage
make -s -C "$src" install BUILD="$b" PREFIX=/opt/joyride DESTDIR="$p" >"$tmp/install-prefix.log" 2>&1 ||
        {
                tail -n 30 "$tmp/install-prefix.log" >&2
                fail "make install PREFIX=/opt/joyride failed"
        }
[ -x "$p/opt/joyride/sbin/joyrided" ] && [ -x "$p/opt/joyride/bin/joyridectl" ] ||
        fail "PREFIX=/opt/joyride: no /opt/joyride/sbin/joyrided and bin/joyridectl under $p"
[ -f "$p/opt/joyride/share/man/man8/joyrided.8" ] || fail "PREFIX=/opt/joyride: the man page is not under /opt/joyride"
service=$(find "$p" -name joyride.service -type f)
grep -qx 'ExecStart=/opt/joyride/sbin/joyrided' "$service" || fail "joyride.service does not start /opt/joyride/sbin/joyrided: $(grep ExecStart "$service")"
grep -qx 'Exec=/opt/joyride/sbin/joyrided' "$p/opt/joyride/share/dbus-1/system-services/org.joyride.DNS.service" ||
        fail "the D-Bus activation file does not start /opt/joyride/sbin/joyrided"
ok "make install PREFIX=/opt/joyride: files under /opt/joyride, ExecStart= and Exec= name /opt/joyride/sbin/joyrided"
