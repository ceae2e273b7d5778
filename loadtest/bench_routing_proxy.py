#!/usr/bin/env python3
"""bench_routing_proxy.py — TCP forwarder that paces bytes to a fixed rate, for
loadtest/bench_routing.sh. The rate is shared by all connections through one
proxy, separately in each direction (a link of RATE bit/s each way).

    bench_routing_proxy.py --target HOST:PORT --mbit 100

Listens on 127.0.0.1 (a free port), prints "PORT <n>" on stdout once
listening, runs until SIGTERM/SIGINT. Prints "COUNT <to-target> <from-target>" (bytes so far) on stderr on SIGUSR1
and at exit.
"""
import argparse, asyncio, signal, sys, time

CHUNK = 16384


class Link:
    def __init__(self, rate_bytes):
        self.rate = rate_bytes
        self.next_t = 0.0
        self.bytes = 0

    async def pace(self, n):
        now = time.monotonic()
        start = max(self.next_t, now)
        self.next_t = start + n / self.rate
        self.bytes += n
        wait = self.next_t - now
        if wait > 0:
            await asyncio.sleep(wait)


async def pump(reader, writer, link):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            await link.pace(len(data))
            writer.write(data)
            await writer.drain()
    except Exception:
        pass
    try:
        writer.write_eof()
    except Exception:
        pass


async def handle(cr, cw, target, up, down):
    try:
        tr, tw = await asyncio.open_connection(*target)
    except Exception:
        cw.close()
        return
    await asyncio.gather(pump(cr, tw, up), pump(tr, cw, down), return_exceptions=True)
    for w in (cw, tw):
        try:
            w.close()
        except Exception:
            pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--mbit", type=float, default=100.0)
    a = ap.parse_args()
    th, tp = a.target.rsplit(":", 1)
    rate = a.mbit * 1e6 / 8
    up, down = Link(rate), Link(rate)
    srv = await asyncio.start_server(
        lambda r, w: handle(r, w, (th, int(tp)), up, down), "127.0.0.1", 0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(
        f"COUNT {up.bytes} {down.bytes}", file=sys.stderr, flush=True))
    print("PORT", srv.sockets[0].getsockname()[1], flush=True)
    async with srv:
        await stop.wait()
    print(f"[proxy {a.target}] to-target {up.bytes} from-target {down.bytes} bytes",
          file=sys.stderr, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
