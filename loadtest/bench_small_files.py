#!/usr/bin/env python3
"""bench_small_files.py — the driver behind loadtest/bench_small_files.sh (issue 14).

Distinct small files from one Helia provider, CONCURRENCY in flight:
sluice (each build in ARMS started once, before the first run, and kept
for every run; k6 in its own network namespace, hints by header, every
body SHA-256 checked) against Helia's own Bitswap client (a fresh process
per run, dialled before its clock starts). Every arm of every run fetches
its own set of N files nobody has fetched before, so each sluice request is
cold (the block is not cached) while the sluice process, its connection to
the provider and its peer book are warm, as on a gateway that has been up
for a while. Arms alternate, rotated by one each run.

Environment (set by bench_small_files.sh): ARMS ("name=binary ..."), K6,
PEERS_NODE, PEERS_DIR, WORK, OUT_PREFIX, RUNS, N, CONCURRENCY, WARM_N,
K6_NS (the namespace k6 runs in), GW_IP (the host's address on its link).
"""
import hashlib
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
import urllib.request

ARMS = [tuple(a.split("=", 1)) for a in os.environ["ARMS"].split()]
K6 = os.environ["K6"]
NODE = os.environ["PEERS_NODE"]
PEERS = os.environ["PEERS_DIR"]
WORK = os.environ["WORK"]
OUT = os.environ["OUT_PREFIX"]
RUNS = int(os.environ.get("RUNS", "5"))
N = int(os.environ.get("N", "500"))
CONC = int(os.environ.get("CONCURRENCY", "32"))
WARM_N = int(os.environ.get("WARM_N", "64"))
K6_NS = os.environ["K6_NS"]
GW_IP = os.environ["GW_IP"]
HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = 8192

procs = []
logf = open(OUT + ".log", "a")
results = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": RUNS,
           "n": N, "concurrency": CONC, "warm_n": WARM_N, "arms": dict(ARMS), "rows": []}


def log(msg):
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, file=sys.stderr, flush=True)
    logf.write(line + "\n")
    logf.flush()


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
    t = threading.Thread(target=lambda: box.update(line=p.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    if not box.get("line"):
        raise RuntimeError(f"{what}: no JSON line within {timeout}s (rc={p.poll()})")
    return json.loads(box["line"])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def med(xs):
    return statistics.median(xs) if xs else float("nan")


# ---------------------------------------------------------------- content

def file_sets():
    """One set of N distinct files per arm and run (and a warm-up set per
    sluice arm); returns {set_name: [(name, path, sha256)]}."""
    sdir = os.path.join(WORK, "files")
    os.makedirs(sdir, exist_ok=True)
    names = [f"warm-{a}" for a, _ in ARMS]
    names += [f"r{r}-{a}" for r in range(RUNS) for a in [*(x for x, _ in ARMS), "helia"]]
    sets, seed = {}, 0
    for name in names:
        count = WARM_N if name.startswith("warm-") else N
        files = []
        for i in range(count):
            seed += 1
            data = random.Random(seed).randbytes(SIZE)
            path = os.path.join(sdir, f"{name}-{i:04d}.bin")
            with open(path, "wb") as f:
                f.write(data)
            files.append((f"{name}-{i:04d}", path, hashlib.sha256(data).hexdigest()))
        sets[name] = files
    return sets


def start_provider(sets):
    args = [f"{n}={p}" for files in sets.values() for n, p, _ in files]
    listing = os.path.join(WORK, "provider-args.txt")
    with open(listing, "w") as f:
        f.write("\n".join(args))
    cmd = [NODE, f"{PEERS}/helia-provider.mjs", "--port", "0", "--seed", "bench-small-files",
           "--layout", "modern", *args]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logf, text=True)
    procs.append(p)
    info = read_json_line(p, 600, "helia provider")
    info["proc"] = p
    log(f"provider {info['multiaddrs'][0]}: {len(info['roots'])} files")
    return info


# ---------------------------------------------------------------- sluice, k6

class Sluice:
    """One sluice, started once for every run."""

    def __init__(self, name, binary):
        self.name = name
        self.port = free_port()
        self.control = free_port()
        self.dir = os.path.join(WORK, f"data-{name}")
        os.makedirs(self.dir)
        env = dict(os.environ, SLUICE_HINTS_ALLOW_PRIVATE="true", SLUICE_P2P_LISTEN="[]",
                   SLUICE_ROUTING_ENDPOINTS="[]", SLUICE_DHT_MODE="off",
                   SLUICE_METRICS_LISTEN=f"127.0.0.1:{self.control}",
                   RUST_LOG=os.environ.get("SLUICE_RUST_LOG", "warn"))
        self.p = subprocess.Popen([binary, "serve", "--listen", f"{GW_IP}:{self.port}",
                                   "--data-dir", self.dir], env=env, stdin=subprocess.DEVNULL,
                                  stdout=logf, stderr=logf)
        procs.append(self.p)
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.control}/readyz", timeout=1).read()
                break
            except OSError:
                if self.p.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"sluice {name} did not start")
                time.sleep(0.1)
        self.base = f"http://{GW_IP}:{self.port}"
        log(f"sluice {name} ({binary}) at {self.base}, pid {self.p.pid}")

    def metric(self, name):
        text = urllib.request.urlopen(
            f"http://127.0.0.1:{self.control}/debug/metrics/prometheus", timeout=5).read().decode()
        m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)", text, re.M)
        return float(m.group(1)) if m else None


