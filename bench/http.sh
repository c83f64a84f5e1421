#!/usr/bin/env bash
# The HTTP endpoint's cost to DHCP (issue 19's benchmark), and a soak.
#
# MODE=cost (the default): `leaseline-bench saturate` keeps WINDOW DORA
# exchanges in flight for PERIOD s (closed loop: each ACK starts the next
# client's DISCOVER; the rate is the DORAs completed per second) against a
# fresh release server with `[http]` on, alternately
#   - idle: nobody uses the endpoint;
#   - loaded: `leaseline-bench http-load` scrapes /metrics every second and
#     sends `lease4-get` (each a store read) at LQ_RATE a second, paced,
#     on keep-alive connections, with the bearer token;
# ROUNDS times each. Prints each run, the medians and loaded / idle (the
# issue's target: a cost under 2 %, ratio >= 0.98), and what the load
# achieved (a run whose lease4-get rate fell short of LQ_RATE is flagged).
#
# MODE=soak: one server, DORA churn (`saturate --rate SOAK_RATE` from
# SOAK_CLIENTS clients in turn, releasing RELEASE_PERCENT: the bindings
# stop growing once every client has one, and the Active Leasequery
# history at HISTORY_MAX_COUNT changes, so memory must level off after
# WARMUP) and the same HTTP load for DURATION s; every
# SAMPLE s the server's RSS and open descriptors. After WARMUP s, the
# median RSS of the last third of the samples must be within RSS_PCT % of
# the first third's, and the descriptors within FD_SLACK of the first
# sample after WARMUP.
#
# Everything runs in a network namespace of its own (loopback only): the
# DORA driver binds port 67. It shares the machine's 2 cores: the HTTP
# load runs at LOAD_NICE (19: it stands in for a Prometheus and an
# operator elsewhere; LOAD_NICE=0 makes it compete with the server).
#
#   bench/http.sh
#   PERIOD=5 ROUNDS=2 bench/http.sh
#   MODE=soak DURATION=60 bench/http.sh
#
# Needs root (network namespace). Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${MODE:-cost}
NS=${NS:-ll-bench-http}
PORT=${PORT:-1067}
HTTP_PORT=${HTTP_PORT:-8067}
TOKEN=${TOKEN:-bench-http-token-0123456789abcdef}
PERIOD=${PERIOD:-10}
ROUNDS=${ROUNDS:-3}
WINDOW=${WINDOW:-256}
CLIENTS=${CLIENTS:-50000}
LQ_RATE=${LQ_RATE:-1000}
SCRAPE_MS=${SCRAPE_MS:-1000}
LOAD_NICE=${LOAD_NICE:-19}
DURATION=${DURATION:-600}
SOAK_RATE=${SOAK_RATE:-1000}
SOAK_CLIENTS=${SOAK_CLIENTS:-5000}
HISTORY_MAX_COUNT=${HISTORY_MAX_COUNT:-20000}
RELEASE_PERCENT=${RELEASE_PERCENT:-20}
SAMPLE=${SAMPLE:-5}
WARMUP=${WARMUP:-10}
RSS_PCT=${RSS_PCT:-10}
FD_SLACK=${FD_SLACK:-8}
WORK=${WORK:-/tmp/leaseline-bench-http}
STATE_DIR=$WORK/state

echo "== building leaseline and leaseline-bench (release)"
cargo build --release -p leaseline -p leaseline-bench >&2
TARGET=${CARGO_TARGET_DIR:-target}/release
BIN=${LEASELINE_BIN:-$TARGET/leaseline}
BENCH=$TARGET/leaseline-bench

rm -rf "$WORK"
mkdir -p "$WORK"
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
ip -n "$NS" link set lo up
SERVER_PID=""
LOAD_PID=""
in_ns() { ip netns exec "$NS" "$@"; }
stop_load() {
    if [ -n "$LOAD_PID" ]; then
        wait "$LOAD_PID" 2>/dev/null || true
        LOAD_PID=""
    fi
}
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
cleanup() {
    stop_server
    ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT

. bench/lib/wait.sh

# start_server: leaseline on an empty store, DHCP for relay 127.0.0.1,
# the HTTP endpoint with a token.
start_server() {
    rm -rf "$STATE_DIR"; mkdir -p "$STATE_DIR"
    cat >"$STATE_DIR/leaseline.toml" <<CONF
[server]
state_dir = "$STATE_DIR"
server_id = "127.0.0.1"

[dhcp]
listen = "127.0.0.1:$PORT"

[store]
history_max_count = $HISTORY_MAX_COUNT

[[subnet]]
prefix = "10.0.0.0/16"
pools = ["10.0.0.10-10.0.255.250"]
relay_addresses = ["127.0.0.1"]
router = ["10.0.0.1"]
lease_time = 3600

[http]
listen = "127.0.0.1:$HTTP_PORT"
token = "$TOKEN"
CONF
    # ip and env exec: $! is the server's pid (a shell function would fork).
    ip netns exec "$NS" env RUST_LOG=info NO_COLOR=1 "$BIN" serve --config "$STATE_DIR/leaseline.toml" \
        2>"$STATE_DIR/server.log" &
    SERVER_PID=$!
    wait_for_line "$STATE_DIR/server.log" "leaseline ready" 30
}

# http_load SECONDS OUT: the operator's load, in the background.
http_load() {
    ip netns exec "$NS" nice -n "$LOAD_NICE" "$BENCH" http-load --http "127.0.0.1:$HTTP_PORT" --token "$TOKEN" \
        --rate "$LQ_RATE" --scrape-ms "$SCRAPE_MS" --seconds "$1" >"$2" 2>&1 &
    LOAD_PID=$!
}

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print 0; else print a[int((NR + 1) / 2)] }'; }

