"""Shared parts of the HTTP attackers in loadtest/attack/ (stdlib only).

A slot is one attacker connection kept open as long as the server allows and
reopened after it is closed, up to a total number of opens; the whole tool
stops by itself after --secs. Whether the server still holds a connection is
read from the kernel's socket table (/proc/net/tcp): a client that never
reads cannot see the server's FIN (it waits behind the unread bytes), but on
loopback the server's end of the same connection is in the table too, and
leaves ESTABLISHED the moment the server closes it.

Every --status-secs the tool writes its counters as JSON to --status
(replaced atomically), and at the end prints them on stdout.
"""

import argparse
import asyncio
import json
import os
import signal
import statistics
import time

ESTABLISHED = "01"


def base_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="the gateway's HTTP port")
    p.add_argument("--conns", type=int, required=True, help="connections kept open at once")
    p.add_argument("--secs", type=float, required=True, help="stop after this long")
    p.add_argument("--max-opens", type=int, default=0, help="most connections opened in all (default 1000 per slot; with --reopen-delay 1 the run time bounds it first)")
    p.add_argument("--reopen-delay", type=float, default=1.0, help="seconds before a closed slot reconnects")
    p.add_argument("--connect-timeout", type=float, default=10.0)
    p.add_argument("--check-secs", type=float, default=2.0, help="how often the socket table is read")
    p.add_argument("--status", help="JSON counters, rewritten every --check-secs")
    return p


def server_states(server_port):
    """{client port: TCP state of the server's end} for connections to server_port."""
    states = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, remote, st = parts[1], parts[2], parts[3]
                    if int(local.rsplit(":", 1)[1], 16) == server_port:
                        states[int(remote.rsplit(":", 1)[1], 16)] = st
        except (OSError, StopIteration, IndexError, ValueError):
            continue
    return states


def summary_secs(values):
    if not values:
        return None
    v = sorted(values)
    return {"n": len(v), "min": round(v[0], 1), "median": round(statistics.median(v), 1), "max": round(v[-1], 1)}


class Counters:
    """What the tool did; `closed_by_server` is the figure the soak watches."""

    def __init__(self, kind, args):
        self.kind = kind
        self.args = args
        self.t0 = time.monotonic()
        self.opened = 0
        self.connect_errors = 0
        self.closed_by_server = 0
        self.open_now = 0
        self.lifetimes = []  # seconds a connection lasted before the server closed it
        self.extra = {}

    def snapshot(self, still_open_ages=()):
        return {
            "kind": self.kind,
            "t": round(time.monotonic() - self.t0, 1),
            "slots": self.args.conns,
            "opened": self.opened,
            "open_now": self.open_now,
            "closed_by_server": self.closed_by_server,
            "connect_errors": self.connect_errors,
            "secs_until_server_closed": summary_secs(self.lifetimes),
            "still_open_at_snapshot_secs": summary_secs(list(still_open_ages)),
            **self.extra,
        }

    def write(self, still_open_ages=()):
        if not self.args.status:
            return
        tmp = self.args.status + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.snapshot(still_open_ages), f)
        os.replace(tmp, self.args.status)


def run(main_coro_factory):
    """Runs the tool until it ends by itself, or SIGTERM/SIGINT stops it."""

    async def wrapper():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, stop.set)
        await main_coro_factory(stop)

    asyncio.run(wrapper())
