#!/usr/bin/env python3
"""A TCP relay in front of PostgreSQL that counts what clients send, by message type.

    python3 bench/pg-count.py LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT COUNTS_FILE

Every frontend message is relayed unchanged; the counts so far are written to
COUNTS_FILE as JSON on SIGUSR1 (and at exit). `Q` is a simple query (sqlx sends
`BEGIN` and `COMMIT` so), `E` the execution of a prepared statement, `S` the sync that
ends each extended-protocol statement (one round trip each), `P` a parse (a statement
prepared), `H` a flush (a prepare that waits for its description). `round trips`
counts the times a client spoke again after the server had answered: each is one wait
for the server, however many messages it carried.
"""
import json
import signal
import socket
import struct
import sys
import threading
from collections import Counter

listen_port, host, port, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
counts = Counter()
lock = threading.Lock()


def dump(*_):
    with lock:
        snapshot = dict(counts)
    with open(out, "w") as f:
        json.dump(snapshot, f)


def pump(src, dst, answered):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            answered.set()
            dst.sendall(data)
    except OSError:
        pass
    finally:
        shut(src, dst)


def shut(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def frontend(client, server, answered):
    try:
        # Untyped messages first: an SSLRequest or GSSENCRequest (answered by one byte,
        # relayed by the other direction), then the startup message.
        while True:
            head = recv_exact(client, 8)
            length, code = struct.unpack("!II", head)
            server.sendall(head + recv_exact(client, length - 8))
            if code not in (80877103, 80877104):
                break
        while True:
            head = recv_exact(client, 5)
            kind = chr(head[0])
            (length,) = struct.unpack("!I", head[1:])
            server.sendall(head + recv_exact(client, length - 4))
            with lock:
                counts[kind] += 1
                if answered.is_set():
                    answered.clear()
                    counts["round trips"] += 1
    except (EOFError, OSError):
        pass
    finally:
        shut(client, server)


def main():
    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGTERM, lambda *_: (dump(), sys.exit(0)))
    listener = socket.create_server(("127.0.0.1", listen_port))
    while True:
        client, _ = listener.accept()
        server = socket.create_connection((host, port))
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        answered = threading.Event()
        threading.Thread(target=frontend, args=(client, server, answered), daemon=True).start()
        threading.Thread(target=pump, args=(server, client, answered), daemon=True).start()


main()
