#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Helper for bench/dns-bench.sh: the parts that are awkward in shell.

  gen DIR N           hosts file, NSD zone and dnsperf query file for N names
  port                a free random high port on 127.0.0.1 (UDP and TCP)
  addr K              the address of hostK
  poll ...            time to the first correct answer of a starting server
  verify ...          a sample of names answered right (address or NXDOMAIN)
  run ...             one dnsperf run with the server cores' busy time around it
  mem ...             RSS/PSS of a server and the processes it forked
  report FILE MD      the table, the ratios and the targets

Results travel between the steps as JSON lines in one file, so the report
reads exactly what was measured. Only the standard library is used: the bench
installs nothing beyond tools/install-deps."""

import argparse
import json
import os
import random
import re
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import time

DOMAIN = "bench.test"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Both servers get the same query mix: 90% names that exist, 10% that do not.
MISSING_SHARE = 0.10
# A server core at least this busy over a run was the limit, not the client.
SATURATED_PERCENT = 97
# ... and queries were waiting in its socket in at least this share of samples.
QUEUED_PERCENT = 90
# Core 0 busier than this with no server running: other work shares it.
NOISE_PERCENT = 10


def name_of(k):
    return f"host{k}.{DOMAIN}"


def addr_of(k):
    # k + 1 so that the first address is 10.0.0.1, not the network address.
    v = k + 1
    return f"10.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}"


# --- gen --------------------------------------------------------------------

def cmd_gen(a):
    n = a.n
    os.makedirs(os.path.join(a.dir, "hosts"), exist_ok=True)
    with open(os.path.join(a.dir, "hosts", "bench.hosts"), "w") as f:
        f.write("".join(f"{addr_of(k)} {name_of(k)}\n" for k in range(n)))
    # The NS points at a name that has an address in both servers, so the zone
    # needs no extra glue record that joyrided would not have.
    with open(os.path.join(a.dir, f"{DOMAIN}.zone"), "w") as f:
        f.write(f"$ORIGIN {DOMAIN}.\n$TTL 30\n")
        f.write(f"@ IN SOA {name_of(0)}. hostmaster.{DOMAIN}. 1 3600 600 86400 5\n")
        f.write(f"@ IN NS {name_of(0)}.\n")
        f.write("".join(f"host{k} IN A {addr_of(k)}\n" for k in range(n)))
    rnd = random.Random(n)  # same file for the same N, run after run
    lines = []
    for _ in range(a.queries):
        if rnd.random() < MISSING_SHARE:
            lines.append(f"missing{rnd.randrange(1_000_000)}.{DOMAIN} A\n")
        else:
            lines.append(f"{name_of(rnd.randrange(n))} A\n")
    with open(os.path.join(a.dir, "queries.txt"), "w") as f:
        f.write("".join(lines))


def cmd_addr(a):
    print(addr_of(a.k))
    return 0


# --- port -------------------------------------------------------------------

def cmd_port(a):
    rnd = random.SystemRandom()
    for _ in range(200):
        p = rnd.randrange(20000, 60000)
        socks = []
        try:
            for t in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, t)
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        print(p)
        return 0
    print("no free port found", file=sys.stderr)
    return 1


# --- DNS on the wire (just enough for A queries) ------------------------------

def make_query(qid, name):
    q = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack("!HH", 1, 1)


def skip_name(m, i):
    while True:
        ln = m[i]
        if ln & 0xC0 == 0xC0:
            return i + 2
        if ln == 0:
            return i + 1
        i += 1 + ln


def parse_reply(m, qid):
    """(rcode, [IPv4 addresses in the answer section]) or None if m is not a
    reply to query qid."""
    if len(m) < 12:
        return None
    rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", m[:12])
    if rid != qid or not flags & 0x8000:
        return None
    i = 12
    try:
        for _ in range(qd):
            i = skip_name(m, i) + 4
        addrs = []
        for _ in range(an):
            i = skip_name(m, i)
            t, c, _, rdlen = struct.unpack("!HHIH", m[i:i + 10])
            i += 10
            if t == 1 and c == 1 and rdlen == 4:
                addrs.append(socket.inet_ntoa(m[i:i + 4]))
            i += rdlen
    except (IndexError, struct.error):
        return None
    return flags & 0xF, addrs


def server_dead(pidfile):
    """True once the server whose PID the shell wrote has exited (a zombie
    counts: the shell has not reaped it yet)."""
    try:
        with open(pidfile) as f:
            pid = int(f.read())
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state in ("Z", "X")
    except (FileNotFoundError, ValueError):
        return False  # not started yet, or the pid file is half written


# --- poll -------------------------------------------------------------------

def cmd_poll(a):
    """Started before the server: says it is ready by creating a file, then
    asks every ~1 ms until an answer holds the expected address, and prints
    the wall-clock time of that answer (the shell took the start time with
    the same clock), so the interpreter's own start-up is not counted."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", a.port))
    open(a.ready, "w").close()
    deadline = time.monotonic() + a.timeout
    qid = 0
    while time.monotonic() < deadline:
        qid = (qid + 1) & 0xFFFF
        sent = time.monotonic()
        try:
            s.send(make_query(qid, a.name))
        except ConnectionRefusedError:
            pass  # the ICMP error of an earlier probe
        while True:
            left = sent + 0.001 - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([s], [], [], left)
            if not r:
                break
            try:
                m = s.recv(4096)
            except ConnectionRefusedError:
                # Nobody listens yet; wait out the rest of the millisecond.
                time.sleep(max(0.0, sent + 0.001 - time.monotonic()))
                break
            p = parse_reply(m, qid)
            if p and p[0] == 0 and a.addr in p[1]:
                print(f"{time.time():.6f}")
                return 0
        if qid % 64 == 0 and server_dead(a.pidfile):
            print("server exited before answering", file=sys.stderr)
            return 1
    print(f"no correct answer for {a.name} within {a.timeout} s", file=sys.stderr)
    return 1


