#!/usr/bin/env bash
# Failover timing (issue 17, "Benchmark": failover). Two leaseline instances,
# A and B, on ONE PostgreSQL database under DHCP load; kill -9 of A; then:
#
#  (a) DHCP: the time from the kill to the first (and the last) DHCPACK by
#      the survivor B for clients that held their lease from A, and whether
#      B gave each the SAME address. `leaseline-bench failover` (relay
#      PROBE) first gets PROBE_CLIENTS leases through A (timing A's REQUEST
#      -> ACK under the load: the normal answer time), sends SIGKILL to A
#      itself, notes the moment (CLOCK_MONOTONIC) and at once, and every
#      10 ms until each is answered, sends each client's REBINDING REQUEST
#      (ciaddr set, no server identifier, RFC 2131 §4.3.2) to B. A client
#      would rebind at T2, long after; this measures how soon B can serve
#      it, i.e. what a client whose T2 falls right after the kill sees.
#  (b) Active Leasequery: WATCHERS `leaseline watch --server A --server B
#      --json`, connected to A before the load starts; each one's output is
#      read with a CLOCK_MONOTONIC time per line. From the kill: the
#      watcher's `disconnected`, its `connected` to B and the
#      `catch-up-complete` B sends (RFC 7724 CatchUpComplete), with the
#      updates of the catch-up (B answers from the watcher's last
#      base-time minus 10 s, docs/postgresql.md). For comparison, once
#      the load is over, `leaseline-bench catchup` asks B for the same
#      catch-up (the same query-start-time) with nothing else running.
#
# Load: one `leaseline-bench saturate --rate` per instance, RATE DORA/s
# each (relays RELAY_A and RELAY_B, CLIENTS clients each, so each client
# comes back every CLIENTS/RATE s), LOAD_WARMUP s before the kill and
# LOAD_AFTER s after it (the catch-ups happen under load). Each round on a
# fresh database with fresh instances; ROUNDS rounds; the median and the
# max of each figure over the rounds.
#
# WARM=1 (the default) runs ANALYZE on the database just before the kill,
# as autovacuum does on a database that has been in use a while: on a
# table never analyzed, the readers' `ip = ANY($1)` (catch-up reads the
# bindings in chunks with it) is a sequential scan, and a catch-up takes
# 3 to 4 times as long (WARM=0 measures that: a database created a
# minute ago).
#
# PostgreSQL: a throwaway cluster (bench/lib/pg.sh: Debian's initdb +
# pg_ctl as `postgres`, fsync on, synchronous_commit on), everything in a
# network namespace of its own (NS), stopped and removed at exit.
#
#   bench/failover.sh                          # 7 rounds, about 4 minutes
#   ROUNDS=3 RATE=1000 bench/failover.sh
#
# Exit status 0 when every probe client got an ACK from B with its own
# address and every watcher caught up on B. Figures: bench/README.md,
# "Failover". Needs root (namespace, port 67), postgresql,
# python3. Honours CARGO_TARGET_DIR and LEASELINE_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."

NS=${NS:-ll-bench-failover}
PORT=${PORT:-1067}              # instance A's DHCP port; B: PORT+1
PORT_B=$((PORT + 1))
TCP_A=${TCP_A:-7067}            # leasequery (TCP) of A and B
TCP_B=${TCP_B:-7068}
RELAY_A=${RELAY_A:-127.0.0.1}   # the load's relay address towards A
RELAY_B=${RELAY_B:-127.0.0.2}   # ... towards B
PROBE=${PROBE:-127.0.0.40}      # leaseline-bench failover's relay address
PG_PORT=${PG_PORT:-5432}        # inside the namespace
ROUNDS=${ROUNDS:-7}
RATE=${RATE:-2500}              # DORA/s offered to EACH instance
CLIENTS=${CLIENTS:-20000}       # distinct clients of the load, per instance
LOAD_WARMUP=${LOAD_WARMUP:-10}  # s of load before the kill
LOAD_AFTER=${LOAD_AFTER:-20}    # ... and after it
PROBE_CLIENTS=${PROBE_CLIENTS:-16}
WATCHERS=${WATCHERS:-2}
CATCHUP_TIMEOUT=${CATCHUP_TIMEOUT:-60}
WARM=${WARM:-1}
WORK=${WORK:-/tmp/leaseline-bench-failover}
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

for tool in ip cargo python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (see .ci/run)" >&2; exit 1; }
done
. bench/lib/pg.sh
pg_require

build_release

