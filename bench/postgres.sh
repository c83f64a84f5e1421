#!/usr/bin/env bash
# Leaseline on PostgreSQL against leaseline on SQLite and Kea 2.2 on
# PostgreSQL (issue 17, "Benchmark"), side by side in one run, the same
# drivers for all, on loopback in a network namespace of its own:
#
#   sqlite     leaseline, the default SQLite store (every ACK fsync'd)
#   pg1        leaseline, [store] backend = "postgres", 1 instance
#   pg2        leaseline, 2 instances on the SAME database, each on its own
#              DHCP port (PORT, PORT+1), its own server id and its own
#              relay (RELAY_A, RELAY_B); one driver per instance at once,
#              the rates summed
#   kea_pg     kea-dhcp4 2.2, lease-database type postgresql, 1 thread
#   kea_pg_mt  the same, multi-threaded (2 threads, packet queue 64)
#   responder  the stateless `leaseline-bench responder` (decodes each
#              DISCOVER and REQUEST, answers a canned OFFER/ACK, keeps
#              nothing): what this host and the driver can do at all, the
#              yardstick that tells one host's figures from another's
#              (bench/dora.sh measures it the same way)
#   sqlite_warm, pg1_warm, pg2_warm
#              the same leaseline set-ups, measured after a first run of
#              the drivers (WARM_SECONDS: the clients' bindings are in the
#              store) and, on PostgreSQL, an ANALYZE: a server that has
#              been up a while (autovacuum analyzes a table that grew).
#              The writer's statements are planned once per connection,
#              through the indexes even on an empty table (schema 5,
#              docs/postgresql.md "Planned once"), so cold and warm differ
#              by the work, not by a plan (before, a sequential scan
#              planned on the empty table was kept for the whole run).
#
# 1. Closed loop (all KINDS): `leaseline-bench saturate` (WINDOW exchanges in flight per
#    driver, CLIENTS clients in all, CLOSED_SECONDS), ROUNDS rounds, the
#    configurations in turn within each round; the median per configuration.
#    pg2 runs two drivers (WINDOW each, CLIENTS/2 distinct clients each):
#    each instance gets the load pg1's single instance gets.
# 2. Open loop (PERF=1; the kinds that are not *_warm): perfdhcp offering PERF_RATE DORA/s for PERF_SECONDS
#    (-R CLIENTS, -W 2 s); pg2: two perfdhcp at once, PERF_RATE/2 each, one
#    per instance (relays RELAY_A, RELAY_B, distinct MACs); ACKs/s received
#    and the drops.
# 3. Active Leasequery across instances (ACTIVE=1): two instances on one
#    database, `leaseline-bench active-latency` drives DORA at ACTIVE_RATE/s
#    through instance B while ACTIVE_WATCHERS watchers hold Active
#    Leasequery connections to instance A: from the DHCPACK leaving B to
#    the update arriving at a watcher of A (kernel receive timestamps),
#    p50/p99 (target: p99 < 10 ms at 5,600 DORA/s with 10 watchers).
#
# The CPU seconds of the servers, of the cluster's processes and of the
# whole machine during each closed-loop measurement are printed with it.
#
# Every measurement starts on an empty store: a fresh SQLite directory, or
# a fresh database (Kea's made by `kea-admin db-init pgsql`).
#
# PostgreSQL: a throwaway cluster (Debian's /usr/lib/postgresql/*/bin
# initdb + pg_ctl, as the `postgres` user) in a temporary directory on the
# same disk as the SQLite store, started inside the namespace on
# 127.0.0.1:PG_PORT (and a unix socket in that directory), stopped and
# removed at exit. fsync = on, synchronous_commit = on (the defaults: a
# commit is durable before either server answers), ssl off, everything
# else PostgreSQL 15's defaults. Both servers reach it over TCP 127.0.0.1
# with passwords (leaseline with sslmode=disable; LL_PG_HOST=socket makes
# leaseline use the unix socket instead).
#
#   bench/postgres.sh                          # about 12 minutes
#   ROUNDS=1 PERF=0 ACTIVE=0 bench/postgres.sh # closed loop only, ~3 minutes
#   CLOSED_SECONDS=30 ROUNDS=5 bench/postgres.sh
#   KINDS="pg1 pg2" bench/postgres.sh          # a subset
#
# Needs root (namespace, port 67), perfdhcp, kea-dhcp4 and kea-admin
# (Debian kea-dhcp4-server, kea-admin), postgresql. Honours
# CARGO_TARGET_DIR and LEASELINE_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."

