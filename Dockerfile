# SPDX-License-Identifier: MIT
# joyrided in a container: built with meson on Debian bookworm, run
# from a small runtime stage that holds only joyrided, joyridectl and the
# shared libraries they load, as the unprivileged user joyride.
#
#   docker build --network host -t joyride .
#   docker run -d --network host --group-add "$(stat -c %g /var/run/docker.sock)" \
#       -v /var/run/docker.sock:/var/run/docker.sock:ro -v "$PWD/hosts:/app/hosts:ro" joyride
#
# docker-compose.yml and `make up` do the same. BASE names the bookworm
# image both stages start from; the tests pass one they made themselves with
# debootstrap, as there is no registry on CI. The Dockerfile works with the
# classic builder and with BuildKit (no BuildKit-only syntax).

ARG BASE=debian:bookworm-slim

# --- build ---------------------------------------------------------------------
FROM ${BASE} AS build

# libsoup-3.0-dev depends on libsysprof-capture-4-dev, which on bookworm only
# libsysprof-4-dev provides, and that one pulls in GTK 4, libadwaita and Mesa:
# about 200 MB of downloads for a static profiling library that only a static
# link of libsoup would use. An empty local package provides the name, and an
# empty sysprof-capture-4.pc, which pkg-config wants to find for --cflags.
# gettext is left out on purpose: translations are only for joyridectl's
# messages, and meson skips them without msgfmt.
RUN mkdir -p /tmp/stub/DEBIAN /tmp/stub/usr/share/pkgconfig \
 && printf '%s\n' 'Package: joyride-build-sysprof-stub' 'Version: 1' 'Architecture: all' \
        'Maintainer: Joyride DNS <root@localhost>' 'Provides: libsysprof-capture-4-dev' \
        'Description: empty stand-in for libsysprof-capture-4-dev (build stage only)' \
        > /tmp/stub/DEBIAN/control \
 && printf '%s\n' 'Name: sysprof-capture-4' 'Description: empty stand-in' 'Version: 3.46.0' 'Libs:' 'Cflags:' \
        > /tmp/stub/usr/share/pkgconfig/sysprof-capture-4.pc \
 && dpkg-deb --build /tmp/stub /tmp/sysprof-stub.deb >/dev/null \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        /tmp/sysprof-stub.deb meson ninja-build pkg-config gcc libc6-dev \
        libsystemd-dev libldns-dev libjson-c-dev libglib2.0-dev libsoup-3.0-dev libsodium-dev \
 && rm -rf /var/lib/apt/lists/* /tmp/stub /tmp/sysprof-stub.deb

# Sources last, so that an edit rebuilds from here and not the apt layer above.
COPY . /src

# Only the two programs: the unit tests, fuzzers and man pages are not
# needed in the image. /out is laid out as the runtime image's root.
# libsoup-3.0.so is copied from here rather than installed by apt in the
# runtime stage: the libsoup-3.0-0 package depends on glib-networking, whose
# chain (gsettings-desktop-schemas, dconf, dbus, libproxy) adds tens of MB for
# TLS and proxy support that joyrided never uses (it speaks plain HTTP over
# the Docker socket and serves plain HTTP). The runtime stage installs every
# library libsoup itself links against and checks the result with ldd.
RUN rm -rf /tmp/build \
 && meson setup /tmp/build /src --buildtype=release -Db_ndebug=false --prefix=/usr \
 && meson compile -C /tmp/build src/joyrided src/joyridectl \
 && install -D -m 0755 /tmp/build/src/joyrided /out/usr/sbin/joyrided \
 && install -D -m 0755 /tmp/build/src/joyridectl /out/usr/bin/joyridectl \
 && strip --strip-unneeded /out/usr/sbin/joyrided /out/usr/bin/joyridectl \
 && soup=$(ldd /tmp/build/src/joyrided | awk '$1 ~ /^libsoup-3\.0\.so/ { print $3 }') \
 && test -n "$soup" \
 && real=$(readlink -f "$soup") \
 && install -D -m 0644 "$real" "/out$(dirname "$real")/$(basename "$soup")" \
 && mkdir -p /out/etc/joyride /out/app/hosts /out/var/lib/joyride \
 && printf '%s\n' \
        '# joyride.conf in the container image: see README.md, "Configuration".' \
        '# The image sets JOYRIDE_BUS, HOSTS_DIRECTORY and STATE_DIRECTORY in its' \
        '# environment, and environment variables win over this file: set those' \
        '# with -e (or in docker-compose.yml), everything else here or with -e.' \
        '#' \
        '#[DNS]' \
        '#Port=5353' \
        '#Domains=example.com,internal' \
        > /out/etc/joyride/joyride.conf \
 && rm -rf /tmp/build

# --- runtime -------------------------------------------------------------------
FROM ${BASE}

# The libraries of joyrided and joyridectl (ldd), and those of libsoup (see
# above); libc6 and libsystemd0 are in the base already, named so that they
# are brought to the versions the build stage linked against. One fixed UID
# and GID (5353, like the port) so a bind-mounted state directory can be
# chowned to it from the host.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libc6 libsystemd0 libldns3 libjson-c5 libglib2.0-0 libsodium23 \
        libsqlite3-0 libpsl5 libbrotli1 libgssapi-krb5-2 libnghttp2-14 zlib1g \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && groupadd --gid 5353 joyride \
 && useradd --uid 5353 --gid joyride --home-dir /var/lib/joyride --no-create-home --no-log-init \
        --shell /usr/sbin/nologin --comment "Joyride DNS" joyride

COPY --from=build /out/ /

# Fails the build if a library is missing, rather than the first start.
# The copied directories are real ones (/usr/lib/..., never /lib/...), so
# the COPY cannot replace the merged-/usr symlinks.
RUN ldconfig \
 && chown joyride:joyride /var/lib/joyride \
 && chmod 0750 /var/lib/joyride \
 && ! ldd /usr/sbin/joyrided /usr/bin/joyridectl | grep 'not found' \
 && joyrided --version

# Only what the container differs in from the built-in defaults, so that
# a config file mounted at /etc/joyride/joyride.conf still decides the rest
# (the environment wins over the file). There is no system bus in the
# container; the hosts directory is where the original image had it.
ENV JOYRIDE_BUS=none \
    HOSTS_DIRECTORY=/app/hosts \
    STATE_DIRECTORY=/var/lib/joyride

# DNS (DNS_PORT), and the HTTP API and dashboard (FLASK_PORT).
EXPOSE 5353/udp 5353/tcp 5000/tcp
VOLUME /var/lib/joyride

USER joyride:joyride

# /health over bash's /dev/tcp: bash is in every Debian image, while curl
# would add libcurl and its libraries (about 6 MB) for one GET. The address
# and port follow FLASK_HOST and FLASK_PORT (0.0.0.0 and :: mean loopback).
# With the HTTP API turned off by HTTP_ENABLED there is nothing to ask: the
# check passes (turn it off with --no-healthcheck if that is not wanted).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "case ${HTTP_ENABLED:-true} in false|no|off|0) exit 0;; esac; h=${FLASK_HOST:-0.0.0.0}; case $h in 0.0.0.0) h=127.0.0.1;; ::|'[::]') h=::1;; esac; exec 3<>/dev/tcp/$h/${FLASK_PORT:-5000} || exit 1; printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3; r=$(timeout 4 cat <&3); [[ $r == HTTP/1.?' 200 '* && $r == *'\"status\":\"healthy\"'* ]]"]

ENTRYPOINT ["/usr/sbin/joyrided"]
