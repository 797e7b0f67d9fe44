#!/bin/sh
# run-integration.sh BUILD - the integration suites: every
# BUILD/integration/test_* program (mock Kafka cluster, real redis-server,
# fake HTTP services), the CLI checks, the Redis-backed unit suites again
# (against a Redis Cluster, and with snapshots deferred), the schema check
# of everything the pipeline produced,
# and the fuzz corpus replay.  One total line at the end.
set -u
build=${1:-build}
export SOCPILOT_BIN="$build/socpilot"
pass=0; fail=0; skip=0

count() {   # name rc output-line
    if [ "$2" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $1"; fi
}

for t in "$build"/integration/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    start=$(date +%s)
    "$t"; rc=$?
    echo "  ($name: $(( $(date +%s) - start ))s)"
    count "$name" $rc
done

# The engine's fault paths again under AddressSanitizer + UBSan.
if [ "$build" != build-san ] && [ -x build-san/integration/test_faults ]; then
    start=$(date +%s)
    build-san/integration/test_faults; rc=$?
    echo "  (test_faults under ASan+UBSan: $(( $(date +%s) - start ))s)"
    count "test_faults (sanitizers)" $rc
fi

for s in tests/integration/*.sh; do
    [ -f "$s" ] || continue
    sh "$s" "$build"; rc=$?
    count "$(basename "$s")" $rc
done

# again VAR LABEL SUITE...: Redis-backed unit suites once more with VAR=1.
again() {
    var=$1; label=$2; shift 2
    for t in "$@"; do
        [ -x "$build/tests/$t" ] || continue
        out=$(env "$var=1" "$build/tests/$t" 2>&1); rc=$?
        line=$(printf '%s\n' "$out" | grep -E ': [0-9]+ passed, [0-9]+ failed' | tail -n 1)
        [ $rc -ne 0 ] && printf '%s\n' "$out"
        echo "$line ($label)"
        count "$t $label" $rc
    done
}
# Against a Redis Cluster of two masters (the default tenant's slot is on
# the second one).
again SP_TEST_REDIS_CLUSTER "against a Redis Cluster" test_correlate test_correlate_state \
    test_analyze
# With snapshots deferred (the default, which test_analyze runs anyway; the
# test_correlate and test_correlate_state unit runs publish them before
# process() returns, so a test can look right after a batch): what is owed
# rides with the next batch, and a tick publishes the rest when a test
# looks.
again SP_TEST_SNAPSHOT_DEFER "snapshots deferred" test_correlate test_correlate_state

# test_e2e always writes its outputs; the samples' file exists only where
# the shared samples do (test_normalize says when it skipped them).
for f in build/e2e_alerts.jsonl build/normalized_samples.jsonl; do
    if [ -s "$f" ]; then
        python3 tests/tools/schema_check.py schema/alert.schema.json "$f"; rc=$?
        count "schema $(basename "$f")" $rc
    elif [ "$f" = build/e2e_alerts.jsonl ]; then
        echo "schema: $f is missing or empty (test_e2e writes it)"
        count "schema $(basename "$f")" 1
    fi
done

if [ -x tests/fuzz/replay.sh ] || [ -f tests/fuzz/replay.sh ]; then
    sh tests/fuzz/replay.sh; rc=$?
    count "fuzz corpus replay" $rc
fi

echo "integration: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
