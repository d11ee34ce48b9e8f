#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Measurements for bench/cluster-scale.sh (which makes the namespaces and
# runs the daemons): run inside the bench's switch namespace, where br0 has
# an address on the nodes' segment, so one process can ask every node's DNS
# server and HTTP API directly, without a process per query. Each
# subcommand writes one JSON object (the phase's figures) to stdout.
#
#   formation  when every node saw every other alive, and served its record
#              (from the daemons' logs, then checked with DNS)
#   changes    hosts-file changes on random nodes, each timed until every
#              other node answers it (DNS)
#   kill       after the caller SIGKILLed one node: first suspicion, dead
#              everywhere (logs), its record gone everywhere (DNS)
#   soak       a period of changes and DNS samples, optionally with nodes
#              stopped (SIGSTOP) for a while at random times
#   snapshot   counters per node: nft bytes and packets of cluster traffic,
#              CPU time and RSS of each daemon, its /metrics cluster series
#   events     what the logs say happened in a time window (suspicions,
#              deaths, refutations, records of live nodes withdrawn)
#   report     the table and the summary JSON from the phases' files
# Uses only Python's standard library (Debian's python3).
import argparse
import json
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request

LINE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) joyrided \w+: (.*)$")
MEMBER = re.compile(r"^Cluster member (\S+) (?:at \S+ )?(is alive again|is alive|is dead|left|is suspected)")
RECORD = re.compile(r"^(Added|Removed) (\S+) A (\S+) \(peer:(\S+)\)")


def now():
        return time.time()


def node_ip(a, k):
        return f"{a.subnet}.{k}"


def self_name(k):
        return f"n{k}.scale.test"


def self_value(k):
        return f"10.9.{k // 250}.{k % 250 + 1}"


# --- DNS, by hand (a query for one A record, the A values of the reply) --------

class Dns:
        def __init__(self, port):
                self.port = port
                self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self.sock.setblocking(False)
                self.pending = {}       # id -> (key, sent)

        def send(self, ip, name, key):
                qid = random.randrange(65536)
                while qid in self.pending:
                        qid = random.randrange(65536)
                q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
                for label in name.rstrip(".").split("."):
                        q += bytes([len(label)]) + label.encode()
                q += b"\0" + struct.pack(">HH", 1, 1)
                self.pending[qid] = (key, now())
                try:
                        self.sock.sendto(q, (ip, self.port))
                except OSError:
                        pass

        def replies(self, wait):
                """(key, values or None for no answer, rtt) for the replies in the next `wait` seconds."""
                out = []
                end = now() + wait
                while self.pending:
                        left = end - now()
                        if left <= 0:
                                break
                        r, _, _ = select.select([self.sock], [], [], left)
                        if not r:
                                break
                        while True:
                                try:
                                        data, _ = self.sock.recvfrom(4096)
                                except BlockingIOError:
                                        break
                                if len(data) < 12:
                                        continue
                                qid, flags, qd, an = struct.unpack(">HHHH", data[:8])
                                entry = self.pending.pop(qid, None)
                                if not entry:
                                        continue
                                out.append((entry[0], parse_a(data, qd, an) if flags & 0xf == 0 else [],
                                            now() - entry[1]))
                                if not self.pending:
                                        break
                # Queries older than 2 s are given up (a stopped node, a lost packet).
                for qid in [q for q, (_, t) in self.pending.items() if now() - t > 2]:
                        del self.pending[qid]
                return out


def skip_name(d, i):
        while i < len(d):
                n = d[i]
                if n == 0:
                        return i + 1
                if n & 0xc0 == 0xc0:
                        return i + 2
                i += 1 + n
        return i


def parse_a(d, qd, an):
        i = 12
        for _ in range(qd):
                i = skip_name(d, i) + 4
        values = []
        for _ in range(an):
                i = skip_name(d, i)
                if i + 10 > len(d):
                        break
                rtype, _, _, rdlen = struct.unpack(">HHIH", d[i:i + 10])
                i += 10
                if rtype == 1 and rdlen == 4:
                        values.append(socket.inet_ntoa(d[i:i + 4]))
                i += rdlen
        return values


