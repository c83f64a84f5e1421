#!/usr/bin/env bash
# The web view's cost (issue 20), release build, on loopback:
#
#   DORA rate at saturation (`leaseline-bench saturate`, WINDOW exchanges in
#   flight for PERIOD s, closed loop: each ACK starts the next client's
#   DISCOVER) with no browser, and with SSE_CLIENTS browsers' event streams
#   (`leaseline-bench sse-clients`: GET /ui/events, read at full speed,
#   each receiving every change), alternating, ROUNDS times each; the ratio
#   of the medians. While the browsers are attached, the server's RSS and
#   open file descriptors are sampled every 0.5 s (flat: no growth per
#   change or per event).
#
# Everything runs in a network namespace of its own (loopback only). The
# machine's cores are shared with the browsers' stand-ins (at nice 19, as
# bench/active.sh's watchers: on a network they would run elsewhere).
#
#   bench/webui.sh                        # about 1.5 minutes
#   ROUNDS=3 PERIOD=15 bench/webui.sh
#
# Needs root (network namespace). Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib/wait.sh

NS=${NS:-ll-bench-webui}
PORT=${PORT:-1067}
WEB=${WEB:-127.0.0.1:8067}
TOKEN=bench-web-view-token-0123456789
SSE_CLIENTS=${SSE_CLIENTS:-20}
SSE_NICE=${SSE_NICE:-19}
ROUNDS=${ROUNDS:-2}
PERIOD=${PERIOD:-10}
WINDOW=${WINDOW:-256}
CLIENTS=${CLIENTS:-50000}
WORK=/tmp/leaseline-bench-webui
STATE_DIR=${STATE_DIR:-$WORK/server}
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

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
in_ns() { ip netns exec "$NS" "$@"; }
SERVER_PID=""
CLIENTS_PID=""
SAMPLER_PID=""
stop_server() {
    for p in "$SAMPLER_PID" "$CLIENTS_PID"; do
        [ -n "$p" ] && { kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; }
    done
    SAMPLER_PID=""; CLIENTS_PID=""
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
cleanup() {
    stop_server
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT

start_server() {
    local dir="$STATE_DIR"
    rm -rf "$dir"; mkdir -p "$dir"
    cat >"$dir/leaseline.toml" <<EOF2
[server]
state_dir = "$dir"
server_id = "127.0.0.1"

[dhcp]
listen = "127.0.0.1:$PORT"
offer_hold = 30

[[subnet]]
prefix = "10.0.0.0/15"
pools = ["10.0.0.10-10.1.255.250"]
relay_addresses = ["127.0.0.1"]
router = ["10.0.0.1"]
lease_time = 3600

[http]
listen = "$WEB"
token = "$TOKEN"
EOF2
    ip netns exec "$NS" env RUST_LOG=info NO_COLOR=1 "$BIN" serve --config "$dir/leaseline.toml" \
        2>"$dir/server.log" &
    SERVER_PID=$!
    wait_for_line "$dir/server.log" "leaseline ready" 30
}

# sample PID FILE: "rss_kib fds" every 0.5 s.
sample() {
    while kill -0 "$1" 2>/dev/null; do
        echo "$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null) $(ls "/proc/$1/fd" 2>/dev/null | wc -l)" >>"$2"
        sleep 0.5
    done
}

# run KIND ROUND: RATE_OUT = DORAs completed per second.
run() {
    local kind=$1 round=$2 out acks
    start_server
    if [ "$kind" = browsers ]; then
        in_ns nice -n "$SSE_NICE" "$BENCH" sse-clients --web "$WEB" --token "$TOKEN" \
            --count "$SSE_CLIENTS" --seconds $((PERIOD + 5)) >"$WORK/sse-$round.txt" 2>&1 &
        CLIENTS_PID=$!
        local deadline=$((SECONDS + 10))
        # The streams are open once the endpoint has that many connections.
        until [ "$(in_ns ss -Htn state established "( sport = :${WEB##*:} )" | wc -l)" -ge "$SSE_CLIENTS" ]; do
            [ "$SECONDS" -lt "$deadline" ] || { echo "the $SSE_CLIENTS streams did not open" >&2; exit 1; }
            sleep 0.1
        done
        sample "$SERVER_PID" "$WORK/sample-$round.txt" &
        SAMPLER_PID=$!
    fi
    out=$(in_ns "$BENCH" saturate --dhcp "127.0.0.1:$PORT" --window "$WINDOW" --clients "$CLIENTS" --seconds "$PERIOD" 2>&1) || true
    acks=$(echo "$out" | sed -n 's/.* acks=\([0-9]*\).*/\1/p')
    if [ "$kind" = browsers ]; then
        wait "$CLIENTS_PID" || { echo "sse-clients failed:" >&2; cat "$WORK/sse-$round.txt" >&2; exit 1; }
        CLIENTS_PID=""
        echo "  $(cat "$WORK/sse-$round.txt")"
        awk 'NR == 1 { r0 = $1; f0 = $2 } { if ($1 > r) r = $1; if ($2 > f) f = $2 }
             END { printf "  server RSS %d KiB at the start, at most %d KiB; fds %d at the start, at most %d (%d samples)\n", r0, r, f0, f, NR }' \
            "$WORK/sample-$round.txt"
    fi
    stop_server
    RATE_OUT=$(( ${acks:-0} / PERIOD ))
    echo "  $kind: ${acks:-0} DORAs in $PERIOD s = $RATE_OUT DORA/s"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

alone=(); with=()
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round"
    run alone "$round"; alone+=("$RATE_OUT")
    run browsers "$round"; with+=("$RATE_OUT")
done
a=$(printf '%s\n' "${alone[@]}" | median)
w=$(printf '%s\n' "${with[@]}" | median)
echo "== DORA/s: no browser ${alone[*]} (median $a); $SSE_CLIENTS browsers ${with[*]} (median $w)"
awk -v a="$a" -v w="$w" -v n="$SSE_CLIENTS" 'BEGIN { printf "== ratio with %s browsers / without: %.1f %%\n", n, a ? 100 * w / a : 0 }'
