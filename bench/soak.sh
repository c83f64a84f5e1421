#!/usr/bin/env bash
# Soak: what accumulates over a long run under sustained churn. Two modes.
#
# STORE=sqlite (the default; issue 16, item 0): one release server on its
# SQLite store, perfdhcp relaying DORAs from 127.0.0.1 at RATE for DURATION
# seconds, WATCHERS `leaseline watch --json` and one `leaseline mirror`
# attached throughout. Every SAMPLE seconds: the WAL size, the database
# size, the server's RSS and open file descriptors (and the mirror's RSS
# and fds). At the end:
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
# STORE=postgres (issue 17: the PostgreSQL change log, `lease_changes`, the
# outbox every instance appends to and prunes): two release instances A and
# B on ONE database of a throwaway cluster (bench/lib/pg.sh: Debian's
# initdb + pg_ctl as `postgres`, fsync on, synchronous_commit on; stopped
# and removed at exit), in a network namespace of their own. One
# `leaseline-bench saturate --rate` per instance (relays 127.0.0.1 and
# 127.0.0.2; not perfdhcp: it spins on its sockets, and two of them took
# two thirds of this 2-CPU box) starts RATE DORA/s for DURATION from
# CLIENTS clients each (each client comes back every CLIENTS/RATE s) and
# releases RELEASE_PERCENT of the leases it gets at once (bindings go
# ACTIVE -> RELEASED -> ACTIVE). WATCHERS `leaseline watch --json` (half
# given A first, half B; their streams gzip'd, and deleted when every check
# passed) and one `leaseline mirror --server A,B` are attached before the
# load. `[store] history_max_count` and the lease history's `[history]
# max_rows` are HISTORY_MAX_COUNT (100,000 changes; the change log is kept
# for the longer of the two histories, so the lease history's default of
# 20 million rows would keep the whole run's log and test no pruning):
# each instance prunes the log every 4,096 of its own commits, so pruning
# runs about once a second. Every SAMPLE seconds: pg_database_size, the
# rows in lease_changes, the last pruned log id, the size of pg_wal, RSS
# and fds of A, B and the mirror, and of the instances' PostgreSQL
# backends their number, their private memory (RssAnon, summed) and their
# VmRSS (summed; it includes the shared buffers each has touched, up to
# shared_buffers). At the end, after WARMUP, the median of the last
# quarter of the samples against the first quarter's (every quarter's is
# printed):
#
#   - database size within GROW_PCT %; pg_wal within GROW_PCT % or still
#     filling toward max_wal_size, and at most max_wal_size + 10 %; lease_changes at most HISTORY_MAX_COUNT + 16,384
#     rows (each instance prunes after 4,096 of its changes, and a batch
#     adds up to 4,096 before that);
#   - pruning all along (no 30 s without the pruned id moving), how often
#     (pg_stat_statements' count of the pruning DELETE) and at what cost
#     (its mean and largest time, the deadlocks the cluster logged);
#   - RSS of A, B, the mirror, and the backends' private memory within
#     RSS_PCT %; fds (and the number of backends) within FD_SLACK;
#   - equality: once the load stops and the log stops growing, the
#     mirror's replica and every watcher's last record per address equal
#     the database (the `bindings` table: state, MAC, client-id, and the
#     expiry of active leases) and both instances' `bulk --all`.
#
# Exit status 0 when every check passes. Figures: bench/README.md, "Soak".
#
#   bench/soak.sh                                    # SQLite, 30 minutes at 5,000 DORA/s
#   DURATION=300 SAMPLE=10 bench/soak.sh             # a short look
#   STORE=postgres bench/soak.sh                     # PostgreSQL, 30 minutes, 2 x 2,500 DORA/s
#   STORE=postgres DURATION=300 bench/soak.sh        # a short look
#
# SQLite: RATE defaults to half of the open-loop maximum bench/dora.sh
# measures on the 2-CPU reference box (~10,000 DORA/s with < 0.1 % drops).
# PostgreSQL: 2 x 2,500/s is half the open-loop rate two instances
# sustained in bench/postgres.sh (10,000/s); about 35 minutes in all.
# Needs root (perfdhcp binds port 67; the namespace), python3, the tools
# .ci/run installs, and for STORE=postgres the postgresql package.
# Honours CARGO_TARGET_DIR and LEASELINE_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."