# --- verify -----------------------------------------------------------------

def cmd_verify(a):
    """Before loading a server, check that it answers what the bench thinks
    it answers: a sample of present names with their address, absent ones
    with NXDOMAIN, over UDP and TCP. Otherwise a fast wrong answer (say
    REFUSED) would look like a good result."""
    rnd = random.Random(1)
    names = [(name_of(k), addr_of(k)) for k in rnd.sample(range(a.n), min(a.n, 40))]
    names += [(f"missing{k}.{DOMAIN}", None) for k in range(10)]
    bad = []
    for i, (name, addr) in enumerate(names):
        qid = 1000 + i
        q = make_query(qid, name)
        for transport in ("udp", "tcp"):
            try:
                if transport == "udp":
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                        s.settimeout(2)
                        s.sendto(q, ("127.0.0.1", a.port))
                        m = s.recv(4096)
                else:
                    with socket.create_connection(("127.0.0.1", a.port), timeout=2) as s:
                        s.sendall(struct.pack("!H", len(q)) + q)
                        buf = b""
                        while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
                            chunk = s.recv(4096)
                            if not chunk:
                                break
                            buf += chunk
                        m = buf[2:]
            except OSError as e:
                bad.append(f"{name} over {transport}: {e}")
                continue
            p = parse_reply(m, qid)
            want = (0, [addr]) if addr else (3, [])
            if p != want:
                bad.append(f"{name} over {transport}: got {p}, want {want}")
    for b in bad:
        print(f"  wrong answer: {b}", file=sys.stderr)
    return 1 if bad else 0


# --- run --------------------------------------------------------------------

CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")


def core_times(cores):
    """The /proc/stat times of some cores ("0" or "0,1"), in jiffies, by name, summed."""
    want = {f"cpu{c}" for c in cores.split(",")}
    total, seen = dict.fromkeys(CPU_FIELDS, 0), set()
    with open("/proc/stat") as f:
        for line in f:
            v = line.split()
            if v[0] in want:
                seen.add(v[0])
                for k, x in zip(CPU_FIELDS, map(int, v[1:9])):
                    total[k] += x
    if seen != want:
        raise RuntimeError(f"{', '.join(sorted(want - seen))} not in /proc/stat")
    return total


def descendants(pid):
    """pid and every process below it (NSD forks xfrd and its server)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    return out


def proc_cpu(pid):
    """utime+stime of one process, in jiffies."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            v = f.read().rsplit(")", 1)[1].split()
        return int(v[11]) + int(v[12])
    except FileNotFoundError:
        return 0


