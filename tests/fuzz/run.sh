#!/bin/sh
# run.sh - libFuzzer runs of every harness (make fuzz).
#
# Builds the library sources once with clang's coverage instrumentation,
# AddressSanitizer and UndefinedBehaviorSanitizer (into build-fuzz/), links
# each tests/fuzz/NAME_fuzz.c against them with libFuzzer, and fuzzes it
# for FUZZ_TIME seconds (default 60) starting from tests/fuzz/corpus/NAME/,
# with a token dictionary from tests/fuzz/dict/ where one fits.
# New inputs go to build-fuzz/corpus/NAME/ (the repository corpus is only
# read), crashes to build-fuzz/NAME-crash-*.  Exit status is non-zero if
# any harness failed to build or crashed.
#
#   FUZZ_TIME=10 sh tests/fuzz/run.sh            all harnesses, 10 s each
#   FUZZ_TARGETS="script json" sh tests/fuzz/run.sh
#   FUZZ_CC=clang-17 ...                          another clang
set -u
cd "$(dirname "$0")/../.." || exit 1

FUZZ_TIME=${FUZZ_TIME:-60}
CC=${FUZZ_CC:-clang}
OUT=build-fuzz
JOBS=${FUZZ_JOBS:-2}
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
 -Ipipeline -Istages -Istages/script -Iconnectors -Ienrich -I."
LIBS="-lrdkafka -ljansson -lhiredis -lcurl -lyaml -lmicrohttpd -lz -lpthread -lm"

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "fuzz: $CC not found (install clang, or set FUZZ_CC)" >&2
    exit 1
fi
mkdir -p "$OUT/obj" || exit 1

# Library objects, rebuilt when their source or any header is newer.
srcs=$(ls pipeline/*.c stages/*.c stages/script/*.c connectors/*.c enrich/*.c \
       2>/dev/null | grep -v '^pipeline/main\.c$')
stale=""
for s in $srcs; do
    o="$OUT/obj/$(echo "$s" | tr / _).o"
    if [ ! -f "$o" ] || [ "$s" -nt "$o" ] ||
       [ -n "$(find pipeline stages connectors enrich -name '*.h' -newer "$o" 2>/dev/null | head -n 1)" ]; then
        stale="$stale $s"
    fi
done
if [ -n "$stale" ]; then
    echo "fuzz: compiling$(echo "$stale" | wc -w) library sources with $CC"
    # shellcheck disable=SC2086
    if ! printf '%s\n' $stale | xargs -P "$JOBS" -I{} sh -c \
        'o="'"$OUT"'/obj/$(echo "{}" | tr / _).o"; '"$CC $CFLAGS"' -c "{}" -o "$o"'; then
        echo "fuzz: library build failed" >&2
        exit 1
    fi
fi
# Archive exactly the current sources' objects: an object whose source
# was removed or renamed must not shadow the new code.
objs=""
for s in $srcs; do
    objs="$objs $OUT/obj/$(echo "$s" | tr / _).o"
done
rm -f "$OUT/libsocpilot-fuzz.a"
# shellcheck disable=SC2086
ar rcs "$OUT/libsocpilot-fuzz.a" $objs || exit 1

targets=${FUZZ_TARGETS:-$(for h in tests/fuzz/*_fuzz.c; do basename "$h" _fuzz.c; done)}
fail=0
for name in $targets; do
    h="tests/fuzz/${name}_fuzz.c"
    [ -f "$h" ] || { echo "fuzz: no harness $h" >&2; fail=1; continue; }
    bin="$OUT/${name}_fuzz"
    # shellcheck disable=SC2086
    if ! $CC $CFLAGS -fsanitize=fuzzer "$h" "$OUT/libsocpilot-fuzz.a" $LIBS -o "$bin"; then
        echo "fuzz: building $name failed" >&2
        fail=1
        continue
    fi
    mkdir -p "$OUT/corpus/$name" "tests/fuzz/corpus/$name"
    # Token dictionaries: shell tokens for the script harnesses, JSON
    # tokens for the parsers.
    case $name in
        deob|script) dict=tests/fuzz/dict/deob.dict ;;
        json|normalize) dict=tests/fuzz/dict/json.dict ;;
        *) dict="" ;;
    esac
    echo "== fuzz $name for ${FUZZ_TIME}s"
    if ! "$bin" -max_total_time="$FUZZ_TIME" -timeout=10 -rss_limit_mb=2048 \
            ${dict:+-dict="$dict"} \
            -print_final_stats=1 -artifact_prefix="$OUT/$name-" \
            "$OUT/corpus/$name" "tests/fuzz/corpus/$name"; then
        echo "fuzz: $name crashed; reproducer in $OUT/$name-*" >&2
        fail=1
    fi
done
exit $fail
