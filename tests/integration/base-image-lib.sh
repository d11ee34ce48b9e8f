# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# The Debian bookworm base image of the container tests (sourced, not run):
# there is no registry here, so it is made with debootstrap --variant=minbase
# from the mirror apt uses, trimmed like Debian's -slim images, and cached as
# a tarball in ${JOYRIDE_TEST_CACHE:-/var/cache/joyride-test} (built beside
# its place and renamed into it, so a failed run leaves no broken cache).
# A test `docker import`s the tarball.
#
# Use: after lib.sh, source this; it sets mirror, cache and base_tar.
# base_image_prepare makes the tarball if it is missing and prints what it
# did; when the mirror cannot be reached it prints why and returns 77 (the
# caller skips); a failed debootstrap fails the test. base_image_ready does
# all that for a test: an ok line, a skip or a failure.

# The mirror apt uses here: the first bookworm (not -security) entry of the
# deb822 sources, else of the one-line format.
apt_mirror() {
        local f
        for f in /etc/apt/sources.list.d/*.sources; do
                [ -r "$f" ] || continue
                awk '
                        /^[ \t]*#/ { next }
                        /^[ \t]*$/ { if (uri != "" && suite ~ / bookworm /) { print uri; exit } uri = ""; suite = ""; next }
                        tolower($1) == "uris:" { uri = $2 }
                        tolower($1) == "suites:" { $1 = ""; suite = $0 " " }
                        END { if (uri != "" && suite ~ / bookworm /) print uri }
                ' "$f"
        done
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
                [ -r "$f" ] || continue
                awk '$1 == "deb" {
                        for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { if ($(i+1) == "bookworm") print $i; break }
                }' "$f"
        done
}
mirror=${JOYRIDE_TEST_MIRROR:-$(apt_mirror | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
cache=${JOYRIDE_TEST_CACHE:-/var/cache/joyride-test}
# The recipe below is part of the key: a changed recipe makes a new tarball.
recipe_version=1
base_tar=$cache/docker-base-bookworm-$(printf '%s\n%s\n' "$mirror" "$recipe_version" | sha256sum | cut -c1-12).tar

# make_base: debootstraps into a temp dir beside the cache and renames the
# finished tarball into place. Serialised with tests/systemd/make-tree.sh,
# which shares the lock and the .deb cache.
make_base() {
        local t
        mkdir -p "$cache"
        exec 9>"$cache/.lock"
        flock 9
        if [ -s "$base_tar" ]; then
                exec 9>&-
                return 0
        fi
        # Under the lock, any temp dir is one a killed run left behind.
        rm -rf --one-file-system "$cache"/.docker-base.*
        t=$(mktemp -d "$cache/.docker-base.XXXXXX")
        echo "debootstrap bookworm (minbase) from $mirror for the base image; cached in $base_tar" >&2
        mkdir -p "$cache/debs"
        if ! debootstrap --variant=minbase --cache-dir="$cache/debs" bookworm "$t/root" "$mirror" >"$t/log" 2>&1; then
                tail -n 30 "$t/log" >&2
                rm -rf --one-file-system "$t"
                exec 9>&-
                fail "debootstrap failed"
        fi
        # Trimmed as Debian's -slim images are: no docs, man pages or
        # translations, now or from packages installed later (dpkg excludes),
        # and no apt lists or .debs.
        mkdir -p "$t/root/etc/dpkg/dpkg.cfg.d"
        printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
                'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
                'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
                'path-exclude /usr/share/lintian/*' >"$t/root/etc/dpkg/dpkg.cfg.d/docker-slim"
        find "$t/root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
        rm -rf "$t/root/usr/share/man/"* "$t/root/usr/share/info/"* "$t/root/usr/share/lintian/"*
        find "$t/root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
        rm -rf "$t/root/var/lib/apt/lists/"* "$t/root/var/cache/apt/archives/"*.deb "$t/root/var/cache/apt/"*.bin \
                "$t/root/var/log/"*.log "$t/root/debootstrap"
        tar --numeric-owner -C "$t/root" -cf "$t/base.tar" .
        mv -T "$t/base.tar" "$base_tar"
        rm -rf --one-file-system "$t"
        exec 9>&-
}

# base_image_prepare [NEED_MIRROR]: the tarball, from the cache or made now.
# With NEED_MIRROR=1 (the image build runs apt against the mirror too) the
# mirror must answer even when the tarball is cached.
base_image_prepare() {
        local t0 need_mirror=${1:-0}
        if [ ! -s "$base_tar" ]; then
                curl -sfI --max-time 15 "$mirror/dists/bookworm/Release" >/dev/null || {
                        echo "cannot reach the Debian mirror $mirror (from apt's sources) to make the base image"
                        return 77
                }
                t0=$(date +%s%N)
                make_base
                echo "$((($(date +%s%N) - t0) / 1000000)) $(du -m "$base_tar" | cut -f1)" |
                        awk '{ printf "base image tarball made with debootstrap in %.1f s (%d MB)\n", $1 / 1000, $2 }'
                return 0
        fi
        # Tarballs of another mirror or recipe, unused for two weeks, go.
        touch "$base_tar"
        find "$cache" -maxdepth 1 -name 'docker-base-bookworm-*.tar' -mtime +14 ! -path "$base_tar" -delete
        if [ "$need_mirror" = 1 ] && ! curl -sfI --max-time 15 "$mirror/dists/bookworm/Release" >/dev/null; then
                echo "cannot reach the Debian mirror $mirror (from apt's sources) for apt in the image build"
                return 77
        fi
        echo "base image tarball from the cache: $base_tar"
}

# base_image_ready [NEED_MIRROR]: base_image_prepare, then says what it did
# as an ok line; skips the test (77) when the mirror cannot be reached and
# fails it when the tarball cannot be made.
base_image_ready() {
        local rc=0 msg
        msg=$(base_image_prepare "${1:-0}") || rc=$?
        [ "$rc" = 77 ] && skip "$msg"
        [ "$rc" = 0 ] || fail "the base image could not be made"
        ok "$msg"
}
