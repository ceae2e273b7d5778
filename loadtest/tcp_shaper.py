#!/usr/bin/env python3
"""tcp_shaper.py — a TCP forwarder that adds a fixed delay and/or paces
bandwidth, for loadtest/bench_retrieval.py and loadtest/bench_routing.sh.

    tcp_shaper.py --target HOST:PORT [--listen HOST:PORT] [--delay-ms N] [--mbit N]

--target     where every accepted connection is forwarded to.
--listen     address to listen on; default 127.0.0.1:0 (a free port).
--delay-ms   every byte is delayed N ms in each direction: a pipe with
             latency, not stop-and-wait (reading goes on while earlier bytes
             are still in flight). 0 or absent: no delay.
--mbit       bytes are paced to N Mbit/s in each direction, the rate shared by
             all connections through this process (a link of N Mbit/s each
             way), in 16 KiB steps. 0 or absent: no pacing.
With both, bytes are first paced, then delayed (serialisation, then
propagation).

Output, once listening: "READY" then "PORT <n>" (the port bound) on stdout.
On SIGUSR1: "COUNT <to-target> <from-target>" (bytes so far) on stderr.
Runs until SIGTERM/SIGINT, then prints
"[proxy HOST:PORT] to-target N from-target M bytes" on stderr.
(The kernel used by the benchmarks has no netem, hence this.)
"""
import argparse, asyncio, signal, sys, time

PACED_CHUNK = 16384    # pacing granularity
CHUNK = 65536          # read size when not pacing


class Link:
    """One direction of the link: counts bytes, paces them if rate > 0. Shared
    by all connections through the process."""

    def __init__(self, rate_bytes):
        self.rate = rate_bytes
        self.next_t = 0.0
        self.bytes = 0

    async def pace(self, n):
        self.bytes += n
        if self.rate <= 0:
            return
        now = time.monotonic()
        start = max(self.next_t, now)
        self.next_t = start + n / self.rate
        wait = self.next_t - now
        if wait > 0:
            await asyncio.sleep(wait)


def write_eof(writer):
    try:
        writer.write_eof()
    except Exception:
        pass


async def pump(reader, writer, link, delay):
    """Copy reader -> writer: pace through link, then delay by `delay` s.
    Without delay, each chunk is written and drained before the next read
    (back-pressure). With delay, chunks are queued with a due time and a
    second task writes them when due, so reading goes on meanwhile."""
    chunk = PACED_CHUNK if link.rate > 0 else CHUNK
    if delay <= 0:
        try:
            while True:
                data = await reader.read(chunk)
                if not data:
                    break
                await link.pace(len(data))
                writer.write(data)
                await writer.drain()
        except Exception:
            pass
        write_eof(writer)
        return

    q = asyncio.Queue()

    async def deliver():
        try:
            while True:
                item = await q.get()
                if item is None:
                    break
                due, data = item
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
        finally:
            write_eof(writer)

    task = asyncio.create_task(deliver())
    try:
        while not task.done():
            data = await reader.read(chunk)
            if not data:
                break
            await link.pace(len(data))
            q.put_nowait((time.monotonic() + delay, data))
    except Exception:
        pass
    q.put_nowait(None)
    try:
        await task
    except Exception:
        pass


async def handle(cr, cw, target, up, down, delay):
    try:
        tr, tw = await asyncio.open_connection(*target)
    except Exception:
        cw.close()
        return
    try:
        await asyncio.gather(pump(cr, tw, up, delay), pump(tr, cw, down, delay),
                             return_exceptions=True)
    except asyncio.CancelledError:
        pass  # shutting down with the connection open: close it quietly
    for w in (cw, tw):
        try:
            w.close()
        except Exception:
            pass


async def main():
    ap = argparse.ArgumentParser(description="TCP forwarder with delay and/or bandwidth pacing")
    ap.add_argument("--target", required=True, help="HOST:PORT to forward to")
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (default 127.0.0.1:0, a free port)")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="delay each way in ms (0: off)")
    ap.add_argument("--mbit", type=float, default=0.0, help="rate each way in Mbit/s (0: off)")
    a = ap.parse_args()
    lh, lp = a.listen.rsplit(":", 1)
    th, tp = a.target.rsplit(":", 1)
    delay = max(a.delay_ms, 0.0) / 1000.0
    rate = max(a.mbit, 0.0) * 1e6 / 8
    up, down = Link(rate), Link(rate)
    srv = await asyncio.start_server(
        lambda r, w: handle(r, w, (th, int(tp)), up, down, delay), lh, int(lp))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(
        f"COUNT {up.bytes} {down.bytes}", file=sys.stderr, flush=True))
    # bench_retrieval.py expects "READY" as the first line; bench_routing.sh
    # waits for a line starting with "PORT".
    print("READY", flush=True)
    print("PORT", srv.sockets[0].getsockname()[1], flush=True)
    async with srv:
        await stop.wait()
    print(f"[proxy {a.target}] to-target {up.bytes} from-target {down.bytes} bytes",
          file=sys.stderr, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
