#!/usr/bin/env bash
# soak.sh — 10-minute soak of sluice under the mixed k6 load (issue 5). Not run by tests.
#
# Same setup as run_k6.sh (see loadtest/lib.sh), then all three k6 user
# kinds of k6/gateway.js at once (browser 8 VUs, curl 6, trustless 6) for
# SOAK_SECS (600) against three Helia providers serving the same content:
#   A  stable; the gateway keeps it connected ([p2p] peers)
#   B  restarted every RESTART_SECS (60) with the same identity and port
#      (--seed, --port); also in [p2p] peers, and hinted
#   C  corrupt: --corrupt-blocks, every block it sends has its bytes flipped,
#      so none matches its CID; only reached through hints, and listed first
#      in some hint sets so that it is asked first
# Hint sets used by curl and half of the trustless requests:
#   [A] [B] [B,A] [C] [C,A] [C,B,A] [A,C]
# ([C] alone: the gateway must find the blocks at its connected peers A and
# B after C's bad block; sluice bans a peer that sent a bad block for an
# hour, so C is caught once per run, and ignored after that.)
# Every SAMPLE_SECS (5) it records the gateway's RSS, open fds
# (/proc/PID/fd) and sluice_sessions_live. "RSS at start" is the first
# sample after WARMUP_SECS (60) of load, "at end" the last one before the
# load stops. After the load: time until sluice_sessions_live is 0 (up to 60 s).
# Targets: zero wrong bodies, zero 500s, RSS growth < 10% after warm-up,
# live sessions back to 0.
#
# Output in loadtest/results/soak-<UTC>*: .md (summary with the figures and
# targets), -soak.summary.json / -soak.json.gz (k6), -samples.tsv,
# -events.tsv, -soak-latency.png, -gateway.png, -metrics.txt (the gateway's
# Prometheus metrics at the end), .gateway.log, .log. About 12 minutes.
# Knobs: SOAK_SECS, RESTART_SECS, WARMUP_SECS, SAMPLE_SECS, VUS_BROWSER,
# VUS_CURL, VUS_TRUSTLESS, CACHE_BYTES, SLUICE_BINARY, KEEP_TMP=1.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
k6_begin

SOAK_SECS=${SOAK_SECS:-600}
RESTART_SECS=${RESTART_SECS:-60}
WARMUP_SECS=${WARMUP_SECS:-60}
SAMPLE_SECS=${SAMPLE_SECS:-5}
unset SCENARIOS DURATION
OUT="$LT/results/soak-$STAMP"
LOG="$OUT.log"
SAMPLES="$OUT-samples.tsv"
EVENTS="$OUT-events.tsv"
: >"$SAMPLES"; : >"$EVENTS"

setup_tools
setup_binary
{
  echo "soak.sh $STAMP"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD); binary: $BINARY_DESC"
  machine_desc
  echo "k6 $K6_VERSION; SOAK_SECS=$SOAK_SECS RESTART_SECS=$RESTART_SECS WARMUP_SECS=$WARMUP_SECS; VUS browser ${VUS_BROWSER:-8}, curl ${VUS_CURL:-6}, trustless ${VUS_TRUSTLESS:-6}; cache $CACHE_BYTES bytes"
} | tee -a "$LOG" >&2

make_content
start_soak_providers

start_gateway main "[\"$A_MA\", \"$B_MA\"]"
log "gateway pid $GW_PID at $GW_URL (control $CTL_URL); RSS $(rss_kib "$GW_PID") KiB, $(fd_count "$GW_PID") fds"

start_k6_mixed soak "${SOAK_SECS}s"
T0=$SECONDS
next_sample=0
NEXT_RESTART=$RESTART_SECS
RESTARTS=0
while kill -0 "$K6_PID" 2>/dev/null; do
  t=$((SECONDS - T0))
  if (( t >= next_sample )); then
    sample_line "$t" >>"$SAMPLES"
    next_sample=$((next_sample + SAMPLE_SECS))
  fi
  restart_b_if_due "$t"
  sleep 1
done
K6_RC=0; wait "$K6_PID" || K6_RC=$?
T_END=$((SECONDS - T0))
log "k6 finished after ${T_END} s, exit $K6_RC; $RESTARTS restarts of B"
cat "$WORK/k6-soak.out" "$WORK/k6-soak.err" >"$OUT-soak.k6.txt"
AFTER=$(sample_line "$T_END")
SESS=$(wait_sessions_zero 60)
sample_line "$((SECONDS - T0))" >>"$SAMPLES"
HWM=$(status_kib "$GW_PID" VmHWM)
curl -s "$CTL_URL/debug/metrics/prometheus" >"$OUT-metrics.txt"
curl -s "$CTL_URL/debug/sessions" >"$OUT-sessions.json"
GW_ALIVE=$(kill -0 "$GW_PID" 2>/dev/null && echo yes || echo NO)
cp "$GW_LOG" "$OUT.gateway.log"

