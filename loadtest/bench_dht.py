#!/usr/bin/env python3
"""Hint-less cold fetch through a DHT of Kubo 0.22 nodes (issue 13).

A DHT of NODES Kubo nodes (tests/peers/kubo_provider.py --dht, LAN DHT on
loopback) holds a FILE_MIB random file, added at the last node (never a
bootstrap peer). Each run starts, fresh and alternated (the order rotates
every run):

  sluice   a new sluice (new data dir and identity) bootstrapped from node 0,
           [dht] protocol /ipfs/lan/kad/1.0.0, no hints, no routers; once
           /readyz says the DHT is joined, GET /ipfs/<cid>: time to first and
           last byte, body SHA-256 checked
  kubo     a new stock Kubo node bootstrapped from node 0 (it waits 1 s,
           Internal.Bitswap.ProviderSearchDelay, before it looks for
           providers); once it has a DHT peer, Download of the CID through
           its control API: time to last byte (the API gives no first byte)
  kubo0    the same with ProviderSearchDelay = 0

With --accelerated, the runs compare sluice's two DHT modes instead: a
fresh sluice in client mode, and one in accelerated mode fetching once its
first crawl is done; each reports its time to first provider (the
sluice_router_first_provider_seconds of its one lookup) beside the fetch.

Fetchers never provide (so a later run does not find a stopped fetcher).
Output: one TSV line per fetch on stdout (run, who, ttfb_s, total_s, ok) and
a summary with medians and ratios on stderr.

    bench_dht.py --sluice target/release/sluice --python tests/peers/.venv/bin/python
"""

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KUBO = os.path.join(ROOT, "tests", "peers", "kubo_provider.py")


