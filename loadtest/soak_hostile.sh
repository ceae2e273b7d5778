#!/usr/bin/env bash
# soak_hostile.sh — soak.sh's 10-minute mixed k6 load with attackers alongside (issue 11). Not run by tests.
#
# The honest load is soak.sh's (helpers in lib.sh): browser 8, curl 6 and
# trustless 6 VUs of k6/gateway.js for SOAK_SECS (600), every body checked,
# against Helia providers A (stable), B (restarted every RESTART_SECS) and
# C (corrupt blocks, among the hints). At the same time, on 127.0.0.1 only:
#   stalled readers  STALLED (40) connections that GET the 16 MiB file (half
#                    of them as ?format=car) and never read (SO_RCVBUF 4 KiB);
#                    reopened when the server closes them (attack/stalled_readers.py)
#   slowloris        SLOWLORIS (100) connections sending a request header one
#                    byte every SLOW_INTERVAL (3) s, never ending it; reopened
#                    when closed (attack/slowloris.py)
#   partial frames   FLOOD_PEERS (2) libp2p peers dialling the gateway's libp2p
#                    listener, each holding FLOOD_STREAMS (64) /ipfs/bitswap/1.2.0
#                    streams that announce a 4,000,000-byte message and send all
#                    but its last 100 bytes; replaced when reset (attack/partial-frames.mjs)
# Every attacker stops by itself after SOAK_SECS; all processes are stopped on exit.
#
# Every SAMPLE_SECS (5): gateway RSS, open fds, TCP connections it holds on
# its port, sluice_sessions_live, and each attacker's open connections and
# how many the server closed. After the load and the attackers stop: until
# sluice_sessions_live is 0 (up to 60 s) and the fds are back within FD_SLACK
# of their start (up to SETTLE_SECS, 150).
#
# Targets (PASS/MISS in the summary): zero wrong bodies; zero 5xx and no
# unanswered request (k6 status 0) for honest clients; max RSS (VmHWM and
# samples) <= RSS_BOUND_MIB; fds back within FD_SLACK (8) of their start;
# live sessions back to 0.
#
# Config: SOAK_CONFIG (loadtest/soak_hostile.toml; see its header). Keys the
# binary does not know are commented out with a warning and reported as not
# in force. RSS_BOUND_MIB defaults to
#   CACHE_BYTES + the budgets named in BUDGET_KEYS that are in force
#   + RSS_BASE_MIB (96: process and honest load; soak.sh peaks were 66-86 MiB
#     with the same 8 MiB cache)
#   + STALLED x RSS_PER_STALLED_MIB (2: a 1 MiB block handed to hyper plus its
#     write buffer, per connection that does not drain)
#   + FLOOD_PEERS x FLOOD_STREAMS x 256 KiB (the yamux window every stream is
#     granted, buffered before the gateway reads it)
#
# Output in loadtest/results/soak-hostile-<UTC>*: .md (summary), -samples.tsv,
# -events.tsv, -attack-{stalled,slowloris,flood}.json (final counters),
# -facts.json (the figures soak_report.py reads), -gateway.png,
# -soak-latency.png, -soak.summary.json / -soak.json.gz (k6),
# -metrics.txt, -config.toml (as run), .gateway.log, .log. About 15 minutes.
# Knobs: SOAK_SECS, RESTART_SECS, WARMUP_SECS, SAMPLE_SECS, STALLED,
# SLOWLORIS, SLOW_INTERVAL, FLOOD_PEERS, FLOOD_STREAMS, SOAK_CONFIG,
# BUDGET_KEYS, RSS_BOUND_MIB, RSS_BASE_MIB, RSS_PER_STALLED_MIB, FD_SLACK,
# SETTLE_SECS, VUS_*, CACHE_BYTES, SLUICE_BINARY, KEEP_TMP=1.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
k6_begin

