#!/bin/sh
# run-integration.sh BUILD - the integration suites: every
# BUILD/integration/test_* program (mock Kafka cluster, real redis-server,
# fake HTTP services), the CLI checks, the Redis-backed unit suites against
# a Redis Cluster, the schema check of everything the pipeline produced,
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

for s in tests/integration/*.sh; do
    [ -f "$s" ] || continue
    sh "$s" "$build"; rc=$?
    count "$(basename "$s")" $rc
done

# The Redis-backed unit suites once more against a Redis Cluster of two
# masters (the default tenant's slot is on the second one).
for t in test_correlate test_analyze; do
    [ -x "$build/tests/$t" ] || continue
    out=$(SP_TEST_REDIS_CLUSTER=1 "$build/tests/$t" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E ': [0-9]+ passed, [0-9]+ failed' | tail -n 1)
    [ $rc -ne 0 ] && printf '%s\n' "$out"
    echo "$line (against a Redis Cluster)"
    count "$t against a Redis Cluster" $rc
done

# The same suites with snapshots deferred (the default; the unit run
# publishes them before process() returns, so tests can look right after a
# batch): each batch's snapshots are published by a tick past the wait.
for t in test_correlate test_analyze; do
    [ -x "$build/tests/$t" ] || continue
    out=$(SP_TEST_SNAPSHOT_DEFER=1 "$build/tests/$t" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E ': [0-9]+ passed, [0-9]+ failed' | tail -n 1)
    [ $rc -ne 0 ] && printf '%s\n' "$out"
    echo "$line (snapshots deferred)"
    count "$t with snapshots deferred" $rc
done

for f in build/e2e_alerts.jsonl build/normalized_samples.jsonl; do
    if [ -s "$f" ]; then
        python3 tests/tools/schema_check.py schema/alert.schema.json "$f"; rc=$?
        count "schema $(basename "$f")" $rc
    fi
done

if [ -x tests/fuzz/replay.sh ] || [ -f tests/fuzz/replay.sh ]; then
    sh tests/fuzz/replay.sh; rc=$?
    count "fuzz corpus replay" $rc
fi

echo "integration: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
