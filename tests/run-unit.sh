#!/bin/sh
# run-unit.sh BUILD - run every unit-test program in BUILD/tests and print
# one total line (each program's line says how long it took).  Exit status is non-zero if any program failed.
set -u
build=${1:-build}
pass=0; fail=0; skip=0; bad=0
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    t0=$(date +%s)
    out=$("$t" 2>&1); rc=$?
    took=$(( $(date +%s) - t0 ))
    line=$(printf '%s\n' "$out" | grep -E ': [0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        printf '%s\n' "$out"
        echo "FAILED: $t (exit $rc)"
        bad=$((bad + 1))
    else
        printf '%s\n' "$out" | grep -E '^  SKIP' || true
        echo "$line (${took}s)"
    fi
    p=$(printf '%s' "$line" | sed -n 's/.*: \([0-9]*\) passed.*/\1/p')
    f=$(printf '%s' "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
    s=$(printf '%s' "$line" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
    pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0})); skip=$((skip + ${s:-0}))
done
[ $bad -gt 0 ] && [ $fail -eq 0 ] && fail=$bad
echo "unit ($build): $pass passed, $fail failed, $skip skipped"
[ $bad -eq 0 ] && [ $fail -eq 0 ]