SOAK_SECS=${SOAK_SECS:-600}
RESTART_SECS=${RESTART_SECS:-60}
WARMUP_SECS=${WARMUP_SECS:-60}
SAMPLE_SECS=${SAMPLE_SECS:-5}
STALLED=${STALLED:-40}
SLOWLORIS=${SLOWLORIS:-100}
SLOW_INTERVAL=${SLOW_INTERVAL:-3}
FLOOD_PEERS=${FLOOD_PEERS:-2}
FLOOD_STREAMS=${FLOOD_STREAMS:-64}
SOAK_CONFIG=${SOAK_CONFIG:-$LT/soak_hostile.toml}
BUDGET_KEYS=${BUDGET_KEYS:-limits.read_ahead_bytes_total bitswap.max_inbound_bytes_total}
RSS_BASE_MIB=${RSS_BASE_MIB:-96}
RSS_PER_STALLED_MIB=${RSS_PER_STALLED_MIB:-2}
FD_SLACK=${FD_SLACK:-8}
SETTLE_SECS=${SETTLE_SECS:-150}
GW_RUST_LOG=${GW_RUST_LOG:-warn,sluice::server=info} # the info line names the peer ID
unset SCENARIOS DURATION
OUT="$LT/results/soak-hostile-$STAMP"
LOG="$OUT.log"
SAMPLES="$OUT-samples.tsv"
EVENTS="$OUT-events.tsv"
: >"$SAMPLES"; : >"$EVENTS"
ATT="$LT/attack"

setup_tools
setup_binary
{
  echo "soak_hostile.sh $STAMP"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD); binary: $BINARY_DESC"
  machine_desc
  echo "k6 $K6_VERSION; SOAK_SECS=$SOAK_SECS RESTART_SECS=$RESTART_SECS WARMUP_SECS=$WARMUP_SECS; VUS browser ${VUS_BROWSER:-8}, curl ${VUS_CURL:-6}, trustless ${VUS_TRUSTLESS:-6}; cache $CACHE_BYTES bytes"
  echo "attackers: $STALLED stalled readers, $SLOWLORIS slowloris (1 byte / ${SLOW_INTERVAL} s), $FLOOD_PEERS flood peers x $FLOOD_STREAMS partial-frame streams"
} | tee -a "$LOG" >&2

# ---------------------------------------------------------------- config
CONFIG="$WORK/sluice-hostile.toml"
# shellcheck disable=SC2086 # BUDGET_KEYS is a list
CFG_JSON=$(python3 "$ATT/soak_config.py" "$SOAK_CONFIG" "$CONFIG" "$WORK/sluice" "$WORK/config-check" $BUDGET_KEYS)
cp "$CONFIG" "$OUT-config.toml"
DROPPED=$(python3 -c 'import json,sys;print("; ".join(json.loads(sys.argv[1])["dropped"]))' "$CFG_JSON")
[[ -z "$DROPPED" ]] || log "WARN: unknown to this binary, commented out (not in force): $DROPPED"
read -r BUDGET_BYTES BOUND_DEFAULT BOUND_HOW < <(python3 - "$CFG_JSON" "$CACHE_BYTES" "$RSS_BASE_MIB" "$STALLED" "$RSS_PER_STALLED_MIB" "$FLOOD_PEERS" "$FLOOD_STREAMS" <<'PY'
import json, sys
cfg = json.loads(sys.argv[1]); cache = int(sys.argv[2]); base, stalled, per_stalled, peers, streams = map(float, sys.argv[3:8])
MiB = 1048576
budgets = sum(v for v in cfg["budgets"].values() if v)
yamux = peers * streams * 0.25
bound = cache / MiB + budgets / MiB + base + stalled * per_stalled + yamux
terms = [f"cache {cache / MiB:.0f}"] + [f"{k} {(v or 0) / MiB:.0f}{'' if v else ' (not in force)'}" for k, v in cfg["budgets"].items()]
terms += [f"RSS_BASE_MIB {base:.0f}", f"{stalled:.0f} stalled x {per_stalled:g}", f"{peers * streams:.0f} flood streams x 0.25 (yamux window)"]
print(budgets, round(bound), " + ".join(terms))
PY
)
RSS_BOUND_MIB=${RSS_BOUND_MIB:-$BOUND_DEFAULT}
if [[ "$RSS_BOUND_MIB" != "$BOUND_DEFAULT" ]]; then BOUND_HOW="set by RSS_BOUND_MIB (derived default $BOUND_DEFAULT: $BOUND_HOW)"; else BOUND_HOW="$BOUND_HOW MiB"; fi
log "config $SOAK_CONFIG; budgets in force $((BUDGET_BYTES / 1048576)) MiB; RSS_BOUND_MIB=$RSS_BOUND_MIB ($BOUND_HOW)"

