#!/usr/bin/env python3
"""bench_retrieval.py — the driver behind loadtest/bench_retrieval.sh (issue 3).

Starts Helia providers (tests/peers/helia-provider.mjs), fresh sluice processes
(one per measured fetch: cold cache), Helia's and Kubo's own Bitswap clients,
and measures the four retrieval scenarios. Run it through bench_retrieval.sh,
which sets up and tears down the network namespaces of the slow providers.

Environment (set by bench_retrieval.sh): SLUICE_BIN, PEERS_NODE, PEERS_PY,
PEERS_DIR, WORK, OUT_PREFIX, RUNS, LAYOUT, SLOW_NS (space-separated
"ns:host_ip:ns_ip" triples), SCENARIOS (e.g. "1 2 3 4").
"""
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

SLUICE_BIN = os.environ["SLUICE_BIN"]
NODE = os.environ["PEERS_NODE"]
PY = os.environ["PEERS_PY"]
PEERS = os.environ["PEERS_DIR"]
K6 = os.environ["K6"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.environ["WORK"]
OUT = os.environ["OUT_PREFIX"]
RUNS = int(os.environ.get("RUNS", "3"))
LAYOUT = os.environ.get("LAYOUT", "modern")
BIG_MIB = int(os.environ.get("BIG_MIB", "64"))
SMALL_N = int(os.environ.get("SMALL_N", "500"))
SMALL_CONC = int(os.environ.get("SMALL_CONC", "32"))
SCENARIOS = os.environ.get("SCENARIOS", "1 2 3 4").split()
SLOW_NS = [tuple(x.split(":")) for x in os.environ.get("SLOW_NS", "").split()]
EQUAL_NS = [tuple(x.split(":")) for x in os.environ.get("EQUAL_NS", "").split()]
EQUAL_RATE = os.environ.get("EQUAL_RATE", "")
HERE = os.path.dirname(os.path.abspath(__file__))
FETCH_TIMEOUT = float(os.environ.get("FETCH_TIMEOUT", "240"))
# Scenarios 4 and 6 also run this build in the same runs, alternated (e.g. a release of main).
SLUICE_BIN_BEFORE = os.environ.get("SLUICE_BIN_BEFORE", "")
FAIL_NS = [tuple(x.split(":")) for x in os.environ.get("FAIL_NS", "").split()]
BIG_SHA = None  # SHA-256 of the big file, once made

procs = []
results = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": RUNS,
           "layout": LAYOUT, "scenarios": {}, "loadavg": {}}
logf = open(OUT + ".log", "a")


def log(msg):
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, file=sys.stderr, flush=True)
    logf.write(line + "\n")
    logf.flush()


def loadavg(tag):
    la = open("/proc/loadavg").read().split()[:3]
    results["loadavg"][tag] = " ".join(la)
    log(f"load average ({tag}): {' '.join(la)}")


def cleanup(*_):
    for p in procs:
        if p.poll() is None:
            try:
                p.terminate()
            except Exception:
                pass
    deadline = time.time() + 5
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except Exception:
            try:
                p.kill()
            except Exception:
                pass


def on_signal(sig, _):
    cleanup()
    sys.exit(128 + sig)


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)


def read_json_line(p, timeout, what):
    box = {}

    def rd():
        box["line"] = p.stdout.readline()

    t = threading.Thread(target=rd, daemon=True)
    t.start()
    t.join(timeout)
    line = box.get("line")
    if not line:
        raise RuntimeError(f"{what}: no JSON line within {timeout}s (rc={p.poll()})")
    return json.loads(line)


def stop(p):
    try:
        if p.stdin:
            p.stdin.close()
    except Exception:
        pass
    try:
        p.terminate()
        p.wait(timeout=10)
    except Exception:
        p.kill()


# ---------------------------------------------------------------- providers

def start_helia(seed, files, netns=None, layout=LAYOUT):
    cmd = [NODE, f"{PEERS}/helia-provider.mjs", "--port", "0", "--seed", seed, "--layout", layout]
    cmd += [f"{k}={v}" for k, v in files.items()]
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logf, text=True)
    procs.append(p)
    info = read_json_line(p, 120, f"helia {seed}")
    ma = info["multiaddrs"][0]
    info["port"] = int(ma.split("/tcp/")[1].split("/")[0])
    info["proc"] = p
    info["netns"] = netns
    log(f"helia {seed} {'in ' + netns if netns else 'on loopback'}: {ma}")
    return info


def conn_bytes(port, netns=None):
    """{(local, peer): bytes_acked} for the established connections of the provider listening on `port`."""
    cmd = ["ss", "-tinH", "state", "established", f"( sport = :{port} )"]
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    res, key = {}, None
    for line in out.splitlines():
        if line and not line[0].isspace():
            f = line.split()
            key = (f[-2], f[-1]) if len(f) >= 2 else None
        m = re.search(r"bytes_acked:(\d+)", line)
        if m and key:
            res[key] = int(m.group(1))
    return res


