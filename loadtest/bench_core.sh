#!/usr/bin/env bash
# Gateway core benchmark (issue 2): sluice vs nginx, warm cache, same run.
#
#   bash loadtest/bench_core.sh
#
# 1. installs nginx and wrk (Debian packages) if missing, builds the release
#    binaries (sluice, make-car);
# 2. makes a 4 KiB, a 64 MiB and a 1 GiB pseudo-random file, each as plain
#    bytes (served by nginx from disk) and as a UnixFS CAR (served by sluice
#    in place), in a temporary directory;
# 3. starts sluice and a private nginx (own config in the temp dir, own port,
#    access_log off, sendfile on, worker_processes auto), checks that both
#    return the same bytes, and warms both;
# 4. for the 4 KiB and the 64 MiB file, runs `wrk -t2 -c64 --latency`
#    against sluice and nginx alternately, RUNS times each, and reports the
#    median requests/s, p50 and p99 of each server and the sluice/nginx ratio;
# 5. samples the VmRSS of the same sluice process every 50 ms while the
#    1 GiB file is streamed twice with curl, and reports peak and growth;
#    then repeats that on a fresh sluice with a small block cache, to tell the
#    cache's share of the growth from the streaming path's.
#
# The summary (Markdown) is printed and written to
# loadtest/results/core-<UTC timestamp>.md, raw wrk output and server logs to
# loadtest/results/core-<UTC timestamp>.log (loadtest/results/ is git-ignored).
#
# Tunables (environment): RUNS (3), SMALL_SECS (10), MID_SECS (15),
# WARM_SECS (3), SLUICE_PORT (18931), NGINX_PORT (18932), SKIP_BUILD (0),
# DIAG_CACHE_BYTES (8 MiB, cache of the diagnostic sluice; 0 skips it),
# IDLE_WAIT_BUDGET (120: seconds, in all, to wait for a quiet machine before
# timed runs), KEEP_TMP (0), SLUICE_BINARY and MAKE_CAR (binaries to use
# instead of target/release/{sluice,examples/make-car}, e.g. builds of other
# commits for an A/B; with SKIP_BUILD=1), SLUICE_EXTRA_CONFIG (TOML appended
# to every sluice config file the script writes, e.g. '[dht]' and
# 'mode = "off"' on two lines for a build that has a DHT; "" by default).
set -euo pipefail

RUNS=${RUNS:-3}
SMALL_SECS=${SMALL_SECS:-10}
MID_SECS=${MID_SECS:-15}
WARM_SECS=${WARM_SECS:-3}
SLUICE_PORT=${SLUICE_PORT:-18931}
NGINX_PORT=${NGINX_PORT:-18932}
DIAG_PORT=${DIAG_PORT:-18933}
SKIP_BUILD=${SKIP_BUILD:-0}
DIAG_CACHE_BYTES=${DIAG_CACHE_BYTES:-8388608}
KEEP_TMP=${KEEP_TMP:-0}
CONNS=64
THREADS=2

SMALL_SIZE=4096
MID_SIZE=$((64 * 1024 * 1024))
BIG_SIZE=$((1024 * 1024 * 1024))

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=bench_core
REPO=$ROOT
RESULTS_DIR="$REPO/loadtest/results"
SUMMARY="$RESULTS_DIR/core-$STAMP.md"
RAWLOG="$RESULTS_DIR/core-$STAMP.log"

# ---------------------------------------------------------------- cleanup
TMP=""
SLUICE_PID=""
NGINX_PID=""
DIAG_PID=""
SAMPLER_PID=""

