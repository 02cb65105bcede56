"""A project-owned HTTPS/1.1 server that misbehaves in TLS on every other connection: the peer
for the hostile-TLS tests. Connections 0, 2, 4... (the pre-flight's among them) are served
properly, keep-alive; connections 1, 3, 5... do what MODE says:

  plaintext     answer the ClientHello with a plaintext HTTP response
  truncate      send the first half of the server's handshake flight, then close
  stall         send the first half of the server's handshake flight, then say nothing
  close_notify  complete the handshake, read a request, send half a response, close_notify
  reset         complete the handshake, read a request, send half of the response's TLS
                record, then reset the connection (RST)
  corrupt       complete the handshake, read a request, send the response's record with its
                last byte flipped (it does not decrypt)
  delay         no misbehaviour: every connection is good, each response held 20 ms
  slowread      no misbehaviour: every connection is good, but reads slowly through a small
                receive buffer, and checks every request body (Content-Length) against
                body_pattern(): requests bigger than the client's socket buffer must wait

python tests/servers/tls_hostile_server.py MODE CERT KEY -> prints "listening on PORT";
GET /__stats on a good connection answers "served N hostile M bad B" (responses, hostile
connections, request bodies that were not the pattern).
"""

from __future__ import annotations

import socket
import ssl
import struct
import sys
import threading
import time

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world\n"
HALF = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello"
MODES = ("plaintext", "truncate", "stall", "close_notify", "reset", "corrupt", "delay", "slowread")
DELAY_S = 0.020
SLOW_RCVBUF = 65536
SLOW_PAUSE_S = 0.001  # after every read in mode slowread

lock = threading.Lock()
served = 0
hostile = 0
bad = 0


def body_pattern(n: int) -> bytes:
    """The request body the slowread mode expects: bytes 0..255 over and over, n of them."""
    return (bytes(range(256)) * (n // 256 + 1))[:n]


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def serve_good(conn: socket.socket, ctx: ssl.SSLContext, delay_s: float = 0.0,
               pause_s: float = 0.0) -> None:
    global served, bad

    with ctx.wrap_socket(conn, server_side=True) as tls:
        buf = b""

        def more() -> bool:
            nonlocal buf
            chunk = tls.recv(65536)
            if pause_s:
                time.sleep(pause_s)
            buf += chunk
            return bool(chunk)

        while True:
            while b"\r\n\r\n" not in buf:
                if not more():
                    return
            head, _, buf = buf.partition(b"\r\n\r\n")
            if head.startswith(b"GET /__stats"):
                body = f"served {served} hostile {hostile} bad {bad}".encode()
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                continue
            n = content_length(head)
            while len(buf) < n:
                if not more():
                    return
            body, buf = buf[:n], buf[n:]
            if delay_s:
                time.sleep(delay_s)
            with lock:
                served += 1
                bad += body != body_pattern(n)
            tls.sendall(RESPONSE)


def first_half_of_handshake(conn: socket.socket, ctx: ssl.SSLContext) -> bytes:
    """The server's first handshake flight for the client's ClientHello, cut in half."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_side=True)
    while True:
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            if outgoing.pending:
                break
            chunk = conn.recv(65536)
            if not chunk:
                return b""
            incoming.write(chunk)
            continue
        break
    flight = outgoing.read()
    return flight[: max(1, len(flight) // 2)]


def serve_hostile(conn: socket.socket, ctx: ssl.SSLContext, mode: str) -> None:
    global hostile
    with lock:
        hostile += 1
    if mode == "plaintext":
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        conn.close()
        return
    if mode in ("truncate", "stall"):
        part = first_half_of_handshake(conn, ctx)
        if part:
            conn.sendall(part)
        if mode == "stall":
            # Hold the connection until the client gives up on it.
            conn.settimeout(30)
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass
        conn.close()
        return
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_side=True)
    buf = b""
    done = False
    while True:
        try:
            if not done:
                obj.do_handshake()
                done = True
            buf += obj.read(65536)
            if b"\r\n\r\n" in buf:
                break
        except ssl.SSLWantReadError:
            pass
        if outgoing.pending:
            conn.sendall(outgoing.read())
        chunk = conn.recv(65536)
        if not chunk:
            conn.close()
            return
        incoming.write(chunk)
    if outgoing.pending:
        conn.sendall(outgoing.read())
    if mode == "close_notify":
        obj.write(HALF)
        try:
            obj.unwrap()
        except ssl.SSLWantReadError:
            pass  # close_notify is written; the client's reply is not awaited
        conn.sendall(outgoing.read())
        time.sleep(0.05)
        conn.close()
        return
    if mode == "corrupt":
        obj.write(RESPONSE)
        record = bytearray(outgoing.read())
        record[-1] ^= 0xFF  # the AEAD tag no longer matches
        conn.sendall(bytes(record))
        time.sleep(0.5)
        conn.close()
        return
    # reset: half of the response's record, then RST.
    obj.write(RESPONSE)
    record = outgoing.read()
    conn.sendall(record[: len(record) // 2])
    time.sleep(0.05)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def handle(conn: socket.socket, n: int, ctx: ssl.SSLContext, mode: str) -> None:
    try:
        if mode == "delay":
            serve_good(conn, ctx, DELAY_S)
        elif mode == "slowread":
            serve_good(conn, ctx, pause_s=SLOW_PAUSE_S)
        elif n % 2 == 0:
            serve_good(conn, ctx)
        else:
            serve_hostile(conn, ctx, mode)
    except (OSError, ssl.SSLError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main(mode: str, cert: str, key: str) -> None:
    if mode not in MODES:
        raise SystemExit(f"mode must be one of {', '.join(MODES)}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    srv = socket.socket()
    if mode == "slowread":  # set before listen(): accepted sockets inherit it, window scale too
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    print(f"listening on {srv.getsockname()[1]}", flush=True)
    n = 0
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn, n, ctx, mode), daemon=True).start()
        n += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