NS=${NS:-ll-bench-pg}
PORT=${PORT:-1067}              # instance A (and the single server); B: PORT+1
PORT_B=$((PORT + 1))
RELAY_A=${RELAY_A:-127.0.0.1}
RELAY_B=${RELAY_B:-127.0.0.2}
PG_PORT=${PG_PORT:-5432}        # inside the namespace: no clash with a host server
LL_PG_HOST=${LL_PG_HOST:-tcp}   # tcp | socket
KINDS=${KINDS:-responder sqlite pg1 pg2 kea_pg kea_pg_mt sqlite_warm pg1_warm pg2_warm}
ROUNDS=${ROUNDS:-3}
# The lease history ([history], issue 20; on by default, as in the server):
# LEASE_HISTORY=off measures without it (on PostgreSQL its four indexes on
# lease_changes are the cost).
case "${LEASE_HISTORY:-on}" in
    on) LEASE_HISTORY_ENABLED=true ;;
    off) LEASE_HISTORY_ENABLED=false ;;
    *) echo "LEASE_HISTORY must be on or off" >&2; exit 2 ;;
esac
CLOSED_SECONDS=${CLOSED_SECONDS:-10}
WARM_SECONDS=${WARM_SECONDS:-6}   # *_warm kinds: the drivers' run before the measurement
WINDOW=${WINDOW:-256}
CLIENTS=${CLIENTS:-50000}       # the pool has 65,521 addresses
PERF=${PERF:-1}
PERF_RATE=${PERF_RATE:-10000}
PERF_SECONDS=${PERF_SECONDS:-10}
# perfdhcp's receive buffer (net.core.rmem_default while it runs; the
# system's default, 208 KiB, overflows in perfdhcp at the bursts of DHCPACKs
# a group commit sends, and those count as drops; bench/dora.sh does the same
# for its drop runs, bench/README.md "DHCP: DORA rate").
# The same for every server; PERF_RMEM=212992 measures with the default.
PERF_RMEM=${PERF_RMEM:-4194304}
RMEM_BEFORE=$(cat /proc/sys/net/core/rmem_default)
ACTIVE=${ACTIVE:-1}
ACTIVE_RATE=${ACTIVE_RATE:-5600}
ACTIVE_WATCHERS=${ACTIVE_WATCHERS:-10}
ACTIVE_SECONDS=${ACTIVE_SECONDS:-10}
ACTIVE_ROUNDS=${ACTIVE_ROUNDS:-3}
LAT_GIADDR=${LAT_GIADDR:-127.0.0.30}   # active-latency's relay
TCP_PORT=${TCP_PORT:-67}               # instance A's leasequery (TCP), step 3
PG_STATS=${PG_STATS:-0}         # 1: pg_stat_statements, the top statements of each closed-loop step in $WORK
WORK=${WORK:-/tmp/leaseline-bench-pg}
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

for tool in perfdhcp kea-dhcp4 kea-admin ip cargo jq; do
    command -v "$tool" >/dev/null || { echo "missing $tool (see .ci/run)" >&2; exit 1; }
done
. bench/lib/pg.sh
pg_require

build_release
PERFDHCP=$(command -v perfdhcp)
KEA=$(command -v kea-dhcp4)

rm -rf "$WORK"
mkdir -p "$WORK"
SERVER_PIDS=()

