#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Hosts files, live, as a user sees them through dig: the real daemon on a
# random loopback port serving a temporary hosts directory, and every kind of
# change to that directory (add a line, change an address, delete a file, an
# editor's atomic rename, the directory removed and made again, a bad line)
# showing in DNS answers within a second.
set -euo pipefail
build=$(cd "$1" && pwd)
daemon="$build/src/joyrided"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

setup_tmp

dir="$tmp/hosts.d"
log="$tmp/daemon.log"
mkdir -p "$dir" "$tmp/state"
cat >"$dir/initial.hosts" <<'EOF'
# loaded at start
10.77.0.1   initial.live.test   also.live.test
fd77::0:1   initial.live.test
EOF

# live.test is configured as ours: when the directory goes away with all its
# names, they are still names that do not exist (NXDOMAIN), not names of
# somebody else's (REFUSED).
start_daemon() {
        start_local_daemon "$dir" initial.live.test 10.77.0.1 --domains=live.test
}

# answers NAME TYPE [dig options]: the sorted answer values on one line.
answers() {
        local name=$1 type=$2
        shift 2
        # A dig that times out (a dead daemon) must fail the check, not end the script.
        { dig_short "$port" "$name" "$type" "$@" || echo "(dig failed)"; } | sort | tr '\n' ' ' | sed 's/ $//'
}

status_of() {
        { dig @127.0.0.1 -p "$port" +tries=1 +time=1 +noall +comments "$1" "${2:-A}" || true; } |
                sed -n 's/.*status: \([A-Z]*\).*/\1/p'
}

# expect_within MS WHAT NAME TYPE WANT: polls every 50 ms until the answer is
# WANT (values sorted, space-separated; "NXDOMAIN" for a name that does not
# exist), failing after MS milliseconds.
expect_within() {
        local ms=$1 what=$2 name=$3 type=$4 want=$5
        local start got
        start=$(now_ms)
        while :; do
                if [ "$want" = NXDOMAIN ]; then
                        got=$(status_of "$name" "$type")
                else
                        got=$(answers "$name" "$type")
                fi
                if [ "$got" = "$want" ]; then
                        ok "$what ($name $type -> $want after $(($(now_ms) - start)) ms)"
                        return 0
                fi
                if [ $(($(now_ms) - start)) -ge "$ms" ]; then
                        fail "$what: $name $type is '$got', wanted '$want' within $ms ms"
                fi
                sleep 0.05
        done
}

start_daemon
echo "# joyrided pid $daemon_pid on 127.0.0.1:$port, hosts directory $dir"

# 1. What was there at start, over UDP and once over TCP.
[ "$(answers initial.live.test A)" = "10.77.0.1" ] || fail "initial A: got '$(answers initial.live.test A)'"
ok "initial file: initial.live.test A 10.77.0.1"
[ "$(answers initial.live.test AAAA)" = "fd77::1" ] || fail "initial AAAA: got '$(answers initial.live.test AAAA)'"
ok "initial file: initial.live.test AAAA fd77::1 (canonical form of fd77::0:1)"
[ "$(answers also.live.test A +tcp)" = "10.77.0.1" ] || fail "initial over TCP: got '$(answers also.live.test A +tcp)'"
ok "initial file over TCP: also.live.test A 10.77.0.1"
[ "$(status_of nothing.live.test)" = NXDOMAIN ] || fail "unknown name is not NXDOMAIN"
ok "unknown name: NXDOMAIN"

# 2. A line added to an existing file.
echo "10.77.0.2   added.live.test" >>"$dir/initial.hosts"
expect_within 1000 "line added" added.live.test A "10.77.0.2"
[ "$(answers initial.live.test A)" = "10.77.0.1" ] || fail "the other lines of the file were lost"

# 3. An address changed.
sed -i 's/^10\.77\.0\.2 /10.77.0.22 /' "$dir/initial.hosts"
expect_within 1000 "address changed" added.live.test A "10.77.0.22"

# 4. A new file, then deleted: its names go, the others stay.
cat >"$dir/extra.hosts" <<'EOF'
10.77.1.1 extra.live.test
EOF
expect_within 1000 "file created" extra.live.test A "10.77.1.1"
rm "$dir/extra.hosts"
expect_within 1000 "file deleted" extra.live.test A NXDOMAIN
[ "$(answers initial.live.test A)" = "10.77.0.1" ] || fail "deleting one file lost another's names"
ok "file deleted: other files still answer"

# 5. An editor's save: write a temp file, rename it over the original.
cat >"$dir/.initial.hosts.swp-tmp" <<'EOF'
10.77.0.1   initial.live.test
10.77.0.22  added.live.test
10.77.0.3   renamed.live.test
EOF
mv "$dir/.initial.hosts.swp-tmp" "$dir/initial.hosts"
expect_within 1000 "atomic rename: new name" renamed.live.test A "10.77.0.3"
expect_within 1000 "atomic rename: dropped name" also.live.test A NXDOMAIN
expect_within 1000 "atomic rename: dropped address" initial.live.test AAAA ""
[ "$(answers added.live.test A)" = "10.77.0.22" ] || fail "atomic rename lost an unchanged line"
ok "atomic rename: unchanged line still answers"

# 6. The directory removed, then made again.
rm -rf "$dir"
expect_within 1000 "directory removed" initial.live.test A NXDOMAIN
expect_within 1000 "directory removed" renamed.live.test A NXDOMAIN
mkdir "$dir"
echo "10.77.2.1 reborn.live.test" >"$dir/new.hosts"
expect_within 1000 "directory recreated" reborn.live.test A "10.77.2.1"

# 7. A bad line: a warning naming file and line on stderr, the rest loads.
printf '10.77.3.1 good1.live.test\n10.0.0.300 bad.live.test\n10.77.3.2 good2.live.test bad..name.live.test\n' \
        >"$dir/mixed.hosts"
expect_within 1000 "bad line skipped, later line loads" good2.live.test A "10.77.3.2"
[ "$(answers good1.live.test A)" = "10.77.3.1" ] || fail "line before a bad line does not answer"
ok "bad line: the line before it still answers"
wait_for "warning for the bad address" 2 grep -qF "$dir/mixed.hosts:2: not an IP address: '10.0.0.300'" "$log"
ok "bad line: warning '$dir/mixed.hosts:2: not an IP address: '10.0.0.300'' on stderr"
wait_for "warning for the bad name" 2 grep -qF "$dir/mixed.hosts:3: invalid name 'bad..name.live.test'" "$log"
ok "bad name: warning naming $dir/mixed.hosts:3 on stderr"
[ "$(status_of bad.live.test)" = NXDOMAIN ] || fail "the bad line's name answers"
ok "bad line: its name is NXDOMAIN"
grep -q "Loaded $dir/mixed.hosts: 2 records (+2 -0), 2 warnings" "$log" || fail "no load summary line for mixed.hosts"
ok "load summary logged: Loaded $dir/mixed.hosts: 2 records (+2 -0), 2 warnings"

kill -0 "$daemon_pid" 2>/dev/null || fail "joyrided died"
ok "joyrided still running"
echo "all hosts-live checks passed"
