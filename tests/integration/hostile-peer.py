#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A hostile cluster peer for the tests: it speaks joyrided's cluster
protocol (docs/cluster-protocol.md) well enough to send what a real node
would never send. It runs inside a network namespace that the calling test
made, and sends only to the address it is given.

Every command builds its messages by hand, so that the test sees the bytes
an attacker controls:

  forge    one SWIM packet carrying a record update for any origin
  members  SWIM packets announcing COUNT members that do not exist
  push     a push-pull carrying COUNT records of one origin
  prefix   CONNS push-pull connections that send a frame length and stall
  sealed   (option --key) seal everything with the cluster key, as a member
           holding the shared key would

Sealing uses libsodium through ctypes (the daemon's own library), so that no
Python package is needed."""

import argparse
import ctypes
import ctypes.util
import hashlib
import os
import socket
import struct
import sys
import time

SEAL_OPEN = 0x00
SEAL_XCHACHA = 0x01

MSG_ALIVE = 4
MSG_USER = 7

TYPE_A = 1


def sodium():
    name = ctypes.util.find_library("sodium") or "libsodium.so.23"
    lib = ctypes.CDLL(name)
    if lib.sodium_init() < 0:
        sys.exit("libsodium failed to initialise")
    return lib


class Sealer:
    """Seals as the daemon does: 0x00 plaintext without a key,
    0x01 nonce ciphertext+tag with XChaCha20-Poly1305 and the associated data
    cluster-name 0x00 "v1" channel."""

    def __init__(self, key_b64=None, cluster="joyride"):
        self.key = None
        self.cluster = cluster.encode()
        if key_b64:
            import base64
            self.key = base64.b64decode(key_b64)
            if len(self.key) != 32:
                sys.exit("--key: not base64 of 32 bytes")
            self.lib = sodium()

    def seal(self, channel, plain):
        if self.key is None:
            return bytes([SEAL_OPEN]) + plain
        ad = self.cluster + b"\x00v1" + channel.encode()
        nonce = os.urandom(24)
        out = ctypes.create_string_buffer(len(plain) + 16)
        outlen = ctypes.c_ulonglong(0)
        rc = self.lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
            out, ctypes.byref(outlen), plain, ctypes.c_ulonglong(len(plain)),
            ad, ctypes.c_ulonglong(len(ad)), None, nonce, self.key)
        if rc != 0:
            sys.exit("sealing failed")
        return bytes([SEAL_XCHACHA]) + nonce + out.raw[:outlen.value]


def s8(b):
    """A string with a one-byte length."""
    if isinstance(b, str):
        b = b.encode()
    return bytes([len(b)]) + b


def addr(ip, port):
    return bytes([4]) + socket.inet_aton(ip) + bytes(12) + struct.pack(">H", port)


def message(mtype, body):
    return bytes([mtype]) + struct.pack(">H", len(body)) + body


def swim_packet(sender, *messages):
    return b"JR" + bytes([1]) + s8(sender) + b"".join(messages)


def alive(incarnation, member_id, ip, port):
    return message(MSG_ALIVE, struct.pack(">I", incarnation) + s8(member_id) + addr(ip, port))


def entry_v1(name, value, version, ttl=60, deleted=False, rtype=TYPE_A):
    """A record entry as the first record format has it."""
    v = value.encode()
    return (bytes([1 if deleted else 0]) + struct.pack(">HIQ", rtype, ttl, version) + s8(name) +
            struct.pack(">H", len(v)) + v)


def update_v1(name, value, version, deleted=False):
    return b"JU" + bytes([1]) + entry_v1(name, value, version, deleted=deleted)


def user(origin, key, data):
    return message(MSG_USER, s8(origin) + s8(key) + struct.pack(">H", len(data)) + data)


def parse_target(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


def cmd_forge(a, sealer):
    host, port = parse_target(a.to)
    msgs = []
    if a.alive_ip:
        msgs.append(alive(a.incarnation, a.sender, a.alive_ip, port))
    data = update_v1(a.name, a.value, a.version, deleted=a.delete)
    key = hashlib.sha256(data).hexdigest()
    msgs.append(user(a.origin, key, data))
    pkt = swim_packet(a.sender, *msgs)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(a.repeat):
        s.sendto(sealer.seal("S", pkt), (host, port))
        time.sleep(0.01)


def cmd_members(a, sealer):
    host, port = parse_target(a.to)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    batch = []
    sent = 0

    def flush():
        nonlocal batch
        if batch:
            s.sendto(sealer.seal("S", swim_packet(a.sender, *batch)), (host, port))
            batch = []
            time.sleep(0.002)   # a flood, but one the receive queue can hold

    for i in range(a.count):
        # Addresses in a range nobody uses inside the test's namespaces.
        ip = "10.231.%d.%d" % (100 + (i // 250) % 100, 1 + i % 250)
        batch.append(alive(1, "fake-%d" % i, ip, port))
        if len(batch) == 12:
            flush()
        sent += 1
    flush()
    print("announced %d members" % sent)


def swim_state(members):
    body = b"".join(alive(inc, mid, ip, port) for (inc, mid, ip, port) in members)
    return b"JS" + struct.pack(">I", len(members)) + body


def snapshot_v1(count, version, prefix):
    entries = []
    for i in range(count):
        entries.append(entry_v1("%s%d.flood.test" % (prefix, i), "10.%d.%d.%d" % (
            200 + i // 65536 % 50, i // 256 % 256, i % 256), version))
    return b"JT" + bytes([1]) + struct.pack(">QI", version, count) + b"".join(entries)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def cmd_push(a, sealer):
    host, port = parse_target(a.to)
    state = swim_state([(1, a.origin, a.self_ip, port)])
    recs = snapshot_v1(a.count, a.version, a.prefix)
    payload = (b"JP" + bytes([1, 1]) + s8(a.origin) + struct.pack(">I", len(state)) + state +
               struct.pack(">I", len(recs)) + recs)
    sealed = sealer.seal("P", payload)
    sock = socket.create_connection((host, port), timeout=10)
    try:
        sock.sendall(struct.pack(">I", len(sealed)) + sealed)
        hdr = recv_exact(sock, 4)
    except OSError as e:
        print("sending %d records in %d bytes: the daemon closed the connection (%s)" % (a.count, len(sealed), e))
        return
    print("sent %d records in %d bytes; reply: %s" % (
        a.count, len(sealed), "none" if hdr is None else "%d bytes" % struct.unpack(">I", hdr)[0]))


def cmd_prefix(a, sealer):
    host, port = parse_target(a.to)
    conns = []
    for _ in range(a.conns):
        try:
            c = socket.create_connection((host, port), timeout=5)
        except OSError as e:
            print("connect failed: %s" % e)
            break
        c.sendall(struct.pack(">I", a.length))
        conns.append(c)
    print("opened %d connections, each announcing %d bytes" % (len(conns), a.length), flush=True)
    # Hold them until the daemon closes them or the time is up.
    end = time.time() + a.hold
    while time.time() < end:
        time.sleep(0.1)
    closed = 0
    for c in conns:
        c.setblocking(False)
        try:
            if c.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        c.close()
    print("closed by the daemon: %d" % closed)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--key", help="cluster key (base64); default: an open cluster")
    sub = p.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("forge")
    f.add_argument("--to", required=True, help="IP:PORT of a node's SWIM port")
    f.add_argument("--sender", default="intruder")
    f.add_argument("--origin", required=True, help="the node the record claims to come from")
    f.add_argument("--name", required=True)
    f.add_argument("--value", default="10.66.6.6")
    f.add_argument("--version", type=int, default=2**64 - 1)
    f.add_argument("--delete", action="store_true")
    f.add_argument("--alive-ip", help="also announce the sender as a member at this address")
    f.add_argument("--incarnation", type=int, default=1)
    f.add_argument("--repeat", type=int, default=1)

    m = sub.add_parser("members")
    m.add_argument("--to", required=True)
    m.add_argument("--sender", default="intruder")
    m.add_argument("--count", type=int, default=5000)

    u = sub.add_parser("push")
    u.add_argument("--to", required=True, help="IP:PORT of a node's push-pull (TCP) port")
    u.add_argument("--origin", default="bulk")
    u.add_argument("--self-ip", required=True, help="the address the origin claims in its member list")
    u.add_argument("--count", type=int, default=100000)
    u.add_argument("--version", type=int, default=1)
    u.add_argument("--prefix", default="r")

    x = sub.add_parser("prefix")
    x.add_argument("--to", required=True)
    x.add_argument("--conns", type=int, default=60)
    x.add_argument("--length", type=int, default=16 * 1024 * 1024)
    x.add_argument("--hold", type=float, default=3.0)

    a = p.parse_args()
    sealer = Sealer(a.key)
    {"forge": cmd_forge, "members": cmd_members, "push": cmd_push, "prefix": cmd_prefix}[a.cmd](a, sealer)


if __name__ == "__main__":
    main()