stop_servers() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${SERVER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    SERVER_PIDS=()
}
cleanup() {
    sysctl -qw net.core.rmem_default="$RMEM_BEFORE"
    stop_servers
    pg_cluster_stop
    ns_down
}
trap cleanup EXIT

# perfdhcp -l wants an address on an interface: the second relay's.
ns_up "$RELAY_B"

# ---- the PostgreSQL cluster -------------------------------------------------
# PG_STATS=1 also logs the plan of every statement over 5 ms (auto_explain)
# to the cluster's log, kept as $WORK/postgres.log.
[ "$PG_STATS" = 1 ] && PG_STATS_OPT="-c shared_preload_libraries=pg_stat_statements,auto_explain -c pg_stat_statements.track=all -c auto_explain.log_min_duration=5"
PG_EXTRA_OPTS="${PG_STATS_OPT:-} ${PG_OPTS:-}"   # PG_OPTS: more `-c` options
pg_cluster_start /tmp
psql_admin -c "CREATE ROLE kea LOGIN PASSWORD 'kea'"
[ "$PG_STATS" = 1 ] && psql_admin -c "CREATE EXTENSION pg_stat_statements"

# ---- the servers ------------------------------------------------------------
# port_free PORT: nothing in the namespace listens on UDP PORT (a server of
# the previous step still there would answer in the next one's place).
port_free() {
    local deadline=$((SECONDS + 10))
    while in_ns ss -Hlun "sport = :$1" | grep -q .; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "UDP port $1 still in use in $NS:" >&2; in_ns ss -Hlunp "sport = :$1" >&2; return 1
        fi
        sleep 0.1
    done
}
# start_ll NAME PORT SERVER_ID RELAY STORE [LEASEQUERY]: leaseline on an empty
# store; STORE is "sqlite" or a PostgreSQL database name.
start_ll() {
    local name=$1 port=$2 sid=$3 relay=$4 store=$5 lq=${6:-0} dir="$WORK/$1" store_block
    rm -rf "$dir"; mkdir -p "$dir"
    port_free "$port"
    if [ "$store" = sqlite ]; then
        store_block=""
    else
        store_block="backend = \"postgres\"
url = \"$(ll_url "$store")\""
    fi
    cat >"$dir/leaseline.toml" <<EOF
[server]
state_dir = "$dir"
server_id = "$sid"

[dhcp]
listen = "127.0.0.1:$port"
offer_hold = 30
decline_hold = 3600
expired_grace = 600

[store]
$store_block
history_max_age = 3600
history_max_count = 1000000

[history]
enabled = $LEASE_HISTORY_ENABLED

[[subnet]]
prefix = "10.0.0.0/16"
pools = ["10.0.0.10-10.0.255.250"]
relay_addresses = ["$relay", "$LAT_GIADDR"]
router = ["10.0.0.1"]
dns_servers = ["10.0.0.2", "10.0.0.3"]
domain_name = "lab.example"
lease_time = 3600
EOF
    if [ "$lq" = 1 ]; then
        cat >>"$dir/leaseline.toml" <<EOF

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
    fi
    # `ip netns exec` and env exec: $! is the server's pid (a shell function
    # sent to the background would be a subshell, and TERM would miss the
    # server).
    ip netns exec "$NS" env RUST_LOG=info NO_COLOR=1 "$BIN" serve --config "$dir/leaseline.toml" 2>"$dir/server.log" &
    local pid=$!
    SERVER_PIDS+=("$pid")
    wait_for_line "$dir/server.log" "leaseline ready" 60 "$pid"
}

start_sqlite() { start_ll sqlite "$PORT" 127.0.0.1 "$RELAY_A" sqlite; }
start_pg1() { pg_new_db leaseline; start_ll pg1 "$PORT" 127.0.0.1 "$RELAY_A" "$DB"; }
# Two instances, one database; measured once each knows of the other (its
# share of each pool: "pool share ... of=2").
start_pg2() {
    pg_new_db leaseline
    start_ll pg2a "$PORT" 127.0.0.1 "$RELAY_A" "$DB" "${1:-0}"
    start_ll pg2b "$PORT_B" 127.0.0.2 "$RELAY_B" "$DB"
    wait_for_line "$WORK/pg2a/server.log" "of=2" 10 "${SERVER_PIDS[0]}"
    wait_for_line "$WORK/pg2b/server.log" "of=2" 10 "${SERVER_PIDS[1]}"
}

