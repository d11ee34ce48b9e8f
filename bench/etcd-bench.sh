#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Records shared through etcd, measured on loopback against the same through
# SWIM, with one etcd member (Debian's etcd-server) in a temp dir:
#
#   1. propagation: a hosts file written on node A (renamed into place) to
#      the first answer from node B that holds the name, over N changes one
#      after the other, through etcd and through SWIM (two nodes joined on
#      127.0.0.1); the time to A's own first answer is the reference (the
#      hosts directory's 20 ms coalescing is in all three);
#   2. a node holding R records from etcd: its RSS and CPU time to take them
#      in, beside a node that loads the same R names from a hosts file;
#      and how long A takes to publish them;
#   3. resync of R records: a node started cold until it serves them all,
#      and a running node told to read the prefix again (POST /dns/sync);
#      beside what etcd alone takes to serve the range through its JSON
#      gateway and over gRPC, and the same resync by a reference build
#      (REFERENCE_BUILD_DIR, e.g. main before a change) when one is given.
#
# Prints a table; figures go to docs/performance.md. Targets:
# p99 under 200 ms on loopback, resync of 100,000 records under 2 s.
# Not run in CI (minutes, and a few hundred MB).
#
#   bench/etcd-bench.sh [BUILD_DIR] [N_CHANGES] [N_RECORDS] [REFERENCE_BUILD_DIR]
#   (defaults: build, 200, 100000, none)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$top/build}" && pwd)
n_changes=${2:-200}
n_records=${3:-100000}
reference=${4:+$(cd "$4" && pwd)}
source "$top/tests/integration/lib.sh"
source "$top/tests/integration/etcd-lib.sh"

for tool in etcd etcdctl python3 curl; do
        command -v "$tool" >/dev/null || {
                echo "cannot run: $tool not installed" >&2
                exit 77
        }
done

