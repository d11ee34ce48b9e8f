# SPDX-License-Identifier: MIT
# What the bench scripts that compare a build with a reference share.
# Sourced after `set -euo pipefail` with the script's arguments and
# BENCH_NAME set (for messages):
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
# Sets ROOT (the source tree), BUILD (the first argument, default build) and
# REFERENCE (the second, or empty), both made absolute, and N (BENCH_N,
# default 100000 names); checks that each build has its joyrided; runs
# tools/install-deps; brings in tests/integration/lib.sh (free_port,
# wait_for, ...). die MESSAGE prints "BENCH_NAME: MESSAGE" and exits 1;
# bench_need COMMAND... dies naming the first one missing.
# shellcheck shell=bash

export LC_ALL=C
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
        echo "$BENCH_NAME: $*" >&2
        exit 1
}

bench_need() {
        local tool
        for tool; do
                command -v "$tool" >/dev/null || die "$tool not installed"
        done
}

bench_abs() {
        case $1 in
                /*) echo "$1" ;;
                *) echo "$PWD/$1" ;;
        esac
}

BUILD=$(bench_abs "${1:-build}")
REFERENCE=${2:+$(bench_abs "$2")}
# shellcheck disable=SC2034 # for the scripts that source this
N=${BENCH_N:-100000}

"$ROOT/tools/install-deps"
for b in "$BUILD" ${REFERENCE:+"$REFERENCE"}; do
        [ -x "$b/src/joyrided" ] || die "$b/src/joyrided not found: build first"
done

. "$ROOT/tests/integration/lib.sh"