# start_kea THREADS: kea-dhcp4 on a fresh database made by kea-admin db-init;
# bench/kea-dhcp4.json with lease-database switched to PostgreSQL.
start_kea() {
    local threads=$1 dir="$WORK/kea" mt
    rm -rf "$dir"; mkdir -p "$dir"
    port_free "$PORT"
    pg_new_db kea
    in_ns kea-admin db-init pgsql -u kea -p kea -n "$DB" -h 127.0.0.1 >"$dir/kea-admin.log" 2>&1 ||
        { cat "$dir/kea-admin.log" >&2; return 1; }
    if [ "$threads" -gt 1 ]; then
        mt="{\"enable-multi-threading\": true, \"thread-pool-size\": $threads, \"packet-queue-size\": 64}"
    else
        mt='{"enable-multi-threading": false}'
    fi
    jq --arg db "$DB" --argjson port "$PG_PORT" --argjson mt "$mt" --arg relay "$RELAY_A" '
        .Dhcp4["lease-database"] = {type: "postgresql", name: $db, user: "kea", password: "kea",
                                    host: "127.0.0.1", port: $port}
        | .Dhcp4["multi-threading"] = $mt
        | .Dhcp4.subnet4[0].relay["ip-addresses"] = [$relay]' \
        bench/kea-dhcp4.json >"$dir/kea-dhcp4.json"
    ip netns exec "$NS" env KEA_PIDFILE_DIR="$dir" KEA_LOCKFILE_DIR="$dir" \
        "$KEA" -p "$PORT" -c "$dir/kea-dhcp4.json" >"$dir/kea.log" 2>&1 &
    SERVER_PIDS+=("$!")
    wait_for_line "$dir/kea.log" "DHCP4_STARTED" 60 "$!"
    if grep -q 'DHCPSRV_OPEN_SOCKET_FAIL\|DHCPSRV_NO_SOCKETS_OPEN' "$dir/kea.log"; then
        echo "kea-dhcp4 could not open its socket:" >&2; cat "$dir/kea.log" >&2; return 1
    fi
}
start_kea_pg() { start_kea 1; }
start_kea_pg_mt() { start_kea 2; }
# The stateless responder on PORT (relay replies go to giaddr:67, as the
# servers').
start_responder() {
    port_free "$PORT"
    mkdir -p "$WORK/responder"
    ip netns exec "$NS" "$BENCH" responder --listen "127.0.0.1:$PORT" >"$WORK/responder/responder.log" 2>&1 &
    SERVER_PIDS+=("$!")
    local deadline=$((SECONDS + 10))
    until in_ns ss -Hlun "sport = :$PORT" | grep -q .; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "responder not listening" >&2; return 1; }
        sleep 0.1
    done
}

label() {
    case $1 in
        sqlite) echo "leaseline, SQLite" ;;
        pg1) echo "leaseline, PostgreSQL, 1 instance" ;;
        pg2) echo "leaseline, PostgreSQL, 2 instances" ;;
        sqlite_warm) echo "leaseline, SQLite, warm" ;;
        pg1_warm) echo "leaseline, PG, 1 instance, warm" ;;
        pg2_warm) echo "leaseline, PG, 2 instances, warm" ;;
        kea_pg) echo "Kea 2.2, PostgreSQL, 1 thread" ;;
        kea_pg_mt) echo "Kea 2.2, PostgreSQL, 2 threads" ;;
        responder) echo "stateless responder (the limit)" ;;
    esac
}