def wait_all(dns, targets, timeout, interval=0.02, start=None, tick=None):
        """targets: {key: (ip, name, want)}. Asks each ip for its name every
        `interval` until the answer satisfies want(values). Returns ({key:
        seconds since start}, keys that never did within the timeout)."""
        start = start or now()
        pending = dict(targets)
        done = {}
        while pending and now() - start < timeout:
                if tick:
                        tick()
                for key, (ip, name, _) in pending.items():
                        dns.send(ip, name, key)
                round_end = now() + interval
                while pending and now() < round_end:
                        for key, values, _ in dns.replies(round_end - now()):
                                if key in pending and pending[key][2](values):
                                        done[key] = now() - start
                                        del pending[key]
                if pending:
                        time.sleep(max(0, round_end - now()))
        return done, sorted(pending)


def wait_answers(a, dns, nodes, name, want, timeout, interval=0.02, start=None, tick=None):
        """Asks every node for `name` until its answer satisfies want(values)."""
        return wait_all(dns, {k: (node_ip(a, k), name, want) for k in nodes}, timeout, interval, start, tick)


# --- logs --------------------------------------------------------------------

def log_events(a, k, since, until=None):
        """(epoch, message) of node k's log lines between since and until."""
        path = os.path.join(a.dir, f"log.{k}")
        try:
                f = open(path, errors="replace")
        except FileNotFoundError:
                return []
        base = time.localtime(since)
        midnight = time.mktime((base.tm_year, base.tm_mon, base.tm_mday, 0, 0, 0, 0, 0, -1))
        out = []
        with f:
                for line in f:
                        m = LINE.match(line)
                        if not m:
                                continue
                        h, mi, s, ms = (int(x) for x in m.groups()[:4])
                        t = midnight + h * 3600 + mi * 60 + s + ms / 1000
                        if t < since - 43200:
                                t += 86400      # after midnight
                        if t >= since - 0.001 and (until is None or t <= until):
                                out.append((t, m.group(5)))
        return out


def nodes_arg(s):
        return [int(x) for x in s.split(",") if x]


# --- formation ------------------------------------------------------------------

def cmd_formation(a):
        """Every node sees every other alive (with --victim: the restarted
        node sees all others, and all others see it again)."""
        nodes = nodes_arg(a.nodes)
        deadline = a.t0 + a.timeout
        result = {}

        def formed(k, names):
                if a.victim is None or k == a.victim:
                        return len(names) == len(nodes) - 1
                return f"n{a.victim}" in names or self_name(a.victim) in names
        while True:
                members_at, records_at, started_at = {}, {}, {}
                for k in nodes:
                        live, have = set(), set()
                        for t, msg in log_events(a, k, a.t0):
                                if msg.startswith("Cluster node ") and k not in started_at:
                                        started_at[k] = t - a.t0
                                m = MEMBER.match(msg)
                                if m:
                                        if m.group(2).startswith("is alive"):
                                                live.add(m.group(1))
                                        elif m.group(2) in ("is dead", "left"):
                                                live.discard(m.group(1))
                                        if formed(k, live) and k not in members_at:
                                                members_at[k] = t - a.t0
                                r = RECORD.match(msg)
                                if r and r.group(2).startswith("n") and r.group(2).endswith(".scale.test"):
                                        (have.add if r.group(1) == "Added" else have.discard)(r.group(2))
                                        if formed(k, have) and k not in records_at:
                                                records_at[k] = t - a.t0
                if len(members_at) == len(nodes) or now() > deadline:
                        break
                time.sleep(0.5)
        def r2(x):
                return None if x is None else round(x, 2)
        result["members_s"] = r2(max(members_at.values()) if len(members_at) == len(nodes) else None)
        result["members_median_s"] = r2(sorted(members_at.values())[len(members_at) // 2] if members_at else None)
        result["records_log_s"] = r2(max(records_at.values()) if len(records_at) == len(nodes) else None)
        result["nodes_formed"] = len(members_at)
        # Starting the processes takes a while on a loaded machine: the time
        # after the last one was up (it logged its cluster line) matters too.
        last = max(started_at.values()) if started_at else None
        result["last_start_s"] = r2(last)
        result["members_after_last_start_s"] = r2(result["members_s"] - last) \
                if result["members_s"] is not None and last is not None else None
        # What a user sees: every node answers every other node's name.
        dns = Dns(a.dns_port)
        targets = {(k, j): (node_ip(a, k), self_name(j), lambda v, j=j: self_value(j) in v)
                   for k in nodes for j in nodes if j != k and (a.victim is None or a.victim in (j, k))}
        _, missing = wait_all(dns, targets, max(5.0, deadline - now()), 0.5)
        result["records_checked_at_s"] = round(now() - a.t0, 2)
        result["missing_records"] = missing[:20]
        result["missing_count"] = len(missing)
        json.dump(result, sys.stdout)


# --- changes --------------------------------------------------------------------

def change(a, dns, origin, others, i, timeout):
        """Replaces origin's churn file with one new name; times it on every other node."""
        name = f"churn-{i}.scale.test"
        value = f"10.77.{(i // 250) % 250}.{i % 250 + 1}"
        tmp = os.path.join(a.dir, f".churn.{origin}")
        with open(tmp, "w") as f:
                f.write(f"{value} {name}\n")
        start = now()
        os.rename(tmp, os.path.join(a.dir, f"h{origin}", "churn"))
        return wait_answers(a, dns, others, name, lambda v: value in v, timeout, start=start)


def percentile(xs, p):
        if not xs:
                return None
        xs = sorted(xs)
        return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))]


