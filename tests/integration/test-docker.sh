#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Docker source, with joyrided answering dig. First a fake engine (a small
# Python server on a unix socket) for what a real one cannot be made to do on
# demand: 500 containers, API versions newer and older than ours, JSON split
# across chunks. Then a real private dockerd (see docker-lib.sh): every
# container lifecycle step a user takes, labels with several names, wildcards
# and bad names, the optional labels, an engine that is killed and comes back
# with containers changed behind joyrided's back, joyrided started before the
# engine, and 200 containers. Exits 77 (skip) when dockerd cannot run here.
set -euo pipefail
build=$(cd "$1" && pwd)
daemon="$build/src/joyrided"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
source "$here/docker-lib.sh"

# Short: the engine's socket path must fit in sun_path.
tmp=$(mktemp -d /tmp/joyride-docker.XXXXXX)
jpids=()
fake_pids=()
cleanup() {
        local p
        set +e
        for p in "${jpids[@]}" "${fake_pids[@]}"; do kill "$p" 2>/dev/null || true; done
        for p in "${jpids[@]}" "${fake_pids[@]}"; do wait "$p" 2>/dev/null || true; done
        docker_lib_finish "$tmp"
}
trap cleanup EXIT
trap 'exit 143' INT TERM # so that the EXIT trap cleans up on a timeout too
docker_lib_init "$tmp/d"
engine_sock=$R/docker.sock
hostip=192.0.2.10

# start_joyrided NAME PORT: runs joyrided against $engine_sock, logging to $tmp/NAME.log.
start_joyrided() {
        local name=$1 port=$2
        mkdir -p "$tmp/state-$name"
        "$daemon" --dns-bind-address=127.0.0.1 --dns-port="$port" --state-directory="$tmp/state-$name" \
                --no-http --bus=none --no-cluster --docker-host="unix://$engine_sock" --hostip=$hostip \
                --log-level=debug >"$tmp/$name.log" 2>&1 </dev/null &
        jpid=$!
        jpids+=("$jpid")
}

stop_joyrided() {
        kill "$1" 2>/dev/null || true
        wait_pid_timeout "$1" 10 >/dev/null 2>&1 || true
}

# answers NAME [TYPE]: what joyrided on $port says, one value per line,
# sorted; nothing when it does not answer (yet: right after its start, a
# query can beat the socket's bind and be refused).
answers() {
        { dig_short "$port" "$@" 2>/dev/null || true; } | sort
}

# resolves NAME WANT [SECS]: polls until NAME answers exactly WANT.
resolves() {
        local name=$1 want=$2 secs=${3:-2}
        local deadline=$(($(date +%s%N) + secs * 1000000000))
        local got
        while :; do
                got=$(answers "$name" | tr '\n' ' ' | sed 's/ $//')
                [ "$got" = "$want" ] && return 0
                [ "$(date +%s%N)" -lt "$deadline" ] || fail "$name: got '$got', want '$want' (after ${secs}s)"
                sleep 0.05
        done
}

gone() {
        resolves "$1" "" "${2:-2}"
}

# run ARGS...: a labelled (or not) container, detached; prints its id.
run() {
        dk run -d --stop-timeout 1 --network none "$@" "$DOCKER_IMAGE" sleep 100000
}

# log_msec FILE PATTERN: the time of day of the first matching log line, in ms.
log_msec() {
        grep -m1 -- "$2" "$1" | awk '{split($1, t, /[:.]/); print ((t[1] * 60 + t[2]) * 60 + t[3]) * 1000 + t[4]}'
}