def udp_rx_queue(port):
    """Bytes waiting in the receive queue of the UDP socket on 127.0.0.1:port
    (/proc/net/udp), or None if there is none."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as f:
        for line in f:
            v = line.split()
            if len(v) > 4 and v[1] == want:
                return int(v[4].split(":")[1], 16)
    return None


def parse_dnsperf(out):
    def num(label):
        m = re.search(rf"^\s*{label}:\s*([0-9.]+)", out, re.M)
        if not m:
            raise ValueError(f"dnsperf printed no '{label}'")
        return float(m.group(1))

    rcodes = {}
    m = re.search(r"^\s*Response codes:\s*(.*)$", out, re.M)
    if m:
        for name, count in re.findall(r"([A-Z]+) (\d+)", m.group(1)):
            rcodes[name] = int(count)
    return {
        "sent": int(num("Queries sent")),
        "completed": int(num("Queries completed")),
        "lost": int(num("Queries lost")),
        "qps": num("Queries per second"),
        "rcodes": rcodes,
    }


def parse_udp_load(out):
    """udp-load's JSON line, in the shape parse_dnsperf gives."""
    try:
        j = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise ValueError("udp-load printed no JSON line")
    rcodes = {k.upper(): v for k, v in j["rcodes"].items() if v}
    return {"sent": j["sent"], "completed": j["completed"], "lost": j["lost"], "qps": j["qps"],
            "rcodes": rcodes, "mismatched": j["mismatched"], "unexpected": j["unexpected"],
            "window": j["window"]}


def cmd_run(a):
    pids = descendants(a.pid)
    if a.client == "udp-load":
        if a.transport != "udp":
            print("udp-load sends over UDP only", file=sys.stderr)
            return 1
        cmd = ["taskset", "-c", a.client_cores, a.loadgen, "-s", "127.0.0.1", "-p", str(a.port),
               "-d", a.queries, "-l", str(a.seconds), "-w", str(a.window)] + a.loadgen_args.split()
    else:
        cmd = ["taskset", "-c", a.client_cores, "dnsperf", "-s", "127.0.0.1", "-p", str(a.port),
               "-d", a.queries, "-c", "4", "-T", "1", "-q", "500", "-l", str(a.seconds)]
        if a.transport == "tcp":
            cmd += ["-m", "tcp"]
    proc0 = sum(proc_cpu(p) for p in pids)
    t0 = core_times(a.server_cores)
    c0 = core_times(a.client_cores)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(signum, frame):
        # The bench is being stopped: take dnsperf down with us.
        child.kill()
        child.wait()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Meanwhile, every 20 ms: were queries waiting in the server's UDP
    # socket? If they nearly always were, the server (or its core) set the
    # pace, whatever else ran on the machine; if not, the client did.
    waiting = samples = 0
    if a.transport == "udp":
        while True:
            try:
                child.wait(timeout=0.02)
                break
            except subprocess.TimeoutExpired:
                pass
            q = udp_rx_queue(a.port)
            if q is not None:
                samples += 1
                waiting += q > 0
    out, err = child.communicate()
    res = subprocess.CompletedProcess(cmd, child.returncode, out, err)
    # The client's own CPU (taskset execs it: the child is the client).
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    t1 = core_times(a.server_cores)
    c1 = core_times(a.client_cores)
    proc1 = sum(proc_cpu(p) for p in descendants(a.pid))
    if res.returncode != 0:
        sys.stderr.write(res.stdout + res.stderr)
        return 1
    try:
        r = parse_udp_load(res.stdout) if a.client == "udp-load" else parse_dnsperf(res.stdout)
    except ValueError as e:
        sys.stderr.write(res.stdout + res.stderr)
        print(e, file=sys.stderr)
        return 1
    us_per_jiffy = 1e6 / CLK_TCK
    done = max(r["completed"], 1)
    delta = {k: t1[k] - t0[k] for k in CPU_FIELDS}
    busy = sum(delta[k] for k in BUSY_FIELDS)
    # How busy the cores were: a server core short of 100% means the server
    # waited for queries, so dnsperf (or its core) set the pace, not the server.
    cdelta = {k: c1[k] - c0[k] for k in CPU_FIELDS}
    server_busy = 100 * busy / max(sum(delta.values()), 1)
    client_busy = 100 * sum(cdelta[k] for k in BUSY_FIELDS) / max(sum(cdelta.values()), 1)
    r.update({
        "kind": "run", "client": a.client, "seconds": a.seconds, "server": a.server, "n": a.n, "transport": a.transport, "run": a.run,
        "threads": a.threads, "server_cores": a.server_cores, "client_cores": a.client_cores,
        "core_jiffies": delta,
        # where core 0's time per query went: user, system, softirq, ...
        "core_us_per_q": {k: round(delta[k] * us_per_jiffy / done, 3) for k in BUSY_FIELDS},
        "cpu_us_per_q": busy * us_per_jiffy / done,
        "proc_us_per_q": (proc1 - proc0) * us_per_jiffy / done,
        # The share of the server cores' time spent in the server's own
        # processes (the rest: softirq for it, and any other work there).
        "server_proc_percent": round(100 * (proc1 - proc0) / max(sum(delta.values()), 1), 1),
        "server_cores_busy_percent": round(server_busy, 1),
        "client_cores_busy_percent": round(client_busy, 1),
        "client_us_per_q": client_cpu_s * 1e6 / done,
        "server_queue_percent": round(100 * waiting / samples, 1) if samples else None,
    })
    with open(a.out, "a") as f:
        f.write(json.dumps(r) + "\n")
    extra = f", {r['mismatched']} wrong questions" if r.get("mismatched") else ""
    queued = (f"; queries waiting in its socket in {r['server_queue_percent']:.0f}% of samples"
              if r["server_queue_percent"] is not None else "")
    print(f"  {a.server:8} N={a.n:<6} {a.transport} {a.client} threads {a.threads} run {a.run}: {r['qps']:9.0f} q/s, "
          f"{r['cpu_us_per_q']:.2f} us CPU/query on core(s) {a.server_cores} ({r['proc_us_per_q']:.2f} in the "
          f"server's processes; user/sys/softirq {r['core_us_per_q']['user']:.2f}/"
          f"{r['core_us_per_q']['system']:.2f}/{r['core_us_per_q']['softirq']:.2f}), {r['completed']} completed, {r['lost']} lost{extra}, codes {r['rcodes']}; "
          f"busy: server core(s) {server_busy:.0f}% ({r['server_proc_percent']:.0f}% in its processes{queued}), "
          f"{a.client}'s {client_busy:.0f}% "
          f"({r['client_us_per_q']:.2f} us CPU/query in {a.client})")
    return 0