# ---------------------------------------------------------------- setup
make_content
start_soak_providers
F16M=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["curl"]["f16m"]["cid"])' "$MANIFEST")
P2P_PORT=$(free_port)
GW_CONFIG=$CONFIG GW_P2P_LISTEN="[\"/ip4/127.0.0.1/tcp/$P2P_PORT\"]" \
  start_gateway main "[\"$A_MA\", \"$B_MA\"]"
GW_PEER=$(gateway_peer_id)
[[ -n "$GW_PEER" ]] || { log "no peer ID in the gateway log"; exit 1; }
GW_MA="/ip4/127.0.0.1/tcp/$P2P_PORT/p2p/$GW_PEER"
sleep 3 # the connections to A and B
FD_START=$(fd_count "$GW_PID")
log "gateway pid $GW_PID at $GW_URL (control $CTL_URL, libp2p $GW_MA); RSS $(rss_kib "$GW_PID") KiB, $FD_START fds, $(tcp_established "$GW_PORT") TCP connections"

# attacker_counts: "open closed" of each attacker's status file (0 0 before the first)
attacker_counts() {
  python3 - "$WORK/att-stalled.json" "$WORK/att-slowloris.json" "$WORK/att-flood.json" <<'PY'
import json, sys
out = []
for p, open_key in zip(sys.argv[1:], ("open_now", "open_now", "streams_open_now")):
    try:
        d = json.load(open(p))
        out += [str(d.get(open_key, 0)), str(d.get("closed_by_server", 0))]
    except (OSError, ValueError):
        out += ["0", "0"]
print("\t".join(out))
PY
}
# sample PHASE T: one line of $SAMPLES (columns: see attack/soak_report.py)
sample() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$2" "$1" "$(rss_kib "$GW_PID")" "$(fd_count "$GW_PID")" \
    "$(tcp_established "$GW_PORT")" "$(sessions_live)" "$(attacker_counts)" >>"$SAMPLES"
}

# ---------------------------------------------------------------- load and attackers
start_k6_mixed soak "${SOAK_SECS}s"
python3 -B "$ATT/stalled_readers.py" --port "$GW_PORT" --conns "$STALLED" --secs "$SOAK_SECS" \
  --path "/ipfs/$F16M" --path "/ipfs/$F16M?format=car" --status "$WORK/att-stalled.json" \
  >"$WORK/att-stalled.out" 2>"$WORK/att-stalled.err" &
STALLED_PID=$!; PIDS+=("$STALLED_PID")
python3 -B "$ATT/slowloris.py" --port "$GW_PORT" --conns "$SLOWLORIS" --interval "$SLOW_INTERVAL" --secs "$SOAK_SECS" \
  --path "/ipfs/$F16M" --status "$WORK/att-slowloris.json" >"$WORK/att-slowloris.out" 2>"$WORK/att-slowloris.err" &
SLOW_PID=$!; PIDS+=("$SLOW_PID")
"$PEERS_NODE" "$ATT/partial-frames.mjs" --peers-dir "$ROOT/tests/peers" --target "$GW_MA" \
  --peers "$FLOOD_PEERS" --streams "$FLOOD_STREAMS" --secs "$SOAK_SECS" --status "$WORK/att-flood.json" \
  >"$WORK/att-flood.out" 2>"$WORK/att-flood.err" &
FLOOD_PID=$!; PIDS+=("$FLOOD_PID")
ATTACKER_PIDS=("$STALLED_PID" "$SLOW_PID" "$FLOOD_PID")

