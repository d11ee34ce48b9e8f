#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The dashboard in a real browser: starts joyrided on loopback with a hosts
# directory, then runs dashboard.test.js (playwright-core driving Debian's
# /usr/bin/chromium, headless; no browser is ever downloaded). Screenshots go
# to BUILDDIR/test-artifacts/. Exits 77 (skip) when chromium or node is
# missing. Usage: run.sh BUILDDIR
set -euo pipefail
build=$(cd "${1:?usage: run.sh BUILDDIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../integration/lib.sh"

chromium=${JOYRIDE_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || {
        echo "SKIP: $chromium not installed (apt-get install chromium)"
        exit 77
}
command -v node >/dev/null || {
        echo "SKIP: node not installed"
        exit 77
}

if [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
        command -v npm >/dev/null || {
                echo "SKIP: npm not installed and playwright-core missing"
                exit 77
        }
        # playwright-core has no install script; skipping scripts and the
        # download variable make sure nothing fetches a browser anyway.
        if ! (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --ignore-scripts >&2); then
                echo "SKIP: npm ci failed (no registry access?)"
                exit 77
        fi
fi

tmp=$(mktemp -d /tmp/test-browser-XXXXXX)
daemon_pid=
node_a_pid=
node_b_pid=
cleanup() {
        for p in $daemon_pid $node_a_pid $node_b_pid; do
                kill "$p" 2>/dev/null || true
                wait "$p" 2>/dev/null || true
        done
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' INT TERM # so that the EXIT trap cleans up on a timeout too

mkdir -p "$tmp/hosts" "$tmp/state" "$build/test-artifacts"
printf '10.30.0.1 web.browser.test db.browser.test\n10.30.0.2 cache.browser.test\nfd00::30 six.browser.test\n' \
        >"$tmp/hosts/base.hosts"

dns_port=$(free_port)
http_port=$(free_port)
while [ "$http_port" = "$dns_port" ]; do http_port=$(free_port); done
# Forwarding to a port where nothing listens: the card shows it failing.
dead_port=$(free_port)
# An etcd endpoint where nothing listens: the etcd card shows it out of reach.
etcd_port=$(free_port)

"$build/src/joyrided" --dns-bind-address=127.0.0.1 --dns-port="$dns_port" \
        --http-host=127.0.0.1 --http-port="$http_port" --hosts-directory="$tmp/hosts" \
        --state-directory="$tmp/state" --no-docker --bus=none --no-cluster \
        --forward="127.0.0.1:$dead_port" --etcd-endpoints="http://127.0.0.1:$etcd_port" >"$tmp/daemon.log" 2>&1 &
daemon_pid=$!
wait_for "HTTP API" 10 curl -sf "http://127.0.0.1:$http_port/health"
# Some queries, so that the counters in the screenshots are not all zero.
for n in web db nothere; do dig_short "$dns_port" "$n.browser.test" >/dev/null || true; done
dig_short "$dns_port" www.example.org >/dev/null || true # forwarded: SERVFAIL

JOYRIDE_URL="http://127.0.0.1:$http_port/" \
        JOYRIDE_FORWARD_UPSTREAM="127.0.0.1:$dead_port" \
        JOYRIDE_HOSTS_DIR="$tmp/hosts" \
        JOYRIDE_ARTIFACTS="$build/test-artifacts" \
        JOYRIDE_CHROMIUM="$chromium" \
        JOYRIDE_PROFILE="$tmp/profile" \
        node "$here/dashboard.test.js" || {
        echo "daemon log:"
        tail -20 "$tmp/daemon.log"
        exit 1
}

kill -0 "$daemon_pid" || fail "the daemon died during the browser test"

# A clustered node's dashboard: two nodes on loopback (no discovery), each
# with one record of its own.
mkdir -p "$tmp/a/hosts" "$tmp/b/hosts"
echo "10.31.0.1 a.cluster.test" >"$tmp/a/hosts/a.hosts"
echo "10.31.0.2 b.cluster.test" >"$tmp/b/hosts/b.hosts"
swim_a=$(free_port)
swim_b=$(free_port)
dns_a=$(free_port)
http_a=$(free_port)
export JOYRIDE_SWIM_PROBE_INTERVAL_MS=200 JOYRIDE_CLUSTER_PUSH_PULL_INTERVAL_MS=1000
"$build/src/joyrided" --node-id=node-a --cluster --cluster-bind-address=127.0.0.1 --swim-port="$swim_a" \
        --dns-bind-address=127.0.0.1 --dns-port="$dns_a" --http-host=127.0.0.1 --http-port="$http_a" \
        --hosts-directory="$tmp/a/hosts" --state-directory="$tmp/a" --no-docker --bus=none >"$tmp/a.log" 2>&1 &
node_a_pid=$!
"$build/src/joyrided" --node-id=node-b --cluster --cluster-bind-address=127.0.0.1 --swim-port="$swim_b" \
        --join="127.0.0.1:$swim_a" --dns-bind-address=127.0.0.1 --dns-port="$(free_port)" --no-http \
        --hosts-directory="$tmp/b/hosts" --state-directory="$tmp/b" --no-docker --bus=none >"$tmp/b.log" 2>&1 &
node_b_pid=$!
wait_for "node-b's record on node-a" 20 bash -c "dig @127.0.0.1 -p $dns_a +short +tries=1 +time=1 b.cluster.test | grep -q ^10.31"
for _ in $(seq 20); do dig_short "$dns_a" a.cluster.test >/dev/null || true; done

JOYRIDE_URL="http://127.0.0.1:$http_a/" \
        JOYRIDE_SELF=node-a \
        JOYRIDE_PEER=node-b \
        JOYRIDE_SELF_SOURCE="hosts:$tmp/a/hosts/a.hosts:1" \
        JOYRIDE_PEER_SOURCE="hosts:$tmp/b/hosts/b.hosts" \
        JOYRIDE_ARTIFACTS="$build/test-artifacts" \
        JOYRIDE_CHROMIUM="$chromium" \
        JOYRIDE_PROFILE="$tmp/profile-cluster" \
        node "$here/cluster.test.js" || {
        echo "node-a log:"
        tail -20 "$tmp/a.log"
        exit 1
}

# A node with 100,000 records: the dashboard pages through the server.
mkdir -p "$tmp/big/hosts"
python3 - "$tmp/big/hosts/big.hosts" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(99997):
        f.write(f"10.{100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255} host-{i}.scale.test\n")
    f.write("10.0.10.5 b.sort.scale.test\n10.1.0.1 c.sort.scale.test\n10.0.2.5 a.sort.scale.test\n")
PY
http_big=$(free_port)
"$build/src/joyrided" --dns-bind-address=127.0.0.1 --dns-port="$(free_port)" \
        --http-host=127.0.0.1 --http-port="$http_big" --hosts-directory="$tmp/big/hosts" \
        --state-directory="$tmp/big" --no-docker --bus=none --no-cluster >"$tmp/big.log" 2>&1 &
big_pid=$!
node_a_pid="$node_a_pid $big_pid" # stopped by cleanup too
wait_for "100,000 records loaded" 60 bash -c "curl -sf 'http://127.0.0.1:$http_big/dns/records?limit=0' | grep -q '\"total_records\":100000'"

JOYRIDE_URL="http://127.0.0.1:$http_big/" \
        JOYRIDE_TOTAL=100000 \
        JOYRIDE_ARTIFACTS="$build/test-artifacts" \
        JOYRIDE_CHROMIUM="$chromium" \
        JOYRIDE_PROFILE="$tmp/profile-big" \
        node "$here/scale.test.js" || {
        echo "daemon log:"
        tail -20 "$tmp/big.log"
        exit 1
}
