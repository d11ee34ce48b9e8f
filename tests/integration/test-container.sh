#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# joyrided in its container image, on a private dockerd (see
# docker-lib.sh).
#
#   test-container.sh BUILDDIR
#
# There is no registry here, so the Dockerfile's base image is made on the
# spot: a debootstrap --variant=minbase bookworm tree from the mirror apt
# uses, trimmed like Debian's -slim images, cached as a tarball in
# ${JOYRIDE_TEST_CACHE:-/var/cache/joyride-test} (built beside its place
# and renamed into it, so a failed run leaves no broken cache; see
# base-image-lib.sh, which test-pin-base.sh shares), then
# `docker import`ed and passed as --build-arg BASE. The image is built from
# the source tree with --network host (apt in the build needs the mirror),
# and run as a user would run it: the engine's socket mounted read-only and
# reached through --group-add, a hosts directory mounted, the settings given
# as environment variables. Then, as a user would see it:
#   - the image size (printed) and that it runs as the joyride user;
#   - the runtime stage holds the Debian package the build stage made (with
#     libsoup from Debian), and OCI labels with meson.build's version;
#   - a labelled container on the engine resolves through the containerised
#     joyrided (dig from the host), and a name from the hosts directory, also
#     one added while it runs;
#   - /health answers 200 "healthy", and the image's HEALTHCHECK says healthy
#     (and unhealthy while joyrided is frozen with SIGSTOP);
#   - without the socket's group, Docker access fails and /status says why;
#   - `docker stop` ends it with exit status 0 in under 3 s;
#   - when Docker Compose is installed: `make up` (docker-compose.yml) serves
#     ./hosts and labelled containers, healthy, with the hardening in force
#     (docker inspect and inside: read-only root, state in the named volume,
#     tmpfs /run, no capabilities, no new privileges, the socket's group
#     found by make up), and `make down` stops it.
# The engine runs with --bridge=none, so every container here uses host
# networking, and joyrided binds only 127.0.0.1 on random high ports with
# clustering off: nothing reaches beyond loopback. Exits 77 (skip) only when
# dockerd cannot run here or the mirror cannot be reached, saying why.
# Single quotes keep Go templates (docker -f), dpkg-query formats and
# commands run in the container from the shell: SC2016 is off for the file.
# shellcheck disable=SC2016
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
source "$here/lib.sh"
# shellcheck source=tests/integration/docker-lib.sh
source "$here/docker-lib.sh"

# Seconds (with ms) since T0_NS, for the timings printed along the way.
elapsed() { echo "$((($(date +%s%N) - $1) / 1000000))" | awk '{ printf "%.1f s", $1 / 1000 }'; }
t_start=$(date +%s%N)

why=$(docker_engine_available) || skip "$why"
command -v debootstrap >/dev/null || skip "debootstrap is not installed (tools/install-deps installs it)"

# --- the base image: debootstrap, cached ---------------------------------------

# shellcheck source=tests/integration/base-image-lib.sh
source "$here/base-image-lib.sh"
base_image_ready 1

# --- a private engine -------------------------------------------------------------

