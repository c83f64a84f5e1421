#!/usr/bin/env bash
# Active Leasequery (RFC 7724) benchmark, release build, on loopback:
#
#  1. DORA rate at saturation: `leaseline-bench saturate` keeps WINDOW DORA
#     exchanges in flight for PERIOD s (closed loop: each ACK starts the next
#     client's DISCOVER), relaying from 127.0.0.1; the rate is the DORAs
#     completed per second. Once with Active Leasequery enabled and no
#     watcher, once with 100 watchers attached (`leaseline-bench watchers`),
#     each receiving every update; alternating, ROUNDS times each (the
#     machine's other load drifts); the ratio of the medians (target: at
#     least 90 %). DRIVER=perfdhcp uses perfdhcp offering OFFERED/s instead:
#     it spins on its sockets and takes a whole CPU of the two, so that
#     figure says how the CPU is shared with perfdhcp as much as what the
#     server does.
#  2. Update latency: `leaseline-bench active-latency` drives DORA as relay
#     $GIADDR at RATE/s (default 5,600: a steady load, ten times the renewals
#     of a million subscribers on one-hour leases) for
#     LAT_SECONDS while 1, 10 and 100 watchers time each update against the
#     DHCPACK of the same address (DHCPACK as received by the relay, update as
#     received by the watcher: kernel receive timestamps at both sockets,
#     SO_TIMESTAMPNS): p50 and p99 over all watchers' updates. A fresh server per run; LAT_ROUNDS runs per watcher count, the
#     median run (by p99) is reported. Also per change, from its first
#     watcher's arrival to its last's (the fan-out alone: spread_*).
#  3. Catch-up: CATCHUP distinct clients get a lease (perfdhcp -R/-n at the
#     CATCHUP_RATE), then one active query with query-start-time before them:
#     time from the query to CatchUpComplete, and the updates it brought.
#
# Everything runs in a network namespace of its own (loopback only), so other
# programs on this machine's 127.0.0.1 (port 67 in particular) do not get in
# the way. It shares the machine's cores, though: the watchers' CPU is taken
# from the server's (on a real network the requestors run elsewhere).
#
#   bench/active.sh
#   SEARCH=0 CATCHUP=0 bench/active.sh             # latency only
#   WATCHER_COUNTS= CATCHUP=0 bench/active.sh        # DORA rate ratio only
#
# Needs root (network namespace) and the tools .ci/run installs. Honours
# CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

NS=${NS:-ll-bench-active}     # the network namespace
PORT=${PORT:-1067}             # DHCP (UDP)
TCP_PORT=${TCP_PORT:-67}       # leasequery (TCP)
GIADDR=${GIADDR:-127.0.0.32}   # relay of leaseline-bench active-latency
RATE=${RATE:-5600}             # DORA/s for the latency runs
LAT_SECONDS=${LAT_SECONDS:-10}
WATCHER_COUNTS=${WATCHER_COUNTS-"1 10 100"}   # empty: skip step 2
RATE_WATCHERS=${RATE_WATCHERS:-100}
SEARCH=${SEARCH:-1}            # 0: skip the rate measurement (set RATE)
ROUNDS=${ROUNDS:-3}
LAT_ROUNDS=${LAT_ROUNDS:-3}
CATCHUP=${CATCHUP:-100000}
CATCHUP_RATE=${CATCHUP_RATE:-5000}   # perfdhcp's rate while the CATCHUP clients get leases
# Step 1's requestors stand in for other hosts: at nice 19 they take only
# CPU the server leaves (on a network they would take none of it).
# perfdhcp, the DHCP load of step 1, keeps nice 0. WATCHER_NICE=0 shows
# them competing with the server.
WATCHER_NICE=${WATCHER_NICE:-19}
# Step 2's probe (the DORA driver and the watchers it times) runs at nice
# 0: at nice 19 it starves whenever the server is busy, its sockets fill,
# and the figure becomes the probe's own starvation (p99 of 0.1-1.8 s in
# runs where the same build gives 3-6 ms at nice 0).
LAT_NICE=${LAT_NICE:-0}
LEASEQUERY_NICE=${LEASEQUERY_NICE:-5}   # the server's [server] leasequery_nice
WORKER_THREADS=${WORKER_THREADS:-}      # the server's [server] worker_threads (default: its own)
# The rate measurement. DRIVER=closed: `leaseline-bench saturate`, WINDOW
# DORAs in flight at all times (closed loop: the server's capacity, the
# probe taking little CPU); DRIVER=perfdhcp: perfdhcp offering OFFERED/s
# (it spins, taking a whole CPU of this 2-CPU VM from the server: the
# ratio then measures how the CPU is shared with it as much as the server).
DRIVER=${DRIVER:-closed}
WINDOW=${WINDOW:-256}
PERIOD=${PERIOD:-15}
CLIENTS=${CLIENTS:-50000}
OFFERED=${OFFERED:-20000}
WORK=/tmp/leaseline-bench-active
# Where the server keeps its store. On this VM's disk an fsync now and then
# takes 100-700 ms; the group committed after it reaches every watcher as
# one burst, and that burst, not the fan-out, makes the latency tail.
# STATE_DIR=/dev/shm/... (tmpfs: fsync is free) measures the fan-out alone.
STATE_DIR=${STATE_DIR:-$WORK/server}
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