def summarize(per_change, per_node, missed, count):
        return {
                "count": count,
                "all_p50_ms": ms(percentile(per_change, 50)),
                "all_p99_ms": ms(percentile(per_change, 99)),
                "all_max_ms": ms(max(per_change) if per_change else None),
                "node_p50_ms": ms(percentile(per_node, 50)),
                "node_p99_ms": ms(percentile(per_node, 99)),
                "node_max_ms": ms(max(per_node) if per_node else None),
                "missed": missed,
        }


def ms(x):
        return None if x is None else round(x * 1000, 1)


def cmd_changes(a):
        nodes = nodes_arg(a.nodes)
        dns = Dns(a.dns_port)
        per_change, per_node, missed = [], [], []
        t_start = now()
        for i in range(a.count):
                origin = random.choice(nodes)
                others = [k for k in nodes if k != origin]
                done, left = change(a, dns, origin, others, a.first + i, a.timeout)
                per_node.extend(done.values())
                if left:
                        missed.append({"change": a.first + i, "origin": origin, "nodes": left})
                else:
                        per_change.append(max(done.values()))
                time.sleep(a.pause)
        out = summarize(per_change, per_node, missed, a.count)
        out.update({"start": t_start, "end": now()})
        json.dump(out, sys.stdout)


# --- kill ----------------------------------------------------------------------

def cmd_kill(a):
        nodes = nodes_arg(a.nodes)
        others = [k for k in nodes if k != a.victim]
        dns = Dns(a.dns_port)
        value = self_value(a.victim)
        t0 = a.t0       # when it was killed (by the caller, just before)
        gone, left = wait_answers(a, dns, others, self_name(a.victim), lambda v: value not in v, a.timeout, 0.05,
                                  start=t0)
        vid = f"n{a.victim}"
        suspected, dead = [], {}
        for k in others:
                for t, msg in log_events(a, k, t0):
                        m = MEMBER.match(msg)
                        if not m or m.group(1) != vid:
                                continue
                        if m.group(2) == "is suspected":
                                suspected.append(t - t0)
                        elif m.group(2) == "is dead" and k not in dead:
                                dead[k] = t - t0
        json.dump({
                "first_suspected_s": round(min(suspected), 2) if suspected else None,
                "first_dead_s": round(min(dead.values()), 2) if dead else None,
                "all_dead_s": round(max(dead.values()), 2) if len(dead) == len(others) else None,
                "dead_on": len(dead),
                "records_gone_s": round(max(gone.values()), 2) if not left else None,
                "records_gone_median_s": round(percentile(list(gone.values()), 50), 2) if gone else None,
                "records_kept_on": left,
                "start": t0, "end": now(),
        }, sys.stdout)