# saturate KIND ROUND: a fresh server, PERIOD s of closed-loop DORA, with
# the HTTP load when KIND is loaded; RATE_OUT = DORAs completed per second.
saturate() {
    local kind=$1 round=$2 out acks
    start_server
    if [ "$kind" = loaded ]; then
        http_load "$PERIOD" "$WORK/load-$round.txt"
    fi
    out=$(in_ns "$BENCH" saturate --dhcp "127.0.0.1:$PORT" --window "$WINDOW" --clients "$CLIENTS" --seconds "$PERIOD" 2>&1) || true
    stop_load
    stop_server
    echo "$out" >"$WORK/$kind-$round.txt"
    acks=$(echo "$out" | sed -n 's/.* acks=\([0-9]*\).*/\1/p')
    RATE_OUT=$(( ${acks:-0} / PERIOD ))
    local extra=""
    if [ "$kind" = loaded ]; then
        extra="; $(cat "$WORK/load-$round.txt")"
        local got
        got=$(sed -n 's/.* get_rate=\([0-9]*\)\/s.*/\1/p' "$WORK/load-$round.txt")
        if [ "${got:-0}" -lt $(( LQ_RATE * 95 / 100 )) ]; then
            extra="$extra  [lease4-get fell short of $LQ_RATE/s]"
        fi
    fi
    echo "  round $round $kind: $RATE_OUT DORA/s$extra"
}

if [ "$MODE" = cost ]; then
    echo "== DORA rate, closed loop (window $WINDOW, $PERIOD s), idle endpoint vs /metrics every ${SCRAPE_MS} ms + lease4-get at $LQ_RATE/s; $ROUNDS rounds; load average $(cut -d' ' -f1-3 /proc/loadavg)"
    idle=() loaded=()
    for round in $(seq 1 "$ROUNDS"); do
        saturate idle "$round"; idle+=("$RATE_OUT")
        saturate loaded "$round"; loaded+=("$RATE_OUT")
    done
    mi=$(printf '%s\n' "${idle[@]}" | median)
    ml=$(printf '%s\n' "${loaded[@]}" | median)
    echo "== median: idle $mi DORA/s, loaded $ml DORA/s; loaded / idle = $(awk -v a="$ml" -v b="$mi" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }') (target >= 0.98); load average $(cut -d' ' -f1-3 /proc/loadavg)"
    exit 0
fi

[ "$MODE" = soak ] || { echo "MODE is cost or soak" >&2; exit 2; }
echo "== soak: $DURATION s of DORA at $SOAK_RATE/s (releasing $RELEASE_PERCENT %) and /metrics every ${SCRAPE_MS} ms + lease4-get at $LQ_RATE/s; RSS and fds every $SAMPLE s"
start_server
ip netns exec "$NS" "$BENCH" saturate --dhcp "127.0.0.1:$PORT" --window "$WINDOW" --clients "$SOAK_CLIENTS" --seconds "$DURATION" \
    --rate "$SOAK_RATE" --release-percent "$RELEASE_PERCENT" >"$WORK/soak-dora.txt" 2>&1 &
DORA_PID=$!
http_load "$DURATION" "$WORK/soak-load.txt"
: >"$WORK/samples.txt"
t0=$SECONDS
while kill -0 "$DORA_PID" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status")
    fds=$(find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
    echo "$((SECONDS - t0)) $rss $fds" >>"$WORK/samples.txt"
    printf '  t=%4d s  rss=%6d KiB  fds=%d\n' "$((SECONDS - t0))" "$rss" "$fds"
    sleep "$SAMPLE"
done
wait "$DORA_PID" || true
stop_load
echo "  dora: $(cat "$WORK/soak-dora.txt")"
echo "  http: $(cat "$WORK/soak-load.txt")"
stop_server
awk -v w="$WARMUP" '$1 >= w' "$WORK/samples.txt" >"$WORK/kept.txt"
n=$(wc -l <"$WORK/kept.txt")
if [ "$n" -lt 3 ]; then
    echo "too few samples after the warm-up ($n): raise DURATION" >&2
    exit 1
fi
third=$(( n / 3 ))
first=$(head -n "$third" "$WORK/kept.txt" | awk '{ print $2 }' | median)
last=$(tail -n "$third" "$WORK/kept.txt" | awk '{ print $2 }' | median)
fd0=$(head -n 1 "$WORK/kept.txt" | awk '{ print $3 }')
fdmax=$(awk '{ print $3 }' "$WORK/kept.txt" | sort -n | tail -n 1)
rss_ok=$(awk -v a="$first" -v b="$last" -v p="$RSS_PCT" 'BEGIN { print (b <= a * (1 + p / 100)) ? 1 : 0 }')
echo "== RSS median first third $first KiB, last third $last KiB (limit +$RSS_PCT %); fds first $fd0, largest $fdmax (slack $FD_SLACK)"
status=0
[ "$rss_ok" = 1 ] || { echo "RSS grew" >&2; status=1; }
[ "$fdmax" -le $(( fd0 + FD_SLACK )) ] || { echo "descriptors grew" >&2; status=1; }
[ "$status" = 0 ] && echo "== flat"
exit "$status"
