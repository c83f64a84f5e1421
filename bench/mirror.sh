#!/usr/bin/env bash
# `leaseline mirror` benchmark (replica over Bulk + Active Leasequery,
# RFC 6926 / RFC 7724), release build, on loopback:
#
#  1. The server's highest DORA rate with < 0.1 % drops, Active Leasequery
#     on, no requestor: bench/dora.sh's search (its step and find_max
#     functions, perfdhcp relaying from 127.0.0.1), an empty store each step.
#  2. Replica lag under steady churn at RATE DORA/s (default: half of 1.):
#     a mirror with --events follows the server live; `leaseline-bench
#     mirror-lag` drives DORA as relay $GIADDR for LAG_SECONDS and follows
#     the events file. Per change:
#       ack lag  = event line appears - DHCPACK arrives at the relay
#                  (one clock, microseconds);
#       base lag = event line appears - its base-time (the server's clock in
#                  whole seconds, so it includes 0-1 s of truncation).
#     p50 and p99 of both; `mirror status --json` polled once a second too.
#  3. A fresh replica of COUNT (250,000) bindings: `leaseline-bench prefill`
#     writes COUNT ACTIVE bindings into a server store through
#     leaseline_store::SqliteStore; the server starts on it (pool = exactly
#     those addresses); time from starting `leaseline mirror` on an empty
#     replica to its phase "live" (bulk, durable, catch-up), and the replica
#     must then hold COUNT ACTIVE bindings.
#
# Everything shares this machine's cores: the mirror's and the load
# generator's CPU is taken from the server's.
#
#   bench/mirror.sh
#   RATE=1500 bench/mirror.sh          # no search
#   RATE=1500 COUNT=50000 bench/mirror.sh
#
# Needs root (perfdhcp and the relay bind port 67) and the tools .ci/run
# installs. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-1767}             # DHCP (UDP)
TCP_PORT=${TCP_PORT:-7767}     # leasequery (TCP)
GIADDR=${GIADDR:-127.0.0.75}   # relay of leaseline-bench mirror-lag
RATE=${RATE:-}                 # DORA/s for the lag run; default: half of step 1
LAG_SECONDS=${LAG_SECONDS:-30}
COUNT=${COUNT:-250000}
PREFIX=${PREFIX:-10.64.0.0/10}
# The rate search, as in bench/dora.sh.
PERIOD=${PERIOD:-15}
CLIENTS=${CLIENTS:-50000}
START_RATE=${START_RATE:-500}
MAX_RATE=${MAX_RATE:-50000}
STEP_PCT=${STEP_PCT:-50}
BISECT=${BISECT:-3}
MAX_DROP_PPM=${MAX_DROP_PPM:-1000}   # 0.1 %
RATES=${RATES:-}
WORK=/tmp/leaseline-bench-mirror
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

for tool in perfdhcp cargo; do
    command -v "$tool" >/dev/null || { echo "missing $tool (see .ci/run)" >&2; exit 1; }
done
if ss -Hlun "sport = :$PORT" 2>/dev/null | grep -q . || ss -Hltn "sport = :$TCP_PORT" 2>/dev/null | grep -q .; then
    echo "UDP port $PORT or TCP port $TCP_PORT is in use" >&2
    exit 1
fi

# bench/dora.sh's rate search, without running that script.
for f in step find_max; do
    def=$(sed -n "/^$f() {/,/^}/p" bench/dora.sh)
    [ -n "$def" ] || { echo "bench/dora.sh has no $f(): update bench/mirror.sh" >&2; exit 1; }
    eval "$def"
done

echo "== building leaseline and leaseline-bench (release)"
cargo build --release -p leaseline -p leaseline-bench >&2
TARGET=${CARGO_TARGET_DIR:-target}/release
BIN=$TARGET/leaseline
BENCH=$TARGET/leaseline-bench