T=$(mktemp -d /tmp/joyride-etcd-bench.XXXXXX)
cleanup() {
        local pid
        for pid in $started; do kill "$pid" 2>/dev/null || true; done
        for pid in $started; do wait "$pid" 2>/dev/null || true; done
        if [ -n "${KEEP_TMP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 143' INT TERM

# 18 distinct ports: free_port alone may give one twice, and a node whose
# port is taken never answers.
ports=""
while [ "$(wc -w <<<"$ports")" -lt 18 ]; do
        p=$(free_port)
        [[ " $ports " == *" $p "* ]] || ports="$ports $p"
done
read -r EC EP ADNS AHTTP BDNS BHTTP CDNS CHTTP DDNS DHTTP SWIMC SWIMD RDNS RHTTP KDNS KHTTP K2DNS K2HTTP <<<"$ports"
E=http://127.0.0.1:$EC
quiet=(--log-level=warning)
export NODE_START_WAIT=120 # a node loading 100,000 names answers HTTP only after

etcd_start e1 "$EC" "$EP" "e1=http://127.0.0.1:$EP" --quota-backend-bytes=$((4 * 1024 * 1024 * 1024))
etcd_wait "$E"

# Through etcd: A writes, B reads. Through SWIM: C writes, D reads.
node_start node-a "$ADNS" "$AHTTP" "$E" "${quiet[@]}"
node_start node-b "$BDNS" "$BHTTP" "$E" "${quiet[@]}"
node_start node-c "$CDNS" "$CHTTP" "" "${quiet[@]}" --cluster --cluster-bind-address=127.0.0.1 --swim-port="$SWIMC"
node_start node-d "$DDNS" "$DHTTP" "" "${quiet[@]}" --cluster --cluster-bind-address=127.0.0.1 --swim-port="$SWIMD" \
        --join="127.0.0.1:$SWIMC"
wait_for "the SWIM pair" 15 sh -c "curl -sf http://127.0.0.1:$CHTTP/dns/cluster | grep -q '\"node_id\":\"node-d\",[^}]*\"state\":\"alive\"'"

echo "propagation: $n_changes changes, one after the other ..." >&2
python3 - "$n_changes" "$T/prop.json" \
        "etcd" "$T/hosts-node-a" "$ADNS" "$BDNS" \
        "swim" "$T/hosts-node-c" "$CDNS" "$DDNS" <<'PY'
import json, os, random, socket, struct, sys, time

n, out = int(sys.argv[1]), sys.argv[2]
pairs = [sys.argv[i:i + 4] for i in range(3, len(sys.argv), 4)]

def query(name):
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return qid, q + b"\0" + struct.pack(">HH", 1, 1)

def answered(sock, port, name, deadline):
    """Polls port every 0.5 ms until name has an answer; returns the time."""
    qid, q = query(name)
    while time.monotonic() < deadline:
        sock.sendto(q, ("127.0.0.1", port))
        sock.settimeout(0.0005)
        try:
            while True:
                data = sock.recv(512)
                if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid:
                    if struct.unpack(">H", data[6:8])[0] > 0:
                        return time.monotonic()
                    break
        except socket.timeout:
            pass
    raise SystemExit(f"{name} never answered on port {port}")

results = {}
for label, hosts, wport, rport in pairs:
    ws, rs = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    local, remote = [], []
    for i in range(n):
        name = f"p{i}.{label}.prop.test"
        tmp = os.path.join(hosts, f".p{i}.tmp")
        with open(tmp, "w") as f:
            f.write(f"10.77.{i // 250}.{i % 250 + 1} {name}\n")
        t0 = time.monotonic()
        os.rename(tmp, os.path.join(hosts, f"p{i}.hosts"))
        t_local = answered(ws, int(wport), name, t0 + 10)
        t_remote = answered(rs, int(rport), name, t0 + 10)
        local.append((t_local - t0) * 1000)
        remote.append((t_remote - t0) * 1000)
    results[label] = {"local": local, "remote": remote}
json.dump(results, open(out, "w"))
PY

echo "publishing $n_records records from A ..." >&2
python3 - "$n_records" "$T/big.hosts" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    for k in range(n):
        f.write(f"10.{100 + k // 65536}.{k // 256 % 256}.{k % 256} host{k}.big.test\n")
PY

proc_cpu() { # PID: user+system CPU seconds so far
        awk -v tck="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / tck}' "/proc/$1/stat"
}
proc_rss() { # PID: resident MiB
        awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"
}
# /status, not /metrics: a scrape counts records by source over every owner
# (one per etcd key), which would put the measuring itself on the loop.
status_field() { # HTTP_PORT FIELD: a number in /status's etcd object
        curl -sf "http://127.0.0.1:$1/status" | grep -o "\"etcd\":{.*" | grep -o "\"$2\":[0-9]*" | head -n1 | cut -d: -f2
}
etcd_records_are() {
        sleep 0.2
        [ "$(status_field "$1" keys)" = "$2" ]
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
b_cpu0=$(proc_cpu "${PIDS["node-node-b"]}")
a_cpu0=$(proc_cpu "${PIDS["node-node-a"]}")
e_cpu0=$(proc_cpu "${PIDS["etcd-e1"]}")
t0=$(now_ms)
cp "$T/big.hosts" "$T/hosts-node-a/.big.tmp" && mv "$T/hosts-node-a/.big.tmp" "$T/hosts-node-a/big.hosts"
wait_for "B holding $n_records records from etcd" 300 etcd_records_are "$BHTTP" "$((n_records + n_changes))"
t_publish=$(($(now_ms) - t0))
sleep 1
b_cpu=$(awk -v a="$(proc_cpu "${PIDS["node-node-b"]}")" -v b="$b_cpu0" 'BEGIN {printf "%.2f", a - b}')
a_cpu=$(awk -v a="$(proc_cpu "${PIDS["node-node-a"]}")" -v b="$a_cpu0" 'BEGIN {printf "%.2f", a - b}')
e_cpu=$(awk -v a="$(proc_cpu "${PIDS["etcd-e1"]}")" -v b="$e_cpu0" 'BEGIN {printf "%.2f", a - b}')
b_rss=$(proc_rss "${PIDS["node-node-b"]}")
a_rss=$(proc_rss "${PIDS["node-node-a"]}")

# The reference: the same names from a hosts file, no etcd.
mkdir -p "$T/hosts-node-r"
cp "$T/big.hosts" "$T/hosts-node-r/big.hosts"
node_start node-r "$RDNS" "$RHTTP" "" "${quiet[@]}"
wait_for "R loading the hosts file" 60 sh -c "curl -sf http://127.0.0.1:$RHTTP/metrics | grep -qx 'joyride_records{source=\"hosts\"} $n_records'"
sleep 1
r_cpu=$(proc_cpu "${PIDS["node-node-r"]}")
r_rss=$(proc_rss "${PIDS["node-node-r"]}")

echo "resync of $n_records records ..." >&2
# What etcd itself takes to serve the range, with nothing done with it: its
# JSON gateway in pages of 10 000 keys at one revision (as the node reads it
# where gRPC cannot pass), and over gRPC (etcdctl, the whole prefix at once).
e_cpu0=$(proc_cpu "${PIDS["etcd-e1"]}")
t0=$(now_ms)
python3 - "$EC" <<'PY'
import base64, json, re, sys, urllib.request
port = int(sys.argv[1])
b = lambda s: base64.b64encode(s).decode()
key, rev = b"/skydns/", 0
while True:
    body = {"key": b(key), "range_end": b(b"/skydns0"), "limit": "10000"}
    if rev:
        body.update(revision=str(rev), serializable=True)
    data = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v3/kv/range",
                                                         data=json.dumps(body).encode())).read()
    rev = rev or int(re.search(rb'"revision":"(\d+)"', data).group(1))
    if b'"more":true' not in data:
        break
    key = base64.b64decode(re.findall(rb'"key":"([^"]*)"', data)[-1]) + b"\0"
PY
t_gateway=$(($(now_ms) - t0))
e_cpu_gateway=$(awk -v a="$(proc_cpu "${PIDS["etcd-e1"]}")" -v b="$e_cpu0" 'BEGIN {printf "%.2f", a - b}')
e_cpu0=$(proc_cpu "${PIDS["etcd-e1"]}")
t0=$(now_ms)
etcdctl --endpoints="$E" get --prefix /skydns/ -w protobuf >/dev/null
t_grpc=$(($(now_ms) - t0))
e_cpu_grpc=$(awk -v a="$(proc_cpu "${PIDS["etcd-e1"]}")" -v b="$e_cpu0" 'BEGIN {printf "%.2f", a - b}')

# A node's resync, timed from outside and by the node itself (its "Read
# /skydns/ ..." line, which a reference build may not write):
#   cold: a new node, from its log line "Sharing records through etcd" (the
#         source starts) to "Connected to etcd" (the prefix read, applied
#         and watched);
#   warm: POST /dns/sync on that node until /status counts one more resync
#         (mark and sweep over keys it holds already).
log_ms() { # FILE PATTERN: the time of the last line matching, in ms since midnight
        grep "$2" "$1" | tail -n1 | awk '{split($1, t, "[:.]"); print ((t[1] * 60 + t[2]) * 60 + t[3]) * 1000 + t[4]}'
}
read_line_secs() { # FILE N: the time in the node's Nth "Read /skydns/" line, in s
        grep -o 'Read /skydns/ .* in [0-9.]* s (' "$1" | sed -n "$2p" | sed 's/.* in \([0-9.]*\) s (/\1/'
}
resync_run() { # LABEL BUILD_DIR DNS_PORT HTTP_PORT: writes $T/resync-LABEL.txt
        local label=$1 build=$2 dns=$3 http=$4 name="node-k-$1" e0 k0 t0 before cold warm k_cpu k_rss e_cpu k_cpu_warm
        e0=$(proc_cpu "${PIDS["etcd-e1"]}")
        BUILD=$build node_start "$name" "$dns" "$http" "$E" --log-level=info
        wait_for "node $label holding every record from etcd" 120 grep -q "Connected to etcd" "$T/node-$name.log"
        cold=$(($(log_ms "$T/node-$name.log" "Connected to etcd") - $(log_ms "$T/node-$name.log" "Sharing records through etcd")))
        etcd_records_are "$http" "$((n_records + n_changes))" || fail "node $label does not hold every record"
        k_cpu=$(proc_cpu "${PIDS["node-$name"]}")
        k_rss=$(proc_rss "${PIDS["node-$name"]}")
        e_cpu=$(awk -v a="$(proc_cpu "${PIDS["etcd-e1"]}")" -v b="$e0" 'BEGIN {printf "%.2f", a - b}')

        before=$(status_field "$http" resyncs)
        k0=$(proc_cpu "${PIDS["node-$name"]}")
        t0=$(now_ms)
        curl -sf -X POST "http://127.0.0.1:$http/dns/sync" >/dev/null
        until [ "$(status_field "$http" resyncs)" = "$((before + 1))" ]; do
                [ $(($(now_ms) - t0)) -lt 120000 ] || fail "node $label's warm resync did not end"
                sleep 0.02
        done
        warm=$(($(now_ms) - t0))
        k_cpu_warm=$(awk -v a="$(proc_cpu "${PIDS["node-$name"]}")" -v b="$k0" 'BEGIN {printf "%.2f", a - b}')
        etcd_records_are "$http" "$((n_records + n_changes))" || fail "node $label lost records in the resync"
        echo "$cold $k_cpu $k_rss $e_cpu $warm $k_cpu_warm $(read_line_secs "$T/node-$name.log" 1) $(read_line_secs "$T/node-$name.log" 2)" \
                >"$T/resync-$label.txt"
        node_stop "$name"
}
resync_run this "$BUILD" "$KDNS" "$KHTTP"
if [ -n "$reference" ]; then
        echo "resync of $n_records records with the reference build ..." >&2
        resync_run reference "$reference" "$K2DNS" "$K2HTTP"
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$T/prop.json" "$n_changes" "$n_records" "$t_publish" "$a_cpu" "$a_rss" "$b_cpu" "$b_rss" "$r_cpu" "$r_rss" \
        "$e_cpu" "$load_before" "$load_after" "$t_gateway" "$e_cpu_gateway" "$t_grpc" "$e_cpu_grpc" "$T" <<'PY'
import json, os, sys
prop = json.load(open(sys.argv[1]))
(n, nrec, t_pub, a_cpu, a_rss, b_cpu, b_rss, r_cpu, r_rss, e_cpu, load_before, load_after,
 t_gateway, e_cpu_gateway, t_grpc, e_cpu_grpc, tmp) = sys.argv[2:]
print(f"load average (1, 5, 15 min) before the 100k part: {load_before}, at the end: {load_after}")
print()

def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]