# --- a fake engine: what a real one cannot be made to do on demand -------------
# 500 containers in the list; an engine API newer than ours (1.45: we must
# cap at 1.43) or too old to send API-Version (we must ask /version and use
# 1.24); an event stream whose JSON objects are split across HTTP chunks and
# packed several to a chunk.
cat >"$tmp/fake.py" <<'PY'
import http.server, json, socketserver, sys, threading, time
sock, mode, reqlog = sys.argv[1], sys.argv[2], sys.argv[3]
listed = threading.Event()
def container(i, name, state="running", labels=True):
    return {"Id": "%064x" % (0xfa4e0000 + i), "Names": ["/fake-%d" % i], "State": state,
            "Labels": {"joyride.host.name": name} if labels else {}, "NetworkSettings": {"Networks": {}}}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, body, headers=()):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(200)
        for k, v in headers: self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        with open(reqlog, "a") as f: f.write(self.path + "\n")
        p = self.path
        if p == "/_ping":
            self.reply(b"OK", [("Api-Version", "1.45")] if mode == "new" else [])
        elif p == "/version":
            self.reply({"ApiVersion": "1.23", "Version": "1.11.0"})
        elif "/containers/json" in p:
            cs = [container(i, "fake-%d.docker.test" % i) for i in range(500)]
            cs.append(container(900, "paused.docker.test", state="paused"))
            cs.append(container(901, "unlabelled.docker.test", labels=False))
            self.reply(cs)
            listed.set()
        elif "/events" in p:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            listed.wait()
            time.sleep(0.3)
            ev = lambda a, i, name: json.dumps({"Type": "container", "Action": a, "Actor": {"ID": "%064x" % (0xfa4e0000 + i),
                "Attributes": {"joyride.host.name": name, "name": "fake-%d" % i}}}) + "\n"
            data = ev("start", 1000, "ev-a.docker.test") + ev("start", 1001, "ev-b.docker.test") + \
                   ev("die", 1000, "ev-a.docker.test") + ev("die", 0, "fake-0.docker.test") + ev("start", 1002, "ev-c.docker.test")
            # Chunks cut through the middle of objects, and through a multi-object stretch.
            for piece in (data[:17], data[17:130], data[130:131], data[131:400], data[400:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece.encode()))
                self.wfile.flush()
                time.sleep(0.05)
            while True:
                time.sleep(1)
        else:
            self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers()
class S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
S(sock, H).serve_forever()
PY

# fake_engine MODE: starts it on $engine_sock (requests logged to $tmp/fake-MODE.req).
fake_engine() {
        rm -f "$engine_sock"
        python3 "$tmp/fake.py" "$engine_sock" "$1" "$tmp/fake-$1.req" &
        fake_pids+=($!)
        wait_for "fake engine" 5 test -S "$engine_sock"
}

fake_engine new
port=$(free_port)
start_joyrided fake-new "$port"
resolves fake-499.docker.test "$hostip" 5
resolves fake-250.docker.test "$hostip"
t_start=$(log_msec "$tmp/fake-new.log" "joyrided .* started")
t_conn=$(log_msec "$tmp/fake-new.log" "Connected to Docker engine")
grep -q 'Connected to Docker engine .*: 500 labelled container(s) running' "$tmp/fake-new.log" ||
        fail "500 containers not loaded: $(grep 'Docker engine' "$tmp/fake-new.log")"
[ $((t_conn - t_start)) -lt 1000 ] || fail "500 containers took $((t_conn - t_start)) ms to load (want < 1 s)"
ok "500 labelled containers load in $((t_conn - t_start)) ms"
gone paused.docker.test 0
gone unlabelled.docker.test 0
ok "paused and unlabelled containers in the list are left out (client-side filter)"
resolves ev-b.docker.test "$hostip"
resolves ev-c.docker.test "$hostip"
gone ev-a.docker.test
gone fake-0.docker.test
ok "events split across chunks and packed in one apply in order"
grep -q '^/v1.43/events?filters=' "$tmp/fake-new.req" || fail "engine API 1.45 not capped at 1.43: $(cat "$tmp/fake-new.req")"
grep -q '^/v1.43/containers/json?filters=.*joyride.host.name' "$tmp/fake-new.req" || fail "no label-filtered list"
[ "$(head -1 "$tmp/fake-new.req")" = /_ping ] || fail "not negotiated through /_ping"
ok "engine API 1.45: speaks 1.43; events opened before the list"
[ "$(grep -n . "$tmp/fake-new.req" | grep -m1 /events | cut -d: -f1)" -lt \
        "$(grep -n . "$tmp/fake-new.req" | grep -m1 /containers/json | cut -d: -f1)" ] || fail "list requested before the event stream"
stop_joyrided "$jpid"
kill "${fake_pids[-1]}"
wait "${fake_pids[-1]}" 2>/dev/null || true