# ---- 1. closed loop ---------------------------------------------------------
# Where the CPU went during a measurement: the servers' processes, the
# cluster's (the postmaster's children: the servers' backends, the WAL
# writer, ...), and the whole machine's busy time (anything else running
# on it included), in CPU seconds.
TICK=$(getconf CLK_TCK)
proc_ticks() { # PID...: user + system ticks of these processes (those still alive)
    local p t=0
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] && t=$((t + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')))
    done
    echo "$t"
}
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat; }
declare -A PG0
cpu_begin() {
    local p
    PG0=()
    for p in $(pg_pids); do PG0[$p]=$(proc_ticks "$p"); done
    CPU0=("$(proc_ticks "${SERVER_PIDS[@]}")" "$(busy_ticks)")
}
cpu_end() { # sets CPU_LINE (a cluster process that ended meanwhile is not counted)
    local s b p t pg=0
    s=$(proc_ticks "${SERVER_PIDS[@]}"); b=$(busy_ticks)
    for p in $(pg_pids); do
        t=$(proc_ticks "$p"); pg=$((pg + t - ${PG0[$p]:-0}))
    done
    CPU_LINE=$(awk -v s=$((s - CPU0[0])) -v p="$pg" -v b=$((b - CPU0[1])) -v hz="$TICK" \
        'BEGIN { printf "cpu s: server %.1f, postgres %.1f, machine %.1f", s / hz, p / hz, b / hz }')
}
# drive TWO SECS FILE: the closed-loop driver(s) for SECS; TWO=1: one per
# instance at once (A, B), CLIENTS/2 distinct clients each. OUT = DORA/s
# summed over the drivers, DETAIL = their lines.
drive() {
    local two=$1 secs=$2 f=$3
    if [ "$two" = 1 ]; then
        local half=$((CLIENTS / 2))
        in_ns "$BENCH" saturate --dhcp "127.0.0.1:$PORT" --giaddr "$RELAY_A" --window "$WINDOW" \
            --clients "$half" --first-client 0 --seconds "$secs" >"$f-a.txt" 2>&1 &
        local a=$!
        in_ns "$BENCH" saturate --dhcp "127.0.0.1:$PORT_B" --giaddr "$RELAY_B" --window "$WINDOW" \
            --clients "$half" --first-client "$half" --seconds "$secs" >"$f-b.txt" 2>&1 &
        local b=$!
        wait "$a" || true
        wait "$b" || true
        DETAIL="A: $(cat "$f-a.txt") | B: $(cat "$f-b.txt")"
        OUT=$(cat "$f-a.txt" "$f-b.txt" | sed -n 's/.* rate=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
    else
        in_ns "$BENCH" saturate --dhcp "127.0.0.1:$PORT" --giaddr "$RELAY_A" --window "$WINDOW" \
            --clients "$CLIENTS" --seconds "$secs" >"$f.txt" 2>&1 || true
        DETAIL=$(cat "$f.txt")
        OUT=$(sed -n 's/.* rate=\([0-9]*\).*/\1/p' "$f.txt")
        OUT=${OUT:-0}
    fi
}

# closed KIND ROUND: OUT = DORA/s (summed over the drivers), DETAIL = what
# else there is to say.
closed() {
    local kind=$1 round=$2 f="$WORK/saturate-$1-$2" two=0
    case $kind in pg2*) two=1 ;; esac
    "start_${kind%_warm}"
    if [ "${kind%_warm}" != "$kind" ]; then
        # Warm: the clients' bindings already in the table and the
        # table's statistics current (as on a server that has been up a
        # while: autovacuum's ANALYZE) before the measurement starts.
        drive "$two" "$WARM_SECONDS" "$f-warmup"
        [ "$kind" = sqlite_warm ] || psql_admin -d "$DB" -c "ANALYZE"
    fi
    [ "$PG_STATS" = 1 ] && psql_admin -At -c "SELECT pg_stat_statements_reset(), pg_stat_reset_shared('wal')" >/dev/null
    cpu_begin
    drive "$two" "$CLOSED_SECONDS" "$f"
    cpu_end
    [ "$PG_STATS" = 1 ] && psql_admin -c "SELECT calls, round(total_exec_time::numeric, 0) AS total_ms,
        round(mean_exec_time::numeric, 3) AS mean_ms, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query
        FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12" >"$WORK/pgstat-$kind-$round.txt"
    # The WAL the step wrote: records, full-page images, bytes.
    [ "$PG_STATS" = 1 ] && psql_admin -c "SELECT wal_records, wal_fpi, wal_bytes, wal_write, wal_sync FROM pg_stat_wal" >>"$WORK/pgstat-$kind-$round.txt"
    # Rows written since the database was made, and how many updates were
    # HOT (no index entry: the row's new version on its own page).
    [ "$PG_STATS" = 1 ] && case $kind in pg*) psql_admin -d "$DB" -c "SELECT relname, n_tup_ins, n_tup_upd,
        n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables ORDER BY relname" >>"$WORK/pgstat-$kind-$round.txt" ;; esac
    DETAIL="$DETAIL | $CPU_LINE"
    stop_servers
    # What the step left in the database: the servers really stored there.
    case $kind in
        kea*) DETAIL="$DETAIL | $(psql_admin -d "$DB" -At -c 'SELECT count(*) FROM lease4') rows in lease4" ;;
        pg*) DETAIL="$DETAIL | $(psql_admin -d "$DB" -At -c "SELECT count(*) || ' rows in bindings (' || pg_size_pretty(pg_total_relation_size('bindings')) || ' with indexes), ' || (SELECT count(*) FROM lease_changes) || ' in lease_changes (' || pg_size_pretty(pg_total_relation_size('lease_changes')) || ')' FROM bindings")" ;;
    esac
    # autovacuum's ANALYZE of the table during the step (the readers'
    # plans change with it; the writer's are made once: see *_warm above).
    case $kind in
        pg1|pg2) if grep -q "automatic analyze of table \"$DB.public.bindings\"" "$PG_DIR/postgres.log"; then
            DETAIL="$DETAIL | autovacuum analyzed bindings during the step"
        fi ;;
    esac
}

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A RUNS MED PERF_OUT
echo
echo "== 1. closed loop: leaseline-bench saturate, window $WINDOW per driver, $CLIENTS clients, $CLOSED_SECONDS s, $ROUNDS round(s)"
for round in $(seq "$ROUNDS"); do
    for kind in $KINDS; do
        closed "$kind" "$round"
        RUNS[$kind]="${RUNS[$kind]:-} $OUT"
        printf '  round %d %-34s %7d DORA/s   (%s)\n' "$round" "$(label "$kind"):" "$OUT" "$DETAIL"
    done
