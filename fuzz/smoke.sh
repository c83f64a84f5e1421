#!/usr/bin/env bash
# CI smoke fuzzing: install cargo-fuzz if missing, build every target
# (debug assertions on, ASan), run each for FUZZ_SMOKE_SECONDS (default 60).
# Exits non-zero when a target crashes, hangs, or fails to build.
#
#   bash fuzz/smoke.sh
#
# Environment: FUZZ_SMOKE_SECONDS (default 60), FUZZ_SANITIZER (address or
# none), CARGO_FUZZ_VERSION (default 0.13.2), FUZZ_ARGS (see run.sh).
set -euo pipefail

cd "$(dirname "$0")"
secs=${FUZZ_SMOKE_SECONDS:-60}
version=${CARGO_FUZZ_VERSION:-0.13.2}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz $version"
    cargo install cargo-fuzz --locked --version "$version"
fi
# libfuzzer-sys compiles libFuzzer (C++).
if ! command -v c++ >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq g++
    else
        echo "a C++ compiler is needed (apt-get install g++)" >&2
        exit 2
    fi
fi

exec ./run.sh all "$secs"