fake_engine old
start_joyrided fake-old "$port"
resolves fake-1.docker.test "$hostip" 5
grep -q '^/version$' "$tmp/fake-old.req" || fail "no /version asked without an API-Version header"
grep -q '^/v1.24/containers/json' "$tmp/fake-old.req" || fail "an engine at 1.23 not spoken to at 1.24: $(cat "$tmp/fake-old.req")"
ok "no API-Version header: /version asked, 1.24 used"
stop_joyrided "$jpid"
kill "${fake_pids[-1]}"
wait "${fake_pids[-1]}" 2>/dev/null || true
rm -f "$engine_sock"

# --- the real engine -------------------------------------------------------------

if ! why=$(docker_engine_available); then
        echo "SKIP: $why"
        exit 77
fi

# --- joyrided started before the engine exists ------------------------------

port_early=$(free_port)
start_joyrided early "$port_early"
early_pid=$jpid
sleep 1.5
port=$port_early
# It serves DNS meanwhile: a definite answer, not a timeout (REFUSED: it
# holds no name under test yet, so the name is not its own).
dig @127.0.0.1 -p "$port" +tries=1 +time=1 nothing.docker.test | grep -q 'status: REFUSED' ||
        fail "joyrided without an engine does not answer DNS"
n_warn=$(grep -c 'WARN.*Docker engine at .* not available' "$tmp/early.log" || true)
[ "$n_warn" = 1 ] || fail "expected one warning for the missing engine after several retries, got $n_warn: $(cat "$tmp/early.log")"
grep -q 'not available: .*No such file or directory' "$tmp/early.log" ||
        fail "the warning does not say why: $(grep WARN "$tmp/early.log")"
n_tries=$(grep -c 'still not available' "$tmp/early.log" || true)
[ "$n_tries" -ge 2 ] || fail "joyrided did not retry (debug log shows $n_tries retries)"
ok "without an engine: DNS served, one warning with the reason, $n_tries quiet retries"

docker_lib_up

c_pre=$(run --name pre --label joyride.host.name=pre.docker.test)
c_nolabel=$(run --name nolabel --label other.label=nolabel.docker.test)
# The backoff has grown to a few seconds by now.
resolves pre.docker.test "$hostip" 20
ok "joyrided started before the engine resolves once the engine comes up"
grep -q 'Connected to Docker engine' "$tmp/early.log" || fail "no 'Connected' line in the log"
stop_joyrided "$early_pid"

# --- a container already running when joyrided starts ------------------------

port=$(free_port)
start_joyrided main "$port"
resolves pre.docker.test "$hostip" 5
ok "a container running before joyrided starts resolves"
grep -q "Added pre.docker.test A $hostip (docker:$c_pre (pre))" "$tmp/main.log" ||
        fail "the record's source does not name the container: $(grep 'Added pre' "$tmp/main.log")"
ok "the record's source is docker:<full id> (name)"

# --- the lifecycle -------------------------------------------------------------

c=$(run --name web --label joyride.host.name=web.docker.test)
resolves web.docker.test "$hostip"
ok "start: resolves"
dk stop "$c" >/dev/null
gone web.docker.test
ok "stop: gone"
dk start "$c" >/dev/null
resolves web.docker.test "$hostip"
ok "start again: resolves"
dk kill "$c" >/dev/null
gone web.docker.test
ok "kill: gone"
dk start "$c" >/dev/null
resolves web.docker.test "$hostip"
dk pause "$c" >/dev/null
gone web.docker.test
ok "pause: gone"
dk unpause "$c" >/dev/null
resolves web.docker.test "$hostip"
ok "unpause: resolves"
dk restart -t 0 "$c" >/dev/null
[ "$(dk inspect -f '{{.State.Running}}' "$c")" = true ] || fail "container not running after restart"
resolves web.docker.test "$hostip"
# The die must have been seen (the restart is not a no-op to joyrided)...
grep -q "Container ${c:0:12}: die, removed" "$tmp/main.log" || fail "the restart's die was not seen"
# ...and the name must stay: check a few times over a short while.
for i in 1 2 3 4 5; do
        [ "$(answers web.docker.test)" = "$hostip" ] || fail "web.docker.test vanished after the restart"
        sleep 0.1
