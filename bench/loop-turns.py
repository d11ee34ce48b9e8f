#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The control loop's turns from `perf script` (see bench/loop-turns.sh).

  perf script -F tid,time,event,ip,sym | loop-turns.py --label L [--loop-json F]
      one JSON line: the turns of the thread with the most of them (the loop),
      each from a jr_turn event to the next jr_turn__return, with the cpu-clock
      samples taken in it
  loop-turns.py --table RESULTS.jsonl
      the table of those lines
"""

import argparse
import collections
import json
import re
import sys

from probeutil import percentile

SAMPLE_MS = 0.25  # perf record -F 4000
POLL = {"do_sys_poll", "ep_poll", "__x64_sys_poll", "__x64_sys_epoll_wait"}
HEAD = re.compile(r"\s*(\d+)\s+([\d.]+):\s+(\S+):")
# Frames that say nothing of what the loop was doing.
DULL = ("[unknown]", "__GI_", "_start", "main", "g_main_", "g_source_", "event_dispatch", "sd_event_",
        "source_dispatch", "on_glib_dispatch")


def parse(lines):
    """(tid, time, event, [frames]) for each event."""
    cur = None
    for line in lines:
        if not line.strip():
            if cur:
                yield cur
            cur = None
            continue
        m = HEAD.match(line)
        if m and not line[0].isspace():
            if cur:
                yield cur
            cur = (int(m.group(1)), float(m.group(2)), m.group(3), [])
        elif cur is not None:
            parts = line.split(None, 1)
            if len(parts) > 1:
                cur[3].append(parts[1].split("+")[0].strip())
    if cur:
        yield cur


def what(stacks):
    """The functions seen most in these samples: each sample's innermost
    frame that names something, by count."""
    c = collections.Counter()
    for frames in stacks:
        named = [f for f in frames if not f.startswith(DULL) and not f.startswith("0x")]
        c[named[0] if named else "?"] += 1
    return [f"{name} {n}" for name, n in c.most_common(3)]


def analyse(a):
    events = list(parse(sys.stdin))
    turns_by_tid = collections.Counter(e[0] for e in events if e[2].endswith(":jr_turn"))
    if not turns_by_tid:
        sys.exit("loop-turns: no jr_turn events: the uprobe did not fire")
    loop = turns_by_tid.most_common(1)[0][0]
    turns = []  # (length in ms, [stacks])
    start, samples = None, []
    for tid, t, name, frames in events:
        if tid != loop:
            continue
        if name.endswith(":jr_turn"):
            if start is None:  # a nested entry (the PLT stub, then the function) keeps the first
                start, samples = t, []
        elif name.endswith(":jr_turn__return"):
            # A turn never waits in poll(): one that seems to has lost its
            # return event (the recording began or ended inside it).
            if start is not None and not any(f in POLL for st in samples for f in st):
                turns.append(((t - start) * 1000, samples))
            start = None
        elif "cpu-clock" in name and start is not None:
            samples.append(frames)
    lengths = sorted(t[0] for t in turns)
    longest = sorted(turns, key=lambda t: -len(t[1]))[:5]
    out = {
        "label": a.label,
        "turns": len(turns),
        "p99_ms": round(percentile(lengths, 99), 2),
        "max_ms": round(max(lengths), 2),
        "over_5ms": sum(1 for x in lengths if x > 5),
        "busiest": [{"cpu_ms": round(len(s) * SAMPLE_MS, 2), "ms": round(ms, 2), "what": what(s)} for ms, s in longest],
    }
    if a.loop_json:
        with open(a.loop_json) as f:
            h = json.load(f)
        out["health_p99_ms"], out["health_max_ms"] = h["p99_ms"], h["max_ms"]
    print(json.dumps(out))


def table(path):
    print("| run | loop turns | turn p99 / max | turns over 5 ms | /health p99 / max | CPU in the 5 busiest turns (ms): what |")
    print("| --- | --- | --- | --- | --- | --- |")
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            busiest = "; ".join(f"{b['cpu_ms']}: {', '.join(b['what'])}" for b in r["busiest"])
            health = f"{r['health_p99_ms']} / {r['health_max_ms']} ms" if "health_p99_ms" in r else "-"
            print(f"| {r['label']} | {r['turns']} | {r['p99_ms']} / {r['max_ms']} ms | {r['over_5ms']} | {health} | {busiest} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", default="run")
    ap.add_argument("--loop-json", help="bench/loop-probe.py --json output of the same run")
    ap.add_argument("--table", metavar="RESULTS")
    a = ap.parse_args()
    if a.table:
        table(a.table)
    else:
        analyse(a)


if __name__ == "__main__":
    main()
