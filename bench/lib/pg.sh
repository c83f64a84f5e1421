# Shared shell code of the benchmarks that run leaseline on PostgreSQL
# (bench/postgres.sh, bench/soak.sh with STORE=postgres, bench/failover.sh).
# Sourced, not run. Provides:
#
#   ns_up NS [ADDR...]   a network namespace with its loopback up (and the
#                        extra 127.x addresses perfdhcp -l needs); in_ns CMD
#                        runs CMD inside it; ns_down kills what still runs
#                        there and deletes it
#   pg_cluster_start DIR a throwaway PostgreSQL cluster (Debian's
#                        /usr/lib/postgresql/*/bin initdb + pg_ctl, as the
#                        `postgres` user) in a new directory under DIR,
#                        started inside $NS on 127.0.0.1:$PG_PORT (and a
#                        unix socket in its directory); fsync = on,
#                        synchronous_commit = on; PG_EXTRA_OPTS adds `-c`
#                        options. Creates the login role `leaseline`.
#   pg_cluster_stop      stops it and removes its directory (its log is
#                        kept as $WORK/postgres.log)
#   psql_admin ARGS      psql as the superuser over the unix socket
#   build_release        cargo build --release of leaseline and leaseline-bench;
#                        sets TARGET, BIN (LEASELINE_BIN overrides) and BENCH
#   pg_new_db OWNER      a fresh database owned by OWNER; sets DB
#   ll_url DB            a leaseline `[store] url` for DB (LL_PG_HOST=tcp:
#                        127.0.0.1 with a password, sslmode=disable;
#                        socket: the unix socket, trust)
#   ll_start NAME PORT SERVER_ID TCP_PORT DB
#                        `leaseline serve` ($BIN) inside $NS on database DB,
#                        with Bulk and Active Leasequery; sets LL_PID
#   wait_for_line FILE TEXT SECONDS [PID]
#                        poll FILE for TEXT (fail if PID exits first)
#   stop_pids SIG PID... send SIG, wait up to 30 s for each, then SIGKILL
#                        (a server that no longer answers must not hang
#                        the script's exit)
#   rss_kib PID, fds PID the resident set (VmRSS, KiB) and the open file
#                        descriptors of a process
#
# The caller sets NS, PG_PORT and WORK before calling these, and calls
# pg_cluster_stop and ns_down from its EXIT trap.

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
PG_DIR=""
LL_PG_HOST=${LL_PG_HOST:-tcp}   # tcp | socket

