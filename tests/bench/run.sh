#!/bin/sh
# run.sh BUILD - every benchmark program, figures printed (never asserted).
set -u
build=${1:-build}
export SOCPILOT_BIN="$build/socpilot"
for b in "$build"/bench/*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    "$b" || echo "(benchmark $(basename "$b") exited $?)"
    echo
done
