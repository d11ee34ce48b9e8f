#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ForwardAllow's default, seen from another host: loopback and the subnets of
# the host's own interfaces, looked up again when an unknown client comes (a
# Docker network made after the start). Two network namespaces made here, a
# server and a client, joined by one veth pair (made inside the server's
# namespace, its peer moved straight into the client's: nothing touches the
# caller's namespace). The server runs joyrided on all its addresses,
# forwarding to a fake upstream on its own loopback, with no ForwardAllow.
# Through dig from the client: an address in the server's subnet is
# forwarded; an address outside every subnet of the server gets REFUSED for
# that name (its own names still answered); once the server has an address
# in that subnet too, the same client is forwarded.
# Needs root (exits 77 when ip netns is not permitted).
set -euo pipefail
build=$(cd "$1" && pwd)
daemon="$build/src/joyrided"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

[ -x "$daemon" ] || fail "no joyrided in $build"
need_commands dig ip python3
[ "$(id -u)" = 0 ] || skip "needs root for ip netns"
srv="jrfwd-$$-s"
cli="jrfwd-$$-c"
ip netns add "$srv" 2>/dev/null || skip "ip netns add is not permitted here"

tmp=$(mktemp -d /tmp/test-forward-net.XXXXXX)
pids=""
cleanup() {
        local rc=$? pid
        set +e
        for pid in $pids; do
                kill "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null
        done
        if [ "$rc" != 0 ] && [ -f "$tmp/joyrided.log" ]; then
                echo "--- last lines of joyrided's log:"
                tail -20 "$tmp/joyrided.log"
        fi
        ip netns del "$cli" 2>/dev/null
        ip netns del "$srv" 2>/dev/null
        rm -rf "$tmp"
        exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

ip netns add "$cli"
ip -n "$srv" link set lo up
ip -n "$cli" link set lo up
ip -n "$srv" link add v0 type veth peer name v1 netns "$cli"
ip -n "$srv" addr add 10.233.0.1/24 dev v0
ip -n "$cli" addr add 10.233.0.2/24 dev v1
# A second client address, in no subnet of the server: the server reaches it
# by a host route, not by an address of its own.
ip -n "$cli" addr add 10.234.0.2/32 dev v1
ip -n "$srv" link set v0 up
ip -n "$cli" link set v1 up
ip -n "$srv" route add 10.234.0.2/32 dev v0

mkdir -p "$tmp/hosts" "$tmp/state"
echo "10.77.0.1 api.internal" >"$tmp/hosts/a.hosts"
: >"$tmp/upstream.log"
ip netns exec "$srv" python3 "$here/fake-upstream.py" slow 5300 "$tmp/upstream.log" >"$tmp/upstream.out" 2>&1 &
pids="$pids $!"
wait_for "the fake upstream" 5 grep -q ready "$tmp/upstream.out"
ip netns exec "$srv" "$daemon" --dns-port=53 --hosts-directory="$tmp/hosts" --state-directory="$tmp/state" \
        --no-docker --no-http --bus=none --no-cluster --log-level=debug --forward=127.0.0.1:5300 \
        >"$tmp/joyrided.log" 2>&1 &
pids="$pids $!"

# from ADDRESS NAME: dig from the client's ADDRESS at the server.
from() {
        ip netns exec "$cli" dig @10.233.0.1 -b "$1" +tries=1 +time=3 "$2" A 2>&1 || true
}
wait_for "joyrided answering the client" 10 \
        bash -c "ip netns exec $cli dig @10.233.0.1 -b 10.233.0.2 +tries=1 +time=1 +short api.internal | grep -qx 10.77.0.1"

out=$(from 10.233.0.2 one.fake.test)
expect_match "a client in the server's subnet (10.233.0.2) is forwarded by default" \
        '^one\.fake\.test\.[[:space:]].*[[:space:]]A[[:space:]]+192\.0\.2\.98$' "$out"

out=$(from 10.234.0.2 two.fake.test)
expect_match "a client in no subnet of the server (10.234.0.2) gets REFUSED" 'status: REFUSED' "$out"
expect "... and the upstream was not asked" "0" "$(grep -c 'query two.fake.test' "$tmp/upstream.log" || true)"
expect_match "... but the server's own names are answered to it" '^api\.internal\.[[:space:]].*[[:space:]]A[[:space:]]+10\.77\.0\.1$' \
        "$(from 10.234.0.2 api.internal)"

# A new network on the server, as Docker makes one for a new bridge.
ip -n "$srv" addr add 10.234.0.1/24 dev v0
wait_for "the new subnet in the default ForwardAllow" 10 \
        bash -c "ip netns exec $cli dig @10.233.0.1 -b 10.234.0.2 +tries=1 +time=2 three.fake.test | grep -q 192.0.2.98"
ok "once the server has an address in 10.234.0.0/24, the same client is forwarded"
