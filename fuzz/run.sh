#!/usr/bin/env bash
# Run cargo-fuzz targets for a given time, one after the other, one process
# at a time.
#
#   fuzz/run.sh TARGET SECONDS     e.g. fuzz/run.sh decode 600
#   fuzz/run.sh all SECONDS        every target, SECONDS each
#
# Environment:
#   FUZZ_SANITIZER  address (default) or none
#   FUZZ_ARGS       extra libFuzzer flags, e.g. "-max_len=65535 -seed=1"
#
# Builds with debug assertions and overflow checks on (-a), optimised, on
# the stable toolchain (RUSTC_BOOTSTRAP=1 lets it take the -Z flags
# cargo-fuzz passes). New inputs go to fuzz/work/corpus/TARGET (not
# committed); the committed seeds in fuzz/corpus/TARGET are only read.
# A crash is written to fuzz/artifacts/TARGET/ and makes the script exit 1
# (after the remaining targets have run). Logs: fuzz/work/logs/.
set -euo pipefail

cd "$(dirname "$0")"
TARGETS=(decode framer query_validation active_session connection_opening sessions)

usage() {
    local IFS='|'
    echo "usage: $0 {all|${TARGETS[*]}} SECONDS" >&2
    exit 2
}
[ $# -eq 2 ] || usage
what=$1
secs=$2
[[ $secs =~ ^[0-9]+$ ]] && [ "$secs" -gt 0 ] || usage
if [ "$what" = all ]; then
    run=("${TARGETS[@]}")
else
    case " ${TARGETS[*]} " in
        *" $what "*) run=("$what") ;;
        *) usage ;;
    esac
fi

export RUSTC_BOOTSTRAP=1
san=${FUZZ_SANITIZER:-address}
read -r -a extra <<<"${FUZZ_ARGS:-}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

build=(cargo fuzz build -a -s "$san")
[ "$what" = all ] || build+=("$what")
echo "== building: ${build[*]}"
"${build[@]}"

mkdir -p work/logs
failed=()
for t in "${run[@]}"; do
    mkdir -p "work/corpus/$t" "artifacts/$t"
    log="work/logs/$t-$(date -u +%Y%m%dT%H%M%SZ).log"
    echo "== $t: ${secs}s (log: fuzz/$log)"
    start=$(date +%s)
    set +e
    # -timeout: an input taking over 10 s is reported as a hang.
    cargo fuzz run -a -s "$san" "$t" "work/corpus/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        "${extra[@]}" >"$log" 2>&1
    rc=$?
    set -e
    took=$(( $(date +%s) - start ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corp=$(find "work/corpus/$t" -type f | wc -l)
    if [ "$rc" -eq 0 ]; then
        result=ok
    else
        result="FAILED (exit $rc)"
        failed+=("$t")
        # The panic (file:line and the assertion's message), then libFuzzer's verdict.
        grep -E -A4 "panicked at" "$log" | head -12 || true
        grep -E "ERROR: libFuzzer|SUMMARY|Test unit written" "$log" | head -5 || true
    fi
    line="$t	${took}s	runs=${runs:-?}	exec/s=${eps:-?}	corpus=$corp	$result"
    echo "$line"
    printf '%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$san" "$line" >>work/results.tsv
done

nfail=${#failed[@]}
if [ "$nfail" -gt 0 ]; then
    echo "== crashes in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
else
    echo "== no findings"
fi
# The plain closing line CI reads.
echo "fuzz: $(( ${#run[@]} - nfail )) passed, $nfail failed"
[ "$nfail" -eq 0 ]