for tool in perfdhcp ip cargo; do
    command -v "$tool" >/dev/null || { echo "missing $tool (see .ci/run)" >&2; exit 1; }
done
PERFDHCP=$(command -v perfdhcp)
in_ns() { ip netns exec "$NS" "$@"; }
# saturate() and step 3 run `perfdhcp`: in the namespace.
perfdhcp() { in_ns "$PERFDHCP" "$@"; }

# saturate KIND: start_KIND, load the server to saturation for PERIOD s;
# RATE_OUT = DORAs completed per second.
saturate() {
    local kind=$1 out acks
    "start_$kind"
    if [ "$DRIVER" = perfdhcp ]; then
        out=$(perfdhcp -4 -N "$PORT" -r "$OFFERED" -R "$CLIENTS" -p "$PERIOD" -W 2000000 127.0.0.1 2>&1) || true
        acks=$(echo "$out" | awk '/^\*\*\*Statistics for: REQUEST-ACK/ { on = 1 } on && /^received packets:/ { print $3; exit }')
    else
        out=$(in_ns "$BENCH" saturate --dhcp "127.0.0.1:$PORT" --window "$WINDOW" --clients "$CLIENTS" --seconds "$PERIOD" 2>&1) || true
        acks=$(echo "$out" | sed -n 's/.* acks=\([0-9]*\).*/\1/p')
    fi
    stop_server
    echo "$out" >"$WORK/$DRIVER-$kind-$round.txt"
    RATE_OUT=$(( ${acks:-0} / PERIOD ))
    echo "  $kind: ${acks:-0} DORAs completed in $PERIOD s = $RATE_OUT DORA/s"
}

echo "== building leaseline and leaseline-bench (release)"
cargo build --release -p leaseline -p leaseline-bench >&2
TARGET=${CARGO_TARGET_DIR:-target}/release
BIN=${LEASELINE_BIN:-$TARGET/leaseline}   # LEASELINE_BIN: another build of the server (A/B)
BENCH=$TARGET/leaseline-bench