# --- start / mem ------------------------------------------------------------

def cmd_start(a):
    ms = (float(a.answered) - float(a.started)) * 1000
    with open(a.out, "a") as f:
        f.write(json.dumps({"kind": "start", "server": a.server, "n": a.n, "threads": a.threads,
                            "first_ms": ms}) + "\n")
    print(f"  {a.server:8} N={a.n:<6} first correct answer {ms:.1f} ms after start")
    return 0


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def cmd_mem(a):
    procs = []
    for p in descendants(a.pid):
        try:
            with open(f"/proc/{p}/comm") as f:
                comm = f.read().strip()
            if comm == "taskset":
                continue  # never there (taskset execs), but be sure
            procs.append({"pid": p, "comm": comm, "rss": status_kib(p, "VmRSS"),
                          "pss": pss_kib(p), "cpu": proc_cpu(p)})
        except FileNotFoundError:
            pass
    # The serving process is the one that burnt the CPU under load; for
    # joyrided that is the only one.
    serving = max(procs, key=lambda x: x["cpu"])
    r = {"kind": "mem", "server": a.server, "n": a.n, "transport": a.transport, "threads": a.threads,
         "rss_serving_kib": serving["rss"], "rss_total_kib": sum(x["rss"] for x in procs),
         "pss_total_kib": sum(x["pss"] for x in procs), "processes": procs}
    with open(a.out, "a") as f:
        f.write(json.dumps(r) + "\n")
    desc = ", ".join(f"{x['comm']}[{x['pid']}] {x['rss'] / 1024:.1f}" for x in procs)
    print(f"  {a.server:8} N={a.n:<6} RSS MiB: {desc}; PSS total {r['pss_total_kib'] / 1024:.1f}")
    return 0


# --- report -----------------------------------------------------------------

