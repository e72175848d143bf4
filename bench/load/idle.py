#!/usr/bin/env python3
"""Idle TLS connections for bench/load/run: opens many connections and holds them.

Opens CONNECTIONS TLS connections to HOST:PORT, spread evenly over SOURCE_COUNT loopback
source addresses starting at SOURCE (127.0.1.1, 127.0.1.2, ...), so that no address holds
more than the server's per-client cap. At most CONCURRENCY handshakes are in flight at once,
so the server's accept queue and its handshake deadline are not what is measured. On each
connection, once the handshake is complete, one HTTP/1.1 request `GET PATH` (keep-alive,
with an Authorization header when --auth is given) is sent and its answer read; then the
connection stays open and idle.

When every connection has been tried, prints one JSON line ("event": "ready") with how many
are open, how many failed and why, the statuses of the first requests, the TLS versions
negotiated and the time it took. Then it holds them until SIGTERM or SIGINT, and prints a
second JSON line ("event": "done") saying how many were still open and how many the server
closed while they were held (a server that closes idle keep-alive connections shows up
here). With --ping-interval N, each connection sends its request again every N seconds
instead of staying silent (for servers whose idle timeout cannot be raised); the default,
0, sends nothing after the first request.

Raises its own open-file limit (RLIMIT_NOFILE) to what CONNECTIONS needs, up to the hard
limit.

Usage: idle.py --port PORT [--host 127.0.0.1] [--connections 10000] [--source 127.0.1.1]
               [--source-count 20] [--path /health] [--auth 'Basic ...'] [--concurrency 100]
               [--ping-interval 0]
"""

import argparse
import asyncio
import collections
import ipaddress
import json
import os
import resource
import signal
import ssl
import sys
import time

from http1 import exchange


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--source", default="127.0.1.1", help="first source address")
    p.add_argument("--source-count", type=int, default=20, help="source addresses, consecutive from --source")
    p.add_argument("--path", default="/health")
    p.add_argument("--auth", default="", help="Authorization header value of the request")
    p.add_argument("--concurrency", type=int, default=100, help="handshakes in flight at once")
    p.add_argument("--ping-interval", type=float, default=0.0,
                   help="seconds between requests on a held connection (0: only the first request)")
    return p.parse_args()


def raise_nofile(needed):
    """Raises the soft open-file limit to `needed` (capped at the hard limit); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Held:
    """The counters both JSON lines report."""

    def __init__(self):
        self.open = 0
        self.failed = collections.Counter()  # reason -> count
        self.statuses = collections.Counter()
        self.tls_versions = collections.Counter()
        self.closed_by_server = 0
        self.first_close_after_s = None  # seconds after "ready" when the server first closed one
        self.ready_at = None
        self.last_error = None


async def connection(args, source, request, ctx, gate, held, stop):
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(args.host, args.port, ssl=ctx, local_addr=(source, 0)), 30)
            status, close = await asyncio.wait_for(exchange(reader, writer, request), 30)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ssl.SSLError, IndexError, ValueError) as e:
            held.failed[type(e).__name__] += 1
            held.last_error = repr(e)
            return
    held.statuses[status] += 1
    held.tls_versions[writer.get_extra_info("ssl_object").version()] += 1
    if close:
        held.failed["closed after the first answer"] += 1
        writer.close()
        return
    held.open += 1
    try:
        if args.ping_interval > 0:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), args.ping_interval)
                    break
                except asyncio.TimeoutError:
                    pass
                status, close = await exchange(reader, writer, request)
                held.statuses[status] += 1
                if close:
                    raise ConnectionResetError("server closed after an answer")
        else:
            # Idle: a read returns only when the server closes the connection (or sends
            # something unasked, which an HTTP/1.1 server does not).
            data = await reader.read(1)
            if not data:
                raise ConnectionResetError("server closed the idle connection")
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError, IndexError,
            ValueError) as e:
        held.open -= 1
        held.closed_by_server += 1
        held.last_error = repr(e)
        if held.ready_at is not None and held.first_close_after_s is None:
            held.first_close_after_s = round(time.monotonic() - held.ready_at, 1)
    except asyncio.CancelledError:
        pass


def emit(event, **fields):
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


async def main():
    args = parse_args()
    nofile = raise_nofile(args.connections + 256)
    if nofile < args.connections + 16:
        raise SystemExit(f"idle.py: open-file limit {nofile} is too low for {args.connections} connections")
    first = ipaddress.ip_address(args.source)
    sources = [str(first + k) for k in range(args.source_count)]
    request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\nAccept: application/json\r\n"
               + (f"Authorization: {args.auth}\r\n" if args.auth else "") + "\r\n").encode()
    # A load generator, like wrk: no certificate verification.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    held, stop, gate = Held(), asyncio.Event(), asyncio.Semaphore(args.concurrency)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    tasks = [asyncio.create_task(connection(args, sources[i % len(sources)], request, ctx, gate, held, stop))
             for i in range(args.connections)]
    # Every connection has been tried once all of them hold the gate no more: wait until the
    # last handshake and first answer are done (or failed).
    while sum(held.failed.values()) + held.open + held.closed_by_server < args.connections and not stop.is_set():
        await asyncio.sleep(0.1)
    held.ready_at = time.monotonic()
    cpu = os.times()
    emit("ready", connections=args.connections, open=held.open, failed=dict(held.failed),
         statuses=dict(held.statuses), tls_versions=dict(held.tls_versions), sources=len(sources),
         seconds_to_open=round(held.ready_at - started, 1), cpu_seconds=round(cpu.user + cpu.system, 1),
         nofile=nofile, last_error=held.last_error)
    await stop.wait()
    emit("done", open=held.open, closed_by_server=held.closed_by_server, first_close_after_s=held.first_close_after_s,
         held_s=round(time.monotonic() - held.ready_at, 1), statuses=dict(held.statuses),
         ping_interval_s=args.ping_interval, last_error=held.last_error)
    # Exiting closes every socket at once; no need to close 10,000 connections politely.
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
