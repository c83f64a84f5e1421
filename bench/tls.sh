#!/usr/bin/env bash
# Secure mode (TLS, RFC 7724 §8.1) beside plain TCP, on one server whose
# leasequery listener accepts both (`insecure = true` with [leasequery.tls]),
# so both modes see the same store:
#
#  1. Active Leasequery update latency: leaseline-bench active-latency drives
#     DORA as relay 127.0.0.31 at RATE/s for LAT_SECONDS while WATCHERS
#     watchers (plain, or DHCPTLS + TLS) time each update from its REQUEST's
#     departure (the commit, ACK and update inside; the ratio uses this) and
#     from its ACK (often ~0: the update can beat the ACK). ROUNDS rounds per
#     mode, alternating; medians of each round's p50 and p99.
#  2. Bulk Leasequery throughput: `leaseline bulk --all` (text output to
#     /dev/null) over plain TCP and over TLS, BULK_ROUNDS each, alternating,
#     after one unmeasured run of each; the median wall time (records/s) and
#     the median CPU time, server and client (user + system), per run: the
#     CPU figure is the steadier one on a shared machine.
#     --all returns every configured address: the 65,521 of the DORA subnet,
#     which by then holds the leases of step 1 (ROUNDS x 2 x RATE x
#     LAT_SECONDS), and the 1,048,561 of a second subnet no relay uses
#     (DHCPLEASEUNASSIGNED), 1,114,082 records in all.
#
# Prints both and the ratios TLS/plain. Release build; needs root (the
# relay binds 127.0.0.31:67).
#
#   bench/tls.sh
#   RATE=2000 WATCHERS=8 bench/tls.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-1267}            # DHCP (UDP)
TCP_PORT=${TCP_PORT:-6867}    # leasequery (TCP)
GIADDR=${GIADDR:-127.0.0.31}
RATE=${RATE:-1000}
LAT_SECONDS=${LAT_SECONDS:-8}
WATCHERS=${WATCHERS:-10}
ROUNDS=${ROUNDS:-3}
BULK_ROUNDS=${BULK_ROUNDS:-7}
WORK=/tmp/leaseline-bench-tls

[ -x /usr/bin/time ] || { echo "missing /usr/bin/time (apt-get install time)" >&2; exit 1; }
if [ $((ROUNDS * 2 * RATE * LAT_SECONDS)) -gt 60000 ]; then
    echo "ROUNDS x 2 x RATE x LAT_SECONDS exceeds the pool (65,521 addresses)" >&2
    exit 1
fi
if ss -Hlun "sport = :$PORT" 2>/dev/null | grep -q . || ss -Hltn "sport = :$TCP_PORT" 2>/dev/null | grep -q .; then
    echo "UDP port $PORT or TCP port $TCP_PORT is in use" >&2
    exit 1
fi

echo "== building leaseline and leaseline-bench (release)"
cargo build --release -p leaseline -p leaseline-bench >&2
TARGET=${CARGO_TARGET_DIR:-target}/release
BIN=$TARGET/leaseline
BENCH=$TARGET/leaseline-bench

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

. bench/lib/wait.sh

"$BIN" certs init "$WORK/certs" >/dev/null
cat >"$WORK/leaseline.toml" <<EOF
[server]
state_dir = "$WORK"
server_id = "127.0.0.1"

[dhcp]
listen = "127.0.0.1:$PORT"

[store]
history_max_age = 3600
history_max_count = 1000000

[[subnet]]
prefix = "10.0.0.0/16"
pools = ["10.0.0.10-10.0.255.250"]
relay_addresses = ["$GIADDR"]
router = ["10.0.0.1"]
lease_time = 3600

# Volume for bulk --all only.
[[subnet]]
prefix = "10.128.0.0/12"
pools = ["10.128.0.10-10.143.255.250"]
relay_addresses = ["127.0.0.255"]

[leasequery]
allow = ["127.0.0.0/8"]

[leasequery.bulk]
enabled = true
listen = "127.0.0.1:$TCP_PORT"

[leasequery.active]
enabled = true
# Both modes on one listener, so both see the same store.
insecure = true
max_connections_per_requestor = 100

[leasequery.tls]
cert = "certs/server.pem"
key = "certs/server-key.pem"
ca = "certs/ca.pem"
allowed_requestors = ["san:requestor.leaseline.lab"]
EOF
"$BIN" check-config "$WORK/leaseline.toml" >&2
# Per-connection logging off (warn), the ready line on.
RUST_LOG=warn,leaseline_server::run=info NO_COLOR=1 "$BIN" serve --config "$WORK/leaseline.toml" 2>"$WORK/server.log" &
SERVER_PID=$!
wait_for_line "$WORK/server.log" "leaseline ready" 30

