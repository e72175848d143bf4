#!/usr/bin/env python3
"""Wrong-password flood for bench/load/run.

Opens CONNECTIONS TLS connections (HTTP/1.1 keep-alive) bound to a source address of its own
(default 127.0.0.2, so the server sees another client address than the benchmark client on
127.0.0.1) and, on each, sends `GET PATH` with HTTP Basic credentials for USER with a wrong
password, the next request as soon as the previous answer has been read (closed loop: as
fast as the server answers). A connection the server closes is reopened.

Runs until SIGTERM or SIGINT, then prints one JSON line: requests answered, seconds, the
count of each status, reconnects, and the CPU seconds this process used (so the cost of the
flooder itself on a shared machine is visible).

Usage: flood.py --port PORT [--host 127.0.0.1] [--source 127.0.0.2] [--connections 8]
                [--path /spaces] [--user alice] [--password WRONG]
"""

import argparse
import asyncio
import base64
import json
import os
import signal
import ssl
import sys
import time

from http1 import exchange


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--source", default="127.0.0.2")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--path", default="/spaces")
    p.add_argument("--user", default="alice")
    p.add_argument("--password", default="definitely-not-the-password-0")
    return p.parse_args()


async def worker(args, request, ctx, stats, stop):
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(
                args.host, args.port, ssl=ctx, local_addr=(args.source, 0)
            )
        except OSError as e:
            stats["connect_errors"] += 1
            stats["last_error"] = repr(e)
            await asyncio.sleep(0.05)
            continue
        stats["connections_opened"] += 1
        try:
            while not stop.is_set():
                status, close = await exchange(reader, writer, request)
                stats["statuses"][status] = stats["statuses"].get(status, 0) + 1
                stats["requests"] += 1
                if close:
                    break
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError, IndexError, ValueError) as e:
            stats["read_errors"] += 1
            stats["last_error"] = repr(e)
        finally:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 1)
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


async def main():
    args = parse_args()
    token = base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
    request = (
        f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
        f"Authorization: Basic {token}\r\nAccept: application/json\r\n\r\n"
    ).encode()
    # A load generator, like wrk: no certificate verification.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    stats = {"requests": 0, "statuses": {}, "connections_opened": 0, "connect_errors": 0, "read_errors": 0}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    tasks = [asyncio.create_task(worker(args, request, ctx, stats, stop)) for _ in range(args.connections)]
    await stop.wait()
    seconds = time.monotonic() - started
    answered = stats["requests"]
    _, pending = await asyncio.wait(tasks, timeout=2)
    for t in pending:
        t.cancel()
    cpu = os.times()
    stats.update(
        seconds=seconds,
        requests=answered,
        requests_per_s=answered / seconds if seconds else 0.0,
        cpu_seconds=cpu.user + cpu.system,
        connections=args.connections,
        source=args.source,
    )
    sys.stdout.write(json.dumps(stats) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
