#!/usr/bin/env python3
"""bench_retrieval_diag.py — diagnostics behind the RESULTS.md notes (issue 3).

One Helia provider (64 MiB file), N cold fetches, each by a fresh sluice with
RUST_LOG=sluice=debug and session mode on; per fetch: time, bytes, curl's exit
code and the HTTP framing (Content-Length or chunked), bytes the provider wrote
(/proc/PID/io wchar), and counts of sluice's debug/warn messages by text.

    SLUICE_BIN=... PEERS_NODE=... PEERS_DIR=... python3 bench_retrieval_diag.py [N] [LAYOUT] [HINTS]
HINTS: 1 (one provider) or 2 (two equal providers).
"""
import collections, json, os, random, re, shutil, socket, subprocess, sys, tempfile, time

SLUICE_BIN, NODE, PEERS = os.environ["SLUICE_BIN"], os.environ["PEERS_NODE"], os.environ["PEERS_DIR"]
N = int(sys.argv[1]) if len(sys.argv) > 1 else 5
LAYOUT = sys.argv[2] if len(sys.argv) > 2 else "modern"
NPROV = int(sys.argv[3]) if len(sys.argv) > 3 else 1
work = tempfile.mkdtemp(prefix="sluice-bench-diag.")
procs = []
try:
    big = os.path.join(work, "big.bin")
    rnd = random.Random(64)
    with open(big, "wb") as f:
        for _ in range(64):
            f.write(rnd.randbytes(1 << 20))
    provs = []
    for i in range(NPROV):
        p = subprocess.Popen([NODE, f"{PEERS}/helia-provider.mjs", "--port", "0", "--seed", f"bench-fast-{i + 1}",
                              "--layout", LAYOUT, f"big={big}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        procs.append(p)
        provs.append((p, json.loads(p.stdout.readline())))
    cid = provs[0][1]["roots"]["big"]
    hints = ",".join(info["multiaddrs"][0] for _, info in provs)

    def wchar(pid):
        return int(re.search(r"wchar: (\d+)", open(f"/proc/{pid}/io").read()).group(1))

    for run in range(N):
        s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
        d = os.path.join(work, f"d{run}")
        logp = os.path.join(work, f"sluice{run}.log")
        env = dict(os.environ, SLUICE_HINTS_ALLOW_PRIVATE="true", SLUICE_P2P_LISTEN="[]",
                   SLUICE_ROUTING_ENDPOINTS="[]", RUST_LOG="sluice=debug,warn", SLUICE_LOG_FORMAT="text")
        sl = subprocess.Popen([SLUICE_BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", d],
                              env=env, stdout=open(logp, "w"), stderr=subprocess.STDOUT)
        procs.append(sl)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close(); break
            except OSError:
                time.sleep(0.05)
        before = [wchar(p.pid) for p, _ in provs]
        t0 = time.monotonic()
        c = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-D", "-", "-m", "200", "-w", "%{size_download}",
                            "-H", f"X-Ipfs-Provider: {hints}", f"http://127.0.0.1:{port}/ipfs/{cid}"],
                           capture_output=True, text=True)
        dt = time.monotonic() - t0
        time.sleep(0.3)
        sent = [wchar(p.pid) - b for (p, _), b in zip(provs, before)]
        sl.terminate(); sl.wait(10)
        framing = "content-length" if re.search(r"(?im)^content-length:", c.stdout) else (
            "chunked" if re.search(r"(?im)^transfer-encoding: chunked", c.stdout) else "?")
        size = c.stdout.strip().splitlines()[-1] if c.stdout.strip() else "?"
        msgs = collections.Counter()
        for line in open(logp, errors="replace"):
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)
            m = re.search(r"\b(DEBUG|WARN|ERROR|INFO)\b\s+(\S+?):\s+(.*)", line)
            if m:
                text = re.sub(r"\s\w+=\S+", "", m.group(3)).strip()[:90]
                msgs[f"{m.group(1)} {text}"] += 1
        print(f"run {run + 1}: {dt:.2f}s curl_rc={c.returncode} bytes={size} framing={framing} "
              f"provider_MiB={[round(x / 2**20, 1) for x in sent]} stderr={c.stderr.strip()[:120]!r}")
        for k, v in msgs.most_common(12):
            print(f"    {v:6d}  {k}")
        shutil.rmtree(d, ignore_errors=True)
finally:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(5)
        except Exception:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)
