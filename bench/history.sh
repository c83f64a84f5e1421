#!/usr/bin/env bash
# Lease history (issue 20), on SQLite:
#  1. Prefill: CLIENTS clients, each leasing an address and releasing it
#     ROUNDS times over DAYS days (a different address each round), written
#     into a fresh store through the server's own writer
#     (`leaseline-bench history-prefill`): CLIENTS x ROUNDS x 2 entries.
#  2. Queries on it (`leaseline-bench history-query`, QUERIES of each
#     kind): by address at a second, by address over a month, by MAC over a
#     month; p50 / p99 against the 10 ms target.
#  3. DORA rate, closed loop (`leaseline-bench saturate`, WINDOW in flight,
#     RELEASE_PCT % of ACKs released), history off then on, fresh store
#     each, alternated ROUNDS_DORA times, CLOSED_SECONDS each: the ratio
#     on/off (target >= 90 %).
#
#   bench/history.sh                       # defaults below
#   CLIENTS=100000 ROUNDS=50 bench/history.sh
#   BUILD=0 ...                            # use the release binaries as built
#
# Needs root (the driver relays from 127.0.0.1:67).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-1067}
CLIENTS=${CLIENTS:-100000}
ROUNDS=${ROUNDS:-20}
DAYS=${DAYS:-365}
QUERIES=${QUERIES:-2000}
WINDOW=${WINDOW:-256}
DORA_CLIENTS=${DORA_CLIENTS:-50000}
RELEASE_PCT=${RELEASE_PCT:-20}
CLOSED_SECONDS=${CLOSED_SECONDS:-10}
ROUNDS_DORA=${ROUNDS_DORA:-2}
WORK=${WORK:-/tmp/leaseline-bench-history}
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

if ss -Hlun "sport = :$PORT" 2>/dev/null | grep -q .; then
    echo "UDP port $PORT is in use" >&2
    exit 1
fi
if [ "${BUILD:-1}" = 1 ]; then
    echo "== building leaseline and leaseline-bench (release)"
    cargo build --release -p leaseline -p leaseline-bench >&2
fi
BIN=${LEASELINE_BIN:-${CARGO_TARGET_DIR:-target}/release/leaseline}
BENCH=${CARGO_TARGET_DIR:-target}/release/leaseline-bench

rm -rf "$WORK"
mkdir -p "$WORK"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

echo
echo "== 1. prefill: $CLIENTS clients x $ROUNDS rounds (lease + release) over $DAYS days"
"$BENCH" history-prefill --db "$WORK/history.db" --clients "$CLIENTS" --rounds "$ROUNDS" --days "$DAYS" \
    | tee "$WORK/prefill.txt"
ls -l "$WORK/history.db" | awk '{ printf "  store file: %.0f MiB\n", $5 / 1048576 }'

echo
echo "== 2. history queries, $QUERIES of each kind (target: p99 < 10 ms)"
"$BENCH" history-query --db "$WORK/history.db" --clients "$CLIENTS" --rounds "$ROUNDS" --days "$DAYS" \
    --queries "$QUERIES" | tee "$WORK/query.txt"
awk '/^query/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "  %-9s p99 %6.2f ms  (%.2f of the 10 ms target)\n", v["kind"], v["p99_us"] / 1000, v["p99_us"] / 10000 }' \
    "$WORK/query.txt"
rm -f "$WORK"/history.db*

# wait_for_line FILE TEXT SECONDS
. bench/lib/wait.sh

# dora on|off: DORA/s of the closed loop against a fresh server.
dora() {
    local dir="$WORK/server-$1"
    local enabled=false
    [ "$1" = on ] && enabled=true
    rm -rf "$dir"; mkdir -p "$dir"
    cat >"$dir/leaseline.toml" <<EOF
[server]
state_dir = "$dir"
server_id = "127.0.0.1"

[dhcp]
listen = "127.0.0.1:$PORT"

[history]
enabled = $enabled

[[subnet]]
prefix = "10.0.0.0/16"
pools = ["10.0.0.10-10.0.255.250"]
relay_addresses = ["127.0.0.1"]
lease_time = 3600
EOF
    RUST_LOG=info NO_COLOR=1 "$BIN" serve --config "$dir/leaseline.toml" 2>"$dir/server.log" &
    SERVER_PID=$!
    wait_for_line "$dir/server.log" "leaseline ready" 30
    "$BENCH" saturate --dhcp "127.0.0.1:$PORT" --window "$WINDOW" --clients "$DORA_CLIENTS" \
        --seconds "$CLOSED_SECONDS" --release-percent "$RELEASE_PCT" >"$dir/saturate.txt"
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    sed -n 's/.* rate=\([0-9]*\).*/\1/p' "$dir/saturate.txt"
}

echo
echo "== 3. DORA closed loop, window $WINDOW, $RELEASE_PCT % released, $CLOSED_SECONDS s each, off/on x $ROUNDS_DORA"
OFF=0; ON=0
for i in $(seq "$ROUNDS_DORA"); do
    off=$(dora off); on=$(dora on)
    echo "  round $i: history off $off DORA/s, on $on DORA/s"
    OFF=$((OFF + off)); ON=$((ON + on))
done
awk -v off="$OFF" -v on="$ON" -v n="$ROUNDS_DORA" 'BEGIN {
    printf "  history off: %7d DORA/s\n  history on:  %7d DORA/s  %5.1f %% of off (target >= 90 %%)\n",
        off / n, on / n, 100 * on / off }'
