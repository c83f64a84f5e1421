# Shared by the bench scripts (sourced after they cd to the repository).

# wait_for_line FILE PATTERN SECONDS: until PATTERN is in FILE; fails (with
# the file's tail) when SECONDS pass or the server ($SERVER_PID, when set)
# exits first. Polls every WAIT_POLL seconds (0.1 unless set).
wait_for_line() {
    local deadline=$((SECONDS + $3))
    until grep -q "$2" "$1" 2>/dev/null; do
        if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "server exited before \"$2\":" >&2; tail -n 20 "$1" >&2; return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "no \"$2\" in $1 within $3 s" >&2; tail -n 20 "$1" >&2; return 1
        fi
        sleep "${WAIT_POLL:-0.1}"
    done
}