done
ok "restart: die then start, resolves"
dk rm -f "$c" >/dev/null
gone web.docker.test
ok "rm: gone"

# --- labels ---------------------------------------------------------------------

run --name multi --label 'joyride.host.name=one.docker.test, two.docker.test *.wild.docker.test,,' >/dev/null
resolves one.docker.test "$hostip"
resolves two.docker.test "$hostip"
resolves x.wild.docker.test "$hostip"
resolves deep.y.wild.docker.test "$hostip"
ok "several names and a wildcard in one label"

run --name badlabel --label 'joyride.host.name=ok.docker.test bad_name!.docker.test also.docker.test' >/dev/null
resolves ok.docker.test "$hostip"
resolves also.docker.test "$hostip"
grep -q 'WARN.*badlabel.*bad_name!\.docker\.test' "$tmp/main.log" ||
        fail "no warning naming the container and the bad name: $(grep WARN "$tmp/main.log" || true)"
ok "a bad name is skipped with a warning naming it; the others resolve"

run --name explicit --label joyride.host.name=ip.docker.test --label joyride.host.ip=198.51.100.7 \
        --label joyride.host.ttl=77 >/dev/null
resolves ip.docker.test 198.51.100.7
ttl=$(dig @127.0.0.1 -p "$port" +noall +answer ip.docker.test | awk '{print $2; exit}')
[ "$ttl" = 77 ] || fail "joyride.host.ttl=77 gave TTL $ttl"
run --name v6 --label joyride.host.name=v6.docker.test --label 'joyride.host.ip=2001:db8::7' >/dev/null
resolves v6.docker.test "" 1
[ "$(answers v6.docker.test AAAA)" = 2001:db8::7 ] || fail "joyride.host.ip=2001:db8::7 gave no AAAA"
run --name junk --label joyride.host.name=junk.docker.test --label joyride.host.ip=junk \
        --label joyride.host.ttl=forever >/dev/null
resolves junk.docker.test "$hostip"
grep -q 'WARN.*junk.*joyride.host.ip=junk' "$tmp/main.log" || fail "no warning for joyride.host.ip=junk"
grep -q 'WARN.*junk.*joyride.host.ttl=forever' "$tmp/main.log" || fail "no warning for joyride.host.ttl=forever"
# --network none: the container has no address of its own; the host's is used, with a warning.
run --name own --label joyride.host.name=own.docker.test --label joyride.host.ip=container >/dev/null
resolves own.docker.test "$hostip"
grep -q 'WARN.*own.*no address of its own' "$tmp/main.log" || fail "no warning for ip=container without an address"
ok "joyride.host.ip (IPv4, IPv6, container, junk) and joyride.host.ttl (77, junk)"

# A container without the label changes nothing: start, stop and remove one,
# then use a labelled container as a barrier (events arrive in order).
dk stop "$c_nolabel" >/dev/null
dk start "$c_nolabel" >/dev/null
dk rm -f "$c_nolabel" >/dev/null
run --name barrier --label joyride.host.name=barrier.docker.test >/dev/null
resolves barrier.docker.test "$hostip"
if grep -E "(Added|Removed) .*\(docker:${c_nolabel}" "$tmp/main.log"; then
        fail "an unlabelled container changed records"
fi
gone nolabel.docker.test 0
ok "a container without the label changes nothing"

# --- the engine killed, containers changed while it is away ------------------------

c_gone=$(run --name goner --label joyride.host.name=gone.docker.test)
c_keep=$(run --name keeper --restart always --label joyride.host.name=keep.docker.test)
resolves gone.docker.test "$hostip"
resolves keep.docker.test "$hostip"
docker_engine_kill
wait_for "joyrided noticing the engine is gone" 5 grep -q 'not available: the engine closed the event stream' "$tmp/main.log"
# Kept meanwhile: the containers still run, their names must not blackhole.
[ "$(answers keep.docker.test)" = "$hostip" ] || fail "records dropped while the engine is away"
[ "$(answers gone.docker.test)" = "$hostip" ] || fail "records dropped while the engine is away"
ok "engine killed: records kept while it is away"

