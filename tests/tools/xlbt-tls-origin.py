#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""xlbt-tls-origin: an HTTP/1.1 keep-alive origin over TLS for the proxy tests.

    xlbt-tls-origin.py --listen ADDR:PORT --cert CHAIN.pem --key KEY.pem

Every GET (or HEAD) is answered "conn N req M PATH\\n" (N: serial of the
accepted TCP connection from 1, health probes included; M: of the request on
it, from 1) with Content-Length, and the connection is kept; a path ending
in /N (digits) pads that line with dots to make the whole response N bytes.
A path starting with /stray is followed by a second, unrequested response in
a TLS record of its own ("stray\\n"), sent with the end of the first in one
TCP segment: a client that keeps the connection for its next request would
take it for that request's answer.  Requests with a body are not supported
(400, close).  When a connection that answered a request ends, "conn N
closed" goes to stderr.
Ends on SIGTERM or SIGINT.
"""
import argparse
import signal
import socket
import ssl
import sys
import threading

STRAY = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstray\n"
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"


def serve(ctx, s, n):
    buf = b""
    req = 0
    try:
        tls = ctx.wrap_socket(s, server_side=True)
    except (OSError, ssl.SSLError):
        s.close()
        return
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                data = tls.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            fields = {l.split(":", 1)[0].strip().lower() for l in lines[1:] if ":" in l}
            if len(parts) != 3 or "content-length" in fields or "transfer-encoding" in fields:
                tls.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            req += 1
            path = parts[1]
            body = ("conn %d req %d %s\n" % (n, req, path)).encode()
            size = path.rsplit("/", 1)[-1]
            if size.isdigit():
                # /.../N: the whole response is N bytes, the line padded with dots.
                want = int(size) - len(HEAD % 0)
                while want > 0 and len(HEAD % want) + want > int(size):
                    want -= 1
                if want >= len(body):
                    body = body[:-1] + b"." * (want - len(body)) + b"\n"
            resp = HEAD % len(body)
            stray = path.startswith("/stray")
            if stray:
                # Both records in one segment: the client reads them at once.
                tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            tls.sendall(resp if parts[0] == "HEAD" else resp + body)
            if stray:
                tls.sendall(STRAY)
                tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
    except (OSError, ssl.SSLError):
        return
    finally:
        tls.close()
        if req:
            print("conn %d closed" % n, file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    a = ap.parse_args()
    host, _, port = a.listen.rpartition(":")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    n = 0
    while True:
        try:
            s, _ = ls.accept()
        except KeyboardInterrupt:
            return
        n += 1
        threading.Thread(target=serve, args=(ctx, s, n), daemon=True).start()


if __name__ == "__main__":
    main()
