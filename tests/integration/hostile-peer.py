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
  stall    the same from a member after its signed hello: a large frame
           announced, a little of it sent
  member   join as a member of its own (answering probes) and push COUNT
           records: signed with a key of its own (protocol 2), or unsigned
           as an older joyrided does (--protocol 1)
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

MSG_PING = 1
MSG_ACK = 2
MSG_ALIVE = 4
MSG_DEAD = 6
MSG_USER = 7

TYPE_A = 1


_SODIUM = None


def sodium():
    global _SODIUM
    if _SODIUM is not None:
        return _SODIUM
    name = ctypes.util.find_library("sodium") or "libsodium.so.23"
    lib = ctypes.CDLL(name)
    if lib.sodium_init() < 0:
        sys.exit("libsodium failed to initialise")
    _SODIUM = lib
    return lib


class Signer:
    """An Ed25519 key pair from a 32-byte seed, signing as a node does:
    the BLAKE2b-256 of context 0 origin 0 data."""

    def __init__(self, seed):
        self.lib = sodium()
        self.pk = ctypes.create_string_buffer(32)
        self.sk = ctypes.create_string_buffer(64)
        if self.lib.crypto_sign_seed_keypair(self.pk, self.sk, seed) != 0:
            sys.exit("crypto_sign_seed_keypair failed")
        self.public = self.pk.raw

    def digest(self, context, origin, data):
        out = ctypes.create_string_buffer(32)
        msg = context.encode() + b"\x00" + origin.encode() + b"\x00" + data
        self.lib.crypto_generichash(out, ctypes.c_size_t(32), msg, ctypes.c_ulonglong(len(msg)), None,
                                    ctypes.c_size_t(0))
        return out.raw

    def sign(self, context, origin, data):
        d = self.digest(context, origin, data)
        sig = ctypes.create_string_buffer(64)
        self.lib.crypto_sign_detached(sig, None, d, ctypes.c_ulonglong(len(d)), self.sk)
        return sig.raw


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


def entry_v2(name, value, version, source, ttl=60, deleted=False, rtype=TYPE_A):
    return entry_v1(name, value, version, ttl, deleted, rtype) + s8(source)


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