pg_require() {
    [ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL is not installed: apt-get install -y postgresql" >&2; exit 1; }
    [ "$(id -u)" = 0 ] || { echo "needs root (network namespace, port 67, the postgres user)" >&2; exit 1; }
}

build_release() {
    echo "== building leaseline and leaseline-bench (release)"
    cargo build --release -p leaseline -p leaseline-bench >&2
    TARGET=${CARGO_TARGET_DIR:-target}/release
    BIN=${LEASELINE_BIN:-$TARGET/leaseline}
    BENCH=${LEASELINE_BENCH_BIN:-$TARGET/leaseline-bench}
}

in_ns() { ip netns exec "$NS" "$@"; }
as_pg() { runuser -u postgres -- "$@"; }

ns_up() {
    local a
    ip netns del "$NS" 2>/dev/null || true
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    for a in "$@"; do
        [ "$a" = 127.0.0.1 ] || ip -n "$NS" addr add "$a/32" dev lo
    done
}
ns_down() {
    ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
}

wait_for_line() {
    local deadline=$((SECONDS + $3))
    until grep -q "$2" "$1" 2>/dev/null; do
        if [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null; then
            echo "process exited before \"$2\":" >&2; tail -n 20 "$1" >&2; return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "no \"$2\" in $1 within $3 s" >&2; tail -n 20 "$1" >&2; return 1
        fi
        sleep 0.1
    done
}

stop_pids() {
    local sig=$1 p i
    shift
    for p in "$@"; do kill "-$sig" "$p" 2>/dev/null || true; done
    for p in "$@"; do
        for i in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}

rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

pg_version() { "$PG_BIN/postgres" --version | awk '{ print $3 }'; }

pg_cluster_start() {
    PG_DIR=$(mktemp -d "$1/leaseline-bench-pg-cluster.XXXXXX")
    chown postgres:postgres "$PG_DIR"
    echo postgres >"$PG_DIR/pwfile"
    chown postgres:postgres "$PG_DIR/pwfile"
    echo "== PostgreSQL $(pg_version): throwaway cluster in $PG_DIR"
    as_pg "$PG_BIN/initdb" --auth-local=trust --auth-host=scram-sha-256 --username=postgres \
        --pwfile="$PG_DIR/pwfile" -E UTF8 -D "$PG_DIR/data" >"$WORK/initdb.log"
    # fsync and synchronous_commit are on by default; said here so that
    # nobody wonders. Inside the namespace, so 127.0.0.1 is the namespace's.
    in_ns runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=on -c synchronous_commit=on -c max_connections=200 -c log_autovacuum_min_duration=0 ${PG_EXTRA_OPTS:-}" \
        start >/dev/null
    psql_admin -c "CREATE ROLE leaseline LOGIN PASSWORD 'leaseline'"
    psql_admin -At -c "SELECT 'fsync=' || current_setting('fsync') || ' synchronous_commit=' || current_setting('synchronous_commit') || ' wal_sync_method=' || current_setting('wal_sync_method')"
}

pg_cluster_stop() {
    [ -n "$PG_DIR" ] || return 0
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    cp "$PG_DIR/postgres.log" "$WORK/postgres.log" 2>/dev/null || true
    rm -rf "$PG_DIR"
    PG_DIR=""
}

psql_admin() { as_pg psql -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U postgres -d postgres "$@"; }

# The cluster's processes (the postmaster's children: backends, WAL writer, ...).
pg_pids() { pgrep -P "$(head -n 1 "$PG_DIR/data/postmaster.pid")" || true; }

DB_SEQ=0
pg_new_db() {
    DB_SEQ=$((DB_SEQ + 1))
    DB="$1_$DB_SEQ"
    psql_admin -c "CREATE DATABASE $DB OWNER $1"
}

ll_url() {
    if [ "$LL_PG_HOST" = socket ]; then
        # trust on the socket: no password
        echo "host=$PG_DIR port=$PG_PORT user=leaseline dbname=$1"
    else
        echo "host=127.0.0.1 port=$PG_PORT user=leaseline password=leaseline dbname=$1 sslmode=disable"
    fi
}

# ll_start NAME PORT SERVER_ID TCP_PORT DB: `leaseline serve` ($BIN, the
# release build) inside $NS, [store] on PostgreSQL database DB: DHCP on
# 127.0.0.1:PORT with server identifier SERVER_ID, Bulk and Active
# Leasequery (insecure) on 127.0.0.1:TCP_PORT for 127.0.0.0/8. One subnet,
# LL_PREFIX with pool LL_POOL, for the relays LL_RELAYS (a TOML list);
# history limits LL_HISTORY_MAX_AGE / LL_HISTORY_MAX_COUNT, and the lease
# history's LL_LEASE_HISTORY_MAX_ROWS (unset: its default, 20 million; the
# change log is kept for the longer of the two histories); one-hour
# leases. Config and log in $WORK/NAME. Returns once the server is ready;
# LL_PID is the server's own pid (`ip netns exec` and `env` exec it), so
# kill -9 reaches the server itself.
ll_start() {
    local name=$1 port=$2 sid=$3 tcp=$4 db=$5 dir="$WORK/$1"
    rm -rf "$dir"
    mkdir -p "$dir"
    cat >"$dir/leaseline.toml" <<EOF
[server]
state_dir = "$dir"
server_id = "$sid"

[dhcp]
listen = "127.0.0.1:$port"

[store]
backend = "postgres"
url = "$(ll_url "$db")"
history_max_age = ${LL_HISTORY_MAX_AGE:-3600}
history_max_count = ${LL_HISTORY_MAX_COUNT:-1000000}

[[subnet]]
prefix = "${LL_PREFIX:-10.0.0.0/16}"
pools = ["${LL_POOL:-10.0.0.10-10.0.255.250}"]
relay_addresses = ${LL_RELAYS:-["127.0.0.1"]}
router = ["10.0.0.1"]
lease_time = 3600

[leasequery]
allow = ["127.0.0.0/8"]

[leasequery.bulk]
enabled = true
listen = "127.0.0.1:$tcp"

[leasequery.active]
enabled = true
insecure = true
max_connections = 200
max_connections_per_requestor = 200
EOF
    if [ -n "${LL_LEASE_HISTORY_MAX_ROWS:-}" ]; then
        printf '\n[history]\nmax_rows = %s\n' "$LL_LEASE_HISTORY_MAX_ROWS" >>"$dir/leaseline.toml"
    fi
    ip netns exec "$NS" env RUST_LOG=info NO_COLOR=1 "$BIN" serve --config "$dir/leaseline.toml" 2>"$dir/server.log" &
    LL_PID=$!
    wait_for_line "$dir/server.log" "leaseline ready" 60 "$LL_PID"
}
