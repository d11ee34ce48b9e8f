#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make pin-base` (tools/pin-base-image) against a real registry on
# loopback, on a private dockerd (see docker-lib.sh).
#
#   test-pin-base.sh BUILDDIR
#
# Debian's docker-registry runs as a process of this test on 127.0.0.1 at a
# random high port, storing into a temp dir; dockerd trusts 127.0.0.0/8 over
# plain HTTP by default. The container tests' debootstrapped bookworm image
# (base-image-lib.sh, from its cache) is pushed there as
# 127.0.0.1:PORT/debian:bookworm-slim and removed from the engine, and
# tools/pin-base-image runs in a copy of the tree (Dockerfile,
# docker-compose.yml and the script, as they are in the worktree now; the
# worktree itself is never written). Then, as a user would see it:
#   - Dockerfile's ARG BASE= and docker-compose.yml's JOYRIDE_BASE_IMAGE
#     name the image @ the digest the registry's HTTP API reports for the
#     tag (Docker-Content-Digest), and nothing else changed; the image
#     pulled is the one pushed;
#   - a second run changes nothing; --digest with a bad value, or without
#     one, and a bad image name are refused with a message that says so
#     (exit 2), and nothing changes;
#   - when the tag names a manifest list (as Debian's tags on Docker Hub
#     do), the pin names the list, not the one manifest pulled before;
#   - the tag is then moved to another image: a build from the pinned
#     Dockerfile's first stage (FROM ${BASE}, then a LABEL: no container
#     runs) and `docker pull IMAGE@DIGEST` both get the pinned image, not
#     the tag's new one; pinning again moves the pin to the new digest.
# Exits 77 (skip) when dockerd or docker-registry cannot run here, or the
# base image can be neither found in the cache nor made, saying why.
# Single quotes keep Go templates (docker -f) from the shell.
# shellcheck disable=SC2016
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
source "$here/lib.sh"
# shellcheck source=tests/integration/docker-lib.sh
source "$here/docker-lib.sh"
# shellcheck source=tests/integration/base-image-lib.sh
source "$here/base-image-lib.sh"

REGISTRY=/usr/bin/docker-registry
why=$(docker_engine_available) || skip "$why"
[ -x "$REGISTRY" ] || skip "$REGISTRY is not installed (apt-get install docker-registry; tools/install-deps installs it)"
[ -s "$base_tar" ] || command -v debootstrap >/dev/null ||
        skip "the base image is not cached and debootstrap is not installed (tools/install-deps installs it)"
base_image_ready 0

# Short: the engine's socket path must fit in sun_path.
tmp=$(mktemp -d /tmp/joyride-pin.XXXXXX)
registry_pid=
cleanup() {
        set +e
        docker_lib_remove_images
        if [ -n "$registry_pid" ]; then
                kill -TERM "$registry_pid" 2>/dev/null
                wait_pid_timeout "$registry_pid" 5 || kill -KILL "$registry_pid" 2>/dev/null
                wait "$registry_pid" 2>/dev/null
        fi
        docker_lib_finish "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- the engine and the registry ---------------------------------------------------

docker_lib_init "$tmp/d"
docker_lib_up

port=$(free_port)
reg=127.0.0.1:$port
mkdir -p "$tmp/registry"
cat >"$tmp/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $tmp/registry
http:
  addr: $reg
EOF
"$REGISTRY" serve "$tmp/registry.yml" >"$tmp/registry.log" 2>&1 </dev/null &
registry_pid=$!
if ! wait_for "the registry on $reg" 10 curl -sf --max-time 1 "http://$reg/v2/"; then
        cat "$tmp/registry.log" >&2
        fail "docker-registry did not answer on $reg"
fi
ok "docker-registry $("$REGISTRY" --version | awk '{ print $3 }') on $reg (pid $registry_pid)"

ref=$reg/debian:bookworm-slim

v2_type=application/vnd.docker.distribution.manifest.v2+json
list_type=application/vnd.docker.distribution.manifest.list.v2+json
# The digest the registry serves for the tag, from its HTTP API.
registry_digest() {
        curl -sf --max-time 5 -I -H "Accept: $v2_type" -H "Accept: $list_type" \
                "http://$reg/v2/debian/manifests/bookworm-slim" |
                tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }'
}