def flood_address(i):
    return "10.%d.%d.%d" % (200 + i // 65536 % 50, i // 256 % 256, i % 256)


def snapshot_v1(count, version, prefix):
    entries = []
    for i in range(count):
        entries.append(entry_v1("%s%d.flood.test" % (prefix, i), flood_address(i), version))
    return b"JT" + bytes([1]) + struct.pack(">QI", version, count) + b"".join(entries)


def snapshot_v2(signer, origin, count, version, prefix):
    entries = []
    for i in range(count):
        entries.append(entry_v2("%s%d.flood.test" % (prefix, i), flood_address(i), version, "hosts:/flood"))
    body = b"JT" + bytes([2]) + struct.pack(">QI", version, count) + b"".join(entries)
    return body + signer.sign("joyride snapshot v2", origin, body)


def parse_snapshot_names(snap):
    """The names in a snapshot (either format), for checking a node's reply."""
    fmt = snap[2]
    count = struct.unpack(">I", snap[11:15])[0]
    pos, names = 15, []
    for _ in range(count):
        pos += 1 + 2 + 4 + 8
        nl = snap[pos]
        names.append(snap[pos + 1:pos + 1 + nl].decode())
        pos += 1 + nl
        vl = struct.unpack(">H", snap[pos:pos + 2])[0]
        pos += 2 + vl
        if fmt == 2:
            pos += 1 + snap[pos]
    return names


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


def read_frame(sock):
    hdr = recv_exact(sock, 4)
    if hdr is None:
        return None
    return recv_exact(sock, struct.unpack(">I", hdr)[0])


def unseal(sealer, channel, data):
    if sealer.key is None:
        return data[1:] if data[:1] == b"\x00" else None
    if data[:1] != b"\x01":
        return None
    ad = sealer.cluster + b"\x00v1" + channel.encode()
    nonce, ct = data[1:25], data[25:]
    out = ctypes.create_string_buffer(len(ct))
    outlen = ctypes.c_ulonglong(0)
    if sealer.lib.crypto_aead_xchacha20poly1305_ietf_decrypt(out, ctypes.byref(outlen), None, ct,
                                                             ctypes.c_ulonglong(len(ct)), ad,
                                                             ctypes.c_ulonglong(len(ad)), nonce, sealer.key) != 0:
        return None
    return out.raw[:outlen.value]


def cmd_member(a, sealer):
    """A member of its own: joins, answers probes, pushes its records."""
    import threading
    host, port = parse_target(a.to)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((a.ip, port))
    udp.settimeout(0.2)
    signer = Signer(bytes.fromhex(a.seed)) if a.protocol == 2 else None
    stop = 0

    def answer_probes():
        while time.time() < stop:
            try:
                data, src = udp.recvfrom(2048)
            except socket.timeout:
                continue
            plain = unseal(sealer, "S", data)
            if not plain or plain[:3] != b"JR\x01":
                continue
            pos = 3 + 1 + plain[3]
            while pos + 3 <= len(plain):
                mtype, mlen = plain[pos], struct.unpack(">H", plain[pos + 1:pos + 3])[0]
                body = plain[pos + 3:pos + 3 + mlen]
                pos += 3 + mlen
                if mtype == MSG_PING and len(body) >= 5 and body[5:5 + body[4]] == a.id.encode():
                    ack = message(MSG_ACK, body[:4])
                    udp.sendto(sealer.seal("S", swim_packet(a.id, ack)), src)

    state = swim_state([(1, a.id, a.ip, port)])
    if a.protocol == 2:
        recs = snapshot_v2(signer, a.id, a.count, a.version, a.prefix)
        hello_body = b"JP\x02\x03" + s8(a.id) + signer.public
        hello = hello_body + signer.sign("joyride hello v2", a.id, signer.public + sealer.cluster)
        push = b"JP\x02\x01" + struct.pack(">I", len(state)) + state + struct.pack(">I", len(recs)) + recs
        frames = [hello, push]
    else:
        recs = snapshot_v1(a.count, a.version, a.prefix)
        frames = [b"JP\x01\x01" + s8(a.id) + struct.pack(">I", len(state)) + state +
                  struct.pack(">I", len(recs)) + recs]
    out = b""
    for f in frames:
        sealed = sealer.seal("P", f)
        out += struct.pack(">I", len(sealed)) + sealed

    # Join (once the work above is done: a node busy for seconds would not
    # answer its probes): our ALIVE, from the port we answer on.
    udp.sendto(sealer.seal("S", swim_packet(a.id, alive(1, a.id, a.ip, port))), (host, port))
    stop = time.time() + a.stay
    t = threading.Thread(target=answer_probes, daemon=True)
    t.start()
    time.sleep(0.5)     # our ALIVE first, as a joining node's is
    sock = socket.create_connection((host, port), timeout=20, source_address=(a.ip, 0))
    try:
        sock.sendall(out)
        replies = []
        for _ in range(2 if a.protocol == 2 else 1):
            f = read_frame(sock)
            if f is None:
                break
            replies.append(unseal(sealer, "P", f))
    except OSError as e:
        replies = []
        print("push-pull failed: %s" % e)
    names = []
    if replies and replies[-1] and replies[-1][:2] == b"JP":
        r = replies[-1]
        pos = 4 + (1 + r[4] if r[2] == 1 else 0)
        sl = struct.unpack(">I", r[pos:pos + 4])[0]
        pos += 4 + sl
        rl = struct.unpack(">I", r[pos:pos + 4])[0]
        names = parse_snapshot_names(r[pos + 4:pos + 4 + rl])
    print("pushed %d records (protocol %d, %d bytes); reply: protocol %s, %d records: %s" % (
        a.count, a.protocol, len(out), replies[-1][2] if replies and replies[-1] else "none", len(names),
        " ".join(sorted(names)[:10])), flush=True)

    if a.update:
        # One update of our own, gossiped straight from us.
        name, value = a.update.split("=")
        if a.protocol == 2:
            body = b"JU\x02" + entry_v2(name, value, a.version + 1, "dbus")
            data = body + signer.sign("joyride update v2", a.id, body)
        else:
            data = b"JU\x01" + entry_v1(name, value, a.version + 1)
        pkt = swim_packet(a.id, user(a.id, hashlib.sha256(data).hexdigest(), data))
        udp.sendto(sealer.seal("S", pkt), (host, port))
    t.join()


def report_closed(conns):
    """Closes conns, first printing how many the daemon had closed (read to
    their end: an end of file or an error, not just nothing to read yet)."""
    closed = 0
    for c in conns:
        c.setblocking(False)
        try:
            while True:
                if c.recv(65536) == b"":
                    closed += 1
                    break
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        c.close()
    print("closed by the daemon: %d" % closed)


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
    report_closed(conns)


def cmd_stall(a, sealer):
    """Connections from a member that said who it is (a signed hello from its
    address), each announcing a frame of --length bytes and sending little
    of it."""
    host, port = parse_target(a.to)
    signer = Signer(bytes.fromhex(a.seed))
    hello = b"JP\x02\x03" + s8(a.id) + signer.public
    hello += signer.sign("joyride hello v2", a.id, signer.public + sealer.cluster)
    sealed = sealer.seal("P", hello)
    conns = []
    for _ in range(a.conns):
        try:
            c = socket.create_connection((host, port), timeout=5, source_address=(a.ip, 0))
            c.sendall(struct.pack(">I", len(sealed)) + sealed + struct.pack(">I", a.length) + bytes(a.send))
        except OSError as e:
            print("connect failed: %s" % e)
            break
        conns.append(c)
    print("opened %d connections as %s, each announcing %d bytes after its hello and sending %d" % (
        len(conns), a.id, a.length, a.send), flush=True)
    time.sleep(a.hold)
    report_closed(conns)


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

    b = sub.add_parser("member")
    b.add_argument("--to", required=True, help="IP:PORT of a node")
    b.add_argument("--id", required=True)
    b.add_argument("--ip", required=True, help="our address (the SWIM port is bound on it)")
    b.add_argument("--seed", default="11" * 32, help="hex of the 32-byte seed of our signing key")
    b.add_argument("--protocol", type=int, choices=(1, 2), default=2)
    b.add_argument("--count", type=int, default=10)
    b.add_argument("--version", type=int, default=(1 << 32) + 1)
    b.add_argument("--prefix", default="m")
    b.add_argument("--update", help="NAME=ADDRESS: also gossip one update of our own")
    b.add_argument("--stay", type=float, default=5.0, help="seconds to stay (answering probes)")

    x = sub.add_parser("prefix")
    x.add_argument("--to", required=True)
    x.add_argument("--conns", type=int, default=60)
    x.add_argument("--length", type=int, default=16 * 1024 * 1024)
    x.add_argument("--hold", type=float, default=3.0)

    y = sub.add_parser("stall")
    y.add_argument("--to", required=True, help="IP:PORT of a node's push-pull (TCP) port")
    y.add_argument("--id", required=True, help="a member's id (alive at --ip)")
    y.add_argument("--ip", required=True, help="the member's address, which the connections come from")
    y.add_argument("--seed", default="11" * 32, help="hex of the 32-byte seed of the member's signing key")
    y.add_argument("--conns", type=int, default=60)
    y.add_argument("--length", type=int, default=16 * 1024 * 1024)
    y.add_argument("--send", type=int, default=1024, help="bytes of the frame sent")
    y.add_argument("--hold", type=float, default=3.0)

    a = p.parse_args()
    sealer = Sealer(a.key)
    {"forge": cmd_forge, "members": cmd_members, "push": cmd_push, "prefix": cmd_prefix,
     "member": cmd_member, "stall": cmd_stall}[a.cmd](a, sealer)


if __name__ == "__main__":
    main()
