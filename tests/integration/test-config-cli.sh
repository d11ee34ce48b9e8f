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
expect_error "syntax error in the config file" "$tmp/syntax.conf:3:"

# --help: stdout, exit 0, every option with its environment variable, even
# when the environment holds a bad value (that is when people need help).
run DNS_PORT=abc -- --help
[ "$status" -eq 0 ] || fail "--help: exit status $status, expected 0"
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
