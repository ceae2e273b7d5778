#!/usr/bin/env bash
# bench_site.sh — a site loaded as a browser loads it, fork per root on vs off (issue 14).
#
# A site of 60 files under one root (index.html linking 5 stylesheets, 5
# scripts and 49 BMP images: 10 files of 20-100 KiB, 49 of 50-500 KiB,
# deterministic bytes), added as a UnixFS directory to three Helia providers
# (tests/peers/helia-provider.mjs): two slow ones, each in its own network
# namespace behind `tc tbf` 20 Mbit/s both ways and a delaying TCP proxy
# (loadtest/tcp_shaper.py, 50 ms each way: +100 ms round trip), and a fast
# one on loopback. Two variants, each run fork off and fork on
# (SLUICE_SESSIONS_FORK=false|true, a fresh sluice and data dir per load,
# the arms' order alternated run by run, medians, off/on ratio):
#  http     a Python client (loadtest/bench_site.py) as a browser: GET the
#           index by path (/ipfs/<root>/), then the 59 files it links, 6 at a
#           time over 6 keep-alive connections; every request carries
#           X-Ipfs-Provider naming the three providers (slow, slow, fast:
#           the fast one last, so hint order does not help); time from the
#           index request to the last byte; every body's SHA-256 checked.
#  chromium headless Chromium (/usr/bin/chromium, fresh profile per load) opens
#           http://<cidv1-base32>.ipfs.localhost:<port>/. A browser cannot
#           send hints, so sluice finds the providers itself: its one
#           [routing] endpoint is a delegated-routing server in the driver
#           that answers every /routing/v1/providers/<cid> with the three
#           providers (they hold every block of the site). The page's own
#           script reports, after its load event, the time from the index
#           request to the last resource's last byte (Resource Timing), each
#           resource's Server-Timing and the SHA-256 of every file (fetched
#           again from the browser's cache) into its title, which the driver
#           reads over the DevTools HTTP endpoint (/json/list).
# Each load also counts the sub-requests whose Server-Timing names `fork`
# (whether forking happened) and the bytes each provider process wrote.
#
# Needs root (ip netns, tc). Knobs: RUNS (5), VARIANTS ("http chromium"),
# LAYOUT (modern|classic, the providers' UnixFS layout), SKIP_BUILD=1,
# KEEP_TMP=1, SLUICE_BINARY (default target/release/sluice; e.g. a build of
# another commit, with SKIP_BUILD=1), SLUICE_RUST_LOG (the measured sluice's
# RUST_LOG), CHROMIUM (/usr/bin/chromium), LOAD_TIMEOUT (120 s per load).
# Other SLUICE_* variables reach every sluice under the ones the script sets
# (a build without a key ignores its variable).
# Summary: loadtest/results/site-<UTC>.{md,json,log}.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
cd "$ROOT"
RUNS=${RUNS:-5}
OUT_PREFIX="$ROOT/loadtest/results/site-$STAMP"
WORK=$(mktemp -d /tmp/sluice-bench-site.XXXXXX)
NS_PREFIX="sbs$$"
NSLIST=()
DRIVER_PID=""

cleanup() {
  set +e
  if [[ -n "$DRIVER_PID" ]] && kill -0 "$DRIVER_PID" 2>/dev/null; then
    kill -TERM "$DRIVER_PID"; wait "$DRIVER_PID" 2>/dev/null
  fi
  for ns in "${NSLIST[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
  done
  sleep 0.5
  for ns in "${NSLIST[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  for i in 1 2; do ip link del "${NS_PREFIX}h$i" 2>/dev/null; done
  remove_work "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) == 0 ]] || { echo "needs root (ip netns, tc)" >&2; exit 1; }

# --- binaries: sluice (copied, so a concurrent rebuild cannot swap it mid-run) and the peers
release_build --bin sluice
SLUICE_BINARY=${SLUICE_BINARY:-target/release/sluice}
cp "$SLUICE_BINARY" "$WORK/sluice"
setup_peers
[[ -x "$PEERS_NODE" ]] || { echo "tests/peers/install.sh failed: node=$PEERS_NODE" >&2; exit 1; }
VARIANTS=${VARIANTS:-http chromium}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [[ " $VARIANTS " == *" chromium "* && ! -x "$CHROMIUM" ]]; then
  echo "no Chromium at $CHROMIUM (apt-get install chromium, or VARIANTS=http)" >&2; exit 1
fi

# --- two namespaces for the slow providers: veth pair each, 10.78.I.1 (host) <-> 10.78.I.2 (ns),
#     tbf 20 Mbit/s on both ends; the delay is added by tcp_shaper.py --delay-ms.
#     (10.78, not bench_retrieval.sh's 10.77, so both can run on one machine.)
add_ns() { # add_ns INDEX RATE
  local i=$1 rate=$2 ns="${NS_PREFIX}s$1" h="${NS_PREFIX}h$1" n="${NS_PREFIX}n$1"
  ip netns add "$ns"; NSLIST+=("$ns")
  ip link add "$h" type veth peer name "$n"
  ip link set "$n" netns "$ns"
  ip addr add "10.78.$i.1/24" dev "$h"; ip link set "$h" up
  ip netns exec "$ns" ip addr add "10.78.$i.2/24" dev "$n"
  ip netns exec "$ns" ip link set "$n" up
  ip netns exec "$ns" ip link set lo up
  tc qdisc add dev "$h" root tbf rate "$rate" burst 64kb latency 1000ms
  ip netns exec "$ns" tc qdisc add dev "$n" root tbf rate "$rate" burst 64kb latency 1000ms
}
SLOW_NS=""
for i in 1 2; do add_ns "$i" 20mbit; SLOW_NS+="${NS_PREFIX}s$i:10.78.$i.1:10.78.$i.2 "; done

{
  echo "bench_site.sh $STAMP"
  echo "git: $(git rev-parse --short HEAD) $(git status --porcelain -- src | wc -l) modified src files"
  echo "sluice binary: $SLUICE_BINARY, built $(stat -c %y "$SLUICE_BINARY" | cut -d. -f1), sha256 $(sha256sum "$SLUICE_BINARY" | cut -c1-16)"
  echo "SLUICE_* from the caller: $(env | grep '^SLUICE_' | grep -v '^SLUICE_BINARY=' | sort | tr '\n' ' ' || true)"
  echo "variants: $VARIANTS; chromium: $("$CHROMIUM" --version 2>/dev/null || echo none)"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT_PREFIX.log"

export SLUICE_BIN="$WORK/sluice" SLUICE_BINARY_DESC="$SLUICE_BINARY" PEERS_NODE PEERS_DIR="$ROOT/tests/peers"
export WORK OUT_PREFIX RUNS SLOW_NS VARIANTS CHROMIUM LAYOUT=${LAYOUT:-modern}
python3 "$ROOT/loadtest/bench_site.py" &
DRIVER_PID=$!
rc=0
wait "$DRIVER_PID" || rc=$?
DRIVER_PID=""
echo "summary: $OUT_PREFIX.md"
exit $rc