STORE=${STORE:-sqlite}
case $STORE in
    sqlite)
        RATE=${RATE:-5000}
        SAMPLE=${SAMPLE:-30}
        WATCHERS=${WATCHERS:-10}
        CLIENTS=${CLIENTS:-60000}
        WORK=${WORK:-/tmp/leaseline-bench-soak}
        ;;
    postgres)
        RATE=${RATE:-2500}              # per instance
        RELEASE_PERCENT=${RELEASE_PERCENT:-10}
        SAMPLE=${SAMPLE:-5}
        WATCHERS=${WATCHERS:-4}
        CLIENTS=${CLIENTS:-30000}       # per instance
        HISTORY_MAX_COUNT=${HISTORY_MAX_COUNT:-100000}
        GROW_PCT=${GROW_PCT:-10}
        NS=${NS:-ll-bench-soak}
        PG_PORT=${PG_PORT:-5432}        # inside the namespace
        WORK=${WORK:-/tmp/leaseline-bench-soak-pg}
        ;;
    *) echo "STORE=sqlite or STORE=postgres" >&2; exit 2 ;;
esac
DURATION=${DURATION:-1800}
WARMUP=${WARMUP:-180}
PORT=${PORT:-1867}          # DHCP (UDP); PostgreSQL: A, and B on PORT+1
TCP_PORT=${TCP_PORT:-7867}  # leasequery (TCP); PostgreSQL: A, and B on TCP_PORT+1
WAL_BOUND=${WAL_BOUND:-$((64 << 20))}
RSS_PCT=${RSS_PCT:-10}
FD_SLACK=${FD_SLACK:-4}
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

tools="python3 cargo"
[ "$STORE" = sqlite ] && tools="$tools perfdhcp"
for tool in $tools; do
    command -v "$tool" >/dev/null || { echo "missing $tool (see .ci/run)" >&2; exit 1; }
done
. bench/lib/pg.sh   # rss_kib, fds; the cluster and the namespace for STORE=postgres
if [ "$STORE" = postgres ]; then
    pg_require
elif ss -Hlun "sport = :$PORT" 2>/dev/null | grep -q . || ss -Hltn "sport = :$TCP_PORT" 2>/dev/null | grep -q .; then
    echo "UDP port $PORT or TCP port $TCP_PORT is in use" >&2
    exit 1
fi

echo "== building leaseline and leaseline-bench (release)"
cargo build --release -p leaseline -p leaseline-bench >&2
BIN=${LEASELINE_BIN:-${CARGO_TARGET_DIR:-target}/release/leaseline}
BENCH=${CARGO_TARGET_DIR:-target}/release/leaseline-bench

rm -rf "$WORK"
mkdir -p "$WORK/mirror" "$WORK/watch"
PIDS=()          # watchers, mirror, the load: INT at exit
SERVER_PIDS=()   # TERM after them
GZIP_PIDS=()     # PostgreSQL: the watchers' compressors, done once their watcher is
cleanup() {
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}" "${GZIP_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    stop_pids TERM "${SERVER_PIDS[@]}"
    if [ "$STORE" = postgres ]; then
        pg_cluster_stop
        ns_down
    fi
}
trap cleanup EXIT

# ---- the server(s) ----------------------------------------------------------
# RUN: the prefix of every command run in the servers' network (a command,
# not a shell function: $! must be the process itself, not a subshell).
if [ "$STORE" = sqlite ]; then
    RUN=()
    mkdir -p "$WORK/server"
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
    SERVER_PIDS+=("$SERVER_PID")
    deadline=$((SECONDS + 60))
    until grep -q "leaseline ready" "$WORK/server/server.log"; do
        kill -0 "$SERVER_PID" 2>/dev/null || { tail "$WORK/server/server.log" >&2; exit 1; }
        [ "$SECONDS" -lt "$deadline" ] || { echo "server not ready" >&2; exit 1; }
        sleep 0.1
    done
    LQ_A="127.0.0.1:$TCP_PORT"
    MIRROR_SERVERS=$LQ_A
    LOGS=("$WORK/server/server.log")