REPORT=$("$PY" "$LT/k6_report.py" "$OUT" soak --samples "$SAMPLES" --events "$EVENTS")
{
  echo "# soak.sh $STAMP"
  echo
  grep -E '^(run_k6.sh|soak.sh|git:|machine:|k6 )' "$LOG" | sed 's/^/    /' || true
  echo
  "$PY" - "$OUT-soak.stats.json" "$SAMPLES" "$WARMUP_SECS" "$SOAK_SECS" "$AFTER" "$SESS" "$HWM" "$RESTARTS" "$OUT-metrics.txt" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
rows = [l.split("\t") for l in open(sys.argv[2]) if l.strip()]
warm, soak = int(sys.argv[3]), int(sys.argv[4])
after = sys.argv[5].split("\t"); sess = sys.argv[6]; hwm = int(sys.argv[7]); restarts = sys.argv[8]
during = [r for r in rows if float(r[0]) <= soak]
start = next((r for r in during if float(r[0]) >= warm), during[0])
end = during[-1]
rss0, rss1 = int(start[1]), int(end[1])
growth = (rss1 - rss0) / rss0 * 100
fds = [int(r[2]) for r in during]
codes = st["statuses"]
n500 = codes.get("500", 0)
n5xx = sum(n for c, n in codes.items() if c.startswith("5"))
errs = {c: n for c, n in codes.items() if c not in ("200", "206", "301")}
sess_ok = "0 after" in sess
metrics = {}
for line in open(sys.argv[9]):
    if line.startswith("sluice_") and ("invalid" in line or "bad" in line or "banned" in line or "mismatch" in line):
        k, v = line.rsplit(" ", 1)
        metrics[k] = v.strip()
ok = lambda b: "met" if b else "**MISSED**"
print("| figure | value |")
print("|---|---|")
print(f"| requests served | {st['requests']} in {st['seconds']:.0f} s ({st['rps']:.1f}/s), {st['mib_received']:.0f} MiB |")
print(f"| status codes | {', '.join(f'{c}: {n}' for c, n in sorted(codes.items()))} |")
print(f"| errors (not 200/206/301) | {sum(errs.values())} ({', '.join(f'{c}: {n}' for c, n in sorted(errs.items())) or 'none'}) |")
print(f"| latency p50 / p95 / p99 / max | {st['p50']:.1f} / {st['p95']:.1f} / {st['p99']:.1f} / {st['max']:.0f} ms |")
print(f"| wrong bodies | {int(st['wrong_bodies'])} (bad headers {int(st['bad_headers'])}, checks failed {st['checks_failed']} of {st['checks']}) |")
print(f"| gateway RSS after {warm} s warm-up (t={start[0]} s) / at end (t={end[0]} s) | {rss0/1024:.1f} / {rss1/1024:.1f} MiB ({growth:+.1f}%); peak (VmHWM) {hwm/1024:.1f} MiB; after the load {int(after[1])/1024:.1f} MiB |")
print(f"| open fds at warm-up / end / max during / after the load | {start[2]} / {end[2]} / {max(fds)} / {after[2]} |")
print(f"| sluice_sessions_live | {sess} |")
print(f"| provider B restarts | {restarts} |")
if metrics:
    print(f"| corrupt-block metrics | {'; '.join(f'{k} {v}' for k, v in metrics.items())} |")
print()
print(f"Targets: zero wrong bodies: {ok(st['wrong_bodies'] == 0)}; zero 500s: {ok(n500 == 0)} ({n500}; all 5xx: {n5xx}); "
      f"RSS growth < 10% after warm-up: {ok(growth < 10)} ({growth:+.1f}%); live sessions back to 0: {ok(sess_ok)}.")
print()
PY
  echo "$REPORT"
  echo
  echo "## gateway"
  echo
  echo "- process alive at the end: $GW_ALIVE"
  echo "- provider B restarts (t, downtime): $(cut -f1,2 "$EVENTS" | tr '\t\n' ' ;' )"
  log_summary "$GW_LOG"
} >"$OUT.md"
cat "$OUT.md"
echo "summary: $OUT.md" >&2
