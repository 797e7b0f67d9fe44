#!/bin/sh
# replay.sh - re-runs every fuzz corpus through its harness without
# libFuzzer, under AddressSanitizer + UndefinedBehaviorSanitizer (part of
# make test; seconds, not minutes).
#
# For each tests/fuzz/NAME_fuzz.c: links tests/fuzz/replay.c + the harness
# against build-san/libsocpilot.a (built here through the Makefile with
# SANITIZE=address,undefined if needed) with gcc, and replays
# tests/fuzz/corpus/NAME/.  Exit status is non-zero if a build failed or
# an input crashed.
set -u
cd "$(dirname "$0")/../.." || exit 1

CC=${REPLAY_CC:-gcc}
BUILD=build-san
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
 -fsanitize=address,undefined -fno-sanitize-recover=all \
 -Ipipeline -Istages -Istages/script -Iconnectors -Ienrich -I."
LIBS="-lrdkafka -ljansson -lhiredis -lcurl -lyaml -lmicrohttpd -lz -lpthread -lm"

if ! make --no-print-directory SANITIZE=address,undefined OPT=-O1 \
        "$BUILD/libsocpilot.a" >/dev/null; then
    echo "replay: building $BUILD/libsocpilot.a failed" >&2
    exit 1
fi
mkdir -p "$BUILD/fuzz" || exit 1
fail=0
total=0
for h in tests/fuzz/*_fuzz.c; do
    [ -f "$h" ] || continue
    name=$(basename "$h" _fuzz.c)
    bin="$BUILD/fuzz/replay_$name"
    # shellcheck disable=SC2086
    if ! $CC $CFLAGS tests/fuzz/replay.c "$h" "$BUILD/libsocpilot.a" $LIBS -o "$bin"; then
        echo "replay: building $name failed" >&2
        fail=1
        continue
    fi
    dir="tests/fuzz/corpus/$name"
    if [ ! -d "$dir" ]; then
        echo "replay $name: no corpus ($dir)"
        continue
    fi
    if ! "$bin" "$dir"; then
        echo "replay: $name failed on its corpus" >&2
        fail=1
    fi
    total=$((total + 1))
done
echo "replay: $total corpora, $([ $fail -eq 0 ] && echo ok || echo FAILED)"
exit $fail