rm -rf "$WORK"
mkdir -p "$WORK"
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
ip -n "$NS" link set lo up
SERVER_PID=""
WATCHERS_PID=""
cleanup() {
    stop_server
    ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
}
stop_server() {
    if [ -n "$WATCHERS_PID" ]; then
        kill "$WATCHERS_PID" 2>/dev/null || true
        wait "$WATCHERS_PID" 2>/dev/null || true
        WATCHERS_PID=""
    fi
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap cleanup EXIT

. bench/lib/wait.sh

# start_server: leaseline on an empty store, Active Leasequery on (insecure,
# loopback only), room for 100+ watchers from one address. 10.0.0.0/15
# (131,000 addresses) so that CATCHUP distinct clients fit.
start_server() {
    local dir="$STATE_DIR"
    rm -rf "$dir"; mkdir -p "$dir"
    cat >"$dir/leaseline.toml" <<EOF
[server]
state_dir = "$dir"
server_id = "127.0.0.1"
leasequery_nice = $LEASEQUERY_NICE
${WORKER_THREADS:+worker_threads = $WORKER_THREADS}

[dhcp]
listen = "127.0.0.1:$PORT"
offer_hold = 30
decline_hold = 3600
expired_grace = 600

[store]
history_max_age = 3600
history_max_count = 1000000

[[subnet]]
prefix = "10.0.0.0/15"
pools = ["10.0.0.10-10.1.255.250"]
relay_addresses = ["127.0.0.1", "$GIADDR"]
router = ["10.0.0.1"]
dns_servers = ["10.0.0.2", "10.0.0.3"]
domain_name = "lab.example"
lease_time = 3600

[leasequery]
allow = ["127.0.0.0/8"]

[leasequery.bulk]
enabled = true
listen = "127.0.0.1:$TCP_PORT"
max_connections = 256

[leasequery.active]
enabled = true
insecure = true
max_connections = 200
max_connections_per_requestor = 200
EOF
    # ip and env exec: $! is the server's pid.
    ip netns exec "$NS" env RUST_LOG=info NO_COLOR=1 "$BIN" serve --config "$dir/leaseline.toml" \
        2>"$dir/server.log" &
    SERVER_PID=$!
    wait_for_line "$dir/server.log" "leaseline ready" 30
}

# wait_for_count FILE TEXT N SECONDS: until N lines of FILE contain TEXT.
wait_for_count() {
    local deadline=$((SECONDS + $4))
    until [ "$(grep -c "$2" "$1" 2>/dev/null || true)" -ge "$3" ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "fewer than $3 \"$2\" in $1 within $4 s" >&2; tail -n 20 "$1" >&2; return 1
        fi
        sleep 0.1
    done
}

# The kinds of server saturate() starts ("start_$kind").
start_active0() { start_server; }
start_watched() {
    start_server
    ip netns exec "$NS" nice -n "$WATCHER_NICE" "$BENCH" watchers --tcp "127.0.0.1:$TCP_PORT" --count "$RATE_WATCHERS" --seconds 3600 \
        >"$WORK/watchers.log" 2>&1 &
    WATCHERS_PID=$!
    wait_for_count "$STATE_DIR/server.log" "active query started" "$RATE_WATCHERS" 30
}

# median N...: the middle value (the lower middle for an even count).
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

BASES=()
WATCHEDS=()
[ "$SEARCH" = 1 ] || ROUNDS=0
for round in $(seq "$ROUNDS"); do
    echo "== 1. round $round: DORA rate at saturation, Active Leasequery on, no watcher"
    saturate active0
    BASES+=("$RATE_OUT")
    echo "== 1. round $round: DORA rate at saturation, $RATE_WATCHERS watchers"
    saturate watched
    WATCHEDS+=("$RATE_OUT")
done
BASE=0
WATCHED=0
if [ "$ROUNDS" -gt 0 ]; then
    BASE=$(median "${BASES[@]}")
    WATCHED=$(median "${WATCHEDS[@]}")
fi

LATENCY=()
[ -z "$WATCHER_COUNTS" ] || echo "== 2. update latency at $RATE DORA/s for $LAT_SECONDS s"
for w in $WATCHER_COUNTS; do
    runs=()
    for i in $(seq "$LAT_ROUNDS"); do
        start_server
        out=$(in_ns nice -n "$LAT_NICE" "$BENCH" active-latency --dhcp "127.0.0.1:$PORT" --tcp "127.0.0.1:$TCP_PORT" \
            --giaddr "$GIADDR" --watchers "$w" --rate "$RATE" --seconds "$LAT_SECONDS")
        stop_server
        echo "  $out"
        runs+=("$(echo "$out" | sed -n 's/.* p99_us=\([0-9]*\).*/\1/p') $out")
    done
    # The run with the median p99.
    LATENCY+=("$(printf '%s\n' "${runs[@]}" | sort -n | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }' | cut -d' ' -f2-)")
done

CATCHUP_OUT="(skipped)"
if [ "$CATCHUP" -gt 0 ]; then
    echo "== 3. catch-up of $CATCHUP changed addresses"
    start_server
    since=$(date +%s)
    catchup_rate=$CATCHUP_RATE
    perfdhcp -4 -N "$PORT" -r "$catchup_rate" -R "$CATCHUP" -n "$CATCHUP" -W 5000000 \
        -b mac=02:00:0c:ca:00:00 127.0.0.1 >"$WORK/perfdhcp-catchup.txt" 2>&1 || true
    acks=$(awk '/^\*\*\*Statistics for: REQUEST-ACK/ { on = 1 } on && /^received packets:/ { print $3; exit }' "$WORK/perfdhcp-catchup.txt")
    CATCHUP_OUT=$(in_ns "$BENCH" catchup --tcp "127.0.0.1:$TCP_PORT" --since "$since")
    CATCHUP_OUT2=$(in_ns "$BENCH" catchup --tcp "127.0.0.1:$TCP_PORT" --since "$since")
    stop_server
    echo "  perfdhcp: $acks ACKs at $catchup_rate/s"
    echo "  $CATCHUP_OUT"
    echo "  again (warm): $CATCHUP_OUT2"
fi
echo
echo "Active Leasequery, $(nproc) cores, $(date -u +%Y-%m-%d):"
if [ "$BASE" -gt 0 ]; then
    echo "  DORA rate at saturation, no watcher:  median $BASE DORA/s (rounds: ${BASES[*]})"
    echo "  DORA rate at saturation, $RATE_WATCHERS watchers: median $WATCHED DORA/s (rounds: ${WATCHEDS[*]})"
    awk -v a="$WATCHED" -v b="$BASE" 'BEGIN { printf "  ratio: %.0f %% (target >= 90 %%)\n", 100 * a / b }'
fi
[ ${#LATENCY[@]} -eq 0 ] || echo "  update latency at $RATE DORA/s (median of $LAT_ROUNDS runs by p99):"
for l in "${LATENCY[@]}"; do
    echo "$l" | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "    %3d watchers: p50 %.2f ms, p99 %.2f ms (%s samples); one change to every watcher: p50 %.2f ms, p99 %.2f ms\n",
            v["watchers"], v["p50_us"] / 1000, v["p99_us"] / 1000, v["samples"], v["spread_p50_us"] / 1000, v["spread_p99_us"] / 1000 }'
done
echo "  catch-up: $CATCHUP_OUT"
echo "(logs and perfdhcp reports in $WORK)"