else
    RUN=(ip netns exec "$NS")
    ns_up 127.0.0.2
    PG_EXTRA_OPTS="-c shared_preload_libraries=pg_stat_statements"
    pg_cluster_start /tmp
    psql_admin -c "CREATE EXTENSION pg_stat_statements"
    pg_new_db leaseline
    LL_HISTORY_MAX_AGE=3600
    LL_HISTORY_MAX_COUNT=$HISTORY_MAX_COUNT
    LL_LEASE_HISTORY_MAX_ROWS=$HISTORY_MAX_COUNT
    LL_PREFIX=10.0.0.0/15
    LL_POOL=10.0.0.10-10.1.255.250
    LL_RELAYS='["127.0.0.1", "127.0.0.2"]'
    ll_start a "$PORT" 127.0.0.1 "$TCP_PORT" "$DB"
    A_PID=$LL_PID
    ll_start b $((PORT + 1)) 127.0.0.2 $((TCP_PORT + 1)) "$DB"
    B_PID=$LL_PID
    SERVER_PIDS+=("$A_PID" "$B_PID")
    wait_for_line "$WORK/a/server.log" "of=2" 10 "$A_PID"
    wait_for_line "$WORK/b/server.log" "of=2" 10 "$B_PID"
    LQ_A="127.0.0.1:$TCP_PORT"
    LQ_B="127.0.0.1:$((TCP_PORT + 1))"
    MIRROR_SERVERS="$LQ_A,$LQ_B"
    LOGS=("$WORK/a/server.log" "$WORK/b/server.log")
    psql_db() { psql_admin -d "$DB" -At "$@"; }
fi

# ---- watchers and the mirror --------------------------------------------------
for i in $(seq 1 "$WATCHERS"); do
    if [ "$STORE" = sqlite ]; then
        "${RUN[@]}" "$BIN" watch --server "$LQ_A" --json >"$WORK/watch/$i.jsonl" 2>"$WORK/watch/$i.log" &
    else
        # Half follow A first, half B. The streams are GBs: gzip'd.
        servers="$LQ_A,$LQ_B"
        [ $((i % 2)) = 0 ] && servers="$LQ_B,$LQ_A"
        mkfifo "$WORK/watch/$i.fifo"
        gzip -1 <"$WORK/watch/$i.fifo" >"$WORK/watch/$i.jsonl.gz" &
        GZIP_PIDS+=($!)
        "${RUN[@]}" "$BIN" watch --server "$servers" --json >"$WORK/watch/$i.fifo" 2>"$WORK/watch/$i.log" &
    fi
    PIDS+=($!)
done
"${RUN[@]}" env RUST_LOG=info NO_COLOR=1 "$BIN" mirror --server "$MIRROR_SERVERS" --db "$WORK/mirror/replica.db" \
    --status-interval 2 2>"$WORK/mirror/mirror.log" &
MIRROR_PID=$!
PIDS+=("$MIRROR_PID")

# Churn starts once every watcher and the mirror have their query running:
# a watcher without --since sees only what changes after it connects.
deadline=$((SECONDS + 60))
until [ "$(cat "${LOGS[@]}" | grep -c "active query started")" -ge $((WATCHERS + 1)) ]; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "watchers and mirror not all connected" >&2; exit 1; }
    sleep 0.1
done

# ---- samples ------------------------------------------------------------------
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
if [ "$STORE" = sqlite ]; then
    DBFILE=$WORK/server/leaseline.db
    COLUMNS_LINE="t_s wal_bytes db_bytes rss_kib fds mirror_rss mirror_fds"
    sample() {
        echo "$(size "$DBFILE-wal") $(size "$DBFILE") $(rss_kib "$SERVER_PID") $(fds "$SERVER_PID") $(rss_kib "$MIRROR_PID") $(fds "$MIRROR_PID")"
    }