done
for kind in $KINDS; do
    # shellcheck disable=SC2086
    MED[$kind]=$(median ${RUNS[$kind]})
done

# ---- 2. open loop -----------------------------------------------------------
# perf_one PORT RELAY RATE CLIENTS MAC FILE: one perfdhcp (relay RELAY).
perf_one() {
    sysctl -qw net.core.rmem_default="$PERF_RMEM"
    in_ns "$PERFDHCP" -4 -N "$1" -l "$2" -r "$3" -R "$4" -b "mac=$5" -p "$PERF_SECONDS" -W 2000000 127.0.0.1 >"$6" 2>&1 || true
}
perf_sum() {
    awk -v secs="$PERF_SECONDS" '
        /^\*\*\*Statistics for: DISCOVER-OFFER/ { ex = "do" }
        /^\*\*\*Statistics for: REQUEST-ACK/ { ex = "ra" }
        /^sent packets:/ { sent[ex] += $3 }
        /^received packets:/ { recv[ex] += $3 }
        /^drops:/ { drops[ex] += $2 }
        END {
            s = sent["do"] + sent["ra"]; d = drops["do"] + drops["ra"]
            printf "%d %d %d %.1f\n", recv["ra"] / secs, sent["do"], recv["ra"], (s ? 100 * d / s : 100)
        }' "$@"
}
# Datagrams the kernel dropped at a full receive buffer in the namespace:
# at the servers' DHCP sockets (PORT, PORT_B: read while they are open),
# and in all (the namespace's UdpRcvbufErrors: the rest are perfdhcp's,
# replies it did not read in time).
server_socket_drops() {
    in_ns cat /proc/net/udp | awk -v a=":$(printf '%04X' "$PORT")" -v b=":$(printf '%04X' "$PORT_B")" '
        NR > 1 { p = substr($2, length($2) - 4); if (p == a || p == b) d += $NF } END { print d + 0 }'
}
rcvbuf_errors() {
    in_ns cat /proc/net/snmp | awk '$1 == "Udp:" { if (!n) { for (i = 2; i <= NF; i++) if ($i == "RcvbufErrors") c = i; n = 1 } else { print $c; exit } }'
}
if [ "$PERF" = 1 ]; then
    echo
    echo "== 2. open loop: perfdhcp -r $PERF_RATE -R $CLIENTS -p $PERF_SECONDS -W 2 s (pg2: two perfdhcp at half the rate each)"
    for kind in $KINDS; do
        [ "${kind%_warm}" = "$kind" ] && [ "$kind" != responder ] || continue
        "start_$kind"
        f="$WORK/perfdhcp-$kind"
        rcv0=$(rcvbuf_errors)
        if [ "$kind" = pg2 ]; then
            perf_one "$PORT" "$RELAY_A" $((PERF_RATE / 2)) $((CLIENTS / 2)) 02:0a:00:00:00:00 "$f-a.txt" &
            a=$!
            perf_one "$PORT_B" "$RELAY_B" $((PERF_RATE / 2)) $((CLIENTS / 2)) 02:0b:00:00:00:00 "$f-b.txt" &
            b=$!
            wait "$a" "$b" || true
            read -r rate discovers acks droppct < <(perf_sum "$f-a.txt" "$f-b.txt")
        else
            perf_one "$PORT" "$RELAY_A" "$PERF_RATE" "$CLIENTS" 02:0a:00:00:00:00 "$f.txt"
            read -r rate discovers acks droppct < <(perf_sum "$f.txt")
        fi
        sysctl -qw net.core.rmem_default="$RMEM_BEFORE"
        sdrops=$(server_socket_drops)
        stop_servers
        pdrops=$(($(rcvbuf_errors) - rcv0 - sdrops))
        PERF_OUT[$kind]="$rate"
        printf '  %-34s %7d ACKs/s   (%d DISCOVERs sent, %d ACKs, %s %% of packets dropped; dropped by the kernel at a full buffer: %d at the server, %d at perfdhcp)\n' \
            "$(label "$kind"):" "$rate" "$discovers" "$acks" "$droppct" "$sdrops" "$pdrops"
    done
