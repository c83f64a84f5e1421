#!/usr/bin/env bash
# UDP Leasequery throughput (RFC 4388): DHCPLEASEQUERYs answered per second,
# by IP and by MAC, by leaseline (release build) holding BINDINGS active
# bindings, measured by a separate process on loopback.
#
#   bench/lq_udp.sh                      # 100,000 bindings, 3 runs of 10 s each way
#   BINDINGS=20000 RUNS=1 bench/lq_udp.sh
#
# 1. leaseline serves 10.0.0.0/14 to relay 127.0.0.1 on 127.0.0.1:$PORT and
#    sends relay replies to port $RELAY_PORT (no root needed);
# 2. `lq_load populate` (crates/requestor/examples/lq_load.rs) makes BINDINGS
#    bindings by relayed DORA, writing each binding's IP and MAC;
# 3. `lq_load query` keeps WINDOW queries in flight from one UDP socket
#    (giaddr 127.0.0.1) for DURATION s after a 1 s warm-up, cycling over the
#    bindings' IPs (or MACs), and prints answers/s, answers by type, losses
#    (no answer within 1 s) and latency percentiles. Every answer should be
#    DHCPLEASEACTIVE.
#
# The per-requestor rate limit is off (rate = 0) so the server, not the
# limiter, is measured. Prints the median of RUNS runs each way.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib/wait.sh

PORT=${PORT:-47067}
RELAY_PORT=${RELAY_PORT:-47068}
BINDINGS=${BINDINGS:-100000}
DURATION=${DURATION:-10}
WINDOW=${WINDOW:-64}
RUNS=${RUNS:-3}
WORK=${WORK:-/tmp/leaseline-bench-lq}

command -v cargo >/dev/null || { echo "missing cargo" >&2; exit 1; }
for p in "$PORT" "$RELAY_PORT"; do
    if ss -Hlun "sport = :$p" 2>/dev/null | grep -q .; then
        echo "UDP port $p is in use (set PORT / RELAY_PORT)" >&2
        exit 1
    fi
done

echo "== building leaseline and lq_load (release)" >&2
cargo build --release -p leaseline >&2
cargo build --release -p leaseline-requestor --example lq_load >&2
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release/leaseline
LOAD=$TARGET/release/examples/lq_load

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

cat >"$WORK/leaseline.toml" <<EOF
[server]
state_dir = "$WORK"
server_id = "127.0.0.1"

[dhcp]
listen = "127.0.0.1:$PORT"
relay_port = $RELAY_PORT
offer_hold = 30
decline_hold = 3600
expired_grace = 600

[store]
history_max_age = 3600
history_max_count = 1000000

[[subnet]]
prefix = "10.0.0.0/14"
pools = ["10.0.0.10-10.3.255.250"]
relay_addresses = ["127.0.0.1"]
router = ["10.0.0.1"]
dns_servers = ["10.0.0.2"]
domain_name = "lab.example"
# Long enough that every binding stays active for the whole run.
lease_time = 86400

[leasequery]
allow = ["127.0.0.0/8"]

[leasequery.udp]
enabled = true
rate = 0
EOF

RUST_LOG=info NO_COLOR=1 "$BIN" serve --config "$WORK/leaseline.toml" 2>"$WORK/server.log" &
SERVER_PID=$!
wait_for_line "$WORK/server.log" "leaseline ready" 30

echo "== populating $BINDINGS bindings" >&2
"$LOAD" populate --server "127.0.0.1:$PORT" --relay "127.0.0.1:$RELAY_PORT" \
    --count "$BINDINGS" --window 64 --out "$WORK/bindings.txt"
have=$(wc -l <"$WORK/bindings.txt")
[ "$have" -eq "$BINDINGS" ] || { echo "only $have bindings" >&2; exit 1; }

# run MODE: RUNS runs; prints each line and sets MEDIAN (answers/s).
run() {
    local mode=$1 i out rates=()
    for i in $(seq "$RUNS"); do
        out=$("$LOAD" query --server "127.0.0.1:$PORT" --mode "$mode" --keys "$WORK/bindings.txt" \
            --duration "$DURATION" --window "$WINDOW")
        echo "  $out"
        case $out in *" ACTIVE=0 "*) echo "no DHCPLEASEACTIVE answers" >&2; exit 1 ;; esac
        rates+=("$(echo "$out" | awk '{ print $3 }')")
    done
    MEDIAN=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
}

echo "== by IP ($RUNS x ${DURATION} s, window $WINDOW)"
run ip
IP=$MEDIAN
echo "== by MAC ($RUNS x ${DURATION} s, window $WINDOW)"
run mac
MAC=$MEDIAN

kill -TERM "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
echo
echo "UDP leasequery, $BINDINGS active bindings, median of $RUNS runs:"
echo "  by IP:  $IP queries answered/s"
echo "  by MAC: $MAC queries answered/s"
echo "  $(grep -o 'stats=.*' "$WORK/server.log" | tail -n 1)"
echo "(server log and bindings in $WORK; $(nproc) CPUs, $(uname -r))"