else
    COLUMNS_LINE="t_s db_bytes changes pruned_id wal_bytes a_rss a_fds b_rss b_fds pg_conns pg_anon pg_rss mirror_rss mirror_fds"
    # The instances' backends, their summed RssAnon and VmRSS (KiB).
    backends() {
        local pids p anon=0 rss=0 n=0
        pids=$(psql_db -c "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND usename = 'leaseline'")
        for p in $pids; do
            n=$((n + 1))
            read -r a r < <(awk '$1 == "RssAnon:" { a = $2 } $1 == "VmRSS:" { r = $2 } END { print a + 0, r + 0 }' "/proc/$p/status" 2>/dev/null || echo "0 0")
            anon=$((anon + a)); rss=$((rss + r))
        done
        echo "$n $anon $rss"
    }
    sample() {
        local db
        db=$(psql_db -F ' ' -c "SELECT pg_database_size(current_database()), (SELECT count(*) FROM lease_changes),
            (SELECT coalesce(max(value), 0) FROM meta WHERE key = 'log_pruned_id'), (SELECT sum(size) FROM pg_ls_waldir())")
        echo "$db $(rss_kib "$A_PID") $(fds "$A_PID") $(rss_kib "$B_PID") $(fds "$B_PID") $(backends) $(rss_kib "$MIRROR_PID") $(fds "$MIRROR_PID")"
    }
fi

# ---- churn --------------------------------------------------------------------
LOAD_PIDS=()
if [ "$STORE" = sqlite ]; then
    echo "== churn: perfdhcp at $RATE DORA/s for $DURATION s, $WATCHERS watchers and a mirror"
    perfdhcp -4 -N "$PORT" -r "$RATE" -R "$CLIENTS" -p "$DURATION" 127.0.0.1 >"$WORK/perfdhcp.out" 2>&1 &
    LOAD_PIDS+=($!)
else
    echo "== churn: $RATE DORA/s (releasing $RELEASE_PERCENT %) to each of A and B for $DURATION s, $WATCHERS watchers and a mirror; history_max_count $HISTORY_MAX_COUNT"
    for side in a b; do
        if [ $side = a ]; then port=$PORT relay=127.0.0.1 first=0; else port=$((PORT + 1)) relay=127.0.0.2 first=$CLIENTS; fi
        "${RUN[@]}" "$BENCH" saturate --dhcp "127.0.0.1:$port" --giaddr "$relay" --rate "$RATE" --window 1024 \
            --clients "$CLIENTS" --first-client "$first" --release-percent "$RELEASE_PERCENT" \
            --seconds "$DURATION" >"$WORK/load-$side.out" 2>&1 &
        LOAD_PIDS+=($!)
    done
fi
PIDS+=("${LOAD_PIDS[@]}")
running() { local p; for p in "${LOAD_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
START=$SECONDS
echo "$COLUMNS_LINE" | tr ' ' '\t' | tee "$WORK/samples.txt"
while running; do
    echo "$((SECONDS - START)) $(sample)" | tr ' ' '\t' | tee -a "$WORK/samples.txt"
    # Wait SAMPLE seconds or until the load ends, whichever is first.
    for _ in $(seq 1 "$SAMPLE"); do running && sleep 1; done
done
for p in "${LOAD_PIDS[@]}"; do wait "$p" || true; done
if [ "$STORE" = sqlite ]; then
    grep -A9 -E "Statistics for: (DISCOVER-OFFER|REQUEST-ACK)" "$WORK/perfdhcp.out" | grep -E "Statistics|sent|received|drops" || true
else
    for side in a b; do echo "load on $side: $(cat "$WORK/load-$side.out")"; done
fi

# ---- settle, then what the server(s) and the requestors hold -------------------
echo "== settle: the stream stops changing"
last=""
while :; do
    if [ "$STORE" = sqlite ]; then
        # Sizes, not lines: the watchers' streams are GBs after 30 minutes.
        now="$(stat -c %s "$WORK"/watch/*.jsonl | paste -sd+ | bc) $("$BIN" mirror status --db "$WORK/mirror/replica.db" --json | grep -o '"applied[^,]*')"
    else
        # The log's last id and the mirror's count (the gzip'd streams'
        # sizes lag their compressor's buffer).
        now="$(psql_db -c "SELECT coalesce(max(id), 0) FROM lease_changes") $("$BIN" mirror status --db "$WORK/mirror/replica.db" --json | grep -o '"applied[^,]*')"
    fi
    [ "$now" = "$last" ] && break
    last=$now
    sleep 3
done
if [ "$STORE" = sqlite ]; then
    "$BIN" bulk --server "$LQ_A" --all --json -q >"$WORK/server.jsonl"
else
    sleep 3
    # (A server that stopped answering must not hang the script.)
    timeout 300 "${RUN[@]}" "$BIN" bulk --server "$LQ_A" --all --json -q >"$WORK/server.jsonl" || true
    timeout 300 "${RUN[@]}" "$BIN" bulk --server "$LQ_B" --all --json -q >"$WORK/server-b.jsonl" || true
    psql_db -F ' ' -c "SELECT ip, state, encode(chaddr, 'hex'), coalesce(encode(client_id, 'hex'), '-'), expiry FROM bindings" >"$WORK/bindings.txt"
    # What pruning cost: the pruning statement's calls, mean and largest
    # time (ms), the deadlocks the cluster logged, the failed prunes the
    # instances logged; the cluster's top statements in pgstat.txt.
    echo "$(psql_admin -At -F ' ' -c "SELECT calls, round(mean_exec_time::numeric, 1), round(max_exec_time::numeric) FROM pg_stat_statements WHERE query LIKE 'WITH d AS (DELETE FROM lease_changes%'") \
$(grep -c "deadlock detected" "$PG_DIR/postgres.log" || true) $(cat "$WORK"/[ab]/server.log | grep -c "pruning lease_changes failed" || true)" >"$WORK/prunes.txt"
    psql_admin -c "SELECT calls, round(total_exec_time::numeric) AS total_ms, round(mean_exec_time::numeric, 2) AS mean_ms,
        round(max_exec_time::numeric) AS max_ms, left(regexp_replace(query, '\s+', ' ', 'g'), 100) AS query
        FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 10" >"$WORK/pgstat.txt"
    psql_admin -At -c "SELECT setting::bigint << 20 FROM pg_settings WHERE name = 'max_wal_size'" >"$WORK/max_wal_size.txt"
    psql_db -F ' ' -c "SELECT relname, n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count FROM pg_stat_user_tables WHERE relname IN ('bindings', 'lease_changes') ORDER BY relname" >"$WORK/tables.txt"
    psql_db -c "SELECT coalesce(max(id), 0) FROM lease_changes" >"$WORK/last_id.txt"
    # The watchers' streams are complete once they exit.
    for p in "${PIDS[@]:0:$WATCHERS}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]:0:$WATCHERS}" "${GZIP_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
fi
"$BIN" mirror query --db "$WORK/mirror/replica.db" --all --json >"$WORK/mirror.jsonl"

# ---- checks -------------------------------------------------------------------
echo "== checks"
status=0
python3 - "$STORE" "$WORK" "$WARMUP" "$WAL_BOUND" "$RSS_PCT" "$FD_SLACK" "${HISTORY_MAX_COUNT:-0}" "${GROW_PCT:-0}" <<'EOF' || status=$?
import glob, gzip, json, sys

store, work = sys.argv[1], sys.argv[2]
warmup, wal_bound, rss_pct, fd_slack, max_count, grow_pct = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8])
lines = [l.split() for l in open(f"{work}/samples.txt")]
names, rows = lines[0], [[int(x) for x in r] for r in lines[1:]]
col = {n: i for i, n in enumerate(names)}
failed = 0

