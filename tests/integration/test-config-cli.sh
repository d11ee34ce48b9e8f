#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Configuration errors as a user sees them: runs the real joyrided with bad
# environment variables, options and config files, and checks that it exits
# with status 2 and that stderr names the key and the value. Also checks
# --help and --version. Usage: test-config-cli.sh BUILDDIR
#
# Every run gets a clean environment and loopback-only, high-port settings on
# the command line, so that if validation ever wrongly passes, the daemon that
# starts touches nothing outside this machine and is killed by timeout.

set -euo pipefail

build=${1:?usage: test-config-cli.sh BUILDDIR}
joyrided=$build/src/joyrided
srcdir=$(cd "$(dirname "$0")/../.." && pwd)

if [ ! -x "$joyrided" ]; then
        echo "FAIL: $joyrided does not exist or is not executable"
        exit 1
fi

tmp=$(mktemp -d /tmp/test-config-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/state"
: >"$tmp/empty.conf"

dns_port=$((20000 + RANDOM % 40000))
http_port=$((20000 + RANDOM % 40000))
safe=(--dns-bind-address=127.0.0.1 --http-host=127.0.0.1 --http-port="$http_port"
        --no-docker --bus=none --no-cluster --state-directory="$tmp/state")

status=0

fail() {
        echo "FAIL: $*"
        echo "--- stderr:"
        cat "$tmp/err"
        echo "--- stdout:"
        cat "$tmp/out"
        exit 1
}

# run [VAR=value...] -- [ARGS...]: runs joyrided in a clean environment whose
# config file is empty unless a VAR says otherwise; sets $status.
run() {
        local envs=()
        while [ "$1" != -- ]; do
                envs+=("$1")
                shift
        done
        shift
        set +e
        env -i PATH="$PATH" JOYRIDE_CONFIG="$tmp/empty.conf" "${envs[@]}" \
                timeout -k 2 10 "$joyrided" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
        status=$?
        set -e
}

# expect_error DESCRIPTION FRAGMENT...: the last run failed with status 2 and
# a "joyrided: ..." line on stderr containing every fragment.
expect_error() {
        local what=$1 f
        shift
        [ "$status" -eq 2 ] || fail "$what: exit status $status, expected 2"
        grep -q '^joyrided: ' "$tmp/err" || fail "$what: stderr has no 'joyrided: ' line"
        for f in "$@"; do
                grep -qF -- "$f" "$tmp/err" || fail "$what: stderr does not contain '$f'"
        done
        echo "ok - $what: $(head -n1 "$tmp/err")"
}

# Environment variables, with the original service's names.
run DNS_PORT=abc -- "${safe[@]}"
expect_error "DNS_PORT=abc" "DNS_PORT=abc" "expected a port number (1-65535)"

run HOSTIP=10.0.0.300 -- "${safe[@]}" --dns-port="$dns_port"
expect_error "HOSTIP=10.0.0.300" "HOSTIP=10.0.0.300: expected an IPv4 address"

# Without --no-cluster here: the command line would win over the variable.
run ENABLE_DNS_SYNC=perhaps -- --dns-bind-address=127.0.0.1 --http-host=127.0.0.1 --http-port="$http_port" \
        --no-docker --bus=none --state-directory="$tmp/state" --dns-port="$dns_port"
expect_error "ENABLE_DNS_SYNC=perhaps" "ENABLE_DNS_SYNC=perhaps" "expected a boolean"

# Without --state-directory here, for the same reason.
run STATE_DIRECTORY=relative/dir -- --dns-bind-address=127.0.0.1 --http-host=127.0.0.1 --http-port="$http_port" \
        --no-docker --bus=none --no-cluster --dns-port="$dns_port"
expect_error "STATE_DIRECTORY=relative/dir" "STATE_DIRECTORY=relative/dir" "absolute path"

# Command-line options.
run -- "${safe[@]}" --dns-port="$dns_port" --bus=bogus
expect_error "--bus=bogus" "--bus=bogus: expected system, user or none"

run -- "${safe[@]}" --dns-port=70000
expect_error "--dns-port=70000" "--dns-port=70000" "port number"

run -- "${safe[@]}" --dns-prot="$dns_port"
expect_error "--dns-prot (typo)" "unknown option '--dns-prot' (did you mean --dns-port?)"

run -- "${safe[@]}" --dns-port="$dns_port" extra
expect_error "stray argument" "unexpected argument 'extra'"

run -- "${safe[@]}" --config="$tmp/missing.conf"
expect_error "--config with a missing file" "$tmp/missing.conf" "No such file"

run JOYRIDE_CONFIG="$tmp/missing.conf" -- "${safe[@]}" --dns-port="$dns_port"
expect_error "JOYRIDE_CONFIG with a missing file" "JOYRIDE_CONFIG=$tmp/missing.conf" "No such file"

# Config files: a typo'd key, a bad value, a syntax error.
printf '[DNS]\nPort=%s\nProt=53\n' "$dns_port" >"$tmp/typo.conf"
run JOYRIDE_CONFIG="$tmp/typo.conf" -- "${safe[@]}"
expect_error "typo'd key in the config file" "$tmp/typo.conf:3" "unknown key 'Prot' in section [DNS]" "did you mean 'Port'?"

printf '# comment\n[DSN]\nPort=53\n' >"$tmp/group.conf"
run -- "${safe[@]}" --config="$tmp/group.conf"
expect_error "typo'd section in the config file" "$tmp/group.conf:2" "unknown section [DSN]" "did you mean [DNS]?"

printf '[DNS]\nPort=%s\nTTL=1w\n' "$dns_port" >"$tmp/value.conf"
run -- "${safe[@]}" --config="$tmp/value.conf"
expect_error "bad value in the config file" "[DNS] TTL=1w in $tmp/value.conf:3" "expected an integer from 0 to 604800"

printf '[DNS]\nPort=%s\nthis is not ini\n' "$dns_port" >"$tmp/syntax.conf"
run -- "${safe[@]}" --config="$tmp/syntax.conf"
expect_error "syntax error in the config file" "$tmp/syntax.conf:3:" \
        "'this is not ini' is not a setting (Key=value), a section header ([Name]) or a comment"
grep -q "Key file" "$tmp/err" && fail "GLib's own wording reaches the user"

printf 'Port=53\n[DNS]\n' >"$tmp/nogroup.conf"
run -- "${safe[@]}" --config="$tmp/nogroup.conf"
expect_error "a setting before any section" "$tmp/nogroup.conf:1:" "'Port=53' comes before any section" "[DNS]"
grep -q "does not start with a group" "$tmp/err" && fail "GLib's own wording reaches the user"

# Cluster keys: a configuration error (exit 2) with the decoded length and
# how to make one, never the key itself.
run JOYRIDE_CLUSTER_KEY=c2VjcmV0 -- "${safe[@]}" --cluster
expect_error "a short cluster key" "[Cluster] Key (environment JOYRIDE_CLUSTER_KEY)" "decodes to 6 bytes, not 32" \
        "head -c 32 /dev/urandom | base64"
grep -q c2VjcmV0 "$tmp/err" && fail "the cluster key is printed in the error"
printf 'bm90IGEga2V5\n' >"$tmp/key"
run -- "${safe[@]}" --cluster --cluster-key-file="$tmp/key"
expect_error "a short key in the key file" "[Cluster] KeyFile=$tmp/key" "key 1 decodes to 9 bytes, not 32"

# --check-config: every error of every layer (also values a later layer
# overrides), the effective settings with their origins, exit 2; exit 0 when valid.
printf '[DNS]\nPort=abc\nTTL=7\nProt=1\n[Hostz]\nX=1\n' >"$tmp/check.conf"
run DNS_PORT=70000 FLASK_PORT=5001 JOYRIDE_CLUSTER_KEY="$(head -c 32 /dev/urandom | base64)" -- \
        --config="$tmp/check.conf" --ttl=-1 --check-config
[ "$status" -eq 2 ] || fail "--check-config with errors: exit status $status, expected 2"
for f in "$tmp/check.conf:4: unknown key 'Prot' in section [DNS] (did you mean 'Port'?)" \
        "$tmp/check.conf:5: unknown section [Hostz] (did you mean [Hosts]?)" \
        "[DNS] Port=abc in $tmp/check.conf:2: expected a port number" \
        "DNS_PORT=70000: expected a port number" "--ttl=-1: expected an integer" \
        "joyrided: 5 errors in the configuration"; do
        grep -qF -- "$f" "$tmp/err" || fail "--check-config: stderr lacks '$f'"
done
grep -Eq '^TTL=-1 +# option --ttl$' "$tmp/out" || fail "--check-config: TTL's origin"
grep -Eq '^Port=5001 +# environment FLASK_PORT$' "$tmp/out" || fail "--check-config: HTTP Port's origin"
grep -Eq '^NegativeTTL=5 +# default$' "$tmp/out" || fail "--check-config: a default"
grep -Eq '^Key=\(set, not shown\) +# environment JOYRIDE_CLUSTER_KEY$' "$tmp/out" || fail "--check-config: the key is shown or missing"
echo "ok - --check-config reports every error of every layer and the effective settings with their origins"

printf '[DNS]\nTTL=60\n' >"$tmp/good.conf"
run -- --config="$tmp/good.conf" --check-config
[ "$status" -eq 0 ] || fail "--check-config of a valid configuration: exit status $status"
grep -Eq "^TTL=60 +# $tmp/good.conf:2\$" "$tmp/out" || fail "--check-config: TTL from the file"
grep -q "the configuration is valid" "$tmp/err" || fail "--check-config: no verdict"
echo "ok - --check-config of a valid configuration exits 0"

# A port another program holds: the error names the setting to change.
python3 -c '
import socket, sys, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
t = socket.socket(); t.bind(("127.0.0.1", 0)); t.listen()
print(u.getsockname()[1], t.getsockname()[1], flush=True)
time.sleep(30)' >"$tmp/held" &
holder=$!
for _ in $(seq 50); do
        [ -s "$tmp/held" ] && break
        sleep 0.1
done
read -r held_udp held_tcp <"$tmp/held"
run -- "${safe[@]}" --no-http --dns-port="$held_udp"
[ "$status" -ne 0 ] || {
        kill "$holder"
        fail "a DNS port in use: exit status 0"
}
grep -qF "Another program holds the DNS port $held_udp; stop it, or choose another port with --dns-port= (DNS_PORT=, [DNS] Port=)" "$tmp/err" ||
        {
                kill "$holder"
                fail "a DNS port in use: the message does not name the setting"
        }
echo "ok - a DNS port in use: $(grep 'Another program' "$tmp/err")"
run -- "${safe[@]/--http-port=*/--http-port=$held_tcp}" --dns-port="$dns_port"
kill "$holder"
wait "$holder" 2>/dev/null || true
[ "$status" -ne 0 ] || fail "an HTTP port in use: exit status 0"
grep -qF "Another program holds the HTTP port $held_tcp; stop it, or choose another port with --http-port= (FLASK_PORT=, [HTTP] Port=)" "$tmp/err" ||
        fail "an HTTP port in use: the message does not name the setting"
echo "ok - an HTTP port in use names --http-port and FLASK_PORT"

# --help: stdout, exit 0, every option with its environment variable, even
# when the environment holds a bad value (that is when people need help).
run DNS_PORT=abc -- --help
[ "$status" -eq 0 ] || fail "--help: exit status $status, expected 0"
# shellcheck disable=SC2016 # the literal names, as --help prints them
for f in --dns-port=PORT '$DNS_PORT' --config=FILE '$JOYRIDE_CONFIG' --bus= '$JOYRIDE_BUS' --no-docker \
        '$DOCKER_ENABLED' --http-port=PORT '$FLASK_PORT' --hosts-directory=DIR '$HOSTS_DIRECTORY' --version; do
        grep -qF -- "$f" "$tmp/out" || fail "--help: stdout does not list '$f'"
done
[ ! -s "$tmp/err" ] || fail "--help: wrote to stderr"
echo "ok - --help exits 0 and lists --dns-port with \$DNS_PORT"

# --version: exactly "joyrided VERSION", the version of the meson project.
version=$(sed -n "s/^ *version : '\([^']*\)',.*/\1/p" "$srcdir/meson.build" | head -n1)
[ -n "$version" ] || fail "cannot find the project version in $srcdir/meson.build"
run -- --version
[ "$status" -eq 0 ] || fail "--version: exit status $status, expected 0"
[ "$(cat "$tmp/out")" = "joyrided $version" ] || fail "--version: printed '$(cat "$tmp/out")', expected 'joyrided $version'"
echo "ok - --version prints 'joyrided $version'"

echo "PASS: config CLI checks"