# Short: the engine's socket path must fit in sun_path.
tmp=$(mktemp -d /tmp/joyride-ctr.XXXXXX)
tag=$$
base_image=local/bookworm:$tag
image=local/joyride:$tag
containers=()
compose_env=()
cleanup() {
        local c
        set +e
        [ "${#compose_env[@]}" = 0 ] || env "${compose_env[@]}" make -s -C "$src" down >/dev/null 2>&1
        # Every image on this private engine is ours: the imports, the
        # image and its untagged build stage.
        if [ -n "${docker_pid:-}" ]; then
                for c in "${containers[@]}" $(dk ps -aq); do dk rm -fv "$c" >/dev/null 2>&1; done
        fi
        docker_lib_remove_images
        docker_lib_finish "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
docker_lib_init "$tmp/d"
docker_lib_up

t0=$(date +%s%N)
dk import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' "$base_tar" "$base_image" >/dev/null
ok "base image imported as $base_image in $(elapsed "$t0")"

# --- the build --------------------------------------------------------------------

t0=$(date +%s%N)
# The build's output, each line with the milliseconds since the start, in
# the log only (shown when the build fails). BuildKit: the classic builder
# makes a container, and so a full copy of the tree on the vfs driver, for
# every instruction, which takes two to three times as long here. The
# Dockerfile works with both (the classic builder is what Compose v1 uses
# by default).
stamp() {
        local l
        while IFS= read -r l; do printf '%6s %s\n' "$((($(date +%s%N) - t0) / 1000000))" "$l"; done
}
version=$(sed -n "s/^[[:space:]]*version[[:space:]]*:[[:space:]]*'\([^']*\)'.*/\1/p" "$src/meson.build" | head -n1)
if ! DOCKER_BUILDKIT=1 dk build --progress=plain --network host --build-arg "BASE=$base_image" \
        --build-arg "VERSION=$version" --build-arg "REVISION=test-$tag" --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        -t "$image" -f "$src/Dockerfile" "$src" 2>&1 | stamp >"$tmp/build.log"; then
        tail -n 40 "$tmp/build.log" >&2
        fail "docker build failed"
fi
size=$(dk image inspect -f '{{.Size}}' "$image")
base_size=$(dk image inspect -f '{{.Size}}' "$base_image")
ok "image built in $(elapsed "$t0"): $((size / 1000000)) MB ($(((size - base_size) / 1000000)) MB on top of the $((base_size / 1000000)) MB base)"
echo "# image size: $size bytes; its layers:"
dk history --format '{{.Size}}\t{{.CreatedBy}}' "$image" | cut -c1-100 | sed 's/^/#   /'

# What the image says about itself.
cfg() { dk image inspect -f "$1" "$image"; }
[ "$(cfg '{{.Config.User}}')" = joyride:joyride ] || fail "the image does not run as joyride: User=$(cfg '{{.Config.User}}')"
exposed=$(cfg '{{range $p, $v := .Config.ExposedPorts}}{{$p}} {{end}}')
for p in 5353/udp 5353/tcp 5000/tcp; do
        [[ " $exposed" == *" $p "* ]] || fail "the image does not expose $p (it exposes: $exposed)"
done
[ -n "$(cfg '{{if .Config.Healthcheck}}{{.Config.Healthcheck.Test}}{{end}}')" ] || fail "the image has no HEALTHCHECK"
for e in JOYRIDE_BUS=none HOSTS_DIRECTORY=/app/hosts STATE_DIRECTORY=/var/lib/joyride; do
        cfg '{{range .Config.Env}}{{println .}}{{end}}' | grep -qx "$e" || fail "the image's environment lacks $e"
done
ok "image: user joyride, exposes 5353/udp 5353/tcp 5000/tcp, HEALTHCHECK, environment defaults"

label() { cfg "{{index .Config.Labels \"org.opencontainers.image.$1\"}}"; }
[ "$(label version)" = "$version" ] || fail "label org.opencontainers.image.version is '$(label version)', meson.build says $version"
[ "$(label revision)" = "test-$tag" ] || fail "label org.opencontainers.image.revision is '$(label revision)'"
[ "$(label base.name)" = "$base_image" ] || fail "label org.opencontainers.image.base.name is '$(label base.name)'"
for l in title description licenses created; do
        [ -n "$(label "$l")" ] || fail "the image has no org.opencontainers.image.$l label"
done
# In the runtime stage: the package, and libsoup from Debian rather than copied.
pkg=$(dk run --rm --network none --entrypoint dpkg-query "$image" -W -f '${Status} ${Version}' joyride) || true
[ "$pkg" = "install ok installed $version" ] || fail "the image does not hold the joyride package $version: '$pkg'"
soup=$(dk run --rm --network none --entrypoint sh "$image" -c \
        'dpkg -S "$(readlink -f "$(ldd /usr/sbin/joyrided | awk "/libsoup-3/ { print \$3 }")")"' 2>&1) || true
[[ $soup == libsoup-3.0-0:* ]] || fail "libsoup in the image does not come from the libsoup-3.0-0 package: $soup"
ok "image: joyride $version installed from its .deb, libsoup from Debian ($soup); OCI labels $(dk image inspect -f '{{range $k, $v := .Config.Labels}}{{$k}} {{end}}' "$image" | grep -o 'org.opencontainers.image.[a-z.]*' | sed 's/org.opencontainers.image.//' | tr '\n' ' ')"

# --- joyrided in its container ----------------------------------------------------

mkdir -p "$tmp/hosts"
printf '10.9.8.7 static.container.test\n' >"$tmp/hosts/test.hosts"
chmod 755 "$tmp/hosts"
chmod 644 "$tmp/hosts/test.hosts"
dns_port=$(free_port)
http_port=$(free_port)
hostip=198.51.100.53
sock_gid=$(stat -c %g "$docker_sock")

# jr NAME ARGS...: joyrided's container, detached; records it for cleanup.
jr() {
        local name=$1 id
        shift
        id=$(dk run -d --name "$name-$tag" --network host \
                -v "$docker_sock:/var/run/docker.sock:ro" -v "$tmp/hosts:/app/hosts:ro" \
                -e DNS_BIND_ADDRESS=127.0.0.1 -e FLASK_HOST=127.0.0.1 -e ENABLE_DNS_SYNC=false \
                -e HOSTIP=$hostip "$@" "$image")
        containers+=("$id")
        echo "$id"
}

t0=$(date +%s%N)
c=$(jr joyride --group-add "$sock_gid" --health-interval 1s -e DNS_PORT="$dns_port" -e FLASK_PORT="$http_port")
wait_for "the HTTP API in the container" 20 curl -sf --max-time 1 "http://127.0.0.1:$http_port/health"
ok "joyrided container answers $(elapsed "$t0") after docker run"

uid=$(dk exec "$c" id -un)
[ "$uid" = joyride ] || fail "joyrided runs as $uid, not joyride"
dk exec "$c" cat /proc/1/status | grep -q "^Groups:.*\b$sock_gid\b" ||
        fail "joyrided is not in group $sock_gid: $(dk exec "$c" grep Groups /proc/1/status)"
ok "runs as the user joyride, with the socket's group $sock_gid added"

# answers NAME: what the containerised joyrided says, one line.
answers() { { dig_short "$dns_port" "$1" 2>/dev/null || true; } | sort | tr '\n' ' ' | sed 's/ $//'; }
# resolves NAME WANT [SECS]
resolves() {
        local name=$1 want=$2 secs=${3:-10} got
        local deadline=$(($(date +%s%N) + secs * 1000000000))
        while :; do
                got=$(answers "$name")
                [ "$got" = "$want" ] && return 0
                [ "$(date +%s%N)" -lt "$deadline" ] ||
                        {
                                dk logs "$c" 2>&1 | tail -n 20 >&2
                                fail "$name: got '$got', want '$want' (after ${secs}s)"
                        }
                sleep 0.1
        done
}

resolves static.container.test 10.9.8.7
ok "a name from the mounted hosts directory resolves"
printf '10.9.8.8 live.container.test\n' >"$tmp/hosts/live.hosts"
chmod 644 "$tmp/hosts/live.hosts"
resolves live.container.test 10.9.8.8
ok "a hosts file added on the host while it runs resolves (inotify through the bind mount)"

app=$(dk run -d --stop-timeout 1 --network none --label joyride.host.name=app.container.test \
        "$DOCKER_IMAGE" sleep 100000)
containers+=("$app")
resolves app.container.test "$hostip"
ok "a labelled container on the engine resolves to HOSTIP through the containerised joyrided"
dk stop "$app" >/dev/null
resolves app.container.test ""
ok "and stops resolving when it stops"

# /health and /status, as curl on the host sees them.
code=$(curl -s -o "$tmp/health.json" -w '%{http_code}' --max-time 2 "http://127.0.0.1:$http_port/health")
[ "$code" = 200 ] || fail "/health answered $code"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["status"] == "healthy", d' "$tmp/health.json" ||
        fail "/health: $(cat "$tmp/health.json")"
curl -sf --max-time 2 "http://127.0.0.1:$http_port/status" >"$tmp/status.json"
python3 - "$tmp/status.json" <<'PY' || fail "/status: $(cat "$tmp/status.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["docker_monitor"]["connected"] is True, d["docker_monitor"]
assert d["hosts_monitor"]["directory"] == "/app/hosts", d["hosts_monitor"]
PY
ok "/health answers 200 healthy; /status: Docker connected, hosts from /app/hosts"

# health_is CONTAINER WANT SECS: polls the HEALTHCHECK's verdict.
health_is() {
        local c=$1 want=$2 secs=$3 got
        local deadline=$(($(date +%s%N) + secs * 1000000000))
        while :; do
                got=$(dk inspect -f '{{.State.Health.Status}}' "$c")
                [ "$got" = "$want" ] && return 0
                [ "$(date +%s%N)" -lt "$deadline" ] ||
                        fail "HEALTHCHECK: $got, want $want: $(dk inspect -f '{{json .State.Health.Log}}' "$c")"
                sleep 0.2
        done
}

health_is "$c" healthy 30
ok "the image's HEALTHCHECK reports healthy"

# Without the socket's group the engine is out of reach, and joyrided says why.
np=$(free_port)
nogroup=$(jr nogroup -e DNS_PORT="$(free_port)" -e FLASK_PORT="$np" \
        --health-interval 1s --health-timeout 2s --health-retries 1)
wait_for "the second container's HTTP API" 20 curl -sf --max-time 1 "http://127.0.0.1:$np/health"
wait_for "a Docker error in /status" 10 sh -c "curl -sf --max-time 1 http://127.0.0.1:$np/status | grep -q 'Permission denied'"
ok "without --group-add the socket is refused, and /status says Permission denied"

# The HEALTHCHECK can fail: a frozen joyrided (SIGSTOP from the host, where
# the container's init can be stopped) is unhealthy, and healthy once thawed.
health_is "$nogroup" healthy 20
npid=$(dk inspect -f '{{.State.Pid}}' "$nogroup")
kill -STOP "$npid"
health_is "$nogroup" unhealthy 15
kill -CONT "$npid"
health_is "$nogroup" healthy 15
ok "HEALTHCHECK: unhealthy while joyrided is frozen, healthy again after"
dk rm -fv "$nogroup" >/dev/null

# --- docker stop -------------------------------------------------------------------

t0=$(date +%s%N)
dk stop -t 10 "$c" >/dev/null
stop_ms=$((($(date +%s%N) - t0) / 1000000))
code=$(dk inspect -f '{{.State.ExitCode}}' "$c")
[ "$code" = 0 ] || {
        dk logs "$c" 2>&1 | tail -n 20 >&2
        fail "joyrided exited with status $code on docker stop"
}
[ "$stop_ms" -lt 3000 ] || fail "docker stop took $stop_ms ms"
dk logs "$c" 2>&1 | grep -q 'Stopped\.' || fail "no 'Stopped.' in the container's log: $(dk logs "$c" 2>&1 | tail -n 5)"
ok "docker stop: exit status 0 in $stop_ms ms"

# --- make up, make down: docker-compose.yml ----------------------------------------

# As a user runs it, on the private engine, with loopback-only settings. The
# Makefile picks the Compose it finds. With v1, BuildKit through the engine's
# own client (/usr/bin first in PATH) reuses the layers built above.
if PATH="/usr/bin:$PATH" docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then
        dns_port=$(free_port)
        http_port=$(free_port)
        compose_env=(PATH="/usr/bin:$PATH" DOCKER_HOST="unix://$docker_sock" DOCKER_SOCK="$docker_sock"
                COMPOSE_PROJECT_NAME="joyridetest$tag" COMPOSE_DOCKER_CLI_BUILD=1 DOCKER_BUILDKIT=1
                JOYRIDE_BASE_IMAGE="$base_image" JOYRIDE_IMAGE="local/joyride-compose:$tag"
                DNS_BIND_ADDRESS=127.0.0.1 DNS_PORT="$dns_port" FLASK_HOST=127.0.0.1 FLASK_PORT="$http_port"
                HOSTIP="$hostip" ENABLE_DNS_SYNC=false)
        t0=$(date +%s%N)
        env "${compose_env[@]}" make -C "$src" up >"$tmp/compose-up.log" 2>&1 ||
                {
                        tail -n 30 "$tmp/compose-up.log" >&2
                        fail "make up failed"
                }
        c=$(dk ps -q --filter "label=com.docker.compose.project=joyridetest$tag")
        [ -n "$c" ] || fail "make up started no container: $(tail -n 5 "$tmp/compose-up.log")"
        wait_for "the HTTP API of the Compose service" 30 curl -sf --max-time 1 "http://127.0.0.1:$http_port/health"
        ok "make up: $(grep -m1 -o 'docker[- ]compose' "$tmp/compose-up.log" || echo compose) up in $(elapsed "$t0")"
        # ./hosts of the repository is mounted: its example names resolve.
        want=$(awk '!/^#/ && $2 == "api.internal" && $1 ~ /\./ { print $1; exit }' "$src/hosts/"*)
        resolves api.internal "$want"
        app=$(dk run -d --stop-timeout 1 --network none --label joyride.host.name=compose.container.test \
                "$DOCKER_IMAGE" sleep 100000)
        containers+=("$app")
        resolves compose.container.test "$hostip"
        [ "$(dk inspect -f '{{.HostConfig.NetworkMode}}' "$c")" = host ] || fail "the Compose service is not on the host network"
        dk inspect -f '{{range .Mounts}}{{.Destination}} {{.RW}}{{println}}{{end}}' "$c" | grep -qx '/var/run/docker.sock false' ||
                fail "the Docker socket is not mounted read-only: $(dk inspect -f '{{json .Mounts}}' "$c")"
        health_is "$c" healthy 40
        ok "make up: hosts from ./hosts and a labelled container resolve, socket read-only, host network, healthy"

        # The hardening of docker-compose.yml, as the engine applied it...
        insp() { dk inspect -f "$1" "$c"; }
        [ "$(insp '{{.HostConfig.ReadonlyRootfs}}')" = true ] || fail "the Compose service's root file system is not read-only"
        [ "$(insp '{{json .HostConfig.CapDrop}}')" = '["ALL"]' ] || fail "CapDrop is $(insp '{{json .HostConfig.CapDrop}}'), want [\"ALL\"]"
        [ "$(insp '{{json .HostConfig.CapAdd}}')" = null ] || fail "CapAdd is $(insp '{{json .HostConfig.CapAdd}}')"
        [ "$(insp '{{json .HostConfig.SecurityOpt}}')" = '["no-new-privileges:true"]' ] ||
                fail "SecurityOpt is $(insp '{{json .HostConfig.SecurityOpt}}')"
        insp '{{range $k, $v := .HostConfig.Tmpfs}}{{$k}}{{println}}{{end}}' | grep -qx /run || fail "no tmpfs on /run: $(insp '{{json .HostConfig.Tmpfs}}')"
        insp '{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.RW}}{{println}}{{end}}' |
                grep -qx "volume joyridetest${tag}_joyride-state /var/lib/joyride true" ||
                fail "the state is not in the named volume: $(insp '{{json .Mounts}}')"
        [ "$(insp '{{json .HostConfig.GroupAdd}}')" = "[\"$sock_gid\"]" ] ||
                fail "GroupAdd is $(insp '{{json .HostConfig.GroupAdd}}'), want the socket's group $sock_gid"
        grep -q "gets group $sock_gid, the group of $docker_sock" "$tmp/compose-up.log" || fail "make up did not say which group it found"
        # ...and as joyrided lives with it.
        status=$(dk exec "$c" cat /proc/1/status)
        grep -q '^CapEff:[[:space:]]*0000000000000000' <<<"$status" || fail "joyrided has capabilities: $(grep Cap <<<"$status")"
        grep -q '^NoNewPrivs:[[:space:]]*1' <<<"$status" || fail "joyrided may gain privileges: $(grep NoNewPrivs <<<"$status")"
        ! dk exec "$c" touch /etc/joyride/probe 2>/dev/null || fail "the root file system is writable"
        dk exec "$c" touch /var/lib/joyride/probe /run/probe /tmp/probe || fail "the state folder, /run or /tmp is not writable"
        ok "make up: read-only root, state in volume joyride-state, tmpfs /run and /tmp, CapEff 0, NoNewPrivs, group $sock_gid from the socket"
        env "${compose_env[@]}" make -C "$src" down >"$tmp/compose-down.log" 2>&1 ||
                {
                        tail -n 30 "$tmp/compose-down.log" >&2
                        fail "make down failed"
                }
        [ -z "$(dk ps -aq --filter "label=com.docker.compose.project=joyridetest$tag")" ] || fail "make down left the container"
        # Without DOCKER_GID Compose refuses, rather than guess a group.
        rc=0
        (cd "$src" && env "${compose_env[@]}" DOCKER_GID= docker-compose config >"$tmp/nogid.log" 2>&1) || rc=$?
        if command -v docker-compose >/dev/null; then
                [ "$rc" -ne 0 ] && grep -q 'group of the Docker socket' "$tmp/nogid.log" ||
                        fail "docker-compose without DOCKER_GID did not refuse: $(cat "$tmp/nogid.log")"
        fi
        # dig exits 9 when no server answers.
        rc=0
        dig @127.0.0.1 -p "$dns_port" +tries=1 +time=1 api.internal >/dev/null 2>&1 || rc=$?
        [ "$rc" = 9 ] || fail "DNS on port $dns_port still answers after make down (dig exit status $rc)"
        compose_env=()
        ok "make down: container gone, DNS no longer answers"
else
        echo "# no Docker Compose here (apt-get install docker-compose): make up and make down not tried"
fi
ok "whole test: $(elapsed "$t_start")"