# --- soak: changes, samples, and optionally stopped nodes -------------------------

def cmd_soak(a):
        nodes = nodes_arg(a.nodes)
        starved = {int(k): int(p) for k, p in (x.split(":") for x in a.starve.split(",") if x)} if a.starve else {}
        dns = Dns(a.dns_port)
        rng = random.Random()
        t_start = now()
        end = t_start + a.duration
        next_stop = {k: t_start + rng.uniform(0, a.gap_max) for k in starved}
        stopped_until = {}
        stops = 0
        per_change, per_node, missed = [], [], []
        samples = wrong = 0
        wrong_examples = []
        i = a.first
        next_change = t_start + 1

        def tend_starved():
                nonlocal stops
                t = now()
                for k, pid in starved.items():
                        if k in stopped_until and t >= stopped_until[k]:
                                os.kill(pid, signal.SIGCONT)
                                del stopped_until[k]
                                next_stop[k] = t + rng.uniform(a.gap_min, a.gap_max)
                        elif k not in stopped_until and t >= next_stop[k] and t + a.stop_sec < end:
                                os.kill(pid, signal.SIGSTOP)
                                stopped_until[k] = t + a.stop_sec
                                stops += 1

        try:
                while now() < end:
                        tend_starved()
                        if now() >= next_change:
                                # Changes come from, and are timed on, nodes never stopped.
                                steady = [k for k in nodes if k not in starved]
                                origin = rng.choice(steady)
                                name = f"churn-{i}.scale.test"
                                value = f"10.77.{(i // 250) % 250}.{i % 250 + 1}"
                                tmp = os.path.join(a.dir, f".churn.{origin}")
                                with open(tmp, "w") as f:
                                        f.write(f"{value} {name}\n")
                                start = now()
                                os.rename(tmp, os.path.join(a.dir, f"h{origin}", "churn"))
                                done, left = wait_answers(a, dns, [k for k in steady if k != origin], name,
                                                          lambda v: value in v, a.timeout, start=start, tick=tend_starved)
                                per_node.extend(done.values())
                                if left:
                                        missed.append({"change": i, "origin": origin, "nodes": left})
                                else:
                                        per_change.append(max(done.values()))
                                i += 1
                                next_change = now() + a.change_every
                        # Samples: a node asked for another node's own name must
                        # always have it (a stopped node does not answer: no sample).
                        # a.samples queries every 0.1 s.
                        round_end = now() + 0.1
                        for _ in range(a.samples):
                                k, j = rng.sample(nodes, 2)
                                dns.send(node_ip(a, k), self_name(j), ("s", k, j))
                        for key, values, _ in dns.replies(0.1):
                                if not isinstance(key, tuple) or key[0] != "s":
                                        continue
                                samples += 1
                                if self_value(key[2]) not in values:
                                        wrong += 1
                                        if len(wrong_examples) < 10:
                                                wrong_examples.append([key[1], key[2], values])
                        time.sleep(max(0, round_end - now()))
        finally:
                for pid in starved.values():
                        try:
                                os.kill(pid, signal.SIGCONT)
                        except ProcessLookupError:
                                pass
        out = summarize(per_change, per_node, missed, len(per_change) + len(missed))
        out.update({"samples": samples, "wrong_answers": wrong, "wrong_examples": wrong_examples,
                    "stops": stops, "stopped_nodes": sorted(starved), "start": t_start, "end": now(),
                    "next_change": i})
        json.dump(out, sys.stdout)


# --- counters ------------------------------------------------------------------------

def nft_counters(a, k):
        try:
                out = subprocess.run(["ip", "netns", "exec", f"{a.prefix}-n{k}", "nft", "-j", "list", "counters",
                                      "table", "inet", "jrbench"], capture_output=True, text=True, timeout=10).stdout
                c = {}
                for item in json.loads(out).get("nftables", []):
                        if "counter" in item:
                                c[item["counter"]["name"]] = [item["counter"]["packets"], item["counter"]["bytes"]]
                return c
        except (OSError, ValueError, subprocess.SubprocessError):
                return {}


