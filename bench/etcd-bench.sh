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
#      and a running node told to read the prefix again (POST /dns/sync).
#
# Prints a table; figures go to docs/performance.md. Targets (issue 13):
# p99 under 200 ms on loopback, resync of 100,000 records under 2 s.
# Not run in CI (minutes, and a few hundred MB).
#
#   bench/etcd-bench.sh [BUILD_DIR] [N_CHANGES] [N_RECORDS]   (defaults: build, 200, 100000)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$top/build}" && pwd)
n_changes=${2:-200}
n_records=${3:-100000}
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

read -r EC EP ADNS AHTTP BDNS BHTTP CDNS CHTTP DDNS DHTTP SWIMC SWIMD RDNS RHTTP KDNS KHTTP <<<"$(for _ in $(seq 16); do free_port; done | tr '\n' ' ')"
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
# The cold resync is timed from the node's own log lines (no polling in the
# way): "Sharing records through etcd" when the source starts, "Connected to
# etcd" when the whole prefix is read and watched.
log_ms() { # FILE PATTERN: the time of the last line matching, in ms since midnight
        grep "$2" "$1" | tail -n1 | awk '{split($1, t, "[:.]"); print ((t[1] * 60 + t[2]) * 60 + t[3]) * 1000 + t[4]}'
}
e_cpu1=$(proc_cpu "${PIDS["etcd-e1"]}")
node_start node-k "$KDNS" "$KHTTP" "$E" --log-level=info
wait_for "K holding every record from etcd" 120 grep -q "Connected to etcd" "$T/node-node-k.log"
t_cold=$(($(log_ms "$T/node-node-k.log" "Connected to etcd") - $(log_ms "$T/node-node-k.log" "Sharing records through etcd")))
etcd_records_are "$KHTTP" "$((n_records + n_changes))" || fail "K does not hold every record"
k_cpu=$(proc_cpu "${PIDS["node-node-k"]}")
k_rss=$(proc_rss "${PIDS["node-node-k"]}")
e_cpu_cold=$(awk -v a="$(proc_cpu "${PIDS["etcd-e1"]}")" -v b="$e_cpu1" 'BEGIN {printf "%.2f", a - b}')

before=$(status_field "$KHTTP" resyncs)
k_cpu0=$(proc_cpu "${PIDS["node-node-k"]}")
t0=$(now_ms)
curl -sf -X POST "http://127.0.0.1:$KHTTP/dns/sync" >/dev/null
resynced() {
        sleep 0.2
        [ "$(status_field "$KHTTP" resyncs)" = "$((before + 1))" ]
}
wait_for "K's resync" 120 resynced
t_warm=$(($(now_ms) - t0))
k_cpu_warm=$(awk -v a="$(proc_cpu "${PIDS["node-node-k"]}")" -v b="$k_cpu0" 'BEGIN {printf "%.2f", a - b}')
etcd_records_are "$KHTTP" "$((n_records + n_changes))" || fail "K lost records in the resync"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$T/prop.json" "$n_changes" "$n_records" "$t_publish" "$a_cpu" "$a_rss" "$b_cpu" "$b_rss" "$r_cpu" "$r_rss" \
        "$t_cold" "$k_cpu" "$k_rss" "$t_warm" "$e_cpu" "$e_cpu_cold" "$k_cpu_warm" "$load_before" "$load_after" <<'PY'
import json, sys
prop = json.load(open(sys.argv[1]))
(n, nrec, t_pub, a_cpu, a_rss, b_cpu, b_rss, r_cpu, r_rss, t_cold, k_cpu, k_rss, t_warm, e_cpu, e_cpu_cold, k_cpu_warm,
 load_before, load_after) = sys.argv[2:]
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
print(f"resync of {nrec} records")
print(f"  cold (a new node, start to serving all): {int(t_cold) / 1000:.2f} s; its RSS {float(k_rss):.1f} MiB, "
      f"CPU {float(k_cpu):.2f} s; etcd's CPU {float(e_cpu_cold):.2f} s")
print(f"  warm (POST /dns/sync on that node, mark and sweep): {int(t_warm) / 1000:.2f} s; its CPU {float(k_cpu_warm):.2f} s")
print(f"  target < 2 s: {'met' if int(t_cold) < 2000 and int(t_warm) < 2000 else 'MISSED'}")
PY
