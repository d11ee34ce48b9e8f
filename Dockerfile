# SPDX-License-Identifier: MIT
# joyrided in a container: the build stage makes the Debian package
# (debian/, as `make deb` does), the runtime stage installs that same .deb
# with apt and runs joyrided as the unprivileged user joyride.
#
#   docker build --network host -t joyride .
#   docker run -d --network host --group-add "$(stat -c %g /var/run/docker.sock)" \
#       -v /var/run/docker.sock:/var/run/docker.sock:ro -v "$PWD/hosts:/app/hosts:ro" joyride
#
# docker-compose.yml and `make up` do the same, hardened (read-only root,
# no capabilities). The Dockerfile works with the classic builder and with
# BuildKit (no BuildKit-only syntax).
#
# BASE names the Debian bookworm image both stages start from. Pin it by
# digest where a registry is reachable: `make pin-base` (tools/pin-base-image)
# resolves debian:bookworm-slim to its current digest and writes it here and
# into docker-compose.yml, as debian:bookworm-slim@sha256:...; the tests pass
# a base image they made themselves with debootstrap, as there is no registry
# on CI.
ARG BASE=debian:bookworm-slim

# --- build -----------------------------------------------------------------------
FROM ${BASE} AS build

# The build dependencies are read from debian/control (apt-get satisfy), so
# this list cannot drift from the package's. libsoup-3.0-dev depends on
# libsysprof-capture-4-dev, which on bookworm only libsysprof-4-dev
# provides, and that one pulls in GTK 4, libadwaita and Mesa: about 200 MB of
# downloads for a static profiling library that only a static link of
# libsoup would use. An empty local package provides the name in this stage
# only, with an empty sysprof-capture-4.pc that pkg-config wants to find; the
# runtime stage has nothing of it.
COPY debian/control /tmp/control
RUN mkdir -p /tmp/stub/DEBIAN /tmp/stub/usr/share/pkgconfig \
 && printf '%s\n' 'Package: joyride-build-sysprof-stub' 'Version: 1' 'Architecture: all' \
        'Maintainer: Joyride DNS <root@localhost>' 'Provides: libsysprof-capture-4-dev' \
        'Description: empty stand-in for libsysprof-capture-4-dev (build stage only)' \
        > /tmp/stub/DEBIAN/control \
 && printf '%s\n' 'Name: sysprof-capture-4' 'Description: empty stand-in' 'Version: 3.46.0' 'Libs:' 'Cflags:' \
        > /tmp/stub/usr/share/pkgconfig/sysprof-capture-4.pc \
 && dpkg-deb --build /tmp/stub /tmp/sysprof-stub.deb >/dev/null \
 && deps=$(awk '/^[^ ]/ { on = 0 } /^Build-Depends:/ { on = 1; sub(/^Build-Depends:/, "") } on { printf "%s", $0 }' /tmp/control \
        | sed 's/,[[:space:]]*$//') \
 && test -n "$deps" \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends build-essential /tmp/sysprof-stub.deb \
 && DEBIAN_FRONTEND=noninteractive apt-get satisfy -y --no-install-recommends "$deps" \
 && rm -rf /var/lib/apt/lists/* /tmp/stub /tmp/sysprof-stub.deb /tmp/control

# Sources last, so that an edit rebuilds from here and not the apt layers above.
COPY . /src/joyride

# The tests ran in CI already (make test): nocheck. The package goes to /out.
RUN cd /src/joyride \
 && DEB_BUILD_OPTIONS=nocheck dpkg-buildpackage -us -uc -b \
 && mkdir -p /out \
 && mv /src/joyride_*.deb /out/

# --- runtime -------------------------------------------------------------------------
FROM ${BASE}
ARG BASE

# The same package `make deb` builds, installed with apt and its declared
# dependencies (libsoup and its own from Debian). Before it, the user
# joyride with one fixed UID and GID (5353, like the port), so a bind-mounted
# state directory can be chowned to it from the host; the package's sysusers
# entry then finds the user there. systemd-standalone-sysusers answers the
# package's need for systemd-sysusers without systemd. Nothing starts units
# here: there is no systemd in the container.
COPY --from=build /out/ /tmp/deb/
RUN groupadd --gid 5353 joyride \
 && useradd --uid 5353 --gid joyride --home-dir /var/lib/joyride --no-create-home --no-log-init \
        --shell /usr/sbin/nologin --comment "Joyride DNS" joyride \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        /tmp/deb/joyride_*.deb systemd-standalone-sysusers \
 && rm -rf /tmp/deb /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && mkdir -p /app/hosts /var/lib/joyride \
 && chown joyride:joyride /var/lib/joyride \
 && chmod 0750 /var/lib/joyride \
 && ! ldd /usr/sbin/joyrided /usr/bin/joyridectl | grep 'not found' \
 && joyrided --version

# OCI annotations. VERSION, REVISION and CREATED come from `make up` (the
# version from meson.build, the git commit, the build time); a plain
# `docker build` leaves them empty rather than guessing.
ARG VERSION=
ARG REVISION=
ARG CREATED=
LABEL org.opencontainers.image.title="Joyride DNS" \
      org.opencontainers.image.description="DNS names for Docker containers and hosts files (joyrided)" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="Joyride DNS" \
      org.opencontainers.image.documentation="man:joyrided(8)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${BASE}"
# A version given must be the one built.
RUN [ -z "${VERSION}" ] || [ "$(joyrided --version)" = "joyrided ${VERSION}" ] \
 || { echo "VERSION=${VERSION} but the package holds $(joyrided --version)" >&2; exit 1; }

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
