#!/usr/bin/python3
"""End-to-end check of a running herald cluster, for deploy/compose-test.sh.

Standard library only (raw sockets, ssl, hmac): it does not depend on the
project's own client code, so it checks the deployment from the outside.

Steps (each prints a line; any failure exits 1 with the reason):
  1. connect N clients to the shared client port(s): a third over wss,
     the rest over ws; JWT auth (HS256) unless --auth none;
  2. each subscribes to a stream and waits for its ok;
  3. the router's /api/gateways must list exactly --expect-gateways live
     gateways, each with CCU > 0, the CCUs summing to N;
  4. PUBLISH K messages to herald:stream:S, one to herald:all and one to
     herald:user:<uid of client 0> straight into Redis; every client must get
     every stream message (exact bytes, in order, contiguous offsets), the
     broadcast, and only client 0 the direct message;
  5. with --drain-cmd: run it (e.g. `podman stop -t 15 <one gateway>`); the
     clients of exactly one gateway must get close 1001, that gateway's row
     must leave /api/gateways, the others must not be disturbed;
  6. the closed clients reconnect (as a real client would), CCU sums to N
     over the remaining gateways, and a second round of messages reaches all.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import selectors
import socket
import ssl
import struct
import subprocess
import sys
import time

T0 = time.monotonic()


def log(msg):
    print(f"compose-check [{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


class Fail(Exception):
    pass


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_jwt(secret, sub, ttl=3600):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": sub, "exp": int(time.time()) + ttl}).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


class WsClient:
    """A blocking-connect, selector-driven WebSocket client (text frames)."""

    def __init__(self, idx, user, tls):
        self.idx, self.user, self.tls = idx, user, tls
        self.sock = None
        self.buf = b""
        self.msgs = []          # decoded JSON objects received
        self.close_code = None  # from the server's close frame
        self.closed = False     # TCP closed

    def connect(self, host, port, path, ctx):
        s = socket.create_connection((host, port), timeout=10)
        if self.tls:
            s = ctx.wrap_socket(s, server_hostname="localhost")
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n")
        s.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                raise Fail(f"client {self.idx}: connection closed during the handshake")
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 101 " not in status + " ":
            raise Fail(f"client {self.idx}: handshake refused: {status}")
        want = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        if want.encode() not in head:
            raise Fail(f"client {self.idx}: bad Sec-WebSocket-Accept")
        s.setblocking(False)
        self.sock = s
        self.buf = rest
        self.parse()

    def send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            hdr = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        data = hdr + mask + masked
        # Small frames on a socket that is not backed up: a short blocking send.
        self.sock.setblocking(True)
        self.sock.settimeout(5)
        try:
            self.sock.sendall(data)
        finally:
            self.sock.setblocking(False)

    def send_json(self, obj):
        self.send_frame(0x1, json.dumps(obj).encode())

    def on_readable(self):
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                break
            except (ConnectionResetError, ssl.SSLError, OSError):
                chunk = b""
            if not chunk:
                self.closed = True
                break
            self.buf += chunk
            if not (self.tls and self.sock.pending()):
                break
        self.parse()

    def parse(self):
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            if b1 & 0x80:
                raise Fail(f"client {self.idx}: the server sent a masked frame")
            n, off = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    return
                n, off = struct.unpack("!H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    return
                n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
            if len(self.buf) < off + n:
                return
            payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
            op = b0 & 0x0F
            if not b0 & 0x80:
                raise Fail(f"client {self.idx}: unexpected fragmented frame")
            if op == 0x1:
                try:
                    self.msgs.append(json.loads(payload.decode("utf-8")))
                except ValueError:
                    raise Fail(f"client {self.idx}: not JSON: {payload[:80]!r}")
            elif op == 0x8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                try:
                    self.send_frame(0x8, payload[:2])
                except OSError:
                    pass
            elif op == 0x9:
                try:
                    self.send_frame(0xA, payload)
                except OSError:
                    pass
            elif op == 0xA:
                pass
            else:
                raise Fail(f"client {self.idx}: unexpected opcode {op}")

    def close(self):
        if self.sock:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None


class Cluster:
    def __init__(self, a):
        self.a = a
        self.sel = selectors.DefaultSelector()
        self.ctx = ssl.create_default_context(cafile=a.ca) if a.ca else None
        self.secret = None
        if a.auth == "jwt":
            with open(a.jwt_secret_file, "rb") as f:
                s = f.read()
            self.secret = s[:-1] if s.endswith(b"\n") else s

    def path_for(self, c):
        if self.secret:
            return f"/ws?token={make_jwt(self.secret, c.user)}"
        return f"/ws?user={c.user}"

    def connect(self, c):
        port = self.a.wss_port if c.tls else self.a.ws_port
        c.buf, c.msgs, c.close_code, c.closed = b"", [], None, False
        c.connect(self.a.host, port, self.path_for(c), self.ctx)
        self.sel.register(c.sock, selectors.EVENT_READ, c)

    def drop(self, c):
        if c.sock:
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
        c.close()

    def pump(self, timeout):
        for key, _ in self.sel.select(timeout):
            c = key.data
            c.on_readable()
            if c.closed:
                self.drop(c)

    def wait(self, what, cond, limit):
        end = time.monotonic() + limit
        while True:
            if cond():
                return
            left = end - time.monotonic()
            if left <= 0:
                raise Fail(f"timed out after {limit}s waiting for {what}")
            self.pump(min(left, 0.1))

    def gateways(self):
        s = socket.create_connection(("127.0.0.1", self.a.router_admin), timeout=3)
        try:
            s.sendall(b"GET /api/gateways HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
            raise Fail(f"/api/gateways: {head[:60]!r}")
        if b"transfer-encoding: chunked" in head.lower():
            out, rest = b"", body
            while rest:
                size, _, rest = rest.partition(b"\r\n")
                n = int(size.split(b";")[0], 16)
                if n == 0:
                    break
                out, rest = out + rest[:n], rest[n + 2:]
            body = out
        rows = json.loads(body)
        return [r for r in rows if str(r.get("state", "up")).lower() not in
                ("down", "dead", "gone", "lost", "expired")]

    def wait_ccu(self, total, ngw, limit, exclude=()):
        """Until the live gateways (minus exclude) are ngw, each with CCU > 0,
        summing to total. Keeps the clients pumped meanwhile. Returns rows."""
        end = time.monotonic() + limit
        rows = []
        while time.monotonic() < end:
            try:
                rows = [r for r in self.gateways() if r["id"] not in exclude]
            except (OSError, ValueError, KeyError) as e:
                rows = [{"error": str(e)}]
            ok = (len(rows) == ngw and all(isinstance(r.get("ccu"), int) and r["ccu"] > 0 for r in rows)
                  and sum(r["ccu"] for r in rows) == total)
            if ok:
                return rows
            self.pump(0.25)
        raise Fail(f"router /api/gateways never showed {ngw} gateways with CCU summing to {total}: {rows}")

    def publish(self, channel, payload):
        s = socket.create_connection(("127.0.0.1", self.a.redis_port), timeout=5)
        try:
            parts = [b"PUBLISH", channel.encode(), payload]
            cmd = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
            s.sendall(cmd)
            reply = s.recv(128)
        finally:
            s.close()
        if not reply.startswith(b":"):
            raise Fail(f"PUBLISH {channel}: {reply!r}")
        return int(reply[1:].split(b"\r\n")[0])


def subscribe_all(cl, clients, stream, limit):
    for c in clients:
        c.send_json({"id": 1, "subscribe": {"stream": stream}})

    def done():
        for c in clients:
            for m in c.msgs:
                if m.get("id") == 1 and "error" in m:
                    raise Fail(f"client {c.idx}: subscribe refused: {m}")
            if not any(m.get("id") == 1 and "ok" in m for m in c.msgs):
                return False
        return True
    cl.wait(f"{len(clients)} subscribe oks", done, limit)


def pushes(c, stream):
    return [m["push"] for m in c.msgs if "push" in m and m["push"].get("stream") == stream]


def round_trip(cl, clients, stream, tag, k, limit):
    """Publishes k stream messages, one broadcast, one direct message to
    clients[0]'s user; checks every client got what it should."""
    for c in clients:
        c.msgs = []
    sent = [f"{tag}-{i} héllo".encode() for i in range(1, k + 1)]
    for p in sent:
        n = cl.publish(f"{cl.a.prefix}:stream:{stream}", p)
        if n < 1:
            raise Fail(f"PUBLISH reached {n} Redis subscribers: is the router subscribed?")
    cl.publish(f"{cl.a.prefix}:all", f"{tag}-all".encode())
    target = clients[0]
    cl.publish(f"{cl.a.prefix}:user:{target.user}", f"{tag}-direct".encode())
    want = [p.decode() for p in sent]

    def complete():
        for c in clients:
            if len(pushes(c, stream)) < k or not pushes(c, "*"):
                return False
        return bool(pushes(target, f"user:{target.user}"))
    try:
        cl.wait(f"round {tag}: {k} messages at {len(clients)} clients", complete, limit)
    except Fail:
        missing = [c.idx for c in clients if len(pushes(c, stream)) < k or not pushes(c, "*")]
        raise Fail(f"round {tag}: clients {missing[:10]} (of {len(missing)}) are missing messages; "
                   f"e.g. client {missing[0] if missing else '-'} got "
                   f"{(clients[missing[0]].msgs if missing else [])[:6]}")
    cl.pump(0.3)  # anything extra arriving late is counted too
    for c in clients:
        got = pushes(c, stream)
        data = [p.get("data") for p in got]
        if data != want:
            raise Fail(f"round {tag}: client {c.idx} got {data}, want {want}")
        offs = [p.get("offset") for p in got]
        if any(not isinstance(o, int) for o in offs) or offs != list(range(offs[0], offs[0] + k)):
            raise Fail(f"round {tag}: client {c.idx} offsets {offs} are not contiguous")
        alls = [p.get("data") for p in pushes(c, "*")]
        if alls != [f"{tag}-all"]:
            raise Fail(f"round {tag}: client {c.idx} broadcast {alls}")
        direct = [p.get("data") for p in pushes(c, f"user:{target.user}")]
        if c is target and direct != [f"{tag}-direct"]:
            raise Fail(f"round {tag}: client {c.idx} direct {direct}")
        if c is not target and c.user != target.user and direct:
            raise Fail(f"round {tag}: client {c.idx} got someone else's direct message")
    offsets = {pushes(c, stream)[0]["offset"] for c in clients}
    if len(offsets) != 1:
        raise Fail(f"round {tag}: the first offset differs between clients: {sorted(offsets)}")
    log(f"round {tag}: {len(clients)} clients got {k} stream messages (offsets "
        f"{min(offsets)}..{min(offsets) + k - 1}), the broadcast and the direct message")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--ws-port", type=int, required=True)
    ap.add_argument("--wss-port", type=int, default=0)
    ap.add_argument("--ca", help="CA/cert file for wss")
    ap.add_argument("--router-admin", type=int, required=True)
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--prefix", default="herald")
    ap.add_argument("--auth", default="jwt", choices=["jwt", "none"])
    ap.add_argument("--jwt-secret-file")
    ap.add_argument("--clients", type=int, default=30)
    ap.add_argument("--messages", type=int, default=5)
    ap.add_argument("--expect-gateways", type=int, required=True)
    ap.add_argument("--drain-cmd", help="shell command that stops one gateway")
    ap.add_argument("--drain-max-seconds", type=float, default=15)
    a = ap.parse_args()

    cl = Cluster(a)
    stream = "compose-test"
    clients = [WsClient(i, f"u{i}", tls=bool(a.wss_port) and i % 3 == 2) for i in range(a.clients)]
    for c in clients:
        cl.connect(c)
    log(f"{len(clients)} clients connected ({sum(c.tls for c in clients)} over wss)")
    subscribe_all(cl, clients, stream, 15)
    log(f"all {len(clients)} subscribed to {stream}")

    rows = cl.wait_ccu(len(clients), a.expect_gateways, 20)
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise Fail(f"duplicate gateway ids: {ids}")
    log("router /api/gateways: " + ", ".join(f"{r['id']}={r['ccu']}" for r in rows))

    round_trip(cl, clients, stream, "r1", a.messages, 15)

    if not a.drain_cmd:
        return
    before = {r["id"]: r["ccu"] for r in rows}
    log(f"draining one gateway: {a.drain_cmd}")
    t = time.monotonic()
    res = subprocess.run(a.drain_cmd, shell=True, capture_output=True, text=True)
    took = time.monotonic() - t
    if res.returncode != 0:
        raise Fail(f"drain command failed ({res.returncode}): {res.stderr.strip()}")
    log(f"drain command returned after {took:.1f}s")
    if took > a.drain_max_seconds:
        raise Fail(f"the drain took {took:.1f}s (> {a.drain_max_seconds}s): was it killed?")
    # The stopped gateway's sockets are closed by now; read what they sent.
    end = time.monotonic() + 3
    while time.monotonic() < end:
        cl.pump(0.1)
    gone = [c for c in clients if c.close_code is not None or c.closed]
    codes = sorted({c.close_code for c in gone}, key=str)
    if not gone:
        raise Fail("no client was closed by the drain")
    if codes != [1001]:
        raise Fail(f"drained clients got close codes {codes}, want only 1001")
    rows2 = cl.wait_ccu(len(clients) - len(gone), a.expect_gateways - 1, 15)
    left = set(before) - {r["id"] for r in rows2}
    if len(left) != 1:
        raise Fail(f"expected exactly one gateway to leave /api/gateways, got {left} ({rows2})")
    (gid,) = left
    if before[gid] != len(gone):
        raise Fail(f"{gid} had CCU {before[gid]} but {len(gone)} clients were closed")
    log(f"{gid} drained: its {len(gone)} clients got close 1001 and its row left /api/gateways; "
        f"the others kept theirs")

    for c in gone:
        cl.drop(c)
        cl.connect(c)
    subscribe_all(cl, gone, stream, 15)
    rows3 = cl.wait_ccu(len(clients), a.expect_gateways - 1, 15, exclude=(gid,))
    log(f"{len(gone)} clients reconnected: " + ", ".join(f"{r['id']}={r['ccu']}" for r in rows3))
    round_trip(cl, clients, stream, "r2", a.messages, 15)


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        log(f"FAIL: {e}")
        sys.exit(1)
    except (OSError, ValueError, KeyError) as e:
        log(f"FAIL: {type(e).__name__}: {e}")
        sys.exit(1)
    log("all checks passed")
