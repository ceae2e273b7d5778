#!/usr/bin/env bash
# What name resolution costs once it is cached (issue 15): requests/s for
# one small file (the conformance fixture "hello\n") asked for by
#   ipfs     /ipfs/<cid>
#   ipns     /ipns/<key>             (the fixture's Ed25519 IPNS record)
#   dnslink  / with Host: <domain>   (a DNSLink site, _dnslink TXT -> /ipfs/<cid>)
#   dnsipns  / with Host: <domain2>  (DNSLink -> /ipns/<key> -> /ipfs/<cid>)
# on one sluice, warm, same run, alternated RUNS times; reports the medians
# and each name form's ratio to /ipfs/ (target: at least 0.90).
#
#   bash loadtest/bench_names.sh
#
# Needs wrk and dnsmasq (Debian packages, installed if missing), the
# conformance fixtures (../shared/conformance/fixtures) and a release build
# (SKIP_BUILD=1 SLUICE_BINARY=... to use another). DNS answers come from a
# private dnsmasq on loopback (TTL 300 s); IPNS records from the data
# directory's ipns/ (the record's own TTL applies).
#
# Tunables: RUNS (3), SECS (10), CONNS (64), SKIP_BUILD (0), SLUICE_BINARY,
# KEEP_TMP (0). Summary: loadtest/results/names-<UTC timestamp>.md.
set -euo pipefail

RUNS=${RUNS:-3}
SECS=${SECS:-10}
CONNS=${CONNS:-64}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=bench_names
FIX="$ROOT/../shared/conformance/fixtures"
[[ -d "$FIX" ]] || die "no conformance fixtures at $FIX"
SUMMARY="$LT/results/names-$STAMP.md"
LOG="$LT/results/names-$STAMP.log"

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
[[ -x "$DNSMASQ" ]] || need+=(dnsmasq-base)
if [[ ${#need[@]} -gt 0 ]]; then
  log "installing ${need[*]}"
  apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
  DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
fi

BIN=${SLUICE_BINARY:-$ROOT/target/release/sluice}
if [[ -z "${SLUICE_BINARY:-}" ]]; then
  release_build --bin sluice
fi
WORK=$(mktemp -d /tmp/bench-names.XXXXXX)
cleanup() { stop_started; [[ "${KEEP_TMP:-0}" == 1 ]] || rm -rf "$WORK"; }
trap cleanup EXIT

HELLO=bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am
KEY=12D3KooWLQzUv2FHWGVPXTXSZpdHs7oHbXub2G5WC8Tx4NQhyd2d
KEY36=k51qzi5uqu5dk3v4rmjber23h16xnr23bsggmqqil9z2gduiis5se8dht36dam
mkdir -p "$WORK/data/ipns"
cp "$FIX/subdomain_gateway/$KEY.ipns-record" "$WORK/data/ipns/$KEY.ipns-record"

DNS_PORT=$(free_port)
"$DNSMASQ" --keep-in-foreground --no-resolv --no-hosts --no-daemon --conf-file=/dev/null \
  --listen-address=127.0.0.1 --bind-interfaces --port="$DNS_PORT" --local-ttl=300 --user=root \
  --txt-record="_dnslink.site.bench.example,dnslink=/ipfs/$HELLO" \
  --txt-record="_dnslink.named.bench.example,dnslink=/ipns/$KEY36" \
  >"$WORK/dnsmasq.log" 2>&1 &
PIDS+=($!)
sleep 0.5

PORT=$(free_port); CTL=$(free_port)
cat >"$WORK/sluice.toml" <<EOF
[server]
listen = "127.0.0.1:$PORT"
[metrics]
listen = "127.0.0.1:$CTL"
[store]
data_dir = "$WORK/data"
car_files = ["$FIX/subdomain_gateway/fixtures.car"]
[p2p]
listen = []
[routing]
endpoints = []
[dht]
mode = "off"
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
[log]
filter = "warn"
EOF
RUST_LOG=warn "$BIN" --config "$WORK/sluice.toml" serve >"$WORK/sluice.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
wait_http "http://127.0.0.1:$CTL/readyz" "$GW_PID" sluice 30 "$WORK/sluice.log" || exit 1
URL="http://127.0.0.1:$PORT"

declare -A PATHS=([ipfs]="/ipfs/$HELLO" [ipns]="/ipns/$KEY36" [dnslink]="/" [dnsipns]="/")
declare -A HOSTS=([ipfs]="127.0.0.1:$PORT" [ipns]="127.0.0.1:$PORT" [dnslink]="site.bench.example" [dnsipns]="named.bench.example")
FORMS=(ipfs ipns dnslink dnsipns)
for form in "${FORMS[@]}"; do
  body=$(curl -sf -H "Host: ${HOSTS[$form]}" "$URL${PATHS[$form]}") || die "$form: request failed ($(tail -3 "$WORK/sluice.log"))"
  [[ "$body" == hello ]] || die "$form: got ${body:0:80}"
  # Warm: the name caches and the block cache.
  wrk -t2 -c"$CONNS" -d2s -H "Host: ${HOSTS[$form]}" "$URL${PATHS[$form]}" >/dev/null 2>&1
done

declare -A RPS
for run in $(seq 1 "$RUNS"); do
  # Alternate the order run by run, so no form always goes first.
  order=("${FORMS[@]}")
  (( run % 2 == 0 )) && order=(dnsipns dnslink ipns ipfs)
  for form in "${order[@]}"; do
    out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" -H "Host: ${HOSTS[$form]}" "$URL${PATHS[$form]}" 2>&1)
    echo "== run $run $form (load $(cut -d' ' -f1-3 /proc/loadavg))" >>"$LOG"
    echo "$out" >>"$LOG"
    grep -q "Non-2xx" <<<"$out" && die "$form: non-2xx answers: $out"
    RPS[${form}_$run]=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    log "run $run $form: ${RPS[${form}_$run]} req/s"
  done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
declare -A MED
for form in "${FORMS[@]}"; do
  vals=()
  for run in $(seq 1 "$RUNS"); do vals+=("${RPS[${form}_$run]}"); done
  MED[$form]=$(median "${vals[@]}")
done
{
  echo "## Name resolution, cached ($STAMP)"
  echo
  echo "$(machine_desc); binary $BIN (sha256 $(sha256sum "$BIN" | cut -c1-16)); wrk -t2 -c$CONNS -d${SECS}s, $RUNS runs alternated, medians"
  echo
  echo "| form | request | req/s (median) | runs | vs /ipfs/ |"
  echo "|---|---|---|---|---|"
  for form in "${FORMS[@]}"; do
    runs=""
    for run in $(seq 1 "$RUNS"); do runs+="${RPS[${form}_$run]} "; done
    ratio=$(awk -v a="${MED[$form]}" -v b="${MED[ipfs]}" 'BEGIN {printf "%.2fx", a / b}')
    echo "| $form | \`Host: ${HOSTS[$form]}\` \`${PATHS[$form]}\` | ${MED[$form]} | $runs| $ratio |"
  done
} | tee "$SUMMARY"
