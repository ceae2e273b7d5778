#!/usr/bin/env bash
# Paired A/B of two sluice builds on one small file: both up at once, each
# serving the same 4 KiB UnixFS CAR (DHT off, no routers, no listeners),
# `wrk -t2 -c64` alternating between them for ROUNDS rounds (order swapped
# every round); req/s and the server's CPU per request (utime + stime from
# /proc) for every round, then the medians and the ratios B/A.
#
#   bash loadtest/ab_pair.sh A_BINARY B_BINARY MAKE_CAR
#
# A paired run tells small differences apart on a noisy machine better
# than separate runs: both builds see the same load at nearly the same
# time. Tunables: ROUNDS (8), SECS (6), SIZE (4096).
set -euo pipefail
A=$1 B=$2 MC=$3
ROUNDS=${ROUNDS:-8} SECS=${SECS:-6} SIZE=${SIZE:-4096}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=ab_pair
T=$(mktemp -d /tmp/ab-pair.XXXXXX)
CID=$("$MC" "$SIZE" "$T/small.car" "$T/small.bin" modern)
start() { # name binary port -> pid
  mkdir -p "$T/$1"
  printf '[p2p]\nlisten = []\n\n[routing]\nendpoints = []\n\n[metrics]\nlisten = "127.0.0.1:%s"\n\n[dht]\nmode = "off"\n' "$(free_port)" >"$T/$1.toml"
  RUST_LOG=warn "$2" --config "$T/$1.toml" serve --listen "127.0.0.1:$3" --data-dir "$T/$1" --car "$T/small.car" >"$T/$1.log" 2>&1 &
  echo $!
}
PORT_A=$(free_port) PORT_B=$(free_port)
PID_A=$(start a "$A" "$PORT_A") PID_B=$(start b "$B" "$PORT_B")
trap 'kill $PID_A $PID_B 2>/dev/null; rm -rf "$T"' EXIT
for port in $PORT_A $PORT_B; do
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/ipfs/$CID" && break; sleep 0.2; done
  cmp <(curl -s "http://127.0.0.1:$port/ipfs/$CID") "$T/small.bin" || die "port $port serves other bytes"
  wrk -t2 -c64 -d3s "http://127.0.0.1:$port/ipfs/$CID" >/dev/null
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -a RPS_A RPS_B CPU_A CPU_B
for round in $(seq "$ROUNDS"); do
  order=(a b); ((round % 2)) || order=(b a)
  for which in "${order[@]}"; do
    if [[ $which == a ]]; then pid=$PID_A port=$PORT_A; else pid=$PID_B port=$PORT_B; fi
    t0=$(ticks "$pid")
    out=$(wrk -t2 -c64 -d"${SECS}s" "http://127.0.0.1:$port/ipfs/$CID")
    t1=$(ticks "$pid")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    cpu=$(awk -v t=$((t1 - t0)) -v q="$requests" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t * 1e6 / hz / q}')
    log "round $round $which: $rps req/s, $cpu us CPU/request (load $(cut -d' ' -f1 /proc/loadavg))"
    if [[ $which == a ]]; then RPS_A+=("$rps"); CPU_A+=("$cpu"); else RPS_B+=("$rps"); CPU_B+=("$cpu"); fi
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ra=$(median "${RPS_A[@]}") rb=$(median "${RPS_B[@]}") ca=$(median "${CPU_A[@]}") cb=$(median "${CPU_B[@]}")
echo "A $A (sha256 $(sha256sum "$A" | cut -c1-16)): median $ra req/s, $ca us CPU/request"
echo "B $B (sha256 $(sha256sum "$B" | cut -c1-16)): median $rb req/s, $cb us CPU/request"
awk -v ra="$ra" -v rb="$rb" -v ca="$ca" -v cb="$cb" 'BEGIN {printf "B/A: %.2fx req/s, %.2fx CPU per request\n", rb / ra, cb / ca}'