rm -rf "$WORK"
mkdir -p "$WORK"
PIDS=()      # servers, watchers: INT at the end of a round
LOAD=()      # the load: waited for (it prints its figures at its end)
STAMPS=()    # the watchers' line stampers: they end when their watcher does
stop_round() {
    local p
    for p in "${LOAD[@]}"; do wait "$p" 2>/dev/null || true; done
    LOAD=()
    stop_pids INT "${PIDS[@]}"
    for p in "${STAMPS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
    STAMPS=()
}
cleanup() {
    for p in "${LOAD[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    stop_round
    pg_cluster_stop
    ns_down
}
trap cleanup EXIT

ns_up "$RELAY_B" "$PROBE"
pg_cluster_start /tmp
LL_RELAYS="[\"$RELAY_A\", \"$RELAY_B\", \"$PROBE\"]"
LL_PREFIX=10.0.0.0/16
LL_POOL=10.0.0.10-10.0.255.250

# stamp: each line of a watcher's --json output as it arrives, with its
# CLOCK_MONOTONIC time in ns (the probe's clock for the kill); updates are
# only counted (the number since the previous line printed).
STAMP='
import sys, time
n = 0
for line in sys.stdin:
    t = time.monotonic_ns()
    if "\"event\":\"update\"" in line:
        n += 1
        continue
    sys.stdout.write(f"{t} {n} {line}")
    sys.stdout.flush()
    n = 0
'

# round_report KILL_NS PROBE_LINE EVENTS...: one line per watcher, from its
# stamped events: ms from the kill to `disconnected`, to `connected` to B
# and to the `catch-up-complete` after it, and that catch-up's updates.
REPORT='
import json, sys
kill = int(sys.argv[1]); tcp_b = sys.argv[2]
for path in sys.argv[3:]:
    disc = conn = done = None; updates = 0
    for line in open(path):
        t, n, rest = line.split(" ", 2)
        t, n = int(t), int(n)
        if t < kill:
            continue
        e = json.loads(rest)
        ev = e.get("event")
        if ev == "disconnected" and disc is None:
            disc = t
        elif ev == "connected" and conn is None and str(e.get("server", "")).endswith(":" + tcp_b):
            conn = t
        elif conn is not None and done is None:
            updates += n
            if ev == "catch-up-complete":
                done = t
    ms = lambda v: "-" if v is None else f"{(v - kill) / 1e6:.1f}"
    caught = updates if done else "-"
    print(f"watch disconnected_ms={ms(disc)} connected_b_ms={ms(conn)} catchup_complete_ms={ms(done)} catchup_updates={caught}")
'

declare -a PROBE_LINES WATCH_LINES IDLE_LINES
failed=0
for round in $(seq "$ROUNDS"); do
    echo
    echo "== round $round of $ROUNDS"
    pg_new_db leaseline
    ll_start "a$round" "$PORT" 127.0.0.1 "$TCP_A" "$DB"
    A_PID=$LL_PID
    PIDS+=("$A_PID")
    ll_start "b$round" "$PORT_B" 127.0.0.2 "$TCP_B" "$DB"
    PIDS+=("$LL_PID")
    # Both know of each other (each walks its half of the pool first).
    wait_for_line "$WORK/a$round/server.log" "of=2" 10 "$A_PID"
    wait_for_line "$WORK/b$round/server.log" "of=2" 10 "$LL_PID"

    for w in $(seq "$WATCHERS"); do
        f="$WORK/watch-$round-$w"
        mkfifo "$f.fifo"
        python3 -u -c "$STAMP" <"$f.fifo" >"$f.events" &
        STAMPS+=($!)
        ip netns exec "$NS" "$BIN" watch --server "127.0.0.1:$TCP_A" --server "127.0.0.1:$TCP_B" --json \
            >"$f.fifo" 2>"$f.log" &
        PIDS+=($!)
    done
    deadline=$((SECONDS + 30))
    until [ "$(grep -c "active query started" "$WORK/a$round/server.log")" -ge "$WATCHERS" ]; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "watchers not connected to A" >&2; exit 1; }
        sleep 0.1
    done

    # The load.
    for side in a b; do
        if [ $side = a ]; then port=$PORT relay=$RELAY_A first=0; else port=$PORT_B relay=$RELAY_B first=$CLIENTS; fi
        ip netns exec "$NS" "$BENCH" saturate --dhcp "127.0.0.1:$port" --giaddr "$relay" --rate "$RATE" \
            --window 1024 --clients "$CLIENTS" --first-client "$first" --seconds $((LOAD_WARMUP + LOAD_AFTER)) \
            >"$WORK/load-$round-$side.txt" 2>&1 &
        LOAD+=($!)
    done
    sleep "$LOAD_WARMUP"
    [ "$WARM" = 1 ] && psql_admin -d "$DB" -c "ANALYZE"

    # (a): leases from A, kill -9 of A, rebinding through B.
    probe=$(in_ns "$BENCH" failover --dhcp-a "127.0.0.1:$PORT" --dhcp-b "127.0.0.1:$PORT_B" \
        --giaddr "$PROBE" --clients "$PROBE_CLIENTS" --first-client $((0x80000 + round * PROBE_CLIENTS)) \
        --kill "$A_PID" 2>&1) || failed=1
    wait "$A_PID" 2>/dev/null || true   # reaped here, without the shell's "Killed" notice
    echo "  $probe"
    PROBE_LINES+=("$probe")
    kill_ns=$(echo "$probe" | sed -n 's/.* kill_mono_ns=\([0-9]*\).*/\1/p')
    if [ -z "$kill_ns" ]; then
        echo "the probe failed" >&2
        exit 1
    fi

    # (b): every watcher's catch-up on B.
    deadline=$((SECONDS + CATCHUP_TIMEOUT))
    for w in $(seq "$WATCHERS"); do
        until grep -q '"catch-up-complete"' <(awk -v k="$kill_ns" '$1 >= k' "$WORK/watch-$round-$w.events"); do
            [ "$SECONDS" -lt "$deadline" ] || break
            sleep 0.2
        done
    done
    # The same catch-up once the load is over: B alone, idle, asked from
    # the base-time the first watcher resumed from.
    for p in "${LOAD[@]}"; do wait "$p" 2>/dev/null || true; done
    LOAD=()
    since=$(grep '"connected"' "$WORK/watch-$round-1.events" | grep ":$TCP_B" | head -n 1 | sed -n 's/.*"since":\([0-9]*\).*/\1/p')
    idle=""
    if [ -n "$since" ]; then
        idle=$(in_ns "$BENCH" catchup --tcp "127.0.0.1:$TCP_B" --since "$since" 2>&1) || true
        echo "  same catch-up on B idle: $idle"
    fi
    IDLE_LINES+=("$idle")
    stop_round
    while read -r line; do
        echo "  $line"
        WATCH_LINES+=("$line")
        case $line in *catchup_complete_ms=-*) failed=1 ;; esac
    done < <(python3 -c "$REPORT" "$kill_ns" "$TCP_B" "$WORK"/watch-"$round"-*.events)
    echo "  load on B: $(cat "$WORK/load-$round-b.txt")"
