#!/usr/bin/env python3
"""bench_routing_router.py — a minimal delegated routing v1 server for
loadtest/bench_routing.sh: GET /routing/v1/providers/<cid> answers one
Bitswap peer record for any CID.

    bench_routing_router.py --peer-id 12D3KooW... --addr /ip4/127.0.0.1/tcp/4001

Prints "PORT <n>" on stdout once listening; logs each lookup on stderr.
"""
import argparse, json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--peer-id", required=True)
ap.add_argument("--addr", required=True)
a = ap.parse_args()
BODY = json.dumps({"Providers": [{"Schema": "peer", "ID": a.peer_id, "Addrs": [a.addr],
                                  "Protocols": ["transport-bitswap"]}]}).encode()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/routing/v1/providers/"):
            body, code = BODY, 200
        else:
            body, code = b"not found\n", 404
        print(f"[router] {time.time():.3f} GET {self.path} -> {code}", file=sys.stderr, flush=True)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print("PORT", srv.server_address[1], flush=True)
try:
    srv.serve_forever()
except KeyboardInterrupt:
    pass
