#!/usr/bin/env python3
"""Idle connections against one listener (scripts/verify, check `idle`).

Usage: idle.py NAME URL CA_FILE PER_CLIENT DEADLINE_SECS [CERT KEY]

URL is a listener of a server started by scripts/verify with PER_CLIENT connections per
client address and DEADLINE_SECS for the first request after the handshake, the HTTP/1.1
keep-alive and the HTTP/2 idle timeouts. NAME (`rest` or `grpc`) names the lines; gRPC
needs a client certificate (CERT, KEY). As an attacker would, from 127.0.0.2: PER_CLIENT
idle TLS connections (HTTP/1.1; HTTP/2 without, and with, the preface), then 10 more; while
a client from 127.0.0.3 opens a new connection every 100 ms and must be answered each time.

Lines: `idle.NAME.per_client` (the 10 extra connections are refused before their
handshake), `idle.NAME.served` (the other client was answered every time), and
`idle.NAME.closed_on_time` (every idle connection is closed between DEADLINE - 0.5 s and
DEADLINE + 3 s after its handshake, the HTTP/2 ones that sent the preface with a GOAWAY).
Exit status 1 when any line fails.
"""

import socket
import ssl
import sys
import threading
import time
import urllib.parse

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
GOAWAY = 0x7
ATTACKER = "127.0.0.2"
LEGITIMATE = "127.0.0.3"

failed = 0


def report(ok, name, detail):
    global failed
    if not ok:
        failed += 1
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)


def context(ca, alpn, identity):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(alpn)
    if identity:
        ctx.load_cert_chain(*identity)
    return ctx


def connect(host, port, ca, alpn, identity, source):
    raw = socket.create_connection((host, port), timeout=10, source_address=(source, 0))
    try:
        return context(ca, alpn, identity).wrap_socket(raw, server_hostname="localhost")
    except Exception:
        raw.close()
        raise


def until_closed(tls, limit):
    """Seconds until the server closes `tls` (None past `limit`) and the HTTP/2 frame types
    it sent."""
    started = time.monotonic()
    data = b""
    tls.settimeout(0.5)
    while time.monotonic() - started < limit:
        try:
            chunk = tls.recv(4096)
        except socket.timeout:
            continue
        except (ssl.SSLError, OSError):
            break
        if not chunk:
            break
        data += chunk
    else:
        return None, []
    after = time.monotonic() - started
    frames, rest = [], data
    while len(rest) >= 9:
        length = int.from_bytes(rest[:3], "big")
        frames.append(rest[3])
        rest = rest[9 + length:]
    return after, frames


def legitimate_client(host, port, ca, identity, grpc, stop, outcome):
    """A new connection every 100 ms: a GET /health (REST), or the HTTP/2 preface answered
    by the server's SETTINGS (gRPC)."""
    while not stop.is_set():
        try:
            tls = connect(host, port, ca, ["h2"] if grpc else ["http/1.1"], identity, LEGITIMATE)
            with tls:
                if grpc:
                    tls.sendall(PREFACE)
                    ok = tls.recv(9)[3:4] == b"\x04"
                else:
                    tls.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    ok = tls.recv(64).startswith(b"HTTP/1.1 200")
            outcome["served" if ok else "failed"] += 1
        except Exception as e:
            outcome["failed"] += 1
            outcome.setdefault("why", repr(e))
        time.sleep(0.1)


def main():
    name, url, ca, per_client, deadline = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    identity = (sys.argv[6], sys.argv[7]) if len(sys.argv) > 7 else None
    grpc = name == "grpc"
    target = urllib.parse.urlsplit(url)
    host, port = target.hostname, target.port
    stop, outcome = threading.Event(), {"served": 0, "failed": 0}
    client = threading.Thread(target=legitimate_client, args=(host, port, ca, identity, grpc, stop, outcome))
    client.start()
    try:
        kinds = (["h2", "h2-preface"] if grpc else ["http/1.1", "h2", "h2-preface"])
        held = []
        for i in range(per_client):
            kind = kinds[i % len(kinds)]
            tls = connect(host, port, ca, ["h2" if kind.startswith("h2") else "http/1.1"], identity, ATTACKER)
            if kind == "h2-preface":
                tls.sendall(PREFACE)
            held.append((kind, tls))
        extra_refused = 0
        for _ in range(10):
            try:
                connect(host, port, ca, ["h2"], identity, ATTACKER).close()
            except Exception:
                extra_refused += 1
        report(extra_refused == 10, f"idle.{name}.per_client",
               f"{per_client} idle connections held from {ATTACKER}; {extra_refused} of 10 more refused")
        results = [None] * len(held)

        def watch(i, tls):
            results[i] = until_closed(tls, deadline + 15)

        watchers = [threading.Thread(target=watch, args=(i, tls)) for i, (_, tls) in enumerate(held)]
        for w in watchers:
            w.start()
        for w in watchers:
            w.join()
        late = []
        for (kind, _), (after, frames) in zip(held, results):
            if after is None or not (deadline - 0.5 <= after <= deadline + 3):
                late.append(f"{kind} closed after {after}")
            elif kind == "h2-preface" and GOAWAY not in frames:
                late.append(f"{kind} closed without GOAWAY (frames {frames})")
        report(not late, f"idle.{name}.closed_on_time",
               f"{len(held)} idle connections closed {deadline:g} s after their handshake (the HTTP/2 ones that spoke with GOAWAY)"
               if not late else "; ".join(late))
    finally:
        stop.set()
        client.join()
    report(outcome["failed"] == 0 and outcome["served"] > 0, f"idle.{name}.served",
           f"a client from {LEGITIMATE} was answered {outcome['served']} times, refused {outcome['failed']}"
           + (f" ({outcome['why']})" if "why" in outcome else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
