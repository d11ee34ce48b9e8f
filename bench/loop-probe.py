#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Control loop probe: how long the daemon's control loop takes to answer.

    loop-probe.py --port HTTP_PORT [--server 127.0.0.1] [--interval-ms 10]
                  [--seconds 3] [--json] [--label TEXT]
                  [--start-file F] [--stop-file F]

DNS is answered by threads of its own; HTTP, D-Bus, SWIM timers and the
cluster share one loop. This asks GET /health (the cheapest answer the loop
gives) over one kept-alive connection, one request at a time, every
INTERVAL_MS, and reports the time from request to full answer (p50, p99,
max) and the number of requests, as one line (or JSON). A loop held for
100 ms shows as an answer 100 ms late. Start and stop files as in
stall-probe.py. Standard library only; loopback only.
"""
import argparse
import http.client
import ipaddress
import json
import os.path
import sys
import time

from probeutil import percentile


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--interval-ms", type=float, default=10.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--label", default="")
    ap.add_argument("--start-file")
    ap.add_argument("--stop-file")
    a = ap.parse_args()
    if not ipaddress.ip_address(a.server).is_loopback:
        sys.exit("loop-probe: the server must be a loopback address")

    conn = http.client.HTTPConnection(a.server, a.port, timeout=30)
    delays = []
    errors = 0
    start = time.monotonic()
    started = False
    next_at = start
    while True:
        now = time.monotonic()
        if now - start >= a.seconds and (not a.stop_file or os.path.exists(a.stop_file)):
            break
        if now < next_at:
            time.sleep(next_at - now)
        next_at += a.interval_ms / 1000.0
        t0 = time.monotonic()
        try:
            conn.request("GET", "/health")
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(a.server, a.port, timeout=30)
            continue
        delays.append((time.monotonic() - t0) * 1000.0)
        if not started and a.start_file:
            open(a.start_file, "w").close()
            started = True
        # A late answer is not followed by a burst of catch-up requests.
        next_at = max(next_at, time.monotonic())
    conn.close()
    delays.sort()
    r = {
        "label": a.label,
        "requests": len(delays),
        "errors": errors,
        "p50_ms": round(percentile(delays, 50), 3),
        "p99_ms": round(percentile(delays, 99), 3),
        "max_ms": round(delays[-1], 3) if delays else float("nan"),
    }
    if a.json:
        print(json.dumps(r))
    else:
        print(f"{r['label']}: /health p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms, "
              f"{r['requests']} requests, {errors} errors")


if __name__ == "__main__":
    main()
