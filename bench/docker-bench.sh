#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Docker start-to-answer latency: the time from a container's start event
# (the engine's own timeNano in /events) to the first DNS answer from
# joyrided that holds its record, over N containers started one by one.
# Prints the median, p99 and the extremes. Target: p99 under 50 ms.
# Uses a private dockerd (tests/integration/docker-lib.sh); needs root,
# docker.io and busybox-static. Not run in CI.
#
#   bench/docker-bench.sh [BUILD_DIR] [N]     (defaults: build, 100)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
n=${2:-100}
source "$top/tests/integration/lib.sh"
source "$top/tests/integration/docker-lib.sh"

if ! why=$(docker_engine_available); then
        echo "cannot run: $why" >&2
        exit 77
fi

tmp=$(mktemp -d /tmp/joyride-dbench.XXXXXX)
jpid=
cleanup() {
        set +e
        [ -n "$jpid" ] && kill "$jpid" 2>/dev/null && wait "$jpid" 2>/dev/null || true
        docker_lib_cleanup
        docker_lib_rmtree "$tmp"
}
trap cleanup EXIT
docker_lib_init "$tmp/d"
docker_engine_start || exit 1
docker_image_build

port=$(free_port)
"$build/src/joyrided" --dns-bind-address=127.0.0.1 --dns-port="$port" --state-directory="$tmp/state" \
        --no-http --bus=none --no-cluster --docker-host="unix://$docker_sock" --hostip=192.0.2.10 \
        --log-level=warning >"$tmp/joyrided.log" 2>&1 </dev/null &
jpid=$!
wait_for "joyrided" 5 dig_short "$port" nothing.bench.test

echo "creating $n containers..."
seq "$n" | xargs -P 8 -I{} "$DOCKER" -H "unix://$docker_sock" create --stop-timeout 1 --network none \
        --label joyride.host.name=bench-{}.docker.test "$DOCKER_IMAGE" sleep 100000 >/dev/null

python3 - "$docker_sock" "$port" "$n" <<'PY'
import http.client, json, socket, struct, sys, threading, time

sock_path, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)

api = UnixHTTP(sock_path)
api.request("GET", "/_ping")
r = api.getresponse(); r.read()
ver = r.getheader("Api-Version") or "1.24"

def get(path):
    api.request("GET", f"/v{ver}{path}")
    r = api.getresponse()
    return json.loads(r.read())

ids = {}
for c in get('/containers/json?all=1&filters=' + '%7B%22label%22%3A%5B%22joyride.host.name%22%5D%7D'):
    name = c["Labels"]["joyride.host.name"]
    if name.startswith("bench-"):
        ids[name] = c["Id"]

# Our own event subscription, for the engine's start timestamps.
starts = {}
cond = threading.Condition()
def follow():
    ev = UnixHTTP(sock_path)
    ev.request("GET", f"/v{ver}/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D")
    resp = ev.getresponse()
    dec = json.JSONDecoder()
    buf = ""
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            return
        buf += chunk.decode()
        while True:
            buf = buf.lstrip()
            if not buf:
                break
            try:
                obj, end = dec.raw_decode(buf)
            except ValueError:
                break
            buf = buf[end:]
            if obj.get("Action") == "start":
                with cond:
                    starts[obj["Actor"]["ID"]] = obj["timeNano"]
                    cond.notify_all()
threading.Thread(target=follow, daemon=True).start()
time.sleep(0.3)

def dns_query(name, qid):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    return q

udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.settimeout(0.5)
udp.connect(("127.0.0.1", port))

lat = []
for i, (name, cid) in enumerate(sorted(ids.items())):
    api.request("POST", f"/v{ver}/containers/{cid}/start")
    r = api.getresponse(); r.read()
    if r.status not in (204, 304):
        sys.exit(f"start {name}: HTTP {r.status}")
    qid = 0
    deadline = time.monotonic() + 5
    answered = None
    while time.monotonic() < deadline:
        qid = (qid + 1) & 0xffff
        udp.send(dns_query(name, qid))
        try:
            data = udp.recv(512)
        except socket.timeout:
            continue
        _, flags, _, ancount, _, _ = struct.unpack(">HHHHHH", data[:12])
        if flags & 0xf == 0 and ancount > 0:
            answered = time.time_ns()
            break
        time.sleep(0.0002)
    if answered is None:
        sys.exit(f"{name} never resolved")
    with cond:
        cond.wait_for(lambda: cid in starts, timeout=5)
        t_ev = starts.get(cid)
    if t_ev is None:
        sys.exit(f"no start event for {name}")
    lat.append((answered - t_ev) / 1e6)

lat.sort()
def pct(p):
    # nearest rank
    k = max(0, min(len(lat) - 1, int(-(-p * len(lat) // 100)) - 1))
    return lat[k]
print(f"containers: {len(lat)}")
print(f"start event -> first DNS answer (ms): min {lat[0]:.2f}  median {pct(50):.2f}  "
      f"p90 {pct(90):.2f}  p99 {pct(99):.2f}  max {lat[-1]:.2f}")
print("target p99 < 50 ms:", "met" if pct(99) < 50 else "MISSED")
PY