fi

# ---- 3. Active Leasequery across instances ----------------------------------
LATENCY=""
if [ "$ACTIVE" = 1 ]; then
    echo
    echo "== 3. Active Leasequery across instances: DORA at $ACTIVE_RATE/s through instance B, $ACTIVE_WATCHERS watchers on instance A, $ACTIVE_SECONDS s, $ACTIVE_ROUNDS runs"
    runs=()
    for i in $(seq "$ACTIVE_ROUNDS"); do
        start_pg2 1
        out=$(in_ns "$BENCH" active-latency --dhcp "127.0.0.1:$PORT_B" --tcp "127.0.0.1:$TCP_PORT" \
            --giaddr "$LAT_GIADDR" --watchers "$ACTIVE_WATCHERS" --rate "$ACTIVE_RATE" \
            --seconds "$ACTIVE_SECONDS" 2>&1) || true
        stop_servers
        echo "  $out"
        runs+=("$(echo "$out" | sed -n 's/.* p99_us=\([0-9]*\).*/\1/p') $out")
    done
    LATENCY=$(printf '%s\n' "${runs[@]}" | sort -n | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }' | cut -d' ' -f2-)
fi

# ---- the table --------------------------------------------------------------
echo
echo "Leaseline on PostgreSQL, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), load average before: $(cut -d' ' -f1-3 /proc/loadavg), lease history ${LEASE_HISTORY:-on}"
echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{ print $3 }') on the same machine (fsync on, synchronous_commit on), Kea $("$KEA" -v)"
echo
echo "| configuration | closed loop, DORA/s (median of $ROUNDS) | rounds |$( [ "$PERF" = 1 ] && echo " perfdhcp at $PERF_RATE/s, ACKs/s |")"
echo "|---|---|---|$( [ "$PERF" = 1 ] && echo "---|")"
for kind in $KINDS; do
    printf '| %s | %s | %s |%s\n' "$(label "$kind")" "${MED[$kind]}" "$(echo ${RUNS[$kind]} | tr ' ' '/')" \
        "$( [ "$PERF" = 1 ] && echo " ${PERF_OUT[$kind]:--} |")"