done

# ---- summary ------------------------------------------------------------------
echo
echo "Failover, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "PostgreSQL $(pg_version); $ROUNDS rounds; $RATE DORA/s offered to each instance; $PROBE_CLIENTS probe clients and $WATCHERS watchers per round; WARM=$WARM"
python3 - "${PROBE_LINES[@]}" -- "${WATCH_LINES[@]}" -- "${IDLE_LINES[@]}" <<'EOF'
import statistics, sys
args = sys.argv[1:]
cut = args.index("--")
cut2 = args.index("--", cut + 1)
def fields(line):
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
probes = [fields(l) for l in args[:cut]]
watches = [fields(l) for l in args[cut + 1:cut2]]
idles = [fields(l) for l in args[cut2 + 1:]]
def row(name, values, unit="ms"):
    vals = [float(v) for v in values if v not in ("-", "", None)]
    missing = len(values) - len(vals)
    if not vals:
        print(f"| {name} | - | - | - |")
        return
    f = {"ms": "{:.1f} ms", "s": "{:.2f} s", "": "{:,.0f}"}[unit]
    print(f"| {name} | {f.format(statistics.median(vals))} | {f.format(max(vals))} | {len(vals)}{f' ({missing} missing)' if missing else ''} |")
print()
print("| from kill -9 of A | median | max | samples |")
print("|---|---|---|---|")
row("first DHCPACK by B for a client of A (rebinding)", [p.get("first_ack_ms") for p in probes])
row("last of the probe clients ACKed by B", [p.get("last_ack_ms") for p in probes])
row("(A's REQUEST -> ACK before the kill, p50)", [p.get("before_p50_ms") for p in probes])
row("watcher: disconnected", [w.get("disconnected_ms") for w in watches])
row("watcher: connected to B", [w.get("connected_b_ms") for w in watches])
row("watcher: CatchUpComplete on B", [w.get("catchup_complete_ms") for w in watches])
row("watcher: updates in that catch-up", [w.get("catchup_updates") for w in watches], unit="")
row("(the same catch-up on B once idle: seconds)", [i.get("seconds") for i in idles], unit="s")
row("(... its updates)", [i.get("updates") for i in idles], unit="")
same = sum(int(p.get("same_address", 0)) for p in probes)
total = sum(int(p.get("clients", 0)) for p in probes)
naks = sum(int(p.get("naks", 0)) for p in probes)
print()
print(f"same address from B: {same} of {total} probe clients; NAKs: {naks}; server ids in B's ACKs: {sorted(set(p.get('b_server_id', '') for p in probes))}")
EOF
echo "(logs in $WORK)"
exit "$failed"