CERTS=$WORK/certs
TLS_BENCH=(--tls-ca "$CERTS/ca.pem" --tls-cert "$CERTS/requestor.pem" --tls-key "$CERTS/requestor-key.pem")
TLS_CLI=(--tls --ca "$CERTS/ca.pem" --cert "$CERTS/requestor.pem" --key "$CERTS/requestor-key.pem")

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }

echo "== active update latency: $WATCHERS watchers, DORA at $RATE/s for $LAT_SECONDS s, $ROUNDS rounds per mode"
client=0
: >"$WORK/latency.txt"
for round in $(seq "$ROUNDS"); do
    for mode in plain tls; do
        extra=()
        [ "$mode" = tls ] && extra=("${TLS_BENCH[@]}")
        line=$("$BENCH" active-latency --dhcp "127.0.0.1:$PORT" --tcp "127.0.0.1:$TCP_PORT" \
            --giaddr "$GIADDR" --watchers "$WATCHERS" --rate "$RATE" --seconds "$LAT_SECONDS" \
            --first-client "$client" "${extra[@]}")
        client=$((client + RATE * LAT_SECONDS + 1000))
        echo "  round $round: $line"
        echo "$line" >>"$WORK/latency.txt"
    done
done
for mode in plain tls; do
    for f in p50_us p99_us req_p50_us req_p99_us; do
        grep "mode=$mode " "$WORK/latency.txt" | field "$f" | median >"$WORK/$f-$mode"
    done
done

echo "== bulk --all: $BULK_ROUNDS runs per mode"
TCK=$(getconf CLK_TCK)
server_cpu() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }
bulk() { # bulk MODE: prints "wall_seconds records server_cpu_seconds client_cpu_seconds"
    local extra=() t0 t1 c0 c1 n
    [ "$1" = tls ] && extra=("${TLS_CLI[@]}")
    c0=$(server_cpu)
    t0=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$WORK/bulk.time" \
        "$BIN" bulk --server "127.0.0.1:$TCP_PORT" --all -q "${extra[@]}" >/dev/null 2>"$WORK/bulk.err" \
        || { cat "$WORK/bulk.err" >&2; exit 1; }
    t1=$(date +%s.%N)
    c1=$(server_cpu)
    n=$(sed -n 's/.*: \([0-9,]*\) binding(s).*/\1/p' "$WORK/bulk.err" | tr -d ,)
    echo "$t0 $t1 ${n:-0} $c0 $c1 $TCK $(cat "$WORK/bulk.time")" |
        awk '{ printf "%.3f %d %.2f %.2f\n", $2 - $1, $3, ($5 - $4) / $6, $7 + $8 }'
}
bulk plain >/dev/null
bulk tls >/dev/null
: >"$WORK/bulk.txt"
for round in $(seq "$BULK_ROUNDS"); do
    for mode in plain tls; do
        r=$(bulk "$mode")
        echo "  round $round $mode: $r (wall s, records, server CPU s, client CPU s)"
        echo "$mode $r" >>"$WORK/bulk.txt"
    done
done
for mode in plain tls; do
    grep "^$mode " "$WORK/bulk.txt" | awk '{ print $2 }' | median >"$WORK/bulk-s-$mode"
    grep "^$mode " "$WORK/bulk.txt" | awk '{ print $4 }' | median >"$WORK/bulk-server-$mode"
    grep "^$mode " "$WORK/bulk.txt" | awk '{ print $5 }' | median >"$WORK/bulk-client-$mode"
done
RECORDS=$(awk 'NR == 1 { print $3 }' "$WORK/bulk.txt")

bsp=$(cat "$WORK/bulk-s-plain"); bst=$(cat "$WORK/bulk-s-tls")
echo
echo "secure mode vs plain TCP (medians; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)):"
lat() { # lat LABEL FIELD
    awk -v l="$1" -v p="$(cat "$WORK/$2-plain")" -v t="$(cat "$WORK/$2-tls")" \
        'BEGIN { printf "  %s: plain %d us, TLS %d us, TLS/plain %s\n", l, p, t, (p ? sprintf("%.2f", t / p) : "n/a") }'
}
lat "active update latency from REQUEST, p50" req_p50_us
lat "active update latency from REQUEST, p99" req_p99_us
lat "active update latency from ACK, p50" p50_us
lat "active update latency from ACK, p99" p99_us
awk -v p="$bsp" -v t="$bst" -v n="$RECORDS" 'BEGIN {
    printf "  bulk --all, %d records: plain %.3f s (%.0f/s), TLS %.3f s (%.0f/s), throughput TLS/plain %.2f\n",
        n, p, n / p, t, n / t, p / t }'
for side in server client; do
    awk -v s="$side" -v p="$(cat "$WORK/bulk-$side-plain")" -v t="$(cat "$WORK/bulk-$side-tls")" \
        'BEGIN { printf "  bulk --all, %s CPU: plain %.2f s, TLS %.2f s, TLS/plain %s\n", s, p, t, (p ? sprintf("%.2f", t / p) : "n/a") }'
done
echo "(raw figures in $WORK)"
