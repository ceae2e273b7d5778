#!/usr/bin/env python3
"""bench_site.py — the driver behind loadtest/bench_site.sh (issue 14).

Writes the site, starts the three Helia providers (two in the slow
namespaces bench_site.sh made, behind tcp_shaper.py), a delegated-routing
server answering with them (for the Chromium variant), and for every load a
fresh sluice (fork off or on) and, in the Chromium variant, a fresh
Chromium. Run it through bench_site.sh, which sets up and tears down the
namespaces. The header of bench_site.sh says what is measured.

Environment (set by bench_site.sh): SLUICE_BIN, SLUICE_BINARY_DESC,
PEERS_NODE, PEERS_DIR, WORK, OUT_PREFIX, RUNS, SLOW_NS (space-separated
"ns:host_ip:ns_ip" triples), VARIANTS, CHROMIUM, LAYOUT; optional
LOAD_TIMEOUT, SLUICE_RUST_LOG.
"""
import base64
import hashlib
import html
import html.parser
import http.client
import json
import os
import queue
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
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLUICE_BIN = os.environ.get("SLUICE_BIN", "")
NODE = os.environ.get("PEERS_NODE", "")
PEERS = os.environ.get("PEERS_DIR", "")
WORK = os.environ.get("WORK", "")
OUT = os.environ.get("OUT_PREFIX", "")
RUNS = int(os.environ.get("RUNS", "5"))
LAYOUT = os.environ.get("LAYOUT", "modern")
VARIANTS = os.environ.get("VARIANTS", "http chromium").split()
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SLOW_NS = [tuple(x.split(":")) for x in os.environ.get("SLOW_NS", "").split()]
LOAD_TIMEOUT = float(os.environ.get("LOAD_TIMEOUT", "120"))
HERE = os.path.dirname(os.path.abspath(__file__))
CONNECTIONS = 6  # a browser's connections per origin over HTTP/1.1
# fork off, fork on, and a reference: the fast provider alone (fork off), the
# floor a session that knew the best provider from the start could reach.
ARMS = ("off", "on", "alone")

procs = []
results = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": RUNS,
           "layout": LAYOUT, "variants": {}, "loadavg": {},
           "binary": os.environ.get("SLUICE_BINARY_DESC", SLUICE_BIN)}
logf = open(OUT + ".log" if OUT else os.devnull, "a")


def log(msg):
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, file=sys.stderr, flush=True)
    logf.write(line + "\n")
    logf.flush()


def loadavg(tag):
    la = " ".join(open("/proc/loadavg").read().split()[:3])
    results["loadavg"][tag] = la
    log(f"load average ({tag}): {la}")


def cleanup(*_):
    for p in procs:
        if p.poll() is None:
            try:
                p.terminate()
            except OSError:
                pass
    deadline = time.time() + 5
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()


def on_signal(sig, _):
    cleanup()
    sys.exit(128 + sig)


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, d=2):
    return "n/a" if x is None else f"{x:.{d}f}"


# ---------------------------------------------------------------- the site

def text_file(rnd, size, head, line):
    """`head`, then `line(rnd)` lines until `size` bytes (valid CSS or JS throughout)."""
    out = [head]
    n = len(head)
    while n < size:
        s = line(rnd)
        out.append(s)
        n += len(s)
    return "".join(out).encode()