rm -rf "$WORK"
mkdir -p "$WORK"
SERVER_PID=""
MIRROR_PID=""
stop_mirror() {
    if [ -n "$MIRROR_PID" ]; then
        kill -INT "$MIRROR_PID" 2>/dev/null || true
        wait "$MIRROR_PID" 2>/dev/null || true
        MIRROR_PID=""
    fi
}
stop_server() {
    stop_mirror
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap stop_server EXIT

# The mirror's time to live is read off these waits: poll finely.
WAIT_POLL=0.02
. bench/lib/wait.sh

# write_config DIR PREFIX POOL: a server on an empty or prefilled store,
# Active Leasequery on (insecure: loopback only).
write_config() {
    cat >"$1/leaseline.toml" <<EOF
[server]
state_dir = "$1"
server_id = "127.0.0.1"

[dhcp]
listen = "127.0.0.1:$PORT"
offer_hold = 30
decline_hold = 3600
expired_grace = 600

[store]
history_max_age = 3600
history_max_count = 1000000

[[subnet]]
prefix = "$2"
pools = ["$3"]
relay_addresses = ["127.0.0.1", "$GIADDR"]
router = ["10.0.0.1"]
lease_time = 3600

[leasequery]
allow = ["127.0.0.0/8"]

[leasequery.bulk]
enabled = true
listen = "127.0.0.1:$TCP_PORT"

[leasequery.active]
enabled = true
insecure = true
EOF
}

start_server_in() {
    RUST_LOG=info NO_COLOR=1 "$BIN" serve --config "$1/leaseline.toml" 2>"$1/server.log" &
    SERVER_PID=$!
    wait_for_line "$1/server.log" "leaseline ready" 120
}

# An empty store, 10.0.0.0/15 (131,000 addresses).
start_server() {
    local dir="$WORK/server"
    rm -rf "$dir"; mkdir -p "$dir"
    write_config "$dir" 10.0.0.0/15 10.0.0.10-10.1.255.250
    start_server_in "$dir"
}

# start_mirror DIR [ARGS]: a mirror on an empty replica in DIR.
start_mirror() {
    local dir=$1; shift
    rm -rf "$dir"; mkdir -p "$dir"
    RUST_LOG=info NO_COLOR=1 "$BIN" mirror --server "127.0.0.1:$TCP_PORT" --db "$dir/replica.db" \
        "$@" 2>"$dir/mirror.log" &
    MIRROR_PID=$!
}

# The kind of server dora.sh's step() starts ("start_$kind").
start_active0() { start_server; }

if [ -z "$RATE" ]; then
    echo "== 1. highest DORA rate, Active Leasequery on, no requestor"
    find_max active0
    BASE=$BEST
    RATE=$((BASE / 2))
    [ "$RATE" -gt 0 ] || { echo "no rate passed; set RATE" >&2; exit 1; }
else
    BASE="(not measured: RATE given)"
fi

echo "== 2. replica lag at $RATE DORA/s for $LAG_SECONDS s"
start_server
start_mirror "$WORK/lag" --events "$WORK/lag/events.jsonl" --status-interval 1
wait_for_line "$WORK/lag/mirror.log" 'phase="live"' 60
touch "$WORK/lag/events.jsonl"
( while sleep 1; do
      "$BIN" mirror status --db "$WORK/lag/replica.db" --json 2>/dev/null || true
  done ) >"$WORK/lag/status.jsonl" &
POLL_PID=$!
LAG_OUT=$("$BENCH" mirror-lag --dhcp "127.0.0.1:$PORT" --giaddr "$GIADDR" --rate "$RATE" \
    --seconds "$LAG_SECONDS" --events "$WORK/lag/events.jsonl")
kill "$POLL_PID" 2>/dev/null || true
wait "$POLL_PID" 2>/dev/null || true
STATUS_LAG=$(grep -o '"lag_seconds":[0-9]*' "$WORK/lag/status.jsonl" | cut -d: -f2 | sort -n | uniq -c |
    awk '{ printf "%s%d s x%d", sep, $2, $1; sep = ", " }')
REPLICA_ACTIVE=$("$BIN" mirror status --db "$WORK/lag/replica.db" --json | grep -o '\["ACTIVE",[0-9]*\]' | tr -dc '0-9')
stop_server
echo "  $LAG_OUT"
echo "  mirror status lag_seconds (polled 1/s): $STATUS_LAG"

echo "== 3. fresh replica of $COUNT bindings"
BIG="$WORK/big"
mkdir -p "$BIG"
PREFILL_OUT=$("$BENCH" prefill --db "$BIG/leaseline.db" --count "$COUNT" --prefix "$PREFIX")
echo "  $PREFILL_OUT"
first=$(echo "$PREFILL_OUT" | sed -n 's/.*first=\([0-9.]*\).*/\1/p')
last=$(echo "$PREFILL_OUT" | sed -n 's/.*last=\([0-9.]*\).*/\1/p')
write_config "$BIG" "$PREFIX" "$first-$last"
start_server_in "$BIG"
grep -o 'bindings=[0-9]*' "$BIG/server.log" | head -1 | sed 's/^/  server store: /'
t0=$(date +%s%N)
start_mirror "$BIG/mirror"
wait_for_line "$BIG/mirror/mirror.log" 'phase="live"' 1800
t1=$(date +%s%N)
BUILD_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
BULK_LINE=$(grep "initial bulk query complete" "$BIG/mirror/mirror.log" | head -1)
BUILT=$("$BIN" mirror status --db "$BIG/mirror/replica.db" --json | grep -o '\["ACTIVE",[0-9]*\]' | tr -dc '0-9')
RSS=$(ps -o rss= -p "$MIRROR_PID" | tr -d ' ')
stop_server
echo "  mirror: start to live in $BUILD_S s; replica holds $BUILT ACTIVE bindings; mirror RSS ${RSS} KiB"
[ "$BUILT" = "$COUNT" ] || { echo "replica holds $BUILT ACTIVE bindings, not $COUNT" >&2; exit 1; }

echo
echo "Mirror, $(nproc) cores, $(date -u +%Y-%m-%d):"
echo "  highest DORA rate, Active Leasequery on: $BASE DORA/s"
echo "$LAG_OUT" | awk -v rate="$RATE" -v secs="$LAG_SECONDS" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "  replica lag at %d DORA/s for %d s (%s changes seen of %s ACKs):\n", rate, secs, v["samples"], v["acks"]
    printf "    ACK -> event line:       p50 %.2f ms, p99 %.2f ms\n", v["ack_p50_us"] / 1000, v["ack_p99_us"] / 1000
    printf "    base-time -> event line: p50 %.0f ms, p99 %.0f ms (base-time in whole seconds)\n", v["base_p50_us"] / 1000, v["base_p99_us"] / 1000 }'
echo "    mirror status lag_seconds: $STATUS_LAG; replica ACTIVE after the run: $REPLICA_ACTIVE"
echo "  fresh replica of $COUNT bindings: $BUILD_S s from start to live"
echo "    $(echo "$BULK_LINE" | sed 's/.*INFO //')"
echo "(logs in $WORK)"