def k6_run(sluice, files, hint, tag):
    spec = os.path.join(WORK, f"spec-{tag}.json")
    with open(spec, "w") as f:
        json.dump({"base": sluice.base, "hint": hint,
                   "files": [{"cid": c, "sha256": d} for c, d in files]}, f)
    out = os.path.join(WORK, f"k6-{tag}.json")
    cpu0 = cpu_seconds(sluice.p.pid)
    subprocess.run(["ip", "netns", "exec", K6_NS, K6, "run", "--no-usage-report", "--quiet",
                    "-e", f"FILES={spec}", "-e", f"CONCURRENCY={CONC}", "-e", f"OUT={out}",
                    os.path.join(HERE, "k6/small_files.js")],
                   check=True, stdout=logf, stderr=logf, timeout=900)
    cpu = cpu_seconds(sluice.p.pid) - cpu0
    k = json.load(open(out))
    k["cpu_s"] = cpu
    return k


def helia_client(hint, cids):
    cf = os.path.join(WORK, f"cids-{time.time_ns()}.txt")
    with open(cf, "w") as f:
        f.write("\n".join(cids) + "\n")
    cmd = [NODE, os.path.join(WORK, "nodeclient", "bench_retrieval_helia_client.mjs"),
           "--concurrency", str(CONC), "--cids", cf, "--connect", hint]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=logf, text=True)
    procs.append(p)
    info = read_json_line(p, 900, "helia client")
    p.wait(timeout=15)
    return info


# ---------------------------------------------------------------- main