T0=$SECONDS
next_sample=0
NEXT_RESTART=$RESTART_SECS
RESTARTS=0
attackers_alive() { local p; for p in "${ATTACKER_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
# k6 ends SOAK_SECS (+ up to 60 s gracefulStop) after its start; the attackers end by themselves
while kill -0 "$K6_PID" 2>/dev/null || attackers_alive; do
  t=$((SECONDS - T0))
  if (( t >= next_sample )); then
    sample load "$t"
    next_sample=$((next_sample + SAMPLE_SECS))
  fi
  restart_b_if_due "$t"
  if (( t > SOAK_SECS + 90 )); then log "WARN: load still running at ${t} s, stopping it"; break; fi
  sleep 1
done
K6_RC=0
if kill -0 "$K6_PID" 2>/dev/null; then stop_pid "$K6_PID"; K6_RC=stopped; else wait "$K6_PID" || K6_RC=$?; fi
for p in "${ATTACKER_PIDS[@]}"; do stop_pid "$p"; done
T_END=$((SECONDS - T0))
log "load and attackers finished after ${T_END} s (k6 exit $K6_RC); $RESTARTS restarts of B"
cat "$WORK/k6-soak.out" "$WORK/k6-soak.err" >"$OUT-soak.k6.txt"
for a in stalled slowloris flood; do
  tail -1 "$WORK/att-$a.out" >"$OUT-attack-$a.json" 2>/dev/null || true
  [[ -s "$OUT-attack-$a.json" ]] || cp "$WORK/att-$a.json" "$OUT-attack-$a.json" 2>/dev/null || echo '{}' >"$OUT-attack-$a.json"
  if [[ -s "$WORK/att-$a.err" ]]; then log "$a stderr: $(tail -3 "$WORK/att-$a.err" | tr '\n' ' ')"; fi
done

# ---------------------------------------------------------------- after the load
sample after "$((SECONDS - T0))"
SESS=$(wait_sessions_zero 60)
FD_END=""; FD_SETTLE="still $(fd_count "$GW_PID") after ${SETTLE_SECS} s"
t_stop=$SECONDS
while (( SECONDS - t_stop <= SETTLE_SECS )); do
  now=$(fd_count "$GW_PID")
  if (( now <= FD_START + FD_SLACK )); then FD_END=$now; FD_SETTLE="$now after $((SECONDS - t_stop)) s"; break; fi
  sample after "$((SECONDS - T0))"
  sleep "$SAMPLE_SECS"
done
[[ -n "$FD_END" ]] || FD_END=$(fd_count "$GW_PID")
sample after "$((SECONDS - T0))"
HWM=$(status_kib "$GW_PID" VmHWM)
curl -s "$CTL_URL/debug/metrics/prometheus" >"$OUT-metrics.txt"
curl -s "$CTL_URL/debug/sessions" >"$OUT-sessions.json"
GW_ALIVE=$(kill -0 "$GW_PID" 2>/dev/null && echo yes || echo NO)
cp "$GW_LOG" "$OUT.gateway.log"

REPORT=$("$PY" "$LT/k6_report.py" "$OUT" soak)
python3 - "$OUT-facts.json" "$OUT" "$CFG_JSON" "$SOAK_CONFIG" "$RSS_BOUND_MIB" "$BOUND_HOW" "$WARMUP_SECS" \
  "$FD_START" "$FD_END" "$FD_SLACK" "$FD_SETTLE" "$SESS" "${HWM:-0}" "$RESTARTS" <<'PY'
import json, sys
(dst, out, cfg, config, bound, how, warm, fd0, fd1, slack, settle, sess, hwm, restarts) = sys.argv[1:]
cfg = json.loads(cfg)
att = {}
for k in ("stalled", "slowloris", "flood"):
    try:
        att[k] = json.load(open(f"{out}-attack-{k}.json"))
    except (OSError, ValueError):
        att[k] = {}
metrics = {}
for line in open(f"{out}-metrics.txt"):
    if line.startswith("sluice_") and any(w in line for w in ("invalid", "bad", "banned", "mismatch", "budget", "timeout", "panic", "connections", "read_ahead", "inbound")):
        k, v = line.rsplit(" ", 1)
        metrics[k] = v.strip()
json.dump({"k6_stats": f"{out}-soak.stats.json", "attackers": att, "config": config,
           "dropped": cfg["dropped"], "budgets": cfg["budgets"], "rss_bound_mib": float(bound),
           "rss_bound_how": how, "warmup_secs": int(warm), "fd_start": int(fd0), "fd_end": int(fd1),
           "fd_slack": int(slack), "fd_settle": settle, "sessions": sess, "vmhwm_kib": int(hwm),
           "restarts": int(restarts), "metrics": metrics}, open(dst, "w"), indent=1)
PY
{
  echo "# soak_hostile.sh $STAMP"
  echo
  grep -E '^(soak_hostile.sh|git:|machine:|k6 |attackers:)' "$LOG" | sed 's/^/    /' || true
  echo
  "$PY" "$ATT/soak_report.py" --facts "$OUT-facts.json" --samples "$SAMPLES" --events "$EVENTS" --png "$OUT-gateway.png"
  echo "## Honest load (k6)"
  echo
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
