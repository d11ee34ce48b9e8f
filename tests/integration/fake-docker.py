#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# A fake Docker engine on a unix socket, for what a real dockerd never does:
# replies and events that do not end. Speaks just enough HTTP/1.1 for
# joyrided's client. What it does comes from the file DIR/mode, read on every
# request, so a test switches behaviour without a restart; an open event
# stream ends when the mode changes, so that the client reconnects and meets
# the new mode. Every request line goes to DIR/requests.log.
#
#   good             /_ping with Api-Version, an event stream that stays
#                    quiet, a list with one labelled container (fake.test)
#   ping-endless     /_ping's body never ends
#   ping-length      /_ping announces a 10 GB body (Content-Length)
#   version-endless  no Api-Version header, and /version never ends
#   list-endless     the container list never ends
#   event-endless    the event stream sends one event that never ends
#   events-flood     20,000 events while the list takes 3 s
#   inspect-endless  a start event for a container with joyride.host.ip=
#                    container, whose inspect never ends
#
# Usage: fake-docker.py SOCKET DIR
import json
import os
import socketserver
import sys
import time

SOCKET, DIR = sys.argv[1], sys.argv[2]
CHUNK = b"a" * 65536
CONTAINER_ID = "f" * 64


def mode():
    try:
        with open(os.path.join(DIR, "mode")) as f:
            return f.read().strip()
    except OSError:
        return "good"


def container(ip_label=None):
    labels = {"joyride.host.name": "fake.test"}
    if ip_label:
        labels["joyride.host.ip"] = ip_label
    return {"Id": CONTAINER_ID, "Names": ["/fake"], "State": "running", "Labels": labels,
            "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.9"}}}}


class Handler(socketserver.StreamRequestHandler):
    def send_head(self, status="200 OK", length=None, api_version=True):
        lines = ["HTTP/1.1 " + status, "Content-Type: application/json"]
        if api_version:
            lines.append("Api-Version: 1.43")
        if length is None:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append("Content-Length: %d" % length)
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def reply(self, body, api_version=True):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_head(length=len(data), api_version=api_version)
        self.wfile.write(data)
        self.wfile.flush()

    def endless(self, first=b""):
        self.send_head()
        if first:
            self.chunk(first)
        while True:
            self.chunk(CHUNK)

    def events(self, m):
        self.send_head()
        self.chunk(b"\n")
        if m == "event-endless":
            self.chunk(b'{"Type":"container","Action":"start","Actor":{"ID":"')
            while True:
                self.chunk(CHUNK)
        if m == "events-flood":
            ev = json.dumps({"Type": "container", "Action": "exec_start", "Actor": {"ID": CONTAINER_ID}})
            self.chunk(((ev + "\n") * 20000).encode())
        if m == "inspect-endless":
            ev = {"Type": "container", "Action": "start",
                  "Actor": {"ID": "e" * 64, "Attributes": {"name": "inspected", "joyride.host.name": "inspected.test",
                                                           "joyride.host.ip": "container"}}}
            self.chunk((json.dumps(ev) + "\n").encode())
        # Quiet until the mode changes: then the engine "restarts".
        while mode() == m:
            time.sleep(0.1)
            self.chunk(b"\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def handle(self):
        try:
            while self.one_request():
                pass
        except (BrokenPipeError, ConnectionResetError):
            pass

    def one_request(self):
        line = self.rfile.readline(65536).decode(errors="replace").strip()
        if not line:
            return False
        while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
            pass
        m = mode()
        with open(os.path.join(DIR, "requests.log"), "a") as f:
            f.write("%s %s\n" % (m, line))
        path = line.split(" ")[1] if " " in line else "/"
        if path.startswith("/v1."):
            path = "/" + path.split("/", 2)[2]
        if path == "/_ping":
            if m == "ping-endless":
                self.endless()
            if m == "ping-length":
                self.send_head(length=10 * 1024 ** 3)
                time.sleep(5)
                return False
            self.reply(b"OK", api_version=m != "version-endless")
        elif path == "/version":
            if m == "version-endless":
                self.endless(b'{"ApiVersion":"1.43","Padding":"')
            self.reply({"ApiVersion": "1.43", "Version": "24.0.0-fake"})
        elif path.startswith("/events"):
            self.events(m)
            return False
        elif path.startswith("/containers/json"):
            if m == "list-endless":
                self.endless(b"[")
            if m == "events-flood":
                time.sleep(3)
            self.reply([container()])
        elif path.startswith("/containers/"):
            if m == "inspect-endless":
                self.endless(b'{"Id":"' + b"e" * 64 + b'","Padding":"')
            self.reply(container("container"))
        else:
            self.send_head("404 Not Found", length=29)
            self.wfile.write(b'{"message":"page not found"}\n')
        return True


class Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


if __name__ == "__main__":
    if os.path.exists(SOCKET):
        os.unlink(SOCKET)
    with Server(SOCKET, Handler) as server:
        server.serve_forever()