def proc_stats(pid):
        try:
                with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                rss = 0
                with open(f"/proc/{pid}/status") as f:
                        for line in f:
                                if line.startswith("VmRSS:"):
                                        rss = int(line.split()[1])
                return cpu, rss
        except (OSError, IndexError, ValueError):
                return None, None


def metrics(a, k):
        """The cluster series of node k's /metrics, summed by name and labels."""
        try:
                body = urllib.request.urlopen(f"http://{node_ip(a, k)}:{a.http_port}/metrics", timeout=5).read().decode()
        except OSError:
                return {}
        out = {}
        for line in body.splitlines():
                if line.startswith("joyride_cluster") or line.startswith("joyride_gossip"):
                        try:
                                key, value = line.rsplit(" ", 1)
                                out[key] = float(value)
                        except ValueError:
                                pass
        return out


def cmd_snapshot(a):
        nodes = nodes_arg(a.nodes)
        pids = dict((int(k), int(p)) for k, p in (x.split(":") for x in a.pids.split(",") if x))
        snap = {"time": now(), "load": os.getloadavg(), "nodes": {}}
        for k in nodes:
                cpu, rss = proc_stats(pids.get(k, 0))
                snap["nodes"][k] = {"nft": nft_counters(a, k), "cpu_s": cpu, "rss_kb": rss,
                                    "metrics": metrics(a, k) if a.metrics else {}}
        json.dump(snap, sys.stdout)


# --- events in a window ------------------------------------------------------------

def cmd_events(a):
        nodes = nodes_arg(a.nodes)
        expected_dead = set(f"n{k}" for k in nodes_arg(a.expect_dead or ""))
        counts = {"suspicions": 0, "deaths": 0, "false_deaths": 0, "refutations": 0, "left": 0,
                  "self_records_withdrawn": 0}
        examples = []
        for k in nodes:
                for t, msg in log_events(a, k, a.since, a.until):
                        m = MEMBER.match(msg)
                        if m:
                                what = m.group(2)
                                if what == "is suspected":
                                        counts["suspicions"] += 1
                                elif what == "is alive again":
                                        counts["refutations"] += 1
                                elif what == "left":
                                        counts["left"] += 1
                                elif what == "is dead":
                                        counts["deaths"] += 1
                                        if m.group(1) not in expected_dead:
                                                counts["false_deaths"] += 1
                                                if len(examples) < 10:
                                                        examples.append(f"n{k}: {msg}")
                        r = RECORD.match(msg)
                        if r and r.group(1) == "Removed" and re.match(r"^n\d+\.scale\.test$", r.group(2)) \
                                        and r.group(4) not in expected_dead:
                                counts["self_records_withdrawn"] += 1
                                if len(examples) < 10:
                                        examples.append(f"n{k}: {msg}")
        counts["examples"] = examples
        json.dump(counts, sys.stdout)


# --- report --------------------------------------------------------------------------