def wchar(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ByteSampler:
    """Bytes each provider process wrote (write/writev syscalls: its sockets,
    plus its few stderr log lines) while a fetch ran, from /proc/PID/io, and the
    number of distinct TCP connections seen on its port (ss, sampled every 250 ms)."""

    def __init__(self, counters):
        self.counters = counters
        self.base = {name: wchar(pid) for name, pid, _, _ in counters}
        self.cpu_base = {name: cpu_seconds(pid) for name, pid, _, _ in counters}
        self.cpu = {}
        self.seen = {name: set() for name, _, _, _ in counters}
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        if counters:
            self.t.start()

    def sample(self):
        for name, _, port, ns in self.counters:
            self.seen[name].update(conn_bytes(port, ns).keys())

    def run(self):
        while not self.stop_ev.wait(0.25):
            self.sample()

    def finish(self):
        if self.counters:
            self.stop_ev.set()
            self.t.join()
            self.sample()
        sent = {name: wchar(pid) - self.base[name] for name, pid, _, _ in self.counters}
        conns = {name: len(self.seen[name]) for name, _, _, _ in self.counters}
        # CPU each provider spent while the fetch ran: the providers share
        # the machine's cores with the fetch, so work pushed onto idle ones
        # slows the busy one.
        self.cpu = {name: round(cpu_seconds(pid) - self.cpu_base[name], 2)
                    for name, pid, _, _ in self.counters}
        return sent, conns


# ---------------------------------------------------------------- sluice

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Sluice:
    def __init__(self, session_mode="on", peers=(), binary=None):
        """peers: multiaddrs sluice keeps connected (config `p2p.peers`)."""
        self.port = free_port()
        self.control_port = free_port()
        self.dir = os.path.join(WORK, f"sluice-data-{self.port}-{time.time_ns()}")
        os.makedirs(self.dir)
        env = dict(os.environ, SLUICE_HINTS_ALLOW_PRIVATE="true", SLUICE_P2P_LISTEN="[]",
                   SLUICE_ROUTING_ENDPOINTS="[]", RUST_LOG=os.environ.get("SLUICE_RUST_LOG", "warn"),
                   SLUICE_RETRIEVAL_SESSION_MODE=session_mode,
                   SLUICE_P2P_PEERS=json.dumps(list(peers)),
                   SLUICE_METRICS_LISTEN=f"127.0.0.1:{self.control_port}")
        self.p = subprocess.Popen([binary or SLUICE_BIN, "serve", "--listen", f"127.0.0.1:{self.port}",
                                   "--data-dir", self.dir], env=env, stdin=subprocess.DEVNULL,
                                  stdout=logf, stderr=logf)
        procs.append(self.p)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.p.poll() is not None:
                    raise RuntimeError("sluice exited at start")
                time.sleep(0.05)
        raise RuntimeError("sluice did not listen within 30 s")

    def wait_connected(self, n, timeout=30):
        """Waits until sluice reports n libp2p peers connected."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=2)
                c.request("GET", "/debug/metrics/prometheus")
                text = c.getresponse().read().decode()
                c.close()
                m = re.search(r"^sluice_peers_connected (\d+)", text, re.M)
                if m and int(m.group(1)) >= n:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"sluice did not connect to {n} peers within {timeout} s")

    def fetch(self, cid, hints, conn=None, on_bytes=None):
        """GET /ipfs/cid with the hints; returns (seconds, bytes, status, server_timing).
        The body's SHA-256 is left in self.sha256; on_bytes(n) is called after each read."""
        own = conn is None
        if own:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=FETCH_TIMEOUT)
        t0 = time.monotonic()
        conn.request("GET", f"/ipfs/{cid}", headers={"X-Ipfs-Provider": ", ".join(hints)})
        r = conn.getresponse()
        n = 0
        h = hashlib.sha256()
        while True:
            b = r.read(1 << 20)
            if not b:
                break
            n += len(b)
            h.update(b)
            if on_bytes:
                on_bytes(n)
        dt = time.monotonic() - t0
        self.sha256 = h.hexdigest()
        st = r.getheader("Server-Timing", "")
        if own:
            conn.close()
        return dt, n, r.status, st

    def close(self):
        stop(self.p)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- third-party clients

def helia_client(mas, cids, concurrency):
    cf = os.path.join(WORK, f"cids-{time.time_ns()}.txt")
    with open(cf, "w") as f:
        f.write("\n".join(cids) + "\n")
    cmd = [NODE, os.path.join(WORK, "nodeclient", "bench_retrieval_helia_client.mjs"),
           "--concurrency", str(concurrency), "--cids", cf]
    for ma in mas:
        cmd += ["--connect", ma]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=logf, text=True)
    procs.append(p)
    info = read_json_line(p, FETCH_TIMEOUT + 60, "helia client")
    p.wait(timeout=15)
    return info


def kubo_client(ma, cid):
    dest = os.path.join("/dev/shm", f"sluice-bench-kubo-{time.time_ns()}")
    cmd = [PY, f"{PEERS}/kubo_provider.py", "--port", "0", "--seed", f"kubo-client-{time.time_ns()}",
           "--connect", ma, "--fetch", f"{cid}={dest}"]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logf, text=True)
    procs.append(p)
    try:
        info = read_json_line(p, FETCH_TIMEOUT + 60, "kubo client")
    finally:
        stop(p)
    f = info["fetched"][cid]
    size = os.path.getsize(dest) if os.path.exists(dest) else -1
    try:
        os.unlink(dest)
    except OSError:
        pass
    return f["ms"] / 1000.0, f.get("rc"), size


# ---------------------------------------------------------------- helpers

def med(xs):
    return statistics.median(xs) if xs else float("nan")


def mkfile(path, size, seed):
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(rnd.randbytes(n))
            left -= n


def st_network(st):
    m = re.search(r"network=(\d+)", st or "")
    return int(m.group(1)) if m else None


