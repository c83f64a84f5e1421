#!/usr/bin/env bash
# Bulk Leasequery throughput and server memory: how many bindings per second
# `leaseline bulk --all` receives from a server holding TOTAL configured
# addresses of which BOUND are ACTIVE, and how much the server's peak
# resident memory grows while it answers.
#
#   bench/bulk.sh                          # 1,000,000 addresses, 250,000 bound, 3 runs
#   TOTAL=200000 BOUND=50000 RUNS=1 bench/bulk.sh
#   FORMAT=--json bench/bulk.sh            # the requestor printing JSON instead of text
#
# Steps: release build; `bulk_prefill` (crates/server/examples) writes BOUND
# ACTIVE bindings (MAC, client-id, option 82 with circuit-id and remote-id)
# through SqliteStore, one every TOTAL/BOUND addresses from 10.0.0.1; the
# server starts on that store with one pool of exactly TOTAL addresses in
# 10.0.0.0/12 and Bulk Leasequery on 127.0.0.1:$TCP_PORT. Each run resets the
# server's peak RSS (echo 5 > /proc/PID/clear_refs), reads VmRSS, runs
#   leaseline bulk --server 127.0.0.1:$TCP_PORT --all --quiet > /dev/null
# and reads VmHWM: "added" is VmHWM after minus VmRSS before. The rate is the
# requestor's own summary: records received and formatted / seconds from
# sending the query to DHCPLEASEQUERYDONE.
#
# No root needed (no port below 1024, no DHCP traffic).
set -euo pipefail
cd "$(dirname "$0")/.."

TOTAL=${TOTAL:-1000000}
BOUND=${BOUND:-250000}
RUNS=${RUNS:-3}
TCP_PORT=${TCP_PORT:-16767}
UDP_PORT=${UDP_PORT:-16768}
FORMAT=${FORMAT:-}
TARGET=${CARGO_TARGET_DIR:-target}

(( TOTAL <= 1048000 )) || { echo "TOTAL must fit in 10.0.0.0/12" >&2; exit 1; }
(( BOUND >= 1 && BOUND <= TOTAL )) || { echo "need 1 <= BOUND <= TOTAL" >&2; exit 1; }
STRIDE=$(( TOTAL / BOUND ))

cargo build --release -q -p leaseline --bin leaseline
cargo build --release -q -p leaseline-server --example bulk_prefill
LEASELINE=$TARGET/release/leaseline
PREFILL=$TARGET/release/examples/bulk_prefill

ip_of() { local n=$1; echo "$(( n >> 24 & 255 )).$(( n >> 16 & 255 )).$(( n >> 8 & 255 )).$(( n & 255 ))"; }
FIRST_N=$(( (10 << 24) + 1 ))
FIRST=$(ip_of $FIRST_N)
LAST=$(ip_of $(( FIRST_N + TOTAL - 1 )))

WORK=$(mktemp -d /tmp/leaseline-bench-bulk.XXXXXX)
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "prefill: $BOUND ACTIVE bindings, one every $STRIDE addresses from $FIRST"
"$PREFILL" "$WORK/leaseline.db" "$FIRST" "$BOUND" "$STRIDE"

cat > "$WORK/bench.toml" <<EOF
[server]
state_dir = "$WORK"
server_id = "127.0.0.1"
[dhcp]
listen = "127.0.0.1:$UDP_PORT"
[[subnet]]
prefix = "10.0.0.0/12"
pools = ["$FIRST-$LAST"]
relay_addresses = ["127.0.0.1"]
lease_time = 3600
[leasequery]
allow = ["127.0.0.0/8"]
[leasequery.bulk]
enabled = true
listen = "127.0.0.1:$TCP_PORT"
EOF

RUST_LOG=info NO_COLOR=1 "$LEASELINE" serve --config "$WORK/bench.toml" > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 600); do
    grep -q "leaseline ready" "$WORK/server.log" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
    sleep 0.1
done
grep -q "leaseline ready" "$WORK/server.log" || { echo "server not ready" >&2; cat "$WORK/server.log"; exit 1; }

kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$SERVER_PID/status"; }
echo "server up: pool $FIRST-$LAST ($TOTAL addresses), VmRSS $(kb VmRSS) kB"
printf '%-4s %10s %8s %14s %14s %14s %12s\n' run bindings seconds 'bindings/s' 'RSS before kB' 'peak after kB' 'added MiB'
rates=()
added=()
for run in $(seq 1 "$RUNS"); do
    echo 5 > "/proc/$SERVER_PID/clear_refs"
    before=$(kb VmRSS)
    # shellcheck disable=SC2086
    "$LEASELINE" bulk --server "127.0.0.1:$TCP_PORT" --all --quiet $FORMAT > /dev/null 2> "$WORK/run.err" \
        || { cat "$WORK/run.err"; exit 1; }
    peak=$(kb VmHWM)
    summary=$(tail -1 "$WORK/run.err")
    # "leaseline bulk: 1,000,000 binding(s) (ACTIVE 250,000, AVAILABLE 750,000) in 1.78 s (561,255/s)"
    count=$(sed -E 's/^leaseline bulk: ([0-9,]+) binding.*/\1/' <<<"$summary" | tr -d ,)
    secs=$(sed -E 's/.* in ([0-9.]+) s .*/\1/' <<<"$summary")
    rate=$(sed -E 's/.*\(([0-9,]+)\/s\)$/\1/' <<<"$summary" | tr -d ,)
    active=$(sed -E 's/.*ACTIVE ([0-9,]+).*/\1/' <<<"$summary" | tr -d ,)
    [[ $count == "$TOTAL" && $active == "$BOUND" ]] \
        || { echo "expected $TOTAL records, $BOUND ACTIVE; got: $summary" >&2; exit 1; }
    add=$(awk -v a="$peak" -v b="$before" 'BEGIN { printf "%.1f", (a - b) / 1024 }')
    printf '%-4s %10s %8s %14s %14s %14s %12s\n' "$run" "$count" "$secs" "$rate" "$before" "$peak" "$add"
    rates+=("$rate")
    added+=("$add")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "median: $(median "${rates[@]}") bindings/s; server peak RSS added: max $(printf '%s\n' "${added[@]}" | sort -n | tail -1) MiB"
echo "server log:"
grep -E "bulk query done|WARN|ERROR" "$WORK/server.log" | tail -n "$RUNS" || true
