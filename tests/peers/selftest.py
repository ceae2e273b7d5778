#!/usr/bin/env python3
"""End-to-end check of the test peers (stdlib only; any python3 >= 3.8).

    python3 tests/peers/selftest.py [--skip-install] [--size BYTES]

1. runs install.sh (unless --skip-install) and reads its PEERS_READY line;
2. writes a random file (16 MiB by default) and a small directory;
3. starts the Helia provider (modern and classic layouts) and the Kubo
   provider, checks the JSON line and speaks multistream-select to every
   advertised multiaddr;
4. checks that Helia's classic layout gives the same CIDs as Kubo;
5. Bitswap both ways: a second Kubo node fetches Helia's CID, a second Helia
   node fetches Kubo's CID, and the bytes are compared with the original;
6. stops peers by closing stdin and by SIGTERM and checks they exit 0.
Ends with a line "N passed, N failed".
"""

import argparse
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    return ok


class Peer:
    def __init__(self, name, argv, timeout=120):
        self.name = name
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(WORK, f"{name}.stderr"), "w"))
        self.info = None
        line = b""
        deadline = time.monotonic() + timeout
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                break
            c = os.read(self.proc.stdout.fileno(), 65536)
            if not c:
                break
            line += c
        self.startup_ms = int((time.monotonic() - self.t0) * 1000)
        try:
            self.info = json.loads(line)
        except ValueError:
            self.info = None
        check(f"{name}: JSON ready line", isinstance(self.info, dict) and "peerId" in self.info,
              f"{self.startup_ms} ms" if self.info else f"got {line[:200]!r}")

    def close_stdin(self, timeout=15):
        t = time.monotonic()
        self.proc.stdin.close()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "timeout"
        check(f"{self.name}: exits 0 when stdin closes", rc == 0, f"rc={rc} in {int((time.monotonic() - t) * 1000)} ms")

    def sigterm(self, timeout=15):
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "timeout"
        check(f"{self.name}: exits 0 on SIGTERM", rc == 0, f"rc={rc} in {int((time.monotonic() - t) * 1000)} ms")


def multistream_ok(ma):
    # /ip4/127.0.0.1/tcp/PORT/p2p/ID
    parts = ma.split("/")
    host, port = parts[2], int(parts[4])
    if host != "127.0.0.1":
        return False, f"not loopback: {ma}"
    hdr = b"/multistream/1.0.0\n"
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(bytes([len(hdr)]) + hdr)
        s.settimeout(5)
        got = b""
        while hdr not in got:
            c = s.recv(4096)
            if not c:
                break
            got += c
    return hdr in got, repr(got[:40])