def main():
    os.makedirs(os.path.join(WORK, "nodeclient"), exist_ok=True)
    shutil.copy(os.path.join(HERE, "bench_retrieval_helia_client.mjs"), os.path.join(WORK, "nodeclient"))
    os.symlink(os.path.join(PEERS, "node_modules"), os.path.join(WORK, "nodeclient", "node_modules"))
    sets = file_sets()
    prov = start_provider(sets)
    hint = prov["multiaddrs"][0]
    by_set = {name: [(prov["roots"][n], d) for n, _, d in files] for name, files in sets.items()}
    assert len({c for files in by_set.values() for c, _ in files}) == sum(map(len, by_set.values()))
    gateways = {name: Sluice(name, binary) for name, binary in ARMS}
    for name, gw in gateways.items():
        k = k6_run(gw, by_set[f"warm-{name}"], hint, f"warm-{name}")
        log(f"warm-up {name}: {k['files'] - k['failed']}/{k['files']} in {k['ms']:.0f} ms")
    order = [*gateways, "helia"]
    for r in range(RUNS):
        row = {"run": r + 1}
        turn = order[r % len(order):] + order[:r % len(order)]
        for who in turn:
            files = by_set[f"r{r}-{who}"]
            la = open("/proc/loadavg").read().split()[0]
            if who == "helia":
                x = helia_client(hint, [c for c, _ in files])
                # The client checks no digests; a file counts if it came whole.
                ok = x["files"] if x["errors"] == 0 and x["bytes"] == SIZE * len(files) else 0
                row["helia"] = {"s": x["ms"] / 1000.0, "ok": ok, "errors": x["errors"], "load": la}
            else:
                prov_cpu0 = cpu_seconds(prov["proc"].pid)
                k = k6_run(gateways[who], files, hint, f"r{r}-{who}")
                row[who] = {"s": k["ms"] / 1000.0, "ok": k["files"] - k["failed"],
                            "errors": k["failed"], "p50_ms": k["p50_ms"], "p99_ms": k["p99_ms"],
                            "cpu_s": round(k["cpu_s"], 3),
                            "provider_cpu_s": round(cpu_seconds(prov["proc"].pid) - prov_cpu0, 3),
                            "load": la}
            cell = row[who]
            cell["files_s"] = N / cell["s"] if cell["ok"] == N else None
            log(f"  run {r + 1} {who}: {cell}")
        results["rows"].append(row)
    for name, gw in gateways.items():
        results.setdefault("sessions_live_end", {})[name] = gw.metric("sluice_sessions_live")
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(OUT + ".json", "w") as f:
        json.dump(results, f, indent=1)
    summarize()


def summarize():
    rows = results["rows"]
    names = [a for a, _ in ARMS]
    L = [f"# bench_small_files.sh {os.path.basename(OUT)}", "",
         f"{N} distinct 8 KiB files per arm and run, {CONC} in flight, {RUNS} runs; "
         f"sluice started once per build (warm-up {WARM_N} files), k6 in namespace {K6_NS}; "
         "Helia's client a fresh process per run.", "",
         "| run | " + " | ".join(f"{a} files/s (p50 ms, CPU ms/file)" for a in names)
         + " | helia files/s | " + " | ".join(f"{a} / helia" for a in names) + " |",
         "| --- |" + " --- |" * (2 * len(names) + 1)]
    ratios = {a: [] for a in names}
    for row in rows:
        h = row["helia"]["files_s"]
        cells = []
        for a in names:
            c = row[a]
            fs = c["files_s"]
            cells.append(f"{fs:.0f} ({c['p50_ms']:.1f}, {1000 * c['cpu_s'] / N:.2f})" if fs else "FAILED")
            if fs and h:
                ratios[a].append(fs / h)
        rs = [f"{row[a]['files_s'] / h:.2f}" if row[a]["files_s"] and h else "n/a" for a in names]
        helia = f"{h:.0f}" if h else "FAILED"
        L.append(f"| {row['run']} | " + " | ".join(cells) + f" | {helia} | " + " | ".join(rs) + " |")
    L.append("")
    med_h = med([r["helia"]["files_s"] for r in rows if r["helia"]["files_s"]])
    for a in names:
        fs = [r[a]["files_s"] for r in rows if r[a]["files_s"]]
        cpu = [1000 * r[a]["cpu_s"] / N for r in rows]
        L.append(f"- **{a}**: median {med(fs):.0f} files/s, median ratio to Helia's client "
                 f"**{med(ratios[a]):.2f}x** (per run {', '.join(f'{x:.2f}' for x in ratios[a])}); "
                 f"ratio of medians {med(fs) / med_h:.2f}x; sluice CPU {med(cpu):.2f} ms per file; "
                 f"bodies wrong or failed: {sum(r[a]['errors'] for r in rows)}")
    L.append(f"- **helia**: median {med_h:.0f} files/s; errors {sum(r['helia']['errors'] for r in rows)}")
    if len(names) == 2:
        a, b = names
        pair = [r[b]["files_s"] / r[a]["files_s"] for r in rows if r[a]["files_s"] and r[b]["files_s"]]
        L.append(f"- **{b} / {a}** files/s, same run: median {med(pair):.2f}x "
                 f"(per run {', '.join(f'{x:.2f}' for x in pair)})")
    L.append(f"- live sessions at the end: {results.get('sessions_live_end')}")
    text = "\n".join(L) + "\n"
    with open(OUT + ".md", "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