def log(msg):
    sys.stderr.write(f"[bench_dht {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Kubo:
    """One kubo_provider.py --dht process; its ready line parsed."""

    def __init__(self, python, seed, bootstrap=(), files=(), extra=()):
        args = [python, KUBO, "--dht", "--port", "0", "--seed", seed]
        for b in bootstrap:
            args += ["--bootstrap", b]
        args += list(extra)
        args += list(files)
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"kubo node {seed} did not start")
        self.info = json.loads(line)
        self.addr = self.info["multiaddrs"][0]
        self.api = self.info["api"]

    def call(self, path, timeout=60):
        with urllib.request.urlopen(self.api + path, timeout=timeout) as r:
            return r.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait(what, check, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def metric(ctl, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{ctl}/debug/metrics/prometheus", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and 'source="dht"' in line)


def crawled(ctl):
    status = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{ctl}/debug/dht", timeout=2).read())
    return (status.get("crawl") or {}).get("crawls_done", 0) >= 1


def fetch_sluice(binary, bootstrap, cid, want_sha, work, mode="client"):
    port, ctl = free_port(), free_port()
    data = tempfile.mkdtemp(dir=work, prefix="sluice-")
    config = os.path.join(data, "sluice.toml")
    with open(config, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
[metrics]
listen = "127.0.0.1:{ctl}"
[store]
data_dir = "{data}"
[p2p]
listen = []
[hints]
allow_private = true
[dht]
mode = "{mode}"
protocol = "/ipfs/lan/kad/1.0.0"
bootstrap = ["{bootstrap}"]
crawl_quiet_lookups = 8
""")
    proc = subprocess.Popen([binary, "--config", config, "serve"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    try:
        wait("sluice to join the DHT", lambda: b"dht: joined" in urllib.request.urlopen(
            f"http://127.0.0.1:{ctl}/readyz", timeout=2).read(), 60)
        if mode == "accelerated":
            wait("the first crawl", lambda: crawled(ctl), 180)
        start = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ipfs/{cid}", timeout=300) as r:
            first = r.read(1)
            ttfb = time.monotonic() - start
            h = hashlib.sha256(first)
            while True:
                chunk = r.read(1 << 16)
                if not chunk:
                    break
                h.update(chunk)
        total = time.monotonic() - start
        count = metric(ctl, "sluice_router_first_provider_seconds_count")
        first = metric(ctl, "sluice_router_first_provider_seconds_sum") / count if count else None
        return ttfb, total, h.hexdigest() == want_sha, first
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)


def fetch_kubo(python, bootstrap, cid, want_sha, work, seed, delay_zero):
    extra = ["--no-provide"]
    if delay_zero:
        extra += ["--provider-search-delay", "0s"]
    node = Kubo(python, seed, [bootstrap], extra=extra)
    try:
        wait("kubo to connect to a DHT peer",
             lambda: json.loads(node.call("/api/v0/swarm/peers"))["Peers"], 60)
        start = time.monotonic()
        body = node.call(f"/api/v0/cat?arg={cid}&timeout=300", timeout=320)
        total = time.monotonic() - start
        return None, total, hashlib.sha256(body).hexdigest() == want_sha, None
    finally:
        node.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--python", required=True)
    ap.add_argument("--nodes", type=int, default=int(os.environ.get("NODES", "10")))
    ap.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "5")))
    ap.add_argument("--file-mib", type=int, default=int(os.environ.get("FILE_MIB", "16")))
    ap.add_argument("--accelerated", action="store_true", help="compare sluice's client and accelerated modes")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="sluice-bench-dht-")
    nodes = []
    try:
        path = os.path.join(work, "big.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(args.file_mib << 20))
        want = hashlib.sha256(open(path, "rb").read()).hexdigest()
        t0 = time.monotonic()
        nodes.append(Kubo(args.python, "dht-0"))
        for i in range(1, args.nodes - 1):
            nodes.append(Kubo(args.python, f"dht-{i}", [nodes[0].addr]))
        provider = Kubo(args.python, f"dht-{args.nodes - 1}", [nodes[0].addr], files=[f"big={path}"])
        nodes.append(provider)
        cid = provider.info["roots"]["big"]
        log(f"{args.nodes} Kubo DHT nodes up in {time.monotonic() - t0:.1f} s; {args.file_mib} MiB at the last: {cid}")
        time.sleep(5)  # the provider's announce reaches its closest peers

        who = ["client", "accelerated"] if args.accelerated else ["sluice", "kubo", "kubo0"]
        results = {w: [] for w in who}
        print("run\twho\tttfb_s\ttotal_s\tok\tfirst_provider_s")
        for run in range(args.runs):
            order = who[run % len(who):] + who[:run % len(who)]
            for w in order:
                seed = f"fetcher-{run}-{w}-{os.getpid()}"
                if w in ("sluice", "client", "accelerated"):
                    mode = "accelerated" if w == "accelerated" else "client"
                    r = fetch_sluice(args.sluice, nodes[0].addr, cid, want, work, mode)
                else:
                    r = fetch_kubo(args.python, nodes[0].addr, cid, want, work, seed, w == "kubo0")
                results[w].append(r)
                ttfb = "" if r[0] is None else f"{r[0]:.3f}"
                first = "" if r[3] is None else f"{r[3]:.4f}"
                print(f"{run}\t{w}\t{ttfb}\t{r[1]:.3f}\t{r[2]}\t{first}", flush=True)
                if not r[2]:
                    log(f"run {run} {w}: WRONG BODY")
        if args.accelerated:
            first = {w: statistics.median(x[3] for x in results[w]) for w in who}
            log(f"time to first provider, medians of {args.runs}: client {first['client'] * 1000:.1f} ms, "
                f"accelerated {first['accelerated'] * 1000:.1f} ms: "
                f"{first['accelerated'] / first['client']:.2f}x (target <= 0.3x)")
            if not all(r[2] for w in who for r in results[w]):
                raise SystemExit("some bodies were wrong")
            return
        med = {w: statistics.median(x[1] for x in results[w]) for w in who}
        ttfb = statistics.median(x[0] for x in results["sluice"])
        log(f"medians of {args.runs}: sluice {med['sluice']:.3f} s (first byte {ttfb:.3f} s), "
            f"kubo {med['kubo']:.3f} s, kubo with no search delay {med['kubo0']:.3f} s")
        log(f"ratios: sluice/kubo {med['sluice'] / med['kubo']:.2f}x (target <= 0.5x), "
            f"sluice/kubo0 {med['sluice'] / med['kubo0']:.2f}x (target <= 1.0x)")
        if not all(r[2] for w in who for r in results[w]):
            raise SystemExit("some bodies were wrong")
    finally:
        for n in nodes:
            n.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
