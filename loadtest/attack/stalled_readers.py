#!/usr/bin/env python3
"""Stalled readers: clients that request a large body and never read it.

Each of --conns connections (a small SO_RCVBUF, so the kernel absorbs
little) sends one GET for one of the --path targets in turn and then never
calls recv. When the server closes the connection (seen in the socket table,
see common.py) the slot closes its end with a reset and reconnects after
--reopen-delay. Stops by itself after --secs or --max-opens connections.

  stalled_readers.py --port 8080 --conns 40 --secs 600 \
      --path /ipfs/bafy... --path '/ipfs/bafy...?format=car' --status st.json
"""

import asyncio
import socket
import struct
import time

import common

# Server-side TCP states that mean the server has closed its end.
CLOSED_STATES = {"04", "05", "06", "07", "09", "0B"}


async def main(stop, args):
    c = common.Counters("stalled_readers", args)
    max_opens = args.max_opens or 1000 * args.conns
    deadline = time.monotonic() + args.secs
    loop = asyncio.get_running_loop()
    open_conns = {}  # client port -> [opened_at, closed event, checks missing]

    def request(n):
        path = args.path[n % len(args.path)]
        return (f"GET {path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
                "User-Agent: sluice-stalled-reader/1\r\nAccept: */*\r\n\r\n").encode()

    async def slot():
        while not stop.is_set() and time.monotonic() < deadline and c.opened < max_opens:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
            # closing with unread data then sends a reset, as a vanished client would
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (args.host, args.port)), args.connect_timeout)
                await asyncio.wait_for(loop.sock_sendall(sock, request(c.opened)), args.connect_timeout)
            except (OSError, asyncio.TimeoutError):
                c.connect_errors += 1
                sock.close()
                await asyncio.sleep(args.reopen_delay)
                continue
            c.opened += 1
            c.open_now += 1
            port = sock.getsockname()[1]
            closed = asyncio.Event()
            open_conns[port] = [time.monotonic(), closed, 0]
            stopped = asyncio.ensure_future(stop.wait())
            gone = asyncio.ensure_future(closed.wait())
            await asyncio.wait({stopped, gone}, timeout=max(0.0, deadline - time.monotonic()),
                               return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            gone.cancel()
            opened_at = open_conns.pop(port)[0]
            if closed.is_set():
                c.closed_by_server += 1
                c.lifetimes.append(time.monotonic() - opened_at)
            c.open_now -= 1
            sock.close()
            if closed.is_set():
                await asyncio.sleep(args.reopen_delay)

    async def monitor():
        while not stop.is_set() and time.monotonic() < deadline:
            states = common.server_states(args.port)
            for port, entry in list(open_conns.items()):
                st = states.get(port)
                entry[2] = entry[2] + 1 if st is None else 0
                if st in CLOSED_STATES or entry[2] >= 2:
                    entry[1].set()
            now = time.monotonic()
            c.write(now - e[0] for e in open_conns.values())
            try:
                await asyncio.wait_for(stop.wait(), args.check_secs)
            except asyncio.TimeoutError:
                pass

    mon = asyncio.ensure_future(monitor())
    # the ages of connections the server never closed, taken before they end
    ages = []

    async def note_ages():
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, deadline - time.monotonic() - 0.5))
        except asyncio.TimeoutError:
            pass
        now = time.monotonic()
        ages.extend(now - e[0] for e in open_conns.values())

    await asyncio.gather(note_ages(), *(slot() for _ in range(args.conns)))
    stop.set()
    await mon
    c.write(ages)
    print(common.json.dumps(c.snapshot(ages)), flush=True)


if __name__ == "__main__":
    p = common.base_args(__doc__.split("\n")[0])
    p.add_argument("--path", action="append", required=True, help="request target; repeatable, used in turn")
    p.add_argument("--rcvbuf", type=int, default=4096, help="SO_RCVBUF of each connection")
    a = p.parse_args()
    common.run(lambda stop: main(stop, a))