done
ratio() { # ratio NAME A B TARGET
    if [ -n "${MED[$2]:-}" ] && [ -n "${MED[$3]:-}" ] && [ "${MED[$3]}" -gt 0 ]; then
        awk -v n="$1" -v a="${MED[$2]}" -v b="${MED[$3]}" -v t="$4" 'BEGIN { printf "%s: %.1fx = %.0f %% (target %s)\n", n, a / b, 100 * a / b, t }'
    fi
}
echo
ratio "leaseline 2 instances on PG / Kea MT on PG" pg2 kea_pg_mt ">= 20x"
ratio "leaseline 2 instances on PG / leaseline on SQLite" pg2 sqlite ">= 30 %"
ratio "warm: leaseline 2 instances on PG / Kea MT on PG (empty)" pg2_warm kea_pg_mt ">= 20x"
ratio "warm: leaseline 2 instances on PG / leaseline on SQLite" pg2_warm sqlite_warm ">= 30 %"
ratio "warm: leaseline 1 instance on PG / leaseline on SQLite" pg1_warm sqlite_warm "-"
ratio "warm: leaseline 2 instances on PG / 1 instance on PG" pg2_warm pg1_warm "-"
ratio "leaseline 1 instance on PG / leaseline on SQLite" pg1 sqlite "-"
ratio "leaseline 2 instances on PG / 1 instance on PG" pg2 pg1 "-"
ratio "leaseline 1 instance on PG / Kea 1 thread on PG" pg1 kea_pg "-"
ratio "Kea MT on PG / Kea 1 thread on PG" kea_pg_mt kea_pg "-"
share() { # share NAME A B: A as a fraction of B
    if [ -n "${MED[$2]:-}" ] && [ -n "${MED[$3]:-}" ] && [ "${MED[$3]}" -gt 0 ]; then
        awk -v n="$1" -v a="${MED[$2]}" -v b="${MED[$3]}" 'BEGIN { printf "%s: %.1f %%\n", n, 100 * a / b }'
    fi
}
# This host's yardstick: the same driver against a server that keeps
# nothing. Compare hosts by it, not by the ratio alone (a slower packet
# path costs leaseline, bound by the CPUs, more than Kea, bound by its
# round trips).
share "leaseline 2 instances on PG, of the stateless responder (this host's limit)" pg2 responder
share "leaseline on SQLite, of the stateless responder" sqlite responder
share "Kea MT on PG, of the stateless responder" kea_pg_mt responder
if [ -n "$LATENCY" ]; then
    echo "$LATENCY" | awk -v rate="$ACTIVE_RATE" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "Active Leasequery, ACK on B -> update on a watcher of A, %d DORA/s, %d watchers (median run by p99): p50 %.2f ms, p99 %.2f ms (%s samples) (target p99 < 10 ms)\n",
            rate, v["watchers"], v["p50_us"] / 1000, v["p99_us"] / 1000, v["samples"] }'
fi
echo "(logs and reports in $WORK)"