def sha256_file(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def main():
    global WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-install", action="store_true")
    ap.add_argument("--size", type=int, default=16 * 1024 * 1024)
    args = ap.parse_args()

    node = os.path.join(HERE, "node_modules", ".bin", "node")
    python = os.path.join(HERE, ".venv", "bin", "python")
    if not args.skip_install:
        t = time.monotonic()
        out = subprocess.run(["bash", os.path.join(HERE, "install.sh")], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        last = out.strip().splitlines()[-1]
        check("install.sh prints PEERS_READY", last.startswith("PEERS_READY "),
              f"{last} ({time.monotonic() - t:.1f} s)")
        kv = dict(x.split("=", 1) for x in last.split()[1:])
        node, python = kv["node"], kv["python"]

    WORK = tempfile.mkdtemp(prefix="sluice-peers-selftest-")
    big = os.path.join(WORK, "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(args.size))
    site = os.path.join(WORK, "site")
    os.makedirs(os.path.join(site, "sub"))
    for rel, data in [("index.html", "<h1>hi</h1>\n"), ("sub/a.txt", "a\n"), ("sub/b.txt", "b" * 5000)]:
        with open(os.path.join(site, rel), "w") as f:
            f.write(data)
    big_sha = sha256_file(big)
    helia_js = os.path.join(HERE, "helia-provider.mjs")
    kubo_py = os.path.join(HERE, "kubo_provider.py")

    helia = Peer("helia-modern", [node, helia_js, "--seed", "selftest-helia", f"big={big}", f"site={site}"])
    helia_c = Peer("helia-classic", [node, helia_js, "--seed", "selftest-helia-classic", "--layout", "classic",
                                     f"big={big}", f"site={site}"])
    kubo = Peer("kubo", [python, kubo_py, "--seed", "selftest-kubo", f"big={big}", f"site={site}"])
    peers = [p for p in (helia, helia_c, kubo) if p.info]

    for p in peers:
        i = p.info
        check(f"{p.name}: multiaddrs are loopback TCP with /p2p/",
              bool(i["multiaddrs"]) and all(m.startswith("/ip4/127.0.0.1/tcp/") and m.endswith("/p2p/" + i["peerId"])
                                            for m in i["multiaddrs"]), str(i["multiaddrs"]))
        check(f"{p.name}: peer ID is Ed25519 (12D3KooW...)", i["peerId"].startswith("12D3KooW") and i["keyType"] == "ed25519")
        for m in i["multiaddrs"]:
            ok, d = multistream_ok(m)
            check(f"{p.name}: multistream-select on {m.split('/p2p/')[0]}", ok, d)

    if helia.info:
        check("helia-modern: CIDv1 roots", helia.info["roots"]["big"].startswith("bafy"), str(helia.info["roots"]))
    if helia_c.info and kubo.info:
        check("helia-classic file CID == kubo file CID", helia_c.info["roots"]["big"] == kubo.info["roots"]["big"],
              f'{helia_c.info["roots"]["big"]} vs {kubo.info["roots"]["big"]}')
        check("kubo roots are CIDv0", kubo.info["roots"]["big"].startswith("Qm"))

    # Bitswap: Kubo client <- Helia provider
    if helia.info:
        dest = os.path.join(WORK, "kubo-from-helia.bin")
        cid = helia.info["roots"]["big"]
        c = Peer("kubo-client", [python, kubo_py, "--seed", "selftest-kubo-client",
                                 "--connect", helia.info["multiaddrs"][0], "--fetch", f"{cid}={dest}"], timeout=180)
        if c.info:
            f = c.info.get("fetched", {}).get(cid, {})
            same = os.path.exists(dest) and sha256_file(dest) == big_sha
            check("Bitswap: Kubo fetched Helia's file, bytes identical", f.get("rc") == 0 and same,
                  f"{f.get('ms')} ms, rc={f.get('rc')}")
            c.close_stdin()
    # Bitswap: Helia client <- Kubo provider
    if kubo.info:
        dest = os.path.join(WORK, "helia-from-kubo.bin")
        cid = kubo.info["roots"]["big"]
        c = Peer("helia-client", [node, helia_js, "--seed", "selftest-helia-client",
                                  "--connect", kubo.info["multiaddrs"][0], "--fetch", f"{cid}={dest}"], timeout=180)
        if c.info:
            f = c.info.get("fetched", {}).get(cid, {})
            same = os.path.exists(dest) and sha256_file(dest) == big_sha
            check("Bitswap: Helia fetched Kubo's file, bytes identical", f.get("bytes") == args.size and same,
                  f"{f.get('ms')} ms")
            c.close_stdin()

    if helia.info:
        helia.close_stdin()
    if helia_c.info:
        helia_c.sigterm()
    if kubo.info:
        kubo.sigterm()
    for p in (helia, helia_c, kubo):
        if p.proc.poll() is None:
            p.proc.kill()

    print("startup: " + ", ".join(f"{p.name} {p.startup_ms} ms" for p in (helia, helia_c, kubo)))
    passed = sum(1 for r in RESULTS if r)
    failed = len(RESULTS) - passed
    if failed:
        print(f"stderr logs in {WORK}")
    else:
        shutil.rmtree(WORK, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
