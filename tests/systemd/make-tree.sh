#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Makes (once) a Debian bookworm tree to boot with systemd-nspawn for
# tests/integration/test-systemd.sh, and prints its path on stdout.
#
#   make-tree.sh BUILDDIR
#
# The tree is debootstrap's minbase variant plus systemd, dbus, resolved and
# the shared libraries the built joyrided and joyridectl link against (found
# with ldd and dpkg -S, so a new dependency of the daemon lands in the tree
# without editing this file). It is cached in
# ${JOYRIDE_TEST_CACHE:-/var/cache/joyride-test}/bookworm-<hash of the
# package list and mirror>: a changed list makes a new tree. The tree is built
# in a temporary folder beside its final place and renamed into place only
# when debootstrap succeeded, so a failed or interrupted run never leaves a
# broken cache. Containers boot it with --volatile=overlay and never write it.
#
# Exit status: 0 with the path printed; 77 when the mirror cannot be reached
# (the message says why); 1 on any other failure.
set -euo pipefail

build=${1:?usage: make-tree.sh BUILDDIR}
cache=${JOYRIDE_TEST_CACHE:-/var/cache/joyride-test}

# The mirror apt uses here: the first bookworm (not -security) entry of the
# deb822 sources, else of the one-line sources.list format.
mirror() {
        local f
        for f in /etc/apt/sources.list.d/*.sources; do
                [ -r "$f" ] || continue
                awk '
                        /^[ \t]*#/ { next }
                        /^[ \t]*$/ { if (uri != "" && suite ~ /(^| )bookworm( |$)/) { print uri; exit } uri = ""; suite = ""; next }
                        tolower($1) == "uris:" { uri = $2 }
                        tolower($1) == "suites:" { $1 = ""; suite = $0 " " }
                        END { if (uri != "" && suite ~ /(^| )bookworm( |$)/) print uri }
                ' "$f" | head -n1
        done
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
                [ -r "$f" ] || continue
                awk '$1 == "deb" && $0 !~ /security/ {
                        for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { if ($(i+1) == "bookworm") print $i; break }
                }' "$f"
        done
}

MIRROR=${JOYRIDE_TEST_MIRROR:-$(mirror | head -n1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

# Packages: the base the test needs plus the owners of every library that the
# built programs load. usrmerge: dpkg knows some libraries by their /lib path.
# dbus-user-session: libsoup pulls in dconf-service, which needs some session
# bus, and debootstrap does not pick a provider of a virtual package itself;
# libpam-systemd likewise provides the logind that polkitd needs. polkitd:
# resolved asks polkit whether joyrided may set a link's DNS. meson: `make
# install` (tools/install-system) runs meson install from the build folder.
packages=(systemd systemd-sysv systemd-resolved dbus dbus-user-session polkitd libpam-systemd iproute2 libsystemd0
        libldns3 libjson-c5 libsoup-3.0-0 libglib2.0-0 libsodium23 meson)
while read -r lib; do
        [ -n "$lib" ] || continue
        owner=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "${lib#/usr}" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null || true)
        owner=${owner%%:*}
        [ -n "$owner" ] && packages+=("$owner")
done < <(for b in "$build/src/joyrided" "$build/src/joyridectl"; do
        [ -x "$b" ] && ldd "$b"
done | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u)
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
list=$(
        IFS=,
        echo "${packages[*]}"
)
hash=$(printf '%s\n%s\n' "$list" "$MIRROR" | sha256sum | cut -c1-12)
tree=$cache/bookworm-$hash

# Trees not booted for two weeks (an old package list) are removed; the
# stamp beside each tree says when it was last used.
prune() {
        local stamp
        find "$cache" -maxdepth 1 -name 'bookworm-*.used' -mtime +14 2>/dev/null | while read -r stamp; do
                [ "${stamp%.used}" = "$tree" ] && continue
                rm -rf --one-file-system "${stamp%.used}" "$stamp"
        done
}

if [ -x "$tree/usr/lib/systemd/systemd" ]; then
        touch "$tree.used"
        echo "$tree"
        exit 0
fi

if ! curl -sfI --max-time 15 "$MIRROR/dists/bookworm/Release" >/dev/null; then
        echo "cannot reach the Debian mirror $MIRROR (from apt's sources) to debootstrap a bookworm tree" >&2
        exit 77
fi

mkdir -p "$cache"
# One builder at a time; a second run waits and then finds the tree.
exec 9>"$cache/.lock"
flock 9
if [ -x "$tree/usr/lib/systemd/systemd" ]; then
        echo "$tree"
        exit 0
fi

tmp=$(mktemp -d "$cache/.bookworm-$hash.XXXXXX")
trap 'rm -rf --one-file-system "$tmp" "$tmp.log"' EXIT
echo "debootstrap bookworm from $MIRROR into $tree (packages: $list)" >&2
# The .debs are kept apart, so that a new package list downloads only what changed.
mkdir -p "$cache/debs"
if ! debootstrap --variant=minbase --cache-dir="$cache/debs" --include="$list" bookworm "$tmp" "$MIRROR" \
        >"$tmp.log" 2>&1; then
        tail -n 30 "$tmp.log" >&2
        grep -B2 -A6 -i 'error\|problem' "$tmp/debootstrap/debootstrap.log" 2>/dev/null | tail -n 40 >&2 || true
        rm -f "$tmp.log"
        echo "debootstrap failed" >&2
        exit 1
fi
rm -f "$tmp.log"
# Lighter and quieter boots: nothing in the test needs these.
rm -rf "$tmp/var/cache/apt/archives/"*.deb
chmod 755 "$tmp"
mv -T "$tmp" "$tree"
trap - EXIT
touch "$tree.used"
prune
echo "$tree"