# Bring the engine back on another socket, so that joyrided cannot see it
# while a container is removed and another one started; then put it where
# joyrided looks. Only the reconcile can get this right.
rm -f "$engine_sock"
docker_sock=$R/docker2.sock
docker_engine_start || fail "dockerd did not restart"
dk rm -f "$c_gone" >/dev/null
run --name newcomer --label joyride.host.name=new.docker.test >/dev/null
dk start "$c_keep" >/dev/null 2>&1 || true
[ "$(dk inspect -f '{{.State.Running}}' "$c_keep")" = true ] || fail "keeper is not running after the engine restart"
if grep -q 'Reconnected to Docker engine' "$tmp/main.log"; then fail "joyrided saw the engine too early"; fi
ln -s docker2.sock "$R/docker.sock.new"
mv -T "$R/docker.sock.new" "$engine_sock"
# The backoff may have reached 8 s by now.
gone gone.docker.test 20
resolves new.docker.test "$hostip" 5
resolves keep.docker.test "$hostip" 5
# pre (no restart policy) may or may not have survived the engine restart:
# joyrided must say what the engine says.
if [ "$(dk inspect -f '{{.State.Running}}' "$c_pre")" = true ]; then
        resolves pre.docker.test "$hostip"
else
        gone pre.docker.test
fi
grep -q 'Reconnected to Docker engine' "$tmp/main.log" || fail "no 'Reconnected' line"
ok "engine back: the removed container's record is gone, the new one resolves, the kept one stays"

# The event stream works again after the reconnect.
c=$(run --name after --label joyride.host.name=after.docker.test)
resolves after.docker.test "$hostip"
dk stop "$c" >/dev/null
gone after.docker.test
ok "events flow after the reconnect"

# --- 200 containers ---------------------------------------------------------------

n=200
seq $n | xargs -P 8 -I{} "$DOCKER" -H "unix://$docker_sock" create --stop-timeout 1 --network none \
        --label joyride.host.name=bulk-{}.docker.test "$DOCKER_IMAGE" sleep 100000 >"$tmp/bulk.ids"
[ "$(wc -l <"$tmp/bulk.ids")" = $n ] || fail "could not create $n containers"
for i in $(seq $n); do echo "bulk-$i.docker.test"; done >"$tmp/bulk.queries"

# all_resolve PORT SECS: every bulk name answers $hostip within SECS.
all_resolve() {
        local p=$1 secs=$2 got
        local deadline=$(($(date +%s%N) + secs * 1000000000))
        while :; do
                got=$(dig @127.0.0.1 -p "$p" +short +tries=1 +time=1 -f "$tmp/bulk.queries" | grep -cx "$hostip" || true)
                [ "$got" = $n ] && return 0
                [ "$(date +%s%N)" -lt "$deadline" ] || fail "only $got of $n containers resolve after ${secs}s"
                sleep 0.2
        done
}

t0=$(date +%s%N)
xargs -P 8 -n 10 "$DOCKER" -H "unix://$docker_sock" start <"$tmp/bulk.ids" >/dev/null
t1=$(date +%s%N)
all_resolve "$port" 20
t2=$(date +%s%N)
ok "$n containers started in $(((t1 - t0) / 1000000)) ms; all resolve $(((t2 - t1) / 1000000)) ms after the last start"

# The list path: a fresh joyrided loads them all in one go.
port_bulk=$(free_port)
t0=$(date +%s%N)
start_joyrided bulk "$port_bulk"
all_resolve "$port_bulk" 20
t1=$(date +%s%N)
loaded=$(sed -n 's/.*Connected to Docker engine .*: \([0-9]*\) labelled container(s) running.*/\1/p' "$tmp/bulk.log")
[ "${loaded:-0}" -ge $n ] || fail "the list loaded ${loaded:-no} containers: $(grep 'Connected to Docker' "$tmp/bulk.log")"
ok "a joyrided started with $n+ labelled containers running resolves them all in $(((t1 - t0) / 1000000)) ms"

# And they go when they stop (a batch stop is the engine's work; allow time).
xargs -P 8 -n 20 "$DOCKER" -H "unix://$docker_sock" rm -f <"$tmp/bulk.ids" >/dev/null
port_save=$port
port=$port_bulk
gone bulk-1.docker.test 20
gone bulk-$n.docker.test 20
port=$port_save
ok "removed in bulk: gone"