def timed_sluice(cid, hints, mode, expect, counters=(), connected_first=False, binary=None, on_bytes=None):
    """Fresh sluice, one cold fetch; counters: list of (name, port, netns) providers to read bytes from.
    connected_first: the hinted peers are dialled (as configured peers) before the clock starts, as
    the Helia and Kubo clients are; the block cache is still empty. The body's SHA-256 is checked
    against the big file's when the expected size is the big file's."""
    s = Sluice(mode, peers=hints if connected_first else (), binary=binary)
    if connected_first:
        s.wait_connected(len(hints))
    sampler = ByteSampler(list(counters))
    cpu0 = cpu_seconds(s.p.pid)
    try:
        dt, n, status, st = s.fetch(cid, hints, on_bytes=on_bytes)
        sluice_cpu = round(cpu_seconds(s.p.pid) - cpu0, 2)
        time.sleep(0.3)  # let the last acks land before the final sample
        sent, conns = sampler.finish()
    finally:
        sampler.stop_ev.set()
        s.close()
    ok = status == 200 and n == expect
    if ok and BIG_SHA and expect == BIG_MIB << 20 and s.sha256 != BIG_SHA:
        ok = False
        log(f"  !! sluice body SHA-256 {s.sha256} is not the file's {BIG_SHA}")
    if not ok:
        log(f"  !! sluice fetch status={status} bytes={n} expected={expect}")
    return {"s": dt, "bytes": n, "status": status, "ok": ok, "server_timing": st, "sent": sent, "conns": conns,
            "cpu": sampler.cpu, "sluice_cpu": sluice_cpu, "sha_checked": bool(BIG_SHA)}


# ---------------------------------------------------------------- main