def bmp(rnd, size):
    """A valid 24-bit BMP of random pixels, 256 wide, about `size` bytes."""
    w = 256
    row = w * 3  # a multiple of 4: no row padding
    h = max(1, (size - 54) // row)
    pixels = rnd.randbytes(row * h)
    header = b"BM" + (54 + len(pixels)).to_bytes(4, "little") + b"\0\0\0\0" + (54).to_bytes(4, "little")
    info = ((40).to_bytes(4, "little") + w.to_bytes(4, "little") + h.to_bytes(4, "little")
            + (1).to_bytes(2, "little") + (24).to_bytes(2, "little") + b"\0" * 4
            + len(pixels).to_bytes(4, "little") + (2835).to_bytes(4, "little") * 2 + b"\0" * 8)
    return header + info + pixels, h


# The page's own report: after the load event, the time from the index
# request to the last resource's last byte, each resource's Server-Timing,
# and every file's SHA-256 (fetched again, from the browser's cache), posted
# to the driver's collector (a title would do, but DevTools' /json/list cuts
# titles at 4096 characters).
REPORT_JS = r"""
addEventListener('load', () => setTimeout(report, 0));
const st = s => s.name + (s.duration ? ';dur=' + s.duration : '') + (s.description ? ';desc=' + s.description : '');
async function report() {
  try {
    const nav = performance.getEntriesByType('navigation')[0];
    const res = performance.getEntriesByType('resource');
    let end = nav.responseEnd;
    for (const e of res) end = Math.max(end, e.responseEnd);
    const base = new URL('./', location.href).pathname;
    const rel = u => decodeURIComponent(new URL(u).pathname.slice(base.length));
    const entries = res.map(e => ({
      path: rel(e.name), proto: e.nextHopProtocol, start_ms: Math.round(e.startTime),
      end_ms: Math.round(e.responseEnd),
      st: (e.serverTiming || []).map(st).join(', ')
    }));
    const out = {
      ms: end - nav.requestStart, from_navigation_ms: end, index_ms: nav.responseEnd - nav.requestStart,
      load_event_ms: nav.loadEventStart, scripts: window.benchScripts || 0,
      styled: getComputedStyle(document.body).backgroundColor,
      index_st: (nav.serverTiming || []).map(st).join(', '),
      entries, hashes: {}
    };
    for (const path of ['index.html', ...entries.map(e => e.path)]) {
      const r = await fetch(path, { cache: 'force-cache' });
      const d = await crypto.subtle.digest('SHA-256', await r.arrayBuffer());
      out.hashes[path] = Array.from(new Uint8Array(d), b => b.toString(16).padStart(2, '0')).join('');
    }
    // The driver's collector, named in the URL's fragment (never sent to the gateway).
    const to = new URLSearchParams(location.hash.slice(1)).get('report');
    await fetch(to, { method: 'POST', mode: 'no-cors', body: JSON.stringify(out) });
    document.title = 'DONE';
  } catch (e) {
    document.title = 'FAIL ' + e;
  }
}
"""


def make_site(root):
    """index.html + css/s0-4.css + js/a0-4.js (20-100 KiB) + img/i00-48.bmp (50-500 KiB).
    Returns {relative path: (sha256 hex, size)}."""
    rnd = random.Random(14)
    files = {}
    styles, scripts, images = [], [], []
    for i in range(5):
        size = rnd.randint(20, 100) << 10
        data = text_file(rnd, size, f"/* bench_site stylesheet {i} */\nbody {{ background-color: rgb(1, 2, {i + 3}); }}\n",
                         lambda r, i=i: f".s{i}-{r.randrange(1 << 30):x} {{ margin: {r.randrange(9)}px; }} /* {r.randbytes(24).hex()} */\n")
        files[f"css/s{i}.css"] = data
        styles.append(f"css/s{i}.css")
    for i in range(5):
        size = rnd.randint(20, 100) << 10
        data = text_file(rnd, size, f"// bench_site script {i}\nwindow.benchScripts = (window.benchScripts || 0) + 1;\n",
                         lambda r: f"// {r.randbytes(30).hex()}\n")
        files[f"js/a{i}.js"] = data
        scripts.append(f"js/a{i}.js")
    for i in range(49):
        data, h = bmp(rnd, rnd.randint(50, 500) << 10)
        files[f"img/i{i:02d}.bmp"] = data
        images.append((f"img/i{i:02d}.bmp", h))
    page = ['<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>loading</title>\n',
            '<link rel="icon" href="data:,">\n']  # no /favicon.ico request: the site is its 60 files
    page += [f'<link rel="stylesheet" href="{s}">\n' for s in styles]
    page.append("</head><body><h1>bench_site: 60 files under one root</h1>\n")
    page += [f'<img src="{p}" width="64" height="{max(1, h // 4)}" alt="">\n' for p, h in images]
    page += [f'<script src="{s}"></script>\n' for s in scripts]
    page.append(f"<script>{REPORT_JS}</script>\n</body></html>\n")
    files["index.html"] = "".join(page).encode()
    manifest = {}
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        manifest[rel] = (hashlib.sha256(data).hexdigest(), len(data))
    return manifest


class Links(html.parser.HTMLParser):
    """The subresources a browser fetches for the page, in document order."""

    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        url = None
        if tag == "link" and a.get("rel") == "stylesheet":
            url = a.get("href")
        elif tag in ("img", "script"):
            url = a.get("src")
        if url and not url.startswith("data:"):
            self.links.append(url)


# ---------------------------------------------------------------- CIDs

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def cid_v1_base32(cid):
    """The subdomain label of a CID: CIDv1 in base32 (a CIDv0 is dag-pb)."""
    if cid.startswith("b"):
        return cid
    if not cid.startswith("Qm"):
        raise ValueError(f"cannot convert {cid}")
    n = 0
    for ch in cid:
        n = n * 58 + B58.index(ch)
    mh = n.to_bytes((n.bit_length() + 7) // 8, "big")
    raw = bytes([0x01, 0x70]) + mh
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


# ---------------------------------------------------------------- providers

def read_json_line(p, timeout, what):
    box = {}
    t = threading.Thread(target=lambda: box.update(line=p.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    if not box.get("line"):
        raise RuntimeError(f"{what}: no JSON line within {timeout}s (rc={p.poll()})")
    return json.loads(box["line"])


def start_helia(seed, site, netns=None):
    cmd = [NODE, f"{PEERS}/helia-provider.mjs", "--port", "0", "--seed", seed, "--layout", LAYOUT, f"site={site}"]
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd  # ip execs the command: the pid is Node's
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logf, text=True)
    procs.append(p)
    info = read_json_line(p, 180, f"helia {seed}")
    ma = info["multiaddrs"][0]
    info["port"] = int(ma.split("/tcp/")[1].split("/")[0])
    info["proc"] = p
    info["hint"] = ma
    return info


def slow_provider(seed, site, ns, nip):
    info = start_helia(seed, site, netns=ns)
    px = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, os.path.join(HERE, "tcp_shaper.py"),
                           "--listen", f"{nip}:4001", "--target", f"127.0.0.1:{info['port']}", "--delay-ms", "50"],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=logf, text=True)
    procs.append(px)
    if px.stdout.readline().strip() != "READY":
        raise RuntimeError("delay proxy did not start")
    info["hint"] = f"/ip4/{nip}/tcp/4001/p2p/{info['peerId']}"
    return info


def wchar(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


class Router:
    """Delegated routing v1 answering every /routing/v1/providers/<cid> with the
    table's providers (all three hold every block of the site); counts lookups.
    Also collects the Chromium page's reports (POST /report/<tag>)."""

    def __init__(self, providers):
        self.lock = threading.Lock()
        self.set_table(providers)
        self.lookups = []
        self.reports = {}
        router = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path.startswith("/routing/v1/providers/"):
                    b, code = router.body, 200
                    with router.lock:
                        router.lookups.append(self.path.split("/")[4].split("?")[0])
                else:
                    b, code = b"not found\n", 404
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                b = self.rfile.read(min(n, 1 << 20))
                if self.path.startswith("/report/"):
                    with router.lock:
                        router.reports[self.path[len("/report/"):]] = b
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def set_table(self, providers):
        """[(peer id, multiaddr)]: the providers every lookup is answered with from now on."""
        self.body = json.dumps({"Providers": [{"Schema": "peer", "ID": pid, "Addrs": [addr],
                                               "Protocols": ["transport-bitswap"]} for pid, addr in providers]}).encode()

    def report(self, tag):
        with self.lock:
            return self.reports.pop(tag, None)

    def take(self):
        with self.lock:
            out, self.lookups = self.lookups, []
        return out


# ---------------------------------------------------------------- sluice

class Sluice:
    def __init__(self, fork, routing_endpoints=()):
        self.port = free_port()
        self.control_port = free_port()
        self.dir = os.path.join(WORK, f"sluice-data-{self.port}-{time.time_ns()}")
        os.makedirs(self.dir)
        env = dict(os.environ, SLUICE_HINTS_ALLOW_PRIVATE="true", SLUICE_P2P_LISTEN="[]",
                   SLUICE_ROUTING_ENDPOINTS=json.dumps(list(routing_endpoints)), SLUICE_DHT_MODE="off",
                   SLUICE_SESSIONS_FORK="true" if fork else "false",
                   SLUICE_METRICS_LISTEN=f"127.0.0.1:{self.control_port}",
                   RUST_LOG=os.environ.get("SLUICE_RUST_LOG", "warn"))
        self.p = subprocess.Popen([SLUICE_BIN, "serve", "--listen", f"127.0.0.1:{self.port}",
                                   "--data-dir", self.dir], env=env, stdin=subprocess.DEVNULL,
                                  stdout=logf, stderr=logf)
        procs.append(self.p)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError("sluice exited at start")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=1)
                c.request("GET", "/readyz")
                ok = c.getresponse().status == 200
                c.close()
                if ok:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("sluice not ready within 30 s")

    def close(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        procs.remove(self.p)
        shutil.rmtree(self.dir, ignore_errors=True)


def has_fork(st):
    return "fork" in (st or "")


def fetch_ms(st):
    """The `fetch;dur=` of a Server-Timing value (ms the request spent fetching blocks), or None."""
    m = re.search(r"(?:^|,)\s*fetch;dur=([0-9.]+)", st or "")
    return float(m.group(1)) if m else None


# ---------------------------------------------------------------- the loads

def load_http(s, root, hints, manifest):
    """GET the index, then the files it links, CONNECTIONS at a time over keep-alive connections."""
    headers = {"X-Ipfs-Provider": ", ".join(hints)}
    base = f"/ipfs/{root}/"
    conns = [http.client.HTTPConnection("127.0.0.1", s.port, timeout=LOAD_TIMEOUT) for _ in range(CONNECTIONS)]
    errors = []
    t0 = time.monotonic()
    conns[0].request("GET", base, headers=headers)
    r = conns[0].getresponse()
    index = r.read()
    t_index = time.monotonic() - t0
    index_st = r.getheader("Server-Timing", "")
    if r.status != 200 or hashlib.sha256(index).hexdigest() != manifest["index.html"][0]:
        errors.append(f"index: status {r.status}, {len(index)} bytes")
    parser = Links()
    parser.feed(index.decode("utf-8", "replace"))
    urls = [urllib.parse.urljoin(base, u) for u in parser.links]
    want = {base + k for k in manifest if k != "index.html"}
    if set(urls) != want or len(urls) != len(want):
        errors.append(f"index links {len(urls)} files, {len(set(urls) & want)} of the {len(want)} expected")
    work = queue.Queue()
    for u in urls:
        work.put(u)
    done = []
    lock = threading.Lock()

    def worker(conn):
        while True:
            try:
                u = work.get_nowait()
            except queue.Empty:
                return
            try:
                conn.request("GET", u, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                t = time.monotonic() - t0
                rel = u[len(base):]
                ok = resp.status == 200 and rel in manifest and hashlib.sha256(body).hexdigest() == manifest[rel][0]
                row = {"path": rel, "status": resp.status, "bytes": len(body), "ok": ok, "end_s": t,
                       "st": resp.getheader("Server-Timing", ""), "closed": resp.will_close}
            except (OSError, http.client.HTTPException) as e:
                row = {"path": u, "status": None, "bytes": 0, "ok": False, "end_s": None, "st": "", "error": repr(e)}
            with lock:
                done.append(row)

    threads = [threading.Thread(target=worker, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in conns:
        c.close()
    bad = [d for d in done if not d["ok"]]
    if bad:
        errors.append(f"{len(bad)} bad sub-requests, e.g. {bad[0]}")
    ends = [d["end_s"] for d in done if d["end_s"] is not None]
    return {"s": max(ends + [t_index]), "index_s": t_index, "ok": not errors, "errors": errors,
            "fork": sum(has_fork(d["st"]) for d in done), "sub_requests": len(done),
            "index_st": index_st, "reconnects": sum(bool(d.get("closed")) for d in done),
            "st": {d["path"]: d["st"] for d in done}}


def devtools_pages(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/json/list")
        pages = json.loads(c.getresponse().read())
        c.close()
        return [p for p in pages if p.get("type") == "page"]
    except (OSError, ValueError, http.client.HTTPException):
        return []


def load_chromium(s, root32, manifest, tag, collector):
    profile = os.path.join(WORK, f"chromium-{tag}-{time.time_ns()}")
    os.makedirs(profile)
    dport = free_port()
    url = f"http://{root32}.ipfs.localhost:{s.port}/#report={collector.url}/report/{tag}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", "--disable-default-apps", "--mute-audio",
           f"--remote-debugging-port={dport}", f"--user-data-dir={profile}", url]
    err = open(os.path.join(WORK, f"chromium-{tag}.err"), "ab")
    # own process group: Chromium's helper processes go with it
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
    procs.append(p)
    t0 = time.monotonic()
    body = failed = None
    try:
        while time.monotonic() - t0 < LOAD_TIMEOUT:
            body = collector.report(tag)
            if body is not None or p.poll() is not None:
                break
            for page in devtools_pages(dport):
                t = html.unescape(page.get("title", ""))  # /json/list escapes it as HTML
                if t.startswith("FAIL "):
                    failed = t
            if failed:
                break
            time.sleep(0.2)
    finally:
        wall = time.monotonic() - t0
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
        procs.remove(p)
        err.close()
        shutil.rmtree(profile, ignore_errors=True)
    try:
        rep = json.loads(body) if body is not None else None
    except ValueError:
        rep = None
    if rep is None:
        return {"s": None, "ok": False, "errors": [f"page did not report: {failed or 'timeout or bad JSON'}"],
                "wall_s": wall, "fork": 0, "sub_requests": 0}
    errors = []
    got = rep["hashes"]
    for rel, (sha, _size) in manifest.items():
        if got.get(rel) != sha:
            errors.append(f"{rel}: sha256 {got.get(rel)}")
    paths = [e["path"] for e in rep["entries"]]
    if sorted(paths) != sorted(k for k in manifest if k != "index.html"):
        errors.append(f"{len(paths)} resources loaded, not the 59 files: {sorted(set(paths) ^ set(manifest))[:5]}")
    if rep["scripts"] != 5:
        errors.append(f"{rep['scripts']} of 5 scripts ran")
    if rep["styled"] != "rgb(1, 2, 7)":  # the last stylesheet's body rule
        errors.append(f"stylesheets not applied: body background {rep['styled']}")
    return {"s": rep["ms"] / 1000.0, "index_s": rep["index_ms"] / 1000.0, "ok": not errors, "errors": errors[:5],
            "fork": sum(has_fork(e["st"]) for e in rep["entries"]), "sub_requests": len(rep["entries"]),
            "index_st": rep["index_st"], "wall_s": wall, "load_event_ms": rep["load_event_ms"],
            "protocols": sorted({e["proto"] for e in rep["entries"]}), "styled": rep["styled"],
            "st": {e["path"]: e["st"] for e in rep["entries"]}}


# ---------------------------------------------------------------- main

def main():
    site = os.path.join(WORK, "site")
    manifest = make_site(site)
    total = sum(sz for _, sz in manifest.values())
    log(f"site: {len(manifest)} files, {total / 2**20:.1f} MiB in {site}")
    loadavg("start")
    if len(SLOW_NS) != 2:
        raise RuntimeError(f"SLOW_NS names {len(SLOW_NS)} namespaces, not 2")
    slow = [slow_provider(f"site-slow-{i + 1}", site, ns, nip) for i, (ns, _hip, nip) in enumerate(SLOW_NS)]
    fast = start_helia("site-fast", site)
    provs = {"fast": fast, "slow1": slow[0], "slow2": slow[1]}
    roots = {p["roots"]["site"] for p in provs.values()}
    if len(roots) != 1:
        raise RuntimeError(f"providers disagree on the site's root: {roots}")
    root = roots.pop()
    root32 = cid_v1_base32(root)
    hints = [slow[0]["hint"], slow[1]["hint"], fast["hint"]]
    for name, p in provs.items():
        log(f"provider {name}: {p['hint']}")
    log(f"site root {root} (subdomain label {root32})")
    table = [(p["peerId"], p["hint"].split("/p2p/")[0]) for p in (slow[0], slow[1], fast)]
    router = Router(table)
    log(f"delegated routing (Chromium variant): {router.url}")
    results.update(root=root, files=len(manifest), site_bytes=total, hints=hints)

    for v in VARIANTS:
        results["variants"][v] = {"rows": []}
    for r in range(RUNS):
        loadavg(f"run {r + 1}")
        for v in VARIANTS:
            row = {}
            for arm in ARMS[r % 3:] + ARMS[:r % 3]:
                s = Sluice(arm == "on", routing_endpoints=[router.url] if v == "chromium" else [])
                router.set_table(table[2:] if arm == "alone" else table)
                router.take()
                base = {n: wchar(p["proc"].pid) for n, p in provs.items()}
                try:
                    if v == "http":
                        x = load_http(s, root, hints[2:] if arm == "alone" else hints, manifest)
                    else:
                        x = load_chromium(s, root32, manifest, f"r{r}-{arm}", router)
                finally:
                    s.close()
                x["sent"] = {n: wchar(p["proc"].pid) - base[n] for n, p in provs.items()}
                x["fetch_ms_p50"] = med([fetch_ms(v) for v in x.get("st", {}).values()])
                lookups = router.take()
                x["routing_lookups"] = len(lookups)
                x["routing_cids"] = len(set(lookups))
                row[arm] = x
                sent = "/".join(f"{x['sent'][n] / 2**20:.2f}" for n in ("fast", "slow1", "slow2"))
                log(f"  {v} run {r + 1} fork {arm}: {fmt(x['s'])} s ok={x['ok']} fork entries {x['fork']}/"
                    f"{x['sub_requests']} sub-request fetch p50 {fmt(x['fetch_ms_p50'], 1)} ms "
                    f"MiB fast/slow1/slow2 {sent} lookups {len(lookups)}"
                    + (f" errors {x['errors']}" if x["errors"] else ""))
            results["variants"][v]["rows"].append(row)
        with open(OUT + ".json", "w") as f:
            json.dump(results, f, indent=1)
    loadavg("end")
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    summarize()
    bad = sum(not row[a]["ok"] for v in results["variants"].values() for row in v["rows"] for a in ARMS)
    if bad:
        log(f"{bad} loads failed (see the log)")
        sys.exit(1)


def summarize():
    L = [f"Run {results['started']} .. {results.get('finished', '?')}, RUNS={results['runs']}, "
         f"layout={results['layout']}, binary {results['binary']}, "
         f"site: {results['files']} files, {results['site_bytes'] / 2**20:.1f} MiB, root {results['root']}",
         f"load average: {results['loadavg']}", ""]
    titles = {
        "http": "Python client: index, then 59 files 6 at a time over 6 keep-alive connections, "
                "hints (X-Ipfs-Provider: slow1, slow2, fast) on every request, path form",
        "chromium": "Headless Chromium on the subdomain form, no hints: providers from delegated routing "
                    "(a table answering every CID with the three)",
    }
    for v, data in results["variants"].items():
        rows = data["rows"]
        L.append(f"### {v}: {titles[v]}\n")
        L.append("Time = from the index request to the last byte of the last file. *Fast alone* = fork off with "
                 "only the fast provider " + ("hinted" if v == "http" else "in the routing answers")
                 + " (a reference: about the best a session that knew the best provider from the start could do). "
                 "Fork entries = sub-requests (of 59) whose Server-Timing names `fork`; sub-request fetch = the median "
                 "`fetch;dur` of their Server-Timing (ms the request had spent fetching blocks when its headers went out). MiB = bytes each provider "
                 f"process wrote during the load (site {results['site_bytes'] / 2**20:.1f} MiB). "
                 "Arms rotated run by run; a fresh sluice (empty cache) per load.\n")
        L.append("| run | fork off s | fork on s | fast alone s | **off / on** | off / alone | fork entries off / on "
                 "| sub-request fetch p50 ms off / on / alone | MiB fast/slow1/slow2 off | on | routing lookups off / on / alone | ok |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        ratios, floor = [], []
        def okt(x):
            return x["s"] if x["ok"] else None
        for i, row in enumerate(rows):
            off, on, alone = row["off"], row["on"], row.get("alone")
            ratio = okt(off) / okt(on) if okt(off) and okt(on) else None
            fl = okt(off) / okt(alone) if alone and okt(off) and okt(alone) else None
            if ratio:
                ratios.append(ratio)
            if fl:
                floor.append(fl)
            so, sn = ("/".join(f"{x['sent'][n] / 2**20:.2f}" for n in ("fast", "slow1", "slow2")) for x in (off, on))
            L.append(f"| {i + 1} | {fmt(okt(off))} | {fmt(okt(on))} | {fmt(okt(alone) if alone else None)} | "
                     f"{fmt(ratio)} | {fmt(fl)} | {off['fork']} / {on['fork']} | "
                     f"{' / '.join(fmt(x.get('fetch_ms_p50'), 1) for x in (off, on, alone or {}))} | {so} | {sn} | "
                     f"{' / '.join(str(x.get('routing_lookups', '')) for x in (off, on, alone or {}))} | "
                     f"{all(x['ok'] for x in row.values())} |")
        m_off = med([okt(row["off"]) for row in rows])
        m_on = med([okt(row["on"]) for row in rows])
        m_alone = med([okt(row["alone"]) for row in rows if "alone" in row])
        m_ratio = med(ratios)
        forks_on = sum(row["on"]["fork"] for row in rows)
        L.append(f"| median | {fmt(m_off)} | {fmt(m_on)} | {fmt(m_alone)} | **{fmt(m_ratio)}** | {fmt(med(floor))} "
                 "| | | | | | |")
        data.update(median_off_s=m_off, median_on_s=m_on, median_alone_s=m_alone, median_ratio=m_ratio,
                    median_off_over_alone=med(floor), fork_entries_on=forks_on,
                    fork_entries_off=sum(row["off"]["fork"] for row in rows))
        if forks_on == 0:
            verdict = ("no request was forked in the fork-on arm (a build without fork, or fork not applied): "
                       "this measures the harness, not the feature")
        elif m_ratio is not None and m_ratio >= 1.5:
            verdict = "target (fork on at least 1.5x faster) **met**"
        else:
            verdict = "target (fork on at least 1.5x faster) **missed**"
        spread = f"{fmt(min(ratios))}–{fmt(max(ratios))}" if ratios else "n/a"
        L.append(f"\nMedian off / on {fmt(m_ratio)} (ratio of medians {fmt(m_off / m_on if m_off and m_on else None)}; "
                 f"per run {spread}); {verdict}.\n")
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
        summarize()
        sys.exit(0)
    try:
        main()
    finally:
        cleanup()