def traffic(s0, s1):
        """Per node per second between two snapshots: cluster packets and bytes
        (sent, received), CPU %, and RSS at the end."""
        dt = s1["time"] - s0["time"]
        rows = []
        for k, n1 in s1["nodes"].items():
                n0 = s0["nodes"].get(k)
                if not n0:
                        continue
                def d(name, i):
                        return (n1["nft"].get(name, [0, 0])[i] - n0["nft"].get(name, [0, 0])[i]) / dt
                cpu = None
                if n1["cpu_s"] is not None and n0["cpu_s"] is not None and n1["cpu_s"] >= n0["cpu_s"]:
                        cpu = 100 * (n1["cpu_s"] - n0["cpu_s"]) / dt
                rows.append({
                        "pkts_out": d("udp_out", 0) + d("tcp_out", 0), "bytes_out": d("udp_out", 1) + d("tcp_out", 1),
                        "pkts_in": d("udp_in", 0) + d("tcp_in", 0), "bytes_in": d("udp_in", 1) + d("tcp_in", 1),
                        "tcp_bytes_out": d("tcp_out", 1), "cpu_pct": cpu, "rss_kb": n1["rss_kb"],
                })
        def mean(key):
                xs = [r[key] for r in rows if r[key] is not None]
                return round(sum(xs) / len(xs), 2) if xs else None
        def top(key):
                xs = [r[key] for r in rows if r[key] is not None]
                return round(max(xs), 2) if xs else None
        return {
                "seconds": round(dt, 1), "nodes": len(rows),
                "pkts_out_per_s": mean("pkts_out"), "pkts_in_per_s": mean("pkts_in"),
                "bytes_out_per_s": mean("bytes_out"), "bytes_in_per_s": mean("bytes_in"),
                "bytes_out_per_s_max": top("bytes_out"), "tcp_bytes_out_per_s": mean("tcp_bytes_out"),
                "cpu_pct": mean("cpu_pct"), "cpu_pct_max": top("cpu_pct"),
                "rss_kb": mean("rss_kb"), "rss_kb_max": top("rss_kb"),
                "load": [round(x, 2) for x in s1["load"]],
        }


def load_json(path):
        try:
                with open(path) as f:
                        return json.load(f)
        except (OSError, ValueError):
                return None


def cmd_report(a):
        d = a.dir
        r = {"n": a.n, "config": load_json(os.path.join(d, "config.json"))}
        for phase in ("formation", "changes", "kill", "loss", "starve"):
                r[phase] = load_json(os.path.join(d, f"{phase}.json"))
        for phase in ("rest", "churn", "loss", "starve"):
                s0 = load_json(os.path.join(d, f"snap-{phase}-0.json"))
                s1 = load_json(os.path.join(d, f"snap-{phase}-1.json"))
                r[f"traffic_{phase}"] = traffic(s0, s1) if s0 and s1 else None
        for phase in ("rest", "churn", "kill", "loss", "starve"):
                r[f"events_{phase}"] = load_json(os.path.join(d, f"events-{phase}.json"))
        # Cluster series summed over the nodes at the end (caps and the like
        # show up here when the daemon has them).
        last = load_json(os.path.join(d, "snap-end.json"))
        if last:
                total = {}
                for n in last["nodes"].values():
                        for key, value in n["metrics"].items():
                                total[key] = total.get(key, 0) + value
                r["metrics_end"] = total
        with open(a.json, "w") as f:
                json.dump(r, f, indent=1)

        def fmt(x, unit=""):
                return "n/a" if x is None else f"{x}{unit}"
        lines = [f"cluster-scale: {a.n} nodes"]
        f = r["formation"] or {}
        lines.append(f"  formation: all see all alive {fmt(f.get('members_s'), ' s')} after the first start, "
                     f"{fmt(f.get('members_after_last_start_s'), ' s')} after the last ({fmt(f.get('last_start_s'), ' s')} "
                     f"to start them all; median node "
                     f"{fmt(f.get('members_median_s'), ' s')}), all records in every store {fmt(f.get('records_log_s'), ' s')}, "
                     f"{f.get('missing_count', 'n/a')} (node, record) pairs missing at the DNS check")
        for key, title in (("changes", "change-to-answer, at rest"), ("loss", "change-to-answer, 10% loss"),
                           ("starve", "change-to-answer, nodes stopped")):
                c = r[key] or {}
                if not c:
                        continue
                lines.append(f"  {title}: {c.get('count')} changes, all others answered p50 {fmt(c.get('all_p50_ms'), ' ms')} "
                             f"p99 {fmt(c.get('all_p99_ms'), ' ms')} max {fmt(c.get('all_max_ms'), ' ms')}; per node "
                             f"p50 {fmt(c.get('node_p50_ms'), ' ms')} p99 {fmt(c.get('node_p99_ms'), ' ms')}; "
                             f"{len(c.get('missed', []))} not everywhere within the timeout")
        k = r["kill"] or {}
        if k:
                lines.append(f"  SIGKILL: first suspicion {fmt(k.get('first_suspected_s'), ' s')}, first dead "
                             f"{fmt(k.get('first_dead_s'), ' s')}, dead on all {fmt(k.get('all_dead_s'), ' s')}, "
                             f"records gone everywhere {fmt(k.get('records_gone_s'), ' s')}")
        for phase in ("rest", "churn", "loss", "starve"):
                t = r[f"traffic_{phase}"]
                if t:
                        lines.append(f"  traffic {phase} ({t['seconds']} s): per node {t['pkts_out_per_s']} pkt/s and "
                                     f"{t['bytes_out_per_s']} B/s sent (max node {t['bytes_out_per_s_max']} B/s), "
                                     f"{t['bytes_in_per_s']} B/s received; CPU {t['cpu_pct']}% (max {t['cpu_pct_max']}%), "
                                     f"RSS {t['rss_kb']} kB (max {t['rss_kb_max']} kB); load {t['load']}")
        for phase in ("rest", "churn", "loss", "starve"):
                e = r[f"events_{phase}"]
                if e:
                        extra = ""
                        if phase in ("loss", "starve") and r[phase]:
                                s = r[phase]
                                extra = (f", {s.get('samples')} DNS samples with {s.get('wrong_answers')} wrong"
                                         + (f", {s.get('stops')} stops of 2 s" if phase == "starve" else ""))
                        lines.append(f"  events {phase}: {e['suspicions']} suspicions, {e['refutations']} refuted, "
                                     f"{e['false_deaths']} false deaths, {e['self_records_withdrawn']} live records "
                                     f"withdrawn{extra}")
        caps = {key: v for key, v in (r.get("metrics_end") or {}).items()
                if any(w in key for w in ("cap", "limit", "exceed", "dropped", "max"))}
        if caps:
                lines.append("  cap metrics (sum over nodes): " + ", ".join(f"{key} {v:g}" for key, v in sorted(caps.items())))
        print("\n".join(lines))