cleanup() {
    local rc=$?
    set +e
    [[ -n $TMP ]] && rm -f "$TMP/sampling"
    stop_pid "$SAMPLER_PID"
    stop_pid "$DIAG_PID"
    stop_pid "$SLUICE_PID"
    stop_pid "$NGINX_PID"
    if ((rc != 0)) && [[ -n $TMP && -d $TMP && -f $RAWLOG ]]; then
        local f
        for f in "$TMP"/sluice*.log "$TMP"/nginx/error.log; do
            [[ -f $f ]] && { echo "=== $f (at exit $rc)"; cat "$f"; } >>"$RAWLOG"
        done
    fi
    remove_work "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tools
need_apt=()
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
NGINX_BIN=$(command -v nginx 2>/dev/null || true)
[[ -z $NGINX_BIN && -x /usr/sbin/nginx ]] && NGINX_BIN=/usr/sbin/nginx
[[ -z $NGINX_BIN ]] && need_apt+=(nginx)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if ((${#need_apt[@]})); then
    log "installing ${need_apt[*]} with apt-get"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    # Installing the package must not start the system nginx on port 80.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    NGINX_BIN=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
fi
[[ -x $NGINX_BIN ]] || die "nginx not found"

[[ $SKIP_BUILD == 1 ]] || log "building release binaries"
release_build --quiet --bin sluice --example make-car
SLUICE=${SLUICE_BINARY:-$REPO/target/release/sluice}
MAKE_CAR=${MAKE_CAR:-$REPO/target/release/examples/make-car}
SLUICE_EXTRA_CONFIG=${SLUICE_EXTRA_CONFIG:-}
[[ -x $SLUICE && -x $MAKE_CAR ]] || die "release binaries missing (run without SKIP_BUILD=1)"

CONTROL_PORT_OFFSET=10 # sluice's control (metrics) server: gateway port + 10
for port in "$SLUICE_PORT" "$NGINX_PORT" "$DIAG_PORT" $((SLUICE_PORT + CONTROL_PORT_OFFSET)) $((DIAG_PORT + CONTROL_PORT_OFFSET)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port on 127.0.0.1 is already in use (set SLUICE_PORT / NGINX_PORT / DIAG_PORT)"
    fi
done

mkdir -p "$RESULTS_DIR"
: >"$RAWLOG"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-core.XXXXXX")
# nginx workers drop root privileges: the files must be world-readable.
chmod 755 "$TMP"
mkdir -p "$TMP/www" "$TMP/nginx/tmp"
chmod 755 "$TMP/www"

# ---------------------------------------------------------------- content
log "making content in $TMP"
make_file_and_car() { # name size -> prints root CID
    "$MAKE_CAR" "$2" "$TMP/$1.car" "$TMP/www/$1.bin" modern
    chmod 644 "$TMP/www/$1.bin"
}
SMALL_CID=$(make_file_and_car small $SMALL_SIZE)
MID_CID=$(make_file_and_car mid $MID_SIZE)
BIG_CID=$(make_file_and_car big $BIG_SIZE)
for f in small:$SMALL_SIZE mid:$MID_SIZE big:$BIG_SIZE; do
    [[ $(stat -c %s "$TMP/www/${f%%:*}.bin") == "${f#*:}" ]] || die "${f%%:*}.bin has the wrong size"
done

# ---------------------------------------------------------------- servers
start_sluice() { # port cache_bytes(or "") logfile car... -> sets STARTED_PID
    local port=$1 cache=$2 logf=$3
    shift 3
    local args=() car data
    for car in "$@"; do args+=(--car "$car"); done
    data=$(mktemp -d "$TMP/data.XXXX")
    # Everything at its defaults (block cache 256 MiB) except what keeps the
    # instance to itself: no libp2p listener and no content routing (the
    # content is all local; only loopback traffic), and its own control
    # (metrics) port, so a second instance does not collide with the first.
    # No peers are configured, so nothing is dialled.
    cat >"$data.toml" <<EOF
[p2p]
listen = []

[routing]
endpoints = []

[metrics]
listen = "127.0.0.1:$((port + CONTROL_PORT_OFFSET))"
EOF
    if [[ -n $SLUICE_EXTRA_CONFIG ]]; then printf '\n%s\n' "$SLUICE_EXTRA_CONFIG" >>"$data.toml"; fi
    # Only the variables set here reach sluice: no SLUICE_* from the caller.
    (
        while read -r var; do unset "$var"; done < <(compgen -e | grep '^SLUICE_' || true)
        [[ -n $cache ]] && export SLUICE_STORE_CACHE_BYTES=$cache
        RUST_LOG=warn exec "$SLUICE" --config "$data.toml" serve --listen "127.0.0.1:$port" \
            --data-dir "$data" "${args[@]}" >>"$logf" 2>&1
    ) &
    STARTED_PID=$!
}

log "starting sluice on 127.0.0.1:$SLUICE_PORT"
start_sluice "$SLUICE_PORT" "" "$TMP/sluice.log" "$TMP/small.car" "$TMP/mid.car" "$TMP/big.car"
SLUICE_PID=$STARTED_PID

cat >"$TMP/nginx/nginx.conf" <<EOF
# Generated by loadtest/bench_core.sh; a private instance, not the system one.
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events {
    worker_connections 1024;
}
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    # hyper keeps a connection for any number of requests; let nginx too.
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path $TMP/nginx/tmp/body;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $TMP/www;
        location / { }
    }
}
EOF
log "starting nginx on 127.0.0.1:$NGINX_PORT"
"$NGINX_BIN" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" -g 'daemon off;' \
    >>"$TMP/nginx/stdout.log" 2>&1 &
NGINX_PID=$!

SLUICE_BASE="http://127.0.0.1:$SLUICE_PORT/ipfs"
NGINX_BASE="http://127.0.0.1:$NGINX_PORT"
declare -A URL=(
    [sluice_small]="$SLUICE_BASE/$SMALL_CID" [nginx_small]="$NGINX_BASE/small.bin"
    [sluice_mid]="$SLUICE_BASE/$MID_CID" [nginx_mid]="$NGINX_BASE/mid.bin"
    [sluice_big]="$SLUICE_BASE/$BIG_CID" [nginx_big]="$NGINX_BASE/big.bin"
)
t0=$(date +%s.%N)
wait_http "${URL[sluice_small]}" "$SLUICE_PID" sluice 60 || die "sluice did not start (see $RAWLOG)"
SLUICE_START_SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
wait_http "${URL[nginx_small]}" "$NGINX_PID" nginx 60 || die "nginx did not start (see $RAWLOG)"
log "sluice answered after ${SLUICE_START_SECS} s (indexes 3 CARs, 1.1 GiB)"

# ---------------------------------------------------------------- correctness
log "checking that both servers return the same bytes"
HDR_BYTES=()
for f in small mid; do
    for s in sluice nginx; do
        out=$(curl -sS -o "$TMP/check.bin" -w '%{http_code} %{size_download} %{size_header}' "${URL[${s}_$f]}")
        read -r code size hdr <<<"$out"
        [[ $code == 200 ]] || die "$s $f: HTTP $code"
        cmp -s "$TMP/check.bin" "$TMP/www/$f.bin" || die "$s $f: body differs from $f.bin ($size bytes)"
        HDR_BYTES+=("$s/$f: $size body + $hdr header bytes")
        echo "check $s $f: HTTP $code, $size body bytes, $hdr header bytes, identical to $f.bin" >>"$RAWLOG"
    done
done
rm -f "$TMP/check.bin"

# ---------------------------------------------------------------- wrk
cat >"$TMP/report.lua" <<'EOF'
-- One machine-readable line per run (wrk's own report goes above it).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
EOF

ANOMALIES=()
declare -A RPS P50 P99 OTHER SCPU TPUT

# --- CPU accounting, to tell whether something else ran during a timed run.
# All in clock ticks (USER_HZ). The machine's busy time (steal included)
# minus the server's and wrk's own CPU time is what other processes (or
# other VMs) took: reported per run as % of one core. Softirq time counts
# as busy: on this kernel the ticks spent in softirq (loopback packet
# processing) are charged to the interrupted task as well, so leaving them
# out makes server + wrk exceed "busy". Softirq run by ksoftirqd counts as
# other load, so a few % show up even on a quiet machine.
busy_ticks() {
    local cpu u n sy idle io irq sirq steal rest
    read -r cpu u n sy idle io irq sirq steal rest </proc/stat
    echo $((u + n + sy + irq + sirq + steal))
}
proc_ticks() { # pid... -> utime+stime of those processes (all threads)
    local total=0 pid stat fields
    for pid in "$@"; do
        [[ -r /proc/$pid/stat ]] || continue
        stat=$(<"/proc/$pid/stat")
        read -ra fields <<<"${stat##*) }"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}
children_ticks() { # CPU time of this shell's waited-for children (wrk, curl, ...)
    # Call as `times >"$TMP/times"; x=$(children_ticks)`: `times` must run in
    # the main shell, a $(...) subshell has no children of its own yet.
    awk -v hz="$(getconf CLK_TCK)" 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] }
        printf "%d", t * hz }' "$TMP/times"
}
server_pids() { # server -> its pids
    if [[ $1 == sluice ]]; then echo "$SLUICE_PID"; else echo "$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"; fi
}
IDLE_WAIT_BUDGET=${IDLE_WAIT_BUDGET:-120}
IDLE_WAITED=0
wait_idle() { # wait (within a total budget) until the machine is quiet for 1 s
    local b0 b1 hz
    hz=$(getconf CLK_TCK)
    while :; do
        b0=$(busy_ticks)
        sleep 1
        b1=$(busy_ticks)
        # < 0.2 core busy
        ((b1 - b0 < hz / 5)) && return 0
        if ((IDLE_WAITED >= IDLE_WAIT_BUDGET)); then return 0; fi
        ((IDLE_WAITED == 0)) && log "machine busy ($(((b1 - b0) * 100 / hz))% of a core), waiting for it to quiet down (up to ${IDLE_WAIT_BUDGET}s in all)"
        sleep 2
        IDLE_WAITED=$((IDLE_WAITED + 3))
    done
}

run_wrk() { # server file secs run -> fills RPS/P50/P99[server_file_run]
    local s=$1 f=$2 secs=$3 run=$4 size out line
    size=$([[ $f == small ]] && echo $SMALL_SIZE || echo $MID_SIZE)
    {
        echo "=== $s $f run $run (${secs}s) $(date -u +%H:%M:%S) loadavg: $(cut -d' ' -f1-3 /proc/loadavg)"
    } >>"$RAWLOG"
    # --timeout 60s: wrk counts (and leaves out of the latency histogram) any
    # response slower than its timeout (2 s by default), which a 64 MiB
    # response at 64 connections on 2 cores can be.
    local pids b0 p0 c0 t0 b1 p1 c1 t1
    wait_idle
    # shellcheck disable=SC2207
    pids=($(server_pids "$s"))
    times >"$TMP/times"
    b0=$(busy_ticks) p0=$(proc_ticks "${pids[@]}") c0=$(children_ticks) t0=$(date +%s.%N)
    out=$(wrk -t$THREADS -c$CONNS -d"${secs}s" --timeout 60s --latency -s "$TMP/report.lua" "${URL[${s}_$f]}" 2>&1) ||
        die "wrk failed: $out"
    times >"$TMP/times"
    b1=$(busy_ticks) p1=$(proc_ticks "${pids[@]}") c1=$(children_ticks) t1=$(date +%s.%N)
    OTHER[${s}_${f}_$run]=$(awk -v b=$((b1 - b0)) -v p=$((p1 - p0)) -v c=$((c1 - c0)) -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { o = (b - p - c) / hz / (t1 - t0) * 100; if (o < 0) o = 0; printf "%.0f", o }')
    local server_ticks=$((p1 - p0))
    echo "$out" >>"$RAWLOG"
    echo "cpu: machine busy $((b1 - b0)) ticks, server $((p1 - p0)), wrk $((c1 - c0)), other ${OTHER[${s}_${f}_$run]}% of a core" >>"$RAWLOG"
    line=$(grep '^BENCH ' <<<"$out") || die "no BENCH line from wrk"
    local requests bytes duration_us connect read write status timeout p50_us p99_us kv
    for kv in ${line#BENCH }; do local "${kv%%=*}=${kv#*=}"; done
    RPS[${s}_${f}_$run]=$(awk -v r="$requests" -v d="$duration_us" 'BEGIN { printf "%.1f", r / (d / 1e6) }')
    # Bytes read per second, partial responses at the end included: unlike
    # req/s, not biased against the slower server when responses take
    # seconds and the ones in flight at the end are not counted.
    TPUT[${s}_${f}_$run]=$(awk -v b="$bytes" -v d="$duration_us" 'BEGIN { printf "%.1f", b / 1048576 / (d / 1e6) }')
    SCPU[${s}_${f}_$run]=$(awk -v p="$server_ticks" -v r="$requests" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { if (r == 0) print "n/a"; else printf "%.3f", p / hz * 1000 / r }')
    P50[${s}_${f}_$run]=$(awk -v v="$p50_us" 'BEGIN { printf "%.3f", v / 1000 }')
    P99[${s}_${f}_$run]=$(awk -v v="$p99_us" 'BEGIN { printf "%.3f", v / 1000 }')
    if ((connect + read + write + status + timeout > 0)); then
        ANOMALIES+=("$s $f run $run: errors connect=$connect read=$read write=$write non-2xx/3xx=$status timeout=$timeout")
    fi
    # Every counted response is complete, so at least requests*size body
    # bytes were read; the rest is headers and responses cut at the end.
    if ((bytes < requests * size)); then
        ANOMALIES+=("$s $f run $run: $bytes bytes read for $requests responses of $size bytes")
    fi
    if ((requests == 0)); then ANOMALIES+=("$s $f run $run: no completed request"); fi
    log "$s $f run $run: ${RPS[${s}_${f}_$run]} req/s, p50 ${P50[${s}_${f}_$run]} ms, p99 ${P99[${s}_${f}_$run]} ms (other load ${OTHER[${s}_${f}_$run]}% of a core)"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }

log "warming both servers (${WARM_SECS}s of wrk per server and file)"
for f in small mid; do
    for s in sluice nginx; do
        echo "=== warm-up $s $f" >>"$RAWLOG"
        wrk -t$THREADS -c$CONNS -d"${WARM_SECS}s" --timeout 60s "${URL[${s}_$f]}" >>"$RAWLOG" 2>&1
    done
done

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for f in small mid; do
    secs=$([[ $f == small ]] && echo "$SMALL_SECS" || echo "$MID_SECS")
    for run in $(seq 1 "$RUNS"); do
        # Alternate which server goes first, so drift favours neither.
        if ((run % 2)); then order="sluice nginx"; else order="nginx sluice"; fi
        for s in $order; do
            run_wrk "$s" "$f" "$secs" "$run"
            sleep 1
        done
    done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

declare -A MED
for f in small mid; do
    for s in sluice nginx; do
        r=() a=() b=()
        for run in $(seq 1 "$RUNS"); do
            r+=("${RPS[${s}_${f}_$run]}") a+=("${P50[${s}_${f}_$run]}") b+=("${P99[${s}_${f}_$run]}")
        done
        MED[${s}_${f}_rps]=$(median "${r[@]}")
        MED[${s}_${f}_p50]=$(median "${a[@]}")
        MED[${s}_${f}_p99]=$(median "${b[@]}")
        c=()
        for run in $(seq 1 "$RUNS"); do c+=("${SCPU[${s}_${f}_$run]}"); done
        MED[${s}_${f}_cpu]=$(median "${c[@]}")
        c=()
        for run in $(seq 1 "$RUNS"); do c+=("${TPUT[${s}_${f}_$run]}"); done
        MED[${s}_${f}_tput]=$(median "${c[@]}")
    done
done

# ---------------------------------------------------------------- RSS
# measure_rss pid url label -> sets RSS_BEFORE RSS_PEAK RSS_HWM RSS_AFTER (MiB) RSS_SAMPLES STREAM_SECS
measure_rss() {
    local pid=$1 url=$2 label=$3 samples="$TMP/rss-$3.txt" i out code size secs
    RSS_BEFORE=$(status_kib "$pid" VmRSS)
    # Reset the kernel's peak-RSS mark (VmHWM) so it covers the streams only.
    local hwm_ok=0
    if echo 5 >"/proc/$pid/clear_refs" 2>/dev/null; then hwm_ok=1; fi
    : >"$samples"
    touch "$TMP/sampling"
    sample_rss "$pid" "$samples" "$TMP/sampling" &
    SAMPLER_PID=$!
    STREAM_SECS=()
    for i in 1 2; do
        out=$(curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$url")
        read -r code size secs <<<"$out"
        echo "rss $label stream $i: HTTP $code, $size bytes, $secs s" >>"$RAWLOG"
        [[ $code == 200 ]] || ANOMALIES+=("$label 1 GiB stream $i: HTTP $code")
        [[ $size == "$BIG_SIZE" ]] || ANOMALIES+=("$label 1 GiB stream $i: $size bytes, expected $BIG_SIZE")
        STREAM_SECS+=("$secs")
    done
    sleep 0.2
    rm -f "$TMP/sampling"
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    RSS_AFTER=$(status_kib "$pid" VmRSS)
    RSS_SAMPLES=$(wc -l <"$samples")
    RSS_PEAK=$(sort -n "$samples" | tail -1)
    RSS_PEAK=${RSS_PEAK:-0}
    ((RSS_AFTER > RSS_PEAK)) && RSS_PEAK=$RSS_AFTER
    if ((hwm_ok)); then RSS_HWM=$(status_kib "$pid" VmHWM); else RSS_HWM=""; fi
    echo "rss $label: before ${RSS_BEFORE} kB, sampled peak ${RSS_PEAK} kB, VmHWM ${RSS_HWM:-n/a} kB, after ${RSS_AFTER} kB, $RSS_SAMPLES samples" >>"$RAWLOG"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

log "streaming the 1 GiB file twice from the benchmarked sluice, sampling VmRSS every 50 ms"
measure_rss "$SLUICE_PID" "${URL[sluice_big]}" main
M_BEFORE=$RSS_BEFORE M_PEAK=$RSS_PEAK M_HWM=$RSS_HWM M_AFTER=$RSS_AFTER M_SAMPLES=$RSS_SAMPLES
M_SECS=("${STREAM_SECS[@]}")
M_GROWTH=$((M_PEAK - M_BEFORE))
if [[ -n $M_HWM ]] && ((M_HWM > M_PEAK)); then M_GROWTH_HWM=$((M_HWM - M_BEFORE)); else M_GROWTH_HWM=$M_GROWTH; fi

D_DONE=0
if [[ $DIAG_CACHE_BYTES != 0 ]]; then
    log "diagnostic: fresh sluice with SLUICE_STORE_CACHE_BYTES=$DIAG_CACHE_BYTES, same 1 GiB streams"
    start_sluice "$DIAG_PORT" "$DIAG_CACHE_BYTES" "$TMP/sluice-diag.log" "$TMP/big.car"
    DIAG_PID=$STARTED_PID
    wait_http "http://127.0.0.1:$DIAG_PORT/ipfs/$BIG_CID" "$DIAG_PID" "diagnostic sluice" 60 || die "diagnostic sluice did not start (see $RAWLOG)"
    measure_rss "$DIAG_PID" "http://127.0.0.1:$DIAG_PORT/ipfs/$BIG_CID" diag
    D_BEFORE=$RSS_BEFORE D_PEAK=$RSS_PEAK D_HWM=$RSS_HWM D_SAMPLES=$RSS_SAMPLES
    D_SECS=("${STREAM_SECS[@]}")
    D_GROWTH=$((D_PEAK - D_BEFORE))
    stop_pid "$DIAG_PID"
    DIAG_PID=""
    D_DONE=1
fi

# Server-side errors logged during the run.
SLUICE_LOG_LINES=$(grep -c . "$TMP/sluice.log" || true)
{
    echo "=== sluice log ($SLUICE_LOG_LINES lines)"
    cat "$TMP/sluice.log"
    [[ -f $TMP/sluice-diag.log ]] && { echo "=== diagnostic sluice log"; cat "$TMP/sluice-diag.log"; }
    echo "=== nginx error log"
    cat "$TMP/nginx/error.log" 2>/dev/null || true
} >>"$RAWLOG"
if ((SLUICE_LOG_LINES > 0)); then
    ANOMALIES+=("sluice logged $SLUICE_LOG_LINES warning/error lines (RUST_LOG=warn); see the .log file")
fi

# ---------------------------------------------------------------- summary
OTHER_MAX=$(printf '%s\n' "${OTHER[@]}" | sort -n | tail -1)
OTHER_MED=$(median "${OTHER[@]}" | awk '{ printf "%.0f", $1 }')
if ((OTHER_MAX > 20)); then
    ANOMALIES+=("other processes took up to ${OTHER_MAX}% of a core during a timed run: the machine was not quiet, figures are disturbed (see 'other load' per run)")
fi
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(git -C "$REPO" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | wc -l)
NGINX_VERSION=$("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //')
WRK_VERSION=$({ wrk -v 2>&1 || true; } | head -1 | awk '{ print $2 }')
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
BINARY_DESC=""
[[ -n ${SLUICE_BINARY:-} ]] && BINARY_DESC="SLUICE_BINARY=$SLUICE_BINARY (sha256 $(sha256sum "$SLUICE" | cut -c1-16)), scripts at "
EXTRA_DESC=""
[[ -n $SLUICE_EXTRA_CONFIG ]] && EXTRA_DESC=", plus SLUICE_EXTRA_CONFIG \`$(tr '\n' ' ' <<<"$SLUICE_EXTRA_CONFIG" | sed 's/ *$//')\`"
SMALL_RATIO=$(ratio "${MED[sluice_small_rps]}" "${MED[nginx_small_rps]}")
MID_RATIO=$(ratio "${MED[sluice_mid_rps]}" "${MED[nginx_mid_rps]}")
SMALL_OK=$(awk -v r="$SMALL_RATIO" 'BEGIN { print (r >= 0.7) ? "met" : "MISSED" }')
RSS_OK=$( ((M_GROWTH_HWM < 64 * 1024)) && echo met || echo MISSED)

{
    echo "## Gateway core: sluice vs nginx, warm cache ($STAMP)"
    echo
    echo "Command: \`bash loadtest/bench_core.sh\` (RUNS=$RUNS, SMALL_SECS=$SMALL_SECS, MID_SECS=$MID_SECS)"
    echo
    echo "- Machine: $(nproc) cores ($CPU), kernel $(uname -r), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM"
    echo "- sluice: $BINARY_DESC$GIT_REV$( ((GIT_DIRTY)) && echo " + $GIT_DIRTY uncommitted changes in src/Cargo.*"), defaults (block cache 256 MiB) except \`[p2p] listen = []\`, \`[routing] endpoints = []\` and its own \`[metrics] listen\` port$EXTRA_DESC; started in ${SLUICE_START_SECS} s"
    echo "- nginx $NGINX_VERSION (Debian package), worker_processes auto, sendfile on, access_log off, keepalive_requests 1000000"
    echo "- Load: wrk $WRK_VERSION \`-t$THREADS -c$CONNS --latency --timeout 60s\`, ${SMALL_SECS} s (4 KiB) / ${MID_SECS} s (64 MiB) per run, $RUNS runs per server alternating, medians shown; all on 127.0.0.1, client and servers share the cores"
    echo "- Load average: $LOAD_START at start, $LOAD_END at end of the wrk runs; other processes took at most ${OTHER_MAX}% of a core during a timed run (median ${OTHER_MED}%); waited ${IDLE_WAITED} s for the machine to be quiet"
    echo
    echo "| file | server | req/s | p50 (ms) | p99 (ms) | MiB/s read | server CPU (ms/request) |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
    for f in small mid; do
        label=$([[ $f == small ]] && echo "4 KiB" || echo "64 MiB")
        for s in sluice nginx; do
            echo "| $label | $s | ${MED[${s}_${f}_rps]} | ${MED[${s}_${f}_p50]} | ${MED[${s}_${f}_p99]} | ${MED[${s}_${f}_tput]} | ${MED[${s}_${f}_cpu]} |"
        done
    done
    echo
    echo "| file | sluice/nginx req/s | sluice/nginx p50 | sluice/nginx p99 | sluice/nginx MiB/s read | sluice/nginx server CPU per request |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for f in small mid; do
        label=$([[ $f == small ]] && echo "4 KiB" || echo "64 MiB")
        echo "| $label | $(ratio "${MED[sluice_${f}_rps]}" "${MED[nginx_${f}_rps]}") | $(ratio "${MED[sluice_${f}_p50]}" "${MED[nginx_${f}_p50]}") | $(ratio "${MED[sluice_${f}_p99]}" "${MED[nginx_${f}_p99]}") | $(ratio "${MED[sluice_${f}_tput]}" "${MED[nginx_${f}_tput]}") | $(ratio "${MED[sluice_${f}_cpu]}" "${MED[nginx_${f}_cpu]}") |"
    done
    echo
    echo "MiB/s read: all bytes wrk read (headers and the partial responses in flight at the end included) per second; for 64 MiB responses that take seconds, a fairer throughput figure than req/s, which drops the responses still in flight when the run ends. Server CPU: CPU time (user + system, all threads and workers) the server used during the run, per completed request."
    echo
    echo "<details><summary>Every run (req/s, p50 ms, p99 ms)</summary>"
    echo
    echo "Other load: CPU time taken by processes other than the server under test and wrk during the run, in % of one core (a few % on a quiet machine)."

    echo
    echo "| file | run | sluice | nginx | req/s ratio | other load (sluice run, nginx run) |"
    echo "| --- | ---: | --- | --- | ---: | --- |"
    for f in small mid; do
        label=$([[ $f == small ]] && echo "4 KiB" || echo "64 MiB")
        for run in $(seq 1 "$RUNS"); do
            echo "| $label | $run | ${RPS[sluice_${f}_$run]}, ${P50[sluice_${f}_$run]}, ${P99[sluice_${f}_$run]} | ${RPS[nginx_${f}_$run]}, ${P50[nginx_${f}_$run]}, ${P99[nginx_${f}_$run]} | $(ratio "${RPS[sluice_${f}_$run]}" "${RPS[nginx_${f}_$run]}") | ${OTHER[sluice_${f}_$run]}%, ${OTHER[nginx_${f}_$run]}% |"
        done
    done
    echo
    echo "</details>"
    echo
    echo "RSS of the benchmarked sluice while streaming the 1 GiB file twice (curl to /dev/null, VmRSS sampled every 50 ms, $M_SAMPLES samples; streams took ${M_SECS[*]} s):"
    echo
    echo "| before | peak (sampled) | peak (VmHWM) | growth | after |"
    echo "| ---: | ---: | ---: | ---: | ---: |"
    echo "| $(mib "$M_BEFORE") MiB | $(mib "$M_PEAK") MiB | ${M_HWM:+$(mib "$M_HWM") MiB} | $(mib "$M_GROWTH_HWM") MiB | $(mib "$M_AFTER") MiB |"
    echo
    if ((D_DONE)); then
        echo "Diagnostic, not the target: a fresh sluice serving only the 1 GiB CAR with SLUICE_STORE_CACHE_BYTES=$DIAG_CACHE_BYTES: before $(mib "$D_BEFORE") MiB, peak $(mib "$D_PEAK") MiB${D_HWM:+ (VmHWM $(mib "$D_HWM") MiB)}, growth $(mib "$D_GROWTH") MiB; streams took ${D_SECS[*]} s."
        echo
    fi
    echo "Targets: sluice >= 0.7x nginx req/s on 4 KiB: **$SMALL_OK** ($SMALL_RATIO x). RSS growth streaming 1 GiB < 64 MiB: **$RSS_OK** ($(mib "$M_GROWTH_HWM") MiB)."
    echo
    echo "Responses checked before the runs (curl, compared with cmp to the files nginx serves): ${HDR_BYTES[*]}."
    echo
    if ((${#ANOMALIES[@]})); then
        echo "Anomalies:"
        printf -- '- %s\n' "${ANOMALIES[@]}"
    else
        echo "Anomalies: none (no socket errors, no non-2xx/3xx, no wrk timeouts, byte counts consistent, every 1 GiB stream 200 with 1073741824 bytes, nothing in sluice's warn log)."
    fi
} >"$SUMMARY"

cat "$SUMMARY"
log "summary: $SUMMARY"
log "raw output: $RAWLOG"
