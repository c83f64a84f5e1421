#!/usr/bin/env bash
# Soak: what accumulates over a long run under sustained churn (issue 16,
# item 0). One release server on its SQLite store, perfdhcp relaying DORAs
# from 127.0.0.1 at RATE for DURATION seconds, WATCHERS `leaseline watch
# --json` and one `leaseline mirror` attached throughout. Every SAMPLE
# seconds it prints the WAL size, the database size, the server's RSS and
# open file descriptors (and the mirror's RSS and fds). At the end:
#
#   - WAL: its largest sample must be <= WAL_BOUND (the store's documented
#     bound, leaseline_store::WAL_SIZE_BOUND, 64 MiB);
#   - RSS: after WARMUP seconds, the median of the last third of the
#     samples within RSS_PCT % of the median of the first third (server and
#     mirror): a leak drifts, while single samples swing with allocator
#     reuse and bursts (their range is printed too);
#   - fds: after WARMUP, within FD_SLACK of the first sample after WARMUP;
#   - equality: once the load stops and the stream settles, the mirror's
#     replica and every watcher's last record per address equal the
#     server's own answer (`leaseline bulk --all --json`): state, MAC,
#     client-id, expiry.
#
# Exit status 0 when every check passes. Figures: bench/README.md, "Soak".
#
#   bench/soak.sh                         # 30 minutes at 5,000 DORA/s
#   DURATION=300 SAMPLE=10 bench/soak.sh  # a short look
#
# RATE defaults to half of the open-loop maximum bench/dora.sh measures on
# the 2-CPU reference box (~10,000 DORA/s with < 0.1 % drops).
# Needs root (perfdhcp binds port 67), python3, and the tools .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-5000}
DURATION=${DURATION:-1800}
SAMPLE=${SAMPLE:-30}
WARMUP=${WARMUP:-180}
WATCHERS=${WATCHERS:-10}
CLIENTS=${CLIENTS:-60000}
PORT=${PORT:-1867}          # DHCP (UDP)
TCP_PORT=${TCP_PORT:-7867}  # leasequery (TCP)
WAL_BOUND=${WAL_BOUND:-$((64 << 20))}
RSS_PCT=${RSS_PCT:-10}
FD_SLACK=${FD_SLACK:-4}
WORK=${WORK:-/tmp/leaseline-bench-soak}
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

for tool in perfdhcp python3 cargo; do
    command -v "$tool" >/dev/null || { echo "missing $tool (see .ci/run)" >&2; exit 1; }
done
if ss -Hlun "sport = :$PORT" 2>/dev/null | grep -q . || ss -Hltn "sport = :$TCP_PORT" 2>/dev/null | grep -q .; then
    echo "UDP port $PORT or TCP port $TCP_PORT is in use" >&2
    exit 1
fi

echo "== building leaseline (release)"
cargo build --release -p leaseline >&2
BIN=${LEASELINE_BIN:-${CARGO_TARGET_DIR:-target}/release/leaseline}

rm -rf "$WORK"
mkdir -p "$WORK/server" "$WORK/mirror" "$WORK/watch"
PIDS=()
SERVER_PID=""
cleanup() {
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

cat >"$WORK/server/leaseline.toml" <<EOF
[server]
state_dir = "$WORK/server"
server_id = "127.0.0.1"

[dhcp]
listen = "127.0.0.1:$PORT"

[store]
history_max_age = 3600
history_max_count = 100000

[[subnet]]
prefix = "10.0.0.0/15"
pools = ["10.0.0.10-10.1.255.250"]
relay_addresses = ["127.0.0.1"]
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
# Every watcher and the mirror come from 127.0.0.1.
max_connections_per_requestor = $((WATCHERS + 2))
EOF

RUST_LOG=info NO_COLOR=1 "$BIN" serve --config "$WORK/server/leaseline.toml" 2>"$WORK/server/server.log" &
SERVER_PID=$!
deadline=$((SECONDS + 60))
until grep -q "leaseline ready" "$WORK/server/server.log"; do
    kill -0 "$SERVER_PID" 2>/dev/null || { tail "$WORK/server/server.log" >&2; exit 1; }
    [ "$SECONDS" -lt "$deadline" ] || { echo "server not ready" >&2; exit 1; }
    sleep 0.1
done

for i in $(seq 1 "$WATCHERS"); do
    "$BIN" watch --server "127.0.0.1:$TCP_PORT" --json >"$WORK/watch/$i.jsonl" 2>"$WORK/watch/$i.log" &
    PIDS+=($!)
done
RUST_LOG=info NO_COLOR=1 "$BIN" mirror --server "127.0.0.1:$TCP_PORT" --db "$WORK/mirror/replica.db" \
    2>"$WORK/mirror/mirror.log" &
MIRROR_PID=$!
PIDS+=("$MIRROR_PID")

# Churn starts once every watcher and the mirror have their query running:
# a watcher without --since sees only what changes after it connects.
deadline=$((SECONDS + 60))
until [ "$(grep -c "active query started" "$WORK/server/server.log")" -ge $((WATCHERS + 1)) ]; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "watchers and mirror not all connected" >&2; exit 1; }
    sleep 0.1
done

DB=$WORK/server/leaseline.db
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }

echo "== churn: perfdhcp at $RATE DORA/s for $DURATION s, $WATCHERS watchers and a mirror"
perfdhcp -4 -N "$PORT" -r "$RATE" -R "$CLIENTS" -p "$DURATION" 127.0.0.1 >"$WORK/perfdhcp.out" 2>&1 &
PERF_PID=$!
PIDS+=("$PERF_PID")
START=$SECONDS
printf '%6s %10s %10s %10s %8s %10s %8s\n' t_s wal_bytes db_bytes rss_kib fds mirror_rss mirror_fds | tee "$WORK/samples.txt"
while kill -0 "$PERF_PID" 2>/dev/null; do
    printf '%6d %10d %10d %10d %8d %10d %8d\n' $((SECONDS - START)) "$(size "$DB-wal")" "$(size "$DB")" \
        "$(rss_kib "$SERVER_PID")" "$(fds "$SERVER_PID")" "$(rss_kib "$MIRROR_PID")" "$(fds "$MIRROR_PID")" |
        tee -a "$WORK/samples.txt"
    # Wait SAMPLE seconds or until perfdhcp ends, whichever is first.
    for _ in $(seq 1 "$SAMPLE"); do kill -0 "$PERF_PID" 2>/dev/null && sleep 1; done
done
wait "$PERF_PID" || true
grep -A9 -E "Statistics for: (DISCOVER-OFFER|REQUEST-ACK)" "$WORK/perfdhcp.out" | grep -E "Statistics|sent|received|drops" || true

echo "== settle: the stream stops changing"
last=""
while :; do
    # Sizes, not lines: the watchers' streams are GBs after 30 minutes.
    now="$(stat -c %s "$WORK"/watch/*.jsonl | paste -sd+ | bc) $("$BIN" mirror status --db "$WORK/mirror/replica.db" --json | grep -o '"applied[^,]*')"
    [ "$now" = "$last" ] && break
    last=$now
    sleep 3
done
"$BIN" bulk --server "127.0.0.1:$TCP_PORT" --all --json -q >"$WORK/server.jsonl"
"$BIN" mirror query --db "$WORK/mirror/replica.db" --all --json >"$WORK/mirror.jsonl"

echo "== checks"
python3 - "$WORK" "$WARMUP" "$WAL_BOUND" "$RSS_PCT" "$FD_SLACK" <<'EOF'
import glob, json, sys

work, warmup, wal_bound, rss_pct, fd_slack = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
rows = [l.split() for l in open(f"{work}/samples.txt")][1:]
rows = [[int(x) for x in r] for r in rows]
failed = 0

def check(ok, what):
    global failed
    print(("PASS " if ok else "FAIL ") + what)
    failed += not ok

wal = max(r[1] for r in rows)
check(wal <= wal_bound, f"largest WAL {wal / 2**20:.1f} MiB <= {wal_bound / 2**20:.0f} MiB ({len(rows)} samples)")
late = [r for r in rows if r[0] >= warmup] or rows[-1:]
third = max(1, len(late) // 3)
def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]
for name, col, in (("server RSS", 3), ("mirror RSS", 5)):
    # A leak is a drift: the last third's median against the first third's.
    # Single samples swing with allocator reuse and bursts (reported too).
    first, last = median([r[col] for r in late[:third]]), median([r[col] for r in late[-third:]])
    lo, hi = min(r[col] for r in late), max(r[col] for r in late)
    check(last <= first * (1 + rss_pct / 100), f"{name}: median {first} KiB in the first third after {warmup} s, {last} KiB in the last ({100 * (last - first) / first:+.1f} %, bound {rss_pct:.0f} %); samples {lo}-{hi} KiB")
for name, col in (("server fds", 4), ("mirror fds", 6)):
    base, top = late[0][col], max(r[col] for r in late)
    check(top <= base + fd_slack, f"{name} {base} at {late[0][0]} s, at most {top} after (slack {fd_slack})")

def key(r):
    return (r.get("state"), r.get("mac"), r.get("client_id"), r.get("expiry"))

server = {}
for line in open(f"{work}/server.jsonl"):
    r = json.loads(line)
    server[r["ip"]] = r
leased = {ip for ip, r in server.items() if r.get("state") not in (None, "AVAILABLE")}

mirror = {}
for line in open(f"{work}/mirror.jsonl"):
    r = json.loads(line)
    mirror[r["ip"]] = r
mirror_leased = {ip for ip, r in mirror.items() if r.get("state") not in (None, "AVAILABLE")}
diff = [ip for ip in leased | mirror_leased if key(server.get(ip, {})) != key(mirror.get(ip, {}))]
check(not diff, f"mirror equals the server: {len(leased)} bindings, {len(diff)} differ {diff[:3]}")

for path in sorted(glob.glob(f"{work}/watch/*.jsonl")):
    last = {}
    for line in open(path):
        r = json.loads(line)
        if r.get("event") == "update":
            last[r["ip"]] = r
    watched = {ip for ip, r in last.items() if r.get("state") not in (None, "AVAILABLE")}
    diff = [ip for ip in leased | watched if key(server.get(ip, {})) != key(last.get(ip, {}))]
    check(not diff, f"watcher {path.rsplit('/', 1)[1]} equals the server: {len(watched)} bindings, {len(diff)} differ {diff[:3]}")
sys.exit(1 if failed else 0)
EOF