dk import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' "$base_tar" "$ref" >/dev/null
dk push "$ref" >"$tmp/push.log" 2>&1 || {
        cat "$tmp/push.log" "$tmp/registry.log" >&2
        fail "docker push $ref failed"
}
d1=$(registry_digest)
[[ $d1 =~ ^sha256:[0-9a-f]{64}$ ]] || fail "the registry reports no digest for $ref: '$d1'"
id1=$(dk image inspect -f '{{.Id}}' "$ref")
layers1=$(dk image inspect -f '{{json .RootFS.Layers}}' "$ref")
arch=$(dk image inspect -f '{{.Architecture}}' "$ref")
# Gone from the engine: the pin has to pull it from the registry.
dk rmi "$ref" >/dev/null
ok "base image pushed as $ref, the registry serves it as $d1"

# --- pinning -----------------------------------------------------------------------

# A copy of what the pin touches, as it is in the worktree now (uncommitted
# changes too, through a stash commit that changes nothing in the worktree).
tree=$tmp/tree
mkdir -p "$tree"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
        rev=$(git -C "$src" stash create)
        git -C "$src" archive "${rev:-HEAD}" Dockerfile docker-compose.yml tools/pin-base-image | tar -x -C "$tree"
else
        (cd "$src" && cp --parents Dockerfile docker-compose.yml tools/pin-base-image "$tree/")
fi
cp "$tree/Dockerfile" "$tmp/Dockerfile.orig"
cp "$tree/docker-compose.yml" "$tmp/docker-compose.yml.orig"

# pin ARGS...: tools/pin-base-image in the copy, on the private engine;
# its output in $tmp/pin.out.
pin() {
        DOCKER=$DOCKER DOCKER_HOST=unix://$docker_sock "$tree/tools/pin-base-image" "$@" >"$tmp/pin.out" 2>&1
}

# changed_lines FILE: the lines of FILE that differ from FILE.orig in $tmp.
changed_lines() {
        diff "$tmp/$1.orig" "$tree/$1" | grep -c '^[<>]' || true
}

# assert_pinned DIGEST: both files name $ref@DIGEST, and nothing else changed.
assert_pinned() {
        local want=$ref@$1
        grep -qxF "ARG BASE=$want" "$tree/Dockerfile" ||
                fail "Dockerfile does not say ARG BASE=$want: $(grep '^ARG BASE=' "$tree/Dockerfile")"
        grep -qF "\${JOYRIDE_BASE_IMAGE:-$want}" "$tree/docker-compose.yml" ||
                fail "docker-compose.yml does not default JOYRIDE_BASE_IMAGE to $want: $(grep JOYRIDE_BASE_IMAGE "$tree/docker-compose.yml")"
        [ "$(changed_lines Dockerfile)" = 2 ] || fail "the pin changed more than ARG BASE= in Dockerfile: $(diff "$tmp/Dockerfile.orig" "$tree/Dockerfile")"
        [ "$(changed_lines docker-compose.yml)" = 2 ] ||
                fail "the pin changed more than one line of docker-compose.yml: $(diff "$tmp/docker-compose.yml.orig" "$tree/docker-compose.yml")"
}

pin "$ref" || fail "tools/pin-base-image $ref failed: $(cat "$tmp/pin.out")"
grep -qxF "pinned the base image to $ref@$d1 (Dockerfile, docker-compose.yml)" "$tmp/pin.out" ||
        fail "tools/pin-base-image said: $(cat "$tmp/pin.out")"
assert_pinned "$d1"
[ "$(dk image inspect -f '{{.Id}}' "$ref")" = "$id1" ] || fail "the pin pulled another image than the one pushed"
ok "pinned: Dockerfile says ARG BASE=$ref@$d1, docker-compose.yml the same, the digest the registry reports"

cp "$tree/Dockerfile" "$tmp/Dockerfile.pinned"
cp "$tree/docker-compose.yml" "$tmp/docker-compose.yml.pinned"
# same_as_pinned: the files are byte for byte as after the first pin.
same_as_pinned() {
        cmp -s "$tmp/Dockerfile.pinned" "$tree/Dockerfile" && cmp -s "$tmp/docker-compose.yml.pinned" "$tree/docker-compose.yml"
}
pin "$ref" || fail "tools/pin-base-image $ref failed the second time: $(cat "$tmp/pin.out")"
same_as_pinned || fail "a second pin changed the files: $(diff "$tmp/Dockerfile.pinned" "$tree/Dockerfile")"
ok "pinning again changes nothing"

bad=sha256:$(printf '%064d' 0 | tr 0 g)
said=
for args in "--digest sha256:bad $ref" "--digest=$bad $ref" "--digest sha256:${d1#sha256:}0 $ref" "--digest" "$reg/debian|x"; do
        rc=0
        # shellcheck disable=SC2086 # the words of args are the arguments
        pin $args || rc=$?
        [ "$rc" = 2 ] || fail "pin-base-image $args exited $rc, not 2: $(cat "$tmp/pin.out")"
        grep -q 'is not a sha256 digest\|needs a value\|is not an image reference' "$tmp/pin.out" || fail "pin-base-image $args said: $(cat "$tmp/pin.out")"
        same_as_pinned || fail "pin-base-image $args changed the files"
        said=${said:-$(head -n1 "$tmp/pin.out")}
