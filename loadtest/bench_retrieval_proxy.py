#!/usr/bin/env python3
"""bench_retrieval_proxy.py — a TCP forwarder that delays every byte by a fixed
time in each direction (a pipe with latency, not stop-and-wait), for
loadtest/bench_retrieval.sh. The kernel here has no netem; bandwidth is shaped
with `tc tbf` on the namespace's veth, delay here.

    bench_retrieval_proxy.py --listen HOST:PORT --target HOST:PORT --delay-ms 50

Prints "READY" on stdout once listening; runs until SIGTERM.
"""
import argparse, asyncio, signal, sys, time


async def pump(reader, writer, delay):
    q = asyncio.Queue()

    async def deliver():
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
        try:
            writer.write_eof()
        except Exception:
            pass

    task = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            q.put_nowait((time.monotonic() + delay, data))
    except Exception:
        pass
    q.put_nowait(None)
    try:
        await task
    except Exception:
        pass


async def handle(cr, cw, target, delay):
    host, port = target
    try:
        tr, tw = await asyncio.open_connection(host, port)
    except Exception:
        cw.close()
        return
    await asyncio.gather(pump(cr, tw, delay), pump(tr, cw, delay), return_exceptions=True)
    for w in (cw, tw):
        try:
            w.close()
        except Exception:
            pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--delay-ms", type=float, default=50.0)
    a = ap.parse_args()
    lh, lp = a.listen.rsplit(":", 1)
    th, tp = a.target.rsplit(":", 1)
    delay = a.delay_ms / 1000.0
    srv = await asyncio.start_server(lambda r, w: handle(r, w, (th, int(tp)), delay), lh, int(lp))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    print("READY", flush=True)
    async with srv:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
