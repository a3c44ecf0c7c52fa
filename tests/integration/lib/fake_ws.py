# A minimal WebSocket echo server (plain or TLS) used only to self-test the
# th_ws client in test_harness.c against an independent implementation.
import base64, hashlib, socket, socketserver, ssl, struct, sys, threading
port = int(sys.argv[1]); cert = sys.argv[2] if len(sys.argv) > 2 else None; key = sys.argv[3] if len(sys.argv) > 3 else None
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise EOFError
        b += c
    return b
def frame(op, data, fin=True):
    h = bytes([(0x80 if fin else 0) | op])
    n = len(data)
    if n < 126: h += bytes([n])
    elif n < 65536: h += bytes([126]) + struct.pack(">H", n)
    else: h += bytes([127]) + struct.pack(">Q", n)
    return h + data
class H(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        if ctx: s = ctx.wrap_socket(s, server_side=True)
        head = b""
        while b"\r\n\r\n" not in head:
            c = s.recv(4096)
            if not c: return
            head += c
        lines = head.split(b"\r\n")
        path = lines[0].split(b" ")[1]
        if path.startswith(b"/refuse"):
            s.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope"); return
        key = [l.split(b":", 1)[1].strip() for l in lines if l.lower().startswith(b"sec-websocket-key:")][0]
        acc = base64.b64encode(hashlib.sha1(key + GUID).digest())
        s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
        try:
            while True:
                b0, b1 = recvn(s, 2)
                op = b0 & 15; n = b1 & 127
                if n == 126: n = struct.unpack(">H", recvn(s, 2))[0]
                elif n == 127: n = struct.unpack(">Q", recvn(s, 8))[0]
                m = recvn(s, 4) if b1 & 0x80 else b"\0\0\0\0"
                d = bytes(x ^ m[i % 4] for i, x in enumerate(recvn(s, n)))
                if op == 9: s.sendall(frame(10, d))
                elif op == 8: s.sendall(frame(8, d)); return
                elif d == b"frag": s.sendall(frame(1, b"ab", False) + frame(9, b"p") + frame(0, b"cd", False) + frame(0, b"ef"))
                elif d == b"big": s.sendall(frame(2, bytes(range(256)) * 1024))
                elif d == b"close4000": s.sendall(frame(8, struct.pack(">H", 4000) + b"bye"))
                elif d == b"masked": s.sendall(bytes([0x81, 0x81, 1, 2, 3, 4, 5]))
                else: s.sendall(frame(op, d))
        except (EOFError, ConnectionError, ssl.SSLError): pass
ctx = None
if cert:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True; daemon_threads = True
S(("127.0.0.1", port), H).serve_forever()