def cmd_report(a):
    rows = [json.loads(line) for line in open(a.results)]
    runs = [r for r in rows if r["kind"] == "run"]
    cases = []
    for r in runs:
        c = (r.get("threads", 1), r["n"], r["transport"], r.get("client", "dnsperf"))
        if c not in cases:
            cases.append(c)
    cases.sort(key=lambda c: (c[0], c[2] != "udp", -c[1], c[3] != "dnsperf"))

    def best(server, threads, n, tr, client="dnsperf"):
        key = lambda r: (r["server"], r.get("threads", 1), r["n"])
        rs = [r for r in runs if key(r) == (server, threads, n) and r["transport"] == tr
              and r.get("client", "dnsperf") == client]
        if not rs:
            return None
        top = max(rs, key=lambda r: r["qps"])
        mem = [r for r in rows if r["kind"] == "mem" and key(r) == (server, threads, n) and r.get("transport") == tr]
        start = [r for r in rows if r["kind"] == "start" and key(r) == (server, threads, n)]
        total = sum(r["completed"] for r in rs)
        codes = {}
        for r in rs:
            for k, v in r["rcodes"].items():
                codes[k] = codes.get(k, 0) + v
        return {
            "qps": max(r["qps"] for r in rs),
            "cpu": min(r["cpu_us_per_q"] for r in rs),
            "proc": min(r["proc_us_per_q"] for r in rs),
            "cores": rs[0].get("server_cores", "0"),
            "rss": mem[-1]["rss_serving_kib"] / 1024 if mem else None,
            "rss_total": mem[-1]["rss_total_kib"] / 1024 if mem else None,
            "pss_total": mem[-1]["pss_total_kib"] / 1024 if mem else None,
            "first": start[-1]["first_ms"] if start and tr == "udp" else None,
            "lost": sum(r["lost"] for r in rs) / max(sum(r["sent"] for r in rs), 1),
            "nx": codes.get("NXDOMAIN", 0) / max(total, 1),
            "noerror": codes.get("NOERROR", 0) / max(total, 1),
            "runs": len(rs),
            # How busy the cores were in the run with the best qps, and the
            # least busy the server's core was in any run of this case.
            "busy": (top.get("server_cores_busy_percent"), top.get("client_cores_busy_percent")),
            "queued": top.get("server_queue_percent"),
            "server_busy_min": min(r.get("server_cores_busy_percent", 0) for r in rs),
            "queued_min": min((r.get("server_queue_percent") or 0) for r in rs),
            "mismatched": sum(r.get("mismatched", 0) for r in rs),
        }

    problems = []
    table = []
    head = ("server", "threads", "N", "transport", "client", "qps", "µs CPU/query (cores)", "(in server procs)",
            "RSS MiB", "first answer ms", "busy % server / client cores (queued %)")

    def busy(b):
        sb, cb = b["busy"]
        if sb is None or cb is None:
            return "-"
        return f"{sb:.0f} / {cb:.0f}" + (f" ({b['queued']:.0f})" if b["queued"] is not None else "")

    for threads, n, tr, client in cases:
        for server in ("joyrided", "nsd"):
            b = best(server, threads, n, tr, client)
            if not b:
                continue
            rss = f"{b['rss']:.1f}" if b["rss"] is not None else "-"
            if server == "nsd" and b["rss"] is not None:
                rss += f" (all: {b['rss_total']:.1f})"
            first = b["first"] if client == "dnsperf" else None
            table.append((server, str(threads), str(n), tr, client, f"{b['qps']:.0f}",
                          f"{b['cpu']:.2f} ({b['cores']})", f"{b['proc']:.2f}", rss,
                          f"{first:.1f}" if first is not None else "-", busy(b)))
            what = f"{server} threads={threads} N={n} {tr} ({client})"
            # The query mix is 10% absent names: anything far off means wrong answers.
            if abs(b["nx"] - MISSING_SHARE) > 0.02 or abs(b["noerror"] - (1 - MISSING_SHARE)) > 0.02:
                problems.append(f"{what}: NOERROR {b['noerror']:.1%}, "
                                f"NXDOMAIN {b['nx']:.1%} (expected ~{1 - MISSING_SHARE:.0%}/{MISSING_SHARE:.0%})")
            if b["lost"] > 0.01:
                problems.append(f"{what}: {b['lost']:.1%} of queries lost")
            if b["mismatched"]:
                problems.append(f"{what}: {b['mismatched']} replies to a question that was not asked")

    ratios = []
    for threads, n, tr, client in cases:
        j, d = best("joyrided", threads, n, tr, client), best("nsd", threads, n, tr, client)
        if not (j and d):
            continue
        ratios.append((str(threads), str(n), tr, client, f"{j['qps'] / d['qps']:.2f}", f"{j['cpu'] / d['cpu']:.2f}",
                       f"{j['proc'] / d['proc']:.2f}",
                       f"{j['rss'] / d['rss']:.2f} / {j['rss'] / d['rss_total']:.2f}"
                       if j["rss"] and d["rss"] else "-"))

    targets = []
    j, d = best("joyrided", 1, 100000, "udp"), best("nsd", 1, 100000, "udp")
    jc, dc = best("joyrided", 1, 100000, "udp", "udp-load"), best("nsd", 1, 100000, "udp", "udp-load")
    if j and d:
        # The qps target compares capacities, so it takes the udp-load runs,
        # and only if they kept core 0 busy in every run of both servers:
        # otherwise the client set the pace and the ratio says nothing.
        qps_what = "queries/s ≥ 1.1 × NSD at 100k names (UDP, 1 thread / 1 server)"
        if (jc and dc and min(jc["server_busy_min"], dc["server_busy_min"]) >= SATURATED_PERCENT
                and min(jc["queued_min"], dc["queued_min"]) >= QUEUED_PERCENT):
            # Other work on core 0 also makes it busy: the warnings below say
            # when there was some.
            shared = any(r["kind"] == "noise" and r["busy_percent"] > NOISE_PERCENT for r in rows)
            qps_target = (qps_what + ", udp-load",
                          f"{jc['qps']:.0f} vs {dc['qps']:.0f} ({jc['qps'] / dc['qps']:.2f}); core 0 busy "
                          f"≥ {jc['server_busy_min']:.0f}% / {dc['server_busy_min']:.0f}%, queries waiting "
                          f"≥ {jc['queued_min']:.0f}% / {dc['queued_min']:.0f}%"
                          + (" (with other work on it: see the warning)" if shared else ""),
                          jc["qps"] >= 1.1 * dc["qps"])
        else:
            why = (f"udp-load {jc['qps'] / dc['qps']:.2f}, but in its runs core 0 was busy ≥ "
                   f"{jc['server_busy_min']:.0f}% / {dc['server_busy_min']:.0f}% and queries waited ≥ "
                   f"{jc['queued_min']:.0f}% / {dc['queued_min']:.0f}% of the time" if jc and dc else "no udp-load runs")
            qps_target = (qps_what, f"dnsperf {j['qps']:.0f} vs {d['qps']:.0f} ({j['qps'] / d['qps']:.2f}); {why}",
                          f"not known: the client was the limit (core 0 < {SATURATED_PERCENT}% busy or "
                          f"queries waiting < {QUEUED_PERCENT}%)")
        targets = [
            qps_target,
            ("CPU/query ≤ 0.9 × NSD at 100k names (UDP, core 0)",
             f"{j['cpu']:.2f} vs {d['cpu']:.2f} µs ({j['cpu'] / d['cpu']:.2f})", j["cpu"] <= 0.9 * d["cpu"]),
            ("CPU/query ≤ 0.9 × NSD at 100k names (UDP, server processes)",
             f"{j['proc']:.2f} vs {d['proc']:.2f} µs ({j['proc'] / d['proc']:.2f})", j["proc"] <= 0.9 * d["proc"]),
            ("RSS at 100k names ≤ 40 MiB", f"{j['rss']:.1f} MiB", j["rss"] <= 40),
            ("first answer ≤ 200 ms with 100k hosts lines", f"{j['first']:.1f} ms", j["first"] <= 200),
        ]

    def md_table(header, body):
        out = "| " + " | ".join(header) + " |\n|" + "|".join("---" for _ in header) + "|\n"
        return out + "".join("| " + " | ".join(r) + " |\n" for r in body)

    def text_table(header, body):
        w = [max(len(x) for x in col) for col in zip(header, *body)]
        fmt = lambda r: "  ".join(x.rjust(w[i]) if i >= 1 else x.ljust(w[i]) for i, x in enumerate(r))
        return "\n".join([fmt(header), "  ".join("-" * x for x in w)] + [fmt(r) for r in body]) + "\n"

    rhead = ("threads", "N", "transport", "client", "qps joyrided/NSD", "CPU/query joyrided/NSD", "(in server procs)",
             "RSS joyrided/NSD (serving / all)")
    thead = ("target", "measured", "met")
    tbody = [(t, m, ok if isinstance(ok, str) else "yes" if ok else "NO") for t, m, ok in targets]
    secs = sorted({r.get("seconds", 10) for r in runs})
    note = (f"Each figure is the better of two {'/'.join(map(str, secs))} s dnsperf runs (highest qps, lowest CPU/query). "
            "The runs alternate between the two servers. With 1 thread (joyrided Threads=1, NSD server-count: 1) "
            "the servers are pinned to core 0 and dnsperf to core 1; CPU is core 0's busy time "
            "(/proc/stat user+nice+system+irq+softirq+steal), where only the servers run (the idle "
            "one costs nothing), divided by queries completed. With 2 threads (Threads=2, NSD server-count: 2 "
            "with reuseport) the servers and dnsperf share both cores, so the cores' figure includes "
            "dnsperf's own work: read the column in parentheses, the server's own processes (utime+stime), "
            "there. RSS is VmRSS after the runs; for NSD the serving child, and in parentheses all its "
            "processes summed. First answer: from fork to the first reply that holds the right address, "
            "probing every ~1 ms. Busy %: the share of the run the server's cores and the client's cores were "
            "busy (/proc/stat), in the run with the best qps; a server core short of 100% waited for queries. "
            "Queued %: the share of 20 ms samples in which queries were waiting in the server's UDP socket "
            "(/proc/net/udp): near 100% means the server, or its core, set the pace even when other work "
            "shared the cores; well below, the client did. "
            "The udp-load rows (1 thread, UDP, the large N) load the same servers with bench/udp-load.c "
            "(sendmmsg/recvmmsg batches on one socket, a fixed window of queries in flight) on core 1, which "
            f"can keep core 0 busy where one dnsperf thread cannot; the qps target uses them only if core 0 was "
            f"at least {SATURATED_PERCENT}% busy and queries waited in its socket in at least {QUEUED_PERCENT}% of the "
            "samples, in every such run of both servers.\n")
    print()
    print(text_table(head, table))
    print(note)
    print(text_table(rhead, ratios))
    if tbody:
        print(text_table(thead, tbody))
    for r in rows:
        if r["kind"] == "noise" and r["busy_percent"] > NOISE_PERCENT:
            w = (f"core 0 was {r['busy_percent']}% busy {r['when']} the bench with no server running"
                 f"{', load average ' + str(r['loadavg']) if 'loadavg' in r else ''}: "
                 "other work shares the server's core, so these figures are not reliable")
            print(f"WARNING: {w}")
            note += f"\n**Warning:** {w}.\n"
    for p in problems:
        print(f"PROBLEM: {p}")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(md_table(head, table) + "\n" + note + "\n" + md_table(rhead, ratios) + "\n")
            if tbody:
                f.write(md_table(thead, tbody))
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("gen")
    p.add_argument("dir")
    p.add_argument("n", type=int)
    p.add_argument("--queries", type=int, default=100000)
    p = sub.add_parser("port")
    p = sub.add_parser("addr")
    p.add_argument("k", type=int)
    p = sub.add_parser("poll")
    for x in ("--name", "--addr", "--ready", "--pidfile"):
        p.add_argument(x, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("verify")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--n", type=int, required=True)
    p = sub.add_parser("start")
    for x in ("--server", "--started", "--answered", "--out"):
        p.add_argument(x, required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("run")
    for x in ("--server", "--queries", "--out"):
        p.add_argument(x, required=True)
    for x in ("--n", "--port", "--pid", "--run"):
        p.add_argument(x, type=int, required=True)
    p.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--server-cores", default="0")
    p.add_argument("--client-cores", default="1")
    p.add_argument("--client", choices=("dnsperf", "udp-load"), default="dnsperf")
    p.add_argument("--loadgen", help="the udp-load binary (with --client udp-load)")
    p.add_argument("--window", type=int, default=512, help="udp-load's queries in flight")
    p.add_argument("--loadgen-args", default="", help="more udp-load options, such as \"-T 2\"")
    p = sub.add_parser("mem")
    for x in ("--server", "--out", "--transport"):
        p.add_argument(x, required=True)
    for x in ("--n", "--pid"):
        p.add_argument(x, type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("report")
    p.add_argument("results")
    p.add_argument("markdown", nargs="?")
    a = ap.parse_args()
    return globals()["cmd_" + a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