def main():
    os.makedirs(os.path.join(WORK, "nodeclient"), exist_ok=True)
    shutil.copy(os.path.join(HERE, "bench_retrieval_helia_client.mjs"), os.path.join(WORK, "nodeclient"))
    nm = os.path.join(WORK, "nodeclient", "node_modules")
    if not os.path.exists(nm):
        os.symlink(os.path.join(PEERS, "node_modules"), nm)

    big = os.path.join(WORK, "big.bin")
    big_bytes = BIG_MIB << 20
    mkfile(big, big_bytes, 64)
    global BIG_SHA
    with open(big, "rb") as f:
        BIG_SHA = hashlib.sha256(f.read()).hexdigest()
    loadavg("start")

    need_big = any(s in SCENARIOS for s in ("1", "2", "4"))
    fast = fast2 = None
    slow = []
    if need_big:
        fast = start_helia("bench-fast-1", {"big": big})
    if "4" in SCENARIOS:
        fast2 = start_helia("bench-fast-2", {"big": big})
    def ns_provider(seed, ns, nip, delay_ms):
        info = start_helia(seed, {"big": big}, netns=ns)
        px = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                               os.path.join(HERE, "tcp_shaper.py"), "--listen", f"{nip}:4001",
                               "--target", f"127.0.0.1:{info['port']}", "--delay-ms", str(delay_ms)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=logf, text=True)
        procs.append(px)
        if px.stdout.readline().strip() != "READY":
            raise RuntimeError("delay proxy did not start")
        info["hint"] = f"/ip4/{nip}/tcp/4001/p2p/{info['peerId']}"
        info["proxy"] = px
        return info

    if "2" in SCENARIOS:
        for i, (ns, _hip, nip) in enumerate(SLOW_NS):
            info = ns_provider(f"bench-slow-{i + 1}", ns, nip, 50)
            slow.append(info)
            log(f"slow provider {i + 1}: {info['hint']} (50 ms each way + tbf 20 Mbit/s)")
    equal = []
    if "4b" in SCENARIOS or "5" in SCENARIOS:
        for i, (ns, _hip, nip) in enumerate(EQUAL_NS):
            info = ns_provider(f"bench-equal-{i + 1}", ns, nip, 0)
            equal.append(info)
            log(f"bandwidth-bound provider {i + 1}: {info['hint']} (tbf {EQUAL_RATE}, no added delay)")
    cid = None
    for p in (fast, fast2, *slow, *equal):
        if p is not None:
            c = p["roots"]["big"]
            assert cid is None or c == cid, "providers disagree on the CID"
            cid = c
    if cid:
        log(f"big file: {BIG_MIB} MiB, layout {LAYOUT}, CID {cid}")
        results["big_cid"] = cid

    # ---- scenario 1: one Helia provider; sluice vs Helia client vs Kubo client
    if "1" in SCENARIOS:
        loadavg("scenario 1")
        hint = fast["multiaddrs"][0]
        rows = []
        for r in range(RUNS):
            row = {}
            order = ["sluice", "helia", "kubo", "sluice_connected"]
            order = order[r % 4:] + order[:r % 4]
            for who in order:
                if who == "sluice_connected":
                    x = timed_sluice(cid, [hint], "on", big_bytes, connected_first=True)
                    row["sluice_connected"] = x["s"] if x["ok"] else None
                elif who == "sluice":
                    x = timed_sluice(cid, [hint], "on", big_bytes, [("p", fast["proc"].pid, fast["port"], None)])
                    row["sluice"] = x["s"] if x["ok"] else None
                    row["sluice_sent"] = x["sent"]["p"]
                    row["sluice_conns"] = x["conns"]["p"]
                    row["sluice_st"] = x["server_timing"]
                elif who == "helia":
                    x = helia_client([hint], [cid], 1)
                    ok = x["errors"] == 0 and x["bytes"] == big_bytes
                    row["helia"] = x["ms"] / 1000.0 if ok else None
                    row["helia_connect_s"] = x["connect_ms"] / 1000.0
                else:
                    s_, rc, size = kubo_client(hint, cid)
                    row["kubo"] = s_ if (rc == 0 and size == big_bytes) else None
                    row["kubo_rc"] = rc
            log(f"  s1 run {r + 1}: " + ", ".join(f"{k}={v}" for k, v in row.items()))
            rows.append(row)
        results["scenarios"]["1"] = {"rows": rows, "file_bytes": big_bytes}

    # ---- scenario 2: fast + three slow providers, sessions on/off, vs fast alone
    if "2" in SCENARIOS and slow:
        loadavg("scenario 2")
        fh = fast["multiaddrs"][0]
        hints_all = [s["hint"] for s in slow] + [fh]  # slow ones listed first: no help from hint order
        counters = [("fast", fast["proc"].pid, fast["port"], None)] + [(f"slow{i + 1}", s["proc"].pid, s["port"], s["netns"]) for i, s in enumerate(slow)]
        rows = []
        for r in range(RUNS):
            row = {}
            arms = [("alone", [fh], "on"), ("on", hints_all, "on"), ("off", hints_all, "off")]
            arms = arms[r % 3:] + arms[:r % 3]
            for name, hints, mode in arms:
                x = timed_sluice(cid, hints, mode, big_bytes, counters)
                row[name] = x["s"] if x["ok"] else None
                row[name + "_sent"] = x["sent"]
                row[name + "_conns"] = x["conns"]
                log(f"  s2 run {r + 1} {name}: {x['s']:.2f}s ok={x['ok']} sent={x['sent']} conns={x['conns']} cpu={x['cpu']}")
            rows.append(row)
        results["scenarios"]["2"] = {"rows": rows, "file_bytes": big_bytes, "hint_order": "slow1,slow2,slow3,fast"}

    # ---- scenario 4: two equally fast providers vs one; duplicates from bytes written
    #      4: both on loopback (CPU-bound, they share the 2 cores); 4b: bandwidth-bound (tbf)
    variants = []
    if "4" in SCENARIOS:
        variants.append(("4", fast, fast2))
    if "4b" in SCENARIOS and len(equal) == 2:
        variants.append(("4b", equal[0], equal[1]))
    for key, pa, pb in variants:
        loadavg(f"scenario {key}")
        h1 = pa.get("hint") or pa["multiaddrs"][0]
        h2 = pb.get("hint") or pb["multiaddrs"][0]
        counters = [("p1", pa["proc"].pid, pa["port"], pa["netns"]), ("p2", pb["proc"].pid, pb["port"], pb["netns"])]
        rows = []
        for r in range(RUNS):
            row = {}
            arms = [("one", [h1], "on"), ("two", [h1, h2], "on"), ("two_off", [h1, h2], "off")]
            if SLUICE_BIN_BEFORE:  # the same arms with the earlier build, as "<arm>_before"
                arms = [(n + sfx, h, m) for n, h, m in arms for sfx in ("", "_before")]
            k = r % len(arms)
            arms = arms[k:] + arms[:k]
            for name, hints, mode in arms:
                binary = SLUICE_BIN_BEFORE if name.endswith("_before") else None
                x = timed_sluice(cid, hints, mode, big_bytes, counters, binary=binary)
                row[name] = x["s"] if x["ok"] else None
                row[name + "_sent"] = x["sent"]
                row[name + "_st"] = x["server_timing"]
                row[name + "_conns"] = x["conns"]
                row[name + "_cpu"] = dict(x["cpu"], sluice=x["sluice_cpu"])
                log(f"  s{key} run {r + 1} {name}: {x['s']:.2f}s ok={x['ok']} sent={x['sent']} conns={x['conns']} "
                    f"cpu={row[name + '_cpu']} st={x['server_timing']}")
            rows.append(row)
        results["scenarios"][key] = {"rows": rows, "file_bytes": big_bytes,
                                     "rate": EQUAL_RATE if key == "4b" else "loopback"}

    # ---- scenario 5: one Bitswap (Helia) + one trustless HTTP provider (a second sluice
    #      serving the file's CAR), each in its own namespace behind tbf EQUAL_RATE
    if "5" in SCENARIOS and len(equal) == 2:
        loadavg("scenario 5")
        bitswap_hint = equal[0]["hint"]
        car = os.path.join(WORK, "big.car")
        maker = Sluice("on")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", maker.port, timeout=FETCH_TIMEOUT)
            conn.request("GET", f"/ipfs/{cid}?format=car", headers={"X-Ipfs-Provider": bitswap_hint})
            with open(car, "wb") as f:
                shutil.copyfileobj(conn.getresponse(), f)
        finally:
            maker.close()
        ns, _hip, nip = EQUAL_NS[1]
        http_dir = os.path.join(WORK, "http-provider")
        os.makedirs(http_dir, exist_ok=True)
        env = dict(os.environ, SLUICE_P2P_LISTEN="[]", SLUICE_ROUTING_ENDPOINTS="[]",
                   SLUICE_METRICS_LISTEN="127.0.0.1:0", RUST_LOG="warn")
        hp = subprocess.Popen(["ip", "netns", "exec", ns, SLUICE_BIN, "serve", "--car", car,
                               "--listen", f"{nip}:8080", "--data-dir", http_dir],
                              env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        procs.append(hp)
        http_hint = f"http://{nip}:8080"
        for _ in range(100):
            try:
                socket.create_connection((nip, 8080), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        log(f"HTTP provider in {ns}: {http_hint} (sluice serve --car, tbf {EQUAL_RATE})")
        rows = []
        for r in range(RUNS):
            row = {}
            arms = [("bitswap", [bitswap_hint]), ("http", [http_hint]), ("both", [bitswap_hint, http_hint])]
            arms = arms[r % 3:] + arms[:r % 3]
            for name, hints in arms:
                x = timed_sluice(cid, hints, "on", big_bytes)
                row[name] = x["s"] if x["ok"] else None
                log(f"  s5 run {r + 1} {name}: {x['s']:.2f}s ok={x['ok']} st={x['server_timing']}")
            rows.append(row)
        results["scenarios"]["5"] = {"rows": rows, "file_bytes": big_bytes, "rate": EQUAL_RATE}
        stop(hp)

    # ---- scenario 6 (issue 14): failover. Two providers, each in its own namespace behind tbf
    #      FAIL_RATE; when half the file has reached the client, the one that has sent more (bytes
    #      acked on its link) is killed (process and its proxy: the connection closes), stopped
    #      (SIGSTOP: the connection stays up, nothing more comes) or cut off (every packet on its veth,
    #      both ways, redirected by a tc u32 filter to a veth that is down: dropped). Compared with one healthy provider alone.
    if "6" in SCENARIOS and len(FAIL_NS) == 2:
        loadavg("scenario 6")

        def fail_provider(i):
            ns, _hip, nip, _dev, _sink = FAIL_NS[i]
            info = ns_provider(f"bench-failover-{i + 1}-{time.time_ns()}", ns, nip, 0)
            assert cid is None or info["roots"]["big"] == cid, "failover provider disagrees on the CID"
            return info

        def tc_drop(i, on):
            ns, _hip, _nip, dev, sink = FAIL_NS[i]
            run = lambda *a: subprocess.run(["ip", "netns", "exec", ns, "tc", *a], check=True,
                                            stdout=subprocess.DEVNULL, stderr=logf)
            if on:
                run("qdisc", "add", "dev", dev, "clsact")
                for hook in ("ingress", "egress"):
                    run("filter", "add", "dev", dev, hook, "u32", "match", "u32", "0", "0",
                        "action", "mirred", "egress", "redirect", "dev", sink)
            else:
                run("qdisc", "del", "dev", dev, "clsact")

        pair = [fail_provider(0), fail_provider(1)]
        cid = cid or pair[0]["roots"]["big"]
        rows = []
        for r in range(RUNS):
            row = {}
            arms = ["one", "two", "kill", "stop", "drop"]
            if SLUICE_BIN_BEFORE:
                arms = [a + sfx for a in arms for sfx in ("", "_before")]
            k = r % len(arms)
            arms = arms[k:] + arms[:k]
            for name in arms:
                kind = name.split("_")[0]
                binary = SLUICE_BIN_BEFORE if name.endswith("_before") else None
                hints = [pair[0]["hint"]] if kind == "one" else [pair[0]["hint"], pair[1]["hint"]]
                failed = {}
                done = threading.Event()
                # Connections left over from an earlier arm (a cut-off one may linger) are not counted.
                old = [set(conn_bytes(4001, FAIL_NS[i][0])) for i in range(2)]

                def at_half(kind=kind, failed=failed, done=done, old=old):
                    """Fails the provider that has sent more once half the file has crossed the
                    links (bytes acked by sluice on the providers' connections, polled)."""
                    while kind not in ("one", "two") and not done.wait(0.02):
                        sent = [sum(b for key, b in conn_bytes(4001, FAIL_NS[i][0]).items() if key not in old[i])
                                for i in range(2)]
                        if sum(sent) < big_bytes // 2:
                            continue
                        v = 0 if sent[0] >= sent[1] else 1
                        if kind == "kill":
                            pair[v]["proc"].kill()
                            pair[v]["proxy"].kill()
                        elif kind == "stop":
                            os.kill(pair[v]["proc"].pid, signal.SIGSTOP)
                        else:
                            tc_drop(v, True)
                        failed.update(victim=v, sent_mib=[round(b / 2**20, 1) for b in sent], at=time.monotonic())
                        return

                watcher = threading.Thread(target=at_half, daemon=True)
                watcher.start()
                try:
                    last = [0.0]
                    x = timed_sluice(cid, hints, "on", big_bytes, binary=binary,
                                     on_bytes=lambda n, last=last: last.__setitem__(0, time.monotonic()))
                finally:
                    done.set()
                    watcher.join()
                if failed:
                    v = failed["victim"]
                    failed["rest_s"] = round(last[0] - failed.pop("at"), 2)  # failure to the body's last byte
                    if kind == "kill":
                        pair[v]["proc"].wait()
                        pair[v]["proxy"].wait()
                        pair[v] = fail_provider(v)
                    elif kind == "stop":
                        os.kill(pair[v]["proc"].pid, signal.SIGCONT)
                    else:
                        tc_drop(v, False)
                row[name] = x["s"] if x["ok"] else None
                row[name + "_failed"] = failed
                row[name + "_sluice_cpu"] = x["sluice_cpu"]
                log(f"  s6 run {r + 1} {name}: {x['s']:.2f}s ok={x['ok']} sha={x['sha_checked']} failed={failed} "
                    f"st={x['server_timing']}")
            rows.append(row)
        results["scenarios"]["6"] = {"rows": rows, "file_bytes": big_bytes, "rate": os.environ.get("FAIL_RATE", ""),
                                     "before": SLUICE_BIN_BEFORE}

    # ---- scenario 3: 500 distinct 8 KiB files, 32 in flight
    if "3" in SCENARIOS:
        sdir = os.path.join(WORK, "small")
        os.makedirs(sdir, exist_ok=True)
        files = {}
        for i in range(SMALL_N):
            pth = os.path.join(sdir, f"f{i:04d}.bin")
            mkfile(pth, 8192, 1000 + i)
            files[f"f{i:04d}"] = pth
        prov = start_helia("bench-small", files)
        cids = [prov["roots"][k] for k in sorted(files)]
        digests = {prov["roots"][k]: hashlib.sha256(open(files[k], "rb").read()).hexdigest() for k in files}
        assert len(set(cids)) == SMALL_N
        hint = prov["multiaddrs"][0]
        loadavg("scenario 3")
        rows = []
        for r in range(RUNS):
            row = {}
            for who in (["sluice", "helia"] if r % 2 == 0 else ["helia", "sluice"]):
                if who == "helia":
                    x = helia_client([hint], cids, SMALL_CONC)
                    row["helia_s"] = x["ms"] / 1000.0
                    row["helia_ok"] = x["files"]
                    row["helia_errors"] = x["errors"]
                else:
                    # k6, as the issue asks: CONCURRENCY VUs share the N
                    # iterations, one file each, every body SHA-256 checked.
                    s = Sluice("on")
                    try:
                        spec = os.path.join(WORK, "small-files.json")
                        with open(spec, "w") as f:
                            json.dump({"base": f"http://127.0.0.1:{s.port}", "hint": hint,
                                       "files": [{"cid": c, "sha256": digests[c]} for c in cids]}, f)
                        out = os.path.join(WORK, f"small-k6-{r}.json")
                        subprocess.run([K6, "run", "--no-usage-report", "--quiet",
                                        "-e", f"FILES={spec}", "-e", f"CONCURRENCY={SMALL_CONC}",
                                        "-e", f"OUT={out}", os.path.join(ROOT, "loadtest/k6/small_files.js")],
                                       check=True, stdout=logf, stderr=logf, timeout=600)
                        k = json.load(open(out))
                    finally:
                        s.close()
                    row["sluice_s"] = k["ms"] / 1000.0
                    row["sluice_ok"] = k["files"] - k["failed"]
                    row["sluice_errors"] = k["failed"]
                    row["sluice_p50_ms"] = k["p50_ms"]
                    row["sluice_p99_ms"] = k["p99_ms"]
            log(f"  s3 run {r + 1}: {row}")
            rows.append(row)
        results["scenarios"]["3"] = {"rows": rows, "n": SMALL_N, "concurrency": SMALL_CONC}
        stop(prov["proc"])

    loadavg("end")
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(OUT + ".json", "w") as f:
        json.dump(results, f, indent=1)
    summarize()


def fmt(x, d=2):
    return "n/a" if x is None or x != x else f"{x:.{d}f}"


def summarize():
    R = results["scenarios"]
    L = []
    L.append(f"Run {results['started']} .. {results['finished']}, RUNS={RUNS}, layout={LAYOUT}, "
             f"load average: {results['loadavg']}")
    if "1" in R:
        rows, fb = R["1"]["rows"], R["1"]["file_bytes"]
        mib = fb / 2**20
        L.append("\n### 1. Cold fetch of one file from one Helia provider\n")
        L.append("Helia's and Kubo's clients are timed from connected (they dial first, untimed; Helia's dial "
                 "is shown). Sluice is timed both ways: **connected first** (the provider is a configured "
                 "peer, dialled before the clock starts; the block cache is empty), the like-for-like "
                 "comparison, and **dial included** (the request arrives at a sluice not yet connected), "
                 "compared with Helia's fetch plus its dial.\n")
        L.append("| run | sluice connected first s | sluice dial included s | Helia client s (+ dial) | Kubo client s | "
                 "sluice MiB/s (connected) | Helia MiB/s | Kubo MiB/s | connected: sluice / faster | "
                 "dial included: sluice / Helia | MiB the provider sent to sluice | sluice TCP connections |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        ratios, dial_ratios = [], []
        for i, r in enumerate(rows):
            s, c, h, k = r.get("sluice"), r.get("sluice_connected"), r.get("helia"), r.get("kubo")
            hd = h + r["helia_connect_s"] if h and r.get("helia_connect_s") is not None else None
            best = min([x for x in (h, k) if x]) if (h or k) else None
            ratio = best / c if (c and best) else None
            dial_ratio = hd / s if (s and hd) else None
            if ratio:
                ratios.append(ratio)
            if dial_ratio:
                dial_ratios.append(dial_ratio)
            L.append(f"| {i + 1} | {fmt(c)} | {fmt(s)} | {fmt(h)} (+{fmt(r.get('helia_connect_s'), 3)}) | {fmt(k)} | "
                     f"{fmt(mib / c if c else None, 1)} | {fmt(mib / h if h else None, 1)} | "
                     f"{fmt(mib / k if k else None, 1)} | {fmt(ratio)} | {fmt(dial_ratio)} | "
                     f"{r.get('sluice_sent', 0) / 2**20:.1f} | {r.get('sluice_conns', '')} |")
        mc, ms, mh, mk = (med([r[k] for r in rows if r.get(k)])
                          for k in ("sluice_connected", "sluice", "helia", "kubo"))
        L.append(f"| median | {fmt(mc)} | {fmt(ms)} | {fmt(mh)} | {fmt(mk)} | {fmt(mib / mc, 1)} | "
                 f"{fmt(mib / mh, 1)} | {fmt(mib / mk, 1)} | **{fmt(med(ratios))}** | **{fmt(med(dial_ratios))}** | "
                 f"{med([r.get('sluice_sent', 0) for r in rows]) / 2**20:.1f} | |")
        R["1"]["median_ratio"] = med(ratios)
        R["1"]["median_ratio_dial_included"] = med(dial_ratios)
    if "2" in R:
        rows, fb = R["2"]["rows"], R["2"]["file_bytes"]
        L.append("\n### 2. Fast provider + three slow ones (100 ms RTT, 20 Mbit/s)\n")
        L.append("| run | fast alone s | 4 providers, sessions on s | sessions off s | on / alone | off / alone | "
                 "MiB sent by fast/slow1/slow2/slow3 (on) | (off) |")
        L.append("|---|---|---|---|---|---|---|---|")
        L.insert(len(L) - 2, "Hints listed slow1, slow2, slow3, fast (the fast one last, so hint order does not help). "
                 "MiB sent = bytes each provider process wrote while the fetch ran (file: "
                 f"{fb / 2**20:.0f} MiB).\n")
        ron, roff = [], []
        for i, r in enumerate(rows):
            a, on, off = r.get("alone"), r.get("on"), r.get("off")
            x = on / a if (a and on) else None
            y = off / a if (a and off) else None
            if x:
                ron.append(x)
            if y:
                roff.append(y)
            so = "/".join(f"{v / 2**20:.1f}" for v in r["on_sent"].values())
            sf = "/".join(f"{v / 2**20:.1f}" for v in r["off_sent"].values())
            L.append(f"| {i + 1} | {fmt(a)} | {fmt(on)} | {fmt(off)} | {fmt(x)} | {fmt(y)} | {so} | {sf} |")
        L.append(f"| median | {fmt(med([r['alone'] for r in rows if r.get('alone')]))} | "
                 f"{fmt(med([r['on'] for r in rows if r.get('on')]))} | {fmt(med([r['off'] for r in rows if r.get('off')]))} | "
                 f"**{fmt(med(ron))}** | **{fmt(med(roff))}** | | |")
        R["2"]["median_on"] = med(ron)
        R["2"]["median_off"] = med(roff)
    if "3" in R:
        rows, n = R["3"]["rows"], R["3"]["n"]
        L.append(f"\n### 3. {n} distinct 8 KiB files, {R['3']['concurrency']} in flight\n")
        L.append("| run | sluice s | sluice files/s | sluice ok | sluice p50 / p99 ms | Helia s | Helia files/s | Helia ok | sluice / Helia |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        ratios = []
        for i, r in enumerate(rows):
            fs = r["sluice_ok"] / r["sluice_s"]
            fh = r["helia_ok"] / r["helia_s"] if r["helia_s"] else 0
            ratio = fs / fh if fh else None
            if ratio:
                ratios.append(ratio)
            L.append(f"| {i + 1} | {fmt(r['sluice_s'])} | {fmt(fs, 0)} | {r['sluice_ok']} | "
                     f"{fmt(r['sluice_p50_ms'], 0)} / {fmt(r['sluice_p99_ms'], 0)} | {fmt(r['helia_s'])} | {fmt(fh, 0)} | "
                     f"{r['helia_ok']} | {fmt(ratio)} |")
        L.append(f"| median | {fmt(med([r['sluice_s'] for r in rows]))} | "
                 f"{fmt(med([r['sluice_ok'] / r['sluice_s'] for r in rows]), 0)} | | | "
                 f"{fmt(med([r['helia_s'] for r in rows]))} | {fmt(med([r['helia_ok'] / r['helia_s'] for r in rows]), 0)} | | "
                 f"**{fmt(med(ratios))}** |")
        R["3"]["median_ratio"] = med(ratios)
    for key in [k for k in ("4", "4b") if k in R]:
        rows, fb = R[key]["rows"], R[key]["file_bytes"]
        L.append(f"\n### {key}. Two equally fast providers vs one"
                 + (" (loopback: CPU-bound, the providers share the 2 cores)" if key == "4" else
                    f" (bandwidth-bound: tbf {R[key].get('rate')} each, own namespaces)") + "\n")
        L.append("Duplicates = bytes the providers wrote while the fetch ran, minus the file size, over the file "
                 "size (Bitswap/Noise/Yamux framing adds about 0.1%, so this slightly overstates them).\n")
        L.append("| run | one s | two (on) s | two (off) s | two / one | MiB sent (one) | p1+p2 (two on) | p1+p2 (two off) | "
                 "duplicates: one | two on | two off |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        ratios, d_one, d_on, d_off = [], [], [], []
        for i, r in enumerate(rows):
            one, two, toff = r.get("one"), r.get("two"), r.get("two_off")
            ratio = two / one if (one and two) else None
            d1 = sum(r["one_sent"].values()) / fb - 1
            d2 = sum(r["two_sent"].values()) / fb - 1
            d3 = sum(r["two_off_sent"].values()) / fb - 1
            if ratio:
                ratios.append(ratio)
            d_one.append(d1)
            d_on.append(d2)
            d_off.append(d3)
            L.append(f"| {i + 1} | {fmt(one)} | {fmt(two)} | {fmt(toff)} | {fmt(ratio)} | "
                     f"{sum(r['one_sent'].values()) / 2**20:.1f} | "
                     f"{'+'.join(f'{v / 2**20:.1f}' for v in r['two_sent'].values())} | "
                     f"{'+'.join(f'{v / 2**20:.1f}' for v in r['two_off_sent'].values())} | "
                     f"{100 * d1:.1f}% | {100 * d2:.1f}% | {100 * d3:.1f}% |")
        L.append(f"| median | {fmt(med([r['one'] for r in rows if r.get('one')]))} | "
                 f"{fmt(med([r['two'] for r in rows if r.get('two')]))} | "
                 f"{fmt(med([r['two_off'] for r in rows if r.get('two_off')]))} | **{fmt(med(ratios))}** | | | | "
                 f"{100 * med(d_one):.1f}% | **{100 * med(d_on):.1f}%** | {100 * med(d_off):.1f}% |")
        R[key]["median_ratio"] = med(ratios)
        R[key]["median_dup_on"] = med(d_on)
        if any("one_cpu" in r for r in rows):
            L.append("\nCPU seconds per process while each fetch ran (p1, p2: the providers; sluice), medians:\n")
            L.append("| arm | time s | p1 | p2 | sluice | sum | two / one |")
            L.append("|---|---|---|---|---|---|---|")
            for arm in [a for a in ("one", "two", "two_off", "one_before", "two_before", "two_off_before")
                        if any(r.get(a + "_cpu") for r in rows)]:
                cpus = [r[arm + "_cpu"] for r in rows if r.get(arm + "_cpu")]
                cm = {k: med([c.get(k, 0) for c in cpus]) for k in ("p1", "p2", "sluice")}
                base = "one_before" if arm.endswith("_before") else "one"
                rq = [r[arm] / r[base] for r in rows if r.get(arm) and r.get(base)]
                L.append(f"| {arm} | {fmt(med([r[arm] for r in rows if r.get(arm)]))} | {fmt(cm['p1'])} | "
                         f"{fmt(cm['p2'])} | {fmt(cm['sluice'])} | {fmt(sum(cm.values()))} | {fmt(med(rq))} |")
    if "6" in R:
        rows = R["6"]["rows"]
        builds = [""] + (["_before"] if R["6"].get("before") else [])
        L.append(f"\n### 6. Failover: two providers (tbf {R['6']['rate']} each, own namespaces), the one that has "
                 "sent more killed / stopped (SIGSTOP) / cut off (tc drop) when half the file has reached the "
                 "client, vs one healthy provider alone\n")
        L.append("Every body SHA-256 checked. Ratio = time / one alone, same build, same run. "
                 + ("`_before`: the earlier build (SLUICE_BIN_BEFORE), alternated in the same runs.\n"
                    if len(builds) > 1 else "\n"))
        for sfx in builds:
            L.append(f"| run{sfx} | one s | two s | kill s | stop s | drop s | two / one | kill / one | stop / one | "
                     "drop / one | rest after the failure s (kill / stop / drop) |")
            L.append("|---|---|---|---|---|---|---|---|---|---|---|")
            ratios = {k: [] for k in ("two", "kill", "stop", "drop")}
            for i, r in enumerate(rows):
                one = r.get("one" + sfx)
                cells = []
                for k in ("two", "kill", "stop", "drop"):
                    t = r.get(k + sfx)
                    q = t / one if (t and one) else None
                    if q:
                        ratios[k].append(q)
                    cells.append(fmt(q))
                rest = " / ".join(fmt(r.get(k + sfx + "_failed", {}).get("rest_s")) for k in ("kill", "stop", "drop"))
                L.append(f"| {i + 1} | {fmt(one)} | " + " | ".join(fmt(r.get(k + sfx)) for k in ("two", "kill", "stop", "drop"))
                         + " | " + " | ".join(cells) + f" | {rest} |")
            L.append("| median | " + " | ".join(fmt(med([r[k + sfx] for r in rows if r.get(k + sfx)]))
                                             for k in ("one", "two", "kill", "stop", "drop"))
                     + " | " + " | ".join(f"**{fmt(med(ratios[k]))}**" for k in ("two", "kill", "stop", "drop")) + " | |")
            R["6"]["median_ratios" + sfx] = {k: med(v) for k, v in ratios.items()}
    if "5" in R:
        rows = R["5"]["rows"]
        L.append(f"\n### 5. One Bitswap (Helia) + one trustless HTTP provider (sluice --car), "
                 f"tbf {R['5']['rate']} each, own namespaces\n")
        L.append("| run | Bitswap alone s | HTTP alone s | both s | faster alone / both |")
        L.append("|---|---|---|---|---|")
        speedups = []
        for i, r in enumerate(rows):
            alone = [t for t in (r.get("bitswap"), r.get("http")) if t]
            sp = min(alone) / r["both"] if alone and r.get("both") else None
            if sp:
                speedups.append(sp)
            L.append(f"| {i + 1} | {fmt(r.get('bitswap'))} | {fmt(r.get('http'))} | {fmt(r.get('both'))} | {fmt(sp)} |")
        L.append(f"| median | {fmt(med([r['bitswap'] for r in rows if r.get('bitswap')]))} | "
                 f"{fmt(med([r['http'] for r in rows if r.get('http')]))} | "
                 f"{fmt(med([r['both'] for r in rows if r.get('both')]))} | **{fmt(med(speedups))}** |")
        R["5"]["median_speedup"] = med(speedups)
    text = "\n".join(L) + "\n"
    with open(OUT + ".md", "w") as f:
        f.write(text)
    with open(OUT + ".json", "w") as f:
        json.dump(results, f, indent=1)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--summarize":  # re-render a run's .json
        results = json.load(open(sys.argv[2]))
        OUT = sys.argv[2][:-len(".json")]
        RUNS, LAYOUT = results["runs"], results["layout"]
        summarize()
        sys.exit(0)
    try:
        main()
    finally:
        cleanup()