done
ok "a bad --digest is refused, one without a value and a bad image name too: $said"
pin --digest "$d1" "$ref" || fail "pin-base-image --digest $d1 failed: $(cat "$tmp/pin.out")"
same_as_pinned || fail "pin-base-image --digest $d1 wrote other files than the pull did"
ok "--digest with the registry's digest writes the same pin"

# --- a manifest list, as on Docker Hub ---------------------------------------------

# Debian's tags name manifest lists (one manifest per architecture); the pin
# must name the list, as the tag does now, not the one manifest the engine
# pulled before (which the engine still lists among the image's
# RepoDigests: same image, two digests).
manifest=$(curl -sf --max-time 5 -H "Accept: $v2_type" "http://$reg/v2/debian/manifests/$d1")
size=$(printf '%s' "$manifest" | wc -c)
printf '{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","size":%d,"digest":"%s","platform":{"architecture":"%s","os":"linux"}}]}' \
        "$list_type" "$v2_type" "$size" "$d1" "$arch" >"$tmp/list.json"
curl -sf --max-time 5 -X PUT -H "Content-Type: $list_type" --data-binary "@$tmp/list.json" \
        "http://$reg/v2/debian/manifests/bookworm-slim" >/dev/null || fail "the registry refused the manifest list"
dl=$(registry_digest)
[[ $dl =~ ^sha256:[0-9a-f]{64}$ && $dl != "$d1" ]] || fail "the registry does not serve the manifest list for $ref: '$dl'"
pin "$ref" || fail "tools/pin-base-image $ref failed on the manifest list: $(cat "$tmp/pin.out")"
assert_pinned "$dl"
[ "$(dk image inspect -f '{{.Id}}' "$ref")" = "$id1" ] || fail "the manifest list gave another image"
ok "the tag names a manifest list ($dl, for $arch): the pin names the list, not the manifest pulled before"

# --- the pin holds when the tag moves ----------------------------------------------

# The tag now names another image (the busybox one), and the pinned image
# is gone from the engine again. The build and the pull below get it back
# through the pin: the manifest list, then its one manifest.
dk rmi -f "$id1" >/dev/null
dk tag "$DOCKER_IMAGE" "$ref"
dk push "$ref" >"$tmp/push2.log" 2>&1 || fail "docker push of the second image failed: $(cat "$tmp/push2.log")"
d2=$(registry_digest)
[[ $d2 =~ ^sha256:[0-9a-f]{64}$ && $d2 != "$d1" ]] || fail "the registry still serves $d1 (or nothing: '$d2') for the moved tag"
dk rmi "$ref" >/dev/null

# The pinned Dockerfile up to its first FROM, and a LABEL: the first stage
# as the pin makes it start, with no container run.
mkdir -p "$tmp/ctx"
sed -n '1,/^FROM /p' "$tree/Dockerfile" >"$tmp/ctx/Dockerfile"
grep -q '^FROM \${BASE} AS build$' "$tmp/ctx/Dockerfile" || fail "the Dockerfile's first stage does not start FROM \${BASE}: $(tail -n1 "$tmp/ctx/Dockerfile")"
echo 'LABEL joyride.test=pin' >>"$tmp/ctx/Dockerfile"
DOCKER_BUILDKIT=1 dk build -q --network none -t local/pinned-build:1 "$tmp/ctx" >"$tmp/build.log" 2>&1 ||
        fail "docker build of the pinned first stage failed: $(tail -n 20 "$tmp/build.log")"
[ "$(dk image inspect -f '{{json .RootFS.Layers}}' local/pinned-build:1)" = "$layers1" ] ||
        fail "the build from the pinned Dockerfile does not start from the pinned image"
ok "a build of the pinned Dockerfile's first stage starts from the pinned image, though the tag moved"

dk pull -q "$ref@$d1" >/dev/null || fail "docker pull $ref@$d1 failed"
[ "$(dk image inspect -f '{{.Id}}' "$ref@$d1")" = "$id1" ] || fail "docker pull $ref@$d1 gave another image"
ok "docker pull $ref@$d1 gives the pushed image ($id1)"

pin "$ref" || fail "tools/pin-base-image failed after the tag moved: $(cat "$tmp/pin.out")"
assert_pinned "$d2"
ok "pinning again after the tag moved: $d2, the registry's new digest"