def main():
        p = argparse.ArgumentParser(description=__doc__)
        p.add_argument("--dir", required=True)
        p.add_argument("--subnet", default="10.231.0")
        p.add_argument("--prefix", default="")
        p.add_argument("--dns-port", type=int, default=5353)
        p.add_argument("--http-port", type=int, default=5354)
        p.add_argument("--nodes", default="")
        sub = p.add_subparsers(dest="cmd", required=True)
        s = sub.add_parser("formation")
        s.add_argument("--t0", type=float, required=True)
        s.add_argument("--victim", type=int)
        s.add_argument("--timeout", type=float, default=60)
        s = sub.add_parser("changes")
        s.add_argument("--count", type=int, default=100)
        s.add_argument("--first", type=int, default=0)
        s.add_argument("--pause", type=float, default=0.3)
        s.add_argument("--timeout", type=float, default=90)
        s = sub.add_parser("kill")
        s.add_argument("--victim", type=int, required=True)
        s.add_argument("--t0", type=float, required=True)
        s.add_argument("--timeout", type=float, default=90)
        s = sub.add_parser("soak")
        s.add_argument("--duration", type=float, required=True)
        s.add_argument("--first", type=int, default=10000)
        s.add_argument("--change-every", type=float, default=2)
        s.add_argument("--samples", type=int, default=20)
        s.add_argument("--timeout", type=float, default=90)
        s.add_argument("--starve", default="")
        s.add_argument("--stop-sec", type=float, default=2)
        s.add_argument("--gap-min", type=float, default=4)
        s.add_argument("--gap-max", type=float, default=12)
        s = sub.add_parser("snapshot")
        s.add_argument("--pids", default="")
        s.add_argument("--metrics", action="store_true")
        s = sub.add_parser("events")
        s.add_argument("--since", type=float, required=True)
        s.add_argument("--until", type=float)
        s.add_argument("--expect-dead", default="")
        s = sub.add_parser("report")
        s.add_argument("--n", type=int, required=True)
        s.add_argument("--json", required=True)
        a = p.parse_args()
        globals()["cmd_" + a.cmd](a)


if __name__ == "__main__":
        main()
