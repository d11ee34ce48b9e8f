#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A misbehaving upstream DNS server on loopback, for the forwarding test.

    fake-upstream.py MODE PORT LOGFILE

Listens on 127.0.0.1:PORT (UDP), appends one line per query to LOGFILE
("query NAME from PORT", the port the query came from), and answers every A
question in MODE:

  spoof       first three forged replies, then after 50 ms the real one
              (192.0.2.99): one with a wrong ID (6.6.6.6), one from another
              port (6.6.6.7), one for another name (6.6.6.8)
  spoof-only  the three forged replies, never the real one
  blackhole   nothing at all
  slow        the real one (192.0.2.98) after 150 ms (the forwarder asks
              again after 400 ms: this stays one query)
  servfail    SERVFAIL at once

Prints "ready" on stdout once bound. Plain sockets, no dnspython."""

import socket
import struct
import sys
import threading
import time


def question_end(msg):
    p = 12
    while msg[p] != 0:
        p += 1 + msg[p]
    return p + 1 + 4


def reply(query, address, qid=None, name_override=None):
    """A reply to query (its ID unless qid) with one A record."""
    qid = struct.unpack("!H", query[:2])[0] if qid is None else qid
    end = question_end(query)
    question = query[12:end]
    if name_override is not None:
        labels = b"".join(bytes([len(l)]) + l for l in name_override.encode().split(b".")) + b"\0"
        question = labels + query[end - 4:end]
    header = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0)
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(address)
    return header + question + answer


def main():
    mode, port, logfile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    print("ready", flush=True)

    while True:
        query, peer = sock.recvfrom(4096)
        if len(query) < 12:
            continue
        end = question_end(query)
        labels, p = [], 12
        while query[p] != 0:
            labels.append(query[p + 1:p + 1 + query[p]].decode(errors="replace"))
            p += 1 + query[p]
        with open(logfile, "a") as f:
            f.write("query %s from %d\n" % (".".join(labels), peer[1]))

        qid = struct.unpack("!H", query[:2])[0]
        if mode in ("spoof", "spoof-only"):
            sock.sendto(reply(query, "6.6.6.6", qid=qid ^ 0x5a5a), peer)
            other.sendto(reply(query, "6.6.6.7"), peer)
            sock.sendto(reply(query, "6.6.6.8", name_override="evil.example"), peer)
            if mode == "spoof":
                time.sleep(0.05)
                sock.sendto(reply(query, "192.0.2.99"), peer)
        elif mode == "servfail":
            sock.sendto(struct.pack("!HHHHHH", qid, 0x8182, 1, 0, 0, 0) + query[12:end], peer)
        elif mode == "slow":
            r = reply(query, "192.0.2.98")
            threading.Timer(0.15, sock.sendto, (r, peer)).start()
        # blackhole: nothing


if __name__ == "__main__":
    main()
