#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# A steady stream of DNS queries over UDP, for the restart test of
# tests/integration/test-systemd.sh:
#
#   query-stream.py PORT NAME EXPECTED_IPV4 RATE SECONDS
#
# Sends RATE queries a second for SECONDS to 127.0.0.1:PORT, each with its
# own id, and waits for the answers while it keeps sending. A query without
# an answer after 0.5 s is sent again, at most 10 times (as a stub resolver
# would), so a query waiting in the socket during a restart counts as
# answered, and only one that never gets an answer counts as lost. An answer
# must be NOERROR with EXPECTED_IPV4 in it. Prints one JSON line: sent,
# answered, lost, wrong, retried (queries sent more than once) and the
# slowest answer in ms. Exit status 0 when none is lost or wrong.
import json
import select
import socket
import struct
import sys
import time

port, name, expected, rate, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
want = socket.inet_aton(expected)
qname = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"
total = int(rate * seconds)
TIMEOUT, TRIES = 0.5, 10

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", int(port)))
s.setblocking(False)


def query(qid):
    # id, RD, one question, A IN
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)


def send(qid):
    try:
        s.send(query(qid))
    except (BlockingIOError, ConnectionRefusedError):
        # ICMP port unreachable from a previous send: the retry covers it.
        pass


pending = {}                 # id -> (first send, last send, tries)
answered, wrong, lost, retried = set(), 0, 0, set()
slowest = 0.0
start = time.monotonic()
n = 0
while n < total or pending:
    now = time.monotonic()
    while n < total and start + n / rate <= now:
        qid = n + 1
        send(qid)
        pending[qid] = (now, now, 1)
        n += 1
    for qid, (first, last, tries) in list(pending.items()):
        if now - last >= TIMEOUT:
            if tries >= TRIES:
                del pending[qid]
                lost += 1
            else:
                send(qid)
                retried.add(qid)
                pending[qid] = (first, now, tries + 1)
    readable, _, _ = select.select([s], [], [], 0.002)
    while readable:
        try:
            data = s.recv(4096)
        except (BlockingIOError, ConnectionRefusedError):
            break
        if len(data) < 12:
            continue
        qid, flags, _, ancount = struct.unpack(">HHHH", data[:8])
        if qid not in pending:
            continue         # a duplicate answer to a retried query
        first = pending.pop(qid)[0]
        if flags & 0x000F != 0 or ancount < 1 or want not in data[12 + len(qname) + 4:]:
            wrong += 1
        else:
            answered.add(qid)
            slowest = max(slowest, time.monotonic() - first)

print(json.dumps({"sent": total, "answered": len(answered), "lost": lost, "wrong": wrong,
                  "retried": len(retried), "slowest_ms": round(slowest * 1000)}))
sys.exit(0 if lost == 0 and wrong == 0 and len(answered) == total else 1)
