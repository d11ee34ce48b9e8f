# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Helpers for the etcd integration test and benchmark (sourced after lib.sh,
# not run): etcd members, joyride nodes and a TCP relay on loopback, all
# started with their PIDs kept in $started so that one cleanup stops them.
# Needs $T (a temp dir) and $BUILD.

export ETCDCTL_API=3
started=""
declare -A PIDS=()

# _etcd_lib_stop KEY SIGNAL SECONDS: sends SIGNAL to what PIDS[KEY] names,
# waits for it (SECONDS at most, then leaves it) and forgets it.
_etcd_lib_stop() {
        local pid=${PIDS["$1"]}
        kill "-$2" "$pid" 2>/dev/null || true
        wait_pid_timeout "$pid" "$3" || true
        unset "PIDS[$1]"
}

# _etcd_lib_py_start KEY SCRIPT LISTEN_PORT TARGET_PORT WHAT: runs a Python
# SCRIPT (which takes the two ports) as PIDS[KEY], its errors in
# $T/KEY.log, and waits (5 s) until it accepts connections on LISTEN_PORT.
_etcd_lib_py_start() {
        local key=$1 script=$2 listen=$3 target=$4 what=$5
        python3 "$script" "$listen" "$target" 2>>"$T/$key.log" &
        PIDS["$key"]=$!
        started="$started $!"
        wait_for "$what on $listen" 5 python3 -c "import socket; socket.create_connection(('127.0.0.1', $listen)).close()"
}

# etcd_start NAME CLIENT_PORT PEER_PORT INITIAL_CLUSTER [etcd options]: starts a
# member with its data in $T/etcd-NAME (kept across restarts: a second call
# starts it again from its data directory). Plain http unless the options say
# otherwise (--listen-client-urls given again wins).
etcd_start() {
        local name=$1 cport=$2 pport=$3 cluster=$4 scheme=http
        shift 4
        case " $* " in *" --cert-file "*) scheme=https ;; esac
        etcd --name "$name" --data-dir "$T/etcd-$name" \
                --listen-client-urls "$scheme://127.0.0.1:$cport" --advertise-client-urls "$scheme://127.0.0.1:$cport" \
                --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
                --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "joyride-$$" \
                --logger zap --log-outputs stderr \
                "$@" >>"$T/etcd-$name.log" 2>&1 </dev/null &
        PIDS["etcd-$name"]=$!
        started="$started $!"
}

# etcd_wait ENDPOINTS [etcdctl options]: until every member answers healthy.
etcd_wait() {
        local endpoints=$1
        shift
        wait_for "etcd at $endpoints" 30 etcdctl --endpoints="$endpoints" "$@" endpoint health
}

# etcd_stop NAME [SIGNAL]: stops a member and waits for it.
etcd_stop() {
        _etcd_lib_stop "etcd-$1" "${2:-TERM}" 20
}

# node_start NAME DNS_PORT HTTP_PORT ENDPOINTS [joyrided options]: a joyride
# node serving $T/hosts-NAME, HTTP on loopback, D-Bus, Docker and SWIM off
# (unless the options say otherwise), debug log in $T/node-NAME.log
# (appended to across restarts). Waits until its HTTP API answers.
node_start() {
        local name=$1 dns=$2 http=$3 endpoints=$4
        shift 4
        mkdir -p "$T/hosts-$name" "$T/state-$name"
        "$BUILD/src/joyrided" --dns-bind-address=127.0.0.1 --dns-port="$dns" \
                --http-host=127.0.0.1 --http-port="$http" --hosts-directory="$T/hosts-$name" \
                --state-directory="$T/state-$name" --no-docker --bus=none --no-cluster --node-id="$name" \
                --etcd-endpoints="$endpoints" --log-level=debug "$@" >>"$T/node-$name.log" 2>&1 </dev/null &
        PIDS["node-$name"]=$!
        started="$started $!"
        wait_for "node $name's HTTP API" "${NODE_START_WAIT:-10}" curl -sf "http://127.0.0.1:$http/health"
}

# node_stop NAME [SIGNAL]: stops a node and waits for it to exit.
node_stop() {
        _etcd_lib_stop "node-$1" "${2:-TERM}" 10
}

# relay_start NAME LISTEN_PORT TARGET_PORT: a TCP relay on loopback, so that
# a node can be cut off from etcd (relay_stop) while etcd runs on.
relay_start() {
        local name=$1 listen=$2 target=$3
        cat >"$T/relay.py" <<'PY'
import socket, sys, threading

listen, target = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen))
srv.listen(64)

def pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

while True:
    c, _ = srv.accept()
    try:
        u = socket.create_connection(("127.0.0.1", target))
    except OSError:
        c.close()
        continue
    threading.Thread(target=pump, args=(c, u), daemon=True).start()
    threading.Thread(target=pump, args=(u, c), daemon=True).start()
PY
        _etcd_lib_py_start "relay-$name" "$T/relay.py" "$listen" "$target" "the relay"
}

relay_stop() {
        _etcd_lib_stop "relay-$1" KILL 5
}

# http1_proxy_start NAME LISTEN_PORT TARGET_PORT: an HTTP/1.1 reverse proxy on
# loopback in front of etcd's JSON gateway, as an HTTP proxy that knows no
# HTTP/2 would be: gRPC cannot pass, the gateway (the watch's stream too) can.
http1_proxy_start() {
        local name=$1 listen=$2 target=$3
        cat >"$T/http1-proxy.py" <<'PY'
import http.client, http.server, socketserver, sys

listen, target = int(sys.argv[1]), int(sys.argv[2])
HOP = {"host", "connection", "content-length", "transfer-encoding", "keep-alive"}

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        up = http.client.HTTPConnection("127.0.0.1", target)
        up.request("POST", self.path, body=body,
                   headers={k: v for k, v in self.headers.items() if k.lower() not in HOP})
        r = up.getresponse()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while True:
                chunk = r.read1(65536)
                if not chunk:
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        up.close()

    def log_message(self, *args):
        pass

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

Server(("127.0.0.1", listen), Handler).serve_forever()
PY
        _etcd_lib_py_start "http1-proxy-$name" "$T/http1-proxy.py" "$listen" "$target" "the HTTP/1.1 proxy"
}

http1_proxy_stop() {
        _etcd_lib_stop "http1-proxy-$1" TERM 5
}

# answers PORT NAME [TYPE]: the sorted values a node answers, space-joined;
# fails when the node does not answer at all.
answers() {
        local out
        out=$(dig @127.0.0.1 -p "$1" +short +tries=1 +time=1 "$2" "${3:-A}") || return 1
        case "$out" in *";;"*) return 1 ;; esac
        sort <<<"$out" | paste -sd ' ' -
}

# is PORT NAME VALUE [TYPE]: the node answers NAME with exactly VALUE ("" for nothing).
is() {
        [ "$(answers "$1" "$2" "${4:-A}")" = "$3" ]
}

# etcd_status HTTP_PORT FIELD: a field of /status's "etcd" object.
etcd_status() {
        curl -sf "http://127.0.0.1:$1/status" | python3 -c "import json,sys; v=json.load(sys.stdin)['etcd']['$2']; print('' if v is None else v)"
}

# etcd_state_is HTTP_PORT STATE: /status says etcd is in STATE.
etcd_state_is() {
        [ "$(etcd_status "$1" state)" = "$2" ]
}

# leader ENDPOINTS: the client URL of the member that leads.
etcd_leader() {
        etcdctl --endpoints="$1" endpoint status -w json | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    s = m["Status"]
    if s["leader"] == s["header"]["member_id"]:
        print(m["Endpoint"])'
}
