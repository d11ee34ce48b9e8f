#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""DNS stall probe: one A query every 2 ms over UDP, replies matched by ID.

    stall-probe.py --port PORT [--server 127.0.0.1] [--seconds 3]
                   [--interval-ms 2] [--names PATTERN --count N]
                   [--lost-after-ms 1000] [--json] [--label TEXT]
                   [--start-file F] [--stop-file F]

Sends queries at a steady rate (never waiting for a reply), for names
PATTERN with {} replaced by a random number below N (default: one fixed name),
and measures each reply's delay from its query: both times are the
kernel's (the query's as it left for the loopback device, the reply's as it
arrived), so a probe kept off the CPU by a busy machine does not count its
own wait. A query without a reply
LOST_AFTER_MS after it was sent counts as lost: a stub resolver would have
retried (or given up) by then. Prints p50, p99 and max of the delays of the
answered queries, and the count of lost ones, as one line (or JSON).
With --start-file it creates that file once the first query is out; with
--stop-file it goes on past --seconds until that file exists, so that a
script can run its load between the two.

Standard library only; run it with the system's python3 beside the load
whose effect on DNS it shows (a large HTTP answer, a hosts reload, a D-Bus
burst). Loopback only: the server must be 127.0.0.0/8 or ::1.
"""
import argparse
import ipaddress
import json
import os.path
import random
import select
import socket
import struct
import sys
import time

from probeutil import percentile


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
# Send times from the kernel too (linux/net_tstamp.h): the moment each query
# left for the loopback device, read back from the socket's error queue with
# a per-socket counter (OPT_ID) that says which send it was.
SO_TIMESTAMPING = 37
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_ID = 1 << 7
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
IP_RECVERR, IPV6_RECVERR = 11, 25
SO_EE_ORIGIN_TIMESTAMPING = 4


def encode_query(qid, name):
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q = b""
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return header + q + b"\x00" + struct.pack("!HH", 1, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--interval-ms", type=float, default=2.0)
    ap.add_argument("--names", default="probe.test", help="name, or pattern with {} for a random number")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--lost-after-ms", type=float, default=1000.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--label", default="")
    ap.add_argument("--start-file", help="create this file once the first query is sent")
    ap.add_argument("--stop-file", help="keep sending until this file exists (and --seconds passed)")
    args = ap.parse_args()

    addr = ipaddress.ip_address(args.server)
    if not addr.is_loopback:
        sys.exit("stall-probe: the server must be a loopback address")
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING,
                        SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE |
                        SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY)
        kernel_send_times = True
    except OSError:
        kernel_send_times = False   # then the time just before send(), as before
    sock.connect((args.server, args.port))
    sock.setblocking(False)

    interval = args.interval_ms / 1000.0
    lost_after = args.lost_after_ms / 1000.0
    pending = {}            # id -> send time (ours, for expiry)
    sent_at = {}            # id -> the kernel's send time
    send_ids = {}           # the kernel's send counter -> id
    kernel_timed = 0
    delays = []
    lost = 0
    sent = 0
    rcode_errors = 0
    qid = random.randrange(65536)
    start = time.perf_counter()
    end = start + args.seconds
    next_send = start
    sent_ok = 0             # the kernel counts only the sends that went out

    last_check = start

    def receive_send_times():
        while kernel_send_times:
            try:
                _, anc, _, _ = sock.recvmsg(0, 256, MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                return
            when = counter = None
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
                    when = sec + nsec / 1e9
                elif (level, kind) in ((socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)) \
                        and len(value) >= 16:
                    _, origin, _, _, _, _, data = struct.unpack("=IBBBBII", value[:16])
                    if origin == SO_EE_ORIGIN_TIMESTAMPING:
                        counter = data
            k = send_ids.pop(counter, None)
            if when is not None and k is not None and k in pending:
                sent_at[k] = when

    def receive():
        nonlocal rcode_errors, kernel_timed
        # Send times first: each was queued before its reply could exist.
        receive_send_times()
        while True:
            try:
                data, anc, _, _ = sock.recvmsg(4096, 64)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:
                continue
            # The kernel's arrival time: right even when this process itself
            # was kept off the CPU for a while (a busy machine).
            arrived = time.time()
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
                    arrived = sec + nsec / 1e9
            if len(data) < 12:
                continue
            rid, flags = struct.unpack("!HH", data[:4])
            t = pending.pop(rid, None)
            if t is None:
                continue        # late (already counted lost) or not ours
            k = sent_at.pop(rid, None)
            if k is not None:
                t = k
                kernel_timed += 1
            delays.append(max(0.0, arrived - t))
            if flags & 0x000F:
                rcode_errors += 1

    while True:
        # Replies first: what has arrived is not lost, however late we look.
        receive()
        now = time.perf_counter()
        if args.stop_file and now >= end and now - last_check >= 0.05:
            last_check = now
            if not os.path.exists(args.stop_file):
                end = now + 0.05
        if now >= end and not pending:
            break
        if now >= end + lost_after + 0.1:
            break
        if now >= next_send and now < end:
            qid = (qid + 1) & 0xFFFF
            name = args.names.replace("{}", str(random.randrange(args.count))) if "{}" in args.names else args.names
            # An ID still pending from 131 s ago would be reused only at 2 ms x 65536: never here.
            pending[qid] = time.time()
            try:
                sock.send(encode_query(qid, name))
                send_ids[sent_ok] = qid
                sent_ok += 1
            except (BlockingIOError, ConnectionRefusedError):
                pass
            sent += 1
            if sent == 1 and args.start_file:
                open(args.start_file, "w").close()
            next_send += interval
            if next_send < now - interval:     # we fell behind: do not burst to catch up
                next_send = now
        # Expire what waited too long.
        wall = time.time()
        for k in [k for k, t in pending.items() if wall - t > lost_after]:
            del pending[k]
            sent_at.pop(k, None)
            lost += 1
        timeout = max(0.0, min(next_send if now < end else end + lost_after, now + 0.05) - time.perf_counter())
        select.select([sock], [], [], timeout)
    receive()
    lost += len(pending)

    delays.sort()
    ms = [d * 1000.0 for d in delays]
    result = {
        "label": args.label,
        "sent": sent,
        "answered": len(delays),
        "lost": lost,
        "rcode_errors": rcode_errors,
        "kernel_send_times": kernel_timed,
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(ms[-1], 3) if ms else float("nan"),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print("%ssent=%d answered=%d lost=%d errors=%d p50=%.3fms p99=%.3fms max=%.3fms" % (
            (args.label + ": ") if args.label else "", sent, len(delays), lost, rcode_errors,
            result["p50_ms"], result["p99_ms"], result["max_ms"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