def check(ok, what):
    global failed
    print(("PASS " if ok else "FAIL ") + what)
    failed += not ok

def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]

late = [r for r in rows if r[0] >= warmup] or rows[-1:]
# SQLite: thirds (the recorded figures); PostgreSQL: quarters.
parts = 3 if store == "sqlite" else 4
part = max(1, len(late) // parts)
which = "third" if parts == 3 else "quarter"
mib = lambda v: f"{v / 2**20:.1f} MiB"

def drift(name, c, pct, fmt, ceiling=None):
    # A leak is a drift: the last part's median against the first part's.
    # Single samples swing with allocator reuse and bursts (reported too),
    # and so does every part's median (a step or a trend). `ceiling`: a
    # size the value may grow to by design (then it stays there).
    v = [r[col[c]] for r in late]
    first, last = median(v[:part]), median(v[-part:])
    parts_seen = " / ".join(fmt(median(v[i * part:(i + 1) * part])) for i in range(parts))
    under = ceiling is not None and last <= ceiling
    check(last <= first * (1 + pct / 100) or under,
          f"{name}: median {fmt(first)} in the first {which} after {warmup} s, {fmt(last)} in the last "
          f"({100 * (last - first) / max(first, 1):+.1f} %, bound {pct:.0f} %"
          f"{f', or up to {fmt(ceiling)}' if ceiling is not None else ''}); samples {fmt(min(v))}-{fmt(max(v))}; "
          f"by {which}: {parts_seen}")

def slack(name, c):
    base, top = late[0][col[c]], max(r[col[c]] for r in late)
    check(top <= base + fd_slack, f"{name} {base} at {late[0][0]} s, at most {top} after (slack {fd_slack})")

kib = lambda v: f"{v} KiB"
if store == "sqlite":
    wal = max(r[col["wal_bytes"]] for r in rows)
    check(wal <= wal_bound, f"largest WAL {mib(wal)} <= {mib(wal_bound)} ({len(rows)} samples)")
    drift("server RSS", "rss_kib", rss_pct, fmt=kib)
    drift("mirror RSS", "mirror_rss", rss_pct, fmt=kib)
    slack("server fds", "fds")
    slack("mirror fds", "mirror_fds")
else:
    print(f"{len(rows)} samples, {len(late)} after {warmup} s")
    drift("database size", "db_bytes", grow_pct, fmt=mib)
    wal, max_wal = max(r[col["wal_bytes"]] for r in rows), int(open(f"{work}/max_wal_size.txt").read())
    # pg_wal fills up to max_wal_size before PostgreSQL recycles its
    # segments: growth up to it is by design (a short run, or less WAL a
    # change, may still be filling after the warm-up), beyond it a leak.
    drift("pg_wal", "wal_bytes", grow_pct, fmt=mib, ceiling=max_wal * 1.1)
    check(wal <= max_wal * 1.1, f"largest pg_wal {mib(wal)} <= max_wal_size {mib(max_wal)} + 10 % (a soft limit of PostgreSQL's)")
    top = max(r[col["changes"]] for r in late)
    bound = max_count + 16384
    check(top <= bound, f"lease_changes rows at most {top} after {warmup} s (bound {bound}: history_max_count {max_count} + 4 x 4,096)")
    # (Pruning starts once the log holds history_max_count rows: after WARMUP.)
    pruned = [r[col["pruned_id"]] for r in late]
    moves = sum(1 for a, b in zip(pruned, pruned[1:]) if b > a)
    calls, mean_ms, max_ms, deadlocks, prune_failures = (open(f"{work}/prunes.txt").read().split() + ["?"] * 5)[:5]
    last_id = int(open(f"{work}/last_id.txt").read())
    span = max(rows[-1][0], 1)
    check(moves >= len(late) // 2,
          f"pruned {calls} times (pg_stat_statements), up to log id {pruned[-1]} of {last_id} "
          f"({last_id / span:.0f} changes/s logged); the pruned id moved between {moves} of the {len(late) - 1} samples after {warmup} s")
    # A stretch without pruning is a stretch without commits (or a stuck
    # pruner): the servers must have committed until the end.
    still, longest, prev = 0, 0, None
    for r in late:
        if prev is not None:
            still = still + (r[0] - prev[0]) if r[col["pruned_id"]] == prev[col["pruned_id"]] else 0
            longest = max(longest, still)
        prev = r
    check(longest <= 30, f"pruning (hence commits) went on throughout: longest stretch without a prune {longest} s (bound 30 s)")
    print(f"INFO pruning statement: mean {mean_ms} ms, largest {max_ms} ms (on the writer's connection); "
          f"deadlocks logged by the cluster: {deadlocks}; failed prunes logged by the instances: {prune_failures}")
    drift("A RSS", "a_rss", rss_pct, fmt=kib)
    drift("B RSS", "b_rss", rss_pct, fmt=kib)
    drift("mirror RSS", "mirror_rss", rss_pct, fmt=kib)
    drift("backends' private memory (RssAnon, summed)", "pg_anon", rss_pct, fmt=kib)
    v = [r[col["pg_rss"]] for r in late]
    print(f"INFO backends' VmRSS (summed, shared buffers included): median {median(v[:part])} KiB in the first {which}, {median(v[-part:])} KiB in the last")
    slack("A fds", "a_fds")
    slack("B fds", "b_fds")
    slack("mirror fds", "mirror_fds")
    slack("backends", "pg_conns")
    print("INFO " + " | ".join(l.strip() for l in open(f"{work}/tables.txt")) + " (relname live dead autovacuums autoanalyzes)")

def key(r):
    return (r.get("state"), r.get("mac"), r.get("client_id"), r.get("expiry"))

def load_bulk(path):
    out = {}
    for line in open(path):
        r = json.loads(line)
        out[r["ip"]] = r
    return out

def leased(d):
    return {ip for ip, r in d.items() if r.get("state") not in (None, "AVAILABLE")}

def compare(name, ref, other, ref_name):
    diff = [ip for ip in leased(ref) | leased(other) if key(ref.get(ip, {})) != key(other.get(ip, {}))]
    check(not diff, f"{name} equals {ref_name}: {len(leased(other))} bindings, {len(diff)} differ {diff[:3]}")

def watcher(path):
    last = {}
    with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
        for line in f:
            r = json.loads(line)
            if r.get("event") == "update":
                last[r["ip"]] = r
    return last

server = load_bulk(f"{work}/server.jsonl")
mirror = load_bulk(f"{work}/mirror.jsonl")
watchers = sorted(glob.glob(f"{work}/watch/*.jsonl") + glob.glob(f"{work}/watch/*.jsonl.gz"))
if store == "sqlite":
    compare("mirror", server, mirror, "the server")
    for path in watchers:
        compare(f"watcher {path.rsplit('/', 1)[1]}", server, watcher(path), "the server")
else:
    # The database itself: bindings rows in the records' terms.
    names_by_code = {1: "AVAILABLE", 2: "ACTIVE", 3: "EXPIRED", 4: "RELEASED", 5: "ABANDONED", 6: "RESET", 7: "REMOTE", 8: "TRANSITIONING"}
    db = {}
    for line in open(f"{work}/bindings.txt"):
        ip, state, chaddr, client_id, expiry = line.split()
        ip = int(ip)
        ip = f"{ip >> 24}.{ip >> 16 & 255}.{ip >> 8 & 255}.{ip & 255}"
        db[ip] = {"state": names_by_code[int(state)],
                  "mac": ":".join(chaddr[i:i + 2] for i in range(0, len(chaddr), 2)) or None,
                  "client_id": None if client_id == "-" else client_id,
                  "expiry": int(expiry) or None}
    # The wire's expiry is base-time + the lease time left: the database's
    # only while the lease runs; other states are compared without it.
    def key(r):
        return (r.get("state"), r.get("mac"), r.get("client_id"), r.get("expiry") if r.get("state") == "ACTIVE" else None)
    compare("bulk --all of A", db, server, "the database")
    compare("bulk --all of B", db, load_bulk(f"{work}/server-b.jsonl"), "the database")
    compare("mirror", db, mirror, "the database")
    for path in watchers:
        compare(f"watcher {path.rsplit('/', 1)[1]}", db, watcher(path), "the database")
    states = {}
    for r in db.values():
        states[r["state"]] = states.get(r["state"], 0) + 1
    print(f"INFO the database: {len(db)} bindings {states}")
sys.exit(1 if failed else 0)
EOF
# (PostgreSQL: the watchers' gzip'd streams are GBs; kept only when a check failed.)
[ "$STORE" = postgres ] && [ "$status" = 0 ] && rm -f "$WORK"/watch/*.jsonl.gz
exit "$status"