print(f"propagation, {n} changes (ms)          p50     p99     max")
for label in ("etcd", "swim"):
    r = prop[label]
    print(f"  A -> B through {label:4}              {pct(r['remote'], 50):7.1f} {pct(r['remote'], 99):7.1f} {max(r['remote']):7.1f}")
    print(f"  A's own answer ({label} pair)        {pct(r['local'], 50):7.1f} {pct(r['local'], 99):7.1f} {max(r['local']):7.1f}")
e, s = prop["etcd"]["remote"], prop["swim"]["remote"]
print(f"  etcd / SWIM p50 ratio: {pct(e, 50) / pct(s, 50):.2f}, p99 ratio: {pct(e, 99) / pct(s, 99):.2f}")
print(f"  target p99 < 200 ms through etcd: {'met' if pct(e, 99) < 200 else 'MISSED'}")
print()
print(f"{nrec} records                        RSS MiB   CPU s")
print(f"  B, holding them from etcd            {float(b_rss):7.1f} {float(b_cpu):7.2f}")
print(f"  R, the same from a hosts file        {float(r_rss):7.1f} {float(r_cpu):7.2f}   (reference)")
print(f"  A, publishing them (hosts + etcd)    {float(a_rss):7.1f} {float(a_cpu):7.2f}")
print(f"  B / R: RSS {float(b_rss) / float(r_rss):.2f}x, CPU {float(b_cpu) / max(float(r_cpu), 0.01):.2f}x")
print(f"  etcd, storing them                   {'':7} {float(e_cpu):7.2f}")
print(f"  A's hosts file to B holding all: {int(t_pub) / 1000:.2f} s")
print()
print(f"resync of {nrec} records                        time s  node CPU s  RSS MiB  etcd CPU s")
print(f"  etcd alone, JSON gateway (pages of 10 000)    {int(t_gateway) / 1000:6.2f} {'':11} {'':8} {float(e_cpu_gateway):8.2f}")
print(f"  etcd alone, gRPC (etcdctl, one request)       {int(t_grpc) / 1000:6.2f} {'':11} {'':8} {float(e_cpu_grpc):8.2f}")
runs = {}
for label in ("this", "reference"):
    path = os.path.join(tmp, f"resync-{label}.txt")
    if not os.path.exists(path):
        continue
    f = open(path).read().split()
    cold, k_cpu, k_rss, e_cold, warm, k_cpu_warm = int(f[0]), float(f[1]), float(f[2]), float(f[3]), int(f[4]), float(f[5])
    runs[label] = (cold, warm)
    own = f" (the node's own count: {f[6]} s cold, {f[7]} s warm)" if len(f) >= 8 else ""
    print(f"  {label:9} build, cold (start to serving all)  {cold / 1000:6.2f} {k_cpu:11.2f} {k_rss:8.1f} {e_cold:8.2f}")
    print(f"  {label:9} build, warm (POST /dns/sync)        {warm / 1000:6.2f} {k_cpu_warm:11.2f}{own}")
if "reference" in runs:
    (c, w), (rc, rw) = runs["this"], runs["reference"]
    print(f"  this / reference: cold {c / max(rc, 1):.2f}, warm {w / max(rw, 1):.2f}")
c, w = runs["this"]
print(f"  this build, cold / etcd's gateway alone: {c / max(int(t_gateway), 1):.2f}")
print(f"  target < 2 s: {'met' if c < 2000 and w < 2000 else 'MISSED'} (cold {c / 1000:.2f} s, warm {w / 1000:.2f} s)")
PY
